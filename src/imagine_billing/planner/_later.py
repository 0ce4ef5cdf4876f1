"""What the entries written after a moment changed: `Later` and `written_after`.

Budget statuses (`imagine_billing.planner.budgets`) and forecasts
(`imagine_billing.planner.forecasting`) for a moment in the past both take these entries
back out; this module is their one home, below both.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING

import attrs

from imagine_billing.ledger.budgets import require_utc
from imagine_billing.ledger.model import from_micros

if TYPE_CHECKING:
    from imagine_billing.ledger import Ledger

__all__ = ["Later", "written_after"]


@attrs.frozen
class Later:
    """What the entries written after a moment add to the ledger's figures of today, so that
    a report for that moment can take it out again; `written_after` builds it.

    A hold of 200 placed tomorrow and still open: ``held == 200`` (today's open holds are
    200 more than those open at the moment). A debit of 50 made before the moment and
    refunded after it: ``refunds == ((debit time, 50),)``.
    """

    refunds: tuple[tuple[datetime, int], ...]
    """Refunds written after the moment of spend made at or before it, as ``(time of the
    spend, tokens)``: the ledger counts a refund in the period of the spend it gives back,
    so today's figures for those periods are lower than they were at the moment."""
    held: int
    """Tokens of the holds open now but not at the moment (placed after it), less those open
    at the moment but closed after it: ``held now - held at the moment``."""
    entries: int = 0
    """How many entries carrying the scope's tags were written after the moment (0: the
    ledger's figures of today are those of the moment)."""


def written_after(ledger: Ledger, now: datetime,
                  scope: Mapping[str, str] | None = None) -> Later:
    """What the entries carrying ``scope``'s tags written after ``now`` changed (see `Later`).

    One aggregate of the store over the entries after ``now`` (SQL in SQLite and
    PostgreSQL: no entry is decoded), so a report for a moment long past costs an indexed
    scan of the entries since, not their reading one by one.

    Raises:
        ValueError: ``now`` is naive.
    """
    moment = require_utc(now)
    count, held, refunds = ledger.written_after(moment, scope)
    return Later(refunds=tuple((from_micros(at), tokens) for at, tokens in refunds),
                 held=held, entries=count)
