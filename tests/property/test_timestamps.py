"""Every timestamp entry point, fed any text: a time, or only the error it documents.

One reader (`imagine_billing._checks.rfc3339`) serves price documents, usage logs, ledger
imports and the command line's ``--at/--since/--until/--now``. Earlier fuzzing drew whole
strings and missed ``2025-07-02T10:00:Z`` (an `IndexError`): here most texts are valid
timestamps with one character changed, dropped or added, which is where such bugs live.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import tempfile
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from hypothesis import example, given
from hypothesis import strategies as st

import imagine_billing as ib
from imagine_billing._checks import rfc3339
from imagine_billing.cli.arguments import instant
from imagine_billing.ledger.model import Entry

ALPHABET = "0123456789-:T.Z+ tz,\x00é٣"
"""What a near miss is made of: the characters of a timestamp, and some that are not."""

valid = st.builds(
    lambda when, fraction, zone: when.strftime("%Y-%m-%dT%H:%M:%S") + fraction + zone,
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)),
    st.sampled_from(["", ".5", ".123456", ".1234567", "."]),
    st.sampled_from(["Z", "z", "+01:00", "-23:59", "+24:00", "+0100", "", "+01"]),
)


@st.composite
def near_misses(draw: st.DrawFn) -> str:
    """A timestamp with a few characters replaced, removed or inserted."""
    text = list(draw(valid))
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(text)))
        action = draw(st.sampled_from(["replace", "remove", "insert"]))
        char = draw(st.sampled_from(ALPHABET))
        if action == "insert" or at == len(text):
            text.insert(at, char)
        elif action == "remove":
            del text[at]
        else:
            text[at] = char
    return "".join(text)


texts = near_misses() | valid | st.text(max_size=40)


@given(texts)
@example("2025-07-02T10:00:Z")
@example("2025-07-02T10:00:00.Z")
@example("2025-07-02T24:00:00Z")
@example("0001-01-01T00:00:00+01:00")
@example("9999-12-31T23:59:59-01:00")
def test_rfc3339_gives_a_time_or_none(text: str) -> None:
    when = rfc3339(text)
    assert when is None or isinstance(when, datetime)
    if when is not None:
        # What it accepts is RFC 3339: date, "T", time with seconds, then the zone if any.
        assert text[10] in "Tt"
        assert text[13] == text[16] == ":"
        assert text[:4] == f"{when.year:04d}"
        assert int(text[17:19]) == when.second


@given(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30),
                    timezones=st.just(UTC)),
       st.integers(-23 * 60 - 59, 23 * 60 + 59))
def test_rfc3339_reads_back_what_it_names(when: datetime, minutes: int) -> None:
    local = when.astimezone(timezone(timedelta(minutes=minutes)))
    assert rfc3339(local.isoformat()) == when
    assert rfc3339(when.isoformat().replace("+00:00", "Z")) == when


@given(texts)
@example("2025-07-02T10:00:Z")
@example("0001-01-01T00:00:00+01:00")
def test_price_documents(text: str) -> None:
    document = ib.load_price_table().to_dict()
    document["effective_from"] = text
    try:
        table = ib.load_price_table(document)
    except ib.PriceSchemaError as error:
        assert "/effective_from" in [problem.path for problem in error.problems]
    else:
        assert table.effective_from.tzinfo is UTC


@given(texts)
@example("2025-07-02T10:00:Z")
@example("0001-01-01T00:00:00+01:00")
def test_command_line_times(text: str) -> None:
    try:
        when = instant(text)
    except argparse.ArgumentTypeError as error:
        assert str(error)
    else:
        assert when.tzinfo is not None


@given(texts)
@example("2025-07-02T10:00:Z")
@example("0001-01-01T00:00:00+01:00")
def test_ledger_entries(text: str) -> None:
    document = {"id": 1, "kind": "credit", "key": "k", "tokens": 5, "at": text,
                "fingerprint": "", "hash": ""}
    try:
        entry = Entry.from_dict(document)
    except ValueError as error:  # the documented error for a bad field
        assert "time" in str(error)
    else:
        assert entry.at.tzinfo is UTC


@given(texts)
@example("2025-07-02T10:00:Z")
@example("0001-01-01T00:00:00+01:00")
def test_ledger_import(text: str) -> None:
    line = json.dumps({"id": 1, "kind": "credit", "key": "k", "tokens": 5, "at": text,
                       "fingerprint": "", "hash": ""})
    with contextlib.suppress(ib.BadRecordError, ib.LedgerCorrupted):
        ib.Ledger.from_jsonl(io.StringIO(line + "\n")).close()


@given(texts)
@example("2025-07-02T10:00:Z")
@example("2025-07-02T10:00:00.Z")
def test_usage_logs(text: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        csv_path = Path(folder, "log.csv")
        quoted = '"' + text.replace('"', '""') + '"'
        csv_path.write_text(f"timestamp,style,count\n{quoted},anime,1\n", encoding="utf-8")
        jsonl_path = Path(folder, "log.jsonl")
        jsonl_path.write_text(json.dumps({"timestamp": text, "style": "anime", "count": 1})
                              + "\n", encoding="utf-8")
        outcomes = []
        for path in (csv_path, jsonl_path):
            log = ib.read_usage(path, skip_bad=True)
            records = list(log)
            outcomes.append([when for _, _, when in records])
            assert all(when.tzinfo is not None for _, _, when in records)
        # One rule for both readers (the CSV reader also ignores spaces around a field).
        if text == text.strip():
            assert outcomes[0] == outcomes[1]
