"""User overrides of a table: a JSON Merge Patch (RFC 7396) over its document."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from imagine_billing.errors import PriceSchemaError, Problem

if TYPE_CHECKING:
    from imagine_billing.pricing.model import PriceTable

__all__ = ["apply_overrides", "merge_patch"]


def merge_patch(target: object, patch: object) -> object:
    """RFC 7396: ``patch`` applied to ``target``; neither argument is changed.

    A ``None`` (JSON null) in the patch removes that key; a non-object patch replaces the
    target whole. ``merge_patch({"a": 1, "b": 2}, {"b": None, "c": 3}) == {"a": 1, "c": 3}``.
    """
    if not isinstance(patch, Mapping):
        return patch
    result: dict[str, Any] = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def apply_overrides(table: PriceTable, patch: Mapping[str, Any], *, version: str) -> PriceTable:
    """The table of ``table``'s document with ``patch`` merged in and ``version`` set."""
    from imagine_billing.pricing.loading import load_price_table

    if not isinstance(patch, Mapping):
        raise TypeError(f"patch must be a mapping (a JSON Merge Patch), got {type(patch).__name__}")
    if version == table.version:
        raise PriceSchemaError(
            [
                Problem(
                    "/version",
                    f"an overridden table needs a version of its own, not {version!r} again",
                )
            ],
            source="overrides",
        )
    document = merge_patch(table.to_dict(), patch)
    assert isinstance(document, dict)
    document["version"] = version
    return load_price_table(document)
