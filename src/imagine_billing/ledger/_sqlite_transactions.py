"""The transactions of a SQLite ledger store: one connection shared by threads.

- Every write transaction starts with ``BEGIN IMMEDIATE`` (`begin_immediate`), and belongs
  to the thread that began it: the store's lock is held from its start to its end, so
  another thread's writes wait for it rather than join it.
- A nested `Transactions.write` joins the transaction; a nested `Transactions.batch` is a
  ``SAVEPOINT``: an exception leaving it undoes its writes only.
- The tip (last id and hash, balance) of the transaction in progress is kept in memory and
  written once, at its commit.
- A statement that fails inside a write transaction dooms it: no other statement runs in it,
  and it cannot commit (SQLite may have rolled all of it back, or half done a write).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from types import TracebackType
from typing import Any

from imagine_billing.errors import LedgerCorrupted, LedgerStoreError
from imagine_billing.ledger._sqlite_files import READ_ONLY, begin_immediate, damaged
from imagine_billing.ledger.store import Tip

__all__ = ["Transactions"]

_NORMAL = 1
"""``PRAGMA synchronous`` of NORMAL (FULL is 2, EXTRA 3)."""

_ROLLED_BACK = " (SQLite rolled back the whole transaction: none of its writes are kept)"


class Transactions:
    """A SQLite connection's transactions, shared by threads (see the module's notes); the
    base of `imagine_billing.ledger.sqlite.SqliteStore`, which opens the connection."""

    def __init__(self, path: str, *, timeout: float, readonly: bool) -> None:
        self.path = path
        self.timeout = timeout
        self.readonly = readonly
        self._lock = threading.RLock()
        self._depth = 0
        self._reading = False
        self._tip: Tip | None = None
        self._stored_tip: Tip | None = None
        self._doomed = False
        self._db: sqlite3.Connection | None = None
        self._owed_synchronous: int | None = None
        """The ``synchronous`` level a `relaxed` block could not restore (a read was still
        open when it ended): set before the next transaction begins."""

    def _begin(self, db: sqlite3.Connection) -> None:
        begin_immediate(db, self.path, self.timeout)

    def _failure(self, error: sqlite3.Error) -> LedgerStoreError:
        """The `LedgerStoreError` of a SQLite error; a write transaction it hit must not
        commit, and runs no other statement (`_usable`)."""
        text = str(error)
        if self._depth:
            self._doomed = True
            if self._db is not None and not self._db.in_transaction:
                text += _ROLLED_BACK
        if getattr(error, "sqlite_errorname", "").startswith("SQLITE_READONLY"):
            text += READ_ONLY
        elif damaged(error):
            text += " (the file is damaged: restore it from a backup or an export)"
        return LedgerStoreError(self.path, text, damaged=damaged(error))

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
        db = self._db  # `_connection`, inlined: every statement passes here
        if db is None:
            raise ValueError("the ledger is closed")
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
            self._restore_synchronous(db)
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
    def relaxed(self) -> Iterator[None]:
        """`Store.relaxed`: ``synchronous = NORMAL`` for the block (SQLite changes it only
        outside a transaction); the store's lock is held throughout, so that only this
        thread's writes commit that way."""
        with self._lock:
            db = self._connection()
            if self._depth or self._reading or db.in_transaction:
                yield
                return
            try:
                self._restore_synchronous(db)
                level = db.execute("PRAGMA synchronous").fetchone()[0]
                if level > _NORMAL:
                    db.execute("PRAGMA synchronous = NORMAL")
            except sqlite3.Error as error:
                raise self._failure(error) from None
            try:
                yield
            finally:
                if level > _NORMAL:
                    # A read left open in the block (a generator's snapshot) keeps SQLite
                    # from changing it now: then before the next transaction.
                    self._owed_synchronous = level
                    if self._db is not None and not self._db.in_transaction:
                        with suppress(sqlite3.Error):
                            self._restore_synchronous(self._db)

    def _restore_synchronous(self, db: sqlite3.Connection) -> None:
        """Set the ``synchronous`` level a `relaxed` block owes, if it owes one (outside a
        transaction: SQLite refuses it inside)."""
        if self._owed_synchronous is not None:
            db.execute(f"PRAGMA synchronous = {self._owed_synchronous}")
            self._owed_synchronous = None

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
                with suppress(sqlite3.Error):
                    if db.in_transaction:
                        db.execute("COMMIT")
                    self._restore_synchronous(db)

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
        """The last id of the write transaction in progress, for `_sqlite_sql.CHAIN` (else
        ``None``)."""
        return self._tip.id if self._tip is not None else None

    def _all(self, sql: str, args: tuple[Any, ...] | list[Any] = ()) -> list[Any]:
        with self._lock:
            try:
                return self._usable().execute(sql, args).fetchall()
            except sqlite3.Error as error:
                raise self._failure(error) from None
            except OverflowError:
                raise ValueError("a time or amount asked for is past SQLite's 64-bit "
                                 "integers") from None

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

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


class _Write:
    """A write block of a store: the outermost one is the transaction; a nested one
    joins it (`Transactions.write`) or is a savepoint (`Transactions.batch`). It holds the
    store's lock throughout, so the block belongs to one thread."""

    __slots__ = ("_level", "_saved", "_savepoint", "_store")

    def __init__(self, store: Transactions, savepoint: bool) -> None:
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
