"""`Ledger.relaxed`: writes that commit without waiting for the disk, on every store, and
what each store really does (SQLite's ``synchronous``, PostgreSQL's ``synchronous_commit``)."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import imagine_billing as ib
from imagine_billing.ledger.postgres import PostgresStore
from imagine_billing.ledger.sqlite import SqliteStore
from imagine_billing.ledger.store import Store
from tests.helpers import Clock


class TestEveryStore:
    """The writes of a relaxed block are written like any other, all or nothing."""

    def test_relaxed_writes_are_kept(self, open_store: Callable[[], Store],
                                     clock: Clock) -> None:
        ledger = ib.Ledger(open_store(), clock=clock)
        ledger.credit(50, key="top-up")
        hold = ledger.hold(20, key="h")
        with ledger.relaxed():
            ledger.capture(hold, tokens=15)
            with ledger.relaxed(), ledger.batch():  # nested: as the outer block
                ledger.debit(5, key="d")
        again = ib.Ledger(open_store(), clock=clock)
        assert (30, 0) == (again.balance().posted, again.balance().held)
        assert ["credit", "hold", "capture", "debit"] == [e.kind for e in again.entries()]
        again.verify()

    def test_an_exception_undoes_the_batch_inside(self, ledger: ib.Ledger) -> None:
        def undone() -> None:
            with ledger.relaxed(), ledger.batch():
                ledger.debit(10, key="gone")
                raise RuntimeError("undo")

        with pytest.raises(RuntimeError, match="undo"):
            undone()
        assert 100 == ledger.balance().posted
        with ledger.relaxed():
            ledger.debit(10, key="kept")
        assert 90 == ledger.balance().posted


def traced(store: SqliteStore) -> list[str]:
    """The statements ``store``'s connection runs from now on."""
    seen: list[str] = []
    assert store._db is not None
    store._db.set_trace_callback(seen.append)
    return seen


def synchronous(store: SqliteStore) -> int:
    assert store._db is not None
    return int(store._db.execute("PRAGMA synchronous").fetchone()[0])


class TestSqlite:
    """On SQLite the block runs at ``synchronous = NORMAL`` and goes back to FULL after."""

    def test_the_commit_waits_for_no_disk(self, tmp_path: Path) -> None:
        store = SqliteStore(tmp_path / "l.db")
        ledger = ib.Ledger(store)
        ledger.credit(10, key="durable")
        seen = traced(store)
        with ledger.relaxed():
            assert 1 == synchronous(store)
            ledger.debit(1, key="relaxed")
        assert 2 == synchronous(store)  # FULL again
        ledger.debit(1, key="durable again")
        begins = [n for n, s in enumerate(seen) if s.startswith("BEGIN IMMEDIATE")]
        normal = seen.index("PRAGMA synchronous = NORMAL")
        assert normal < begins[0] < seen.index("PRAGMA synchronous = 2") < begins[1]
        store.close()

    def test_nothing_changes_inside_a_transaction_or_when_not_durable(
            self, tmp_path: Path) -> None:
        store = SqliteStore(tmp_path / "l.db")
        ledger = ib.Ledger(store)
        ledger.credit(10, key="c")
        with ledger.batch():
            with ledger.relaxed():  # SQLite cannot change it inside a transaction
                ledger.debit(1, key="d")
            assert 2 == synchronous(store)
        store.close()
        fast = SqliteStore(tmp_path / "fast.db", durable=False)
        seen = traced(fast)
        with ib.Ledger(fast).relaxed() as relaxed:
            relaxed.credit(1, key="c")
        assert not [s for s in seen if s.startswith("PRAGMA synchronous =")]
        assert 1 == synchronous(fast)
        fast.close()

    def test_a_read_left_open_does_not_keep_it_relaxed(self, tmp_path: Path) -> None:
        """SQLite cannot change the level while a read is open: a block that ends with one
        open (a generator's snapshot) gives FULL back once it closes (or before the next
        write begins), never leaving later writes relaxed."""
        store = SqliteStore(tmp_path / "l.db")
        ledger = ib.Ledger(store)
        ledger.credit(10, key="c")

        def snapshot() -> Iterator[int]:
            with ledger.snapshot():
                yield 1

        with ledger.relaxed():
            reading = snapshot()
            next(reading)
        assert 1 == synchronous(store)  # the read is still open
        reading.close()
        assert 2 == synchronous(store)
        seen = traced(store)
        ledger.debit(1, key="durable")
        assert [] == [s for s in seen if s.startswith("PRAGMA synchronous =")]
        store.close()

    def test_a_relaxed_write_survives_a_killed_process(self, tmp_path: Path) -> None:
        """Returned is written: a kill -9 right after loses nothing (only a crash of the
        machine could, before the next durable commit)."""
        path = tmp_path / "l.db"
        code = (
            "import os, signal, sys\n"
            "import imagine_billing as ib\n"
            "ledger = ib.Ledger.open(sys.argv[1])\n"
            "ledger.credit(10, key='c')\n"
            "hold = ledger.hold(4, key='h')\n"
            "with ledger.relaxed():\n"
            "    ledger.capture(hold, key='h:capture')\n"
            "print('captured', flush=True)\n"
            "os.kill(os.getpid(), signal.SIGKILL)\n"
        )
        done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                              text=True, timeout=60, check=False)
        assert -signal.SIGKILL == done.returncode, done.stderr
        assert "captured" in done.stdout
        with ib.Ledger.open(path) as ledger:
            assert "capture" == ledger.get("h:capture").kind
            assert (6, 0) == (ledger.balance().posted, ledger.balance().held)
            ledger.verify()


class TestPostgres:
    """On PostgreSQL a transaction begun in the block sets ``synchronous_commit = off``
    for itself only."""

    def test_synchronous_commit_of_the_transaction(self, pg_url: str, pg_name: str) -> None:
        store = PostgresStore(pg_url, name=pg_name)
        ledger = ib.Ledger(store)
        try:
            ledger.credit(10, key="c")
            with ledger.relaxed(), store.write():
                assert [("off",)] == store._run("SHOW synchronous_commit")
            with store.write():
                assert [("on",)] == store._run("SHOW synchronous_commit")
            with store.write(), ledger.relaxed(), store.write():  # begun before: as it began
                assert [("on",)] == store._run("SHOW synchronous_commit")
            with ledger.relaxed():
                ledger.debit(3, key="d")
            assert 7 == ib.Ledger(store).balance().posted
        finally:
            store.close()


def test_the_sqlite_error_of_a_closed_store(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "l.db")
    store.close()
    with pytest.raises(ValueError, match="closed"), store.relaxed():
        pass
