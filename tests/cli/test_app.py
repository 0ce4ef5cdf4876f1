"""The command line as a whole: exit codes by kind of failure, and output encodings."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from imagine_billing.cli import app, main, tables
from tests.helpers import DATA, run

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
        assert "Anime \u2192 \u732b" == out["table"]["styles"]["anime"]["name"]

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
