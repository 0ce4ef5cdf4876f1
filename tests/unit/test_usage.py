"""Usage logs: price_usage, UsageTotals and the CSV / JSON-lines readers."""

from __future__ import annotations

import json
import subprocess
import sys
import tracemalloc
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

import imagine_billing as ib
from imagine_billing._checks import rfc3339
from imagine_billing.usage import Record

USAGE = Path(__file__).parents[1] / "data" / "usage"
T0 = datetime(2025, 8, 1, 9, 0, tzinfo=UTC)
DAY1, DAY2 = date(2025, 8, 1), date(2025, 8, 2)
GOOD_ROW = {"timestamp": "2025-08-01T09:00:00Z", "style": "anime", "count": 1}
LONG = "x" * 60_000
"""A value that fits in a line (under 64 Ki characters) but not in a message."""

# Hand-computed for tests/data/usage/example.*: flux-dev 4 x 15 = 60 and anime 1 x 5 = 5 on
# 1 August; imagine-turbo 10 x 1 = 10 at 23:30 -02:00, which is 01:30 on 2 August in UTC,
# and realistic 2 x 5 = 10 on 2 August.
EXAMPLE_BY_STYLE = {"flux-dev": 60, "anime": 5, "imagine-turbo": 10, "realistic": 10}
EXAMPLE_BY_DAY = {DAY1: 65, DAY2: 20}


def book_of_two() -> ib.PriceBook:
    """The bundled table and a 1.1.0 that raises flux-dev to 20 from 2025-08-01T12:00Z."""
    first = ib.load_price_table()
    second = first.with_overrides(
        {"effective_from": "2025-08-01T12:00:00Z", "styles": {"flux-dev": {"cost": 20}}},
        version="1.1.0",
    )
    return ib.PriceBook([first, second])


class TestPriceUsage:
    """price_usage over in-memory records."""

    def test_published_example(self, table: ib.PriceTable) -> None:
        """4 x flux-dev + 1 x anime = 65."""
        totals = ib.price_usage([("flux-dev", 4, T0), ("anime", 1, T0)], table)
        assert (65, 5, 2) == (totals.total, totals.calls, totals.records)
        assert {"flux-dev": 60, "anime": 5} == totals.by_style
        assert {"flux-dev": 4, "anime": 1} == totals.calls_by_style
        assert {DAY1: 65} == totals.by_day
        assert {"1.0.0": 65} == totals.by_version
        assert {"1.0.0": table.digest} == totals.digests
        assert {} == totals.skipped

    def test_days_are_utc(self, table: ib.PriceTable) -> None:
        """23:30 at -02:00 is the next day in UTC; +02:00 at 01:00 is the day before."""
        records: list[Record] = [
            ("anime", 1, datetime(2025, 8, 1, 23, 30, tzinfo=timezone(timedelta(hours=-2)))),
            ("anime", 2, datetime(2025, 8, 2, 1, 0, tzinfo=timezone(timedelta(hours=2)))),
            ("anime", 3, datetime(2025, 8, 2, 0, 0, tzinfo=UTC)),
        ]
        totals = ib.price_usage(records, table)
        assert {DAY1: 10, DAY2: 20} == totals.by_day
        assert {DAY1: 2, DAY2: 4} == totals.calls_by_day

    def test_each_record_priced_by_the_table_in_force(self) -> None:
        """flux-dev is 15 before 12:00 on 1 August and 20 from then, in the same day."""
        book = book_of_two()
        records: list[Record] = [
            ("flux-dev", 1, datetime(2025, 8, 1, 11, 59, 59, tzinfo=UTC)),
            ("flux-dev", 1, datetime(2025, 8, 1, 12, 0, tzinfo=UTC)),
            ("flux-dev", 2, datetime(2025, 8, 2, tzinfo=UTC)),
            ("flux-dev", 1, datetime(2025, 7, 15, tzinfo=UTC)),  # out of order
        ]
        totals = ib.price_usage(records, book)
        assert 15 + 20 + 40 + 15 == totals.total
        assert {"1.0.0": 30, "1.1.0": 60} == totals.by_version
        assert {DAY1: 35, DAY2: 40, date(2025, 7, 15): 15} == totals.by_day
        assert {t.version: t.digest for t in book.tables} == totals.digests

    def test_operations_and_default_styles(self, table: ib.PriceTable) -> None:
        """(operation, None) uses the default style, or the flat price under operation:ID."""
        custom = table.with_overrides({"operations": {"upscale": {"cost": 3}}}, version="1.0.1")
        records: list[Record] = [(("text-to-image", None), 2, T0), (("upscale", None), 1, T0),
                                 (("text-to-image", "flux-dev"), 1, T0)]
        totals = ib.price_usage(records, custom)
        assert {"imagine-turbo": 2, "operation:upscale": 3, "flux-dev": 15} == totals.by_style

    def test_generator_of_any_length(self, table: ib.PriceTable) -> None:
        """Records may come from a generator; one a minute for 10 000 minutes adds up."""
        records = (("imagine-turbo", 2, T0 + timedelta(minutes=i)) for i in range(10_000))
        totals = ib.price_usage(records, table)
        assert (20_000, 10_000) == (totals.total, totals.records)
        # From 09:00 on 1 August: 900 minutes that day, 6 whole days of 1440, 460 on the 8th.
        expected = {DAY1: 1800, **{date(2025, 8, d): 2880 for d in range(2, 8)},
                    date(2025, 8, 8): 920}
        assert expected == totals.by_day

    def test_default_book_is_bundled(self) -> None:
        """Without a book the bundled table prices."""
        assert 15 == ib.price_usage([("flux-dev", 1, T0)]).total

    def test_not_a_book(self) -> None:
        """The book must be a PriceBook or a PriceTable."""
        with pytest.raises(TypeError, match="PriceBook or a PriceTable"):
            ib.price_usage([], "book")  # type: ignore[arg-type]

    @pytest.mark.parametrize(
        ("record", "reason", "message"),
        [
            (("anime", 0, T0), "bad-count", "count must be an int >= 1 (got 0)"),
            (("anime", -1, T0), "bad-count", "(got -1)"),
            (("anime", 1.0, T0), "bad-count", "(got 1.0)"),
            (("anime", True, T0), "bad-count", "(got True)"),
            (("anime", 2**53, T0), "bad-count",
             "count must be at most 2**53-1 = 9007199254740991 (got 9007199254740992)"),
            (("anime", 1, datetime(2025, 8, 1)), "bad-timestamp", "timezone-aware (got naive"),
            (("anime", 1, "2025-08-01T00:00:00Z"), "bad-timestamp", "timezone-aware"),
            (("anime", 1, None), "bad-timestamp", "timezone-aware"),
            (("flux-dv", 1, T0), "unknown-style", "did you mean 'flux-dev'"),
            (("sdxl-1.0", 1, T0), "unpriced", '"sdxl-1.0": {"cost": N}'),
            ((("upscale", None), 1, T0), "unpriced", "operation 'upscale'"),
            ((("upscal", None), 1, T0), "unknown-operation", "did you mean 'upscale'"),
            ((("text-to-image", "product-shoot"), 1, T0), "unknown-style",
             "belongs to operation 'ai-background'"),
            ((["anime"], 1, T0), "bad-style", "style must be a string"),
            ((5, 1, T0), "bad-style", "style must be a string"),
            (("anime", 1, datetime(2025, 6, 30, tzinfo=UTC)), "no-price-table",
             "first takes effect at 2025-07-01T00:00:00Z"),
            (("anime", 1), "bad-record", "(style, count, timestamp)"),
            ("anime", "bad-record", "(style, count, timestamp)"),
            (None, "bad-record", "(style, count, timestamp)"),
        ],
    )
    def test_bad_records(self, table: ib.PriceTable, record: Any, reason: str,
                         message: str) -> None:
        """A bad record raises BadRecordError with its number; skip_bad counts it instead.
        (A record before the first version is bad only for a book: one table prices any
        date, see TestDates.)"""
        prices = ib.PriceBook([table]) if reason == "no-price-table" else table
        records = [("anime", 1, T0), record, ("anime", 2, T0)]
        with pytest.raises(ib.BadRecordError) as caught:
            ib.price_usage(records, prices)
        assert ("<records>", 2, reason) == (caught.value.source, caught.value.line,
                                            caught.value.reason)
        assert message in str(caught.value)
        totals = ib.price_usage(records, prices, skip_bad=True)
        assert (15, 2, {reason: 1}) == (totals.total, totals.records, totals.skipped)

    def test_bad_style_skipped_every_time(self, table: ib.PriceTable) -> None:
        """Every record of a bad style is counted, not only the first."""
        records: list[Record] = [("nope", 1, T0), ("anime", 1, T0), ("nope", 2, T0),
                                 ("nope", 1, T0 + timedelta(days=1))]
        totals = ib.price_usage(records, table, skip_bad=True)
        assert (5, 1, {"unknown-style": 3}) == (totals.total, totals.records, totals.skipped)

    def test_skipping_distinct_bad_styles_takes_no_memory_each(
            self, table: ib.PriceTable) -> None:
        """Skipping 100 000 records of as many unknown styles keeps a small, flat peak."""
        import tracemalloc

        records = ((f"no-such-style-{i}", 1, T0) for i in range(100_000))
        tracemalloc.start()
        try:
            totals = ib.price_usage(records, table, skip_bad=True)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert {"unknown-style": 100_000} == totals.skipped
        assert peak < 4 * 1024 * 1024, f"peak {peak} bytes"

    def test_long_style_quoted_short(self, table: ib.PriceTable) -> None:
        """An unknown style of a million characters is named in a message of one short line."""
        with pytest.raises(ib.BadRecordError) as caught:
            ib.price_usage([("x" * 1_000_000, 1, T0)], table)
        assert "unknown-style" == caught.value.reason
        assert str(caught.value).startswith('<records>:1: unknown style "xxxxxxxx')
        assert len(str(caught.value)) < 300

    def test_style_unknown_in_one_version_only(self) -> None:
        """A style added by a later version is unknown before it takes effect."""
        first = ib.load_price_table()
        second = first.with_overrides(
            {"effective_from": "2025-09-01T00:00:00Z",
             "styles": {"new-style": {"name": "New", "cost": 7}}}, version="1.1.0")
        book = ib.PriceBook([first, second])
        assert 7 == ib.price_usage([("new-style", 1, datetime(2025, 9, 2, tzinfo=UTC))],
                                   book).total
        with pytest.raises(ib.BadRecordError, match="unknown style 'new-style'"):
            ib.price_usage([("new-style", 1, datetime(2025, 8, 2, tzinfo=UTC))], book)


class TestDates:
    """One table prices every record whatever its date; a book prices each from its
    version's effective_from and refuses a record before the first (issue 14 item 3: a log
    from before the bundled table's date failed, and --skip-bad dropped that spend)."""

    def test_one_table_prices_any_date(self) -> None:
        table = ib.load_price_table()
        before = table.effective_from - timedelta(days=400)
        records: list[Record] = [("flux-dev", 2, before), ("anime", 1, T0)]
        totals = ib.price_usage(records, table)
        assert (35, {}) == (totals.total, totals.skipped)
        assert 30 == totals.by_day[before.date()]
        assert totals == ib.price_usage(records)  # the bundled table, the same rule

    def test_a_book_refuses_a_record_before_its_first_version(self) -> None:
        table = ib.load_price_table()
        before = table.effective_from - timedelta(microseconds=1)
        with pytest.raises(ib.BadRecordError) as caught:
            ib.price_usage([("anime", 1, T0), ("anime", 1, before)], ib.PriceBook([table]))
        assert ("no-price-table", 2) == (caught.value.reason, caught.value.line)
        assert "first takes effect at 2025-07-01T00:00:00Z" in str(caught.value)


class TestSkippedLines:
    """With skip_bad, the first lines skipped are kept by reason (issue 14 item 4), from the
    reader's checks and the pricer's alike."""

    def test_first_lines_by_reason(self, tmp_path: Path, table: ib.PriceTable) -> None:
        from imagine_billing.usage._pricing import FIRST_LINES

        rows = ["2025-08-01T09:00:00Z,anime,1"]
        rows += [f"2025-08-01T09:00:00Z,nope-{i},1" for i in range(FIRST_LINES + 2)]
        rows += ["2025-08-01T09:00:00Z,anime,x", "2025-08-01T09:00:00Z,sdxl-1.0,1"]
        path = tmp_path / "log.csv"
        path.write_text("\n".join(["timestamp,style,count", *rows]) + "\n", encoding="utf-8")
        totals = ib.price_usage(ib.read_usage(path, skip_bad=True), table)
        unknown = tuple(range(3, 3 + FIRST_LINES))
        bad_count, unpriced = 3 + FIRST_LINES + 2, 3 + FIRST_LINES + 3
        assert {"unknown-style": FIRST_LINES + 2, "bad-count": 1, "unpriced": 1} == dict(
            totals.skipped)
        assert {"unknown-style": unknown, "bad-count": (bad_count,),
                "unpriced": (unpriced,)} == dict(totals.skipped_lines)

    def test_records_are_named_by_number(self, table: ib.PriceTable) -> None:
        records: list[Any] = [("anime", 1, T0), ("nope", 1, T0), ("anime", 0, T0)]
        totals = ib.price_usage(records, table, skip_bad=True)
        assert {"unknown-style": (2,), "bad-count": (3,)} == dict(totals.skipped_lines)

    def test_sums_keep_the_first(self, table: ib.PriceTable) -> None:
        bad: list[Any] = [("nope", 1, T0)] * 4
        a = ib.price_usage(bad, table, skip_bad=True)
        assert (1, 2, 3, 4) == (a + a).skipped_lines["unknown-style"]
        assert 8 == (a + a).skipped["unknown-style"]


class TestCompressedAndStdin:
    """gzip logs by content, whatever their name, and "-" for standard input (issue 14
    item 2)."""

    @pytest.mark.parametrize(("source", "name"), [
        ("example.csv", "log.csv.gz"), ("example.jsonl", "log.jsonl.gz"),
        ("example.jsonl", "log.csv.gz"), ("example.csv", "log.txt"),
    ])
    def test_gzip_gives_the_same_figures(self, tmp_path: Path, table: ib.PriceTable,
                                         source: str, name: str) -> None:
        import gzip

        path = tmp_path / name
        path.write_bytes(gzip.compress((USAGE / source).read_bytes()))
        totals = ib.price_usage(ib.read_usage(path), table)
        assert totals == ib.price_usage(ib.read_usage(USAGE / source), table)
        assert (85, EXAMPLE_BY_STYLE) == (totals.total, totals.by_style)

    def test_a_cut_gzip_file_is_unreadable(self, tmp_path: Path,
                                           table: ib.PriceTable) -> None:
        import gzip

        whole = gzip.compress((USAGE / "example.csv").read_bytes() * 50)
        path = tmp_path / "log.csv.gz"
        path.write_bytes(whole[: len(whole) // 2])
        with pytest.raises(ib.BadRecordError) as caught:
            ib.price_usage(ib.read_usage(path, skip_bad=True), table)
        assert "unreadable" == caught.value.reason
        assert "not a whole gzip file" in str(caught.value)

    @pytest.mark.parametrize("compress", [False, True])
    def test_standard_input(self, compress: bool) -> None:
        """A real pipe into a real process: price-log - reads it once, as it comes."""
        import gzip
        import subprocess
        import sys

        data = (USAGE / "example.jsonl").read_bytes()
        result = subprocess.run(
            [sys.executable, "-m", "imagine_billing", "price-log", "-", "--json"],
            input=gzip.compress(data) if compress else data, capture_output=True,
            check=False)
        assert 0 == result.returncode, result.stderr
        assert 85 == json.loads(result.stdout)["total"]


class TestPipes:
    """Logs from a real pipe (attack findings): read once, as they come, never rewound."""

    @staticmethod
    def through_pipe(writer: str, *args: str) -> subprocess.CompletedProcess[str]:
        """``python -c WRITER | python -m imagine_billing price-log - ARGS...``."""
        source = subprocess.Popen([sys.executable, "-c", writer], stdout=subprocess.PIPE)
        try:
            return subprocess.run(
                [sys.executable, "-m", "imagine_billing", "price-log", "-", *args],
                stdin=source.stdout, capture_output=True, text=True, check=False, timeout=120)
        finally:
            assert source.stdout is not None
            source.stdout.close()
            source.wait(timeout=60)

    def test_gzip_with_a_bad_byte(self) -> None:
        """Skipping a line that is not UTF-8 re-reads nothing: a pipe cannot be rewound
        (it was an internal error, exit 3, for a gzipped pipe)."""
        writer = ("import gzip, sys; sys.stdout.buffer.write(gzip.compress("
                  "b'timestamp,style,count\\n2025-08-01T00:00:00Z,flux-dev,1\\n"
                  "2025-08-01T00:00:00Z,fl\\xffux,1\\n'))")
        skipped = self.through_pipe(writer, "--skip-bad", "--json")
        assert 0 == skipped.returncode, skipped.stderr
        assert {"bad-encoding": [3]} == json.loads(skipped.stdout)["skipped_lines"]
        refused = self.through_pipe(writer)
        assert 2 == refused.returncode
        assert refused.stderr.startswith("imagine-billing: error: -:3: not UTF-8 text")

    def test_progress_on_a_pipe(self) -> None:
        """A pipe has no position: progress is not asked of it (it was OSError: Illegal
        seek after 16,384 lines)."""
        writer = ("import sys; print('timestamp,style,count'); "
                  "[print('2025-08-01T00:00:00Z,flux-dev,1') for _ in range(20000)]")
        code = ("import imagine_billing as ib; from imagine_billing.usage import read_usage; "
                "print(ib.price_usage(read_usage('-', on_progress=lambda d, s: None)).total)")
        source = subprocess.Popen([sys.executable, "-c", writer], stdout=subprocess.PIPE)
        try:
            result = subprocess.run([sys.executable, "-c", code], stdin=source.stdout,
                                    capture_output=True, text=True, check=False, timeout=120)
        finally:
            assert source.stdout is not None
            source.stdout.close()
            source.wait(timeout=60)
        assert (0, "300000") == (result.returncode, result.stdout.strip()), result.stderr

    @pytest.mark.parametrize("first", [1, 10])
    def test_a_slow_writer(self, first: int) -> None:
        """The first read of a pipe may bring one byte: the format and gzip are guessed from
        the first 1 KiB, waited for (it was "not CSV" or "not UTF-8")."""
        writer = ("import gzip, sys, time; "
                  f"data = gzip.compress(open({str(USAGE / 'example.jsonl')!r}, 'rb').read()); "
                  f"out = sys.stdout.buffer; out.write(data[:{first}]); out.flush(); "
                  f"time.sleep(0.3); out.write(data[{first}:])")
        result = self.through_pipe(writer, "--json")
        assert 0 == result.returncode, result.stderr
        assert 85 == json.loads(result.stdout)["total"]


class TestUsageTotals:
    """UsageTotals: adding, and the JSON document."""

    def test_add(self, table: ib.PriceTable) -> None:
        """Totals of two parts add up to the totals of the whole."""
        first = ib.price_usage([("flux-dev", 4, T0)], table)
        second = ib.price_usage([("anime", 1, T0), ("anime", 1, T0 + timedelta(days=1))], table)
        both = first + second
        assert (70, 6, 3) == (both.total, both.calls, both.records)
        assert {"flux-dev": 60, "anime": 10} == both.by_style
        assert {DAY1: 65, DAY2: 5} == both.by_day

    def test_empty(self) -> None:
        """The empty totals are zero, and the identity of +."""
        empty = ib.UsageTotals()
        assert (0, 0, 0, {}) == (empty.total, empty.calls, empty.records, empty.by_style)
        assert empty == empty + empty

    def test_add_other_type(self) -> None:
        """Adding something else is a TypeError."""
        with pytest.raises(TypeError):
            ib.UsageTotals() + 1  # type: ignore[operator]

    def test_mappings_are_read_only(self, table: ib.PriceTable) -> None:
        """The totals cannot be changed."""
        totals = ib.price_usage([("anime", 1, T0)], table)
        with pytest.raises(TypeError):
            totals.by_style["anime"] = 0  # type: ignore[index]

    def test_to_dict(self, table: ib.PriceTable) -> None:
        """The JSON document: totals, by style, by day, tables with digests, skipped."""
        totals = ib.price_usage([("flux-dev", 4, T0), ("anime", 1, T0)], table)
        expected = {
            "total": 65, "unit": "token", "calls": 5, "records": 2,
            "by_style": {"anime": {"calls": 1, "tokens": 5},
                         "flux-dev": {"calls": 4, "tokens": 60}},
            "by_day": {"2025-08-01": {"calls": 5, "tokens": 65}},
            "tables": {"1.0.0": {"tokens": 65, "digest": table.digest}},
            "skipped": {},
            "skipped_lines": {},
        }
        assert expected == totals.to_dict()
        assert list(expected["by_style"]) == list(totals.to_dict()["by_style"])


class TestReadUsage:
    """read_usage: CSV and JSON lines, lazily, with errors naming file and line."""

    @pytest.mark.parametrize("name", ["example.csv", "example.jsonl"])
    def test_examples(self, table: ib.PriceTable, name: str) -> None:
        """Both example files give the hand-computed totals."""
        totals = ib.price_usage(ib.read_usage(USAGE / name), table)
        assert (85, 17, 4) == (totals.total, totals.calls, totals.records)
        assert EXAMPLE_BY_STYLE == totals.by_style
        assert EXAMPLE_BY_DAY == totals.by_day

    def test_records(self) -> None:
        """The reader yields (style, count, aware timestamp) and tracks the line."""
        log = ib.read_usage(USAGE / "example.jsonl")
        records = list(log)
        assert ("flux-dev", 4, T0) == records[0]
        assert (("text-to-image", "realistic"), 2, datetime(2025, 8, 2, 8, tzinfo=UTC)) \
            == records[3]
        assert 5 == log.line  # a blank line comes before the last record

    def test_bad_csv_stops_at_the_first_bad_line(self, table: ib.PriceTable) -> None:
        """Line 3 of bad.csv has count 0: the error names the file and line 3."""
        path = USAGE / "bad.csv"
        with pytest.raises(ib.BadRecordError) as caught:
            ib.price_usage(ib.read_usage(path), table)
        assert (str(path), 3, "bad-count") == (caught.value.source, caught.value.line,
                                               caught.value.reason)
        assert str(caught.value).startswith(f"{path}:3: ")

    def test_bad_csv_skipped_by_reason(self, table: ib.PriceTable) -> None:
        """With skip_bad, the 8 bad lines of bad.csv are counted by reason."""
        totals = ib.price_usage(ib.read_usage(USAGE / "bad.csv", skip_bad=True), table)
        assert (65, 2) == (totals.total, totals.records)
        expected = {"bad-count": 2, "unknown-style": 1, "bad-timestamp": 1, "unpriced": 2,
                    "missing-field": 2}
        assert expected == totals.skipped

    @pytest.mark.parametrize(
        ("rows", "line", "reason"),
        [
            (["2025-08-01T09:00:00Z,flux-dv,1"], 2, "unknown-style"),
            (["2025-08-01T09:00:00Z,anime,1", "2025-08-01T09:00:00Z,sdxl-1.0,1"], 3, "unpriced"),
            (["2025-08-01T09:00:00Z,anime,-1"], 2, "bad-count"),
            (["2025-08-01T09:00:00Z,anime,01"], 2, "bad-count"),
            (["2025-08-01T09:00:00Z,anime,"], 2, "bad-count"),
            (["2025-08-01T09:00:00Z,anime,true"], 2, "bad-count"),
            (["2025-08-01,anime,1"], 2, "bad-timestamp"),
            (["yesterday,anime,1"], 2, "bad-timestamp"),
            (["2025-08-01T09:00:00Z,anime,1,extra"], 2, "extra-field"),
            (["", "", "2025-08-01T09:00:00Z,anime"], 4, "missing-field"),
            (["2020-08-01T09:00:00Z,anime,1"], 2, "no-price-table"),
        ],
    )
    def test_bad_csv_lines(self, tmp_path: Path, table: ib.PriceTable, rows: list[str],
                           line: int, reason: str) -> None:
        """Each kind of bad line names its line and reason."""
        path = tmp_path / "log.csv"
        path.write_text("\n".join(["timestamp,style,count", *rows]) + "\n", encoding="utf-8")
        prices = ib.PriceBook([table]) if reason == "no-price-table" else table
        with pytest.raises(ib.BadRecordError) as caught:
            ib.price_usage(ib.read_usage(path), prices)
        assert (line, reason) == (caught.value.line, caught.value.reason)

    @pytest.mark.parametrize(
        ("header", "message"),
        [("timestamp,style", 'no "count" column'),
         ("Timestamp,STYLE,count,style", 'column "style" appears twice'),
         ("timestamp,style,count,style", 'column "style" appears twice'),
         ("", "empty file"),
         ('timestamp,"style,count', "header: not CSV this reader reads: unexpected end"),
         ("timestamp,style,count," + "x" * 70_000, "header: line too long")],
    )
    def test_bad_headers(self, tmp_path: Path, header: str, message: str) -> None:
        """A bad header is an error even with skip_bad: there is nothing to read."""
        path = tmp_path / "log.csv"
        path.write_text(header + ("\n" if header else ""), encoding="utf-8")
        with pytest.raises(ib.BadRecordError, match=message) as caught:
            list(ib.read_usage(path, skip_bad=True))
        assert (1, "bad-header") == (caught.value.line, caught.value.reason)

    def test_columns_in_any_order_with_bom_and_quotes(self, tmp_path: Path,
                                                      table: ib.PriceTable) -> None:
        """Columns may come in any order; a BOM and quoted fields are fine."""
        path = tmp_path / "log.csv"
        path.write_bytes(b'\xef\xbb\xbfcount,operation,"style",timestamp\r\n'
                         b'4,,"flux-dev",2025-08-01T09:00:00Z\r\n'
                         b'2,text-to-image,,2025-08-01T09:00:00+00:00\r\n')
        totals = ib.price_usage(ib.read_usage(path), table)
        assert {"flux-dev": 60, "imagine-turbo": 2} == totals.by_style

    @pytest.mark.parametrize(
        ("row", "reason", "message"),
        [
            ('{"timestamp": "2025-08-01T09:00:00Z", "style": "anime", "count": true}',
             "bad-count", "(got true)"),
            ('{"timestamp": "2025-08-01T09:00:00Z", "style": "anime", "count": 2.0}',
             "bad-count", "(got 2.0)"),
            ('{"timestamp": "2025-08-01T09:00:00Z", "style": "anime", "count": "2"}',
             "bad-count", '(got "2")'),
            ('{"timestamp": "2025-08-01T09:00:00", "style": "anime", "count": 1}',
             "bad-timestamp", "no time zone"),
            ('{"timestamp": 1754038800, "style": "anime", "count": 1}',
             "bad-timestamp", "not an RFC 3339 timestamp"),
            ('{"timestamp": "soon", "style": "anime", "count": 1}',
             "bad-timestamp", "not an RFC 3339 timestamp"),
            ('{"style": "anime", "count": 1}', "missing-field", '"timestamp"'),
            ('{"timestamp": "2025-08-01T09:00:00Z", "count": 1}', "missing-field", '"style"'),
            ('{"timestamp": "2025-08-01T09:00:00Z", "style": "anime"}',
             "missing-field", '"count"'),
            ('{"timestamp": "2025-08-01T09:00:00Z", "style": "anime", "count": 1, "Count": 9}',
             "duplicate-key", 'duplicate key "Count"'),
            ('{"timestamp": "2025-08-01T09:00:00Z", "style": 3, "count": 1}',
             "bad-style", "must be strings"),
            ('{"timestamp": "2025-08-01T09:00:00Z", "style": "", "count": 1}',
             "missing-field", "style is empty"),
            ('["2025-08-01T09:00:00Z", "anime", 1]', "bad-record", "expected an object"),
            ('{"timestamp": ', "bad-json", "not JSON"),
            ('{"timestamp": "2025-08-01T09:00:00Z", "style": "anime", "count": ' + "9" * 5000
             + "}", "bad-json", "not JSON this reader reads: Exceeds the limit (4300 digits)"),
            ('{"timestamp": "2025-08-01T09:00:00Z", "style": "anme", "count": 1}',
             "unknown-style", "did you mean 'anime'"),
            ('{"timestamp": "2025-08-01T09:00:00Z", "style": "anime", "count": 1, "count": 1000}',
             "duplicate-key", 'duplicate key "count": a JSON parser keeps only its last value'),
            ('{"timestamp": "2025-08-01T09:00:00Z", "style": "flux-dev", "style": "anime", '
             '"count": 1}', "duplicate-key", 'duplicate key "style"'),
        ],
    )
    def test_bad_json_lines(self, tmp_path: Path, table: ib.PriceTable, row: str, reason: str,
                            message: str) -> None:
        """Each kind of bad JSON line names its line and reason; skip_bad counts it."""
        good = json.dumps({"timestamp": "2025-08-01T09:00:00Z", "style": "anime", "count": 1})
        path = tmp_path / "log.jsonl"
        path.write_text(f"{good}\n{row}\n{good}\n", encoding="utf-8")
        with pytest.raises(ib.BadRecordError) as caught:
            ib.price_usage(ib.read_usage(path), table)
        assert (2, reason) == (caught.value.line, caught.value.reason)
        assert message in str(caught.value)
        totals = ib.price_usage(ib.read_usage(path, skip_bad=True), table)
        assert (10, {reason: 1}) == (totals.total, totals.skipped)

    def test_malformed_csv(self, tmp_path: Path, table: ib.PriceTable) -> None:
        """CSV the reader cannot parse (a stray quote) is an error naming the line."""
        path = tmp_path / "log.csv"
        path.write_text('timestamp,style,count\n2025-08-01T09:00:00Z,"anime"x,1\n',
                        encoding="utf-8")
        with pytest.raises(ib.BadRecordError, match="not CSV") as caught:
            list(ib.read_usage(path))
        assert (2, "bad-csv") == (caught.value.line, caught.value.reason)

    def test_malformed_csv_skipped(self, tmp_path: Path, table: ib.PriceTable) -> None:
        """With skip_bad, a line the CSV reader cannot parse is counted, and reading goes on."""
        path = tmp_path / "log.csv"
        path.write_text('timestamp,style,count\n2025-08-01T09:00:00Z,"anime"x,1\n'
                        '2025-08-01T09:00:00Z,anime,2\n2025-08-01T09:00:00Z,"anime" ,1\n'
                        "2025-08-01T09:00:00Z,flux-dev,1\n", encoding="utf-8")
        log = ib.read_usage(path, skip_bad=True)
        totals = ib.price_usage(log, table)
        assert (25, 2, {"bad-csv": 2}) == (totals.total, totals.records, totals.skipped)
        assert 5 == log.line

    def test_missing_file(self, tmp_path: Path) -> None:
        """A missing file is a BadRecordError naming the file alone (no line 0)."""
        path = tmp_path / "nope.csv"
        with pytest.raises(ib.BadRecordError, match="cannot read the file") as caught:
            list(ib.read_usage(path))
        assert (0, "unreadable") == (caught.value.line, caught.value.reason)
        assert str(caught.value).startswith(f"{path}: cannot read the file: ")

    def test_not_utf8(self, tmp_path: Path) -> None:
        """Bytes that are not UTF-8 are an error naming the file."""
        path = tmp_path / "log.csv"
        path.write_bytes(b"timestamp,style,count\n2025-08-01T09:00:00Z,\xff\xfe,1\n")
        with pytest.raises(ib.BadRecordError, match="not UTF-8") as caught:
            list(ib.read_usage(path))
        assert "bad-encoding" == caught.value.reason

    @pytest.mark.parametrize("sample", [
        ("log.csv", b"2025-08-01T09:00:00Z,anime,1\n", b"2025-08-01T09:00:00Z,an\xffime,1\n"),
        ("log.jsonl", b'{"timestamp": "2025-08-01T09:00:00Z", "style": "anime", "count": 1}\n',
         b'{"timestamp": "2025-08-01T09:00:00Z", "style": "\xe9", "count": 1}\n'),
    ], ids=["csv", "jsonl"])
    @pytest.mark.parametrize(("before", "after"), [(1, 1), (2000, 1000)])
    def test_not_utf8_names_its_line(self, tmp_path: Path, table: ib.PriceTable,
                                     sample: tuple[str, bytes, bytes], before: int,
                                     after: int) -> None:
        """A bad byte is reported at its own line, however far into the file; skip_bad
        skips that line alone, as bad-encoding."""
        name, good, bad = sample
        header = b"timestamp,style,count\n" if name.endswith(".csv") else b""
        path = tmp_path / name
        path.write_bytes(header + good * before + bad + good * after)
        line = len(header.splitlines()) + before + 1
        with pytest.raises(ib.BadRecordError, match="not UTF-8") as caught:
            ib.price_usage(ib.read_usage(path), table)
        assert (line, "bad-encoding") == (caught.value.line, caught.value.reason)
        assert str(caught.value).startswith(f"{path}:{line}: ")
        totals = ib.price_usage(ib.read_usage(path, skip_bad=True), table)
        assert (5 * (before + after), {"bad-encoding": 1}) == (totals.total, totals.skipped)

    def test_not_utf8_far_after_other_bad_lines(self, tmp_path: Path,
                                                table: ib.PriceTable) -> None:
        """Bad bytes far into a file, after a line that is not CSV and a record over two
        lines: with skip_bad each bad line is counted once and every other line priced."""
        path = tmp_path / "log.csv"
        good = b"2025-08-01T09:00:00Z,anime,1\n"
        path.write_bytes(b"timestamp,style,count\n" + good * 10
                         + b'2025-08-01T09:00:00Z,"anime" ,1\n'  # line 12: not CSV
                         + b'2025-08-01T09:00:00Z,"flux-\ndev",1\n' + good * 3000
                         + b"2025-08-01T09:00:00Z,\xffanime,1\n" + good * 10)
        with pytest.raises(ib.BadRecordError) as caught:
            ib.price_usage(ib.read_usage(path), table)
        assert (12, "bad-csv") == (caught.value.line, caught.value.reason)
        log = ib.read_usage(path, skip_bad=True)
        totals = ib.price_usage(log, table)
        assert 5 * 3020 == totals.total
        assert {"bad-csv": 1, "unknown-style": 1, "bad-encoding": 1} == totals.skipped
        assert 3025 == log.line

    def test_not_utf8_in_a_multi_line_record(self, tmp_path: Path,
                                             table: ib.PriceTable) -> None:
        """A bad byte inside a quoted field over two lines skips that one record."""
        path = tmp_path / "log.csv"
        path.write_bytes(b'timestamp,style,count\n2025-08-01T09:00:00Z,"ani\n\xffme",1\n'
                         b"2025-08-01T09:00:00Z,anime,1\n")
        with pytest.raises(ib.BadRecordError) as caught:
            ib.price_usage(ib.read_usage(path), table)
        assert (3, "bad-encoding") == (caught.value.line, caught.value.reason)
        totals = ib.price_usage(ib.read_usage(path, skip_bad=True), table)
        assert (5, {"bad-encoding": 1}) == (totals.total, totals.skipped)

    def test_not_utf8_header(self, tmp_path: Path) -> None:
        """A header that is not UTF-8 is a bad header, even with skip_bad."""
        path = tmp_path / "log.csv"
        path.write_bytes(b"timestamp,st\xffyle,count\n2025-08-01T09:00:00Z,anime,1\n")
        with pytest.raises(ib.BadRecordError, match="header: not UTF-8") as caught:
            list(ib.read_usage(path, skip_bad=True))
        assert (1, "bad-header") == (caught.value.line, caught.value.reason)

    def test_utf8_text_is_fine(self, tmp_path: Path, table: ib.PriceTable) -> None:
        """Text that is UTF-8 but not ASCII is read as it is (an unknown style here)."""
        path = tmp_path / "log.csv"
        path.write_bytes("timestamp,style,count\n2025-08-01T09:00:00Z,animé,1\n".encode())
        with pytest.raises(ib.BadRecordError, match="unknown style 'animé'") as caught:
            ib.price_usage(ib.read_usage(path), table)
        assert (2, "unknown-style") == (caught.value.line, caught.value.reason)

    def test_priced_twice(self, table: ib.PriceTable) -> None:
        """A log priced twice gives the same totals: its skipped lines are not counted
        twice."""
        log = ib.read_usage(USAGE / "bad.csv", skip_bad=True)
        first, second = ib.price_usage(log, table), ib.price_usage(log, table)
        assert first == second
        assert 8 == sum(second.skipped.values())

    @pytest.mark.parametrize(("name", "row"), [
        ("log.csv", "2025-08-01T09:00:00Z,anime,{count}"),
        ("log.jsonl",
         '{{"timestamp": "2025-08-01T09:00:00Z", "style": "anime", "count": {count}}}'),
    ])
    def test_counts_up_to_2_53_minus_1(self, tmp_path: Path, table: ib.PriceTable, name: str,
                                       row: str) -> None:
        """A count of 2**53-1 is read; one more is a bad count, in the words of Call."""
        header = ["timestamp,style,count"] if name.endswith(".csv") else []
        path = tmp_path / name
        rows = [row.format(count=2**53 - 1), row.format(count=2**53), row.format(count=10**20),
                row.format(count="9" * 4000)]
        path.write_text("\n".join([*header, *rows]) + "\n", encoding="utf-8")
        with pytest.raises(ib.BadRecordError) as caught:
            ib.price_usage(ib.read_usage(path), table)
        assert (len(header) + 2, "bad-count") == (caught.value.line, caught.value.reason)
        assert "count must be at most 2**53-1 = 9007199254740991 (got 9007199254740992)" in str(
            caught.value)
        totals = ib.price_usage(ib.read_usage(path, skip_bad=True), table)
        assert (5 * (2**53 - 1), {"bad-count": 3}) == (totals.total, totals.skipped)

    def test_huge_count_message_is_short(self, tmp_path: Path, table: ib.PriceTable) -> None:
        """A count of 5000 digits is a bad count with a one-line message of its size."""
        path = tmp_path / "log.csv"
        path.write_text(f"timestamp,style,count\n2025-08-01T09:00:00Z,anime,{'9' * 5000}\n",
                        encoding="utf-8")
        with pytest.raises(ib.BadRecordError) as caught:
            ib.price_usage(ib.read_usage(path), table)
        assert f"{path}:2: count must be at most 2**53-1 = 9007199254740991 (got a number of " \
               "5000 digits)" == str(caught.value)

    @pytest.mark.parametrize("when", ["2025-W31-5T09:00:00Z", "20250801T090000Z",
                                      "2025-08-01 09:00:00Z", "2025-08-01T09:00Z",
                                      "2025-08-01T09:00:00+0000", "2025-08-01T09:00:00,5Z",
                                      "2025-08-01T09:00:00+00", "2025-08-01T09:00:00.Z",
                                      "2025-08-01T09:00:00.+00:00"])
    @pytest.mark.parametrize("name", ["log.csv", "log.jsonl"])
    def test_timestamps_are_rfc_3339_only(self, tmp_path: Path, table: ib.PriceTable,
                                          when: str, name: str) -> None:
        """Other ISO 8601 forms (week dates, basic form, a space, no seconds, +hhmm) are bad
        timestamps."""
        path = tmp_path / name
        if name.endswith(".csv"):
            path.write_text(f'timestamp,style,count\n"{when}",anime,1\n', encoding="utf-8")
        else:
            path.write_text(json.dumps({"timestamp": when, "style": "anime", "count": 1}) + "\n",
                            encoding="utf-8")
        with pytest.raises(ib.BadRecordError, match="not an RFC 3339 timestamp") as caught:
            ib.price_usage(ib.read_usage(path), table)
        assert "bad-timestamp" == caught.value.reason

    def test_rfc_3339_forms(self, tmp_path: Path, table: ib.PriceTable) -> None:
        """Lower-case t and z, fractions and offsets are RFC 3339, and read."""
        path = tmp_path / "log.csv"
        path.write_text("timestamp,style,count\n2025-08-01t09:00:00z,anime,1\n"
                        "2025-08-01T09:00:00.123456789Z,anime,1\n"
                        "2025-08-01T11:00:00.5+02:00,anime,1\n2025-08-01T08:00:00-01:00,anime,1\n",
                        encoding="utf-8")
        totals = ib.price_usage(ib.read_usage(path), table)
        assert {DAY1: 20} == totals.by_day

    def test_values_are_stripped(self, tmp_path: Path, table: ib.PriceTable) -> None:
        """Spaces around values are ignored, as they are around header names."""
        path = tmp_path / "log.csv"
        path.write_text("timestamp, style, count, operation\n"
                        "2025-08-01T09:00:00Z , flux-dev , 4 ,\n"
                        " 2025-08-01T09:00:00Z, , 2, text-to-image \n", encoding="utf-8")
        totals = ib.price_usage(ib.read_usage(path), table)
        assert {"flux-dev": 60, "imagine-turbo": 2} == totals.by_style

    def test_multi_line_record_named_by_its_first_line(self, tmp_path: Path,
                                                       table: ib.PriceTable) -> None:
        """A quoted field over several lines: the record is named by the line it starts on."""
        path = tmp_path / "log.csv"
        path.write_text('timestamp,style,count\n2025-08-01T09:00:00Z,anime,1\n\n'
                        '2025-08-01T09:00:00Z,"flux\n-\ndev",1\n2025-08-01T09:00:00Z,anime,1\n',
                        encoding="utf-8")
        with pytest.raises(ib.BadRecordError, match="unknown style") as caught:
            ib.price_usage(ib.read_usage(path), table)
        assert 4 == caught.value.line
        log = ib.read_usage(path, skip_bad=True)
        ib.price_usage(log, table)
        assert 7 == log.line

    @pytest.mark.parametrize(("name", "text", "expected"), [
        ("log.txt", '{"timestamp": "2025-08-01T09:00:00Z", "style": "anime", "count": 1}\n',
         "jsonl"),
        ("log.csv", '{"timestamp": "2025-08-01T09:00:00Z", "style": "anime", "count": 1}\n',
         "jsonl"),
        ("log.csv", '\ufeff \n\n  {"timestamp": "2025-08-01T09:00:00Z"}\n', "jsonl"),
        ("log.txt", "timestamp,style,count\n", "csv"),
        ("log.jsonl", "timestamp,style,count\n", "jsonl"),
        ("log.ndjson", "", "jsonl"),
        ("LOG.CSV", "", "csv"),
    ])
    def test_format_guessed(self, tmp_path: Path, name: str, text: str, expected: str) -> None:
        """JSON lines when the first character that is not blank is {, whatever the name;
        else the format comes from the name."""
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        assert expected == ib.read_usage(path).format

    def test_format_given(self, tmp_path: Path, table: ib.PriceTable) -> None:
        """format= overrides the guess; an unknown format is a ValueError."""
        path = tmp_path / "log.data"
        path.write_text("timestamp,style,count\n2025-08-01T09:00:00Z,anime,1\n", encoding="utf-8")
        assert 5 == ib.price_usage(ib.read_usage(path, format="csv"), table).total
        with pytest.raises(ValueError, match="'csv', 'jsonl' or 'parquet'"):
            ib.read_usage(path, format="xml")

    def test_json_lines_named_csv_are_priced(self, tmp_path: Path, table: ib.PriceTable) -> None:
        """JSON lines in a file named .csv are read as JSON lines, not as a bad CSV header."""
        path = tmp_path / "log.csv"
        path.write_bytes((USAGE / "example.jsonl").read_bytes())
        totals = ib.price_usage(ib.read_usage(path), table)
        assert (85, EXAMPLE_BY_STYLE) == (totals.total, totals.by_style)

    def test_json_lines_read_as_csv_are_a_bad_header(self, tmp_path: Path) -> None:
        """JSON lines read with format="csv" are a bad header naming line 1, even with
        skip_bad, not a crash of the CSV reader."""
        path = tmp_path / "log.csv"
        path.write_text(json.dumps(GOOD_ROW, separators=(",", ":")) + "\n", encoding="utf-8")
        with pytest.raises(ib.BadRecordError, match="header: not CSV this reader reads") \
                as caught:
            list(ib.read_usage(path, format="csv", skip_bad=True))
        assert (1, "bad-header") == (caught.value.line, caught.value.reason)

    @pytest.mark.parametrize("name", ["log.csv", "log.jsonl"])
    def test_line_too_long_is_a_bad_line(self, tmp_path: Path, table: ib.PriceTable,
                                         name: str) -> None:
        """A line of 64 Ki characters or more is a bad line naming its line; skip_bad skips
        it alone, and the lines after it keep their numbers."""
        if name.endswith(".csv"):
            header, good = "timestamp,style,count\n", "2025-08-01T09:00:00Z,anime,1\n"
            long = f"2025-08-01T09:00:00Z,{'x' * 70_000},1\n"
        else:
            header, good = "", json.dumps(GOOD_ROW) + "\n"
            long = json.dumps({**GOOD_ROW, "style": "x" * 70_000}) + "\n"
        path = tmp_path / name
        path.write_text(header + good + long + good, encoding="utf-8")
        line = len(header.splitlines()) + 2
        with pytest.raises(ib.BadRecordError) as caught:
            ib.price_usage(ib.read_usage(path), table)
        assert (line, "line-too-long") == (caught.value.line, caught.value.reason)
        assert f"{path}:{line}: line too long: a line of a usage log has fewer than 65536 " \
               "characters" == str(caught.value)
        log = ib.read_usage(path, skip_bad=True)
        totals = ib.price_usage(log, table)
        assert (10, {"line-too-long": 1}, line + 1) == (totals.total, totals.skipped, log.line)

    def test_line_just_under_the_bound_is_read(self, tmp_path: Path,
                                               table: ib.PriceTable) -> None:
        """A line of 65,535 characters is read whole: its style is unknown, and named short."""
        row = "2025-08-01T09:00:00Z,{},1"
        style = "x" * (65_535 - len(row.format("")))
        path = tmp_path / "log.csv"
        path.write_text(f"timestamp,style,count\n{row.format(style)}\n", encoding="utf-8")
        with pytest.raises(ib.BadRecordError) as caught:
            ib.price_usage(ib.read_usage(path), table)
        assert (2, "unknown-style") == (caught.value.line, caught.value.reason)
        assert len(str(caught.value)) < 400

    @pytest.mark.parametrize(("name", "text"), [
        ("log.jsonl", json.dumps({**GOOD_ROW, "style": "x" * (16 << 20)}) + "\n"),
        ("log.jsonl", "\0" * (16 << 20)),
        ("log.csv", "timestamp,style,count\n" + "\0" * (16 << 20)),
    ], ids=["huge-style", "no-line-break", "no-line-break-after-header"])
    @pytest.mark.parametrize("skip_bad", [False, True])
    def test_huge_line_read_in_bounded_memory(self, tmp_path: Path, table: ib.PriceTable,
                                              name: str, text: str, skip_bad: bool) -> None:
        """A line of 16 Mi characters (a huge style, a file with no line break) is a line too
        long, never held in memory whole nor quoted, skipped with skip_bad."""
        path = tmp_path / name
        path.write_text(f"{text}\n{json.dumps(GOOD_ROW)}\n" if "{" in text else text,
                        encoding="utf-8")
        line = 2 if name.endswith(".csv") else 1
        tracemalloc.start()
        try:
            if skip_bad:
                totals = ib.price_usage(ib.read_usage(path, skip_bad=True), table)
                outcome: object = totals.skipped
            else:
                with pytest.raises(ib.BadRecordError) as caught:
                    ib.price_usage(ib.read_usage(path), table)
                outcome = (caught.value.line, caught.value.reason, len(str(caught.value)) < 300)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        expected = {"line-too-long": 1} if skip_bad else (line, "line-too-long", True)
        assert expected == outcome
        assert peak < 2 << 20, f"peak {peak} bytes"

    @pytest.mark.parametrize(("name", "text", "reason"), [
        ("log.jsonl", {**GOOD_ROW, "style": LONG}, "unknown-style"),
        ("log.jsonl", {**GOOD_ROW, "style": "", "operation": LONG}, "unknown-operation"),
        ("log.jsonl", {**GOOD_ROW, "timestamp": LONG}, "bad-timestamp"),
        ("log.jsonl", {**GOOD_ROW, "count": LONG}, "bad-count"),
        ("log.jsonl", {**GOOD_ROW, "style": [LONG]}, "bad-style"),
        ("log.jsonl", {**GOOD_ROW, "X" * 30_000: 1, "x" * 30_000: 2}, "duplicate-key"),
        ("log.jsonl", [LONG], "bad-record"),
        ("log.csv", f"timestamp,style,count\n2025-08-01T09:00:00Z,{LONG},1", "unknown-style"),
        ("log.csv", f"timestamp,style,count\n{LONG},anime,1", "bad-timestamp"),
        ("log.csv", f"timestamp,style,count\n2025-08-01T09:00:00Z,anime,{LONG}", "bad-count"),
        ("log.csv", f"timestamp,style,count,{LONG[:30_000]},{LONG[:30_000].upper()}",
         "bad-header"),
    ], ids=lambda value: value if isinstance(value, str) and len(value) < 20 else None)
    def test_long_values_are_quoted_short(self, tmp_path: Path, table: ib.PriceTable,
                                          name: str, text: object, reason: str) -> None:
        """A value of 60,000 characters (in a line under the bound) is named, cut short, in
        a message of one short line."""
        path = tmp_path / name
        path.write_text((text if isinstance(text, str) else json.dumps(text)) + "\n",
                        encoding="utf-8")
        with pytest.raises(ib.BadRecordError) as caught:
            ib.price_usage(ib.read_usage(path), table)
        assert reason == caught.value.reason
        assert "xxxxxxxxxx..." in str(caught.value)
        assert len(str(caught.value)) < 400, str(caught.value)[:400]

    def test_progress_reaches_the_end(self, table: ib.PriceTable) -> None:
        """on_progress is called, last with the whole size."""
        seen: list[tuple[int, int]] = []
        path = USAGE / "example.csv"
        ib.price_usage(ib.read_usage(path, on_progress=lambda d, s: seen.append((d, s))), table)
        size = path.stat().st_size
        assert (size, size) == seen[-1]


class TestOneTimestampRule:
    """Every usage reader takes a timestamp exactly when the shared `rfc3339` reads it with a
    zone, and as the same instant."""

    @pytest.mark.parametrize("text", [
        "2025-08-01T09:00:00Z", "2025-08-01t09:00:00z", "2025-08-01T09:00:00.5Z",
        "2025-08-01T09:00:00.123456789Z", "2025-08-01T11:00:00+02:00", "2025-08-01T09:00:00.Z",
        "2025-08-01T09:00:00.+00:00", "2025-08-01T09:00:00", "2025-08-01T09:00:00,5Z",
        "2025-08-01T09:00:00+0000", "2025-08-01T24:00:00Z", "2025-08-01T09:00Z",
        "2025-08-01T09:00:00ZZ", "2025-08-01T09:00:00.5", "2025-08-01",
    ])
    def test_readers_agree_with_rfc3339(self, tmp_path: Path, text: str) -> None:
        """The CSV and the JSON-lines readers give the instant rfc3339 gives, or skip the
        record as a bad timestamp."""
        parsed = rfc3339(text)
        expected = parsed if parsed is not None and parsed.tzinfo is not None else None
        csv_log, jsonl_log = tmp_path / "log.csv", tmp_path / "log.jsonl"
        csv_log.write_text(f'timestamp,style,count\n"{text}",anime,1\n', encoding="utf-8")
        jsonl_log.write_text(json.dumps({**GOOD_ROW, "timestamp": text}) + "\n",
                             encoding="utf-8")
        read = []
        for path in (csv_log, jsonl_log):
            log = ib.read_usage(path, skip_bad=True)
            records = list(log)
            read.append(records[0][2] if records else log.skipped)
        skipped = {"bad-timestamp": 1}
        assert [expected or skipped] * 2 == read
