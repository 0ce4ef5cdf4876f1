"""Budget reports: the alert rules and `budget_status`.

Alerts are fractions of the limit. A threshold is crossed by ``spent`` when ``spent >= limit
* threshold`` (compared exactly: ``0.8`` means 4/5, not the float nearest it). The status of
a budget names each threshold once per period: under ``actual`` when the spend so far crossed
it, else under ``forecasted`` when the spend forecast for the end of the period crosses it
(as AWS Budgets does). An `Alert` carries the period it belongs to and a `key` that names the
budget, the period and the threshold only (not whether it is actual or forecast), so a
notifier that remembers keys sends each threshold once per period: a threshold first
forecast and later reached keeps its key.

A status for a moment in the past is the status as it was then: the entries written after it
(holds placed or closed, refunds given) are taken back out (see `written_after`).

`Budget` and the UTC periods are the ledger's (`imagine_billing.ledger.budgets`), which
enforces hard budgets; they are re-exported here.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import attrs

from imagine_billing._checks import stamp
from imagine_billing.ledger.alerts import Alert, AlertKind, alert_id, crossed, percent
from imagine_billing.ledger.budgets import (
    PERIODS,
    Budget,
    Period,
    period_bounds,
    period_label,
    require_utc,
)
from imagine_billing.ledger.model import GENESIS
from imagine_billing.planner._later import Later, written_after
from imagine_billing.planner.forecasting import window_days, window_slices

if TYPE_CHECKING:
    from imagine_billing.ledger import Ledger

__all__ = [
    "PERIODS",
    "Alert",
    "Budget",
    "BudgetStatus",
    "Later",
    "Period",
    "alerts_for",
    "budget_status",
    "crossed",
    "percent",
    "period_bounds",
    "period_label",
    "require_utc",
    "status_of",
    "written_after",
]

_MICRO = timedelta(microseconds=1)


def alerts_for(budget: Budget, period: str, spent: int, projected: Fraction | None, *,
               at: datetime, origin: str = GENESIS) -> tuple[tuple[Alert, ...],
                                                             tuple[Alert, ...]]:
    """The ``(actual, forecasted)`` alerts of a budget in a period, each threshold once.

    A threshold crossed by ``spent`` is an actual alert; one that only ``projected`` (the
    spend forecast for the end of the period, ``None`` when there is none) crosses is a
    forecasted alert. Each is raised ``at``, with the id the ledger whose first entry has
    the hash ``origin`` gives it (see `alert_id`).
    """
    def alert(threshold: Fraction, kind: AlertKind) -> Alert:
        return Alert(budget.name, threshold, kind, period, spent=spent, limit=budget.limit,
                     at=at, id=alert_id(origin, budget.name, period, threshold, kind),
                     projected=projected if kind == "forecasted" else None)

    actual = crossed(budget.limit, budget.alerts, spent)
    ahead: tuple[Fraction, ...] = ()
    if projected is not None:
        ahead = tuple(t for t in crossed(budget.limit, budget.alerts, projected)
                      if t not in actual)
    return (tuple(alert(t, "actual") for t in actual),
            tuple(alert(t, "forecasted") for t in ahead))


@attrs.frozen
class BudgetStatus:
    """Where a budget stands in its current period; `budget_status` builds it.

    Budget of 1000 a month, 600 spent and a hold of 100 open on the 15th of a 30-day month,
    burning 40 a day: spent 600, held 100, remaining 300, projected 600 + 40 x 15 = 1200;
    actual alerts 50%; forecasted alerts 80% and 100%.
    """

    budget: Budget
    """The budget."""
    now: datetime
    """The moment of the status."""
    period: str
    """The current period's name (see `period_label`), ``"total"`` for a total budget."""
    start: datetime | None
    """The period's first moment (``None`` for ``total``)."""
    end: datetime | None
    """The moment after the period (``None`` for ``total``)."""
    spent: int
    """Debits + captures in scope during the period up to ``now``, less the refunds of them
    written by ``now``."""
    held: int
    """Tokens of the holds in scope open at ``now`` (spend that may happen), shown apart
    from spent."""
    projected: Fraction | None
    """The spend forecast for the end of the period: ``spent + burn_per_day x days left``;
    ``None`` for a total budget (it has no end)."""
    burn_per_day: Fraction
    """The scope's burn used for the forecast (see `imagine_billing.planner.forecasting`)."""
    actual: tuple[Alert, ...]
    """Thresholds crossed by the spend so far."""
    forecasted: tuple[Alert, ...]
    """Thresholds crossed only by the projected spend (not already in ``actual``)."""

    @property
    def remaining(self) -> int:
        """``limit - spent - held``, not below 0: what a new hold or debit may take."""
        return max(0, self.budget.limit - self.spent - self.held)

    @property
    def fired(self) -> tuple[Alert, ...]:
        """Every alert of the period, actual first."""
        return self.actual + self.forecasted

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the status (fractions as exact text, times RFC 3339)."""
        return {
            "budget": self.budget.to_dict(),
            "now": stamp(self.now),
            "period": self.period,
            "start": stamp(self.start),
            "end": stamp(self.end),
            "limit": self.budget.limit,
            "spent": self.spent,
            "held": self.held,
            "remaining": self.remaining,
            "projected": None if self.projected is None else str(self.projected),
            "burn_per_day": str(self.burn_per_day),
            "alerts": {
                "actual": [a.to_dict() for a in self.actual],
                "forecasted": [a.to_dict() for a in self.forecasted],
            },
        }


def status_of(budget: Budget, now: datetime, *, spent: int, held: int,
              burn_per_day: Fraction, origin: str = GENESIS) -> BudgetStatus:
    """The status of ``budget`` at ``now`` from the figures of its current period.

    Args:
        budget: The budget.
        now: The moment (aware).
        spent: Spend in scope during the period (debits + captures - refunds, a refund
            counted in the period of what it refunds).
        held: Tokens of the open holds in scope.
        burn_per_day: The scope's burn per day, for the forecast.
        origin: The hash of the ledger's first entry, for the alerts' ids
            (`Ledger.origin`).

    Returns:
        The `BudgetStatus`: ``projected`` is ``spent + burn_per_day x (end - now) in days``.
    """
    moment = require_utc(now)
    start, end = budget.bounds(moment)
    label = period_label(budget.period, moment)
    projected: Fraction | None = None
    if end is not None:
        left = Fraction((end - moment) // timedelta(microseconds=1), 86_400_000_000)
        projected = spent + burn_per_day * left
    actual, ahead = alerts_for(budget, label, spent, projected, at=moment, origin=origin)
    return BudgetStatus(budget=budget, now=moment, period=label, start=start, end=end,
                        spent=spent, held=held, projected=projected,
                        burn_per_day=burn_per_day, actual=actual, forecasted=ahead)


def _named(ledger: Ledger, name: str) -> Budget:
    return ledger.budget(name)  # UnknownBudget when it has none


def budget_status(ledger: Ledger, name: str, now: datetime | None = None, *,
                  window: timedelta = timedelta(days=14)) -> BudgetStatus:
    """Where the budget ``name`` of ``ledger`` stands in its period containing ``now``.

    Reads the ledger with aggregate queries: the spend in scope during the period, the open
    holds in scope, and the scope's burn per day over ``window`` for the forecast (the
    method of `imagine_billing.planner.forecasting`). For a ``now`` before the ledger's last
    entry, the figures are those at ``now``: the holds open then, and without the refunds
    written after it (`written_after` reads the entries written since).

    Args:
        ledger: The ledger holding the budget.
        name: The budget's name.
        now: The moment (aware); ``None`` for the ledger's clock.
        window: The days the burn averages (whole days, >= 1).

    Returns:
        The `BudgetStatus`.

    Raises:
        UnknownBudget: The ledger has no budget of that name (an `UnknownEntry`; the
            message lists the budgets it has).
        ValueError: ``now`` is naive, or ``window`` is not whole days (or reaches back
            before the year 1).
    """
    budget = _named(ledger, name)
    moment = require_utc(ledger.now() if now is None else now)
    days = window_days(window)
    start, _ = budget.bounds(moment)
    label = period_label(budget.period, moment)
    with ledger.snapshot():
        later = written_after(ledger, moment, budget.scope)
        usage = None
        if not later.entries and label == period_label(budget.period, ledger.now()):
            # The usual case: nothing in scope was written after `now`, in the clock's own
            # period. The running figures the ledger keeps for hard budgets are then exactly
            # those of `now`, read in O(1) (a 'total' budget would otherwise sum every entry),
            # unless `now` is in a period before the budget's first: it has none for those.
            usage = ledger.budget_usage(name, moment)
        if usage is not None:
            spent, held = usage
        else:
            # Spend up to `now` (an entry written at `now` included) in the period, with the
            # refunds written after `now` given back.
            spent = ledger.spent(since=start, until=moment + _MICRO, tags=budget.scope)
            spent += sum(tokens for at, tokens in later.refunds
                         if start is None or at >= start)
            held = ledger.held(tags=budget.scope) - later.held
        daily = window_slices(ledger, moment, days, budget.scope, later.refunds)
        origin = ledger.origin()
    burn = max(Fraction(0), Fraction(sum(daily), len(daily)))
    return status_of(budget, moment, spent=spent, held=held, burn_per_day=burn, origin=origin)
