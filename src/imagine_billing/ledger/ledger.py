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

import csv
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from typing import IO, TYPE_CHECKING, Literal

import attrs

from imagine_billing._checks import MAX_TOKENS, positive_int, unicode_text
from imagine_billing.errors import (
    AmountTooLarge,
    BadRecordError,
    BillingError,
    BudgetConflict,
    BudgetExceeded,
    HoldClosed,
    IdempotencyConflict,
    InsufficientTokens,
    LedgerCorrupted,
    LedgerStoreError,
    UnknownBudget,
    UnknownEntry,
)
from imagine_billing.ledger.model import (
    GENESIS,
    Balance,
    Entry,
    EntryKind,
    Hold,
    Row,
    budget_key,
    canonical,
    chain_hash,
    check_tag,
    fingerprint_of,
    from_micros,
    styles_text,
    tags_text,
    to_micros,
)
from imagine_billing.ledger.store import MemoryStore, Store, Tip

if TYPE_CHECKING:
    from imagine_billing.ledger.budgets import Budget

BudgetUse = list[tuple["Budget", int, int, int | None]]
"""Each budget with the tokens of its open holds, its spend in the current period, and the
first moment it counts (microseconds: the start of the period it was added in; ``None`` for
a total budget, which counts all time)."""

_Kept = tuple["Budget", int, int | None, int | None]
"""A budget of the chain, when it was added, and its open holds and spend as kept beside
the chain (see `Ledger._chain_budgets`)."""

__all__ = ["Clock", "Ledger"]

Clock = Callable[[], datetime]
"""A callable returning the current time as an aware datetime."""

Styles = tuple[tuple[str | None, int], ...]

_SQLITE_FILES = ("", "-wal", "-shm", "-journal")
"""The files SQLite may make of a database: the file itself and its companions."""

_CSV_FIELDS = ("id", "kind", "key", "tokens", "at", "ref", "memo", "tags", "styles",
               "table_version", "table_digest", "expires_at", "fingerprint", "hash")


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _check_tokens(value: object, name: str = "tokens") -> int:
    """``value`` if it is a whole number of tokens (an int >= 1); see `positive_int`."""
    return positive_int(value, name)


_MAX_BALANCE = 2**62
"""The most tokens a ledger holds: sums of entries stay inside SQLite's 64-bit integers."""


def _check_key(key: object) -> str:
    if not isinstance(key, str):
        raise TypeError(f"key must be a non-empty string (got {key!r})")
    if not key:
        raise ValueError("key must be a non-empty string (got '')")
    return unicode_text(key, "key")


def _check_tags(tags: Mapping[str, str] | None) -> dict[str, str]:
    if tags is None:
        return {}
    if not isinstance(tags, Mapping):
        raise TypeError(f"tags must be a mapping of strings to strings (got {tags!r})")
    for name, value in tags.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError(f"tag {name!r}={value!r}: names and values must be strings")
        check_tag(name, value)
    return dict(sorted(tags.items()))


def _check_memo(memo: object) -> str | None:
    if memo is not None and not isinstance(memo, str):
        raise TypeError(f"memo must be a string or None (got {memo!r})")
    return None if memo is None else unicode_text(memo, "memo")


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


Anchor = tuple[int, str]
"""A point of the chain recorded elsewhere: an entry's id and hash (`Ledger.head`)."""

_HASH = re.compile(r"[0-9a-f]{64}")


def _anchor(expect: object) -> Anchor | None:
    """``expect`` if it is an `Anchor`: ``(id >= 0, 64 hex digits)``."""
    if expect is None:
        return None
    if not isinstance(expect, tuple | list) or len(expect) != 2:
        raise TypeError(f"expect must be an (id, hash) pair, as head() gives (got {expect!r})")
    entry_id, digest = expect
    if type(entry_id) is not int or entry_id < 0:
        raise ValueError(f"expect: the id must be an int >= 0 (got {entry_id!r})")
    if not isinstance(digest, str) or not _HASH.fullmatch(digest):
        raise ValueError(f"expect: the hash must be 64 lower-case hex digits (got {digest!r})")
    if entry_id == 0 and digest != GENESIS:
        raise ValueError(f"expect: entry 0 (an empty ledger) has the hash {GENESIS} "
                         f"(got {digest!r})")
    return entry_id, digest


def _shown(value: object) -> str:
    """A stored value for a message (a huge number as its size, not its digits)."""
    if type(value) is int and value.bit_length() > 64:
        return f"a number of {value.bit_length()} bits"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _when(micros: int | None) -> str:
    if micros is None:
        return "no expiry"
    return from_micros(micros).isoformat().replace("+00:00", "Z")


def _budget_of(entry_id: object, document: object) -> Budget:
    """The budget a ``budget`` entry's memo holds; `LedgerCorrupted` when it holds none."""
    from imagine_billing.ledger.budgets import Budget

    try:
        if not isinstance(document, str):
            raise TypeError(f"the memo is {_shown(document)}, not a JSON document")
        data = json.loads(document)
        if not isinstance(data, dict):
            raise TypeError(f"the memo holds {type(data).__name__}, not a JSON object")
        return Budget.from_dict(data)
    except (KeyError, TypeError, ValueError, RecursionError) as error:
        raise LedgerCorrupted(entry_id, f"its budget document cannot be read "
                              f"({_shown(str(error))})") from None


class _Replay:
    """Re-applies rows in order, checking the chain and the balance rules (verify, import).

    Each entry must be one the ledger could have written: amounts from 1 (0 for a note or a
    budget) to `MAX_TOKENS`, the balance at most 2**62, captures of at most the hold and
    before it lapsed, voids and expiries of the whole hold, an expiry only once the hold's
    ``expires_at`` has come, refunds of at most what is left to refund, ``available`` never
    below 0, budgets with a budget document and a name of their own. With an anchor, the
    entry of its id must have its hash.
    """

    def __init__(self, anchor: Anchor | None = None,
                 parse: Callable[[object, object], Budget] | None = None) -> None:
        self.id = 0
        self.hash = GENESIS
        self.posted = 0
        self.held = 0
        self.open: dict[int, tuple[int, int | None]] = {}
        """The open holds: id -> (tokens, expires_at in microseconds or None)."""
        self.refundable: dict[int, int] = {}
        self.anchor = anchor
        self.parse = parse or _budget_of
        self.budgets: dict[str, tuple[int, Budget, str, int]] = {}
        """The budgets the chain adds: name -> (entry id, budget, document, added)."""

    def apply(self, row: Row) -> tuple[bool, int | None]:  # noqa: PLR0915 - one call a row
        """Check ``row`` and apply it; returns ``(opens, closes)`` for `Store.append`."""
        entry_id, kind, tokens, at, ref, expires = row[0], row[1], row[3], row[4], row[5], row[11]
        if entry_id != self.id + 1:
            if type(entry_id) is int and entry_id <= self.id:
                raise LedgerCorrupted(entry_id, f"it is out of place: it comes after "
                                      f"entry {self.id} (inserted or reordered)")
            raise LedgerCorrupted(self.id + 1, f"the entry is missing (entry "
                                  f"{_shown(entry_id)} follows entry {self.id})")
        least = 0 if kind in ("note", "budget") else 1
        if type(tokens) is not int or not least <= tokens <= MAX_TOKENS:
            raise LedgerCorrupted(entry_id, f"bad token amount {_shown(tokens)} (an entry "
                                  f"moves 1 to 2**53-1 = {MAX_TOKENS} tokens)")
        if type(at) is not int:
            raise LedgerCorrupted(entry_id, f"bad time {_shown(at)} (microseconds since 1970)")
        try:
            digest = chain_hash(self.hash, row[:-1])
        except (TypeError, ValueError):
            digest = ""  # a stored value of no stored type: not the hash of anything
        if digest != row[-1]:
            raise LedgerCorrupted(entry_id, "its hash does not match its content and the "
                                  "previous entry's hash (changed, inserted or reordered)")
        if expires is not None and kind != "hold":
            raise LedgerCorrupted(entry_id, f"a {kind} has no expiry (it has {_shown(expires)})")
        opens, closes = False, None
        if kind in ("credit", "debit", "hold", "note", "budget"):
            if ref is not None:
                raise LedgerCorrupted(entry_id, f"a {kind} refers to no entry (it refers to "
                                      f"{_shown(ref)})")
            if kind == "credit":
                self.posted += tokens
            elif kind == "debit":
                self.posted -= tokens
                self.refundable[entry_id] = tokens
            elif kind == "hold":
                if expires is not None and (type(expires) is not int or expires <= at):
                    raise LedgerCorrupted(entry_id, f"the hold expires ({_shown(expires)}) no "
                                          f"later than it is placed ({at})")
                self.held += tokens
                self.open[entry_id] = (tokens, expires)
                opens = True
            elif tokens != 0:
                raise LedgerCorrupted(entry_id, f"a {kind} moves no tokens (it has {tokens})")
            elif kind == "budget":
                self._add_budget(entry_id, row[6], at)
        elif kind in ("capture", "void", "expire"):
            self._close(entry_id, kind, tokens, at, ref)
            closes = ref
        elif kind == "refund":
            left = self.refundable.get(ref, 0) if isinstance(ref, int) else 0
            if tokens > left:
                raise LedgerCorrupted(entry_id, f"it refunds {tokens} tokens of entry "
                                      f"{_shown(ref)}, which has {left} left to refund")
            self.refundable[ref] = left - tokens
            self.posted += tokens
        else:
            raise LedgerCorrupted(entry_id, f"unknown entry kind {_shown(kind)}")
        if self.posted > _MAX_BALANCE:
            raise LedgerCorrupted(entry_id, f"it takes the balance to {self.posted}, past "
                                  f"2**62 = {_MAX_BALANCE} tokens")
        if self.posted < self.held:
            raise LedgerCorrupted(entry_id, "it takes available tokens below 0")
        if self.anchor is not None and entry_id == self.anchor[0] and digest != self.anchor[1]:
            raise LedgerCorrupted(entry_id, f"its hash is {digest}, not {self.anchor[1]} as "
                                  "recorded: the chain was rewritten at or before this entry")
        self.id, self.hash = entry_id, digest
        return opens, closes

    def _add_budget(self, entry_id: int, document: object, at: int) -> None:
        """Apply a budget entry: a budget of a name no earlier one has."""
        budget = self.parse(entry_id, document)
        earlier = self.budgets.get(budget.name)
        if earlier is not None:
            raise LedgerCorrupted(entry_id, f"it adds budget {_shown(budget.name)}, which "
                                  f"entry {earlier[0]} added")
        assert isinstance(document, str)  # `parse` took it
        self.budgets[budget.name] = (entry_id, budget, document, at)

    def _close(self, entry_id: int, kind: str, tokens: int, at: int, ref: object) -> None:
        """Apply a capture, void or expire of the hold ``ref``."""
        hold = self.open.pop(ref, None) if isinstance(ref, int) else None
        if hold is None:
            raise LedgerCorrupted(entry_id, f"it closes hold {_shown(ref)}, which is not open")
        held, due = hold
        if tokens > held or (kind != "capture" and tokens != held):
            raise LedgerCorrupted(entry_id, f"{kind} of {tokens} tokens of a hold of {held}")
        if kind == "expire" and (due is None or due > at):
            raise LedgerCorrupted(entry_id, f"it expires hold {ref} at {_when(at)}, before "
                                  f"its expiry ({_when(due)})")
        if kind == "capture" and due is not None and due <= at:
            raise LedgerCorrupted(entry_id, f"it captures hold {ref} at {_when(at)}, after "
                                  f"it lapsed ({_when(due)})")
        self.held -= held
        if kind == "capture":
            self.posted -= tokens
            self.refundable[entry_id] = tokens

    def finish(self) -> None:
        """After the last row: the anchored entry must have been met."""
        if self.anchor is not None and self.anchor[0] > self.id:
            raise LedgerCorrupted(self.anchor[0], f"the chain ends at entry {self.id}, before "
                                  "this entry recorded earlier: entries were removed from its "
                                  "end")

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
        self._parsed: dict[str, Budget] = {}
        self._starts: dict[tuple[str, int], int | None] = {}

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, clock: Clock | None = None,
             durable: bool = True, timeout: float = 30.0, readonly: bool = False) -> Ledger:
        """A ledger in a SQLite file, created if missing (unless ``readonly``).

        A file with more than one hard link is not opened for writing: writers through two
        names that SQLite cannot tell are one file would lose each other's entries (see
        `imagine_billing.ledger.sqlite.SqliteStore`).

        Args:
            path: The database file.
            clock: Returns the current time (aware); defaults to now in UTC.
            durable: ``True`` (default): each commit is flushed to disk (``synchronous=FULL``);
                ``False``: ``NORMAL``, faster, safe against a process crash but not a power cut.
            timeout: Seconds to wait for another process' write lock.
            readonly: Only read: the file must exist, and may be in a folder or on a mount
                that cannot be written; every write raises `LedgerStoreError`.

        Raises:
            LedgerStoreError: The file cannot be used as a ledger (or, unless ``readonly``,
                has more than one hard link).
        """
        from imagine_billing.ledger.sqlite import SqliteStore

        return cls(SqliteStore(path, durable=durable, timeout=timeout, readonly=readonly),
                   clock=clock)

    @classmethod
    def memory(cls, *, clock: Clock | None = None) -> Ledger:
        """A ledger in this process' memory, gone when the process ends."""
        return cls(MemoryStore(), clock=clock)

    @classmethod
    def from_jsonl(cls, lines: Iterable[str], *, path: str | os.PathLike[str] | None = None,
                   clock: Clock | None = None, source: str = "<jsonl>",
                   expect: Anchor | None = None) -> Ledger:
        """A new ledger holding the entries of an `export` in JSON lines, chain verified.

        A chain cut short, or rewritten with every hash recomputed, still verifies on its
        own (see the module's notes): give ``expect``, the `head` recorded when the export
        was made, to refuse those too.

        Args:
            lines: The exported lines (an open text file will do).
            path: A SQLite file to import into (created if missing; it must hold no entries);
                ``None`` imports into memory.
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
        anchor = _anchor(expect)
        if path is None:
            ledger = cls.memory(clock=clock)
            created: list[str] = []
        else:
            # SQLite follows symbolic links: what it may create lies at the end of them.
            target = os.path.realpath(path)
            created = [name for name in (target + suffix for suffix in _SQLITE_FILES)
                       if not os.path.lexists(name)]
            if target not in created:
                created = []  # the file was there: its companions may be another's
            ledger = cls.open(path, clock=clock)
        try:
            ledger._import(lines, source, anchor)
        except BaseException:
            ledger.close()
            for name in created:
                with suppress(FileNotFoundError):
                    os.remove(name)
            raise
        return ledger

    def _import(self, lines: Iterable[str], source: str, anchor: Anchor | None) -> None:
        store = self._store
        with store.write():
            if store.tip().id:
                raise LedgerStoreError(getattr(store, "path", "store"),
                                       "it already holds entries: import into a new ledger")
            replay = _Replay(anchor, self._budget_at)
            for number, line in _numbered(lines, source):
                if not line.strip():
                    continue
                try:
                    entry = Entry.from_dict(json.loads(line))
                    row = entry.to_row()
                except (KeyError, TypeError, ValueError, OverflowError) as error:
                    raise BadRecordError(source, number, "bad-entry",
                                         f"not a ledger entry: {error}") from None
                except RecursionError:
                    raise BadRecordError(source, number, "bad-entry", "not a ledger entry: "
                                         "its JSON is nested too deeply") from None
                opens, closes = replay.apply(row)
                taken = store.append(entry, row, replay.tip, opens=opens, closes=closes)
                if taken is not None:
                    raise LedgerCorrupted(entry.id, f"its key {entry.key!r} is used twice "
                                          f"(entry {taken.id} has it)")
            replay.finish()
            # The budgets come with their entries: their figures, from all the entries.
            for budget_id, budget, document, added in replay.budgets.values():
                self._keep_budget(budget, document, budget_id, added)

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

    # -- writes ---------------------------------------------------------------------------

    def _now(self) -> datetime:
        return from_micros(to_micros(self._clock()))

    def _stamp(self) -> tuple[int, datetime]:
        """The clock's time as stored (microseconds) and as an entry shows it."""
        when = self._clock()
        micros = to_micros(when)
        return micros, when if when.tzinfo is UTC else from_micros(micros)

    def _replay_of(self, found: Entry, kind: str, fingerprint: str) -> Entry:
        """``found``, the entry of a key used again, if the request is the same; else
        `IdempotencyConflict`."""
        if found.kind != kind or found.fingerprint != fingerprint:
            raise IdempotencyConflict(
                found.key, f"entry {found.id} is a {found.kind} of {found.tokens} tokens "
                f"made by another request")
        return found

    def _replayed(self, key: str, kind: str, fingerprint: str) -> Entry | None:
        found = self._store.by_key(key)
        return None if found is None else self._replay_of(found, kind, fingerprint)

    def _append(self, kind: EntryKind, key: str, tokens: int, fingerprint: str, *, posted: int = 0,
                held: int = 0, ref: int | None = None, memo: str | None = None,
                tags: Mapping[str, str] | None = None, styles: Styles = (),
                table_version: str | None = None, table_digest: str | None = None,
                expires_at: datetime | None = None, opens: bool = False,
                closes: int | None = None, stamp: tuple[int, datetime] | None = None,
                use: BudgetUse | None = None,
                spent_at: datetime | None = None) -> tuple[Entry, bool]:
        """Write an entry, unless its key is used: then the original entry of a replay (or
        `IdempotencyConflict`). Returns the entry and whether it was written."""
        tip = self._store.tip()
        micros, at = self._stamp() if stamp is None else stamp
        row = (tip.id + 1, kind, key, tokens, micros, ref, memo, tags_text(tags or {}),
               styles_text(styles), table_version, table_digest,
               None if expires_at is None else to_micros(expires_at), fingerprint)
        digest = chain_hash(tip.hash, row)
        entry = Entry(tip.id + 1, kind, key, tokens, at, ref, memo, tags or {}, styles,
                      table_version, table_digest, expires_at, fingerprint, digest)
        new_tip = Tip(entry.id, digest, tip.posted + posted, tip.held + held)
        taken = self._store.append(entry, (*row, digest), new_tip, opens=opens, closes=closes)
        if taken is not None:
            return self._replay_of(taken, kind, fingerprint), False
        # Budgets: spend is what leaves posted (debits, captures; refunds give it back).
        spent = -posted if kind in ("debit", "capture", "refund") else 0
        if spent or held:
            self._track(entry, spent, held, use, spent_at or entry.at)
        return entry, True

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
        micros = to_micros(period_at)
        for budget, _, _, since in use:
            if budget.matches(entry.tags):
                # Spend in a period before the budget's first is not the budget's.
                counted = spent if since is None or micros >= since else 0
                if counted or held:
                    self._store.bump_budget(budget.name, labels[budget.period], spent=counted,
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
        fingerprint = fingerprint_of(kind="note", memo=memo_, tags=tags)
        with self._store.write():
            return self._append("note", key, 0, fingerprint, memo=memo_, tags=tags)[0]

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
            TypeError, ValueError: A bad amount, key, memo or tags, or a balance past 2**62.
        """
        tokens = _check_tokens(tokens)
        key, memo, tags = _check_key(key), _check_memo(memo), _check_tags(tags)
        fingerprint = fingerprint_of(kind="credit", tokens=tokens, memo=memo, tags=tags)
        with self._store.write():
            # The key is looked up by the insert itself (`Store.append`), or on a refusal:
            # a replay returns its original entry even when the request could not be done now.
            posted = self._store.tip().posted
            if posted + tokens > _MAX_BALANCE:
                found = self._replayed(key, "credit", fingerprint)
                if found is not None:
                    return found
                raise ValueError(f"a credit of {tokens} would take the balance ({posted}) past "
                                 f"2**62 = {_MAX_BALANCE} tokens")
            return self._append("credit", key, tokens, fingerprint, posted=tokens, memo=memo,
                                tags=tags)[0]

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
            InsufficientTokens: ``amount`` is more than available, even once the lapsed
                holds are expired; nothing is written.
            BudgetExceeded: A hard budget would be exceeded; nothing is written.
            IdempotencyConflict: ``key`` was used for another request.
            TypeError, ValueError: A bad amount, key, tags or time.
        """
        parsed = _amount(amount)
        key, memo, tags = _check_key(key), _check_memo(memo), _check_tags(tags)
        expires = None if expires_at is None else to_micros(expires_at)
        fingerprint = fingerprint_of(
            kind="hold", tokens=parsed.tokens, styles=parsed.styles, memo=memo, tags=tags,
            table_version=parsed.table_version, table_digest=parsed.table_digest,
            expires_at=expires)
        with self._store.write():
            stamp = self._stamp()
            try:
                if expires is not None and expires <= stamp[0]:
                    raise ValueError(f"expires_at {expires_at} is not in the future")
                use = self._room(parsed.tokens, tags, stamp[0])
            except (ValueError, BillingError) as refusal:
                found = self._replayed(key, "hold", fingerprint)
                if found is not None:
                    return Hold(found, self._store.closing(found.id))
                if not isinstance(refusal, InsufficientTokens | BudgetExceeded):
                    raise
                use = self._room_after_expiry(refusal, parsed.tokens, tags, stamp[0])
            entry, written = self._append(
                "hold", key, parsed.tokens, fingerprint, held=parsed.tokens, memo=memo,
                tags=tags, styles=parsed.styles, table_version=parsed.table_version,
                table_digest=parsed.table_digest,
                expires_at=None if expires is None else from_micros(expires), opens=True,
                stamp=stamp, use=use)
            return Hold(entry) if written else Hold(entry, self._store.closing(entry.id))

    def _room(self, tokens: int, tags: Mapping[str, str], micros: int) -> BudgetUse:
        """Raise `InsufficientTokens` or `BudgetExceeded` unless ``tokens`` more may be held
        or spent; returns the budgets' use, for `_append` to update."""
        self._check_available(tokens)
        return self._check_budgets(tokens, tags, micros)

    def _room_after_expiry(self, refusal: InsufficientTokens | BudgetExceeded, tokens: int,
                           tags: Mapping[str, str], micros: int) -> BudgetUse:
        """`_room` once the holds lapsed by ``micros`` are expired (in a savepoint of this
        transaction); ``refusal`` again, with nothing written, if there is still no room."""
        if not self._store.open_holds(due_by=micros):
            raise refusal
        try:
            with self._store.batch():
                self._expire_due(micros, micros)
                return self._room(tokens, tags, micros)
        except (InsufficientTokens, BudgetExceeded):
            raise refusal from None

    def _check_budgets(self, tokens: int, tags: Mapping[str, str], micros: int) -> BudgetUse:
        """Raise `BudgetExceeded` for the first hard budget ``tokens`` more would exceed
        (open holds count); returns the budgets' use, for `_append` to update."""
        use = self._budget_use(from_micros(micros))
        for budget, held, spent, since in use:
            if budget.hard and budget.matches(tags) and (since is None or micros >= since):
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
            InsufficientTokens: ``amount`` is more than available, even once the lapsed
                holds are expired; nothing is written.
            BudgetExceeded: A hard budget would be exceeded; nothing is written.
            IdempotencyConflict: ``key`` was used for another request.
            TypeError, ValueError: A bad amount, key or tags.
        """
        parsed = _amount(amount)
        key, memo, tags = _check_key(key), _check_memo(memo), _check_tags(tags)
        fingerprint = fingerprint_of(
            kind="debit", tokens=parsed.tokens, styles=parsed.styles, memo=memo, tags=tags,
            table_version=parsed.table_version, table_digest=parsed.table_digest)
        with self._store.write():
            stamp = self._stamp()
            try:
                use = self._room(parsed.tokens, tags, stamp[0])
            except (InsufficientTokens, BudgetExceeded) as refusal:
                found = self._replayed(key, "debit", fingerprint)
                if found is not None:
                    return found
                use = self._room_after_expiry(refusal, parsed.tokens, tags, stamp[0])
            return self._append(
                "debit", key, parsed.tokens, fingerprint, posted=-parsed.tokens, memo=memo,
                tags=tags, styles=parsed.styles, table_version=parsed.table_version,
                table_digest=parsed.table_digest, stamp=stamp, use=use)[0]

    def _open_hold(self, hold: object) -> Entry:
        entry = self._resolve(hold, "hold")
        if entry.kind != "hold":
            raise UnknownEntry(_ref_of(hold), "hold")
        return entry

    def _closing_key(self, entry: Entry, kind: str, key: str | None) -> str:
        """``key``, else the hold's key + ``":capture"`` (or ``":void"``), with ``":2"``,
        ``":3"``... when another entry, not about this hold, already has that key."""
        if key is not None:
            return _check_key(key)
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

    def capture(self, hold: object, tokens: int | None = None, *,
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
            _check_tokens(tokens)
        with self._store.write():
            entry = self._open_hold(hold)
            key = self._closing_key(entry, "capture", key)
            amount = entry.tokens if tokens is None else tokens
            fingerprint = fingerprint_of(kind="capture", tokens=amount, ref=entry.id)
            found = self._closed(entry, key, "capture", fingerprint)
            if found is not None:
                return found
            # One reading of the clock for the check and the entry: a capture is always
            # written before its hold's expires_at (verify checks it).
            stamp = self._stamp()
            if entry.expires_at is not None and to_micros(entry.expires_at) <= stamp[0]:
                raise HoldClosed(entry.id, "lapsed")
            if amount > entry.tokens:
                raise AmountTooLarge("capture", entry.id, amount, entry.tokens)
            return self._append(
                "capture", key, amount, fingerprint, posted=-amount, held=-entry.tokens,
                ref=entry.id, tags=entry.tags, styles=_split(amount, entry.styles),
                table_version=entry.table_version, table_digest=entry.table_digest,
                closes=entry.id, stamp=stamp)[0]

    def void(self, hold: object, *, key: str | None = None) -> Entry:
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
        with self._store.write():
            entry = self._open_hold(hold)
            key = self._closing_key(entry, "void", key)
            fingerprint = fingerprint_of(kind="void", ref=entry.id)
            found = self._closed(entry, key, "void", fingerprint)
            if found is not None:
                return found
            return self._append("void", key, entry.tokens, fingerprint, held=-entry.tokens,
                                ref=entry.id, tags=entry.tags, closes=entry.id)[0]

    def expire_holds(self, now: datetime | None = None) -> tuple[Entry, ...]:
        """Release every open hold whose ``expires_at`` is at or before ``now``.

        The ``expire`` entries are written at ``now`` or the clock's time, whichever is later:
        never before the hold lapsed.

        Args:
            now: The time to compare with (aware); defaults to the ledger's clock.

        Returns:
            The ``expire`` entries written, oldest hold first (empty when none was due).
        """
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
                "expire", key, entry.tokens, fingerprint, held=-entry.tokens, ref=entry.id,
                tags=entry.tags, closes=entry.id, stamp=(micros, from_micros(micros)))[0])
        return written

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
            return self._append(
                "refund", key, amount, fingerprint, posted=amount, ref=spent.id,
                tags=spent.tags, styles=_split(amount, tuple(left.items())),
                table_version=spent.table_version, table_digest=spent.table_digest,
                spent_at=spent.at)[0]

    # -- budgets --------------------------------------------------------------------------

    def _budget_at(self, entry_id: object, document: object) -> Budget:
        """The budget of a ``budget`` entry's memo (parsed once per document)."""
        budget = self._parsed.get(document) if isinstance(document, str) else None
        if budget is None:
            budget = _budget_of(entry_id, document)
            self._parsed[str(document)] = budget
        return budget

    def _chain_budgets(self, at: datetime | None = None) -> list[_Kept]:
        """Every budget of the chain, in the order added, as its entry says, with what is
        kept beside it: ``(budget, added, held, spent)``, ``added`` in microseconds,
        ``held`` the tokens of its open holds and ``spent`` its spend in the period holding
        ``at`` (default: the clock's now), both ``None`` when nothing beside the chain is
        kept for it under its name (`verify` reports that)."""
        labels = _labels(self._now() if at is None else at)
        found: list[_Kept] = []
        for entry_id, document, added, name, held, spent in self._store.budget_entries(
                tuple(labels.values())):
            if type(added) is not int:
                raise LedgerCorrupted(entry_id, f"bad time {_shown(added)} (microseconds "
                                      "since 1970)")
            budget = self._budget_at(entry_id, document)
            if name != budget.name or held is None:
                found.append((budget, added, None, None))
            else:
                found.append((budget, added, held, spent.get(labels[budget.period], 0)))
        return found

    def _budget_use(self, at: datetime) -> BudgetUse:
        """Every budget, as its entry in the chain sets it, with its open holds, its spend
        in the period holding ``at``, and the first moment it counts."""
        use = []
        for budget, added, kept_held, kept_spent in self._chain_budgets(at):
            if kept_held is None or kept_spent is None:  # nothing kept beside the chain
                held, spent = self._summed(budget, at)
            else:
                held, spent = kept_held, kept_spent
            use.append((budget, held, spent, self._first(budget, added)))
        return use

    def _summed(self, budget: Budget, at: datetime) -> tuple[int, int]:
        """``(held, spent)`` of ``budget`` in the period holding ``at``, from the entries."""
        start, end = budget.bounds(at)
        scope = dict(budget.scope)
        spent = self._store.spend(_micros(start), _micros(end), None, scope)
        return self._store.held_in(scope), sum(spent.values())

    def _first(self, budget: Budget, added: int) -> int | None:
        """The first moment ``budget``, added at ``added``, counts (microseconds): the start
        of the period holding ``added``; ``None`` for a total budget."""
        key = (budget.period, added)
        if key not in self._starts:
            from imagine_billing.ledger.budgets import period_bounds

            start, _ = period_bounds(budget.period, from_micros(added))
            self._starts[key] = None if start is None else to_micros(start)
        return self._starts[key]

    def _spend_by_period(self, budget: Budget, since: int | None) -> dict[str, int]:
        """The entries' spend in ``budget``'s scope from ``since`` on, by period label (one
        grouped query: by day, then days summed into the budget's periods)."""
        from imagine_billing.ledger.budgets import period_label

        scope = dict(budget.scope)
        if since is None:
            return {"total": sum(self._store.spend(None, None, None, scope).values())}
        usage: dict[str, int] = {}
        for day, tokens in sorted(self._store.spend(since, None, _DAY, scope).items()):
            label = period_label(budget.period, from_micros(since + day * _DAY))
            usage[label] = usage.get(label, 0) + tokens
        return usage

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
        document = canonical(budget.to_dict())
        with self._store.write():
            for stored, _, _, _ in self._chain_budgets():
                if stored.name == budget.name:
                    existing = canonical(stored.to_dict())
                    if existing != document:
                        raise BudgetConflict(stored.name, existing)
                    return stored
            key = budget_key(budget.name, lambda key: self._store.by_key(key) is not None)
            stamp = self._stamp()
            entry, _ = self._append("budget", key, 0,
                                    fingerprint_of(kind="budget", memo=document),
                                    memo=document, stamp=stamp)
            self._keep_budget(budget, document, entry.id, stamp[0])
        return self._budget_at(entry.id, document)

    def _keep_budget(self, budget: Budget, document: str, entry: int, added: int) -> None:
        """Keep beside the chain the row and running figures of ``budget``, which entry
        ``entry`` added at ``added``: its open holds and its spend by period so far."""
        from imagine_billing.ledger.budgets import period_label

        usage = self._spend_by_period(budget, self._first(budget, added))
        usage.setdefault(period_label(budget.period, from_micros(added)), 0)
        self._store.put_budget(budget.name, budget.period, document, entry=entry,
                               held=self._store.held_in(dict(budget.scope)), added=added,
                               usage=usage)

    def budget_usage(self, name: str, at: datetime | None = None) -> tuple[int, int] | None:
        """The running figures the ledger keeps for budget ``name``, read in O(1).

        ``(spent, held)``: its spend in its period holding ``at`` (default: the clock's now),
        refunds counted in the period of the spend they give back, and the tokens of the
        open holds in its scope now: the figures a hard budget is checked against, kept in
        each write's transaction (and checked by `verify`). The spend is the whole period's
        as written so far, entries stamped after ``at`` included (a clock set back writes
        them).

        Returns:
            The figures; ``None`` when ``at`` is in a period before the one the budget was
            added in: the ledger keeps none for it (`budget_status` sums the entries then).

        Raises:
            UnknownBudget: The ledger has no budget of that name.
            ValueError: ``at`` is naive.
        """
        micros = to_micros(self._clock() if at is None else at)  # naive: ValueError
        with self._store.read():
            use = self._budget_use(from_micros(micros))
        for budget, held, spent, since in use:
            if budget.name == name:
                return None if since is not None and micros < since else (spent, held)
        raise UnknownBudget(name, [budget.name for budget, _, _, _ in use])

    def budgets(self) -> tuple[Budget, ...]:
        """The ledger's budgets, in the order they were added."""
        with self._store.read():
            return tuple(budget for budget, _, _, _ in self._chain_budgets())

    def budget(self, name: str) -> Budget:
        """The budget of that name.

        Raises:
            UnknownBudget: The ledger has none (an `UnknownEntry`; ``.known`` lists the names
                it has).
        """
        budgets = self.budgets()
        for budget in budgets:
            if budget.name == name:
                return budget
        raise UnknownBudget(name, [b.name for b in budgets])

    # -- aggregates (SQL in SQLite: no entry is loaded) ---------------------------------------

    def now(self) -> datetime:
        """The ledger clock's time (aware, to the microsecond)."""
        return self._now()

    @contextmanager
    def snapshot(self) -> Iterator[Ledger]:
        """Read several figures from one consistent state of the ledger (other threads'
        writes on this object wait for the block to end: keep it short)."""
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
            found = self._store.by_key(unicode_text(ref, "key"))
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
            entry = _decoded(row)
            if all(entry.tags.get(name) == value for name, value in wanted):
                yield entry

    def spend(self, by: str = "style", since: datetime | None = None,
              until: datetime | None = None) -> dict[str | None, int]:
        """Tokens spent (debits + captures - refunds), grouped.

        A refund counts where the debit or capture it gives back counts (its day, its time
        for ``since``/``until``), as in `spent`, `spend_slices` and budgets: debit 10 on
        1 March and refund 4 of it on 2 March make ``{"2026-03-01": 6}`` by day.

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
        totals = self._store.spend_by(by, _micros(since), _micros(until))
        if by == "day":
            totals = {from_micros(day * _DAY).date().isoformat(): tokens
                      for day, tokens in totals.items()}
        return dict(sorted(totals.items(), key=_style_order))

    def head(self) -> Anchor:
        """The id and hash of the last entry (``(0, GENESIS)`` for an empty ledger).

        Record it where the ledger's file cannot reach (another system, a log, a signed
        note): `verify` with ``expect=`` that pair later proves the chain still holds that
        entry unchanged, which a rewrite of the whole chain or a cut of its end would not.
        """
        tip = self._store.tip()
        return tip.id, tip.hash

    def verify(self, *, expect: Anchor | None = None) -> int:
        """Check the whole chain, and the balance and open holds the store keeps.

        The chain's hash is not keyed: it detects a change to any entry, an entry removed,
        inserted or reordered, or a tip that disagrees, but not a chain cut at its end with
        the tip set back, nor one rewritten with every hash recomputed. ``expect``, a `head`
        recorded earlier elsewhere, closes that gap.

        Args:
            expect: ``(id, hash)``: the entry ``id`` must still be in the chain with that
                hash.

        Returns:
            The number of entries checked.

        Raises:
            LedgerCorrupted: Names the first bad entry: changed (its hash does not match),
                missing, inserted or reordered, outside the chain (past the recorded last
                entry), making an impossible balance, or not the ``expect``-ed one; or
                ``"tip"``/``"balance"``/``"open holds"``/``"budget ..."`` when what the
                ledger keeps disagrees with the chain; ``"file"`` when the file is damaged.
            TypeError, ValueError: ``expect`` is not an ``(id, hash)`` pair.
        """
        anchor = _anchor(expect)
        store = self._store
        try:
            with store.read():
                extent = store.id_range()
                if extent is not None and extent[0] < 1:
                    # `rows` starts at entry 1: a row before it is in no figure, but it is
                    # the first bad one.
                    raise LedgerCorrupted(extent[0], "it is not in the chain, which starts at "
                                          "entry 1: a row written behind the ledger's back")
                replay = _Replay(anchor, self._budget_at)
                for row in store.rows():
                    replay.apply(row)
                tip = store.tip()
                holds = store.open_hold_expiries()
                self._check_tip(replay, tip, extent, holds)
                self._verify_budgets(replay.budgets)
        except LedgerStoreError as error:
            if error.damaged:
                raise LedgerCorrupted("file", error.reason) from None
            raise
        replay.finish()
        return replay.id

    @staticmethod
    def _check_tip(replay: _Replay, tip: Tip, extent: tuple[int, int] | None,
                   holds: list[tuple[int, int | None]]) -> None:
        """What the store keeps beside the entries agrees with the replayed chain."""
        if (tip.id, tip.hash) != (replay.id, replay.hash):
            raise LedgerCorrupted("tip", f"the chain ends at entry {replay.id} but the ledger "
                                  f"records entry {tip.id} as its last (entries lost?)")
        if extent is not None and extent[1] > tip.id:
            raise LedgerCorrupted(tip.id + 1, f"the file holds entries past the recorded last "
                                  f"entry {tip.id} (up to id {extent[1]}): rows written behind "
                                  "the ledger's back, or a write that was never committed")
        if (tip.posted, tip.held) != (replay.posted, replay.held):
            raise LedgerCorrupted(
                "balance", f"the entries give posted {replay.posted}, held {replay.held}; the "
                f"ledger records posted {tip.posted}, held {tip.held}")
        expected = [(hold_id, due) for hold_id, (_, due) in sorted(replay.open.items())]
        if expected != holds:
            first = min(hold_id for hold_id, _ in set(expected) ^ set(holds))
            raise LedgerCorrupted(
                "open holds", f"the open holds recorded differ from the entries at hold "
                f"{_shown(first)}: recorded {_hold_state(dict(holds).get(first, 'closed'))}, "
                f"the entries give {_hold_state(dict(expected).get(first, 'closed'))}")

    def _verify_budgets(self, chain: Mapping[str, tuple[int, Budget, str, int]]) -> None:
        """The budgets kept beside the chain are those its entries add, with the same
        settings, and the running figures of each agree with the entries: its open holds,
        and its spend in every period it has figures for (the one it was added in and those
        after it), each period's entries only."""
        store = self._store
        with store.read():
            self._check_budget_rows(chain)
            held_of = {entry_id: held for entry_id, _, _, _, held, _
                       in store.budget_entries(())}
            for name, (entry_id, budget, _, added) in chain.items():
                held = held_of.get(entry_id)
                actual_held = store.held_in(dict(budget.scope))
                if held != actual_held:
                    raise LedgerCorrupted(f"budget {name!r}", f"the entries give held "
                                          f"{actual_held}; the budget records held {held}")
                since = self._first(budget, added)
                expected = {label: tokens for label, tokens
                            in self._spend_by_period(budget, since).items() if tokens}
                recorded = self._recorded_spend(budget, since)
                if expected != recorded:
                    label = min(set(expected) ^ set(recorded)
                                or {k for k in expected if expected[k] != recorded[k]})
                    raise LedgerCorrupted(
                        f"budget {name!r}",
                        f"the entries give spent {expected.get(label, 0)} in {label}; the "
                        f"budget records spent {_shown(recorded.get(label, 0))}")

    def _check_budget_rows(self, chain: Mapping[str, tuple[int, Budget, str, int]]) -> None:
        """Each budget row beside the chain has a ``budget`` entry of its name, and the
        entry's id, period, document and time; each such entry has its row."""
        rows = {}
        for entry_id, name, period, document, added in self._store.budget_table():
            found = chain.get(name) if isinstance(name, str) else None
            if found is None:
                raise LedgerCorrupted(f"budget {_shown(name)}", "the ledger keeps it, but no "
                                      "entry of the chain adds it: a budget written behind "
                                      "the ledger's back")
            expected = (found[0], found[1].period, found[2], _when(found[3]))
            kept_row = (entry_id, period, document,
                        _when(added) if type(added) is int else _shown(added))
            for what, kept, chained in zip(("entry", "period", "document", "added time"),
                                           kept_row, expected, strict=True):
                if kept != chained:
                    shown = (kept, chained) if what == "added time" else (
                        _shown(kept), _shown(chained))
                    raise LedgerCorrupted(
                        f"budget {name!r}", f"its {what} kept beside the chain is {shown[0]}, "
                        f"but its entry {found[0]} gives {shown[1]}: the budget's settings "
                        "were changed behind the ledger's back")
            rows[name] = entry_id
        for name, (entry_id, _, _, _) in chain.items():
            if name not in rows:
                raise LedgerCorrupted(f"budget {name!r}", f"entry {entry_id} adds it, but the "
                                      "ledger keeps no row for it: the budget was deleted "
                                      "behind the ledger's back")

    def _recorded_spend(self, budget: Budget, since: int | None) -> dict[str, object]:
        """The spend ``budget`` records by period label, for its periods from ``since`` on
        (those before are not its own), zeros left out."""
        from imagine_billing.ledger.budgets import label_bounds

        recorded: dict[str, object] = {}
        for label, tokens in self._store.budget_periods(budget.name).items():
            try:
                start, _ = label_bounds(budget.period, label)
            except ValueError:
                raise LedgerCorrupted(f"budget {budget.name!r}", f"it records spend for "
                                      f"{_shown(label)}, which names no {budget.period}"
                                      ) from None
            if tokens and (since is None or start is None or to_micros(start) >= since):
                recorded[label] = tokens
        return recorded

    # -- export ---------------------------------------------------------------------------

    def export(self, out: IO[str], *, format: Literal["jsonl", "csv"] = "jsonl") -> int:
        """Write every entry to ``out``, oldest first.

        JSON lines are the form to keep and re-import: exact, hash included (`from_jsonl`
        verifies them). CSV is for people and spreadsheets only: it cannot tell a memo of
        ``None`` from an empty one (both an empty cell), so it does not round-trip.

        Args:
            out: A text stream.
            format: ``"jsonl"``: one `Entry.to_dict` document a line (`from_jsonl` reads
                it back; the line separators U+0085, U+2028 and U+2029 are escaped, so
                that ``str.splitlines`` cuts lines where ``\\n`` does); ``"csv"``: a header,
                then one row an entry (tags and styles as JSON).

        Returns:
            The number of entries written.
        """
        if format not in ("jsonl", "csv"):
            raise ValueError(f"format must be 'jsonl' or 'csv' (got {format!r})")
        count = 0
        if format == "jsonl":
            for entry in self.entries():
                line = json.dumps(entry.to_dict(), ensure_ascii=False, sort_keys=True)
                if not line.isascii():
                    # Only inside strings, where an escape means the same character.
                    line = line.translate(_LINE_BREAKS)
                out.write(line + "\n")
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


_LINE_BREAKS = {0x85: "\\u0085", 0x2028: "\\u2028", 0x2029: "\\u2029"}
"""Characters `str.splitlines` breaks at that JSON leaves as they are (it escapes the rest)."""

_DAY = 86_400_000_000
"""A day in microseconds."""


def _hold_state(expires: object) -> str:
    if expires == "closed":
        return "closed"
    return f"open ({_when(expires) if isinstance(expires, int) or expires is None else expires})"


def _decoded(row: Row) -> Entry:
    """The entry of a stored row; a row that is no entry is `LedgerCorrupted`."""
    try:
        return Entry.from_row(row)
    except (TypeError, ValueError, OverflowError) as error:
        raise LedgerCorrupted(row[0], f"its stored fields cannot be read ({error})") from None


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
