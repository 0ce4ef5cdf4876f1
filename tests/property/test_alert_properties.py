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
