"""User overrides of a table: a JSON Merge Patch (RFC 7396) over its document."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from imagine_billing.errors import PriceSchemaError, Problem

__all__ = ["merge_patch", "patched_document", "with_null_hints"]

MAX_DEPTH = 64
"""The deepest patch `merge_patch` follows (a price document needs 3 levels)."""

_NULL_HINT = (
    "; a null in a JSON Merge Patch removes the key, so a patch cannot make a price "
    "unknown: edit table.to_dict() (\"cost\": None) and load it with PriceTable.from_dict"
)


def merge_patch(target: object, patch: object) -> object:
    """RFC 7396: ``patch`` applied to ``target``; neither argument is changed.

    A ``None`` (JSON null) in the patch removes that key; a non-object patch replaces the
    target whole. ``merge_patch({"a": 1, "b": 2}, {"b": None, "c": 3}) == {"a": 1, "c": 3}``.

    Raises:
        PriceSchemaError: the patch nests objects more than 64 levels deep.
    """
    return _merge(target, patch, [])


def _merge(target: object, patch: object, where: list[str]) -> object:
    if not isinstance(patch, Mapping):
        return patch
    if len(where) >= MAX_DEPTH:
        from imagine_billing.pricing.schema import pointer

        raise PriceSchemaError(
            [Problem(pointer(where), f"the patch is nested more than {MAX_DEPTH} levels deep")],
            source="overrides",
        )
    result: dict[str, Any] = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge(result.get(key), value, [*where, str(key)])
    return result


def _nulls(patch: Mapping[Any, Any], where: list[str]) -> set[str]:
    """The JSON pointers of the nulls of a patch (the keys it removes)."""
    from imagine_billing.pricing.schema import pointer

    found: set[str] = set()
    for key, value in patch.items():
        if value is None:
            found.add(pointer([*where, str(key)]))
        elif isinstance(value, Mapping):
            found |= _nulls(value, [*where, str(key)])
    return found


def patched_document(
    document: Mapping[str, Any], patch: Mapping[str, Any], *, version: str, current: str
) -> dict[str, Any]:
    """``document`` (a table's, at version ``current``) with ``patch`` merged in and
    ``version`` set: not yet validated (see `PriceTable.with_overrides`).

    Raises:
        TypeError: ``patch`` is not a mapping.
        PriceSchemaError: ``version`` is ``current`` again, or the patch sets another one.
    """
    if not isinstance(patch, Mapping):
        raise TypeError(f"patch must be a mapping (a JSON Merge Patch), got {type(patch).__name__}")
    if version == current:
        raise PriceSchemaError(
            [
                Problem(
                    "/version",
                    f"an overridden table needs a version of its own, not {version!r} again",
                )
            ],
            source="overrides",
        )
    if "version" in patch and patch["version"] != version:
        raise PriceSchemaError(
            [
                Problem(
                    "/version",
                    f"the patch sets version {patch['version']!r} but version={version!r} "
                    "was given: set it once, with the keyword",
                )
            ],
            source="overrides",
        )
    patched = merge_patch(document, patch)
    assert isinstance(patched, dict)
    patched["version"] = version
    return patched


def with_null_hints(error: PriceSchemaError, patch: Mapping[str, Any]) -> PriceSchemaError:
    """``error`` (the patched document's problems), where a problem is a key the patch
    removed with a null, with a hint that a patch cannot make a price unknown."""
    removed = _nulls(patch, [])
    if not any(p.path in removed for p in error.problems):
        return error
    problems = [
        Problem(p.path, p.message + _NULL_HINT, p.source)
        if p.path in removed and p.message.startswith("missing:")
        else p
        for p in error.problems
    ]
    return PriceSchemaError(problems, source=error.source)
