"""The writes of a ledger: each in one store transaction, appended to the hash chain.

`Writer` does what `Ledger`'s writes document: it looks up a replayed key, checks the room
for a hold or debit (available tokens, hard budgets, lapsed holds expired first), appends
the entry of a `Draft` with its hash, and updates the tip and the budgets' running figures
in the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from imagine_billing._checks import format_timestamp
from imagine_billing.errors import (
    AmountTooLarge,
    BillingError,
    BudgetConflict,
    BudgetExceeded,
    HoldClosed,
    IdempotencyConflict,
    InsufficientTokens,
    LedgerCorrupted,
    OutOfOrder,
    UnknownBudget,
    UnknownEntry,
)
from imagine_billing.ledger import _draft
from imagine_billing.ledger._budget_tracking import DAY, BudgetTracker, BudgetUse
from imagine_billing.ledger._chain import MAX_BALANCE, removal
from imagine_billing.ledger._draft import Draft, check_key, split
from imagine_billing.ledger._reads import open_hold, ref_of, resolve
from imagine_billing.ledger.model import (
    Entry,
    Hold,
    budget_key,
    canonical,
    chain_hash,
    fingerprint_of,
    from_micros,
    styles_text,
    tags_text,
    to_micros,
)
from imagine_billing.ledger.store import Store, Tip

if TYPE_CHECKING:
    from imagine_billing.ledger.budgets import Budget

__all__ = ["Stamp", "Writer"]

Stamp = tuple[int, datetime]
"""A write's time as stored (microseconds) and as its entry shows it."""

_SPENDS = frozenset(("debit", "capture", "refund"))
"""The kinds whose change of ``posted`` is spend (a refund gives spend back)."""

_CLOSING = frozenset(("capture", "void", "expire"))
"""The kinds that close the hold they refer to."""

_MOVES = frozenset(("credit", "hold", "capture", "void", "expire", "debit", "refund"))
"""The kinds that move tokens (posted or held): a back-dated write goes after them all."""


class Writer:
    """The writes of a ledger over ``store``, timed by ``clock``, its budgets ``budgets``."""

    def __init__(self, store: Store, clock: Callable[[], datetime],
                 budgets: BudgetTracker) -> None:
        self._store = store
        self._clock = clock
        self._budgets = budgets

    def stamp(self) -> Stamp:
        """The clock's time as stored (microseconds) and as an entry shows it."""
        when = self._clock()
        micros = to_micros(when)
        return micros, when if when.tzinfo is UTC else from_micros(micros)

    def backdated(self, at: datetime) -> Stamp:
        """The stamp of a write back-dated to ``at`` (inside its transaction).

        Raises:
            ValueError: ``at`` is later than the clock's now.
            OutOfOrder: An entry that moves tokens is later than ``at``: a back-dated write
                never goes before one, so that the balance at any past moment (`available_at`,
                forecasts, reconciliations) is the one the ledger had then. Entries that move
                no tokens (budgets, notes, observations) may be later.
        """
        micros = to_micros(at)
        now = self.stamp()
        if micros > now[0]:
            raise ValueError(f"at {format_timestamp(at)} is later than now "
                             f"({format_timestamp(now[1])}): a write may be back-dated, "
                             "never post-dated")
        for row in self._store.rows(since=micros + 1):
            if row[1] in _MOVES:
                raise OutOfOrder(format_timestamp(at), row[0], row[1],
                                 format_timestamp(from_micros(row[4])))
        return micros, from_micros(micros)

    # -- the chain ------------------------------------------------------------------------

    @staticmethod
    def _replay_of(found: Entry, kind: str, fingerprint: str) -> Entry:
        """``found``, the entry of a key used again, if the request is the same; else
        `IdempotencyConflict`."""
        if found.kind != kind or found.fingerprint != fingerprint:
            raise IdempotencyConflict(
                found.key, f"entry {found.id} is {_article(found.kind)} {found.kind} of "
                f"{found.tokens} tokens "
                f"made by another request")
        return found

    def _replayed(self, key: str, kind: str, fingerprint: str) -> Entry | None:
        found = self._store.by_key(key)
        return None if found is None else self._replay_of(found, kind, fingerprint)

    def _append(self, draft: Draft, stamp: Stamp | None = None, use: BudgetUse | None = None,
                tip: Tip | None = None) -> tuple[Entry, bool]:
        """Write ``draft``'s entry, unless its key is used: then the original entry of a
        replay (or `IdempotencyConflict`). Returns the entry and whether it was written.

        ``stamp``, ``use`` and ``tip``: the time, budgets and tip the caller read in this
        transaction, if it did (and wrote nothing since).
        """
        store = self._store
        if tip is None:
            tip = store.tip()
        micros, at = self.stamp() if stamp is None else stamp
        (kind, key, tokens, fingerprint, posted, held, ref, memo, tags, styles, version, table,
         expires_at, spent_at, _) = draft
        tags = tags or {}
        expires = None if expires_at is None else to_micros(expires_at)
        row = (tip.id + 1, kind, key, tokens, micros, ref, memo, tags_text(tags),
               styles_text(styles), version, table, expires, fingerprint)
        digest = chain_hash(tip.hash, row)
        entry = Entry(tip.id + 1, kind, key, tokens, at, ref, memo, tags, styles, version, table,
                      None if expires is None else from_micros(expires), fingerprint, digest)
        new_tip = Tip(entry.id, digest, tip.posted + posted, tip.held + held)
        taken = store.append(entry, (*row, digest), new_tip, opens=kind == "hold",
                             closes=ref if kind in _CLOSING else None)
        if taken is not None:
            return self._replay_of(taken, kind, fingerprint), False
        # Budgets: spend is what leaves posted (debits, captures; refunds give it back).
        spent = -posted if kind in _SPENDS else 0
        budgets = self._budgets
        if spent or held:
            budgets.written(tip, new_tip, budgets.track(
                tags, at, spent, held, use=use, period_at=spent_at or at,
                entry=entry.id), micros // DAY)
        else:
            budgets.written(tip, new_tip, None, None if kind != "budget" else -1)
        return entry, True

    # -- room for a hold or debit ---------------------------------------------------------

    def _room(self, tokens: int, tags: Mapping[str, str], micros: int,
              tip: Tip) -> BudgetUse:
        """Raise `InsufficientTokens` or `BudgetExceeded` unless ``tokens`` more may be held
        or spent (``tip``: the store's now); returns the budgets' use, for `_append`."""
        available = tip.posted - tip.held
        if tokens > available:
            raise InsufficientTokens(tokens, available)
        return self._budgets.check(tokens, tags, micros)

    def _room_after_expiry(self, refusal: InsufficientTokens | BudgetExceeded, tokens: int,
                           tags: Mapping[str, str], micros: int) -> BudgetUse:
        """`_room` once the holds lapsed by ``micros`` are expired (in a savepoint of this
        transaction); ``refusal`` again, with nothing written, if there is still no room."""
        if not self._store.open_holds(due_by=micros):
            raise refusal
        try:
            with self._store.batch():
                self._expire_due(micros, micros)
                return self._room(tokens, tags, micros, self._store.tip())
        except (InsufficientTokens, BudgetExceeded):
            raise refusal from None

    # -- the writes -----------------------------------------------------------------------

    def note(self, draft: Draft) -> Entry:
        """See `Ledger.note`."""
        with self._store.write():
            return self._append(draft)[0]

    def observe(self, balance: int, key: str, at: datetime | None) -> Entry:
        """See `Ledger.observe`."""
        with self._store.write():
            stamp = self.stamp()
            draft = _draft.observe(balance, key, at, stamp[1])
            found = self._replayed(draft.key, "observe", draft.fingerprint)
            if found is not None:
                return found
            if at is not None and to_micros(at) > stamp[0]:
                raise ValueError(f"at {format_timestamp(at)} is later than now "
                                 f"({format_timestamp(stamp[1])}): a balance is read, then "
                                 "recorded")
            return self._append(draft, stamp)[0]

    def credit(self, draft: Draft) -> Entry:
        """See `Ledger.credit`."""
        with self._store.write():
            stamp = None
            if draft.at is not None:
                # A replay first: the ledger has moved on since the original was written.
                found = self._replayed(draft.key, "credit", draft.fingerprint)
                if found is not None:
                    return found
                stamp = self.backdated(draft.at)
            # The key is looked up by the insert itself (`Store.append`), or on a refusal:
            # a replay returns its original entry even when the request could not be done now.
            tip = self._store.tip()
            if tip.posted + draft.tokens > MAX_BALANCE:
                found = self._replayed(draft.key, "credit", draft.fingerprint)
                if found is not None:
                    return found
                raise ValueError(f"a credit of {draft.tokens} would take the balance "
                                 f"({tip.posted}) past 2**62 = {MAX_BALANCE} tokens")
            return self._append(draft, stamp, tip=tip)[0]

    def hold(self, draft: Draft) -> Hold:
        """See `Ledger.hold`."""
        tags = draft.tags or {}
        with self._store.write():
            stamp = self.stamp()
            tip = self._store.tip()
            try:
                expires_at = draft.expires_at
                if expires_at is not None and to_micros(expires_at) <= stamp[0]:
                    raise ValueError(f"expires_at {expires_at} is not in the future")
                use = self._room(draft.tokens, tags, stamp[0], tip)
            except (ValueError, BillingError) as refusal:
                found = self._replayed(draft.key, "hold", draft.fingerprint)
                if found is not None:
                    return Hold(found, self._store.closing(found.id))
                if not isinstance(refusal, InsufficientTokens | BudgetExceeded):
                    raise
                use = self._room_after_expiry(refusal, draft.tokens, tags, stamp[0])
                tip = self._store.tip()  # holds expired since
            entry, written = self._append(draft, stamp, use, tip)
            return Hold(entry) if written else Hold(entry, self._store.closing(entry.id))

    def debit(self, draft: Draft) -> Entry:
        """See `Ledger.debit`."""
        tags = draft.tags or {}
        with self._store.write():
            if draft.at is None:
                stamp = self.stamp()
            else:
                # A replay first: the ledger has moved on since the original was written.
                found = self._replayed(draft.key, "debit", draft.fingerprint)
                if found is not None:
                    return found
                stamp = self.backdated(draft.at)
            tip = self._store.tip()
            try:
                use = self._room(draft.tokens, tags, stamp[0], tip)
            except (InsufficientTokens, BudgetExceeded) as refusal:
                found = self._replayed(draft.key, "debit", draft.fingerprint)
                if found is not None:
                    return found
                use = self._room_after_expiry(refusal, draft.tokens, tags, stamp[0])
                tip = self._store.tip()  # holds expired since
            return self._append(draft, stamp, use, tip)[0]

    def _closing_key(self, entry: Entry, kind: str, key: str | None) -> str:
        """``key``, else the hold's key + ``":capture"`` (or ``":void"``), with ``":2"``,
        ``":3"``... when another entry, not about this hold, already has that key."""
        if key is not None:
            return check_key(key)
        base = candidate = f"{entry.key}:{kind}"
        suffix = 1
        while (found := self._store.by_key(candidate)) is not None and found.ref != entry.id:
            suffix += 1
            candidate = f"{base}:{suffix}"
        return candidate

    def _closed(self, entry: Entry, key: str, kind: str, fingerprint: str) -> Entry | None:
        """A replay's original entry; raises `HoldClosed` when the hold is closed otherwise."""
        found = self._replayed(key, kind, fingerprint)
        if found is not None:
            return found
        closing = self._store.closing(entry.id)
        if closing is not None:
            raise HoldClosed(entry.id, Hold(entry, closing).status)
        return None

    def capture(self, hold: Entry | Hold | int | str, tokens: int | None,
                key: str | None) -> Entry:
        """See `Ledger.capture` (``tokens`` checked)."""
        with self._store.write():
            entry = open_hold(self._store, hold)
            key = self._closing_key(entry, "capture", key)
            amount = entry.tokens if tokens is None else tokens
            fingerprint = fingerprint_of(kind="capture", tokens=amount, ref=entry.id)
            found = self._closed(entry, key, "capture", fingerprint)
            if found is not None:
                return found
            # One reading of the clock for the check and the entry: a capture is always
            # written before its hold's expires_at (verify checks it).
            stamp = self.stamp()
            if entry.expires_at is not None and to_micros(entry.expires_at) <= stamp[0]:
                raise HoldClosed(entry.id, "lapsed")
            if amount > entry.tokens:
                raise AmountTooLarge("capture", entry.id, amount, entry.tokens)
            return self._append(Draft(
                "capture", key, amount, fingerprint, posted=-amount, held=-entry.tokens,
                ref=entry.id, tags=entry.tags, styles=split(amount, entry.styles),
                table_version=entry.table_version, table_digest=entry.table_digest), stamp)[0]

    def void(self, hold: Entry | Hold | int | str, key: str | None) -> Entry:
        """See `Ledger.void`."""
        with self._store.write():
            entry = open_hold(self._store, hold)
            key = self._closing_key(entry, "void", key)
            fingerprint = fingerprint_of(kind="void", ref=entry.id)
            found = self._closed(entry, key, "void", fingerprint)
            if found is not None:
                return found
            return self._append(Draft("void", key, entry.tokens, fingerprint,
                                      held=-entry.tokens, ref=entry.id, tags=entry.tags))[0]

    def expire_holds(self, now: datetime | None) -> tuple[Entry, ...]:
        """See `Ledger.expire_holds`."""
        due = to_micros(self._clock() if now is None else now)
        with self._store.write():
            micros = max(to_micros(self._clock()), due)
            return tuple(self._expire_due(due, micros))

    def _expire_due(self, due: int, micros: int) -> list[Entry]:
        """Write an ``expire`` entry at ``micros`` for each open hold due by ``due``."""
        written = []
        for hold_id in self._store.open_holds(due_by=due):
            entry = self._store.by_id(hold_id)
            if entry is None or entry.kind != "hold":
                raise LedgerCorrupted(hold_id, "it is recorded as an open hold, but it is no "
                                      "hold entry (run verify)")
            key = base = f"{entry.key}:expire"
            suffix = 1
            while self._store.by_key(key) is not None:  # the key is taken by another write
                suffix += 1
                key = f"{base}:{suffix}"
            fingerprint = fingerprint_of(kind="expire", ref=entry.id)
            written.append(self._append(
                Draft("expire", key, entry.tokens, fingerprint, held=-entry.tokens,
                      ref=entry.id, tags=entry.tags), (micros, from_micros(micros)))[0])
        return written

    def refund(self, entry: Entry | int | str, tokens: int | None, key: str) -> Entry:
        """See `Ledger.refund` (``tokens`` and ``key`` checked)."""
        with self._store.write():
            spent = resolve(self._store, entry, "debit or capture")
            if spent.kind not in ("debit", "capture"):
                raise UnknownEntry(ref_of(entry), "debit or capture")
            fingerprint = fingerprint_of(kind="refund", tokens=tokens, ref=spent.id)
            found = self._replayed(key, "refund", fingerprint)
            if found is not None:
                return found
            left = dict(spent.styles or ((None, spent.tokens),))
            for prior in self._store.refunds(spent.id):
                for style, given in prior.styles:
                    left[style] = left.get(style, 0) - given
            remaining = sum(left.values())
            amount = remaining if tokens is None else tokens
            if amount > remaining or not amount:
                raise AmountTooLarge("refund", spent.id, amount or spent.tokens, remaining)
            return self._append(Draft(
                "refund", key, amount, fingerprint, posted=amount, ref=spent.id,
                tags=spent.tags, styles=split(amount, tuple(left.items())),
                table_version=spent.table_version, table_digest=spent.table_digest,
                spent_at=spent.at))[0]

    def _stored_budget(self, name: str) -> Budget | None:
        for stored, _, _, _ in self._budgets.chain_budgets():
            if stored.name == name:
                return stored
        return None

    def _budget_entry(self, name: str, memo: str) -> tuple[Entry, Stamp]:
        """Append a ``budget`` entry about budget ``name`` with ``memo``."""
        key = budget_key(name, lambda key: self._store.by_key(key) is not None)
        stamp = self.stamp()
        entry, _ = self._append(Draft("budget", key, 0, fingerprint_of(kind="budget", memo=memo),
                                      memo=memo), stamp)
        return entry, stamp

    def _keep(self, budget: Budget, document: str) -> Budget:
        """Append the entry of ``budget`` (new, or new settings), keep its figures beside
        the chain, and record the alerts its spend has crossed already, in each period it
        has figures for (that of now, and later ones a clock set back wrote in)."""
        entry, (micros, _) = self._budget_entry(budget.name, document)
        usage = self._budgets.keep(budget, document, entry.id, micros)
        rows = [row for label, spent in usage.items()
                for row in self._budgets.crossing(budget, label, -1, spent, micros=micros,
                                                  entry=entry.id)]
        if rows:
            self._store.add_alerts(rows)
        return self._budgets.parse(entry.id, document)

    def add_budget(self, budget: Budget) -> Budget:
        """See `Ledger.add_budget` (``budget`` checked)."""
        document = canonical(budget.to_dict())
        with self._store.write():
            stored = self._stored_budget(budget.name)
            if stored is not None:
                existing = canonical(stored.to_dict())
                if existing != document:
                    raise BudgetConflict(stored.name, existing)
                return stored
            return self._keep(budget, document)

    def update_budget(self, budget: Budget) -> Budget:
        """See `Ledger.update_budget` (``budget`` checked)."""
        document = canonical(budget.to_dict())
        with self._store.write():
            stored = self._stored_budget(budget.name)
            if stored is None:
                raise UnknownBudget(budget.name, [b.name for b, _, _, _
                                                  in self._budgets.chain_budgets()])
            if canonical(stored.to_dict()) == document:
                return stored
            self._store.drop_budget(budget.name)
            return self._keep(budget, document)

    def remove_budget(self, name: str) -> Budget:
        """See `Ledger.remove_budget`."""
        with self._store.write():
            stored = self._stored_budget(name)
            if stored is None:
                raise UnknownBudget(name, [b.name for b, _, _, _
                                           in self._budgets.chain_budgets()])
            self._budget_entry(name, removal(name))
            self._store.drop_budget(name)
            return stored


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"
