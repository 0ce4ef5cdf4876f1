"""verify(workers=N): ranges of the chain replayed by child processes (real ones) prove what
one process proves, and name the same first bad entry."""

from __future__ import annotations

import os
import signal
import stat
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

import imagine_billing as ib
from imagine_billing.ledger import _verify_parts
from imagine_billing.ledger.postgres import PostgresStore
from imagine_billing.ledger.sqlite import SqliteStore
from imagine_billing.ledger.store import Store
from tests.store.conftest import START, Clock
from tests.unit.test_ledger_sqlite import rewritten, sql

Outcome = int | tuple[object, str]


@pytest.fixture(autouse=True)
def small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Split a chain of any size (the real threshold is tens of thousands of entries)."""
    monkeypatch.setattr(_verify_parts, "MIN_PART", 1)


def mixed(ledger: ib.Ledger, clock: Clock) -> None:
    """30 entries; split in 2 at entry 15 (in 3 at 10 and 20): holds placed before a
    boundary are captured, expired and voided after it, a debit before it is refunded after
    it, a budget added before it is removed after it, and one hold stays open."""
    ledger.credit(1000, key="opening")                                     # 1
    ledger.add_budget(ib.Budget(name="site", limit=600, period="day",      # 2
                                scope={"project": "site"}, hard=True))
    ledger.debit(10, key="a", tags={"project": "site"})                    # 3
    across = ledger.hold(20, key="h1", tags={"project": "site"})           # 4
    ledger.hold(7, key="h2", expires_at=clock.now + timedelta(minutes=5))  # 5
    ledger.void(ledger.hold(3, key="h3"))                                  # 6, 7
    ledger.capture(ledger.hold(5, key="h4"), 5)                            # 8, 9
    ledger.debit(5, key="b")                                               # 10
    voided = ledger.hold(4, key="h5")                                      # 11
    ledger.add_budget(ib.Budget(name="all", limit=10_000, period="month"))  # 12
    for index in range(13, 19):                                            # 13-18
        ledger.debit(1, key=f"pad{index}", tags={"project": "site"})
    clock.advance(hours=1)
    ledger.capture(across, 15)                                             # 19
    ledger.void(voided)                                                    # 20
    ledger.expire_holds()                                                  # 21
    ledger.refund("a", 4, key="r1")                                        # 22
    ledger.remove_budget("site")                                           # 23
    ledger.refund("b", 2, key="r2")                                        # 24
    ledger.refund("a", 6, key="r3")                                        # 25
    ledger.hold(9, key="open")                                             # 26
    for index in range(27, 31):                                            # 27-30
        ledger.credit(index, key=f"pad{index}")


@pytest.fixture
def path(tmp_path: Path) -> Path:
    """A SQLite file holding the `mixed` ledger."""
    path = tmp_path / "ledger.db"
    clock = Clock(START)
    with ib.Ledger(SqliteStore(path), clock=clock) as ledger:
        mixed(ledger, clock)
        assert 30 == ledger.head()[0]
    return path


def outcome(path: Path, workers: int, **anchors: tuple[int, str]) -> Outcome:
    """verify's count, or the entry and reason of its LedgerCorrupted."""
    with ib.Ledger.open(path) as ledger:
        try:
            return ledger.verify(workers=workers, **anchors)
        except ib.LedgerCorrupted as error:
            return error.entry, error.reason


def hash_of(path: Path, entry_id: int) -> tuple[int, str]:
    with ib.Ledger.open(path) as ledger:
        return entry_id, ledger.get(entry_id).hash


@pytest.fixture
def spawned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The children run through a wrapper that logs each start (one line a child)."""
    log, wrapper = tmp_path / "children.log", tmp_path / "python"
    wrapper.write_text(f'#!/bin/sh\necho $$ >> "{log}"\nexec "{sys.executable}" "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setattr(_verify_parts, "PYTHON", str(wrapper))
    log.touch()
    return log


class TestValid:
    def test_every_split_counts_what_one_process_counts(self, path: Path,
                                                        spawned: Path) -> None:
        """2, 3 and 4 processes (1, 2 and 3 children, really started) check 30 entries."""
        assert [30, 30, 30, 30] == [outcome(path, workers) for workers in (1, 2, 3, 4)]
        assert 1 + 2 + 3 == len(spawned.read_text().split())

    def test_since_and_expect_combine(self, path: Path, spawned: Path) -> None:
        """The part after an anchor is split; an expected entry in any range is checked."""
        since = hash_of(path, 6)
        for expect in (hash_of(path, 3), hash_of(path, 12), hash_of(path, 29)):
            assert 24 == outcome(path, 3, since=since, expect=expect)
        assert outcome(path, 1, since=since, expect=(12, "0" * 64)) == outcome(
            path, 3, since=since, expect=(12, "0" * 64))
        assert outcome(path, 1, expect=(31, "0" * 64)) == outcome(path, 2, expect=(31, "0" * 64))
        assert 3 * 2 + 2 + 1 == len(spawned.read_text().split())

    def test_a_memory_ledger_verifies_in_this_process(self, spawned: Path) -> None:
        clock = Clock(START)
        ledger = ib.Ledger.memory(clock=clock)
        mixed(ledger, clock)
        assert 30 == ledger.verify(workers=4)
        assert "" == spawned.read_text()

    def test_inside_a_write_transaction(self, path: Path, spawned: Path) -> None:
        """Rows not committed yet, which no other process sees: checked in this process."""
        with ib.Ledger.open(path) as ledger, ledger.batch():
            ledger.credit(5, key="uncommitted")
            assert 31 == ledger.verify(workers=3)
        assert "" == spawned.read_text()
        assert 31 == outcome(path, 3)

    @pytest.mark.parametrize("workers", [0, -1, True, 2.0, "2", None])
    def test_bad_workers(self, path: Path, workers: object) -> None:
        with ib.Ledger.open(path) as ledger, pytest.raises(ValueError, match="workers") as caught:
            ledger.verify(workers=workers)  # type: ignore[arg-type]
        assert f"workers must be an int >= 1, the number of processes verify uses (got " \
               f"{workers!r})" == str(caught.value)

    def test_async_ledger_takes_workers(self, path: Path) -> None:
        import asyncio

        async def run() -> int:
            async with await ib.AsyncLedger.open(path) as ledger:
                return await ledger.verify(workers=2)

        assert 30 == asyncio.run(run())


HOLD_CLOSED_TWICE = ("ref", 4)
"""Entry 9 captures hold 8; pointed at hold 4 (captured again by entry 19)."""


class TestCorrupted:
    """Each corruption names what one process names, whatever the split."""

    @pytest.mark.parametrize("change", [
        ("rewritten", 3, "tokens", 11), ("rewritten", 22, "tokens", 9),
        ("rewritten", 9, *HOLD_CLOSED_TWICE), ("rewritten", 24, "ref", 3),
        ("sql", "UPDATE entries SET memo = 'x' WHERE id = 14"),
        ("sql", "UPDATE entries SET memo = 'x' WHERE id = 15"),  # a boundary
        ("sql", "UPDATE entries SET hash = CASE WHEN hash LIKE '0%' THEN '1' ELSE '0' END "
                "|| substr(hash, 2) WHERE id = 20"),
        ("sql", "UPDATE entries SET memo = 'x' WHERE id = 27"),
        ("sql", "DELETE FROM entries WHERE id = 10"),
        ("sql", "DELETE FROM entries WHERE id = 15"),
        ("sql", "DELETE FROM entries WHERE id = 20"),
        ("sql", "DELETE FROM entries WHERE id = 28"),
        ("sql", "INSERT INTO open_holds (id, expires_at) VALUES (8, NULL)"),
        ("sql", "INSERT INTO open_holds (id, expires_at) VALUES (4, NULL)"),
        ("sql", "DELETE FROM open_holds WHERE id = 26"),
        ("sql", "UPDATE tip SET posted = posted + 1"),
    ], ids=repr)
    def test_the_same_entry_as_one_process(self, path: Path, spawned: Path,
                                           change: tuple[object, ...]) -> None:
        if change[0] == "rewritten":
            _, entry_id, column, value = change
            rewritten(path, entry_id, column, value)  # type: ignore[arg-type]
        else:
            sql(path, "DROP TRIGGER entries_append_only_update",
                "DROP TRIGGER entries_append_only_delete", str(change[1]))
        alone = outcome(path, 1)
        assert isinstance(alone, tuple)
        assert [alone, alone, alone] == [outcome(path, workers) for workers in (2, 3, 4)]

    def test_a_hold_captured_twice_across_the_boundary(self, path: Path) -> None:
        """Hold 4, captured by entry 9 before the boundary and by 19 after it: the range
        after the boundary resumes with hold 4 open (the store's account), so only the
        boundary check catches it; the rest is replayed here and names entry 19."""
        rewritten(path, 9, *HOLD_CLOSED_TWICE)
        assert (19, "it closes hold 4, which is not open") == outcome(path, 2) == outcome(
            path, 1)

    def test_the_first_bad_entry_wins(self, path: Path) -> None:
        """Both ranges bad: the first range's entry is named, whichever finishes first."""
        rewritten(path, 25, "tokens", 7)  # refunds 7 of the 6 left of entry 3
        sql(path, "UPDATE entries SET memo = 'x' WHERE id = 5")  # its trigger dropped
        found = outcome(path, 2)
        assert isinstance(found, tuple)
        assert 5 == found[0]
        assert found == outcome(path, 3) == outcome(path, 1)


class TestChildren:
    def test_a_child_that_cannot_start(self, path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
        """The platform's interpreter missing or failing: the ranges are checked here."""
        for python in ("/bin/false", "/nonexistent/python", "/bin/true"):
            monkeypatch.setattr(_verify_parts, "PYTHON", python)
            assert 30 == outcome(path, 3)
        sql(path, "DROP TRIGGER entries_append_only_update",
            "UPDATE entries SET memo = 'x' WHERE id = 4")
        assert outcome(path, 1) == outcome(path, 3)

    def test_another_package_is_refused(self, path: Path, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
        """A child importing another imagine_billing says so; the range is checked here."""
        job = {"path": sys.path, "file": str(tmp_path / "other.py"), "store": {
            "sqlite": str(path)}, "since": None, "end": 15, "anchor": None}
        answer = _verify_parts.child(job)
        assert answer == {"failed": f"imported {_verify_parts.__file__}, not "
                                    f"{tmp_path / 'other.py'}"}

    def test_an_interrupt_leaves_no_child(self, path: Path, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
        """Ctrl-C while the children run: each is ended before verify returns. (A child
        logs its pid once it has read its job, which verify sends once it holds the child.)"""
        log, wrapper = tmp_path / "pids", tmp_path / "slow"
        wrapper.write_text(f'#!/bin/sh\ncat > /dev/null\necho $$ >> "{log}"\nexec sleep 600\n')
        wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
        monkeypatch.setattr(_verify_parts, "PYTHON", str(wrapper))

        def interrupt() -> None:
            while len(log.read_text().split()) < 2 if log.exists() else True:
                time.sleep(0.01)
            os.kill(os.getpid(), signal.SIGINT)

        thread = threading.Thread(target=interrupt)
        thread.start()
        with pytest.raises(KeyboardInterrupt):
            outcome(path, 3)
        thread.join()
        for pid in map(int, log.read_text().split()):
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)


def test_every_store(store: Store, spawned: Path) -> None:
    """Memory, SQLite and PostgreSQL (the URL reaches the child through its stdin)."""
    clock = Clock(START)
    ledger = ib.Ledger(store, clock=clock)
    mixed(ledger, clock)
    assert [30, 30] == [ledger.verify(workers=workers) for workers in (1, 3)]
    started = len(spawned.read_text().split())
    assert started == (0 if "Memory" in type(store).__name__ else 2)


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_a_forged_open_hold_on_every_database(kind: str, tmp_path: Path, spawned: Path,
                                              request: pytest.FixtureRequest) -> None:
    """Hold 8 (captured by entry 9) put back among the open holds: both databases derive
    the state at the boundary from their open holds, so each split finds it, as one
    process does ("open holds")."""
    clock = Clock(START)
    store: Store
    if kind == "sqlite":
        store = SqliteStore(tmp_path / "ledger.db")
    else:
        url = request.getfixturevalue("pg_url")
        store = PostgresStore(url, name=request.getfixturevalue("pg_name"))
    with ib.Ledger(store, clock=clock) as ledger:
        mixed(ledger, clock)
        if isinstance(store, SqliteStore):
            sql(tmp_path / "ledger.db", "INSERT INTO open_holds (id, expires_at) VALUES (8, NULL)")
        else:
            with psycopg.connect(url, autocommit=True) as db:
                db.execute("INSERT INTO open_holds (ledger, id, expires_at) VALUES (%s, 8, NULL)",
                           (store._ledger,))
        found = []
        for workers in (1, 2, 3):
            with pytest.raises(ib.LedgerCorrupted) as caught:
                ledger.verify(workers=workers)
            found.append((caught.value.entry, caught.value.reason))
    assert found[0][0] == "open holds"
    assert [found[0]] * 3 == found
    assert 1 + 2 == len(spawned.read_text().split())


class TestWhatTheChildrenRead:
    """Found by an attack review: the children open the ledger again by its path, and take
    the parent's sys.path."""

    def test_a_file_replaced_while_open_is_not_checked_for_the_parent(
            self, tmp_path: Path) -> None:
        """Another ledger moved over the path while this one is open (a restore): the
        children read the other file; their ranges are checked here instead, so the ledger
        open verifies as with one process (it was reported corrupted)."""
        path, other = tmp_path / "ledger.db", tmp_path / "other.db"
        for target, shift in ((path, 0), (other, 1)):
            clock = Clock(START)
            clock.advance(hours=shift)  # the same history at another time: other hashes
            with ib.Ledger(SqliteStore(target), clock=clock) as ledger:
                mixed(ledger, clock)
        with ib.Ledger.open(path) as ledger:
            os.replace(other, path)
            assert 30 == ledger.verify(workers=1)
            assert 30 == ledger.verify(workers=3)

    def test_a_sys_path_entry_that_is_no_string(self, path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
        """A program appended a Path to sys.path: the split still runs (it raised
        TypeError: the job could not be written as JSON)."""
        monkeypatch.setattr(sys, "path", [*sys.path, Path("/nowhere")])
        assert 30 == outcome(path, 3)
