"""Bench: price_usage over in-memory records, and its memory as the record count grows.

Targets: at least 5 million records/s over 10 million records; the same peak memory (within
10 MiB) for 100 thousand and for 10 million records. The baseline, measured in the same run,
is a plain loop summing ``PRICES[style] * count`` over the same records (no days, no
versions, no checks). Records are (style, count, timestamp) tuples, in time order over 30
days, priced with a book of two versions (the second takes effect on day 15).

Memory is measured in fresh subprocesses, with tracemalloc (Python allocations during the
pass) and ru_maxrss (the process's peak resident set).

Run: .venv/bin/python benches/price_usage.py
"""

from __future__ import annotations

import itertools
import json
import resource
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import imagine_billing as ib

STYLES = ["anime", "realistic", "flux-schnell", "flux-dev-fast", "flux-dev", "imagine-turbo"]
PRICES = {"anime": 5, "realistic": 5, "flux-schnell": 5, "flux-dev-fast": 5, "flux-dev": 15,
          "imagine-turbo": 1}
START = datetime(2025, 8, 1, tzinfo=UTC)
POOL_SIZE = 100_000
MIB = 1024 * 1024


def book() -> ib.PriceBook:
    """The bundled table and a 1.1.0 with flux-dev at 20 from day 15."""
    first = ib.load_price_table()
    second = first.with_overrides(
        {"effective_from": "2025-08-15T00:00:00Z", "styles": {"flux-dev": {"cost": 20}}},
        version="1.1.0",
    )
    return ib.PriceBook([first, second])


def records(count: int) -> Iterator[tuple[str, int, datetime]]:
    """``count`` records, streamed: a pool of 100 000 in time order over 30 days, repeated."""
    step = timedelta(days=30) / POOL_SIZE
    pool = [(STYLES[i % len(STYLES)], 1 + i % 3, START + step * i) for i in range(POOL_SIZE)]
    return itertools.islice(itertools.cycle(pool), count)


def baseline(stream: Iterator[tuple[str, int, datetime]]) -> int:
    """The plain loop: a dict lookup and a multiplication per record."""
    prices = PRICES
    total = 0
    for style, count, _ in stream:
        total += prices[style] * count
    return total


def child(count: int) -> None:
    """In a fresh process: the memory of one pass over ``count`` records, as JSON."""
    prices = book()
    stream = records(count)
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    totals = ib.price_usage(stream, prices)
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    assert totals.records == count
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    print(json.dumps({"count": count, "traced_peak": peak, "max_rss": rss}))


def measure(count: int) -> dict[str, int]:
    """Run `child` in a fresh interpreter."""
    done = subprocess.run([sys.executable, __file__, "--child", str(count)],
                          capture_output=True, text=True, check=True)
    result: dict[str, int] = json.loads(done.stdout)
    return result


def main() -> None:
    prices = book()
    count = 10_000_000
    best_ours = best_base = float("inf")
    for _ in range(2):
        started = time.perf_counter()
        expected = baseline(records(count))
        best_base = min(best_base, time.perf_counter() - started)
        started = time.perf_counter()
        totals = ib.price_usage(records(count), prices)
        best_ours = min(best_ours, time.perf_counter() - started)
    assert totals.records == count
    # Check the figure against the baseline (the baseline knows one version only: add the
    # five tokens more of each flux-dev call from day 15).
    assert totals.total >= expected
    ours_rate, base_rate = count / best_ours / 1e6, count / best_base / 1e6
    print(f"records                         {count:,}")
    print(f"baseline plain loop             {base_rate:6.2f} M records/s  ({best_base:.2f} s)")
    print(f"price_usage                     {ours_rate:6.2f} M records/s  ({best_ours:.2f} s)  "
          f"ratio {best_ours / best_base:.2f}x the baseline's time  "
          f"(target >= 5 M/s: {'met' if ours_rate >= 5 else 'NOT met'})")
    small, large = measure(100_000), measure(count)
    growth = (large["traced_peak"] - small["traced_peak"]) / MIB
    for row in (small, large):
        traced, rss = row["traced_peak"] / MIB, row["max_rss"] / MIB
        print(f"memory, {row['count']:>10,} records  traced peak {traced:6.2f} MiB"
              f"  max RSS {rss:6.1f} MiB")
    print(f"peak growth from 100k to 10M    {growth:+6.2f} MiB (traced), "
          f"{(large['max_rss'] - small['max_rss']) / MIB:+6.1f} MiB (RSS)  "
          f"(target within 10 MiB: {'met' if abs(growth) <= 10 else 'NOT met'})")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child(int(sys.argv[2]))
    else:
        main()
