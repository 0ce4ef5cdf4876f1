"""The rows of a usage log as DuckDB SQL, each checked by the python reader's rules.

Each builder gives a ``SELECT`` of ``line, why, "timestamp", style, count, g0, g1...``:
``why`` is ``NULL`` for a good record, the python reader's reason for a bad one
(``"bad-count"``...), or ``'?'`` where SQL cannot tell cheaply what the python reader would
say (a quote in a CSV line, a byte outside printable ASCII, an unusual timestamp, an
operation): the engine then hands the whole log to the python reader. ``"timestamp"`` is a
UTC ``TIMESTAMP``, ``count`` a ``HUGEINT``, ``g0...`` the values of the columns grouped by.
``line`` is the file's line (``NULL`` unless asked for: numbering the lines keeps them all
in memory).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from imagine_billing._checks import MAX_TOKENS

__all__ = ["csv_rows", "json_rows", "parquet_rows", "sql_text"]

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


def _timestamp_check(text: str) -> str:
    """SQL for the reason a timestamp's ``text`` is refused (``NULL`` when it is good)."""
    return (f"CASE WHEN {text} IS NULL OR NOT regexp_full_match({text}, {sql_text(_FORM)}) "
            f"OR NOT regexp_full_match({text}, {sql_text(_ZONED)}) "
            f"OR regexp_full_match({text}, {sql_text(_BAD_OFFSET)}) THEN 'bad-timestamp' "
            f"WHEN NOT regexp_full_match({text}, {sql_text(_PLAIN)}) THEN '?' "
            f"WHEN try_cast(upper({text}) AS TIMESTAMPTZ) IS NULL THEN 'bad-timestamp' END")


def _utc(text: str) -> str:
    return f"CAST(try_cast(upper({text}) AS TIMESTAMPTZ) AS TIMESTAMP)"


def _count_check(text: str) -> str:
    return (f"CASE WHEN {text} IS NULL OR NOT regexp_full_match({text}, '{_COUNT}') "
            f"OR try_cast({text} AS HUGEINT) > {MAX_TOKENS} THEN 'bad-count' END")


def csv_rows(source: str, width: int, at: dict[str, int], extra: Sequence[int],
             *, lines: bool) -> str:
    """The rows of a CSV log read as lines by ``source`` (a ``read_csv`` of one column
    ``l`` that skips the header): ``width`` fields, ``at`` the field (from 0) of timestamp,
    style, count and maybe operation, ``extra`` those grouped by."""
    def field(index: int) -> str:
        return f"trim(f[{index + 1}])"

    ts, style, count = field(at["timestamp"]), field(at["style"]), field(at["count"])
    operation = (f"WHEN {field(at['operation'])} <> '' THEN '?' " if "operation" in at else "")
    why = (f"CASE WHEN NOT regexp_full_match(l, '{PRINTABLE}') OR contains(l, '\"') "
           f"OR length(l) >= {LONGEST} THEN '?' "
           f"WHEN len(f) < {width} THEN 'missing-field' "
           f"WHEN len(f) > {width} THEN 'extra-field' "
           f"ELSE coalesce({_count_check(count)}, {_timestamp_check(ts)}, "
           f"CASE {operation}WHEN {style} = '' THEN 'missing-field' END) END")
    groups = "".join(f", {field(index)} AS g{n}" for n, index in enumerate(extra))
    # The source skips the header: line 2 is the first it gives.
    numbered = "row_number() OVER () + 1" if lines else "NULL"
    return (f"SELECT line, why, CASE WHEN why IS NULL THEN {_utc(ts)} END AS \"timestamp\", "
            f"{style} AS style, CASE WHEN why IS NULL THEN try_cast({count} AS HUGEINT) END "
            f"AS count{groups} FROM (SELECT *, {why} AS why FROM (SELECT line, l, "
            f"string_split(l, ',') AS f FROM (SELECT {numbered} AS line, l FROM {source}) "
            "WHERE l IS NOT NULL))")


def json_rows(source: str, columns: Sequence[str], *, lines: bool) -> str:
    """The rows of a JSON-lines log read as lines by ``source``, grouped by ``columns``."""
    def value(key: str) -> str:
        return f"json_extract_string(l, '$.\"{key}\"')"

    def kind(key: str) -> str:
        return f"json_type(l, '$.\"{key}\"')"

    missing = " ".join(f"WHEN NOT list_contains(k, '{key}') THEN 'missing-field'"
                       for key in ("timestamp", "style", "count"))
    why = (f"CASE WHEN NOT regexp_full_match(l, '{PRINTABLE}') OR length(l) >= {LONGEST} "
           f"OR NOT regexp_full_match(l, {sql_text(_OBJECT)}) "
           "OR list_contains(k, 'operation') THEN '?' "
           "WHEN len(list_distinct(k)) < len(k) THEN 'duplicate-key' "
           f"{missing} "
           f"WHEN {kind('count')} NOT IN ('UBIGINT', 'BIGINT') "
           f"OR try_cast(json_extract(l, '$.\"count\"') AS HUGEINT) NOT BETWEEN 1 AND {MAX_TOKENS} "
           "THEN 'bad-count' "
           f"WHEN {kind('timestamp')} <> 'VARCHAR' THEN 'bad-timestamp' "
           f"ELSE coalesce({_timestamp_check(value('timestamp'))}, "
           f"CASE WHEN {kind('style')} NOT IN ('VARCHAR', 'NULL') THEN 'bad-style' "
           f"WHEN coalesce({value('style')}, '') = '' THEN 'missing-field' END) END")
    groups = "".join(
        f", {value(column) if _KEY.fullmatch(column) else 'NULL'} AS g{n}"
        for n, column in enumerate(columns))
    numbered = "row_number() OVER ()" if lines else "NULL"
    return (f"SELECT line, why, CASE WHEN why IS NULL THEN {_utc(value('timestamp'))} END "
            f"AS \"timestamp\", {value('style')} AS style, CASE WHEN why IS NULL THEN "
            f"try_cast(json_extract(l, '$.\"count\"') AS HUGEINT) END AS count{groups} "
            f"FROM (SELECT *, {why} AS why FROM (SELECT line, l, "
            f"CASE WHEN regexp_full_match(l, {sql_text(_OBJECT)}) THEN json_keys(l) END AS k "
            f"FROM (SELECT {numbered} AS line, l FROM {source}) "
            "WHERE l IS NOT NULL AND trim(l) <> ''))")


def parquet_rows(source: str, names: dict[str, str], columns: Sequence[str]) -> str:
    """The rows of a Parquet log (``source`` a ``read_parquet`` with ``file_row_number``):
    ``names`` the file's name of each record column (timestamp a ``TIMESTAMP WITH TIME
    ZONE``, count an integer, style text), ``columns`` those grouped by."""
    def name(key: str) -> str:
        return '"' + names[key].replace('"', '""') + '"'

    ts, style, count = name("timestamp"), name("style"), name("count")
    why = (f"CASE WHEN {count} IS NULL OR {count} < 1 OR {count} > {MAX_TOKENS} "
           f"THEN 'bad-count' WHEN {ts} IS NULL THEN 'bad-timestamp' "
           f"WHEN {style} IS NOT NULL AND NOT regexp_full_match({style}, '{PRINTABLE}') "
           f"THEN '?' WHEN coalesce(trim({style}), '') = '' THEN 'missing-field' END")
    groups = "".join(f", CAST({name(column)} AS VARCHAR) AS g{n}"
                     for n, column in enumerate(columns))
    return (f"SELECT file_row_number + 1 AS line, {why} AS why, "
            f"CAST({ts} AS TIMESTAMP) AS \"timestamp\", trim({style}) AS style, "
            f"CAST({count} AS HUGEINT) AS count{groups} FROM {source}")
