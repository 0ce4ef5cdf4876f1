"""Forecasts of token spend: burn per day, its range, runway and exhaustion date.

The method, exactly (integers and `Fraction`; a square root is the only inexact step):

1. The **window** (14 days by default) is cut into n consecutive 24-hour slices ending at
   ``now``: slice i covers ``[now - (n - i) days, now - (n - i - 1) days)``, i = 0..n-1. The
   spend of a slice is its debits + captures - refunds (holds are not spend until captured).
   Slices that end at or before the ledger's first entry are left out (a ledger three days
   old is not averaged over fourteen), but at least one slice is kept. For a ``now`` in the
   past, the spend is as it was then: refunds written after ``now`` are not counted.
2. The **burn** is the mean spend of the slices: ``burn_per_day = sum(x) / n``. A constant
   burn of b tokens a day gives exactly b.
3. The **range** comes from the day-to-day spread: s is the sample standard deviation of the
   slices (divisor n - 1; 0 when n is 1), and ``low = max(0, burn - 2 s / sqrt(n))``, ``high
   = burn + 2 s / sqrt(n)``: about a 95% interval for the mean burn if days are independent.
   The square root is taken in `decimal` with 28 significant digits. A constant burn has
   s = 0, so ``low == burn == high``.
4. The **runway** is ``available / burn`` days (to the microsecond, rounded down), and
   ``exhausted_at = now + runway``; both are ``None`` when the burn is 0 (and a runway
   longer than a `timedelta` holds, 999,999,999 days, or a date past the year 9999, is
   ``None`` too: tell these apart from "nothing spent" by ``burn_per_day > 0``). Burning
   at ``high`` gives the earliest exhaustion, at ``low`` the latest (``None`` when ``low``
   is 0).
5. The **projected spend** to the horizon is ``burn x horizon`` in days (and ``low``/``high``
   times the horizon), not capped by ``available``.

Example: 1000 tokens available and 100 spent every day of the window: burn 100, range 100 to
100, runway exactly 10 days, 3000 projected over 30 days.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Context, Decimal
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import attrs

from imagine_billing._checks import stamp as _stamp
from imagine_billing.ledger.budgets import require_utc
from imagine_billing.planner._later import written_after

if TYPE_CHECKING:
    from imagine_billing.ledger import Ledger

__all__ = ["Forecast", "available_history", "forecast", "forecast_from", "window_burn",
           "window_days", "window_slices"]

DAY = timedelta(days=1)
_MICRO = timedelta(microseconds=1)
_MICROS_PER_DAY = 86_400_000_000
_SQRT = Context(prec=28)
_MAX_MICROS = timedelta.max // timedelta(microseconds=1)


def window_days(window: object) -> int:
    """The number of whole days of a window (a `timedelta` of whole days, >= 1).

    Raises:
        TypeError: ``window`` is not a timedelta.
        ValueError: It is not a whole number of days >= 1.
    """
    if not isinstance(window, timedelta):
        raise TypeError(f"window must be a timedelta of whole days (got {window!r})")
    days, rest = divmod(window, DAY)
    if rest or days < 1:
        raise ValueError(f"window must be a whole number of days >= 1 (got {window})")
    return days


def _check_horizon(horizon: object) -> timedelta:
    if not isinstance(horizon, timedelta):
        raise TypeError(f"horizon must be a timedelta (got {horizon!r})")
    if horizon < timedelta(0):
        raise ValueError(f"horizon must not be negative (got {horizon})")
    return horizon


def _days(span: timedelta) -> Fraction:
    return Fraction(span // timedelta(microseconds=1), _MICROS_PER_DAY)


def _after(tokens: int, burn: Fraction) -> timedelta | None:
    """How long ``tokens`` last at ``burn`` a day (microseconds rounded down); ``None`` at
    no burn, or when it is longer than a `timedelta` can say (a billion days)."""
    if burn <= 0:
        return None
    micros = tokens * _MICROS_PER_DAY * burn.denominator // burn.numerator
    if micros > _MAX_MICROS:
        return None
    return timedelta(microseconds=micros)


def _plus(now: datetime, span: timedelta | None) -> datetime | None:
    """``now + span``; ``None`` without a span or past the last datetime (year 9999)."""
    if span is None:
        return None
    try:
        return now + span
    except OverflowError:
        return None


def _sqrt(value: Fraction) -> Fraction:
    root = (Decimal(value.numerator, _SQRT) / Decimal(value.denominator)).sqrt(_SQRT)
    return Fraction(root)


@attrs.frozen
class Forecast:
    """How fast tokens are spent and when ``available`` runs out (see the module's method).

    With 1000 available and 100 spent each day: ``burn_per_day == low == high == 100``,
    ``runway == timedelta(days=10)``, ``projected_spend == 3000`` over 30 days.
    """

    now: datetime
    """The moment of the forecast (the end of the window)."""
    daily: tuple[int, ...]
    """Spend of each 24-hour slice of the window, oldest first; the last ends at ``now``."""
    available: int
    """Tokens available at ``now`` (``Balance.available``)."""
    horizon: timedelta
    """How far ahead ``projected_spend`` looks."""
    burn_per_day: Fraction
    """Mean spend per day over the slices: ``sum(daily) / len(daily)``."""
    low: Fraction
    """``max(0, burn - 2 s / sqrt(n))``, s the sample standard deviation of ``daily``."""
    high: Fraction
    """``burn + 2 s / sqrt(n)``."""
    runway: timedelta | None
    """``available / burn_per_day`` days; ``None`` when nothing is spent (``burn_per_day``
    is 0), or when it is more than a `timedelta` holds (999,999,999 days)."""
    exhausted_at: datetime | None
    """``now + runway``; ``None`` when nothing is spent, or when it is after the year 9999."""
    earliest_exhaustion: datetime | None
    """When ``available`` runs out burning at ``high``; ``None`` when ``high`` is 0."""
    latest_exhaustion: datetime | None
    """When it runs out burning at ``low``; ``None`` when ``low`` is 0 (maybe never)."""
    projected_spend: Fraction
    """``burn_per_day x horizon`` in days."""
    projected_low: Fraction
    """``low x horizon`` in days."""
    projected_high: Fraction
    """``high x horizon`` in days."""

    @property
    def days(self) -> int:
        """How many day slices the burn averages."""
        return len(self.daily)

    @property
    def spent(self) -> int:
        """Tokens spent over the slices."""
        return sum(self.daily)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: fractions as exact text (``"100/3"``), times as RFC 3339,
        durations in seconds."""
        return {
            "now": _stamp(self.now),
            "available": self.available,
            "days": self.days,
            "spent": self.spent,
            "daily": list(self.daily),
            "burn_per_day": str(self.burn_per_day),
            "low": str(self.low),
            "high": str(self.high),
            "runway_seconds": None if self.runway is None else self.runway.total_seconds(),
            "exhausted_at": _stamp(self.exhausted_at),
            "earliest_exhaustion": _stamp(self.earliest_exhaustion),
            "latest_exhaustion": _stamp(self.latest_exhaustion),
            "horizon_days": str(_days(self.horizon)),
            "projected_spend": str(self.projected_spend),
            "projected_low": str(self.projected_low),
            "projected_high": str(self.projected_high),
        }


def forecast_from(daily: Sequence[int], available: int, *, now: datetime,
                  horizon: timedelta = timedelta(days=30)) -> Forecast:
    """The forecast of a series of daily spend totals (the method of this module).

    Args:
        daily: Spend of each 24-hour slice ending at ``now``, oldest first (at least one;
            a slice may be negative when refunds outweigh spend).
        available: Tokens available at ``now``, an int >= 0.
        now: The end of the last slice (aware).
        horizon: How far ahead to project the spend.

    Returns:
        The `Forecast`.

    Raises:
        TypeError, ValueError: No slices, a slice or ``available`` not an int, a naive
            ``now``, a negative horizon.
    """
    moment = require_utc(now)
    span = _check_horizon(horizon)
    series = tuple(daily)
    if not series:
        raise ValueError("daily must hold at least one day's spend (got none)")
    for value in series:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"daily spend must be ints of tokens (got {value!r})")
    if isinstance(available, bool) or not isinstance(available, int) or available < 0:
        raise ValueError(f"available must be an int >= 0 (got {available!r})")
    n = len(series)
    burn = Fraction(sum(series), n)
    spread = Fraction(0)
    if n > 1:
        variance = sum(((x - burn) * (x - burn) for x in series), Fraction(0)) / (n - 1)
        spread = 2 * _sqrt(variance / n)
    low = max(Fraction(0), burn - spread)
    high = max(Fraction(0), burn + spread)
    burn = max(burn, Fraction(0))  # refunds outweighing spend are no negative burn
    runway = _after(available, burn)
    fastest = _after(available, high)
    slowest = _after(available, low)
    days = _days(span)
    return Forecast(
        now=moment, daily=series, available=available, horizon=span, burn_per_day=burn,
        low=low, high=high, runway=runway,
        exhausted_at=_plus(moment, runway),
        earliest_exhaustion=_plus(moment, fastest),
        latest_exhaustion=_plus(moment, slowest),
        projected_spend=burn * days, projected_low=low * days, projected_high=high * days,
    )


def window_slices(ledger: Ledger, now: datetime, days: int,
                  tags: Mapping[str, str] | None = None,
                  refunds: Sequence[tuple[datetime, int]] | None = None) -> list[int]:
    """The spend of the window's day slices ending at ``now`` (step 1 of the method).

    Args:
        ledger: The ledger.
        now: The end of the window (aware).
        days: The window's whole days, >= 1 (see `window_days`).
        tags: Count only the entries carrying these tags.
        refunds: `Later.refunds` for ``now`` and ``tags``, when the caller has it; ``None``
            to read it (`written_after`).

    Raises:
        ValueError: The window reaches back before the year 1.
    """
    end = require_utc(now) + timedelta(microseconds=1)  # an entry at `now` is in the last slice
    try:
        start = end - days * DAY
    except OverflowError:
        raise ValueError(f"window of {days} days reaches back before the year 1 from "
                         f"{_stamp(now)}; expected a shorter window") from None
    first = ledger.first_at()
    if first is not None and first > start:
        # Leave out the slices that end at or before the first entry (keep at least one).
        skipped = min(days - 1, (first - start) // DAY)
        start += skipped * DAY
        days -= skipped
    daily = ledger.spend_slices(start, DAY, days, tags=tags)
    if refunds is None:
        refunds = written_after(ledger, now, tags).refunds
    for spent_at, tokens in refunds:
        # Refunded after `now`: the ledger counts them at the spend, but they were not yet.
        if start <= spent_at < end:
            daily[(spent_at - start) // DAY] += tokens
    return daily


def window_burn(ledger: Ledger, now: datetime, window: timedelta = timedelta(days=14), *,
                tags: Mapping[str, str] | None = None) -> Fraction:
    """The burn per day of the entries carrying ``tags`` (steps 1 and 2 of the method).

    Raises:
        ValueError: ``window`` is not a whole number of days >= 1 (or reaches back before the
            year 1); ``now`` is naive.
    """
    moment = require_utc(now)
    daily = window_slices(ledger, moment, window_days(window), tags)
    return max(Fraction(0), Fraction(sum(daily), len(daily)))


def forecast(ledger: Ledger, *, now: datetime | None = None,
             window: timedelta = timedelta(days=14),
             horizon: timedelta = timedelta(days=30)) -> Forecast:
    """How fast ``ledger`` spends and when its available tokens run out (the module's method).

    Reads the ledger with aggregate queries (grouped by day), not entry by entry; for a
    ``now`` before the last entry, also the entries written since (to leave out the refunds
    written after ``now``, see `imagine_billing.planner.budgets.written_after`).

    Args:
        ledger: The ledger.
        now: The end of the window (aware); ``None`` for the ledger's clock. The balance is
            the one at ``now``.
        window: The days the burn averages: a whole number of days >= 1 (14 by default).
        horizon: How far ahead ``projected_spend`` looks (30 days by default).

    Returns:
        The `Forecast`.

    Raises:
        TypeError, ValueError: A naive ``now``, a window that is not whole days (or that
            reaches back before the year 1), a negative horizon.
    """
    moment = require_utc(ledger.now() if now is None else now)
    days = window_days(window)
    _check_horizon(horizon)
    with ledger.snapshot():
        daily = window_slices(ledger, moment, days)
        available = ledger.available_at(moment)
    return forecast_from(daily, max(0, available), now=moment, horizon=horizon)


HISTORY_LIMIT = 20_000
"""The most entries `available_history` walks one by one (about a second and a half of
reading)."""

_GAINS = frozenset({"credit", "refund", "void", "expire"})
"""Entries that give their tokens back to ``available``."""
_TAKES = frozenset({"debit", "hold"})
"""Entries that take their tokens from ``available``."""


def available_history(ledger: Ledger, since: datetime, until: datetime,
                      limit: int = HISTORY_LIMIT) -> tuple[list[tuple[datetime, int]], bool]:
    """The available balance (``Balance.available``) from ``since`` to ``until``, and
    whether it is exact steps.

    Up to ``limit`` entries: ``(moment, available)`` at ``since``, after each entry, and at
    ``until`` (thinned to about 4,000 steps, far finer than a picture's pixels), and
    ``True``. A busier span is sampled at each day from ``since`` and at ``until`` instead
    (`Ledger.available_at`), and ``False``.

    A credit, refund, void or expire gives its tokens back to ``available``; a debit or hold
    takes them; a capture of ``c`` from a hold of ``h`` gives back ``h - c``.
    """
    level = ledger.available_at(since)
    points = [(since, level)]
    holds: dict[int, int] = {}
    for entry in ledger.entries(since=since + _MICRO, until=until + _MICRO):
        if len(points) > limit:
            return _daily_samples(ledger, since, until), False
        if entry.kind in _GAINS:
            level += entry.tokens
        elif entry.kind in _TAKES:
            level -= entry.tokens
            if entry.kind == "hold":
                holds[entry.id] = entry.tokens
        elif entry.kind == "capture" and entry.ref is not None:
            held = holds.pop(entry.ref, None)
            if held is None:
                held = ledger.get(entry.ref).tokens
            level += held - entry.tokens
        points.append((entry.at, level))
    points.append((until, ledger.available_at(until)))
    return _thinned(points, since, until), True


def _daily_samples(ledger: Ledger, since: datetime,
                   until: datetime) -> list[tuple[datetime, int]]:
    """``available`` at each day from ``since``, and at ``until``."""
    days = (until - since) // DAY
    moments = [since + timedelta(days=d) for d in range(days + 1)]
    if moments[-1] < until:
        moments.append(until)
    return [(t, ledger.available_at(t)) for t in moments]


def _thinned(points: list[tuple[datetime, int]], since: datetime,
             until: datetime) -> list[tuple[datetime, int]]:
    """More than 8,000 points: the first, and the last of each of 4,000 equal spans."""
    if len(points) <= 8000:
        return points
    width = (until - since) / 4000
    kept: dict[int, tuple[datetime, int]] = {}
    for moment, value in points[1:]:
        kept[(moment - since) // width] = (moment, value)
    return [points[0], *kept.values()]
