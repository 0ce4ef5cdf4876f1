"""Bench: forecast and budget_status over a ledger of 1 million entries; holds under budgets;
plans with huge weights.

Targets: `forecast` and `budget_status` under 1 s each on 1,000,000 entries; a hold with
three hard budgets in scope at most 2x a hold with none. Also shown: `budget_status` a day
in the past (it reads the entries written since), and `plan` with weights of ten million
against `max_calls` (the fill is arithmetic: no growth with the budget or the weights).
Prints each figure next to a baseline measured in the same run: a raw ``SELECT SUM(tokens)
FROM entries`` over the whole file for the reads, the same holds on a ledger without budgets
for the writes, and `max_calls` for the plans.

The 1M-entry ledger is built once with `Ledger.batch` (about a minute) and kept in a
temporary directory for the run. Two budgets: "shop" (a month, scope project=shop: half of
the entries fall in the month, a third of those in the scope) and "everything" (total, no
scope: every entry is summed). Run: .venv/bin/python benches/planner.py [ENTRIES]
"""

from __future__ import annotations

import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import imagine_billing as ib

NOW = datetime(2026, 3, 31, 23, tzinfo=UTC)
DAYS = 60
"""The entries span the 60 days before NOW: March (the month of NOW) holds half of them."""


def best_of(run: Callable[[], object], repeat: int = 3) -> float:
    """The fastest of ``repeat`` runs, in seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def build(path: Path, entries: int) -> None:
    """A ledger of ``entries`` entries over the DAYS days before NOW: debits, holds and
    captures, tagged by project, and one budget per project."""
    clock = {"now": NOW - timedelta(days=DAYS)}
    step = timedelta(days=DAYS) / entries
    projects = ("shop", "site", "app")
    with ib.Ledger.open(path, clock=lambda: clock["now"], durable=False) as ledger:
        ledger.credit(10**12, key="credit")
        ledger.add_budget(ib.Budget("shop", 10**9, "month", {"project": "shop"}))
        ledger.add_budget(ib.Budget("everything", 10**12, "total"))
        written = 1
        batch = 20_000
        while written < entries:
            with ledger.batch():
                stop = min(entries, written + batch)
                while written < stop:
                    clock["now"] += step
                    tags = {"project": projects[written % 3]}
                    if written % 4 == 3 and written + 1 < stop:
                        hold = ledger.hold(15, key=f"h{written}", tags=tags)
                        clock["now"] += step
                        ledger.capture(hold, 5 + written % 11)
                        written += 2
                    else:
                        ledger.debit(1 + written % 15, key=f"d{written}", tags=tags)
                        written += 1
            print(f"\r  building: {written:,} entries", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)


def reads(path: Path) -> None:
    db = sqlite3.connect(path)
    count = db.execute("SELECT COUNT(*) FROM entries").fetchone()[0]
    with ib.Ledger.open(path, clock=lambda: NOW) as ledger:
        baseline = best_of(lambda: db.execute("SELECT SUM(tokens) FROM entries").fetchone())
        forecast = best_of(lambda: ib.forecast(ledger, now=NOW))
        status = best_of(lambda: ib.budget_status(ledger, "shop", NOW))
        total = best_of(lambda: ib.budget_status(ledger, "everything", NOW))
        past = best_of(lambda: ib.budget_status(ledger, "shop", NOW - timedelta(days=1)),
                       repeat=1)
        result = ib.forecast(ledger, now=NOW)
    db.close()
    print(f"ledger of {count:,} entries over {DAYS} days")
    print(f"baseline SELECT SUM(tokens) FROM entries  {baseline * 1000:8.1f} ms")
    for name, seconds in (("forecast(ledger, now)", forecast),
                          ("budget_status, month, scope project=shop", status),
                          ("budget_status, total, every entry", total)):
        verdict = "met" if seconds < 1 else "NOT met"
        print(f"{name:<41} {seconds * 1000:8.1f} ms  ratio {seconds / baseline:5.2f}x"
              f"  (target < 1000 ms: {verdict})")
    print(f"  (forecast: burn {float(result.burn_per_day):,.0f}/day over {result.days} days)")
    print(f"budget_status a day in the past (month)   {past * 1000:8.1f} ms  ratio "
          f"{past / baseline:5.2f}x  (no target: reads the day's entries)")


def plans() -> None:
    table = ib.load_price_table()
    baseline = best_of(lambda: ib.max_calls(10**7 - 1, "imagine-turbo", table), repeat=20)
    cases = (("plan(10**7-1, turbo 10**7 : flux-dev 1)", 10**7 - 1,
              {"imagine-turbo": 10**7, "flux-dev": 1}),
             ("plan(10**8, turbo 10**8+1)", 10**8, {"imagine-turbo": 10**8 + 1}),
             ("plan(2**53-1, four styles, weights to 2**53-1)", 2**53 - 1,
              {"imagine-turbo": 2**53 - 1, "flux-dev": 2**53 - 3, "anime": 999_983,
               "realistic": 7}))
    print(f"baseline max_calls(10**7-1, turbo)        {baseline * 1e6:8.1f} us")
    for name, tokens, mix in cases:
        seconds = best_of(lambda tokens=tokens, mix=mix: ib.plan(tokens, mix, table), repeat=20)
        print(f"{name:<48} {seconds * 1e6:8.1f} us  ratio {seconds / baseline:7.1f}x")


def holds(directory: Path, durable: bool, count: int = 1500) -> None:
    """Holds, then debits (which also check whether they cross an alert threshold), with no
    budget and with three hard budgets in scope."""
    def run(budgets: int, name: str, write: str) -> float:
        clock = {"now": NOW}
        with ib.Ledger.open(directory / f"{name}.db", clock=lambda: clock["now"],
                            durable=durable) as ledger:
            ledger.credit(10**9, key="credit")
            scopes = [None, {"project": "shop"}, {"project": "shop", "env": "prod"}]
            for index in range(budgets):
                ledger.add_budget(ib.Budget(f"b{index}", 10**8, ("day", "month", "total")[
                    index % 3], scopes[index % 3], hard=True))
            tags = {"project": "shop", "env": "prod"}
            call = ledger.hold if write == "hold" else ledger.debit
            start = time.perf_counter()
            for index in range(count):
                call(1, key=f"{name}-{index}", tags=tags)
            return (time.perf_counter() - start) / count

    kind = "durable" if durable else "durable=False"
    for write in ("hold", "debit"):
        rows: dict[str, list[float]] = {"none": [], "three": []}
        for round_ in range(3):  # interleaved, so that machine noise hits both alike
            rows["none"].append(run(0, f"none-{kind}-{write}-{round_}", write))
            rows["three"].append(run(3, f"three-{kind}-{write}-{round_}", write))
        base, three = statistics.median(rows["none"]), statistics.median(rows["three"])
        verdict = "met" if three <= 2 * base else "NOT met"
        print(f"{write}, no budget ({kind + ' SQLite)':<24} {base * 1e6:8.1f} us")
        print(f"{write}, three hard budgets in scope{' ' * (15 - len(write))}"
              f"{three * 1e6:8.1f} us  ratio {three / base:5.2f}x  (target <= 2x: {verdict})")


def main() -> None:
    plans()
    entries = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        start = time.perf_counter()
        build(directory / "big.db", entries)
        print(f"(built in {time.perf_counter() - start:.0f} s)")
        reads(directory / "big.db")
        holds(directory, durable=True)
        holds(directory, durable=False, count=5000)


if __name__ == "__main__":
    main()
