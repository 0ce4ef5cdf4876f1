"""Fixtures of the unit tests that run on every kind of ledger."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import imagine_billing as ib
from tests.helpers import Clock


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def make(request: pytest.FixtureRequest, tmp_path: Path,
         clock: Clock) -> Iterator[Callable[[], ib.Ledger]]:
    """Opens a ledger object on the ledger under test, in memory, in SQLite or in PostgreSQL
    (a ledger of the test's own in the session's server): a new object each call, but in
    memory, where there is one. ``clock`` is the test module's."""
    opened: list[ib.Ledger] = []
    memory = ib.Ledger.memory(clock=clock)
    target: str | Path = tmp_path / "ledger.db"
    name = "main"
    if request.param == "postgres":
        target, name = request.getfixturevalue("pg_url"), request.getfixturevalue("pg_name")

    def make_ledger() -> ib.Ledger:
        if request.param == "memory":
            return memory
        ledger = ib.Ledger.open(target, name=name, clock=clock, durable=False)
        opened.append(ledger)
        return ledger

    yield make_ledger
    for ledger in opened:
        ledger.close()
