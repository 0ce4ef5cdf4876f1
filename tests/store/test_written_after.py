"""`Store.written_after`, one aggregate per store, against the reading of every entry after the
moment one by one (the way reports about the past were made before), for any writes, the
clock going back and forth, on memory, SQLite and PostgreSQL."""

from __future__ import annotations

import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import imagine_billing as ib
from imagine_billing.ledger.model import to_micros
from tests.helpers import Clock

START = datetime(2026, 3, 1, tzinfo=UTC)

steps = st.lists(st.one_of(
    st.tuples(st.just("debit"), st.integers(1, 30), st.booleans()),
    st.tuples(st.just("hold"), st.integers(1, 30), st.booleans()),
    st.tuples(st.just("close"), st.integers(0, 9), st.sampled_from(["capture", "void"])),
    st.tuples(st.just("refund"), st.integers(0, 9), st.integers(1, 30)),
    st.tuples(st.just("hours"), st.integers(-5, 8), st.just(0)),
), max_size=25)
"""Writes, tagged shop or not, holds closed, refunds, and the clock moving (back too)."""


def by_reading(ledger: ib.Ledger, moment: datetime, scope: dict[str, str] | None
               ) -> tuple[int, int, list[tuple[int, int]]]:
    """The figures as the entries after ``moment`` give them, read one by one."""
    placed: dict[int, int] = {}
    closed: list[int] = []
    refunded: list[tuple[int, int]] = []
    seen = 0
    for entry in ledger.entries(since=moment + timedelta(microseconds=1), tags=scope):
        seen += 1
        if entry.kind == "hold":
            placed[entry.id] = entry.tokens
        elif entry.kind in ("capture", "void", "expire") and entry.ref is not None:
            if placed.pop(entry.ref, None) is None:
                closed.append(entry.ref)
        elif entry.kind == "refund" and entry.ref is not None:
            refunded.append((entry.ref, entry.tokens))
    held = -sum(ledger.get(i).tokens for i in closed if ledger.get(i).at <= moment)
    held += sum(t for i, t in placed.items() if ledger.get_hold(i).status == "open")
    refunds = [(to_micros(ledger.get(i).at), t) for i, t in refunded
               if ledger.get(i).at <= moment]
    return seen, held, refunds


def play(ledger: ib.Ledger, clock: Clock, script: list[tuple[object, ...]]) -> list[datetime]:
    """Run ``script``; returns the moments the clock passed through."""
    ledger.credit(10**6, key="funds")
    holds: list[ib.Hold] = []
    spends: list[ib.Entry] = []
    moments = [clock.now - timedelta(hours=1)]
    for number, (kind, a, b) in enumerate(script):
        key = f"k{number}"
        tags = {"project": "shop"} if b is True else None
        if kind == "debit":
            spends.append(ledger.debit(int(a), key=key, tags=tags))  # type: ignore[arg-type]
        elif kind == "hold":
            holds.append(ledger.hold(int(a), key=key, tags=tags))  # type: ignore[arg-type]
        elif kind == "close" and holds:
            hold = holds.pop(int(a) % len(holds))  # type: ignore[arg-type]
            if b == "capture":
                spends.append(ledger.capture(hold, key=key))
            else:
                ledger.void(hold, key=key)
        elif kind == "refund" and spends:
            entry = spends[int(a) % len(spends)]  # type: ignore[arg-type]
            left = entry.tokens - sum(r.tokens for r in ledger.entries()
                                      if r.kind == "refund" and r.ref == entry.id)
            if left:
                ledger.refund(entry, min(int(b), left), key=key)  # type: ignore[arg-type]
        elif kind == "hours":
            clock.advance(hours=int(a))  # type: ignore[arg-type]
        moments.append(clock.now)
    return moments


def agree(ledger: ib.Ledger, moments: list[datetime]) -> None:
    for moment in moments:
        for scope in (None, {"project": "shop"}):
            assert by_reading(ledger, moment, scope) == ledger.written_after(moment, scope)


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
@given(script=steps)
def test_the_aggregate_is_the_reading(kind: str, script: list[tuple[object, ...]]) -> None:
    clock = Clock(START)
    with tempfile.TemporaryDirectory() as folder:
        ledger = (ib.Ledger.memory(clock=clock) if kind == "memory"
                  else ib.Ledger.open(Path(folder) / "l.db", clock=clock, durable=False))
        with ledger:
            agree(ledger, play(ledger, clock, script))


@pytest.mark.usefixtures("pg_url")
@settings(max_examples=40)
@given(script=steps)
def test_the_aggregate_is_the_reading_on_postgres(script: list[tuple[object, ...]],
                                                  request: pytest.FixtureRequest) -> None:
    clock = Clock(START)
    url = request.getfixturevalue("pg_url")
    with ib.Ledger.open(url, name=f"after-{uuid.uuid4().hex}", clock=clock,
                        durable=False) as ledger:
        agree(ledger, play(ledger, clock, script))
