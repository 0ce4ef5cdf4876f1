"""One conformance suite for every `Store`: memory, SQLite and PostgreSQL must behave alike,
through the protocol and through a `Ledger` over it (same entries, same hashes, same figures)."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from datetime import timedelta

import pytest

import imagine_billing as ib
from imagine_billing.errors import HoldClosed
from imagine_billing.ledger._chain import Replay
from imagine_billing.ledger.model import GENESIS, to_micros
from imagine_billing.ledger.store import Store, Tip
from tests.store.conftest import START, Clock


class _Abort(Exception):
    """Raised in a block to undo it."""


def script(ledger: ib.Ledger, clock: Clock) -> None:
    """Every kind of write, across days, with tags, styles, budgets, expiry and refunds."""
    ledger.add_budget(ib.Budget(name="site", limit=60, period="day",
                                scope={"project": "site"}, hard=True))
    ledger.debit(10, key="a", tags={"project": "site", "user": "ana"})
    clock.advance(hours=25)
    hold = ledger.hold(20, key="b", tags={"project": "app"})
    ledger.capture(hold, 15)
    ledger.hold(7, key="lapses", expires_at=clock.now + timedelta(minutes=5))
    ledger.void(ledger.hold(3, key="voided", tags={"project": "site"}))
    clock.advance(days=1)
    ledger.expire_holds()
    ledger.debit(5, key="c")
    ledger.refund("a", 4, key="d")
    ledger.note(key="n", memo="a note", tags={"who": "ops"})
    ledger.add_budget(ib.Budget(name="all", limit=1000, period="month"))
    ledger.hold(9, key="open", tags={"project": "site"})


class TestLedgerAgrees:
    """A ledger gives the same entries, hashes and figures on every store."""

    def test_the_same_export_on_every_store(self, ledger: ib.Ledger, clock: Clock) -> None:
        """The same writes at the same times export the same lines (hashes included)."""
        script(ledger, clock)
        reference_clock = Clock(START)
        reference = ib.Ledger.memory(clock=reference_clock)
        reference.credit(100, key="opening")
        script(reference, reference_clock)
        ours, theirs = io.StringIO(), io.StringIO()
        ledger.export(ours)
        reference.export(theirs)
        assert theirs.getvalue() == ours.getvalue()
        assert 14 == ledger.verify()
        assert reference.head() == ledger.head()

    def test_the_same_figures_on_every_store(self, ledger: ib.Ledger, clock: Clock) -> None:
        """Balance, spend by style/day/tag, held by scope and budgets agree with memory."""
        script(ledger, clock)
        reference_clock = Clock(START)
        reference = ib.Ledger.memory(clock=reference_clock)
        reference.credit(100, key="opening")
        script(reference, reference_clock)
        for read in (
            lambda led: led.balance(),
            lambda led: led.spend(),
            lambda led: led.spend(by="day"),
            lambda led: led.spend(by="tag:project"),
            lambda led: led.spend(by="tag:user", since=START, until=START + timedelta(days=1)),
            lambda led: led.held(tags={"project": "site"}),
            lambda led: led.spent(tags={"project": "site"}),
            lambda led: [h.entry.key for h in led.open_holds()],
            lambda led: ib.budget_status(led, "site"),
            lambda led: ib.budget_status(led, "all"),
            lambda led: led.budget_usage("site"),
            lambda led: [e.key for e in led.entries(since=START + timedelta(days=1))],
        ):
            assert read(reference) == read(ledger)

    def test_a_hard_budget_refuses_on_every_store(self, ledger: ib.Ledger) -> None:
        """A debit past a hard budget raises BudgetExceeded and writes nothing."""
        ledger.add_budget(ib.Budget(name="cap", limit=30, period="total", hard=True))
        ledger.debit(25, key="x")
        before = ledger.head()
        with pytest.raises(ib.BudgetExceeded):
            ledger.debit(6, key="y")
        assert before == ledger.head()
        assert (25, 0) == ledger.budget_usage("cap")

    def test_idempotent_replays_on_every_store(self, ledger: ib.Ledger) -> None:
        """A key used again returns the original; with another request it conflicts."""
        first = ledger.debit(5, key="once")
        assert first == ledger.debit(5, key="once")
        with pytest.raises(ib.IdempotencyConflict):
            ledger.debit(6, key="once")
        assert 95 == ledger.balance().available

    def test_a_closed_hold_stays_closed(self, ledger: ib.Ledger) -> None:
        """A captured hold cannot be voided."""
        hold = ledger.hold(5, key="h")
        ledger.capture(hold)
        with pytest.raises(HoldClosed):
            ledger.void(hold, key="v")


class TestVerifySince:
    """verify(since=(id, hash)) replays the entries after any anchor, on every store."""

    def test_from_every_entry(self, ledger: ib.Ledger, clock: Clock) -> None:
        """From each entry of the script (and from the start), verify checks those after."""
        script(ledger, clock)
        entries = list(ledger.entries())
        anchors = [(0, GENESIS)] + [(entry.id, entry.hash) for entry in entries]
        expected = [len(entries) - entry_id for entry_id, _ in anchors]
        assert expected == [ledger.verify(since=anchor) for anchor in anchors]

    def test_anchor_state_is_what_the_entries_give(self, ledger: ib.Ledger, store: Store,
                                                    clock: Clock) -> None:
        """anchor_state(n): posted and the holds open after entry n, as a replay gives."""
        script(ledger, clock)
        replay, expected = Replay(), [(0, [])]
        for row in store.rows():
            replay.apply(row)
            expected.append((replay.posted, [(hold_id, tokens, expires) for hold_id, (
                tokens, expires) in sorted(replay.open.items())]))
        assert expected == [store.anchor_state(n) for n in range(len(expected))]

    def test_rows_from_an_id(self, ledger: ib.Ledger, store: Store, clock: Clock) -> None:
        """rows(first=n) starts at entry n, within the time bounds when given."""
        for key in "bcd":
            clock.advance(seconds=10)
            ledger.credit(1, key=key)
        since = to_micros(START) + 5_000_000
        assert (["c", "d"], ["c", "d"], ["opening", "b", "c", "d"]) == (
            [row[2] for row in store.rows(first=3)],
            [row[2] for row in store.rows(since, first=3)],
            [row[2] for row in store.rows(first=0)])


class TestTransactions:
    """write, batch and read: all or nothing, nested blocks, snapshots."""

    def test_an_exception_undoes_the_whole_batch(self, ledger: ib.Ledger) -> None:
        """Nothing of a batch left by an exception is kept."""
        def aborted() -> None:
            with ledger.batch():
                ledger.credit(5, key="x")
                ledger.hold(50, key="y")
                raise _Abort

        with pytest.raises(_Abort):
            aborted()
        assert ib.Balance(100, 0, 100) == ledger.balance()
        assert 1 == ledger.verify()

    def test_a_nested_batch_is_undone_alone(self, ledger: ib.Ledger) -> None:
        """An inner batch left by an exception undoes its writes only."""
        def inner() -> None:
            with ledger.batch():
                ledger.credit(7, key="inner")
                ledger.add_budget(ib.Budget(name="b", limit=5, period="day"))
                raise _Abort

        with ledger.batch():
            ledger.credit(5, key="outer")
            with pytest.raises(_Abort):
                inner()
            ledger.credit(1, key="after")
        assert ["opening", "outer", "after"] == [e.key for e in ledger.entries()]
        assert () == ledger.budgets()
        assert 3 == ledger.verify()

    def test_a_refusal_inside_a_batch_keeps_the_rest(self, ledger: ib.Ledger) -> None:
        """A caught refusal in a batch does not doom it."""
        with ledger.batch():
            ledger.debit(10, key="ok")
            with pytest.raises(ib.InsufficientTokens):
                ledger.debit(1000, key="too-much")
            ledger.debit(5, key="ok2")
        assert 85 == ledger.balance().available

    def test_nested_writes_join(self, store: Store) -> None:
        """A write inside a write is the same transaction; the tip moves on commit only."""
        ledger = ib.Ledger(store)
        with store.write():
            ledger.credit(3, key="a")
            with store.write():
                ledger.credit(4, key="b")
            assert 7 == store.tip().posted
        assert Tip(2, ledger.head()[1], 7, 0) == store.tip()

    def test_append_reports_a_used_key(self, store: Store) -> None:
        """append writes nothing and returns the entry that has the key already."""
        ledger = ib.Ledger(store)
        first = ledger.credit(3, key="a")
        with store.write():
            tip = store.tip()
            taken = store.append(first, first.to_row(), Tip(2, "f" * 64, 6, 0))
            assert first == taken
            assert tip == store.tip()

    def test_reads_of_an_empty_store(self, store: Store) -> None:
        """An empty store has the genesis tip and nothing else."""
        assert Tip(0, GENESIS, 0, 0) == store.tip()
        assert store.id_range() is None
        assert [] == list(store.rows())
        assert store.by_key("x") is None
        assert store.by_id(1) is None
        assert store.by_id(2**70) is None
        assert [] == store.open_holds()
        assert {} == store.spend(None, None, None, {})

    def test_rows_by_time(self, ledger: ib.Ledger, store: Store, clock: Clock) -> None:
        """rows() gives since <= at < until, in id order."""
        clock.advance(seconds=10)
        ledger.credit(1, key="b")
        clock.advance(seconds=10)
        ledger.credit(1, key="c")
        since = to_micros(START)
        keys = [row[2] for row in store.rows(since + 5_000_000, since + 15_000_000)]
        assert ["b"] == keys
        assert ["opening", "b", "c"] == [row[2] for row in store.rows()]

    def test_open_holds_due(self, ledger: ib.Ledger, store: Store, clock: Clock) -> None:
        """open_holds(due_by) lists the holds lapsed by then, oldest first."""
        soon = ledger.hold(1, key="soon", expires_at=clock.now + timedelta(seconds=1))
        ledger.hold(1, key="never")
        assert [soon.entry.id] == store.open_holds(due_by=2**62)
        assert 2 == len(store.open_holds())

    def test_a_closed_store_is_refused(self, open_store: Callable[[], Store]) -> None:
        """Every use of a closed store is a ValueError."""
        store = open_store()
        store.close()
        with pytest.raises(ValueError, match="closed"), store.write():
            pass


class TestSharing:
    """One store shared by threads, and two store objects over the same data."""

    def test_threads_share_one_ledger(self, ledger: ib.Ledger) -> None:
        """8 threads debiting 1 token 20 times each: 160 entries, the chain verifies."""
        ledger.credit(100, key="more")
        errors: list[BaseException] = []

        def work(n: int) -> None:
            try:
                for i in range(20):
                    ledger.debit(1, key=f"t{n}-{i}")
            except BaseException as error:  # reported below
                errors.append(error)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert [] == errors
        assert ib.Balance(40, 0, 40) == ledger.balance()
        assert 162 == ledger.verify()

    def test_a_batch_belongs_to_its_thread(self, ledger: ib.Ledger) -> None:
        """Another thread's write during a batch is not undone by the batch's exception."""
        started, written = threading.Event(), threading.Event()

        def other() -> None:
            started.wait(10)
            ledger.credit(1, key="other")
            written.set()

        thread = threading.Thread(target=other)
        def mine() -> None:
            with ledger.batch():
                ledger.credit(5, key="mine")
                started.set()
                written.wait(0.3)  # blocked by the batch (SQLite, memory) or not (PG)
                raise _Abort

        thread.start()
        with pytest.raises(_Abort):
            mine()
        thread.join(10)
        assert ["opening", "other"] == [e.key for e in ledger.entries()]
        assert 2 == ledger.verify()

    def test_two_store_objects_see_each_other(self, open_store: Callable[[], Store],
                                              clock: Clock) -> None:
        """What one store object commits, another over the same data reads."""
        first = ib.Ledger(open_store(), clock=clock)
        second = ib.Ledger(open_store(), clock=clock)
        first.credit(10, key="a")
        second.debit(4, key="b")
        assert second.balance() == first.balance()
        assert 2 == first.verify()
