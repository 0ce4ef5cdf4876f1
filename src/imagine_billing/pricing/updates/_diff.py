"""What changed between two price tables: `diff_tables` and the `TableDiff` it returns."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import attrs

from imagine_billing._checks import format_timestamp, shown
from imagine_billing.pricing.model import PriceTable

if TYPE_CHECKING:
    from fractions import Fraction


Bump = Literal["none", "patch", "minor", "major"]

BUMPS: tuple[Bump, ...] = ("none", "patch", "minor", "major")
"""The levels of a version change, smallest first."""

_LEVEL = {bump: index for index, bump in enumerate(BUMPS)}


@attrs.frozen
class Repricing:
    """A cost that changed between two tables, for a style or an operation's flat cost.

    ``Repricing("style", "flux-dev", 15, 10).ratio == Fraction(2, 3)``.
    """

    kind: Literal["style", "operation"]
    """What was repriced: a style, or an operation's flat cost."""
    id: str
    """The style or operation id."""
    old: int | None
    """Tokens per call in the old table; ``None`` when it had no published price."""
    new: int | None
    """Tokens per call in the new table; ``None`` when it has no published price."""

    @property
    def path(self) -> str:
        """The JSON pointer of the cost, such as ``"/styles/flux-dev/cost"``."""
        return _pointer("styles" if self.kind == "style" else "operations", self.id, "cost")

    @property
    def ratio(self) -> Fraction | None:
        """``new / old`` exactly; ``None`` when either side is unpriced or ``old`` is 0 (0 -> N
        is an unbounded rise). 15 -> 10 is 2/3; 5 -> 0 is 0."""
        if self.old is None or self.new is None or self.old == 0:
            return None
        from fractions import Fraction

        return Fraction(self.new, self.old)

    @property
    def rise(self) -> bool:
        """The price went up, or a priced entry became unpriced."""
        if self.old is None:
            return False
        return self.new is None or self.new > self.old

    @property
    def cut(self) -> bool:
        """The price went down, or an unpriced entry became priced."""
        if self.old is None:
            return self.new is not None
        return self.new is not None and self.new < self.old

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; ``ratio`` is exact text such as ``"2/3"`` (or ``null``)."""
        ratio = self.ratio
        return {
            "kind": self.kind,
            "id": self.id,
            "path": self.path,
            "old": self.old,
            "new": self.new,
            "ratio": None if ratio is None else str(ratio),
        }


@attrs.frozen
class StatusChange:
    """A style whose status changed, such as ``active -> deprecated``."""

    id: str
    """The style id."""
    old: str
    """The status in the old table."""
    new: str
    """The status in the new table."""

    @property
    def path(self) -> str:
        """The JSON pointer of the status, such as ``"/styles/anime/status"``."""
        return _pointer("styles", self.id, "status")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"id": self.id, "path": self.path, "old": self.old, "new": self.new}


@attrs.frozen
class MetadataChange:
    """Any other changed value: a name, a method, a path, a default style, the source..."""

    path: str
    """The JSON pointer of the value, such as ``"/operations/text-to-image/default_style"``."""
    old: Any
    """The old value (``None`` when absent)."""
    new: Any
    """The new value (``None`` when absent)."""
    old_cost: int | None = None
    """For a default style: what a call to the operation that names no style cost in the old
    table, which is the default style's cost, else the operation's flat cost (``None`` when
    unpriced, and for other changes)."""
    new_cost: int | None = None
    """For a default style: the same in the new table. Adding default style ``up-hd`` (10
    tokens) to an operation of flat cost 4 gives ``old_cost=4, new_cost=10``."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        document = {"path": self.path, "old": self.old, "new": self.new}
        if _is_default(self.path):
            document.update(old_cost=self.old_cost, new_cost=self.new_cost)
        return document

    def bump(self) -> Bump:
        """The version bump this change needs.

        A default style prices every call that names no style, so changing it is a change
        of their price (``old_cost -> new_cost``): dearer or unpriced is *major*, cheaper or
        newly priced is *minor*, the same cost is *patch*. When neither side prices them, a
        new default is *minor* and any other change (a switch, a default dropped) *major*. A
        style moved to another operation is *major* (calls naming it under the old operation
        break). Anything else is *patch*.
        """
        if _is_move(self.path):
            return "major"
        if not _is_default(self.path):
            return "patch"
        before, after = self.old_cost, self.new_cost
        if before is None:
            return "minor" if after is not None or self.old is None else "major"
        if after is None or after > before:
            return "major"
        return "minor" if after < before else "patch"


@attrs.frozen
class TableDiff:
    """What changed from one price table to another; build it with `diff_tables`.

    Every tuple is sorted by id (or path), so equal inputs give equal diffs.
    """

    old_version: str
    """The version of the old table."""
    new_version: str
    """The version of the new table."""
    old_effective_from: datetime
    """When the old table took effect."""
    new_effective_from: datetime
    """When the new table takes effect."""
    styles_added: tuple[str, ...] = ()
    """Style ids only in the new table."""
    styles_removed: tuple[str, ...] = ()
    """Style ids only in the old table."""
    operations_added: tuple[str, ...] = ()
    """Operation ids only in the new table."""
    operations_removed: tuple[str, ...] = ()
    """Operation ids only in the old table."""
    repriced: tuple[Repricing, ...] = ()
    """Costs that changed, styles first, for entries in both tables."""
    status_changes: tuple[StatusChange, ...] = ()
    """Styles in both tables whose status changed."""
    metadata: tuple[MetadataChange, ...] = ()
    """Other changed values (metadata), by path: names, operations of styles, methods,
    paths, default styles, ``api``, ``unit``, ``source``, ``note``."""

    @property
    def content_changed(self) -> bool:
        """Anything but the version and ``effective_from`` changed."""
        return bool(
            self.styles_added or self.styles_removed or self.operations_added
            or self.operations_removed or self.repriced or self.status_changes or self.metadata
        )

    @property
    def empty(self) -> bool:
        """Nothing changed at all, not even the version or ``effective_from``."""
        return (
            not self.content_changed
            and self.old_version == self.new_version
            and self.old_effective_from == self.new_effective_from
        )

    @property
    def required_bump(self) -> Bump:
        """The smallest version bump these changes require (see `RULES`, ``semver-bump``)."""
        return max((level for level, _ in self.bump_reasons()), key=_LEVEL.__getitem__,
                   default="none")

    def bump_reasons(self) -> tuple[tuple[Bump, str], ...]:
        """Each change with the bump it requires, largest first: ``("major", "style 'anime'
        was removed")``."""
        reasons: list[tuple[Bump, str]] = []
        reasons.extend(("major", f"style {s!r} was removed") for s in self.styles_removed)
        reasons.extend(("major", f"operation {o!r} was removed") for o in self.operations_removed)
        reasons.extend(
            ("major", f"{r.kind} {r.id!r} {_describe_repricing(r)}")
            for r in self.repriced if r.rise
        )
        reasons.extend(
            ("major", f"style {_id_of(c.path)!r} moved from operation {c.old!r} to {c.new!r}")
            for c in self.metadata if _is_move(c.path)
        )
        reasons.extend(
            (c.bump(), _describe_default(c))
            for c in self.metadata if _is_default(c.path) and c.bump() != "patch"
        )
        reasons.extend(("minor", f"style {s!r} was added") for s in self.styles_added)
        reasons.extend(("minor", f"operation {o!r} was added") for o in self.operations_added)
        reasons.extend(
            ("minor", f"{r.kind} {r.id!r} {_describe_repricing(r)}")
            for r in self.repriced if not r.rise
        )
        reasons.extend(
            ("minor", f"style {s.id!r} went from {s.old} to {s.new}") for s in self.status_changes
        )
        reasons.extend(
            ("patch", f"{c.path} changed from {shown(c.old)} to {shown(c.new)}")
            for c in self.metadata if c.bump() == "patch"
        )
        return tuple(reasons)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the whole diff."""
        return {
            "old_version": self.old_version,
            "new_version": self.new_version,
            "old_effective_from": format_timestamp(self.old_effective_from),
            "new_effective_from": format_timestamp(self.new_effective_from),
            "required_bump": self.required_bump,
            "styles_added": list(self.styles_added),
            "styles_removed": list(self.styles_removed),
            "operations_added": list(self.operations_added),
            "operations_removed": list(self.operations_removed),
            "repriced": [r.to_dict() for r in self.repriced],
            "status_changes": [s.to_dict() for s in self.status_changes],
            "metadata": [c.to_dict() for c in self.metadata],
        }


def diff_tables(old: PriceTable, new: PriceTable) -> TableDiff:
    """What changed from ``old`` to ``new``.

    With ``new`` the published table where flux-dev costs 10 instead of 15, the diff holds
    one `Repricing` ``("style", "flux-dev", 15, 10)`` with ratio 2/3, and nothing else but
    the version and date.

    Args:
        old: The table in force before.
        new: The proposed table.

    Returns:
        The `TableDiff`; ``diff_tables(t, t).empty`` is true.
    """
    styles_added = tuple(sorted(set(new.styles) - set(old.styles)))
    styles_removed = tuple(sorted(set(old.styles) - set(new.styles)))
    operations_added = tuple(sorted(set(new.operations) - set(old.operations)))
    operations_removed = tuple(sorted(set(old.operations) - set(new.operations)))
    repriced: list[Repricing] = []
    statuses: list[StatusChange] = []
    changes: list[MetadataChange] = []
    for key in ("api", "unit", "source", "note"):
        before, after = getattr(old, key), getattr(new, key)
        if before != after:
            changes.append(MetadataChange(_pointer(key), before, after))
    for sid in sorted(set(old.styles) & set(new.styles)):
        a, b = old.styles[sid], new.styles[sid]
        if a.cost != b.cost:
            repriced.append(Repricing("style", sid, a.cost, b.cost))
        if a.status != b.status:
            statuses.append(StatusChange(sid, a.status, b.status))
        changes.extend(
            MetadataChange(_pointer("styles", sid, field), getattr(a, field), getattr(b, field))
            for field in ("name", "operation") if getattr(a, field) != getattr(b, field)
        )
    for oid in sorted(set(old.operations) & set(new.operations)):
        p, q = old.operations[oid], new.operations[oid]
        if p.cost != q.cost:
            repriced.append(Repricing("operation", oid, p.cost, q.cost))
        changes.extend(
            MetadataChange(
                _pointer("operations", oid, field), getattr(p, field), getattr(q, field)
            )
            for field in ("name", "method", "path")
            if getattr(p, field) != getattr(q, field)
        )
        if p.default_style != q.default_style:
            changes.append(MetadataChange(
                _pointer("operations", oid, "default_style"), p.default_style, q.default_style,
                _no_style_cost(old, oid), _no_style_cost(new, oid)))
    return TableDiff(
        old_version=old.version,
        new_version=new.version,
        old_effective_from=old.effective_from,
        new_effective_from=new.effective_from,
        styles_added=styles_added,
        styles_removed=styles_removed,
        operations_added=operations_added,
        operations_removed=operations_removed,
        repriced=tuple(repriced),
        status_changes=tuple(statuses),
        metadata=tuple(sorted(changes, key=lambda c: c.path)),
    )


def _describe_repricing(r: Repricing) -> str:
    if r.old is None:
        return f"gained a price ({_tokens(r.new)})"
    if r.new is None:
        return f"lost its price (was {_tokens(r.old)})"
    ratio = r.ratio
    shown = "" if ratio is None else f", x{format_ratio(ratio)}"
    verb = "rose" if r.new > r.old else "fell"
    return f"{verb} from {r.old} to {r.new} tokens{shown}"


def _tokens(count: int | None) -> str:
    return "unpriced" if count is None else f"{count} token{'s' if count != 1 else ''}"


def format_ratio(ratio: Fraction, places: int = 2) -> str:
    """A ratio for people: at most ``places`` decimals, trailing zeros dropped.

    ``format_ratio(Fraction(2, 3)) == "0.67"``; ``format_ratio(Fraction(3, 2)) == "1.5"``.
    Decimal arithmetic, rounded half-even; never a float.
    """
    from decimal import Decimal

    exact = Decimal(ratio.numerator) / Decimal(ratio.denominator)
    value = exact.quantize(Decimal(1).scaleb(-places))
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _is_move(path: str) -> bool:
    return path.startswith("/styles/") and path.endswith("/operation")


def _is_default(path: str) -> bool:
    return path.startswith("/operations/") and path.endswith("/default_style")


def _no_style_cost(table: PriceTable, operation: str) -> int | None:
    """What a call to ``operation`` that names no style costs, as `estimator.unit_cost` prices
    it: the default style's cost, else the operation's flat cost; ``None`` when unpriced."""
    op = table.operations[operation]
    if op.default_style is None:
        return op.cost
    style = table.styles.get(op.default_style)
    return None if style is None else style.cost


def _billed_at(cost: int | None, style: str | None) -> str:
    """How calls that name no style are billed: ``"'up-hd' (10 tokens)"``, ``"the flat cost
    (4 tokens)"``, ``"no price (no default style, no flat cost)"``."""
    if style is not None:
        return f"{style!r} ({_tokens(cost)})"
    if cost is not None:
        return f"the flat cost ({_tokens(cost)})"
    return "no price (no default style, no flat cost)"


def _describe_default(change: MetadataChange) -> str:
    return (f"calls to operation {_id_of(change.path)!r} that name no style went from "
            f"{_billed_at(change.old_cost, change.old)} to "
            f"{_billed_at(change.new_cost, change.new)}")


def _id_of(path: str) -> str:
    return path.split("/")[2].replace("~1", "/").replace("~0", "~")


def _pointer(*parts: str) -> str:
    return "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts)
