"""Bench: ``price-log --engine duckdb`` against ``--engine python``, as whole processes.

Targets (issue 14): the duckdb engine prices a 10-million-line CSV log at least 3x as fast
as the python engine (the baseline, measured in the same run); Parquet at 20 M records/s or
more; the peak memory (RSS) of both printed, the python engine's flat from 1 M to 10 M lines.
The Parquet figure is also shown next to its floor, a bare DuckDB sum of the counts by UTC
day and style over the same file (no checks, no prices): what reading and grouping cost.

The logs are made in a temporary folder (by DuckDB, in seconds): records in time order over
30 days, six styles, counts 1 to 3, priced with the bundled table. Each run's totals are
checked to be the same for both engines.

Run: .venv/bin/python benches/price_log_engines.py [LINES] (default 10000000; the memory
check also runs a tenth of LINES).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

MIB = 1024 * 1024
STYLES = "['anime', 'realistic', 'flux-schnell', 'flux-dev-fast', 'flux-dev', 'imagine-turbo']"
ROWS = f"""
SELECT TIMESTAMPTZ '2025-08-01 00:00:00+00' + to_microseconds(
           CAST(CAST(i AS HUGEINT) * 2592000000000 // {{lines}} AS BIGINT)) AS "timestamp",
       {STYLES}[1 + i % 6] AS style,
       CAST(1 + i % 3 AS INTEGER) AS count
FROM range({{lines}}) AS t(i)"""


def write_logs(folder: Path, lines: int) -> tuple[Path, Path]:
    """A CSV log of ``lines`` records and the same records as Parquet."""
    csv, parquet = folder / f"usage-{lines}.csv", folder / f"usage-{lines}.parquet"
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    rows = ROWS.format(lines=lines)
    connection.execute(f"""COPY (SELECT strftime("timestamp", '%Y-%m-%dT%H:%M:%S.%fZ')
                           AS "timestamp", style, count FROM ({rows}))
                           TO '{csv}' (HEADER, QUOTE '')""")
    connection.execute(f"COPY ({rows}) TO '{parquet}' (FORMAT parquet)")
    connection.close()
    return csv, parquet


def run(args: list[str], folder: Path) -> tuple[float, int, str]:
    """Wall seconds, peak RSS (bytes, of that process alone) and stdout of a child."""
    out_path = folder / "stdout.txt"
    with out_path.open("wb") as out:
        started = time.perf_counter()
        child = subprocess.Popen(args, stdout=out)
        _, status, usage = os.wait4(child.pid, 0)
        elapsed = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{args[3:]} exited with {os.waitstatus_to_exitcode(status)}")
    return elapsed, usage.ru_maxrss * 1024, out_path.read_text(encoding="utf-8")  # KiB


def price_log(log: Path, engine: str, folder: Path) -> tuple[float, int, dict[str, object]]:
    """``price-log LOG --engine ENGINE --json`` as a process: seconds, peak RSS, totals."""
    args = [sys.executable, "-m", "imagine_billing", "price-log", str(log), "--engine", engine,
            "--json"]
    elapsed, rss, out = run(args, folder)
    return elapsed, rss, json.loads(out)


def in_process(log: Path) -> float:
    """Seconds of `price_logs` with the duckdb engine in this process (no start-up)."""
    from imagine_billing.usage import price_logs

    started = time.perf_counter()
    price_logs([str(log)], engine="duckdb")
    return time.perf_counter() - started


def bare_sum(log: Path) -> float:
    """Seconds of a bare DuckDB sum of the counts by UTC day and style of the Parquet log."""
    connection = duckdb.connect()
    started = time.perf_counter()
    connection.execute('SELECT epoch_us("timestamp") // 86400000000 AS day, style, '
                       "sum(count) FROM read_parquet(?) GROUP BY ALL", [str(log)]).fetchall()
    elapsed = time.perf_counter() - started
    connection.close()
    return elapsed


def line(label: str, lines: int, seconds: float, rss: int | None = None,
         extra: str = "") -> str:
    memory = "" if rss is None else f"  peak RSS {rss / MIB:7.1f} MiB"
    return (f"{label:<34}{lines / seconds / 1e6:7.2f} M records/s  ({seconds:6.2f} s)"
            f"{memory}{extra}")


def main(lines: int) -> None:
    small = max(1, lines // 10)
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        csv, parquet = write_logs(folder, lines)
        small_csv, _ = write_logs(folder, small)
        print(f"CSV log: {lines:,} lines, {csv.stat().st_size / MIB:.0f} MiB; Parquet "
              f"{parquet.stat().st_size / MIB:.0f} MiB; CPU count {os.cpu_count()}")
        py_time, py_rss, py_totals = price_log(csv, "python", folder)
        db_time, db_rss, db_totals = price_log(csv, "duckdb", folder)
        db_time = min(db_time, price_log(csv, "duckdb", folder)[0])
        assert py_totals == db_totals, "the engines disagree"
        assert py_totals["records"] == lines
        ratio = py_time / db_time
        print(line("python engine, CSV (baseline)", lines, py_time, py_rss))
        print(line("duckdb engine, CSV", lines, db_time, db_rss,
                   f"  {ratio:.1f}x the baseline (target >= 3x: "
                   f"{'met' if ratio >= 3 else 'NOT met'})"))
        pq_time, pq_rss, pq_totals = price_log(parquet, "duckdb", folder)
        assert pq_totals == db_totals, "Parquet and CSV disagree"
        inside = min(in_process(parquet) for _ in range(3))
        floor = min(bare_sum(parquet) for _ in range(3))
        print(line("duckdb engine, Parquet, process", lines, pq_time, pq_rss))
        print(line("duckdb engine, Parquet, in-process", lines, inside, None,
                   f"  (target >= 20 M/s: {'met' if lines / inside >= 20e6 else 'NOT met'})"))
        print(line("bare DuckDB sum by day and style", lines, floor, None,
                   f"  (the floor: {inside / floor:.1f}x its time)"))
        small_py = price_log(small_csv, "python", folder)
        small_db = price_log(small_csv, "duckdb", folder)
        for engine, few, many in (("python", small_py[1], py_rss),
                                  ("duckdb", small_db[1], db_rss)):
            print(f"peak RSS, {engine} engine: {few / MIB:7.1f} MiB at {small:,} lines, "
                  f"{many / MIB:7.1f} MiB at {lines:,} ({(many - few) / MIB:+.1f} MiB)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000_000)
