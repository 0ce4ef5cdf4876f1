"""The connection to PostgreSQL lost around ``COMMIT``, deterministically (`tests.pgproxy`):
lost before the server got it, the write is not kept; lost after the server kept it but before
its answer arrived, the error says the outcome is unknown. Either way, writing again with the
same keys leaves each entry once, and the chain verifies."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

import imagine_billing as ib
from tests.pgproxy import AFTER, BEFORE, Proxy

WARM_UP = 3
"""Writes before the fault, each its own transaction through the proxy (psycopg sends their
``COMMIT`` as an unnamed ``Parse``/``Bind`` in pipeline mode)."""


def _debit(ledger: ib.Ledger) -> list[ib.Entry]:
    return [ledger.debit(30, key="spend")]


def _batch(ledger: ib.Ledger) -> list[ib.Entry]:
    with ledger.batch():
        spent = ledger.debit(30, key="spend")
        back = ledger.credit(5, key="refund")
    return [spent, back]


WRITES: dict[str, Callable[[ib.Ledger], list[ib.Entry]]] = {"debit": _debit, "batch": _batch}
KEYS = {"debit": ["spend"], "batch": ["spend", "refund"]}
"""The keys each write adds; the debit takes 30 tokens, the batch's credit gives 5 back."""


@pytest.fixture
def proxied(pg_url: str, pg_name: str) -> Iterator[tuple[Proxy, ib.Ledger]]:
    """A ledger reached through a proxy, with 102 tokens credited in `WARM_UP` writes."""
    with Proxy(pg_url) as proxy, ib.Ledger.open(proxy.url, name=pg_name) as ledger:
        for n in range(WARM_UP):
            ledger.credit(100 if n == 0 else 1, key=f"warm-up-{n}")
        yield proxy, ledger


def _keys(ledger: ib.Ledger) -> list[str]:
    return [entry.key for entry in ledger.entries()]


@pytest.mark.parametrize("write", list(WRITES))
def test_lost_before_the_server_got_commit(proxied: tuple[Proxy, ib.Ledger], write: str) -> None:
    proxy, ledger = proxied
    before = ledger.balance().available
    proxy.arm(BEFORE)
    with pytest.raises(ib.LedgerStoreError, match="connection to the server was lost"):
        WRITES[write](ledger)
    assert proxy.fired.is_set()
    assert not {"spend", "refund"} & set(_keys(ledger))  # nothing of it, not half of it
    assert before == ledger.balance().available
    written = WRITES[write](ledger)
    keys = _keys(ledger)
    assert KEYS[write] == [entry.key for entry in written] == keys[WARM_UP:]
    assert before - 30 + 5 * (write == "batch") == ledger.balance().available
    assert len(keys) == ledger.verify()


@pytest.mark.parametrize("write", list(WRITES))
def test_lost_after_the_server_kept_commit(proxied: tuple[Proxy, ib.Ledger], write: str) -> None:
    proxy, ledger = proxied
    before = ledger.balance().available
    proxy.arm(AFTER)
    with pytest.raises(ib.LedgerStoreError) as raised:
        WRITES[write](ledger)
    assert proxy.fired.is_set()
    assert "COMMIT was on its way" in str(raised.value)
    assert "may or may not have kept this write" in str(raised.value)
    kept = list(ledger.entries())[WARM_UP:]  # kept whole, though the client never heard
    assert KEYS[write] == [entry.key for entry in kept]
    again = WRITES[write](ledger)  # a replay: the same entries, counted once
    assert [(e.id, e.key) for e in again] == [(e.id, e.key) for e in kept]
    assert len(_keys(ledger)) == WARM_UP + len(kept)
    assert before - 30 + 5 * (write == "batch") == ledger.balance().available
    assert WARM_UP + len(kept) == ledger.verify()


def test_lost_mid_transaction_keeps_none_of_it(proxied: tuple[Proxy, ib.Ledger]) -> None:
    """Lost with the ledger's lock taken and the batch's first entry on its way (queued,
    it goes with the next statement), before any COMMIT: the error says nothing is kept,
    the lock is free again, and the batch written again is written once."""
    proxy, ledger = proxied
    before = ledger.balance().available
    proxy.arm(BEFORE, "INSERT INTO entries")
    with pytest.raises(ib.LedgerStoreError, match="nothing of the transaction in progress"):
        _batch(ledger)
    assert proxy.fired.is_set()
    assert _keys(ledger)[WARM_UP:] == []
    assert KEYS["batch"] == [entry.key for entry in _batch(ledger)] == _keys(ledger)[WARM_UP:]
    assert before - 25 == ledger.balance().available
    assert WARM_UP + 2 == ledger.verify()
