"""The one interface under the ledger, `Store` (the in-memory store is `imagine_billing.
ledger._memory.MemoryStore`).

A store keeps entries, the tip of the chain and the balance, and the set of open holds. It
knows nothing of the rules (who may hold what, idempotency, hashing): `Ledger` does all of that
inside ``store.write()``, which must make the check-and-write atomic against every other writer
of the same data (SQLite: ``BEGIN IMMEDIATE``). Another database can be added by implementing
this protocol, without touching the ledger.

A budget is an entry of the chain (kind ``budget``: its document in the memo, the time it
was added as its time), so that its settings are as tamper-evident as any entry. Beside the
chain, a store keeps for each budget a row (its name, period, document and time again, and
the id of its entry) and two running figures updated in the same transaction as the
entries: the tokens of its open holds, and its spend per period (keyed by the period's
label, such as ``"2026-11"``), for the period it was added in and those after it. A hard
budget is then checked in O(1) per write, with the settings read from its entry, never from
the row beside it (`Ledger.verify` checks that the row agrees). Reports
(`spend`, `held_in`, `available_change`) are aggregates (SQL in SQLite) of the entries of
the chain only, ids 1 to the tip: a row outside it, written behind the ledger's back, counts
in no figure (`Ledger.verify` reports it).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

import attrs

from imagine_billing.errors import LedgerCorrupted
from imagine_billing.ledger.model import GENESIS, Entry, Row

__all__ = ["ALERT_COLUMNS", "AlertRow", "BudgetRow", "Store", "Tip", "budget_rows", "decoded",
           "figures_after"]

BudgetRow = tuple[Any, Any, Any, Any, "int | None", dict[str, int]]
"""A budget entry and what is kept beside it: see `Store.budget_entries`."""

AlertRow = tuple[Any, ...]
"""An alert as a store keeps it: the `ALERT_COLUMNS`, in that order (the last three,
``delivered_at``, ``attempts`` and ``last_error``, only as read back: a new alert is
undelivered, never attempted)."""

ALERT_COLUMNS = ("id, budget, period, threshold, kind, spent, budget_limit, projected, at, "
                 "entry, delivered_at, attempts, last_error")
"""The columns of a stored alert: its id, the budget's name, the period label, the
threshold as exact text (``"4/5"``), ``"actual"`` or ``"forecasted"``, the spend and the
limit, the projected spend as exact text (or null), when it was raised and the entry that
raised it (or null; times in microseconds), then its delivery: when delivered (or null),
the attempts made and the last attempt's error."""


def decoded(row: Row) -> Entry:
    """The entry of a stored row; a row that is no entry is `LedgerCorrupted`."""
    try:
        return Entry.from_row(row)
    except (TypeError, ValueError, OverflowError) as error:
        raise LedgerCorrupted(row[0], f"its stored fields cannot be read ({error})") from None


def budget_rows(rows: Iterable[Sequence[Any]]) -> list[BudgetRow]:
    """`BudgetRow`s from SQL rows ``(id, memo, at, name, held, label, spent)``, one row per
    budget and period label (``label`` null when a budget has no period figures yet), in
    entry order: what the SQL stores' `Store.budget_entries` share."""
    found: list[BudgetRow] = []
    for id_, memo, at, name, held, label, spent in rows:
        if not found or found[-1][0] != id_:
            found.append((id_, memo, at, name, held, {}))
        if label is not None:
            found[-1][5][label] = spent
    return found


def figures_after(rows: Iterable[Sequence[Any]]) -> tuple[int, int, list[tuple[int, int]]]:
    """`Store.written_after`'s figures from the rows of its query (``(part, a, b)``)."""
    count = held = 0
    refunds: list[tuple[int, int]] = []
    for part, first, second in rows:
        if part == "count":
            count = int(first)
        elif part == "held":
            held = int(first)
        else:
            refunds.append((int(first), int(second)))
    return count, held, refunds


@attrs.frozen
class Tip:
    """The end of the chain and the balance it gives, kept in step with every append."""

    id: int = 0
    """The id of the last entry (0 when the ledger is empty)."""
    hash: str = GENESIS
    """The hash of the last entry (`GENESIS` when empty)."""
    posted: int = 0
    """Credits + refunds - debits - captures."""
    held: int = 0
    """The tokens of every open hold."""


class Store(Protocol):
    """Where a ledger keeps its entries; every method but `write`/`read` is one short step.

    One store object may be shared by several threads: each method is atomic, and a `write`
    (or `read`) block belongs to the thread that opened it, the others waiting until it ends.
    """

    def write(self) -> AbstractContextManager[None]:
        """An exclusive write transaction: all or nothing; nested calls join the outer one.

        The outermost block commits durably on a normal exit and rolls back on an exception.
        """

    def batch(self) -> AbstractContextManager[None]:
        """Like `write`, but a block nested in another write is all or nothing on its own:
        an exception leaving it undoes its writes only (SQLite: a ``SAVEPOINT``)."""

    def read(self) -> AbstractContextManager[None]:
        """A consistent snapshot for reading (joins an enclosing write)."""

    def relaxed(self) -> AbstractContextManager[None]:
        """Write transactions begun in this block commit without waiting for the disk
        (SQLite ``synchronous = NORMAL``, PostgreSQL ``synchronous_commit = off``): a commit
        survives a crash of the process, and the next durable commit flushes it; a crash of
        the machine before then may lose it. Inside a transaction already begun, nothing
        changes (the transaction commits as it began)."""

    def tip(self) -> Tip:
        """The tip and balance, including the writes of the current transaction."""

    def append(self, entry: Entry, row: Row, tip: Tip, *, opens: bool = False,
               closes: int | None = None) -> Entry | None:
        """Add ``entry`` (inside `write`) and make ``tip`` the new tip, unless its key is used.

        Args:
            entry: The entry, hash included.
            row: The same entry as ``entry.to_row()`` gives it (the ledger has it at hand).
            tip: The tip after it.
            opens: The entry is a hold: add it to the open holds.
            closes: The id of the hold the entry closes, if any.

        Returns:
            ``None`` when the entry was added; the entry that already has its key, when
            there is one (then nothing is written: the ledger decides replay or conflict).
        """

    def by_key(self, key: str) -> Entry | None:
        """The entry with that idempotency key."""

    def by_id(self, entry_id: int) -> Entry | None:
        """The entry with that id."""

    def closing(self, hold_id: int) -> Entry | None:
        """The capture, void or expire entry of a hold (``None`` while it is open)."""

    def refunds(self, entry_id: int) -> list[Entry]:
        """The refunds of a debit or capture, oldest first."""

    def open_holds(self, due_by: int | None = None) -> list[int]:
        """The ids of open holds, oldest first; with ``due_by`` (microseconds), only those
        whose ``expires_at`` is at or before it."""

    def open_hold_expiries(self) -> list[tuple[int, int | None]]:
        """Every open hold as ``(id, expires_at in microseconds or None)``, oldest first."""

    def rows(self, since: int | None = None, until: int | None = None, *,
             first: int = 1) -> Iterator[Row]:
        """Stored rows (`Entry.to_row`) in id order, ``since <= at < until`` (microseconds),
        from entry ``first`` (at least 1) up to the last entry when the iteration starts."""

    def anchor_state(self, entry_id: int) -> tuple[int, list[tuple[Any, Any, Any]]]:
        """Where `Ledger.verify` from an anchor starts: the running figures after entry
        ``entry_id``, as the entries 1 to it give them (the store sums them: SQL).

        Returns:
            ``(posted, holds)``: credits + refunds - debits - captures of those entries, and
            the holds among them still open after the last, as ``(id, tokens, expires_at)``
            oldest first: each hold that is open now or closed by a later entry of the
            chain. Values as stored (the entries up to an anchor were verified before).
        """

    def id_range(self) -> tuple[int, int] | None:
        """The smallest and largest id stored (``None`` when there is no entry): `verify`
        checks that nothing lies outside the chain."""

    def close(self) -> None:
        """Release the store's resources; a closed store cannot be used."""

    def budget_entries(self, labels: Sequence[str]) -> list[BudgetRow]:
        """Every ``budget`` entry of the chain (ids 1 to the tip), oldest first, as ``(id,
        memo, at, name, held, spent)``: the budget's document and when it was added
        (microseconds), as stored (`Ledger` checks them), then what is kept beside the chain
        for the entry's id (``name`` and ``held`` are ``None`` when nothing is): its name,
        the tokens of its open holds, and its recorded spend in those of the period
        ``labels`` it has any in (such as ``{"2026-11": 40}``)."""

    def budget_table(self) -> list[tuple[Any, Any, Any, Any, Any]]:
        """The budgets' rows beside the chain, in the order added, as stored: ``(entry,
        name, period, document, added)`` (`Ledger.verify` checks them against the chain)."""

    def budget_periods(self, name: str) -> dict[str, int]:
        """The spend recorded for budget ``name``, by period label (`verify` checks it)."""

    def put_budget(self, name: str, period: str, document: str, *, entry: int, held: int,
                   added: int, usage: Mapping[str, int]) -> None:
        """Keep the row and figures of a budget (inside `write`) beside its entry.

        Args:
            name: The budget's name (unique).
            period: Its period kind: ``"day"``, ``"week"``, ``"month"`` or ``"total"``.
            document: Its JSON document (`Budget.to_dict`), as its entry's memo holds it.
            entry: The id of its ``budget`` entry.
            held: The tokens of the open holds in its scope.
            added: When it is added (microseconds, the ledger's clock: its entry's time).
            usage: The spend in its scope so far by period label, for the period holding
                ``added`` and every later one with spend.
        """

    def bump_budget(self, name: str, label: str, *, spent: int = 0, held: int = 0) -> None:
        """Add to a budget's spend in the period ``label`` and to its open holds (in `write`)."""

    def spend(self, since: int | None, until: int | None, width: int | None,
              scope: Mapping[str, str]) -> dict[int, int]:
        """Debits + captures - refunds carrying all of ``scope``'s tags whose spend time is
        ``since <= at < until``, by slice ``(at - since) // width`` (all in slice 0 when
        ``width`` is None). A refund's spend time is that of the debit or capture it gives
        back. Slices without spend entries are absent."""

    def spend_by(self, group: str, since: int | None, until: int | None) -> dict[Any, int]:
        """Debits + captures - refunds (spend time as in `spend`) by ``group``:
        ``"style"`` (a style, or ``None``), ``"day"`` (whole days since the epoch, UTC) or
        ``"tag:<name>"`` (the tag's value, or ``None``)."""

    def held_in(self, scope: Mapping[str, str]) -> int:
        """The tokens of the open holds carrying all of ``scope``'s tags."""

    def available_change(self, since: int | None, until: int | None) -> int:
        """How much the entries with ``since <= at < until`` changed ``available``."""

    def written_after(self, moment: int, scope: Mapping[str, str]) -> tuple[
            int, int, list[tuple[int, int]]]:
        """What the entries carrying ``scope``'s tags written after ``moment``
        (microseconds; ``at > moment``) changed, for a report about that moment:

        - how many there are;
        - ``held now - held at the moment``: the tokens of the holds placed after it and
          open now, less those of the holds placed at or before it and closed after it;
        - the refunds written after it of spend made at or before it, as ``(time of the
          spend, tokens)``, in id order.

        One aggregate over the entries after ``moment`` (SQL in the SQL stores): a report
        about a moment long past costs no decoding of the entries since."""

    def drop_budget(self, name: str) -> None:
        """Forget the row and figures kept beside the chain for budget ``name`` (inside
        `write`): the budget is removed, or is about to be kept again with new settings."""

    def add_alerts(self, rows: Sequence[AlertRow]) -> None:
        """Record alerts (inside `write`, in the transaction of the write that raised them),
        each `AlertRow` without its delivery columns; one whose id is kept already is left
        as it is (an alert is recorded once)."""

    def alert_rows(self, undelivered: bool = False) -> list[AlertRow]:
        """The alerts recorded, in the order recorded (only the undelivered ones, if
        ``undelivered``)."""

    def mark_alert(self, alert_id: str, *, delivered_at: int | None,
                   error: str | None) -> None:
        """Count a delivery attempt of the alert ``alert_id`` (inside `write`): delivered at
        ``delivered_at`` (microseconds; kept if it was delivered before), or failed with
        ``error``."""
