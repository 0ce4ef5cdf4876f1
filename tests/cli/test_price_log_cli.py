"""price-log FILE... --engine python|duckdb --by NAME,...: several logs, groups, engines."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from imagine_billing.cli import main
from tests.cli.test_estimate_cli import GOOD_JSON, on_a_terminal
from tests.helpers import DATA, one_error_line, run

USAGE = DATA / "usage"
LOG = ("timestamp,style,count,Project\n"
       "2025-08-01T09:00:00Z,anime,2,shop\n"
       "2025-08-02T09:00:00Z,flux-dev,1,blog\n")


@pytest.fixture
def log(tmp_path: Path) -> str:
    path = tmp_path / "projects.csv"
    path.write_text(LOG, encoding="utf-8")
    return str(path)


def printed(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert 0 == main(argv), capsys.readouterr().err
    return capsys.readouterr().out


class TestSeveralFiles:
    """price-log A B: totals over all, each file's own under --json."""

    def test_totals_over_all(self, log: str, capsys: pytest.CaptureFixture[str]) -> None:
        """example.csv (85) and the projects log (25): 110 tokens; each file in "files"."""
        example = str(USAGE / "example.csv")
        document = json.loads(printed(capsys, ["price-log", example, log, "--json"]))
        assert (110, 20, 6) == (document["total"], document["calls"], document["records"])
        assert [(example, 85), (log, 25)] == [(f["file"], f["total"])
                                              for f in document["files"]]

    def test_skipped_by_file(self, log: str, capsys: pytest.CaptureFixture[str]) -> None:
        """With --skip-bad, the skipped lines of each file are named with the file."""
        bad = str(USAGE / "bad.csv")
        out = printed(capsys, ["price-log", log, bad, "--skip-bad"])
        assert f"skipped in {bad}: 8 bad lines (bad-count 2 at lines 3, 8;" in out

    @pytest.mark.parametrize("engine", ["python", "duckdb"])
    def test_error_names_the_file(self, log: str, engine: str,
                                  capsys: pytest.CaptureFixture[str]) -> None:
        """A bad line of the second file: exit 2, one line naming that file and line."""
        bad = str(USAGE / "bad.csv")
        assert 2 == main(["price-log", log, bad, "--engine", engine])
        assert f"imagine-billing: error: {bad}:3: count must be" in one_error_line(
            capsys.readouterr().err)

    def test_stdin_twice(self, capsys: pytest.CaptureFixture[str]) -> None:
        """'-' twice: exit 2 before anything is read."""
        assert 2 == main(["price-log", "-", "-"])
        assert "'-' (standard input) is given twice" in one_error_line(capsys.readouterr().err)

    def test_none(self, capsys: pytest.CaptureFixture[str]) -> None:
        """No file: exit 2 asking for one."""
        assert 2 == main(["price-log"])
        assert "give the usage logs to price" in one_error_line(capsys.readouterr().err)


class TestBy:
    """--by style,day,month,COLUMN."""

    def test_text(self, log: str, capsys: pytest.CaptureFixture[str]) -> None:
        """A table of the groups, in the order of --by, after the usual ones."""
        out = printed(capsys, ["price-log", log, "--by", "project", "--by", "style"])
        assert ("PROJECT  STYLE     CALLS  TOKENS\n"
                "blog     flux-dev      1      15\n"
                "shop     anime         2      10\n") in out
        assert "total: 25 tokens for 3 calls in 2 records" in out

    def test_json(self, log: str, capsys: pytest.CaptureFixture[str]) -> None:
        """--json has "by" and "groups"."""
        document = json.loads(printed(capsys, ["price-log", log, "--by", "month,project",
                                               "--json"]))
        assert ["month", "project"] == document["by"]
        assert [{"by": {"month": "2025-08", "project": "blog"}, "calls": 1, "tokens": 15},
                {"by": {"month": "2025-08", "project": "shop"}, "calls": 2, "tokens": 10},
                ] == document["groups"]

    def test_unknown_column(self, log: str, capsys: pytest.CaptureFixture[str]) -> None:
        """A column the log lacks: exit 2 naming it and the columns there are."""
        assert 2 == main(["price-log", log, "--by", "team"])
        line = one_error_line(capsys.readouterr().err)
        assert line.endswith('no column "team" to group by (--by); the columns are timestamp, '
                             "style, count, project")

    def test_name_twice(self, log: str, capsys: pytest.CaptureFixture[str]) -> None:
        """A name twice: exit 2 naming it."""
        assert 2 == main(["price-log", log, "--by", "style,Style"])
        assert "'style' is given twice" in one_error_line(capsys.readouterr().err)


class TestEngines:
    """--engine duckdb prints what --engine python prints."""

    @pytest.mark.parametrize("args", [
        [str(USAGE / "example.csv")],
        [str(USAGE / "example.jsonl"), "--by", "day"],
        [str(USAGE / "bad.csv"), "--skip-bad"],
    ])
    def test_same_output(self, args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
        """The same text, line for line."""
        python = printed(capsys, ["price-log", *args])
        assert python == printed(capsys, ["price-log", *args, "--engine", "duckdb"])

    def test_stdin(self) -> None:
        """'-' with the duckdb engine: standard input, priced as a file would be."""
        done = run("price-log", "-", "--engine", "duckdb", "--json",
                   input=(USAGE / "example.csv").read_text(encoding="utf-8"))
        assert (0, "") == (done.returncode, done.stderr)
        assert 85 == json.loads(done.stdout)["total"]

    @pytest.mark.parametrize("args", [["--engine", "duckdb"], ["--format", "parquet"]])
    def test_without_duckdb(self, args: list[str]) -> None:
        """Without DuckDB: exit 2 and one line saying how to install it."""
        import subprocess

        code = ("import sys; sys.modules['duckdb'] = None\n"
                "from imagine_billing.cli import main\n"
                f"sys.exit(main(['price-log', {str(USAGE / 'example.csv')!r}, *{args!r}]))\n")
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              check=False)
        assert (2, "") == (done.returncode, done.stdout)
        line = one_error_line(done.stderr)
        assert "needs DuckDB: pip install 'imagine-billing[bulk]' (from a clone: pip install " \
               "-e '.[bulk]')" in line

    def test_bar_on_a_real_terminal(self, tmp_path: Path) -> None:
        """On a terminal, the duckdb engine shows the bar too, cleared before the totals;
        not a terminal: nothing on stderr."""
        from imagine_billing.cli.estimating import PROGRESS_MIN_BYTES

        path = tmp_path / "large.jsonl"
        lines = 17_000
        path.write_text((GOOD_JSON.ljust(PROGRESS_MIN_BYTES // lines + 64) + "\n") * lines,
                        encoding="utf-8")
        code, err = on_a_terminal("price-log", str(path), "--engine", "duckdb", "--json")
        assert 0 == code
        assert "price-log [##############################] 100%" in err
        assert err.endswith("\r\033[K")
        done = run("price-log", str(path), "--engine", "duckdb", "--json")
        assert (0, "") == (done.returncode, done.stderr)
