"""price-log's two engines over random logs: the duckdb engine gives what the python engine
(the reference) gives, totals, skipped counts and errors alike."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

import imagine_billing as ib
from imagine_billing.usage import price_logs
from imagine_billing.usage._duckdb_engine import price_in_duckdb
from tests.helpers import write_book
from tests.strategies import usage_logs

GROUPS = (["style", "day"], ["project", "month"], [])


def outcome(paths: list[str], prices: ib.PriceTable | ib.PriceBook, engine: str,
            skip_bad: bool, by: list[str]) -> Any:
    """What ``price-log`` makes of ``paths``: each file's totals document (skipped lines
    included), or the error's reason, message and line."""
    try:
        results = price_logs(paths, prices, engine=engine, skip_bad=skip_bad, by=by)
    except ib.BadRecordError as error:
        return ("error", error.reason, error.line, str(error))
    return [(name, totals.to_dict()) for name, totals in results]


def book_or_table(folder: str, book: bool) -> ib.PriceTable | ib.PriceBook:
    if book:
        return ib.load_price_book(*write_book(Path(folder)))
    return ib.load_price_table()


class TestSameOutcome:
    """For every log, good and bad lines, CSV or JSON lines, gzipped or not, one or two
    files, with or without skip_bad, grouped or not, with one table or a book: the duckdb
    engine's outcome == the python engine's."""

    @given(logs=st.lists(usage_logs(), min_size=1, max_size=2), skip_bad=st.booleans(),
           by=st.sampled_from(GROUPS), book=st.booleans())
    def test_same_outcome(self, logs: list[tuple[str, bytes]], skip_bad: bool,
                          by: list[str], book: bool) -> None:
        """The duckdb engine's totals, skipped counts and lines, or error, are the python
        engine's."""
        with tempfile.TemporaryDirectory() as folder:
            paths = []
            for number, (suffix, data) in enumerate(logs):
                path = Path(folder) / f"log{number}{suffix}"
                path.write_bytes(data)
                paths.append(str(path))
            prices = book_or_table(folder, book)
            expected = outcome(paths, prices, "python", skip_bad, by)
            assert expected == outcome(paths, prices, "duckdb", skip_bad, by)


class TestSqlChecksItself:
    """For every log of lines SQL checks itself (printable ASCII, no quote, no carriage
    return), skipping bad lines: DuckDB prices it (no hand-over to the python reader) and
    its totals and skipped lines are the python engine's."""

    @given(log=usage_logs(odd=False), by=st.sampled_from(GROUPS), book=st.booleans())
    def test_priced_in_duckdb(self, log: tuple[str, bytes], by: list[str],
                              book: bool) -> None:
        """price_in_duckdb prices the log and agrees with price_usage."""
        suffix, data = log
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / f"log{suffix}"
            path.write_bytes(data)
            prices = book_or_table(folder, book)
            [(_, expected)] = price_logs([str(path)], prices, skip_bad=True, by=by)
            actual = price_in_duckdb(str(path), prices, skip_bad=True, by=tuple(by),
                                     format=None)
        assert expected.to_dict() == actual.to_dict()
