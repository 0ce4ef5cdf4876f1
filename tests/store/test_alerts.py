"""Budget alerts on every store: the outbox, budgets changed and removed, observed balances.

Each test runs on the memory store, SQLite and PostgreSQL (see conftest)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from fractions import Fraction

import pytest

import imagine_billing as ib
from imagine_billing.ledger.alerts import alert_id
from imagine_billing.ledger.store import Store
from imagine_billing.planner.alerting import evaluate_alerts
from imagine_billing.planner.reconcile import reconcile
from tests.helpers import Clock

HALF, FOUR_FIFTHS, ALL = Fraction(1, 2), Fraction(4, 5), Fraction(1)


def crossed(ledger: ib.Ledger) -> list[tuple[str, str, Fraction, str]]:
    """The recorded alerts as (budget, period, threshold, kind), oldest first."""
    return [(a.budget, a.period, a.threshold, a.kind) for a in ledger.alerts()]


class TestOutbox:
    """A write that takes a budget past a threshold records its alert, once."""

    def test_a_debit_records_the_thresholds_it_crosses(self, ledger: ib.Ledger) -> None:
        ledger.credit(10_000, key="more")
        ledger.add_budget(ib.Budget("shop", 100))
        ledger.debit(49, key="d1")
        assert [] == crossed(ledger)
        entry = ledger.debit(40, key="d2")  # 89: past 50% and 80%
        alerts = ledger.alerts()
        assert [("shop", "2026-03", HALF, "actual"), ("shop", "2026-03", FOUR_FIFTHS,
                                                      "actual")] == crossed(ledger)
        assert {entry.id} == {a.entry for a in alerts}
        assert {89} == {a.spent for a in alerts}
        assert {100} == {a.limit for a in alerts}
        assert {entry.at} == {a.at for a in alerts}
        assert all(not a.delivered and a.attempts == 0 for a in alerts)

    def test_once_per_budget_period_threshold(self, ledger: ib.Ledger,
                                              clock: Clock) -> None:
        """Spend refunded and spent again crosses nothing twice; next month crosses again."""
        ledger.credit(10_000, key="more")
        ledger.add_budget(ib.Budget("shop", 100))
        debit = ledger.debit(60, key="d1")
        ledger.refund(debit, 30, key="r1")
        ledger.debit(30, key="d2")
        ledger.debit(1, key="d3")
        assert [HALF] == [t for _, _, t, _ in crossed(ledger)]
        clock.advance(days=31)
        ledger.debit(50, key="d4")
        assert ["2026-03", "2026-04"] == [p for _, p, _, _ in crossed(ledger)]
        ids = [a.id for a in ledger.alerts()]
        assert len(set(ids)) == 2

    def test_holds_raise_nothing_their_capture_does(self, ledger: ib.Ledger) -> None:
        """Actual alerts follow spend: a hold is not spend, its capture is."""
        ledger.credit(10_000, key="more")
        ledger.add_budget(ib.Budget("shop", 100, alerts=(0.5,)))
        hold = ledger.hold(90, key="h")
        assert [] == crossed(ledger)
        ledger.capture(hold, 50)
        assert [("shop", "2026-03", HALF, "actual")] == crossed(ledger)
        assert 50 == ledger.alerts()[0].spent

    def test_scope_and_past_periods(self, ledger: ib.Ledger, clock: Clock) -> None:
        """Only the budgets whose scope a write matches; spend in a period before the
        budget's first is not its own."""
        ledger.credit(10_000, key="more")
        ledger.add_budget(ib.Budget("shop", 10, scope={"project": "shop"}))
        ledger.debit(20, key="other", tags={"project": "site"})
        assert [] == crossed(ledger)
        clock.advance(days=-40)  # February: before the budget's month
        ledger.debit(20, key="early", tags={"project": "shop"})
        assert [] == crossed(ledger)
        clock.advance(days=40)
        ledger.debit(9, key="late", tags={"project": "shop"})
        assert [HALF, FOUR_FIFTHS] == [t for _, _, t, _ in crossed(ledger)]

    def test_a_write_undone_records_nothing(self, ledger: ib.Ledger) -> None:
        ledger.credit(10_000, key="more")
        ledger.add_budget(ib.Budget("shop", 100))
        def undone(key: str) -> None:
            with ledger.batch():
                ledger.debit(90, key=key)
                raise RuntimeError("undo")

        with pytest.raises(RuntimeError):
            undone("d1")
        assert [] == crossed(ledger)
        with ledger.batch():
            with pytest.raises(RuntimeError):
                undone("d2")  # an inner block: undone on its own
            ledger.debit(60, key="d3")
        assert [HALF] == [t for _, _, t, _ in crossed(ledger)]

    def test_a_budget_added_past_a_threshold(self, ledger: ib.Ledger) -> None:
        """A budget added when its period's spend is past thresholds records them at once."""
        ledger.debit(85, key="d")
        ledger.add_budget(ib.Budget("shop", 100))
        assert [HALF, FOUR_FIFTHS] == [t for _, _, t, _ in crossed(ledger)]
        assert {85} == {a.spent for a in ledger.alerts()}

    def test_ids_are_stable_and_the_ledgers_own(self, ledger: ib.Ledger,
                                                 clock: Clock) -> None:
        ledger.add_budget(ib.Budget("shop", 100))
        ledger.debit(60, key="d")
        (alert,) = ledger.alerts()
        first = ledger.get(1)
        assert alert.id == alert_id(first.hash, "shop", "2026-03", HALF, "actual")
        other = ib.Ledger.memory(clock=clock)
        other.credit(100, key="another opening")
        other.add_budget(ib.Budget("shop", 100))
        other.debit(60, key="d")
        assert alert.id != other.alerts()[0].id

    def test_delivery_marks(self, ledger: ib.Ledger, clock: Clock) -> None:
        ledger.add_budget(ib.Budget("shop", 100))
        ledger.debit(90, key="d")
        first, second = ledger.alerts()
        ledger.mark_alert(first, delivered=False, error="HTTP 503")
        ledger.mark_alert(second.id, delivered=True)
        clock.advance(seconds=5)
        ledger.mark_alert(second.id, delivered=True)  # delivered again: the first time stays
        assert [first.id] == [a.id for a in ledger.alerts(undelivered=True)]
        marked = {a.id: a for a in ledger.alerts()}
        assert (1, "HTTP 503", None) == (marked[first.id].attempts,
                                         marked[first.id].last_error,
                                         marked[first.id].delivered_at)
        assert (2, clock.now - timedelta(seconds=5)) == (marked[second.id].attempts,
                                                         marked[second.id].delivered_at)

    def test_forecasted_alerts_are_recorded_once_when_evaluated(self, ledger: ib.Ledger,
                                                                clock: Clock) -> None:
        """10 a day for 3 days of a 31-day month forecasts 310 of a 200 limit."""
        ledger.credit(10_000, key="more")
        ledger.add_budget(ib.Budget("shop", 200))
        for day in range(3):
            ledger.debit(10, key=f"d{day}")
            clock.advance(days=1)
        recorded = evaluate_alerts(ledger)
        assert [("forecasted", HALF), ("forecasted", FOUR_FIFTHS), ("forecasted", ALL)] == [
            (a.kind, a.threshold) for a in recorded]
        assert all(a.projected is not None and a.projected >= a.tokens for a in recorded)
        assert () == evaluate_alerts(ledger)
        assert 3 == len(ledger.alerts())


class TestBudgetChanges:
    """update_budget and remove_budget: entries of the chain, verified."""

    def test_update(self, ledger: ib.Ledger) -> None:
        ledger.credit(10_000, key="more")
        ledger.add_budget(ib.Budget("shop", 100, hard=True))
        ledger.debit(60, key="d")
        with pytest.raises(ib.BudgetExceeded):
            ledger.debit(50, key="refused")
        updated = ledger.update_budget(ib.Budget("shop", 200, hard=True))
        assert updated == ledger.budget("shop")
        assert (60, 0) == ledger.budget_usage("shop")
        ledger.debit(50, key="now fits")
        assert ib.Budget("shop", 200, hard=True) == ledger.update_budget(
            ib.Budget("shop", 200, hard=True))  # the same settings: no entry
        entries = len(list(ledger.entries()))
        ledger.verify()
        with pytest.raises(ib.UnknownBudget):
            ledger.update_budget(ib.Budget("nope", 1))
        assert entries == len(list(ledger.entries()))

    def test_remove_and_add_again(self, ledger: ib.Ledger) -> None:
        ledger.credit(10_000, key="more")
        ledger.add_budget(ib.Budget("shop", 10, hard=True))
        removed = ledger.remove_budget("shop")
        assert "shop" == removed.name
        assert () == ledger.budgets()
        ledger.debit(50, key="no budget now")
        with pytest.raises(ib.UnknownBudget):
            ledger.remove_budget("shop")
        ledger.add_budget(ib.Budget("shop", 100))
        assert (50, 0) == ledger.budget_usage("shop")
        assert 3 == sum(e.kind == "budget" for e in ledger.entries())
        ledger.verify()

    def test_verify_since_an_anchor_after_changes(self, ledger: ib.Ledger) -> None:
        """A budget changed and removed before the anchor, observations on both sides: the
        since-form of verify resumes with the budgets as they are then."""
        ledger.add_budget(ib.Budget("shop", 10))
        ledger.update_budget(ib.Budget("shop", 20))
        ledger.add_budget(ib.Budget("gone", 5))
        ledger.remove_budget("gone")
        ledger.observe(100, key="seen-1")
        anchor = ledger.head()
        ledger.debit(15, key="d")
        ledger.update_budget(ib.Budget("shop", 30))
        ledger.remove_budget("shop")
        ledger.observe(85, key="seen-2")
        assert 4 == ledger.verify(since=anchor)
        assert len(list(ledger.entries())) == ledger.verify()

    def test_an_export_with_changes_imports(self, ledger: ib.Ledger) -> None:
        import io

        ledger.add_budget(ib.Budget("shop", 10))
        ledger.update_budget(ib.Budget("shop", 20))
        ledger.remove_budget("shop")
        ledger.add_budget(ib.Budget("site", 30))
        ledger.observe(90, key="seen")
        out = io.StringIO()
        ledger.export(out)
        copy = ib.Ledger.from_jsonl(out.getvalue().splitlines())
        assert ("site",) == tuple(b.name for b in copy.budgets())
        assert ledger.head() == copy.head()

    def test_removing_a_budget_the_chain_lacks_is_corruption(self) -> None:
        """A chain whose removal names no budget does not verify (the replay refuses it)."""
        from imagine_billing.ledger._chain import Replay, removal
        from imagine_billing.ledger.model import chain_hash, fingerprint_of

        memo = removal("ghost")
        row = (1, "budget", "budget:ghost", 0, 0, None, memo, "{}", "[]", None, None, None,
               fingerprint_of(kind="budget", memo=memo))
        replay = Replay()
        with pytest.raises(ib.LedgerCorrupted, match="removes budget 'ghost'"):
            replay.apply((*row, chain_hash("0" * 64, row)))


class TestForgedAlerts:
    """`verify` finds an alert in the outbox that the chain could not have raised: a row
    written or changed behind the ledger's back is not delivered as the ledger's word."""

    @pytest.fixture
    def crossed_once(self, ledger: ib.Ledger) -> ib.Ledger:
        """Budget shop (100, alerts at 50% and 80%): 60 spent, its 50% alert recorded."""
        ledger.credit(1_000, key="more")
        ledger.add_budget(ib.Budget("shop", 100, alerts=(0.5, 0.8)))
        ledger.debit(60, key="d1")
        ledger.verify()
        return ledger

    def forge(self, ledger: ib.Ledger, store: Store, *, budget: str = "shop",
              threshold: Fraction = FOUR_FIFTHS, kind: str = "actual", spent: int = 85,
              limit: int = 100, period: str = "2026-03", entry: int | None = None,
              id: str | None = None) -> None:
        origin = ledger.get(1).hash
        first = ledger.alerts()[0]
        row = (id or alert_id(origin, budget, period, threshold, kind), budget, period,
               str(threshold), kind, spent, limit, None, ib.ledger.model.to_micros(first.at),
               entry)
        with store.write():
            store.add_alerts([row])

    @pytest.mark.parametrize(("change", "found"), [
        ({"budget": "ghost"}, "no budget 'ghost' of the chain"),
        ({"threshold": Fraction(9, 10)}, "has a 90% threshold"),
        ({"limit": 50}, "a limit of 50"),
        ({"period": "2026-3"}, "a period '2026-3'"),
        ({"spent": 60}, "a spend of 60 does not reach 80% of 100"),
        ({"entry": 1}, "entry 1, which it names"),  # a credit crossed nothing
        ({"entry": 999}, "entry 999, which it names"),
        ({"id": "alert-" + "0" * 32}, "its id is not the one"),
    ], ids=["budget", "threshold", "limit", "period", "spent", "credit", "missing", "id"])
    def test_a_forged_alert_fails_verify(self, crossed_once: ib.Ledger, store: Store,
                                         change: dict[str, object], found: str) -> None:
        debit = crossed_once.get("d1").id
        self.forge(crossed_once, store, **{"entry": debit, **change})  # type: ignore[arg-type]
        with pytest.raises(ib.LedgerCorrupted, match="written behind the ledger's back") as error:
            crossed_once.verify()
        assert found in str(error.value)
        assert "alert 'alert-" in str(error.value)

    def test_the_alerts_the_ledger_raises_pass(self, crossed_once: ib.Ledger) -> None:
        """Alerts of debits, of a budget added past a threshold, and evaluated ones."""
        crossed_once.debit(25, key="d2")  # 85: the ledger records 80% itself
        recorded = {(a.threshold, a.entry) for a in crossed_once.alerts()}
        assert (FOUR_FIFTHS, crossed_once.get("d2").id) in recorded
        crossed_once.add_budget(ib.Budget("all", 50, alerts=(0.5, 1)))  # 85 spent: both
        evaluate_alerts(crossed_once)
        assert 4 <= len(crossed_once.alerts())
        crossed_once.verify()

class TestObserve:
    """Observed balances: entries that move no tokens, reconciled with the ledger."""

    def test_observe_and_reconcile(self, ledger: ib.Ledger, clock: Clock) -> None:
        ledger.observe(100, key="o1")
        clock.advance(hours=1)
        ledger.debit(30, key="d1")
        ledger.note(key="n1", memo="a 402", tags={"drift": "true"})
        clock.advance(hours=1)
        seen = clock.now
        clock.advance(minutes=5)
        ledger.debit(5, key="after")  # after the balance was read
        entry = ledger.observe(60, key="o2", at=seen)
        assert ib.Balance(65, 0, 65) == ledger.balance()
        assert 0 == entry.tokens
        report = reconcile(ledger)
        first, second = report.observations
        assert (100, 100, 0, None) == (first.observed, first.expected, first.drift,
                                       first.change)
        assert (60, 70, -10, -10) == (second.observed, second.expected, second.drift,
                                      second.change)
        assert ["n1"] == [e.key for e in second.suspects]
        assert second is report.latest
        ledger.verify()

    def test_replays_and_refusals(self, ledger: ib.Ledger, clock: Clock) -> None:
        entry = ledger.observe(90, key="o")
        clock.advance(seconds=1)
        assert entry == ledger.observe(90, key="o")  # at given by neither: the same request
        with pytest.raises(ib.IdempotencyConflict):
            ledger.observe(91, key="o")
        for bad, error in ((-1, ValueError), (True, TypeError), (1.0, TypeError),
                           (2**53, ValueError)):
            with pytest.raises(error, match="balance"):
                ledger.observe(bad, key="bad")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="later than now"):
            ledger.observe(1, key="future", at=clock.now + timedelta(seconds=1))
        assert 2 == len(list(ledger.entries()))


@pytest.mark.parametrize("memo", ['{"balance": -1, "at": 0}', '{"balance": 1}', "nope",
                                  '{"balance": 1, "at": 0, "x": 1}'])
def test_a_bad_observation_does_not_verify(memo: str) -> None:
    from imagine_billing.ledger._chain import Replay
    from imagine_billing.ledger.model import chain_hash

    row = (1, "observe", "o", 0, 0, None, memo, "{}", "[]", None, None, None, "f")
    with pytest.raises(ib.LedgerCorrupted, match="observation cannot be read"):
        Replay().apply((*row, chain_hash("0" * 64, row)))


def test_alerts_survive_reopening(open_store: Callable[[], Store], clock: Clock) -> None:
    """The outbox is in the store: another ledger object on the same data sees it."""
    ledger = ib.Ledger(open_store(), clock=clock)
    ledger.credit(100, key="c")
    ledger.add_budget(ib.Budget("shop", 10))
    ledger.debit(9, key="d")
    again = ib.Ledger(open_store(), clock=clock)
    assert ledger.alerts() == again.alerts()
    assert 2 == len(again.alerts())


def test_delivery_on_every_store(ledger: ib.Ledger) -> None:
    """deliver_alerts to a real receiver, then again after it failed once: each alert is
    taken once and marked delivered in the store."""
    from imagine_billing.adapters.webhook import deliver_alerts
    from tests.receiver import receiving

    ledger.add_budget(ib.Budget("shop", 100, alerts=(0.5, 0.8)))
    ledger.debit(90, key="d")
    with receiving() as receiver:
        receiver.answers.extend([503])
        first = deliver_alerts(ledger, receiver.url, attempts=1, evaluate=False)
        assert (0, 1, 1) == (len(first.delivered), len(first.failed), first.pending)
        second = deliver_alerts(ledger, receiver.url, evaluate=False)
        assert 2 == len(second.delivered)
    assert () == ledger.alerts(undelivered=True)
    assert {a.id for a in ledger.alerts()} == set(receiver.taken)
    assert [2, 1] == [a.attempts for a in ledger.alerts()]
