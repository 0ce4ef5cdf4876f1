"""The PostgreSQL store on its own: named ledgers, the schema, append-only entries, errors,
and moving a ledger between SQLite and PostgreSQL."""

from __future__ import annotations

import io
import socket
import subprocess
import sys
import textwrap
import urllib.parse
from pathlib import Path

import psycopg
import pytest

import imagine_billing as ib
from imagine_billing.errors import LedgerCorrupted, LedgerStoreError
from imagine_billing.ledger.postgres import SCHEMA_VERSION, PostgresStore, redacted
from tests.store.conftest import START, Clock, with_part


def one_line(error: BaseException) -> str:
    text = str(error)
    assert 1 == len(text.splitlines()), text
    return text


class TestNamedLedgers:
    """Many ledgers in one database, each on its own."""

    def test_ledgers_are_isolated(self, pg_url: str, pg_name: str) -> None:
        """Two names: separate balances, keys, budgets and chains."""
        with ib.Ledger.open(pg_url, name=pg_name + "-a") as first, \
                ib.Ledger.open(pg_url, name=pg_name + "-b") as second:
            first.credit(10, key="same")
            second.credit(20, key="same")
            first.add_budget(ib.Budget(name="cap", limit=5, period="total", hard=True))
            second.debit(15, key="spend")
            assert ib.Balance(10, 0, 10) == first.balance()
            assert ib.Balance(5, 0, 5) == second.balance()
            assert () == second.budgets()
            assert (2, 2) == (first.verify(), second.verify())
            assert first.head() != second.head()

    def test_a_ledger_reopens_with_its_entries(self, pg_url: str, pg_name: str) -> None:
        """Closing and opening again finds the same chain."""
        with ib.Ledger.open(pg_url, name=pg_name) as ledger:
            ledger.credit(10, key="a")
            head = ledger.head()
        with ib.Ledger.open(pg_url, name=pg_name) as ledger:
            assert head == ledger.head()
            assert 1 == ledger.verify(expect=head)

    def test_readonly(self, pg_url: str, pg_name: str) -> None:
        """A read-only open reads and refuses writes; it creates no ledger."""
        with pytest.raises(LedgerStoreError, match="no ledger named"):
            ib.Ledger.open(pg_url, name=pg_name, readonly=True)
        with ib.Ledger.open(pg_url, name=pg_name) as ledger:
            ledger.credit(10, key="a")
        with ib.Ledger.open(pg_url, name=pg_name, readonly=True) as ledger:
            assert 10 == ledger.balance().available
            with pytest.raises(LedgerStoreError, match="read-only"):
                ledger.credit(1, key="b")

    def test_a_sqlite_file_has_only_main(self, tmp_path: Path) -> None:
        """A name other than main for a SQLite path is a LedgerStoreError; no file made."""
        with pytest.raises(LedgerStoreError, match="one ledger, 'main'"):
            ib.Ledger.open(tmp_path / "x.db", name="team")
        assert [] == list(tmp_path.iterdir())

    def test_a_write_cannot_start_in_a_read(self, pg_url: str, pg_name: str) -> None:
        """A write inside a read block (a snapshot) is refused."""
        store = PostgresStore(pg_url, name=pg_name)
        try:
            with store.read(), pytest.raises(RuntimeError), store.write():
                pass
        finally:
            store.close()


class TestSchema:
    """The library creates the schema, records its version, keeps entries append-only."""

    def test_a_new_database_gets_the_schema(self, database: str) -> None:
        """Opening a ledger in an empty database creates the tables and the version."""
        with ib.Ledger.open(database) as ledger:
            ledger.credit(1, key="a")
        with psycopg.connect(database) as db:
            assert (SCHEMA_VERSION,) == db.execute(
                "SELECT version FROM imagine_billing_schema").fetchone()
            assert [("main",)] == db.execute("SELECT name FROM ledgers").fetchall()

    def test_a_newer_schema_is_refused(self, database: str) -> None:
        """A database of a newer schema version is refused, naming both versions."""
        ib.Ledger.open(database).close()
        with psycopg.connect(database, autocommit=True) as db:
            db.execute("UPDATE imagine_billing_schema SET version = 99")
        with pytest.raises(LedgerStoreError, match=f"99 is newer .*\\({SCHEMA_VERSION}\\)"):
            ib.Ledger.open(database)

    @pytest.mark.parametrize("statement", [
        "UPDATE entries SET tokens = 1 WHERE ledger = %s",
        "DELETE FROM entries WHERE ledger = %s",
        "TRUNCATE entries CASCADE",
    ])
    def test_entries_are_append_only(self, database: str, statement: str) -> None:
        """A trigger refuses UPDATE, DELETE and TRUNCATE of entries."""
        with ib.Ledger.open(database) as ledger:
            ledger.credit(5, key="a")
        with psycopg.connect(database) as db, pytest.raises(psycopg.Error, match="append-only"):
            db.execute(statement, (1,) if "%s" in statement else ())

    def test_a_row_behind_the_ledgers_back_is_found(self, pg_url: str, pg_name: str) -> None:
        """An entry inserted past the tip is reported by verify and by lookups."""
        with ib.Ledger.open(pg_url, name=pg_name) as ledger:
            entry = ledger.credit(5, key="a")
            with psycopg.connect(pg_url) as db:
                (number,) = db.execute("SELECT id FROM ledgers WHERE name = %s",
                                       (pg_name,)).fetchone()
                row = list(entry.to_row())
                row[0], row[2] = 2, "sneaky"
                db.execute("INSERT INTO entries (ledger, id, kind, key, tokens, at, ref, memo, "
                           "tags, styles, table_version, table_digest, expires_at, "
                           "fingerprint, hash) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, "
                           "%s, %s, %s, %s, %s, %s)", (number, *row))
            with pytest.raises(LedgerCorrupted):
                ledger.verify()
            with pytest.raises(LedgerCorrupted, match="not in the chain"):
                ledger.get("sneaky")
            with pytest.raises(LedgerCorrupted, match="behind the ledger's back"):
                ledger.credit(1, key="b")  # its id, 2, is taken
            assert 5 == ledger.balance().available


class TestErrors:
    """One-line LedgerStoreErrors naming the URL without its password."""

    def test_unreachable_server(self, pg_url: str) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        url = with_part(pg_url, port=port)
        with pytest.raises(LedgerStoreError) as raised:
            ib.Ledger.open(url, timeout=2)
        text = one_line(raised.value)
        assert "cannot reach the server" in text
        assert redacted(url) in text

    def test_wrong_password(self, pg_url: str) -> None:
        url = with_part(pg_url, password="not-the-password")
        with pytest.raises(LedgerStoreError) as raised:
            ib.Ledger.open(url)
        text = one_line(raised.value)
        assert "refused the user or password" in text
        assert "not-the-password" not in text
        assert redacted(url) in text

    def test_missing_database(self, pg_url: str) -> None:
        url = with_part(pg_url, database="no_such_database_here")
        with pytest.raises(LedgerStoreError) as raised:
            ib.Ledger.open(url)
        text = one_line(raised.value)
        assert 'database "no_such_database_here" does not exist' in text
        assert urllib.parse.urlsplit(pg_url).password not in text

    def test_redacted(self) -> None:
        """Passwords leave the URL, in the user part and in the query."""
        assert "postgresql://bob@db:5432/x?sslmode=require" == redacted(
            "postgresql://bob:s3cret@db:5432/x?sslmode=require&password=s3cret")

    @pytest.mark.parametrize("parameter", ["password", "sslpassword", "oauth_client_secret",
                                           "SSLPassword", "ssl%70assword"])
    def test_every_secret_of_libpq_leaves_the_query(self, parameter: str) -> None:
        """libpq reads secrets from more parameters than ``password``: ``sslpassword`` (the
        client key's passphrase), ``oauth_client_secret``; a name spelled with a capital or
        percent-encoded is hidden too (the query is decoded before it is read)."""
        url = f"postgresql://bob@db/x?sslmode=require&{parameter}=KeyPassphrase&port=5433"
        assert "postgresql://bob@db/x?sslmode=require&port=5433" == redacted(url)

    def test_an_unparsable_url_shows_only_its_scheme(self) -> None:
        assert "postgresql://..." == redacted("postgresql://bob:s3cret@[::1/x")

    @pytest.mark.parametrize("url", [
        "postgresql://bob:s3cret@[::1/x?sslpassword=KeyPassphrase",
        "postgresql://bob:s3%zzcret@127.0.0.1:1/x",
        "postgresql://bob@127.0.0.1:1/x?sslpassword=Key%zzPassphrase",
    ])
    def test_a_url_libpq_cannot_read_is_not_quoted_back(self, url: str) -> None:
        """libpq quotes a URL it cannot parse whole, and a bad percent-encoding as it is:
        neither the password nor the key's passphrase reaches the message."""
        with pytest.raises(LedgerStoreError) as raised:
            ib.Ledger.open(url, timeout=2)
        text = one_line(raised.value)
        assert "cannot reach the server" in text
        assert "s3" not in text, text
        assert "Passphrase" not in text, text

    def test_without_psycopg_a_one_line_hint(self, pg_url: str) -> None:
        """Without the extra, opening a URL says how to install it; import never loads it."""
        code = textwrap.dedent(f"""
            import sys
            import imagine_billing as ib
            ib.Ledger.memory().credit(1, key="a")
            assert "psycopg" not in sys.modules, "psycopg imported without a URL"
            sys.modules["psycopg"] = None
            try:
                ib.Ledger.open({pg_url!r})
            except ib.LedgerStoreError as error:
                print(error)
        """)
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=60, check=True)
        assert 'pip install "imagine-billing[postgres]"' in done.stdout
        assert 'pip install -e ".[postgres]"' in done.stdout
        assert 1 == len(done.stdout.splitlines())


class TestMoving:
    """A ledger exported from one store imports into the other."""

    def test_sqlite_to_postgres_to_sqlite(self, tmp_path: Path, pg_url: str,
                                          pg_name: str) -> None:
        """SQLite -> PostgreSQL -> SQLite gives the same entries and hashes, budgets too."""
        clock = Clock(START)
        with ib.Ledger.open(tmp_path / "a.db", clock=clock) as source:
            source.credit(100, key="c")
            source.add_budget(ib.Budget(name="cap", limit=50, period="month", hard=True))
            hold = source.hold(20, key="h", tags={"project": "x"})
            source.capture(hold, 15)
            source.debit(5, key="d", memo="ünïcode\u2028memo")
            source.refund("d", 2, key="r")
            source.hold(3, key="open")
            first = io.StringIO()
            source.export(first)
            head = source.head()
        with ib.Ledger.from_jsonl(io.StringIO(first.getvalue()), path=pg_url, name=pg_name,
                                  clock=clock, expect=head) as middle:
            assert 7 == middle.verify(expect=head)
            assert (15 + 5 - 2, 3) == middle.budget_usage("cap")
            second = io.StringIO()
            middle.export(second)
        assert first.getvalue() == second.getvalue()
        with ib.Ledger.from_jsonl(io.StringIO(second.getvalue()), path=tmp_path / "b.db",
                                  expect=head) as back:
            third = io.StringIO()
            back.export(third)
            assert head == back.head()
        assert first.getvalue() == third.getvalue()

    def test_import_refuses_a_ledger_with_entries(self, pg_url: str, pg_name: str) -> None:
        """Importing into a PostgreSQL ledger that has entries is refused, nothing added."""
        with ib.Ledger.open(pg_url, name=pg_name) as ledger:
            ledger.credit(1, key="there")
        export = io.StringIO()
        with ib.Ledger.memory() as other:
            other.credit(5, key="x")
            other.export(export)
        with pytest.raises(LedgerStoreError, match="already holds entries"):
            ib.Ledger.from_jsonl(io.StringIO(export.getvalue()), path=pg_url, name=pg_name)
        with ib.Ledger.open(pg_url, name=pg_name) as ledger:
            assert 1 == ledger.verify()
