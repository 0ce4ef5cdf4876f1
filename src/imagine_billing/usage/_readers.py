"""Reading text usage logs (`UsageLog`): CSV and JSON lines, a bad line named or counted."""

from __future__ import annotations

import gzip
import io
import os
import zlib
from collections.abc import Callable, Generator, Iterable, Iterator
from datetime import datetime
from typing import IO, Any, cast

from imagine_billing._checks import (
    MAX_DIGITS,
    MAX_TOKENS,
    rfc3339,
    shortened,
    shown,
    shown_int,
    too_large,
)
from imagine_billing.errors import BadRecordError
from imagine_billing.pricing._document import _Object
from imagine_billing.usage._pricing import Record, StyleKey, count_skipped
from imagine_billing.usage._sniffing import (
    _GZIP,
    _HEAD,
    _Gzip,
    _head_of_pipe,
    guess_format,
    piped_parquet,
)

_COUNT_TEXTS = 1024
"""The most count texts a CSV pass remembers the value of."""
MAX_LINE = 1 << 16
"""Lines of a usage log are shorter than this many characters (64 Ki; a record takes about
60): a longer one is a bad line, read no further than this, so that a file with no line breaks
(``/dev/zero``) or a huge value cannot fill the memory."""
_REQUIRED = ("timestamp", "style", "count")
_PROGRESS_EVERY = 1 << 14


class UsageLog:
    """The records of a usage log file, read lazily (CSV or JSON lines).

    Iterate it (or pass it to `price_usage`) for ``(style, count, timestamp)`` records.
    While it is read, ``line`` is the line of the last record given and ``skipped`` counts
    the lines skipped by reason (with ``skip_bad``); both start again at each iteration, so a
    log can be priced twice.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        skip_bad: bool = False,
        format: str | None = None,
        on_progress: Callable[[int, int], None] | None = None,
        columns: tuple[str, ...] = (),
        name: str | None = None,
    ) -> None:
        self.path = os.fspath(path)
        """The file read."""
        self.source = name or self.path
        """The file name, as errors show it."""
        self.columns = tuple(column.casefold() for column in columns)
        """Columns besides the record's whose values each record carries (see
        `read_usage`)."""
        self.skip_bad = skip_bad
        """Count bad lines by reason instead of raising."""
        self.format = format or guess_format(self.path)
        """``"csv"`` or ``"jsonl"``: ``"jsonl"`` when the first character of the file that is
        not blank is ``{``, else from the name (``.jsonl``, ``.ndjson``, ``.json``), else
        ``"csv"``; ``None`` for a pipe until it is read (its first bytes cannot be read
        twice)."""
        if self.format not in ("csv", "jsonl", None):
            raise ValueError(f"format must be 'csv' or 'jsonl' (got {self.format!r})")
        self.on_progress = on_progress
        """Called now and then as ``on_progress(bytes_read, size)``."""
        self.line = 0
        """The line of the last record given (from 1; a CSV record over several lines, in a
        quoted field, is named by its first)."""
        self.skipped: dict[str, int] = {}
        """Lines skipped, by reason."""
        self.skipped_lines: dict[str, list[int]] = {}
        """The first lines skipped (up to `FIRST_LINES`), by reason."""
        self._position: Callable[[], int] = lambda: 0
        """Bytes of the file read so far (of the compressed file, for a gzip one)."""

    def __iter__(self) -> Iterator[Record]:
        self.line = 0
        self.skipped = {}
        self.skipped_lines = {}
        try:
            # "-" is standard input (left open: closing the reader closes only its buffer).
            raw: IO[bytes] = (open(0, "rb", closefd=False) if self.path == "-"  # noqa: SIM115
                              else open(self.path, "rb"))  # noqa: SIM115 - closed below
        except OSError as error:
            reason = error.strerror or str(error)
            raise BadRecordError(self.source, 0, "unreadable",
                                 f"cannot read the file: {reason}") from None
        try:
            size = os.fstat(raw.fileno()).st_size
            if raw.seekable():
                self._position = raw.tell
                head = raw.peek(_HEAD)[:_HEAD]  # type: ignore[attr-defined]
            else:  # a pipe: no position (no progress), and its head read whole, then replayed
                self._position = lambda: 0
                head, raw = _head_of_pipe(raw)
            if self.format is None:
                self.format = guess_format(self.path, head)
            if self.format == "parquet":
                raise piped_parquet(self.source)
            compressed = head[:2] == _GZIP
            stream = cast("IO[bytes]", _Gzip(raw)) if compressed else raw
            try:
                if self.format == "csv":
                    yield from self._csv(stream, size)
                else:
                    yield from self._jsonl(stream, size)
            except (gzip.BadGzipFile, EOFError, zlib.error) as error:
                if not compressed:
                    raise
                raise BadRecordError(self.source, self.line + 1, "unreadable",
                                     f"not a whole gzip file: {error}") from None
            if self.on_progress is not None:
                self.on_progress(size, size)
        finally:
            raw.close()

    def _reject(self, line: int, reason: str, detail: str) -> None:
        if not self.skip_bad:
            raise BadRecordError(self.source, line, reason, detail)
        count_skipped(self.skipped, self.skipped_lines, reason, line)

    def _csv(self, raw: IO[bytes], size: int) -> Iterator[Record]:
        import csv

        text = _text(raw)
        try:
            # The first bad line (too long, not UTF-8) of the record being read: its line,
            # reason and what is wrong.
            bad: list[tuple[int, str, str]] = []
            lines = _lines(text, bad)
            if text.errors != "strict":
                lines = _flag_bad_lines(lines, bad)
            reader = csv.reader(lines, strict=True)
            header = None
            end = 0  # the last line of the last record read
            while True:
                try:
                    if header is None:
                        header = self._csv_header(reader, bad)
                        end = reader.line_num
                except UnicodeDecodeError as error:
                    failure: Exception | None = error
                else:
                    end, failure = yield from self._csv_records(reader, header, bad, end, raw,
                                                                size)
                if isinstance(failure, UnicodeDecodeError):
                    # Bytes that are not UTF-8 ahead: read again, line by line, past the
                    # records read, to name the line and let skip_bad skip it.
                    text = _text(raw, text)
                    reader = csv.reader(_flag_bad_lines(_lines(text, bad), bad), strict=True)
                    _skip_records(reader, end)
                    bad.clear()  # a flag in the lines read again was reported then
                elif failure is not None:
                    # Not CSV: the reader starts afresh at the next line.
                    bad.clear()
                    self._reject(end + 1, "bad-csv", f"not CSV this reader reads: {failure}")
                    end = reader.line_num
                else:
                    return
        finally:
            text.close()

    def _csv_records(  # noqa: PLR0917 - a private step of `_csv`, called once per pass
        self,
        reader: Any,
        header: _Header,
        bad: list[tuple[int, str, str]],
        end: int,
        raw: IO[bytes],
        size: int,
    ) -> Generator[Record, None, tuple[int, Exception | None]]:
        """The records of ``reader`` after line ``end``, until its end or an error that the
        reader cannot read past (returned, with the last line of the last record read)."""
        import csv

        names, width, at_ts, at_style, at_count, at_operation, extra = header
        counts: dict[str, int] = {}  # count text -> count: few counts, read once each
        progress = self.on_progress
        reject = self._reject
        timestamp = rfc3339
        try:
            for row in reader:
                # A quoted field may hold line breaks: a record is named by its first line.
                line = end + 1
                end = reader.line_num
                if bad:
                    reject(*bad.pop())
                    continue
                if len(row) != width:
                    if row:  # a blank line holds no record
                        reject(line, "missing-field" if len(row) < width else "extra-field",
                               f"expected {width} fields ({','.join(names)}), got {len(row)}")
                    continue
                count = counts.get(row[at_count])
                if count is None:
                    count = _count_of(row[at_count])
                    if count is None:
                        reject(line, "bad-count", _count_text_problem(row[at_count].strip()))
                        continue
                    if len(counts) < _COUNT_TEXTS:
                        counts[row[at_count]] = count
                # One rule for every reader: rfc3339's (spaces around the text ignored).
                ts_text = row[at_ts]
                ts = timestamp(ts_text)
                if ts is None or ts.tzinfo is None:
                    ts_text = ts_text.strip()
                    ts = timestamp(ts_text)
                    if ts is None or ts.tzinfo is None:
                        reject(line, "bad-timestamp", _timestamp_problem(shown(ts_text), ts))
                        continue
                style_id = row[at_style].strip()
                style: StyleKey = style_id
                if at_operation is not None and (operation := row[at_operation].strip()):
                    style = (operation, style_id or None)
                elif not style_id:
                    reject(line, "missing-field",
                           "style is empty (and no operation names what was called)")
                    continue
                if progress is not None and not line % _PROGRESS_EVERY:
                    progress(self._position(), size)
                self.line = line
                if extra:
                    yield (style, tuple([row[at].strip() for at in extra])), count, ts
                else:
                    yield style, count, ts
        except (csv.Error, UnicodeDecodeError) as error:
            return end, error
        return end, None

    def _csv_header(
        self, reader: Iterator[list[str]], bad: list[tuple[int, str, str]]
    ) -> _Header:
        """Read the header: its names (case-folded), how many, the columns of timestamp,
        style, count and operation (``None`` when there is none) and of `columns`."""
        import csv

        try:
            header = next(reader, None)
        except csv.Error as error:
            # Named by its first line, as records are (a quoted field may run on).
            raise BadRecordError(self.source, 1, "bad-header",
                                 f"header: not CSV this reader reads: {error}") from None
        if header is None:
            raise BadRecordError(self.source, 1, "bad-header",
                                 "empty file: expected a header timestamp,style,count")
        if bad:
            line, _, detail = bad[0]
            raise BadRecordError(self.source, line, "bad-header", f"header: {detail}")
        names = [name.strip().casefold() for name in header]
        problem = header_problem(names, self.columns)
        if problem:
            raise BadRecordError(self.source, 1, "bad-header", problem)
        at_ts, at_style, at_count = (names.index(name) for name in _REQUIRED)
        at_operation = names.index("operation") if "operation" in names else None
        extra = tuple(names.index(name) for name in self.columns)
        return names, len(names), at_ts, at_style, at_count, at_operation, extra

    def _jsonl(self, raw: IO[bytes], size: int) -> Iterator[Record]:
        import itertools

        text = _text(raw)
        try:
            rows: Iterator[str] = _lines(text)
            line = 0  # the lines read
            while True:
                line, failure = yield from self._jsonl_records(rows, line, raw, size)
                if failure is None:
                    return
                # As for CSV: read again, past the lines read, line by line.
                text = _text(raw, text)
                rows = itertools.islice(_lines(text), line, None)
        finally:
            text.close()

    def _jsonl_records(
        self, rows: Iterator[str], line: int, raw: IO[bytes], size: int
    ) -> Generator[Record, None, tuple[int, UnicodeDecodeError | None]]:
        """The records of ``rows``, the lines after line ``line``, until their end or bytes
        that are not UTF-8 (returned, with the number of the last line read)."""
        import json

        loads = json.JSONDecoder(object_pairs_hook=_Object).decode
        progress = self.on_progress
        try:
            for row in rows:
                line += 1
                if not row.isascii() and (problem := _utf8_problem(row)) is not None:
                    self._reject(line, "bad-encoding", problem)
                    continue
                if not row.strip():
                    if not row:  # what `_lines` gives for a line too long to read
                        self._reject(line, "line-too-long", _TOO_LONG)
                    continue  # a blank line holds no record
                try:
                    item = loads(row)
                except json.JSONDecodeError as error:
                    self._reject(line, "bad-json", f"not JSON: {error}")
                    continue
                except (ValueError, RecursionError) as error:
                    # Nesting deeper than Python's stack, or an integer of over 4300 digits.
                    reason = ("nested too deeply" if isinstance(error, RecursionError)
                              else str(error).split(";")[0])
                    self._reject(line, "bad-json", f"not JSON this reader reads: {reason}")
                    continue
                record = self._json_record(line, item)
                if record is None:
                    continue
                if progress is not None and not line % _PROGRESS_EVERY:
                    progress(self._position(), size)
                self.line = line
                yield record
        except UnicodeDecodeError as error:
            return line, error
        return line, None

    def _json_record(self, line: int, item: object) -> Record | None:
        if not isinstance(item, dict):
            self._reject(line, "bad-record",
                         f'expected an object such as {{"timestamp": ..., "style": ..., '
                         f'"count": ...}} (got {shown(item)})')
            return None
        repeated = getattr(item, "repeated", None) or _folded_twice(item)
        if repeated:
            # As price documents: {"count": 1, "count": 1000} is not 1000 calls.
            self._reject(line, "duplicate-key",
                         f"duplicate key {shown(repeated[0])}: a JSON parser keeps only its "
                         "last value, so the others would be lost")
            return None
        if not all(key.islower() for key in item):
            # Keys are case-insensitive ("Timestamp", "STYLE"): fold them (no two fold alike).
            item = {key.casefold(): value for key, value in item.items()}
        operation = item.get("operation")
        missing = [name for name in _REQUIRED if name not in item
                   and not (name == "style" and operation is not None)]
        if missing:
            self._reject(line, "missing-field", f"missing field {shown(missing[0])}")
            return None
        count = item["count"]
        if count.__class__ is not int or count < 1:
            got = shown_int(count) if count.__class__ is int else shown(count)
            self._reject(line, "bad-count", f"count must be an integer >= 1 (got {got})")
            return None
        if count > MAX_TOKENS:
            self._reject(line, "bad-count", f"count {too_large(shown_int(count))}")
            return None
        ts_text = item["timestamp"]
        ts = rfc3339(ts_text) if isinstance(ts_text, str) else None
        if ts is None or ts.tzinfo is None:
            what = "no time zone" if ts is not None else "not an RFC 3339 timestamp"
            self._reject(line, "bad-timestamp",
                         f"timestamp {shown(ts_text)}: {what} (expected e.g. "
                         '"2025-07-01T12:00:00Z")')
            return None
        style = item.get("style")
        if not (style is None or isinstance(style, str)) or not (
            operation is None or isinstance(operation, str)
        ):
            self._reject(line, "bad-style",
                         f"style and operation must be strings (got {shown(style)}, "
                         f"{shown(operation)})")
            return None
        if operation is not None:
            key: StyleKey = (operation, style or None)
        elif not style:
            self._reject(line, "missing-field", "style is empty")
            return None
        else:
            key = style
        if self.columns:
            return (key, tuple([_json_text(item.get(name)) for name in self.columns])), count, ts
        return key, count, ts


def _folded_twice(item: dict[str, object]) -> list[str]:
    """The keys of a JSON object that another key equals once case-folded (``"Count"`` and
    ``"count"``): empty when none does."""
    if len(item) < 2 or all(key.islower() for key in item):
        return []
    seen: set[str] = set()
    twice = []
    for key in item:
        folded = key.casefold()
        if folded in seen:
            twice.append(key)
        seen.add(folded)
    return twice


def _json_text(value: object) -> str | None:
    """A JSON value of a record's other key, to group by: text as it is, ``None`` for null
    or no such key, anything else as compact JSON (``12``, ``true``, ``[1,2]``)."""
    import json

    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _text(raw: IO[bytes], failed: io.TextIOWrapper | None = None) -> io.TextIOWrapper:
    """The text of ``raw``, from its start.

    First strictly as UTF-8: decoded in blocks, fast. Once that has ``failed`` (an error
    cannot say which line it is on, nor skip it), again with the bytes that are not UTF-8 as
    lone surrogates, for `_utf8_problem` to find line by line. A stream that cannot seek (a
    pipe) is read that second way from the start.
    """
    if failed is None and raw.seekable():
        return io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
    if failed is None:
        # A pipe cannot be read again: look for bytes that are not UTF-8 on the first pass.
        return io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape", newline="")
    failed.detach()  # without closing raw
    raw.seek(0)
    return io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape", newline="")


_TOO_LONG = f"line too long: a line of a usage log has fewer than {MAX_LINE} characters"


def _lines(text: IO[str], bad: list[tuple[int, str, str]] | None = None) -> Iterator[str]:
    """The lines of ``text`` (a whole file), none read further than `MAX_LINE` characters.

    A longer line is given as ``""`` (no line read is empty: each holds its line break, or is
    the last) and noted in ``bad`` (while it is empty) as for `_flag_bad_lines`; the rest of it
    is read past, in steps of that size, only when the next line is asked for.
    """
    readline = text.readline
    limit = MAX_LINE
    number = 0
    while line := readline(limit):
        number += 1
        if len(line) == limit and line[-1] not in "\r\n":
            if bad is not None and not bad:
                bad.append((number, "line-too-long", _TOO_LONG))
            yield ""
            while line and line[-1] not in "\r\n":
                line = readline(limit)
            continue
        yield line


def _flag_bad_lines(lines: Iterable[str], bad: list[tuple[int, str, str]]) -> Iterator[str]:
    """``lines`` (of a whole file), noting in ``bad`` (while it is empty) the first one that
    is not UTF-8: its line number, reason and what is wrong."""
    for number, line in enumerate(lines, 1):
        if not line.isascii() and not bad:
            problem = _utf8_problem(line)
            if problem is not None:
                bad.append((number, "bad-encoding", problem))
        yield line


def _skip_records(reader: Any, end: int) -> None:
    """Read the records of a CSV ``reader`` up to line ``end``, which were read before."""
    import csv

    while reader.line_num < end:
        try:
            if next(reader, None) is None:
                return
        except csv.Error:
            pass  # reported when it was first read


def _count_of(text: str) -> int | None:
    """The count that CSV text writes: 1 to 2**53-1 in plain digits, spaces around them
    ignored; else ``None``."""
    text = text.strip()
    if not (text.isdigit() and text.isascii()) or text[0] == "0" or len(text) > MAX_DIGITS:
        return None
    count = int(text)
    return count if count <= MAX_TOKENS else None


def _utf8_problem(line: str) -> str | None:
    """What is not UTF-8 in a line decoded with ``surrogateescape``; ``None`` if it all is."""
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        data = line.encode("utf-8", "surrogateescape")
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as error:
            return (f"not UTF-8 text ({error.reason}: byte 0x{data[error.start]:02x} at byte "
                    f"{error.start + 1} of the line)")
        return "not UTF-8 text"  # pragma: no cover - a lone surrogate always fails above
    return None


def _timestamp_problem(shown: str, parsed: datetime | None) -> str:
    """Why a timestamp (``shown`` as the file wrote it) is refused: no zone, or not RFC 3339."""
    what = "no time zone" if parsed is not None else "not an RFC 3339 timestamp"
    return f"timestamp {shown}: {what} (expected e.g. 2025-07-01T12:00:00Z)"


def _count_text_problem(text: str) -> str:
    """Why CSV count text that is not 1 to 2**53-1 in plain digits is refused."""
    if text.isascii() and text.isdigit() and text[0] != "0":
        return f"count {too_large(shown_int(text))}"
    return f"count must be an integer >= 1 (got {shown(text)})"


_Header = tuple[list[str], int, int, int, int, int | None, tuple[int, ...]]
"""A CSV header: names, width, the columns of timestamp, style, count, operation and of the
columns asked for."""


def header_problem(names: list[str], columns: tuple[str, ...] = ()) -> str | None:
    """What is wrong with the (case-folded) column names of a log, given the ``columns`` to
    group by; ``None`` when nothing is."""
    expected = "expected a header timestamp,style,count (and optionally operation)"
    seen: set[str] = set()
    for name in names:
        if name in seen:
            return f"column {shown(name)} appears twice (names are case-insensitive); {expected}"
        seen.add(name)
    missing = [name for name in _REQUIRED if name not in seen]
    if missing:
        return f"no {shown(missing[0])} column; {expected}"
    for name in columns:
        if name not in seen:
            return (f"no column {shown(name)} to group by (--by); the columns are "
                    f"{', '.join(shortened(n, 40) for n in names)}")
    return None
