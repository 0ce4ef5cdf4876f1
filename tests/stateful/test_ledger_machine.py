"""The ledger against a plain-list model, driven by Hypothesis' rule-based state machine.

After every step: posted == credits - debits - captures + refunds; held == the tokens of open
holds; available == posted - held >= 0; replaying an old key changes nothing; verify() passes,
and still holds the head recorded at the step before; spend by style, day and tag agrees with
the model (a refund counted at the time of what it refunds). A batch of writes is all or
nothing, a nested one on its own. A hold or debit refused for want of room first expires the
lapsed holds, and writes nothing if it is refused all the same.
With hard budgets: a hold or debit is refused exactly when it would take a budget's spend in the
current period plus its open holds past the limit, nothing is then written, no sequence of
operations ever exceeds a hard budget while the clock only moves forward, and budget_status
agrees with the model. Budgets are also added mid-run, and the clock is sometimes set back
(into a period before a budget was added, across midnight): a budget counts from the period
it was added in on (the documented rule), its running figures and budget_status, now and at
past moments, agree with the model, and verify() still passes. Each budget added is an entry
of the chain (verify counts it); adding one again writes nothing.
"""

from __future__ import annotations

import contextlib
import tempfile
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

import imagine_billing as ib
from imagine_billing.errors import AmountTooLarge, HoldClosed
from imagine_billing.ledger.model import GENESIS
from imagine_billing.planner.budgets import period_label

START = datetime(2026, 1, 1, tzinfo=UTC)

amounts = st.integers(1, 60)
tag_sets = st.sampled_from([None, {"project": "site"}, {"project": "app", "user": "ana"}])
hard_budgets = st.lists(
    st.builds(ib.Budget, name=st.sampled_from(["a", "b", "c"]), limit=st.integers(5, 120),
              period=st.sampled_from(["day", "week", "month", "total"]),
              scope=st.sampled_from([None, {"project": "site"}, {"project": "app"}]),
              hard=st.just(True)),
    max_size=3, unique_by=lambda b: b.name)
"""Up to three hard budgets with distinct names."""

later_budgets = st.builds(
    ib.Budget, name=st.sampled_from(["d", "e"]), limit=st.integers(5, 120),
    period=st.sampled_from(["day", "week", "month", "total"]),
    scope=st.sampled_from([None, {"project": "site"}, {"project": "app"}]),
    hard=st.booleans())
"""A budget added mid-run (names apart from the first ones)."""

steps_back = st.sampled_from([1, 60, 3600]) | st.integers(1, 3 * 86_400)
"""Seconds to set the clock back: an NTP step, or back into an earlier day or week."""

MICRO = timedelta(microseconds=1)


class _Abort(Exception):
    """Raised inside a batch to undo it."""


class _Model:
    """What the ledger should hold: a plain list of what each successful write did."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def add(self, **record: Any) -> None:
        self.records.append(record)

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [r for r in self.records if r["kind"] == kind]

    def closing(self, hold_key: str) -> dict[str, Any] | None:
        for r in self.records:
            if r["kind"] in ("capture", "void", "expire") and r["hold"] == hold_key:
                return r
        return None

    def open_holds(self) -> list[dict[str, Any]]:
        return [h for h in self.of("hold") if self.closing(h["key"]) is None]

    @property
    def posted(self) -> int:
        sums = {k: sum(r["tokens"] for r in self.of(k)) for k in
                ("credit", "debit", "capture", "refund")}
        return sums["credit"] - sums["debit"] - sums["capture"] + sums["refund"]

    @property
    def held(self) -> int:
        return sum(h["tokens"] for h in self.open_holds())

    def spent_at(self, record: dict[str, Any]) -> datetime:
        """When a spend record counts: a refund at the time of the debit or capture it gives
        back."""
        if record["kind"] == "refund":
            return next(r["at"] for r in self.records if r["key"] == record["of"])  # type: ignore[no-any-return]
        return record["at"]  # type: ignore[no-any-return]

    def spending(self) -> list[tuple[dict[str, Any], datetime, int]]:
        """Each debit, capture and refund record, with when it counts and its signed tokens."""
        return [(r, self.spent_at(r), (-1 if r["kind"] == "refund" else 1) * r["tokens"])
                for r in self.records if r["kind"] in ("debit", "capture", "refund")]

    def lapsed(self, now: datetime) -> list[dict[str, Any]]:
        """The open holds past their expiry at ``now``."""
        return [h for h in self.open_holds()
                if h["expires_at"] is not None and h["expires_at"] <= now]

    def usage(self, budget: ib.Budget, now: datetime) -> tuple[int, int]:
        """A budget's running figures: (the spend in the period holding ``now``, all of it
        written so far, later stamps included; the open holds), from the records."""
        def counts(record: dict[str, Any]) -> bool:
            return budget.matches(record["tags"] or {})

        label = period_label(budget.period, now)
        spent = sum(tokens for r, at, tokens in self.spending()
                    if counts(r) and period_label(budget.period, at) == label)
        held = sum(h["tokens"] for h in self.open_holds() if counts(h))
        return spent, held

    def status_at(self, budget: ib.Budget, moment: datetime) -> tuple[int, int]:
        """(spent, held) as budget_status gives them at ``moment``: the spend of its period
        stamped by ``moment``, less the refunds stamped by then (a refund in the period of
        what it refunds), and the holds placed by then and not closed by then."""
        start, _ = budget.bounds(moment)
        spent = 0
        for record, at, tokens in self.spending():
            if (budget.matches(record["tags"] or {}) and record["at"] <= moment
                    and at <= moment and (start is None or at >= start)):
                spent += tokens
        held = 0
        for hold in self.of("hold"):
            closing = self.closing(hold["key"])
            if (budget.matches(hold["tags"] or {}) and hold["at"] <= moment
                    and (closing is None or closing["at"] > moment)):
                held += hold["tokens"]
        return spent, held

    def refundable(self, key: str) -> int:
        spent = next(r for r in self.records if r["key"] == key)
        given = sum(r["tokens"] for r in self.of("refund") if r["of"] == key)
        return int(spent["tokens"]) - given


class LedgerMachine(RuleBasedStateMachine):
    """Random sequences of writes and replays; the ledger must agree with the model."""

    def __init__(self) -> None:
        super().__init__()
        self.model = _Model()
        self.now = START
        self.counter = 0
        self.writes: list[tuple[Callable[[], Any], Any]] = []
        self.budgets: list[ib.Budget] = []
        self.first: dict[str, datetime | None] = {}
        """The start of the period each budget was added in (None: a total budget)."""
        self.capped: set[str] = set()
        """The budgets that must never be exceeded while the clock only moves forward:
        those within their limit when added."""
        self.went_back = False
        self.anchor: tuple[int, str] | None = None
        self.ledger = self.make_ledger()

    def make_ledger(self) -> ib.Ledger:
        return ib.Ledger.memory(clock=lambda: self.now)

    def teardown(self) -> None:
        self.ledger.close()

    def new_key(self) -> str:
        self.counter += 1
        return f"k{self.counter}"

    def count(self) -> int:
        return sum(1 for _ in self.ledger.entries())

    def expect_nothing_written(self, call: Callable[[], Any], error: type[Exception]) -> None:
        before = (self.ledger.balance(), self.count())
        with pytest.raises(error):
            call()
        assert before == (self.ledger.balance(), self.count())

    def refusal(self, tokens: int, tags: dict[str, str] | None) -> ib.Budget | str | None:
        """Why the model refuses a hold or debit of ``tokens`` now ("tokens", or the first
        hard budget it would exceed), once lapsed holds are expired; ``None`` if it does not.

        When expiring the lapsed holds makes room, their expire records are added (the
        ledger writes them with the hold or debit); else the model is left as it was and the
        refusal is the one before the expiries (what the ledger reports).
        """
        refused = self.first_refusal(tokens, tags)
        lapsed = self.model.lapsed(self.now)
        if refused is None or not lapsed:
            return refused
        mark = len(self.model.records)
        for hold in lapsed:
            self.model.add(kind="expire", key=None, tokens=hold["tokens"], hold=hold["key"],
                           at=self.now, tags=hold["tags"])
        if self.first_refusal(tokens, tags) is None:
            return None
        del self.model.records[mark:]
        return refused

    def first_refusal(self, tokens: int, tags: dict[str, str] | None) -> ib.Budget | str | None:
        if tokens > self.model.posted - self.model.held:
            return "tokens"
        return self.over_budget(tokens, tags)

    def expect_refusal(self, call: Callable[[], Any], refused: ib.Budget | str,
                       tokens: int) -> None:
        if refused == "tokens":
            self.expect_nothing_written(call, ib.InsufficientTokens)
        else:
            assert isinstance(refused, ib.Budget)
            self.expect_over_budget(call, refused, tokens)

    def counts(self, budget: ib.Budget, at: datetime) -> bool:
        """Whether ``budget`` counts at ``at``: from the period it was added in on."""
        first = self.first[budget.name]
        return first is None or at >= first

    def over_budget(self, tokens: int, tags: dict[str, str] | None) -> ib.Budget | None:
        """The first hard budget ``tokens`` more would take past its limit, per the model."""
        for budget in self.budgets:
            if budget.hard and budget.matches(tags or {}) and self.counts(budget, self.now):
                spent, held = self.model.usage(budget, self.now)
                if spent + held + tokens > budget.limit:
                    return budget
        return None

    def expect_over_budget(self, call: Callable[[], Any], budget: ib.Budget,
                           tokens: int) -> None:
        before = (self.ledger.balance(), self.count())
        with pytest.raises(ib.BudgetExceeded) as caught:
            call()
        assert before == (self.ledger.balance(), self.count())
        spent, held = self.model.usage(budget, self.now)
        assert (budget.name, tokens, max(0, budget.limit - spent - held)) == (
            caught.value.budget, caught.value.needed, caught.value.remaining)

    def keep_budget(self, budget: ib.Budget) -> None:
        """Add ``budget`` to the ledger and the model, as of now."""
        assert budget == self.ledger.add_budget(budget)
        self.model.add(kind="budget", key=f"budget:{budget.name}", tokens=0, at=self.now,
                       tags=None)
        self.budgets.append(budget)
        self.first[budget.name] = budget.bounds(self.now)[0]
        spent, held = self.model.usage(budget, self.now)
        if spent + held <= budget.limit:
            self.capped.add(budget.name)

    @initialize(tokens=st.integers(0, 200), budgets=hard_budgets)
    def start(self, tokens: int, budgets: list[ib.Budget]) -> None:
        for budget in budgets:
            self.keep_budget(budget)
        if tokens:
            self.credit(tokens, None)

    @rule(budget=later_budgets)
    def add_budget(self, budget: ib.Budget) -> None:
        """A budget added mid-run: it counts from the current period on. Adding a name again
        writes nothing: the same budget is a replay, another one a BudgetConflict."""
        existing = next((b for b in self.budgets if b.name == budget.name), None)
        if existing is None:
            self.keep_budget(budget)
        elif existing == budget:
            before = (self.ledger.balance(), self.count())
            assert existing == self.ledger.add_budget(budget)
            assert before == (self.ledger.balance(), self.count())
        else:
            self.expect_nothing_written(lambda: self.ledger.add_budget(budget),
                                        ib.BudgetConflict)

    @rule(tokens=amounts, tags=tag_sets)
    def credit(self, tokens: int, tags: dict[str, str] | None) -> None:
        key = self.new_key()
        entry = self.ledger.credit(tokens, key=key, tags=tags)
        self.model.add(kind="credit", key=key, tokens=tokens, at=self.now, tags=tags)
        self.writes.append((lambda: self.ledger.credit(tokens, key=key, tags=tags), entry))

    @rule(tokens=amounts, tags=tag_sets, expires=st.none() | st.integers(1, 7200))
    def hold(self, tokens: int, tags: dict[str, str] | None, expires: int | None) -> None:
        key = self.new_key()
        expires_at = None if expires is None else self.now + timedelta(seconds=expires)

        def call() -> ib.Hold:
            return self.ledger.hold(tokens, key=key, tags=tags, expires_at=expires_at)

        refused = self.refusal(tokens, tags)
        if refused is not None:
            self.expect_refusal(call, refused, tokens)
            return
        hold = call()
        assert (tokens, "open") == (hold.tokens, hold.status)
        self.model.add(kind="hold", key=key, tokens=tokens, expires_at=expires_at, at=self.now,
                       tags=tags)
        self.writes.append((lambda: call().entry, hold.entry))

    @rule(tokens=amounts, tags=tag_sets)
    def debit(self, tokens: int, tags: dict[str, str] | None) -> None:
        key = self.new_key()

        def call() -> ib.Entry:
            return self.ledger.debit(tokens, key=key, tags=tags)

        refused = self.refusal(tokens, tags)
        if refused is not None:
            self.expect_refusal(call, refused, tokens)
            return
        entry = call()
        self.model.add(kind="debit", key=key, tokens=tokens, at=self.now, tags=tags)
        self.writes.append((call, entry))

    @rule(extra=st.integers(0, 2), kind=st.sampled_from(["hold", "debit"]))
    def take_all(self, extra: int, kind: str) -> None:
        """Hold or debit exactly what is available, or just over it."""
        tokens = self.model.posted - self.model.held + extra
        if tokens < 1:
            return
        if kind == "hold":
            self.hold(tokens, None, None)
        else:
            self.debit(tokens, None)

    @precondition(lambda self: self.model.of("hold"))
    @rule(data=st.data(), tokens=st.none() | amounts)
    def capture(self, data: st.DataObject, tokens: int | None) -> None:
        hold = data.draw(st.sampled_from(self.model.of("hold")))
        key = self.new_key()

        def call() -> ib.Entry:
            return self.ledger.capture(hold["key"], tokens, key=key)

        expired = hold["expires_at"] is not None and hold["expires_at"] <= self.now
        if self.model.closing(hold["key"]) is not None or expired:
            self.expect_nothing_written(call, HoldClosed)
            return
        if tokens is not None and tokens > hold["tokens"]:
            self.expect_nothing_written(call, AmountTooLarge)
            return
        entry = call()
        captured = hold["tokens"] if tokens is None else tokens
        assert captured == entry.tokens
        self.model.add(kind="capture", key=key, tokens=captured, hold=hold["key"], at=self.now,
                       tags=hold["tags"])
        self.writes.append((call, entry))

    @precondition(lambda self: self.model.of("hold"))
    @rule(data=st.data())
    def void(self, data: st.DataObject) -> None:
        hold = data.draw(st.sampled_from(self.model.of("hold")))

        def call() -> ib.Entry:
            return self.ledger.void(hold["key"])

        if self.model.closing(hold["key"]) is not None:
            closing = self.model.closing(hold["key"])
            if closing is not None and closing["kind"] == "void":
                return  # a replay: the replay rule covers it
            self.expect_nothing_written(call, HoldClosed)
            return
        entry = call()
        self.model.add(kind="void", key=entry.key, tokens=hold["tokens"], hold=hold["key"],
                       at=self.now, tags=hold["tags"])
        self.writes.append((call, entry))

    @precondition(lambda self: self.model.of("debit") or self.model.of("capture"))
    @rule(data=st.data(), tokens=st.none() | amounts)
    def refund(self, data: st.DataObject, tokens: int | None) -> None:
        spent = data.draw(st.sampled_from(self.model.of("debit") + self.model.of("capture")))
        key = self.new_key()

        def call() -> ib.Entry:
            return self.ledger.refund(spent["key"], tokens, key=key)

        left = self.model.refundable(spent["key"])
        if left == 0 or (tokens is not None and tokens > left):
            self.expect_nothing_written(call, AmountTooLarge)
            return
        entry = call()
        self.model.add(kind="refund", key=key, tokens=left if tokens is None else tokens,
                       of=spent["key"], at=self.now, tags=spent["tags"])
        self.writes.append((call, entry))

    @rule(seconds=st.integers(0, 3600))
    def advance(self, seconds: int) -> None:
        self.now += timedelta(seconds=seconds)

    @rule(days=st.integers(1, 12))
    def advance_days(self, days: int) -> None:
        """Far enough to start new days, ISO weeks and months."""
        self.now += timedelta(days=days)

    @rule()
    def to_midnight(self) -> None:
        """To the start of the next day, for a step back across midnight."""
        self.now = datetime.combine(self.now.date() + timedelta(days=1), datetime.min.time(),
                                    tzinfo=UTC)

    @rule(seconds=steps_back)
    def set_back(self, seconds: int) -> None:
        """The clock set back (NTP, a wrong clock corrected)."""
        self.now -= timedelta(seconds=seconds)
        self.went_back = True

    @precondition(lambda self: self.budgets)
    @rule(seconds=steps_back)
    def status_then(self, seconds: int) -> None:
        """budget_status and the running figures at a past moment agree with the model."""
        moment = self.now - timedelta(seconds=seconds)
        for budget in self.budgets:
            status = ib.budget_status(self.ledger, budget.name, moment)
            assert self.model.status_at(budget, moment) == (status.spent, status.held)
            expected = (self.model.usage(budget, moment)
                        if self.counts(budget, moment) else None)
            assert expected == self.ledger.budget_usage(budget.name, moment)

    @rule()
    def expire(self) -> None:
        due = self.model.lapsed(self.now)
        written = self.ledger.expire_holds()
        assert [h["key"] for h in due] == [self.ledger.get(e.ref).key for e in written]
        for hold, entry in zip(due, written, strict=True):
            self.model.add(kind="expire", key=entry.key, tokens=hold["tokens"], hold=hold["key"],
                           at=self.now, tags=hold["tags"])

    @rule(steps=st.lists(st.tuples(st.sampled_from(["credit", "debit", "hold"]), amounts),
                         min_size=1, max_size=4),
          inner=st.none() | amounts, fail=st.booleans())
    def batch(self, steps: list[tuple[str, int]], inner: int | None, fail: bool) -> None:
        """A few writes in one batch, perhaps with a nested batch that fails (undoing only
        its own write), perhaps failing as a whole (undoing all of them)."""
        mark = (len(self.model.records), len(self.writes))
        try:
            with self.ledger.batch():
                for kind, tokens in steps:
                    if kind == "credit":
                        self.credit(tokens, None)
                    elif kind == "debit":
                        self.debit(tokens, None)
                    else:
                        self.hold(tokens, None, None)
                if inner is not None:
                    inner_mark = (len(self.model.records), len(self.writes))
                    with contextlib.suppress(_Abort), self.ledger.batch():
                        self.credit(inner, None)
                        raise _Abort
                    del self.model.records[inner_mark[0]:]
                    del self.writes[inner_mark[1]:]
                    assert (self.model.posted, self.model.held) == (
                        self.ledger.balance().posted, self.ledger.balance().held)
                if fail:
                    raise _Abort
        except _Abort:
            del self.model.records[mark[0]:]
            del self.writes[mark[1]:]

    @precondition(lambda self: self.writes)
    @rule(data=st.data())
    def replay(self, data: st.DataObject) -> None:
        call, original = data.draw(st.sampled_from(self.writes))
        before = (self.ledger.balance(), self.count())
        again = call()
        assert original == (again.entry if isinstance(again, ib.Hold) else again)
        assert before == (self.ledger.balance(), self.count())

    @precondition(lambda self: self.writes)
    @rule(data=st.data(), tokens=amounts)
    def reuse_key(self, data: st.DataObject, tokens: int) -> None:
        _, original = data.draw(st.sampled_from(self.writes))
        self.expect_nothing_written(
            lambda: self.ledger.credit(original.tokens + tokens, key=original.key),
            ib.IdempotencyConflict)

    @invariant()
    def agrees_with_the_model(self) -> None:
        balance = self.ledger.balance()
        assert (self.model.posted, self.model.held) == (balance.posted, balance.held)
        assert balance.available == balance.posted - balance.held
        assert balance.available >= 0
        assert len(self.model.records) == self.ledger.verify(expect=self.anchor)
        # From the head of the step before, only the entries written since are replayed.
        since = self.anchor or (0, GENESIS)
        assert len(self.model.records) - since[0] == self.ledger.verify(since=since)
        self.anchor = self.ledger.head()
        spent = sum(r["tokens"] for r in self.model.records if r["kind"] in ("debit", "capture"))
        refunded = sum(r["tokens"] for r in self.model.of("refund"))
        assert spent - refunded == sum(self.ledger.spend(by="style").values())

    @invariant()
    def spend_agrees_with_the_model(self) -> None:
        """spend() by day and by tag puts each refund where its debit or capture is."""
        by_day: dict[str | None, int] = {}
        by_project: dict[str | None, int] = {}
        for record, at, tokens in self.model.spending():
            day = at.date().isoformat()
            by_day[day] = by_day.get(day, 0) + tokens
            project = (record["tags"] or {}).get("project")
            by_project[project] = by_project.get(project, 0) + tokens
        assert by_day == self.ledger.spend(by="day")
        assert by_project == self.ledger.spend(by="tag:project")
        day = START + timedelta(days=1)
        assert sum(tokens for _, at, tokens in self.model.spending() if at >= day) == sum(
            self.ledger.spend(by="tag:project", since=day).values())

    @invariant()
    def hard_budgets_hold(self) -> None:
        """No hard budget is exceeded while the clock only moves forward; budget_status and
        the running figures agree with the model."""
        for budget in self.budgets:
            spent, held = self.model.usage(budget, self.now)
            if budget.hard and budget.name in self.capped and not self.went_back:
                assert spent + held <= budget.limit
            status = ib.budget_status(self.ledger, budget.name, self.now)
            assert self.model.status_at(budget, self.now) == (status.spent, status.held)
            counted = (spent, held) if self.counts(budget, self.now) else None
            assert counted == self.ledger.budget_usage(budget.name, self.now)
            if not self.went_back:
                # budget_status reads the running figures here; the sums it falls back on
                # for a moment in the past must agree with them.
                start, _ = budget.bounds(self.now)
                assert (spent, held) == (
                    self.ledger.spent(since=start, until=self.now + MICRO, tags=budget.scope),
                    self.ledger.held(tags=budget.scope))

    @invariant()
    def alerts_agree(self) -> None:
        """Every threshold the period's spend has reached has its actual alert, recorded
        once, with the spend that reached it; none is recorded twice."""
        alerts = self.ledger.alerts()
        assert len({a.id for a in alerts}) == len(alerts)
        assert len({(a.budget, a.period, a.threshold, a.kind) for a in alerts}) == len(alerts)
        for alert in alerts:
            assert alert.kind == "actual"
            assert alert.spent >= alert.tokens
        recorded = {(a.budget, a.period, a.threshold) for a in alerts}
        for budget in self.budgets:
            if not self.counts(budget, self.now):
                continue
            spent, _ = self.model.usage(budget, self.now)
            label = period_label(budget.period, self.now)
            for threshold in budget.alerts:
                if spent >= budget.limit * threshold:
                    assert (budget.name, label, threshold) in recorded


class SqliteLedgerMachine(LedgerMachine):
    """The same machine over a SQLite file, a fresh one for each example."""

    def make_ledger(self) -> ib.Ledger:
        self.directory = tempfile.TemporaryDirectory()
        path = Path(self.directory.name) / "ledger.db"
        return ib.Ledger.open(path, clock=lambda: self.now, durable=False)

    def teardown(self) -> None:
        super().teardown()
        self.directory.cleanup()


class PostgresLedgerMachine(LedgerMachine):
    """The same machine over PostgreSQL, a ledger of its own for each example (all in the
    session's database, so the other ledgers there must not disturb it)."""

    url: ClassVar[str] = ""
    """The server's URL, set by the `postgres_machine` fixture."""

    def make_ledger(self) -> ib.Ledger:
        name = f"machine-{uuid.uuid4().hex}"
        return ib.Ledger.open(self.url, name=name, clock=lambda: self.now, durable=False)


@pytest.fixture
def postgres_machine(pg_url: str) -> None:
    """Points the PostgreSQL machine at the session's server."""
    PostgresLedgerMachine.url = pg_url


TestLedgerMachine = LedgerMachine.TestCase
TestLedgerMachine.settings = settings(TestLedgerMachine.settings, stateful_step_count=50)

TestSqliteLedgerMachine = SqliteLedgerMachine.TestCase
TestSqliteLedgerMachine.settings = settings(
    TestSqliteLedgerMachine.settings, stateful_step_count=50,
    max_examples=min(200, TestSqliteLedgerMachine.settings.max_examples),
)

TestPostgresLedgerMachine = pytest.mark.usefixtures("postgres_machine")(
    PostgresLedgerMachine.TestCase)
TestPostgresLedgerMachine.settings = settings(
    TestPostgresLedgerMachine.settings, stateful_step_count=50,
    max_examples=min(60, TestPostgresLedgerMachine.settings.max_examples),
)
