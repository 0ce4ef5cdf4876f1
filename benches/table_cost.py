"""Bench: PriceTable.cost(style) against a plain function doing the same dict lookup.

Target: at most 1.5x the baseline, measured in the same run. Prints the median of several
repeats of each, in nanoseconds per call, and the ratio.

Run: .venv/bin/python benches/table_cost.py
"""

from __future__ import annotations

import statistics
import timeit

import imagine_billing as ib

PRICES = {
    "anime": 5,
    "realistic": 5,
    "flux-schnell": 5,
    "flux-dev-fast": 5,
    "flux-dev": 15,
    "imagine-turbo": 1,
}


def plain_cost(style: str, count: int = 1) -> int:
    """The baseline: a dict lookup times a count, in a function."""
    return PRICES[style] * count


def median_ns(
    statement: str, namespace: dict[str, object], number: int = 1_000_000, repeat: int = 9
) -> float:
    """Median nanoseconds per execution of ``statement``."""
    times = timeit.repeat(statement, globals=namespace, number=number, repeat=repeat)
    return statistics.median(times) / number * 1e9


def main() -> None:
    table = ib.load_price_table()
    assert table.cost("flux-dev") == plain_cost("flux-dev")
    namespace: dict[str, object] = {"table": table, "plain_cost": plain_cost}
    # Interleave the two so that machine noise hits both alike.
    base, ours, base4, ours4 = [], [], [], []
    for _ in range(3):
        base.append(median_ns("plain_cost('flux-dev')", namespace))
        ours.append(median_ns("table.cost('flux-dev')", namespace))
        base4.append(median_ns("plain_cost('flux-dev', 4)", namespace))
        ours4.append(median_ns("table.cost('flux-dev', 4)", namespace))
    b, o = min(base), min(ours)
    b4, o4 = min(base4), min(ours4)
    print(f"baseline dict lookup          {b:7.1f} ns/call  ({1e3 / b:5.1f} M/s)")
    print(
        f"PriceTable.cost(style)        {o:7.1f} ns/call  ({1e3 / o:5.1f} M/s)  "
        f"ratio {o / b:.2f}x (target <= 1.5x)"
    )
    print(f"baseline dict lookup, count=4 {b4:7.1f} ns/call")
    print(f"PriceTable.cost(style, 4)     {o4:7.1f} ns/call  ratio {o4 / b4:.2f}x")


if __name__ == "__main__":
    main()
