"""The SQLite ledger with real files and real processes: crashes, concurrency, tampering."""

from __future__ import annotations

import contextlib
import functools
import io
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ClassVar

import pytest

import imagine_billing as ib
from imagine_billing.ledger.model import GENESIS, chain_hash
from tests.helpers import CRASH_WRITER

CHILD_TIMEOUT = 120


HOLD_CHILD = """
import sys
from imagine_billing import InsufficientTokens
from imagine_billing.ledger import Ledger

path, prefix, count, tokens = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
sys.stdin.readline()  # the start signal: every child is ready, so they all race
with Ledger.open(path) as ledger:
    for i in range(count):
        key = f"{prefix}-{i}"
        try:
            hold = ledger.hold(tokens, key=key)
        except InsufficientTokens:
            print("short", key, flush=True)
        else:
            print("held", key, hold.id, flush=True)
"""

CREDIT_CHILD = """
import sys
from imagine_billing.ledger import Ledger

path, count = sys.argv[1], int(sys.argv[2])
sys.stdin.readline()
with Ledger.open(path) as ledger:
    for i in range(count):
        entry = ledger.credit(3, key=f"shared-{i}", tags={"n": str(i)})
        print(entry.key, entry.id, flush=True)
"""


@contextlib.contextmanager
def children(*commands: list[str]) -> Iterator[list[subprocess.Popen[str]]]:
    """Start processes (stdin and stdout piped); kill any still running on the way out."""
    started: list[subprocess.Popen[str]] = []
    try:
        for command in commands:
            # One at a time (not a comprehension), so a failed start still cleans up the others.
            started.append(subprocess.Popen(  # noqa: PERF401
                command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, text=True))
        yield started
    finally:
        for child in started:
            if child.poll() is None:
                child.kill()
            child.wait(timeout=CHILD_TIMEOUT)
            for stream in (child.stdin, child.stdout, child.stderr):
                if stream is not None:
                    stream.close()


def finish(child: subprocess.Popen[str]) -> str:
    """The whole stdout of a child that must exit 0 on its own."""
    out, err = child.communicate(timeout=CHILD_TIMEOUT)
    assert 0 == child.returncode, err
    return out


def make_ledger(path: Path, credit: int) -> None:
    with ib.Ledger.open(path) as ledger:
        ledger.credit(credit, key="opening")


class TestCrashSafety:
    """A writer killed with SIGKILL at random moments loses nothing it reported."""

    def test_killed_writers_lose_no_returned_entry(self, tmp_path: Path) -> None:
        """After each of 24 kills, the file opens, verifies, and holds every returned key."""
        path = tmp_path / "ledger.db"
        make_ledger(path, 10)
        rng = random.Random(20261125)
        reported: list[str] = []
        for round_ in range(24):
            with children([sys.executable, "-c", CRASH_WRITER, str(path), "main",
                           f"r{round_}"]) as [child]:
                assert child.stdout is not None
                # Wait for the first write, so the kill lands among writes, not in start-up.
                first = child.stdout.readline()
                assert first, child.stderr.read() if child.stderr else ""
                time.sleep(rng.uniform(0.0, 0.25))
                child.send_signal(signal.SIGKILL)
                out = child.stdout.read()  # to the end: the pipe closes when the child dies
                assert -signal.SIGKILL == child.wait(timeout=CHILD_TIMEOUT)
            lines = (first + out).split("\n")
            reported.extend(line for line in lines[:-1] if line)  # the last may be cut short
            with ib.Ledger.open(path) as ledger:
                count = ledger.verify()
                missing = [key for key in reported if not _has(ledger, key)]
                assert [] == missing
                assert ledger.balance().available >= 0
        assert count > len(reported) >= 24

    def test_an_uncommitted_batch_leaves_nothing(self, tmp_path: Path) -> None:
        """A batch that raises writes none of its entries."""
        path = tmp_path / "ledger.db"
        make_ledger(path, 10)
        def overdraw(ledger: ib.Ledger) -> None:
            with ledger.batch():
                ledger.debit(4, key="a")
                ledger.debit(7, key="b")

        with ib.Ledger.open(path) as ledger, pytest.raises(ib.InsufficientTokens):
            overdraw(ledger)
        with ib.Ledger.open(path) as ledger:
            assert (1, 10) == (ledger.verify(), ledger.balance().available)


def _has(ledger: ib.Ledger, key: str) -> bool:
    try:
        ledger.get(key)
    except ib.UnknownEntry:
        return False
    return True


class TestConcurrency:
    """Processes sharing one file never overdraw it and never lose or double an entry."""

    def test_holds_from_six_processes_stop_exactly_at_the_balance(self, tmp_path: Path) -> None:
        """6 processes try 24 holds of 5 against 50 tokens: exactly 10 succeed."""
        path = tmp_path / "ledger.db"
        make_ledger(path, 50)
        commands = [[sys.executable, "-c", HOLD_CHILD, str(path), f"p{n}", "4", "5"]
                    for n in range(6)]
        with children(*commands) as started:
            time.sleep(0.5)  # let them import and wait at the start line
            for child in started:
                assert child.stdin is not None
                child.stdin.write("go\n")
                child.stdin.flush()
            outputs = [finish(child) for child in started]
        results = [line.split() for out in outputs for line in out.splitlines()]
        held = [r for r in results if r[0] == "held"]
        assert (24, 10) == (len(results), len(held))
        with ib.Ledger.open(path) as ledger:
            assert ib.Balance(50, 50, 0) == ledger.balance()
            assert 11 == ledger.verify()
            assert sorted(r[1] for r in held) == sorted(h.key for h in ledger.open_holds())

    def test_the_same_keys_from_four_processes_write_once(self, tmp_path: Path) -> None:
        """4 processes credit the same 40 keys: 40 entries, and all see the same ids."""
        path = tmp_path / "ledger.db"
        make_ledger(path, 1)
        commands = [[sys.executable, "-c", CREDIT_CHILD, str(path), "40"] for _ in range(4)]
        with children(*commands) as started:
            time.sleep(0.5)
            for child in started:
                assert child.stdin is not None
                child.stdin.write("go\n")
                child.stdin.flush()
            outputs = [finish(child) for child in started]
        seen = [dict(line.split() for line in out.splitlines()) for out in outputs]
        assert all(seen[0] == other for other in seen[1:])
        with ib.Ledger.open(path) as ledger:
            assert 41 == ledger.verify()
            assert ib.Balance(1 + 40 * 3, 0) == ledger.balance()


class TestTampering:
    """A change made to the file behind the ledger's back fails verify(), naming it."""

    @pytest.fixture
    def path(self, tmp_path: Path) -> Path:
        path = tmp_path / "ledger.db"
        with ib.Ledger.open(path) as ledger:
            ledger.credit(100, key="c")
            hold = ledger.hold(15, key="h")
            ledger.debit(20, key="d")
            ledger.capture(hold, 10)
            ledger.refund("d", 5, key="r")
        return path

    def sql(self, path: Path, *statements: str) -> None:
        with contextlib.closing(sqlite3.connect(path)) as db, db:
            for statement in statements:
                db.execute(statement)

    def corruption(self, path: Path) -> ib.LedgerCorrupted:
        with ib.Ledger.open(path) as ledger, pytest.raises(ib.LedgerCorrupted) as caught:
            ledger.verify()
        return caught.value

    def test_triggers_refuse_updates_and_deletes(self, path: Path) -> None:
        """The file itself refuses UPDATE and DELETE of entries."""
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            self.sql(path, "UPDATE entries SET tokens = 1000 WHERE id = 1")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            self.sql(path, "DELETE FROM entries WHERE id = 5")

    @pytest.mark.parametrize(
        ("column", "value"),
        [("tokens", "1000"), ("kind", "'credit'"), ("key", "'other'"), ("at", "at + 1"),
         ("tags", "'{\"a\":\"b\"}'"), ("memo", "'hello'"), ("hash", "'00'")],
    )
    def test_changing_one_entry_names_it(self, path: Path, column: str, value: str) -> None:
        """Changing any field of entry 3 makes verify() fail at entry 3."""
        self.sql(path, "DROP TRIGGER entries_append_only_update",
                 f"UPDATE entries SET {column} = {value} WHERE id = 3")
        assert 3 == self.corruption(path).entry

    def test_deleting_an_entry_in_the_middle_names_it(self, path: Path) -> None:
        """Removing entry 2 names entry 2 as missing."""
        self.sql(path, "DROP TRIGGER entries_append_only_delete",
                 "DELETE FROM entries WHERE id = 2")
        assert 2 == self.corruption(path).entry

    def test_deleting_the_last_entry_is_caught_by_the_tip(self, path: Path) -> None:
        """Removing the last entry disagrees with the recorded tip."""
        self.sql(path, "DROP TRIGGER entries_append_only_delete",
                 "DELETE FROM entries WHERE id = 5")
        assert "tip" == self.corruption(path).entry

    def test_changing_the_balance_is_caught(self, path: Path) -> None:
        """Raising the recorded balance disagrees with the entries."""
        self.sql(path, "UPDATE tip SET posted = posted + 1000")
        assert "balance" == self.corruption(path).entry

    def test_an_untouched_file_verifies(self, path: Path) -> None:
        """The control: the same file, unchanged, verifies."""
        with ib.Ledger.open(path) as ledger:
            assert 5 == ledger.verify()


class TestSqliteStore:
    """Opening files: durability settings, bad files, newer schemas."""

    def test_durable_by_default(self, tmp_path: Path) -> None:
        """Ledger.open uses WAL and synchronous=FULL unless durable=False."""
        path = tmp_path / "ledger.db"
        from imagine_billing.ledger.sqlite import SqliteStore

        for durable, expected in ((True, 2), (False, 1)):
            store = SqliteStore(path, durable=durable)
            try:
                assert "wal" == store._db.execute("PRAGMA journal_mode").fetchone()[0]
                assert expected == store._db.execute("PRAGMA synchronous").fetchone()[0]
            finally:
                store.close()

    def test_a_file_that_is_not_a_database_is_refused(self, tmp_path: Path) -> None:
        """A text file is a LedgerStoreError naming it, not a sqlite3 traceback."""
        path = tmp_path / "notes.db"
        path.write_text("not a database, just some words in a file\n" * 10)
        with pytest.raises(ib.LedgerStoreError, match=r"notes\.db"):
            ib.Ledger.open(path)

    def test_a_newer_schema_is_refused(self, tmp_path: Path) -> None:
        """A file from a later version of the library is not touched."""
        path = tmp_path / "ledger.db"
        make_ledger(path, 1)
        with contextlib.closing(sqlite3.connect(path)) as db:
            db.execute("PRAGMA user_version = 99")
        with pytest.raises(ib.LedgerStoreError, match="99"):
            ib.Ledger.open(path)

    def test_entries_survive_reopening(self, tmp_path: Path) -> None:
        """What one ledger object wrote, another reads back identically."""
        path = tmp_path / "ledger.db"
        with ib.Ledger.open(path) as ledger:
            written = [ledger.credit(7, key="a", tags={"p": "x"}, memo="m"),
                       ledger.hold(3, key="b").entry]
        with ib.Ledger.open(path) as ledger:
            assert written == list(ledger.entries())
            assert ib.Balance(7, 3) == ledger.balance()


def sql(path: Path, *statements: str) -> None:
    """Run statements on the file directly, behind the ledger's back."""
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        for statement in statements:
            db.execute(statement)


@pytest.fixture
def five(tmp_path: Path) -> Path:
    """A ledger file of five entries: credit, hold, debit, capture, refund."""
    path = tmp_path / "ledger.db"
    with ib.Ledger.open(path) as ledger:
        ledger.credit(100, key="c")
        hold = ledger.hold(15, key="h", expires_at=datetime.now(UTC) + timedelta(days=1))
        ledger.debit(20, key="d")
        ledger.capture(hold, 10)
        ledger.refund("d", 5, key="r")
    return path


def corruption(path: Path, expect: tuple[int, str] | None = None) -> ib.LedgerCorrupted:
    with ib.Ledger.open(path) as ledger, pytest.raises(ib.LedgerCorrupted) as caught:
        ledger.verify(expect=expect)
    return caught.value


class TestEveryColumn:
    """Changing any one stored column of an entry fails verify() at that entry."""

    CHANGES: ClassVar[dict[str, str]] = {
        "id": "99", "kind": "'debit'", "key": "'other'", "tokens": "tokens + 1",
        "at": "at + 1", "ref": "7", "memo": "'hello'", "tags": "'{\"a\":\"b\"}'",
        "styles": "'[[\"anime\",15]]'", "table_version": "'9.9.9'",
        "table_digest": "'sha256:00'", "expires_at": "expires_at + 1",
        "fingerprint": "'" + "0" * 64 + "'", "hash": "'" + "0" * 64 + "'",
    }

    def test_the_list_covers_every_column(self, five: Path) -> None:
        """A column added to the table must be added here too."""
        with contextlib.closing(sqlite3.connect(five)) as db:
            columns = [row[1] for row in db.execute("PRAGMA table_info(entries)")]
        assert sorted(columns) == sorted(self.CHANGES)

    @pytest.mark.parametrize("column", sorted(CHANGES))
    def test_a_changed_column_names_the_hold(self, five: Path, column: str) -> None:
        """Entry 2 (a hold with an expiry) changed in one column: verify names entry 2."""
        sql(five, "DROP TRIGGER entries_append_only_update",
            f"UPDATE entries SET {column} = {self.CHANGES[column]} WHERE id = 2")
        assert 2 == corruption(five).entry


class TestBehindTheTip:
    """A row past the recorded last entry (forged, or a write never committed) is found."""

    GHOST = ("INSERT INTO entries (id, kind, key, tokens, at, tags, styles, fingerprint, hash) "
             "VALUES (6, 'credit', 'ghost', 5, 0, '{}', '[]', 'FINGERPRINT', 'junk')")

    def test_verify_finds_it(self, five: Path) -> None:
        """verify() no longer says "ok: 5 entries": it names entry 6."""
        sql(five, self.GHOST.replace("FINGERPRINT", "x"))
        assert 6 == corruption(five).entry

    def test_lookups_and_writes_refuse_it(self, five: Path) -> None:
        """get() does not return it, and writes are LedgerCorrupted, not sqlite3 errors."""
        sql(five, self.GHOST.replace("FINGERPRINT", "x"))
        with ib.Ledger.open(five) as ledger:
            for call in (lambda: ledger.get("ghost"), lambda: ledger.credit(1, key="new"),
                         lambda: ledger.credit(1, key="ghost")):
                with pytest.raises(ib.LedgerCorrupted) as caught:
                    call()
                assert 6 == caught.value.entry

    def test_a_forged_original_is_not_replayed(self, five: Path) -> None:
        """A forged row with the right fingerprint is not returned as a replay's original."""
        with ib.Ledger.memory() as other:
            fingerprint = other.credit(5, key="ghost").fingerprint
        sql(five, self.GHOST.replace("FINGERPRINT", fingerprint))
        with ib.Ledger.open(five) as ledger, pytest.raises(ib.LedgerCorrupted):
            ledger.credit(5, key="ghost")

    def test_a_row_before_the_first_is_found(self, five: Path) -> None:
        """A row with id 0 is out of the chain too."""
        sql(five, self.GHOST.replace("FINGERPRINT", "x").replace("VALUES (6,", "VALUES (0,"))
        assert 0 == corruption(five).entry


class TestTamperingTheRest:
    """What the file keeps beside the entries (open holds) must agree with them."""

    def test_an_open_hold_given_an_expiry(self, tmp_path: Path) -> None:
        """A hold without expiry made to expire at 1970 fails verify, and is not expired."""
        path = tmp_path / "ledger.db"
        with ib.Ledger.open(path) as ledger:
            ledger.credit(10, key="c")
            ledger.hold(5, key="h")
        sql(path, "UPDATE open_holds SET expires_at = 0")
        assert "open holds" == corruption(path).entry

    def test_a_closed_hold_recorded_open(self, five: Path) -> None:
        """An open_holds row for the captured hold fails verify."""
        sql(five, "INSERT INTO open_holds VALUES (2, NULL)")
        assert "open holds" == corruption(five).entry

    def test_a_deleted_open_hold(self, tmp_path: Path) -> None:
        """An open hold missing from open_holds fails verify."""
        path = tmp_path / "ledger.db"
        with ib.Ledger.open(path) as ledger:
            ledger.credit(10, key="c")
            ledger.hold(5, key="h")
        sql(path, "DELETE FROM open_holds")
        assert "open holds" == corruption(path).entry


class TestAnchoredVerify:
    """Cutting the end of the chain (tip set back) or rewriting all of it (every hash
    recomputed) verifies on its own; against a head recorded before, it does not."""

    def test_the_last_entry_cut_and_the_tip_set_back(self, five: Path) -> None:
        """Entry 5 deleted, the tip set to entry 4's hash and balance: caught by the head."""
        with ib.Ledger.open(five) as ledger:
            head = ledger.head()
            before = ledger.get(4).hash
        sql(five, "DROP TRIGGER entries_append_only_delete", "DELETE FROM entries WHERE id = 5",
            f"UPDATE tip SET id = 4, hash = '{before}', posted = 70")
        with ib.Ledger.open(five) as ledger:
            assert 4 == ledger.verify()
        assert 5 == corruption(five, expect=head).entry

    def test_the_whole_chain_rewritten(self, five: Path) -> None:
        """Entry 1 changed and every hash and the tip recomputed: caught by the head."""
        with ib.Ledger.open(five) as ledger:
            head = ledger.head()
            rows = [e.to_row() for e in ledger.entries()]
        statements, previous = ["DROP TRIGGER entries_append_only_update",
                                "UPDATE entries SET memo = 'rewritten' WHERE id = 1"], GENESIS
        for row in rows:
            fields = (*row[:6], "rewritten" if row[0] == 1 else row[6], *row[7:-1])
            previous = chain_hash(previous, fields)
            statements.append(f"UPDATE entries SET hash = '{previous}' WHERE id = {row[0]}")
        statements.append(f"UPDATE tip SET hash = '{previous}'")
        sql(five, *statements)
        with ib.Ledger.open(five) as ledger:
            assert 5 == ledger.verify()
        assert 5 == corruption(five, expect=head).entry


def since(path: Path, entry_id: int) -> tuple[int, str]:
    """The anchor of entry ``entry_id`` of the ledger file: its id and hash."""
    with ib.Ledger.open(path) as ledger:
        return entry_id, ledger.get(entry_id).hash


def verify_since(path: Path, anchor: tuple[int, str]) -> int | ib.LedgerCorrupted:
    """verify(since=anchor) of the file: the entries checked, or the corruption found."""
    with ib.Ledger.open(path) as ledger:
        try:
            return ledger.verify(since=anchor)
        except ib.LedgerCorrupted as error:
            return error


def rewritten(path: Path, entry_id: int, column: str, value: int) -> None:
    """Set an int ``column`` of entry ``entry_id`` and recompute every hash from it on, and
    the tip's: a forgery the chain alone cannot tell."""
    with ib.Ledger.open(path) as ledger:
        rows = [entry.to_row() for entry in ledger.entries()]
    index = ("id", "kind", "key", "tokens", "at", "ref").index(column)
    statements, previous = ["DROP TRIGGER entries_append_only_update",
                            f"UPDATE entries SET {column} = {value} WHERE id = {entry_id}"], GENESIS
    for row in rows:
        fields = (*row[:index], value, *row[index + 1:-1]) if row[0] == entry_id else row[:-1]
        previous = chain_hash(previous, fields)
        statements.append(f"UPDATE entries SET hash = '{previous}' WHERE id = {row[0]}")
    sql(path, *statements, f"UPDATE tip SET hash = '{previous}'")


class TestVerifySince:
    """verify(since=anchor) replays the entries after the anchor with every rule, and finds
    a changed anchor; what the file keeps beside the chain is checked against the result."""

    @pytest.mark.parametrize("column", sorted(TestEveryColumn.CHANGES))
    def test_a_changed_entry_after_the_anchor(self, five: Path, column: str) -> None:
        """Entry 2 changed in any column: verify from entry 1 names entry 2."""
        anchor = since(five, 1)
        sql(five, "DROP TRIGGER entries_append_only_update",
            f"UPDATE entries SET {column} = {TestEveryColumn.CHANGES[column]} WHERE id = 2")
        found = verify_since(five, anchor)
        assert 2 == (found.entry if isinstance(found, ib.LedgerCorrupted) else found)

    @pytest.mark.parametrize("column", sorted(TestEveryColumn.CHANGES))
    def test_a_changed_anchor(self, five: Path, column: str) -> None:
        """The anchor's own entry changed in any column: verify from it names it."""
        anchor = since(five, 2)
        sql(five, "DROP TRIGGER entries_append_only_update",
            f"UPDATE entries SET {column} = {TestEveryColumn.CHANGES[column]} WHERE id = 2")
        found = verify_since(five, anchor)
        assert 2 == (found.entry if isinstance(found, ib.LedgerCorrupted) else found)

    def test_entries_before_the_anchor_are_not_read(self, five: Path) -> None:
        """A memo changed before the anchor is for a full verify to find (it does)."""
        anchor = since(five, 3)
        sql(five, "DROP TRIGGER entries_append_only_update",
            "UPDATE entries SET memo = 'changed' WHERE id = 1")
        assert (2, 1) == (verify_since(five, anchor), corruption(five).entry)

    @pytest.mark.parametrize("statement", ["UPDATE tip SET posted = posted + 1",
                                           "UPDATE tip SET held = held + 1",
                                           "UPDATE entries SET tokens = 101 WHERE id = 1"])
    def test_a_balance_that_disagrees(self, five: Path, statement: str) -> None:
        """The tip's balance changed, or a credit before the anchor: the figures disagree."""
        anchor = since(five, 3)
        sql(five, "DROP TRIGGER entries_append_only_update", statement)
        found = verify_since(five, anchor)
        assert "balance" == (found.entry if isinstance(found, ib.LedgerCorrupted) else found)

    def test_an_open_hold_before_the_anchor_deleted(self, tmp_path: Path) -> None:
        """A hold placed before the anchor, still open, deleted from open_holds: caught."""
        path = tmp_path / "ledger.db"
        with ib.Ledger.open(path) as ledger:
            ledger.credit(10, key="c")
            ledger.hold(5, key="h")
            ledger.debit(1, key="d")
        anchor = since(path, 3)
        sql(path, "DELETE FROM open_holds")
        found = verify_since(path, anchor)
        assert "balance" == (found.entry if isinstance(found, ib.LedgerCorrupted) else found)

    @pytest.mark.parametrize(("statement", "entry"), [
        ("UPDATE entries SET tokens = 'five' WHERE id = 2", 2),
        ("UPDATE entries SET at = 'noon' WHERE id = 3", 3)])
    def test_an_unreadable_entry_before_the_anchor(self, tmp_path: Path, statement: str,
                                                   entry: int) -> None:
        """An open hold's amount or a budget's time unreadable: named, not a crash."""
        path = tmp_path / "ledger.db"
        with ib.Ledger.open(path) as ledger:
            ledger.credit(10, key="c")
            ledger.hold(5, key="h")
            ledger.add_budget(ib.Budget("shop", 50))
            ledger.debit(1, key="d")
        anchor = since(path, 4)
        sql(path, "DROP TRIGGER entries_append_only_update", statement)
        found = verify_since(path, anchor)
        assert entry == (found.entry if isinstance(found, ib.LedgerCorrupted) else found)

    def test_a_forged_refund_of_a_debit_before_the_anchor(self, tmp_path: Path) -> None:
        """A refund re-hashed to give back more than is left (15 of 20): named, both ways."""
        path = tmp_path / "ledger.db"
        with ib.Ledger.open(path) as ledger:
            ledger.credit(100, key="c")
            ledger.debit(20, key="d")
            ledger.refund("d", 5, key="r1")
            ledger.refund("d", 10, key="r2")
        anchor = since(path, 3)
        rewritten(path, 4, "tokens", 16)
        found = verify_since(path, anchor)
        assert isinstance(found, ib.LedgerCorrupted)
        assert (4, 4) == (found.entry, corruption(path).entry)
        assert "which has 15 left to refund" in found.reason

    def test_a_forged_capture_of_a_hold_before_the_anchor(self, tmp_path: Path) -> None:
        """A capture re-hashed to take more than its hold (16 of 15): named, both ways."""
        path = tmp_path / "ledger.db"
        with ib.Ledger.open(path) as ledger:
            ledger.credit(100, key="c")
            ledger.capture(ledger.hold(15, key="h"), 10)
        anchor = since(path, 2)
        rewritten(path, 3, "tokens", 16)
        found = verify_since(path, anchor)
        assert isinstance(found, ib.LedgerCorrupted)
        assert (3, 3) == (found.entry, corruption(path).entry)
        assert "capture of 16 tokens of a hold of 15" in found.reason


class TestBatchInAFile:
    """Batches on SQLite: all or nothing, nested ones on their own, across reopening."""

    def test_nested_batches_commit_what_they_kept(self, tmp_path: Path) -> None:
        """Outer writes and a successful inner block are in the file; a failed inner one not."""
        path = tmp_path / "ledger.db"
        make_ledger(path, 10)

        def failing(ledger: ib.Ledger) -> None:
            with ledger.batch():
                ledger.debit(2, key="inner-failed")
                raise RuntimeError

        with ib.Ledger.open(path) as ledger, ledger.batch():
            ledger.debit(1, key="o1")
            with ledger.batch():
                ledger.debit(1, key="inner-kept")
            with pytest.raises(RuntimeError):
                failing(ledger)
            ledger.debit(1, key="o2")
        with ib.Ledger.open(path) as ledger:
            assert (["opening", "o1", "inner-kept", "o2"], 4, ib.Balance(7, 0)) == (
                [e.key for e in ledger.entries()], ledger.verify(), ledger.balance())

    def test_a_failed_batch_leaves_no_row(self, tmp_path: Path) -> None:
        """Not even a row past the tip: the transaction was rolled back, not committed."""
        path = tmp_path / "ledger.db"
        make_ledger(path, 10)

        def failing(ledger: ib.Ledger) -> None:
            with ledger.batch():
                ledger.debit(4, key="a")
                raise RuntimeError

        with ib.Ledger.open(path) as ledger, pytest.raises(RuntimeError):
            failing(ledger)
        with contextlib.closing(sqlite3.connect(path)) as db:
            assert (1,) == db.execute("SELECT count(*) FROM entries").fetchone()


def connection(ledger: ib.Ledger) -> sqlite3.Connection:
    """The ledger's own SQLite connection, to set a pragma on it (a fault through SQLite)."""
    from imagine_billing.ledger.sqlite import SqliteStore

    store = ledger._store
    assert isinstance(store, SqliteStore)
    assert store._db is not None
    return store._db


def fill_until_full(ledger: ib.Ledger) -> None:
    """Credit big entries until the file is full (``PRAGMA max_page_count`` a few pages past
    its size: SQLITE_FULL, which rolls back the whole transaction)."""
    db = connection(ledger)
    (pages,) = db.execute("PRAGMA page_count").fetchone()
    db.execute(f"PRAGMA max_page_count = {pages + 3}")
    with pytest.raises(ib.LedgerStoreError, match=r"full.*SQLite rolled back"):
        credit_big_entries(ledger, 1000)


def credit_big_entries(ledger: ib.Ledger, count: int) -> None:
    """``count`` credits of 1 token with keys and memos of 3,000 characters."""
    for i in range(count):
        ledger.credit(1, key=f"big-{i}-" + "k" * 3000, memo="m" * 3000)


def fill_then_credit(ledger: ib.Ledger) -> None:
    """In a batch: fill the file, then three more credits, each refused."""
    with ledger.batch():
        fill_until_full(ledger)
        for n in range(3):
            with pytest.raises(ib.LedgerStoreError, match="rolled all of it back"):
                ledger.credit(1, key=f"after-{n}")


def fill_in_an_inner_batch(ledger: ib.Ledger) -> None:
    """A credit in a batch, the file filled in a batch inside it, then one more credit."""
    with ledger.batch():
        ledger.credit(1, key="outer")
        with ledger.batch():
            fill_until_full(ledger)
        ledger.credit(1, key="after")


def credit_then_clash(ledger: ib.Ledger, *, then: bool) -> None:
    """In a batch: a credit, a hold that fails half written (its id clashes), and with
    ``then`` a credit after it, refused."""
    with ledger.batch():
        ledger.credit(1, key="c2")
        with pytest.raises(ib.LedgerStoreError, match="UNIQUE"):
            ledger.hold(5, key="h")
        if then:
            with pytest.raises(ib.LedgerStoreError, match="a write failed inside this "
                               "transaction, so none of it is kept"):
                ledger.credit(1, key="c3")


class TestAFailedWriteInABatch:
    """A write that failed inside a batch dooms it: no statement runs after it (none would be
    in the transaction), and the batch is not committed; the file still verifies."""

    def test_a_full_disk(self, tmp_path: Path) -> None:
        """After SQLITE_FULL, three more credits are refused, and so is the batch."""
        path = tmp_path / "ledger.db"
        make_ledger(path, 10)
        with ib.Ledger.open(path) as ledger:
            with pytest.raises(ib.LedgerStoreError, match="rolled all of it back"):
                fill_then_credit(ledger)
            assert (ib.Balance(10, 0), (1, ledger.get(1).hash)) == (ledger.balance(),
                                                                    ledger.head())
        with ib.Ledger.open(path) as ledger:
            assert (["opening"], 1) == ([e.key for e in ledger.entries()], ledger.verify())
            ledger.credit(1, key="later")
            assert 2 == ledger.verify()

    def test_a_full_disk_in_a_nested_batch(self, tmp_path: Path) -> None:
        """SQLITE_FULL in an inner batch undoes the outer one too: its writes are refused."""
        path = tmp_path / "ledger.db"
        make_ledger(path, 10)
        with ib.Ledger.open(path) as ledger, pytest.raises(ib.LedgerStoreError,
                                                           match="rolled all of it back"):
            fill_in_an_inner_batch(ledger)
        with ib.Ledger.open(path) as ledger:
            assert (["opening"], 1) == ([e.key for e in ledger.entries()], ledger.verify())

    @pytest.fixture
    def clashing(self, tmp_path: Path) -> Path:
        """A ledger of one entry whose open_holds has a row for id 3 (put there with sqlite3):
        a hold written as entry 3 fails after its entry row is in."""
        path = tmp_path / "ledger.db"
        make_ledger(path, 100)
        sql(path, "INSERT INTO open_holds VALUES (3, NULL)")
        return path

    def test_a_half_written_hold_is_not_committed(self, clashing: Path) -> None:
        """The failed hold caught inside the batch: the batch is refused at its end."""
        with ib.Ledger.open(clashing) as ledger:
            with pytest.raises(ib.LedgerStoreError, match="none of it is kept"):
                credit_then_clash(ledger, then=False)
            assert (["opening"], ib.Balance(100, 0)) == (
                [e.key for e in ledger.entries()], ledger.balance())
        with contextlib.closing(sqlite3.connect(clashing)) as db:
            assert (1,) == db.execute("SELECT count(*) FROM entries").fetchone()

    def test_the_next_write_is_refused_as_such(self, clashing: Path) -> None:
        """A write after the failed hold is a LedgerStoreError, not LedgerCorrupted over the
        ledger's own half-written hold."""
        with ib.Ledger.open(clashing) as ledger, pytest.raises(ib.LedgerStoreError):
            credit_then_clash(ledger, then=True)

    def test_a_failed_inner_batch_leaves_the_outer_one_usable(self, clashing: Path) -> None:
        """The inner batch's savepoint undoes the half-written hold: the outer batch goes on
        and commits."""
        with ib.Ledger.open(clashing) as ledger:
            with ledger.batch():
                ledger.credit(1, key="c2")
                with pytest.raises(ib.LedgerStoreError, match="UNIQUE"), ledger.batch():
                    ledger.hold(5, key="h")
                ledger.credit(1, key="c3")
            assert ib.Balance(102, 0) == ledger.balance()
        sql(clashing, "DELETE FROM open_holds")  # the row put there
        with ib.Ledger.open(clashing) as ledger:
            assert (["opening", "c2", "c3"], 3) == (
                [e.key for e in ledger.entries()], ledger.verify())


class TestOutsideTheChain:
    """Rows with ids of 0 or less, or past the tip, count in no figure and are no entries;
    verify() still names them."""

    @pytest.fixture
    def forged(self, five: Path) -> Path:
        """The five entries, with copies of the debit (entry 3) under ids -5 and 7, and of
        the hold (entry 2) under id 8, recorded open."""
        copy = ("INSERT INTO entries SELECT {id}, kind, '{key}', {tokens}, at, ref, memo, tags, "
                "styles, table_version, table_digest, expires_at, fingerprint, hash "
                "FROM entries WHERE id = {of}")
        sql(five, copy.format(id=-5, key="forged", tokens=999, of=3),
            copy.format(id=7, key="forged7", tokens=500, of=3),
            copy.format(id=8, key="forged8", tokens=300, of=2),
            "INSERT INTO open_holds VALUES (8, NULL)")
        return five

    def test_entries_are_those_of_the_chain(self, forged: Path) -> None:
        """entries() and export() give ids 1 to 5 only."""
        with ib.Ledger.open(forged) as ledger:
            long_ago = datetime(2000, 1, 1, tzinfo=UTC)
            out = io.StringIO()
            assert ([1, 2, 3, 4, 5], [1, 2, 3, 4, 5], 5) == (
                [e.id for e in ledger.entries()], [e.id for e in ledger.entries(since=long_ago)],
                ledger.export(out))

    def test_totals_leave_them_out(self, forged: Path) -> None:
        """Spend (debit 20 + capture 10 - refund 5), holds, available then, budgets,
        forecasts: the chain's figures."""
        with ib.Ledger.open(forged) as ledger:
            ledger.add_budget(ib.Budget("all", 1000, "total"))
            before = ledger.get(1).at - timedelta(seconds=1)
            assert (25, {None: 25}, 25, 0, 0, (25, 0)) == (
                ledger.spent(), ledger.spend(), sum(ledger.spend(by="day").values()),
                ledger.held(), ledger.available_at(before), ledger.budget_usage("all"))
            assert 25 == ib.forecast(ledger, window=timedelta(days=1)).daily[-1]

    def test_verify_names_the_first(self, forged: Path) -> None:
        """The row with id -5 comes first."""
        assert -5 == corruption(forged).entry


class TestThreads:
    """One Ledger object shared by threads: no error, no entry lost or doubled."""

    def test_eight_threads_share_one_ledger(self, tmp_path: Path) -> None:
        """8 threads each hold, capture and credit 25 times: every entry is there, once."""
        path = tmp_path / "ledger.db"
        errors: list[BaseException] = []
        with ib.Ledger.open(path, durable=False) as ledger:
            ledger.credit(1000, key="opening")
            start = threading.Barrier(8)

            def work(n: int) -> None:
                try:
                    start.wait()
                    for i in range(25):
                        hold = ledger.hold(3, key=f"h{n}-{i}")
                        ledger.capture(hold, 2)
                        ledger.credit(1, key=f"c{n}-{i}")
                        ledger.credit(1, key=f"c{n}-{i}")  # a replay, from the same thread
                except BaseException as error:  # reported below, in the test's thread
                    errors.append(error)

            threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert [] == errors
            assert (1 + 8 * 25 * 3, ib.Balance(1000 - 8 * 25, 0)) == (
                ledger.verify(), ledger.balance())

    def test_a_batch_does_not_absorb_another_threads_write(self, tmp_path: Path) -> None:
        """Thread B writes while thread A's batch is open; A's batch fails: B's write stays."""
        path = tmp_path / "ledger.db"
        make_ledger(path, 10)
        in_batch, b_done = threading.Event(), threading.Event()
        results: list[object] = []
        with ib.Ledger.open(path) as ledger:

            def writer_b() -> None:
                in_batch.wait()
                results.append(ledger.credit(5, key="from-b").key)
                b_done.set()

            def batch_a() -> None:
                with ledger.batch():
                    ledger.debit(3, key="from-a")
                    in_batch.set()
                    b_done.wait(0.5)  # B waits for the batch: it cannot finish inside it
                    raise RuntimeError

            thread = threading.Thread(target=writer_b)
            thread.start()
            with pytest.raises(RuntimeError):
                batch_a()
            thread.join()
            assert (["from-b"], ["opening", "from-b"], ib.Balance(15, 0)) == (
                results, [e.key for e in ledger.entries()], ledger.balance())


class TestUnusableFiles:
    """Files that cannot serve as a ledger: one clear LedgerStoreError, never sqlite3's."""

    def test_a_database_of_something_else_is_left_alone(self, tmp_path: Path) -> None:
        """A SQLite file with tables of its own is refused and not changed."""
        path = tmp_path / "other.db"
        sql(path, "CREATE TABLE notes (text TEXT)", "INSERT INTO notes VALUES ('mine')")
        with pytest.raises(ib.LedgerStoreError, match="something else"):
            ib.Ledger.open(path)
        with contextlib.closing(sqlite3.connect(path)) as db:
            assert (["notes"], "delete", 0) == (
                [r[0] for r in db.execute("SELECT name FROM sqlite_master")],
                db.execute("PRAGMA journal_mode").fetchone()[0],
                db.execute("PRAGMA user_version").fetchone()[0])

    def test_a_database_without_write_ahead_logging(self) -> None:
        """A database that cannot use WAL (here SQLite's :memory:) is refused."""
        with pytest.raises(ib.LedgerStoreError, match="write-ahead logging"):
            ib.Ledger.open(":memory:")

    def test_a_damaged_file(self, tmp_path: Path) -> None:
        """Garbled pages behind a valid header: verify is LedgerCorrupted, the rest
        LedgerStoreError (damaged), none a sqlite3 error."""
        path = damaged(tmp_path)
        with ib.Ledger.open(path) as ledger:
            with pytest.raises(ib.LedgerCorrupted, match="malformed") as corrupted:
                ledger.verify()
            assert "file" == corrupted.value.entry
            for call in (lambda: list(ledger.entries()), lambda: ledger.export(io.StringIO()),
                         lambda: ledger.credit(1, key="new"), lambda: ledger.spend("day")):
                with pytest.raises(ib.LedgerStoreError, match="damaged") as caught:
                    call()
                assert caught.value.damaged

    def test_a_read_only_file(self, tmp_path: Path) -> None:
        """Read by a user who may not write it: reads work, a write is one LedgerStoreError."""
        folder, path = read_only_ledger(tmp_path)
        code = textwrap.dedent(f"""
            import imagine_billing as ib
            with ib.Ledger.open({str(path)!r}) as ledger:
                print(ledger.balance().available, ledger.verify())
                try:
                    ledger.credit(1, key="more")
                except ib.LedgerStoreError as error:
                    print("refused", "read-only" in str(error))
            """)
        result = run_as_another_user([sys.executable, "-c", code], folder)
        assert (0, "5 1\nrefused True\n") == (result.returncode, result.stdout), result.stderr


def damaged(tmp_path: Path) -> Path:
    """A ledger file whose entry pages are random bytes (its first twelve pages, with the
    schema and the tables' roots, are intact: the tip can be read)."""
    path = tmp_path / "damaged.db"
    with ib.Ledger.open(path) as ledger, ledger.batch():
        for i in range(2000):
            ledger.credit(5, key=f"c{i}", memo="m" * 50)
    size = path.stat().st_size
    with path.open("r+b") as file:
        file.seek(4096 * 12)
        file.write(random.Random(5).randbytes(size - 4096 * 14))
    return path


def read_only_ledger(tmp_path: Path) -> tuple[Path, Path]:
    """A ledger (one credit of 5) in a folder anyone may write, the file itself read-only."""
    folder = tmp_path / "shared"
    folder.mkdir()
    path = folder / "ledger.db"
    make_ledger(path, 5)
    for parent in (tmp_path, *tmp_path.parents):
        if parent.stat().st_mode & 0o005 != 0o005:
            parent.chmod(parent.stat().st_mode | 0o005)  # let the other user reach it
    folder.chmod(0o777)
    path.chmod(0o444)
    return folder, path


_NO_DAC = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]
"""Root without the capabilities that let it ignore file modes: the read-only file is
read-only to it, and the checkout and its venv stay readable (a checkout in a folder of mode
0700, as ``mktemp -d`` makes, is out of nobody's reach)."""


@functools.cache
def _user_prefix() -> tuple[str, ...]:
    """How to run a command as a user that may not write a read-only file."""
    if os.geteuid() != 0:
        return ()  # file modes apply to us
    if subprocess.run([*_NO_DAC, "true"], capture_output=True, check=False).returncode == 0:
        return tuple(_NO_DAC)
    return ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")  # nobody


def run_as_another_user(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``command`` as a user that may not write the ledger: when we are root (root
    ignores file modes), root without its file-mode capabilities, or else nobody; otherwise
    ourselves (the file is read-only to us)."""
    return subprocess.run([*_user_prefix(), *command], cwd=cwd, capture_output=True,
                          text=True, timeout=CHILD_TIMEOUT, check=False)


class TestSpendQueries:
    """The spend query of budgets and forecasts reads the time index, not every row."""

    def test_a_period_is_read_through_the_time_index(self, tmp_path: Path) -> None:
        """EXPLAIN QUERY PLAN of a spend since a time uses entries_at for debits and for the
        debits whose refunds it counts: no full scan of the entries."""
        from imagine_billing.ledger._sqlite_sql import spending as spending_query
        from imagine_billing.ledger.sqlite import SqliteStore

        store = SqliteStore(tmp_path / "ledger.db")
        try:
            spending, args = spending_query(0, 10, {"project": "x"}, None)
            plan = [row[-1] for row in store._db.execute(  # type: ignore[union-attr]
                "EXPLAIN QUERY PLAN " + spending, args)]
        finally:
            store.close()
        assert [] == [step for step in plan if step.startswith("SCAN")]
        assert 2 == sum("entries_at" in step for step in plan)


class TestPagedReads:
    """entries() reads a file page by page, in id order, whatever the clock did."""

    def test_time_ranges_across_pages(self, tmp_path: Path) -> None:
        """5000 entries a second apart, one written with the clock set back: each range
        gives exactly its entries, in id order."""
        start = datetime(2026, 1, 1, tzinfo=UTC)
        times = [start + timedelta(seconds=n) for n in range(5000)]
        times[4000] = start + timedelta(seconds=1500)  # a clock set back
        moments = iter(times)
        with ib.Ledger.open(tmp_path / "l.db", clock=lambda: next(moments),
                            durable=False) as ledger:
            with ledger.batch():
                for n in range(5000):
                    ledger.credit(1, key=f"c{n}")
            since, until = start + timedelta(seconds=1000), start + timedelta(seconds=4500)
            expected = [n + 1 for n, at in enumerate(times) if since <= at < until]
            assert expected == [e.id for e in ledger.entries(since=since, until=until)]
            assert list(range(1, 5001)) == [e.id for e in ledger.entries()]
            moment = times[4000]  # entries 1501 and 4001 share it
            assert [1501, 4001] == [e.id for e in ledger.entries(
                since=moment, until=moment + timedelta(microseconds=1))]


LINK_CHILD = """
import sys
import imagine_billing as ib

path, prefix, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
sys.stdin.readline()
try:
    with ib.Ledger.open(path) as ledger:
        for i in range(count):
            print(ledger.credit(1, key=f"{prefix}-{i}").key, flush=True)
except ib.LedgerStoreError as error:
    print("refused", path in str(error) and "2 hard links" in str(error))
"""


def race(*names: Path, count: int) -> list[str]:
    """The outputs of LINK_CHILD writing ``count`` credits through each name at once."""
    commands = [[sys.executable, "-c", LINK_CHILD, str(name), name.stem, str(count)]
                for name in names]
    with children(*commands) as started:
        for child in started:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        return [finish(child) for child in started]


def keys(path: Path) -> list[str]:
    """The keys of the ledger at ``path``, read without writing; its chain verified."""
    with ib.Ledger.open(path, readonly=True) as ledger:
        ledger.verify()
        return [entry.key for entry in ledger.entries()]


class TestHardLinks:
    """A file reached by two names SQLite cannot tell apart is never written through."""

    def test_writers_through_two_hard_links_are_refused(self, tmp_path: Path) -> None:
        """Two processes writing through two hard links are both refused, with an error
        naming the path and the rule, and the ledger is as it was."""
        path, other = tmp_path / "a.db", tmp_path / "b.db"
        make_ledger(path, 5)
        os.link(path, other)
        outputs = race(path, other, count=100)
        assert (["refused True\n"] * 2, ["opening"]) == (outputs, keys(path))

    def test_one_name_again_is_written(self, tmp_path: Path) -> None:
        """Once the other link is removed, the ledger is written as before."""
        path, other = tmp_path / "a.db", tmp_path / "b.db"
        make_ledger(path, 5)
        os.link(path, other)
        other.unlink()
        with ib.Ledger.open(path) as ledger:
            ledger.credit(1, key="more")
        assert ["opening", "more"] == keys(path)

    def test_a_hard_linked_log_is_refused(self, tmp_path: Path) -> None:
        """A write-ahead log with a second name is refused too, naming it."""
        path = tmp_path / "a.db"
        make_ledger(path, 5)
        with ib.Ledger.open(path) as holder:  # keeps a.db-wal in place
            holder.credit(1, key="more")
            os.link(f"{path}-wal", tmp_path / "copy-wal")
            with pytest.raises(ib.LedgerStoreError, match="2 hard links") as caught:
                ib.Ledger.open(path)
        assert f"ledger {path}-wal:" in str(caught.value)

    def test_a_linked_file_is_read(self, tmp_path: Path) -> None:
        """A read-only open of a hard-linked file reads it (reading loses nothing)."""
        path, other = tmp_path / "a.db", tmp_path / "b.db"
        make_ledger(path, 5)
        os.link(path, other)
        with ib.Ledger.open(other, readonly=True) as ledger:
            assert (5, 1) == (ledger.balance().available, ledger.verify())

    def test_a_symbolic_link_is_the_same_file_to_sqlite(self, tmp_path: Path) -> None:
        """Writers through a file and a symbolic link to it lose nothing: SQLite follows
        the link to one log and one set of locks."""
        path, link = tmp_path / "a.db", tmp_path / "s.db"
        make_ledger(path, 5)
        link.symlink_to(path)
        outputs = race(path, link, count=30)
        acknowledged = [key for out in outputs for key in out.split()]
        assert (60, sorted(["opening", *acknowledged])) == (len(acknowledged),
                                                            sorted(keys(path)))


class TestReadOnlyStore:
    """Ledger.open(path, readonly=True): reads only, also where nothing may be written."""

    def test_a_write_is_refused(self, tmp_path: Path) -> None:
        """Reads work; a write is one LedgerStoreError, and the file is unchanged."""
        path = tmp_path / "l.db"
        make_ledger(path, 5)
        with ib.Ledger.open(path, readonly=True) as ledger:
            assert 5 == ledger.balance().available
            with pytest.raises(ib.LedgerStoreError, match="opened read-only"):
                ledger.credit(1, key="more")
        assert ["opening"] == keys(path)

    def test_a_missing_file_is_not_created(self, tmp_path: Path) -> None:
        """A read-only open of a missing file says so and creates nothing."""
        with pytest.raises(ib.LedgerStoreError, match="no such file"):
            ib.Ledger.open(tmp_path / "none.db", readonly=True)
        assert [] == list(tmp_path.iterdir())

    def test_a_read_only_folder(self, tmp_path: Path) -> None:
        """In a folder its user may not write: balance, verify, entries and export work,
        a write is refused, and nothing is created beside the file."""
        folder, path = read_only_folder(tmp_path)
        code = textwrap.dedent(f"""
            import io
            import imagine_billing as ib
            with ib.Ledger.open({str(path)!r}, readonly=True) as ledger:
                print(ledger.balance().available, ledger.verify(),
                      len(list(ledger.entries())), ledger.export(io.StringIO()))
                try:
                    ledger.credit(1, key="more")
                except ib.LedgerStoreError as error:
                    print("refused", "read-only" in str(error))
            """)
        result = run_as_another_user([sys.executable, "-c", code], folder)
        assert (0, "5 1 1 1\nrefused True\n", ["ledger.db"]) == (
            result.returncode, result.stdout, sorted(p.name for p in folder.iterdir())
        ), result.stderr

    def test_a_log_that_cannot_be_read_is_refused(self, tmp_path: Path) -> None:
        """In a read-only folder, a file with an unmerged write-ahead log (and no -shm) is
        refused with a clear error, never read without the log's entries."""
        folder, path = read_only_folder(tmp_path)
        folder.chmod(0o777)
        source = tmp_path / "source.db"
        make_ledger(source, 5)
        with ib.Ledger.open(source) as holder:  # the log stays unmerged while it is open
            holder.credit(1, key="logged")
            for suffix in ("", "-wal"):
                path.with_name(path.name + suffix).write_bytes(
                    Path(f"{source}{suffix}").read_bytes())
        folder.chmod(0o555)
        code = textwrap.dedent(f"""
            import imagine_billing as ib
            try:
                ib.Ledger.open({str(path)!r}, readonly=True)
            except ib.LedgerStoreError as error:
                print("refused", "write-ahead log" in str(error))
            """)
        result = run_as_another_user([sys.executable, "-c", code], folder)
        assert (0, "refused True\n") == (result.returncode, result.stdout), result.stderr


def read_only_folder(tmp_path: Path) -> tuple[Path, Path]:
    """A ledger (one credit of 5) in a folder no one but root may write (as on a read-only
    mount), the file itself read-only."""
    folder, path = read_only_ledger(tmp_path)
    folder.chmod(0o555)
    return folder, path


class TestFailedImport:
    """from_jsonl into a file: a failed import leaves the file system as it found it."""

    @pytest.mark.parametrize("dangling", [False, True])
    def test_nothing_is_left(self, tmp_path: Path, dangling: bool) -> None:
        """A bad line, into a missing path or a symbolic link to one: the same files
        after as before (the link kept, no file at its end)."""
        path = tmp_path / "new.db"
        if dangling:
            path.symlink_to(tmp_path / "target.db")
        before = sorted(p.name for p in tmp_path.iterdir())
        with pytest.raises(ib.BadRecordError, match="not a ledger entry"):
            ib.Ledger.from_jsonl(["\n", '{"kind": "credit"}\n'], path=path)
        assert before == sorted(p.name for p in tmp_path.iterdir())
        assert dangling == path.is_symlink()
