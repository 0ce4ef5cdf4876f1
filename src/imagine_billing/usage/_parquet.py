"""Reading Parquet usage logs (`ParquetLog`): the rows of a Parquet file, through DuckDB,
checked by the rules of the text logs and named by their row."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

from imagine_billing._checks import MAX_TOKENS, rfc3339, shown, shown_int, too_large
from imagine_billing._extras import duckdb_module
from imagine_billing.errors import BadRecordError
from imagine_billing.usage._pricing import Record, StyleKey, count_skipped
from imagine_billing.usage._readers import (
    _count_of,
    _count_text_problem,
    _timestamp_problem,
    header_problem,
)
from imagine_billing.usage._sniffing import piped_parquet
from imagine_billing.usage._sql_rows import TIMES, outside_times

__all__ = ["ParquetLog", "parquet_columns"]

_BATCH = 1 << 16
"""Rows fetched from DuckDB at a time: memory stays bounded whatever the file's size."""


def parquet_columns(connection: Any, path: str, source: str) -> dict[str, tuple[str, str]]:
    """The columns of a Parquet file, in order: case-folded name -> (name, DuckDB type);
    two names that fold alike are a bad header.

    Raises:
        BadRecordError: the file cannot be read as Parquet (``"unreadable"``).
    """
    duckdb = duckdb_module("reading Parquet")
    try:
        described = connection.execute(
            "DESCRIBE SELECT * FROM read_parquet(?)", [path]).fetchall()
    except duckdb.Error as error:
        reason = str(error).strip().splitlines()[0]
        raise BadRecordError(source, 0, "unreadable",
                             f"cannot read the file as Parquet: {reason}") from None
    folded = [str(name).casefold() for name, *_ in described]
    problem = header_problem(folded)
    if problem and "appears twice" in problem:
        raise BadRecordError(source, 1, "bad-header", problem)
    return {name.casefold(): (name, str(kind)) for name, kind, *_ in described}


def quoted(name: str) -> str:
    """A column name as a SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


class ParquetLog:
    """The records of a Parquet usage log, read in batches (see `read_usage`).

    As `UsageLog`: iterate it for records; ``line`` is the row of the last record given
    (from 1) and ``skipped`` counts the rows skipped by reason (with ``skip_bad``).
    """

    format = "parquet"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        skip_bad: bool = False,
        on_progress: Callable[[int, int], None] | None = None,
        columns: tuple[str, ...] = (),
        name: str | None = None,
    ) -> None:
        self.path = os.fspath(path)
        self.source = name or self.path
        self.skip_bad = skip_bad
        self.on_progress = on_progress
        self.columns = tuple(column.casefold() for column in columns)
        self.line = 0
        self.skipped: dict[str, int] = {}
        self.skipped_lines: dict[str, list[int]] = {}

    def __iter__(self) -> Iterator[Record]:
        self.line = 0
        self.skipped = {}
        self.skipped_lines = {}
        if self.path == "-":
            raise piped_parquet(self.source)
        connection = duckdb_module("reading Parquet").connect()
        try:
            connection.execute("SET TimeZone = 'UTC'")
            query, total = self._query(connection)
            cursor = connection.execute(query, [self.path])
            rows = 0  # rows read
            size = os.path.getsize(self.path)
            while batch := cursor.fetchmany(_BATCH):
                for row in batch:
                    rows += 1
                    record = self._record(rows, row)
                    if record is not None:
                        self.line = rows
                        yield record
                if self.on_progress is not None:
                    self.on_progress(size * rows // max(1, total), size)
        finally:
            connection.close()

    def _query(self, connection: Any) -> tuple[str, int]:
        """The SELECT of the record's columns, then the others to group by (as text), and
        how many rows the file holds."""
        found = parquet_columns(connection, self.path, self.source)
        problem = header_problem(list(found), self.columns)
        if problem:
            raise BadRecordError(self.source, 1, "bad-header", problem)
        total = connection.execute("SELECT count(*) FROM read_parquet(?)",
                                   [self.path]).fetchone()[0]
        picked = [quoted(found[n][0]) for n in ("timestamp", "style", "count")]
        picked.append(quoted(found["operation"][0]) if "operation" in found else "NULL")
        kind = found["timestamp"][1]
        if kind.startswith("TIMESTAMP") or kind == "DATE":
            # Python cannot hold these: DuckDB gives an infinite one as datetime.max.
            picked.append(f"CASE WHEN {outside_times(picked[0])} "
                          f"THEN CAST({picked[0]} AS VARCHAR) END")
        else:
            picked.append("NULL")
        picked += [f"CAST({quoted(found[n][0])} AS VARCHAR)" for n in self.columns]
        return f"SELECT {', '.join(picked)} FROM read_parquet(?)", int(total)

    def _reject(self, row: int, reason: str, detail: str) -> None:
        if not self.skip_bad:
            raise BadRecordError(self.source, row, reason, detail)
        count_skipped(self.skipped, self.skipped_lines, reason, row)

    def _record(self, number: int, row: Sequence[Any]) -> Record | None:
        ts_value, style_value, count_value, operation, outside = row[:5]
        count = _count(count_value)
        if isinstance(count, str):
            self._reject(number, "bad-count", count)
            return None
        ts = _timestamp(ts_value) if outside is None else _outside(outside)
        if isinstance(ts, str):
            self._reject(number, "bad-timestamp", ts)
            return None
        style = style_value.strip() if isinstance(style_value, str) else ""
        operation = operation.strip() if isinstance(operation, str) else ""
        key: StyleKey = (operation, style or None) if operation else style
        if not (operation or style):
            self._reject(number, "missing-field",
                         "style is empty (and no operation names what was called)")
            return None
        if self.columns:
            return (key, tuple(row[5:])), count, ts
        return key, count, ts


def _count(value: object) -> int | str:
    """The count of a Parquet row, or why it is refused: an integer, or text as in CSV."""
    if isinstance(value, str):
        count = _count_of(value)
        return _count_text_problem(value.strip()) if count is None else count
    if value.__class__ is not int:
        return f"count must be an integer >= 1 (got {shown(value)})"
    assert isinstance(value, int)
    if value < 1:
        return f"count must be an integer >= 1 (got {shown_int(value)})"
    if value > MAX_TOKENS:
        return f"count {too_large(shown_int(value))}"
    return value


def _outside(text: str) -> str:
    """Why a typed time that Python cannot hold (``text``, as DuckDB writes it) is refused."""
    return (f"timestamp {shown(text)}: not a time a record can have (expected a TIMESTAMP "
            f"WITH TIME ZONE from {TIMES[0]} to {TIMES[1]})")


def _timestamp(value: object) -> datetime | str:
    """The time of a Parquet row, or why it is refused: a time with a zone, or RFC 3339
    text as in CSV."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return (f"timestamp {value.isoformat()}: no time zone (expected a TIMESTAMP WITH "
                    "TIME ZONE, or text such as 2025-07-01T12:00:00Z)")
        return value
    if isinstance(value, str):
        ts = rfc3339(value.strip())
        if ts is None or ts.tzinfo is None:
            return _timestamp_problem(shown(value.strip()), ts)
        return ts
    return f"timestamp must be a time with a zone (got {shown(value)})"
