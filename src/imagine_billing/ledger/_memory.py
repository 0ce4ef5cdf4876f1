"""`MemoryStore`: a `imagine_billing.ledger.store.Store` in the process' memory, for tests and
throwaway ledgers (`imagine_billing.ledger.Ledger.memory`)."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from imagine_billing.ledger.model import Entry, Row, to_micros
from imagine_billing.ledger.store import AlertRow, BudgetRow, Tip

__all__ = ["MemoryStore"]

_DAY = 86_400_000_000
"""A day in microseconds."""

_Saved = tuple[int, Tip, dict[int, int | None], dict[str, tuple[str, str, int, int, int]],
               dict[tuple[str, str], int], int, dict[str, list[Any]]]


class MemoryStore:
    """A `Store` in the process' memory, for tests and throwaway ledgers (thread-safe)."""

    def __init__(self) -> None:
        self._entries: list[Entry] = []
        self._keys: dict[str, Entry] = {}
        self._closing: dict[int, Entry] = {}
        self._refunds: dict[int, list[Entry]] = {}
        self._open: dict[int, int | None] = {}
        self._tip = Tip()
        self._budgets: dict[str, tuple[str, str, int, int, int]] = {}
        """name -> (period, document, held, added, entry)."""
        self._budget_ids: list[int] = []
        """The ids of the ``budget`` entries, in order."""
        self._usage: dict[tuple[str, str], int] = {}
        self._alerts: dict[str, list[Any]] = {}
        """id -> the alert's `AlertRow` as a list (its delivery columns change)."""
        self._lock = threading.RLock()
        self._depth = 0
        self._closed = False

    def _state(self) -> _Saved:
        return (len(self._entries), self._tip, dict(self._open), dict(self._budgets),
                dict(self._usage), len(self._budget_ids),
                {key: list(row) for key, row in self._alerts.items()})

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._lock:
            self._check_open()
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            with self._undone_on_error():
                yield

    @contextmanager
    def _undone_on_error(self) -> Iterator[None]:
        """One level deeper for the block (a write, or a batch inside one); what it changed
        is undone if it raises."""
        saved = self._state()
        self._depth += 1
        try:
            yield
        except BaseException:
            self._rollback(saved)
            raise
        finally:
            self._depth -= 1

    @contextmanager
    def batch(self) -> Iterator[None]:
        with self._lock:
            if not self._depth:
                with self.write():
                    yield
                return
            with self._undone_on_error():
                yield

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._lock:
            self._check_open()
            yield

    @contextmanager
    def relaxed(self) -> Iterator[None]:
        yield  # nothing reaches a disk

    def _rollback(self, saved: _Saved) -> None:
        length, tip, open_holds, budgets, usage, budget_count, alerts = saved
        for entry in self._entries[length:]:
            del self._keys[entry.key]
            if entry.ref is not None:
                if entry.kind == "refund":
                    self._refunds[entry.ref].remove(entry)
                else:
                    self._closing.pop(entry.ref, None)
        del self._entries[length:]
        self._tip = tip
        self._open = open_holds
        self._budgets = budgets
        self._usage = usage
        self._alerts = alerts
        del self._budget_ids[budget_count:]

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError("the ledger is closed")

    def tip(self) -> Tip:
        with self._lock:
            return self._tip

    def append(self, entry: Entry, row: Row, tip: Tip, *, opens: bool = False,
               closes: int | None = None) -> Entry | None:
        with self._lock:
            if not self._depth:
                raise RuntimeError("append outside a write transaction")
            taken = self._keys.get(entry.key)
            if taken is not None:
                return taken
            self._entries.append(entry)
            self._keys[entry.key] = entry
            if opens:
                self._open[entry.id] = (
                    None if entry.expires_at is None else to_micros(entry.expires_at)
                )
            if closes is not None:
                del self._open[closes]
                self._closing[closes] = entry
            if entry.kind == "refund" and entry.ref is not None:
                self._refunds.setdefault(entry.ref, []).append(entry)
            elif entry.kind == "budget":
                self._budget_ids.append(entry.id)
            self._tip = tip
            return None

    def by_key(self, key: str) -> Entry | None:
        with self._lock:
            return self._keys.get(key)

    def by_id(self, entry_id: int) -> Entry | None:
        with self._lock:
            if 1 <= entry_id <= len(self._entries):
                return self._entries[entry_id - 1]
            return None

    def closing(self, hold_id: int) -> Entry | None:
        with self._lock:
            return self._closing.get(hold_id)

    def refunds(self, entry_id: int) -> list[Entry]:
        with self._lock:
            return list(self._refunds.get(entry_id, ()))

    def open_holds(self, due_by: int | None = None) -> list[int]:
        with self._lock:
            if due_by is None:
                return sorted(self._open)
            return sorted(i for i, e in self._open.items() if e is not None and e <= due_by)

    def open_hold_expiries(self) -> list[tuple[int, int | None]]:
        with self._lock:
            return sorted(self._open.items())

    def rows(self, since: int | None = None, until: int | None = None, *,
             first: int = 1) -> Iterator[Row]:
        with self._lock:
            self._check_open()
            entries = self._entries[max(first, 1) - 1:]
        for entry in entries:
            row = entry.to_row()
            if (since is None or row[4] >= since) and (until is None or row[4] < until):
                yield row

    def id_range(self) -> tuple[int, int] | None:
        with self._lock:
            return (1, len(self._entries)) if self._entries else None

    def anchor_state(self, entry_id: int) -> tuple[int, list[tuple[Any, Any, Any]]]:
        with self._lock:
            entries = self._entries[:max(entry_id, 0)]
            later = self._entries[len(entries):]
            posted = sum(e.tokens if e.kind in ("credit", "refund") else -e.tokens
                         for e in entries if e.kind in ("credit", "refund", "debit", "capture"))
            closed_later = {e.ref for e in later if e.kind in ("capture", "void", "expire")}
            holds = [(e.id, e.tokens, None if e.expires_at is None else to_micros(e.expires_at))
                     for e in entries if e.kind == "hold"
                     and (e.id in self._open or e.id in closed_later)]
            return posted, holds

    def close(self) -> None:
        self._closed = True

    # -- budgets and aggregates -------------------------------------------------------------

    def budget_entries(self, labels: Sequence[str]) -> list[BudgetRow]:
        with self._lock:
            kept = {entry: (name, held) for name, (_, _, held, _, entry)
                    in self._budgets.items()}
            found: list[BudgetRow] = []
            for entry_id in self._budget_ids:
                entry = self._entries[entry_id - 1]
                name, held = kept.get(entry_id, ("", None))
                spent = {label: self._usage[name, label] for label in labels
                         if (name, label) in self._usage}
                found.append((entry_id, entry.memo, to_micros(entry.at),
                              None if held is None else name, held, spent))
            return found

    def budget_table(self) -> list[tuple[Any, Any, Any, Any, Any]]:
        with self._lock:
            return [(entry, name, period, document, added) for name, (period, document, _,
                     added, entry) in self._budgets.items()]

    def budget_periods(self, name: str) -> dict[str, int]:
        with self._lock:
            return {label: spent for (budget, label), spent in self._usage.items()
                    if budget == name}

    def put_budget(self, name: str, period: str, document: str, *, entry: int, held: int,
                   added: int, usage: Mapping[str, int]) -> None:
        with self._lock:
            if not self._depth:
                raise RuntimeError("put_budget outside a write transaction")
            if name in self._budgets:
                raise ValueError(f"budget {name!r} exists")
            self._budgets[name] = (period, document, held, added, entry)
            for label, spent in usage.items():
                self._usage[name, label] = spent

    def bump_budget(self, name: str, label: str, *, spent: int = 0, held: int = 0) -> None:
        with self._lock:
            if not self._depth:
                raise RuntimeError("bump_budget outside a write transaction")
            if held:
                period, document, before, added, entry = self._budgets[name]
                self._budgets[name] = (period, document, before + held, added, entry)
            if spent:
                self._usage[name, label] = self._usage.get((name, label), 0) + spent

    def _spending(self, since: int | None, until: int | None,
                  scope: Mapping[str, str]) -> list[tuple[Entry, int, int]]:
        """``(entry, spend time, sign)`` of the debits, captures and refunds in range."""
        with self._lock:
            found = []
            for entry in self._entries:
                if entry.kind not in ("debit", "capture", "refund"):
                    continue
                # A refund counts at the time of the debit or capture it gives back.
                spent = (self._entries[entry.ref - 1]
                         if entry.kind == "refund" and entry.ref else entry)
                at = to_micros(spent.at)
                if ((since is not None and at < since) or (until is not None and at >= until)
                        or any(entry.tags.get(k) != v for k, v in scope.items())):
                    continue
                found.append((entry, at, -1 if entry.kind == "refund" else 1))
            return found

    def spend(self, since: int | None, until: int | None, width: int | None,
              scope: Mapping[str, str]) -> dict[int, int]:
        totals: dict[int, int] = {}
        for entry, at, sign in self._spending(since, until, scope):
            slot = 0 if width is None or since is None else (at - since) // width
            totals[slot] = totals.get(slot, 0) + sign * entry.tokens
        return totals

    def spend_by(self, group: str, since: int | None, until: int | None) -> dict[Any, int]:
        totals: dict[Any, int] = {}
        for entry, at, sign in self._spending(since, until, {}):
            if group == "style":
                for style, tokens in entry.styles:
                    totals[style] = totals.get(style, 0) + sign * tokens
                continue
            name = at // _DAY if group == "day" else entry.tags.get(group[4:])
            totals[name] = totals.get(name, 0) + sign * entry.tokens
        return totals

    def held_in(self, scope: Mapping[str, str]) -> int:
        with self._lock:
            return sum(self._entries[i - 1].tokens for i in self._open
                       if all(self._entries[i - 1].tags.get(k) == v for k, v in scope.items()))

    def available_change(self, since: int | None, until: int | None) -> int:
        with self._lock:
            change = 0
            for entry in self._entries:
                at = to_micros(entry.at)
                if (since is not None and at < since) or (until is not None and at >= until):
                    continue
                if entry.kind in ("credit", "refund", "void", "expire"):
                    change += entry.tokens
                elif entry.kind == "capture":
                    assert entry.ref is not None
                    change += self._entries[entry.ref - 1].tokens - entry.tokens
                else:
                    change -= entry.tokens
            return change

    def written_after(self, moment: int, scope: Mapping[str, str]) -> tuple[
            int, int, list[tuple[int, int]]]:
        with self._lock:
            count, held, refunds = 0, 0, []
            for entry in self._entries:
                if to_micros(entry.at) <= moment or any(
                        entry.tags.get(k) != v for k, v in scope.items()):
                    continue
                count += 1
                if entry.kind == "hold" and entry.id in self._open:
                    held += entry.tokens
                elif entry.kind in ("capture", "void", "expire") and entry.ref is not None:
                    hold = self._entries[entry.ref - 1]
                    if to_micros(hold.at) <= moment:
                        held -= hold.tokens
                elif entry.kind == "refund" and entry.ref is not None:
                    spent_at = to_micros(self._entries[entry.ref - 1].at)
                    if spent_at <= moment:
                        refunds.append((spent_at, entry.tokens))
            return count, held, refunds

    def _changing(self, what: str) -> None:
        if not self._depth:
            raise RuntimeError(f"{what} outside a write transaction")

    def drop_budget(self, name: str) -> None:
        with self._lock:
            self._changing("drop_budget")
            self._budgets.pop(name, None)
            self._usage = {key: spent for key, spent in self._usage.items()
                           if key[0] != name}

    def add_alerts(self, rows: Sequence[AlertRow]) -> None:
        with self._lock:
            self._changing("add_alerts")
            for row in rows:
                self._alerts.setdefault(row[0], [*row, None, 0, None])

    def alert_rows(self, undelivered: bool = False) -> list[AlertRow]:
        with self._lock:
            return [tuple(row) for row in self._alerts.values()
                    if not undelivered or row[10] is None]

    def mark_alert(self, alert_id: str, *, delivered_at: int | None,
                   error: str | None) -> None:
        with self._lock:
            self._changing("mark_alert")
            row = self._alerts.get(alert_id)
            if row is not None:
                if row[10] is None:
                    row[10] = delivered_at
                row[11] += 1
                row[12] = error
