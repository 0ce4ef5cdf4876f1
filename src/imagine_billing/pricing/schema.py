"""The JSON Schema of price documents and its translation of errors into `Problem`s.

jsonschema is imported here only, and only when a document other than the bundled one is
validated, so that pricing with the default table stays fast to import.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from imagine_billing._checks import shown
from imagine_billing.errors import Problem

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError
    from jsonschema.protocols import Validator

__all__ = ["SCHEMA_NAME", "price_table_schema", "schema_path", "schema_problems"]

SCHEMA_NAME = "price-table.v1.schema.json"

_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# In a wheel the schema is packaged beside the code (hatch force-include); in a source
# checkout (and an editable install) it is read from the one copy in the repository's schemas/.
_CANDIDATES = (
    os.path.join(_PACKAGE, "schemas", SCHEMA_NAME),
    os.path.join(os.path.dirname(os.path.dirname(_PACKAGE)), "schemas", SCHEMA_NAME),
)


def schema_path() -> str:
    """Where the installed package finds its JSON Schema file."""
    for candidate in _CANDIDATES:
        if os.path.isfile(candidate):
            return candidate
    raise FileNotFoundError(  # pragma: no cover - only a broken install gets here
        f"the JSON Schema {SCHEMA_NAME} is missing from the installed package; reinstall it"
    )


def price_table_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of price documents, format 1, as a new dict."""
    with open(schema_path(), encoding="utf-8") as handle:
        schema: dict[str, Any] = json.load(handle)
    return schema


def ecma_regex(pattern: str) -> str:
    """A Python regular expression that matches as the ECMA-262 ``pattern`` does.

    JSON Schema's ``pattern`` is an ECMA-262 regular expression, applied unanchored. Python
    differs where it matters here: its ``$`` also matches before a final newline, so
    ``"1.0.0\\n"`` would pass ``^...$``. Each ``$`` outside a character class becomes
    ``\\Z`` (the end of the text only); the rest of the syntax the schema uses means the
    same in both.
    """
    out: list[str] = []
    in_class = False
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            out.append(pattern[index : index + 2])
            index += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
            if pattern[index + 1 : index + 2] in ("^", "]"):
                # "[^...]" and "[]...]": the next character belongs to the class.
                out.append(pattern[index : index + 2])
                index += 2
                continue
        elif char == "$":
            char = "\\Z"
        out.append(char)
        index += 1
    return "".join(out)


@functools.cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(ecma_regex(pattern))


def _pattern(
    validator: Validator, pattern: str, instance: object, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    """The ``pattern`` keyword (also under ``propertyNames``), matching as ECMA-262 does."""
    from jsonschema.exceptions import ValidationError

    if isinstance(instance, str) and not _compiled(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


@functools.cache
def _validator() -> Validator:
    from jsonschema import Draft202012Validator, validators

    def is_integer(checker: object, instance: object) -> bool:
        # JSON Schema counts 1.0 as an integer; a price of 1.0 is a float in Python and
        # would lead to float arithmetic on tokens, so refuse it.
        return isinstance(instance, int) and not isinstance(instance, bool)

    type_checker = Draft202012Validator.TYPE_CHECKER.redefine("integer", is_integer)
    strict = validators.extend(  # type: ignore[no-untyped-call]  # untyped in jsonschema
        Draft202012Validator, validators={"pattern": _pattern}, type_checker=type_checker
    )
    schema = price_table_schema()
    Draft202012Validator.check_schema(schema)
    validator: Validator = strict(schema)
    return validator


def schema_problems(document: object, source: str | None = None) -> list[Problem]:
    """Every problem the JSON Schema finds in ``document``, best match first."""
    from jsonschema.exceptions import best_match, relevance

    instance: Any = document
    errors = list(_validator().iter_errors(instance))
    if not errors:
        return []
    # A wrong format makes every other problem moot: it comes first.
    best = next((e for e in errors if list(e.absolute_path) == ["format"]), None)
    if best is None:
        best = best_match(errors, key=relevance)
    rest = sorted(
        (e for e in errors if e is not best), key=lambda e: [str(p) for p in e.absolute_path]
    )
    ordered = [best, *rest]
    problems: list[Problem] = []
    for error in ordered:
        problems.extend(_translate(error, source))
    # jsonschema gives one "required" error per missing key, each listing them all.
    return list(dict.fromkeys(problems))


def pointer(parts: Iterable[object]) -> str:
    """A JSON pointer (RFC 6901) from path parts."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def _describe(schema: Mapping[str, Any] | bool) -> str:
    if isinstance(schema, Mapping):
        description = schema.get("description")
        if isinstance(description, str):
            return description
    return "a valid value"


def _translate(error: ValidationError, source: str | None) -> list[Problem]:
    parts = list(error.absolute_path)
    path = pointer(parts)
    # jsonschema types these as possibly "unset"; on an error from iter_errors they are set.
    keyword: Any = error.validator
    value: Any = error.validator_value
    instance: Any = error.instance
    schema: Any = error.schema
    got = f"(got {shown(instance)})"
    if keyword == "additionalProperties" and isinstance(instance, Mapping):
        allowed = sorted(schema.get("properties", {}))
        extras = sorted(set(instance) - set(allowed))
        return [
            Problem(
                pointer([*parts, key]),
                f"unknown key {key!r} (expected one of: {', '.join(allowed)})",
                source,
            )
            for key in extras
        ]
    if keyword == "required" and isinstance(instance, Mapping):
        return [
            Problem(pointer([*parts, key]), f"missing: {key!r} is required", source)
            for key in value
            if key not in instance
        ]
    if keyword == "const" and parts == ["format"]:
        message = f"unsupported format {shown(instance)} (this version reads format {value})"
    elif keyword == "const":
        message = f"must be {shown(value)} {got}"
    elif keyword == "type" and _is_cost(schema):
        message = f"must be an integer >= 0 or null {got}"
    elif keyword == "type":
        types = value if isinstance(value, list) else [value]
        article = {"integer": "an", "object": "an", "array": "an"}
        expected = " or ".join(f"{article.get(t, 'a')} {t}" for t in types)
        message = f"must be {expected} {got}"
    elif keyword == "minimum":
        message = f"must be >= {value} {got}"
    elif keyword == "maximum":
        message = f"must be <= {value} (2**53-1) {got}"
    elif keyword == "enum":
        message = f"must be one of {', '.join(shown(v) for v in value)} {got}"
    elif keyword == "pattern" and _is_name(error):
        # propertyNames: the bad value is a key of this object.
        return [
            Problem(
                pointer([*parts, instance]),
                f"invalid id {shown(instance)}: must be {_describe(schema)}",
                source,
            )
        ]
    elif keyword == "pattern":
        message = f"must be {_describe(schema)} {got}"
    elif keyword == "minLength":
        message = f"must not be empty {got}"
    elif keyword == "minProperties":
        message = f"must have at least {value} entry {got}"
    else:  # pragma: no cover - a keyword the schema does not use yet
        message = error.message
    return [Problem(path, message, source)]


def _is_cost(schema: object) -> bool:
    """Whether ``schema`` is the cost definition (not: whether the key is called "cost",
    which a style or operation id may be)."""
    root: Any = _validator().schema
    cost = root["$defs"]["cost"]
    return schema is cost or bool(schema == cost)


def _is_name(error: ValidationError) -> bool:
    return "propertyNames" in list(error.absolute_schema_path)
