"""The reads of a ledger: its balance, entries and spend, mostly one store query each.

`LedgerReads` is the part of `Ledger` that never writes (aggregates are SQL in SQLite: no
entry is loaded); `resolve` turns what a caller names an entry by into the stored entry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Self

from imagine_billing._checks import unicode_text
from imagine_billing.errors import UnknownEntry
from imagine_billing.ledger._budget_tracking import DAY, micros_of
from imagine_billing.ledger._chain import Anchor
from imagine_billing.ledger._draft import check_tags, style_order
from imagine_billing.ledger.model import Balance, Entry, Hold, from_micros, to_micros
from imagine_billing.ledger.store import Store, decoded

__all__ = ["LedgerReads", "open_hold", "ref_of", "resolve"]


def resolve(store: Store, ref: Entry | Hold | int | str, kind: str = "entry") -> Entry:
    """The entry ``ref`` names: an `Entry` (as stored, hash and all), a `Hold`, an id (int)
    or a key (str); `UnknownEntry` (a ``kind``) when there is none."""
    ref_: object = ref
    if isinstance(ref_, Hold):
        ref_ = ref_.entry
    if isinstance(ref_, Entry):
        found = store.by_id(ref_.id)
        if found is None or found.hash != ref_.hash:
            raise UnknownEntry(ref_.id, kind)
        return found
    if isinstance(ref_, bool) or not isinstance(ref_, int | str):
        raise TypeError(f"an {kind} is an Entry, a Hold, an id (int) or a key (str) "
                        f"(got {ref_!r})")
    if isinstance(ref_, int):
        # No entry has an id past the last one (and SQLite takes 64-bit ids only).
        found = store.by_id(ref_) if 0 < ref_ <= store.tip().id else None
    else:
        found = store.by_key(unicode_text(ref_, "key"))
    if found is None:
        raise UnknownEntry(ref_, kind)
    return found


def open_hold(store: Store, hold: Entry | Hold | int | str) -> Entry:
    """The ``hold`` entry ``hold`` names (open or not); `UnknownEntry` if it names none."""
    entry = resolve(store, hold, "hold")
    if entry.kind != "hold":
        raise UnknownEntry(ref_of(hold), "hold")
    return entry


def ref_of(ref: object) -> object:
    """What names an entry in an `UnknownEntry`: the id of an `Entry` or `Hold`, else as is."""
    if isinstance(ref, Hold | Entry):
        return ref.id
    return ref


class LedgerReads:
    """The reads of `Ledger` (see there), over ``_store``, timed by ``_clock``."""

    _store: Store
    _clock: Callable[[], datetime]

    def now(self) -> datetime:
        """The ledger clock's time (aware, to the microsecond)."""
        return from_micros(to_micros(self._clock()))

    @contextmanager
    def snapshot(self) -> Iterator[Self]:
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
        return sum(self._store.spend(micros_of(since), micros_of(until), None,
                                     check_tags(tags)).values())

    def held(self, tags: Mapping[str, str] | None = None) -> int:
        """The tokens of the open holds carrying all of ``tags``."""
        return self._store.held_in(check_tags(tags))

    def spend_slices(self, start: datetime, width: timedelta, count: int,
                     tags: Mapping[str, str] | None = None) -> list[int]:
        """Spend (debits + captures - refunds) of ``count`` consecutive slices of ``width``
        from ``start``, carrying all of ``tags``: one grouped query."""
        since = to_micros(start)
        step = width // timedelta(microseconds=1)
        if step < 1 or count < 1:
            raise ValueError(f"slices need a width > 0 and a count >= 1 (got {width}, {count})")
        totals = self._store.spend(since, since + step * count, step, check_tags(tags))
        return [totals.get(i, 0) for i in range(count)]

    def available_at(self, when: datetime) -> int:
        """``available`` as it was at ``when`` (the entries written up to and at ``when``)."""
        after = to_micros(when) + 1
        with self._store.read():
            tip = self._store.tip()
            return tip.posted - tip.held - self._store.available_change(after, None)

    def balance(self) -> Balance:
        """The balance now (kept with every write, so O(1)): posted, held, available."""
        tip = self._store.tip()
        return Balance(tip.posted, tip.held)

    def get(self, ref: Entry | Hold | int | str) -> Entry:
        """The entry with that id (int) or key (str).

        Raises:
            UnknownEntry: There is none.
        """
        return resolve(self._store, ref)

    def get_hold(self, ref: Entry | Hold | int | str) -> Hold:
        """The hold with that id (int) or key (str), with its current status.

        Raises:
            UnknownEntry: There is no such hold.
        """
        entry = open_hold(self._store, ref)
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
        wanted = check_tags(tags).items()
        rows = self._store.rows(None if since is None else to_micros(since),
                                None if until is None else to_micros(until))
        for row in rows:
            entry = decoded(row)
            if all(entry.tags.get(name) == value for name, value in wanted):
                yield entry

    def written_after(self, moment: datetime, tags: Mapping[str, str] | None = None
                      ) -> tuple[int, int, list[tuple[int, int]]]:
        """What the entries carrying ``tags`` written after ``moment`` changed, for a report
        about that moment: ``(how many, held now - held then, [(spend time in
        microseconds, tokens) of each refund of earlier spend]``); see
        `imagine_billing.ledger.store.Store.written_after`."""
        scope = check_tags(tags)
        with self._store.read():
            return self._store.written_after(to_micros(moment), scope)

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
        totals = self._store.spend_by(by, micros_of(since), micros_of(until))
        if by == "day":
            totals = {from_micros(day * DAY).date().isoformat(): tokens
                      for day, tokens in totals.items()}
        return dict(sorted(totals.items(), key=style_order))

    def head(self) -> Anchor:
        """The id and hash of the last entry (``(0, GENESIS)`` for an empty ledger).

        Record it where the ledger's file cannot reach (another system, a log, a signed
        note): `verify` with ``expect=`` that pair later proves the chain still holds that
        entry unchanged, which a rewrite of the whole chain or a cut of its end would not.
        """
        tip = self._store.tip()
        return tip.id, tip.hash
