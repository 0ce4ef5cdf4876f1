"""The outbox arrives in older ledgers by upgrade: SQLite schema 4 -> 5, PostgreSQL 1 -> 2."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
import pytest

import imagine_billing as ib
from imagine_billing.errors import LedgerStoreError
from imagine_billing.ledger import _postgres_schema, _sqlite_schema


def test_a_sqlite_file_of_version_4_gets_the_outbox(tmp_path: Path) -> None:
    """Drop the alerts table and mark the file version 4: reopening adds the table, the
    entries and budgets are kept, and the next crossing is recorded."""
    path = tmp_path / "old.db"
    with ib.Ledger.open(path) as ledger:
        ledger.credit(100, key="c")
        ledger.add_budget(ib.Budget("cap", 100))
        ledger.debit(40, key="d")
    db = sqlite3.connect(path)
    db.executescript("DROP TABLE alerts; PRAGMA user_version = 4;")
    db.close()
    with ib.Ledger.open(path, readonly=True) as ledger:  # read-only: not upgraded
        assert 3 == ledger.verify()
        assert () == ledger.alerts()
    with ib.Ledger.open(path) as ledger:
        assert () == ledger.alerts()
        ledger.debit(20, key="d2")
        assert ["1/2"] == [str(a.threshold) for a in ledger.alerts()]
        assert 4 == ledger.verify()
    db = sqlite3.connect(path)
    assert _sqlite_schema.SCHEMA_VERSION == db.execute("PRAGMA user_version").fetchone()[0]
    db.close()


def test_a_postgres_database_of_version_1_is_upgraded(database: str) -> None:
    """A version 1 database (no alerts table): a read-only open is refused with what to do;
    an open for writing upgrades it, keeping every ledger."""
    with ib.Ledger.open(database, name="a") as ledger:
        ledger.credit(100, key="c")
        ledger.add_budget(ib.Budget("cap", 100))
    with psycopg.connect(database, autocommit=True) as db:
        db.execute("DROP TABLE alerts")
        db.execute("UPDATE imagine_billing_schema SET version = 1")
    with pytest.raises(LedgerStoreError, match="version 1, older than this library's "
                       r"\(2\): open it once for writing"):
        ib.Ledger.open(database, name="a", readonly=True)
    with ib.Ledger.open(database, name="a") as ledger:
        ledger.debit(60, key="d")
        assert ["1/2"] == [str(a.threshold) for a in ledger.alerts()]
        assert 3 == ledger.verify()
    with psycopg.connect(database) as db:
        assert (_postgres_schema.SCHEMA_VERSION,) == db.execute(
            "SELECT version FROM imagine_billing_schema").fetchone()
