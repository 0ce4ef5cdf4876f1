"""Fixtures of the store tests: one `Store` of each kind, opened the same way."""

from __future__ import annotations

import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

import imagine_billing as ib
from imagine_billing.ledger import MemoryStore
from imagine_billing.ledger.postgres import PostgresStore
from imagine_billing.ledger.sqlite import SqliteStore
from imagine_billing.ledger.store import Store
from tests.helpers import Clock

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

KINDS = ["memory", "sqlite", "postgres"]
"""Every store: each test of the conformance suite runs on all of them."""


@pytest.fixture
def clock() -> Clock:
    return Clock(START)


@pytest.fixture(params=KINDS)
def open_store(request: pytest.FixtureRequest,
               tmp_path: Path) -> Iterator[Callable[[], Store]]:
    """Opens a store of the parameter's kind: every call gives a new store object over the
    same data (the memory store: the same object), all closed after the test."""
    opened: list[Store] = []
    memory = MemoryStore()
    url = name = ""
    if request.param == "postgres":
        url, name = request.getfixturevalue("pg_url"), request.getfixturevalue("pg_name")

    def make() -> Store:
        store: Store
        if request.param == "memory":
            return memory
        if request.param == "sqlite":
            store = SqliteStore(tmp_path / "ledger.db", durable=False)
        else:
            store = PostgresStore(url, name=name, durable=False)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()
    memory.close()


@pytest.fixture
def store(open_store: Callable[[], Store]) -> Store:
    """A store of each kind, empty."""
    return open_store()


@pytest.fixture
def ledger(store: Store, clock: Clock) -> ib.Ledger:
    """A ledger over ``store`` with 100 tokens credited."""
    ledger = ib.Ledger(store, clock=clock)
    ledger.credit(100, key="opening")
    return ledger


def with_part(url: str, *, password: str | None = None, database: str | None = None,
              port: int | None = None) -> str:
    """``url`` with another password, database or port."""
    parts = urllib.parse.urlsplit(url)
    user, _, host = parts.netloc.rpartition("@")
    name, _, secret = user.partition(":")
    hostname, _, old_port = host.rpartition(":") if ":" in host else (host, "", "")
    netloc = f"{name}:{secret if password is None else password}@{hostname}:" \
             f"{old_port if port is None else port}"
    path = parts.path if database is None else f"/{database}"
    return urllib.parse.urlunsplit((parts.scheme, netloc, path, parts.query, ""))


@pytest.fixture
def database(pg_url: str) -> Iterator[str]:
    """A database of the test's own on the session's server, dropped afterwards."""
    name = f"ib_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(pg_url, autocommit=True) as db:
        db.execute(f"CREATE DATABASE {name}")
    try:
        yield with_part(pg_url, database=name)
    finally:
        with psycopg.connect(pg_url, autocommit=True) as db:
            db.execute(f"DROP DATABASE {name} WITH (FORCE)")
