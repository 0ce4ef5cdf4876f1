"""The rows of a usage log as DuckDB SQL, each checked by the python reader's rules.

Each builder gives a ``SELECT`` of ``line, why, us, style, count, g0, g1...``:
``why`` is ``NULL`` for a good record, the python reader's reason for a bad one
(``"bad-count"``...), or ``'?'`` where SQL cannot tell cheaply what the python reader would
say (a quote in a CSV line, a byte outside printable ASCII, an unusual timestamp, an
operation): the engine then hands the whole log to the python reader. ``us`` is the time in
microseconds since 1970 (UTC; cheaper to sum by day than a ``TIMESTAMP WITH TIME ZONE``),
``count`` a ``BIGINT`` (at most 2**53-1; their sums are ``HUGEINT``s, never past 64 bits),
``g0...`` the values of the columns grouped by.
``line`` is the file's line (``NULL`` unless asked for: numbering the lines keeps them all
in memory).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from imagine_billing._checks import MAX_TOKENS

__all__ = ["checked_styles", "csv_rows", "json_rows", "outside_times", "parquet_rows",
           "sql_text"]

PRINTABLE = "[ -~]*"
"""Lines SQL reads as the python reader does: printable ASCII (no tab, no line break, no
byte of another alphabet, which Python's ``str.strip`` and ``csv`` treat in ways of their
own)."""

LONGEST = 60_000
"""Lines this long or longer are left to the python reader (its bound is 65,536)."""

# The python reader's form (`imagine_billing._checks.rfc3339`), with and without a zone, and
# the part of it SQL reads the same way (fromisoformat takes more digits of a fraction, and
# offset minutes past 59 that may make a day; years near 1 and 9999 overflow in UTC). In that
# part, DuckDB's cast fails where fromisoformat does: month 13, 30 February, second 60.
_FORM = (r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt](?:[01][0-9]|2[0-3]):[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?"
         r"(?:[Zz]|[+-][0-9]{2}:[0-9]{2})?")
_ZONED = _FORM.removesuffix("?")
_PLAIN = (r"(?:1[0-9]|2[0-9])[0-9]{2}-[0-9]{2}-[0-9]{2}[Tt](?:[01][0-9]|2[0-3]):[0-9]{2}:[0-9]{2}"
          r"(?:\.[0-9]{1,6})?(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])")
# An offset of 24 hours or more: Python refuses it (DuckDB reads it).
_BAD_OFFSET = r".*[+-](?:2[4-9]|[3-9][0-9]):[0-9]{2}"
_COUNT = "[1-9][0-9]{0,15}"
# A JSON object of simple members: keys in lower case, values strings without escapes,
# integers of up to 18 digits, true, false or null.
_VALUE = r'(?:"[^"\\]*"|-?(?:0|[1-9][0-9]{0,17})|true|false|null)'
_MEMBER = rf' *"[a-z0-9_]+" *: *{_VALUE} *'
_OBJECT = rf" *\{{(?:{_MEMBER}(?:,{_MEMBER})*| *)\}} *"
_KEY = re.compile("[a-z0-9_]+")


def sql_text(value: str) -> str:
    """``value`` as a SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


TIMES = ("0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z")
"""The first and last time a record can have (those of Python's ``datetime``)."""


def outside_times(ts: str) -> str:
    """SQL true when the typed time ``ts`` (a ``TIMESTAMP``, with a zone or not, or a
    ``DATE``) is infinite or outside `TIMES`: DuckDB reads those, Python cannot (a Parquet
    file may hold ``'infinity'::TIMESTAMPTZ`` or the year 294000)."""
    first, last = (sql_text(time.replace("T", " ").replace("Z", "+00")) for time in TIMES)
    return f"CAST({ts} AS TIMESTAMPTZ) NOT BETWEEN {first} AND {last}"


def _timestamp_check(text: str, zoned: str) -> str:
    """SQL for the reason a timestamp's ``text`` is refused (``NULL`` when it is good), given
    ``zoned``, the ``TIMESTAMPTZ`` DuckDB reads from it in upper case (``NULL`` if none)."""
    return (f"CASE WHEN {text} IS NULL OR NOT regexp_full_match({text}, {sql_text(_FORM)}) "
            f"OR NOT regexp_full_match({text}, {sql_text(_ZONED)}) "
            f"OR regexp_full_match({text}, {sql_text(_BAD_OFFSET)}) THEN 'bad-timestamp' "
            f"WHEN NOT regexp_full_match({text}, {sql_text(_PLAIN)}) THEN '?' "
            f"WHEN {zoned} IS NULL THEN 'bad-timestamp' END")


def _count_check(text: str) -> str:
    return (f"CASE WHEN {text} IS NULL OR NOT regexp_full_match({text}, '{_COUNT}') "
            f"OR try_cast({text} AS HUGEINT) > {MAX_TOKENS} THEN 'bad-count' END")


_OTHER = "[ !#-+\\--~]*"
"""A CSV field of printable ASCII without a comma or a quote."""
_FAST = {
    "timestamp": " *" + _PLAIN.replace("[Tt]", "T").replace("[Zz]", "Z") + " *",
    "style": " *[!#-+\\--~]" + _OTHER,
    "count": " *[1-9][0-9]{0,14} *",  # at most 15 digits: never past 2**53-1
    "operation": " *",
}


def _fast_line(names: Sequence[str]) -> str:
    """A CSV line of header ``names`` that is good but maybe for a date that does not exist:
    one regular expression, the common case checked at once."""
    return ",".join(_FAST.get(name, _OTHER) for name in names)


def csv_rows(source: str, names: Sequence[str], extra: Sequence[int], *, lines: bool) -> str:
    """The rows of a CSV log read as lines by ``source`` (a ``read_csv`` of one column
    ``l`` that skips the header): ``names`` the header's (case-folded), ``extra`` the fields
    (from 0) grouped by."""
    def field(name: str | int) -> str:
        return f"trim(f[{(names.index(name) if isinstance(name, str) else name) + 1}])"

    ts, style, count = field("timestamp"), field("style"), field("count")
    operation = (f"WHEN {field('operation')} <> '' THEN '?' " if "operation" in names else "")
    slow = (f"CASE WHEN NOT regexp_full_match(l, '{PRINTABLE}') OR contains(l, '\"') "
            f"OR length(l) >= {LONGEST} THEN '?' "
            f"WHEN len(f) < {len(names)} THEN 'missing-field' "
            f"WHEN len(f) > {len(names)} THEN 'extra-field' "
            f"ELSE coalesce({_count_check(count)}, {_timestamp_check(ts, 'tz')}, "
            f"CASE {operation}WHEN {style} = '' THEN 'missing-field' END) END")
    why = f"CASE WHEN fast THEN CASE WHEN tz IS NULL THEN 'bad-timestamp' END ELSE {slow} END"
    groups = "".join(f", {field(index)} AS g{n}" for n, index in enumerate(extra))
    # The source skips the header: line 2 is the first it gives.
    numbered = "row_number() OVER () + 1" if lines else "NULL"
    fast = sql_text(_fast_line(names))
    return (f"SELECT line, why, CASE WHEN why IS NULL THEN epoch_us(tz) END AS us, "
            f"{style} AS style, CASE WHEN why IS NULL THEN "
            f"try_cast({count} AS BIGINT) END AS count{groups} FROM (SELECT *, {why} AS why "
            f"FROM (SELECT *, try_cast(CASE WHEN fast THEN {ts} ELSE upper({ts}) END "
            f"AS TIMESTAMPTZ) AS tz FROM (SELECT line, l, string_split(l, ',') AS f, "
            f"regexp_full_match(l, {fast}) AS fast FROM (SELECT {numbered} AS line, l "
            f"FROM {source}) WHERE l IS NOT NULL)))")


def json_rows(source: str, columns: Sequence[str], *, lines: bool) -> str:
    """The rows of a JSON-lines log read as lines by ``source``, grouped by ``columns``.

    Each line is parsed three times (its keys, its values as text, their types), and only
    when it is an object of simple members (`_OBJECT`): anything else is left to the python
    reader."""
    keys = ["timestamp", "style", "count", *(c if _KEY.fullmatch(c) else None for c in columns)]
    paths = "[" + ", ".join(f"'$.\"{key}\"'" for key in keys if key) + "]"
    missing = " ".join(f"WHEN NOT list_contains(k, '{key}') THEN 'missing-field'"
                       for key in ("timestamp", "style", "count"))
    why = ("CASE WHEN NOT simple THEN '?' WHEN list_contains(k, 'operation') THEN '?' "
           "WHEN len(list_distinct(k)) < len(k) THEN 'duplicate-key' "
           f"{missing} "
           "WHEN t[3] NOT IN ('UBIGINT', 'BIGINT') "
           f"OR try_cast(v[3] AS HUGEINT) NOT BETWEEN 1 AND {MAX_TOKENS} THEN 'bad-count' "
           "WHEN t[1] <> 'VARCHAR' THEN 'bad-timestamp' "
           f"ELSE coalesce({_timestamp_check('v[1]', 'tz')}, "
           "CASE WHEN t[2] NOT IN ('VARCHAR', 'NULL') THEN 'bad-style' "
           "WHEN coalesce(v[2], '') = '' THEN 'missing-field' END) END")
    at = 4
    groups = ""
    for n, key in enumerate(keys[3:]):
        groups += f", {'NULL' if key is None else f'v[{at}]'} AS g{n}"
        at += key is not None
    numbered = "row_number() OVER ()" if lines else "NULL"
    simple = (f"regexp_full_match(l, '{PRINTABLE}') AND length(l) < {LONGEST} "
              f"AND regexp_full_match(l, {sql_text(_OBJECT)})")
    return (f"SELECT line, why, CASE WHEN why IS NULL THEN epoch_us(tz) END AS us, "
            f"v[2] AS style, CASE WHEN why IS NULL THEN "
            f"try_cast(v[3] AS BIGINT) END AS count{groups} "
            f"FROM (SELECT *, {why} AS why FROM (SELECT *, "
            "try_cast(upper(v[1]) AS TIMESTAMPTZ) AS tz FROM (SELECT line, simple, "
            "CASE WHEN simple THEN json_keys(l) END AS k, "
            f"CASE WHEN simple THEN json_extract_string(l, {paths}) END AS v, "
            f"CASE WHEN simple THEN json_type(l, {paths}) END AS t "
            f"FROM (SELECT line, l, {simple} AS simple "
            f"FROM (SELECT {numbered} AS line, l FROM {source}) "
            "WHERE l IS NOT NULL AND trim(l) <> ''))))")


def parquet_rows(path: str, names: dict[str, str], columns: Sequence[str], *, lines: bool,
                 bigint: bool) -> str:
    """The rows of the Parquet log at ``path`` (a SQL string): ``names`` the file's name of
    each record column (timestamp a ``TIMESTAMP WITH TIME ZONE``, count an integer, style
    text), ``columns`` those grouped by; ``bigint`` when every count is a ``BIGINT`` (a
    cast then, cheaper than a ``try_cast``). The style is as the file has it, unchecked: see
    `checked_styles`."""
    def name(key: str) -> str:
        return '"' + names[key].replace('"', '""') + '"'

    ts, style, count = name("timestamp"), name("style"), name("count")
    why = (f"CASE WHEN {count} IS NULL OR {count} < 1 OR {count} > {MAX_TOKENS} "
           f"THEN 'bad-count' WHEN {ts} IS NULL OR {outside_times(ts)} THEN 'bad-timestamp' END")
    groups = "".join(f", CAST({name(column)} AS VARCHAR) AS g{n}"
                     for n, column in enumerate(columns))
    line, source = "NULL", f"read_parquet({path})"
    if lines:
        line, source = "file_row_number + 1", f"read_parquet({path}, file_row_number = true)"
    cast = "CAST" if bigint else "try_cast"
    return (f"SELECT {line} AS line, {why} AS why, epoch_us({ts}) AS us, {style} AS style, "
            f"{cast}({count} AS BIGINT) AS count{groups} FROM {source}")


def checked_styles(rows: str) -> str:
    """``rows`` of `parquet_rows` (or sums of them by style) with their styles checked as the
    python reader does: trimmed, empty a missing field, outside printable ASCII left to it.
    Checked after summing, once a style instead of once a row."""
    reason = (f"CASE WHEN style IS NOT NULL AND NOT regexp_full_match(style, '{PRINTABLE}') "
              "THEN '?' WHEN coalesce(trim(style), '') = '' THEN 'missing-field' END")
    return (f"SELECT * REPLACE (coalesce(why, {reason}) AS why, trim(style) AS style) "
            f"FROM ({rows})")
