"""ledger import-usage of several logs: one merged stream, as price-log prices them."""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from imagine_billing.cli import main

START = datetime(2026, 3, 1, tzinfo=UTC)

records = st.lists(
    st.tuples(st.integers(0, 4), st.sampled_from(["anime", "flux-dev", "realistic"]),
              st.integers(1, 3), st.integers(0, 2)),
    min_size=1, max_size=12)
"""``(minute, style, count, file)``: few minutes and styles, so identical records are
common, in up to three files."""


def cli(*argv: str) -> dict[str, Any]:
    """``main(argv + --json)``'s document; it must exit 0."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert 0 == main([*argv, "--json"])
    document: dict[str, Any] = json.loads(out.getvalue())
    return document


# Each example writes a durable ledger and runs three commands (about 0.2 s): at most 150
# examples (the ci profile's 400 would take 90 s of the suite's time).
@settings(max_examples=min(150, settings().max_examples))
@given(records=records, order=st.permutations(range(3)))
def test_import_posts_the_price_log_total(records: list[tuple[int, str, int, int]],
                                          order: list[int]) -> None:
    """A log split at random in 1-3 files (each in time order), imported in any order of
    the files: the debits are exactly price-log's total; importing again writes nothing."""
    with tempfile.TemporaryDirectory() as folder:
        lines: list[list[str]] = [[], [], []]
        for minute, style, count, file in sorted(records):
            at = START + timedelta(minutes=minute)
            lines[file].append(f"{at:%Y-%m-%dT%H:%M:%SZ},{style},{count}\n")
        paths = []
        for file in order:
            if lines[file]:
                path = Path(folder, f"s{file}.csv")
                path.write_text("timestamp,style,count\n" + "".join(lines[file]),
                                encoding="utf-8")
                paths.append(str(path))
        db = str(Path(folder, "l.db"))
        cli("ledger", "--db", db, "credit", "100000", "--key", "opening", "--at", "2026-01-01")
        total = cli("price-log", *paths)["total"]
        done = cli("ledger", "--db", db, "import-usage", *paths)
        assert (len(records), total, 100_000 - total) == (
            done["written"], done["tokens"], done["balance"]["posted"])
        again = cli("ledger", "--db", db, "import-usage", *reversed(paths))
        assert (0, len(records), 100_000 - total) == (
            again["written"], again["replayed"], again["balance"]["posted"])
