"""Ledger reads at a million entries, against baselines measured in the same run.

1. ``balance()``: target < 100 µs; baselines: a plain dict lookup, and raw sqlite3 reading the
   one-row balance table.
2. ``verify()`` over every entry (hash chain, balance, open holds): target < 10 s; baseline:
   raw sqlite3 reading every row of the same table.
3. ``spent(since=...)`` over the last 1% of the entries (what a day budget or a forecast
   window reads): through the time index, against the same sum over all of them.

The ledger is built first (a mix of credits, holds, captures, debits and refunds, in batches):
that takes most of the run. Run: ``.venv/bin/python benches/ledger_reads.py [--entries N]``.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
import timeit
from pathlib import Path

from imagine_billing.ledger import Ledger

BATCH = 50_000


def build(path: Path, entries: int) -> float:
    """A ledger of ``entries`` entries (rounded down to whole cycles of 5); returns seconds."""
    start = time.perf_counter()
    with Ledger.open(path, durable=False) as ledger:
        cycle = 0
        while cycle * 5 < entries:
            with ledger.batch():
                for _ in range(BATCH // 5):
                    if cycle * 5 >= entries:
                        break
                    ledger.credit(10, key=f"c{cycle}", tags={"project": "bench"})
                    hold = ledger.hold(5, key=f"h{cycle}")
                    ledger.capture(hold, 3)
                    ledger.debit(2, key=f"d{cycle}")
                    ledger.refund(f"d{cycle}", 1, key=f"r{cycle}")
                    cycle += 1
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ledger.db"
        seconds = build(path, args.entries)
        with Ledger.open(path) as ledger:
            print(f"built {args.entries:,} entries in {seconds:.1f} s "
                  f"({args.entries / seconds:,.0f} entries/s, batches of {BATCH:,})")

            table = {"posted": 1, "held": 2}
            n = 20_000
            lookup = min(timeit.repeat(lambda: table["posted"], number=n, repeat=5)) / n
            with sqlite3.connect(path) as raw:
                def read() -> object:
                    return raw.execute("SELECT posted, held FROM tip WHERE one = 1").fetchone()
                raw_read = min(timeit.repeat(read, number=n, repeat=5)) / n
            raw.close()
            ours = min(timeit.repeat(ledger.balance, number=n, repeat=5)) / n
            print(f"balance() at {args.entries:,} entries")
            print(f"  dict lookup               : {lookup * 1e6:8.3f} µs")
            print(f"  raw sqlite3 one-row read  : {raw_read * 1e6:8.3f} µs")
            print(f"  ledger.balance()          : {ours * 1e6:8.3f} µs  "
                  f"({ours / raw_read:.1f}x raw; target < 100 µs)")

            with sqlite3.connect(path) as raw:
                start = time.perf_counter()
                rows = sum(1 for _ in raw.execute("SELECT * FROM entries ORDER BY id"))
                scan = time.perf_counter() - start
            raw.close()
            start = time.perf_counter()
            verified = ledger.verify()
            took = time.perf_counter() - start
            assert verified == rows
            print(f"verify() over {verified:,} entries")
            print(f"  raw sqlite3 full scan     : {scan:8.2f} s")
            print(f"  ledger.verify()           : {took:8.2f} s  "
                  f"({took / scan:.1f}x raw scan; target < 10 s)")

            recent = ledger.get(max(1, verified * 99 // 100)).at
            late = min(timeit.repeat(lambda: ledger.spent(since=recent), number=5,
                                     repeat=3)) / 5
            whole = min(timeit.repeat(ledger.spent, number=5, repeat=3)) / 5
            print(f"spent() at {verified:,} entries")
            print(f"  over all of them          : {whole * 1e3:8.2f} ms")
            print(f"  over the last 1%          : {late * 1e3:8.2f} ms  "
                  f"({whole / late:.0f}x less: the time index)")


if __name__ == "__main__":
    main()
