"""Loading and validating price documents.

Validation is layered (see `imagine_billing.pricing._document`): the JSON text is parsed
strictly (duplicate keys and NaN/Infinity are problems, not silently accepted), the JSON
Schema checks the shape, then the invariants that JSON Schema cannot express are checked.
Every problem of every layer is collected and raised at once as a `PriceSchemaError`.

The bundled default table is not re-validated at load (that would import jsonschema): the
tests validate it, and its digest is checked against the one recorded here instead.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping
from typing import Any

from imagine_billing.errors import PriceSourceError, Problem
from imagine_billing.pricing._document import plain, read_document, validate_document
from imagine_billing.pricing.model import PriceTable, build_table, checked_table

__all__ = [
    "BUNDLED_DIGEST",
    "bundled_path",
    "load_price_table",
    "read_document",
    "validate_document",
]

BUNDLED_DIGEST = "sha256:d94253d4174c96fe34b3d994a9efb9ac2743fcbc86f7b14495ec5b40301f5a91"
"""The digest of the bundled default table; a test keeps it in step with the data file."""

Source = str | os.PathLike[str] | Mapping[str, Any] | None


def bundled_path() -> str:
    """The path of the bundled default price document."""
    return os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "imagine-api.json")


def load_price_table(source: Source = None) -> PriceTable:
    """Load and validate a price table.

    Args:
        source: ``None`` for the bundled default table (the published Imagine API prices);
            a path to a JSON file; or a mapping holding a price document.

    Returns:
        The immutable `PriceTable`.

    Raises:
        PriceSchemaError: the document is invalid; ``.problems`` lists every problem with
            its JSON-pointer path. `PriceSourceError` (a subclass) when it cannot be read
            at all: a missing file, bytes that are not UTF-8, text that is not JSON.
    """
    if source is None:
        return _bundled()
    if isinstance(source, Mapping):
        return checked_table(*plain(source), None)
    if isinstance(source, str | os.PathLike):
        name = os.fspath(source)
        return checked_table(*read_document(name), name)
    raise TypeError(
        "source must be None, a path or a mapping holding a price document "
        f"(got {type(source).__name__})"
    )


@functools.cache
def _bundled() -> PriceTable:
    path = bundled_path()
    with open(path, "rb") as handle:
        table = build_table(json.loads(handle.read()))
    if table.digest != BUNDLED_DIGEST:
        raise PriceSourceError(
            [
                Problem(
                    "",
                    f"content digest {table.digest} is not the recorded {BUNDLED_DIGEST}: "
                    "the installed package is damaged; reinstall it",
                    path,
                )
            ],
            source=path,
        )
    return table
