"""The transactions of a PostgreSQL ledger store: a pool of connections shared by threads.

- A write or read block takes a connection of the pool for its thread, from its start to its
  end; a statement outside a block takes one for itself. Each thread's block is its own
  (`_State`, in a thread-local): other threads never join it.
- The outermost write block begins with ``BEGIN`` and ``SELECT ... FOR UPDATE`` of the
  ledger's row in ``ledgers`` (one round trip): writers of one ledger, on any host, take
  turns; a nested `Transactions.batch` is a ``SAVEPOINT``.
- Statements that only write (open holds, budget figures, the tip, an entry whose key is
  known free) are queued and sent with the next statement or with ``COMMIT``.
- A statement that fails inside a write block dooms it (PostgreSQL aborts the transaction):
  it cannot commit, unless a savepoint around the failure is rolled back.
- A connection lost before ``COMMIT`` was sent loses the whole transaction; lost while it was
  on its way, the outcome is unknown, and the error says so.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from types import TracebackType
from typing import Any

from imagine_billing.errors import LedgerCorrupted, LedgerStoreError
from imagine_billing.ledger.model import Entry
from imagine_billing.ledger.store import Tip

__all__ = ["BEHIND", "Transactions"]

_HAS_BUDGETS = ("SELECT EXISTS (SELECT 1 FROM entries WHERE ledger = %s AND kind = 'budget' "
                "AND id BETWEEN 1 AND (SELECT tip_id FROM ledgers WHERE id = %s))")


BEHIND = ("the database already holds a row with this id, past the recorded last entry: a "
           "row written behind the ledger's back (run verify)")

_IN_DOUBT = (" while COMMIT was on its way: the server may or may not have kept this write "
             "(write it again with the same key: a replay returns it if it was kept)")



class _State:
    """A thread's transaction on the store: its connection and what it has written."""

    __slots__ = ("budgets", "closings", "conn", "depth", "doomed", "keys", "lease", "pending",
                 "reading", "relaxed", "stored_tip", "tip")

    def __init__(self) -> None:
        self.conn: Any = None
        self.lease: Any = None
        self.depth = 0
        self.reading = False
        self.relaxed = False
        """Inside `Transactions.relaxed`: a transaction begun here commits asynchronously."""
        self.doomed = False
        self.tip: Tip | None = None
        self.stored_tip: Tip | None = None
        self.pending: list[tuple[str, tuple[Any, ...]]] = []
        self.keys: dict[str, Entry | None] = {}
        """Keys looked up or written in this write transaction: under the ledger's lock no
        one else writes it, so what was read stays true until this transaction writes."""
        self.closings: dict[int, Entry | None] = {}
        """The closing entry (or ``None``) of holds read in this write transaction."""
        self.budgets: bool | None = None
        """Whether the chain holds budget entries (``None``: not known)."""

    def forget(self) -> None:
        """Drop what the transaction knows (after a savepoint is rolled back, or at its end)."""
        self.keys, self.closings, self.budgets = {}, {}, None


class Transactions:
    """A PostgreSQL ledger's connections and transactions (see the module's notes); the
    base of `imagine_billing.ledger.postgres.PostgresStore`, which opens the pool."""

    def __init__(self, path: str, name: str, *, timeout: float, readonly: bool) -> None:
        self.path = path
        """Where the ledger is, for messages (no password)."""
        self.name = name
        self.timeout = timeout
        self.readonly = readonly
        self._local = threading.local()
        self._closed = False
        self._psycopg: Any = None
        self._pool: Any = None
        self._ledger = 0
        """The ledger's number (its row in ``ledgers``)."""

    # -- errors -----------------------------------------------------------------------------

    def _failure(self, error: Exception, *, connecting: bool = False,
                 committing: bool = False) -> LedgerStoreError:
        """The one-line `LedgerStoreError` of a psycopg error."""
        text = " ".join(str(error).split())
        lowered = text.lower()
        if "password authentication failed" in lowered or "no password supplied" in lowered:
            reason = "the server refused the user or password"
        elif "does not exist" in lowered and "database" in lowered and connecting:
            reason = f"no such database ({text.rsplit('FATAL:', 1)[-1].strip()}): create it"
        elif connecting:
            reason = f"cannot reach the server ({text})"
        elif "entries_pkey" in text:
            reason = f"an entry could not be added: {BEHIND}"
        elif isinstance(error, self._psycopg.errors.LockNotAvailable):
            reason = f"another writer held the ledger's lock for over {self.timeout:g} s"
        elif isinstance(error, self._psycopg.OperationalError | _pool_errors()):
            reason = (f"the connection to the server was lost{_IN_DOUBT}" if committing
                      else "the connection to the server was lost or could not be made; "
                      f"nothing of the transaction in progress is kept ({text})")
        else:
            reason = text
        return LedgerStoreError(self.path, reason)

    # -- connections and statements ---------------------------------------------------------

    def _state(self) -> _State:
        state: _State | None = getattr(self._local, "state", None)
        if state is None:
            state = self._local.state = _State()
        return state

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError("the ledger is closed")

    def _lease(self, state: _State) -> None:
        """Give ``state`` a connection of the pool for its block."""
        self._check_open()
        lease = self._pool.connection()
        try:
            state.conn = lease.__enter__()
        except Exception as error:
            raise self._failure(error) from None
        state.lease = lease

    @staticmethod
    def _give_back(state: _State) -> None:
        lease, state.lease, state.conn = state.lease, None, None
        if lease is not None:
            lease.__exit__(None, None, None)  # the pool drops a broken connection

    def _run(self, sql: str, args: Sequence[Any] | Mapping[str, Any] = (), *,
             fetch: bool = True) -> list[Any]:
        """Run one statement on the thread's block (after its pending statements, in one
        round trip), or on a connection of its own; returns its rows."""
        state = self._state()
        if state.conn is None:
            self._check_open()
            for attempt in (1, 2):
                try:
                    with self._pool.connection() as conn:
                        cursor = conn.execute(sql, args)
                        return cursor.fetchall() if fetch else []
                except self._psycopg.Error as error:
                    if conn.broken and attempt == 1 and not state.reading:
                        self._pool.check()  # a restart: one statement alone, safe to redo
                        continue
                    raise self._failure(error) from None
                except _pool_errors() as error:
                    raise self._failure(error) from None
        if state.depth and state.doomed:
            raise LedgerStoreError(self.path, "a write failed inside this transaction, so "
                                   "none of it is kept (leave the batch, then try again)")
        conn = state.conn
        try:
            if state.pending:
                pending, state.pending = state.pending, []
                with conn.pipeline():
                    for statement, values in pending:
                        conn.execute(statement, values)
                    cursor = conn.execute(sql, args)
            else:
                cursor = conn.execute(sql, args)
            return cursor.fetchall() if fetch else []
        except self._psycopg.Error as error:
            if state.depth:
                state.doomed = True
            raise self._failure(error) from None

    # -- transactions -----------------------------------------------------------------------

    def write(self) -> _Write:
        return _Write(self, False)

    def batch(self) -> _Write:
        return _Write(self, True)

    def _start(self, state: _State) -> None:
        """Begin the thread's outermost write transaction: lock the ledger's row."""
        if state.reading:
            raise RuntimeError("a write cannot start inside a read")
        if self.readonly:
            raise LedgerStoreError(self.path, "it was opened read-only: open it again "
                                   "without readonly to write")
        for attempt in (1, 2):
            self._lease(state)
            conn = state.conn
            try:
                with conn.pipeline():
                    conn.execute("BEGIN")
                    if state.relaxed:
                        conn.execute("SET LOCAL synchronous_commit = off")
                    cursor = conn.execute(
                        "SELECT tip_id, tip_hash, posted, held FROM ledgers WHERE id = %s "
                        "FOR UPDATE", (self._ledger,))
                    # Read under the lock: whether there are budgets to check at all.
                    budgets = conn.execute(_HAS_BUDGETS, (self._ledger, self._ledger))
                row = cursor.fetchone()
                has_budgets = bool(budgets.fetchone()[0])
            except self._psycopg.Error as error:
                broken = conn.broken
                self._end(state)
                if broken and attempt == 1:
                    # A connection the server dropped (a restart): nothing was written.
                    # Drop the pool's other dead connections, then try once more.
                    self._pool.check()
                    continue
                raise self._failure(error) from None
            except BaseException:
                self._end(state)
                raise
            break
        if row is None:
            self._end(state)
            raise LedgerCorrupted("tip", f"the row of ledger {self.name!r} in table ledgers "
                                  "is missing")
        state.tip = state.stored_tip = Tip(*row)
        state.doomed = False
        state.pending = []
        state.forget()
        state.budgets = has_budgets
        state.depth = 1

    def _end(self, state: _State) -> None:
        """Roll back whatever is open on the thread's connection and give it back."""
        conn = state.conn
        state.depth = 0
        state.tip = state.stored_tip = None
        state.pending = []
        state.doomed = False
        state.forget()
        if conn is not None and not conn.broken:
            with suppress(self._psycopg.Error):
                if conn.info.transaction_status != self._psycopg.pq.TransactionStatus.IDLE:
                    conn.execute("ROLLBACK")
        self._give_back(state)

    def _finish(self, state: _State, commit: bool) -> None:
        """Commit (or roll back) the thread's outermost write transaction."""
        try:
            if not commit:
                return
            if state.doomed:
                raise LedgerStoreError(self.path, "a write failed inside this transaction, "
                                       "so none of it is kept (leave the batch, then try "
                                       "again)")
            tip, conn = state.tip, state.conn
            pending, state.pending = state.pending, []
            if tip is not None and tip != state.stored_tip:
                pending.append(("UPDATE ledgers SET tip_id = %s, tip_hash = %s, posted = %s, "
                                "held = %s WHERE id = %s",
                                (tip.id, tip.hash, tip.posted, tip.held, self._ledger)))
            try:
                with conn.pipeline():
                    for statement, values in pending:
                        conn.execute(statement, values)
                    conn.execute("COMMIT")
            except self._psycopg.Error as error:
                # The connection lost with COMMIT sent: in doubt. A statement that failed
                # before it (the connection still up): all rolled back.
                raise self._failure(error, committing=conn.broken) from None
        finally:
            self._end(state)

    @contextmanager
    def relaxed(self) -> Iterator[None]:
        """`Store.relaxed`: a write transaction this thread begins in the block sets
        ``synchronous_commit = off`` for itself (``SET LOCAL``, sent with its BEGIN)."""
        state = self._state()
        if state.depth or state.relaxed:
            yield
            return
        state.relaxed = True
        try:
            yield
        finally:
            state.relaxed = False

    @contextmanager
    def read(self) -> Iterator[None]:
        state = self._state()
        if state.depth or state.reading:
            yield
            return
        self._lease(state)
        try:
            try:
                state.conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            except self._psycopg.Error as error:
                raise self._failure(error) from None
            state.reading = True
            yield
        finally:
            state.reading = False
            self._end(state)

    # -- the tip and single entries ----------------------------------------------------------

    def tip(self) -> Tip:
        state = self._state()
        if state.tip is not None:
            return state.tip
        return self._read_tip()

    def _read_tip(self) -> Tip:
        rows = self._run("SELECT tip_id, tip_hash, posted, held FROM ledgers WHERE id = %s",
                         (self._ledger,))
        if not rows:
            raise LedgerCorrupted("tip", f"the row of ledger {self.name!r} in table ledgers "
                                  "is missing")
        return Tip(*rows[0])

    def _last(self) -> int | None:
        """The last id of the thread's write transaction (its tip is not stored yet)."""
        tip = self._state().tip
        return None if tip is None else tip.id

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._pool.close()

    def _queue(self, sql: str, args: tuple[Any, ...]) -> None:
        """Send a statement that changes budgets with the next one (inside `write`)."""
        state = self._state()
        if not state.depth:
            raise RuntimeError("budgets change only inside a write transaction")
        state.pending.append((sql, args))


def _pool_errors() -> type[Exception]:
    from psycopg_pool import PoolTimeout

    return PoolTimeout



class _Write:
    """A write block on the calling thread: the outermost one is the transaction; a nested
    one joins it (`PostgresStore.write`) or is a savepoint (`PostgresStore.batch`)."""

    __slots__ = ("_level", "_saved", "_savepoint", "_store")

    def __init__(self, store: Transactions, savepoint: bool) -> None:
        self._store = store
        self._savepoint = savepoint
        self._level = 0
        self._saved: tuple[Tip | None, bool] = (None, False)

    def __enter__(self) -> None:
        store = self._store
        state = store._state()
        if not state.depth:
            store._start(state)
            self._level = 1
            return
        state.depth += 1
        self._level = state.depth
        if self._savepoint:
            try:
                store._run(f"SAVEPOINT batch{self._level}", fetch=False)
            except BaseException:
                state.depth -= 1
                raise
            self._saved = (state.tip, state.doomed)

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        store = self._store
        state = store._state()
        if self._level == 1:
            store._finish(state, commit=kind is None)
            return
        try:
            if self._savepoint and not state.conn.broken:
                if kind is None:
                    store._run(f"RELEASE batch{self._level}", fetch=False)
                else:
                    # Back to the savepoint (its queued statements sent first, then undone):
                    # a write that failed in the block no longer dooms the transaction.
                    # Statements queued since the savepoint are dropped unsent.
                    state.doomed, state.pending = False, []
                    state.forget()
                    store._run(f"ROLLBACK TO batch{self._level}", fetch=False)
                    state.tip, state.doomed = self._saved
        finally:
            state.depth -= 1
