"""Budgets inside batches: the budgets' figures a batch keeps in memory between its writes
(issue 15, goal 4) are those the store holds, whatever the batch does.

A batch reads the budgets once, then follows its own writes; these tests change the budgets
behind that (a nested batch rolled back, a budget added, changed or removed in the batch,
another ledger object writing between batches, spend given back in another period) and
check that the next write is refused or let through as the store's figures say, and that
`verify` agrees with what was kept.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from fractions import Fraction

import pytest

import imagine_billing as ib
from tests.helpers import Clock

START = datetime(2026, 1, 15, tzinfo=UTC)


class Undo(Exception):
    """Raised to leave a nested batch, undoing it."""


@pytest.fixture
def clock() -> Clock:
    return Clock(START)


@pytest.fixture
def ledger(make: Callable[[], ib.Ledger]) -> ib.Ledger:
    """A ledger with 1000 tokens and a hard budget of 10 a month on all spend."""
    opened = make()
    opened.credit(1000, key="top-up")
    opened.add_budget(ib.Budget("all", 10, "month", hard=True))
    return opened


def test_a_rolled_back_nested_batch_gives_its_spend_back(ledger: ib.Ledger) -> None:
    """The spend of a nested batch that is undone is no longer counted in the outer one."""
    with ledger.batch():
        ledger.debit(4, key="a")
        with contextlib.suppress(Undo), ledger.batch():
            ledger.debit(5, key="b")
            raise Undo
        assert ledger.budget_usage("all") == (4, 0)
        ledger.debit(6, key="c")  # 4 + 6 = 10: room, since b is undone
        with pytest.raises(ib.BudgetExceeded):
            ledger.debit(1, key="d")
    assert ledger.budget_usage("all") == (10, 0)
    assert ledger.verify() == 4  # top-up, budget, a, c


def test_a_refusal_after_expiring_holds_leaves_the_figures(ledger: ib.Ledger,
                                                           clock: Clock) -> None:
    """A debit refused even once the lapsed holds are expired (in a savepoint, undone)
    leaves the hold open and its tokens counted; a smaller one then expires it."""
    with ledger.batch():
        ledger.hold(3, key="h", expires_at=START + timedelta(minutes=1))
        ledger.debit(7, key="a")  # 7 + 3 held = 10
        clock.advance(minutes=2)
        with pytest.raises(ib.BudgetExceeded):
            ledger.debit(4, key="b")  # 7 + 4 > 10, the hold expired or not
        assert ledger.budget_usage("all") == (7, 3)
        ledger.debit(1, key="c")  # room once the hold is expired
        with pytest.raises(ib.BudgetExceeded):
            ledger.debit(3, key="d")
    assert ledger.budget_usage("all") == (8, 0)
    assert ledger.verify() == 6


def test_a_budget_added_in_a_batch_counts_at_once(ledger: ib.Ledger) -> None:
    """A batch that met no budget for a scope meets the one added in it."""
    with ledger.batch():
        ledger.debit(2, key="a", tags={"project": "shop"})
        ledger.add_budget(ib.Budget("shop", 5, "month", {"project": "shop"}, hard=True))
        with pytest.raises(ib.BudgetExceeded):
            ledger.debit(4, key="b", tags={"project": "shop"})
        ledger.debit(3, key="c", tags={"project": "shop"})
    assert ledger.budget_usage("shop") == (5, 0)
    assert ledger.verify() == 5  # top-up, budget, a, shop, c


def test_a_budget_changed_or_removed_in_a_batch_counts_at_once(ledger: ib.Ledger) -> None:
    """A limit raised in a batch gives room at once; a budget removed refuses nothing more."""
    with ledger.batch():
        ledger.debit(10, key="a")
        with pytest.raises(ib.BudgetExceeded):
            ledger.debit(1, key="b")
        ledger.update_budget(ib.Budget("all", 12, "month", hard=True))
        ledger.debit(2, key="c")
        with pytest.raises(ib.BudgetExceeded):
            ledger.debit(1, key="d")
        ledger.remove_budget("all")
        ledger.debit(100, key="e")
    assert ledger.verify() == 7  # top-up, budget, a, update, c, removal, e


def test_another_ledger_object_writing_between_batches_is_seen(
        make: Callable[[], ib.Ledger], ledger: ib.Ledger) -> None:
    """Spend written through another ledger object (another connection) counts for this
    one's next batch."""
    other = make()
    with ledger.batch():
        ledger.debit(3, key="a")
    other.debit(6, key="b")
    with ledger.batch():
        with pytest.raises(ib.BudgetExceeded):
            ledger.debit(2, key="c")
        ledger.debit(1, key="d")
    assert ledger.budget_usage("all") == (10, 0)
    assert ledger.verify() == 5


def test_a_refund_of_last_months_spend_gives_this_month_no_room(
        ledger: ib.Ledger, clock: Clock) -> None:
    """Spend given back in another period is not counted in this period's kept figures."""
    ledger.debit(8, key="january")
    clock.now = START + timedelta(days=20)  # February
    with ledger.batch():
        ledger.debit(9, key="a")
        ledger.refund("january", 8, key="r")
        with pytest.raises(ib.BudgetExceeded):
            ledger.debit(2, key="b")
        ledger.debit(1, key="c")
    assert ledger.budget_usage("all") == (10, 0)
    assert ledger.budget_usage("all", at=START) == (0, 0)
    assert ledger.verify() == 6


def test_a_batch_across_midnight_counts_each_days_spend(
        make: Callable[[], ib.Ledger], clock: Clock) -> None:
    """A daily budget's figures follow the clock into the next day within a batch."""
    ledger = make()
    ledger.credit(100, key="top-up")
    ledger.add_budget(ib.Budget("daily", 5, "day", hard=True))
    with ledger.batch():
        ledger.debit(5, key="a")
        clock.advance(days=1)
        ledger.debit(5, key="b")
        with pytest.raises(ib.BudgetExceeded):
            ledger.debit(1, key="c")
    assert ledger.budget_usage("daily") == (5, 0)
    assert ledger.verify() == 4


def test_alerts_crossed_in_a_batch_are_recorded_once(ledger: ib.Ledger) -> None:
    """Each threshold crossed by a batch's debits has its alert, recorded once."""
    with ledger.batch():
        for i in range(10):
            ledger.debit(1, key=f"d{i}")
    crossed = [(alert.threshold, alert.spent) for alert in ledger.alerts()]
    assert crossed == [(Fraction(1, 2), 5), (Fraction(4, 5), 8), (1, 10)]
