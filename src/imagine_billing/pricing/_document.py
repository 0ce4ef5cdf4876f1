"""The checks of a price document that need no table: strict JSON parsing, values JSON
cannot hold, the JSON Schema (through `imagine_billing.pricing.schema`) and the invariants JSON
Schema cannot express (a style's operation exists; an operation's default style exists and
belongs to it; no two operations share a method and path).

Nothing here builds a table, so `imagine_billing.pricing.model` can validate with it and
`imagine_billing.pricing.loading` can read files with it, without either importing the other
in a cycle.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from typing import Any

from imagine_billing._checks import (
    MAX_SUGGESTED,
    close_names,
    parse_timestamp,
    read_bounded,
    shown,
    shown_int,
    within,
)
from imagine_billing.errors import PriceSourceError, Problem

__all__ = ["DEFAULT_OPERATION", "MAX_DEPTH", "plain", "read_document", "validate_document"]

DEFAULT_OPERATION = "text-to-image"
"""The operation of a style that names none."""

MAX_DEPTH = 64
"""The deepest nesting a document may have (a price table needs 3 levels): an object or
array this many levels down is a problem, not a stack overflow later on."""


def validate_document(
    document: object, source: str | None = None, *, skip: set[str] | frozenset[str] = frozenset()
) -> list[Problem]:
    """Every problem of a parsed document: its shape (JSON Schema), then its invariants.

    Problems at a path in ``skip`` (already reported while parsing) are left out.
    """
    from imagine_billing.pricing.schema import schema_problems

    problems = [p for p in schema_problems(document, source) if p.path not in skip]
    if isinstance(document, Mapping):
        bad = {p.path for p in problems} | set(skip)
        problems.extend(p for p in _invariant_problems(document, source) if p.path not in bad)
    return problems


class _Object(dict[str, Any]):
    """A JSON object that remembers the keys its text repeated."""

    __slots__ = ("repeated",)

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        super().__init__(pairs)
        self.repeated: list[str] = []
        if len(self) != len(pairs):
            seen: set[str] = set()
            for key, _ in pairs:
                if key in seen and key not in self.repeated:
                    self.repeated.append(key)
                seen.add(key)


class _NotFinite:
    """A NaN or Infinity found in JSON text (which JSON does not allow), or a number such as
    1E400 that is valid JSON but too large for a float (``out_of_range``)."""

    __slots__ = ("out_of_range", "text")

    def __init__(self, text: str, *, out_of_range: bool = False) -> None:
        self.text = text
        self.out_of_range = out_of_range

    def __repr__(self) -> str:
        return self.text

    def problem(self) -> str:
        """What is wrong with the number."""
        if self.out_of_range:
            return f"{self.text} is out of range (no number this large is a price)"
        return f"{self.text} is not a number JSON allows"


def _parse_float(text: str) -> float | _NotFinite:
    value = float(text)
    return value if math.isfinite(value) else _NotFinite(text, out_of_range=True)


def _lone_surrogate(text: str) -> str | None:
    """The problem of a string holding a lone surrogate (such as ``"\\ud800"`` in JSON):
    it is not Unicode text, and could be neither hashed nor written as UTF-8."""
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        code = ord(text[error.start])
        return f"not valid Unicode text (a lone surrogate \\u{code:04x})"
    return None


def read_document(path: str | os.PathLike[str]) -> tuple[object, list[Problem]]:
    """Parse a JSON file strictly: the document, and the problems parsing found.

    Raises:
        PriceSourceError: the file cannot be read, is not UTF-8, or is not JSON.
    """
    name = os.fspath(path)
    try:
        raw = read_bounded(name)
    except OSError as error:
        reason = error.strerror or str(error)
        raise PriceSourceError(
            [Problem("", f"cannot read the file: {reason}", name)], source=name
        ) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise PriceSourceError(
            [Problem("", f"not UTF-8 text (byte {error.start}: {error.reason})", name)],
            source=name,
        ) from None
    try:
        document = json.loads(
            text, object_pairs_hook=_Object, parse_constant=_NotFinite, parse_float=_parse_float
        )
    except json.JSONDecodeError as error:
        message = f"not JSON: {error.msg} at line {error.lineno} column {error.colno}"
        raise PriceSourceError([Problem("", message, name)], source=name) from None
    except (RecursionError, ValueError) as error:
        # Nesting deeper than Python's stack, or an integer of more than 4300 digits.
        reason = "nested too deeply" if isinstance(error, RecursionError) else str(error)
        raise PriceSourceError(
            [Problem("", f"not JSON this library reads: {reason}", name)], source=name
        ) from None
    return document, list(_parse_problems(document, [], name))


def _too_deep(where: list[str | int], source: str | None) -> Problem:
    from imagine_billing.pricing.schema import pointer

    return Problem(
        pointer(where),
        f"nested too deeply for a price table (more than {MAX_DEPTH} levels)",
        source,
    )


def _plain(value: object, where: list[str | int], problems: list[Problem]) -> object:
    """A mapping document as plain JSON data (dicts, lists), noting keys that are not text.

    Any `Mapping` is a document (DESIGN.md), but JSON Schema counts only dicts as objects,
    and a key that is not a string would slip past the id patterns.
    """
    from imagine_billing.pricing.schema import pointer

    if isinstance(value, str):
        unicode = _lone_surrogate(value)
        if unicode is not None:
            problems.append(Problem(pointer(where), unicode))
        return value
    if len(where) >= MAX_DEPTH and isinstance(value, Mapping | list | tuple):
        problems.append(_too_deep(where, None))
        return None
    if isinstance(value, Mapping):
        plain: dict[str, object] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                problems.append(Problem(pointer([*where, str(key)]),
                                        f"keys must be strings (got {key!r})"))
                continue
            unicode = _lone_surrogate(key)
            if unicode is not None:
                problems.append(Problem(pointer([*where, key]), f"key {unicode}"))
            plain[key] = _plain(item, [*where, key], problems)
        return plain
    if isinstance(value, list | tuple):
        return [_plain(item, [*where, index], problems) for index, item in enumerate(value)]
    problem = _not_json(value)
    if problem is not None:
        problems.append(Problem(pointer(where), problem))
        return None  # checked no further: its problem is the one above
    return value


def _not_json(value: object) -> str | None:
    """What is wrong with a leaf of a mapping document that JSON could not hold, else None.

    JSON holds text, numbers, true, false and null: a `Decimal` (even ``Decimal('NaN')``), a
    `complex` or any other object is a problem at its path, not an error from deep in the
    checks. So is an integer too long to quote (Python refuses to print one of more than
    4,300 digits): no price is that large.
    """
    if value is None or isinstance(value, bool | str):
        return None
    if isinstance(value, int):
        if value.bit_length() <= 128:
            return None
        return f"{shown_int(value)} is out of range (no number this large is a price)"
    if isinstance(value, float):
        return None  # the schema says what is wrong with a NaN or an infinity
    return (f"must be a JSON value: text, a number, true, false or null (got {shown(value)}, "
            f"a {type(value).__name__})")


def _parse_problems(value: object, parts: list[str | int], source: str) -> list[Problem]:
    from imagine_billing.pricing.schema import pointer

    problems: list[Problem] = []
    stack: list[tuple[object, list[str | int]]] = [(value, parts)]
    while stack:
        node, where = stack.pop()
        if isinstance(node, str):
            unicode = _lone_surrogate(node)
            if unicode is not None:
                problems.append(Problem(pointer(where), unicode, source))
        elif isinstance(node, _NotFinite):
            problems.append(Problem(pointer(where), node.problem(), source))
        elif len(where) >= MAX_DEPTH and isinstance(node, dict | list):
            # Cut it off (the document is not valid anyway), as `_plain` does for mappings,
            # so that nothing after this (schema errors, messages) recurses that deep.
            problems.append(_too_deep(where, source))
            parent: Any = value
            for part in where[:-1]:
                parent = parent[part]
            parent[where[-1]] = None
        elif isinstance(node, dict):
            problems.extend(
                Problem(
                    pointer([*where, key]),
                    f"duplicate key {key!r}: a JSON parser keeps only its last value, "
                    "so the others would be lost",
                    source,
                )
                for key in getattr(node, "repeated", ())
            )
            problems.extend(
                Problem(pointer([*where, key]), f"key {unicode}", source)
                for key in node
                if (unicode := _lone_surrogate(key)) is not None
            )
            stack.extend((child, [*where, key]) for key, child in node.items())
        elif isinstance(node, list):
            stack.extend((child, [*where, index]) for index, child in enumerate(node))
    return sorted(problems)


def _invariant_problems(document: Mapping[str, Any], source: str | None) -> list[Problem]:
    """What JSON Schema cannot check; tolerant of a document whose shape is wrong."""
    return _Invariants(document, source).problems()


class _Invariants:
    """The checks of `_invariant_problems`, one method a rule, sharing the problems found
    and the bounded count of "did you mean" suggestions."""

    def __init__(self, document: Mapping[str, Any], source: str | None) -> None:
        self.document = document
        self.source = source
        self.found: list[Problem] = []
        self.suggested = 0

    def add(self, where: str, message: str) -> None:
        self.found.append(Problem(where, message, self.source))

    def close(self, word: str, known: Mapping[str, Any]) -> str:
        """A suggestion for a bad reference. Bounded: the first MAX_SUGGESTED bad
        references get one, so thousands of them cost thousands of comparisons, not
        millions."""
        if self.suggested >= MAX_SUGGESTED:
            return ""
        self.suggested += 1
        names = sorted(str(key) for key in known)
        matches = close_names(word, names)
        if matches:
            return f"; did you mean {matches[0]!r}?"
        return f"; expected one of: {within(names) or '(none)'}"

    def problems(self) -> list[Problem]:
        document = self.document
        if isinstance(document.get("format"), float):
            # JSON Schema's const 1 matches 1.0; the format number is an integer.
            self.add("/format", f"must be the integer 1 (got {document['format']})")
        when = document.get("effective_from")
        if isinstance(when, str):
            try:
                parse_timestamp(when)
            except ValueError as error:
                self.add("/effective_from", str(error))
        styles, operations = document.get("styles"), document.get("operations")
        if isinstance(styles, Mapping) and isinstance(operations, Mapping):
            self.style_operations(styles, operations)
            self.operation_rules(styles, operations)
        return self.found

    def style_operations(self, styles: Mapping[str, Any],
                         operations: Mapping[str, Any]) -> None:
        """Each style's operation (or the default one) exists."""
        from imagine_billing.pricing.schema import pointer

        for key, style in styles.items():
            if not isinstance(style, Mapping):
                continue
            operation = style.get("operation", DEFAULT_OPERATION)
            if isinstance(operation, str) and operation not in operations:
                named = "operation" in style
                where = ["styles", key, "operation"] if named else ["styles", key]
                self.add(pointer(where), f"operation {operation!r}"
                         f"{'' if named else ' (the default)'} does not exist"
                         + self.close(operation, operations))

    def operation_rules(self, styles: Mapping[str, Any],
                        operations: Mapping[str, Any]) -> None:
        """Each operation's default style exists and belongs to it, and no two operations
        share a route (method and path); problems in the order of the operations."""
        routes: dict[tuple[object, ...], str] = {}
        for key, operation in operations.items():
            if isinstance(operation, Mapping):
                self.default_style(key, operation, styles)
                self.route(key, operation, routes)

    def default_style(self, key: str, operation: Mapping[str, Any],
                      styles: Mapping[str, Any]) -> None:
        from imagine_billing.pricing.schema import pointer

        default_style = operation.get("default_style")
        if not isinstance(default_style, str):
            return
        style = styles.get(default_style)
        at = pointer(["operations", key, "default_style"])
        if style is None:
            self.add(at, f"style {default_style!r} does not exist"
                     f"{self.close(default_style, styles)}")
        elif isinstance(style, Mapping):
            owner = style.get("operation", DEFAULT_OPERATION)
            if owner != key:
                self.add(at, f"style {default_style!r} belongs to operation {owner!r}, "
                         f"not {key!r}")

    def route(self, key: str, operation: Mapping[str, Any],
              routes: dict[tuple[object, ...], str]) -> None:
        from imagine_billing.pricing.schema import pointer

        route = (operation.get("method"), operation.get("path"))
        if not all(isinstance(part, str) for part in route):
            return
        if route in routes:
            self.add(pointer(["operations", key, "path"]),
                     f"{route[0]} {route[1]} is also the route of operation {routes[route]!r}")
        else:
            routes[route] = key


def plain(document: Mapping[str, Any]) -> tuple[object, list[Problem]]:
    """A mapping document as plain JSON values (dicts, lists, str, int, float, bool, None),
    and the problems of what it holds that JSON cannot (named by their JSON pointer)."""
    problems: list[Problem] = []
    return _plain(document, [], problems), problems
