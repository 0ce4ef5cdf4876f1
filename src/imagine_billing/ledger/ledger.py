"""`Ledger`: the rules of the token ledger, over any `Store`.

The ledger is held to the standard of a payments system: no entry lost, none counted twice, no
balance below zero, any tampering detected.

- Every write runs in one store transaction (SQLite: ``BEGIN IMMEDIATE``): the idempotency
  lookup, the balance check and the append cannot interleave with another writer's.
- Every write carries a key. The same key with the same request returns the original entry
  and changes nothing; with another request it raises `IdempotencyConflict`.
- `balance` is read from the tip the store keeps in the same transaction as each entry: O(1).
- Captures are spend, so they can be refunded like debits: over all refunds of one debit or
  capture, at most its tokens.
- Budgets (`add_budget`, `imagine_billing.ledger.budgets.Budget`) are entries of the chain
  (kind ``budget``, 0 tokens, the budget's document as the memo): their settings are read
  from those entries, and `verify` checks what the store keeps beside them. A
  hard one is checked in the transaction of the hold or debit that would exceed it, against
  running figures the store keeps with every entry (the spend of the current period and the
  open holds in its scope): a refused write raises `BudgetExceeded` and writes nothing. A
  capture moves tokens from held to spent, so it is never counted twice. Budgets count from
  the period in which they were added (that period's earlier spend included) on; a hold or
  debit the clock (set back) places in an earlier period is neither counted nor refused by
  them, and they keep no figures for those periods.
- A hold that lapsed (past its ``expires_at``) reserves its tokens until it is expired: a hold
  or debit that would be refused for them first expires the lapsed holds, in its own
  transaction, and is checked again (refused all the same, it writes nothing).
- One `Ledger` may be shared by threads (both stores serialise their use).

What the hash chain proves, and what it cannot: each entry's hash covers its content and the
hash before it, so `verify` detects any change, insertion, removal or reordering of entries
that leaves the later hashes or the recorded tip as they were. The hash is not keyed: someone
who can write the file can also cut the last entries and set the tip back, or rewrite the
whole chain and recompute every hash, and `verify` alone cannot tell. Anchor the chain: keep
`head` (the last entry's id and hash; ``ledger verify`` prints it) somewhere the ledger's
file cannot reach, and check later that the chain still holds it,
``verify(expect=(id, hash))``. The same holds for an export: ``from_jsonl(..., expect=...)``
refuses one that was cut short or rewritten.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from imagine_billing.errors import LedgerStoreError
from imagine_billing.ledger import _archive, _draft
from imagine_billing.ledger._audit import LedgerAudit
from imagine_billing.ledger._budget_tracking import BudgetTracker
from imagine_billing.ledger._chain import Anchor, check_anchor
from imagine_billing.ledger._memory import MemoryStore
from imagine_billing.ledger._writer import Writer
from imagine_billing.ledger.alerts import Alert, new_row
from imagine_billing.ledger.model import Entry, Hold, to_micros
from imagine_billing.ledger.store import Store

if TYPE_CHECKING:
    from imagine_billing.estimator import Estimate
    from imagine_billing.ledger.budgets import Budget

__all__ = ["Clock", "Ledger"]

Clock = Callable[[], datetime]
"""A callable returning the current time as an aware datetime."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Ledger(LedgerAudit):
    """A token ledger: credits, two-phase holds, debits and refunds, hash-chained.

    Open one with `Ledger.open` (a SQLite file) or `Ledger.memory`; close it with `close` or a
    ``with`` block. Example::

        with Ledger.open("tokens.db") as ledger:
            ledger.credit(100, key="topup-1")
            hold = ledger.hold(15, key="job-7")       # available 85
            ledger.capture(hold, 10)                  # spends 10, releases the other 5
            ledger.balance()                          # Balance(posted=90, held=0, available=90)

    One ledger object may be shared by threads: its store serialises their calls, and a
    `batch` (or `snapshot`) block belongs to the thread that opened it, the other threads'
    calls waiting for it to end.

    Args:
        store: Where the entries live (`MemoryStore`, `SqliteStore` or another `Store`).
        clock: Returns the current time (aware); defaults to now in UTC.
    """

    def __init__(self, store: Store, *, clock: Clock | None = None) -> None:
        self._store = store
        self._clock: Clock = clock or _utc_now
        self._budgets = BudgetTracker(store, self.now)
        self._writer = Writer(store, self._clock, self._budgets)

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, name: str = "main",
             clock: Clock | None = None, durable: bool = True, timeout: float = 30.0,
             readonly: bool = False) -> Ledger:
        """A ledger in a SQLite file, or in a PostgreSQL database; created if missing
        (unless ``readonly``).

        A file with more than one hard link is not opened for writing: writers through two
        names that SQLite cannot tell are one file would lose each other's entries (see
        `imagine_billing.ledger.sqlite.SqliteStore`). A ``postgresql://`` URL opens the
        ledger ``name`` of that database, shared by every host that opens it (see
        `imagine_billing.ledger.postgres.PostgresStore`; it needs the ``postgres`` extra).

        Args:
            path: The database file, or a ``postgresql://user:password@host/database`` URL.
            name: The ledger's name in a PostgreSQL database (many ledgers share one); a
                SQLite file holds one ledger, ``"main"``.
            clock: Returns the current time (aware); defaults to now in UTC.
            durable: ``True`` (default): each commit is flushed to disk (SQLite
                ``synchronous=FULL``, PostgreSQL ``synchronous_commit``); ``False``: faster,
                safe against a process crash but not a power cut (or server crash).
            timeout: Seconds to wait for another writer's lock (and, on PostgreSQL, for a
                connection).
            readonly: Only read: the file (or ledger) must exist, and a file may be in a
                folder or on a mount that cannot be written; every write raises
                `LedgerStoreError`.

        Raises:
            LedgerStoreError: The file or database cannot be used as a ledger (or, unless
                ``readonly``, the file has more than one hard link); a SQLite path with a
                ``name`` other than ``"main"``; a URL without the ``postgres`` extra.
        """
        from imagine_billing.ledger.postgres import is_url

        if is_url(path):
            from imagine_billing.ledger.postgres import PostgresStore

            return cls(PostgresStore(str(path), name=name, durable=durable, timeout=timeout,
                                     readonly=readonly), clock=clock)
        if name != "main":
            raise LedgerStoreError(os.fspath(path), f"a SQLite file holds one ledger, "
                                   f"'main' (got name={name!r}): use a file per ledger, or "
                                   "a postgresql:// URL for named ledgers")
        from imagine_billing.ledger.sqlite import SqliteStore

        return cls(SqliteStore(path, durable=durable, timeout=timeout, readonly=readonly),
                   clock=clock)

    @classmethod
    def memory(cls, *, clock: Clock | None = None) -> Ledger:
        """A ledger in this process' memory, gone when the process ends."""
        return cls(MemoryStore(), clock=clock)

    @classmethod
    def from_jsonl(cls, lines: Iterable[str], *, path: str | os.PathLike[str] | None = None,
                   name: str = "main", clock: Clock | None = None, source: str = "<jsonl>",
                   expect: Anchor | None = None) -> Ledger:
        """A new ledger holding the entries of an `export` in JSON lines, chain verified.

        A chain cut short, or rewritten with every hash recomputed, still verifies on its
        own (see the module's notes): give ``expect``, the `head` recorded when the export
        was made, to refuse those too.

        Args:
            lines: The exported lines (an open text file will do).
            path: A SQLite file to import into (created if missing; it must hold no entries),
                or a ``postgresql://`` URL (the ledger ``name`` there must hold no entries);
                ``None`` imports into memory.
            name: The ledger's name in a PostgreSQL database.
            clock: The new ledger's clock.
            source: A name for ``lines`` in error messages.
            expect: ``(id, hash)`` of an entry the export must hold (`head` of the ledger
                it came from).

        Returns:
            The new ledger (open; close it when done).

        Raises:
            LedgerCorrupted: The chain does not verify (an entry changed, missing or
                reordered, an impossible balance, or not ``expect``); nothing is imported.
            BadRecordError: A line is not an entry document.
            LedgerStoreError: ``path`` already holds entries.

        A failed import leaves the file system as it was: a file it created (at the end of
        a symbolic link, if ``path`` is one) is removed, with its SQLite companions.
        """
        anchor = check_anchor(expect)
        if path is None:
            ledger = cls.memory(clock=clock)
            created: list[str] = []
        else:
            from imagine_billing.ledger._sqlite_files import new_files
            from imagine_billing.ledger.postgres import is_url

            # In PostgreSQL, a failed import is rolled back (one transaction).
            created = [] if is_url(path) else new_files(path)
            ledger = cls.open(path, name=name, clock=clock)
        try:
            _archive.import_lines(ledger._store, ledger._budgets, lines, source, anchor)
        except BaseException:
            ledger.close()
            for file in created:
                with suppress(FileNotFoundError):
                    os.remove(file)
            raise
        return ledger

    def close(self) -> None:
        """Close the store (a closed ledger cannot be used)."""
        self._store.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def batch(self) -> Iterator[Ledger]:
        """Group writes in one transaction, all or nothing: much faster than one each.

        An exception leaving the block undoes every write made in it; a batch nested in
        another is all or nothing on its own (an exception leaving the inner block undoes
        the inner writes only, and the outer block goes on). Other processes wait for the
        block to end (it holds the write lock), so keep it short.

        A batch belongs to the thread that opened it: on a `Ledger` shared by threads, the
        other threads' writes (and reads) wait until the block ends; they never join it,
        so an exception in one thread's batch cannot undo another thread's write.
        """
        with self._store.batch():
            yield self

    @contextmanager
    def relaxed(self) -> Iterator[Ledger]:
        """Writes made in this block commit without waiting for the disk: each survives a
        crash of the process as soon as it returns, and the next durable write flushes it
        to disk; a crash of the machine (power, kernel) before then may lose it.

        The metered transports settle answers this way (one disk flush per request, the
        hold's, not two): a hold, written before its request is sent, is always durable, and
        it flushes the settlements written before it. On a ledger opened with
        ``durable=False``, and inside a write or batch already begun, nothing changes.

        On SQLite the block holds the ledger object's lock (the setting is the connection's,
        so that only this thread's writes commit relaxed): other threads' writes on the same
        object wait for it to end, as for `batch`; keep it short.
        """
        with self._store.relaxed():
            yield self

    # -- writes ---------------------------------------------------------------------------

    def note(self, *, key: str, memo: str, tags: Mapping[str, str] | None = None) -> Entry:
        """Record a fact that moves no tokens, in the chain like any entry.

        The metered transport notes calls sent unpriced (at cost 0) and *drift*: a 402 from
        the API while the ledger believed the tokens were there, with the balance it believed,
        so that a person can reconcile with the Studio's Usage tab.

        Args:
            key: The idempotency key.
            memo: What happened (not empty).
            tags: Labels such as ``{"drift": "true", "believed_available": "100"}``.

        Returns:
            The ``note`` entry (``tokens`` 0; the original one on a replay).

        Raises:
            IdempotencyConflict: ``key`` was used for another request.
            TypeError, ValueError: A bad key, memo or tags.
        """
        return self._writer.note(_draft.note(key, memo, tags))

    def observe(self, balance: int, *, key: str, at: datetime | None = None) -> Entry:
        """Record a balance read from the Studio's Usage tab (or the API), to reconcile with.

        An ``observe`` entry of the chain that moves no tokens: its memo holds the balance
        and when it was read, ``{"at": microseconds, "balance": tokens}``.
        `imagine_billing.planner.reconcile` compares it with what the ledger says then.

        Args:
            balance: The tokens the provider showed (an int >= 0).
            key: The idempotency key.
            at: When it was read (aware, not later than now); default now.

        Returns:
            The ``observe`` entry (the original one on a replay).

        Raises:
            IdempotencyConflict: ``key`` was used for another request.
            TypeError, ValueError: A bad balance, key or time.
        """
        if at is not None:
            to_micros(at)  # naive: ValueError
        return self._writer.observe(balance, key, at)

    def credit(self, tokens: int, *, key: str, memo: str | None = None,
               tags: Mapping[str, str] | None = None, at: datetime | None = None) -> Entry:
        """Add tokens (a top-up, a grant).

        Args:
            tokens: An int >= 1.
            key: The idempotency key.
            memo: Free text.
            tags: Labels such as ``{"project": "site"}``.
            at: When the tokens came, to record history (an opening balance before a usage
                log is imported, see `debit`); default now. Not later than the clock's now,
                and not before any entry that moves tokens.

        Returns:
            The ``credit`` entry (the original one on a replay).

        Raises:
            IdempotencyConflict: ``key`` was used for another request (``at`` is part of
                the request).
            OutOfOrder: An entry that moves tokens is later than ``at``.
            TypeError, ValueError: A bad amount, key, memo, tags or ``at`` (naive, or
                later than now), or a balance past 2**62.
        """
        return self._writer.credit(_draft.credit(tokens, key, memo, tags, at))

    def hold(self, amount: int | Estimate, *, key: str, tags: Mapping[str, str] | None = None,
             expires_at: datetime | None = None, memo: str | None = None) -> Hold:
        """Reserve tokens, to `capture` (spend) or `void` later; like a card authorisation.

        Args:
            amount: Tokens (an int >= 1) or an `Estimate` (its total; its styles and price
                table are recorded).
            key: The idempotency key.
            tags: Labels such as ``{"project": "site"}``.
            expires_at: When the hold lapses: it can no longer be captured, and
                `expire_holds` releases it. Must be later than now.
            memo: Free text.

        Returns:
            The open `Hold` (on a replay, the original hold as it is now).

        Raises:
            InsufficientTokens: ``amount`` is more than available, even once the lapsed
                holds are expired; nothing is written.
            BudgetExceeded: A hard budget would be exceeded; nothing is written.
            IdempotencyConflict: ``key`` was used for another request.
            TypeError, ValueError: A bad amount, key, tags or time.
        """
        return self._writer.hold(_draft.hold(amount, key, tags, expires_at, memo))

    def debit(self, amount: int | Estimate, *, key: str, tags: Mapping[str, str] | None = None,
              memo: str | None = None, at: datetime | None = None) -> Entry:
        """Spend tokens at once (a hold captured in one step).

        ``at`` back-dates the debit, to record spend that happened before (a usage log:
        see `imagine_billing.planner.history.import_usage`): the entry is written now, at
        the end of the chain, with ``at`` as its time. It may not be later than the clock's
        now, nor earlier than any entry that moves tokens (credits, holds and their
        captures, voids and expiries, debits, refunds): so the ledger's history stays in
        time order, and its balance at any past moment, its forecasts and its budgets'
        periods are right. Entries that move no tokens (budgets, notes, observations) may
        be later. The balance and hard budgets are checked as for any debit (a budget
        against the spend of the period holding ``at``).

        Args:
            amount: Tokens (an int >= 1) or an `Estimate`.
            key: The idempotency key.
            tags: Labels such as ``{"project": "site"}``.
            memo: Free text.
            at: When the spend happened (aware); default now.

        Returns:
            The ``debit`` entry (the original one on a replay).

        Raises:
            InsufficientTokens: ``amount`` is more than available, even once the lapsed
                holds are expired; nothing is written.
            BudgetExceeded: A hard budget would be exceeded; nothing is written.
            IdempotencyConflict: ``key`` was used for another request (``at`` is part of
                the request).
            OutOfOrder: An entry that moves tokens is later than ``at``; nothing is written.
            TypeError, ValueError: A bad amount, key or tags, or ``at`` naive or later than
                now.
        """
        return self._writer.debit(_draft.debit(amount, key, tags, memo, at))

    def capture(self, hold: Entry | Hold | int | str, tokens: int | None = None, *,
                key: str | None = None) -> Entry:
        """Spend some or all of a hold and close it; the rest is released.

        capture(hold of 15, tokens=10) spends 10 and gives the other 5 back to available.

        Args:
            hold: The `Hold`, its entry, its id (int) or its key (str).
            tokens: At most the hold's tokens; ``None`` captures them all.
            key: The idempotency key; defaults to the hold's key + ``":capture"`` (+
                ``":2"``, ``":3"``... if another entry already has that key).

        Returns:
            The ``capture`` entry (the original one on a replay).

        Raises:
            UnknownEntry: No such hold.
            HoldClosed: The hold was voided, expired, captured by another request, or is past
                its ``expires_at``.
            AmountTooLarge: ``tokens`` is more than the hold's.
            IdempotencyConflict: ``key`` was used for another request.
        """
        if tokens is not None:
            _draft.check_tokens(tokens)
        return self._writer.capture(hold, tokens, key)

    def void(self, hold: Entry | Hold | int | str, *, key: str | None = None) -> Entry:
        """Cancel a hold: all its tokens return to available.

        Args:
            hold: The `Hold`, its entry, its id (int) or its key (str).
            key: The idempotency key; defaults to the hold's key + ``":void"`` (+ ``":2"``,
                ``":3"``... if another entry already has that key).

        Returns:
            The ``void`` entry (the original one on a replay).

        Raises:
            UnknownEntry: No such hold.
            HoldClosed: The hold was captured, expired or voided by another request.
            IdempotencyConflict: ``key`` was used for another request.
        """
        return self._writer.void(hold, key)

    def expire_holds(self, now: datetime | None = None) -> tuple[Entry, ...]:
        """Release every open hold whose ``expires_at`` is at or before ``now``.

        The ``expire`` entries are written at ``now`` or the clock's time, whichever is later:
        never before the hold lapsed.

        Args:
            now: The time to compare with (aware); defaults to the ledger's clock.

        Returns:
            The ``expire`` entries written, oldest hold first (empty when none was due).
        """
        return self._writer.expire_holds(now)

    def refund(self, entry: Entry | int | str, tokens: int | None = None, *,
               key: str) -> Entry:
        """Give back tokens of a debit or capture.

        Over all its refunds, an entry gives back at most its tokens: after debit(20) and
        refund(debit, 15), refund(debit, 10) raises `AmountTooLarge` (5 left).

        Args:
            entry: The debit or capture: an `Entry`, its id (int) or its key (str).
            tokens: At most what is left to refund; ``None`` refunds all of that.
            key: The idempotency key. (A replay must repeat ``tokens`` as first given:
                ``None`` and the number it came to are different requests.)

        Returns:
            The ``refund`` entry (the original one on a replay).

        Raises:
            UnknownEntry: No such debit or capture.
            AmountTooLarge: ``tokens`` is more than what is left to refund.
            IdempotencyConflict: ``key`` was used for another request.
        """
        if tokens is not None:
            _draft.check_tokens(tokens)
        return self._writer.refund(entry, tokens, _draft.check_key(key))

    # -- budgets --------------------------------------------------------------------------

    def add_budget(self, budget: Budget) -> Budget:
        """Keep ``budget`` in the ledger: from now on it counts, and a hard one refuses.

        The budget is an entry of the chain (kind ``budget``, 0 tokens, its document as the
        memo, key ``budget:<name>``, or ``budget:<name>:2``... when that key is taken), so
        `verify` detects any later edit of its settings. A budget counts from the period in
        which it is added (by the ledger's clock) on: a budget added mid-period starts with
        the period's spend and the open holds in its scope (and with the spend already
        written in later periods, should the clock have been set back). The periods before
        are not its own: a hold or debit placed in one (the clock set back) is neither
        counted nor refused by it. Adding the same budget again changes nothing.

        Args:
            budget: The `Budget`.

        Returns:
            The budget as stored.

        Raises:
            BudgetConflict: The ledger has a budget of that name with other settings (an
                `IdempotencyConflict`; ``.existing`` holds them).
            TypeError: ``budget`` is not a `Budget`.
        """
        from imagine_billing.ledger.budgets import Budget

        if not isinstance(budget, Budget):
            raise TypeError(f"add_budget takes a Budget (got {budget!r})")
        return self._writer.add_budget(budget)

    def update_budget(self, budget: Budget) -> Budget:
        """Change the settings of the budget of ``budget.name`` (its limit, period, scope,
        alerts, hardness): a new ``budget`` entry in the chain, so `verify` detects any
        later edit of them as it does for an added budget.

        The budget then counts as if added anew now: from the period holding now on (that
        period's spend included), with the alerts its spend has crossed under the new
        settings recorded at once. The same settings again change nothing.

        Returns:
            The budget as stored.

        Raises:
            UnknownBudget: The ledger has no budget of that name.
            TypeError: ``budget`` is not a `Budget`.
        """
        from imagine_billing.ledger.budgets import Budget

        if not isinstance(budget, Budget):
            raise TypeError(f"update_budget takes a Budget (got {budget!r})")
        return self._writer.update_budget(budget)

    def remove_budget(self, name: str) -> Budget:
        """Remove the budget ``name``: it no longer counts or refuses. A ``budget`` entry of
        the chain records the removal (its memo ``{"name": ..., "removed": true}``); the
        name may be used again by a later `add_budget`.

        Returns:
            The budget as it was.

        Raises:
            UnknownBudget: The ledger has no budget of that name.
        """
        if not isinstance(name, str):
            raise TypeError(f"remove_budget takes a budget's name (got {name!r})")
        return self._writer.remove_budget(name)

    # -- alerts ---------------------------------------------------------------------------

    def record_alerts(self, alerts: Iterable[Alert]) -> tuple[Alert, ...]:
        """Record ``alerts`` in the outbox, in one transaction, those it has not recorded
        already (by id); returns those it recorded now."""
        wanted = list(alerts)
        for alert in wanted:
            if not isinstance(alert, Alert):
                raise TypeError(f"record_alerts takes Alerts (got {alert!r})")
        with self._store.write():
            known = {row[0] for row in self._store.alert_rows()}
            new = [alert for alert in wanted if alert.id not in known]
            if new:
                self._store.add_alerts([new_row(alert) for alert in new])
        return tuple(new)

    def mark_alert(self, alert: Alert | str, *, delivered: bool,
                   error: str | None = None) -> None:
        """Count a delivery attempt of ``alert`` (an `Alert` or its id): delivered now (a
        receiver answered 2xx), or not, with ``error`` saying why. A delivered alert stays
        delivered."""
        alert_key = alert.id if isinstance(alert, Alert) else alert
        with self._store.write():
            self._store.mark_alert(alert_key, delivered_at=to_micros(self._clock())
                                   if delivered else None, error=error)
