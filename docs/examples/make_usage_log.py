"""Write a usage log of N records (JSON lines, gzip-compressed) for the pricing-logs guide.

Usage: python make_usage_log.py N OUT.jsonl.gz [--with-bad-lines]. Deterministic: the same
arguments give the same file. The records span 2026-12-30 to 2027-01-02, across the change
from price table 1.0.0 to 1.1.0 of docs/examples/prices/. With --with-bad-lines, every
20,000th record names a misspelt style and every 30,000th has a time without a zone.
"""

import gzip
import json
import random
import sys
from datetime import UTC, datetime, timedelta

STYLES = ["imagine-turbo"] * 6 + ["anime"] * 2 + ["flux-dev", "realistic"]
START = datetime(2026, 12, 30, tzinfo=UTC)  # 2 days under 1.0.0, then 2 under 1.1.0
DAYS = 4

count, out, bad = int(sys.argv[1]), sys.argv[2], "--with-bad-lines" in sys.argv[3:]
rng = random.Random(7)
with gzip.open(out, "wt", encoding="utf-8") as log:
    for n in range(1, count + 1):
        at = START + timedelta(seconds=rng.randrange(DAYS * 86_400))
        record = {"timestamp": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                  "style": rng.choice(STYLES), "count": rng.randint(1, 4)}
        if bad and n % 20_000 == 0:
            record["style"] = "flux-dv"
        if bad and n % 30_000 == 0:
            record["timestamp"] = at.strftime("%Y-%m-%dT%H:%M:%S")
        log.write(json.dumps(record) + "\n")
