"""The SQLite ledger with real files and real processes: crashes, concurrency, tampering."""

from __future__ import annotations

import contextlib
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import imagine_billing as ib

CHILD_TIMEOUT = 120

CRASH_CHILD = """
import sys
from imagine_billing.ledger import Ledger

path, prefix = sys.argv[1], sys.argv[2]
with Ledger.open(path) as ledger:
    i = 0
    while True:
        key = f"{prefix}-{i}"
        step = i % 4
        if step == 0:
            ledger.credit(5, key=key)
        elif step == 1:
            ledger.hold(2, key=key)
        elif step == 2:
            ledger.capture(f"{prefix}-{i - 1}", key=key)
        else:
            with ledger.batch():
                ledger.debit(1, key=key)
                ledger.credit(1, key=key + "-b")
        print(key, flush=True)
        i += 1
"""

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
            with children([sys.executable, "-c", CRASH_CHILD, str(path), f"r{round_}"]) as [child]:
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
