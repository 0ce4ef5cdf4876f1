"""The alerts a ledger records are the thresholds its writes crossed, for any sequence of writes.

A plain model keeps each month's spend of the budget (debits and captures in the month of
their write; a refund in the month of what it gives back) and, after each spend, notes every
threshold the month's spend has reached. The ledger's outbox must hold exactly those, each
once, on the memory store and on SQLite."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import imagine_billing as ib
from imagine_billing.ledger.budgets import period_label
from tests.helpers import Clock

START = datetime(2026, 1, 30, tzinfo=UTC)

steps = st.lists(st.one_of(
    st.tuples(st.just("debit"), st.integers(1, 60)),
    st.tuples(st.just("hold"), st.integers(1, 60)),
    st.tuples(st.just("capture"), st.integers(0, 9), st.integers(1, 60)),
    st.tuples(st.just("void"), st.integers(0, 9)),
    st.tuples(st.just("refund"), st.integers(0, 9), st.integers(1, 60)),
    st.tuples(st.just("days"), st.integers(0, 20)),
), max_size=30)
"""Writes: debits and holds of 1 to 60, captures (of part of a hold), voids and refunds of
an earlier hold or spend (by number, modulo those there are), days passing (into later
months)."""

thresholds = st.sampled_from([Fraction(1, 4), Fraction(1, 2), Fraction(4, 5), Fraction(1),
                              Fraction(3, 2)]) | st.fractions(Fraction(1, 100), Fraction(2))
"""Thresholds: the usual ones (which round limits reach exactly), and any others."""

budgets = st.builds(
    lambda limit, alerts: ib.Budget("b", limit, "month", alerts=alerts),
    st.sampled_from([10, 20, 40, 100]) | st.integers(1, 300),
    st.lists(thresholds, min_size=1, max_size=4, unique=True))


def play(ledger: ib.Ledger, clock: Clock, budget: ib.Budget,
         script: list[tuple[object, ...]]) -> set[tuple[str, Fraction]]:
    """Run ``script`` on ``ledger``; returns the (month, threshold) pairs the model says
    were crossed."""
    ledger.credit(10**6, key="funds")
    ledger.add_budget(budget)
    holds: list[ib.Hold] = []
    spends: list[tuple[ib.Entry, str]] = []
    spent: dict[str, int] = {}
    expected: set[tuple[str, Fraction]] = set()

    def spend(entry: ib.Entry) -> None:
        month = period_label("month", entry.at)
        spent[month] = spent.get(month, 0) + entry.tokens
        spends.append((entry, month))
        expected.update((month, t) for t in budget.alerts if spent[month] >= budget.limit * t)

    for number, step in enumerate(script):
        kind, key = step[0], f"k{number}"
        if kind == "debit":
            spend(ledger.debit(step[1], key=key))
        elif kind == "hold":
            holds.append(ledger.hold(step[1], key=key))
        elif kind == "days":
            clock.advance(days=step[1])
        elif kind in ("capture", "void") and holds:
            hold = holds.pop(step[1] % len(holds))
            if kind == "void":
                ledger.void(hold, key=key)
            else:
                spend(ledger.capture(hold, min(step[2], hold.entry.tokens), key=key))
        elif kind == "refund" and spends:
            entry, month = spends[step[1] % len(spends)]
            left = entry.tokens - sum(r.tokens for r in ledger.entries() if r.ref == entry.id
                                      and r.kind == "refund")
            if left:
                tokens = min(step[2], left)
                ledger.refund(entry, tokens, key=key)
                spent[month] -= tokens
    return expected


def recorded(ledger: ib.Ledger) -> list[tuple[str, Fraction]]:
    return [(a.period, a.threshold) for a in ledger.alerts() if a.kind == "actual"]


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
@example(budget=ib.Budget("b", 100, alerts=(Fraction(1, 2),)),
         script=[("debit", 30), ("debit", 20)])  # exactly on the threshold
@example(budget=ib.Budget("b", 100, alerts=(Fraction(1, 2),)),
         script=[("debit", 60), ("refund", 0, 30), ("debit", 30)])  # crossed twice: once
@given(budget=budgets, script=steps)
def test_alerts_are_the_thresholds_crossed(kind: str, budget: ib.Budget,
                                           script: list[tuple[object, ...]]) -> None:
    clock = Clock(START)
    with tempfile.TemporaryDirectory() as folder:
        ledger = (ib.Ledger.memory(clock=clock) if kind == "memory"
                  else ib.Ledger.open(Path(folder) / "l.db", clock=clock, durable=False))
        with ledger:
            expected = play(ledger, clock, budget, script)
            found = recorded(ledger)
            assert len(found) == len(set(found))  # each once
            assert expected == set(found)
            ledger.verify()


observations = st.lists(st.one_of(
    st.tuples(st.just("credit"), st.integers(1, 50)),
    st.tuples(st.just("debit"), st.integers(1, 50)),
    st.tuples(st.just("hold"), st.integers(1, 50)),
    st.tuples(st.just("capture"), st.integers(0, 5)),
    st.tuples(st.just("observe"), st.integers(0, 500), st.integers(-3, 0)),
    st.tuples(st.just("hours"), st.integers(-2, 5)),
), max_size=25)
"""Writes, observations read up to 3 hours back, and a clock moving (back too)."""


@example(script=[("hold", 1), ("hours", -1), ("capture", 0), ("observe", 0, 0)])  # closed
# at a time before its hold was placed (the clock set back)
@given(script=observations)
def test_reconcile_is_the_plain_sum(script: list[tuple[int | str, ...]]) -> None:
    """Each observation's expected figure and held tokens are the sums, over the entries
    timed at or before it, that a plain loop gives; the drift's change is the difference of
    consecutive drifts."""
    from datetime import timedelta

    from imagine_billing.planner.reconcile import reconcile

    clock = Clock(START)
    ledger = ib.Ledger.memory(clock=clock)
    ledger.credit(10_000, key="funds")
    holds: list[ib.Hold] = []
    for number, step in enumerate(script):
        kind, key = step[0], f"k{number}"
        if kind == "credit":
            ledger.credit(int(step[1]), key=key)
        elif kind == "debit":
            ledger.debit(int(step[1]), key=key)
        elif kind == "hold":
            holds.append(ledger.hold(int(step[1]), key=key))
        elif kind == "capture" and holds:
            ledger.capture(holds.pop(int(step[1]) % len(holds)), key=key)
        elif kind == "observe":
            ledger.observe(int(step[1]), key=key,
                           at=clock.now + timedelta(hours=int(step[2])))
        elif kind == "hours":
            clock.advance(hours=int(step[1]))
    entries = list(ledger.entries())
    report = reconcile(ledger)
    assert sum(e.kind == "observe" for e in entries) == len(report.observations)
    previous = None
    for seen in report.observations:
        before = [e for e in entries if e.at <= seen.at]
        closed = {e.ref for e in before if e.kind in ("capture", "void", "expire")}
        posted = sum({"credit": 1, "refund": 1, "debit": -1, "capture": -1}.get(e.kind, 0)
                     * e.tokens for e in before)
        held = sum(e.tokens for e in before if e.kind == "hold" and e.id not in closed)
        assert (posted, held) == (seen.expected, seen.held)
        assert seen.change == (None if previous is None else seen.drift - previous.drift)
        previous = seen
    assert [s.at for s in report.observations] == sorted(s.at for s in report.observations)
