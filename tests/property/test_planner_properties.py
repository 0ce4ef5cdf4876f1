"""Properties of plans, period arithmetic and forecasts."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from fractions import Fraction
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

import imagine_billing as ib
from imagine_billing.planner.budgets import period_bounds, period_label
from imagine_billing.planner.forecasting import forecast_from
from tests.strategies import price_tables

MICRO = timedelta(microseconds=1)


@st.composite
def tables_and_mixes(draw: st.DrawFn, *, max_weight: int = 20) -> tuple[Any, ...]:
    """A priced table with at least one style costing 1 token or more, and a mix of its
    styles that cost 1 or more (weights 1..max_weight)."""
    table = draw(price_tables(priced=True))
    paid = sorted(s.id for s in table.styles.values() if s.cost)
    if not paid:
        first = sorted(table.styles)[0]
        table = table.with_overrides({"styles": {first: {"cost": draw(st.integers(1, 50))}}},
                                     version="99.0.0")
        paid = [first]
    styles = draw(st.lists(st.sampled_from(paid), min_size=1, max_size=4, unique=True))
    mix = {s: draw(st.integers(1, max_weight)) for s in styles}
    return table, mix


def simple_fill(tokens: int, mix: dict[str, int], costs: dict[str, int]) -> dict[str, int]:
    """An independent model of `plan`: one call at a time from nothing, each to the style
    with the smallest count / weight (ties: first in the mix) among those that fit."""
    counts = dict.fromkeys(mix, 0)
    left = tokens
    while True:
        fitting = [s for s in mix if costs[s] <= left]
        if not fitting:
            return counts
        best = min(fitting, key=lambda s: (Fraction(counts[s], mix[s]), list(mix).index(s)))
        counts[best] += 1
        left -= costs[best]


class TestPlanProperties:
    """A plan never costs more than its budget, and what is left buys no more calls."""

    @given(tables_and_mixes(), st.integers(0, 10**12))
    def test_within_budget_and_nothing_more_fits(self, case: tuple[Any, ...],
                                                 tokens: int) -> None:
        """total <= tokens, total + leftover == tokens, leftover < the cheapest style, and
        the counts cost exactly the total."""
        table, mix = case
        result = ib.plan(tokens, mix, table)
        cheapest = min(table.cost(s) for s in mix)
        assert result.total <= tokens
        assert tokens == result.total + result.leftover
        assert result.leftover < cheapest
        assert result.total == sum(table.cost(s) * n for s, n in result.counts.items())
        assert all(n >= result.batches * mix[s] for s, n in result.counts.items())

    @given(tables_and_mixes(max_weight=5), st.integers(0, 3000))
    def test_agrees_with_a_call_by_call_model(self, case: tuple[Any, ...], tokens: int) -> None:
        """Whole batches then the fill give the same counts as filling from nothing."""
        table, mix = case
        costs = {s: table.cost(s) for s in mix}
        assert simple_fill(tokens, mix, costs) == dict(ib.plan(tokens, mix, table).counts)

    @given(tables_and_mixes(max_weight=10**6), st.integers(0, 2000))
    def test_agrees_with_the_model_for_large_weights(self, case: tuple[Any, ...],
                                                     tokens: int) -> None:
        """With weights up to a million (no whole batch: the fill is all), the same counts
        as filling from nothing."""
        table, mix = case
        costs = {s: table.cost(s) for s in mix}
        assert simple_fill(tokens, mix, costs) == dict(ib.plan(tokens, mix, table).counts)

    @given(tables_and_mixes(), st.integers(0, 10**15))
    def test_max_calls_bounds(self, case: tuple[Any, ...], tokens: int) -> None:
        """max_calls(t, s) * cost(s) <= t < (max_calls(t, s) + 1) * cost(s)."""
        table, mix = case
        style = next(iter(mix))
        cost = table.cost(style)
        n = ib.max_calls(tokens, style, table)
        assert n * cost <= tokens < (n + 1) * cost


instants = st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2999, 1, 1),
                        timezones=st.just(UTC))


class TestPeriodProperties:
    """Every moment lies in exactly one period: start <= when < end, and the moment just
    before the end is still in it while the end is in the next."""

    @given(st.sampled_from(["day", "week", "month"]), instants)
    def test_bounds_contain_and_partition(self, period: str, when: datetime) -> None:
        """start <= when < end; end - 1 microsecond has the same label, end another."""
        start, end = period_bounds(period, when)
        assert start is not None
        assert end is not None
        assert start <= when < end
        label = period_label(period, when)
        assert label == period_label(period, start) == period_label(period, end - MICRO)
        assert label != period_label(period, end)
        assert (start, end) == period_bounds(period, end - MICRO)
        assert end == period_bounds(period, end)[0]

    @given(instants)
    def test_iso_week_matches_the_calendar(self, when: datetime) -> None:
        """The week starts on the Monday date.fromisocalendar gives for its ISO label."""
        start, end = period_bounds("week", when)
        year, week, _ = when.isocalendar()
        monday = date.fromisocalendar(year, week, 1)
        assert datetime(monday.year, monday.month, monday.day, tzinfo=UTC) == start
        assert timedelta(days=7) == end - start  # type: ignore[operator]
        assert f"{year}-W{week:02d}" == period_label("week", when)

    @given(instants)
    def test_month_matches_strftime(self, when: datetime) -> None:
        """The month label is strftime's %Y-%m and the month starts on its 1st."""
        start, _ = period_bounds("month", when)
        assert when.strftime("%Y-%m") == period_label("month", when)
        assert datetime(when.year, when.month, 1, tzinfo=UTC) == start


class TestForecastProperties:
    """A constant burn is forecast exactly; the range always brackets the burn."""

    @given(st.integers(1, 10**9), st.integers(0, 10**12), st.integers(1, 60))
    def test_constant_burn_exhaustion(self, burn: int, available: int, days: int) -> None:
        """available / burn days after now, to the microsecond (rounded down); None only
        past the year 9999."""
        now = datetime(2026, 1, 1, tzinfo=UTC)
        result = forecast_from([burn] * days, available, now=now)
        micros = available * 86_400_000_000 // burn
        try:
            expected: datetime | None = now + timedelta(microseconds=micros)
        except OverflowError:
            expected = None
        assert expected == result.exhausted_at
        assert result.low == result.burn_per_day == result.high == burn

    @given(st.lists(st.integers(0, 10**6), min_size=1, max_size=30), st.integers(0, 10**9))
    def test_range_brackets_burn(self, daily: list[int], available: int) -> None:
        """0 <= low <= burn <= high, and the earliest exhaustion is the soonest."""
        now = datetime(2026, 1, 1, tzinfo=UTC)
        result = forecast_from(daily, available, now=now)
        assert 0 <= result.low <= result.burn_per_day <= result.high
        assert Fraction(sum(daily), len(daily)) == result.burn_per_day
        if result.exhausted_at is not None:
            assert result.earliest_exhaustion is not None
            assert result.earliest_exhaustion <= result.exhausted_at
            if result.latest_exhaustion is not None:
                assert result.exhausted_at <= result.latest_exhaustion
