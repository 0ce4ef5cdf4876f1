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

Schema (version 1, in ``PRAGMA user_version``): ``entries`` (one row per entry, the columns of
`Entry.to_row`, times in microseconds since the epoch), ``tip`` (one row: last id, last hash,
posted, held; updated in the same transaction as the entries) and ``open_holds``. Version 2
adds ``budgets`` (one row per budget: its document and the tokens of its open holds) and
``budget_usage`` (spend per budget and period label), also kept in the entries' transaction.
Version 3 adds ``budgets.added``: when the budget was added (microseconds, the ledger's
clock); it counts from that time's period on (see `imagine_billing.ledger.budgets`). Older
files are upgraded in place when opened; a budget of a version 2 file is given, as its
``added``, the start of the earliest period the file kept its figures for (the period it was
added in, since version 2 kept figures from then on), or 0 (1970, every period) when there
is none. Version 4 puts budgets in the hash chain: each is a ``budget`` entry (its document
as the memo, its ``added`` time as the entry's), and ``budgets.entry`` holds that entry's
id; the budget rows are what the ledger keeps beside the chain, and `Ledger.verify` checks
them against it. A file of version 2 or 3 is upgraded in the same transaction as its schema:
each of its budgets, in the order added, gets its ``budget`` entry, appended to the chain
with the budget's stored document and ``added`` time (and the key ``budget:<name>``, or
``budget:<name>:2``... when that key is taken), so an upgraded budget counts and refuses
exactly as before. A database with tables but no ledger schema (``user_version`` 0) is
refused, never turned into a ledger.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from types import TracebackType
from typing import Any

from imagine_billing.errors import LedgerCorrupted, LedgerStoreError
from imagine_billing.ledger.model import (
    GENESIS,
    Entry,
    Row,
    budget_key,
    chain_hash,
    fingerprint_of,
    to_micros,
)
from imagine_billing.ledger.store import BudgetRow, Tip

__all__ = ["SCHEMA_VERSION", "SqliteStore"]

SCHEMA_VERSION = 4

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
        held INTEGER NOT NULL,
        added INTEGER NOT NULL,
        entry INTEGER)""",
    """CREATE TABLE IF NOT EXISTS budget_usage (
        name TEXT NOT NULL,
        period TEXT NOT NULL,
        spent INTEGER NOT NULL,
        PRIMARY KEY (name, period)) WITHOUT ROWID""",
)

_INDEXES = (
    "CREATE UNIQUE INDEX IF NOT EXISTS budgets_entry ON budgets (entry)",
    "CREATE INDEX IF NOT EXISTS entries_budgets ON entries (id) WHERE kind = 'budget'",
)
"""Made once the upgrades have added ``budgets.entry`` (version 4): every write looks up the
budget entries through ``entries_budgets``."""


_INSERT = (f"INSERT INTO entries ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
           "ON CONFLICT (key) DO NOTHING")
"""Adds an entry unless its key is used (then ``rowcount`` is 0): the idempotency lookup and
the insert in one statement."""

_PAGE = 2048
"""Rows read per query by `SqliteStore.rows` (no cursor stays open between pages)."""

_LOWEST = -(2**63)
"""The smallest id SQLite can store."""

_CHAIN = "BETWEEN 1 AND COALESCE(?, (SELECT id FROM tip WHERE one = 1))"
"""The ids of the chain, from 1 to the last entry: a row outside it (written behind the
ledger's back) counts in no figure; `Ledger.verify` reports it. The argument is the last id
of the write transaction in progress (whose tip is not stored yet), else ``None``: the
stored tip, read in the statement's own snapshot. Written ``+id`` in a condition, so that
the planner keeps to the time index rather than walk the ids."""

_SPENDING = (
    # Debits and captures by their own time; refunds by the time of what they give back, so
    # each half filters on an indexed time (``entries_at``). For a time range, the spends in
    # it are the outer loop (CROSS JOIN fixes the order) and their refunds are found through
    # ``entries_ref``; for all time, the refunds are, each finding its spend by id.
    "SELECT e.tokens AS tokens, e.at AS at, e.tags AS tags, e.styles AS styles "
    f"FROM entries e WHERE e.kind IN ('debit', 'capture') AND +e.id {_CHAIN}{{spends}} "
    "UNION ALL "
    "SELECT -r.tokens, s.at, r.tags, r.styles FROM {join} "
    f"ON r.ref = s.id AND r.kind = 'refund' WHERE +r.id {_CHAIN}{{refunds}}"
)


class SqliteStore:
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
        self.path = os.fspath(path)
        self.timeout = timeout
        self.readonly = readonly
        self._lock = threading.RLock()
        self._depth = 0
        self._reading = False
        self._tip: Tip | None = None
        self._stored_tip: Tip | None = None
        self._doomed = False
        self._db: sqlite3.Connection | None = None
        if readonly and not os.path.exists(self.path):
            raise LedgerStoreError(self.path, "no such file (a read-only open creates none)")
        db = self._connect(self.path)
        try:
            if not readonly:
                self._refuse_links()
            self._setup_when_free(db, durable)
        except sqlite3.Error as error:
            db.close()
            if not (readonly and _cannot_write(error)):
                name = getattr(error, "sqlite_errorname", "")
                hint = _READ_ONLY if name.startswith("SQLITE_READONLY") else ""
                raise LedgerStoreError(self.path, f"cannot use as a ledger: {error}{hint}",
                                       damaged=_damaged(error)) from None
            db = self._open_read_only()
        except BaseException:
            db.close()
            raise
        self._db = db

    def _connect(self, target: str, *, uri: bool = False) -> sqlite3.Connection:
        try:
            # Threads share the connection: the lock above serialises every use of it.
            return sqlite3.connect(target, timeout=self.timeout, isolation_level=None,
                                   check_same_thread=False, uri=uri)
        except sqlite3.Error as error:
            raise LedgerStoreError(self.path, f"cannot open: {error}") from None

    def _refuse_links(self) -> None:
        """Refuse a file that more than one name reaches unseen by SQLite (see the class)."""
        for suffix in ("", "-wal", "-shm"):
            try:
                links = os.stat(self.path + suffix).st_nlink
            except FileNotFoundError:
                continue
            except OSError as error:
                raise LedgerStoreError(self.path + suffix,
                                       f"cannot read: {error.strerror}") from None
            if links > 1:
                raise LedgerStoreError(
                    self.path + suffix, f"it has {links} hard links: a ledger is written "
                    "through one name only (writers through two hard links would lose each "
                    "other's entries); remove the other links or copy the file, then retry")

    def _open_read_only(self) -> sqlite3.Connection:
        """A connection that only reads, for a file this process cannot write (see the
        class), its schema checked."""
        try:
            name = urllib.parse.quote(os.fsencode(os.path.abspath(self.path)), safe="/")
        except (UnicodeError, ValueError) as error:
            raise LedgerStoreError(self.path, f"cannot open: {error}") from None
        for options in ("mode=ro", "mode=ro&immutable=1"):
            db = self._connect(f"file:{name}?{options}", uri=True)
            try:
                version = self._check_version(db)
            except sqlite3.Error as error:
                db.close()
                if "immutable" not in options and getattr(error, "sqlite_errorname", "") in (
                        "SQLITE_READONLY_DIRECTORY", "SQLITE_CANTOPEN"):
                    if not _has_log(self.path):
                        continue  # no log: no writer has the file open; read it as it is
                    raise LedgerStoreError(
                        self.path, "its write-ahead log (-wal) cannot be read: SQLite needs "
                        "to create its -shm file, and the folder is read-only for you; open "
                        "the file for writing once where you can, or copy it with its -wal "
                        "file to a folder you may write") from None
                raise LedgerStoreError(self.path, f"cannot use as a ledger: {error}",
                                       damaged=_damaged(error)) from None
            except BaseException:
                db.close()
                raise
            if version < SCHEMA_VERSION:
                db.close()
                what = ("it holds no ledger yet" if version == 0 else
                        f"its schema (version {version}) is older than this library's "
                        f"({SCHEMA_VERSION})")
                raise LedgerStoreError(self.path, f"{what}, and it is read-only for you: "
                                       "open it for writing once where you can")
            return db
        raise AssertionError("unreachable: the immutable open returns or raises")

    def _check_version(self, db: sqlite3.Connection) -> int:
        """The file's schema version; one this library cannot read is `LedgerStoreError`."""
        # One statement, one snapshot: a ledger another process creates meanwhile is seen
        # with its version, never as "tables without a version".
        version, tables = db.execute(
            "SELECT (SELECT user_version FROM pragma_user_version), "
            "(SELECT count(*) FROM sqlite_master WHERE type = 'table')").fetchone()
        if version > SCHEMA_VERSION:
            raise LedgerStoreError(
                self.path, f"schema version {version} is newer than this library's "
                f"({SCHEMA_VERSION}): upgrade imagine-billing")
        if version == 0 and tables:
            raise LedgerStoreError(
                self.path, "it is a SQLite database of something else (it has tables, but no "
                "ledger schema): give a new file or a ledger's")
        return int(version)

    def _setup_when_free(self, db: sqlite3.Connection, durable: bool) -> None:
        # Switching a new file to WAL needs a lock the busy timeout does not always wait for
        # (several processes opening one new file at once): retry until our own deadline.
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                self._setup(db, durable)
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or time.monotonic() >= deadline:
                    raise
                time.sleep(0.01)
            else:
                return

    def _setup(self, db: sqlite3.Connection, durable: bool) -> None:
        version = self._check_version(db)
        (mode,) = db.execute("PRAGMA journal_mode = WAL").fetchone()
        if str(mode).lower() != "wal":
            raise LedgerStoreError(
                self.path, f"cannot use write-ahead logging (the journal mode stays {mode!r}): "
                "a ledger needs a file on a local disk")
        db.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
        if version == SCHEMA_VERSION:
            return
        self._begin(db)
        try:
            # Again under the write lock: another process may have upgraded the file since.
            (version,) = db.execute("PRAGMA user_version").fetchone()
            if version < SCHEMA_VERSION:
                for statement in _SCHEMA:
                    db.execute(statement)
                if version == 2:
                    _add_budget_times(db)
                if version in (2, 3):
                    _add_budget_entries(db)
                for statement in _INDEXES:
                    db.execute(statement)
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _begin(self, db: sqlite3.Connection) -> None:
        # The connection's busy timeout makes SQLite wait for the lock; should it still report
        # "locked" (a deadlock avoided, or a slow writer), retry until our own deadline.
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                db.execute("BEGIN IMMEDIATE")
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

    def _failure(self, error: sqlite3.Error) -> LedgerStoreError:
        """The `LedgerStoreError` of a SQLite error; a write transaction it hit must not
        commit, and runs no other statement (`_usable`)."""
        text = str(error)
        if self._depth:
            self._doomed = True
            if self._db is not None and not self._db.in_transaction:
                text += _ROLLED_BACK
        if getattr(error, "sqlite_errorname", "").startswith("SQLITE_READONLY"):
            text += _READ_ONLY
        elif _damaged(error):
            text += " (the file is damaged: restore it from a backup or an export)"
        return LedgerStoreError(self.path, text, damaged=_damaged(error))

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            raise ValueError("the ledger is closed")
        return self._db

    def _usable(self) -> sqlite3.Connection:
        """The connection, for one statement. Inside a write block, only while its
        transaction may still commit: once a write in it failed (it may be half done), or
        once SQLite rolled the transaction back (SQLITE_FULL, SQLITE_IOERR, SQLITE_NOMEM
        roll back the whole of it), every statement is refused, for in autocommit mode it
        would be committed on its own, outside the chain."""
        db = self._connection()
        if self._depth and (self._doomed or not db.in_transaction):
            self._doomed = True
            raise self._refusal(db)
        return db

    def _refusal(self, db: sqlite3.Connection) -> LedgerStoreError:
        """The error of a statement or a commit in a transaction that cannot be kept."""
        if not db.in_transaction:
            return LedgerStoreError(self.path, "a write failed inside this transaction and "
                                    "SQLite rolled all of it back: none of it is kept (leave "
                                    "the batch, then try again)")
        return LedgerStoreError(self.path, "a write failed inside this transaction, so none "
                                "of it is kept (leave the batch, then try again)")

    # -- transactions -----------------------------------------------------------------------

    def write(self) -> _Write:
        return _Write(self, False)

    def batch(self) -> _Write:
        return _Write(self, True)

    def _start(self) -> None:
        """Begin the outermost write transaction (the lock is held)."""
        if self._reading:
            raise RuntimeError("a write cannot start inside a read")
        if self.readonly:
            raise LedgerStoreError(self.path, "it was opened read-only: open it again "
                                   "without readonly to write")
        db = self._connection()
        try:
            self._begin(db)
        except sqlite3.Error as error:
            raise self._failure(error) from None
        try:
            tip = self._read_tip()
        except BaseException:
            with suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise
        self._tip = self._stored_tip = tip
        self._doomed = False
        self._depth = 1

    def _finish(self, commit: bool) -> None:
        """Commit (or roll back) the outermost write transaction (the lock is held)."""
        db = self._connection()
        try:
            if commit:
                if self._doomed or not db.in_transaction:
                    raise self._refusal(db)
                tip = self._tip
                try:
                    # The tip is written once a transaction, however many entries it adds.
                    if tip is not None and tip != self._stored_tip:
                        db.execute(
                            "UPDATE tip SET id = ?, hash = ?, posted = ?, held = ? "
                            "WHERE one = 1", (tip.id, tip.hash, tip.posted, tip.held))
                    db.execute("COMMIT")
                except sqlite3.Error as error:
                    raise self._failure(error) from None
        finally:
            self._depth = 0
            self._tip = self._stored_tip = None
            self._doomed = False
            if db.in_transaction:
                with suppress(sqlite3.Error):
                    db.execute("ROLLBACK")

    def _savepoint(self, name: str) -> None:
        try:
            self._usable().execute(f"SAVEPOINT {name}")
        except sqlite3.Error as error:
            raise self._failure(error) from None

    def _alive(self) -> bool:
        """Whether the write transaction is still open (SQLite has not rolled it back)."""
        return self._connection().in_transaction

    def _release(self, name: str, undo: bool) -> None:
        db = self._connection()
        try:
            if undo:
                db.execute(f"ROLLBACK TO {name}")
            db.execute(f"RELEASE {name}")
        except sqlite3.Error as error:
            raise self._failure(error) from None

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._lock:
            if self._depth or self._reading:
                yield
                return
            db = self._connection()
            try:
                db.execute("BEGIN")
            except sqlite3.Error as error:
                raise self._failure(error) from None
            self._reading = True
            try:
                yield
            finally:
                self._reading = False
                if db.in_transaction:
                    with suppress(sqlite3.Error):
                        db.execute("COMMIT")

    # -- the tip and single entries ----------------------------------------------------------

    def _read_tip(self) -> Tip:
        try:
            row = self._usable().execute(
                "SELECT id, hash, posted, held FROM tip WHERE one = 1").fetchone()
        except sqlite3.Error as error:
            raise self._failure(error) from None
        if row is None:
            raise LedgerCorrupted("tip", "the row that keeps the last entry and the balance "
                                  "is missing")
        id_, hash_, posted, held = row
        if not (type(id_) is type(posted) is type(held) is int and isinstance(hash_, str)):
            raise LedgerCorrupted("tip", f"the row that keeps the last entry and the balance "
                                  f"holds {row!r}, not numbers and a hash")
        return Tip(id_, hash_, posted, held)

    def tip(self) -> Tip:
        with self._lock:
            if self._tip is not None:
                return self._tip
            return self._read_tip()

    def _last_id(self) -> int:
        return self._tip.id if self._tip is not None else self._read_tip().id

    def _writing_tip(self) -> int | None:
        """The last id of the write transaction in progress, for `_CHAIN` (else ``None``)."""
        return self._tip.id if self._tip is not None else None

    def _checked(self, rows: list[Row]) -> list[Entry]:
        """Entries of ``rows`` (read before the tip), none past the recorded last entry."""
        if rows:
            last = self._last_id()
            for row in rows:
                if not 0 < row[0] <= last:
                    raise LedgerCorrupted(row[0], f"it is not in the chain, which ends at "
                                          f"entry {last}: a row written behind the ledger's "
                                          "back (run verify)")
        return [_entry(row) for row in rows]

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

    def _all(self, sql: str, args: tuple[Any, ...] | list[Any] = ()) -> list[Any]:
        with self._lock:
            try:
                return self._usable().execute(sql, args).fetchall()
            except sqlite3.Error as error:
                raise self._failure(error) from None
            except OverflowError:
                raise ValueError("a time or amount asked for is past SQLite's 64-bit "
                                 "integers") from None

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

    def rows(self, since: int | None = None, until: int | None = None) -> Iterator[Row]:
        with self._lock:
            # Up to the last entry now: rows written while the caller iterates are not read.
            last = self.tip().id
            low = 1  # rows outside the chain are not entries (verify reports them)
            where, args = ["id >= ?", "id <= ?"], [low, last]
            if since is not None or until is not None:
                # The ids of the time range, from the time index; pages then walk the ids.
                bounds, bound_args = _where(since, until, {})
                first, final = self._all(
                    "SELECT min(id), max(id) FROM entries WHERE " + " AND ".join(bounds),
                    bound_args)[0]
                if first is None:
                    return
                low, last = max(first, 1), min(last, final)
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

    def id_range(self) -> tuple[int, int] | None:
        first, last = self._all("SELECT (SELECT min(id) FROM entries), "
                                "(SELECT max(id) FROM entries)")[0]
        return None if first is None else (first, last)

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    # -- budgets and aggregates -------------------------------------------------------------

    def budget_entries(self, labels: Sequence[str]) -> list[BudgetRow]:
        marks = ", ".join("?" * len(labels))
        rows = self._all(
            "SELECT e.id, e.memo, e.at, b.name, b.held, u.period, u.spent FROM entries e "
            "LEFT JOIN budgets b ON b.entry = e.id LEFT JOIN budget_usage u ON u.name = "
            f"b.name AND u.period IN ({marks}) WHERE e.kind = 'budget' AND +e.id {_CHAIN} "
            "ORDER BY e.id", [*labels, self._writing_tip()])
        found: list[BudgetRow] = []
        for id_, memo, at, name, held, label, spent in rows:
            if not found or found[-1][0] != id_:
                found.append((id_, memo, at, name, held, {}))
            if label is not None:
                found[-1][5][label] = spent
        return found

    def budget_table(self) -> list[tuple[Any, Any, Any, Any, Any]]:
        return [tuple(row) for row in self._all(
            "SELECT entry, name, period, document, added FROM budgets ORDER BY seq")]

    def budget_periods(self, name: str) -> dict[str, int]:
        return dict(self._all("SELECT period, spent FROM budget_usage WHERE name = ?", (name,)))

    def _change(self, sql: str, args: tuple[Any, ...]) -> None:
        """Run a statement that changes budgets (inside `write`)."""
        with self._lock:
            if not self._depth:
                raise RuntimeError("budgets change only inside a write transaction")
            try:
                self._usable().execute(sql, args)
            except sqlite3.Error as error:
                raise self._failure(error) from None
            except BaseException:
                self._doomed = True
                raise

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

    def _spending(self, since: int | None, until: int | None,
                  scope: Mapping[str, str]) -> tuple[str, list[Any]]:
        """The `_SPENDING` query (``tokens`` signed, ``at`` the spend time) and its
        arguments, for spend times ``since <= at < until`` and tags carrying ``scope``."""
        spends, spend_args = _where(since, until, scope, "e")
        times, time_args = _where(since, until, {}, "s")
        tags, tag_args = _where(None, None, scope, "r")
        join = ("entries s CROSS JOIN entries r" if times
                else "entries r CROSS JOIN entries s")
        sql = _SPENDING.format(spends="".join(f" AND {w}" for w in spends), join=join,
                               refunds="".join(f" AND {w}" for w in times + tags))
        last = self._writing_tip()
        return sql, [last, *spend_args, last, *time_args, *tag_args]

    def spend(self, since: int | None, until: int | None, width: int | None,
              scope: Mapping[str, str]) -> dict[int, int]:
        spending, args = self._spending(since, until, scope)
        if width is None or since is None:
            sql = f"SELECT 0, SUM(tokens) FROM ({spending}) GROUP BY 1"
        else:
            sql = f"SELECT (at - ?) / ?, SUM(tokens) FROM ({spending}) GROUP BY 1"
            args = [since, width, *args]
        return {int(slot): int(total) for slot, total in self._all(sql, args)}

    def spend_by(self, group: str, since: int | None, until: int | None) -> dict[Any, int]:
        spending, args = self._spending(since, until, {})
        if group == "style":
            sql = ("SELECT json_extract(j.value, '$[0]'), SUM(CASE WHEN u.tokens < 0 THEN "
                   "-json_extract(j.value, '$[1]') ELSE json_extract(j.value, '$[1]') END) "
                   f"FROM ({spending}) u, json_each(u.styles) j GROUP BY 1")
        elif group == "day":
            # Floor division (SQLite's / truncates towards 0: times before 1970 are negative).
            sql = (f"SELECT CASE WHEN at >= 0 THEN at / {_DAY} ELSE (at + 1) / {_DAY} - 1 END, "
                   f"SUM(tokens) FROM ({spending}) GROUP BY 1")
        else:
            sql = ("SELECT (SELECT value FROM json_each(u.tags) WHERE key = ?), SUM(tokens) "
                   f"FROM ({spending}) u GROUP BY 1")
            args = [group[4:], *args]
        return {name: int(total) for name, total in self._all(sql, args)}

    def held_in(self, scope: Mapping[str, str]) -> int:
        where, args = _where(None, None, scope)
        sql = ("SELECT COALESCE(SUM(tokens), 0) FROM entries WHERE id IN "
               f"(SELECT id FROM open_holds) AND +id {_CHAIN}"
               + "".join(f" AND {w}" for w in where))
        return int(self._all(sql, [self._writing_tip(), *args])[0][0])

    def available_change(self, since: int | None, until: int | None) -> int:
        where, args = _where(since, until, {})
        sql = ("SELECT COALESCE(SUM(CASE kind WHEN 'credit' THEN tokens WHEN 'refund' THEN "
               "tokens WHEN 'void' THEN tokens WHEN 'expire' THEN tokens WHEN 'capture' THEN "
               "(SELECT h.tokens FROM entries h WHERE h.id = e.ref) - tokens ELSE -tokens END"
               f"), 0) FROM entries e WHERE +e.id {_CHAIN}"
               + "".join(f" AND {w}" for w in where))
        return int(self._all(sql, [self._writing_tip(), *args])[0][0])


class _Write:
    """A write block of a `SqliteStore`: the outermost one is the transaction; a nested one
    joins it (`SqliteStore.write`) or is a savepoint (`SqliteStore.batch`). It holds the
    store's lock throughout, so the block belongs to one thread."""

    __slots__ = ("_level", "_saved", "_savepoint", "_store")

    def __init__(self, store: SqliteStore, savepoint: bool) -> None:
        self._store = store
        self._savepoint = savepoint
        self._level = 0
        self._saved: tuple[Tip | None, bool] = (None, False)

    def __enter__(self) -> None:
        store = self._store
        store._lock.acquire()
        try:
            if not store._depth:
                store._start()
                self._level = 1
                return
            store._depth += 1
            self._level = store._depth
            if self._savepoint:
                try:
                    store._savepoint(f"batch{self._level}")
                except BaseException:
                    store._depth -= 1
                    raise
                self._saved = (store._tip, store._doomed)
        except BaseException:
            store._lock.release()
            raise

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        store = self._store
        try:
            if self._level == 1:
                store._finish(commit=kind is None)
                return
            try:
                if self._savepoint:
                    if not store._alive():
                        # SQLite rolled back the whole transaction, savepoint and all: the
                        # outer blocks cannot commit either.
                        store._doomed = True
                        if kind is None:
                            raise store._refusal(store._connection())
                        return
                    store._release(f"batch{self._level}", undo=kind is not None)
                    if kind is not None:
                        # Back to the savepoint: the writes of this block are undone, so a
                        # write that failed in it no longer dooms the transaction.
                        store._tip, store._doomed = self._saved
            finally:
                store._depth -= 1
        finally:
            store._lock.release()


def _add_budget_times(db: sqlite3.Connection) -> None:
    """Upgrade version 2 to 3: give each budget its ``added`` time (see the module's notes)."""
    from imagine_billing.ledger.budgets import label_bounds

    db.execute("ALTER TABLE budgets ADD COLUMN added INTEGER NOT NULL DEFAULT 0")
    for name, period in db.execute("SELECT name, period FROM budgets").fetchall():
        starts = []
        labels = db.execute("SELECT period FROM budget_usage WHERE name = ?", (name,))
        for (label,) in labels.fetchall():
            with suppress(ValueError):  # no label of the period: the file was edited
                start = label_bounds(period, label)[0]
                if start is not None:
                    starts.append(to_micros(start))
        db.execute("UPDATE budgets SET added = ? WHERE name = ?", (min(starts, default=0), name))


_READ_ONLY = " (is the file, or its folder, read-only for you?)"


def _add_budget_entries(db: sqlite3.Connection) -> None:
    """Upgrade version 3 to 4: append a ``budget`` entry for each budget, in the order
    added, and link the budget to it (see the module's notes)."""
    db.execute("ALTER TABLE budgets ADD COLUMN entry INTEGER")
    budgets = db.execute("SELECT seq, name, document, added FROM budgets ORDER BY seq")
    last, digest = db.execute("SELECT id, hash FROM tip WHERE one = 1").fetchone()
    for seq, name, document, added in budgets.fetchall():
        key = budget_key(name, lambda key: db.execute(
            "SELECT 1 FROM entries WHERE key = ?", (key,)).fetchone() is not None)
        last += 1
        row = (last, "budget", key, 0, added, None, document, "{}", "[]", None, None, None,
               fingerprint_of(kind="budget", memo=document))
        digest = chain_hash(digest, row)
        db.execute(f"INSERT INTO entries ({_COLUMNS}) VALUES "
                   "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", (*row, digest))
        db.execute("UPDATE budgets SET entry = ? WHERE seq = ?", (last, seq))
    db.execute("UPDATE tip SET id = ?, hash = ? WHERE one = 1", (last, digest))


_ROLLED_BACK = " (SQLite rolled back the whole transaction: none of its writes are kept)"


def _cannot_write(error: sqlite3.Error) -> bool:
    """Whether SQLite failed for want of writing the file or its folder."""
    name = getattr(error, "sqlite_errorname", "")
    return name.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN"))


def _has_log(path: str) -> bool:
    """Whether a write-ahead log with frames lies beside the database ``path``."""
    try:
        return os.stat(path + "-wal").st_size > 0
    except FileNotFoundError:
        return False
    except OSError:
        return True  # there, but unreadable: not to be ignored


def _damaged(error: sqlite3.Error) -> bool:
    """Whether SQLite says the file is damaged or not a database at all."""
    name = getattr(error, "sqlite_errorname", "")
    return name.startswith("SQLITE_CORRUPT") or name == "SQLITE_NOTADB"


def _entry(row: Row) -> Entry:
    try:
        return Entry.from_row(row)
    except (TypeError, ValueError, OverflowError) as error:
        raise LedgerCorrupted(row[0], f"its stored fields cannot be read ({error})") from None


_DAY = 86_400_000_000
"""A day in microseconds."""


def _where(since: int | None, until: int | None, scope: Mapping[str, str],
           table: str = "") -> tuple[list[str], list[Any]]:
    """SQL conditions (and their arguments) for ``since <= at < until`` and a tag scope, on
    the columns of ``table`` (an alias) or unqualified."""
    at, tags = (f"{table}.at", f"{table}.tags") if table else ("at", "tags")
    where: list[str] = []
    args: list[Any] = []
    if since is not None:
        where.append(f"{at} >= ?")
        args.append(since)
    if until is not None:
        where.append(f"{at} < ?")
        args.append(until)
    for name, value in scope.items():
        if '"' in name or "\\" in name:
            where.append(f"EXISTS (SELECT 1 FROM json_each({tags}) WHERE key = ? AND value = ?)")
            args += [name, value]
        else:
            where.append(f"json_extract({tags}, ?) = ?")
            args += [f'$."{name}"', value]
    return where, args
