"""The duckdb engine of `price_logs`: a log priced in DuckDB by the range join of
`PRICING_QUERY`, with the totals, skipped counts and errors of the python engine.

SQL checks every record by the python reader's rules (`_sql_rows`). Where it cannot tell
cheaply what that reader would say (a quoted CSV field, a byte outside printable ASCII, a
carriage return, an operation, a bad line without ``skip_bad``, whose message only the
python reader words), `price_in_duckdb` raises `Unclear` and the caller prices the log with
the python engine: the same figures and the same first error, at the python engine's speed.
"""

from __future__ import annotations

import gzip
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from imagine_billing._extras import duckdb_module
from imagine_billing.errors import BadRecordError
from imagine_billing.pricing.book import PriceBook
from imagine_billing.pricing.intervals import RANGE_JOIN, price_intervals
from imagine_billing.pricing.model import PriceTable
from imagine_billing.usage._parquet import parquet_columns
from imagine_billing.usage._pricing import (
    FIRST_LINES,
    UsageTotals,
    group_of,
    log_columns,
)
from imagine_billing.usage._readers import header_problem
from imagine_billing.usage._sniffing import _GZIP, guess_format
from imagine_billing.usage._sql_rows import (
    LONGEST,
    PRINTABLE,
    checked_styles,
    csv_rows,
    json_rows,
    parquet_rows,
    sql_text,
)

__all__ = ["MEMORY_LIMIT", "Unclear", "price_in_duckdb"]

MEMORY_LIMIT = "1GB"
"""DuckDB's memory limit (``SET memory_limit``): past it, DuckDB spills to disk."""

_BIGINTS = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER"}
"""Integer types whose every value is a ``BIGINT``."""
_INTEGERS = _BIGINTS | {"HUGEINT", "UBIGINT", "UHUGEINT"}


class Unclear(Exception):
    # Not an error: a hand-over to the python engine.
    """DuckDB cannot say what the python reader says of this log: price it with that."""


def price_in_duckdb(
    path: str,
    prices: PriceTable | PriceBook,
    *,
    skip_bad: bool,
    by: tuple[str, ...],
    format: str | None,
    memory_limit: str = MEMORY_LIMIT,
    on_progress: Callable[[int, int], None] | None = None,
) -> UsageTotals:
    """The totals of the log at ``path`` priced in DuckDB (``by`` checked by `group_keys`).

    Raises:
        Unclear: the python engine must price this log (see the module).
        ImportError: DuckDB is not installed.
    """
    duckdb = duckdb_module("--engine duckdb")
    connection = duckdb.connect()
    try:
        connection.execute(f"SET memory_limit = {sql_text(memory_limit)}")
        connection.execute("SET TimeZone = 'UTC'")
        _load_prices(connection, prices)
        rows, checked = _rows(connection, path, format, log_columns(by))
        query = _aggregate(rows(False), checked, prices, len(log_columns(by)))
        grouped = _run(connection, query, on_progress, path)
        reasons = {row[0] for row in grouped if row[0] is not None}
        if "?" in reasons or (reasons and not skip_bad):
            raise Unclear
        judged = _judged(checked(rows(True)), prices)
        lines = {} if not reasons else dict(connection.execute(
            f"SELECT reason, min(line, {FIRST_LINES}) FROM ({judged}) "
            "WHERE reason IS NOT NULL GROUP BY reason").fetchall())
    except duckdb.Error as error:
        raise Unclear from error  # e.g. not UTF-8, a line DuckDB cannot read, an overflow
    finally:
        connection.close()
    return _totals(grouped, lines, by)


def _load_prices(connection: Any, prices: PriceTable | PriceBook) -> None:
    connection.execute(
        "CREATE TEMP TABLE imagine_prices (api VARCHAR, version VARCHAR, digest VARCHAR, "
        "style VARCHAR, cost BIGINT, valid_from TIMESTAMP, valid_to TIMESTAMP)")
    rows = [(r.api, r.version, r.digest, r.style, r.cost,
             None if r.valid_from is None else r.valid_from.replace(tzinfo=None),
             None if r.valid_to is None else r.valid_to.replace(tzinfo=None))
            for r in price_intervals(prices)]
    connection.executemany("INSERT INTO imagine_prices VALUES (?, ?, ?, ?, ?, ?, ?)", rows)


def _rows(connection: Any, path: str, format: str | None,
          columns: tuple[str, ...]) -> tuple[Callable[[bool], str], Callable[[str], str]]:
    """The SQL of the log's rows (see `_sql_rows`), with or without line numbers, and what
    checks their styles when they are not yet (Parquet's, see `checked_styles`)."""
    format = format or guess_format(path)
    if format == "parquet":
        found, fits = _parquet_names(connection, path, columns)
        return (lambda lines: parquet_rows(sql_text(path), found, columns, lines=lines,
                                           bigint=fits), checked_styles)
    try:
        with open(path, "rb") as file:
            compressed = file.read(2) == _GZIP
    except OSError as error:
        raise Unclear from error  # the python reader names the problem
    _scan_bytes(path, compressed)
    lines = ("read_csv({path}, columns = {{'l': 'VARCHAR'}}, header = false, delim = '\\0', "
             "quote = '', escape = '', auto_detect = false, strict_mode = false, "
             "max_line_size = 2097152, compression = {compression}{skip})")
    options = {"path": sql_text(path), "compression": "'gzip'" if compressed else "'none'"}
    if format == "jsonl":
        source = lines.format(skip="", **options)
        return lambda numbered: json_rows(source, columns, lines=numbered), _as_they_are
    first = connection.execute(f"SELECT l FROM {lines.format(skip='', **options)} LIMIT 1")
    header = (first.fetchone() or (None,))[0]
    if header is None or '"' in header or not _printable(connection, header):
        raise Unclear
    names = [name.strip().casefold() for name in header.split(",")]
    if header_problem(names, columns):
        raise Unclear  # the python reader words the error
    extra = [names.index(column) for column in columns]
    source = lines.format(skip=", skip = 1", **options)
    return lambda numbered: csv_rows(source, names, extra, lines=numbered), _as_they_are


def _as_they_are(rows: str) -> str:
    return rows


def _printable(connection: Any, text: str) -> bool:
    found = connection.execute(f"SELECT regexp_full_match(?, '{PRINTABLE}')", [text])
    return bool(found.fetchone()[0])


def _parquet_names(connection: Any, path: str,
                   columns: tuple[str, ...]) -> tuple[dict[str, str], bool]:
    """The file's name of each column SQL reads, when their types are those it checks, and
    whether every count is a ``BIGINT``."""
    try:
        found = parquet_columns(connection, path, path)
    except BadRecordError:
        raise Unclear from None  # the python reader names the file as it is given
    if header_problem(list(found), columns) or "operation" in found:
        raise Unclear
    kinds = {key: found[key][1] for key in ("timestamp", "style", "count")}
    if (kinds["timestamp"] != "TIMESTAMP WITH TIME ZONE" or kinds["style"] != "VARCHAR"
            or kinds["count"] not in _INTEGERS):
        raise Unclear
    return {key: name for key, (name, _) in found.items()}, kinds["count"] in _BIGINTS


def _scan_bytes(path: str, compressed: bool) -> None:
    """Read the file once (in blocks; decompressed when gzip) for what DuckDB reads
    otherwise than Python.

    Raises:
        Unclear: the file holds a ``\\r`` (DuckDB and Python split lines at a lone CR
            differently), or its last line is `LONGEST` bytes or more (``read_csv`` drops a
            last line longer than its buffer, 32 MiB, where Python says "line too long"),
            or it cannot be read (the python reader names the problem).
    """
    opener: Callable[..., Any] = gzip.open if compressed else open
    run = ended = 0  # the bytes of the line being read, and of the last line ended
    try:
        with opener(path, "rb") as file:
            while block := file.read(1 << 20):
                if b"\r" in block:
                    raise Unclear
                end = block.rfind(b"\n")
                if end < 0:
                    run += len(block)
                    continue
                start = block.rfind(b"\n", 0, end)
                ended = run + end if start < 0 else end - start - 1
                run = len(block) - end - 1
    except (OSError, EOFError) as error:
        raise Unclear from error
    if (run or ended) >= LONGEST:
        raise Unclear


def _judged(rows: str, prices: PriceTable | PriceBook) -> str:
    """Each row with its ``reason`` (``NULL``: priced), its price and version: to find the
    lines of the bad ones."""
    first = ""
    if isinstance(prices, PriceBook):
        first = f"WHEN u.us < {_micros(prices.tables[0].effective_from)} THEN 'no-price-table' "
    join = "LEFT " + RANGE_JOIN + "\n AND u.why IS NULL"
    return (f"SELECT u.*, p.version, p.digest, p.cost, coalesce(u.why, CASE {first}"
            "WHEN p.style IS NULL THEN 'unknown-style' WHEN p.cost IS NULL THEN 'unpriced' "
            f"END) AS reason FROM (SELECT *, make_timestamp(us) AS \"timestamp\" "
            f"FROM ({rows})) AS u\n{join}")


_DAY = 86_400_000_000
"""Microseconds in a day."""


def _windows(prices: PriceTable | PriceBook) -> tuple[str, str]:
    """SQL for the index of the version in force at a row's time (-1: before the first),
    and for a time (microseconds) in both the ``day`` and the ``window`` of a sum of rows:
    the later of their starts."""
    if not isinstance(prices, PriceBook):
        return "0", f"day * {_DAY}"
    starts = [_micros(table.effective_from) for table in prices.tables]
    index = " ".join(f"WHEN us < {start} THEN {at - 1}" for at, start in enumerate(starts))
    start = " ".join(f"WHEN {at} THEN {start}" for at, start in enumerate(starts))
    return (f"CASE {index} ELSE {len(starts) - 1} END",
            f"greatest(day * {_DAY}, CASE in_force {start} END)")


def _micros(when: datetime) -> int:
    """Microseconds since 1970 (UTC) at ``when``, exactly (no float)."""
    return (when - _EPOCH) // timedelta(microseconds=1)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _aggregate(rows: str, checked: Callable[[str], str], prices: PriceTable | PriceBook,
               columns: int) -> str:
    """Records, calls and tokens by reason, then (priced rows) by day, version, style and
    the columns grouped by.

    The rows are summed by UTC day, version window, style and columns first (a cost is
    linear in the count), then those sums meet their price by the range join of
    `PRICING_QUERY` (`RANGE_JOIN`), at a time in their day and window (the later of their
    starts): a join of a few rows a day instead of one per record."""
    def kept(expression: str) -> str:
        return f"CASE WHEN why IS NULL THEN {expression} END"

    groups = "".join(f", {kept(f'g{n}')} AS g{n}" for n in range(columns))
    day = kept(f"CASE WHEN us >= 0 THEN us // {_DAY} ELSE -((-us - 1) // {_DAY}) - 1 END")
    window, start = _windows(prices)
    summed = (f"SELECT *, CASE WHEN why IS NULL THEN make_timestamp({start}) END "
              "AS \"timestamp\" "
              f"FROM (SELECT why, {day} AS day, {kept(window)} AS in_force, "
              f"{kept('style')} AS style{groups}, count(*) AS records, sum(count) AS count "
              f"FROM ({rows}) GROUP BY ALL)")
    summed = checked(summed)
    join = "LEFT " + RANGE_JOIN + "\n AND u.why IS NULL AND u.in_force >= 0"
    reason = ("coalesce(u.why, CASE WHEN u.in_force < 0 THEN 'no-price-table' "
              "WHEN p.style IS NULL THEN 'unknown-style' WHEN p.cost IS NULL THEN 'unpriced' "
              "END)")
    values = "".join(f", u.g{n}" for n in range(columns))
    return (f"SELECT {reason} AS reason, DATE '1970-01-01' + CAST(u.day AS INTEGER), "
            f"p.version, p.digest, u.style{values}, u.records, u.count AS calls, "
            f"u.count * p.cost AS tokens FROM ({summed}) AS u\n{join}")


def _run(connection: Any, query: str, on_progress: Callable[[int, int], None] | None,
         path: str) -> list[tuple[Any, ...]]:
    """Run ``query``, showing DuckDB's progress on ``on_progress``."""
    if on_progress is None:
        return list(connection.execute(query).fetchall())
    import os

    size = os.path.getsize(path)
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.2):
            percent = connection.query_progress()
            if percent >= 0:
                on_progress(int(size * min(percent, 100.0) / 100), size)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        return list(connection.execute(query).fetchall())
    finally:
        done.set()
        watcher.join()
        on_progress(size, size)


def _totals(grouped: Sequence[tuple[Any, ...]], lines: dict[str, list[int]],
            by: tuple[str, ...]) -> UsageTotals:
    sums: dict[str, dict[Any, int]] = {name: {} for name in (
        "by_style", "calls_by_style", "by_day", "calls_by_day", "by_version")}
    digests: dict[str, str] = {}
    groups: dict[tuple[str | None, ...], tuple[int, int]] = {}
    skipped: dict[str, int] = {}
    total = calls = records = 0
    for reason, day, version, digest, style, *values, count, called, tokens in grouped:
        if reason is not None:
            skipped[reason] = skipped.get(reason, 0) + count
            continue
        records, calls, total = records + count, calls + called, total + tokens
        _add(sums, (style, day, version), called, tokens)
        digests[version] = digest
        if by:
            group = group_of(by, style, day, values)
            before = groups.get(group, (0, 0))
            groups[group] = (before[0] + called, before[1] + tokens)
    return UsageTotals(total=total, calls=calls, records=records, digests=digests,
                       skipped=skipped, skipped_lines={r: tuple(v) for r, v in lines.items()},
                       by=by, groups=groups, **sums)


def _add(sums: dict[str, dict[Any, int]], keys: tuple[str, date, str], calls: int,
         tokens: int) -> None:
    style, day, version = keys
    for name, key, value in (("by_style", style, tokens), ("calls_by_style", style, calls),
                             ("by_day", day, tokens), ("calls_by_day", day, calls),
                             ("by_version", version, tokens)):
        sums[name][key] = sums[name].get(key, 0) + value
