"""The ledger command: writes, reads, verify, export and import, with their exit codes."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import sys
from pathlib import Path

import pytest

import imagine_billing as ib
from imagine_billing.cli import main
from tests.helpers import one_error_line, run


class Cli:
    """Runs ``imagine-billing ledger --db FILE ...`` in-process, capturing its output."""

    def __init__(self, db: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.db = db
        self.capsys = capsys

    def __call__(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        try:
            code = main(["ledger", "--db", str(self.db), *args])
        except SystemExit as exited:
            code = int(exited.code or 0)
        out, err = self.capsys.readouterr()
        return code, out, err

    def json(self, *args: str) -> object:
        code, out, err = self(*args, "--json")
        assert 0 == code, err
        return json.loads(out)


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(tmp_path / "ledger.db", capsys)


class TestWrites:
    """credit, hold, capture, void, debit and refund write entries and print the balance."""

    def test_a_day_of_work(self, cli: Cli) -> None:
        """credit 100, hold 15, capture 10, debit 20, refund 5: posted 75."""
        assert 0 == cli("credit", "100", "--key", "c", "--memo", "top-up", "--tag", "p=x")[0]
        hold = cli.json("hold", "15", "--key", "h", "--expires-in", "3600")
        assert {"posted": 100, "held": 15, "available": 85} == hold["balance"]  # type: ignore[index]
        assert "open" == hold["hold"]["status"]  # type: ignore[index]
        captured = cli.json("capture", "h", "10")
        assert ("capture", 90) == (captured["entry"]["kind"],  # type: ignore[index]
                                   captured["balance"]["available"])  # type: ignore[index]
        assert 0 == cli("debit", "20", "--key", "d")[0]
        refund = cli.json("refund", "d", "5", "--key", "r")
        assert {"posted": 75, "held": 0, "available": 75} == refund["balance"]  # type: ignore[index]
        code, out, _ = cli("balance")
        assert (0, "posted 75, held 0, available 75\n") == (code, out)

    def test_holds_and_entries_by_id(self, cli: Cli) -> None:
        """HOLD and ENTRY may be given by id."""
        cli("credit", "50", "--key", "c")
        cli("hold", "10", "--key", "h")
        assert "void" == cli.json("void", "2")["entry"]["kind"]  # type: ignore[index]
        cli("debit", "5", "--key", "d")
        assert 4 == cli.json("refund", "4", "--key", "r")["entry"]["ref"]  # type: ignore[index]

    def test_a_numeric_key_wins_over_an_id(self, cli: Cli) -> None:
        """A hold whose key is "1" is found by that key, not as entry 1."""
        cli("credit", "50", "--key", "c")
        cli("hold", "10", "--key", "1")
        assert 2 == cli.json("void", "1")["entry"]["ref"]  # type: ignore[index]

    def test_a_retried_hold_with_an_expiry_replays(self, cli: Cli) -> None:
        """hold --expires-in run twice is one hold: the expiry counts from the first run."""
        cli("credit", "50", "--key", "c")
        first = cli.json("hold", "10", "--key", "h", "--expires-in", "60")
        again = cli.json("hold", "10", "--key", "h", "--expires-in", "60")
        assert {**first, "replayed": True} == again  # type: ignore[dict-item]
        assert 2 == cli("hold", "11", "--key", "h", "--expires-in", "60")[0]

    def test_amounts_by_style(self, cli: Cli) -> None:
        """debit flux-dev:2 anime prices 35 tokens with the bundled table."""
        cli("credit", "100", "--key", "c")
        entry = cli.json("debit", "flux-dev:2", "anime", "--key", "d")["entry"]  # type: ignore[index]
        assert (35, [["anime", 5], ["flux-dev", 30]]) == (entry["tokens"], entry["styles"])
        assert entry["table_digest"].startswith("sha256:")

    def test_replays_print_the_original(self, cli: Cli) -> None:
        """The same credit twice is one entry, the second time "replayed"."""
        first = cli.json("credit", "5", "--key", "c")
        assert False is first["replayed"]  # type: ignore[index]
        assert {**first, "replayed": True} == cli.json(  # type: ignore[dict-item]
            "credit", "5", "--key", "c")
        assert 1 == cli.json("verify")["entries"]  # type: ignore[index]


    def test_memo_on_debit_and_hold(self, cli: Cli) -> None:
        """debit and hold take --memo, as credit does."""
        cli("credit", "50", "--key", "c")
        debit = cli.json("debit", "anime", "--key", "d", "--memo", "batch 1")
        hold = cli.json("hold", "5", "--key", "h", "--memo", "batch 2")
        assert ("batch 1", "batch 2") == (debit["entry"]["memo"],  # type: ignore[index]
                                          hold["entry"]["memo"])  # type: ignore[index]

    def test_replay_says_so_in_text(self, cli: Cli) -> None:
        """A replayed write says "replayed" in its text; a new one does not."""
        first = cli("credit", "5", "--key", "c")[1]
        again = cli("credit", "5", "--key", "c")[1]
        assert "replayed" not in first
        assert ("entry 1: credit of 5 tokens (key c): replayed, already recorded by an "
                "earlier run, nothing written") == again.splitlines()[0]
        cli("hold", "5", "--key", "h")
        assert False is cli.json("void", "h")["replayed"]  # type: ignore[index]
        assert True is cli.json("void", "h")["replayed"]  # type: ignore[index]


class TestExitCodes:
    """1 for short tokens and failed checks, 2 for bad input; one line on stderr."""

    def test_insufficient_tokens_is_1(self, cli: Cli) -> None:
        """A debit over the balance exits 1 naming the shortfall."""
        cli("credit", "10", "--key", "c")
        code, _, err = cli("debit", "11", "--key", "d")
        assert 1 == code
        assert "short by 1" in one_error_line(err, named=False)
        assert 1 == cli("hold", "11", "--key", "h")[0]

    @pytest.mark.parametrize("args", [
        ("credit", "0", "--key", "k"),
        ("credit", "1.5", "--key", "k"),
        ("credit", "5"),
        ("debit", "0", "--key", "k"),
        ("debit", "flux-dvv", "--key", "k"),
        ("debit", "flux-dev:0", "--key", "k"),
        ("credit", "5", "--key", "k", "--tag", "novalue"),
        ("entries", "--since", "2026-01-01T00:00Z"),
        ("capture", "nope"),
        ("refund", "c", "--key", "r"),
        ("credit", "6", "--key", "c"),
    ])
    def test_bad_input_is_2(self, cli: Cli, args: tuple[str, ...]) -> None:
        """Bad numbers, styles, tags, times, references and reused keys exit 2."""
        cli("credit", "5", "--key", "c")
        code, _, err = cli(*args)
        assert 2 == code
        one_error_line(err, named=False)

    def test_reading_a_missing_file_is_2(self, cli: Cli) -> None:
        """balance of a file that does not exist exits 2 and does not create it."""
        code, _, err = cli("balance")
        assert 2 == code
        assert "no such file" in one_error_line(err, named=False)
        assert not cli.db.exists()


class TestVerify:
    """verify exits 0 on an intact ledger and 1 naming the first bad entry."""

    def test_intact(self, cli: Cli) -> None:
        """Three entries verify; the head of the chain is printed, to keep elsewhere."""
        for n in range(3):
            cli("credit", "1", "--key", f"c{n}")
        code, out, _ = cli("verify")
        with ib.Ledger.open(cli.db) as ledger:
            head = ledger.head()
        assert (0, f"ok: 3 entries, hash chain and balance intact\nhead: 3:{head[1]}\n") == (
            code, out)
        assert {"ok": True, "entries": 3, "head": {"id": 3, "hash": head[1]}} == cli.json(
            "verify")

    def test_tampered(self, cli: Cli) -> None:
        """A changed entry 2 exits 1 and names entry 2."""
        for n in range(3):
            cli("credit", "1", "--key", f"c{n}")
        with contextlib.closing(sqlite3.connect(cli.db)) as db, db:
            db.execute("DROP TRIGGER entries_append_only_update")
            db.execute("UPDATE entries SET tokens = 1000 WHERE id = 2")
        code, out, err = cli("verify", "--json")
        assert (1, {"ok": False, "entry": 2}) == (
            code, {k: v for k, v in json.loads(out).items() if k != "reason"})
        assert "entry 2" in one_error_line(err, named=False)


class TestEntries:
    """entries lists entries, filtered by time and tags."""

    def test_filters(self, cli: Cli) -> None:
        """--tag keeps matching entries; --until in the past keeps none."""
        cli("credit", "10", "--key", "a", "--tag", "project=site")
        cli("credit", "10", "--key", "b", "--tag", "project=app")
        found = cli.json("entries", "--tag", "project=site")["entries"]  # type: ignore[index]
        assert ["a"] == [e["key"] for e in found]
        assert [] == cli.json("entries", "--until", "2000-01-01T00:00:00Z")["entries"]  # type: ignore[index]
        code, out, _ = cli("entries")
        assert 0 == code
        assert ["ID", "1", "2"] == [line.split()[0] for line in out.splitlines()]


class TestExportImport:
    """export writes JSON lines or CSV; import loads JSON lines into a new file, verified."""

    @pytest.fixture
    def exported(self, cli: Cli, tmp_path: Path) -> Path:
        cli("credit", "100", "--key", "c")
        cli("hold", "15", "--key", "h")
        cli("capture", "h", "5")
        cli("debit", "anime", "--key", "d")
        code, out, _ = cli("export")
        assert 0 == code
        path = tmp_path / "export.jsonl"
        path.write_text(out)
        return path

    def test_round_trip(self, cli: Cli, exported: Path, tmp_path: Path,
                        capsys: pytest.CaptureFixture[str]) -> None:
        """import into a new file gives the same balance and entries."""
        copy = Cli(tmp_path / "copy.db", capsys)
        result = copy.json("import", str(exported))
        head = cli.json("verify")["head"]  # type: ignore[index]
        assert {"ok": True, "entries": 4, "balance": cli.json("balance"), "head": head} == result
        assert cli.json("entries") == copy.json("entries")

    def test_csv(self, cli: Cli, exported: Path) -> None:
        """CSV has a header and one row per entry."""
        code, out, _ = cli("export", "--format", "csv")
        assert 0 == code
        assert 5 == len(out.splitlines())
        assert out.startswith("id,kind,key,tokens,at,")

    def test_a_broken_export_is_refused(self, exported: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
        """A changed line exits 1 naming the entry, and leaves no file behind."""
        lines = exported.read_text().splitlines()
        document = json.loads(lines[1])
        document["tokens"] = 1
        lines[1] = json.dumps(document)
        exported.write_text("\n".join(lines) + "\n")
        copy = Cli(tmp_path / "copy.db", capsys)
        code, _, err = copy("import", str(exported))
        assert 1 == code
        assert "entry 2" in one_error_line(err, named=False)
        assert not copy.db.exists()

    def test_import_into_a_used_ledger_is_2(self, cli: Cli, exported: Path) -> None:
        """The target must hold no entries."""
        code, _, err = cli("import", str(exported))
        assert 2 == code
        assert "already holds entries" in one_error_line(err, named=False)
        assert 4 == cli.json("verify")["entries"]  # type: ignore[index]

    @pytest.mark.parametrize("dangling", [False, True])
    @pytest.mark.parametrize(("line", "expected"), [('{"kind": "credit"}', 2), ("", 1)])
    def test_a_failed_import_leaves_the_files_as_they_were(
            self, *, exported: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
            dangling: bool, line: str, expected: int) -> None:
        """A bad line (exit 2) or a broken chain (exit 1), into a missing path or a dangling
        symbolic link: the same files after as before, the link kept."""
        lines = exported.read_text().splitlines()
        exported.write_text("\n".join([*lines[:1], line, *lines[2:]]) + "\n")
        target = tmp_path / "new.db"
        if dangling:
            target.symlink_to(tmp_path / "missing.db")
        before = sorted(p.name for p in tmp_path.iterdir())
        code, _, err = Cli(target, capsys)("import", str(exported))
        assert (expected, before, dangling) == (
            code, sorted(p.name for p in tmp_path.iterdir()), target.is_symlink()), err
        assert "Traceback" not in one_error_line(err, named=False)

    def test_an_unreadable_file_is_2(self, cli: Cli, tmp_path: Path) -> None:
        """A missing export file exits 2."""
        code, _, err = cli("import", str(tmp_path / "missing.jsonl"))
        assert 2 == code
        assert "cannot read" in one_error_line(err, named=False)


class TestProcess:
    """The real command line."""

    def test_python_dash_m(self, tmp_path: Path) -> None:
        """python -m imagine_billing ledger ... works end to end."""
        db = str(tmp_path / "l.db")
        for args in (["credit", "3", "--key", "a"], ["balance", "--json"]):
            result = run("ledger", "--db", db, *args)
            assert 0 == result.returncode, result.stderr
        assert {"posted": 3, "held": 0, "available": 3} == json.loads(result.stdout)
        with ib.Ledger.open(db) as ledger:
            assert 1 == ledger.verify()


class TestHostileValues:
    """Values a review found to end in tracebacks: each is now one line and exit 2."""

    @staticmethod
    def exit_code(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
        from imagine_billing.cli import main

        try:
            code = main(argv)
        except SystemExit as stop:  # argparse refusing an argument
            code = int(stop.code or 0)
        err = capsys.readouterr().err
        return code, err

    @pytest.mark.parametrize("argv", [
        ["credit", str(2**63), "--key", "k"],
        ["credit", "1", "--key", "\udcff"],
        ["credit", "1", "--key", "m", "--memo", "\udcff"],
        ["credit", "1", "--key", "t", "--tag", "a=\udcff"],
        ["capture", "99999999999999999999"],
        ["hold", "1", "--key", "h", "--expires-in", "99999999999999"],
        ["entries", "--since", "0001-01-02T00:00:00Z"],
    ])
    def test_ledger_values(self, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                           argv: list[str]) -> None:
        """Huge numbers, text that is not Unicode, times out of range: exit 2, one line."""
        db = str(tmp_path / "l.db")
        from imagine_billing.cli import main

        assert 0 == main(["ledger", "--db", db, "credit", "5", "--key", "seed"])
        capsys.readouterr()
        code, err = self.exit_code(["ledger", "--db", db, *argv], capsys)
        assert 2 == code
        assert 1 == len(err.strip().splitlines())
        assert "Traceback" not in err

    def test_import_of_bytes_that_are_not_utf8(self, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
        """An export file that is not UTF-8 names its line."""
        bad = tmp_path / "bad.jsonl"
        bad.write_bytes(b"\xff\xfe not json\n")
        code, err = self.exit_code(["ledger", "--db", str(tmp_path / "new.db"), "import",
                                    str(bad)], capsys)
        assert 2 == code
        assert f"{bad}:1: not UTF-8 text" in err

    def test_import_of_a_deeply_nested_line(self, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
        """JSON nested deeper than Python recurses: exit 2, one line naming the line, and no
        ledger file left."""
        deep = tmp_path / "deep.jsonl"
        deep.write_text("[" * 100_000 + "]" * 100_000 + "\n")
        db = tmp_path / "new.db"
        code, err = self.exit_code(["ledger", "--db", str(db), "import", str(deep)], capsys)
        assert (2, True, False) == (code, f"{deep}:1: not a ledger entry: its JSON is "
                                    "nested too deeply" in one_error_line(err, named=False),
                                    db.exists())

    def test_verify_without_the_tip_row(self, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
        """A deleted balance row is corruption (exit 1), not a TypeError."""
        import sqlite3

        db = tmp_path / "l.db"
        from imagine_billing.cli import main

        assert 0 == main(["ledger", "--db", str(db), "credit", "5", "--key", "seed"])
        with sqlite3.connect(db) as connection:
            connection.execute("DELETE FROM tip")
        connection.close()
        capsys.readouterr()
        code, err = self.exit_code(["ledger", "--db", str(db), "verify"], capsys)
        assert 1 == code
        assert "tip" in err


class TestExpire:
    """ledger expire releases holds past their expiry."""

    def test_lapsed_hold_is_released(self, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
        """A hold past --expires-in cannot be captured; expire gives its tokens back."""
        import json
        import time

        from imagine_billing.cli import main

        db = str(tmp_path / "l.db")
        assert 0 == main(["ledger", "--db", db, "credit", "10", "--key", "c"])
        assert 0 == main(["ledger", "--db", db, "hold", "10", "--key", "h", "--expires-in", "1"])
        time.sleep(1.1)
        assert 2 == main(["ledger", "--db", db, "capture", "h"])
        assert "void it, or expire holds" in capsys.readouterr().err
        assert 0 == main(["ledger", "--db", db, "expire", "--json"])
        report = json.loads(capsys.readouterr().out)
        assert (1, 10) == (len(report["expired"]), report["balance"]["available"])
        assert 0 == main(["ledger", "--db", db, "expire"])
        assert "0 holds expired, 0 tokens released" in capsys.readouterr().out


class TestAnchors:
    """verify --expect ID:HASH and import --expect: a head kept elsewhere catches a chain cut
    short or rewritten."""

    def test_verify_against_a_head(self, cli: Cli) -> None:
        """The head printed earlier verifies later; after the end is cut, exit 1 naming it."""
        for n in range(3):
            cli("credit", "1", "--key", f"c{n}")
        head = cli.json("verify")["head"]  # type: ignore[index]
        anchor = f"{head['id']}:{head['hash']}"
        cli("credit", "1", "--key", "c3")
        assert 0 == cli("verify", "--expect", anchor)[0]
        with ib.Ledger.open(cli.db) as ledger:
            second = ledger.get(2).hash
        with contextlib.closing(sqlite3.connect(cli.db)) as db, db:
            db.execute("DROP TRIGGER entries_append_only_delete")
            db.execute("DELETE FROM entries WHERE id > 2")
            db.execute(f"UPDATE tip SET id = 2, hash = '{second}', posted = 2")
        assert 0 == cli("verify")[0]
        code, out, err = cli("verify", "--expect", anchor, "--json")
        assert (1, False, 3) == (code, json.loads(out)["ok"], json.loads(out)["entry"])
        assert "entry 3" in one_error_line(err, named=False)

    @pytest.mark.parametrize("option", ["--expect", "--since"])
    @pytest.mark.parametrize("bad", ["3", "x:" + "0" * 64, "3:abc", "3:" + "G" * 64])
    def test_a_bad_anchor_is_2(self, cli: Cli, bad: str, option: str) -> None:
        """--expect or --since that is not ID:HASH is bad usage."""
        cli("credit", "1", "--key", "c")
        code, _, err = cli("verify", option, bad)
        assert 2 == code
        assert "ID:HASH" in one_error_line(err, named=False)

    def test_verify_since_a_head(self, cli: Cli) -> None:
        """From the head printed earlier, the new entries are checked; the next head printed."""
        for n in range(3):
            cli("credit", "1", "--key", f"c{n}")
        head = cli.json("verify")["head"]  # type: ignore[index]
        anchor = f"{head['id']}:{head['hash']}"
        cli("credit", "1", "--key", "c3")
        cli("debit", "2", "--key", "d")
        with ib.Ledger.open(cli.db) as ledger:
            last = ledger.head()
        code, out, _ = cli("verify", "--since", anchor)
        assert (0, f"ok: 2 entries after entry 3, hash chain and balance intact\n"
                   f"head: 5:{last[1]}\n") == (code, out)
        assert {"ok": True, "entries": 2, "since": head, "head": {"id": 5, "hash": last[1]}} == (
            cli.json("verify", "--since", anchor))

    def test_verify_since_a_changed_anchor(self, cli: Cli) -> None:
        """The anchor's entry changed: exit 1 naming it."""
        for n in range(3):
            cli("credit", "1", "--key", f"c{n}")
        head = cli.json("verify")["head"]  # type: ignore[index]
        with contextlib.closing(sqlite3.connect(cli.db)) as db, db:
            db.execute("DROP TRIGGER entries_append_only_update")
            db.execute("UPDATE entries SET tokens = 2 WHERE id = 3")
        code, out, err = cli("verify", "--since", f"3:{head['hash']}", "--json")
        assert (1, False, 3) == (code, json.loads(out)["ok"], json.loads(out)["entry"])
        assert "entry 3" in one_error_line(err, named=False)

    def test_import_of_an_export_cut_short(self, cli: Cli, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
        """Without its last line, an export is refused against its head: exit 1, no file."""
        cli("credit", "10", "--key", "c")
        cli("debit", "3", "--key", "d")
        head = cli.json("verify")["head"]  # type: ignore[index]
        exported = tmp_path / "export.jsonl"
        exported.write_text("".join(cli("export")[1].splitlines(keepends=True)[:-1]))
        copy = Cli(tmp_path / "copy.db", capsys)
        code, _, err = copy("import", str(exported), "--expect", f"2:{head['hash']}")
        assert (1, False) == (code, copy.db.exists())
        assert "entry 2" in one_error_line(err, named=False)


class TestBudgetAlerts:
    """budget add --alerts: a threshold of an absurd size is refused at once, exit 2."""

    @pytest.mark.parametrize("alerts", ["1e-999999999", "1e999999999", "0.5,1e-7"])
    def test_an_exponent_out_of_bounds(self, tmp_path: Path, alerts: str,
                                       capsys: pytest.CaptureFixture[str]) -> None:
        """One line naming the threshold, no budget stored."""
        path = tmp_path / "ledger.db"
        code = main(["budget", "--db", str(path), "add", "b", "--limit", "10",
                     "--alerts", alerts])
        err = one_error_line(capsys.readouterr().err, named=False)
        assert (2, True) == (code, alerts.rsplit(",", maxsplit=1)[-1] in err)
        with ib.Ledger.open(path) as ledger:
            assert () == ledger.budgets()


class TestUnusableFiles:
    """Files a user can hand the CLI that are not usable ledgers: one line, never exit 3."""

    def test_a_database_of_something_else(self, cli: Cli) -> None:
        """A read command on another application's SQLite file exits 2 and changes nothing."""
        with contextlib.closing(sqlite3.connect(cli.db)) as db, db:
            db.execute("CREATE TABLE mine (x)")
        code, _, err = cli("balance")
        assert 2 == code
        assert "something else" in one_error_line(err, named=False)
        with contextlib.closing(sqlite3.connect(cli.db)) as db:
            assert ["mine"] == [r[0] for r in db.execute("SELECT name FROM sqlite_master")]

    def test_a_damaged_file(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """verify exits 1; entries, export and credit exit 2; each one line on stderr."""
        from tests.unit.test_ledger_sqlite import damaged

        cli = Cli(damaged(tmp_path), capsys)
        for args, expected in ((("verify",), 1), (("entries",), 2), (("export",), 2),
                               (("credit", "1", "--key", "k"), 2)):
            code, _, err = cli(*args)
            assert (expected, True) == (code, "malformed" in one_error_line(err, named=False))

    def test_a_row_past_the_last_entry(self, cli: Cli) -> None:
        """A forged row past the tip: verify and the next write exit 1, naming it."""
        cli("credit", "5", "--key", "c")
        with contextlib.closing(sqlite3.connect(cli.db)) as db, db:
            db.execute("INSERT INTO entries (id, kind, key, tokens, at, tags, styles, "
                       "fingerprint, hash) VALUES (2, 'credit', 'ghost', 5, 0, '{}', '[]', "
                       "'x', 'junk')")
        for args in (("verify",), ("credit", "1", "--key", "new"), ("refund", "ghost",
                                                                    "--key", "r")):
            code, _, err = cli(*args)
            assert (1, True) == (code, "entry 2" in one_error_line(err, named=False))

    def test_a_read_only_file(self, tmp_path: Path) -> None:
        """A user who may read but not write the file: balance exits 0, credit exits 2."""
        from tests.unit.test_ledger_sqlite import read_only_ledger, run_as_another_user

        folder, path = read_only_ledger(tmp_path)
        command = [sys.executable, "-m", "imagine_billing", "ledger", "--db", str(path)]
        read = run_as_another_user([*command, "balance"], folder)
        write = run_as_another_user([*command, "credit", "1", "--key", "k"], folder)
        assert (0, "posted 5, held 0, available 5\n") == (read.returncode, read.stdout)
        assert 2 == write.returncode, write.stderr
        assert "read-only" in one_error_line(write.stderr, named=False)

    def test_a_read_only_folder(self, tmp_path: Path) -> None:
        """A ledger in a folder its user may not write (or on a read-only mount): balance,
        verify, entries and export exit 0; a write exits 2 with one line."""
        from tests.unit.test_ledger_sqlite import read_only_folder, run_as_another_user

        folder, path = read_only_folder(tmp_path)
        command = [sys.executable, "-m", "imagine_billing", "ledger", "--db", str(path)]
        codes = {args[0]: run_as_another_user([*command, *args], folder)
                 for args in (["balance"], ["verify"], ["entries"], ["export"],
                              ["credit", "1", "--key", "k"])}
        assert ({"balance": 0, "verify": 0, "entries": 0, "export": 0, "credit": 2},
                "posted 5, held 0, available 5\n") == (
            {name: done.returncode for name, done in codes.items()}, codes["balance"].stdout
        ), {name: done.stderr for name, done in codes.items()}
        assert "read-only" in one_error_line(codes["credit"].stderr, named=False)

class TestTagText:
    """A tag or a budget scope holding a control character: exit 2, one line naming it."""

    @pytest.mark.parametrize("argv", [
        ["ledger", "credit", "1", "--key", "c", "--tag", "a\tb=x"],
        ["ledger", "debit", "1", "--key", "d", "--tag", "p=a\x01b"],
        ["ledger", "entries", "--tag", "p=\x1b[31m"],
        ["budget", "add", "b", "--limit", "10", "--scope", "a\nb=x"],
    ])
    def test_refused(self, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                     argv: list[str]) -> None:
        """Exit 2 with one line naming the control character; nothing is written."""
        path = tmp_path / "ledger.db"
        assert 0 == main(["ledger", "--db", str(path), "credit", "5", "--key", "seed"])
        capsys.readouterr()
        code = main([argv[0], "--db", str(path), *argv[1:]])
        line = one_error_line(capsys.readouterr().err, named=False)
        assert (2, True) == (code, "control character" in line)
        with ib.Ledger.open(path) as ledger:
            assert (1, ()) == (ledger.verify(), ledger.budgets())


class TestWhatDoesNotPrint:
    """A key given with control characters (attack review item 11): stored as given, but
    printed escaped, in the write's confirmation line and in every table."""

    KEY = "k\x1b[2J\x1b[H\u202e\x85"
    SHOWN = "k\\u001b[2J\\u001b[H\\u202e\\u0085"

    def test_a_write_and_the_entries_table(self, cli: Cli) -> None:
        code, out, err = cli("credit", "5", "--key", self.KEY)
        assert 0 == code, err
        assert f"(key {self.SHOWN})" in out
        code, out, _ = cli("entries")
        assert 0 == code
        assert self.SHOWN in out
        assert out.replace("\n", "").isprintable(), out
        assert [self.KEY] == [e["key"] for e in cli.json("entries")["entries"]]  # type: ignore[index]

    def test_a_budget_and_its_status_table(self, cli: Cli,
                                           capsys: pytest.CaptureFixture[str]) -> None:
        assert 0 == main(["budget", "--db", str(cli.db), "add", "b\x1b[2J", "--limit", "10"])
        assert 0 == main(["budget", "--db", str(cli.db), "status"])
        out = capsys.readouterr().out
        assert "b\\u001b[2J" in out
        assert "\x1b" not in out
