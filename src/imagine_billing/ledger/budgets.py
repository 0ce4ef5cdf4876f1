"""Budgets as the ledger stores and enforces them: the `Budget` value object and UTC periods.

A budget caps the spend of one period: a calendar ``day``, ISO ``week`` (Monday to Sunday) or
``month`` in UTC, or the ``total`` over all time. Spend is debits + captures - refunds whose
time falls in the period, ``start <= at < end``: an entry at 2026-01-31T23:59:59.999999Z is
January's, one at 2026-02-01T00:00:00Z February's. Tuesday 2024-12-31 is in ISO week
2025-W01 (which runs from Monday 2024-12-30), so a weekly budget counts it with the first
days of January 2025. A refund counts in the period of the debit or capture it gives back:
refunding last month's spend gives this month no room past its limit.

Adding a budget writes a ``budget`` entry in the ledger's hash chain, its settings included:
the ledger enforces the budget as that entry records it, and `Ledger.verify` detects any
edit of them in the file. A budget counts from the period in which it was added
(`Ledger.add_budget`, by the ledger's clock): that period's spend from before the add
included, and every later period's. The periods before it are not the budget's: a clock
set back into one of them writes holds and debits the budget neither counts nor refuses,
and the ledger keeps no figures for them (`Ledger.budget_usage` gives ``None``;
`budget_status` sums the entries).

A hard budget is enforced by the ledger in the same transaction as the hold or debit it would
exceed, so this module lives with the ledger; reporting on budgets (alerts, status) is the
planner's (`imagine_billing.planner.budgets`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from types import MappingProxyType
from typing import Any, Literal, cast

import attrs

from imagine_billing._checks import exact_number, positive_int, shown_repr, unicode_text
from imagine_billing.ledger.model import check_tag, reduce_fields

__all__ = [
    "DEFAULT_ALERTS",
    "MIN_ALERT",
    "PERIODS",
    "Budget",
    "Period",
    "label_bounds",
    "period_bounds",
    "period_label",
    "require_utc",
]

Period = Literal["day", "week", "month", "total"]
PERIODS: tuple[str, ...] = ("day", "week", "month", "total")
"""The periods a budget may have."""

DEFAULT_ALERTS = (Fraction(1, 2), Fraction(4, 5), Fraction(1))
_DAY = timedelta(days=1)


def require_utc(when: object, name: str = "now") -> datetime:
    """``when`` in UTC, if it is an aware datetime.

    Raises:
        TypeError: ``when`` is not a datetime.
        ValueError: ``when`` is naive (has no time zone).
    """
    if not isinstance(when, datetime):
        raise TypeError(f"{name} must be an aware datetime (got {when!r})")
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(
            f"{name} {when!r} is naive: give an aware datetime, e.g. datetime.now(UTC)"
        )
    return when.astimezone(UTC)


def _check_period(period: object) -> Period:
    if period not in PERIODS:
        raise ValueError(f"period must be one of {', '.join(PERIODS)} (got {period!r})")
    return cast(Period, period)


def period_bounds(period: str, when: datetime) -> tuple[datetime | None, datetime | None]:
    """The UTC calendar period containing ``when``: ``(start, end)``, ``start <= when < end``.

    ``period_bounds("month", 2026-01-31T23:59:59Z)`` is (2026-01-01Z, 2026-02-01Z);
    ``period_bounds("week", 2024-12-31T12:00Z)`` is (2024-12-30Z, 2025-01-06Z), ISO week
    2025-W01; ``"total"`` is ``(None, None)``: all time.

    Args:
        period: ``"day"``, ``"week"`` (ISO, from Monday), ``"month"`` or ``"total"``.
        when: An aware datetime (any zone; the periods are UTC ones).

    Raises:
        ValueError: Unknown period, or ``when`` is naive.
    """
    kind = _check_period(period)
    moment = require_utc(when, "when")
    if kind == "total":
        return None, None
    day = moment.date()
    if kind == "day":
        start = day
        end = day + _DAY
    elif kind == "week":
        start = day - timedelta(days=day.weekday())
        end = start + timedelta(days=7)
    else:
        start = day.replace(day=1)
        end = date(start.year + 1, 1, 1) if start.month == 12 else start.replace(
            month=start.month + 1)
    return _midnight(start), _midnight(end)


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def period_label(period: str, when: datetime) -> str:
    """The name of the period containing ``when``.

    ``"2026-11-25"`` (day), ``"2025-W01"`` (ISO week, for 2024-12-31), ``"2026-11"`` (month),
    ``"total"``.

    Raises:
        ValueError: Unknown period, or ``when`` is naive.
    """
    kind = _check_period(period)
    moment = require_utc(when, "when")
    if kind == "day":
        return moment.date().isoformat()
    if kind == "week":
        year, week, _ = moment.isocalendar()
        return f"{year}-W{week:02d}"
    if kind == "month":
        return f"{moment.year:04d}-{moment.month:02d}"
    return "total"


MIN_ALERT = Fraction(1, 10**6)
"""The smallest alert threshold, 1e-6 (a millionth of the limit); the largest is 100."""

_ALERT_DIGITS = 30
"""The most significant digits of an alert threshold (``0.8`` has one)."""


def label_bounds(period: str, label: str) -> tuple[datetime | None, datetime | None]:
    """The period named ``label`` (`period_label`'s text): ``(start, end)`` as
    `period_bounds` gives them; ``label_bounds("week", "2025-W01")`` is (2024-12-30Z,
    2025-01-06Z).

    Raises:
        ValueError: Unknown period, or ``label`` names no period of that kind.
    """
    kind = _check_period(period)
    if kind == "total":
        if label != "total":
            raise ValueError(f"a total budget's period is 'total' (got {label!r})")
        return None, None
    try:
        if kind == "day":
            day = date.fromisoformat(label)
        elif kind == "week":
            year, week = label.split("-W")
            day = date.fromisocalendar(int(year), int(week), 1)
        else:
            year, month = label.split("-")
            day = date(int(year), int(month), 1)
        start = _midnight(day)
        if period_label(kind, start) != label:  # "2026-3-1", "2026-W5": not a label
            raise ValueError(label)
    except (TypeError, ValueError, OverflowError, AttributeError):  # AttributeError: no str
        example = period_label(kind, datetime(2026, 11, 25, tzinfo=UTC))
        raise ValueError(f"{label!r} names no {kind} (a {kind} is written like "
                         f"{example!r})") from None
    return period_bounds(kind, start)


def _threshold(value: object) -> Fraction:
    """The exact threshold ``value`` stands for: from `MIN_ALERT` to 100, at most 30
    significant digits, its size checked before any `Fraction` is built (``1e-999999999``
    would take for ever to make)."""
    if isinstance(value, bool) or not isinstance(value, int | float | Fraction | Decimal | str):
        raise TypeError(
            f"alert threshold must be a number > 0 such as 0.8 (got {shown_repr(value)})")
    # The shortest decimal of a float: 0.8 is 4/5, not 3602879701896397/2**52.
    fraction = exact_number(value, digits=_ALERT_DIGITS, exponents=(-6, 2))
    if fraction == "not-a-number":
        raise ValueError(
            f"alert threshold must be a number > 0 such as 0.8 (got {shown_repr(value)})")
    if fraction == "too-precise":
        raise ValueError(f"alert threshold must have at most {_ALERT_DIGITS} significant "
                         f"digits, such as 0.8 (got {shown_repr(value)})")
    if fraction == "too-small":  # below MIN_ALERT
        raise ValueError(f"alert threshold must be at least 1e-6 = 0.000001, a millionth of "
                         f"the limit (got {shown_repr(value)})")
    if isinstance(fraction, str) or not 0 < fraction <= 100:  # too large, negative or 0
        raise ValueError(
            f"alert threshold must be a number > 0 and <= 100 such as 0.8 "
            f"(got {shown_repr(value)})")
    return fraction


def _alerts(values: Iterable[object]) -> tuple[Fraction, ...]:
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise TypeError(f"alerts must be a sequence of numbers such as (0.5, 0.8, 1.0) "
                        f"(got {values!r})")
    thresholds = [_threshold(v) for v in values]
    if len(set(thresholds)) != len(thresholds):
        raise ValueError(f"alerts must not repeat a threshold (got {tuple(values)!r})")
    return tuple(sorted(thresholds))


def _scope(scope: object) -> Mapping[str, str]:
    if scope is None:
        return MappingProxyType({})
    if not isinstance(scope, Mapping):
        raise TypeError(f"scope must be a mapping of tag names to values, such as "
                        f"{{'project': 'shop'}}, or None (got {scope!r})")
    for name, value in scope.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError(f"scope {name!r}={value!r}: tag names and values must be strings")
        check_tag(name, value)
    return MappingProxyType(dict(sorted(scope.items())))


def _check_name(_: object, __: object, value: Any) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"budget name must be a non-empty string (got {value!r})")
    unicode_text(value, "budget name")


def _check_limit(_: object, __: object, value: Any) -> None:
    positive_int(value, "budget limit")


def _check_hard(_: object, __: object, value: Any) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"hard must be True or False (got {value!r})")


@attrs.frozen
class Budget:
    """A cap on the spend of a period, for the entries whose tags match a scope.

    ``Budget("shop", 10_000, "month", {"project": "shop"}, hard=True)``: entries tagged
    ``project=shop`` may spend 10,000 tokens a calendar month (UTC); a hold or debit that
    would take the month past it is refused with `BudgetExceeded`.

    A budget counts from the period in which it is added to a ledger: added on 2 April, the
    one above counts April's spend from the 1st on, and every month after; a clock set back
    to 20 March writes debits it neither counts nor refuses (March is not its period).
    """

    name: str = attrs.field(validator=_check_name)
    """The budget's name, unique in its ledger."""
    limit: int = attrs.field(validator=_check_limit)
    """Tokens the period may spend, an int >= 1."""
    period: Period = attrs.field(default="month", converter=_check_period)
    """``"day"``, ``"week"`` (ISO, Monday to Sunday), ``"month"`` (calendar months in UTC) or
    ``"total"`` (all time)."""
    scope: Mapping[str, str] = attrs.field(default=None, converter=_scope, hash=False)
    """Tags an entry must all carry to count, such as ``{"project": "shop"}``; empty (the
    default, from ``None``) counts every entry. Read-only."""
    alerts: tuple[Fraction, ...] = attrs.field(default=DEFAULT_ALERTS, converter=_alerts)
    """Alert thresholds as fractions of the limit, sorted. Given as numbers: ``(0.5, 0.8,
    1.0)`` becomes ``(1/2, 4/5, 1)`` exactly; with a limit of 1000, 0.8 is crossed at 800
    tokens spent."""
    hard: bool = attrs.field(default=False, validator=_check_hard)
    """Refuse holds and debits that would exceed the limit (`BudgetExceeded`); open holds
    count as spend. A soft budget (the default) only reports."""

    __reduce__ = reduce_fields  # the read-only scope: see `reduce_fields`

    def matches(self, tags: Mapping[str, str]) -> bool:
        """Whether an entry with ``tags`` counts against this budget."""
        return all(tags.get(name) == value for name, value in self.scope.items())

    def bounds(self, when: datetime) -> tuple[datetime | None, datetime | None]:
        """The period of this budget containing ``when`` (see `period_bounds`)."""
        return period_bounds(self.period, when)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready document; thresholds as exact text (``"4/5"``)."""
        return {
            "name": self.name,
            "limit": self.limit,
            "period": self.period,
            "scope": dict(self.scope),
            "alerts": [str(a) for a in self.alerts],
            "hard": self.hard,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Budget:
        """The budget of a `to_dict` document (thresholds as numbers or exact text).

        Raises:
            KeyError: ``name`` or ``limit`` is missing.
            TypeError, ValueError: A field is bad (the message names it).
        """
        unknown = sorted(set(data) - {"name", "limit", "period", "scope", "alerts", "hard"})
        if unknown:
            raise ValueError(f"budget document has unknown keys: {', '.join(unknown)}")
        return cls(
            name=data["name"],
            limit=data["limit"],
            period=data.get("period", "month"),
            scope=data.get("scope"),
            alerts=data.get("alerts", DEFAULT_ALERTS),
            hard=data.get("hard", False),
        )
