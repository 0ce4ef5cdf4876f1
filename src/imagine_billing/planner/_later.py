"""What the entries written after a moment changed: `Later` and `written_after`.

Budget statuses (`imagine_billing.planner.budgets`) and forecasts
(`imagine_billing.planner.forecasting`) for a moment in the past both take these entries
back out; this module is their one home, below both.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import attrs

from imagine_billing.ledger.budgets import require_utc

if TYPE_CHECKING:
    from imagine_billing.ledger import Ledger

__all__ = ["Later", "written_after"]

_MICRO = timedelta(microseconds=1)


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

    Reads those entries one by one (none when ``now`` is at or after the last entry, the
    usual case: one indexed query), so a report for a moment long past costs a scan of the
    entries written since.

    Raises:
        ValueError: ``now`` is naive.
    """
    moment = require_utc(now)
    placed: dict[int, int] = {}  # holds placed after `now` (not seen closed yet): tokens
    closed: list[int] = []  # holds closed after `now` that were placed before it
    refunded: list[tuple[int, int]] = []  # (entry refunded, tokens)
    seen = 0
    for entry in ledger.entries(since=moment + _MICRO, tags=scope):
        seen += 1
        if entry.kind == "hold":
            placed[entry.id] = entry.tokens
        elif entry.kind in ("capture", "void", "expire") and entry.ref is not None:
            if placed.pop(entry.ref, None) is None:
                closed.append(entry.ref)
        elif entry.kind == "refund" and entry.ref is not None:
            refunded.append((entry.ref, entry.tokens))
    held = 0
    for hold_id in closed:
        hold = ledger.get(hold_id)
        if hold.at <= moment:  # open at `now` (a clock set back may have placed it later)
            held -= hold.tokens
    for hold_id, tokens in placed.items():
        if ledger.get_hold(hold_id).status == "open":
            held += tokens
    refunds = []
    for spend_id, tokens in refunded:
        spent_at = ledger.get(spend_id).at
        if spent_at <= moment:
            refunds.append((spent_at, tokens))
    return Later(refunds=tuple(refunds), held=held, entries=seen)
