"""`SqliteStore`: a ledger in one SQLite file, shared safely by several processes and threads.

- WAL journal; ``synchronous=FULL`` by default, so a write that returned survives a crash of
  the process or of the machine (``durable=False`` gives ``NORMAL``: safe against a crash of
  the process, faster, but the last commits may be lost if the machine loses power).
- Every write transaction starts with ``BEGIN IMMEDIATE``: it takes SQLite's write lock before
  reading anything, so a check ("enough tokens?", "key used?") and the write that depends on
  it cannot interleave with another process' write. Waiting for the lock is bounded by
  ``timeout`` seconds (30 by default); only past that does a `LedgerStoreError` surface.
- One store (one connection) may be shared by threads: a lock serialises its use, and a
  write transaction (a whole `Ledger.batch` included) belongs to the thread that began it:
  another thread's writes wait for it to end rather than join it.
- A nested `batch` is a ``SAVEPOINT``: an exception leaving it undoes its writes only.
- Entries are append-only: triggers refuse UPDATE and DELETE on them, and the hash chain (see
  `Ledger.verify`) detects a change made around the triggers. A row outside the chain (past
  the recorded last entry, written behind the ledger's back) is `LedgerCorrupted` when a
  lookup meets it, and `verify` looks for one.
- Every SQLite error is a `LedgerStoreError` naming the file (``damaged`` for a malformed
  file), never a bare ``sqlite3`` exception.

The schema and its upgrades are in `imagine_billing.ledger._sqlite_schema`; the checks made
on opening a file in `imagine_billing.ledger._sqlite_files`.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from imagine_billing.errors import LedgerCorrupted, LedgerStoreError
from imagine_billing.ledger import _sqlite_sql as queries
from imagine_billing.ledger._sqlite_files import (
    READ_ONLY,
    cannot_write,
    connect,
    damaged,
    open_read_only,
    refuse_links,
)
from imagine_billing.ledger._sqlite_schema import COLUMNS, SCHEMA, SCHEMA_VERSION, set_up
from imagine_billing.ledger._sqlite_transactions import Transactions
from imagine_billing.ledger.model import Entry, Row, to_micros
from imagine_billing.ledger.store import (
    ALERT_COLUMNS,
    AlertRow,
    BudgetRow,
    Tip,
    budget_rows,
    decoded,
    figures_after,
)

__all__ = ["SCHEMA_VERSION", "SqliteStore"]

_SCHEMA = SCHEMA
"""The schema's statements, under the name the benches import."""
_COLUMNS = COLUMNS

_INSERT = (f"INSERT INTO entries ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
           "ON CONFLICT (key) DO NOTHING")
"""Adds an entry unless its key is used (then ``rowcount`` is 0): the idempotency lookup and
the insert in one statement."""

_PAGE = 2048
"""Rows read per query by `SqliteStore.rows` (no cursor stays open between pages)."""

_LOWEST = -(2**63)
"""The smallest id SQLite can store."""


class SqliteStore(Transactions):
    """A `Store` in a SQLite file (created if missing). One store may be shared by threads
    (its use is serialised); any number of stores, in any processes, may use the same file.

    SQLite keeps its write-ahead log and its locks beside the path it is given (``L.db``
    uses ``L.db-wal`` and ``L.db-shm``), following symbolic links first. A file reached by
    two names that SQLite cannot tell are one, two hard links, would get two logs and two
    sets of locks, and writers through them would lose each other's commits: a file with
    more than one hard link is not opened for writing (remove the extra links, or copy the
    file). A read-only store (``readonly=True``) writes nothing, so opens one all the same.

    A read-only store (``readonly=True``) refuses every write. Where it may write the file
    and its folder, it opens the file as any store does (upgrading an older schema); where
    it may not (a read-only folder or mount), it opens the file read-only: SQLite then
    cannot create the ``-shm`` file that readers and writers share, so a file without a
    write-ahead log (no writer has it open) is read as it is on disk, without locks
    (SQLite's ``immutable``: a writer that starts meanwhile, as only a user who may write
    the folder can, should not checkpoint into it while it is read), and a file with a log
    is refused.

    Args:
        path: The database file.
        durable: ``synchronous=FULL`` (True, the default) or ``NORMAL``.
        timeout: Seconds to wait for another writer's lock before giving up.
        readonly: Only read: the file must exist, every write raises `LedgerStoreError`.

    Raises:
        LedgerStoreError: The file cannot be opened, is not a SQLite database, is a database
            of something else, holds a newer schema, cannot use write-ahead logging, or has
            more than one hard link (unless ``readonly``); read-only, it does not exist, or
            it cannot be written and holds an older schema or a log that cannot be read.
    """

    def __init__(self, path: str | os.PathLike[str], *, durable: bool = True,
                 timeout: float = 30.0, readonly: bool = False) -> None:
        super().__init__(os.fspath(path), timeout=timeout, readonly=readonly)
        if readonly and not os.path.exists(self.path):
            raise LedgerStoreError(self.path, "no such file (a read-only open creates none)")
        db = connect(self.path, self.path, timeout)
        try:
            if not readonly:
                refuse_links(self.path)
            set_up(db, self.path, durable=durable, timeout=timeout, begin=self._begin)
        except sqlite3.Error as error:
            db.close()
            if not (readonly and cannot_write(error)):
                name = getattr(error, "sqlite_errorname", "")
                hint = READ_ONLY if name.startswith("SQLITE_READONLY") else ""
                raise LedgerStoreError(self.path, f"cannot use as a ledger: {error}{hint}",
                                       damaged=damaged(error)) from None
            db = open_read_only(self.path, timeout)
        except BaseException:
            db.close()
            raise
        self._db = db

    def _checked(self, rows: list[Row]) -> list[Entry]:
        """Entries of ``rows`` (read before the tip), none past the recorded last entry."""
        if rows:
            last = self._last_id()
            for row in rows:
                if not 0 < row[0] <= last:
                    raise LedgerCorrupted(row[0], f"it is not in the chain, which ends at "
                                          f"entry {last}: a row written behind the ledger's "
                                          "back (run verify)")
        return [decoded(row) for row in rows]

    def _entries(self, sql: str, args: tuple[Any, ...]) -> list[Entry]:
        with self._lock:
            try:
                rows = self._usable().execute(sql, args).fetchall()
            except sqlite3.Error as error:
                raise self._failure(error) from None
            return self._checked(rows)

    def append(self, entry: Entry, row: Row, tip: Tip, *, opens: bool = False,
               closes: int | None = None) -> Entry | None:
        with self._lock:
            if not self._depth:
                raise RuntimeError("append outside a write transaction")
            db = self._usable()
            try:
                added = db.execute(_INSERT, row).rowcount
            except sqlite3.IntegrityError:
                # Not the key (ON CONFLICT): the id, taken by a row the ledger did not write.
                raise LedgerCorrupted(entry.id, "the file already holds a row with this id, "
                                      "past the recorded last entry: a row written behind "
                                      "the ledger's back (run verify)") from None
            except sqlite3.Error as error:
                raise self._failure(error) from None
            if not added:
                return self.by_key(entry.key)
            try:
                if opens:
                    expires = None if entry.expires_at is None else to_micros(entry.expires_at)
                    db.execute("INSERT INTO open_holds (id, expires_at) VALUES (?, ?)",
                               (entry.id, expires))
                if closes is not None:
                    db.execute("DELETE FROM open_holds WHERE id = ?", (closes,))
            except sqlite3.Error as error:
                raise self._failure(error) from None
            except BaseException:
                self._doomed = True  # the entry is in, its hold bookkeeping is not
                raise
            self._tip = tip
            return None

    def by_key(self, key: str) -> Entry | None:
        found = self._entries(f"SELECT {_COLUMNS} FROM entries WHERE key = ?", (key,))
        return found[0] if found else None

    def by_id(self, entry_id: int) -> Entry | None:
        if not _LOWEST <= entry_id < -_LOWEST:
            return None  # SQLite stores 64-bit ids only
        found = self._entries(f"SELECT {_COLUMNS} FROM entries WHERE id = ?", (entry_id,))
        return found[0] if found else None

    def closing(self, hold_id: int) -> Entry | None:
        found = self._entries(
            f"SELECT {_COLUMNS} FROM entries WHERE ref = ? AND kind IN "
            "('capture', 'void', 'expire') ORDER BY id LIMIT 1", (hold_id,))
        return found[0] if found else None

    def refunds(self, entry_id: int) -> list[Entry]:
        return self._entries(
            f"SELECT {_COLUMNS} FROM entries WHERE ref = ? AND kind = 'refund' ORDER BY id",
            (entry_id,))

    def open_holds(self, due_by: int | None = None) -> list[int]:
        if due_by is None:
            rows = self._all("SELECT id FROM open_holds ORDER BY id")
        else:
            rows = self._all("SELECT id FROM open_holds WHERE expires_at <= ? ORDER BY id",
                             (due_by,))
        return [row[0] for row in rows]

    def open_hold_expiries(self) -> list[tuple[int, int | None]]:
        return [(id_, expires) for id_, expires in
                self._all("SELECT id, expires_at FROM open_holds ORDER BY id")]

    def rows(self, since: int | None = None, until: int | None = None, *,
             first: int = 1) -> Iterator[Row]:
        with self._lock:
            # Up to the last entry now: rows written while the caller iterates are not read.
            last = self.tip().id
            low = max(first, 1)  # rows outside the chain are not entries (verify reports them)
            where, args = ["id >= ?", "id <= ?"], [low, last]
            if since is not None or until is not None:
                # The ids of the time range, from the time index; pages then walk the ids.
                bounds, bound_args = queries.where(since, until, {})
                start, final = self._all(
                    "SELECT min(id), max(id) FROM entries WHERE " + " AND ".join(bounds),
                    bound_args)[0]
                if start is None:
                    return
                low, last = max(start, low), min(last, final)
                # A unary + keeps the planner on the ids (the rowid), not the time index.
                for condition, value in zip(bounds, bound_args, strict=True):
                    where.append("+" + condition)
                    args.append(value)
        sql = (f"SELECT {_COLUMNS} FROM entries WHERE " + " AND ".join(where)
               + f" ORDER BY id LIMIT {_PAGE}")
        while low <= last:
            args[0], args[1] = low, last
            page = self._all(sql, args)
            yield from page
            if len(page) < _PAGE:
                return
            low = page[-1][0] + 1

    def anchor_state(self, entry_id: int) -> tuple[int, list[tuple[Any, Any, Any]]]:
        posted, holds = queries.anchor_state(entry_id)
        return int(self._all(*posted)[0][0]), [tuple(row) for row in self._all(*holds)]

    def shared(self) -> dict[str, str] | None:
        """How another process opens this file to read it (`Ledger.verify` in parts):
        ``None`` for a database in memory, or inside a write transaction (its rows are not
        committed yet, so another process would not see them)."""
        if self._depth or self.path in ("", ":memory:") or not os.path.isfile(self.path):
            return None
        return {"sqlite": os.path.abspath(self.path)}

    def id_range(self) -> tuple[int, int] | None:
        first, last = self._all("SELECT (SELECT min(id) FROM entries), "
                                "(SELECT max(id) FROM entries)")[0]
        return None if first is None else (first, last)

    # -- budgets and aggregates -------------------------------------------------------------

    def budget_entries(self, labels: Sequence[str]) -> list[BudgetRow]:
        return budget_rows(self._all(*queries.budget_entries(labels, self._writing_tip())))

    def budget_table(self) -> list[tuple[Any, Any, Any, Any, Any]]:
        return [tuple(row) for row in self._all(
            "SELECT entry, name, period, document, added FROM budgets ORDER BY seq")]

    def budget_periods(self, name: str) -> dict[str, int]:
        return dict(self._all("SELECT period, spent FROM budget_usage WHERE name = ?", (name,)))

    def put_budget(self, name: str, period: str, document: str, *, entry: int, held: int,
                   added: int, usage: Mapping[str, int]) -> None:
        self._change("INSERT INTO budgets (name, period, document, held, added, entry) "
                     "VALUES (?, ?, ?, ?, ?, ?)", (name, period, document, held, added, entry))
        for label, spent in usage.items():
            self._change("INSERT INTO budget_usage (name, period, spent) VALUES (?, ?, ?)",
                         (name, label, spent))

    def bump_budget(self, name: str, label: str, *, spent: int = 0, held: int = 0) -> None:
        if held:
            self._change("UPDATE budgets SET held = held + ? WHERE name = ?", (held, name))
        if spent:
            self._change(
                "INSERT INTO budget_usage (name, period, spent) VALUES (?, ?, ?) "
                "ON CONFLICT (name, period) DO UPDATE SET spent = spent + excluded.spent",
                (name, label, spent))

    def spend(self, since: int | None, until: int | None, width: int | None,
              scope: Mapping[str, str]) -> dict[int, int]:
        query = queries.spend(since, until, width, scope, self._writing_tip())
        return {int(slot): int(total) for slot, total in self._all(*query)}

    def spend_by(self, group: str, since: int | None, until: int | None) -> dict[Any, int]:
        query = queries.spend_by(group, since, until, self._writing_tip())
        return {name: int(total) for name, total in self._all(*query)}

    def held_in(self, scope: Mapping[str, str]) -> int:
        return int(self._all(*queries.held_in(scope, self._writing_tip()))[0][0])

    def available_change(self, since: int | None, until: int | None) -> int:
        query = queries.available_change(since, until, self._writing_tip())
        return int(self._all(*query)[0][0])

    def written_after(self, moment: int, scope: Mapping[str, str]) -> tuple[
            int, int, list[tuple[int, int]]]:
        return figures_after(self._all(*queries.written_after(moment, scope,
                                                               self._writing_tip())))

    def drop_budget(self, name: str) -> None:
        self._change("DELETE FROM budgets WHERE name = ?", (name,))
        self._change("DELETE FROM budget_usage WHERE name = ?", (name,))

    def add_alerts(self, rows: Sequence[AlertRow]) -> None:
        for row in rows:
            self._change(f"INSERT INTO alerts ({_NEW_ALERT}) VALUES "
                         "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING", row)

    def alert_rows(self, undelivered: bool = False) -> list[AlertRow]:
        if not self._all("SELECT 1 FROM sqlite_master WHERE name = 'alerts'"):
            return []  # a file of schema 4 opened read-only: not upgraded, no alerts yet
        where = " WHERE delivered_at IS NULL" if undelivered else ""
        return [tuple(row) for row in self._all(
            f"SELECT {ALERT_COLUMNS} FROM alerts{where} ORDER BY seq")]

    def mark_alert(self, alert_id: str, *, delivered_at: int | None,
                   error: str | None) -> None:
        self._change("UPDATE alerts SET delivered_at = COALESCE(delivered_at, ?), "
                     "attempts = attempts + 1, last_error = ? WHERE id = ?",
                     (delivered_at, error, alert_id))


_NEW_ALERT = ALERT_COLUMNS.rsplit(", delivered_at", 1)[0]
"""The columns of a new alert (no delivery yet)."""
