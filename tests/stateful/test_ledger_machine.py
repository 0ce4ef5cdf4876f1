"""The ledger against a plain-list model, driven by Hypothesis' rule-based state machine.

After every step: posted == credits - debits - captures + refunds; held == the tokens of open
holds; available == posted - held >= 0; replaying an old key changes nothing; verify() passes.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

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

START = datetime(2026, 1, 1, tzinfo=UTC)

amounts = st.integers(1, 60)
tag_sets = st.sampled_from([None, {"project": "site"}, {"project": "app", "user": "ana"}])


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

    @initialize(tokens=st.integers(0, 200))
    def start(self, tokens: int) -> None:
        if tokens:
            self.credit(tokens, None)

    @rule(tokens=amounts, tags=tag_sets)
    def credit(self, tokens: int, tags: dict[str, str] | None) -> None:
        key = self.new_key()
        entry = self.ledger.credit(tokens, key=key, tags=tags)
        self.model.add(kind="credit", key=key, tokens=tokens)
        self.writes.append((lambda: self.ledger.credit(tokens, key=key, tags=tags), entry))

    @rule(tokens=amounts, tags=tag_sets, expires=st.none() | st.integers(1, 7200))
    def hold(self, tokens: int, tags: dict[str, str] | None, expires: int | None) -> None:
        key = self.new_key()
        expires_at = None if expires is None else self.now + timedelta(seconds=expires)

        def call() -> ib.Hold:
            return self.ledger.hold(tokens, key=key, tags=tags, expires_at=expires_at)

        available = self.model.posted - self.model.held
        if tokens > available:
            self.expect_nothing_written(call, ib.InsufficientTokens)
            return
        hold = call()
        assert (tokens, "open") == (hold.tokens, hold.status)
        self.model.add(kind="hold", key=key, tokens=tokens, expires_at=expires_at)
        self.writes.append((lambda: call().entry, hold.entry))

    @rule(tokens=amounts, tags=tag_sets)
    def debit(self, tokens: int, tags: dict[str, str] | None) -> None:
        key = self.new_key()

        def call() -> ib.Entry:
            return self.ledger.debit(tokens, key=key, tags=tags)

        if tokens > self.model.posted - self.model.held:
            self.expect_nothing_written(call, ib.InsufficientTokens)
            return
        entry = call()
        self.model.add(kind="debit", key=key, tokens=tokens)
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
        self.model.add(kind="capture", key=key, tokens=captured, hold=hold["key"])
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
        self.model.add(kind="void", key=entry.key, tokens=hold["tokens"], hold=hold["key"])
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
                       of=spent["key"])
        self.writes.append((call, entry))

    @rule(seconds=st.integers(0, 3600))
    def advance(self, seconds: int) -> None:
        self.now += timedelta(seconds=seconds)

    @rule()
    def expire(self) -> None:
        due = [h for h in self.model.open_holds()
               if h["expires_at"] is not None and h["expires_at"] <= self.now]
        written = self.ledger.expire_holds()
        assert [h["key"] for h in due] == [self.ledger.get(e.ref).key for e in written]
        for hold, entry in zip(due, written, strict=True):
            self.model.add(kind="expire", key=entry.key, tokens=hold["tokens"], hold=hold["key"])

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
        assert len(self.model.records) == self.ledger.verify()
        spent = sum(r["tokens"] for r in self.model.records if r["kind"] in ("debit", "capture"))
        refunded = sum(r["tokens"] for r in self.model.of("refund"))
        assert spent - refunded == sum(self.ledger.spend(by="style").values())


class SqliteLedgerMachine(LedgerMachine):
    """The same machine over a SQLite file, a fresh one for each example."""

    def make_ledger(self) -> ib.Ledger:
        self.directory = tempfile.TemporaryDirectory()
        path = Path(self.directory.name) / "ledger.db"
        return ib.Ledger.open(path, clock=lambda: self.now, durable=False)

    def teardown(self) -> None:
        super().teardown()
        self.directory.cleanup()


TestLedgerMachine = LedgerMachine.TestCase
TestLedgerMachine.settings = settings(TestLedgerMachine.settings, stateful_step_count=50)

TestSqliteLedgerMachine = SqliteLedgerMachine.TestCase
TestSqliteLedgerMachine.settings = settings(
    TestSqliteLedgerMachine.settings, stateful_step_count=50,
    max_examples=min(200, TestSqliteLedgerMachine.settings.max_examples),
)
