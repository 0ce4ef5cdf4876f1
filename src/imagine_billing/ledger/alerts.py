"""Budget alerts: the `Alert` value object, its stable id, and the rule of a crossed threshold.

A threshold of a budget is crossed by a spend when ``spend >= limit * threshold``, compared
exactly (``0.8`` is 4/5, never the float nearest it). An alert is ``actual`` when the spend so
far crossed it, ``forecasted`` when only the spend forecast for the end of the period does
(as AWS Budgets does).

A ledger records an alert once per budget, period, threshold and kind (its *outbox*, see
`imagine_billing.ledger.Ledger.alerts`): an actual alert in the same transaction as the write
whose spend crossed the threshold, whatever the number of writers and hosts; a forecasted one
when a status or delivery run evaluates it (`imagine_billing.planner.alerting`). Each alert
has a stable `Alert.id`, the same whichever writer records it, so that a receiver can drop a
repeat (delivery is at least once).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any, Literal

import attrs

from imagine_billing._checks import decimal_text, stamp
from imagine_billing.ledger.model import from_micros, to_micros

__all__ = ["ALERT_KINDS", "Alert", "AlertKind", "alert_id", "crossed", "from_row", "new_row",
           "percent"]

AlertKind = Literal["actual", "forecasted"]
ALERT_KINDS: tuple[str, ...] = ("actual", "forecasted")


def percent(threshold: Fraction) -> str:
    """A threshold for people, to two decimals at most: ``"80%"``, ``"12.5%"``, ``"33.33%"``."""
    value = Decimal(threshold.numerator * 100) / Decimal(threshold.denominator)
    return f"{value.quantize(Decimal('0.01')):f}".rstrip("0").rstrip(".") + "%"


def crossed(limit: int, alerts: Iterable[Fraction], spent: Fraction | int) -> tuple[Fraction,
                                                                                     ...]:
    """The thresholds that ``spent`` reaches: ``spent >= limit * threshold``, exactly.

    ``crossed(1000, (1/2, 4/5, 1), 800)`` is ``(1/2, 4/5)``.
    """
    return tuple(t for t in alerts if spent >= limit * t)


def alert_id(origin: str, budget: str, period: str, threshold: Fraction, kind: str) -> str:
    """The stable id of an alert: ``"alert-"`` and 32 hex digits of a sha256 over the ledger
    (``origin``: the hash of its first entry), the budget's name, the period label, the
    threshold and the kind. The same alert has the same id whoever records or delivers it;
    two ledgers (whose first entries differ) never share one."""
    text = "\x1f".join((origin, budget, period, str(threshold), kind))
    return "alert-" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


@attrs.frozen
class Alert:
    """A threshold of a budget crossed in one period, by actual or forecast spend.

    ``Alert("shop", Fraction(4, 5), "actual", "2026-11", spent=812, limit=1000, at=...,
    id="alert-...")``: budget ``shop`` spent 812 of its 1000 tokens of November 2026,
    crossing 80%.
    """

    budget: str
    """The budget's name."""
    threshold: Fraction
    """The fraction of the limit, such as ``Fraction(4, 5)``."""
    kind: AlertKind
    """``"actual"``: the spend so far crossed it; ``"forecasted"``: only the spend forecast
    for the end of the period does."""
    period: str
    """The period it belongs to, such as ``"2026-11"`` (see
    `imagine_billing.ledger.budgets.period_label`)."""
    spent: int
    """The budget's spend in the period when the alert was raised."""
    limit: int
    """The budget's limit then."""
    at: datetime
    """When it was raised: the time of the write that crossed the threshold, or of the
    status that evaluated it (aware, UTC)."""
    id: str
    """Stable: the same alert has the same id whoever raises or delivers it (see
    `alert_id`); the ``Idempotency-Key`` of its delivery."""
    projected: Fraction | None = None
    """For a forecasted alert, the spend forecast for the end of the period."""
    entry: int | None = None
    """The id of the entry whose write crossed the threshold (``None`` when evaluated)."""
    delivered_at: datetime | None = None
    """When a receiver took it (a 2xx); ``None`` while undelivered."""
    attempts: int = 0
    """Delivery attempts so far."""
    last_error: str | None = None
    """What the last failed delivery attempt got, if any."""

    @property
    def tokens(self) -> Fraction:
        """``limit * threshold``: the spend that crosses it (800 for 4/5 of 1000)."""
        return self.limit * self.threshold

    @property
    def key(self) -> str:
        """The budget, period and threshold: ``"shop:2026-11:4/5"``, the same all period
        whether the threshold is forecast or reached (``kind`` says which)."""
        return f"{self.budget}:{self.period}:{self.threshold}"

    @property
    def percent(self) -> str:
        """The threshold for people: ``"80%"``, ``"12.5%"``."""
        return percent(self.threshold)

    @property
    def delivered(self) -> bool:
        """Whether a receiver took it."""
        return self.delivered_at is not None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (threshold, tokens and projected spend as exact text, times in
        RFC 3339): the body a webhook receives."""
        return {
            "id": self.id,
            "budget": self.budget,
            "period": self.period,
            "kind": self.kind,
            "threshold": str(self.threshold),
            "percent": self.percent,
            "tokens": str(self.tokens),
            "spent": self.spent,
            "limit": self.limit,
            "projected": None if self.projected is None else str(self.projected),
            "at": stamp(self.at),
            "entry": self.entry,
            "key": self.key,
            "delivered_at": stamp(self.delivered_at),
            "attempts": self.attempts,
        }

    def document(self) -> dict[str, Any]:
        """`to_dict` with its fractions as decimal strings (``"0.8"``, not ``"4/5"``,
        rounded half to even to 6 places) and a ``message`` for people: the body a webhook
        receives, and the form of ``--json``."""
        document = self.to_dict()
        document["threshold"] = decimal_text(self.threshold)
        document["tokens"] = decimal_text(self.tokens)
        if self.projected is not None:
            document["projected"] = decimal_text(self.projected)
        document["message"] = self.message()
        return document

    def message(self) -> str:
        """One line for people: ``budget 'shop' 2026-11: spent 812 of 1,000 tokens, past
        80% (actual)``."""
        what = (f"spent {self.spent:,} of {self.limit:,} tokens, past {self.percent}"
                if self.kind == "actual" else
                f"forecast to spend {_rounded(self.projected)} of {self.limit:,} tokens by "
                f"the end of the period, past {self.percent} (spent {self.spent:,} so far)")
        return f"budget {self.budget!r} {self.period}: {what}"


def _rounded(value: Fraction | None) -> str:
    if value is None:
        return "?"
    return f"{round(value):,}"


def new_row(alert: Alert) -> tuple[Any, ...]:
    """``alert`` as a store records it (`imagine_billing.ledger.store.ALERT_COLUMNS`, without
    its delivery)."""
    return (alert.id, alert.budget, alert.period, str(alert.threshold), alert.kind,
            alert.spent, alert.limit, None if alert.projected is None else str(alert.projected),
            to_micros(alert.at), alert.entry)


def from_row(row: tuple[Any, ...]) -> Alert:
    """The `Alert` of a stored row; a row that is no alert is `LedgerCorrupted`."""
    from imagine_billing.errors import LedgerCorrupted

    (id_, budget, period, threshold, kind, spent, limit, projected, at, entry, delivered,
     attempts, error) = row
    try:
        if kind not in ALERT_KINDS:
            raise ValueError(f"kind {kind!r}")
        return Alert(budget=budget, threshold=Fraction(threshold), kind=kind, period=period,
                     spent=int(spent), limit=int(limit), at=from_micros(at), id=id_,
                     projected=None if projected is None else Fraction(projected),
                     entry=entry, delivered_at=None if delivered is None
                     else from_micros(delivered), attempts=int(attempts), last_error=error)
    except (TypeError, ValueError, OverflowError) as problem:
        raise LedgerCorrupted(f"alert {id_!r}", f"its stored fields cannot be read "
                              f"({problem})") from None
