"""The schema of ledgers in a PostgreSQL database: its tables, its version, and set-up.

One database holds many ledgers, each a row of ``ledgers`` (its ``name``, and its tip: the
last entry's id and hash, ``posted`` and ``held``, updated in the same transaction as the
entries). Every other table is keyed by the ledger's ``ledger`` number first, so ledgers share
nothing but the tables: ``entries`` (the columns of `Entry.to_row`, times in microseconds
since the epoch, tags and styles as the canonical JSON text the hash covers), ``open_holds``,
``budgets`` and ``budget_usage`` (as in a SQLite file, see
`imagine_billing.ledger._sqlite_schema`). Triggers refuse UPDATE, DELETE and TRUNCATE of
entries. The schema's version is the one row of ``imagine_billing_schema``; a newer one is
refused. Creating and upgrading run under a transaction-level advisory lock, so that hosts
opening a new database at once do it once.

Version 2 adds ``alerts``, the outbox of budget alerts (as in a SQLite file). A database of
version 1 is upgraded when a ledger is opened for writing: every statement of the schema is
idempotent (``IF NOT EXISTS``, ``OR REPLACE``), so an upgrade runs them all again under the
lock, then records the new version; a read-only open of an older database is refused, with
what to do.
"""

from __future__ import annotations

from typing import Any

from imagine_billing.errors import LedgerStoreError
from imagine_billing.ledger.model import GENESIS

__all__ = ["COLUMNS", "SCHEMA_VERSION", "set_up"]

SCHEMA_VERSION = 2
"""The version of the PostgreSQL schema (its own numbering, apart from SQLite's)."""

COLUMNS = ("id, kind, key, tokens, at, ref, memo, tags, styles, table_version, table_digest, "
           "expires_at, fingerprint, hash")

_LOCK = 0x1A61_BE11
"""The advisory lock key under which the schema is created or upgraded."""

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS imagine_billing_schema (
        one integer PRIMARY KEY CHECK (one = 1),
        version integer NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS ledgers (
        id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        name text NOT NULL UNIQUE,
        tip_id bigint NOT NULL DEFAULT 0,
        tip_hash text NOT NULL DEFAULT '""" + GENESIS + """',
        posted bigint NOT NULL DEFAULT 0,
        held bigint NOT NULL DEFAULT 0)""",
    """CREATE TABLE IF NOT EXISTS entries (
        ledger integer NOT NULL REFERENCES ledgers (id),
        id bigint NOT NULL,
        kind text NOT NULL,
        key text NOT NULL,
        tokens bigint NOT NULL,
        at bigint NOT NULL,
        ref bigint,
        memo text,
        tags text NOT NULL,
        styles text NOT NULL,
        table_version text,
        table_digest text,
        expires_at bigint,
        fingerprint text NOT NULL,
        hash text NOT NULL,
        tag_doc jsonb GENERATED ALWAYS AS (tags::jsonb) STORED,
        PRIMARY KEY (ledger, id),
        UNIQUE (ledger, key))""",
    # No statistics on the ledger column: the planner then takes ``ledger = X`` as matching a
    # fixed share of the rows, never "one row" for a ledger newer than the last ANALYZE,
    # so lookups by id or key keep to their own index whatever the ledgers' sizes.
    "ALTER TABLE entries ALTER COLUMN ledger SET STATISTICS 0",
    "CREATE INDEX IF NOT EXISTS entries_ref ON entries (ledger, ref) WHERE ref IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS entries_at ON entries (ledger, at)",
    "CREATE INDEX IF NOT EXISTS entries_budgets ON entries (ledger, id) WHERE kind = 'budget'",
    """CREATE TABLE IF NOT EXISTS open_holds (
        ledger integer NOT NULL,
        id bigint NOT NULL,
        expires_at bigint,
        PRIMARY KEY (ledger, id))""",
    """CREATE TABLE IF NOT EXISTS budgets (
        ledger integer NOT NULL,
        seq bigint GENERATED ALWAYS AS IDENTITY,
        name text NOT NULL,
        period text NOT NULL,
        document text NOT NULL,
        held bigint NOT NULL,
        added bigint NOT NULL,
        entry bigint,
        PRIMARY KEY (ledger, name),
        UNIQUE (ledger, entry))""",
    """CREATE TABLE IF NOT EXISTS budget_usage (
        ledger integer NOT NULL,
        name text NOT NULL,
        period text NOT NULL,
        spent bigint NOT NULL,
        PRIMARY KEY (ledger, name, period))""",
    """CREATE TABLE IF NOT EXISTS alerts (
        ledger integer NOT NULL,
        seq bigint GENERATED ALWAYS AS IDENTITY,
        id text NOT NULL,
        budget text NOT NULL,
        period text NOT NULL,
        threshold text NOT NULL,
        kind text NOT NULL,
        spent bigint NOT NULL,
        budget_limit bigint NOT NULL,
        projected text,
        at bigint NOT NULL,
        entry bigint,
        delivered_at bigint,
        attempts integer NOT NULL DEFAULT 0,
        last_error text,
        PRIMARY KEY (ledger, id))""",
    "CREATE INDEX IF NOT EXISTS alerts_order ON alerts (ledger, seq)",
    """CREATE OR REPLACE FUNCTION imagine_billing_append_only() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'ledger entries are append-only'; END $$""",
    """CREATE OR REPLACE TRIGGER entries_append_only BEFORE UPDATE OR DELETE ON entries
        FOR EACH ROW EXECUTE FUNCTION imagine_billing_append_only()""",
    """CREATE OR REPLACE TRIGGER entries_no_truncate BEFORE TRUNCATE ON entries
        FOR EACH STATEMENT EXECUTE FUNCTION imagine_billing_append_only()""",
)


def _version(db: Any) -> int | None:
    """The schema version of the database (``None``: no ledger schema yet)."""
    (table,) = db.execute("SELECT to_regclass('imagine_billing_schema')").fetchone()
    if table is None:
        return None
    row = db.execute("SELECT version FROM imagine_billing_schema WHERE one = 1").fetchone()
    return None if row is None else int(row[0])


def set_up(db: Any, where: str, name: str, *, create: bool) -> int:
    """Create or upgrade the schema if needed, and the ledger ``name`` (unless ``create``
    is false); returns the ledger's number. ``db`` is a psycopg connection in autocommit
    mode.

    Raises:
        LedgerStoreError: The schema is newer than this library's; or, without ``create``,
            the database has no ledger of that name.
    """
    version = _version(db)
    if version is None or version < SCHEMA_VERSION:
        if not create:
            raise LedgerStoreError(where, "the database holds no ledgers yet (a read-only "
                                   "open creates none)" if version is None else
                                   f"its schema is version {version}, older than this "
                                   f"library's ({SCHEMA_VERSION}): open it once for writing "
                                   "to upgrade it")
        with db.transaction():
            db.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
            version = _version(db)  # again, under the lock: another host may have done it
            if version is None or version < SCHEMA_VERSION:
                for statement in _SCHEMA:
                    db.execute(statement)
                db.execute("INSERT INTO imagine_billing_schema (one, version) VALUES (1, %s) "
                           "ON CONFLICT (one) DO UPDATE SET version = excluded.version",
                           (SCHEMA_VERSION,))
                version = SCHEMA_VERSION
    if version > SCHEMA_VERSION:
        raise LedgerStoreError(where, f"schema version {version} is newer than this "
                               f"library's ({SCHEMA_VERSION}): upgrade imagine-billing")
    row = db.execute("SELECT id FROM ledgers WHERE name = %s", (name,)).fetchone()
    if row is None:
        if not create:
            raise LedgerStoreError(where, f"the database has no ledger named {name!r} (a "
                                   "read-only open creates none)")
        db.execute("INSERT INTO ledgers (name) VALUES (%s) ON CONFLICT (name) DO NOTHING",
                   (name,))
        row = db.execute("SELECT id FROM ledgers WHERE name = %s", (name,)).fetchone()
    return int(row[0])
