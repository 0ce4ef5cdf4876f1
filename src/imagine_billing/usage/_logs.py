"""Usage logs by name: `read_usage` picks the reader of a log's format, `price_logs` prices
several logs with either engine."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable, Iterator, Sequence
from typing import BinaryIO

from imagine_billing._extras import duckdb_module
from imagine_billing.errors import BadRecordError
from imagine_billing.pricing.book import PriceBook
from imagine_billing.pricing.loading import load_price_table
from imagine_billing.pricing.model import PriceTable
from imagine_billing.usage._duckdb_engine import MEMORY_LIMIT, Unclear, price_in_duckdb
from imagine_billing.usage._parquet import ParquetLog
from imagine_billing.usage._pricing import UsageTotals, group_keys, log_columns, price_usage
from imagine_billing.usage._readers import MAX_LINE, UsageLog
from imagine_billing.usage._sniffing import guess_format, piped_parquet

__all__ = ["ENGINES", "price_logs", "read_usage"]


def read_usage(
    path: str | os.PathLike[str],
    *,
    skip_bad: bool = False,
    format: str | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    columns: Sequence[str] = (),
    name: str | None = None,
) -> UsageLog | ParquetLog:
    """The records of a usage log: CSV, JSON lines or Parquet, read lazily as they are priced.

    A file that starts as gzip does (whatever its name) is decompressed as it is read;
    ``"-"`` reads standard input.
    CSV: a header naming ``timestamp``, ``style`` and ``count`` (and optionally
    ``operation``), in any order and any case (``Timestamp``, ``STYLE``), spaces around names
    and values ignored; other columns are allowed. JSON lines: one object per line with those
    keys (in any case; other keys allowed). Parquet (a file that starts with ``PAR1``, or
    named ``.parquet``; read through DuckDB, extra ``bulk``): those columns, the timestamp a
    ``TIMESTAMP WITH TIME ZONE`` or RFC 3339 text, the count an integer; a record is named by
    its row, from 1.
    Timestamps are RFC 3339 with a zone
    (``2025-07-01T12:00:00Z``; other ISO 8601 forms are bad timestamps); counts are integers
    from 1 to 2**53-1; blank lines are ignored. ``style`` may be empty when ``operation``
    names an operation billed without one. The file is UTF-8: a line that is not is a bad
    line (``"bad-encoding"``), as is a CSV line the reader cannot parse (``"bad-csv"``), a
    JSON object that repeats a key, in any case (``"duplicate-key"``), and a line of 65,536
    characters or more (``"line-too-long"``: it is read no further, so memory stays bounded).

    Args:
        path: the file.
        skip_bad: count bad lines by reason (in ``log.skipped``) instead of raising.
        format: ``"csv"``, ``"jsonl"`` or ``"parquet"``; ``None`` guesses: Parquet when the
            file starts with ``PAR1``, JSON lines when the first character that is not
            blank is ``{``, else from the name (``.parquet``; ``.jsonl``, ``.ndjson`` or
            ``.json``; else CSV).
        on_progress: called now and then with ``(bytes_read, size)``.
        columns: other columns (case-insensitive) whose values each record carries, to
            group by: each record is then ``((style, values), count, timestamp)``, ``values``
            a tuple of text (``None`` for a JSON null or a key a line lacks). A CSV or
            Parquet log without one of them is an error (``"bad-header"``).
        name: the file's name in errors (default: ``path``).

    Returns:
        The `UsageLog` (iterate it, or give it to `price_usage`).

    Raises:
        BadRecordError: when iterated, for a bad line (naming the file and line), unless
            ``skip_bad``; for an unreadable file or header, always.
    """
    if format is None:
        format = guess_format(os.fspath(path))
    if format == "parquet":
        return ParquetLog(path, skip_bad=skip_bad, on_progress=on_progress,
                          columns=tuple(columns), name=name)
    if format not in ("csv", "jsonl", None):
        raise ValueError(f"format must be 'csv', 'jsonl' or 'parquet' (got {format!r})")
    return UsageLog(path, skip_bad=skip_bad, format=format, on_progress=on_progress,
                    columns=tuple(columns), name=name)


ENGINES = ("python", "duckdb")
"""The engines of `price_logs`."""


def price_logs(
    paths: Sequence[str | os.PathLike[str]],
    prices: PriceTable | PriceBook | None = None,
    *,
    engine: str = "python",
    skip_bad: bool = False,
    by: Sequence[str] = (),
    format: str | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    memory_limit: str = MEMORY_LIMIT,
) -> list[tuple[str, UsageTotals]]:
    """The totals of each of several usage logs (add them up with ``+`` for all of them).

    ``engine="python"`` reads each log with `read_usage` and prices it with `price_usage`,
    in constant memory. ``engine="duckdb"`` (extra ``bulk``) prices it in DuckDB by the range
    join of `PRICING_QUERY`, under ``memory_limit``: the same totals, skipped counts and
    errors; a log SQL cannot check as the python reader does (a quoted CSV field, text
    outside printable ASCII, an operation column in use) and a log with a bad line (without
    ``skip_bad``) are priced by the python engine, which names the line.

    Args:
        paths: the logs; ``"-"`` is standard input, read once (at most one ``"-"``), as
            is a pipe (a FIFO, ``/dev/fd/N``).
        prices: as for `price_usage`.
        engine: ``"python"`` or ``"duckdb"``.
        skip_bad: count bad lines by reason instead of raising.
        by: group the totals by ``"style"``, ``"day"``, ``"month"`` and columns of the
            logs (see `UsageTotals.groups`).
        format: every log's format (``None``: each one's own, see `read_usage`).
        on_progress: called now and then with ``(bytes done, bytes in all)``.
        memory_limit: DuckDB's ``memory_limit``, such as ``"1GB"``.

    Returns:
        ``(name, totals)`` for each log, in the order given.

    Raises:
        BadRecordError: as `price_usage` does.
        ValueError: an unknown engine, a bad ``by``, ``"-"`` given twice.
        ImportError: Parquet or the duckdb engine without DuckDB installed.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be 'python' or 'duckdb' (got {engine!r})")
    names = [os.fspath(path) for path in paths]
    if names.count("-") > 1:
        raise ValueError("'-' (standard input) is given twice: it can be read only once")
    keys = group_keys(by)
    if engine == "duckdb":
        duckdb_module("--engine duckdb")
    if prices is None:
        prices = load_price_table()
    sizes = [_size(name) for name in names]
    results = []
    for at, name in enumerate(names):
        shown = _shifted(on_progress, sum(sizes[:at]), sum(sizes))
        with _readable(name, engine, format, skip_bad) as path:
            totals = None
            if engine == "duckdb":
                with contextlib.suppress(Unclear):
                    totals = price_in_duckdb(path, prices, skip_bad=skip_bad, by=keys,
                                             format=format, memory_limit=memory_limit,
                                             on_progress=shown)
            if totals is None:
                log = read_usage(path, skip_bad=skip_bad, format=format, on_progress=shown,
                                 columns=log_columns(keys), name=name)
                totals = price_usage(log, prices, by=keys)
        results.append((name, totals))
    return results


def _size(name: str) -> int:
    try:
        return 0 if name == "-" else os.path.getsize(name)
    except OSError:
        return 0  # reading it says why


def _shifted(on_progress: Callable[[int, int], None] | None, before: int,
             size: int) -> Callable[[int, int], None] | None:
    """``on_progress`` for one of several files: its bytes after those ``before`` it, of
    ``size`` in all."""
    if on_progress is None or size == 0:
        return on_progress

    def shown(done: int, _: int) -> None:
        on_progress(before + done, size)

    return shown


@contextlib.contextmanager
def _readable(name: str, engine: str, format: str | None,
              skip_bad: bool = False) -> Iterator[str]:
    """A path to read ``name`` from: itself, or with DuckDB, for ``"-"`` a file holding
    standard input and for a pipe (a FIFO, ``<(...)``'s ``/dev/fd/N``) or a device a file
    holding what it gives: DuckDB reads files, and opens a path several times (a pipe gives
    its bytes once, and a FIFO read after its writer left waits for ever). The copy keeps
    the name's end (``.jsonl``, ``.gz``) for `guess_format`. The python reader reads a
    pipe as it comes.

    Raises:
        BadRecordError: the copy is Parquet, which the python reader does not read from a
            pipe (the engines give the same errors).
    """
    if engine == "python" or (name != "-" and not _a_pipe(name)):
        yield name
        return
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "stdin" if name == "-" else os.path.basename(name))
        try:
            source = (open(0, "rb", closefd=False) if name == "-"  # noqa: SIM115
                      else open(name, "rb"))  # noqa: SIM115
        except OSError:
            path = name  # the python reader names the problem
        else:
            with source, open(path, "wb") as copy:
                head = _copied(source, copy, name, folder, skip_bad)
            if (format or guess_format(path, head)) == "parquet":
                raise piped_parquet(name)
        yield path


_OVERLONG = 4 * MAX_LINE + 4
"""Bytes of one line past which it is too long for the python reader (`MAX_LINE`
characters of at most 4 bytes each)."""

_ROOM = 256 << 20
"""Bytes a copy of a pipe leaves free in the temporary folder's file system."""


def _copied(source: BinaryIO, copy: BinaryIO, name: str, folder: str,
            skip_bad: bool) -> bytes:
    """Copy the pipe ``source`` to ``copy``; returns its first bytes (for the format).

    An endless pipe must not fill the disk: a line of plain text too long for the python
    reader is copied only up to `_OVERLONG` bytes, which is still too long for it: the copy
    ends there without ``skip_bad`` (the reader then refuses that line, as it refuses it in
    the pipe) and goes on after the line's end with it (the reader skips it, as it would).
    A copy that would leave less than `_ROOM` free is refused, naming the pipe.

    Raises:
        BadRecordError: the temporary folder runs out of room.
    """
    import shutil

    head = source.read(4)
    plain = head[:2] != b"\x1f\x8b" and head != b"PAR1"  # neither gzip nor Parquet
    if head == b"PAR1":
        raise piped_parquet(name)
    run, written, block = 0, 0, head
    while block:
        if plain:
            block, run, stop = _capped(block, run, skip_bad)
            if stop:
                copy.write(block)
                break
        copy.write(block)
        written += len(block)
        if written >= 64 << 20:
            written = 0
            if shutil.disk_usage(folder).free < _ROOM:
                raise BadRecordError(name, 0, "unreadable", "cannot copy it for DuckDB: the "
                                     "temporary folder's disk is nearly full; give the log "
                                     "as a file, or use --engine python")
        block = source.read(1 << 20)
    return head


def _capped(block: bytes, run: int, skip_bad: bool) -> tuple[bytes, int, bool]:
    """``block`` of plain text, a line ``run`` bytes long before it, with what lies past
    `_OVERLONG` bytes of a line left out; the length of the line it ends in; and whether
    the copy stops there (a line too long, without ``skip_bad``)."""
    lines = block.split(b"\n")
    if run + len(lines[0]) <= _OVERLONG and max(map(len, lines)) <= _OVERLONG:
        return block, (run + len(block) if len(lines) == 1 else len(lines[-1])), False
    kept: list[bytes] = []
    for number, line in enumerate(lines):
        ended = number < len(lines) - 1
        if run + len(line) > _OVERLONG:
            kept.append(line[:max(0, _OVERLONG + 1 - run)])
            if not skip_bad:
                return b"\n".join(kept), run + len(line), True
        else:
            kept.append(line)
        if not ended:
            return b"\n".join(kept), run + len(line), False
        run = 0
    raise AssertionError("unreachable: split gives a last piece")  # pragma: no cover


def _a_pipe(name: str) -> bool:
    """Whether ``name`` is neither a regular file nor a folder (a missing file is not: the
    reader says why)."""
    try:
        mode = os.stat(name).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))
