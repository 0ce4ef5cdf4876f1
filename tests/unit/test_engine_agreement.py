"""The duckdb engine against the python engine (the reference) on logs found by an attack
review: typed times Python cannot hold, a huge last line, a log read from a pipe. Each is
run through both engines, and through the command line, and their outcomes compared."""

from __future__ import annotations

import contextlib
import gzip
import itertools
import os
import socket
import subprocess
import threading
import unittest.mock
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import imagine_billing as ib
from imagine_billing.usage import _logs, price_logs
from imagine_billing.usage._duckdb_engine import Unclear, price_in_duckdb
from tests.helpers import run
from tests.property.test_engines import outcome
from tests.unit.test_usage_logs import parquet

GOOD = b"timestamp,style,count\n2026-11-03T10:00:00Z,anime,1\n"
JSON_LINE = b'{"timestamp": "2026-11-03T10:00:00Z", "style": "anime", "count": 1}\n'


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


@pytest.fixture(params=["log.csv", "log.csv.gz", "log.jsonl"])
def huge_last_line(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A good record, then a last line without end of 32 MiB (+ 1 byte of the next block):
    DuckDB's read_csv reads a buffer of 16 x max_line_size (2 MiB) at a time, and a file
    whose last line runs past the first buffer's end has that line dropped (not refused).
    A smaller file does not show it; this one takes about a second to write and price."""
    name = str(request.param)
    first = GOOD if ".csv" in name else JSON_LINE * 2  # the huge line is line 3
    data = first + b"a" * (1 << 25)
    path = tmp_path / name
    if name.endswith(".gz"):
        with gzip.open(path, "wb", compresslevel=1) as file:
            file.write(data)
    else:
        path.write_bytes(data)
    yield str(path)
    path.unlink()


class TestHugeLastLine:
    """Finding 7: a last line far too long is "line too long" in both engines (the duckdb
    engine dropped it and priced the rest, exit 0)."""

    def test_handed_over(self, huge_last_line: str) -> None:
        """DuckDB does not price it: the python engine does."""
        with pytest.raises(Unclear):
            price_in_duckdb(huge_last_line, ib.load_price_table(), skip_bad=True, by=(),
                            format=None)

    def test_through_the_command_line(self, huge_last_line: str) -> None:
        """Exit 2, line too long, in both engines; with --skip-bad the same totals."""
        python, duckdb = cli_outcomes(huge_last_line)
        assert python == duckdb
        assert 2 == python[0]
        assert ":3: line too long" in python[2]
        python, duckdb = cli_outcomes(huge_last_line, "--skip-bad")
        assert python == duckdb
        assert "(line-too-long 1 at line 3)" in python[1]

    def test_ended_last_line(self, tmp_path: Path) -> None:
        """Ended by a newline, DuckDB dropped it too."""
        path = tmp_path / "log.csv"
        path.write_bytes(GOOD + b"a" * (1 << 25) + b"\n")
        with pytest.raises(Unclear):
            price_in_duckdb(str(path), ib.load_price_table(), skip_bad=True, by=(),
                            format=None)
        path.unlink()

    def test_long_lines_before_the_last(self, tmp_path: Path) -> None:
        """A long line that is not the last, and a short last line after long ones: SQL
        still prices those itself (the long one as '?' only when DuckDB reads it)."""
        path = tmp_path / "log.csv"
        path.write_bytes(GOOD + b"x" * 50_000 + b",a,1\n" + GOOD[22:] * 3)
        totals = price_in_duckdb(str(path), ib.load_price_table(), skip_bad=True, by=(),
                                 format=None)
        assert (20, {"bad-timestamp": 1}) == (totals.total, dict(totals.skipped))


def writer(target: str | int, data: bytes) -> threading.Thread:
    """A thread writing ``data`` to ``target`` (a FIFO's path or a pipe's end), then closing."""
    def write() -> None:
        with contextlib.suppress(BrokenPipeError), open(target, "wb") as file:
            file.write(data)  # a reader that stops early (a line refused) closes the pipe

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


def piped_outcomes(data: bytes, *args: str) -> list[tuple[int, str, str]]:
    """``price-log /dev/fd/N ARGS...`` with each engine, ``data`` written into the pipe:
    (exit code, stdout, stderr)."""
    done = []
    for engine in ("python", "duckdb"):
        read, write = os.pipe()
        thread = writer(write, data)
        try:
            result = run("price-log", "--engine", engine, f"/dev/fd/{read}", *args,
                         pass_fds=(read,))
        finally:
            os.close(read)
            thread.join()
        done.append((result.returncode, result.stdout, result.stderr))
    return done


def release(fifo: Path, thread: threading.Thread) -> None:
    """Let a writer still waiting for a reader go (when the command never opened the FIFO)."""
    if thread.is_alive():
        os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
    thread.join()


class TestPipes:
    """Finding 9: the duckdb engine reads a FIFO or a /dev/fd/N of <(...) once, copied to
    a file (it said "empty file", or waited for ever on a FIFO). A command that still waits
    after 60 s (`run`'s timeout) fails the test (that is a hang, not a speed)."""

    @pytest.mark.parametrize("name", ["log.csv", "log.jsonl"])
    def test_fifo(self, tmp_path: Path, name: str) -> None:
        """Both engines print the same totals from a named FIFO."""
        data = GOOD if name == "log.csv" else JSON_LINE
        fifo = tmp_path / name
        os.mkfifo(fifo)
        done = []
        for engine in ("python", "duckdb"):
            thread = writer(str(fifo), data)
            try:
                result = run("price-log", "--engine", engine, str(fifo))
            except subprocess.TimeoutExpired:
                pytest.fail(f"--engine {engine} still waits on the FIFO after 30 s")
            finally:
                release(fifo, thread)
            done.append((result.returncode, result.stdout, result.stderr))
        assert done[0] == done[1]
        assert 0 == done[0][0]
        assert "total: 5 tokens" in done[0][1]

    def test_process_substitution(self) -> None:
        """/dev/fd/N, as bash's <(cat log.csv) gives: the same totals in both engines."""
        done = piped_outcomes(GOOD)
        assert done[0] == done[1]
        assert 0 == done[0][0]
        assert "total: 5 tokens" in done[0][1]

    def test_gzip_through_a_pipe(self, tmp_path: Path) -> None:
        """The copy is read as gzip as the file would be."""
        read, write = os.pipe()
        thread = writer(write, gzip.compress(GOOD))
        try:
            result = run("price-log", "--engine", "duckdb", f"/dev/fd/{read}",
                         pass_fds=(read,))
        finally:
            os.close(read)
            thread.join()
        assert (0, True) == (result.returncode, "total: 5 tokens" in result.stdout)


    def test_parquet(self, tmp_path: Path) -> None:
        """Parquet from standard input or a pipe: the python reader's error in both engines
        (the duckdb engine priced its copy)."""
        data = Path(timed_log(tmp_path, EDGES[1])).read_bytes()
        done = []
        for engine in ("python", "duckdb"):
            stdin = run("price-log", "--engine", engine, "-", input=data, text=False)
            read, write = os.pipe()
            thread = writer(write, data)
            try:
                piped = run("price-log", "--engine", engine, f"/dev/fd/{read}",
                            pass_fds=(read,), text=False)
            finally:
                os.close(read)
                thread.join()
            done.append([(r.returncode, r.stdout, r.stderr) for r in (stdin, piped)])
        assert done[0] == done[1]
        assert [2, 2] == [code for code, _, _ in done[0]]
        assert b"a Parquet file cannot be read from a pipe" in done[0][1][2]

class TestUnreadable:
    """A file the duckdb engine cannot open is the python engine's error (exit 2 naming the
    file; it was "internal error (FileNotFoundError)", exit 3)."""

    @pytest.mark.parametrize("name", ["missing.csv", "missing.parquet", "folder"])
    def test_same_error(self, tmp_path: Path, name: str) -> None:
        """The same exit code and message in both engines."""
        (tmp_path / "folder").mkdir()
        python, duckdb = cli_outcomes(str(tmp_path / name))
        assert python == duckdb
        assert 2 == python[0]
        assert f"{tmp_path / name}: cannot read the file" in python[2]

    def test_socket(self, tmp_path: Path) -> None:
        """A Unix socket is not a regular file, and opening it fails: the python reader's
        error, not a copy's."""
        path = tmp_path / "log.sock"
        with socket.socket(socket.AF_UNIX) as bound:
            bound.bind(str(path))
            python, duckdb = cli_outcomes(str(path))
        assert python == duckdb
        assert 2 == python[0]
        assert f"{path}: cannot read the file" in python[2]


class TestEndlessPipes:
    """Found by an attack review: the duckdb engine copied a pipe to a temporary file
    without bound (``/dev/zero``: gigabytes a second until the disk filled). A line too
    long for the python reader is copied only up to a bound that is still too long."""

    def test_dev_zero(self) -> None:
        """One endless line: refused at once by both engines (the duckdb one filled /tmp)."""
        done = cli_outcomes("/dev/zero")
        assert done[0] == done[1]
        assert 2 == done[0][0]
        assert "line too long" in done[0][2]

    @pytest.mark.parametrize("skip_bad", [False, True], ids=["refused", "skipped"])
    def test_a_long_line_in_a_pipe(self, skip_bad: bool) -> None:
        """A line of 1 MB between good ones, through a pipe: the same error, or the same
        totals and skipped line, in both engines."""
        data = GOOD + b"2026-11-03T10:00:00Z,anime," + b"9" * 1_000_000 + b"\n" + GOOD[22:] * 3
        done = piped_outcomes(data, *(["--skip-bad"] if skip_bad else []))
        assert done[0] == done[1]
        assert (0 if skip_bad else 2) == done[0][0]
        assert ("total: 20 tokens" in done[0][1]) if skip_bad else (
            ":3:" in done[0][2] and "line too long" in done[0][2])


class TestCapped:
    """`_capped`, the copy's cut of lines too long, over any split of a text into blocks
    (the bound made 60 bytes, so that short texts cross it)."""

    BOUND = 60

    def copied(self, text: bytes, cuts: list[int], skip_bad: bool) -> bytes:
        run, out = 0, []
        edges = [0, *sorted(set(cuts)), len(text)]
        with unittest.mock.patch.object(_logs, "_OVERLONG", self.BOUND):
            for start, end in itertools.pairwise(edges):
                block, run, stop = _logs._capped(text[start:end], run, skip_bad)
                out.append(block)
                if stop:
                    break
        return b"".join(out)

    @given(st.lists(st.sampled_from([b"ab", b"\n", b"x" * 50]), max_size=40),
           st.lists(st.integers(0, 2000), max_size=6), st.booleans())
    def test_lines_past_the_bound_are_cut(self, parts: list[bytes], cuts: list[int],
                                          skip_bad: bool) -> None:
        """Every line kept to the bound and one byte more (still too long); without
        ``skip_bad`` the copy ends with the first line too long."""
        text = b"".join(parts)
        cuts = [cut for cut in cuts if cut <= len(text)]
        lines = [line[:self.BOUND + 1] for line in text.split(b"\n")]
        if not skip_bad:
            first = next((n for n, line in enumerate(lines) if len(line) > self.BOUND), None)
            if first is not None:
                lines = lines[:first + 1]
        assert b"\n".join(lines) == self.copied(text, cuts, skip_bad)
