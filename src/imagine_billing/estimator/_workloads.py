"""Workload files: `load_calls` reads a JSON list of calls, naming the line of a bad one."""

from __future__ import annotations

import os
from collections.abc import Mapping

from imagine_billing._checks import MAX_TOKENS, shown_int, too_large
from imagine_billing.errors import (
    BadRecordError,
)
from imagine_billing.estimator._estimate import Call
from imagine_billing.pricing._document import DEFAULT_OPERATION

_CALL_KEYS = frozenset({"style", "count", "operation"})


def load_calls(path: str | os.PathLike[str]) -> tuple[Call, ...]:
    """Read a workload file: the calls a job will make.

    The file is JSON: a list of call objects, or ``{"calls": [...]}``. A call object is
    ``{"style": "flux-dev", "count": 4, "operation": "text-to-image"}``, every key optional
    (``count`` defaults to 1, ``operation`` to ``"text-to-image"``, ``style`` to the
    operation's default); other keys are refused.

    Raises:
        BadRecordError: the file cannot be read, is not JSON of that shape, or a call is bad;
            it names the file and the line (and index) of the offending call.
    """
    import json

    from imagine_billing._checks import read_bounded

    source = os.fspath(path)
    try:
        text = read_bounded(source).decode("utf-8-sig")
    except OSError as error:
        reason = error.strerror or str(error)
        raise BadRecordError(source, 0, "unreadable", f"cannot read the file: {reason}") from None
    except UnicodeDecodeError as error:
        detail = f"not UTF-8 text (byte {error.start})"
        raise BadRecordError(source, 0, "unreadable", detail) from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        detail = f"not JSON: {error.msg} at column {error.colno}"
        raise BadRecordError(source, error.lineno, "bad-json", detail) from None
    except (RecursionError, ValueError) as error:
        # Nesting deeper than Python's stack, or an integer of more than 4300 digits.
        reason = "nested too deeply" if isinstance(error, RecursionError) else str(error)
        raise BadRecordError(source, 1, "bad-json",
                             f"not JSON this library reads: {reason}") from None
    if isinstance(document, dict):
        extra = sorted(set(document) - {"calls"})
        if extra or not isinstance(document.get("calls"), list):
            raise BadRecordError(
                source, 1, "bad-shape",
                'expected a list of calls or {"calls": [...]}'
                + (f" (unknown key {extra[0]!r})" if extra else " (no \"calls\" list)"),
            )
        items = document["calls"]
    elif isinstance(document, list):
        items = document
    else:
        raise BadRecordError(
            source, 1, "bad-shape",
            f'expected a list of calls or {{"calls": [...]}} (got {_json_type(document)})',
        )
    calls: list[Call] = []
    for index, item in enumerate(items):
        problem = _call_problem(item)
        if problem is not None:
            reason, detail = problem
            line = _element_lines(text).get(index, 1)
            raise BadRecordError(source, line, reason, f"call {index}: {detail}")
        calls.append(
            Call(item.get("style"), item.get("count", 1), item.get("operation", DEFAULT_OPERATION))
        )
    return tuple(calls)


def _call_problem(item: object) -> tuple[str, str] | None:
    if not isinstance(item, dict):
        example = '{"style": "flux-dev", "count": 4}'
        return "bad-shape", f"expected an object such as {example} (got {_json_type(item)})"
    unknown = sorted(set(item) - _CALL_KEYS)
    if unknown:
        return "unknown-key", f"unknown key {unknown[0]!r}; expected only style, count, operation"
    style = item.get("style")
    if style is not None and not isinstance(style, str):
        got = f"{_json_type(style)} {json_text(style)}"
        return "bad-style", f"style must be a string or null (got {got})"
    count = item.get("count", 1)
    if count.__class__ is not int or count < 1:
        shown = shown_int(count) if count.__class__ is int else json_text(count)
        return "bad-count", f"count must be an integer >= 1 (got {_json_type(count)} {shown})"
    if count > MAX_TOKENS:
        return "bad-count", f"count {too_large(f'integer {shown_int(count)}')}"
    operation = item.get("operation", DEFAULT_OPERATION)
    if not isinstance(operation, str):
        got = f"{_json_type(operation)} {json_text(operation)}"
        return "bad-operation", f"operation must be a string (got {got})"
    return None


def json_text(value: object) -> str:
    """``value`` spelled as JSON (``true`` rather than ``True``), for messages."""
    import json

    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def _json_type(value: object) -> str:
    names = {bool: "boolean", int: "integer", float: "number", str: "string",
             list: "array", dict: "object", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _element_lines(text: str) -> Mapping[int, int]:
    """The line where each call of the document's calls list starts, by index.

    Only used to name the line of a bad call, so it is computed then, from the raw text.
    """
    import json

    decoder = json.JSONDecoder()
    whitespace = " \t\n\r"

    def skip(pos: int) -> int:
        while pos < len(text) and text[pos] in whitespace:
            pos += 1
        return pos

    def line_of(pos: int) -> int:
        return text.count("\n", 0, pos) + 1

    pos = skip(1 if text.startswith("\ufeff") else 0)
    if text.startswith("{", pos):
        pos = skip(pos + 1)
        while pos < len(text) and text[pos] != "}":
            key, pos = decoder.raw_decode(text, pos)
            pos = skip(skip(pos) + 1)  # past the colon
            if key == "calls" and text.startswith("[", pos):
                break
            _, pos = decoder.raw_decode(text, pos)
            pos = skip(pos)
            pos = skip(pos + 1) if text.startswith(",", pos) else pos
    if not text.startswith("[", pos):
        return {}
    lines: dict[int, int] = {}
    pos = skip(pos + 1)
    index = 0
    while pos < len(text) and text[pos] != "]":
        lines[index] = line_of(pos)
        _, pos = decoder.raw_decode(text, pos)
        pos = skip(pos)
        pos = skip(pos + 1) if text.startswith(",", pos) else pos
        index += 1
    return lines
