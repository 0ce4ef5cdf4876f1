"""Bench: requests/s through MeteredTransport against the bare httpx transport.

Both send the same text-to-image requests to the same local stand-in server (the one the
adapter tests use, on 127.0.0.1); the metered one holds and captures in a SQLite ledger file
(WAL, durable commits by default) for each request. Target (issue 15, goal 6): at least 0.6x
the bare rate with the server in its own process, as a real API is (``--in-process`` runs
it in a thread of this process instead, as earlier figures were taken: the server then
competes with the client for the interpreter, which hides part of the client's cost).
The two are run alternately several times and the best run of each is kept.

Run: .venv/bin/python benches/adapter.py [requests] [--fast] [--in-process]
(--fast: durable=False)
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.adapters.imagine_server import running

from imagine_billing.adapters.httpx import MeteredTransport
from imagine_billing.ledger import Ledger

FORM = {"prompt": (None, "a red fox"), "style": (None, "flux-dev")}
AUTH = {"Authorization": "Bearer vk-bench"}


def rate(base_url: str, transport: httpx.BaseTransport, requests: int) -> float:
    """Requests per second for ``requests`` sequential posts through ``transport``."""
    with httpx.Client(transport=transport, base_url=base_url, headers=AUTH) as client:
        client.post("/image/generations", files=FORM)  # connect outside the timing
        start = time.perf_counter()
        for _ in range(requests):
            client.post("/image/generations", files=FORM).raise_for_status()
        return requests / (time.perf_counter() - start)


SERVE = """
import sys
from tests.adapters.imagine_server import running
with running() as server:
    print(server.base_url, flush=True)
    sys.stdin.read()  # until the bench closes the pipe
"""


@contextlib.contextmanager
def own_process() -> Iterator[str]:
    """The stand-in server in a process of its own; yields its base URL."""
    root = Path(__file__).resolve().parents[1]
    child = subprocess.Popen([sys.executable, "-c", SERVE], cwd=root, text=True,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None
        yield child.stdout.readline().strip()
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=30)


@contextlib.contextmanager
def in_process() -> Iterator[str]:
    with running() as server:
        yield server.base_url


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    requests = int(args[0]) if args else 1000
    durable = "--fast" not in sys.argv
    bare: list[float] = []
    metered: list[float] = []
    server = in_process() if "--in-process" in sys.argv else own_process()
    with server as base_url, tempfile.TemporaryDirectory() as folder:
        for round_ in range(3):
            bare.append(rate(base_url, httpx.HTTPTransport(), requests))
            path = Path(folder) / f"bench-{round_}.db"
            with Ledger.open(path, durable=durable) as ledger:
                ledger.credit(15 * (requests + 1), key="top-up")
                transport = MeteredTransport(ledger)
                metered.append(rate(base_url, transport, requests))
                assert transport.stats.captured == requests + 1
                assert ledger.balance().available == 0
    b, m = max(bare), max(metered)
    mode = "durable (synchronous=FULL)" if durable else "synchronous=NORMAL"
    where = "this process" if "--in-process" in sys.argv else "its own process"
    print(f"requests per run                 {requests} (server in {where})")
    print(f"bare httpx.HTTPTransport         {b:8.0f} requests/s")
    print(f"MeteredTransport, SQLite {mode:s}")
    print(f"                                 {m:8.0f} requests/s  ratio {m / b:.2f}x "
          "(target >= 0.6x)")


if __name__ == "__main__":
    main()
