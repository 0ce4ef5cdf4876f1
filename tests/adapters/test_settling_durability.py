"""One disk flush per metered request (issue 15, goal 6): the hold, written before the
request is sent, commits durably; the settlement after the answer commits relaxed
(`Ledger.relaxed`), and the next hold flushes it. Seen in the statements SQLite runs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from imagine_billing.adapters.httpx import MeteredTransport
from imagine_billing.ledger import Ledger
from imagine_billing.ledger.sqlite import SqliteStore
from tests.adapters.imagine_server import ImagineServer, running

AUTH = {"Authorization": "Bearer vk-test"}
FORM = {"prompt": (None, "a red fox"), "style": (None, "flux-dev")}


@pytest.fixture(scope="module")
def server() -> Iterator[ImagineServer]:
    with running() as started:
        yield started


def transactions(statements: list[str]) -> list[str]:
    """Each write transaction of ``statements``: "durable" or "relaxed", by the
    ``synchronous`` level set when it began."""
    level, found = "durable", []
    for statement in statements:
        if statement == "PRAGMA synchronous = NORMAL":
            level = "relaxed"
        elif statement.startswith("PRAGMA synchronous = "):
            level = "durable"
        elif statement.startswith("BEGIN IMMEDIATE"):
            found.append(level)
    return found


def test_the_hold_is_durable_and_the_capture_relaxed(server: ImagineServer,
                                                       tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "tokens.db") as ledger:
        ledger.credit(100, key="top-up")
        store = ledger._store
        assert isinstance(store, SqliteStore)
        assert store._db is not None
        seen: list[str] = []
        store._db.set_trace_callback(seen.append)
        with httpx.Client(transport=MeteredTransport(ledger), base_url=server.base_url,
                          headers=AUTH) as client:
            for _ in range(2):
                client.post("/image/generations", files=FORM).raise_for_status()
        store._db.set_trace_callback(None)
        assert ["hold", "capture", "hold", "capture"] == [
            e.kind for e in ledger.entries() if e.kind != "credit"]
        assert ["durable", "relaxed", "durable", "relaxed"] == transactions(seen)
        assert 70 == ledger.balance().available
