"""Price-table updates: what changed (`diff_tables`) and whether it is sane (`check_update`).

A team that keeps its own copy of the price table, or receives a new bundled one, runs these in
CI before the new table is merged: the diff says what changed, the findings say which of the
update rules (semantic versioning, deprecation before removal, prices that stay known, bounded
increases) the new version breaks. `check_book` runs the same rules over every consecutive pair
of a `PriceBook`.

Ratios are `fractions.Fraction`: 15 -> 10 tokens is exactly 2/3, and a policy's ``1.5`` is
exactly 3/2, so comparisons never go through floats.

Only attrs and light standard modules are imported at the top (`decimal` and `fractions` only
when a ratio is computed), so importing this module is cheap.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, Protocol

import attrs

from imagine_billing._checks import NumberProblem, close_names, exact_number, read_bounded
from imagine_billing.errors import PolicyError
from imagine_billing.pricing.model import PriceTable, format_timestamp

if TYPE_CHECKING:
    from fractions import Fraction

    from imagine_billing.pricing.book import PriceBook

__all__ = [
    "BUMPS",
    "RULES",
    "Finding",
    "MetadataChange",
    "Repricing",
    "StatusChange",
    "TableDiff",
    "UpdatePolicy",
    "check_book",
    "check_update",
    "diff_tables",
    "format_ratio",
    "load_policy",
]

Severity = Literal["error", "warning"]
Bump = Literal["none", "patch", "minor", "major"]

BUMPS: tuple[Bump, ...] = ("none", "patch", "minor", "major")
"""The levels of a version change, smallest first."""

RULES: Mapping[str, Severity] = MappingProxyType({
    "same-api": "error",
    "version-increases": "error",
    "semver-bump": "error",
    "effective-from-forward": "error",
    "deprecate-before-remove": "error",
    "priced-stays-priced": "error",
    "max-increase": "error",
    "default-style-exists": "error",
    "default-style-changed": "warning",
    "version-gap": "warning",
    "published-unchanged": "error",
    "no-back-dating": "error",
    "withdrawn-version": "warning",
})
"""Every rule id and its default severity.

- ``same-api``: both tables price the same API.
- ``version-increases``: the new version is a semantic version greater than the old one.
- ``semver-bump``: the version bump is at least what the changes require: *major* for a
  removed style or operation, a cost rise (including priced -> unpriced) or a style moved to
  another operation; *minor* for an addition, a cost cut (including unpriced -> priced) or a
  status change; *patch* for metadata only (names, methods, paths, source, note). A changed
  default style reprices the calls to its operation that name no style, so it counts by
  their cost (see `MetadataChange.bump`). Identical content under a new version is fine.
- ``effective-from-forward``: the new ``effective_from`` is later than the old one.
- ``deprecate-before-remove``: a removed style had status ``"deprecated"`` in the old table.
- ``priced-stays-priced``: a style or operation with a price never loses it, and neither do
  the calls to an operation that name no style when its default style changes (an unknown
  price is not a free one, and estimates of it would start failing).
- ``max-increase``: no cost rises by more than the policy's ``max_increase`` ratio, the cost
  of calls that name no style included (only checked when the policy sets one). A policy key
  that names no style or operation of either table is reported as a warning whatever this
  rule's severity: it is a stale (or mistyped) line of the policy, not a price rise.
- ``default-style-exists``: see `check_update`.
- ``default-style-changed``: calls that name no style are now billed at another style (or
  at the flat cost instead of a style, or the reverse).
- ``version-gap``: the new version is not the next patch, minor or major of the old one
  (1.0.0 then 1.1.5 or 3.0.0), as when a scheduled version was withdrawn.
- ``published-unchanged``, ``no-back-dating``, ``withdrawn-version``: `check_book` with a
  ``previous`` book only. ``no-back-dating``: a version that was not in ``previous`` takes
  effect at or before ``now``, so it re-prices calls already made.
"""


class _Report(Protocol):
    def __call__(self, rule: str, path: str, message: str, *, warning: bool = False) -> None:
        """Record a finding of ``rule`` at the policy's severity (at most a warning when
        ``warning``); nothing when the policy turns the rule off."""


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
            ("patch", f"{c.path} changed from {_show(c.old)} to {_show(c.new)}")
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


@attrs.frozen(order=True)
class Finding:
    """One rule an update breaks (or one thing a reviewer should see).

    ``Finding("deprecate-before-remove", "error", "/styles/anime", "style 'anime' was removed
    without being deprecated first (1.0.0 -> 2.0.0)")``.
    """

    rule: str
    """The rule id, one of `RULES`."""
    severity: Severity
    """``"error"`` fails the check (exit code 1); ``"warning"`` is reported only."""
    path: str
    """A JSON pointer into the new table's document, such as ``"/styles/anime"``; in the
    old one for what was removed."""
    message: str
    """What is wrong, naming the values and the two versions."""
    version: str | None = None
    """The version of the table the finding is about (the newer of the pair); set by
    `check_book`, where several pairs are checked."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        document = {"rule": self.rule, "severity": self.severity, "path": self.path,
                    "message": self.message}
        if self.version is not None:
            document["version"] = self.version
        return document

    def __str__(self) -> str:
        return f"{self.severity}: {self.path or '(document)'}: {self.message} [{self.rule}]"


RuleSetting = Literal["error", "warning", "off"]
_SETTINGS: tuple[RuleSetting, ...] = ("error", "warning", "off")


def _rules(value: Mapping[str, str] | None) -> Mapping[str, RuleSetting]:
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        raise PolicyError(f"rules must be an object of rule id -> \"error\", \"warning\" or "
                          f"\"off\" (got {type(value).__name__})")
    problems: list[str] = []
    result: dict[str, RuleSetting] = {}
    for rule, setting in value.items():
        if rule not in RULES:
            problems.append(f"unknown rule {rule!r}{_suggest(rule, RULES)}")
        elif setting not in _SETTINGS:
            problems.append(f"rule {rule!r} must be \"error\", \"warning\" or \"off\" "
                            f"(got {_json(setting)}){_suggest(setting, _SETTINGS, listing=False)}")
        else:
            result[rule] = _SETTINGS[_SETTINGS.index(setting)]
    if problems:
        raise PolicyError("invalid update policy: " + "; ".join(problems))
    return MappingProxyType(result)


def _ratios(value: Mapping[str, object] | None) -> Mapping[str, Fraction]:
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        raise PolicyError("max_increase must be an object of style id (or \"*\" for every "
                          f"style) -> ratio (got {type(value).__name__})")
    problems: list[str] = []
    result: dict[str, Fraction] = {}
    for key, raw in value.items():
        if not isinstance(key, str) or not key:
            problems.append(f"max_increase keys must be style ids or \"*\" (got {key!r})")
            continue
        ratio = _ratio(raw)
        if ratio == "not-a-number":
            problems.append(f"max_increase[{key!r}] must be a ratio >= 1 given as a number or "
                            f"a string such as \"1.5\" or \"3/2\" (got {_json(raw)})")
        elif ratio == "below-one":
            problems.append(f"max_increase[{key!r}] must be >= 1 (1.5 allows a rise of 50%, 1 "
                            f"allows none; got {_json(raw)})")
        elif ratio == "too-large":
            problems.append(f"max_increase[{key!r}] must be at most {_MAX_RATIO} (a larger "
                            f"limit allows any rise: leave the key out; got {_json(raw)})")
        elif ratio == "too-precise":
            problems.append(f"max_increase[{key!r}] must have at most {_MAX_DIGITS} "
                            f"significant digits, such as \"1.5\" (got {_json(raw)})")
        else:
            result[key] = ratio
    if problems:
        raise PolicyError("invalid update policy: " + "; ".join(problems))
    return MappingProxyType(result)


_MAX_RATIO = 10**6
"""The largest ``max_increase`` a policy may set: a million-fold rise is no limit at all."""
_MAX_DIGITS = 30
"""The most significant digits a ``max_increase`` may have (``"1.5"`` has two)."""

_RatioProblem = Literal["not-a-number", "below-one", "too-large", "too-precise"]


def _ratio(raw: object) -> Fraction | _RatioProblem:
    """The exact ratio ``raw`` stands for, or what is wrong with it (`exact_number` bounds
    its size before any Fraction is built: ``1e999999999`` would take for ever to make)."""
    value = exact_number(raw, digits=_MAX_DIGITS, exponents=(0, len(str(_MAX_RATIO)) - 1))
    if isinstance(value, str):
        return _RATIO_PROBLEMS[value]
    if value < 1:
        return "below-one"
    return "too-large" if value > _MAX_RATIO else value


_RATIO_PROBLEMS: dict[NumberProblem, _RatioProblem] = {
    "not-a-number": "not-a-number", "negative": "below-one", "too-small": "below-one",
    "too-large": "too-large", "too-precise": "too-precise"}


@attrs.frozen
class UpdatePolicy:
    """Which update rules apply, how severe each is, and the largest allowed increases.

    ``UpdatePolicy()`` applies every rule at its default severity (`RULES`) and sets no
    increase limit. ``UpdatePolicy(rules={"deprecate-before-remove": "warning"},
    max_increase={"*": "1.5", "flux-dev": 2})`` lets any style rise by half at most, flux-dev
    double, and only warns about removals without deprecation.

    Raises:
        PolicyError: an unknown rule id or setting, or a ratio that is not a number >= 1.
    """

    rules: Mapping[str, RuleSetting] = attrs.field(factory=dict, converter=_rules, hash=False)
    """Severity by rule id (``"error"``, ``"warning"`` or ``"off"``), over the defaults."""
    max_increase: Mapping[str, Fraction] = attrs.field(
        factory=dict, converter=_ratios, hash=False
    )
    """The largest allowed ``new / old`` cost ratio by style (or operation) id; ``"*"``
    applies to every id not named. ``{"*": Fraction(3, 2)}``: 10 -> 15 passes, 10 -> 16
    does not."""

    def __reduce__(self) -> tuple[type[UpdatePolicy], tuple[dict[str, str], dict[str, Fraction]]]:
        return UpdatePolicy, (dict(self.rules), dict(self.max_increase))  # for pickle, deepcopy

    def severity(self, rule: str) -> Severity | None:
        """The severity of ``rule`` under this policy; ``None`` when it is off."""
        setting = self.rules.get(rule, RULES[rule])
        return None if setting == "off" else setting

    def limit(self, key: str) -> Fraction | None:
        """The ``max_increase`` that applies to a style or operation id, if any."""
        return self.max_increase.get(key, self.max_increase.get("*"))

    @classmethod
    def from_dict(cls, data: object, *, source: str | None = None) -> UpdatePolicy:
        """A policy from its JSON document.

        ``{"rules": {"semver-bump": "error", "max-increase": "warning"},
        "max_increase": {"*": 1.5, "flux-dev": "2"}}``; both keys are optional.

        Raises:
            PolicyError: an unknown key, rule id or setting, or a bad ratio; the message
                names every one, with close matches.
        """
        where = f"{source}: " if source else ""
        if not isinstance(data, Mapping):
            raise PolicyError(f"{where}an update policy must be a JSON object "
                              f"(got {type(data).__name__})")
        unknown = [key for key in data if key not in ("rules", "max_increase")]
        if unknown:
            raise PolicyError(where + "invalid update policy: " + "; ".join(
                f"unknown key {key!r}{_suggest(key, ('rules', 'max_increase'))}"
                for key in unknown))
        try:
            return cls(rules=data.get("rules"), max_increase=data.get("max_increase"))
        except PolicyError as error:
            if not where:
                raise
            raise PolicyError(where + str(error)) from None


def load_policy(path: str | os.PathLike[str]) -> UpdatePolicy:
    """Read an `UpdatePolicy` from a JSON file (see `UpdatePolicy.from_dict`).

    Numbers are read as decimals, never floats: ``1.1`` is exactly 11/10.

    Raises:
        PolicyError: the file cannot be read, is not JSON, or is not a valid policy.
    """
    from decimal import Decimal

    name = os.fspath(path)

    def refuse(text: str) -> object:
        raise ValueError(f"{text} is not a number JSON allows")

    try:
        text = read_bounded(name).decode("utf-8-sig")
        data = json.loads(text, parse_float=Decimal, parse_constant=refuse)
    except OSError as error:
        raise PolicyError(f"cannot read policy file {name}: {error.strerror or error}") from None
    except UnicodeDecodeError as error:
        raise PolicyError(f"policy file {name} is not UTF-8 text: {error.reason}") from None
    except ValueError as error:  # json.JSONDecodeError is one
        raise PolicyError(f"policy file {name} is not JSON: {error}") from None
    except RecursionError:
        raise PolicyError(f"policy file {name} is not JSON this library reads: nested too "
                          "deeply") from None
    return UpdatePolicy.from_dict(data, source=name)


def check_update(
    old: PriceTable, new: PriceTable, policy: UpdatePolicy | None = None
) -> tuple[Finding, ...]:
    """Check that ``new`` is a sane successor of ``old`` under ``policy``.

    Identical tables (the same digest) give no findings: there is nothing to update.

    A call that names no style is billed at the operation's default style, else at its flat
    cost (as `imagine_billing.estimator.unit_cost` prices it). A changed default style is
    therefore a repricing of those calls, at ``/operations/<id>/default_style``: the
    ``semver-bump``, ``priced-stays-priced`` and ``max-increase`` rules (the operation id's
    limit) apply to their old and new cost, and ``default-style-changed`` warns with both.

    The ``default-style-exists`` rule catches three things: an operation of ``new`` whose
    ``default_style`` is not in ``new`` or belongs to another operation (`PriceTable` refuses
    such a table, so only one built with validators disabled can have it; the rule checks
    it again rather than trust that), and an operation that had a default style and has
    neither a default style nor a flat cost any more (calls that name no style would stop
    resolving).

    ``version-gap`` warns when the new version skips versions (1.0.0 -> 1.1.5): the usual
    cause is a scheduled version that was withdrawn, and every copy of it must go too.

    Args:
        old: The table in force before.
        new: The proposed table.
        policy: The rules and limits; ``None`` or ``UpdatePolicy()`` for the defaults.

    Returns:
        The findings, errors first, then by path and rule.
    """
    policy = UpdatePolicy() if policy is None else policy
    if old.digest == new.digest:
        return ()
    diff = diff_tables(old, new)
    span = f"({old.version} -> {new.version})"
    found: list[Finding] = []

    def report(rule: str, path: str, message: str, *, warning: bool = False) -> None:
        severity = policy.severity(rule)
        if severity is not None:
            found.append(Finding(rule, "warning" if warning else severity, path, message))

    if old.api != new.api:
        report("same-api", "/api", f"the tables price different APIs ({old.api!r} -> "
                                   f"{new.api!r}): compare versions of one API's table {span}")
    _check_version(diff, report)
    if new.effective_from <= old.effective_from:
        report("effective-from-forward", "/effective_from",
               f"effective_from {format_timestamp(old.effective_from)} -> "
               f"{format_timestamp(new.effective_from)} does not move forward: a new version "
               f"takes effect after the one it replaces {span}")
    for sid in diff.styles_removed:
        if old.styles[sid].status != "deprecated":
            report("deprecate-before-remove", _pointer("styles", sid),
                   f"style {sid!r} was removed without being deprecated first {span}: set its "
                   f"status to \"deprecated\" in one version, remove it in a later one")
    for r in diff.repriced:
        if r.old is not None and r.new is None:
            report("priced-stays-priced", r.path,
                   f"{r.kind} {r.id!r} was priced at {_tokens(r.old)} and has no price in "
                   f"{new.version}: an unknown price is not a free one, and estimates of it "
                   f"would fail {span}")
    for c in _default_changes(diff):
        # A dropped default with no flat cost to fall back on is default-style-exists's, and
        # a default style missing from the new table too: one finding for one problem.
        if c.old_cost is not None and c.new_cost is None and c.new in new.styles:
            report("priced-stays-priced", c.path,
                   f"calls to operation {_id_of(c.path)!r} that name no style were billed at "
                   f"{_billed_at(c.old_cost, c.old)} and have no price in {new.version}, "
                   f"whose default style {c.new!r} is unpriced: an unknown price is not a "
                   f"free one, and estimates of them would fail {span}")
    known = set(old.styles) | set(new.styles) | set(old.operations) | set(new.operations)
    _check_increases(diff, known, policy, report, span, old=old, new=new)
    _check_default_styles(old, new, report, span)
    return tuple(sorted(found, key=lambda f: (f.severity != "error", f.path, f.rule)))


def _check_version(diff: TableDiff, report: _Report) -> None:
    span = f"({diff.old_version} -> {diff.new_version})"
    before, after = _semver(diff.old_version), _semver(diff.new_version)
    if before is None or after is None:
        bad = diff.old_version if before is None else diff.new_version
        report("version-increases", "/version",
               f"version {bad!r} is not a semantic version MAJOR.MINOR.PATCH {span}")
        return
    if after <= before:
        what = "stays the same" if after == before else "goes backwards"
        report("version-increases", "/version",
               f"version {diff.old_version} -> {diff.new_version} {what}, but the table "
               f"changed: give the new table a greater version")
        return
    if after not in _successors(before):
        expected = ", ".join(".".join(map(str, v)) for v in _successors(before))
        report("version-gap", "/version",
               f"version {diff.new_version} follows {diff.old_version}, skipping the versions "
               f"between (the next would be {expected}): if one was scheduled and withdrawn, "
               "make sure no copy of it still prices calls")
    bump: Bump = "major" if after[0] > before[0] else "minor" if after[1] > before[1] else "patch"
    reasons = diff.bump_reasons()
    needed = diff.required_bump
    if _LEVEL[bump] < _LEVEL[needed]:
        why = [text for level, text in reasons if level == needed]
        more = f" (and {len(why) - 1} more)" if len(why) > 1 else ""
        report("semver-bump", "/version",
               f"version {diff.old_version} -> {diff.new_version} is a {bump} bump, but "
               f"{why[0]}{more}: that needs a {needed} bump, such as "
               f"{_next_version(before, needed)}")


def _check_increases(
    diff: TableDiff, known: set[str], policy: UpdatePolicy, report: _Report, span: str, *,
    old: PriceTable, new: PriceTable,
) -> None:
    if not policy.max_increase:
        return
    for key in sorted(policy.max_increase):
        if key != "*" and key not in known:
            # A warning: a style retired versions ago must not fail every later update.
            report("max-increase", "",
                   f"the policy sets max_increase for {key!r}, which is in neither table: "
                   f"remove it from the policy, or correct it{_suggest(key, sorted(known))} "
                   f"{span}", warning=True)
    for r in diff.repriced:
        _check_rise(f"{r.kind} {r.id!r}", r.path, r.old, r.new, limit=policy.limit(r.id),
                    report=report, span=span)
    for c in _default_changes(diff):
        oid = _id_of(c.path)
        why = f": its default style went from {_default_name(c.old)} to {_default_name(c.new)}"
        _check_rise(f"calls to operation {oid!r} that name no style", c.path, c.old_cost,
                    c.new_cost, limit=policy.limit(oid), why=why, report=report, span=span)
    # An operation's own limit also covers a repricing of the default style it keeps: calls
    # that name no style pay that style's cost. (Without a limit of its own, the style's
    # limit, or "*", already applied to the repricing above.)
    for r in diff.repriced:
        if r.kind != "style":
            continue
        for oid in sorted(policy.max_increase):
            before, after = old.operations.get(oid), new.operations.get(oid)
            if before is None or after is None:
                continue
            if before.default_style == after.default_style == r.id:
                why = f": its default style {r.id!r} was repriced"
                _check_rise(f"calls to operation {oid!r} that name no style",
                            f"/styles/{r.id}/cost", r.old, r.new,
                            limit=policy.limit(oid), why=why, report=report, span=span)


def _check_rise(
    what: str, path: str, old: int | None, new: int | None, *, limit: Fraction | None,
    why: str = "", report: _Report, span: str,
) -> None:
    if limit is None or old is None or new is None or new <= old:
        return
    from fractions import Fraction

    ratio = Fraction(new, old) if old else None
    if ratio is not None and ratio <= limit:
        return
    shown = "an unbounded rise from 0" if ratio is None else f"x{format_ratio(ratio)}"
    if ratio is not None and format_ratio(ratio) == format_ratio(limit):
        shown = f"x{ratio}"  # rounding would hide the excess: 1501/1000, not x1.5
    report("max-increase", path,
           f"{what} rose from {_tokens(old)} to {_tokens(new)} ({shown}), above the "
           f"policy's max_increase of x{format_ratio(limit)}{why} {span}")


def _default_changes(diff: TableDiff) -> Iterator[MetadataChange]:
    return (c for c in diff.metadata if _is_default(c.path))


def _default_name(style: str | None) -> str:
    return "none (the flat cost)" if style is None else repr(style)


def _check_default_styles(old: PriceTable, new: PriceTable, report: _Report, span: str) -> None:
    for oid, operation in sorted(new.operations.items()):
        where = _pointer("operations", oid, "default_style")
        default = operation.default_style
        before = old.operations.get(oid)
        # Warn only when calls naming no style resolved before (to a style or the flat cost):
        # a first way to bill them is an addition, not a change.
        changed = before is not None and before.default_style != default and (
            before.default_style is not None or before.cost is not None)
        if default is None:
            if before is not None and changed and operation.cost is None:
                report("default-style-exists", where,
                       f"operation {oid!r} no longer has a default style (it was "
                       f"{before.default_style!r}) and has no flat cost: calls that name no "
                       f"style would not resolve {span}")
                continue
        else:
            style = new.styles.get(default)
            if style is None:
                report("default-style-exists", where,
                       f"operation {oid!r} names default style {default!r}, which is not in "
                       f"{new.version}{_suggest(default, sorted(new.styles))} {span}")
                continue
            if style.operation != oid:
                report("default-style-exists", where,
                       f"operation {oid!r} names default style {default!r}, which belongs to "
                       f"operation {style.operation!r} {span}")
                continue
        if changed:
            assert before is not None
            was = _billed_at(_no_style_cost(old, oid), before.default_style)
            now = _billed_at(_no_style_cost(new, oid), default)
            report("default-style-changed", where,
                   f"calls to {oid!r} that name no style now use {now} instead of {was} "
                   f"{span}")


def check_book(
    book: PriceBook,
    policy: UpdatePolicy | None = None,
    *,
    previous: PriceBook | None = None,
    now: datetime | None = None,
) -> tuple[Finding, ...]:
    """Check every consecutive pair of ``book`` with `check_update`, and what it dropped.

    Each finding's ``version`` names the newer table of its pair. The pairs' findings include
    ``version-gap`` (a warning): a version is not the next major, minor or patch of the one
    before (1.0.0 then 3.0.0). The usual cause is a scheduled version that was withdrawn
    before its date: that is allowed, but every copy of it must go too, or it keeps billing
    the cancelled prices.

    With ``previous`` (the book as it was, such as the base branch's files), a version is
    *in force* at ``now`` when its ``effective_from <= now``, else *scheduled*:

    - ``withdrawn-version`` (a warning) for each version ``previous`` scheduled that
      ``book`` no longer has;
    - ``published-unchanged`` (an error) for a version of ``previous`` in force that was
      removed, and for a version whose content changed while its number stayed;
    - ``no-back-dating`` (an error) for each version of ``book`` that ``previous`` does not
      have and that is in force: it re-prices calls already made (``book.at`` of a past
      moment changes). Date a new version after ``now``.

    Args:
        book: The versions to check.
        policy: The rules and limits; ``None`` for the defaults.
        previous: The book before this change, if known.
        now: The moment that separates versions in force from scheduled ones (an aware
            datetime); the current time when ``None``.

    Returns:
        The findings, in book order: errors first within each pair.
    """
    from imagine_billing.pricing.book import require_aware

    policy = UpdatePolicy() if policy is None else policy
    found: list[Finding] = []
    tables = book.tables
    for old, new in itertools.pairwise(tables):
        found.extend(attrs.evolve(f, version=new.version) for f in check_update(old, new, policy))
    if previous is not None:
        moment = datetime.now(UTC) if now is None else require_aware(now, "now")
        current = {t.version: t for t in tables}
        earlier = {t.version for t in previous.tables}
        severity = policy.severity("no-back-dating")
        for table in tables:
            if severity is None or table.version in earlier or table.effective_from > moment:
                continue
            found.append(Finding(
                "no-back-dating", severity, "/effective_from",
                f"version {table.version} is new but takes effect at "
                f"{format_timestamp(table.effective_from)}, not after now "
                f"({format_timestamp(moment)}): back-dated, it re-prices calls already made; "
                "date it after now", table.version))
        for table in previous.tables:
            kept = current.get(table.version)
            scheduled = table.effective_from > moment
            when = format_timestamp(table.effective_from)
            if kept is None and scheduled:
                rule, message = "withdrawn-version", (
                    f"version {table.version}, scheduled for {when}, was withdrawn before its "
                    "date: make sure no copy of it still prices calls")
            elif kept is None:
                rule, message = "published-unchanged", (
                    f"version {table.version} has been in force since {when} and was removed "
                    "from the book: spend already priced by it could no longer be explained")
            elif kept.digest != table.digest:
                rule, message = "published-unchanged", (
                    f"version {table.version} changed content without a new version "
                    f"({table.digest[:19]}... -> {kept.digest[:19]}...): anyone holding the "
                    "old copy cannot tell them apart; publish the change as a new version")
            else:
                continue
            severity = policy.severity(rule)
            if severity is not None:
                found.append(Finding(rule, severity, "/version", message, table.version))
    return tuple(found)


def _semver(text: str) -> tuple[int, int, int] | None:
    parts = text.split(".")
    if len(parts) != 3 or not all(p.isascii() and p.isdigit() for p in parts):
        return None
    return int(parts[0]), int(parts[1]), int(parts[2])


def _successors(version: tuple[int, int, int]) -> tuple[tuple[int, int, int], ...]:
    major, minor, patch = version
    return (major, minor, patch + 1), (major, minor + 1, 0), (major + 1, 0, 0)


def _next_version(version: tuple[int, int, int], bump: Bump) -> str:
    patch, minor, major = _successors(version)
    chosen = {"major": major, "minor": minor}.get(bump, patch)
    return ".".join(map(str, chosen))


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


def _show(value: object) -> str:
    return "null" if value is None else repr(value) if isinstance(value, str) else str(value)


def _json(value: object, width: int = 60) -> str:
    """A value as the JSON text a policy file would hold (Decimals as their digits), cut to
    about ``width`` characters."""
    from decimal import Decimal

    try:
        text = str(value) if isinstance(value, Decimal) else json.dumps(
            value, default=str, allow_nan=True)
    except (TypeError, ValueError, RecursionError):  # nested too deeply to show
        text = f"a {type(value).__name__}"
    return text if len(text) <= width else text[: width - 3] + "..."


def _suggest(word: object, known: Iterable[str], *, listing: bool = True) -> str:
    """``"; did you mean 'x'?"`` for a close match, else the list of what is known."""
    options = list(known)
    if isinstance(word, str):
        matches = close_names(word, options)
        if matches:
            return f"; did you mean {matches[0]!r}?"
    if not listing or len(options) > 15:
        return ""
    return f" (expected one of: {', '.join(options)})"
