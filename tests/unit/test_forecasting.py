"""forecast_from: burn, range, runway and projection from daily spend (synthetic series)."""

from __future__ import annotations

import math
import statistics
from datetime import UTC, datetime, timedelta
from fractions import Fraction

import pytest

import imagine_billing as ib
from imagine_billing.planner.forecasting import forecast, forecast_from, window_days
from tests.helpers import Clock

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)


class TestForecastFrom:
    """forecast_from(daily, available, now=, horizon=)."""

    def test_constant_burn_is_exact(self) -> None:
        """100 a day with 1000 available: runway exactly 10 days, no spread."""
        result = forecast_from([100] * 14, 1000, now=NOW)
        assert Fraction(100) == result.burn_per_day
        assert (Fraction(100), Fraction(100)) == (result.low, result.high)
        assert timedelta(days=10) == result.runway
        assert NOW + timedelta(days=10) == result.exhausted_at
        assert result.exhausted_at == result.earliest_exhaustion == result.latest_exhaustion
        assert Fraction(3000) == result.projected_spend
        assert (14, 1400) == (result.days, result.spent)

    def test_runway_in_thirds_of_a_day(self) -> None:
        """100 available at 30 a day lasts 10/3 days: 3 days and 8 hours exactly."""
        result = forecast_from([30, 30, 30], 100, now=NOW)
        assert timedelta(days=3, hours=8) == result.runway

    def test_weekly_pattern(self) -> None:
        """Two weeks of 100 on weekdays and 0 at weekends: mean 500/7 and the stated
        interval mean -/+ 2 s / sqrt(14), s the sample standard deviation."""
        week = [100, 100, 100, 100, 100, 0, 0]
        result = forecast_from(week * 2, 5000, now=NOW, horizon=timedelta(days=7))
        assert Fraction(500, 7) == result.burn_per_day
        half = 2 * statistics.stdev([float(x) for x in week * 2]) / math.sqrt(14)
        assert math.isclose(500 / 7 - half, float(result.low), rel_tol=1e-12)
        assert math.isclose(500 / 7 + half, float(result.high), rel_tol=1e-12)
        assert Fraction(500) == result.projected_spend
        assert NOW + timedelta(days=70) == result.exhausted_at
        assert result.earliest_exhaustion is not None
        assert result.latest_exhaustion is not None
        assert result.earliest_exhaustion < result.exhausted_at < result.latest_exhaustion

    def test_zero_spend(self) -> None:
        """Nothing spent: no runway, no exhaustion date, nothing projected."""
        result = forecast_from([0] * 14, 1000, now=NOW)
        assert Fraction(0) == result.burn_per_day
        assert (None, None, None) == (result.runway, result.exhausted_at,
                                      result.earliest_exhaustion)
        assert Fraction(0) == result.projected_high

    def test_nothing_available(self) -> None:
        """With 0 available and a burn, the tokens are already gone: runway 0."""
        result = forecast_from([5], 0, now=NOW)
        assert timedelta(0) == result.runway
        assert NOW == result.exhausted_at

    def test_low_is_never_negative(self) -> None:
        """A spiky series has low 0, so no latest exhaustion (maybe never)."""
        result = forecast_from([0] * 13 + [1000], 10, now=NOW)
        assert Fraction(0) == result.low
        assert result.latest_exhaustion is None

    def test_refunds_are_no_negative_burn(self) -> None:
        """More refunded than spent in the window: burn 0, not negative."""
        result = forecast_from([-50, 10], 100, now=NOW)
        assert Fraction(0) == result.burn_per_day
        assert result.runway is None

    def test_to_dict(self) -> None:
        """The JSON document has exact fractions and RFC 3339 times."""
        document = forecast_from([10, 20], 90, now=NOW).to_dict()
        assert "15" == document["burn_per_day"]
        assert "2026-12-01T12:00:00Z" == document["exhausted_at"]
        assert 6 * 86400 == document["runway_seconds"]
        assert "450" == document["projected_spend"]

    @pytest.mark.parametrize(
        ("daily", "available", "now", "error", "message"),
        [([], 1, NOW, ValueError, "at least one day"),
         ([1.5], 1, NOW, TypeError, r"got 1.5"),
         ([1], -1, NOW, ValueError, r"available must be an int >= 0 \(got -1\)"),
         ([1], 1, datetime(2026, 1, 1), ValueError, "is naive")],
    )
    def test_bad_input(self, daily: list[object], available: int, now: datetime,
                       error: type[Exception], message: str) -> None:
        """Bad input is refused, naming the value."""
        with pytest.raises(error, match=message):
            forecast_from(daily, available, now=now)  # type: ignore[arg-type]

    def test_negative_horizon(self) -> None:
        """A horizon in the past is refused."""
        with pytest.raises(ValueError, match="horizon must not be negative"):
            forecast_from([1], 1, now=NOW, horizon=timedelta(days=-1))


class TestWindowDays:
    """window_days: windows are whole days."""

    def test_whole_days(self) -> None:
        """14 days is 14."""
        assert 14 == window_days(timedelta(days=14))

    @pytest.mark.parametrize("window", [timedelta(hours=36), timedelta(0), timedelta(days=-2)])
    def test_refused(self, window: timedelta) -> None:
        """Part days, zero and negative windows are refused."""
        with pytest.raises(ValueError, match="whole number of days"):
            window_days(window)


class TestForecastOfALedger:
    """forecast(ledger, ...) at the edges: huge windows, a now before later refunds."""

    def test_window_before_year_one(self) -> None:
        """A window reaching back before the year 1 is refused with a ValueError naming it,
        not an OverflowError."""
        ledger = ib.Ledger.memory(clock=lambda: NOW)
        ledger.credit(100, key="c")
        with pytest.raises(ValueError, match=r"window of 800000 days reaches back before the "
                           r"year 1 from 2026-11-25T12:00:00Z"):
            forecast(ledger, window=timedelta(days=800_000))
        ledger.add_budget(ib.Budget("b", 10))
        with pytest.raises(ValueError, match="window of 800000 days"):
            ib.budget_status(ledger, "b", NOW, window=timedelta(days=800_000))

    def test_refund_after_now_is_not_yet(self) -> None:
        """Forecast on the 3rd of spend refunded on the 10th: the spend as it was on the 3rd."""
        clock = Clock(datetime(2026, 3, 1, 6, tzinfo=UTC))
        ledger = ib.Ledger.memory(clock=clock)
        ledger.credit(1000, key="c")
        debit = ledger.debit(90, key="d")
        clock.now = datetime(2026, 3, 10, tzinfo=UTC)
        ledger.refund(debit, 60, key="r")
        then = forecast(ledger, now=datetime(2026, 3, 3, 12, tzinfo=UTC), window=timedelta(days=3))
        assert (90, 0, 0) == then.daily
        assert 910 == then.available
        later = forecast(ledger, now=datetime(2026, 3, 10, 12, tzinfo=UTC),
                         window=timedelta(days=10))
        assert 30 == later.spent
