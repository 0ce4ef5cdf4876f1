"""Where commands get their prices and ledger: --db in either place, the environment
variables, --book one file per occurrence, and the --price/--prices overrides."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import imagine_billing as ib
from imagine_billing.cli import main
from tests.helpers import exit_code, one_error_line

VARIABLES = ("IMAGINE_BILLING_DB", "IMAGINE_BILLING_TABLE", "IMAGINE_BILLING_BOOK")


@pytest.fixture(autouse=True)
def _no_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with none of the variables set."""
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """A ledger file holding a credit of 100."""
    path = tmp_path / "l.db"
    assert 0 == main(["ledger", "--db", str(path), "credit", "100", "--key", "c"])
    return path


@pytest.fixture
def book(tmp_path: Path) -> tuple[Path, Path]:
    """The bundled table (1.0.0, flux-dev 15) and a 1.1.0 from 2026-01-01 (flux-dev 10)."""
    first = ib.load_price_table()
    second = first.with_overrides({"effective_from": "2026-01-01T00:00:00Z",
                                   "styles": {"flux-dev": {"cost": 10}}}, version="1.1.0")
    paths = (tmp_path / "v1.json", tmp_path / "v2.json")
    paths[0].write_text(first.to_json())
    paths[1].write_text(second.to_json())
    return paths


def out_of(capsys: pytest.CaptureFixture[str], argv: list[str], code: int = 0) -> str:
    """The stdout of ``argv``, which must exit ``code``."""
    capsys.readouterr()
    assert code == exit_code(argv), capsys.readouterr().err
    return capsys.readouterr().out


class TestDbOption:
    """--db before or after the subcommand, and IMAGINE_BILLING_DB."""

    @pytest.mark.parametrize("argv", [
        ["ledger", "--db", "{db}", "balance"],
        ["ledger", "balance", "--db", "{db}"],
        ["ledger", "balance", "--json", "--db", "{db}"],
        ["budget", "--db", "{db}", "status"],
        ["budget", "status", "--db", "{db}"],
        ["forecast", "--db", "{db}"],
    ])
    def test_either_place(self, db: Path, argv: list[str],
                          capsys: pytest.CaptureFixture[str]) -> None:
        """--db after the subcommand works as before it."""
        out_of(capsys, [a.format(db=db) for a in argv])

    def test_after_the_subcommand_of_a_write(self, db: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
        """ledger debit ... --db F writes to F."""
        out_of(capsys, ["ledger", "debit", "7", "--key", "d", "--db", str(db)])
        assert "available 93" in out_of(capsys, ["ledger", "balance", "--db", str(db)])

    @pytest.mark.parametrize("argv", [["ledger", "balance"], ["budget", "status"],
                                      ["forecast"], ["budget", "add", "b", "--limit", "5"]])
    def test_missing_names_the_variable(self, argv: list[str],
                                        capsys: pytest.CaptureFixture[str]) -> None:
        """No --db, no IMAGINE_BILLING_DB and no configuration: exit 2, one line naming
        all three."""
        assert 2 == exit_code(argv)
        line = one_error_line(capsys.readouterr().err)
        assert ("--db FILE is required (or set IMAGINE_BILLING_DB, or db in "
                "imagine-billing.toml)") in line

    def test_variable_is_the_default(self, db: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
        """IMAGINE_BILLING_DB names the ledger when --db is not given."""
        monkeypatch.setenv("IMAGINE_BILLING_DB", str(db))
        assert "available 100" in out_of(capsys, ["ledger", "balance"])

    def test_option_wins(self, db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                         capsys: pytest.CaptureFixture[str]) -> None:
        """--db wins over IMAGINE_BILLING_DB."""
        monkeypatch.setenv("IMAGINE_BILLING_DB", str(tmp_path / "other.db"))
        assert "available 100" in out_of(capsys, ["ledger", "--db", str(db), "balance"])
        assert not (tmp_path / "other.db").exists()

    def test_help_names_the_variables(self, capsys: pytest.CaptureFixture[str]) -> None:
        """--help says which variable gives each default."""
        assert "$IMAGINE_BILLING_DB" in out_of(capsys, ["ledger", "--help"])
        assert "$IMAGINE_BILLING_TABLE" in out_of(capsys, ["estimate", "--help"])
        assert "$IMAGINE_BILLING_BOOK" in out_of(capsys, ["estimate", "--help"])
        top = " ".join(out_of(capsys, ["--help"]).split())
        for name in VARIABLES:
            assert name in top


class TestTableVariables:
    """IMAGINE_BILLING_TABLE and IMAGINE_BILLING_BOOK."""

    def test_table_variable(self, book: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch,
                            capsys: pytest.CaptureFixture[str]) -> None:
        """IMAGINE_BILLING_TABLE prices estimate, prices, plan and ledger debit."""
        monkeypatch.setenv("IMAGINE_BILLING_TABLE", str(book[1]))
        assert 40 == json.loads(out_of(capsys, ["estimate", "flux-dev:4", "--json"]))["total"]
        assert "1.1.0" == json.loads(out_of(capsys, ["prices", "--json"]))["version"]
        assert {"flux-dev": 3} == json.loads(
            out_of(capsys, ["plan", "--tokens", "30", "flux-dev", "--json"]))["counts"]

    def test_table_option_wins(self, book: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
        """--table and --book win over the variables."""
        monkeypatch.setenv("IMAGINE_BILLING_TABLE", str(book[1]))
        monkeypatch.setenv("IMAGINE_BILLING_BOOK", str(book[1]))
        argv = ["estimate", "flux-dev:4", "--json"]
        assert 60 == json.loads(out_of(capsys, [*argv, "--table", str(book[0])]))["total"]
        assert 60 == json.loads(out_of(capsys, [*argv, "--book", str(book[0]),
                                                "--at", "2025-12-31"]))["total"]

    def test_book_variable(self, book: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch,
                           capsys: pytest.CaptureFixture[str]) -> None:
        """IMAGINE_BILLING_BOOK, files separated by os.pathsep, is a book for estimate; a
        command of one table uses the version in force now."""
        monkeypatch.setenv("IMAGINE_BILLING_BOOK", os.pathsep.join(map(str, book)))
        argv = ["estimate", "flux-dev:4", "--json", "--at"]
        assert 60 == json.loads(out_of(capsys, [*argv, "2025-12-31"]))["total"]
        assert 40 == json.loads(out_of(capsys, [*argv, "2026-01-01"]))["total"]
        assert "1.1.0" == json.loads(out_of(capsys, ["prices", "--json"]))["version"]

    def test_both_variables_is_exit_2(self, book: tuple[Path, Path],
                                      monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
        """Both variables and neither option: exit 2 saying how to choose."""
        monkeypatch.setenv("IMAGINE_BILLING_TABLE", str(book[1]))
        monkeypatch.setenv("IMAGINE_BILLING_BOOK", str(book[0]))
        assert 2 == exit_code(["estimate", "anime"])
        assert "both set: give --table FILE or --book FILE to choose" in one_error_line(
            capsys.readouterr().err)
        # plan has no --book: it is not offered one
        assert 2 == exit_code(["plan", "--tokens", "10", "anime"])
        assert "both set: give --table FILE to choose" in one_error_line(
            capsys.readouterr().err)


class TestBook:
    """--book FILE, repeatable; --book A.json B.json no longer swallows the calls."""

    def test_old_form_keeps_the_calls(self, book: tuple[Path, Path],
                                      capsys: pytest.CaptureFixture[str]) -> None:
        """estimate --book a.json b.json flux-dev:4 estimates flux-dev:4."""
        document = json.loads(out_of(capsys, [
            "estimate", "--book", str(book[0]), str(book[1]), "flux-dev:4", "--at",
            "2026-02-01", "--json"]))
        assert (40, "1.1.0") == (document["total"], document["table_version"])

    def test_repeated(self, book: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
        """--book a.json --book b.json is the same book."""
        document = json.loads(out_of(capsys, [
            "estimate", "--book", str(book[1]), "--book", str(book[0]), "flux-dev:4",
            "--at", "2025-12-01", "--json"]))
        assert (60, "1.0.0") == (document["total"], document["table_version"])

    def test_calls_keep_their_order(self, book: tuple[Path, Path],
                                    capsys: pytest.CaptureFixture[str]) -> None:
        """Calls before and after --book are estimated in command-line order."""
        document = json.loads(out_of(capsys, [
            "estimate", "anime", "--book", str(book[0]), "flux-dev:2", "imagine-turbo",
            "--json"]))
        assert ["anime", "flux-dev", "imagine-turbo"] == [
            line["style"] for line in document["lines"]]

    def test_no_calls_is_exit_2(self, book: tuple[Path, Path],
                                capsys: pytest.CaptureFixture[str]) -> None:
        """--book files and no call: exit 2 asking for the calls."""
        assert 2 == exit_code(["estimate", "--book", str(book[0]), str(book[1])])
        assert "STYLE[:COUNT]" in one_error_line(capsys.readouterr().err)

    def test_bad_call_after_book(self, book: tuple[Path, Path],
                                 capsys: pytest.CaptureFixture[str]) -> None:
        """A bad STYLE:COUNT after the book files is a usage error naming it."""
        assert 2 == exit_code(["estimate", "--book", str(book[0]), "flux-dev:0"])
        assert "'flux-dev:0'" in one_error_line(capsys.readouterr().err)

    def test_price_log_file_after_book(self, book: tuple[Path, Path], tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
        """price-log --book a.json b.json LOG prices LOG."""
        log = tmp_path / "usage.csv"
        log.write_text("timestamp,style,count\n2026-01-02T00:00:00Z,flux-dev,2\n")
        document = json.loads(out_of(capsys, [
            "price-log", "--book", str(book[0]), str(book[1]), str(log), "--json"]))
        assert 20 == document["total"]


class TestOverrides:
    """--price STYLE=TOKENS and --prices PATCH.json on the commands that take a table."""

    def test_estimate(self, capsys: pytest.CaptureFixture[str]) -> None:
        """--price sdxl-1.0=2 prices the unpriced style, in a table of the next version."""
        document = json.loads(out_of(capsys, ["estimate", "sdxl-1.0:3", "anime",
                                              "--price", "sdxl-1.0=2", "--json"]))
        assert (11, "1.0.1") == (document["total"], document["table_version"])

    def test_patch_file(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """--prices applies a JSON Merge Patch, then --price, on prices."""
        patch = tmp_path / "patch.json"
        patch.write_text('{"version": "1.5.0", "styles": {"sdxl-1.0": {"cost": 4}, '
                         '"anime": {"cost": 6}}}')
        document = json.loads(out_of(capsys, ["prices", "--prices", str(patch), "--price",
                                              "anime=7", "--price", "upscale=3", "--json"]))
        assert ("1.5.0", 4, 7, 3) == (document["version"],
                                      document["styles"]["sdxl-1.0"]["cost"],
                                      document["styles"]["anime"]["cost"],
                                      document["operations"]["upscale"]["cost"])

    def test_ledger_plan_and_price_log(self, db: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
        """ledger debit/hold, plan and price-log take --price too."""
        entry = json.loads(out_of(capsys, ["ledger", "debit", "sdxl-1.0:2", "--key", "d",
                                           "--price", "sdxl-1.0=2", "--db", str(db),
                                           "--json"]))["entry"]
        assert (4, "1.0.1") == (entry["tokens"], entry["table_version"])
        hold = json.loads(out_of(capsys, ["ledger", "hold", "sdxl-1.0", "--key", "h",
                                          "--price", "sdxl-1.0=3", "--db", str(db),
                                          "--json"]))["entry"]
        assert 3 == hold["tokens"]
        plan = json.loads(out_of(capsys, ["plan", "--tokens", "10", "sdxl-1.0",
                                          "--price", "sdxl-1.0=3", "--json"]))
        assert {"sdxl-1.0": 3} == plan["counts"]
        log = tmp_path / "usage.csv"
        log.write_text("timestamp,style,count\n2026-01-02T00:00:00Z,sdxl-1.0,2\n")
        totals = json.loads(out_of(capsys, ["price-log", str(log), "--price", "sdxl-1.0=5",
                                            "--json"]))
        assert 10 == totals["total"]

    @pytest.mark.parametrize(("argv", "message"), [
        (["estimate", "sdxl-1.0"], "has no published price in price table 1.0.0; give it a "
         "price with --price sdxl-1.0=TOKENS (or --prices PATCH.json"),
        (["plan", "--tokens", "5", "sdxl-1.0"], "--price sdxl-1.0=TOKENS"),
        (["ledger", "--db", "{db}", "debit", "sdxl-1.0", "--key", "d"],
         "--price sdxl-1.0=TOKENS"),
        (["price-log", "{log}"], "--price sdxl-1.0=TOKENS"),
        (["estimate", "upscale"], "--price upscale=TOKENS"),
    ])
    def test_unpriced_names_the_option(self, db: Path, tmp_path: Path, argv: list[str],
                                       message: str,
                                       capsys: pytest.CaptureFixture[str]) -> None:
        """An unpriced style from the command line names --price, not Python."""
        log = tmp_path / "usage.csv"
        log.write_text("timestamp,style,count\n2026-01-02T00:00:00Z,sdxl-1.0,2\n")
        assert 2 == exit_code([a.format(db=db, log=log) for a in argv])
        line = one_error_line(capsys.readouterr().err)
        assert message in line
        assert "with_overrides" not in line

    @pytest.mark.parametrize(("argv", "message"), [
        (["--price", "nope=3"], "--price nope=3: unknown style or operation 'nope'"),
        (["--price", "anime"], "'anime': expected STYLE=TOKENS"),
        (["--price", "anime=-1"], "TOKENS must be a whole number >= 0 (got '-1')"),
        (["--prices", "{missing}"], "cannot read the file"),
        (["--prices", "{list}"], "a JSON Merge Patch of a price table is a JSON object"),
        (["--prices", "{negative}"], "would make an invalid price table: "),
        (["--prices", "{broken}"], "not JSON"),
    ])
    def test_bad_overrides_are_exit_2(self, tmp_path: Path, argv: list[str], message: str,
                                      capsys: pytest.CaptureFixture[str]) -> None:
        """A bad --price or --prices: exit 2, one line naming it."""
        files = {"missing": tmp_path / "missing.json", "list": tmp_path / "list.json",
                 "negative": tmp_path / "neg.json", "broken": tmp_path / "broken.json"}
        files["list"].write_text("[1]")
        files["negative"].write_text('{"styles": {"anime": {"cost": -1}}}')
        files["broken"].write_text('{"styles": ')
        assert 2 == exit_code(["estimate", "anime", *(a.format(**files) for a in argv)])
        assert message in one_error_line(capsys.readouterr().err)

    def test_book_with_overrides(self, book: tuple[Path, Path],
                                 capsys: pytest.CaptureFixture[str]) -> None:
        """--price applies to every version of a book."""
        argv = ["estimate", "sdxl-1.0", "--book", str(book[0]), "--book", str(book[1]),
                "--price", "sdxl-1.0=2", "--json", "--at"]
        assert ("1.0.1", 2) == tuple(json.loads(out_of(capsys, [*argv, "2025-08-01"]))[k]
                                     for k in ("table_version", "total"))
        assert ("1.1.1", 2) == tuple(json.loads(out_of(capsys, [*argv, "2026-08-01"]))[k]
                                     for k in ("table_version", "total"))
