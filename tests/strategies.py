"""Hypothesis strategies shared by the property and stateful tests."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from hypothesis import strategies as st

import imagine_billing as ib

MAX_COST = 2**53 - 1

ids = st.from_regex(r"\A[a-z0-9][a-z0-9._-]{0,12}\Z")
"""Style and operation ids the schema accepts."""

costs = st.one_of(st.none(), st.integers(0, 10_000), st.integers(0, MAX_COST))
"""Costs a table may hold: null (unpriced) or a whole number of tokens."""

names = st.text(min_size=1, max_size=20)

instants = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
).map(lambda d: d.replace(microsecond=0))
"""Aware UTC datetimes at whole seconds (what RFC 3339 text round-trips exactly)."""

versions = st.tuples(st.integers(0, 50), st.integers(0, 50), st.integers(0, 50)).map(
    lambda v: f"{v[0]}.{v[1]}.{v[2]}"
)


def _timestamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


@st.composite
def price_documents(
    draw: st.DrawFn, *, min_styles: int = 1, priced: bool = False
) -> dict[str, Any]:
    """Valid price documents (format 1): one or two operations, styles belonging to them.

    ``priced=True`` gives every style a cost (no nulls).
    """
    operation_ids = draw(st.lists(ids, min_size=1, max_size=2, unique=True))
    style_ids = draw(st.lists(ids, min_size=min_styles, max_size=8, unique=True))
    style_costs = st.integers(0, 10_000) if priced else costs
    styles = {
        sid: {
            "name": draw(names),
            "cost": draw(style_costs),
            "operation": draw(st.sampled_from(operation_ids)),
            "status": draw(st.sampled_from(["active", "deprecated"])),
        }
        for sid in style_ids
    }
    operations: dict[str, Any] = {}
    for index, oid in enumerate(operation_ids):
        own = [sid for sid, s in styles.items() if s["operation"] == oid]
        operations[oid] = {
            "name": draw(names),
            "method": "POST",
            "path": f"/v2/op{index}",
            "cost": draw(costs),
            "default_style": draw(st.sampled_from([None, *own])),
        }
    document: dict[str, Any] = {
        "format": 1,
        "api": "imagine-api",
        "version": draw(versions),
        "effective_from": _timestamp(draw(instants)),
        "unit": "token",
        "styles": styles,
        "operations": operations,
    }
    if draw(st.booleans()):
        document["source"] = "https://example.invalid/prices"
    if draw(st.booleans()):
        document["note"] = draw(st.text(max_size=40))
    return document


def price_tables(**kwargs: Any) -> st.SearchStrategy[ib.PriceTable]:
    """Valid `PriceTable`s, built through `load_price_table` (so validated)."""
    return price_documents(**kwargs).map(ib.load_price_table)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
"""Any JSON value (no NaN)."""


def shifted(when: datetime, days: int) -> datetime:
    """``when`` moved by whole days."""
    return when + timedelta(days=days)


lone_surrogates = st.integers(0xD800, 0xDFFF).map(chr)
"""One code point of the surrogate range: JSON text may escape it ("\\ud800"), Unicode text
cannot hold it alone (it cannot be encoded as UTF-8)."""

surrogate_texts = st.tuples(st.text(max_size=8), lone_surrogates, st.text(max_size=8)).map(
    "".join
)
"""Strings holding at least one lone surrogate (never valid text)."""

MAX_DEPTH = 64
"""The nesting cap of price documents (pricing.loading.MAX_DEPTH)."""

depths = st.integers(MAX_DEPTH - 2, 990)
"""Nesting depths around the 64-level cap and up to about the JSON parser's own limit."""


class Nesting(NamedTuple):
    """A deeply nested JSON value, as Python data and as JSON text."""

    depth: int
    """How many arrays and objects are nested (the innermost at ``depth - 1`` levels below
    the outermost)."""
    value: Any
    text: str


@st.composite
def deep_nestings(draw: st.DrawFn) -> Nesting:
    """A value nested between 62 and 990 levels deep (arrays and objects mixed), and its
    JSON text; both built without recursion, so that any depth can be made."""
    depth = draw(depths)
    pattern = draw(st.lists(st.booleans(), min_size=1, max_size=4))
    kinds = [pattern[i % len(pattern)] for i in range(depth)]
    value: Any = draw(st.sampled_from([None, 0, "x"]))
    leaf = json.dumps(value)
    for is_object in reversed(kinds):
        value = {"k": value} if is_object else [value]
    opening = "".join('{"k": ' if is_object else "[" for is_object in kinds)
    closing = "".join("}" if is_object else "]" for is_object in reversed(kinds))
    return Nesting(depth, value, opening + leaf + closing)


# Usage logs for the engines of price-log: fields good and bad, as text a log holds.

good_timestamps = st.sampled_from([
    "2025-08-01T09:00:00Z", "2025-08-01T23:59:59.5+00:00", "2025-08-02T00:30:00+02:00",
    "2025-07-31T23:30:00-02:00", "2025-08-01t10:00:00z", "2026-01-01T00:00:00.123456Z",
    "2025-12-31T23:59:59Z", "2026-01-01T00:00:00Z",
])
"""Timestamps both engines read, on both sides of 2026-01-01 (the second version of
`tests.helpers.write_book`) and of UTC midnight."""
bad_timestamps = st.sampled_from([
    "2025-08-01T09:00:00", "2025-08-01", "yesterday", "", "2025-02-30T00:00:00Z",
    "2025-08-01T24:00:00Z", "2025-08-01T09:00:60Z", "2025-08-01 09:00:00Z",
    "2020-01-01T00:00:00Z", "2025-08-01T09:00:00+24:00",
])
"""Refused timestamps (a 2020 one is before the first version of a book)."""
odd_timestamps = st.sampled_from([
    "2025-08-01T09:00:00.1234567Z", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00",
])
"""Timestamps at the edge of what SQL reads as Python does: left to the python reader."""
styles = st.sampled_from(["anime", "flux-dev", "imagine-turbo", "realistic", "flux-dv",
                          "sdxl-1.0", "", "Anime"])
"""Known, unknown and unpriced styles, an empty one."""
counts = st.one_of(st.integers(1, 5), st.sampled_from([0, -1, 2**53 - 1, 2**53, 10**17]))
"""Counts, good and bad."""
count_texts = st.one_of(counts.map(str), st.sampled_from(["01", "1.5", "", "x", " 2 "]))
projects = st.sampled_from(["shop", "blog", "", "Shop"])


@st.composite
def usage_records(draw: st.DrawFn, *, odd: bool = True) -> dict[str, Any]:
    """One record's fields (``"project"`` as well), as a CSV line or a JSON object writes
    them; ``odd=False`` leaves out what SQL hands to the python reader."""
    stamps = [good_timestamps, good_timestamps, bad_timestamps]
    if odd:
        stamps.append(odd_timestamps)
    return {
        "timestamp": draw(st.one_of(*stamps)),
        "style": draw(styles),
        "count": draw(st.one_of(counts, count_texts)),
        "project": draw(projects),
    }


@st.composite
def usage_logs(draw: st.DrawFn, *, odd: bool = True) -> tuple[str, bytes]:
    """A usage log: ``(suffix, content)``, CSV or JSON lines, gzipped or not, good and bad
    lines; ``odd=False`` keeps to lines SQL checks itself (printable ASCII, no quote, no
    carriage return, no operation)."""
    records = draw(st.lists(usage_records(odd=odd), max_size=12))
    if draw(st.booleans()):
        text = _csv_log(draw, records, odd)
        suffix = ".csv"
    else:
        text = _json_log(draw, records, odd)
        suffix = ".jsonl"
    data = text.encode("utf-8", "surrogateescape")
    if draw(st.booleans()):
        import gzip

        data = gzip.compress(data, mtime=0)
        suffix += ".gz"
    return suffix, data


def _csv_log(draw: st.DrawFn, records: list[dict[str, Any]], odd: bool) -> str:
    names = draw(st.permutations(["timestamp", "style", "count", "project"]))
    header = ",".join(draw(st.sampled_from([n, n.upper(), n.title()])) for n in names)
    lines = [header]
    for record in records:
        fields = [str(record[name]) for name in names]
        kind = draw(st.sampled_from(["good"] * 6 + ["blank", "short", "long", "odd"]))
        if kind == "blank":
            lines.append("")
        elif kind == "short":
            fields = fields[:-1]
        elif kind == "long":
            fields.append("x")
        elif kind == "odd" and odd:
            fields[0] = draw(st.sampled_from(['"a,b"', "caf\xe9", "\udcff", "a\rb", "\t1"]))
        lines.append(",".join(fields))
    end = draw(st.sampled_from(["\n", "\r\n"])) if odd else "\n"
    return end.join(lines) + end


def _json_log(draw: st.DrawFn, records: list[dict[str, Any]], odd: bool) -> str:
    lines = []
    for record in records:
        item: dict[str, Any] = {}
        for name, value in record.items():
            key = draw(st.sampled_from([name, name, name.upper()])) if odd else name
            item[key] = value
        kind = draw(st.sampled_from(["good"] * 6 + ["blank", "missing", "twice", "type"]))
        if kind == "missing":
            item.pop(draw(st.sampled_from(sorted(item))))
        elif kind == "type":
            odd_values = [None, True, 7, 10**30, 1.5, [1], {"a": 1}]
            item[draw(st.sampled_from(sorted(item)))] = draw(
                st.sampled_from(odd_values if odd else odd_values[:3]))
        text = json.dumps(item)
        if kind == "twice":
            text = text[:-1] + ', "count": 1}'
        elif kind == "blank":
            text = "  "
        if odd and draw(st.integers(0, 9)) == 0:
            text = draw(st.sampled_from(["[1, 2]", "{", '{"style": "caf\\u00e9"}', "\udcff"]))
        lines.append(text)
    return "".join(line + "\n" for line in lines)
