"""Properties of price-table diffs, the semver rule, and workload recosting."""

from __future__ import annotations

import copy
from fractions import Fraction
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

import imagine_billing as ib
from imagine_billing.estimator import Call, estimate
from imagine_billing.planner import recost
from tests.strategies import costs, ids, names, price_documents, price_tables

BUMPS = ("none", "patch", "minor", "major")


@st.composite
def successor_documents(draw: st.DrawFn, document: dict[str, Any]) -> dict[str, Any]:
    """A valid document derived from ``document`` by removing, adding, repricing, renaming,
    moving and (un)deprecating styles, and renaming, re-pathing, repricing, re-defaulting or
    removing operations."""
    new = copy.deepcopy(document)
    styles: dict[str, Any] = new["styles"]
    operations: dict[str, Any] = new["operations"]
    # Most pairs mix every kind of change (and so need a major bump); others change names
    # only, one operation's method or path only, or add and deprecate only, so patch and
    # minor levels are common too.
    mode = draw(st.sampled_from(["any", "names", "route", "additions"]))
    actions = {"any": ["keep"] * 6 + ["remove", "cost", "name", "status", "move"],
               "names": ["keep", "name"], "route": ["keep"],
               "additions": ["keep", "name", "status"]}[mode]
    for sid in list(styles):
        action = draw(st.sampled_from(actions))
        if action == "remove":
            del styles[sid]
        elif action == "cost":
            styles[sid]["cost"] = draw(costs)
        elif action == "name":
            styles[sid]["name"] = draw(names)
        elif action == "status":
            styles[sid]["status"] = draw(st.sampled_from(["active", "deprecated"]))
        elif action == "move":
            styles[sid]["operation"] = draw(st.sampled_from(sorted(operations)))
    for sid in draw(st.lists(ids, max_size=0 if mode == "names" else 3, unique=True)):
        if sid not in document["styles"] and sid not in styles:
            styles[sid] = {"name": draw(names), "cost": draw(costs),
                           "operation": draw(st.sampled_from(sorted(operations))),
                           "status": "active"}
    for oid in sorted(operations):
        if mode == "names":
            operations[oid]["name"] = draw(names)
        elif mode == "any" and draw(st.integers(0, 3)) == 0:
            operations[oid]["cost"] = draw(costs)
        if mode == "any" and draw(st.integers(0, 2)) == 0:
            # Another default style: priced styles of the operation first (a rise, a cut or
            # the same cost for calls naming no style), or an unpriced one, or none.
            own = sorted(s for s, style in styles.items() if style["operation"] == oid)
            priced = [s for s in own if styles[s]["cost"] is not None]
            operations[oid]["default_style"] = draw(
                st.sampled_from(priced) if priced and draw(st.booleans())
                else st.sampled_from([None, *own]))
    if mode == "route":
        # One change alone (a patch), so that each field is seen to count.
        oid = draw(st.sampled_from(sorted(operations)))
        if draw(st.booleans()):
            operations[oid]["method"] = draw(st.sampled_from(["GET", "PUT", "DELETE"]))
        else:
            operations[oid]["path"] = f"/v3/{oid}"  # no other operation's route
    if mode == "any" and len(operations) > 1 and draw(st.booleans()):
        gone = draw(st.sampled_from(sorted(operations)))
        del operations[gone]
        for sid in [s for s, style in styles.items() if style["operation"] == gone]:
            del styles[sid]
    if not styles:
        styles["fallback"] = {"name": "Fallback", "cost": 1,
                              "operation": sorted(operations)[0], "status": "active"}
    # Keep every default style valid: it exists and belongs to its operation.
    for oid, operation in operations.items():
        default = operation.get("default_style")
        own = sorted(s for s, style in styles.items() if style["operation"] == oid)
        if default is not None and default not in own:
            operation["default_style"] = draw(st.sampled_from([None, *own]))
    return new


@st.composite
def table_pairs(draw: st.DrawFn) -> tuple[ib.PriceTable, ib.PriceTable]:
    """An old table and a successor of it (any version; a later or equal date)."""
    document = draw(price_documents())
    new = draw(successor_documents(document))
    new["version"] = draw(st.sampled_from(["99.0.0", document["version"]]))
    return ib.load_price_table(document), ib.load_price_table(new)


def rose(before: int | None, after: int | None) -> bool:
    """A priced cost went up or became unpriced."""
    return before is not None and (after is None or after > before)


def no_style_cost(document: dict[str, Any], oid: str) -> int | None:
    """What a call to ``oid`` that names no style costs: its default style's cost, else the
    operation's flat cost."""
    operation = document["operations"][oid]
    default = operation.get("default_style")
    return operation.get("cost") if default is None else document["styles"][default]["cost"]


def default_bump(old: dict[str, Any], new: dict[str, Any], oid: str) -> str:
    """The bump a changed default style of ``oid`` needs, by the cost of calls naming no
    style: up or unpriced major, down or newly priced minor, the same patch; when neither
    side prices them, a first default minor and any other change major."""
    before, after = no_style_cost(old, oid), no_style_cost(new, oid)
    if rose(before, after):
        return "major"
    if before != after:
        return "minor"
    if before is None:
        return "major" if old["operations"][oid].get("default_style") is not None else "minor"
    return "patch"


def default_changed(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Operations in both documents whose default style differs."""
    return [oid for oid in set(old["operations"]) & set(new["operations"])
            if old["operations"][oid].get("default_style")
            != new["operations"][oid].get("default_style")]


def expected_bump(old: dict[str, Any], new: dict[str, Any]) -> str:
    """The bump the semver rule requires, computed from the two documents directly."""
    level = "none"

    def need(bump: str) -> None:
        nonlocal level
        level = max(level, bump, key=BUMPS.index)

    for kind in ("styles", "operations"):
        a, b = old[kind], new[kind]
        if set(a) - set(b):
            need("major")
        if set(b) - set(a):
            need("minor")
        for key in set(a) & set(b):
            x, y = a[key], b[key]
            if x.get("cost") != y.get("cost"):
                need("major" if rose(x.get("cost"), y.get("cost")) else "minor")
            if kind == "styles" and x["operation"] != y["operation"]:
                need("major")
            if kind == "styles" and x["status"] != y["status"]:
                need("minor")
            fields = ("name",) if kind == "styles" else ("name", "method", "path")
            if any(x.get(f) != y.get(f) for f in fields):
                need("patch")
    for oid in default_changed(old, new):
        need(default_bump(old, new, oid))
    if any(old.get(k) != new.get(k) for k in ("api", "unit", "source", "note")):
        need("patch")
    return level


def bumped(version: str, bump: str) -> str:
    """``version`` raised by a patch, minor or major bump."""
    major, minor, patch = (int(p) for p in version.split("."))
    if bump == "major":
        return f"{major + 1}.0.0"
    if bump == "minor":
        return f"{major}.{minor + 1}.0"
    return f"{major}.{minor}.{patch + 1}"


class TestDiffOfItself:
    """diff_tables(t, t) is empty and check_update(t, t) finds nothing, for every table."""

    @given(price_tables())
    def test_empty(self, table: ib.PriceTable) -> None:
        """A table compared with itself has no change and needs no bump."""
        diff = ib.diff_tables(table, table)
        assert diff.empty
        assert "none" == diff.required_bump
        assert () == ib.check_update(table, table)


class TestMirror:
    """diff(a, b) and diff(b, a) mirror each other: added <-> removed, old <-> new,
    ratio <-> 1/ratio (0 <-> unbounded)."""

    @given(table_pairs())
    def test_mirror(self, pair: tuple[ib.PriceTable, ib.PriceTable]) -> None:
        """Every part of the reverse diff is the forward one turned around."""
        a, b = pair
        forward, backward = ib.diff_tables(a, b), ib.diff_tables(b, a)
        assert forward.styles_added == backward.styles_removed
        assert forward.styles_removed == backward.styles_added
        assert forward.operations_added == backward.operations_removed
        assert forward.operations_removed == backward.operations_added
        assert [(r.kind, r.id, r.new, r.old) for r in forward.repriced] == [
            (r.kind, r.id, r.old, r.new) for r in backward.repriced]
        assert [(s.id, s.new, s.old) for s in forward.status_changes] == [
            (s.id, s.old, s.new) for s in backward.status_changes]
        assert [(c.path, c.new, c.old) for c in forward.metadata] == [
            (c.path, c.old, c.new) for c in backward.metadata]
        for there, back in zip(forward.repriced, backward.repriced, strict=True):
            if there.ratio is not None and there.ratio != 0:
                assert 1 / there.ratio == back.ratio
            elif there.ratio == 0:
                assert back.ratio is None
            assert there.rise == back.cut

    @given(price_tables(), price_tables())
    def test_mirror_unrelated(self, a: ib.PriceTable, b: ib.PriceTable) -> None:
        """Even for unrelated tables, added and removed swap."""
        forward, backward = ib.diff_tables(a, b), ib.diff_tables(b, a)
        assert (forward.styles_added, forward.styles_removed) == (
            backward.styles_removed, backward.styles_added)
        assert len(forward.repriced) == len(backward.repriced)


class TestSemverRule:
    """check_update flags a missing major bump exactly when a style (or operation) was
    removed, a cost rose (priced -> unpriced included, and the cost of calls naming no
    style when the default style changed) or a style moved operation."""

    @given(price_documents(), st.data())
    def test_missing_major(self, document: dict[str, Any], data: st.DataObject) -> None:
        """Under a patch or minor bump, 'needs a major bump' appears iff a removal or rise
        happened; under a major bump it never does."""
        new = data.draw(successor_documents(document))
        bump = data.draw(st.sampled_from(["patch", "minor", "major"]))
        new["version"] = bumped(document["version"], bump)

        def rose(kind: str) -> bool:
            before, after = document[kind], new[kind]
            return any(
                x["cost"] is not None
                and (after[k].get("cost") is None or after[k]["cost"] > x["cost"])
                for k, x in before.items() if k in after and x.get("cost") is not None
            )

        removed = any(set(document[k]) - set(new[k]) for k in ("styles", "operations"))
        moved = any(new["styles"][k]["operation"] != s["operation"]
                    for k, s in document["styles"].items() if k in new["styles"])
        defaults = any(default_bump(document, new, oid) == "major"
                       for oid in default_changed(document, new))
        breaking = removed or rose("styles") or rose("operations") or moved or defaults
        found = ib.check_update(ib.load_price_table(document), ib.load_price_table(new))
        flagged = any(f.rule == "semver-bump" and "needs a major bump" in f.message
                      for f in found)
        assert (breaking and bump != "major") == flagged

    @given(price_documents(), st.data())
    def test_required_level(self, document: dict[str, Any], data: st.DataObject) -> None:
        """The semver finding appears iff the bump made is below the level the changes need."""
        new = data.draw(successor_documents(document))
        bump = data.draw(st.sampled_from(["patch", "minor", "major"]))
        new["version"] = bumped(document["version"], bump)
        old_table, new_table = ib.load_price_table(document), ib.load_price_table(new)
        needed = expected_bump(document, new)
        assert needed == ib.diff_tables(old_table, new_table).required_bump
        semver = [f for f in ib.check_update(old_table, new_table) if f.rule == "semver-bump"]
        assert (BUMPS.index(bump) < BUMPS.index(needed)) == bool(semver)


@st.composite
def workloads(draw: st.DrawFn, table: ib.PriceTable) -> list[Call]:
    """Calls naming the table's styles and operations, with an unknown style now and then."""
    styles = st.one_of(st.none(), st.sampled_from(sorted(table.styles)), ids)
    operations = st.sampled_from(sorted(table.operations))
    return draw(st.lists(
        st.builds(Call, style=styles, count=st.integers(1, 1000), operation=operations),
        max_size=12,
    ))


class TestRecostSameTable:
    """recost(w, t, t) has difference 0 for every workload and table."""

    @given(price_tables(), st.data())
    def test_difference_zero(self, table: ib.PriceTable, data: st.DataObject) -> None:
        """Same prices, same totals; the comparable part is what the estimator can price."""
        calls = data.draw(workloads(table))
        impact = recost(calls, table, table)
        assert 0 == impact.difference
        assert impact.ratio in (None, Fraction(1))
        assert sum(c.count for c in calls) == sum(s.calls for s in impact.styles)
        for group in impact.styles:
            assert group.old == group.new
            assert group.old_problem == group.new_problem
        if impact.complete:
            assert estimate(calls, table).total == impact.old_total
