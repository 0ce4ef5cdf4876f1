"""The schema of a SQLite ledger file: its tables, its version, and the upgrades of older files.

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
refused, never turned into a ledger. Version 5 adds ``alerts``, the outbox of budget
alerts (see `imagine_billing.ledger.alerts`): one row per alert, recorded in the transaction
of the write that raised it, with its delivery state; it is beside the chain, not in it.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from contextlib import suppress

from imagine_billing.errors import LedgerStoreError
from imagine_billing.ledger.model import GENESIS, budget_key, chain_hash, fingerprint_of, to_micros

__all__ = ["COLUMNS", "INDEXES", "SCHEMA", "SCHEMA_VERSION", "check_version", "set_up"]

SCHEMA_VERSION = 5

COLUMNS = ("id, kind, key, tokens, at, ref, memo, tags, styles, table_version, table_digest, "
            "expires_at, fingerprint, hash")

SCHEMA = (
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
    """CREATE TABLE IF NOT EXISTS alerts (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        budget TEXT NOT NULL,
        period TEXT NOT NULL,
        threshold TEXT NOT NULL,
        kind TEXT NOT NULL,
        spent INTEGER NOT NULL,
        budget_limit INTEGER NOT NULL,
        projected TEXT,
        at INTEGER NOT NULL,
        entry INTEGER,
        delivered_at INTEGER,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT)""",
    "CREATE INDEX IF NOT EXISTS alerts_undelivered ON alerts (seq) WHERE delivered_at IS NULL",
)

INDEXES = (
    "CREATE UNIQUE INDEX IF NOT EXISTS budgets_entry ON budgets (entry)",
    "CREATE INDEX IF NOT EXISTS entries_budgets ON entries (id) WHERE kind = 'budget'",
)
"""Made once the upgrades have added ``budgets.entry`` (version 4): every write looks up the
budget entries through ``entries_budgets``."""


def check_version(db: sqlite3.Connection, path: str) -> int:
    """The file's schema version; one this library cannot read is `LedgerStoreError`."""
    # One statement, one snapshot: a ledger another process creates meanwhile is seen
    # with its version, never as "tables without a version".
    version, tables = db.execute(
        "SELECT (SELECT user_version FROM pragma_user_version), "
        "(SELECT count(*) FROM sqlite_master WHERE type = 'table')").fetchone()
    if version > SCHEMA_VERSION:
        raise LedgerStoreError(
            path, f"schema version {version} is newer than this library's "
            f"({SCHEMA_VERSION}): upgrade imagine-billing")
    if version == 0 and tables:
        raise LedgerStoreError(
            path, "it is a SQLite database of something else (it has tables, but no "
            "ledger schema): give a new file or a ledger's")
    return int(version)


def set_up(db: sqlite3.Connection, path: str, *, durable: bool, timeout: float,
           begin: Callable[[sqlite3.Connection], None]) -> None:
    """Put ``db`` in WAL mode with its ``synchronous`` setting, and create or upgrade its
    schema (in a transaction ``begin`` starts).

    Switching a new file to WAL needs a lock the busy timeout does not always wait for
    (several processes opening one new file at once): retried until ``timeout`` has passed.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            _set_up(db, path, durable, begin)
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)
        else:
            return


def _set_up(db: sqlite3.Connection, path: str, durable: bool,
            begin: Callable[[sqlite3.Connection], None]) -> None:
    version = check_version(db, path)
    (mode,) = db.execute("PRAGMA journal_mode = WAL").fetchone()
    if str(mode).lower() != "wal":
        raise LedgerStoreError(
            path, f"cannot use write-ahead logging (the journal mode stays {mode!r}): "
            "a ledger needs a file on a local disk")
    db.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
    if version == SCHEMA_VERSION:
        return
    begin(db)
    try:
        # Again under the write lock: another process may have upgraded the file since.
        (version,) = db.execute("PRAGMA user_version").fetchone()
        if version < SCHEMA_VERSION:
            for statement in SCHEMA:
                db.execute(statement)
            if version == 2:
                _add_budget_times(db)
            if version in (2, 3):
                _add_budget_entries(db)
            for statement in INDEXES:
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


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
        db.execute(f"INSERT INTO entries ({COLUMNS}) VALUES "
                   "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", (*row, digest))
        db.execute("UPDATE budgets SET entry = ? WHERE seq = ?", (last, seq))
    db.execute("UPDATE tip SET id = ?, hash = ? WHERE one = 1", (last, digest))
