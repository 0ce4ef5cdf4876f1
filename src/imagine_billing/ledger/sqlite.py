"""`SqliteStore`: a ledger in one SQLite file, shared safely by several processes.

- WAL journal; ``synchronous=FULL`` by default, so a write that returned survives a crash of
  the process or of the machine (``durable=False`` gives ``NORMAL``: safe against a crash of
  the process, faster, but the last commits may be lost if the machine loses power).
- Every write transaction starts with ``BEGIN IMMEDIATE``: it takes SQLite's write lock before
  reading anything, so a check ("enough tokens?", "key used?") and the write that depends on
  it cannot interleave with another process' write. Waiting for the lock is bounded by
  ``timeout`` seconds (30 by default); only past that does a `LedgerStoreError` surface.
- Entries are append-only: triggers refuse UPDATE and DELETE on them, and the hash chain (see
  `Ledger.verify`) detects a change made around the triggers.

Schema (version 1, in ``PRAGMA user_version``): ``entries`` (one row per entry, the columns of
`Entry.to_row`, times in microseconds since the epoch), ``tip`` (one row: last id, last hash,
posted, held; updated in the same transaction as the entries) and ``open_holds``. Version 2
adds ``budgets`` (one row per budget: its document and the tokens of its open holds) and
``budget_usage`` (spend per budget and period label), also kept in the entries' transaction;
a version 1 file is upgraded in place when opened.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from imagine_billing.errors import LedgerCorrupted, LedgerStoreError
from imagine_billing.ledger.model import GENESIS, Entry, Row, to_micros
from imagine_billing.ledger.store import Tip

__all__ = ["SCHEMA_VERSION", "SqliteStore"]

SCHEMA_VERSION = 2

_COLUMNS = ("id, kind, key, tokens, at, ref, memo, tags, styles, table_version, table_digest, "
            "expires_at, fingerprint, hash")

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS entries (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        key TEXT NOT NULL UNIQUE,
        tokens INTEGER NOT NULL,
        at INTEGER NOT NULL,
        ref INTEGER,
        memo TEXT,
        tags TEXT NOT NULL,
        styles TEXT NOT NULL,
        table_version TEXT,
        table_digest TEXT,
        expires_at INTEGER,
        fingerprint TEXT NOT NULL,
        hash TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS entries_ref ON entries (ref) WHERE ref IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS entries_at ON entries (at)",
    """CREATE TABLE IF NOT EXISTS tip (
        one INTEGER PRIMARY KEY CHECK (one = 1),
        id INTEGER NOT NULL,
        hash TEXT NOT NULL,
        posted INTEGER NOT NULL,
        held INTEGER NOT NULL)""",
    f"INSERT OR IGNORE INTO tip VALUES (1, 0, '{GENESIS}', 0, 0)",
    "CREATE TABLE IF NOT EXISTS open_holds (id INTEGER PRIMARY KEY, expires_at INTEGER)",
    """CREATE TRIGGER IF NOT EXISTS entries_append_only_update BEFORE UPDATE ON entries
        BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END""",
    """CREATE TRIGGER IF NOT EXISTS entries_append_only_delete BEFORE DELETE ON entries
        BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END""",
    """CREATE TABLE IF NOT EXISTS budgets (
        seq INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        period TEXT NOT NULL,
        document TEXT NOT NULL,
        held INTEGER NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS budget_usage (
        name TEXT NOT NULL,
        period TEXT NOT NULL,
        spent INTEGER NOT NULL,
        PRIMARY KEY (name, period)) WITHOUT ROWID""",
    f"PRAGMA user_version = {SCHEMA_VERSION}",
)


class SqliteStore:
    """A `Store` in a SQLite file (created if missing). Not shared between threads: open one
    per thread or process; any number of them may use the same file at once.

    Args:
        path: The database file.
        durable: ``synchronous=FULL`` (True, the default) or ``NORMAL``.
        timeout: Seconds to wait for another writer's lock before giving up.

    Raises:
        LedgerStoreError: The file cannot be opened, is not a SQLite database, or holds a
            newer schema.
    """

    def __init__(self, path: str | os.PathLike[str], *, durable: bool = True,
                 timeout: float = 30.0) -> None:
        self.path = os.fspath(path)
        self.timeout = timeout
        self._depth = 0
        self._reading = 0
        self._tip: Tip | None = None
        self._stored_tip: Tip | None = None
        self._doomed = False
        try:
            self._db = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
        except sqlite3.Error as error:
            raise LedgerStoreError(self.path, f"cannot open: {error}") from None
        try:
            self._setup_when_free(durable)
        except sqlite3.Error as error:
            self._db.close()
            raise LedgerStoreError(self.path, f"cannot use as a ledger: {error}") from None
        except BaseException:
            self._db.close()
            raise

    def _setup_when_free(self, durable: bool) -> None:
        # Switching a new file to WAL needs a lock the busy timeout does not always wait for
        # (several processes opening one new file at once): retry until our own deadline.
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                self._setup(durable)
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or time.monotonic() >= deadline:
                    raise
                time.sleep(0.01)
            else:
                return

    def _setup(self, durable: bool) -> None:
        db = self._db
        db.execute("PRAGMA journal_mode = WAL").fetchall()
        db.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
        (version,) = db.execute("PRAGMA user_version").fetchone()
        if version > SCHEMA_VERSION:
            raise LedgerStoreError(
                self.path, f"schema version {version} is newer than this library's "
                f"({SCHEMA_VERSION}): upgrade imagine-billing")
        if version == SCHEMA_VERSION:
            return
        self._begin()
        try:
            for statement in _SCHEMA:
                db.execute(statement)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _begin(self) -> None:
        # The connection's busy timeout makes SQLite wait for the lock; should it still report
        # "locked" (a deadlock avoided, or a slow writer), retry until our own deadline.
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) and "busy" not in str(error):
                    raise
                if time.monotonic() >= deadline:
                    raise LedgerStoreError(
                        self.path, f"another writer held the lock for over {self.timeout:g} s"
                    ) from None
                time.sleep(0.01)
            else:
                return

    def write(self) -> AbstractContextManager[None]:
        # Inside a transaction (a batch), joining it must cost next to nothing.
        return _Join(self) if self._depth else self._transaction()

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        if self._reading:
            raise RuntimeError("a write cannot start inside a read")
        self._check_open()
        self._begin()
        self._depth = 1
        self._doomed = False
        try:
            self._tip = self._stored_tip = self._read_tip()
            yield
            if self._doomed:
                raise LedgerStoreError(self.path, "a write failed inside this transaction")
            if self._tip != self._stored_tip:
                tip = self._tip
                self._db.execute(
                    "UPDATE tip SET id = ?, hash = ?, posted = ?, held = ? WHERE one = 1",
                    (tip.id, tip.hash, tip.posted, tip.held),
                )
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise
        finally:
            self._depth = 0
            self._tip = self._stored_tip = None

    @contextmanager
    def read(self) -> Iterator[None]:
        if self._depth or self._reading:
            yield
            return
        self._check_open()
        self._db.execute("BEGIN")
        self._reading = 1
        try:
            yield
        finally:
            self._reading = 0
            if self._db.in_transaction:
                self._db.execute("COMMIT")

    def _check_open(self) -> None:
        if self._db is None:
            raise ValueError("the ledger is closed")

    def _read_tip(self) -> Tip:
        row = self._db.execute("SELECT id, hash, posted, held FROM tip WHERE one = 1").fetchone()
        if row is None:
            raise LedgerCorrupted("tip", "the row that keeps the last entry and the balance "
                                  "is missing")
        id_, hash_, posted, held = row
        return Tip(id_, hash_, posted, held)

    def tip(self) -> Tip:
        if self._tip is not None:
            return self._tip
        self._check_open()
        return self._read_tip()

    def append(self, entry: Entry, row: Row, tip: Tip, *, opens: bool = False,
               closes: int | None = None) -> None:
        if not self._depth:
            raise RuntimeError("append outside a write transaction")
        db = self._db
        try:
            db.execute(f"INSERT INTO entries ({_COLUMNS}) VALUES "
                       "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
            if opens:
                expires = None if entry.expires_at is None else to_micros(entry.expires_at)
                db.execute("INSERT INTO open_holds (id, expires_at) VALUES (?, ?)",
                           (entry.id, expires))
            if closes is not None:
                db.execute("DELETE FROM open_holds WHERE id = ?", (closes,))
        except BaseException:
            self._doomed = True
            raise
        self._tip = tip

    def _one(self, sql: str, args: tuple[Any, ...]) -> Entry | None:
        row = self._db.execute(sql, args).fetchone()
        return None if row is None else Entry.from_row(row)

    def by_key(self, key: str) -> Entry | None:
        return self._one(f"SELECT {_COLUMNS} FROM entries WHERE key = ?", (key,))

    def by_id(self, entry_id: int) -> Entry | None:
        return self._one(f"SELECT {_COLUMNS} FROM entries WHERE id = ?", (entry_id,))

    def closing(self, hold_id: int) -> Entry | None:
        return self._one(
            f"SELECT {_COLUMNS} FROM entries WHERE ref = ? AND kind IN "
            "('capture', 'void', 'expire') ORDER BY id LIMIT 1", (hold_id,))

    def refunds(self, entry_id: int) -> list[Entry]:
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM entries WHERE ref = ? AND kind = 'refund' ORDER BY id",
            (entry_id,)).fetchall()
        return [Entry.from_row(row) for row in rows]

    def open_holds(self, due_by: int | None = None) -> list[int]:
        if due_by is None:
            rows = self._db.execute("SELECT id FROM open_holds ORDER BY id").fetchall()
        else:
            rows = self._db.execute(
                "SELECT id FROM open_holds WHERE expires_at <= ? ORDER BY id", (due_by,)
            ).fetchall()
        return [row[0] for row in rows]

    def rows(self, since: int | None = None, until: int | None = None) -> Iterator[Row]:
        self._check_open()
        where, args = _where(since, until, {})
        # Up to the last entry now: rows written while the caller iterates are not read.
        where.append("id <= ?")
        args.append(self.tip().id)
        sql = f"SELECT {_COLUMNS} FROM entries WHERE " + " AND ".join(where)
        cursor = self._db.execute(sql + " ORDER BY id", args)
        try:
            while batch := cursor.fetchmany(2048):
                yield from batch
        finally:
            cursor.close()

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None  # type: ignore[assignment]

    # -- budgets and aggregates -------------------------------------------------------------

    def budget_rows(self, labels: Mapping[str, str]) -> list[tuple[str, str, int, int]]:
        rows = self._db.execute(
            "SELECT b.name, b.document, b.held, COALESCE(u.spent, 0) FROM budgets b "
            "LEFT JOIN budget_usage u ON u.name = b.name AND u.period = CASE b.period "
            "WHEN 'day' THEN ? WHEN 'week' THEN ? WHEN 'month' THEN ? ELSE 'total' END "
            "ORDER BY b.seq", (labels["day"], labels["week"], labels["month"])).fetchall()
        return [(name, document, held, spent) for name, document, held, spent in rows]

    def put_budget(self, name: str, period: str, document: str, *, held: int, label: str,
                   spent: int) -> None:
        if not self._depth:
            raise RuntimeError("put_budget outside a write transaction")
        try:
            self._db.execute("INSERT INTO budgets (name, period, document, held) "
                             "VALUES (?, ?, ?, ?)", (name, period, document, held))
            self._db.execute("INSERT INTO budget_usage (name, period, spent) VALUES (?, ?, ?)",
                             (name, label, spent))
        except BaseException:
            self._doomed = True
            raise

    def bump_budget(self, name: str, label: str, *, spent: int = 0, held: int = 0) -> None:
        if not self._depth:
            raise RuntimeError("bump_budget outside a write transaction")
        try:
            if held:
                self._db.execute("UPDATE budgets SET held = held + ? WHERE name = ?",
                                 (held, name))
            if spent:
                self._db.execute(
                    "INSERT INTO budget_usage (name, period, spent) VALUES (?, ?, ?) "
                    "ON CONFLICT (name, period) DO UPDATE SET spent = spent + excluded.spent",
                    (name, label, spent))
        except BaseException:
            self._doomed = True
            raise

    def spend(self, since: int | None, until: int | None, width: int | None,
              scope: Mapping[str, str]) -> dict[int, int]:
        self._check_open()
        where, args = _where(since, until, scope)
        slot = "0" if width is None or since is None else "(at - ?) / ?"
        slot_args: list[Any] = [] if slot == "0" else [since, width]
        # A refund counts at the time of the debit or capture it gives back (`at` below).
        spending = (
            "SELECT e.kind, e.tokens, e.tags, COALESCE(s.at, e.at) AS at FROM entries e "
            "LEFT JOIN entries s ON e.kind = 'refund' AND s.id = e.ref "
            "WHERE e.kind IN ('debit', 'capture', 'refund')")
        sql = (f"SELECT {slot} AS slot, SUM(CASE kind WHEN 'refund' THEN -tokens ELSE tokens "
               f"END) FROM ({spending})"
               + (" WHERE " + " AND ".join(where) if where else "") + " GROUP BY slot")
        return {int(slot_): int(total) for slot_, total in
                self._db.execute(sql, [*slot_args, *args]).fetchall()}

    def held_in(self, scope: Mapping[str, str]) -> int:
        self._check_open()
        where, args = _where(None, None, scope)
        sql = ("SELECT COALESCE(SUM(tokens), 0) FROM entries WHERE id IN "
               "(SELECT id FROM open_holds)" + "".join(f" AND {w}" for w in where))
        return int(self._db.execute(sql, args).fetchone()[0])

    def available_change(self, since: int | None, until: int | None) -> int:
        self._check_open()
        where, args = _where(since, until, {})
        sql = ("SELECT COALESCE(SUM(CASE kind WHEN 'credit' THEN tokens WHEN 'refund' THEN "
               "tokens WHEN 'void' THEN tokens WHEN 'expire' THEN tokens WHEN 'capture' THEN "
               "(SELECT h.tokens FROM entries h WHERE h.id = e.ref) - tokens ELSE -tokens END"
               "), 0) FROM entries e" + (" WHERE " + " AND ".join(where) if where else ""))
        return int(self._db.execute(sql, args).fetchone()[0])


class _Join:
    """Joins the transaction already open on a store (a nested `SqliteStore.write`)."""

    __slots__ = ("_store",)

    def __init__(self, store: SqliteStore) -> None:
        self._store = store

    def __enter__(self) -> None:
        self._store._depth += 1

    def __exit__(self, *exc: object) -> None:
        self._store._depth -= 1


def _where(since: int | None, until: int | None,
           scope: Mapping[str, str]) -> tuple[list[str], list[Any]]:
    """SQL conditions (and their arguments) for ``since <= at < until`` and a tag scope."""
    where: list[str] = []
    args: list[Any] = []
    if since is not None:
        where.append("at >= ?")
        args.append(since)
    if until is not None:
        where.append("at < ?")
        args.append(until)
    for name, value in scope.items():
        if '"' in name or "\\" in name:
            where.append("EXISTS (SELECT 1 FROM json_each(tags) WHERE key = ? AND value = ?)")
            args += [name, value]
        else:
            where.append("json_extract(tags, ?) = ?")
            args += [f'$."{name}"', value]
    return where, args
