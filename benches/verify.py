"""Bench: ``verify()`` over a whole ledger, and ``verify(since=anchor)`` over its last 1%.

Goal (issue 15): ``verify()`` at 1 M entries in half the time it took before, and a check
from an anchor in time that grows with the entries after it, not with the ledger. Printed
against baselines measured in the same run on the same file:

- raw sqlite3 reading every row of the entries table (what any check must at least read);
- plain hashlib over the same rows: each row read and sha256 of its ``repr`` (reading and
  hashing every row, with no chain, no canonical form and no rules).

``verify(workers=2)`` and ``verify(workers=auto)`` (the CLI's default: min(cpu count, 4))
replay ranges of the chain in child processes; their ratio to ``verify()`` in one process
is printed too.

The ledger is built first (a mix of credits, holds, captures, debits and refunds, in batches:
most of the run). Run: ``.venv/bin/python benches/verify.py [--entries N] [--repeat R]``; with
an older checkout on ``PYTHONPATH`` it prints that version's figures (without ``since`` when
that version has none).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from imagine_billing.ledger import Ledger
from ledger_reads import build  # a sibling script: Python puts this folder on the path


def best(run: Callable[[], object], repeat: int) -> tuple[float, object]:
    """The shortest of ``repeat`` runs in seconds, and what the last run returned."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return min(times), result


def raw_scan(path: Path) -> int:
    with sqlite3.connect(path) as db:
        count = sum(1 for _ in db.execute("SELECT * FROM entries ORDER BY id"))
    db.close()
    return count


def raw_hash(path: Path) -> int:
    sha256 = hashlib.sha256
    with sqlite3.connect(path) as db:
        count = 0
        for row in db.execute("SELECT * FROM entries ORDER BY id"):
            sha256(repr(row).encode()).hexdigest()
            count += 1
    db.close()
    return count


def parallel(ledger: Ledger, rows: object, *, full: float, scan: float, hashed: float,
             repeat: int) -> None:
    """``verify(workers=2)`` and the CLI's ``--workers auto``, against the same baselines."""
    for label, workers in (("2", 2), ("auto", min(os.cpu_count() or 1, 4))):
        try:
            took, verified = best(lambda n=workers: ledger.verify(workers=n), repeat)
        except TypeError:
            print(f"  verify(workers={label})".ljust(33) + ": not in this version")
            return
        assert verified == rows
        name = f"  verify(workers={label}={workers})" if label == "auto" else \
            f"  verify(workers={label})"
        print(f"{name.ljust(33)}: {took:8.3f} s  ({took / scan:.2f}x raw scan, "
              f"{took / hashed:.2f}x plain hashlib, {took / full:.2f}x verify())")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=300_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ledger.db"
        seconds = build(path, args.entries)
        print(f"built {args.entries:,} entries in {seconds:.1f} s")
        with Ledger.open(path) as ledger:
            scan, rows = best(lambda: raw_scan(path), args.repeat)
            hashed, _ = best(lambda: raw_hash(path), args.repeat)
            full, verified = best(ledger.verify, args.repeat)
            assert verified == rows
            print(f"verify() over {rows:,} entries (best of {args.repeat})")
            print(f"  raw sqlite3 full scan          : {scan:8.3f} s")
            print(f"  plain hashlib over the rows    : {hashed:8.3f} s")
            print(f"  ledger.verify()                : {full:8.3f} s  ({full / scan:.2f}x raw "
                  f"scan, {full / hashed:.2f}x plain hashlib)")
            parallel(ledger, rows, full=full, scan=scan, hashed=hashed, repeat=args.repeat)
            anchor_id = rows * 99 // 100
            anchor = (anchor_id, ledger.get(anchor_id).hash)
            try:
                since, checked = best(lambda: ledger.verify(since=anchor), args.repeat)
            except TypeError:
                print("  verify(since=...)              : not in this version")
                return
            label = f"  verify(since=entry {anchor_id:,})".ljust(34)
            print(f"{label}: {since:8.3f} s  ({checked:,} entries checked; "
                  f"{since / full:.3f}x the full verify)")


if __name__ == "__main__":
    main()
