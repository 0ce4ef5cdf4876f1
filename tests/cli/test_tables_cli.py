"""The prices and validate commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import imagine_billing as ib
from imagine_billing.cli import main
from tests.helpers import DATA, one_error_line, run, write_book

BAD = DATA / "invalid" / "many-problems.json"
GOOD = DATA / "valid" / "bundled-minified.json"


class TestPrices:
    """imagine-billing prices."""

    def test_lists_styles_with_costs(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Every style appears with its cost; unpublished ones say unpriced."""
        assert 0 == main(["prices"])
        out = capsys.readouterr().out
        lines = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
        assert "15" == lines["flux-dev"][3]
        assert "1" == lines["imagine-turbo"][3]
        assert "unpriced" in lines["sdxl-1.0"]
        assert "imagine-api 1.0.0" in out

    def test_json_is_the_document(self, capsys: pytest.CaptureFixture[str]) -> None:
        """--json prints the table document itself: the bundled table's, the same digest."""
        assert 0 == main(["prices", "--json"])
        printed = json.loads(capsys.readouterr().out)
        assert ib.load_price_table().to_dict() == printed
        assert ib.load_price_table().digest == ib.load_price_table(printed).digest

    def test_json_validates(self, tmp_path: Path) -> None:
        """prices --json > t.json && validate t.json passes, with overrides too."""
        path = tmp_path / "t.json"
        printed = run("prices", "--json", "--price", "sdxl-1.0=2")
        assert 0 == printed.returncode, printed.stderr
        path.write_text(printed.stdout)
        checked = run("validate", str(path))
        assert 0 == checked.returncode, checked.stdout
        assert checked.stdout.startswith(f"valid    {path}  (imagine-api 1.0.1,")

    def test_other_table(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """--table FILE lists that table."""
        document = json.loads(GOOD.read_text())
        document["styles"]["flux-dev"]["cost"] = 12
        document["version"] = "1.1.0"
        path = tmp_path / "mine.json"
        path.write_text(json.dumps(document))
        assert 0 == main(["prices", "--table", str(path), "--json"])
        assert 12 == json.loads(capsys.readouterr().out)["styles"]["flux-dev"]["cost"]

    def test_invalid_table_is_one_line_exit_1(self) -> None:
        """An invalid --table gives one line on stderr, no traceback, exit 1 (a failed check)."""
        result = run("prices", "--table", str(BAD))
        assert 1 == result.returncode
        assert 1 == len(result.stderr.strip().splitlines())
        assert "Traceback" not in result.stderr
        assert "5 problems" in result.stderr
        assert "imagine-billing validate" in result.stderr


class TestValidate:
    """imagine-billing validate FILE..."""

    def test_valid_files_exit_0(self, capsys: pytest.CaptureFixture[str]) -> None:
        """All valid: exit 0, each file marked valid."""
        files = sorted(str(p) for p in (DATA / "valid").glob("*.json"))
        assert 0 == main(["validate", *files])
        out = capsys.readouterr().out
        assert len(files) == out.count("valid ")

    def test_every_problem_of_every_file(self, capsys: pytest.CaptureFixture[str]) -> None:
        """An invalid file lists all its problems with paths; exit 1."""
        other = DATA / "invalid" / "cost-float.json"
        assert 1 == main(["validate", str(GOOD), str(BAD), str(other)])
        out = capsys.readouterr().out
        for path in (
            "/version",
            "/styles/flux-dev/cost",
            "/styles/anime/cost",
            "/operations/text-to-image/default_style",
            "/extra",
        ):
            assert f"  {path}: " in out
        assert f"invalid  {other}: 1 problem" in out

    def test_unreadable_wins_exit_2(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A missing file makes the exit 2, and the others are still checked."""
        assert 2 == main(["validate", str(BAD), str(tmp_path / "missing.json")])
        out = capsys.readouterr().out
        assert "unreadable" in out
        assert "/extra" in out

    def test_json_output(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """--json reports each file with its problems."""
        assert 1 == main(["validate", "--json", str(GOOD), str(BAD)])
        report = json.loads(capsys.readouterr().out)
        assert report["valid"] is False
        good, bad = report["files"]
        assert (True, False) == (good["valid"], bad["valid"])
        assert {
            "path": "/extra",
            "message": "unknown key 'extra' (expected one of: api, "
            "effective_from, format, note, operations, source, styles, unit, version)",
        } in bad["problems"]

    def test_not_json_is_unreadable(self, tmp_path: Path) -> None:
        """Text that is not JSON exits 2 through a real process."""
        path = tmp_path / "t.json"
        path.write_text("not json")
        result = run("validate", str(path))
        assert 2 == result.returncode
        assert "not JSON" in result.stdout
        assert "Traceback" not in result.stderr


    def test_deeply_nested_file_is_invalid_not_a_crash(self, tmp_path: Path) -> None:
        """A value nested 985 deep under an unknown key: exit 1, no traceback."""
        text = GOOD.read_text().rstrip()
        path = tmp_path / "d.json"
        path.write_text(text[:-1] + ', "extra": ' + "[" * 985 + "]" * 985 + "}")
        result = run("validate", str(path))
        assert (1, "") == (result.returncode, result.stderr)
        assert "  /extra: unknown key 'extra'" in result.stdout
        assert "nested too deeply for a price table" in result.stdout

    @pytest.mark.parametrize(
        "name",
        ["version-trailing-newline.json", "style-id-trailing-newline.json",
         "lone-surrogate-name.json"],
    )
    def test_hostile_text_is_invalid(self, name: str) -> None:
        """A trailing newline in a version or id, or a lone surrogate: invalid, exit 1."""
        result = run("validate", str(DATA / "invalid" / name))
        assert (1, "") == (result.returncode, result.stderr)
        assert "invalid " in result.stdout


class TestValidateBookNow:
    """imagine-billing validate --book ... --now TIME."""

    @pytest.fixture
    def versions(self, tmp_path: Path) -> tuple[Path, Path]:
        """The bundled table and a version 2.0.0 scheduled for 2030."""
        table = ib.load_price_table()
        v1, v2 = tmp_path / "v1.json", tmp_path / "v2.json"
        v1.write_text(table.to_json())
        patch = {"effective_from": "2030-01-01T00:00:00Z", "styles": {"flux-dev": {"cost": 20}}}
        v2.write_text(table.with_overrides(patch, version="2.0.0").to_json())
        return v1, v2

    @pytest.mark.parametrize(
        ("now", "code", "rule"),
        [
            ("2026-01-01T00:00:00Z", 0, "withdrawn-version"),
            ("2031-01-01T00:00:00Z", 1, "published-unchanged"),
        ],
    )
    def test_now_separates_scheduled_from_in_force(
        self,
        versions: tuple[Path, Path],
        capsys: pytest.CaptureFixture[str],
        now: str,
        code: int,
        rule: str,
    ) -> None:
        """A dropped version is a warning before its date and an error after it."""
        v1, v2 = versions
        args = ["validate", "--json", "--book", str(v1), "--previous", str(v1), str(v2)]
        assert code == main([*args, "--now", now])
        findings = json.loads(capsys.readouterr().out)["book"]["findings"]
        assert [rule] == [f["rule"] for f in findings]

    def test_now_needs_book(self, versions: tuple[Path, Path]) -> None:
        """--now without --book is bad usage: exit 2, one line."""
        result = run("validate", str(versions[0]), "--now", "2026-01-01T00:00:00Z")
        assert (2, ["imagine-billing validate: error: --now needs --book"]) == (
            result.returncode, result.stderr.strip().splitlines()
        )

    def test_now_must_be_a_time(self, versions: tuple[Path, Path]) -> None:
        """A --now that is not an RFC 3339 time with a zone (nor a date alone) is exit 2."""
        result = run("validate", "--book", str(versions[0]), "--now", "2026-01-01T00:00Z")
        assert 2 == result.returncode
        assert "2026-01-01T00:00Z" in result.stderr


class TestUsage:
    """Bad usage of the command line."""

    def test_no_arguments_prints_the_help(self) -> None:
        """No arguments at all: the help on stdout, exit 0 (nothing failed)."""
        result = run()
        assert (0, "") == (result.returncode, result.stderr)
        assert result.stdout.startswith("usage: imagine-billing")
        assert "Exit codes:" in result.stdout

    def test_a_group_without_its_subcommand_is_exit_2(self) -> None:
        """`ledger --db F` without a subcommand is bad usage: one line, exit 2."""
        result = run("ledger", "--db", "x.db")
        assert 2 == result.returncode
        assert "required" in one_error_line(result.stderr)

    def test_unknown_option(self) -> None:
        """An unknown option is exit 2."""
        result = run("prices", "--colour")
        assert 2 == result.returncode
        assert "--colour" in result.stderr

    def test_help(self) -> None:
        """--help lists the commands and exits 0."""
        result = run("--help")
        assert 0 == result.returncode
        assert "prices" in result.stdout
        assert "validate" in result.stdout


class TestExport:
    """prices --export: the price book as an interval table (issue 14 item 1)."""

    def test_csv_of_a_book(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        import csv
        import io

        book = write_book(tmp_path)
        assert 0 == main(["prices", "--export", "csv", "--book", *book])
        rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
        flux = [(r["version"], r["cost"], r["valid_from"], r["valid_to"])
                for r in rows if r["style"] == "flux-dev"]
        assert [("1.0.0", "15", "2025-07-01 00:00:00", "2026-01-01 00:00:00"),
                ("1.1.0", "20", "2026-01-01 00:00:00", "")] == flux
        assert {""} == {r["cost"] for r in rows if r["style"] == "sdxl-1.0"}

    def test_sql_prices_a_log_as_price_log_does(self, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
        """End to end: the exported SQL and the documented query, in SQLite, give the
        figures of price-log --book on the same log."""
        import sqlite3

        from imagine_billing.pricing.intervals import PRICING_QUERY

        book = write_book(tmp_path)
        rows = [("2025-12-31T23:59:59Z", "flux-dev", 2), ("2026-01-01T00:00:00Z", "flux-dev", 1),
                ("2026-02-01T08:00:00Z", "anime", 3)]
        log = tmp_path / "log.csv"
        log.write_text("timestamp,style,count\n" + "".join(f"{t},{s},{c}\n" for t, s, c in rows),
                       encoding="utf-8")
        assert 0 == main(["price-log", str(log), "--json", "--book", *book])
        expected = json.loads(capsys.readouterr().out)["by_style"]
        assert 0 == main(["prices", "--export", "sql", "--book", *book])
        connection = sqlite3.connect(":memory:")
        connection.executescript(capsys.readouterr().out)
        connection.execute('CREATE TABLE usage ("timestamp" TIMESTAMP, style TEXT, count INT)')
        connection.executemany("INSERT INTO usage VALUES (?, ?, ?)",
                               [(t.replace("T", " ").removesuffix("Z"), s, c)
                                for t, s, c in rows])
        got = {style: {"calls": calls, "tokens": tokens}
               for style, calls, tokens in connection.execute(PRICING_QUERY)}
        assert expected == got
        assert {"calls": 3, "tokens": 2 * 15 + 20} == got["flux-dev"]

    def test_parquet_needs_a_file(self, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
        assert 2 == main(["prices", "--export", "parquet"])
        assert "--export parquet writes a binary file: give --output FILE" in one_error_line(
            capsys.readouterr().err)
        path = tmp_path / "prices.parquet"
        assert 0 == main(["prices", "--export", "parquet", "--output", str(path)])
        import duckdb

        styles = duckdb.sql(f"SELECT style FROM read_parquet('{path}')").fetchall()
        assert len(ib.load_price_table().styles) == len(styles)

    def test_output_replaces_only_an_export(self, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
        notes = tmp_path / "notes.csv"
        notes.write_text("my notes\n", encoding="utf-8")
        assert 2 == main(["prices", "--export", "csv", "--output", str(notes)])
        assert "is not a csv export of prices" in one_error_line(capsys.readouterr().err)
        assert "my notes\n" == notes.read_text(encoding="utf-8")
        out = tmp_path / "prices.csv"
        assert 0 == main(["prices", "--export", "csv", "--output", str(out)])
        first = out.read_text(encoding="utf-8")
        assert 0 == main(["prices", "--export", "csv", "--output", str(out), "--price",
                          "sdxl-1.0=2"])
        assert first != out.read_text(encoding="utf-8")
        assert "sdxl-1.0,2," in out.read_text(encoding="utf-8")


def test_validate_book_is_repeatable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """validate --book A --book B checks both (the last --book alone was kept, silently)."""
    first, second = write_book(tmp_path)  # 1.1.0 raises a price: a major bump is due
    assert 1 == main(["validate", "--book", first, "--book", second, "--json"])
    repeated = capsys.readouterr().out
    assert 1 == main(["validate", "--book", first, second, "--json"])
    assert json.loads(repeated) == json.loads(capsys.readouterr().out)
    assert "semver-bump" in repeated
    assert "1.0.0" in repeated
    assert "1.1.0" in repeated
