"""The price book as one interval table, for SQL engines: a row per style and version.

``price_intervals(book)`` gives, for every version of a `PriceBook` (or one `PriceTable`) and
every style of that version, its cost and the span of time it is in force:
``[valid_from, valid_to)``, ``valid_to`` ``None`` for the last version, ``valid_from`` ``None``
for a single table (it prices every date, as `price_usage` does with one table). A log is then
priced in any SQL engine by one range join (see `PRICING_QUERY`), the same figures
`price_usage` gives for records that name their style.

Times are UTC, written without a zone as SQL ``TIMESTAMP`` text (``2025-07-01 00:00:00``, with
``.ffffff`` when there are microseconds), in every format: an engine that reads them types
them ``TIMESTAMP`` (not ``TIMESTAMP WITH TIME ZONE``, which DuckDB would compare in the
session's zone). The usage table's times must be UTC ``TIMESTAMP``s too (in SQLite, text of
exactly that form: SQLite compares text).

`write_intervals` writes the rows as CSV, JSON lines or portable SQL (``CREATE TABLE`` and
``INSERT``s that SQLite, DuckDB and PostgreSQL all run); Parquet is written through DuckDB
(extra ``bulk``).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import IO, Literal

import attrs

from imagine_billing._extras import duckdb_module
from imagine_billing.pricing.book import PriceBook
from imagine_billing.pricing.model import PriceTable

__all__ = [
    "COLUMNS",
    "FORMATS",
    "PRICING_QUERY",
    "PriceInterval",
    "RANGE_JOIN",
    "price_intervals",
    "sql_script",
    "write_intervals",
]

COLUMNS = ("api", "version", "digest", "style", "cost", "valid_from", "valid_to")
"""The columns of the interval table, in order."""

Format = Literal["csv", "jsonl", "sql", "parquet"]
FORMATS: tuple[Format, ...] = ("csv", "jsonl", "sql", "parquet")
"""What `write_intervals` writes."""

TABLE = "imagine_prices"
"""The table's name in the ``sql`` form (and in `PRICING_QUERY`)."""

RANGE_JOIN = """\
JOIN imagine_prices AS p
  ON p.style = u.style
 AND (p.valid_from IS NULL OR u.timestamp >= p.valid_from)
 AND (p.valid_to IS NULL OR u.timestamp < p.valid_to)"""
"""The join of `PRICING_QUERY`: a usage row ``u`` meets the price ``p`` of its style in the
version in force at its time (``price-log --engine duckdb`` runs it too)."""

PRICING_QUERY = f"""\
SELECT u.style,
       SUM(u.count)          AS calls,
       SUM(u.count * p.cost) AS tokens
FROM usage AS u
{RANGE_JOIN}
GROUP BY u.style
ORDER BY u.style"""
"""The range join that prices a usage table (``timestamp`` in UTC, ``style``, ``count``) on
the interval table in any SQL engine: each record meets the one version in force at its
time. A record of an unpriced style has a null cost (the sum skips it: look for them with a
``WHERE p.cost IS NULL``); one before the first version, or of a style the book does not
know, finds no row (use a ``LEFT JOIN`` to list them)."""


@attrs.frozen
class PriceInterval:
    """One style of one version, and when that version is in force."""

    api: str
    """The API the table prices."""
    version: str
    """The table's version."""
    digest: str
    """The table's content digest (``sha256:...``)."""
    style: str
    """The style id."""
    cost: int | None
    """Tokens per call; ``None`` when the style has no published price."""
    valid_from: datetime | None
    """When the version takes effect (aware, UTC); ``None`` for a single table, in force
    whatever the date."""
    valid_to: datetime | None
    """When the next version takes effect; ``None`` for the last version."""

    def to_dict(self) -> dict[str, object]:
        """The row as JSON values: times as UTC ``TIMESTAMP`` text without a zone (see the
        module), nulls as ``None``."""
        return {
            "api": self.api,
            "version": self.version,
            "digest": self.digest,
            "style": self.style,
            "cost": self.cost,
            "valid_from": timestamp_text(self.valid_from),
            "valid_to": timestamp_text(self.valid_to),
        }


def price_intervals(prices: PriceTable | PriceBook) -> tuple[PriceInterval, ...]:
    """The rows of the interval table: every style of every version, oldest version first,
    styles in id order."""
    if isinstance(prices, PriceBook):
        tables = prices.tables
        starts: Sequence[datetime | None] = [t.effective_from for t in tables]
    else:
        tables, starts = (prices,), [None]
    ends: Sequence[datetime | None] = [t.effective_from for t in tables[1:]] + [None]
    return tuple(
        PriceInterval(table.api, table.version, table.digest, style.id, style.cost,
                      start, end)
        for table, start, end in zip(tables, starts, ends, strict=True)
        for style in sorted(table.styles.values(), key=lambda s: s.id)
    )


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def timestamp_text(when: datetime | None) -> str | None:
    """``when`` in UTC as SQL ``TIMESTAMP`` text without a zone, ``2025-07-01 00:00:00`` (with
    ``.ffffff`` when it has microseconds): the one form SQLite, DuckDB and PostgreSQL all
    read as the same instant, whatever their session's time zone."""
    if when is None:
        return None
    return when.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")


def _sql_time(when: datetime | None) -> str:
    text = timestamp_text(when)
    return "NULL" if text is None else f"'{text}'"


def sql_script(rows: Iterable[PriceInterval]) -> str:
    """Portable SQL: ``CREATE TABLE imagine_prices`` and one ``INSERT`` per row (times are
    ``TIMESTAMP`` values in UTC, without a zone). ``version`` is a ``VARCHAR(255)``, or as
    long as the longest version when one is longer (a version's numbers have no bound)."""
    rows = list(rows)
    width = max([255, *(len(row.version) for row in rows)])
    lines = [
        f"CREATE TABLE {TABLE} (",
        "  api        VARCHAR(64)  NOT NULL,",
        f"  version    VARCHAR({width}) NOT NULL,",
        "  digest     VARCHAR(71)  NOT NULL,",
        "  style      VARCHAR(64)  NOT NULL,",
        "  cost       BIGINT,",
        "  valid_from TIMESTAMP,",
        "  valid_to   TIMESTAMP,",
        "  PRIMARY KEY (api, version, style)",
        ");",
    ]
    columns = ", ".join(COLUMNS)
    for row in rows:
        cost = "NULL" if row.cost is None else str(row.cost)
        values = ", ".join([_sql_text(row.api), _sql_text(row.version), _sql_text(row.digest),
                            _sql_text(row.style), cost, _sql_time(row.valid_from),
                            _sql_time(row.valid_to)])
        lines.append(f"INSERT INTO {TABLE} ({columns}) VALUES ({values});")
    return "\n".join(lines) + "\n"


def write_intervals(rows: Sequence[PriceInterval], fmt: Format, out: IO[str] | str) -> None:
    """Write ``rows`` as ``fmt``: to a text stream for ``csv``, ``jsonl`` and ``sql``; to a
    file path for ``parquet`` (written by DuckDB, extra ``bulk``).

    CSV has a header row and empty cells for nulls; JSON lines have one object per row.

    Raises:
        ValueError: an unknown format, or ``parquet`` to a stream.
        ImportError: ``parquet`` without DuckDB installed (the message says how to get it).
    """
    if fmt == "parquet":
        if not isinstance(out, str):
            raise ValueError("parquet is written to a file: give a path, not a stream")
        _write_parquet(rows, out)
        return
    if isinstance(out, str):
        raise ValueError(f"{fmt} is written to a text stream")
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(COLUMNS)
        for row in rows:
            data = row.to_dict()
            writer.writerow(["" if data[c] is None else data[c] for c in COLUMNS])
    elif fmt == "jsonl":
        for row in rows:
            out.write(json.dumps(row.to_dict(), ensure_ascii=False) + "\n")
    elif fmt == "sql":
        out.write(sql_script(rows))
    else:
        raise ValueError(f"format must be one of {', '.join(FORMATS)} (got {fmt!r})")


def _write_parquet(rows: Sequence[PriceInterval], path: str) -> None:
    import tempfile
    from pathlib import Path

    types = {"api": "VARCHAR", "version": "VARCHAR", "digest": "VARCHAR", "style": "VARCHAR",
             "cost": "BIGINT", "valid_from": "TIMESTAMP", "valid_to": "TIMESTAMP"}
    connection = duckdb_module("writing Parquet").connect()
    try:
        with tempfile.TemporaryDirectory() as folder:
            # Through a CSV file read in one pass: an INSERT per row took a millisecond each.
            staged = str(Path(folder) / "prices.csv")
            with open(staged, "w", encoding="utf-8", newline="") as text:
                write_intervals(rows, "csv", text)
            connection.execute(
                f"COPY (SELECT * FROM read_csv(?, header = true, columns = {types!r})) "
                "TO ? (FORMAT parquet)", [staged, path])
    finally:
        connection.close()
