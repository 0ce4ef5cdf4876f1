"""Ledger write throughput against raw sqlite3 with the same pragmas and table, same run.

1. Durable single writes: one ``credit`` per transaction (WAL, synchronous=FULL), against raw
   ``INSERT`` + ``COMMIT`` of the same row into the same table. Target >= 0.5x raw.
2. Batched writes: ``credit`` in one ``ledger.batch()``, against raw ``executemany`` of the same
   rows in one transaction. Target >= 0.25x raw.
3. Batched debits (issue 15, goal 4): ``debit`` in one ``ledger.batch()`` on a funded ledger,
   (a) with no budgets and (b) with one hard budget scoped to all spend (``{}``), against raw
   ``executemany`` of a minimal row (``CREATE TABLE t(id INTEGER PRIMARY KEY, key TEXT UNIQUE,
   tokens INTEGER)``) and of raw rows into our own schema, in one transaction each.
   Target >= 0.12x the minimal row.

Each figure is the best of ``--repeat`` runs (3 by default), ledger and raw taking turns, so
that a machine busy with other work skews both alike; the CPU time of this process is shown
beside the wall-clock rate (the batched ratio is also given on CPU time, which other
processes disturb less).

Run: ``.venv/bin/python benches/ledger_writes.py [--single N] [--batched N] [--repeat R]``.
"""

from __future__ import annotations

import argparse
import itertools
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from imagine_billing.ledger import Ledger
from imagine_billing.ledger.budgets import Budget
from imagine_billing.ledger.sqlite import _SCHEMA

ROW = ("credit", 1, 1_767_225_600_000_000, None, None, "{}", "[]", None, None, None,
       "0" * 64, "f" * 64)
INSERT = ("INSERT INTO entries (key, kind, tokens, at, ref, memo, tags, styles, table_version, "
          "table_digest, expires_at, fingerprint, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
          "?, ?, ?)")


def raw_db(path: Path, synchronous: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute(f"PRAGMA synchronous = {synchronous}")
    db.execute("BEGIN")
    for statement in _SCHEMA:
        db.execute(statement)
    db.execute("COMMIT")
    return db


def raw_single(path: Path, n: int) -> float:
    db = raw_db(path, "FULL")
    try:
        start = time.perf_counter()
        for i in range(n):
            db.execute("BEGIN IMMEDIATE")
            db.execute(INSERT, (f"k{i}", *ROW))
            db.execute("COMMIT")
        return n / (time.perf_counter() - start)
    finally:
        db.close()


def raw_batched(path: Path, n: int) -> float:
    db = raw_db(path, "FULL")
    try:
        start = time.perf_counter()
        db.execute("BEGIN IMMEDIATE")
        db.executemany(INSERT, ((f"k{i}", *ROW) for i in range(n)))
        db.execute("COMMIT")
        return n / (time.perf_counter() - start)
    finally:
        db.close()


def ledger_single(path: Path, n: int) -> float:
    with Ledger.open(path) as ledger:
        start = time.perf_counter()
        for i in range(n):
            ledger.credit(1, key=f"k{i}")
        return n / (time.perf_counter() - start)


def ledger_batched(path: Path, n: int) -> float:
    with Ledger.open(path) as ledger:
        start = time.perf_counter()
        with ledger.batch():
            for i in range(n):
                ledger.credit(1, key=f"k{i}")
        return n / (time.perf_counter() - start)


MINIMAL = "CREATE TABLE t(id INTEGER PRIMARY KEY, key TEXT UNIQUE, tokens INTEGER)"


def raw_minimal(path: Path, n: int) -> float:
    """Raw ``executemany`` of a minimal row (id, unique key, tokens) in one transaction."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = FULL")
        db.execute(MINIMAL)
        start = time.perf_counter()
        db.execute("BEGIN IMMEDIATE")
        db.executemany("INSERT INTO t (key, tokens) VALUES (?, ?)",
                       ((f"d{i}", 1) for i in range(n)))
        db.execute("COMMIT")
        return n / (time.perf_counter() - start)
    finally:
        db.close()


def _debits(path: Path, n: int, budget: Budget | None) -> float:
    """``n`` debits of 1 in one batch on a ledger funded beforehand (``budget`` added)."""
    with Ledger.open(path) as ledger:
        ledger.credit(n, key="fund")
        if budget is not None:
            ledger.add_budget(budget)
        start = time.perf_counter()
        with ledger.batch():
            for i in range(n):
                ledger.debit(1, key=f"d{i}")
        return n / (time.perf_counter() - start)


def debits_unbudgeted(path: Path, n: int) -> float:
    return _debits(path, n, None)


def debits_budgeted(path: Path, n: int) -> float:
    return _debits(path, n, Budget("all", limit=2**40, period="month", hard=True))


def debit_figures(folder: Path, n: int, repeat: int) -> None:
    """Section 3: batched debits against both raw baselines, taking turns."""
    runs: dict[str, list[tuple[float, float]]] = {}
    for _ in range(repeat):
        for run in (raw_minimal, raw_batched, debits_unbudgeted, debits_budgeted):
            runs.setdefault(run.__name__, []).append(timed(run, folder, n))
    best = {name: (max(r for r, _ in got), min(c for _, c in got)) for name, got in runs.items()}
    base_rate, base_cpu = best["raw_minimal"]
    print(f"batched debits ({n:,} in one transaction, on a funded ledger; best of {repeat})")
    for name, label in (("raw_minimal", "raw executemany, minimal row"),
                        ("raw_batched", "raw executemany, our schema"),
                        ("debits_unbudgeted", "ledger.debit, no budgets"),
                        ("debits_budgeted", "ledger.debit, one budget")):
        rate, cpu = best[name]
        print(f"  {label:30}: {rate:10,.0f} writes/s  ({cpu:5.1f} µs CPU each)  "
              f"{rate / base_rate:5.3f}x minimal (CPU {base_cpu / cpu:5.3f}x)")
    for name in ("debits_unbudgeted", "debits_budgeted"):
        print(f"  {name:30}: {best[name][0] / best['raw_batched'][0]:5.3f}x raw rows into our "
              "schema")
    print("  target: >= 0.12x the minimal row")


_FILES = itertools.count()


def timed(run: Callable[[Path, int], float], folder: Path, n: int) -> tuple[float, float]:
    """One run of ``run`` on a new file: its rate (writes/s) and CPU time per write (µs)."""
    cpu = time.process_time()
    rate = run(folder / f"{run.__name__}-{next(_FILES)}.db", n)
    return rate, (time.process_time() - cpu) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--single", type=int, default=2000, help="durable single writes")
    parser.add_argument("--batched", type=int, default=100_000, help="writes in one batch")
    parser.add_argument("--debits", type=int, default=20_000, help="debits in one batch")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each, best kept")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        raw, ours = 0.0, 0.0
        for _ in range(args.repeat):
            raw = max(raw, timed(raw_single, d, args.single)[0])
            ours = max(ours, timed(ledger_single, d, args.single)[0])
        print(f"durable single writes ({args.single}, WAL + synchronous=FULL, one commit each; "
              f"best of {args.repeat})")
        print(f"  raw sqlite3 insert+commit : {raw:10,.0f} writes/s")
        print(f"  ledger.credit             : {ours:10,.0f} writes/s")
        print(f"  ratio                     : {ours / raw:10.2f}x  (target >= 0.5x)")
        raws, ourss = [], []
        for _ in range(args.repeat):
            raws.append(timed(raw_batched, d, args.batched))
            ourss.append(timed(ledger_batched, d, args.batched))
        rate, cpu = max(r for r, _ in raws), min(c for _, c in raws)
        our_rate, our_cpu = max(r for r, _ in ourss), min(c for _, c in ourss)
        print(f"batched writes ({args.batched:,} in one transaction; best of {args.repeat})")
        print(f"  raw sqlite3 executemany   : {rate:10,.0f} writes/s  ({cpu:.1f} µs CPU each)")
        print(f"  ledger.batch() + credit   : {our_rate:10,.0f} writes/s  "
              f"({our_cpu:.1f} µs CPU each)")
        print(f"  ratio                     : {our_rate / rate:10.2f}x  (target >= 0.25x; on CPU "
              f"time {cpu / our_cpu:.2f}x)")
        debit_figures(d, args.debits, args.repeat)


if __name__ == "__main__":
    main()
