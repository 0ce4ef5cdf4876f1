"""The command line as a whole: exit codes by kind of failure, and output encodings."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

import imagine_billing as ib
from imagine_billing.cli import app, main, tables
from tests.helpers import DATA, Clock, exit_code, one_error_line, run

BAD = DATA / "invalid" / "many-problems.json"


class TestExitCodes:
    """Which failures exit 1, 2 and 3."""

    def test_invalid_table_is_a_failed_check(self) -> None:
        """A --table that is read but invalid exits 1 (as `validate` does), in one line."""
        result = run("prices", "--table", str(BAD), text=False)
        assert 1 == result.returncode
        stderr = result.stderr.decode()
        assert 1 == len(stderr.strip().splitlines())
        assert "5 problems" in stderr

    def test_unreadable_table_is_bad_input(self, tmp_path: Path) -> None:
        """A --table that cannot be read (missing, not JSON) exits 2."""
        (tmp_path / "t.json").write_text("not json")
        assert 2 == main(["prices", "--table", str(tmp_path / "missing.json")])
        assert 2 == main(["prices", "--table", str(tmp_path / "t.json")])

    def test_a_bug_exits_3_with_its_traceback(self, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
        """An exception that is not a BillingError is a bug: traceback, a line, exit 3."""

        def broken(args: argparse.Namespace) -> int:
            return {}["missing"]  # type: ignore[no-any-return]

        monkeypatch.setattr(tables, "run_prices", broken)
        assert app.EXIT_BUG == main(["prices"])
        err = capsys.readouterr().err
        assert "Traceback" in err
        assert "KeyError" in err
        assert "internal error (KeyError): this is a bug" in err.splitlines()[-1]


@pytest.fixture
def credited(tmp_path: Path) -> str:
    """A ledger file with one credit."""
    path = str(tmp_path / "l.db")
    assert 0 == main(["ledger", "--db", path, "credit", "10", "--key", "c"])
    return path


def writing_to(stdout: object, *args: str) -> subprocess.CompletedProcess[str]:
    """The command line as a real process whose stdout is ``stdout`` (a file or a
    descriptor); its stderr is captured."""
    return subprocess.run([sys.executable, "-m", "imagine_billing", *args], stdout=stdout,
                          stderr=subprocess.PIPE, text=True, timeout=60, check=False)


class TestOutputThatCannotBeWritten:
    """stdout on a full disk (/dev/full: every write fails with ENOSPC), attack review item
    10: one line naming the problem, exit 2, never a traceback; a closed pipe stays exit 0."""

    @pytest.mark.parametrize("argv", [
        ["ledger", "export"], ["ledger", "export", "--format", "csv"], ["ledger", "entries"],
        ["ledger", "balance"], ["prices"], ["price-log", "{log}"],
    ])
    def test_a_full_disk(self, credited: str, tmp_path: Path, argv: list[str]) -> None:
        """Large output fails as it is printed, small output when it is flushed at the end:
        both are the same one line."""
        log = tmp_path / "u.csv"
        log.write_text("timestamp,style,count\n2026-11-03T10:00:00Z,anime,1\n")
        words = [word.format(log=log) for word in argv]
        if words[0] == "ledger":
            words[1:1] = ["--db", credited]
        with open("/dev/full", "w", encoding="utf-8") as full:
            result = writing_to(full, *words)
        assert 2 == result.returncode, result.stderr
        line = one_error_line(result.stderr)
        assert line == "imagine-billing: error: cannot write the output: No space left on device"

    def test_a_full_disk_under_json(self, credited: str) -> None:
        with open("/dev/full", "w", encoding="utf-8") as full:
            result = writing_to(full, "ledger", "--db", credited, "balance", "--json")
        assert 2 == result.returncode, result.stderr
        document = json.loads(one_error_line(result.stderr, named=False))
        assert "cannot write the output: No space left on device" == document["error"]
        assert 2 == document["exit_code"]
        assert "traceback" not in document

    def test_a_closed_pipe_is_no_error(self, credited: str) -> None:
        """The reader went away (``| head``): exit 0 and nothing said, as before."""
        reader, writer = os.pipe()
        os.close(reader)
        try:
            result = writing_to(writer, "ledger", "--db", credited, "export")
        finally:
            os.close(writer)
        assert 0 == result.returncode
        assert "" == result.stderr


    @pytest.mark.parametrize("json_flag", [[], ["--json"]], ids=["text", "json"])
    def test_a_closed_stdout_is_no_error(self, credited: str, json_flag: list[str]) -> None:
        """stdout closed (``>&-``: Python's is None): the output goes nowhere and the exit
        code is the command's (it was exit 3 with a traceback, "this is a bug")."""
        for argv, code in ((["balance"], 0), (["verify"], 0),
                           (["debit", "99999", "--key", "big"], 1)):
            result = subprocess.run(
                ["sh", "-c", 'exec "$0" "$@" >&-', sys.executable, "-m", "imagine_billing",
                 "ledger", "--db", credited, *argv, *json_flag],
                stderr=subprocess.PIPE, text=True, timeout=60, check=False)
            assert code == result.returncode, result.stderr
            assert "Traceback" not in result.stderr
            assert "traceback" not in result.stderr


class TestEncodings:
    """Output to a stream that is not UTF-8 (a Windows runner writing to a file)."""

    def test_json_is_ascii_on_a_legacy_encoding(self, tmp_path: Path) -> None:
        """--json on a cp1252 stdout is plain ASCII JSON, and decodes to the same names."""
        document = json.loads((DATA / "valid" / "bundled-minified.json").read_text())
        document["styles"]["anime"]["name"] = "Anime \u2192 \u732b"
        path = tmp_path / "t.json"
        path.write_text(json.dumps(document), encoding="utf-8")
        result = run("prices", "--table", str(path), "--json", text=False,
                     env={"PYTHONIOENCODING": "cp1252"})
        assert 0 == result.returncode, result.stderr
        assert result.stdout.isascii()
        out = json.loads(result.stdout)
        assert "Anime \u2192 \u732b" == out["styles"]["anime"]["name"]

    def test_text_escapes_what_the_encoding_lacks(self, tmp_path: Path) -> None:
        """Text output on a cp1252 stdout escapes characters it cannot hold, never crashes."""
        document = json.loads((DATA / "valid" / "bundled-minified.json").read_text())
        document["styles"]["anime"]["name"] = "Anime \u2192"
        path = tmp_path / "t.json"
        path.write_text(json.dumps(document), encoding="utf-8")
        result = run("prices", "--table", str(path), text=False,
                     env={"PYTHONIOENCODING": "cp1252"})
        assert 0 == result.returncode, result.stderr
        assert b"Anime \\u2192" in result.stdout

    @pytest.mark.parametrize("json_flag", [[], ["--json"]])
    def test_lone_surrogate_key(self, tmp_path: Path, json_flag: list[str]) -> None:
        """A key holding a lone surrogate is a problem at its path, printed escaped: exit 1."""
        text = (DATA / "valid" / "bundled-minified.json").read_text()
        path = tmp_path / "t.json"
        path.write_text(text.rstrip()[:-1] + ', "\\ud800x": 1}', encoding="utf-8")
        result = run("validate", *json_flag, str(path), text=False)
        assert 1 == result.returncode, result.stderr
        assert b"" == result.stderr
        if json_flag:
            problems = json.loads(result.stdout)["files"][0]["problems"]
            assert ["/\ud800x"] == [p["path"] for p in problems]
        else:
            assert b"/\\ud800x: key not valid Unicode text" in result.stdout


class TestVersion:
    """--version."""

    def test_version(self) -> None:
        """--version prints the program's name and the installed version, exit 0."""
        from importlib.metadata import version

        result = run("--version")
        assert (0, f"imagine-billing {version('imagine-billing')}\n") == (
            result.returncode, result.stdout)


class TestJsonErrors:
    """Under --json, an error is one JSON object on stderr, whatever the command."""

    @pytest.mark.parametrize(("argv", "code", "words"), [
        (["estimate", "flux-dv", "--json"], 2, "did you mean 'flux-dev'"),
        (["estimate", "anime", "--balance", "x", "--json"], 2, "--balance"),
        (["estimate", "anime", "--balance", "1", "--json"], 1, "not enough tokens"),
        (["estimate", "anime", "--json", "--at", "2026-01-01T10:00Z"], 2, "RFC 3339"),
        (["prices", "--json", "--table", "{missing}"], 2, "cannot read"),
        (["prices", "--json", "--table", str(BAD)], 1, "5 problems"),
        (["validate", "--json"], 2, "give price documents"),
        (["diff", "{missing}", "{missing}", "--format", "json"], 2, "cannot read"),
        (["plan", "--tokens", "5", "sdxl-1.0", "--json"], 2, "--price sdxl-1.0=TOKENS"),
        (["price-log", "{missing}", "--json"], 2, "missing"),
        (["ledger", "--db", "{missing}", "balance", "--json"], 2, "no such file"),
        (["ledger", "balance", "--json"], 2, "--db FILE is required"),
        (["ledger", "--db", "{missing}", "--json", "balance"], 2, "unrecognized arguments"),
        (["budget", "status", "--db", "{missing}", "--json"], 2, "no such file"),
        (["forecast", "--db", "{missing}", "--json"], 2, "no such file"),
        (["forecast", "--jso"], 2, "--db FILE is required"),
    ])
    def test_one_object(self, *, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                        capsys: pytest.CaptureFixture[str], argv: list[str], code: int,
                        words: str) -> None:
        """The object has the message, the exit code and what the code means."""
        monkeypatch.delenv("IMAGINE_BILLING_DB", raising=False)
        missing = str(tmp_path / "missing.json")
        assert code == exit_code([a.format(missing=missing) for a in argv])
        err = capsys.readouterr().err
        assert 1 == len(err.strip().splitlines()), err
        error = json.loads(err)
        assert {"error", "exit_code", "meaning"} == set(error)
        assert (code, app.EXIT_MEANINGS[code]) == (error["exit_code"], error["meaning"])
        assert words in error["error"]
        assert not error["error"].startswith("imagine-billing")

    def test_as_a_process(self, tmp_path: Path) -> None:
        """The same from a real process, with nothing else on stderr."""
        result = run("ledger", "balance", "--db", str(tmp_path / "x.db"), "--json")
        assert 2 == result.returncode
        assert {"error": f"ledger {tmp_path / 'x.db'}: no such file (a ledger is created by "
                "its first write)", "exit_code": 2,
                "meaning": "bad usage or unreadable input"} == json.loads(result.stderr)

    def test_text_errors_stay_lines(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Without --json the error is the usual line."""
        assert 2 == exit_code(["estimate", "flux-dv"])
        assert capsys.readouterr().err.startswith("imagine-billing: error: unknown style")

    def test_a_bug_keeps_its_traceback(self, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
        """Exit 3 under --json: the object carries the traceback."""

        def broken(args: argparse.Namespace) -> int:
            return {}["missing"]  # type: ignore[no-any-return]

        monkeypatch.setattr(tables, "run_prices", broken)
        assert app.EXIT_BUG == main(["prices", "--json"])
        error = json.loads(capsys.readouterr().err)
        assert (3, "internal error (a bug: please report it)") == (error["exit_code"],
                                                                   error["meaning"])
        assert "KeyError" in error["traceback"]


def _no_fractions(value: object) -> None:
    """No string in a JSON document is a fraction such as "100/3"."""
    if isinstance(value, dict):
        for item in value.values():
            _no_fractions(item)
    elif isinstance(value, list):
        for item in value:
            _no_fractions(item)
    elif isinstance(value, str):
        assert not re.fullmatch(r"-?\d+/\d+", value), value


class TestJsonNumbers:
    """Numbers in --json are JSON integers or decimal strings, never fractions."""

    def test_decimal_text(self) -> None:
        """Six places, half to even, trailing zeros dropped, exact at any size."""
        from fractions import Fraction

        from imagine_billing.cli.output import decimal_text

        assert ["71.428571", "0.8", "40", "-2.5", "0.000002", "0.000004", "0"] == [
            decimal_text(v) for v in (Fraction(500, 7), Fraction(4, 5), 40, Fraction(-5, 2),
                                      Fraction(25, 10**7), Fraction(35, 10**7),
                                      Fraction(-1, 10**9))]
        assert "3" * 41 + ".333333" == decimal_text(Fraction(10**41, 3))

    def test_forecast(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """forecast --json: a burn of 500/7 a day is "71.428571"; the horizon is 30."""
        clock = Clock(datetime(2026, 1, 1, tzinfo=UTC))
        with ib.Ledger.open(tmp_path / "l.db", clock=clock) as ledger:
            ledger.credit(1000, key="c")
            clock.advance(days=1)
            ledger.debit(500, key="d")
        assert 0 == main(["forecast", "--db", str(tmp_path / "l.db"), "--now", "2026-01-08",
                          "--window", "7", "--json"])
        document = json.loads(capsys.readouterr().out)
        _no_fractions(document)
        assert ("71.428571", 30, "2142.857143") == (
            document["burn_per_day"], document["horizon_days"], document["projected_spend"])
        assert isinstance(document["runway_seconds"], int)

    def test_budgets_and_diff(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """budget add/status and diff --json print thresholds and ratios as decimals."""
        db = str(tmp_path / "l.db")
        assert 0 == main(["budget", "--db", db, "add", "b", "--limit", "30", "--period",
                          "total", "--alerts", "0.125,2/3", "--json"])
        assert ["0.125", "0.666667"] == json.loads(capsys.readouterr().out)["alerts"]
        main(["ledger", "--db", db, "credit", "100", "--key", "c"])
        main(["ledger", "--db", db, "debit", "25", "--key", "d"])
        capsys.readouterr()
        assert 0 == main(["budget", "--db", db, "status", "b", "--json"])
        status = json.loads(capsys.readouterr().out)
        _no_fractions(status)
        assert [("0.125", "3.75"), ("0.666667", "20")] == [
            (a["threshold"], a["tokens"]) for a in status["alerts"]["actual"]]
        new = ib.load_price_table().with_overrides(
            {"styles": {"flux-dev": {"cost": 10}}}, version="2.0.0")
        (tmp_path / "new.json").write_text(new.to_json())
        (tmp_path / "old.json").write_text(ib.load_price_table().to_json())
        main(["diff", str(tmp_path / "old.json"), str(tmp_path / "new.json"), "--json"])
        document = json.loads(capsys.readouterr().out)
        _no_fractions(document)
        assert "0.666667" == document["diff"]["repriced"][0]["ratio"]

    def test_rule_in_help(self, capsys: pytest.CaptureFixture[str]) -> None:
        """--help states the rule."""
        assert 0 == exit_code(["forecast", "--help"])
        assert "rounded half to even to 6 places" in " ".join(capsys.readouterr().out.split())


class TestDates:
    """A date alone is midnight UTC wherever a time is taken."""

    @pytest.mark.parametrize("argv", [
        ["estimate", "anime", "--at", "2025-08-01", "--json"],
        ["validate", "--book", str(DATA / "valid" / "bundled-minified.json"), "--now",
         "2026-01-01", "--json"],
    ])
    def test_accepted(self, argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
        """--at and --now take a date."""
        assert 0 == exit_code(argv)

    def test_is_midnight_utc(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """ledger entries --until 2026-01-02 stops before midnight UTC of that day."""
        clock = Clock(datetime(2026, 1, 1, 23, 59, 59, tzinfo=UTC))
        with ib.Ledger.open(tmp_path / "l.db", clock=clock) as ledger:
            ledger.credit(5, key="before")
            clock.now = datetime(2026, 1, 2, tzinfo=UTC)
            ledger.credit(5, key="at")
        db = str(tmp_path / "l.db")
        assert 0 == main(["ledger", "--db", db, "entries", "--until", "2026-01-02", "--json"])
        assert ["before"] == [e["key"] for e in json.loads(capsys.readouterr().out)["entries"]]
        assert 0 == main(["ledger", "--db", db, "entries", "--since", "2026-01-02", "--json"])
        assert ["at"] == [e["key"] for e in json.loads(capsys.readouterr().out)["entries"]]

    @pytest.mark.parametrize("text", ["2026-01-01T10:00Z", "2026-02-30", "2026-01-01T00:00:00"])
    def test_refused(self, text: str, capsys: pytest.CaptureFixture[str]) -> None:
        """A time without seconds or zone, or a date that does not exist: exit 2."""
        assert 2 == exit_code(["estimate", "anime", "--at", text])
        assert repr(text) in one_error_line(capsys.readouterr().err)
