"""Holds + captures per second on a PostgreSQL ledger, 1, 4 and 8 processes, against raw
psycopg running the same transaction shape in the same run: goal >= 0.5x raw.

Every process writes to one ledger (so they all take turns on its row). Ours:
``ledger.hold(1)`` then ``ledger.capture(hold)``, each a transaction with the hash chain,
idempotency lookups and budget checks (no budget set). Raw: per operation, ``BEGIN``; lock
the ledger's row (``SELECT ... FOR UPDATE``); insert the entry; update the row; ``COMMIT``.
Both run with the server's default durability (``synchronous_commit = on``); the server is a
throwaway one started here as the tests start theirs (``tests/pgserver.py``; ``fsync`` off,
so the figures measure round trips and locking, not the disk).

Run: ``.venv/bin/python benches/postgres.py [--seconds S] [--url URL]``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
import uuid
from collections.abc import Callable
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

RAW_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS raw_ledgers (id integer PRIMARY KEY, tip bigint NOT NULL, "
    "hash text NOT NULL, posted bigint NOT NULL, held bigint NOT NULL)",
    "CREATE TABLE IF NOT EXISTS raw_entries (ledger integer NOT NULL, id bigint NOT NULL, "
    "kind text NOT NULL, key text NOT NULL, tokens bigint NOT NULL, at bigint NOT NULL, "
    "ref bigint, hash text NOT NULL, PRIMARY KEY (ledger, id), UNIQUE (ledger, key))",
)


def ours(url: str, name: str, worker: int, seconds: float, start: Event) -> int:
    """Holds + captures by one process for ``seconds``; returns how many operations."""
    from imagine_billing import Ledger

    done = 0
    with Ledger.open(url, name=name) as ledger:
        start.wait()
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            hold = ledger.hold(1, key=f"w{worker}-{done}")
            ledger.capture(hold)
            done += 2
    return done


def raw(url: str, number: int, worker: int, seconds: float, start: Event) -> int:
    """The same transaction shape in plain psycopg."""
    import psycopg

    done = 0
    with psycopg.connect(url) as db:
        start.wait()
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            for kind, tokens in (("hold", 1), ("capture", 1)):
                with db.transaction():
                    tip, posted, held = db.execute(
                        "SELECT tip, posted, held FROM raw_ledgers WHERE id = %s FOR UPDATE",
                        (number,)).fetchone()
                    db.execute("INSERT INTO raw_entries (ledger, id, kind, key, tokens, at, "
                               "ref, hash) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                               (number, tip + 1, kind, f"w{worker}-{done}", tokens,
                                time.time_ns() // 1000, None, "0" * 64))
                    db.execute("UPDATE raw_ledgers SET tip = %s, hash = %s, posted = %s, "
                               "held = %s WHERE id = %s",
                               (tip + 1, "0" * 64, posted - (kind == "capture"),
                                held + (1 if kind == "hold" else -1), number))
                done += 1
    return done


def measure(target: str, url: str, processes: int, seconds: float, *, run: int,
            tag: str) -> float:
    """Operations per second of ``processes`` processes writing one ledger."""
    import psycopg

    from imagine_billing import Ledger

    context = multiprocessing.get_context("spawn")
    start = context.Event()
    if target == "ours":
        name = f"bench-{tag}-{run}"
        with Ledger.open(url, name=name) as ledger:
            ledger.credit(10**15, key="top-up")
        jobs = [(ours, (url, name, w, seconds, start)) for w in range(processes)]
    else:
        with psycopg.connect(url, autocommit=True) as db:
            for statement in RAW_SCHEMA:
                db.execute(statement)
            (number,) = db.execute(
                "INSERT INTO raw_ledgers SELECT COALESCE(max(id), 0) + 1, 0, %s, %s, 0 "
                "FROM raw_ledgers RETURNING id", ("0" * 64, 10**15)).fetchone()
        jobs = [(raw, (url, number, w, seconds, start)) for w in range(processes)]
    results = context.Queue()
    workers = [context.Process(target=_report, args=(results, function, args))
               for function, args in jobs]
    for worker in workers:
        worker.start()
    time.sleep(1.0 + 0.2 * processes)  # every process connected and waiting
    start.set()
    total = sum(results.get(timeout=seconds + 120) for _ in workers)
    for worker in workers:
        worker.join()
        if worker.exitcode:
            raise RuntimeError(f"a worker failed ({worker.exitcode})")
    return total / seconds


def _report(results: Queue[int], function: Callable[..., int], args: tuple[Any, ...]) -> None:
    results.put(function(*args))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--url", help="an existing server (default: start a throwaway one)")
    args = parser.parse_args()
    server = None
    url = args.url
    if url is None:
        from tests.pgserver import Server

        server = Server().start()
        url = server.url
    try:
        print(f"holds + captures per second, one ledger, {args.seconds:g} s a run")
        print(f"{'processes':>9}  {'raw psycopg':>12}  {'imagine-billing':>15}  {'ratio':>6}")
        tag = uuid.uuid4().hex[:8]  # a server given with --url may hold earlier runs
        for run, processes in enumerate((1, 4, 8), start=1):
            baseline = measure("raw", url, processes, args.seconds, run=run, tag=tag)
            ours_rate = measure("ours", url, processes, args.seconds, run=run, tag=tag)
            print(f"{processes:>9}  {baseline:>12,.0f}  {ours_rate:>15,.0f}  "
                  f"{ours_rate / baseline:>5.2f}x")
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
