"""The async transport shares `AsyncLedger`'s thread runner: a request cancelled while its
hold waits for another process' lock leaves no hold behind (issue 12 item 4)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from imagine_billing.adapters.httpx import AsyncMeteredTransport
from imagine_billing.ledger import Ledger
from tests.adapters.test_httpx_adapter import form
from tests.store.test_async_ledger import SqliteTarget, Ticker


class TestCancelledWhileTheLedgerWaits:
    """A native asyncio cancellation (``task.cancel()``, `asyncio.timeout`) during a ledger
    write does not lose the write's outcome."""

    def test_the_hold_is_voided(self, tmp_path: Path) -> None:
        """The request is cancelled while its hold waits for the SQLite lock another
        process holds: once the lock is released the hold is written, then voided, as the
        request was never sent; the API is never called."""
        target = SqliteTarget(tmp_path / "tokens.db")
        with Ledger.open(target.where) as ledger:
            ledger.credit(100, key="top-up")
        sent: list[httpx.Request] = []

        def api(request: httpx.Request) -> httpx.Response:
            sent.append(request)
            return httpx.Response(200, json={"ok": True})

        async def scenario(ledger: Ledger) -> bool:
            transport = AsyncMeteredTransport(ledger, inner=httpx.MockTransport(api))
            async with httpx.AsyncClient(transport=transport,
                                         base_url="https://api.test/v2") as http:
                target.lock()
                try:
                    post = asyncio.create_task(
                        http.post("/image/generations", files=form("flux-dev")))
                    await Ticker(target).run(then_release=False)  # the hold waits
                    post.cancel()
                    await Ticker(target).run(then_release=False)
                finally:
                    target.release()
                await asyncio.wait([post])
                return post.cancelled()

        with Ledger.open(target.where, timeout=60.0) as ledger:
            assert asyncio.run(scenario(ledger))
            kinds = [str(entry.kind) for entry in ledger.entries()]
            assert ((), 100) == (ledger.open_holds(), ledger.balance().available)
        assert ["credit", "hold", "void"] == kinds
        assert [] == sent
