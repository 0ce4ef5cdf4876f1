from datetime import UTC, datetime, timedelta
from pathlib import Path

import imagine_billing as ib

Path("november.csv").write_text(
    "timestamp,style,count\n"
    "2026-11-01T09:00:00Z,flux-dev,4\n"
    "2026-11-01T10:30:00Z,anime,1\n"
    "2026-11-02T08:00:00Z,realistic,2\n"
    "2026-11-02T08:00:00Z,realistic,2\n", encoding="utf-8")

now = datetime(2026, 11, 3, tzinfo=UTC)  # a fixed clock, so that the figures stay the same
with ib.Ledger.open("history.db", clock=lambda: now) as ledger:
    ledger.credit(5000, key="opening", at=datetime(2026, 10, 1, tzinfo=UTC))
    done = ib.import_usage(ledger, ib.read_usage("november.csv"))
    print(done.written, done.replayed, done.tokens)
    again = ib.import_usage(ledger, ib.read_usage("november.csv"))  # nothing written
    print(again.written, again.replayed, ledger.verify())
    result = ib.forecast(ledger, window=timedelta(days=2))  # 65 on Nov 1, 20 on Nov 2
    print(f"burn {result.burn_per_day} tokens/day, runway {result.runway.days} days")
