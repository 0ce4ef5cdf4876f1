"""Budgets in a ledger: storage, hard-budget enforcement, budget_status and forecast."""

from __future__ import annotations

import contextlib
import io
import json
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path

import pytest

import imagine_billing as ib
from imagine_billing.ledger.model import to_micros
from imagine_billing.ledger.sqlite import SCHEMA_VERSION
from tests.helpers import Clock

START = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def clock() -> Clock:
    """A clock at 2026-01-01T00:00Z."""
    return Clock(START)


@pytest.fixture
def ledger(make: Callable[[], ib.Ledger]) -> ib.Ledger:
    """A ledger with 1000 tokens credited at 2026-01-01."""
    opened = make()
    opened.credit(1000, key="top-up")
    return opened


def state(ledger: ib.Ledger) -> tuple[ib.Balance, int]:
    """The balance and the number of entries: what a refused write must not change."""
    return ledger.balance(), sum(1 for _ in ledger.entries())


class TestAddBudget:
    """ledger.add_budget, ledger.budgets, ledger.budget."""

    def test_added_budgets_are_listed(self, ledger: ib.Ledger) -> None:
        """Budgets come back as given, in the order added."""
        shop = ib.Budget("shop", 100, "week", {"project": "shop"}, (0.5,), hard=True)
        everything = ib.Budget("all", 900)
        assert shop == ledger.add_budget(shop)
        ledger.add_budget(everything)
        assert (shop, everything) == ledger.budgets()
        assert shop == ledger.budget("shop")

    def test_kept_in_the_file(self, tmp_path: Path) -> None:
        """A SQLite ledger keeps its budgets when reopened."""
        budget = ib.Budget("shop", 100, hard=True)
        with ib.Ledger.open(tmp_path / "l.db") as ledger:
            ledger.add_budget(budget)
        with ib.Ledger.open(tmp_path / "l.db") as ledger:
            assert (budget,) == ledger.budgets()

    def test_same_budget_again_changes_nothing(self, ledger: ib.Ledger) -> None:
        """Adding the same budget twice is a no-op."""
        budget = ib.Budget("shop", 100)
        ledger.add_budget(budget)
        assert budget == ledger.add_budget(budget)
        assert (budget,) == ledger.budgets()

    def test_other_settings_under_a_used_name(self, ledger: ib.Ledger) -> None:
        """A budget name holds one budget: other settings under it are refused."""
        ledger.add_budget(ib.Budget("shop", 100))
        with pytest.raises(ib.BudgetConflict,
                           match=r"^a budget named 'shop' already exists with other settings"):
            ledger.add_budget(ib.Budget("shop", 200))
        assert 100 == ledger.budget("shop").limit

    def test_unknown_budget(self, ledger: ib.Ledger) -> None:
        """Asking for a budget the ledger lacks names it and the budgets it has."""
        ledger.add_budget(ib.Budget("shop", 100))
        with pytest.raises(ib.UnknownBudget, match=r"^no budget named 'nope' \(budgets: shop\)$"):
            ledger.budget("nope")

    def test_not_a_budget(self, ledger: ib.Ledger) -> None:
        """add_budget takes a Budget."""
        with pytest.raises(TypeError, match="Budget"):
            ledger.add_budget({"name": "x", "limit": 1})  # type: ignore[arg-type]


class TestHardBudget:
    """A hard budget refuses holds and debits past it, writing nothing."""

    def test_debit_past_the_limit(self, ledger: ib.Ledger) -> None:
        """With 70 of 100 spent, a debit of 31 is refused: 31 needed, 30 remaining."""
        ledger.add_budget(ib.Budget("cap", 100, hard=True))
        ledger.debit(70, key="d1")
        before = state(ledger)
        with pytest.raises(ib.BudgetExceeded) as caught:
            ledger.debit(31, key="d2")
        assert ("cap", 31, 30) == (caught.value.budget, caught.value.needed,
                                   caught.value.remaining)
        assert before == state(ledger)
        ledger.debit(30, key="d3")

    def test_open_holds_count(self, ledger: ib.Ledger) -> None:
        """A hold of 60 leaves 40: a debit of 50 is refused until the hold is voided."""
        ledger.add_budget(ib.Budget("cap", 100, hard=True))
        hold = ledger.hold(60, key="h")
        with pytest.raises(ib.BudgetExceeded, match="50 needed, 40 remaining"):
            ledger.debit(50, key="d")
        with pytest.raises(ib.BudgetExceeded):
            ledger.hold(41, key="h2")
        ledger.void(hold)
        ledger.debit(50, key="d")

    def test_capture_is_not_counted_twice(self, ledger: ib.Ledger) -> None:
        """Hold 60 and capture it: 60 used, not 120, so 40 more fit and 41 do not."""
        ledger.add_budget(ib.Budget("cap", 100, hard=True))
        ledger.capture(ledger.hold(60, key="h"))
        with pytest.raises(ib.BudgetExceeded, match="41 needed, 40 remaining"):
            ledger.debit(41, key="d1")
        ledger.debit(40, key="d2")

    def test_partial_capture_releases_the_rest(self, ledger: ib.Ledger) -> None:
        """Capture 20 of a hold of 60: 20 used, 80 remaining."""
        ledger.add_budget(ib.Budget("cap", 100, hard=True))
        ledger.capture(ledger.hold(60, key="h"), 20)
        ledger.debit(80, key="d")

    def test_refund_gives_budget_back(self, ledger: ib.Ledger) -> None:
        """Spend 100, refund 30: 30 fit again."""
        ledger.add_budget(ib.Budget("cap", 100, hard=True))
        debit = ledger.debit(100, key="d")
        ledger.refund(debit, 30, key="r")
        ledger.debit(30, key="d2")

    def test_expiry_releases_a_hold(self, ledger: ib.Ledger, clock: Clock) -> None:
        """An expired hold no longer counts."""
        ledger.add_budget(ib.Budget("cap", 100, hard=True))
        ledger.hold(100, key="h", expires_at=START + timedelta(hours=1))
        clock.now = START + timedelta(hours=2)
        ledger.expire_holds()
        ledger.debit(100, key="d")

    def test_scope(self, ledger: ib.Ledger) -> None:
        """Only entries with the scope's tags count, and only they are refused."""
        ledger.add_budget(ib.Budget("shop", 50, scope={"project": "shop"}, hard=True))
        ledger.debit(400, key="other", tags={"project": "site"})
        ledger.debit(50, key="s1", tags={"project": "shop", "user": "ana"})
        with pytest.raises(ib.BudgetExceeded):
            ledger.debit(1, key="s2", tags={"project": "shop"})
        ledger.debit(1, key="untagged")

    def test_soft_budget_never_refuses(self, ledger: ib.Ledger) -> None:
        """A soft budget only reports."""
        ledger.add_budget(ib.Budget("soft", 10))
        ledger.debit(500, key="d")
        assert 500 == ib.budget_status(ledger, "soft").spent

    def test_not_enough_tokens_comes_first(self, ledger: ib.Ledger) -> None:
        """Past both the balance and a budget: InsufficientTokens, as without budgets."""
        ledger.add_budget(ib.Budget("cap", 100, hard=True))
        with pytest.raises(ib.InsufficientTokens):
            ledger.debit(2000, key="d")

    def test_first_of_several_budgets_is_named(self, ledger: ib.Ledger) -> None:
        """With two hard budgets exceeded, the error names the first added."""
        ledger.add_budget(ib.Budget("wide", 10, hard=True))
        ledger.add_budget(ib.Budget("narrow", 5, hard=True))
        with pytest.raises(ib.BudgetExceeded, match="'wide'"):
            ledger.debit(11, key="d")
        with pytest.raises(ib.BudgetExceeded, match="'narrow'"):
            ledger.debit(6, key="d")

    def test_budget_added_after_spend(self, ledger: ib.Ledger) -> None:
        """A budget added mid-period counts the period's spend and the open holds."""
        ledger.debit(30, key="d")
        ledger.hold(20, key="h")
        ledger.add_budget(ib.Budget("cap", 100, hard=True))
        with pytest.raises(ib.BudgetExceeded, match="51 needed, 50 remaining"):
            ledger.debit(51, key="d2")

    def test_replay_is_not_refused(self, ledger: ib.Ledger) -> None:
        """Replaying a write that filled the budget returns it, not an error."""
        ledger.add_budget(ib.Budget("cap", 100, hard=True))
        first = ledger.debit(100, key="d")
        assert first == ledger.debit(100, key="d")

    def test_month_boundary(self, ledger: ib.Ledger, clock: Clock) -> None:
        """Spend at 23:59:59.999999 on Jan 31 is January's: February starts afresh."""
        ledger.add_budget(ib.Budget("month", 100, "month", hard=True))
        clock.now = datetime(2026, 1, 31, 23, 59, 59, 999_999, tzinfo=UTC)
        ledger.debit(100, key="jan")
        with pytest.raises(ib.BudgetExceeded):
            ledger.debit(1, key="jan2")
        clock.now = datetime(2026, 2, 1, tzinfo=UTC)
        ledger.debit(100, key="feb")

    def test_iso_week_across_the_year_end(self, make: Callable[[], ib.Ledger],
                                          clock: Clock) -> None:
        """Sunday 2024-12-29 is 2024-W52; Monday 2024-12-30 opens 2025-W01 to Jan 5."""
        clock.now = datetime(2024, 12, 29, 12, tzinfo=UTC)
        ledger = make()
        ledger.credit(1000, key="c")
        ledger.add_budget(ib.Budget("week", 100, "week", hard=True))
        ledger.debit(100, key="w52")
        clock.now = datetime(2024, 12, 30, tzinfo=UTC)
        ledger.debit(60, key="w01a")
        clock.now = datetime(2025, 1, 5, 23, 59, 59, tzinfo=UTC)
        with pytest.raises(ib.BudgetExceeded, match="41 needed, 40 remaining"):
            ledger.debit(41, key="w01b")
        clock.now = datetime(2025, 1, 6, tzinfo=UTC)
        ledger.debit(100, key="w02")

    def test_rolled_back_batch_leaves_budgets_alone(self, ledger: ib.Ledger) -> None:
        """A batch that fails undoes its budget use too."""
        ledger.add_budget(ib.Budget("cap", 100, hard=True))

        def two_debits() -> None:
            with ledger.batch():
                ledger.debit(60, key="a")
                ledger.debit(60, key="b")

        with pytest.raises(ib.BudgetExceeded):
            two_debits()
        assert 0 == ib.budget_status(ledger, "cap").spent
        ledger.debit(100, key="c")


WORKER = textwrap.dedent("""
    import sys
    import imagine_billing as ib
    path, name = sys.argv[1], sys.argv[2]
    done = 0
    with ib.Ledger.open(path, durable=False) as ledger:
        for i in range(40):
            try:
                ledger.debit(5, key=f"{name}-{i}", tags={"project": "shop"})
                done += 1
            except ib.BudgetExceeded:
                pass
    print(done)
""")


class TestConcurrentProcesses:
    """Two processes debiting against one hard budget never exceed it together."""

    def test_two_writers(self, tmp_path: Path) -> None:
        """Limit 100 and two processes of 40 debits of 5: exactly 20 succeed in total."""
        path = tmp_path / "shared.db"
        with ib.Ledger.open(path) as ledger:
            ledger.credit(10_000, key="c")
            ledger.add_budget(ib.Budget("shop", 100, "total", {"project": "shop"}, hard=True))
        workers = [subprocess.Popen([sys.executable, "-c", WORKER, str(path), name],
                                    stdout=subprocess.PIPE, text=True) for name in "ab"]
        counts = [int(w.communicate(timeout=120)[0]) for w in workers]
        assert 20 == sum(counts)
        with ib.Ledger.open(path) as ledger:
            assert 100 == ib.budget_status(ledger, "shop").spent
            assert 1 + 1 + 20 == ledger.verify()  # the credit, the budget and 20 debits


def at(day: int, hour: int = 12) -> datetime:
    """Day ``day`` of January 2026 (UTC) at ``hour``."""
    return datetime(2026, 1, day, hour, tzinfo=UTC)


class TestBudgetStatus:
    """budget_status(ledger, name, now)."""

    def test_spent_held_remaining(self, ledger: ib.Ledger, clock: Clock) -> None:
        """Captured + debited - refunded, holds apart, remaining after both."""
        ledger.add_budget(ib.Budget("cap", 500, "month"))
        clock.now = at(2)
        ledger.debit(100, key="d")
        ledger.capture(ledger.hold(80, key="h1"), 50)
        ledger.hold(40, key="h2")
        ledger.refund("d", 30, key="r")
        status = ib.budget_status(ledger, "cap", at(3))
        assert (100 + 50 - 30, 40) == (status.spent, status.held)
        assert 500 - 120 - 40 == status.remaining

    def test_period_boundary(self, ledger: ib.Ledger, clock: Clock) -> None:
        """A debit at the last microsecond of January is not February's."""
        ledger.add_budget(ib.Budget("cap", 500, "month"))
        clock.now = datetime(2026, 1, 31, 23, 59, 59, 999_999, tzinfo=UTC)
        ledger.debit(70, key="d")
        assert 70 == ib.budget_status(ledger, "cap", clock.now).spent
        assert 0 == ib.budget_status(ledger, "cap", datetime(2026, 2, 1, tzinfo=UTC)).spent

    def test_alerts_actual_and_forecasted(self, make: Callable[[], ib.Ledger],
                                          clock: Clock) -> None:
        """1000 a month (April, 30 days), 40 a day on the 1st to the 15th: at noon on the
        15th, 600 spent (50%), 600 + 40 x 15.5 = 1220 projected by May 1st (80%, 100%)."""
        clock.now = datetime(2026, 3, 1, tzinfo=UTC)
        ledger = make()
        ledger.credit(100_000, key="c")
        ledger.add_budget(ib.Budget("april", 1000, "month"))
        for day in range(1, 16):
            clock.now = datetime(2026, 4, day, 6, tzinfo=UTC)
            ledger.debit(40, key=f"d{day}")
        now = datetime(2026, 4, 15, 12, tzinfo=UTC)
        status = ib.budget_status(ledger, "april", now)
        assert 600 == status.spent
        assert Fraction(40) == status.burn_per_day  # 14 slices of 24 h, one debit each
        assert Fraction(600) + 40 * Fraction(31, 2) == status.projected
        assert ["50%"] == [a.percent for a in status.actual]
        assert ["80%", "100%"] == [a.percent for a in status.forecasted]
        assert "april:2026-04:1" == status.forecasted[1].key  # the planner's key format

    def test_total_budget_has_no_forecast(self, ledger: ib.Ledger) -> None:
        """A total budget has no period end, so no projected spend."""
        ledger.add_budget(ib.Budget("all", 500, "total"))
        ledger.debit(250, key="d")
        status = ib.budget_status(ledger, "all")
        assert (250, None, "total") == (status.spent, status.projected, status.period)
        assert ["50%"] == [a.percent for a in status.actual]

    def test_unknown(self, ledger: ib.Ledger) -> None:
        """An unknown budget is an UnknownEntry naming it."""
        with pytest.raises(ib.UnknownEntry, match="'nope'"):
            ib.budget_status(ledger, "nope")


class TestBudgetUsage:
    """ledger.budget_usage(name, at): the running figures a hard budget is checked against."""

    def test_agrees_with_the_sums(self, ledger: ib.Ledger, clock: Clock) -> None:
        """Spend of the period (refunds in the period of their spend) and open holds."""
        ledger.add_budget(ib.Budget("cap", 500, "month", scope={"p": "x"}))
        clock.now = at(2)
        ledger.debit(100, key="d", tags={"p": "x"})
        ledger.debit(7, key="other")
        ledger.capture(ledger.hold(80, key="h1", tags={"p": "x"}), 50)
        ledger.hold(40, key="h2", tags={"p": "x"})
        clock.now = datetime(2026, 2, 3, tzinfo=UTC)
        ledger.refund("d", 30, key="r")
        ledger.debit(9, key="feb", tags={"p": "x"})
        assert (120, 40) == ledger.budget_usage("cap", at(3))
        assert (9, 40) == ledger.budget_usage("cap")
        assert (9, 40) == (ib.budget_status(ledger, "cap").spent,
                           ib.budget_status(ledger, "cap").held)
        january = ib.budget_status(ledger, "cap", at(3))  # summed: the refund came later
        assert (150, 40) == (january.spent, january.held)

    def test_unknown_and_naive(self, ledger: ib.Ledger) -> None:
        """An unknown name lists the budgets; a naive time is refused."""
        ledger.add_budget(ib.Budget("cap", 500))
        with pytest.raises(ib.UnknownBudget, match=r"\(budgets: cap\)"):
            ledger.budget_usage("nope")
        with pytest.raises(ValueError, match="naive"):
            ledger.budget_usage("cap", datetime(2026, 1, 2))  # naive on purpose


class TestForecast:
    """forecast(ledger, now=, window=, horizon=) on synthetic ledgers of known burn."""

    def spend(self, make: Callable[[], ib.Ledger], clock: Clock, amounts: list[int],
              credit: int = 10_000) -> ib.Ledger:
        """A ledger credited 30 days before, then amounts[i] debited at 06:00 on each of the
        len(amounts) days before 2026-02-01 (oldest first)."""
        clock.now = datetime(2026, 1, 1, tzinfo=UTC)
        ledger = make()
        ledger.credit(credit, key="c")
        first = datetime(2026, 2, 1, 6, tzinfo=UTC) - timedelta(days=len(amounts))
        for index, tokens in enumerate(amounts):
            clock.now = first + timedelta(days=index)
            if tokens:
                ledger.debit(tokens, key=f"d{index}")
        clock.now = datetime(2026, 2, 1, tzinfo=UTC)
        return ledger

    def test_constant_burn(self, make: Callable[[], ib.Ledger], clock: Clock) -> None:
        """100 a day for 20 days from 10,000: 8,000 left, exhausted exactly 80 days on."""
        ledger = self.spend(make, clock, [100] * 20)
        result = ib.forecast(ledger)
        assert (8000, Fraction(100), Fraction(100), Fraction(100)) == (
            result.available, result.burn_per_day, result.low, result.high)
        assert clock.now + timedelta(days=80) == result.exhausted_at
        assert Fraction(3000) == result.projected_spend

    def test_weekly_pattern(self, make: Callable[[], ib.Ledger], clock: Clock) -> None:
        """Two weeks of 100 on five days and 0 on two: burn 500/7 over the 14 slices."""
        ledger = self.spend(make, clock, [100, 100, 100, 100, 100, 0, 0] * 2)
        result = ib.forecast(ledger, window=timedelta(days=14))
        assert Fraction(500, 7) == result.burn_per_day
        assert result.low < result.burn_per_day < result.high
        assert (100, 100, 100, 100, 100, 0, 0) * 2 == result.daily

    def test_zero_spend(self, make: Callable[[], ib.Ledger], clock: Clock) -> None:
        """Nothing spent: no runway and no exhaustion date."""
        ledger = self.spend(make, clock, [0] * 5)
        result = ib.forecast(ledger)
        assert (Fraction(0), None, None) == (result.burn_per_day, result.runway,
                                             result.exhausted_at)

    def test_young_ledger(self, make: Callable[[], ib.Ledger], clock: Clock) -> None:
        """A ledger 3 days old averages 3 slices, not 14."""
        clock.now = datetime(2026, 1, 29, 1, tzinfo=UTC)
        ledger = make()
        ledger.credit(900, key="c")
        for day in (29, 30, 31):
            clock.now = datetime(2026, 1, day, 6, tzinfo=UTC)
            ledger.debit(30, key=f"d{day}")
        result = ib.forecast(ledger, now=datetime(2026, 2, 1, tzinfo=UTC))
        assert (3, Fraction(30)) == (result.days, result.burn_per_day)

    def test_holds_are_not_spend_until_captured(self, make: Callable[[], ib.Ledger],
                                                clock: Clock) -> None:
        """An open hold lowers available but not the burn; its capture is spend."""
        ledger = self.spend(make, clock, [0] * 14)
        hold = ledger.hold(140, key="h")
        assert Fraction(0) == ib.forecast(ledger).burn_per_day
        assert 10_000 - 140 == ib.forecast(ledger).available
        ledger.capture(hold)
        assert Fraction(10) == ib.forecast(ledger).burn_per_day

    def test_available_in_the_past(self, make: Callable[[], ib.Ledger], clock: Clock) -> None:
        """Forecasting at an earlier now uses the balance then."""
        ledger = self.spend(make, clock, [100] * 10)
        result = ib.forecast(ledger, now=datetime(2026, 1, 27, tzinfo=UTC))
        assert 10_000 - 500 == result.available


class TestSchemaUpgrade:
    """A ledger file of schema 1 (before budgets) is upgraded when opened."""

    def test_version_1_file_gets_budgets(self, tmp_path: Path) -> None:
        """Drop the budget tables and mark the file version 1: reopening adds them back,
        the entries are kept, and budgets work."""
        import sqlite3

        path = tmp_path / "old.db"
        with ib.Ledger.open(path) as ledger:
            ledger.credit(100, key="c")
            ledger.debit(40, key="d")
        db = sqlite3.connect(path)
        db.executescript("DROP TABLE budgets; DROP TABLE budget_usage; PRAGMA user_version = 1;")
        db.close()
        with ib.Ledger.open(path) as ledger:
            ledger.add_budget(ib.Budget("cap", 50, "total", hard=True))
            with pytest.raises(ib.BudgetExceeded, match="11 needed, 10 remaining"):
                ledger.debit(11, key="d2")
            assert 3 == ledger.verify()  # the budget is an entry
        db = sqlite3.connect(path)
        assert SCHEMA_VERSION == db.execute("PRAGMA user_version").fetchone()[0]
        db.close()


    def test_version_2_budgets_count_from_their_first_figures(self, tmp_path: Path,
                                                               clock: Clock) -> None:
        """A version 2 file (no added time): each budget counts from the earliest period it
        has figures for, here February; figures, enforcement and verify carry on."""
        path = tmp_path / "old.db"
        clock.now = datetime(2026, 2, 10, tzinfo=UTC)
        with ib.Ledger.open(path, clock=clock) as ledger:
            ledger.credit(1000, key="c")
            ledger.debit(30, key="jan-ish")
            clock.now = datetime(2026, 3, 5, tzinfo=UTC)
            ledger.debit(60, key="d")
            clock.now = datetime(2026, 2, 10, tzinfo=UTC)
            ledger.add_budget(ib.Budget("cap", 100, "month", hard=True))
        as_old_file(path, 2)
        clock.now = datetime(2026, 3, 5, tzinfo=UTC)
        with ib.Ledger.open(path, clock=clock) as ledger:
            assert (None, (30, 0), (60, 0)) == (
                ledger.budget_usage("cap", datetime(2026, 1, 31, tzinfo=UTC)),
                ledger.budget_usage("cap", datetime(2026, 2, 20, tzinfo=UTC)),
                ledger.budget_usage("cap"))
            with pytest.raises(ib.BudgetExceeded, match="41 needed, 40 remaining"):
                ledger.debit(41, key="d2")
            assert 4 == ledger.verify()  # with the budget's entry, added on upgrade
        with contextlib.closing(sqlite3.connect(path)) as db:
            assert (SCHEMA_VERSION, to_micros(datetime(2026, 2, 1, tzinfo=UTC))) == (
                db.execute("PRAGMA user_version").fetchone()[0],
                db.execute("SELECT added FROM budgets").fetchone()[0])

    def test_version_3_budgets_join_the_chain(self, tmp_path: Path, clock: Clock) -> None:
        """A version 3 file (budgets beside the chain only) opens: each budget gets its
        budget entry, as added, counts and refuses as before, and its settings are then
        tamper-evident."""
        path = tmp_path / "old.db"
        with ib.Ledger.open(path, clock=clock) as ledger:
            ledger.credit(1000, key="c")
            ledger.debit(30, key="d", tags={"p": "shop"})
            ledger.add_budget(ib.Budget("shop", 50, "month", {"p": "shop"}, hard=True))
            ledger.add_budget(ib.Budget("all", 900, "total"))
        as_old_file(path, 3)
        clock.now += timedelta(hours=1)
        with ib.Ledger.open(path, clock=clock) as ledger:
            added = [(e.kind, e.key, e.at, e.tokens) for e in ledger.entries()][2:]
            assert ([("budget", "budget:shop", START, 0), ("budget", "budget:all", START, 0)],
                    (30, 0), 4) == (added, ledger.budget_usage("shop"), ledger.verify())
            with pytest.raises(ib.BudgetExceeded, match="21 needed, 20 remaining"):
                ledger.debit(21, key="d2", tags={"p": "shop"})
        with contextlib.closing(sqlite3.connect(path)) as db, db:
            db.execute("UPDATE budgets SET document = replace(document, '\"hard\":true', "
                       "'\"hard\":false')")
        with ib.Ledger.open(path, clock=clock) as ledger, pytest.raises(
                ib.LedgerCorrupted, match=r"budget 'shop'.*document"):
            ledger.verify()

    def test_an_upgraded_budget_takes_a_free_key(self, tmp_path: Path, clock: Clock) -> None:
        """A version 3 file where a credit has the key budget:cap: the budget's entry gets
        budget:cap:2."""
        path = tmp_path / "old.db"
        with ib.Ledger.open(path, clock=clock) as ledger:
            ledger.credit(1000, key="budget:cap")
            ledger.add_budget(ib.Budget("cap", 50))
        as_old_file(path, 3)
        with ib.Ledger.open(path, clock=clock) as ledger:
            assert (["budget:cap", "budget:cap:2"], 2) == (
                [e.key for e in ledger.entries()], ledger.verify())


def as_old_file(path: Path, version: int) -> None:
    """Make the ledger file ``path``, whose budget entries come last, the file version 3 (or
    2) kept: the same budgets beside the chain only, without their entries (and, for 2,
    without the time each was added)."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        first = db.execute("SELECT min(id) FROM entries WHERE kind = 'budget'").fetchone()[0]
        assert [] == db.execute("SELECT id FROM entries WHERE id > ? AND kind != 'budget'",
                                (first,)).fetchall()
        (previous,) = db.execute("SELECT hash FROM entries WHERE id = ?",
                                 (first - 1,)).fetchone()
        db.executescript("DROP TRIGGER entries_append_only_delete; DROP INDEX budgets_entry; "
                         "DROP INDEX entries_budgets; ALTER TABLE budgets DROP COLUMN entry;")
        db.execute("DELETE FROM entries WHERE id >= ?", (first,))
        db.execute("UPDATE tip SET id = ?, hash = ?", (first - 1, previous))
        if version == 2:
            db.execute("ALTER TABLE budgets DROP COLUMN added")
        db.execute(f"PRAGMA user_version = {version}")
        db.commit()


def spent_in_march_budget_in_april(make: Callable[[], ib.Ledger], clock: Clock) -> ib.Ledger:
    """A debit of 100 tagged p=shop on March 15th, a hard budget "shop" of 150 a month added
    on April 2nd, then the clock set back to March 20th."""
    clock.now = datetime(2026, 3, 15, tzinfo=UTC)
    ledger = make()
    ledger.credit(1000, key="c")
    ledger.debit(100, key="d", tags={"p": "shop"})
    clock.now = datetime(2026, 4, 2, tzinfo=UTC)
    ledger.add_budget(ib.Budget("shop", 150, "month", {"p": "shop"}, hard=True))
    clock.now = datetime(2026, 3, 20, tzinfo=UTC)
    return ledger


class TestClockSetBack:
    """A clock set back: a budget counts from the period it was added in on, its figures are
    kept per period, and verify() passes on the healthy ledger (memory and SQLite)."""

    def test_status_in_a_period_before_the_budget(self, make: Callable[[], ib.Ledger],
                                                  clock: Clock) -> None:
        """Spend of 100 on March 15th, a budget added on April 2nd, the clock back to March
        20th: the status sums March's entries (100), the ledger has no figures for March."""
        ledger = spent_in_march_budget_in_april(make, clock)
        assert (100, None) == (ib.budget_status(ledger, "shop").spent,
                               ledger.budget_usage("shop"))

    def test_a_period_before_the_budget_is_not_its_own(self, make: Callable[[], ib.Ledger],
                                                       clock: Clock) -> None:
        """Back in March, a debit of 100 past the limit of 150 is allowed (not the budget's
        period), and verify passes; April's figures and limit are untouched."""
        ledger = spent_in_march_budget_in_april(make, clock)
        ledger.debit(100, key="d2", tags={"p": "shop"})
        ledger.refund("d", 10, key="r")
        assert (200 - 10, 5) == (ib.budget_status(ledger, "shop").spent, ledger.verify())
        clock.now = datetime(2026, 4, 3, tzinfo=UTC)
        assert (0, 0) == ledger.budget_usage("shop")
        with pytest.raises(ib.BudgetExceeded, match="151 needed, 150 remaining"):
            ledger.debit(151, key="d3", tags={"p": "shop"})
        assert 5 == ledger.verify()

    def test_a_past_moment_before_the_budget(self, make: Callable[[], ib.Ledger],
                                             clock: Clock) -> None:
        """The clock on April 2nd, the status asked for March 20th: March's entries."""
        clock.now = datetime(2026, 3, 15, tzinfo=UTC)
        ledger = make()
        ledger.credit(1000, key="c")
        ledger.debit(100, key="d", tags={"p": "shop"})
        clock.now = datetime(2026, 4, 2, tzinfo=UTC)
        ledger.add_budget(ib.Budget("shop", 150, "month", {"p": "shop"}))
        march = datetime(2026, 3, 20, tzinfo=UTC)
        assert (100, None) == (ib.budget_status(ledger, "shop", march).spent,
                               ledger.budget_usage("shop", march))

    def test_a_step_back_across_midnight(self, make: Callable[[], ib.Ledger],
                                         clock: Clock) -> None:
        """A day budget: 10 spent half a second into January 2nd, then the clock one second
        back, 5 spent on January 1st: each day keeps its own, and verify passes."""
        clock.now = datetime(2026, 1, 1, 12, tzinfo=UTC)
        ledger = make()
        ledger.credit(1000, key="c")
        ledger.add_budget(ib.Budget("daily", 12, "day", hard=True))
        clock.now = datetime(2026, 1, 2, 0, 0, 0, 500_000, tzinfo=UTC)
        ledger.debit(10, key="d1")
        clock.now -= timedelta(seconds=1)
        ledger.debit(5, key="d2")
        assert ((5, 0), (10, 0), 4) == (
            ledger.budget_usage("daily"),
            ledger.budget_usage("daily", datetime(2026, 1, 2, 12, tzinfo=UTC)),
            ledger.verify())
        with pytest.raises(ib.BudgetExceeded, match="8 needed, 7 remaining"):
            ledger.debit(8, key="d3")

    def test_spend_already_written_in_a_later_period(self, make: Callable[[], ib.Ledger],
                                                     clock: Clock) -> None:
        """40 spent on April 5th, the clock back to March 20th, a month budget of 50 added:
        April starts with its 40, March with nothing; verify passes in both months."""
        clock.now = datetime(2026, 4, 5, tzinfo=UTC)
        ledger = make()
        ledger.credit(1000, key="c")
        ledger.debit(40, key="april")
        clock.now = datetime(2026, 3, 20, tzinfo=UTC)
        ledger.add_budget(ib.Budget("cap", 50, "month", hard=True))
        assert ((0, 0), 3) == (ledger.budget_usage("cap"), ledger.verify())
        clock.now = datetime(2026, 4, 10, tzinfo=UTC)
        with pytest.raises(ib.BudgetExceeded, match="11 needed, 10 remaining"):
            ledger.debit(11, key="d")
        assert ((40, 0), 3) == (ledger.budget_usage("cap"), ledger.verify())

    def test_tampering_with_a_past_period_is_found(self, tmp_path: Path,
                                                   clock: Clock) -> None:
        """verify checks every period the budget has figures for, not only the current one."""
        path = tmp_path / "l.db"
        with ib.Ledger.open(path, clock=clock) as ledger:
            ledger.credit(100, key="c")
            ledger.add_budget(ib.Budget("daily", 50, "day"))
            ledger.debit(20, key="d")
            clock.now += timedelta(days=1)
            ledger.debit(5, key="d2")
        with contextlib.closing(sqlite3.connect(path)) as db, db:
            db.execute("UPDATE budget_usage SET spent = 0 WHERE period = '2026-01-01'")
        with ib.Ledger.open(path, clock=clock) as ledger, pytest.raises(
                ib.LedgerCorrupted, match=r"budget 'daily'.*spent 20 in 2026-01-01"):
            ledger.verify()


class TestRefundAcrossPeriods:
    """A refund of an earlier period's spend gives the current period no extra room."""

    def test_refund_of_yesterday_does_not_raise_todays_limit(self) -> None:
        """Found by the state machine: limit 5/day, debit 1 today, refund it tomorrow, then a
        hold of 6 tomorrow must be refused (it would exceed the day's 5)."""
        now = [datetime(2026, 3, 2, 12, tzinfo=UTC)]
        with ib.Ledger.memory(clock=lambda: now[0]) as ledger:
            ledger.credit(6, key="c")
            ledger.add_budget(ib.Budget("a", 5, period="day", hard=True))
            ledger.debit(1, key="d")
            now[0] += timedelta(days=1)
            ledger.refund("d", key="r")
            with pytest.raises(ib.BudgetExceeded) as caught:
                ledger.hold(6, key="h")
            assert ("a", 6, 5) == (caught.value.budget, caught.value.needed,
                                   caught.value.remaining)
            assert 0 == ib.budget_status(ledger, "a").spent


class TestReviewFindings:
    """Money bugs a review found, each kept as a test (memory and SQLite)."""

    def test_refund_of_yesterday_gives_today_no_room_for_split_debits(
            self, ledger: ib.Ledger, clock: Clock) -> None:
        """Limit 5/day: debit 1, refund it tomorrow; tomorrow 1 + 5 must not both pass."""
        ledger.add_budget(ib.Budget("daily", 5, period="day", hard=True))
        ledger.debit(1, key="d")
        clock.now += timedelta(days=1)
        ledger.refund("d", key="r")
        ledger.debit(1, key="d1")
        with pytest.raises(ib.BudgetExceeded) as caught:
            ledger.debit(5, key="d2")
        assert (5, 4) == (caught.value.needed, caught.value.remaining)
        assert 1 == ib.budget_status(ledger, "daily").spent

    def test_refund_counts_in_the_month_of_what_it_refunds(
            self, ledger: ib.Ledger, clock: Clock) -> None:
        """A refund in February of January's debit lowers January's spend, not February's."""
        ledger.add_budget(ib.Budget("monthly", 100, period="month", hard=True))
        clock.now = datetime(2026, 1, 31, 23, 59, 59, tzinfo=UTC)
        ledger.debit(30, key="jan")
        clock.now = datetime(2026, 2, 1, tzinfo=UTC)
        ledger.debit(70, key="feb")
        ledger.refund("jan", key="back")
        with pytest.raises(ib.BudgetExceeded):
            ledger.debit(31, key="more")
        assert 70 == ib.budget_status(ledger, "monthly").spent
        ledger.verify()

    def test_import_refuses_a_ledger_with_budgets(self, tmp_path: Path, clock: Clock) -> None:
        """Imported spend would bypass a budget's figures: importing into one is refused (a
        budget is an entry, so the ledger is not a new one)."""
        with ib.Ledger.memory(clock=clock) as source:
            source.credit(100, key="c")
            source.debit(90, key="d")
            out = io.StringIO()
            source.export(out)
        with ib.Ledger.open(tmp_path / "b.db", clock=clock) as target:
            target.add_budget(ib.Budget("all", 100, period="total", hard=True))
        with pytest.raises(ib.LedgerStoreError, match="already holds entries"):
            ib.Ledger.from_jsonl(out.getvalue().splitlines(), path=tmp_path / "b.db",
                                 clock=clock)


class TestVerifyBudgets:
    """verify() checks each budget's running figures against the entries."""

    @pytest.mark.parametrize(("sql", "name"), [
        ("UPDATE budgets SET held = -1000", "held"),
        ("UPDATE budget_usage SET spent = 0", "spent"),
    ])
    def test_tampered_budget_figures_are_corruption(self, tmp_path: Path, clock: Clock,
                                                    sql: str, name: str) -> None:
        """Changing a budget's stored figure with sqlite3 makes verify() name the budget."""
        path = tmp_path / "l.db"
        with ib.Ledger.open(path, clock=clock) as ledger:
            ledger.credit(100, key="c")
            ledger.add_budget(ib.Budget("cap", 50, period="total", hard=True))
            ledger.debit(20, key="d")
            ledger.hold(10, key="h")
            ledger.verify()
        with sqlite3.connect(path) as db:
            db.execute(sql)
        db.close()
        with ib.Ledger.open(path, clock=clock) as ledger, pytest.raises(
                ib.LedgerCorrupted, match=f"budget 'cap'.*{name}"):
            ledger.verify()


TAMPERING = {
    "limit raised": "UPDATE budgets SET document = replace(document, '\"limit\":100', "
                    "'\"limit\":100000')",
    "hard made soft": "UPDATE budgets SET document = replace(document, '\"hard\":true', "
                      "'\"hard\":false')",
    "deleted": "DELETE FROM budgets",
    "deleted with its figures": "DELETE FROM budgets; DELETE FROM budget_usage",
    "start moved": f"UPDATE budgets SET added = added + {to_micros(START + timedelta(days=40))}"
                   f" - {to_micros(START)}",
    "period changed": "UPDATE budgets SET period = 'day', document = replace(document, "
                      "'\"period\":\"month\"', '\"period\":\"day\"')",
}


class TestBudgetsInTheChain:
    """A budget is a ``budget`` entry of the hash chain: an edit of its settings in the file
    is refused by enforcement (which reads the entry) and found by verify."""

    def make(self, path: Path, clock: Clock) -> tuple[int, str]:
        """A hard budget "shop" of 100 a month over project=shop, 30 spent and a hold of 60
        open in its scope; returns the head."""
        with ib.Ledger.open(path, clock=clock) as ledger:
            ledger.credit(1000, key="c")
            ledger.add_budget(ib.Budget("shop", 100, "month", {"project": "shop"}, hard=True))
            ledger.debit(30, key="d", tags={"project": "shop"})
            ledger.hold(60, key="h", tags={"project": "shop"})
            return ledger.head()

    def test_a_budget_is_an_entry(self, make: Callable[[], ib.Ledger]) -> None:
        """add_budget writes a budget entry of 0 tokens, its document as the memo; adding
        it again writes nothing."""
        ledger = make()
        budget = ib.Budget("shop", 100, "month", {"project": "shop"}, hard=True)
        ledger.add_budget(budget)
        ledger.add_budget(budget)
        (entry,) = ledger.entries()
        assert (("budget", "budget:shop", 0, START), budget, 1) == (
            (entry.kind, entry.key, entry.tokens, entry.at),
            ib.Budget.from_dict(json.loads(entry.memo or "")), ledger.verify())

    @pytest.mark.parametrize("sql", TAMPERING.values(), ids=TAMPERING.keys())
    def test_an_edited_budget_still_refuses(self, tmp_path: Path, clock: Clock,
                                            sql: str) -> None:
        """After the edit, a hold of 11 (past the 100 with the 30 spent and the 60 held)
        is refused all the same."""
        path = tmp_path / "l.db"
        self.make(path, clock)
        with contextlib.closing(sqlite3.connect(path)) as db:
            db.executescript(sql)
        with ib.Ledger.open(path, clock=clock) as ledger:
            with pytest.raises(ib.BudgetExceeded, match="11 needed, 10 remaining"):
                ledger.hold(11, key="h2", tags={"project": "shop"})
            assert 10 == ledger.hold(10, key="h3", tags={"project": "shop"}).tokens

    @pytest.mark.parametrize("sql", TAMPERING.values(), ids=TAMPERING.keys())
    def test_an_edited_budget_is_corruption(self, tmp_path: Path, clock: Clock,
                                            sql: str) -> None:
        """verify(), with the head recorded before the edit too, names the budget."""
        path = tmp_path / "l.db"
        head = self.make(path, clock)
        with contextlib.closing(sqlite3.connect(path)) as db:
            db.executescript(sql)
        with ib.Ledger.open(path, clock=clock) as ledger:
            with pytest.raises(ib.LedgerCorrupted, match="budget 'shop'") as caught:
                ledger.verify(expect=head)
            assert "budget 'shop'" == caught.value.entry

    def test_an_edited_budget_entry_is_corruption(self, tmp_path: Path, clock: Clock) -> None:
        """Raising the limit in the entry itself (row and entry alike) breaks its hash."""
        path = tmp_path / "l.db"
        self.make(path, clock)
        with contextlib.closing(sqlite3.connect(path)) as db:
            db.executescript(
                "DROP TRIGGER entries_append_only_update; "
                "UPDATE entries SET memo = replace(memo, '\"limit\":100', '\"limit\":999') "
                "WHERE kind = 'budget'; "
                "UPDATE budgets SET document = replace(document, '\"limit\":100', "
                "'\"limit\":999')")
        with ib.Ledger.open(path, clock=clock) as ledger, pytest.raises(
                ib.LedgerCorrupted, match="entry 2: its hash does not match"):
            ledger.verify()

    def test_a_budget_added_behind_the_ledgers_back_is_corruption(
            self, tmp_path: Path, clock: Clock) -> None:
        """A budget row with no entry of the chain is named by verify."""
        path = tmp_path / "l.db"
        self.make(path, clock)
        with contextlib.closing(sqlite3.connect(path)) as db, db:
            db.execute("INSERT INTO budgets (name, period, document, held, added) SELECT "
                       "'extra', period, replace(document, 'shop', 'extra'), held, added "
                       "FROM budgets")
        with ib.Ledger.open(path, clock=clock) as ledger, pytest.raises(
                ib.LedgerCorrupted, match=r"budget 'extra'.*no entry of the chain adds it"):
            ledger.verify()

    def test_export_and_import_carry_budgets(self, tmp_path: Path, clock: Clock) -> None:
        """An exported ledger imports with its budgets, figures and enforcement; verify
        passes with the same head."""
        path = tmp_path / "l.db"
        head = self.make(path, clock)
        out = io.StringIO()
        with ib.Ledger.open(path, clock=clock) as ledger:
            ledger.export(out)
            budgets = ledger.budgets()
        with ib.Ledger.from_jsonl(out.getvalue().splitlines(), path=tmp_path / "copy.db",
                                  clock=clock, expect=head) as copy:
            assert (budgets, (30, 60), 4) == (
                copy.budgets(), copy.budget_usage("shop"), copy.verify(expect=head))
            with pytest.raises(ib.BudgetExceeded, match="11 needed, 10 remaining"):
                copy.hold(11, key="h2", tags={"project": "shop"})


class TestEntriesSnapshot:
    """entries() on SQLite reads the entries there were when it started."""

    def test_writes_during_iteration_are_not_read(self, tmp_path: Path, clock: Clock) -> None:
        """Debiting once per debit seen, over 3000 debits, stops after those 3000."""
        with ib.Ledger.open(tmp_path / "l.db", clock=clock, durable=False) as ledger:
            ledger.credit(10_000, key="c")
            with ledger.batch():
                for i in range(3000):
                    ledger.debit(1, key=f"d{i}")
            seen = 0
            for entry in ledger.entries():
                if entry.kind == "debit" and not entry.key.startswith("again"):
                    ledger.debit(1, key=f"again-{entry.key}")
                seen += 1
            assert 3001 == seen


class TestBudgetNames:
    """A budget's name is hashed in its entry: it must be valid Unicode text."""

    def test_a_lone_surrogate_is_refused(self) -> None:
        """A name from undecodable bytes ("\\udcff") is a ValueError naming it."""
        with pytest.raises(ValueError, match=r"budget name 'shop\\udcff' is not valid Unicode"):
            ib.Budget("shop\udcff", 10)
