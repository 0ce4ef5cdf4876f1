"""4 processes crossing the same thresholds at once record each alert once, on SQLite and on
PostgreSQL (real processes, started together)."""

from __future__ import annotations

from pathlib import Path

import pytest

import imagine_billing as ib
from tests.store.test_postgres_processes import RACE_CHILD, race, spawn


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_four_writers_one_alert_each(kind: str, tmp_path: Path,
                                     request: pytest.FixtureRequest) -> None:
    """A budget of 40 with alerts at 25%, 50%, 100%; 4 processes spend 1 token 10 times each
    (debits, and holds captured): each threshold is recorded once, by the write that
    reached it exactly."""
    if kind == "sqlite":
        target, name = str(tmp_path / "ledger.db"), "main"
    else:
        target = request.getfixturevalue("pg_url")
        name = request.getfixturevalue("pg_name")
    with ib.Ledger.open(target, name=name) as ledger:
        ledger.credit(1000, key="top-up")
        ledger.add_budget(ib.Budget("cap", 40, alerts=(0.25, 0.5, 1)))
        lines = race([spawn(RACE_CHILD, target, name, f"p{n}", 10, "mixed")
                      for n in range(4)])
        assert ["ok"] * 40 == [line.split()[0] for line in lines]
        alerts = ledger.alerts()
        assert [(10, "1/4"), (20, "1/2"), (40, "1")] == [
            (a.spent, str(a.threshold)) for a in alerts]
        assert len({a.id for a in alerts}) == 3
        for alert in alerts:  # raised by the entry that took the spend to the threshold
            assert alert.entry is not None
            assert alert.at == ledger.get(alert.entry).at
        assert (40, 0) == ledger.budget_usage("cap")
        ledger.verify()
