"""Output helpers shared by the commands: JSON for machines, aligned columns and numbers
for people, one-line usage errors, and output files written without losing what was there."""

from __future__ import annotations

import errno
import json
import os
import secrets
import stat
import sys
from collections.abc import Callable, Sequence
from contextlib import suppress
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from typing import BinaryIO, TextIO, TypeVar

from imagine_billing._checks import PLACES, decimal_text, printable

__all__ = ["JSON_NUMBERS", "PLACES", "PNG", "PROGRESS_MIN_BYTES", "GuardedOutput",
           "OutputError", "Progress", "columns", "decimal_text", "emit_json", "moment_text",
           "output_problem", "tokens_text", "usage_error", "write_output"]


JSON_NUMBERS = (
    "Numbers in --json output: tokens, counts, days and seconds are JSON integers; rates, "
    "ratios, thresholds and projections, which need not be whole, are always strings holding "
    f"a decimal number rounded half to even to {PLACES} places, trailing zeros dropped "
    '(e.g. "71.428571", "0.8", "40"); never fractions.'
)
"""The rule of numbers in JSON output, for ``--help``."""

PNG = b"\x89PNG\r\n\x1a\n"
"""The first bytes of every PNG file."""

PROGRESS_MIN_BYTES = 8 * 1024 * 1024
"""Commands that read a log (``price-log``, ``ledger import-usage``) show a progress bar (on
a terminal) for files larger than this."""


def emit_json(value: object) -> None:
    """Print ``value`` as indented JSON on stdout (escaped to ASCII unless stdout is UTF-8)."""
    encoding = (getattr(sys.stdout, "encoding", None) or "").lower().replace("_", "-")
    utf8 = encoding in ("utf-8", "utf8")
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=not utf8) + "\n")



def columns(
    header: Sequence[str], rows: Sequence[Sequence[object]], *, right: Sequence[int] = ()
) -> str:
    """Rows as text columns under ``header``; the columns numbered in ``right`` align right.
    A character that does not print is escaped (`printable`): a cell holds what a user gave
    (a key, a tag, a budget's name), which must not rewrite the terminal."""
    cells = [[str(c) for c in header]] + [[printable(str(c)) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = []
    for row in cells:
        parts = [
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def usage_error(message: str) -> int:
    """Print ``message`` as the command line's one error line on stderr; return exit code 2
    (bad usage or unreadable input)."""
    print(f"imagine-billing: error: {message}", file=sys.stderr)
    return 2


def tokens_text(value: Fraction | int | None) -> str:
    """Tokens for people: whole numbers as they are, fractions to two decimals; ``"-"`` for
    none."""
    if value is None:
        return "-"
    if isinstance(value, int) or value.denominator == 1:
        return f"{int(value):,}"
    rounded = (Decimal(value.numerator) / Decimal(value.denominator)).quantize(Decimal("0.01"))
    if rounded == rounded.to_integral_value():
        return f"{int(rounded):,}"
    return f"{rounded:,}"


def moment_text(moment: datetime | None) -> str:
    """A moment for people, to the minute in UTC: ``"2026-04-22 00:00 UTC"``; ``"-"`` for
    none."""
    return "-" if moment is None else f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def output_problem(option: str, path: str, kind: str, signature: bytes, *,
                   keep: Sequence[str] = ()) -> str | None:
    """Why ``OPTION PATH`` must not be written, or ``None`` when it may.

    An output file replaces only what would lose nothing: no file, an empty file, or a file
    of the ``kind`` the option writes (its first bytes are ``signature``: e.g. "a PNG
    image", `PNG`), that is none of the files in ``keep`` (by any name: a hard link or a
    symbolic link to one is one).
    """
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return None  # no file there (a symbolic link to none: the file it names is made)
    except OSError as error:
        return f"{option} {path!r}: {error.strerror or error}"
    for name in keep:
        with suppress(OSError):
            if os.path.samestat(found, os.stat(name)):
                return f"{option} {path!r} is {name!r}, which this command reads: give " \
                       "another file name"
    if stat.S_ISDIR(found.st_mode):
        return None  # the caller's own message names a file to give instead
    if not stat.S_ISREG(found.st_mode):
        return f"{option} {path!r} is not a regular file: give a file name"
    if found.st_size:
        try:
            with open(path, "rb") as file:
                start = file.read(len(signature))
        except OSError as error:
            return f"{option} {path!r}: {error.strerror or error}"
        if start != signature:
            return (f"{option} {path!r} exists and is not {kind}: refusing to replace it "
                    "(give another name, or remove the file first)")
    return None


def write_output(option: str, path: str, kind: str, signature: bytes,
                 write: Callable[[BinaryIO], object]) -> None:
    """Write an output file whole or not at all: to a new file beside it, renamed over it
    once written; ``path`` must pass `output_problem` (checked again here).

    A symbolic link is followed: the file it names is replaced, the link kept. The file
    replaced keeps its permissions; a new one has the usual (as the umask allows).

    Raises:
        FileExistsError: ``path`` may not be written (`output_problem`, the message).
        OSError: The file cannot be written.
    """
    problem = output_problem(option, path, kind, signature)
    if problem is not None:
        raise FileExistsError(errno.EEXIST, problem)
    target = os.path.realpath(path)
    folder, name = os.path.split(target)
    temporary = os.path.join(folder, f".{name}.{secrets.token_hex(6)}.tmp")
    handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with open(handle, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        with suppress(FileNotFoundError):
            os.chmod(temporary, stat.S_IMODE(os.stat(target).st_mode))
        os.replace(temporary, target)
    except BaseException:
        with suppress(OSError):
            os.remove(temporary)
        raise


class Progress:
    """A progress bar on stderr for large files: plain text, redrawn in place, named
    ``label``, shown for files of ``minimum`` bytes or more."""

    def __init__(self, stream: TextIO, label: str, minimum: int) -> None:
        self.stream = stream
        self.label = label
        self.minimum = minimum
        self.shown = False

    def __call__(self, done: int, size: int) -> None:
        if size < self.minimum:
            return
        fraction = min(1.0, done / size)
        bar = "#" * int(fraction * 30)
        self.stream.write(f"\r{self.label} [{bar:<30}] {fraction:4.0%} "
                          f"({done >> 20} of {size >> 20} MiB)")
        self.stream.flush()
        self.shown = True

    def done(self) -> None:
        if self.shown:
            self.stream.write("\r\033[K")
            self.stream.flush()


_T = TypeVar("_T")


class OutputError(OSError):
    """Standard output could not be written (a full disk, an I/O error): not a bug of ours,
    and not a reader gone away (a `BrokenPipeError` stays one)."""


class GuardedOutput:
    """Standard output while a command runs: ``stream``, whose failures to write are
    `OutputError`, so that they can be told apart from other `OSError`.

    Everything but `write` and `flush` is the stream's own."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        return self._guarded(self.stream.write, text)

    def flush(self) -> None:
        self._guarded(self.stream.flush)

    @staticmethod
    def _guarded(call: Callable[..., _T], *args: object) -> _T:
        try:
            return call(*args)
        except BrokenPipeError:
            raise
        except OSError as error:
            raise OutputError(error.errno, error.strerror or str(error)) from error

    def drop(self) -> None:
        """After an `OutputError`: what the stream still holds goes nowhere, so that Python
        does not fail again writing it as it exits (its file becomes the null device)."""
        with suppress(OSError, ValueError, AttributeError):  # no file: nothing kept
            null = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(null, self.stream.fileno())
            finally:
                os.close(null)

    def __getattr__(self, name: str) -> object:
        return getattr(self.stream, name)
