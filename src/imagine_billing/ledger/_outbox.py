"""`verify`'s check of the alert outbox: each alert is one the chain could have raised.

An alert row is not an entry of the chain: nothing hashes it. What `check_outbox` proves is
that each one agrees with the chain: its id is the one its fields give (`alert_id`), its
budget, threshold, limit and period are those of a version of a budget the chain adds, an
actual alert is at or past its threshold, and the entry an actual alert names as the one
that crossed it is a debit or capture in that budget's scope and period. A row forged by
hand or changed (a budget or a threshold that never was, a spend that crosses nothing, an
id of another alert) is found, so that a webhook is not handed it as the ledger's word.

Like the chain, this is not keyed: someone who recomputes the id and copies a real budget's
settings and entry can still add an alert that was not raised (a forecasted one in
particular, whose forecast is not in the chain). A delivery receiver that needs more checks
the signature (`imagine_billing.adapters.webhook.signature`) and the ledger's figures.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from imagine_billing._checks import shown_repr
from imagine_billing.errors import LedgerCorrupted
from imagine_billing.ledger._chain import removed_budget
from imagine_billing.ledger.alerts import Alert, alert_id, from_row, percent
from imagine_billing.ledger.model import GENESIS
from imagine_billing.ledger.store import Store

if TYPE_CHECKING:
    from imagine_billing.ledger.budgets import Budget

__all__ = ["check_outbox"]


def check_outbox(store: Store, parse: Callable[[object, object], Budget]) -> None:
    """Raise `LedgerCorrupted` naming the first alert of ``store``'s outbox that the chain
    could not have raised (see the module); ``parse`` reads a budget entry's memo."""
    rows = store.alert_rows()
    if not rows:
        return
    versions: dict[str, list[Budget]] = {}
    for entry_id, document, *_ in store.budget_entries(()):
        if removed_budget(document) is None:
            budget = parse(entry_id, document)
            versions.setdefault(budget.name, []).append(budget)
    first = store.by_id(1)
    origin = GENESIS if first is None else first.hash
    for row in rows:
        alert = from_row(row)
        problem = _problem(alert, versions.get(alert.budget, ()), origin, store, parse)
        if problem is not None:
            raise LedgerCorrupted(f"alert {shown_repr(alert.id)}",
                                  f"{problem}: an alert written behind the ledger's back")


def _problem(alert: Alert, versions: Sequence[Budget], origin: str, store: Store,
             parse: Callable[[object, object], Budget]) -> str | None:
    """Why the chain could not have raised ``alert`` (``versions``: those of its budget the
    chain adds); ``None`` when it could have."""
    from imagine_billing.ledger.budgets import label_bounds, period_label

    if alert.id != alert_id(origin, alert.budget, alert.period, alert.threshold, alert.kind):
        return "its id is not the one its ledger, budget, period, threshold and kind give"
    fits = [b for b in versions
            if alert.threshold in b.alerts and b.limit == alert.limit
            and _names(label_bounds, b.period, alert.period)]
    threshold = alert.threshold
    if not fits:
        return (f"no budget {shown_repr(alert.budget)} of the chain has a {percent(threshold)} "
                f"threshold, a limit of {alert.limit} and a period {shown_repr(alert.period)}")
    if alert.kind == "actual" and alert.spent * threshold.denominator < (
            alert.limit * threshold.numerator):
        return (f"a spend of {alert.spent} does not reach {percent(threshold)} of "
                f"{alert.limit}")
    if alert.entry is None:
        return None
    entry = store.by_id(alert.entry) if type(alert.entry) is int else None
    if entry is None or not (
            # A spend in the budget's scope and period crossed it...
            (entry.kind in ("debit", "capture") and any(
                b.matches(entry.tags) and period_label(b.period, entry.at) == alert.period
                for b in fits))
            # ... or the budget was added (or changed) when its spend was past it already.
            or (entry.kind == "budget" and removed_budget(entry.memo) is None
                and parse(entry.id, entry.memo) in fits)):
        return (f"entry {shown_repr(alert.entry)}, which it names as the one that crossed the "
                "threshold, is neither a spend in the budget's scope and period nor the "
                "budget's own entry")
    return None


def _names(bounds: Callable[[str, str], object], period: str, label: str) -> bool:
    """Whether ``label`` names a period of kind ``period`` (`label_bounds` takes it)."""
    try:
        bounds(period, label)
    except ValueError:
        return False
    return True
