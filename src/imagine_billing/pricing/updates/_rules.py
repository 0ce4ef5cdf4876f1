"""The update rules: `check_update` for one step, `check_book` for every step of a book."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from imagine_billing._checks import format_timestamp
from imagine_billing.pricing.model import PriceTable
from imagine_billing.pricing.updates._diff import (
    _LEVEL,
    Bump,
    MetadataChange,
    TableDiff,
    _billed_at,
    _id_of,
    _is_default,
    _no_style_cost,
    _pointer,
    _tokens,
    diff_tables,
    format_ratio,
)
from imagine_billing.pricing.updates._policy import Severity, UpdatePolicy, _suggest

if TYPE_CHECKING:
    from fractions import Fraction

    from imagine_billing.pricing.book import PriceBook


class _Report(Protocol):
    def __call__(self, rule: str, path: str, message: str, *, warning: bool = False) -> None:
        """Record a finding of ``rule`` at the policy's severity (at most a warning when
        ``warning``); nothing when the policy turns the rule off."""


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


