"""The price book as an interval table, and the documented range join that prices a log in
SQL engines: it must give `price_usage`'s figures (the pure-Python reference)."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb  # a dev dependency: never skipped
import pytest
from hypothesis import given
from hypothesis import strategies as st

import imagine_billing as ib
from imagine_billing.pricing.intervals import (
    COLUMNS,
    PRICING_QUERY,
    price_intervals,
    sql_script,
    write_intervals,
)
from imagine_billing.pricing.loading import bundled_path


def document(version: str, start: str, costs: dict[str, int | None]) -> dict[str, Any]:
    """The bundled document at ``version`` from ``start``, with ``costs`` changed (a style
    set to ``None`` is removed)."""
    doc: dict[str, Any] = json.loads(Path(bundled_path()).read_text(encoding="utf-8"))
    doc["version"], doc["effective_from"] = version, start
    for style, cost in costs.items():
        if cost is None:
            del doc["styles"][style]
        else:
            doc["styles"][style]["cost"] = cost
    return doc


BOOK = ib.PriceBook([
    ib.load_price_table(document("1.0.0", "2025-07-01T00:00:00Z", {"sdxl-1.0": 2})),
    ib.load_price_table(document("1.1.0", "2025-09-01T12:30:00Z",
                                 {"sdxl-1.0": 2, "flux-dev": 12})),
    ib.load_price_table(document("2.0.0", "2026-01-01T00:00:00.250000Z",
                                 {"sdxl-1.0": 3, "flux-dev": 20, "anime": None})),
])
"""Three versions: flux-dev 15 -> 12 -> 20, anime removed in 2.0.0, sdxl-1.0 priced 2 -> 3,
product-shoot unpriced throughout."""


class TestRows:
    def test_one_row_per_style_and_version(self) -> None:
        rows = price_intervals(BOOK)
        assert len(rows) == sum(len(t.styles) for t in BOOK.tables)
        flux = [(r.version, r.cost, r.valid_from, r.valid_to) for r in rows
                if r.style == "flux-dev"]
        starts = [t.effective_from for t in BOOK.tables]
        assert [("1.0.0", 15, starts[0], starts[1]), ("1.1.0", 12, starts[1], starts[2]),
                ("2.0.0", 20, starts[2], None)] == flux
        assert "anime" not in {r.style for r in rows if r.version == "2.0.0"}
        assert all(r.cost is None for r in rows if r.style == "product-shoot")
        assert {t.digest for t in BOOK.tables} == {r.digest for r in rows}

    def test_a_single_table_is_in_force_whatever_the_date(self) -> None:
        """As price_usage prices every record with one table (the attack found the SQL
        pricing nothing before the table's date while price_usage priced it)."""
        table = ib.load_price_table()
        rows = price_intervals(table)
        assert {(None, None)} == {(r.valid_from, r.valid_to) for r in rows}
        old = [("flux-dev", 3, datetime(2020, 1, 1, tzinfo=UTC))]
        for engine in ENGINES.values():
            assert [("flux-dev", 3, 45)] == [
                (s, int(c), int(t)) for s, c, t in engine(sql_script(rows), old)]
        assert 45 == ib.price_usage(old, table).total

    def test_csv_and_json_lines_agree(self) -> None:
        rows = price_intervals(BOOK)
        text, lines = io.StringIO(), io.StringIO()
        write_intervals(rows, "csv", text)
        write_intervals(rows, "jsonl", lines)
        from_csv = list(csv.DictReader(io.StringIO(text.getvalue())))
        from_jsonl = [json.loads(line) for line in lines.getvalue().splitlines()]
        assert list(COLUMNS) == list(from_csv[0])
        assert [{k: "" if v is None else str(v) for k, v in row.items()}
                for row in from_jsonl] == from_csv
        assert [r.to_dict() for r in rows] == from_jsonl

    def test_parquet_reads_back(self, tmp_path: Path) -> None:
        rows = price_intervals(BOOK)
        path = tmp_path / "prices.parquet"
        write_intervals(rows, "parquet", str(path))
        assert b"PAR1" == path.read_bytes()[:4]
        back = duckdb.sql(f"SELECT * FROM read_parquet('{path}') ORDER BY valid_from, style")
        naive = [None if t is None else t.astimezone(UTC).replace(tzinfo=None)
                 for r in rows for t in (r.valid_from, r.valid_to)]
        expected = sorted(((r.api, r.version, r.digest, r.style, r.cost, naive[2 * i],
                            naive[2 * i + 1]) for i, r in enumerate(rows)),
                          key=lambda t: (t[5], t[3]))
        assert expected == back.fetchall()

    def test_csv_read_by_duckdb_in_another_time_zone(self, tmp_path: Path) -> None:
        """Times without a zone are TIMESTAMPs to DuckDB whatever its session's zone (with
        a Z, read_csv made them TIMESTAMPTZ and Tokyo's clock moved the price changes)."""
        path = tmp_path / "prices.csv"
        with open(path, "w", encoding="utf-8", newline="") as text:
            write_intervals(price_intervals(BOOK), "csv", text)
        start = BOOK.tables[2].effective_from
        rows = [("flux-dev", 1, start - timedelta(microseconds=1)), ("flux-dev", 1, start)]
        connection = duckdb.connect()
        connection.execute("SET TimeZone = 'Asia/Tokyo'")
        connection.execute(f"CREATE TABLE imagine_prices AS SELECT * FROM read_csv('{path}')")
        assert ("TIMESTAMP", "TIMESTAMP") == tuple(
            t for name, t, *_ in connection.execute("DESCRIBE imagine_prices").fetchall()
            if name in ("valid_from", "valid_to"))
        connection.execute('CREATE TABLE usage ("timestamp" TIMESTAMP, style VARCHAR, '
                           'count BIGINT)')
        connection.executemany("INSERT INTO usage VALUES (?, ?, ?)",
                               [(_sql_time(t), s, c) for s, c, t in rows])
        assert [("flux-dev", 2, 32)] == connection.execute(PRICING_QUERY).fetchall()

    def test_a_quote_in_a_value_is_escaped(self) -> None:
        """Values are validated (no quotes today), but the SQL text must not depend on it."""
        row = price_intervals(ib.load_price_table())[0]
        import attrs

        script = sql_script([attrs.evolve(row, style="o'brien")])
        connection = sqlite3.connect(":memory:")
        connection.executescript(script)
        assert [("o'brien",)] == connection.execute("SELECT style FROM imagine_prices").fetchall()


PRICED = ("flux-dev", "flux-schnell", "imagine-turbo", "sdxl-1.0", "realistic")
"""Styles priced in every version of BOOK."""

records = st.lists(
    st.tuples(
        st.sampled_from(PRICED),
        st.integers(min_value=1, max_value=10**6),
        st.datetimes(min_value=datetime(2025, 7, 1), max_value=datetime(2026, 6, 30),
                     timezones=st.just(UTC)),
    ),
    max_size=40,
)
"""Usage records from the first version on, of styles every version prices; times include
the boundaries (2026-01-01 00:00:00.25 exactly) often enough, drawn near them below."""

boundaries = st.sampled_from([t.effective_from for t in BOOK.tables[1:]]).flatmap(
    lambda start: st.integers(min_value=-2, max_value=2).map(
        lambda micros: start + timedelta(microseconds=micros)))


def _run_sqlite(script: str, rows: list[tuple[str, int, datetime]]) -> list[tuple[Any, ...]]:
    connection = sqlite3.connect(":memory:")
    connection.executescript(script)
    connection.execute('CREATE TABLE usage ("timestamp" TIMESTAMP, style VARCHAR(64), '
                       'count BIGINT)')
    connection.executemany("INSERT INTO usage VALUES (?, ?, ?)",
                           [(_sql_time(t), s, c) for s, c, t in rows])
    return connection.execute(PRICING_QUERY).fetchall()


def _run_duckdb(script: str, rows: list[tuple[str, int, datetime]]) -> list[tuple[Any, ...]]:
    connection = duckdb.connect()
    connection.execute(script)
    connection.execute('CREATE TABLE usage ("timestamp" TIMESTAMP, style VARCHAR(64), '
                       'count BIGINT)')
    if rows:
        connection.executemany("INSERT INTO usage VALUES (?, ?, ?)",
                               [(t.replace(tzinfo=None), s, c) for s, c, t in rows])
    return connection.execute(PRICING_QUERY).fetchall()


def _sql_time(when: datetime) -> str:
    return when.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")


ENGINES: dict[str, Callable[[str, list[tuple[str, int, datetime]]], list[tuple[Any, ...]]]] = {
    "sqlite": _run_sqlite,
    "duckdb": _run_duckdb,
}


class TestThePricingQuery:
    """The documented range join gives price_usage's totals, in each engine."""

    @pytest.mark.parametrize("engine", sorted(ENGINES))
    @given(records, st.lists(st.tuples(st.sampled_from(PRICED), st.just(1), boundaries),
                             max_size=6))
    def test_same_totals_as_price_usage(
        self, engine: str, some: list[tuple[str, int, datetime]],
        near_boundaries: list[tuple[str, int, datetime]],
    ) -> None:
        rows = some + near_boundaries
        reference = ib.price_usage(rows, BOOK)
        got = ENGINES[engine](sql_script(price_intervals(BOOK)), rows)
        assert [(style, reference.calls_by_style[style], tokens)
                for style, tokens in sorted(reference.by_style.items())] == [
            (style, int(calls), int(tokens)) for style, calls, tokens in got]
        assert reference.total == sum(int(tokens) for _, _, tokens in got)

    def test_a_change_of_price_at_its_microsecond(self) -> None:
        """A call at the exact start of a version is priced by it, one microsecond before by
        the previous one."""
        start = BOOK.tables[2].effective_from
        rows = [("flux-dev", 1, start - timedelta(microseconds=1)), ("flux-dev", 1, start)]
        for engine in ENGINES.values():
            assert [("flux-dev", 2, 12 + 20)] == [
                (s, int(c), int(t)) for s, c, t in engine(sql_script(price_intervals(BOOK)),
                                                          rows)]


def test_the_readme_shows_the_query_the_tests_run() -> None:
    """The README's query is PRICING_QUERY, word for word: the one the tests run."""
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    assert PRICING_QUERY in readme


class TestInPostgres:
    """The exported SQL and the documented query in PostgreSQL (a real server): the same
    totals as price_usage, each example in a schema of its own."""

    @staticmethod
    def run(url: str, script: str, rows: list[tuple[str, int, datetime]]) -> list[Any]:
        import uuid

        import psycopg

        schema = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute(f"CREATE SCHEMA {schema}")
            try:
                connection.execute(f"SET search_path TO {schema}")
                connection.execute(script)
                connection.execute('CREATE TABLE usage ("timestamp" TIMESTAMP, style '
                                   'VARCHAR(64), count BIGINT)')
                with connection.cursor() as cursor:
                    cursor.executemany("INSERT INTO usage VALUES (%s, %s, %s)",
                                       [(t.astimezone(UTC).replace(tzinfo=None), s, c)
                                        for s, c, t in rows])
                return connection.execute(PRICING_QUERY).fetchall()
            finally:
                connection.execute(f"DROP SCHEMA {schema} CASCADE")

    @given(records, st.lists(st.tuples(st.sampled_from(PRICED), st.just(1), boundaries),
                             max_size=6))
    def test_same_totals_as_price_usage(self, pg_url: str,
                                        some: list[tuple[str, int, datetime]],
                                        near_boundaries: list[tuple[str, int, datetime]]) -> None:
        rows = some + near_boundaries
        reference = ib.price_usage(rows, BOOK)
        got = self.run(pg_url, sql_script(price_intervals(BOOK)), rows)
        assert [(style, reference.calls_by_style[style], tokens)
                for style, tokens in sorted(reference.by_style.items())] == [
            (style, int(calls), int(tokens)) for style, calls, tokens in got]

    def test_a_version_longer_than_255(self, pg_url: str) -> None:
        """A version of 300 characters (its numbers have no bound) fits the exported table
        in PostgreSQL, which enforces VARCHAR lengths."""
        version = "1.0." + "9" * 296
        table = ib.load_price_table().with_overrides({}, version=version)
        rows = [("flux-dev", 1, datetime(2025, 8, 1, tzinfo=UTC))]
        assert [("flux-dev", 1, 15)] == [
            (style, int(calls), int(tokens))
            for style, calls, tokens in self.run(pg_url, sql_script(price_intervals(table)),
                                                 rows)]

    def test_one_table_prices_any_date(self, pg_url: str) -> None:
        table = ib.load_price_table()
        old = [("flux-dev", 3, datetime(2020, 1, 1, tzinfo=UTC))]
        assert [("flux-dev", 3, 45)] == [
            (s, int(c), int(t)) for s, c, t in self.run(pg_url, sql_script(
                price_intervals(table)), old)]
