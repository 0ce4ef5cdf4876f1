"""The duckdb engine against the python engine (the reference) on logs found by an attack
review: typed times Python cannot hold. Each is run through both engines, and through the
command line, and their outcomes compared."""

from __future__ import annotations

from pathlib import Path

import pytest

import imagine_billing as ib
from imagine_billing.usage import price_logs
from imagine_billing.usage._duckdb_engine import price_in_duckdb
from tests.helpers import run
from tests.property.test_engines import outcome
from tests.unit.test_usage_logs import parquet

GOOD = b"timestamp,style,count\n2026-11-03T10:00:00Z,anime,1\n"


def cli_outcomes(*args: str) -> list[tuple[int, str, str]]:
    """``price-log ARGS...`` with each engine: (exit code, stdout, stderr)."""
    done = []
    for engine in ("python", "duckdb"):
        result = run("price-log", "--engine", engine, *args)
        done.append((result.returncode, result.stdout, result.stderr))
    return done


# Times a TIMESTAMP WITH TIME ZONE holds that Python's datetime cannot.
OUTSIDE = ["'infinity'::TIMESTAMPTZ", "'-infinity'::TIMESTAMPTZ",
           "'294000-01-01 00:00:00+00'::TIMESTAMPTZ",
           "'0001-01-01 00:00:00+00'::TIMESTAMPTZ - INTERVAL 1 microsecond",
           "'9999-12-31 23:59:59.999999+00'::TIMESTAMPTZ + INTERVAL 1 microsecond"]
# The first and last time it can.
EDGES = ["'0001-01-01 00:00:00+00'::TIMESTAMPTZ", "'9999-12-31 23:59:59.999999+00'::TIMESTAMPTZ"]


def timed_log(folder: Path, time: str) -> str:
    """A Parquet log of a good row, then a row at ``time`` (SQL), then a good row."""
    good = "'2026-11-03 10:00:00+00'::TIMESTAMPTZ AS timestamp, 'anime' AS style, 1 AS count"
    return parquet(folder, "log.parquet", f"SELECT {good} UNION ALL SELECT {time}, 'anime', 2 "
                                          f"UNION ALL SELECT {good}")


class TestTimesPythonCannotHold:
    """Finding 6: an infinite or out-of-range Parquet time is a bad timestamp in both
    engines (the duckdb engine priced it on day None, then the CLI failed with exit 3)."""

    @pytest.mark.parametrize("time", OUTSIDE + EDGES)
    @pytest.mark.parametrize("skip_bad", [False, True])
    def test_same_outcome(self, tmp_path: Path, time: str, skip_bad: bool) -> None:
        """Totals, skipped counts and lines, or the error: the same in both engines."""
        path = timed_log(tmp_path, time)
        prices = ib.load_price_table()
        expected = outcome([path], prices, "python", skip_bad, [])
        assert expected == outcome([path], prices, "duckdb", skip_bad, [])

    @pytest.mark.parametrize("time", OUTSIDE)
    def test_skipped_in_duckdb(self, tmp_path: Path, time: str) -> None:
        """DuckDB itself skips the row as a bad timestamp at row 2 (no hand-over)."""
        totals = price_in_duckdb(timed_log(tmp_path, time), ib.load_price_table(),
                                 skip_bad=True, by=(), format=None)
        assert (10, {"bad-timestamp": 1}, {"bad-timestamp": (2,)}) == (
            totals.total, dict(totals.skipped), dict(totals.skipped_lines))
        assert None not in totals.by_day

    def test_message_says_what_the_time_is(self, tmp_path: Path) -> None:
        """'infinity', and what was expected; not "9999-12-31T23:59:59.999999: no time
        zone"."""
        with pytest.raises(ib.BadRecordError) as caught:
            price_logs([timed_log(tmp_path, OUTSIDE[0])], engine="python")
        assert (2, "bad-timestamp") == (caught.value.line, caught.value.reason)
        assert ('timestamp "infinity": not a time a record can have (expected a TIMESTAMP '
                "WITH TIME ZONE from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999Z)"
                ) in str(caught.value)

    def test_through_the_command_line(self, tmp_path: Path) -> None:
        """Exit 2 and the same message in both engines; with --skip-bad, the same totals."""
        path = timed_log(tmp_path, OUTSIDE[0])
        python, duckdb = cli_outcomes(path)
        assert (2, "", python[2]) == duckdb
        assert "log.parquet:2: timestamp \"infinity\"" in python[2]
        python, duckdb = cli_outcomes(path, "--skip-bad")
        assert python == duckdb
        assert "skipped: 1 bad line (bad-timestamp 1 at line 2)" in python[1]
