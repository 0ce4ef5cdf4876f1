"""Ledger write throughput against raw sqlite3 with the same pragmas and table, same run.

1. Durable single writes: one ``credit`` per transaction (WAL, synchronous=FULL), against raw
   ``INSERT`` + ``COMMIT`` of the same row into the same table. Target >= 0.5x raw.
2. Batched writes: ``credit`` in one ``ledger.batch()``, against raw ``executemany`` of the same
   rows in one transaction. Target >= 0.25x raw.

Run: ``.venv/bin/python benches/ledger_writes.py [--single N] [--batched N]``.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from pathlib import Path

from imagine_billing.ledger import Ledger
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--single", type=int, default=2000, help="durable single writes")
    parser.add_argument("--batched", type=int, default=100_000, help="writes in one batch")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        raw = raw_single(d / "raw1.db", args.single)
        ours = ledger_single(d / "ledger1.db", args.single)
        print(f"durable single writes ({args.single}, WAL + synchronous=FULL, one commit each)")
        print(f"  raw sqlite3 insert+commit : {raw:10,.0f} writes/s")
        print(f"  ledger.credit             : {ours:10,.0f} writes/s")
        print(f"  ratio                     : {ours / raw:10.2f}x  (target >= 0.5x)")
        raw = raw_batched(d / "raw2.db", args.batched)
        ours = ledger_batched(d / "ledger2.db", args.batched)
        print(f"batched writes ({args.batched:,} in one transaction)")
        print(f"  raw sqlite3 executemany   : {raw:10,.0f} writes/s")
        print(f"  ledger.batch() + credit   : {ours:10,.0f} writes/s")
        print(f"  ratio                     : {ours / raw:10.2f}x  (target >= 0.25x)")


if __name__ == "__main__":
    main()
