"""The hash chain: replaying entries in order, checking each against the rules of the ledger.

`verify` and an import (`imagine_billing.ledger._archive`) replay the chain with `Replay`:
each entry's hash must cover its content and the hash before it, and each must be one the
ledger could have written. With an `Anchor` (an entry's id and hash recorded elsewhere),
the replay also proves the chain still holds that entry: see `imagine_billing.ledger.ledger`
for what an unkeyed chain can and cannot prove.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from imagine_billing._checks import MAX_TOKENS, format_timestamp, shown_repr
from imagine_billing.errors import LedgerCorrupted
from imagine_billing.ledger._content import ContentCheck
from imagine_billing.ledger.model import (
    GENESIS,
    Row,
    canonical,
    chain_hash,
    entry_hash,
    from_micros,
)
from imagine_billing.ledger.store import Store, Tip

if TYPE_CHECKING:
    from imagine_billing.ledger.budgets import Budget

__all__ = [
    "MAX_BALANCE",
    "Anchor",
    "ChainBudgets",
    "Replay",
    "budget_of",
    "check_anchor",
    "check_extent",
    "check_pinned",
    "observation",
    "observation_of",
    "removal",
    "removed_budget",
    "replay_store",
    "refundable_before",
    "resume",
    "start_replay",
    "when",
]

MAX_BALANCE = 2**62
"""The most tokens a ledger holds: sums of entries stay inside SQLite's 64-bit integers."""

ChainBudgets = dict[str, tuple[int, "Budget", str, int]]
"""The budgets a chain adds: name -> (entry id, budget, document, added in microseconds)."""

Anchor = tuple[int, str]
"""A point of the chain recorded elsewhere: an entry's id and hash (`Ledger.head`)."""

_HASH = re.compile(r"[0-9a-f]{64}")

_NO_TOKENS = frozenset(("note", "budget", "observe"))
"""The kinds of entry that move no tokens."""

_NO_EFFECT: tuple[bool, int | None] = (False, None)
"""What most entries return from `Replay.apply`: they open no hold and close none."""


def check_anchor(expect: object, name: str = "expect") -> Anchor | None:
    """``expect`` if it is an `Anchor`: ``(id >= 0, 64 hex digits)``; ``name`` is the
    argument's, for messages."""
    if expect is None:
        return None
    if not isinstance(expect, tuple | list) or len(expect) != 2:
        raise TypeError(f"{name} must be an (id, hash) pair, as head() gives (got {expect!r})")
    entry_id, digest = expect
    if type(entry_id) is not int or entry_id < 0:
        raise ValueError(f"{name}: the id must be an int >= 0 (got {entry_id!r})")
    if not isinstance(digest, str) or not _HASH.fullmatch(digest):
        raise ValueError(f"{name}: the hash must be 64 lower-case hex digits (got {digest!r})")
    if entry_id == 0 and digest != GENESIS:
        raise ValueError(f"{name}: entry 0 (an empty ledger) has the hash {GENESIS} "
                         f"(got {digest!r})")
    return entry_id, digest


def when(micros: int | None) -> str:
    """A stored time (microseconds) for a message: RFC 3339, or "no expiry"."""
    return "no expiry" if micros is None else format_timestamp(from_micros(micros))


def removed_budget(document: object) -> str | None:
    """The name of the budget a ``budget`` entry removes (its memo is ``{"name": ...,
    "removed": true}``, see `removal`); ``None`` when the entry adds or changes one."""
    if not isinstance(document, str) or '"removed"' not in document:
        return None
    try:
        data = json.loads(document)
    except (ValueError, RecursionError):
        return None
    if (isinstance(data, dict) and set(data) == {"name", "removed"}
            and data["removed"] is True and isinstance(data["name"], str)):
        return data["name"]
    return None


def removal(name: str) -> str:
    """The memo of the ``budget`` entry that removes budget ``name``."""
    return canonical({"name": name, "removed": True})


def observation(balance: int, at: int) -> str:
    """The memo of an ``observe`` entry: the balance seen and when (microseconds)."""
    return canonical({"balance": balance, "at": at})


def observation_of(entry_id: object, memo: object) -> tuple[int, int]:
    """``(balance, at)`` of an ``observe`` entry's memo; `LedgerCorrupted` when it holds
    none."""
    try:
        data = json.loads(memo) if isinstance(memo, str) else None
    except (ValueError, RecursionError):
        data = None
    if (isinstance(data, dict) and set(data) == {"balance", "at"}
            and type(data["balance"]) is int and 0 <= data["balance"] <= MAX_TOKENS
            and type(data["at"]) is int and -2**62 < data["at"] < 2**62):
        return data["balance"], data["at"]
    raise LedgerCorrupted(entry_id, f"its observation cannot be read (memo {shown_repr(memo)}, "
                          'expected {"at": microseconds, "balance": tokens})')


def budget_of(entry_id: object, document: object) -> Budget:
    """The budget a ``budget`` entry's memo holds; `LedgerCorrupted` when it holds none."""
    from imagine_billing.ledger.budgets import Budget

    try:
        if not isinstance(document, str):
            raise TypeError(f"the memo is {shown_repr(document)}, not a JSON document")
        data = json.loads(document)
        if not isinstance(data, dict):
            raise TypeError(f"the memo holds {type(data).__name__}, not a JSON object")
        return Budget.from_dict(data)
    except (KeyError, TypeError, ValueError, RecursionError) as error:
        raise LedgerCorrupted(entry_id, f"its budget document cannot be read "
                              f"({shown_repr(str(error))})") from None


class Replay:
    """Re-applies rows in order, checking the chain and the balance rules (verify, import).

    Each entry must be one the ledger could have written: amounts from 1 (0 for a note or a
    budget) to `MAX_TOKENS`, the balance at most 2**62, captures of at most the hold and
    before it lapsed, voids and expiries of the whole hold, an expiry only once the hold's
    ``expires_at`` has come, refunds of at most what is left to refund, ``available`` never
    below 0, budgets with a budget document and a name of their own, and a key, tags and
    styles the ledger writes (`ContentCheck`). With an anchor, the
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
        self.earlier: Callable[[int], int] = _nothing_earlier
        """Tokens left to refund of a debit or capture before the first row replayed (see
        `resume`)."""
        self.anchor = anchor
        self.parse = parse or budget_of
        self.budgets: ChainBudgets = {}
        """The budgets the chain adds: name -> (entry id, budget, document, added)."""
        self.content = ContentCheck()
        """Checks each entry's key, tags and styles are ones the ledger writes."""

    def apply(self, row: Row) -> tuple[bool, int | None]:
        """Check ``row`` and apply it; returns ``(opens, closes)`` for `Store.append`."""
        entry_id, kind, tokens, at, ref, expires = row[0], row[1], row[3], row[4], row[5], row[11]
        if entry_id != self.id + 1:
            raise self._misplaced(entry_id)
        if type(tokens) is not int or not (
                (0 if kind in _NO_TOKENS else 1) <= tokens <= MAX_TOKENS):
            raise LedgerCorrupted(entry_id, f"bad token amount {shown_repr(tokens)} (an entry "
                                  f"moves 1 to 2**53-1 = {MAX_TOKENS} tokens)")
        if type(at) is not int:
            raise LedgerCorrupted(entry_id, f"bad time {shown_repr(at)} (microseconds since 1970)")
        try:
            digest = entry_hash(self.hash, row)
        except (TypeError, ValueError):
            digest = ""  # a stored value of no stored type: not the hash of anything
        if digest != row[-1]:
            raise LedgerCorrupted(entry_id, "its hash does not match its content and the "
                                  "previous entry's hash (changed, inserted or reordered)")
        if expires is not None and kind != "hold":
            raise LedgerCorrupted(entry_id,
                                  f"a {kind} has no expiry (it has {shown_repr(expires)})")
        if ref is None and kind == "debit":  # the most common kinds first, inline
            self.posted -= tokens
            self.refundable[entry_id] = tokens
            effect = _NO_EFFECT
        elif ref is None and kind == "credit":
            self.posted += tokens
            effect = _NO_EFFECT
        else:
            effect = self._effect(row)
        if self.posted > MAX_BALANCE:
            raise LedgerCorrupted(entry_id, f"it takes the balance to {self.posted}, past "
                                  f"2**62 = {MAX_BALANCE} tokens")
        if self.posted < self.held:
            raise LedgerCorrupted(entry_id, "it takes available tokens below 0")
        if self.anchor is not None and entry_id == self.anchor[0] and digest != self.anchor[1]:
            raise LedgerCorrupted(entry_id, f"its hash is {digest}, not {self.anchor[1]} as "
                                  "recorded: the chain was rewritten at or before this entry")
        why = self.content.problem(row[2], tokens, row[7], row[8])  # after the rules' own
        if why is not None:
            raise LedgerCorrupted(entry_id, why)
        self.id, self.hash = entry_id, digest
        return effect

    def _misplaced(self, entry_id: object) -> LedgerCorrupted:
        """The error of a row whose id is not the next one."""
        if type(entry_id) is int and entry_id <= self.id:
            return LedgerCorrupted(entry_id, f"it is out of place: it comes after "
                                   f"entry {self.id} (inserted or reordered)")
        return LedgerCorrupted(self.id + 1, f"the entry is missing (entry "
                               f"{shown_repr(entry_id)} follows entry {self.id})")

    def _effect(self, row: Row) -> tuple[bool, int | None]:
        """Apply the change of ``row``, checked by `apply` so far, unless it is a credit or
        debit of no ``ref`` (which `apply` does itself); returns ``(opens, closes)``."""
        entry_id, kind, tokens, at, ref, memo, expires = row[0], row[1], row[3], row[4], \
            row[5], row[6], row[11]
        if kind in ("credit", "debit", "hold", "note", "budget", "observe"):
            if ref is not None:
                raise LedgerCorrupted(entry_id, f"a {kind} refers to no entry (it refers to "
                                      f"{shown_repr(ref)})")
            if kind == "hold":
                if expires is not None and (type(expires) is not int or expires <= at):
                    raise LedgerCorrupted(entry_id, f"the hold expires ({shown_repr(expires)}) no "
                                          f"later than it is placed ({at})")
                self.held += tokens
                self.open[entry_id] = (tokens, expires)
                return True, None
            if tokens != 0:
                raise LedgerCorrupted(entry_id, f"a {kind} moves no tokens (it has {tokens})")
            if kind == "budget":
                self.budget_entry(entry_id, memo, at)
            elif kind == "observe":
                observation_of(entry_id, memo)
            return _NO_EFFECT
        if kind in ("capture", "void", "expire"):
            self._close(entry_id, kind, tokens, at, ref)
            return False, ref
        if kind == "refund":
            self._refund(entry_id, tokens, ref)
            return _NO_EFFECT
        raise LedgerCorrupted(entry_id, f"unknown entry kind {shown_repr(kind)}")

    def budget_entry(self, entry_id: int, document: object, at: int) -> None:
        """Apply a budget entry: it adds a budget, changes the settings of one (the same
        name again), or removes one the chain has."""
        name = removed_budget(document)
        if name is not None:
            if self.budgets.pop(name, None) is None:
                raise LedgerCorrupted(entry_id, f"it removes budget {shown_repr(name)}, which "
                                      "the chain does not have")
            return
        budget = self.parse(entry_id, document)
        assert isinstance(document, str)  # `parse` took it
        self.budgets[budget.name] = (entry_id, budget, document, at)

    def _refund(self, entry_id: int, tokens: int, ref: object) -> None:
        """Apply a refund of the debit or capture ``ref``."""
        left = 0
        if isinstance(ref, int):
            left = self.refundable[ref] if ref in self.refundable else self.earlier(ref)
        if tokens > left:
            raise LedgerCorrupted(entry_id, f"it refunds {tokens} tokens of entry "
                                  f"{shown_repr(ref)}, which has {left} left to refund")
        self.refundable[ref] = left - tokens  # type: ignore[index]  # an int: left > 0
        self.posted += tokens

    def _close(self, entry_id: int, kind: str, tokens: int, at: int, ref: object) -> None:
        """Apply a capture, void or expire of the hold ``ref``."""
        hold = self.open.pop(ref, None) if isinstance(ref, int) else None
        if hold is None:
            raise LedgerCorrupted(entry_id, f"it closes hold {shown_repr(ref)}, which is not open")
        held, due = hold
        if tokens > held or (kind != "capture" and tokens != held):
            raise LedgerCorrupted(entry_id, f"{kind} of {tokens} tokens of a hold of {held}")
        if kind == "expire" and (due is None or due > at):
            raise LedgerCorrupted(entry_id, f"it expires hold {ref} at {when(at)}, before "
                                  f"its expiry ({when(due)})")
        if kind == "capture" and due is not None and due <= at:
            raise LedgerCorrupted(entry_id, f"it captures hold {ref} at {when(at)}, after "
                                  f"it lapsed ({when(due)})")
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


def replay_store(store: Store, anchor: Anchor | None,
                 parse: Callable[[object, object], Budget], since: Anchor | None = None,
                 *, replay: Replay | None = None) -> Replay:
    """Replay every entry of ``store`` (inside its ``read``), or those after ``since`` (see
    `resume`), or after where ``replay`` (already resumed) stands, and check what it keeps
    beside them (its tip, its balance, its open holds) against the chain; see
    `Ledger.verify`.

    Returns the replay, not yet finished (`Replay.finish` checks the anchor was met).
    """
    extent = check_extent(store)
    if replay is None:
        replay = start_replay(store, since, anchor, parse)
    apply = replay.apply
    for row in store.rows(first=replay.id + 1):
        apply(row)
    _check_tip(replay, store.tip(), extent, store.open_hold_expiries())
    return replay


def check_extent(store: Store) -> tuple[int, int] | None:
    """`Store.id_range`, once no row lies before entry 1."""
    extent = store.id_range()
    if extent is not None and extent[0] < 1:
        # `rows` starts at entry 1: a row before it is in no figure, but it is the first
        # bad one.
        raise LedgerCorrupted(extent[0], "it is not in the chain, which starts at "
                              "entry 1: a row written behind the ledger's back")
    return extent


def start_replay(store: Store, since: Anchor | None, anchor: Anchor | None,
                 parse: Callable[[object, object], Budget]) -> Replay:
    """A replay from entry 1, or resumed after ``since`` (`resume`); ``anchor`` checked
    already (`check_pinned`) when it names an entry the replay will not reach."""
    if since is not None and since[0] > 0:
        replay = resume(store, since, anchor, parse)
    else:
        replay = Replay(anchor, parse)
    if anchor is not None and anchor[0] <= replay.id:
        check_pinned(store, anchor)  # an entry the replay does not reach
    return replay


def resume(store: Store, since: Anchor, anchor: Anchor | None,
           parse: Callable[[object, object], Budget]) -> Replay:
    """A replay that starts after the entry ``since`` names, once that entry is shown to
    still have its hash (`check_pinned`): the state the entries up to it give, from the
    store.

    The running figures at the anchor come from the entries themselves, not from what the
    store keeps beside them (the tip, which the replay is checked against at its end):
    posted is summed over the entries up to the anchor by the store (one pass in SQL, no
    decoding nor hashing), the holds open at the anchor are read through the open holds and
    the closing entries after it, what is left to refund of an earlier debit or capture is
    looked up when a refund names it, and the budgets are read from their entries.
    """
    entry_id, _ = since
    last = store.tip().id
    if entry_id > last:
        raise LedgerCorrupted(entry_id, f"the chain ends at entry {last}, before this entry "
                              "recorded earlier: entries were removed from its end")
    check_pinned(store, since)
    replay = Replay(anchor, parse)
    replay.id, replay.hash = since
    replay.posted, holds = store.anchor_state(entry_id)
    for hold_id, tokens, expires in holds:
        if type(tokens) is not int or (expires is not None and type(expires) is not int):
            raise LedgerCorrupted(hold_id, f"bad token amount or expiry {shown_repr(tokens)}, "
                                  f"{shown_repr(expires)} (the anchor's figures cannot be summed)")
        replay.open[hold_id] = (tokens, expires)
        replay.held += tokens
    replay.earlier = refundable_before(store, entry_id)
    for budget_id, memo, at, *_ in store.budget_entries(()):
        if budget_id <= entry_id:
            if type(at) is not int:
                raise LedgerCorrupted(budget_id, f"bad time {shown_repr(at)} (microseconds since "
                                      "1970)")
            replay.budget_entry(budget_id, memo, at)  # added, changed or removed
    return replay


def check_pinned(store: Store, anchor: Anchor) -> None:
    """The entry ``anchor`` names has the anchor's hash, both as stored and as its content
    and the hash stored before it give (`LedgerCorrupted` naming it otherwise)."""
    entry_id, digest = anchor
    if entry_id == 0:
        return  # the empty chain's GENESIS (`check_anchor`)
    previous: object = GENESIS
    for row in store.rows(first=entry_id - 1):
        if row[0] == entry_id - 1:
            previous = row[-1]
            continue
        if row[0] != entry_id:
            break
        try:
            found = chain_hash(previous, row[:-1])  # type: ignore[arg-type]  # checked here
        except (TypeError, ValueError):
            found = "not computable"  # a stored value of no stored type
        if found != digest:
            raise LedgerCorrupted(entry_id, f"its hash is {found}, not {digest} as recorded: "
                                  "the chain was rewritten at or before this entry")
        if row[-1] != digest:
            raise LedgerCorrupted(entry_id, f"its stored hash {shown_repr(row[-1])} is not the one "
                                  f"its content gives ({digest}): the entry was changed")
        return
    raise LedgerCorrupted(entry_id, "the entry is missing: the chain no longer holds this "
                          "entry recorded earlier")


def refundable_before(store: Store, start: int) -> Callable[[int], int]:
    """What is left to refund, after entry ``start``, of a debit or capture up to it."""
    def left(ref: int) -> int:
        spent = store.by_id(ref) if 1 <= ref <= start else None
        if spent is None or spent.kind not in ("debit", "capture"):
            return 0
        return spent.tokens - sum(r.tokens for r in store.refunds(ref) if r.id <= start)
    return left


def _nothing_earlier(ref: int) -> int:  # the replay starts at entry 1: nothing before it
    return 0


def _check_tip(replay: Replay, tip: Tip, extent: tuple[int, int] | None,
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
            f"{shown_repr(first)}: recorded {_hold_state(dict(holds).get(first, 'closed'))}, "
            f"the entries give {_hold_state(dict(expected).get(first, 'closed'))}")


def _hold_state(expires: object) -> str:
    if expires == "closed":
        return "closed"
    return f"open ({when(expires) if isinstance(expires, int) or expires is None else expires})"
