"""A ledger written before the batched-write work (main at 8154adc) opens, verifies, and
takes replays of its writes (the same fingerprints); the same writes today make the same
chain, byte for byte: the stored form of entries, fingerprints and hashes has not changed.

``tests/data/ledgers/main-8154adc.jsonl`` is the export of `writes` run by that version:
``PYTHONPATH=<its src>:. python -m tests.unit.test_old_ledgers > <the file>``.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import imagine_billing as ib
from imagine_billing.ledger.budgets import Budget
from tests.helpers import Clock

START = datetime(2026, 3, 30, 23, 59, 58, 123456, tzinfo=UTC)
OLD = Path(__file__).parents[1] / "data" / "ledgers" / "main-8154adc.jsonl"


def writes(ledger: ib.Ledger, clock: Clock) -> list[int]:
    """Every kind of write, with memos, tags and times JSON and the budgets treat apart;
    the ids of the entries they return."""
    tags = {"project": 'shop "ä"', "user": "ana\\x", "é": "\u2028"}
    made: list[Callable[[], ib.Entry | ib.Hold]] = [  # each: the entry (or hold) it wrote
        lambda: ledger.credit(1000, key="top-up", memo="first ✓", tags=tags),
        lambda: ledger.add_budget(Budget("shop", 500, "week", {"project": 'shop "ä"'},
                                         hard=True)) and ledger.get("budget:shop"),
        lambda: ledger.debit(10, key="d1"),
        lambda: ledger.debit(20, key="d2", tags=tags, memo="a\tb"),
        lambda: ledger.debit(5, key="d3", at=clock.now - timedelta(microseconds=1)),
        lambda: ledger.hold(40, key="h1", tags=tags, expires_at=START + timedelta(days=3)),
        lambda: ledger.hold(7, key="h2", memo=""),
        lambda: ledger.capture("h1", 30),
        lambda: ledger.void("h2"),
        lambda: ledger.refund("d2", 5, key="r1"),
        lambda: ledger.note(key="n1", memo="checked ✓", tags={"who": "ops"}),
        lambda: ledger.observe(900, key="o1"),
        lambda: ledger.credit(3, key="c2", at=clock.now - timedelta(milliseconds=1)),
        lambda: ledger.debit(1, key="d4", tags={"project": 'shop "ä"'}),
    ]
    ids = []
    for write in made:
        clock.advance(seconds=1)  # across midnight and into a new ISO week and month
        written = write()
        ids.append(written.id)
    return ids


def test_the_old_ledger_opens_verifies_and_takes_replays(tmp_path: Path) -> None:
    """Imported into a SQLite file, reopened: it verifies, and each write again is a replay
    of its entry (a changed fingerprint would be an IdempotencyConflict)."""
    lines = OLD.read_text(encoding="utf-8").splitlines(keepends=True)
    path = tmp_path / "old.db"
    ib.Ledger.from_jsonl(lines, path=path).close()
    clock = Clock(START)
    with ib.Ledger.open(path, clock=clock) as ledger:
        head = ledger.head()
        assert ledger.verify() == len(lines)
        clock.advance(days=1)
        ids = writes(ledger, Clock(START))
        assert ids == list(range(1, len(lines) + 1))
        assert ledger.head() == head
        assert ledger.verify() == len(lines)


def test_the_same_writes_make_the_same_chain() -> None:
    """The writes run today, at the same times, export the old file byte for byte."""
    clock = Clock(START)
    ledger = ib.Ledger.memory(clock=clock)
    writes(ledger, clock)
    out = io.StringIO()
    ledger.export(out)
    assert out.getvalue() == OLD.read_text(encoding="utf-8")


if __name__ == "__main__":
    at = Clock(START)
    made = ib.Ledger.memory(clock=at)
    writes(made, at)
    made.export(sys.stdout)
