"""Recompute the hash chain of a ledger export (JSON lines) with the standard library only."""

import hashlib
import json
import sys
from datetime import UTC, datetime


def canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def micros(text: str | None) -> int | None:
    if text is None:
        return None
    when = datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
    delta = when - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


previous = "0" * 64
with open(sys.argv[1], encoding="utf-8") as lines:
    for line in lines:
        e = json.loads(line)
        row = [previous, e["id"], e["kind"], e["key"], e["tokens"], micros(e["at"]), e["ref"],
               e["memo"], canonical(e["tags"]) if e["tags"] else "{}",
               canonical(e["styles"]) if e["styles"] else "[]", e["table_version"],
               e["table_digest"], micros(e["expires_at"]), e["fingerprint"]]
        digest = hashlib.sha256(canonical(row).encode("utf-8")).hexdigest()
        if digest != e["hash"]:
            sys.exit(f"entry {e['id']}: hash mismatch")
        previous = digest
print(f"ok: head {e['id']}:{previous}")
