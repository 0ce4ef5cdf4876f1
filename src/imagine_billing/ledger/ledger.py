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
- Budgets (`add_budget`, `imagine_billing.ledger.budgets.Budget`) live in the same store. A
  hard one is checked in the transaction of the hold or debit that would exceed it, against
  running figures the store keeps with every entry (the spend of the current period and the
  open holds in its scope): a refused write raises `BudgetExceeded` and writes nothing. A
  capture moves tokens from held to spent, so it is never counted twice. Budgets count from
  the period in which they were added (that period's earlier spend included).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import IO, TYPE_CHECKING, Any, Literal

import attrs

from imagine_billing._checks import positive_int
from imagine_billing.errors import (
    AmountTooLarge,
    BadRecordError,
    BudgetExceeded,
    HoldClosed,
    IdempotencyConflict,
    InsufficientTokens,
    LedgerCorrupted,
    LedgerStoreError,
    UnknownEntry,
)
from imagine_billing.ledger.model import (
    GENESIS,
    Balance,
    Entry,
    EntryKind,
    Hold,
    Row,
    canonical,
    chain_hash,
    from_micros,
    styles_text,
    tags_text,
    to_micros,
)
from imagine_billing.ledger.store import MemoryStore, Store, Tip

if TYPE_CHECKING:
    from imagine_billing.ledger.budgets import Budget

BudgetUse = list[tuple["Budget", int, int]]
"""Each budget with the tokens of its open holds and its spend in the current period."""

__all__ = ["Clock", "Ledger"]

Clock = Callable[[], datetime]
"""A callable returning the current time as an aware datetime."""

Styles = tuple[tuple[str | None, int], ...]

_CSV_FIELDS = ("id", "kind", "key", "tokens", "at", "ref", "memo", "tags", "styles",
               "table_version", "table_digest", "expires_at", "fingerprint", "hash")


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _check_tokens(value: object, name: str = "tokens") -> int:
    """``value`` if it is a whole number of tokens (an int >= 1); see `positive_int`."""
    return positive_int(value, name)


_MAX_BALANCE = 2**62
"""The most tokens a ledger holds: sums of entries stay inside SQLite's 64-bit integers."""


def _text(value: str, what: str) -> str:
    """``value`` if it can be stored as UTF-8 (no lone surrogates, as from undecodable bytes)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{what} {value!r} is not valid Unicode text") from None
    return value


def _check_key(key: object) -> str:
    if not isinstance(key, str):
        raise TypeError(f"key must be a non-empty string (got {key!r})")
    if not key:
        raise ValueError("key must be a non-empty string (got '')")
    return _text(key, "key")


def _check_tags(tags: Mapping[str, str] | None) -> dict[str, str]:
    if tags is None:
        return {}
    if not isinstance(tags, Mapping):
        raise TypeError(f"tags must be a mapping of strings to strings (got {tags!r})")
    for name, value in tags.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError(f"tag {name!r}={value!r}: names and values must be strings")
        _text(name, "tag name")
        _text(value, "tag value")
    return dict(sorted(tags.items()))


def _check_memo(memo: object) -> str | None:
    if memo is not None and not isinstance(memo, str):
        raise TypeError(f"memo must be a string or None (got {memo!r})")
    return None if memo is None else _text(memo, "memo")


@attrs.frozen
class _Amount:
    tokens: int
    styles: Styles
    table_version: str | None = None
    table_digest: str | None = None


def _amount(amount: object) -> _Amount:
    """An int of tokens, or an estimate (anything with ``total``, ``lines``, ``table_*``)."""
    if isinstance(amount, int) and not isinstance(amount, bool):
        tokens = _check_tokens(amount, "amount")
        return _Amount(tokens, ((None, tokens),))
    if hasattr(amount, "total") and hasattr(amount, "lines"):
        tokens = _check_tokens(amount.total, "estimate total")
        by_style: dict[str | None, int] = {}
        for line in amount.lines:
            style = getattr(line, "style", None) or getattr(line.call, "style", None)
            if line.subtotal:
                by_style[style] = by_style.get(style, 0) + int(line.subtotal)
        rest = tokens - sum(by_style.values())
        if rest:
            by_style[None] = by_style.get(None, 0) + rest
        styles = tuple(sorted(by_style.items(), key=_style_order))
        return _Amount(tokens, styles, getattr(amount, "table_version", None),
                       getattr(amount, "table_digest", None))
    raise TypeError(f"amount must be an int >= 1 or an Estimate (got {amount!r})")


def _style_order(item: tuple[str | None, int]) -> tuple[bool, str]:
    return (item[0] is not None, item[0] or "")


def _split(total: int, parts: Styles) -> Styles:
    """``total`` shared among ``parts`` in proportion to their tokens (largest remainder).

    ``_split(10, (("a", 10), ("b", 5)))`` is ``(("a", 7), ("b", 3))``; each share is at most
    its part, and the shares sum to ``total`` (which must not exceed the parts' sum).
    """
    whole = sum(tokens for _, tokens in parts)
    if not whole:
        return ((None, total),)
    if whole == total:
        return tuple((style, tokens) for style, tokens in parts if tokens)
    shares = [(style, total * tokens // whole, total * tokens % whole) for style, tokens in parts]
    left = total - sum(share for _, share, _ in shares)
    bonus = set(sorted(range(len(shares)), key=lambda i: -shares[i][2])[:left])
    result = ((style, share + (i in bonus)) for i, (style, share, _) in enumerate(shares))
    return tuple((style, share) for style, share in result if share)


def _fingerprint(**request: Any) -> str:
    return hashlib.sha256(canonical(request).encode("utf-8")).hexdigest()


class _Replay:
    """Re-applies rows in order, checking the chain and the balance rules (verify, import)."""

    def __init__(self) -> None:
        self.id = 0
        self.hash = GENESIS
        self.posted = 0
        self.held = 0
        self.open: dict[int, int] = {}
        self.refundable: dict[int, int] = {}

    def apply(self, row: Row) -> tuple[bool, int | None]:
        """Check ``row`` and apply it; returns ``(opens, closes)`` for `Store.append`."""
        entry_id, kind, tokens, ref = row[0], row[1], row[3], row[5]
        if entry_id != self.id + 1:
            raise LedgerCorrupted(self.id + 1, f"the entry is missing (entry {entry_id} follows "
                                  f"entry {self.id})")
        if chain_hash(self.hash, row[:-1]) != row[-1]:
            raise LedgerCorrupted(entry_id, "its hash does not match its content and the "
                                  "previous entry's hash (changed, inserted or reordered)")
        if type(tokens) is not int or tokens < (0 if kind == "note" else 1):
            raise LedgerCorrupted(entry_id, f"bad token amount {tokens!r}")
        opens, closes = False, None
        if kind == "note":
            if tokens != 0:
                raise LedgerCorrupted(entry_id, f"a note moves no tokens (it has {tokens})")
        elif kind == "credit":
            self.posted += tokens
        elif kind == "debit":
            self.posted -= tokens
            self.refundable[entry_id] = tokens
        elif kind == "hold":
            self.held += tokens
            self.open[entry_id] = tokens
            opens = True
        elif kind in ("capture", "void", "expire"):
            held = self.open.pop(ref, None)
            if held is None:
                raise LedgerCorrupted(entry_id, f"it closes hold {ref}, which is not open")
            if tokens > held or (kind != "capture" and tokens != held):
                raise LedgerCorrupted(entry_id, f"{kind} of {tokens} tokens of a hold of {held}")
            self.held -= held
            if kind == "capture":
                self.posted -= tokens
                self.refundable[entry_id] = tokens
            closes = ref
        elif kind == "refund":
            left = self.refundable.get(ref, 0)
            if tokens > left:
                raise LedgerCorrupted(entry_id, f"it refunds {tokens} tokens of entry {ref}, "
                                      f"which has {left} left to refund")
            self.refundable[ref] = left - tokens
            self.posted += tokens
        else:
            raise LedgerCorrupted(entry_id, f"unknown entry kind {kind!r}")
        if self.posted < self.held:
            raise LedgerCorrupted(entry_id, "it takes available tokens below 0")
        self.id, self.hash = entry_id, row[-1]
        return opens, closes

    @property
    def tip(self) -> Tip:
        return Tip(self.id, self.hash, self.posted, self.held)


class Ledger:
    """A token ledger: credits, two-phase holds, debits and refunds, hash-chained.

    Open one with `Ledger.open` (a SQLite file) or `Ledger.memory`; close it with `close` or a
    ``with`` block. Example::

        with Ledger.open("tokens.db") as ledger:
            ledger.credit(100, key="topup-1")
            hold = ledger.hold(15, key="job-7")       # available 85
            ledger.capture(hold, 10)                  # spends 10, releases the other 5
            ledger.balance()                          # Balance(posted=90, held=0, available=90)

    Args:
        store: Where the entries live (`MemoryStore`, `SqliteStore` or another `Store`).
        clock: Returns the current time (aware); defaults to now in UTC.
    """

    def __init__(self, store: Store, *, clock: Clock | None = None) -> None:
        self._store = store
        self._clock: Clock = clock or _utc_now
        self._parsed: dict[str, Budget] = {}

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, clock: Clock | None = None,
             durable: bool = True, timeout: float = 30.0) -> Ledger:
        """A ledger in a SQLite file, created if missing.

        Args:
            path: The database file.
            clock: Returns the current time (aware); defaults to now in UTC.
            durable: ``True`` (default): each commit is flushed to disk (``synchronous=FULL``);
                ``False``: ``NORMAL``, faster, safe against a process crash but not a power cut.
            timeout: Seconds to wait for another process' write lock.

        Raises:
            LedgerStoreError: The file cannot be used as a ledger.
        """
        from imagine_billing.ledger.sqlite import SqliteStore

        return cls(SqliteStore(path, durable=durable, timeout=timeout), clock=clock)

    @classmethod
    def memory(cls, *, clock: Clock | None = None) -> Ledger:
        """A ledger in this process' memory, gone when the process ends."""
        return cls(MemoryStore(), clock=clock)

    @classmethod
    def from_jsonl(cls, lines: Iterable[str], *, path: str | os.PathLike[str] | None = None,
                   clock: Clock | None = None, source: str = "<jsonl>") -> Ledger:
        """A new ledger holding the entries of an `export` in JSON lines, chain verified.

        Args:
            lines: The exported lines (an open text file will do).
            path: A SQLite file to import into (created if missing; it must hold no entries);
                ``None`` imports into memory.
            clock: The new ledger's clock.
            source: A name for ``lines`` in error messages.

        Returns:
            The new ledger (open; close it when done).

        Raises:
            LedgerCorrupted: The chain does not verify (an entry changed, missing or
                reordered, or an impossible balance); nothing is imported.
            BadRecordError: A line is not an entry document.
            LedgerStoreError: ``path`` already holds entries.
        """
        ledger = cls.open(path, clock=clock) if path is not None else cls.memory(clock=clock)
        try:
            ledger._import(lines, source)
        except BaseException:
            ledger.close()
            raise
        return ledger

    def _import(self, lines: Iterable[str], source: str) -> None:
        store = self._store
        with store.write():
            if store.tip().id:
                raise LedgerStoreError(getattr(store, "path", "store"),
                                       "it already holds entries: import into a new ledger")
            if store.budget_rows(_labels(self._now())):
                # Imported spend would bypass the budgets' running figures.
                raise LedgerStoreError(getattr(store, "path", "store"),
                                       "it has budgets: import into a new ledger, then add "
                                       "the budgets")
            replay = _Replay()
            for number, line in _numbered(lines, source):
                if not line.strip():
                    continue
                try:
                    entry = Entry.from_dict(json.loads(line))
                except (KeyError, TypeError, ValueError) as error:
                    raise BadRecordError(source, number, "bad-entry",
                                         f"not a ledger entry: {error}") from None
                if store.by_key(entry.key) is not None:
                    raise LedgerCorrupted(entry.id, f"its key {entry.key!r} is used twice")
                row = entry.to_row()
                opens, closes = replay.apply(row)
                store.append(entry, row, replay.tip, opens=opens, closes=closes)

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

        An exception leaving the block undoes every write made in it. Other processes wait
        for the block to end (it holds the write lock), so keep it short.
        """
        with self._store.write():
            yield self

    # -- writes ---------------------------------------------------------------------------

    def _now(self) -> datetime:
        return from_micros(to_micros(self._clock()))

    def _replayed(self, key: str, kind: str, fingerprint: str) -> Entry | None:
        found = self._store.by_key(key)
        if found is None:
            return None
        if found.kind != kind or found.fingerprint != fingerprint:
            raise IdempotencyConflict(
                key, f"entry {found.id} is a {found.kind} of {found.tokens} tokens "
                f"made by another request")
        return found

    def _append(self, kind: EntryKind, key: str, tokens: int, fingerprint: str, *, posted: int = 0,
                held: int = 0, ref: int | None = None, memo: str | None = None,
                tags: Mapping[str, str] | None = None, styles: Styles = (),
                table_version: str | None = None, table_digest: str | None = None,
                expires_at: datetime | None = None, opens: bool = False,
                closes: int | None = None, micros: int | None = None,
                use: BudgetUse | None = None, spent_at: datetime | None = None) -> Entry:
        tip = self._store.tip()
        if micros is None:
            micros = to_micros(self._clock())
        row = (tip.id + 1, kind, key, tokens, micros, ref, memo, tags_text(tags or {}),
               styles_text(styles), table_version, table_digest,
               None if expires_at is None else to_micros(expires_at), fingerprint)
        digest = chain_hash(tip.hash, row)
        entry = Entry(tip.id + 1, kind, key, tokens, from_micros(micros), ref, memo, tags or {},
                      styles, table_version, table_digest, expires_at, fingerprint, digest)
        new_tip = Tip(entry.id, digest, tip.posted + posted, tip.held + held)
        self._store.append(entry, (*row, digest), new_tip, opens=opens, closes=closes)
        # Budgets: spend is what leaves posted (debits, captures; refunds give it back).
        spent = -posted if kind in ("debit", "capture", "refund") else 0
        if spent or held:
            self._track(entry, spent, held, use, spent_at or entry.at)
        return entry

    def _track(self, entry: Entry, spent: int, held: int, use: BudgetUse | None,
               period_at: datetime) -> None:
        """Add an entry's spend and hold change to the budgets whose scope it matches.

        The spend goes to the periods holding ``period_at``: for a refund, the time of the
        debit or capture it gives back, so that refunding last month's spend gives this
        month no room (and no period's spend goes below 0).
        """
        if use is None:
            use = self._budget_use(entry.at)
        if not use:
            return
        labels = _labels(period_at)
        for budget, _, _ in use:
            if budget.matches(entry.tags):
                self._store.bump_budget(budget.name, labels[budget.period], spent=spent,
                                        held=held)

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
        key, memo_, tags = _check_key(key), _check_memo(memo), _check_tags(tags)
        if not memo_:
            raise ValueError("a note needs a memo saying what happened (got none)")
        fingerprint = _fingerprint(kind="note", memo=memo_, tags=tags)
        with self._store.write():
            found = self._replayed(key, "note", fingerprint)
            if found is not None:
                return found
            return self._append("note", key, 0, fingerprint, memo=memo_, tags=tags)

    def credit(self, tokens: int, *, key: str, memo: str | None = None,
               tags: Mapping[str, str] | None = None) -> Entry:
        """Add tokens (a top-up, a grant).

        Args:
            tokens: An int >= 1.
            key: The idempotency key.
            memo: Free text.
            tags: Labels such as ``{"project": "site"}``.

        Returns:
            The ``credit`` entry (the original one on a replay).

        Raises:
            IdempotencyConflict: ``key`` was used for another request.
            TypeError, ValueError: A bad amount, key, memo or tags.
        """
        tokens = _check_tokens(tokens)
        key, memo, tags = _check_key(key), _check_memo(memo), _check_tags(tags)
        fingerprint = _fingerprint(kind="credit", tokens=tokens, memo=memo, tags=tags)
        with self._store.write():
            found = self._replayed(key, "credit", fingerprint)
            if found is not None:
                return found
            posted = self._store.tip().posted
            if posted + tokens > _MAX_BALANCE:
                raise ValueError(f"a credit of {tokens} would take the balance ({posted}) past "
                                 f"2**62 = {_MAX_BALANCE} tokens")
            return self._append("credit", key, tokens, fingerprint, posted=tokens, memo=memo,
                                tags=tags)

    def hold(self, amount: object, *, key: str, tags: Mapping[str, str] | None = None,
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
            InsufficientTokens: ``amount`` is more than available; nothing is written.
            IdempotencyConflict: ``key`` was used for another request.
            TypeError, ValueError: A bad amount, key, tags or time.
        """
        parsed = _amount(amount)
        key, memo, tags = _check_key(key), _check_memo(memo), _check_tags(tags)
        expires = None if expires_at is None else to_micros(expires_at)
        fingerprint = _fingerprint(
            kind="hold", tokens=parsed.tokens, styles=parsed.styles, memo=memo, tags=tags,
            table_version=parsed.table_version, table_digest=parsed.table_digest,
            expires_at=expires)
        with self._store.write():
            found = self._replayed(key, "hold", fingerprint)
            if found is not None:
                return Hold(found, self._store.closing(found.id))
            micros = to_micros(self._clock())
            if expires is not None and expires <= micros:
                raise ValueError(f"expires_at {expires_at} is not in the future")
            self._check_available(parsed.tokens)
            use = self._check_budgets(parsed.tokens, tags, micros)
            entry = self._append(
                "hold", key, parsed.tokens, fingerprint, held=parsed.tokens, memo=memo,
                tags=tags, styles=parsed.styles, table_version=parsed.table_version,
                table_digest=parsed.table_digest,
                expires_at=None if expires is None else from_micros(expires), opens=True,
                micros=micros, use=use)
            return Hold(entry)

    def _check_budgets(self, tokens: int, tags: Mapping[str, str], micros: int) -> BudgetUse:
        """Raise `BudgetExceeded` for the first hard budget ``tokens`` more would exceed
        (open holds count); returns the budgets' use, for `_append` to update."""
        use = self._budget_use(from_micros(micros))
        for budget, held, spent in use:
            if budget.hard and budget.matches(tags):
                remaining = budget.limit - spent - held
                if tokens > remaining:
                    raise BudgetExceeded(budget.name, tokens, max(0, remaining))
        return use

    def _check_available(self, tokens: int) -> None:
        tip = self._store.tip()
        available = tip.posted - tip.held
        if tokens > available:
            raise InsufficientTokens(tokens, available)

    def debit(self, amount: object, *, key: str, tags: Mapping[str, str] | None = None,
              memo: str | None = None) -> Entry:
        """Spend tokens at once (a hold captured in one step).

        Args:
            amount: Tokens (an int >= 1) or an `Estimate`.
            key: The idempotency key.
            tags: Labels such as ``{"project": "site"}``.
            memo: Free text.

        Returns:
            The ``debit`` entry (the original one on a replay).

        Raises:
            InsufficientTokens: ``amount`` is more than available; nothing is written.
            IdempotencyConflict: ``key`` was used for another request.
            TypeError, ValueError: A bad amount, key or tags.
        """
        parsed = _amount(amount)
        key, memo, tags = _check_key(key), _check_memo(memo), _check_tags(tags)
        fingerprint = _fingerprint(
            kind="debit", tokens=parsed.tokens, styles=parsed.styles, memo=memo, tags=tags,
            table_version=parsed.table_version, table_digest=parsed.table_digest)
        with self._store.write():
            found = self._replayed(key, "debit", fingerprint)
            if found is not None:
                return found
            self._check_available(parsed.tokens)
            micros = to_micros(self._clock())
            use = self._check_budgets(parsed.tokens, tags, micros)
            return self._append(
                "debit", key, parsed.tokens, fingerprint, posted=-parsed.tokens, memo=memo,
                tags=tags, styles=parsed.styles, table_version=parsed.table_version,
                table_digest=parsed.table_digest, micros=micros, use=use)

    def _open_hold(self, hold: object) -> Entry:
        entry = self._resolve(hold, "hold")
        if entry.kind != "hold":
            raise UnknownEntry(_ref_of(hold), "hold")
        return entry

    def _closed(self, entry: Entry, key: str, kind: str, fingerprint: str) -> Entry | None:
        """A replay's original entry; raises `HoldClosed` when the hold is closed otherwise."""
        found = self._replayed(key, kind, fingerprint)
        if found is not None:
            return found
        closing = self._store.closing(entry.id)
        if closing is not None:
            raise HoldClosed(entry.id, Hold(entry, closing).status)
        return None

    def capture(self, hold: object, tokens: int | None = None, *,
                key: str | None = None) -> Entry:
        """Spend some or all of a hold and close it; the rest is released.

        capture(hold of 15, tokens=10) spends 10 and gives the other 5 back to available.

        Args:
            hold: The `Hold`, its entry, its id (int) or its key (str).
            tokens: At most the hold's tokens; ``None`` captures them all.
            key: The idempotency key; defaults to the hold's key + ``":capture"``.

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
            _check_tokens(tokens)
        with self._store.write():
            entry = self._open_hold(hold)
            key = _check_key(f"{entry.key}:capture" if key is None else key)
            amount = entry.tokens if tokens is None else tokens
            fingerprint = _fingerprint(kind="capture", tokens=amount, ref=entry.id)
            found = self._closed(entry, key, "capture", fingerprint)
            if found is not None:
                return found
            if entry.expires_at is not None and entry.expires_at <= self._now():
                raise HoldClosed(entry.id, "lapsed")
            if amount > entry.tokens:
                raise AmountTooLarge("capture", entry.id, amount, entry.tokens)
            return self._append(
                "capture", key, amount, fingerprint, posted=-amount, held=-entry.tokens,
                ref=entry.id, tags=entry.tags, styles=_split(amount, entry.styles),
                table_version=entry.table_version, table_digest=entry.table_digest,
                closes=entry.id)

    def void(self, hold: object, *, key: str | None = None) -> Entry:
        """Cancel a hold: all its tokens return to available.

        Args:
            hold: The `Hold`, its entry, its id (int) or its key (str).
            key: The idempotency key; defaults to the hold's key + ``":void"``.

        Returns:
            The ``void`` entry (the original one on a replay).

        Raises:
            UnknownEntry: No such hold.
            HoldClosed: The hold was captured, expired or voided by another request.
            IdempotencyConflict: ``key`` was used for another request.
        """
        with self._store.write():
            entry = self._open_hold(hold)
            key = _check_key(f"{entry.key}:void" if key is None else key)
            fingerprint = _fingerprint(kind="void", ref=entry.id)
            found = self._closed(entry, key, "void", fingerprint)
            if found is not None:
                return found
            return self._append("void", key, entry.tokens, fingerprint, held=-entry.tokens,
                                ref=entry.id, tags=entry.tags, closes=entry.id)

    def expire_holds(self, now: datetime | None = None) -> tuple[Entry, ...]:
        """Release every open hold whose ``expires_at`` is at or before ``now``.

        Args:
            now: The time to compare with (aware); defaults to the ledger's clock.

        Returns:
            The ``expire`` entries written, oldest hold first (empty when none was due).
        """
        due = to_micros(self._clock() if now is None else now)
        written = []
        with self._store.write():
            for hold_id in self._store.open_holds(due_by=due):
                entry = self._store.by_id(hold_id)
                assert entry is not None  # an open hold always has its entry
                key = f"{entry.key}:expire"
                suffix = 1
                while self._store.by_key(key) is not None:  # the key is taken by another write
                    suffix += 1
                    key = f"{entry.key}:expire:{suffix}"
                fingerprint = _fingerprint(kind="expire", ref=entry.id)
                written.append(self._append(
                    "expire", key, entry.tokens, fingerprint, held=-entry.tokens, ref=entry.id,
                    tags=entry.tags, closes=entry.id))
        return tuple(written)

    def refund(self, entry: object, tokens: int | None = None, *, key: str) -> Entry:
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
            _check_tokens(tokens)
        key = _check_key(key)
        with self._store.write():
            spent = self._resolve(entry, "debit or capture")
            if spent.kind not in ("debit", "capture"):
                raise UnknownEntry(_ref_of(entry), "debit or capture")
            fingerprint = _fingerprint(kind="refund", tokens=tokens, ref=spent.id)
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
            return self._append(
                "refund", key, amount, fingerprint, posted=amount, ref=spent.id,
                tags=spent.tags, styles=_split(amount, tuple(left.items())),
                table_version=spent.table_version, table_digest=spent.table_digest,
                spent_at=spent.at)

    # -- budgets --------------------------------------------------------------------------

    def _parse_budget(self, document: str) -> Budget:
        budget = self._parsed.get(document)
        if budget is None:
            from imagine_billing.ledger.budgets import Budget

            budget = Budget.from_dict(json.loads(document))
            self._parsed[document] = budget
        return budget

    def _budget_use(self, at: datetime) -> list[tuple[Budget, int, int]]:
        """Every budget, with its open holds and its spend in the period holding ``at``."""
        labels = _labels(at)
        return [(self._parse_budget(document), held, spent)
                for _, document, held, spent in self._store.budget_rows(labels)]

    def add_budget(self, budget: Budget) -> Budget:
        """Keep ``budget`` in the ledger: from now on it counts, and a hard one refuses.

        A budget added mid-period starts with the period's spend and the open holds in its
        scope. Adding the same budget again changes nothing.

        Args:
            budget: The `Budget`.

        Returns:
            The budget as stored.

        Raises:
            IdempotencyConflict: The ledger has a budget of that name with other settings.
            TypeError: ``budget`` is not a `Budget`.
        """
        from imagine_billing.ledger.budgets import Budget, period_bounds, period_label

        if not isinstance(budget, Budget):
            raise TypeError(f"add_budget takes a Budget (got {budget!r})")
        document = canonical(budget.to_dict())
        with self._store.write():
            for name, stored, _, _ in self._store.budget_rows(_labels(self._now())):
                if name == budget.name:
                    if stored != document:
                        raise IdempotencyConflict(
                            name, f"a budget of that name exists with other settings ({stored})")
                    return self._parse_budget(stored)
            now = self._now()
            start, _ = period_bounds(budget.period, now)
            scope = dict(budget.scope)
            spent = sum(self._store.spend(
                None if start is None else to_micros(start), None, None, scope).values())
            self._store.put_budget(budget.name, budget.period, document,
                                   held=self._store.held_in(scope),
                                   label=period_label(budget.period, now), spent=spent)
        return self._parse_budget(document)

    def budgets(self) -> tuple[Budget, ...]:
        """The ledger's budgets, in the order they were added."""
        with self._store.read():
            rows = self._store.budget_rows(_labels(self._now()))
        return tuple(self._parse_budget(document) for _, document, _, _ in rows)

    def budget(self, name: str) -> Budget:
        """The budget of that name.

        Raises:
            UnknownEntry: The ledger has none.
        """
        for budget in self.budgets():
            if budget.name == name:
                return budget
        raise UnknownEntry(name, "budget")

    # -- aggregates (SQL in SQLite: no entry is loaded) ---------------------------------------

    def now(self) -> datetime:
        """The ledger clock's time (aware, to the microsecond)."""
        return self._now()

    @contextmanager
    def snapshot(self) -> Iterator[Ledger]:
        """Read several figures from one consistent state of the ledger."""
        with self._store.read():
            yield self

    def first_at(self) -> datetime | None:
        """When the first entry was written; ``None`` for an empty ledger."""
        first = self._store.by_id(1)
        return None if first is None else first.at

    def spent(self, since: datetime | None = None, until: datetime | None = None,
              tags: Mapping[str, str] | None = None) -> int:
        """Debits + captures - refunds with ``since <= at < until`` carrying all of ``tags``."""
        return sum(self._store.spend(_micros(since), _micros(until), None,
                                     _check_tags(tags)).values())

    def held(self, tags: Mapping[str, str] | None = None) -> int:
        """The tokens of the open holds carrying all of ``tags``."""
        return self._store.held_in(_check_tags(tags))

    def spend_slices(self, start: datetime, width: timedelta, count: int,
                     tags: Mapping[str, str] | None = None) -> list[int]:
        """Spend (debits + captures - refunds) of ``count`` consecutive slices of ``width``
        from ``start``, carrying all of ``tags``: one grouped query."""
        since = to_micros(start)
        step = width // timedelta(microseconds=1)
        if step < 1 or count < 1:
            raise ValueError(f"slices need a width > 0 and a count >= 1 (got {width}, {count})")
        totals = self._store.spend(since, since + step * count, step, _check_tags(tags))
        return [totals.get(i, 0) for i in range(count)]

    def available_at(self, when: datetime) -> int:
        """``available`` as it was at ``when`` (the entries written up to and at ``when``)."""
        after = to_micros(when) + 1
        with self._store.read():
            tip = self._store.tip()
            return tip.posted - tip.held - self._store.available_change(after, None)

    # -- reads ----------------------------------------------------------------------------

    def balance(self) -> Balance:
        """The balance now (kept with every write, so O(1)): posted, held, available."""
        tip = self._store.tip()
        return Balance(tip.posted, tip.held)

    def _resolve(self, ref: object, kind: str = "entry") -> Entry:
        if isinstance(ref, Hold):
            ref = ref.entry
        if isinstance(ref, Entry):
            found = self._store.by_id(ref.id)
            if found is None or found.hash != ref.hash:
                raise UnknownEntry(ref.id, kind)
            return found
        if isinstance(ref, bool) or not isinstance(ref, int | str):
            raise TypeError(f"an {kind} is an Entry, a Hold, an id (int) or a key (str) "
                            f"(got {ref!r})")
        if isinstance(ref, int):
            # No entry has an id past the last one (and SQLite takes 64-bit ids only).
            found = self._store.by_id(ref) if 0 < ref <= self._store.tip().id else None
        else:
            found = self._store.by_key(_text(ref, "key"))
        if found is None:
            raise UnknownEntry(ref, kind)
        return found

    def get(self, ref: object) -> Entry:
        """The entry with that id (int) or key (str).

        Raises:
            UnknownEntry: There is none.
        """
        return self._resolve(ref)

    def get_hold(self, ref: object) -> Hold:
        """The hold with that id (int) or key (str), with its current status.

        Raises:
            UnknownEntry: There is no such hold.
        """
        entry = self._open_hold(ref)
        return Hold(entry, self._store.closing(entry.id))

    def open_holds(self) -> tuple[Hold, ...]:
        """Every open hold, oldest first."""
        with self._store.read():
            entries = [self._store.by_id(i) for i in self._store.open_holds()]
        return tuple(Hold(e) for e in entries if e is not None)

    def entries(self, since: datetime | None = None, until: datetime | None = None,
                tags: Mapping[str, str] | None = None) -> Iterator[Entry]:
        """The entries with ``since <= at < until`` carrying all of ``tags``, oldest first.

        Args:
            since: The earliest time (aware), or ``None``.
            until: The time to stop before (aware), or ``None``.
            tags: Tags an entry must have, all of them with these values.

        Returns:
            An iterator (entries are read as it advances: a million of them do not have to
            fit in memory).
        """
        wanted = _check_tags(tags).items()
        rows = self._store.rows(None if since is None else to_micros(since),
                                None if until is None else to_micros(until))
        for row in rows:
            entry = Entry.from_row(row)
            if all(entry.tags.get(name) == value for name, value in wanted):
                yield entry

    def spend(self, by: str = "style", since: datetime | None = None,
              until: datetime | None = None) -> dict[str | None, int]:
        """Tokens spent (debits + captures - refunds), grouped.

        Args:
            by: ``"style"`` (``None`` for amounts given as plain tokens), ``"day"`` (UTC
                dates as ``"YYYY-MM-DD"``) or ``"tag:<name>"`` (``None`` for untagged).
            since: The earliest time (aware), or ``None``.
            until: The time to stop before (aware), or ``None``.

        Returns:
            Tokens by group, ``None`` first, then groups in sorted order.

        Raises:
            ValueError: ``by`` is none of these.
        """
        if by not in ("style", "day") and not (by.startswith("tag:") and len(by) > 4):
            raise ValueError(f"by must be 'style', 'day' or 'tag:<name>' (got {by!r})")
        totals: dict[str | None, int] = {}
        for entry in self.entries(since, until):
            if entry.kind in ("debit", "capture"):
                sign = 1
            elif entry.kind == "refund":
                sign = -1
            else:
                continue
            if by == "style":
                for style, tokens in entry.styles:
                    totals[style] = totals.get(style, 0) + sign * tokens
                continue
            group = entry.at.date().isoformat() if by == "day" else entry.tags.get(by[4:])
            totals[group] = totals.get(group, 0) + sign * entry.tokens
        return dict(sorted(totals.items(), key=_style_order))

    def verify(self) -> int:
        """Check the whole chain, and the balance and open holds the store keeps.

        Returns:
            The number of entries checked.

        Raises:
            LedgerCorrupted: Names the first bad entry: changed (its hash does not match),
                missing, inserted or reordered, or making an impossible balance; or
                ``"tip"``/``"balance"`` when the kept tip or balance disagree with the chain.
        """
        store = self._store
        with store.read():
            replay = _Replay()
            for row in store.rows():
                replay.apply(row)
            tip = store.tip()
            open_holds = store.open_holds()
        if (tip.id, tip.hash) != (replay.id, replay.hash):
            raise LedgerCorrupted("tip", f"the chain ends at entry {replay.id} but the ledger "
                                  f"records entry {tip.id} as its last (entries lost?)")
        if (tip.posted, tip.held) != (replay.posted, replay.held):
            raise LedgerCorrupted(
                "balance", f"the entries give posted {replay.posted}, held {replay.held}; the "
                f"ledger records posted {tip.posted}, held {tip.held}")
        if sorted(replay.open) != open_holds:
            raise LedgerCorrupted("open holds", "the open holds recorded differ from the entries")
        self._verify_budgets()
        return replay.id

    def _verify_budgets(self) -> None:
        """The running figures of every budget agree with the entries (current period)."""
        from imagine_billing.ledger.budgets import period_bounds

        store = self._store
        now = self._now()
        with store.read():
            for name, document, held, spent in store.budget_rows(_labels(now)):
                budget = self._parse_budget(document)
                scope = dict(budget.scope)
                start, _ = period_bounds(budget.period, now)
                actual_held = store.held_in(scope)
                actual_spent = sum(store.spend(
                    None if start is None else to_micros(start), None, None, scope).values())
                if (held, spent) != (actual_held, actual_spent):
                    raise LedgerCorrupted(
                        f"budget {name!r}",
                        f"the entries give held {actual_held}, spent {actual_spent} this "
                        f"period; the budget records held {held}, spent {spent}")

    # -- export ---------------------------------------------------------------------------

    def export(self, out: IO[str], *, format: Literal["jsonl", "csv"] = "jsonl") -> int:
        """Write every entry to ``out``, oldest first.

        Args:
            out: A text stream.
            format: ``"jsonl"``: one `Entry.to_dict` document a line (`from_jsonl` reads
                it back); ``"csv"``: a header, then one row an entry (tags and styles as JSON).

        Returns:
            The number of entries written.
        """
        if format not in ("jsonl", "csv"):
            raise ValueError(f"format must be 'jsonl' or 'csv' (got {format!r})")
        count = 0
        if format == "jsonl":
            for entry in self.entries():
                out.write(json.dumps(entry.to_dict(), ensure_ascii=False, sort_keys=True) + "\n")
                count += 1
            return count
        writer = csv.writer(out)  # RFC 4180 line ends: a memo with \r or \n is quoted
        writer.writerow(_CSV_FIELDS)
        for entry in self.entries():
            document = entry.to_dict()
            document["tags"] = canonical(document["tags"])
            document["styles"] = canonical(document["styles"])
            writer.writerow(["" if document[f] is None else document[f] for f in _CSV_FIELDS])
            count += 1
        return count


def _ref_of(ref: object) -> object:
    if isinstance(ref, Hold | Entry):
        return ref.id
    return ref


def _micros(when: datetime | None) -> int | None:
    return None if when is None else to_micros(when)


def _numbered(lines: Iterable[str], source: str) -> Iterator[tuple[int, str]]:
    """``(line number, line)``; text that is not UTF-8 is a `BadRecordError` at its line."""
    number = 0
    iterator = iter(lines)
    while True:
        number += 1
        try:
            line = next(iterator)
        except StopIteration:
            return
        except UnicodeDecodeError as error:
            raise BadRecordError(source, number, "bad-encoding",
                                 f"not UTF-8 text ({error.reason})") from None
        yield number, line


def _labels(at: datetime) -> dict[str, str]:
    """The label of the period of each kind holding ``at`` (see `period_label`)."""
    from imagine_billing.ledger.budgets import PERIODS, period_label

    return {period: period_label(period, at) for period in PERIODS}
