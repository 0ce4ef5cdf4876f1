"""Bench: estimate([Call(style)], table) against a plain function doing a dict lookup.

Target: under 1 microsecond (median) for a one-call estimate. Prints the median of several
repeats of each, in nanoseconds per estimate, and the ratio to the baseline measured in the
same run: with the call list built beforehand, with the Call built in the statement, with
its lines read too (an estimate builds them when first read), and per call for a list of
100 calls.

Run: .venv/bin/python benches/estimate.py
"""

from __future__ import annotations

import statistics
import timeit

import imagine_billing as ib

PRICES = {"anime": 5, "realistic": 5, "flux-schnell": 5, "flux-dev-fast": 5, "flux-dev": 15,
          "imagine-turbo": 1}
STYLES = list(PRICES)


def plain_cost(style: str, count: int = 1) -> int:
    """The baseline: a dict lookup times a count, in a function."""
    return PRICES[style] * count


def median_ns(statement: str, namespace: dict[str, object], number: int,
              repeat: int = 7) -> float:
    """Median nanoseconds per execution of ``statement``."""
    times = timeit.repeat(statement, globals=namespace, number=number, repeat=repeat)
    return statistics.median(times) / number * 1e9


def main() -> None:
    table = ib.load_price_table()
    one = [ib.Call("flux-dev")]
    hundred = [ib.Call(STYLES[i % len(STYLES)], 1 + i % 4) for i in range(100)]
    assert ib.estimate(one, table).total == plain_cost("flux-dev")
    assert ib.estimate(hundred, table).total == sum(plain_cost(c.style or "", c.count)
                                                    for c in hundred)
    namespace: dict[str, object] = {"table": table, "plain_cost": plain_cost, "one": one,
                                    "hundred": hundred, "estimate": ib.estimate,
                                    "Call": ib.Call}
    rows: dict[str, list[float]] = {"base": [], "built": [], "inline": [], "lines": [],
                                    "hundred": []}
    # Interleave the runs so that machine noise hits all of them alike.
    for _ in range(3):
        rows["base"].append(median_ns("plain_cost('flux-dev')", namespace, 500_000))
        rows["built"].append(median_ns("estimate(one, table)", namespace, 200_000))
        rows["inline"].append(median_ns("estimate([Call('flux-dev')], table)", namespace,
                                        200_000))
        rows["lines"].append(median_ns("estimate([Call('flux-dev')], table).lines", namespace,
                                       200_000))
        rows["hundred"].append(median_ns("estimate(hundred, table)", namespace, 2_000) / 100)
    base, built, inline, lines, per_call = (min(rows[k]) for k in ("base", "built", "inline",
                                                                   "lines", "hundred"))
    print(f"baseline dict-lookup function           {base:7.1f} ns")
    print(f"estimate(calls, table), 1 call prebuilt {built:7.1f} ns  ratio {built / base:5.1f}x"
          f"  (target < 1000 ns: {'met' if built < 1000 else 'NOT met'})")
    print(f"estimate([Call(style)], table)          {inline:7.1f} ns  ratio {inline / base:5.1f}x"
          f"  (Call built too)")
    print(f"... and its lines read                  {lines:7.1f} ns  ratio {lines / base:5.1f}x")
    print(f"estimate of 100 calls, per call         {per_call:7.1f} ns  "
          f"ratio {per_call / base:5.1f}x")


if __name__ == "__main__":
    main()
