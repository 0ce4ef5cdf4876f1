"""Budgets as values: validation, UTC calendar periods, alert thresholds, status figures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import attrs
import pytest

import imagine_billing as ib
from imagine_billing.planner.budgets import (
    alerts_for,
    crossed,
    period_bounds,
    period_label,
    status_of,
    written_after,
)
from tests.helpers import Clock

AT = datetime(2026, 11, 15, tzinfo=UTC)
"""When the alerts of `alerts_for` are raised, in the tests that do not look at it."""


def utc(*args: int) -> datetime:
    """A UTC datetime."""
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


class TestBudget:
    """Budget(name, limit, period, scope, alerts, hard)."""

    def test_defaults(self) -> None:
        """Monthly, every entry, alerts at 50%, 80% and 100%, soft."""
        budget = ib.Budget("all", 1000)
        assert "month" == budget.period
        assert {} == dict(budget.scope)
        assert (Fraction(1, 2), Fraction(4, 5), Fraction(1)) == budget.alerts
        assert budget.hard is False

    def test_thresholds_at_the_bounds(self) -> None:
        """1e-6 (a millionth of the limit) and 100 are the smallest and largest thresholds;
        a ratio such as "1/3" stays exact."""
        budget = ib.Budget("b", 10, alerts=("1e-6", "1/3", Decimal("100.0")))
        assert (Fraction(1, 10**6), Fraction(1, 3), Fraction(100)) == budget.alerts

    def test_float_thresholds_are_exact(self) -> None:
        """0.8 is read as 4/5 (its decimal), not the binary float nearest it; sorted."""
        budget = ib.Budget("b", 10, alerts=(0.9, 0.1, 1.25))
        assert (Fraction(1, 10), Fraction(9, 10), Fraction(5, 4)) == budget.alerts

    @pytest.mark.parametrize(
        ("kwargs", "error", "message"),
        [({"name": ""}, ValueError, "budget name must be a non-empty string"),
         ({"limit": 0}, ValueError, r"limit must be an int >= 1 \(got 0\)"),
         ({"limit": 10.0}, TypeError, r"got 10.0"),
         ({"limit": True}, TypeError, r"got True"),
         ({"period": "year"}, ValueError, r"day, week, month, total \(got 'year'\)"),
         ({"alerts": (0.5, 0.5)}, ValueError, "must not repeat"),
         ({"alerts": (0,)}, ValueError, r"number > 0 and <= 100 such as 0.8 \(got 0\)"),
         ({"alerts": ("1e999",)}, ValueError, r"<= 100 such as 0.8 \(got .1e999.\)"),
         ({"alerts": ("1e-100000",)}, ValueError, r"at least 1e-6 .*\(got '1e-100000'\)"),
         ({"alerts": ("1e-999999999",)}, ValueError, r"at least 1e-6 .*\(got '1e-999999999'\)"),
         ({"alerts": ("1e999999999",)}, ValueError, r"<= 100 .*\(got '1e999999999'\)"),
         ({"alerts": (1e-7,)}, ValueError, r"at least 1e-6 = 0.000001.*\(got 1e-07\)"),
         ({"alerts": (Fraction(1, 10**40),)}, ValueError, r"at least 1e-6"),
         ({"alerts": ("0." + "1" * 31,)}, ValueError, "at most 30 significant digits"),
         ({"alerts": ("1/" + "3" * 31,)}, ValueError, "at most 30 significant digits"),
         ({"alerts": (10**5000,)}, ValueError, r"<= 100 .*\(got a number of 5001 digits\)"),
         ({"alerts": ("x",)}, ValueError, r"got 'x'"),
         ({"alerts": (True,)}, TypeError, r"got True"),
         ({"alerts": 0.8}, TypeError, "sequence of numbers"),
         ({"scope": "project=shop"}, TypeError, "scope must be a mapping"),
         ({"scope": {"project": 1}}, TypeError, "names and values must be strings"),
         ({"hard": "yes"}, TypeError, r"hard must be True or False \(got 'yes'\)")],
    )
    def test_bad_fields(self, kwargs: dict[str, object], error: type[Exception],
                        message: str) -> None:
        """Each bad field is refused with a message naming the value."""
        fields: dict[str, object] = {"name": "b", "limit": 10, **kwargs}
        with pytest.raises(error, match=message):
            ib.Budget(**fields)  # type: ignore[arg-type]

    def test_scope_matches_tags(self) -> None:
        """An entry counts when it carries every tag of the scope (extra tags are fine)."""
        budget = ib.Budget("shop", 10, scope={"project": "shop", "env": "prod"})
        assert budget.matches({"project": "shop", "env": "prod", "user": "ana"})
        assert not budget.matches({"project": "shop"})
        assert not budget.matches({"project": "site", "env": "prod"})
        assert ib.Budget("all", 10).matches({})

    def test_frozen_and_read_only(self) -> None:
        """Neither the budget nor its scope can change."""
        budget = ib.Budget("shop", 10, scope={"project": "shop"})
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            budget.limit = 20  # type: ignore[misc]
        with pytest.raises(TypeError):
            budget.scope["project"] = "x"  # type: ignore[index]

    def test_round_trip(self) -> None:
        """to_dict and from_dict agree; thresholds travel as exact text."""
        budget = ib.Budget("shop", 500, "week", {"project": "shop"}, (0.75, 1), hard=True)
        document = budget.to_dict()
        assert ["3/4", "1"] == document["alerts"]
        assert budget == ib.Budget.from_dict(document)

    def test_from_dict_refuses_unknown_keys(self) -> None:
        """A document with a key the budget does not have is refused, naming it."""
        with pytest.raises(ValueError, match="unknown keys: limt"):
            ib.Budget.from_dict({"name": "b", "limit": 1, "limt": 2})


class TestPeriodBounds:
    """period_bounds and period_label: the UTC calendar period holding a moment."""

    def test_day(self) -> None:
        """A day runs from midnight UTC to the next midnight."""
        assert (utc(2026, 11, 25), utc(2026, 11, 26)) == period_bounds("day", utc(2026, 11, 25,
                                                                                  13, 5))
        assert "2026-11-25" == period_label("day", utc(2026, 11, 25, 23, 59, 59))

    def test_last_microsecond_of_a_month(self) -> None:
        """23:59:59.999999 on the 31st is January; the next microsecond is February."""
        last = datetime(2026, 1, 31, 23, 59, 59, 999_999, tzinfo=UTC)
        assert (utc(2026, 1, 1), utc(2026, 2, 1)) == period_bounds("month", last)
        assert "2026-01" == period_label("month", last)
        nxt = last + timedelta(microseconds=1)
        assert (utc(2026, 2, 1), utc(2026, 3, 1)) == period_bounds("month", nxt)
        assert "2026-02" == period_label("month", nxt)

    def test_december_ends_in_the_next_year(self) -> None:
        """December 2026 ends at 2027-01-01."""
        assert (utc(2026, 12, 1), utc(2027, 1, 1)) == period_bounds("month", utc(2026, 12, 31))

    def test_leap_february(self) -> None:
        """February 2028 has 29 days."""
        assert (utc(2028, 2, 1), utc(2028, 3, 1)) == period_bounds("month", utc(2028, 2, 29, 12))

    def test_iso_week_across_a_year_end(self) -> None:
        """Tuesday 2024-12-31 is in ISO week 2025-W01, Monday 2024-12-30 to 2025-01-06."""
        when = utc(2024, 12, 31, 12)
        assert (utc(2024, 12, 30), utc(2025, 1, 6)) == period_bounds("week", when)
        assert "2025-W01" == period_label("week", when)

    def test_week_53(self) -> None:
        """Sunday 2021-01-03 is the last day of ISO week 2020-W53."""
        when = datetime(2021, 1, 3, 23, 59, 59, 999_999, tzinfo=UTC)
        assert (utc(2020, 12, 28), utc(2021, 1, 4)) == period_bounds("week", when)
        assert "2020-W53" == period_label("week", when)
        assert "2021-W01" == period_label("week", utc(2021, 1, 4))

    def test_other_zones_are_read_in_utc(self) -> None:
        """00:30 on February 1st at UTC+1 is still January 31st in UTC."""
        when = datetime(2026, 2, 1, 0, 30, tzinfo=timezone(timedelta(hours=1)))
        assert "2026-01" == period_label("month", when)
        assert "2026-01-31" == period_label("day", when)

    def test_total(self) -> None:
        """A total budget has no bounds."""
        assert (None, None) == period_bounds("total", utc(2026, 1, 1))
        assert "total" == period_label("total", utc(2026, 1, 1))

    def test_naive_refused(self) -> None:
        """A naive datetime is refused, naming it."""
        with pytest.raises(ValueError, match=r"when datetime.datetime\(2026, 1, 1, 0, 0\) is "
                           "naive"):
            period_bounds("day", datetime(2026, 1, 1))

    def test_unknown_period(self) -> None:
        """An unknown period is named."""
        with pytest.raises(ValueError, match="'quarter'"):
            period_bounds("quarter", utc(2026, 1, 1))


class TestAlerts:
    """crossed and alerts_for: thresholds reached, each reported once."""

    def test_crossed_is_inclusive_and_exact(self) -> None:
        """800 of 1000 reaches 4/5; 799 does not."""
        thresholds = (Fraction(1, 2), Fraction(4, 5), Fraction(1))
        assert (Fraction(1, 2), Fraction(4, 5)) == crossed(1000, thresholds, 800)
        assert (Fraction(1, 2),) == crossed(1000, thresholds, 799)
        assert () == crossed(1000, thresholds, 0)

    def test_fraction_of_a_token(self) -> None:
        """A third of 10 is 3 1/3 tokens: 3 spent is below it, 4 above."""
        assert () == crossed(10, (Fraction(1, 3),), 3)
        assert (Fraction(1, 3),) == crossed(10, (Fraction(1, 3),), 4)

    def test_each_threshold_once(self) -> None:
        """Thresholds reached by actual spend are not repeated as forecasted ones."""
        budget = ib.Budget("b", 1000)
        actual, forecasted = alerts_for(budget, "2026-11", 600, Fraction(1200), at=AT)
        assert [Fraction(1, 2)] == [a.threshold for a in actual]
        assert [Fraction(4, 5), Fraction(1)] == [a.threshold for a in forecasted]
        assert ["actual"] == [a.kind for a in actual]
        assert "b:2026-11:4/5" == forecasted[0].key
        assert ["80%", "100%"] == [a.percent for a in forecasted]
        assert Fraction(800) == forecasted[0].tokens

    def test_key_survives_forecast_to_actual(self) -> None:
        """80% forecast on the 10th and reached on the 20th keeps one key (kind apart), so
        a notifier that remembers keys reports it once in the period."""
        budget = ib.Budget("shop", 1000)
        _, early = alerts_for(budget, "2026-11", 600, Fraction(900), at=AT)
        late, _ = alerts_for(budget, "2026-11", 850, Fraction(1000), at=AT)
        forecast = next(a for a in early if a.threshold == Fraction(4, 5))
        reached = next(a for a in late if a.threshold == Fraction(4, 5))
        assert ("forecasted", "actual") == (forecast.kind, reached.kind)
        assert "shop:2026-11:4/5" == forecast.key == reached.key
        assert {"kind": "actual", "key": "shop:2026-11:4/5"} == {
            k: reached.to_dict()[k] for k in ("kind", "key")}

    def test_no_forecast(self) -> None:
        """Without a forecast (a total budget) there are no forecasted alerts."""
        assert ((), ()) == alerts_for(ib.Budget("b", 1000), "total", 0, None, at=AT)


class TestStatusOf:
    """status_of: the figures of a period made into a status."""

    def test_documented_example(self) -> None:
        """1000 a month, 600 spent, 100 held, 40 a day with 15 days left: 1200 projected."""
        budget = ib.Budget("b", 1000)
        status = status_of(budget, utc(2026, 11, 16), spent=600, held=100,
                           burn_per_day=Fraction(40))
        assert ("2026-11", utc(2026, 11, 1), utc(2026, 12, 1)) == (status.period, status.start,
                                                                   status.end)
        assert Fraction(1200) == status.projected
        assert 300 == status.remaining
        assert ["50%"] == [a.percent for a in status.actual]
        assert ["80%", "100%"] == [a.percent for a in status.forecasted]
        assert 3 == len(status.fired)

    def test_remaining_never_negative(self) -> None:
        """Spend past the limit leaves 0 remaining, not a negative number."""
        status = status_of(ib.Budget("b", 10, "total"), utc(2026, 1, 1), spent=12, held=0,
                           burn_per_day=Fraction(0))
        assert 0 == status.remaining
        assert status.projected is None

    def test_partial_day_left(self) -> None:
        """At 18:00 on the last day, a quarter of a day is left: 4 more at 16 a day."""
        status = status_of(ib.Budget("b", 100, "day"), utc(2026, 3, 31, 18), spent=10, held=0,
                           burn_per_day=Fraction(16))
        assert Fraction(14) == status.projected
        document = status.to_dict()
        assert "14" == document["projected"]
        assert "2026-03-31T00:00:00Z" == document["start"]


class TestStatusInThePast:
    """budget_status(ledger, name, now) for a now before later entries: as it was then."""

    def ledger(self, tmp_path: Path) -> ib.Ledger:
        """A month budget of 1000; at 06:00 on March 2nd a debit of 100, a hold of 50 and one of 70;
        on March 20th the 50 captured as 30, the 70 voided, 40 of the debit refunded, a new
        hold of 200, a debit of 10."""
        clock = Clock(utc(2026, 3, 2, 6))
        ledger = ib.Ledger.open(tmp_path / "l.db", clock=clock)
        ledger.credit(5000, key="c")
        ledger.add_budget(ib.Budget("all", 1000))
        ledger.add_budget(ib.Budget("shop", 1000, scope={"project": "shop"}))
        debit = ledger.debit(100, key="d", tags={"project": "shop"})
        first = ledger.hold(50, key="h1")
        second = ledger.hold(70, key="h2", tags={"project": "shop"})
        clock.now = utc(2026, 3, 20)
        ledger.capture(first, 30)
        ledger.void(second)
        ledger.refund(debit, 40, key="r")
        ledger.hold(200, key="h3", tags={"project": "shop"})
        ledger.debit(10, key="d2")
        return ledger

    def test_figures_then(self, tmp_path: Path) -> None:
        """On March 10th: 100 spent (the refund came later), 120 held (both first holds,
        not the later one), 780 remaining."""
        with self.ledger(tmp_path) as ledger:
            status = ib.budget_status(ledger, "all", utc(2026, 3, 10))
        assert (100, 120, 780) == (status.spent, status.held, status.remaining)

    def test_figures_now(self, tmp_path: Path) -> None:
        """On March 21st: 100 + 30 + 10 - 40 = 100 spent, 200 held."""
        with self.ledger(tmp_path) as ledger:
            status = ib.budget_status(ledger, "all", utc(2026, 3, 21))
        assert (100, 200, 700) == (status.spent, status.held, status.remaining)

    def test_scope_then(self, tmp_path: Path) -> None:
        """The shop's scope on March 10th: its debit of 100 and its hold of 70 only."""
        with self.ledger(tmp_path) as ledger:
            status = ib.budget_status(ledger, "shop", utc(2026, 3, 10))
        assert (100, 70) == (status.spent, status.held)

    def test_before_everything(self, tmp_path: Path) -> None:
        """In 1970 nothing was spent or held yet."""
        with self.ledger(tmp_path) as ledger:
            status = ib.budget_status(ledger, "all", utc(1970, 1, 1))
        assert (0, 0, 1000) == (status.spent, status.held, status.remaining)

    def test_burn_then(self, tmp_path: Path) -> None:
        """The burn on March 10th counts the debit of 100 whole (refunded only later)."""
        with self.ledger(tmp_path) as ledger:
            status = ib.budget_status(ledger, "all", utc(2026, 3, 10),
                                      window=timedelta(days=8))
        assert Fraction(100, 8) == status.burn_per_day

    def test_written_after(self, tmp_path: Path) -> None:
        """What came after March 10th: the refund of 40 (at the debit's time), and 200 held
        now against 120 then."""
        with self.ledger(tmp_path) as ledger:
            later = written_after(ledger, utc(2026, 3, 10))
            nothing = written_after(ledger, utc(2026, 3, 21))
        assert ((utc(2026, 3, 2, 6), 40),) == later.refunds
        assert 200 - 120 == later.held
        assert ((), 0) == (nothing.refunds, nothing.held)


class TestUnknownBudget:
    """budget_status of a name the ledger lacks."""

    def test_names_the_budgets_there_are(self) -> None:
        """The error names the budget asked for and lists the ledger's (an UnknownEntry)."""
        ledger = ib.Ledger.memory()
        ledger.add_budget(ib.Budget("a", 10))
        ledger.add_budget(ib.Budget("b", 10))
        with pytest.raises(ib.UnknownBudget) as caught:
            ib.budget_status(ledger, "nope")
        assert "no budget named 'nope' (budgets: a, b)" == str(caught.value)
        assert ("nope", ("a", "b")) == (caught.value.ref, caught.value.known)
        assert isinstance(caught.value, ib.UnknownEntry)

    def test_no_budgets(self) -> None:
        """A ledger without budgets says so."""
        with pytest.raises(ib.UnknownBudget, match=r"^no budget named 'x' \(the ledger has "
                           r"none\)$"):
            ib.budget_status(ib.Ledger.memory(), "x")
