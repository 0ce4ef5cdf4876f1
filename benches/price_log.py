"""Bench: ``imagine-billing price-log`` over a 1-million-line CSV, as a whole process.

Reports records/s and the peak RSS of the process, next to a baseline measured in the same
run: a plain Python process that reads the same file with ``csv.reader`` and sums
``PRICES[style] * int(count)`` (no timestamps parsed, no checks, no versions).

Run: .venv/bin/python benches/price_log.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

LINES = 1_000_000
STYLES = ["anime", "realistic", "flux-schnell", "flux-dev-fast", "flux-dev", "imagine-turbo"]
MIB = 1024 * 1024

BASELINE = """
import csv, sys
PRICES = {"anime": 5, "realistic": 5, "flux-schnell": 5, "flux-dev-fast": 5, "flux-dev": 15,
          "imagine-turbo": 1}
total = 0
with open(sys.argv[1], newline="", encoding="utf-8") as file:
    rows = csv.reader(file)
    next(rows)
    for row in rows:
        total += PRICES[row[1]] * int(row[2])
print(total)
"""


def write_log(path: Path) -> None:
    """A CSV usage log of `LINES` records over 30 days, in time order."""
    step = timedelta(days=30) / LINES
    start = datetime(2025, 8, 1, tzinfo=UTC)
    with path.open("w", encoding="utf-8", newline="") as file:
        file.write("timestamp,style,count\n")
        for i in range(LINES):
            when = (start + step * i).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            file.write(f"{when},{STYLES[i % len(STYLES)]},{1 + i % 3}\n")


def run(args: list[str], folder: str) -> tuple[float, int, str]:
    """Wall seconds, peak RSS (bytes, of that process alone) and stdout of a child."""
    out_path = Path(folder) / "stdout.txt"
    with out_path.open("wb") as out:
        started = time.perf_counter()
        child = subprocess.Popen(args, stdout=out)
        _, status, usage = os.wait4(child.pid, 0)
        elapsed = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"{args[:4]} exited with {child.returncode}")
    return elapsed, usage.ru_maxrss * 1024, out_path.read_text(encoding="utf-8")  # KiB


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        log = Path(folder) / "usage.csv"
        write_log(log)
        size = log.stat().st_size
        base_args = [sys.executable, "-c", BASELINE, str(log)]
        ours_args = [sys.executable, "-m", "imagine_billing", "price-log", str(log), "--json"]
        base_time, base_rss, _ = run(base_args, folder)
        ours_time, ours_rss, out = run(ours_args, folder)
        base_time = min(base_time, run(base_args, folder)[0])
        ours_time = min(ours_time, run(ours_args, folder)[0])
        assert f'"records": {LINES}' in out
        print(f"file                           {LINES:,} lines, {size / MIB:.1f} MiB")
        print(f"baseline csv.reader process    {LINES / base_time / 1e3:7.0f} k records/s  "
              f"({base_time:.2f} s)  peak RSS {base_rss / MIB:6.1f} MiB")
        print(f"imagine-billing price-log      {LINES / ours_time / 1e3:7.0f} k records/s  "
              f"({ours_time:.2f} s)  peak RSS {ours_rss / MIB:6.1f} MiB  "
              f"ratio {ours_time / base_time:.2f}x the baseline's time")
        print(f"(CPU count {os.cpu_count()}; both timings include interpreter start-up)")


if __name__ == "__main__":
    main()
