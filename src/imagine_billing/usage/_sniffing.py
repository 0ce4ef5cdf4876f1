"""What a usage log is, from its first bytes: `guess_format` (CSV, JSON lines or Parquet,
gzip-compressed or not), and reading a pipe's head without losing it (`_head_of_pipe`)."""

from __future__ import annotations

import gzip
import io
import os
import zlib
from typing import IO, Any

from imagine_billing.errors import BadRecordError

__all__ = ["_GZIP", "_HEAD", "_Gzip", "_head_of_pipe", "guess_format", "piped_parquet"]

_PARQUET = b"PAR1"
"""The first bytes of a Parquet file."""
_GZIP = b"\x1f\x8b"
"""The first bytes of a gzip file: a log is decompressed when it starts with them."""
_HEAD = 1024
"""The bytes looked at to guess a usage log's format."""


class _Gzip(gzip.GzipFile):
    """A gzip stream over ``raw`` that can be read again from its start only if ``raw`` can
    (GzipFile says it can seek even over a pipe, which `_text` must not believe)."""

    def __init__(self, raw: IO[bytes]) -> None:
        super().__init__(fileobj=raw, mode="rb")
        self._rewindable = raw.seekable()

    def seekable(self) -> bool:
        return self._rewindable


class _Replayed(io.RawIOBase):
    """``head``, bytes already read from ``rest``, then the rest of ``rest``."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        self._head = memoryview(head)
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._head:
            count = min(len(buffer), len(self._head))
            buffer[:count] = self._head[:count]
            self._head = self._head[count:]
            return count
        data = self._rest.read1(len(buffer)) if hasattr(self._rest, "read1") else \
            self._rest.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def close(self) -> None:
        self._rest.close()
        super().close()


def _head_of_pipe(raw: IO[bytes]) -> tuple[bytes, IO[bytes]]:
    """The first `_HEAD` bytes of a pipe (fewer only at its end), waiting for a slow writer
    (one read may bring a single byte), and the pipe with them put back in front."""
    head = b""
    while len(head) < _HEAD:
        chunk = raw.read1(_HEAD - len(head)) if hasattr(raw, "read1") else raw.read(
            _HEAD - len(head))
        if not chunk:
            break
        head += chunk
    return head, io.BufferedReader(_Replayed(head, raw))


def piped_parquet(source: str) -> BadRecordError:
    """The error of a Parquet file given as a pipe (``-``, a FIFO...): its reader seeks."""
    return BadRecordError(source, 0, "unreadable",
                          "a Parquet file cannot be read from a pipe: give its path")


def guess_format(path: str, head: bytes | None = None) -> str | None:
    """The format of the usage log ``path`` (see `UsageLog.format`), from ``head``, its first
    bytes; without them, read from a regular file, and ``None`` for anything else (a pipe).

    Content first: a CSV header cannot start with ``{``, so JSON lines named ``.csv`` (or
    piped in) are read as what they are.
    """
    if head is None:
        if path == "-" or not os.path.isfile(path):
            return None
        try:
            with open(path, "rb") as file:
                head = file.read(_HEAD)
        except OSError:
            head = b""  # reading will report the error
    if head.startswith(_PARQUET):
        return "parquet"
    if head.startswith(_GZIP):
        head = _gunzipped_head(head)
    if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{"):
        return "jsonl"
    name = path.lower().removesuffix(".gz")
    if name.endswith(".parquet") and not head.strip():
        return "parquet"  # an empty .parquet file: its reader says what is wrong
    return "jsonl" if name.endswith((".jsonl", ".ndjson", ".json")) else "csv"


def _gunzipped_head(head: bytes) -> bytes:
    """The first bytes of the text that ``head``, the start of a gzip file, holds: read on
    past empty members (``gzip`` reads a file of several members as one text)."""
    text = b""
    while head[:2] == _GZIP and len(text) < _HEAD:
        unzip = zlib.decompressobj(wbits=31)
        try:
            text += unzip.decompress(head, _HEAD - len(text))
        except zlib.error:
            break  # reading will report the error
        if not unzip.eof:
            break
        head = unzip.unused_data
    return text
