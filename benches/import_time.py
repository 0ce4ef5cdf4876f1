"""Bench: a whole process pricing with the bundled table, against `import attrs`.

    python -c "import imagine_billing as ib; ib.load_price_table().cost('flux-dev')"
    python -c "import attrs"

Target: at most 1.5x, same run. Runs each command alternately many times and prints the
median wall time of each and the ratio, plus which heavy modules the first one imports.

Run: .venv/bin/python benches/import_time.py [runs]
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

OURS = "import imagine_billing as ib; ib.load_price_table().cost('flux-dev')"
BASE = "import attrs"
EMPTY = "pass"


def wall(code: str) -> float:
    """Seconds for one fresh interpreter running ``code``."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - start


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    for code in (OURS, BASE, EMPTY):  # warm the bytecode caches
        wall(code)
    samples: dict[str, list[float]] = {OURS: [], BASE: [], EMPTY: []}
    for _ in range(runs):
        for code, times in samples.items():
            times.append(wall(code))
    ours, base, empty = (statistics.median(samples[c]) * 1e3 for c in (OURS, BASE, EMPTY))
    print(f"python -c 'pass'                          {empty:6.1f} ms (median of {runs})")
    print(f"python -c 'import attrs'                  {base:6.1f} ms")
    print(
        f"python -c 'import imagine_billing; cost'  {ours:6.1f} ms  "
        f"ratio {ours / base:.2f}x (target <= 1.5x)"
    )
    heavy = subprocess.run(
        [
            sys.executable,
            "-c",
            OURS + "; import sys; print(sorted(m for m in "
            "('jsonschema', 'sqlite3', 'decimal', 'csv', 'httpx', 'difflib') "
            "if m in sys.modules))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    print(f"heavy modules imported: {heavy}")


if __name__ == "__main__":
    main()
