"""Back-dated writes (``credit``/``debit`` with ``at=``) on every store: never post-dated,
never before an entry that moves tokens, replayed whatever came since, and the chain,
balance and budgets' figures still verify."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

import imagine_billing as ib
from imagine_billing.ledger.store import Store
from tests.helpers import Clock
from tests.store.conftest import START

NOV = datetime(2026, 2, 1, tzinfo=UTC)
"""A month before the clock's START (2026-03-01 12:00)."""


@pytest.fixture
def past(store: Store, clock: Clock) -> ib.Ledger:
    """A new ledger whose opening credit of 1,000 is back-dated to 2026-02-01."""
    ledger = ib.Ledger(store, clock=clock)
    ledger.credit(1000, key="opening", at=NOV)
    return ledger


class TestBackdated:
    """credit and debit with at=."""

    def test_entries_carry_their_time(self, past: ib.Ledger) -> None:
        """A back-dated debit is written at the end of the chain with its own time."""
        entry = past.debit(60, key="d", at=NOV + timedelta(days=3))
        assert (2, NOV + timedelta(days=3)) == (entry.id, entry.at)
        assert [NOV, NOV + timedelta(days=3)] == [e.at for e in past.entries()]
        assert 940 == past.available_at(NOV + timedelta(days=3))
        assert 1000 == past.available_at(NOV + timedelta(days=2))
        assert 2 == past.verify()

    def test_never_post_dated(self, past: ib.Ledger) -> None:
        """A time later than the clock's now is refused."""
        with pytest.raises(ValueError, match="later than now"):
            past.debit(5, key="d", at=START + timedelta(seconds=1))
        assert 1 == past.head()[0]

    def test_never_before_an_entry_that_moves_tokens(self, past: ib.Ledger) -> None:
        """A debit earlier than another debit is `OutOfOrder`, naming it; nothing written."""
        past.debit(5, key="d1", at=NOV + timedelta(days=10))
        with pytest.raises(ib.OutOfOrder, match=r"earlier than entry 2 \(a debit at "
                           r"2026-02-11T00:00:00Z\)") as raised:
            past.debit(5, key="d2", at=NOV + timedelta(days=9))
        assert (2, "debit") == (raised.value.entry, raised.value.kind)
        with pytest.raises(ib.OutOfOrder, match="a credit at 2026-02-01"):
            past.credit(5, key="c", at=NOV - timedelta(days=1))
        assert 2 == past.head()[0]

    def test_the_same_time_is_in_order(self, past: ib.Ledger) -> None:
        """Entries may share a time."""
        past.debit(5, key="d1", at=NOV)
        past.debit(5, key="d2", at=NOV)
        assert 990 == past.balance().available

    def test_entries_that_move_no_tokens_may_be_later(self, past: ib.Ledger) -> None:
        """A budget, a note and an observation written now do not stop history before
        them; the budget counts the spend of its own period only, and verify agrees."""
        past.add_budget(ib.Budget("monthly", 500, "month"))
        past.note(key="n", memo="history follows")
        past.observe(900, key="o")
        past.debit(100, key="feb", at=NOV + timedelta(days=5))       # before its period
        past.debit(40, key="mar", at=START - timedelta(hours=1))     # in its period
        assert (40, 0) == past.budget_usage("monthly")
        assert 860 == past.balance().available
        assert 6 == past.verify()

    def test_a_hard_budget_counts_the_period_of_the_time(self, store: Store,
                                                        clock: Clock) -> None:
        """A hard budget refuses a back-dated debit past its limit in that period."""
        ledger = ib.Ledger(store, clock=clock)
        ledger.credit(1000, key="c", at=datetime(2026, 3, 1, tzinfo=UTC))
        ledger.add_budget(ib.Budget("daily", 50, "day", hard=True))
        ledger.debit(50, key="d1", at=datetime(2026, 3, 1, 1, tzinfo=UTC))
        with pytest.raises(ib.BudgetExceeded):
            ledger.debit(1, key="d2", at=datetime(2026, 3, 1, 2, tzinfo=UTC))
        ledger.verify()

    def test_a_replay_after_later_entries(self, past: ib.Ledger) -> None:
        """The same back-dated request again returns its entry, even once later entries
        would refuse its time; with another time it is a conflict."""
        first = past.debit(5, key="d1", at=NOV + timedelta(days=1))
        past.debit(5, key="d2", at=NOV + timedelta(days=2))
        assert first == past.debit(5, key="d1", at=NOV + timedelta(days=1))
        assert past.credit(1000, key="opening", at=NOV).id == 1
        with pytest.raises(ib.IdempotencyConflict):
            past.debit(5, key="d1", at=NOV + timedelta(days=3))
        with pytest.raises(ib.IdempotencyConflict):
            past.debit(5, key="d1")  # now: another request
        assert 3 == past.head()[0]

    def test_not_enough_tokens_then(self, store: Store, clock: Clock) -> None:
        """The balance is checked as for any debit."""
        ledger = ib.Ledger(store, clock=clock)
        ledger.credit(10, key="c", at=NOV)
        with pytest.raises(ib.InsufficientTokens):
            ledger.debit(11, key="d", at=NOV)

    @pytest.mark.parametrize("at", [datetime(2026, 2, 1), "2026-02-01T00:00:00Z"])
    def test_bad_times(self, past: ib.Ledger, at: object) -> None:
        """A naive datetime or text is refused."""
        with pytest.raises((TypeError, ValueError), match=r"at must be|naive"):
            past.debit(5, key="d", at=at)  # type: ignore[arg-type]

    def test_without_at_nothing_changes(self, ledger: ib.Ledger) -> None:
        """A write without at keeps its time and fingerprint: replays of writes made
        before at= existed still replay."""
        entry = ledger.debit(5, key="d")
        assert START == entry.at
        assert entry == ledger.debit(5, key="d")
