"""The price model: `Style`, `Operation` and the immutable, versioned `PriceTable`.

A table is built from a validated document (see `loading`, which reports every problem with
its path); the constructor keeps the invariants too (attrs validators): every style's
operation exists, every operation's default style exists and belongs to it, and
``effective_from`` is aware (kept in UTC). Tables compare and hash by content; `digest`
names that content. Tables pickle and deep-copy (rebuilt from their fields).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Literal

import attrs

from imagine_billing._checks import MAX_TOKENS, format_timestamp, parse_timestamp, positive_int
from imagine_billing.errors import PriceSchemaError, Problem, UnknownStyleError, UnpricedError
from imagine_billing.pricing._document import DEFAULT_OPERATION, plain, validate_document
from imagine_billing.pricing.overrides import patched_document, with_null_hints

__all__ = ["FORMAT", "Operation", "PriceTable", "Style", "canonical_json", "require_aware"]

FORMAT = 1
"""The document format this version reads and writes."""

StyleStatus = Literal["active", "deprecated"]


@attrs.frozen
class Style:
    """A style of an operation, and its token cost per call."""

    id: str
    """The style id the API takes in its ``style`` field, such as ``"flux-dev"``."""
    name: str
    """The display name, such as ``"Flux Dev"``."""
    cost: int | None
    """Tokens per call; ``None`` when the price is not published (never read it as 0)."""
    operation: str = DEFAULT_OPERATION
    """The id of the operation this style belongs to."""
    status: StyleStatus = "active"
    """``"deprecated"`` announces a removal in a later version of the table."""

    def to_dict(self) -> dict[str, Any]:
        """The style's part of a price document (without its id, which is the key)."""
        return {
            "name": self.name,
            "cost": self.cost,
            "operation": self.operation,
            "status": self.status,
        }


@attrs.frozen
class Operation:
    """An API operation (an endpoint), billed by its styles or by a flat cost."""

    id: str
    """The operation id, such as ``"text-to-image"``."""
    name: str
    """The display name, such as ``"Text to Image"``."""
    method: str
    """The HTTP method, such as ``"POST"``."""
    path: str
    """The URL path, such as ``"/v2/image/generations"``."""
    cost: int | None = None
    """Flat tokens per call for a call without a style; ``None`` when not published."""
    default_style: str | None = None
    """The style used when a call names none (``"imagine-turbo"`` for text-to-image)."""

    def to_dict(self) -> dict[str, Any]:
        """The operation's part of a price document (without its id, which is the key)."""
        return {
            "name": self.name,
            "method": self.method,
            "path": self.path,
            "cost": self.cost,
            "default_style": self.default_style,
        }


def canonical_json(document: Mapping[str, Any]) -> str:
    """The canonical JSON text of a document: keys sorted, no insignificant whitespace."""
    return json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def _frozen_map(items: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(items))


def require_aware(when: object, name: str = "when") -> datetime:
    """``when`` if it is a timezone-aware datetime; otherwise a `TypeError`/`ValueError`."""
    if not isinstance(when, datetime):
        raise TypeError(f"{name} must be a timezone-aware datetime (got {type(when).__name__})")
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(
            f"{name} must be timezone-aware, e.g. datetime(..., tzinfo=UTC) (got {when})"
        )
    return when


def _utc(when: object) -> datetime:
    """``effective_from`` as an aware UTC datetime: a naive one is refused, not guessed."""
    aware = require_aware(when, "effective_from")
    try:
        return aware.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"effective_from {aware} is out of range in UTC") from None


def _check_references(table: PriceTable, _attribute: object, _value: object) -> None:
    """The invariants JSON Schema cannot say, for tables built with ``PriceTable(...)``.

    Documents are checked (with every problem and close matches) by `load_price_table`
    before they get here; this keeps a hand-built table from breaking them too.
    """
    found: list[tuple[list[str], str]] = []
    for key, style in table.styles.items():
        if style.id != key:
            found.append((["styles", key], f"holds the style of id {style.id!r}"))
        if style.operation not in table.operations:
            found.append(
                (["styles", key, "operation"], f"operation {style.operation!r} does not exist")
            )
    for key, operation in table.operations.items():
        if operation.id != key:
            found.append((["operations", key], f"holds the operation of id {operation.id!r}"))
        default = operation.default_style
        if default is None:
            continue
        owner = table.styles.get(default)
        if owner is None:
            message = f"style {default!r} does not exist"
        elif owner.operation != key:
            message = f"style {default!r} belongs to operation {owner.operation!r}, not {key!r}"
        else:
            continue
        found.append((["operations", key, "default_style"], message))
    if found:
        from imagine_billing.pricing.schema import pointer

        raise PriceSchemaError(Problem(pointer(parts), message) for parts, message in found)


@attrs.frozen
class PriceTable:
    """One version of one API's prices. Immutable: every change makes a new table.

    Build it with `load_price_table` or `PriceTable.from_dict`, which validate the document;
    ``PriceTable(...)`` itself trusts the types of its arguments, but refuses a naive
    ``effective_from`` (`ValueError`) and broken references between styles and operations
    (`PriceSchemaError`).
    """

    api: str
    """The API these prices are for, such as ``"imagine-api"``."""
    version: str
    """A semantic version ``MAJOR.MINOR.PATCH`` of the table."""
    effective_from: datetime = attrs.field(converter=_utc)
    """When these prices take effect: timezone-aware, kept in UTC (a naive datetime is
    refused, so the digest never depends on the machine's time zone)."""
    styles: Mapping[str, Style] = attrs.field(converter=_frozen_map, hash=False)
    """Styles by id (a read-only mapping)."""
    operations: Mapping[str, Operation] = attrs.field(
        converter=_frozen_map, hash=False, validator=_check_references
    )
    """Operations by id (a read-only mapping). Every style's operation is one of them, and
    every operation's default style exists and belongs to it."""
    source: str | None = None
    """Where the prices were taken from."""
    note: str | None = None
    """Free text: when and how the prices were taken."""
    unit: str = "token"
    """The billing unit; always ``"token"`` in format 1."""
    digest: str = attrs.field(init=False)
    """``"sha256:"`` and 64 hex digits of the canonical JSON: the same content gives the same
    digest whatever key order or spacing its file had; any change of cost changes it."""
    _costs: Mapping[str, int | None] = attrs.field(init=False, eq=False, hash=False, repr=False)

    def __attrs_post_init__(self) -> None:
        # Read-only, as the bundled table is shared by the whole process; a mappingproxy's
        # lookup costs about what a dict's does.
        costs = MappingProxyType({k: s.cost for k, s in self.styles.items()})
        object.__setattr__(self, "_costs", costs)
        digest = hashlib.sha256(self.to_json().encode("utf-8")).hexdigest()
        object.__setattr__(self, "digest", "sha256:" + digest)

    def __reduce__(self) -> tuple[Any, ...]:
        # Read-only mappings cannot be pickled: rebuild the table from its fields (for
        # pickle, copy.deepcopy and multiprocessing); the digest is computed again.
        return (
            PriceTable,
            (
                self.api,
                self.version,
                self.effective_from,
                dict(self.styles),
                dict(self.operations),
                self.source,
                self.note,
                self.unit,
            ),
        )

    def cost(self, style: str, count: int = 1) -> int:
        """Tokens for ``count`` calls in ``style``.

        ``table.cost("flux-dev", 4)`` is 60 on the published table.

        Raises:
            UnknownStyleError: the style is not in the table (with close matches).
            UnpricedError: the style has no published price.
            TypeError, ValueError: ``count`` is not an int from 1 to 2**53-1.
        """
        try:
            if count == 1 and count.__class__ is int:
                # The most common call, with nothing to multiply or bound; an unpriced
                # style's None goes to the slow path, which says so.
                unit = self._costs[style]
                if unit is not None:
                    return unit
            elif count.__class__ is int and 0 < count <= MAX_TOKENS:
                # An unpriced style's None makes this a TypeError: sorted out below.
                return self._costs[style] * count  # type: ignore[operator]
        except (KeyError, TypeError):
            pass
        return self._cost_slowly(style, count)

    def _cost_slowly(self, style: str, count: int) -> int:
        """`cost` for every case but the common one: says precisely what is wrong."""
        try:
            unit = self._costs[style]
        except (KeyError, TypeError):
            raise UnknownStyleError(style, self._costs, version=self.version) from None
        if unit is None:
            raise UnpricedError(style, version=self.version)
        return unit * check_count(count)

    def style(self, style: str) -> Style:
        """The `Style` of that id; raises `UnknownStyleError` with suggestions."""
        try:
            return self.styles[style]
        except (KeyError, TypeError):
            raise UnknownStyleError(style, self.styles, version=self.version) from None

    def operation(self, operation: str) -> Operation:
        """The `Operation` of that id; raises `UnknownStyleError` (kind operation)."""
        try:
            return self.operations[operation]
        except (KeyError, TypeError):
            raise UnknownStyleError(
                operation, self.operations, kind="operation", version=self.version
            ) from None

    def to_dict(self) -> dict[str, Any]:
        """The price document (format 1) of this table, every field spelled out."""
        document: dict[str, Any] = {
            "format": FORMAT,
            "api": self.api,
            "version": self.version,
            "effective_from": format_timestamp(self.effective_from),
            "unit": self.unit,
            "styles": {k: s.to_dict() for k, s in self.styles.items()},
            "operations": {k: o.to_dict() for k, o in self.operations.items()},
        }
        if self.source is not None:
            document["source"] = self.source
        if self.note is not None:
            document["note"] = self.note
        return document

    def to_json(self) -> str:
        """The canonical JSON text of `to_dict` (keys sorted, no insignificant whitespace)."""
        return canonical_json(self.to_dict())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PriceTable:
        """Validate a price document (a mapping) and build its table.

        Raises:
            PriceSchemaError: listing every problem of the document.
            TypeError: ``data`` is not a mapping (use `load_price_table` for a file).
        """
        if not isinstance(data, Mapping):
            raise TypeError(
                "from_dict takes a mapping holding a price document "
                f"(got {type(data).__name__}); load a file with load_price_table(path)"
            )
        return checked_table(*plain(data), None)

    def with_overrides(self, patch: Mapping[str, Any], *, version: str) -> PriceTable:
        """A new table: this one's document with a JSON Merge Patch (RFC 7396) applied.

        ``table.with_overrides({"styles": {"sdxl-1.0": {"cost": 2}}}, version="1.0.1")``
        prices sdxl-1.0 at 2 tokens. This table is left untouched. The result is validated
        as any document is.

        In a merge patch a null removes a key (``{"styles": {"anime": None}}`` removes the
        style), so a patch cannot make a price unknown: ``{"cost": None}`` removes the
        required cost and is refused. To unprice a style, edit ``table.to_dict()`` (set its
        ``"cost"`` to ``None``) and load it with `PriceTable.from_dict`.

        Raises:
            PriceSchemaError: the patched document is invalid, ``version`` is this table's
                own (a changed table needs a version of its own), or the patch sets
                another ``"version"`` than the keyword.
        """
        document = patched_document(self.to_dict(), patch, version=version,
                                    current=self.version)
        try:
            return checked_table(*plain(document), None)
        except PriceSchemaError as error:
            raise with_null_hints(error, patch) from None


def check_count(count: object) -> int:
    """``count`` if it is an int >= 1; otherwise a `TypeError` or `ValueError` naming it."""
    return positive_int(count, "count")


def checked_table(document: object, problems: list[Problem], source: str | None) -> PriceTable:
    """The table of a parsed ``document`` if it has no problem (beyond ``problems``, found
    while parsing it), else `PriceSchemaError` listing them all."""
    problems = problems + validate_document(document, source, skip={p.path for p in problems})
    if problems:
        raise PriceSchemaError(problems, source=source)
    assert isinstance(document, Mapping)
    return build_table(document)


def build_table(document: Mapping[str, Any]) -> PriceTable:
    """A table from a document already known to be valid (no checks here)."""
    default_op = DEFAULT_OPERATION
    styles = {
        key: Style(
            id=key,
            name=value["name"],
            cost=value["cost"],
            operation=value.get("operation", default_op),
            status=value.get("status", "active"),
        )
        for key, value in document["styles"].items()
    }
    operations = {
        key: Operation(
            id=key,
            name=value["name"],
            method=value["method"],
            path=value["path"],
            cost=value.get("cost"),
            default_style=value.get("default_style"),
        )
        for key, value in document["operations"].items()
    }
    return PriceTable(
        api=document["api"],
        version=document["version"],
        effective_from=parse_timestamp(document["effective_from"]),
        styles=styles,
        operations=operations,
        source=document.get("source"),
        note=document.get("note"),
        unit=document.get("unit", "token"),
    )
