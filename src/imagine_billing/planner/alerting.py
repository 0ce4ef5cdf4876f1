"""Evaluating a ledger's budget alerts now: the forecasted ones, and any actual one missed.

A write records the actual alerts it raises itself (see `imagine_billing.ledger.alerts`). A
forecast is no write: `evaluate_alerts` works out every budget's status now and records, in
the ledger's outbox, the forecasted alerts it finds (once per budget, period, threshold and
kind, as for actual ones), and any actual alert not recorded yet (a ledger written before
the outbox existed). ``imagine-billing budget status`` and ``alerts deliver`` run it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from imagine_billing.planner.budgets import budget_status

if TYPE_CHECKING:
    from imagine_billing.ledger import Ledger
    from imagine_billing.ledger.alerts import Alert

__all__ = ["evaluate_alerts"]


def evaluate_alerts(ledger: Ledger) -> tuple[Alert, ...]:
    """Record the alerts every budget of ``ledger`` has now (by its clock), those not
    recorded yet; returns them (oldest budget first, actual before forecasted)."""
    found: list[Alert] = []
    for budget in ledger.budgets():
        status = budget_status(ledger, budget.name)
        found += status.fired
    return ledger.record_alerts(found) if found else ()
