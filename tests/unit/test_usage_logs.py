"""Real-world usage logs: any-case headers, other columns to group by, Parquet, several logs
(`price_logs`), and the duckdb engine's own checks."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pytest

import imagine_billing as ib
from imagine_billing.usage import price_logs
from imagine_billing.usage._duckdb_engine import Unclear, price_in_duckdb

LOG = ("Timestamp,STYLE,Count,Project\n"
       "2025-08-01T09:00:00Z,anime,2,shop\n"
       "2025-08-02T09:00:00Z,flux-dev,1,blog\n"
       "2025-09-02T09:00:00Z,anime,1,shop\n")


def write(folder: Path, name: str, text: str | bytes) -> str:
    path = folder / name
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8")
    else:
        path.write_bytes(text)
    return str(path)


def parquet(folder: Path, name: str, select: str) -> str:
    """A Parquet file of the rows of ``select``, written by DuckDB."""
    path = folder / name
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    connection.execute(f"COPY ({select}) TO '{path}' (FORMAT parquet)")
    connection.close()
    return str(path)


def totals_of(paths: list[str], **options: Any) -> ib.UsageTotals:
    results = price_logs(paths, **options)
    total = results[0][1]
    for _, more in results[1:]:
        total += more
    return total


class TestHeaders:
    """Header names and JSON keys in any case; other columns kept."""

    @pytest.mark.parametrize("engine", ["python", "duckdb"])
    def test_any_case_and_other_columns(self, tmp_path: Path, engine: str) -> None:
        """Timestamp,STYLE,Count with a Project column prices as timestamp,style,count."""
        totals = totals_of([write(tmp_path, "log.csv", LOG)], engine=engine)
        assert (30, 3) == (totals.total, totals.records)

    def test_json_keys_in_any_case(self, tmp_path: Path) -> None:
        """{"Timestamp", "STYLE", "Count"} is a record; "Count" and "count" both is a
        duplicate key."""
        good = '{"Timestamp": "2025-08-01T09:00:00Z", "STYLE": "anime", "Count": 2, "x": 1}'
        twice = '{"timestamp": "2025-08-01T09:00:00Z", "style": "anime", "count": 1, "Count": 9}'
        path = write(tmp_path, "log.jsonl", f"{good}\n{twice}\n")
        totals = totals_of([path], skip_bad=True)
        assert (10, {"duplicate-key": 1}) == (totals.total, totals.skipped)

    def test_columns_twice_in_another_case(self, tmp_path: Path) -> None:
        """style and STYLE are one column named twice: a bad header."""
        path = write(tmp_path, "log.csv", "timestamp,style,count,STYLE\n")
        with pytest.raises(ib.BadRecordError, match='column "style" appears twice'):
            totals_of([path])


class TestGroups:
    """price_usage(by=...) and price_logs(by=...): totals by style, day, month, columns."""

    @pytest.mark.parametrize("engine", ["python", "duckdb"])
    def test_by_project_and_month(self, tmp_path: Path, engine: str) -> None:
        """Hand-computed: shop 2 x anime in August (10) and 1 in September (5), blog 1 x
        flux-dev in August (15)."""
        totals = totals_of([write(tmp_path, "log.csv", LOG)], engine=engine,
                           by=["Project", "month"])
        assert ("project", "month") == totals.by
        assert {("shop", "2025-08"): (2, 10), ("blog", "2025-08"): (1, 15),
                ("shop", "2025-09"): (1, 5)} == totals.groups
        assert [{"by": {"project": "blog", "month": "2025-08"}, "calls": 1, "tokens": 15},
                {"by": {"project": "shop", "month": "2025-08"}, "calls": 2, "tokens": 10},
                {"by": {"project": "shop", "month": "2025-09"}, "calls": 1, "tokens": 5},
                ] == totals.to_dict()["groups"]

    def test_by_style_and_day_in_memory(self, table: ib.PriceTable) -> None:
        """Records in memory group by style and day without any column."""
        from datetime import UTC, datetime

        when = datetime(2025, 8, 1, 23, tzinfo=UTC)
        totals = ib.price_usage([("anime", 1, when), ("flux-dev", 2, when)], table,
                                by=["day", "style"])
        assert {("2025-08-01", "anime"): (1, 5), ("2025-08-01", "flux-dev"): (2, 30)} \
            == totals.groups

    def test_json_line_without_the_key(self, tmp_path: Path) -> None:
        """A JSON line without the column groups under None; a number groups as its text."""
        lines = ['{"timestamp": "2025-08-01T09:00:00Z", "style": "anime", "count": 1}',
                 '{"timestamp": "2025-08-01T09:00:00Z", "style": "anime", "count": 1, '
                 '"project": 7}']
        totals = totals_of([write(tmp_path, "log.jsonl", "\n".join(lines))], by=["project"])
        assert {(None,): (1, 5), ("7",): (1, 5)} == totals.groups

    def test_unknown_column(self, tmp_path: Path) -> None:
        """A column to group by that the CSV log lacks: an error naming it and the columns."""
        with pytest.raises(ib.BadRecordError) as caught:
            totals_of([write(tmp_path, "log.csv", LOG)], by=["team"])
        assert (1, "bad-header") == (caught.value.line, caught.value.reason)
        assert ('no column "team" to group by (--by); the columns are timestamp, style, '
                "count, project") in str(caught.value)

    def test_no_name_twice(self) -> None:
        """A name given twice to group by is refused."""
        with pytest.raises(ValueError, match="'style' is given twice"):
            ib.price_usage([], by=["style", "STYLE"])

    def test_totals_grouped_otherwise_do_not_add(self) -> None:
        """Totals grouped by different names cannot be added."""
        with pytest.raises(ValueError, match="do not add up"):
            _ = ib.UsageTotals(by=("style",)) + ib.UsageTotals(by=("day",))


class TestParquet:
    """Parquet logs, by content or name, through DuckDB."""

    SELECT = ("SELECT * FROM (VALUES (TIMESTAMPTZ '2025-08-01 09:00:00+00', 'anime', 2, "
              "'shop'), (TIMESTAMPTZ '2025-08-02 09:00:00+00', 'flux-dev', 1, 'blog')) "
              "AS t(Timestamp, Style, Count, project)")

    @pytest.mark.parametrize("engine", ["python", "duckdb"])
    def test_priced(self, tmp_path: Path, engine: str) -> None:
        """A Parquet log, even named .csv (by its PAR1 bytes), prices as text would."""
        path = parquet(tmp_path, "log.csv", self.SELECT)
        totals = totals_of([path], engine=engine, by=["project"])
        assert (25, {("shop",): (2, 10), ("blog",): (1, 15)}) == (totals.total, totals.groups)

    @pytest.mark.parametrize("engine", ["python", "duckdb"])
    def test_bad_rows_named_by_row(self, tmp_path: Path, engine: str) -> None:
        """A bad row is named by its row from 1; skipped, counted by reason."""
        path = parquet(tmp_path, "log.parquet", "SELECT * FROM (VALUES "
                       "(TIMESTAMPTZ '2025-08-01 09:00:00+00', 'anime', 2), "
                       "(TIMESTAMPTZ '2025-08-01 09:00:00+00', 'anme', 1), "
                       "(NULL, 'anime', 0)) AS t(timestamp, style, count)")
        with pytest.raises(ib.BadRecordError) as caught:
            totals_of([path], engine=engine)
        assert (2, "unknown-style") == (caught.value.line, caught.value.reason)
        totals = totals_of([path], engine=engine, skip_bad=True)
        assert (10, {"unknown-style": 1, "bad-count": 1}) == (totals.total, totals.skipped)
        assert {"unknown-style": (2,), "bad-count": (3,)} == totals.skipped_lines

    def test_text_timestamps_and_naive_ones(self, tmp_path: Path) -> None:
        """RFC 3339 text is read as in CSV; a TIMESTAMP without a zone is a bad timestamp."""
        path = parquet(tmp_path, "log.parquet", "SELECT * FROM (VALUES "
                       "('2025-08-01T09:00:00Z', 'anime', 2)) AS t(timestamp, style, count)")
        assert 10 == totals_of([path], engine="duckdb").total
        naive = parquet(tmp_path, "naive.parquet", "SELECT TIMESTAMP '2025-08-01 09:00:00' "
                        "AS timestamp, 'anime' AS style, 1 AS count")
        with pytest.raises(ib.BadRecordError, match=":1: timestamp 2025-08-01T09:00:00: no "
                           "time zone"):
            totals_of([naive], engine="duckdb")

    def test_not_parquet(self, tmp_path: Path) -> None:
        """A file named .parquet that is not: one line naming the file."""
        path = write(tmp_path, "log.parquet", b"PAR1 but no more")
        with pytest.raises(ib.BadRecordError, match="cannot read the file as Parquet"):
            totals_of([path])

    def test_without_duckdb(self, tmp_path: Path) -> None:
        """Without DuckDB, a Parquet log is an error saying how to install it."""
        path = parquet(tmp_path, "log.parquet", self.SELECT)
        code = ("import sys; sys.modules['duckdb'] = None\n"
                "import imagine_billing as ib\n"
                "try:\n"
                f"    list(ib.read_usage({path!r}))\n"
                "except ImportError as error:\n"
                "    print(error)\n")
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              check=True)
        assert ("reading Parquet needs DuckDB: pip install 'imagine-billing[bulk]' (from a "
                "clone: pip install -e '.[bulk]')\n") == done.stdout


class TestSeveralLogs:
    """price_logs over several files: each one's totals, errors naming the file."""

    def test_each_file(self, tmp_path: Path) -> None:
        """Two logs: the totals of each, which add up."""
        first = write(tmp_path, "a.csv", LOG)
        second = write(tmp_path, "b.jsonl.gz", gzip.compress(
            b'{"timestamp": "2025-08-01T09:00:00Z", "style": "anime", "count": 1}\n'))
        results = price_logs([first, second])
        assert [(first, 30), (second, 5)] == [(name, t.total) for name, t in results]

    @pytest.mark.parametrize("engine", ["python", "duckdb"])
    def test_error_names_the_file(self, tmp_path: Path, engine: str) -> None:
        """A bad line of the second log names that file and line."""
        first = write(tmp_path, "a.csv", LOG)
        second = write(tmp_path, "b.csv", "timestamp,style,count\n2025-08-01T09:00:00Z,x,1\n")
        with pytest.raises(ib.BadRecordError, match=f"^{second}:2: unknown style 'x'"):
            price_logs([first, second], engine=engine)

    def test_stdin_once(self) -> None:
        """'-' given twice is refused: standard input can be read once."""
        with pytest.raises(ValueError, match="given twice"):
            price_logs(["-", "-"])

    def test_unknown_engine(self) -> None:
        """An engine other than python or duckdb is refused."""
        with pytest.raises(ValueError, match="engine must be 'python' or 'duckdb'"):
            price_logs([], engine="spark")


class TestGzip:
    """gzip logs whatever their members."""

    def test_empty_first_member(self, tmp_path: Path) -> None:
        """JSON lines after an empty gzip member (as `cat empty.gz log.gz` makes) are read as
        JSON lines: the format is guessed past the empty member."""
        line = b'{"timestamp": "2025-08-01T09:00:00Z", "style": "anime", "count": 1}\n'
        path = write(tmp_path, "log", gzip.compress(b"") + gzip.compress(line))
        assert 5 == totals_of([path]).total


class TestDuckdbEngine:
    """What the duckdb engine checks in SQL, and what it hands to the python reader."""

    LINES = ("timestamp,style,count\n"
             "2025-08-01T09:00:00Z,flux-dev,4\n"
             "2025-08-01T09:00:00Z,flux-dev,0\n"
             "\n"
             "2025-08-01T09:00:00Z,flux-dv,1\n"
             "2025-08-01T09:00:00,anime,1\n"
             "2025-08-01T09:00:00Z,sdxl-1.0,1\n"
             "2025-08-01T09:00:00Z,,1\n"
             "2025-08-01T09:00:00Z,anime\n"
             "  2025-08-01t09:00:00z , anime ,  2 \n")

    def test_bad_lines_counted_in_sql(self, tmp_path: Path, table: ib.PriceTable) -> None:
        """Bad counts, timestamps, styles, fields: counted and located by SQL itself, as the
        python engine does."""
        path = write(tmp_path, "log.csv", self.LINES)
        totals = price_in_duckdb(path, table, skip_bad=True, by=(), format=None)
        assert (70, 2) == (totals.total, totals.records)
        assert {"bad-count": (3,), "unknown-style": (5,), "bad-timestamp": (6,),
                "unpriced": (7,), "missing-field": (8, 9)} == totals.skipped_lines
        assert totals_of([path], skip_bad=True) == totals

    @pytest.mark.parametrize("text", [
        'timestamp,style,count\n2025-08-01T09:00:00Z,"anime",1\n',
        "timestamp,style,count\r\n2025-08-01T09:00:00Z,anime,1\r\n",
        "timestamp,style,count\n2025-08-01T09:00:00Z,caf\u00e9,1\n",
        "timestamp,style,count,operation\n2025-08-01T09:00:00Z,,1,upscale\n",
        '{"TIMESTAMP": "2025-08-01T09:00:00Z", "style": "anime", "count": 1}\n',
    ], ids=["quote", "crlf", "non-ascii", "operation", "upper-case-key"])
    def test_handed_to_the_python_reader(self, tmp_path: Path, table: ib.PriceTable,
                                         text: str) -> None:
        """What SQL does not read as the python reader does is handed over (Unclear)."""
        path = write(tmp_path, "log.jsonl" if text.startswith("{") else "log.csv", text)
        with pytest.raises(Unclear):
            price_in_duckdb(path, table, skip_bad=True, by=(), format=None)

    def test_bad_line_without_skipping_is_handed_over(self, tmp_path: Path,
                                                      table: ib.PriceTable) -> None:
        """A bad line without skip_bad: the python reader words the error."""
        path = write(tmp_path, "log.csv", self.LINES)
        with pytest.raises(Unclear):
            price_in_duckdb(path, table, skip_bad=False, by=(), format=None)

    def test_huge_counts_do_not_overflow(self, tmp_path: Path) -> None:
        """2**53-1 calls at 2**53-1 tokens, twice: past 64 bits, exact in SQL (HUGEINT), as
        Python's ints are."""
        most = 2**53 - 1
        table = ib.load_price_table().with_overrides({"styles": {"anime": {"cost": most}}},
                                                     version="1.0.1")
        path = write(tmp_path, "log.csv", f"timestamp,style,count\n"
                      f"2025-08-01T09:00:00Z,anime,{most}\n2025-08-02T09:00:00Z,anime,{most}\n")
        totals = price_in_duckdb(path, table, skip_bad=False, by=(), format=None)
        assert 2 * most * most == totals.total
        assert totals_of([path], prices=table) == totals

    def test_memory_limit_applies(self, tmp_path: Path, table: ib.PriceTable) -> None:
        """The memory limit reaches DuckDB: one too small to run the query fails there, and
        the python engine prices the log instead."""
        path = write(tmp_path, "log.csv", LOG)
        with pytest.raises(Unclear) as caught:
            price_in_duckdb(path, table, skip_bad=False, by=(), format=None,
                            memory_limit="1KB")
        assert isinstance(caught.value.__cause__, duckdb.Error)
        assert 30 == totals_of([path], engine="duckdb", memory_limit="1KB").total

    def test_without_duckdb(self, tmp_path: Path) -> None:
        """Without DuckDB, the duckdb engine is an error saying how to install it."""
        code = ("import sys; sys.modules['duckdb'] = None\n"
                "from imagine_billing.usage import price_logs\n"
                "try:\n"
                "    price_logs([], engine='duckdb')\n"
                "except ImportError as error:\n"
                "    print(error)\n")
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              check=True)
        assert done.stdout.startswith("--engine duckdb needs DuckDB: pip install "
                                      "'imagine-billing[bulk]'")


def test_json_document_unchanged_without_by(tmp_path: Path) -> None:
    """Without by, the JSON document has no "by" nor "groups" (as before)."""
    document = totals_of([write(tmp_path, "log.csv", LOG)]).to_dict()
    assert not {"by", "groups"} & set(document)
    assert 30 == json.loads(json.dumps(document))["total"]
