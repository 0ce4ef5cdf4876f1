"""The estimate and price-log commands."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
from pathlib import Path

import pytest

import imagine_billing as ib
from imagine_billing.cli import main
from tests.helpers import DATA, exit_code, one_error_line, run, write_book

USAGE = DATA / "usage"


class TestEstimate:
    """imagine-billing estimate STYLE[:COUNT]..."""

    def test_published_example(self, capsys: pytest.CaptureFixture[str]) -> None:
        """4 x flux-dev + 1 x anime: each line, the total 65 and the table version."""
        assert 0 == main(["estimate", "flux-dev:4", "anime"])
        out = capsys.readouterr().out
        rows = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
        assert ["flux-dev", "text-to-image", "4", "15", "60"] == rows["flux-dev"]
        assert ["anime", "text-to-image", "1", "5", "5"] == rows["anime"]
        assert ["total", "65"] == rows["total"]
        assert "imagine-api 1.0.0" in out

    def test_json(self, capsys: pytest.CaptureFixture[str]) -> None:
        """--json prints Estimate.to_dict()."""
        assert 0 == main(["estimate", "flux-dev:4", "anime", "--json"])
        printed = json.loads(capsys.readouterr().out)
        expected = ib.estimate([ib.Call("flux-dev", 4), ib.Call("anime")]).to_dict()
        assert expected == printed
        assert 65 == printed["total"]

    def test_balance_fits(self, capsys: pytest.CaptureFixture[str]) -> None:
        """With enough tokens it says so and exits 0."""
        assert 0 == main(["estimate", "flux-dev:4", "anime", "--balance", "65"])
        assert "fits, 0 left" in capsys.readouterr().out

    def test_balance_short(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Short of tokens: exit 1 and the shortfall, on stdout and in one stderr line."""
        assert 1 == main(["estimate", "flux-dev:4", "anime", "--balance", "50"])
        captured = capsys.readouterr()
        assert "short by 15" in captured.out
        assert "short by 15" in one_error_line(captured.err)

    def test_balance_json(self, capsys: pytest.CaptureFixture[str]) -> None:
        """--json with --balance adds the preflight verdict and keeps the exit code."""
        assert 1 == main(["estimate", "flux-dev:4", "anime", "--balance", "50", "--json"])
        printed = json.loads(capsys.readouterr().out)
        expected = {"ok": False, "total": 65, "available": 50, "shortfall": 15}
        assert expected == printed["preflight"]
        assert 65 == printed["total"]

    def test_operation_and_other_operation_styles(self, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
        """An operation id prices by its default style or flat cost; a style by its own
        operation."""
        table = ib.load_price_table().with_overrides(
            {"operations": {"upscale": {"cost": 3}}, "styles": {"product-shoot": {"cost": 4}}},
            version="1.0.1")
        path = tmp_path / "t.json"
        path.write_text(table.to_json(), encoding="utf-8")
        assert 0 == main(["estimate", "text-to-image:2", "upscale:2", "product-shoot",
                          "--table", str(path), "--json"])
        printed = json.loads(capsys.readouterr().out)
        assert 2 * 1 + 2 * 3 + 4 == printed["total"]
        assert "1.0.1" == printed["table_version"]
        assert "ai-background" == printed["lines"][2]["operation"]

    def test_book_and_at(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """--book prices with the version in force at --at."""
        book = write_book(tmp_path)
        assert 0 == main(["estimate", "flux-dev", "--at", "2025-12-31T23:59:59Z", "--json",
                          "--book", *book])
        assert (15, "1.0.0") == _total_and_version(capsys)
        assert 0 == main(["estimate", "flux-dev", "--at", "2026-01-01T00:00:00+00:00",
                          "--json", "--book", *book])
        assert (20, "1.1.0") == _total_and_version(capsys)

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["flux-dev:0"], "the count must be a whole number >= 1 (got '0')"),
            (["flux-dev:-2"], "the count must be a whole number >= 1"),
            (["flux-dev:1.5"], "(got '1.5')"),
            (["flux-dev:x"], "(got 'x')"),
            (["flux-dev:true"], "(got 'true')"),
            ([":3"], "expected STYLE[:COUNT]"),
            (["flux-dv"], "did you mean 'flux-dev'"),
            (["sdxl-1.0"], "has no published price in price table 1.0.0; give it a price with "
             "--price sdxl-1.0=TOKENS (or --prices PATCH.json"),
            (["background-remover"], "operation 'background-remover' has no published price"),
            (["anime", "--balance", "-1"], "--balance: must be a whole number"),
            (["anime", "--balance", "1.5"], "--balance: must be a whole number"),
            (["anime", "--at", "2025-08-01T00:00:00"], "has no time zone"),
            (["anime", "--at", "2025-08-01T00:00Z"], "is not an RFC 3339 time"),
            (["anime", "--at", "soon"], "is not an RFC 3339 time"),
            (["anime", "--at", "2025-W31-5T00:00:00Z"], "is not an RFC 3339 time"),
            (["anime", "--at", "20250801T000000Z"], "is not an RFC 3339 time"),
            (["anime", "--at", "2025-08-01 00:00:00Z"], "is not an RFC 3339 time"),
            (["anime", "--at", "2025-08-01T00:00:00.Z"], "is not an RFC 3339 time"),
            (["flux-dev:9007199254740992"],
             "the count must be at most 2**53-1 = 9007199254740991 (got 9007199254740992)"),
            (["flux-dev:99999999999999999999999"], "the count must be at most 2**53-1"),
            ([f"flux-dev:{'9' * 5000}"],
             "the count must be at most 2**53-1 = 9007199254740991 (got a number of 5000 "
             "digits)"),
            (["anime", "--balance", "9" * 5000], "--balance: must be at most 2**53-1"),
            (["upscal"], "unknown style or operation 'upscal' of price table 1.0.0; did you "
             "mean 'upscale'?"),
            (["anime", "--at", "2020-01-01T00:00:00Z"], "no price table is in force"),
            (["anime", "--table", "nope.json"], "cannot read the file"),
        ],
    )
    def test_bad_input_is_one_line_exit_2(self, capsys: pytest.CaptureFixture[str],
                                          args: list[str], message: str) -> None:
        """Bad input: exit 2 and one clear line on stderr."""
        assert 2 == exit_code(["estimate", *args])
        assert message in one_error_line(capsys.readouterr().err)

    def test_largest_count(self, capsys: pytest.CaptureFixture[str]) -> None:
        """A count of 2**53-1 is estimated exactly."""
        assert 0 == main(["estimate", "imagine-turbo:9007199254740991", "--json"])
        assert 2**53 - 1 == json.loads(capsys.readouterr().out)["total"]

    def test_lower_case_rfc_3339(self, capsys: pytest.CaptureFixture[str]) -> None:
        """RFC 3339 allows a lower-case t and z."""
        assert 0 == main(["estimate", "anime", "--at", "2025-08-01t00:00:00z"])

    def test_table_and_book_exclusive(self, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
        """--table and --book cannot be given together."""
        book = write_book(tmp_path)
        assert 2 == exit_code(["estimate", "anime", "--table", book[0], "--book", *book])
        assert "not allowed with" in one_error_line(capsys.readouterr().err)

    def test_real_process_short(self) -> None:
        """As a process: exit 1 on a shortfall, one stderr line."""
        done = run("estimate", "flux-dev:4", "anime", "--balance", "64")
        assert 1 == done.returncode
        assert "short by 1" in one_error_line(done.stderr)

    @pytest.mark.parametrize("args", [["flux-dev:0"], ["flux-dv:2"], ["sdxl-1.0"]])
    def test_real_process_bad_input(self, args: list[str]) -> None:
        """As a process: exit 2, one stderr line, no traceback, nothing on stdout."""
        done = run("estimate", *args)
        assert (2, "") == (done.returncode, done.stdout)
        one_error_line(done.stderr)


def from_a_pipe(data: bytes, *args: str) -> subprocess.CompletedProcess[str]:
    """price-log reading /dev/stdin, fed ``data`` through a pipe by a real process."""
    return run("price-log", *args, "/dev/stdin",
               input=data.decode("utf-8", "surrogateescape"), encoding="utf-8",
               errors="surrogateescape")


class TestPriceLogFromAPipe:
    """price-log on a stream that cannot be read twice."""

    def test_small_csv(self) -> None:
        """A short CSV on a pipe is priced whole (no bytes lost to guessing its format)."""
        result = from_a_pipe(b"timestamp,style,count\n2025-07-01T00:00:00Z,flux-dev,2\n")
        assert 0 == result.returncode, result.stderr
        assert "30 tokens" in result.stdout

    def test_bad_byte_far_in(self) -> None:
        """A byte that is not UTF-8 past the first blocks: its line, exit 2; skippable."""
        lines = [b"timestamp,style,count"] + [b"2025-07-01T00:00:00Z,flux-dev,2"] * 2000
        data = b"\n".join([*lines, b"2025-07-01T00:00:00Z,caf\xff,1", b""])
        result = from_a_pipe(data)
        assert 2 == result.returncode
        assert "/dev/stdin:2002: not UTF-8 text" in one_error_line(result.stderr)
        skipped = from_a_pipe(data, "--skip-bad")
        assert 0 == skipped.returncode, skipped.stderr
        assert "bad-encoding 1" in skipped.stdout
        assert "60000 tokens" in skipped.stdout

    def test_json_lines_with_format(self) -> None:
        """JSON lines on a pipe with --format jsonl; a bad byte names its line."""
        good = b'{"timestamp": "2025-07-01T00:00:00Z", "style": "anime", "count": 1}'
        result = from_a_pipe(b"\n".join([good] * 3000 + [b'{"style": "\xff"}', b""]),
                             "--format", "jsonl")
        assert 2 == result.returncode
        assert "/dev/stdin:3001: not UTF-8 text" in one_error_line(result.stderr)

    def test_json_lines_without_format(self) -> None:
        """JSON lines on a pipe, without --format, are read as JSON lines (by their first
        character), not as a bad CSV header."""
        result = from_a_pipe((USAGE / "example.jsonl").read_bytes())
        assert (0, "") == (result.returncode, result.stderr)
        assert "total: 85 tokens for 17 calls in 4 records" in result.stdout


def _total_and_version(capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    printed = json.loads(capsys.readouterr().out)
    return printed["total"], printed["table_version"]


class TestPriceLog:
    """imagine-billing price-log FILE."""

    def test_a_log_older_than_the_table(self, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
        """The default table prices a 2020 log (all of it, nothing skipped); with --book,
        the first version's date is a limit and the error names it (exit 2)."""
        log = tmp_path / "old.csv"
        log.write_text("timestamp,style,count\n2020-03-01T10:00:00Z,flux-dev,2\n"
                       "2025-08-01T10:00:00Z,anime,1\n", encoding="utf-8")
        assert 0 == main(["price-log", str(log), "--json"])
        out = json.loads(capsys.readouterr().out)
        assert 35 == out["total"]
        assert not out.get("skipped")
        book = write_book(tmp_path)
        assert 2 == main(["price-log", str(log), "--book", *book])
        err = capsys.readouterr().err
        assert "first takes effect at" in err
        assert "--skip-bad" not in err  # skipping would drop that spend silently

    @pytest.mark.parametrize("name", ["example.csv", "example.jsonl"])
    def test_totals_by_style_and_day(self, name: str,
                                     capsys: pytest.CaptureFixture[str]) -> None:
        """The hand-computed totals of the example logs, by style and UTC day."""
        assert 0 == main(["price-log", str(USAGE / name)])
        out = capsys.readouterr().out
        rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.strip()}
        assert ["4", "60"] == rows["flux-dev"]
        assert ["10", "10"] == rows["imagine-turbo"]
        assert ["5", "65"] == rows["2025-08-01"]
        assert ["12", "20"] == rows["2025-08-02"]
        assert "total: 85 tokens for 17 calls in 4 records" in out
        assert "1.0.0" in out

    def test_json(self, capsys: pytest.CaptureFixture[str]) -> None:
        """--json prints the totals document."""
        assert 0 == main(["price-log", str(USAGE / "example.csv"), "--json"])
        printed = json.loads(capsys.readouterr().out)
        assert 85 == printed["total"]
        assert {"calls": 12, "tokens": 20} == printed["by_day"]["2025-08-02"]
        assert {} == printed["skipped"]

    def test_bad_line_names_file_and_line(self, capsys: pytest.CaptureFixture[str]) -> None:
        """A bad line: exit 2, one line naming the file and line, and the way to skip."""
        assert 2 == main(["price-log", str(USAGE / "bad.csv")])
        line = one_error_line(capsys.readouterr().err)
        assert f"{USAGE / 'bad.csv'}:3:" in line
        assert "--skip-bad" in line

    def test_skip_bad_reports_by_reason(self, capsys: pytest.CaptureFixture[str]) -> None:
        """--skip-bad prices the good lines and reports the skipped ones by reason."""
        assert 0 == main(["price-log", str(USAGE / "bad.csv"), "--skip-bad"])
        out = capsys.readouterr().out
        assert "total: 65 tokens for 5 calls in 2 records" in out
        assert ("skipped: 8 bad lines (bad-count 2 at lines 3, 8; bad-timestamp 1 at line 5; "
                "missing-field 2 at lines 7, 9; unknown-style 1 at line 4; unpriced 2 at lines "
                "6, 10)") in out

    def test_book(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """With --book, each record is priced by the version in force at its time."""
        book = write_book(tmp_path)
        log = tmp_path / "log.csv"
        log.write_text("timestamp,style,count\n2025-12-31T23:00:00Z,flux-dev,1\n"
                       "2026-01-01T01:00:00+00:00,flux-dev,1\n", encoding="utf-8")
        assert 0 == main(["price-log", str(log), "--json", "--book", *book])
        printed = json.loads(capsys.readouterr().out)
        assert 35 == printed["total"]
        assert {"1.0.0": 15, "1.1.0": 20} == {v: t["tokens"] for v, t in printed["tables"].items()}

    def test_missing_file(self, capsys: pytest.CaptureFixture[str]) -> None:
        """A missing file: exit 2 and one line naming the file alone."""
        assert 2 == main(["price-log", "no-such-log.csv"])
        line = one_error_line(capsys.readouterr().err)
        assert "imagine-billing: error: no-such-log.csv: cannot read the file: No such file or " \
               "directory" == line

    def test_bad_encoding_skipped(self, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
        """A line that is not UTF-8 names its line; --skip-bad skips it as bad-encoding."""
        log = tmp_path / "log.csv"
        log.write_bytes(b"timestamp,style,count\n2025-08-01T09:00:00Z,anime,1\n"
                        b"2025-08-01T09:00:00Z,\xff,1\n2025-08-01T09:00:00Z,anime,1\n")
        assert 2 == main(["price-log", str(log)])
        line = one_error_line(capsys.readouterr().err)
        assert f"{log}:3: not UTF-8 text" in line
        assert "--skip-bad" in line
        assert 0 == main(["price-log", str(log), "--skip-bad"])
        assert "skipped: 1 bad line (bad-encoding 1 at line 3)" in capsys.readouterr().out

    @pytest.mark.parametrize(("text", "args"), [
        ('timestamp,"style,count\n2025-08-01T09:00:00Z,anime,1\n', []),
        ('{"timestamp":"2025-08-01T09:00:00Z","style":"anime","count":1}\n', ["--format", "csv"]),
    ], ids=["unclosed-quote", "json-lines-as-csv"])
    @pytest.mark.parametrize("skip", [[], ["--skip-bad"]])
    def test_malformed_header(self, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                              text: str, args: list[str], skip: list[str]) -> None:
        """A header the CSV reader cannot parse: exit 2, one line naming the file and line 1,
        with or without --skip-bad (there are no lines to skip)."""
        log = tmp_path / "log.csv"
        log.write_text(text, encoding="utf-8")
        assert 2 == main(["price-log", str(log), *args, *skip])
        line = one_error_line(capsys.readouterr().err)
        assert line.startswith(f"imagine-billing: error: {log}:1: header: not CSV this reader "
                               "reads: ")
        assert "--skip-bad" not in line

    def test_json_lines_named_csv(self, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
        """JSON lines in a file named .csv are priced as JSON lines."""
        log = tmp_path / "usage.csv"
        log.write_bytes((USAGE / "example.jsonl").read_bytes())
        assert 0 == main(["price-log", str(log), "--json"])
        assert 85 == json.loads(capsys.readouterr().out)["total"]

    def test_duplicate_key_refused(self, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
        """A JSON-lines record that repeats "count" is a bad line (not 1000 calls); skippable."""
        log = tmp_path / "usage.jsonl"
        log.write_text('{"timestamp":"2025-08-01T09:00:00Z","style":"anime","count":1,'
                       '"count":1000}\n', encoding="utf-8")
        assert 2 == main(["price-log", str(log)])
        assert f"{log}:1: duplicate key \"count\"" in one_error_line(capsys.readouterr().err)
        assert 0 == main(["price-log", str(log), "--skip-bad", "--json"])
        printed = json.loads(capsys.readouterr().out)
        assert (0, {"duplicate-key": 1}) == (printed["calls"], printed["skipped"])

    @pytest.mark.parametrize(("args", "error"), [
        ([], "/dev/zero:1: header: line too long"),
        (["--format", "jsonl"], "/dev/zero:1: line too long"),
    ])
    def test_dev_zero_is_a_clear_error(self, args: list[str], error: str) -> None:
        """/dev/zero (no line break, ever) is a line too long: exit 2 and one line, read in
        bounded memory (the process may not grow past 1 GiB)."""
        import resource

        def limit_memory() -> None:
            resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

        done = run("price-log", *args, "/dev/zero", preexec_fn=limit_memory)
        assert (2, "") == (done.returncode, done.stdout)
        assert error in one_error_line(done.stderr)

    def test_real_process(self) -> None:
        """As a process: totals on stdout, nothing on stderr (not a terminal: no bar)."""
        done = run("price-log", str(USAGE / "example.jsonl"), "--json")
        assert (0, "") == (done.returncode, done.stderr)
        assert 85 == json.loads(done.stdout)["total"]

    def test_real_process_bad_line(self) -> None:
        """As a process: a bad line is exit 2 with one stderr line."""
        done = run("price-log", str(USAGE / "bad.csv"))
        assert 2 == done.returncode
        assert ":3:" in one_error_line(done.stderr)


GOOD_JSON = '{"timestamp": "2025-08-01T09:00:00Z", "style": "anime", "count": 1}'
BAD_JSON = '{"timestamp": "2025-08-01T09:00:00Z", "style": "anme", "count": 1}'


@pytest.fixture(scope="module")
def large_logs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two JSON-lines logs larger than the bar's threshold: all good, and with a bad last
    line. Lines are padded with spaces so that a few thousand records make 9 MB."""
    from imagine_billing.cli.estimating import PROGRESS_MIN_BYTES

    folder = tmp_path_factory.mktemp("large")
    lines = 17_000
    width = PROGRESS_MIN_BYTES // lines + 64
    good = (GOOD_JSON.ljust(width) + "\n") * lines
    paths = folder / "good.jsonl", folder / "bad.jsonl"
    paths[0].write_text(good, encoding="utf-8")
    paths[1].write_text(good + BAD_JSON + "\n", encoding="utf-8")
    assert paths[0].stat().st_size > PROGRESS_MIN_BYTES
    return paths


def on_a_terminal(*args: str) -> tuple[int, str]:
    """The command line as a process whose stderr is a terminal (a pty): its exit code
    and what it wrote there."""
    controller, terminal = os.openpty()
    try:
        child = subprocess.Popen([sys.executable, "-m", "imagine_billing", *args],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=terminal)
    finally:
        os.close(terminal)
    chunks = []
    try:
        while select.select([controller], [], [], 60)[0]:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: the child has closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(controller)
    return child.wait(timeout=60), b"".join(chunks).decode("utf-8", "replace")


class TestProgress:
    """price-log's progress bar: on a terminal, for large files only."""

    def test_bar_on_a_real_terminal(self, large_logs: tuple[Path, Path]) -> None:
        """On a terminal, a large file shows a bar, cleared before the totals."""
        code, err = on_a_terminal("price-log", str(large_logs[0]), "--json")
        assert 0 == code
        assert "price-log [" in err
        assert err.endswith("\r\033[K")

    def test_error_after_the_bar_has_a_line_of_its_own(
            self, large_logs: tuple[Path, Path]) -> None:
        """An error after the bar has shown starts at the start of a cleared line."""
        code, err = on_a_terminal("price-log", str(large_logs[1]))
        assert 2 == code
        bar, cleared, message = err.rpartition("\r\033[K")
        assert ("\r\033[K", "\rprice-log [") == (cleared, bar[:12])
        assert message.startswith(f"imagine-billing: error: {large_logs[1]}:17001: unknown "
                                  "style 'anme'")
        assert 1 == len(message.strip().splitlines())

    def test_no_bar_without_a_terminal(self, large_logs: tuple[Path, Path]) -> None:
        """A large file with stderr not a terminal: nothing on stderr."""
        done = run("price-log", str(large_logs[0]), "--json")
        assert (0, "") == (done.returncode, done.stderr)
        assert 17_000 == json.loads(done.stdout)["records"]

    def test_bar_on_a_terminal(self, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
        """On a terminal, a large file shows a bar on stderr, cleared at the end."""
        from imagine_billing.cli import estimating

        monkeypatch.setattr(estimating, "PROGRESS_MIN_BYTES", 1)
        monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
        assert 0 == main(["price-log", str(USAGE / "example.csv")])
        err = capsys.readouterr().err
        assert "price-log [##############################] 100%" in err
        assert err.endswith("\r\033[K")

    def test_no_bar_for_small_files(self, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
        """A small file shows no bar, even on a terminal."""
        monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
        assert 0 == main(["price-log", str(USAGE / "example.csv")])
        assert "" == capsys.readouterr().err
