"""Bench: validating a price document full of bad references against a valid one of the
same size.

Issue 10 item 15: "did you mean" suggestions compared every bad reference with every known
name, so a 250 KB document with 2,000 bad references took 18 s (and its messages listed
every name, megabytes of them). Target: well under a second, a small multiple of validating
the same document with the references correct. Prints the median seconds of each and the
ratio, measured in the same run.

Run: .venv/bin/python benches/validate.py
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

import imagine_billing as ib
from imagine_billing.pricing.loading import bundled_path

STYLES = 2_000


def document(typo: str) -> dict[str, Any]:
    """The bundled document plus STYLES styles, each of its own operation whose default
    style is the style's name followed by ``typo`` ("" for the valid document)."""
    doc: dict[str, Any] = json.loads(Path(bundled_path()).read_text(encoding="utf-8"))
    for index in range(STYLES):
        name = f"style-{index:05}"
        doc["operations"][f"op-{index:05}"] = {
            "name": f"Op {index}", "method": "POST", "path": f"/v2/bench/{index}",
            "cost": None, "default_style": name + typo}
        doc["styles"][name] = {"name": f"Style {index}", "cost": 1 + index % 20,
                               "operation": f"op-{index:05}"}
    return doc


def seconds(doc: dict[str, Any], repeat: int = 5) -> tuple[float, int]:
    """Median seconds to load (or refuse) ``doc``, and how many problems it has."""
    times, problems = [], 0
    for _ in range(repeat):
        start = time.perf_counter()
        try:
            ib.load_price_table(doc)
        except ib.PriceSchemaError as error:
            problems = len(error.problems)
        times.append(time.perf_counter() - start)
    return statistics.median(times), problems


def main() -> None:
    good, bad = document(""), document("x")
    size = len(json.dumps(bad)) // 1000
    baseline, none = seconds(good)
    measured, problems = seconds(bad)
    assert none == 0
    assert problems == STYLES
    print(f"valid document ({size} KB, {STYLES} styles): {baseline:.3f} s")
    print(f"{problems} bad references ({size} KB):        {measured:.3f} s "
          f"({measured / baseline:.2f}x the valid one)")


if __name__ == "__main__":
    main()
