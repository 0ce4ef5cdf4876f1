"""Price-table updates: diffs, update policies, the update rules, books, and workload recosting."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import attrs
import pytest

import imagine_billing as ib
from imagine_billing.estimator import Call, load_calls
from imagine_billing.planner import StyleImpact, WorkloadImpact, recost
from imagine_billing.pricing.updates import RULES, format_ratio

UPDATES = Path(__file__).parents[1] / "data" / "updates"
CASES = sorted((UPDATES / "cases").glob("*.json"))
LATER = "2026-01-01T00:00:00Z"


def published() -> ib.PriceTable:
    """The bundled (published) table, version 1.0.0."""
    return ib.load_price_table()


def successor(patch: dict[str, Any], version: str, base: ib.PriceTable | None = None,
              *, when: str = LATER) -> ib.PriceTable:
    """``base`` (the published table) with ``patch`` merged in, dated later."""
    table = published() if base is None else base
    return table.with_overrides({"effective_from": when, **patch}, version=version)


def unpriced(table: ib.PriceTable, style: str, version: str) -> ib.PriceTable:
    """``table`` with ``style`` made unpriced (a merge patch cannot write null, so edit the
    document), dated later."""
    document = table.to_dict()
    document["styles"][style]["cost"] = None
    document["version"] = version
    document["effective_from"] = LATER
    return ib.load_price_table(document)


def flat_upscale() -> ib.PriceTable:
    """The published table where upscale has a flat cost of 4 and a style up-hd of 10 tokens
    but no default style (1.1.0)."""
    return successor({"operations": {"upscale": {"cost": 4}},
                      "styles": {"up-hd": {"name": "Up HD", "cost": 10, "operation": "upscale"}}},
                     "1.1.0")


def default_up_hd(version: str = "1.2.0") -> ib.PriceTable:
    """`flat_upscale` with up-hd as upscale's default style, dated later still."""
    return successor({"operations": {"upscale": {"default_style": "up-hd"}}}, version,
                     flat_upscale(), when="2026-06-01T00:00:00Z")


def at(year: int, month: int, day: int = 1) -> datetime:
    """Midnight UTC of a day."""
    return datetime(year, month, day, tzinfo=UTC)


def rules(findings: tuple[ib.Finding, ...], severity: str | None = None) -> list[tuple[str, str]]:
    """(rule, path) of each finding, optionally of one severity only."""
    return [(f.rule, f.path) for f in findings if severity is None or f.severity == severity]


class TestDiffTables:
    """diff_tables(old, new)."""

    def test_same_table_is_empty(self) -> None:
        """A table against itself has no change at all."""
        diff = ib.diff_tables(published(), published())
        assert diff.empty
        assert not diff.content_changed
        assert "none" == diff.required_bump

    def test_price_cut(self) -> None:
        """flux-dev 15 -> 10 is one repricing with ratio 2/3, and the version and date change."""
        new = successor({"styles": {"flux-dev": {"cost": 10}}}, "1.1.0")
        diff = ib.diff_tables(published(), new)
        assert (ib.Repricing("style", "flux-dev", 15, 10),) == diff.repriced
        assert Fraction(2, 3) == diff.repriced[0].ratio
        assert ("1.0.0", "1.1.0") == (diff.old_version, diff.new_version)
        assert datetime(2026, 1, 1, tzinfo=UTC) == diff.new_effective_from
        assert () == diff.styles_added + diff.styles_removed
        assert () == diff.metadata

    def test_added_and_removed(self) -> None:
        """Styles and operations only in one table are listed as added or removed, sorted."""
        new = successor({
            "styles": {"anime": None, "zeta": {"name": "Zeta", "cost": 2},
                       "alpha": {"name": "Alpha", "cost": 3}},
            "operations": {"retouch": None,
                           "sketch": {"name": "Sketch", "method": "POST", "path": "/v2/sketch"}},
        }, "2.0.0")
        diff = ib.diff_tables(published(), new)
        assert ("alpha", "zeta") == diff.styles_added
        assert ("anime",) == diff.styles_removed
        assert ("sketch",) == diff.operations_added
        assert ("retouch",) == diff.operations_removed

    def test_status_change(self) -> None:
        """active -> deprecated is a status change at /styles/<id>/status."""
        new = successor({"styles": {"anime": {"status": "deprecated"}}}, "1.1.0")
        diff = ib.diff_tables(published(), new)
        assert (ib.StatusChange("anime", "active", "deprecated"),) == diff.status_changes
        assert "/styles/anime/status" == diff.status_changes[0].path

    def test_metadata_changes(self) -> None:
        """Names, paths, default styles and the source are metadata changes, by path."""
        new = successor({
            "source": "https://example.invalid/prices",
            "styles": {"flux-dev": {"name": "FLUX.1 dev"}},
            "operations": {"upscale": {"path": "/v3/image/enhance"},
                           "text-to-image": {"default_style": "anime"}},
        }, "1.0.1")
        diff = ib.diff_tables(published(), new)
        expected = (
            ib.MetadataChange("/operations/text-to-image/default_style", "imagine-turbo", "anime",
                              1, 5),
            ib.MetadataChange("/operations/upscale/path", "/v2/image/enhance", "/v3/image/enhance"),
            ib.MetadataChange("/source", published().source, "https://example.invalid/prices"),
            ib.MetadataChange("/styles/flux-dev/name", "Flux Dev", "FLUX.1 dev"),
        )
        assert expected == diff.metadata
        assert () == diff.repriced

    def test_method_change(self) -> None:
        """An operation's method is metadata too."""
        new = successor({"operations": {"upscale": {"method": "PUT"}}}, "1.0.1")
        diff = ib.diff_tables(published(), new)
        assert (ib.MetadataChange("/operations/upscale/method", "POST", "PUT"),) == diff.metadata
        assert "patch" == diff.required_bump

    def test_default_style_costs_use_the_flat_cost(self) -> None:
        """Without a default style, calls naming no style cost the operation's flat cost."""
        diff = ib.diff_tables(flat_upscale(), default_up_hd())
        assert (ib.MetadataChange("/operations/upscale/default_style", None, "up-hd", 4, 10),
                ) == diff.metadata
        back = ib.diff_tables(default_up_hd(), flat_upscale())
        assert (ib.MetadataChange("/operations/upscale/default_style", "up-hd", None, 10, 4),
                ) == back.metadata

    def test_priced_to_unpriced_and_back(self) -> None:
        """A cost that becomes null is a repricing without a ratio, and so is the reverse."""
        new = unpriced(published(), "flux-dev", "2.0.0")
        forward = ib.diff_tables(published(), new).repriced
        backward = ib.diff_tables(new, published()).repriced
        assert (ib.Repricing("style", "flux-dev", 15, None),) == forward
        assert (ib.Repricing("style", "flux-dev", None, 15),) == backward
        assert forward[0].ratio is None
        assert backward[0].ratio is None

    def test_operation_flat_cost(self) -> None:
        """An operation's flat cost is repriced as kind 'operation'."""
        new = successor({"operations": {"upscale": {"cost": 8}}}, "1.1.0")
        diff = ib.diff_tables(published(), new)
        assert (ib.Repricing("operation", "upscale", None, 8),) == diff.repriced
        assert "/operations/upscale/cost" == diff.repriced[0].path

    def test_to_dict_is_json(self) -> None:
        """The diff's dict survives JSON, with the exact ratio as text."""
        new = successor({"styles": {"flux-dev": {"cost": 10}}}, "1.1.0")
        document = json.loads(json.dumps(ib.diff_tables(published(), new).to_dict()))
        assert "2/3" == document["repriced"][0]["ratio"]
        assert "minor" == document["required_bump"]
        assert LATER == document["new_effective_from"]


class TestRepricing:
    """Repricing: direction and ratio of one cost change."""

    @pytest.mark.parametrize(
        ("old", "new", "rise", "cut", "ratio"),
        [
            (15, 10, False, True, Fraction(2, 3)),
            (10, 15, True, False, Fraction(3, 2)),
            (5, 0, False, True, Fraction(0)),
            (0, 5, True, False, None),
            (5, None, True, False, None),
            (None, 5, False, True, None),
        ],
    )
    def test_direction_and_ratio(self, old: int | None, new: int | None, rise: bool, cut: bool,
                                 ratio: Fraction | None) -> None:
        """Each kind of change says whether it is a rise or a cut, and its exact ratio."""
        change = ib.Repricing("style", "x", old, new)
        assert (rise, cut, ratio) == (change.rise, change.cut, change.ratio)

    def test_path_escapes_the_id(self) -> None:
        """The JSON pointer escapes '/' and '~' in the id (RFC 6901)."""
        assert "/styles/a~1b~0c/cost" == ib.Repricing("style", "a/b~c", 1, 2).path


class TestRequiredBump:
    """TableDiff.required_bump: the semver level the changes need."""

    @pytest.mark.parametrize(
        ("old", "new", "old_cost", "new_cost", "expected"),
        [("a", "b", 5, 5, "patch"), ("a", "b", 5, 6, "major"), ("a", "b", 5, 4, "minor"),
         ("a", None, 5, None, "major"), (None, "b", None, 5, "minor"),
         ("a", "b", None, 5, "minor"), ("a", "b", 5, None, "major"),
         # Without a default style, calls naming none cost the flat cost (old or new side).
         (None, "b", 4, 10, "major"), (None, "b", 10, 4, "minor"), (None, "b", 4, 4, "patch"),
         (None, "b", 4, None, "major"), ("a", None, 10, 4, "minor"), ("a", None, 4, 10, "major"),
         # Neither side priced: a first default is an addition, a switch may be any price.
         (None, "b", None, None, "minor"), ("a", "b", None, None, "major"),
         ("a", None, None, None, "major")],
    )
    def test_default_style_change_by_cost(self, old: str | None, new: str | None,
                                          old_cost: int | None, new_cost: int | None,
                                          expected: str) -> None:
        """A default style change is a price change for calls naming no style."""
        change = ib.MetadataChange("/operations/x/default_style", old, new, old_cost, new_cost)
        assert expected == change.bump()

    @pytest.mark.parametrize(
        ("patch", "expected"),
        [
            ({"styles": {"anime": None}}, "major"),
            ({"operations": {"retouch": None}}, "major"),
            ({"styles": {"imagine-turbo": {"cost": 2}}}, "major"),
            ({"styles": {"new": {"name": "New", "cost": 1}}}, "minor"),
            ({"styles": {"imagine-turbo": {"cost": 0}}}, "minor"),
            ({"styles": {"sdxl-1.0": {"cost": 3}}}, "minor"),
            ({"styles": {"anime": {"status": "deprecated"}}}, "minor"),
            ({"styles": {"anime": {"name": "Anime v2"}}}, "patch"),
            ({"note": "re-checked"}, "patch"),
            # A default style prices every call naming none: dearer is major, cheaper minor,
            # the same cost patch, gone major.
            ({"operations": {"text-to-image": {"default_style": "flux-dev"}}}, "major"),
            ({"operations": {"text-to-image": {"default_style": "free"}},
              "styles": {"free": {"name": "Free", "cost": 0}}}, "minor"),
            ({"operations": {"text-to-image": {"default_style": "sdxl-1.0"}}}, "major"),
            ({"operations": {"ai-background": {"default_style": None}}}, "major"),
            ({}, "none"),
        ],
    )
    def test_levels(self, patch: dict[str, Any], expected: str) -> None:
        """Removals and rises are major, additions and cuts minor, metadata patch."""
        diff = ib.diff_tables(published(), successor(patch, "9.0.0"))
        assert expected == diff.required_bump

    def test_default_style_over_a_flat_cost(self) -> None:
        """A default style dearer than the flat cost it replaces is major, and says why."""
        diff = ib.diff_tables(flat_upscale(), default_up_hd())
        assert "major" == diff.required_bump
        assert ("major", "calls to operation 'upscale' that name no style went from the flat "
                "cost (4 tokens) to 'up-hd' (10 tokens)") == diff.bump_reasons()[0]

    def test_dropping_a_default_for_a_cheaper_flat_cost(self) -> None:
        """Removing a default style so that calls fall back to a cheaper flat cost is minor."""
        assert "minor" == ib.diff_tables(default_up_hd(), flat_upscale()).required_bump

    def test_priced_to_unpriced_is_major(self) -> None:
        """Losing a price is a rise (an unknown price may be any)."""
        diff = ib.diff_tables(published(), unpriced(published(), "anime", "2.0.0"))
        assert "major" == diff.required_bump

    def test_moving_a_style_is_major(self) -> None:
        """A style moved to another operation breaks calls that name it with the old one."""
        new = successor({"styles": {"anime": {"operation": "ai-background"}}}, "2.0.0")
        diff = ib.diff_tables(published(), new)
        assert "major" == diff.required_bump
        assert ("major", "style 'anime' moved from operation 'text-to-image' to "
                "'ai-background'") == diff.bump_reasons()[0]


class TestUpdatePolicy:
    """UpdatePolicy: rule severities and increase limits."""

    def test_defaults(self) -> None:
        """Every rule at its default severity; no limits."""
        policy = ib.UpdatePolicy()
        assert "error" == policy.severity("semver-bump")
        assert "warning" == policy.severity("default-style-changed")
        assert policy.limit("flux-dev") is None

    def test_pickles(self) -> None:
        """A policy survives pickle and deepcopy equal to the original."""
        import copy
        import pickle

        policy = ib.UpdatePolicy(rules={"semver-bump": "warning"},
                                 max_increase={"*": "1.5", "flux-dev": 2})
        for again in (pickle.loads(pickle.dumps(policy)), copy.deepcopy(policy)):
            assert policy == again
            assert Fraction(3, 2) == again.limit("anime")
        assert ib.UpdatePolicy() == copy.deepcopy(ib.UpdatePolicy())

    def test_override_and_off(self) -> None:
        """A rule can be lowered to a warning or turned off."""
        policy = ib.UpdatePolicy(rules={"semver-bump": "warning", "max-increase": "off"})
        assert "warning" == policy.severity("semver-bump")
        assert policy.severity("max-increase") is None

    def test_limits_exact(self) -> None:
        """Ratios from ints, strings, floats and Decimals are exact Fractions; '*' is the
        fallback."""
        policy = ib.UpdatePolicy(max_increase={"*": "3/2", "a": 2, "b": 1.1, "c": Decimal("1.25")})
        assert Fraction(3, 2) == policy.limit("other")
        assert Fraction(2) == policy.limit("a")
        assert Fraction(11, 10) == policy.limit("b")
        assert Fraction(5, 4) == policy.limit("c")

    def test_unknown_rule_suggests(self) -> None:
        """An unknown rule id is a PolicyError naming it, with the closest rule."""
        with pytest.raises(ib.PolicyError, match=r"unknown rule 'semver-bumps'.*'semver-bump'"):
            ib.UpdatePolicy(rules={"semver-bumps": "error"})

    def test_bad_setting(self) -> None:
        """A setting other than error/warning/off is refused, with a suggestion."""
        with pytest.raises(ib.PolicyError, match=r"'semver-bump'.*\"warn\".*'warning'"):
            ib.UpdatePolicy(rules={"semver-bump": "warn"})

    @pytest.mark.parametrize("ratio", [0.5, "0", True, "abc", float("inf"), "1/0", None, [2]])
    def test_bad_ratio(self, ratio: object) -> None:
        """A ratio below 1, a bool, or anything not a number is refused."""
        with pytest.raises(ib.PolicyError, match="max_increase"):
            ib.UpdatePolicy(max_increase={"*": ratio})

    @pytest.mark.parametrize(
        ("ratio", "words"),
        [
            ("1e999999999", "at most 1000000"),
            (Decimal("1e999999999"), "at most 1000000"),
            (1e300, "at most 1000000"),
            ("1000001", "at most 1000000"),
            (10**7, "at most 1000000"),
            ("10000000/3", "at most 1000000"),
            ("1e-999999999", ">= 1"),
            (Decimal("-1e999999999"), ">= 1"),
            ("1.00000000000000000000000000000001", "at most 30 significant digits"),
            ("1" + "0" * 40 + "/" + "1" + "0" * 39, "at most 30 significant digits"),
            (Fraction(10**40 + 1, 10**40), "at most 30 significant digits"),
        ],
        ids=["huge-exponent-text", "huge-exponent-decimal", "float", "over-a-million",
             "int", "fraction-text", "tiny-exponent", "negative-huge-exponent", "32-digits",
             "long-fraction-text", "fraction"],
    )
    def test_out_of_bounds_ratio(self, ratio: object, words: str) -> None:
        """A huge, tiny or over-precise ratio is refused at once, naming it (a billion-digit
        exponent is never expanded)."""
        with pytest.raises(ib.PolicyError, match="max_increase") as caught:
            ib.UpdatePolicy(max_increase={"*": ratio})
        assert words in str(caught.value)
        assert str(ratio)[:20].lower() in str(caught.value).lower()

    @pytest.mark.parametrize(
        ("ratio", "expected"),
        [(1000000, Fraction(10**6)), ("1e6", Fraction(10**6)), (Decimal("1.50"), Fraction(3, 2)),
         ("1." + "0" * 28 + "1", Fraction(10**29 + 1, 10**29)), ("1" + "0" * 29 + "/1" + "0" * 28,
                                                                 Fraction(10)),
         ("0" * 5000 + "3/2", Fraction(3, 2)), ("3/" + "0" * 5000 + "2", Fraction(3, 2))],
    )
    def test_largest_ratios_accepted(self, ratio: object, expected: Fraction) -> None:
        """A million and 30 significant digits are still accepted, exactly (leading zeros do
        not count)."""
        assert expected == ib.UpdatePolicy(max_increase={"*": ratio}).limit("x")

    def test_every_problem_at_once(self) -> None:
        """Several problems are all named in one error."""
        with pytest.raises(ib.PolicyError) as caught:
            ib.UpdatePolicy(rules={"nope": "error", "semver-bump": "loud"})
        assert "'nope'" in str(caught.value)
        assert '"loud"' in str(caught.value)

    def test_from_dict_unknown_key(self) -> None:
        """An unknown top-level key is refused with a suggestion."""
        with pytest.raises(ib.PolicyError, match=r"unknown key 'max-increase'.*'max_increase'"):
            ib.UpdatePolicy.from_dict({"max-increase": {"*": 2}})

    def test_from_dict_not_an_object(self) -> None:
        """A policy document must be an object."""
        with pytest.raises(ib.PolicyError, match="JSON object"):
            ib.UpdatePolicy.from_dict(["rules"])


class TestLoadPolicy:
    """load_policy(path)."""

    def test_lenient(self) -> None:
        """A policy file sets the severities it names."""
        policy = ib.load_policy(UPDATES / "policies" / "lenient.json")
        assert "warning" == policy.severity("deprecate-before-remove")
        assert policy.severity("default-style-changed") is None
        assert "error" == policy.severity("semver-bump")

    def test_limits_read_without_floats(self) -> None:
        """1.5 in the file is exactly 3/2; "2" is 2."""
        policy = ib.load_policy(UPDATES / "policies" / "limits.json")
        assert Fraction(3, 2) == policy.limit("anime")
        assert Fraction(2) == policy.limit("flux-dev")

    def test_decimal_read_exactly(self, tmp_path: Path) -> None:
        """1.1 in the file is 11/10, not the float nearest to it."""
        path = tmp_path / "policy.json"
        path.write_text('{"max_increase": {"*": 1.1}}')
        assert Fraction(11, 10) == ib.load_policy(path).limit("x")

    @pytest.mark.parametrize(
        ("name", "words"),
        [
            ("unknown-rule.json", ["unknown-rule.json", "semver-bumps", "mean 'semver-bump'"]),
            ("unknown-key.json", ["unknown-key.json", "'max-increase'", "'max_increase'"]),
            ("bad-ratio.json", ["bad-ratio.json", "max_increase['*']", "max_increase['flux-dev']"]),
        ],
    )
    def test_bad_files(self, name: str, words: list[str]) -> None:
        """A bad policy file is a PolicyError naming the file and each problem."""
        with pytest.raises(ib.PolicyError) as caught:
            ib.load_policy(UPDATES / "policies" / name)
        for word in words:
            assert word in str(caught.value)

    def test_missing_file(self, tmp_path: Path) -> None:
        """A file that cannot be read is a PolicyError naming it."""
        with pytest.raises(ib.PolicyError, match="cannot read policy file"):
            ib.load_policy(tmp_path / "missing.json")

    def test_nested_too_deeply(self, tmp_path: Path) -> None:
        """A file nested deeper than Python's stack is a PolicyError, not a RecursionError."""
        path = tmp_path / "deep.json"
        path.write_text("[" * 100_000 + "]" * 100_000)
        with pytest.raises(ib.PolicyError, match=r"deep\.json is not JSON this library reads"):
            ib.load_policy(path)

    def test_huge_exponent_in_a_file(self, tmp_path: Path) -> None:
        """1e999999999 as a JSON number is refused (it is read as a Decimal, never expanded)."""
        path = tmp_path / "policy.json"
        path.write_text('{"max_increase": {"*": 1e999999999, "anime": "1e999999999"}}')
        with pytest.raises(ib.PolicyError) as caught:
            ib.load_policy(path)
        assert "max_increase['*'] must be at most 1000000" in str(caught.value)
        assert "got 1E+999999999)" in str(caught.value)  # the number, not a string
        assert "max_increase['anime'] must be at most 1000000" in str(caught.value)

    @pytest.mark.parametrize("text", ["{", '{"max_increase": {"*": NaN}}'])
    def test_not_json(self, tmp_path: Path, text: str) -> None:
        """Text that is not JSON (NaN included) is a PolicyError."""
        path = tmp_path / "policy.json"
        path.write_text(text)
        with pytest.raises(ib.PolicyError, match="not JSON"):
            ib.load_policy(path)


class TestCheckUpdate:
    """check_update(old, new, policy) and its default rules."""

    def test_identical_tables(self) -> None:
        """The same table twice is no update: no findings."""
        assert () == ib.check_update(published(), published())

    def test_clean_update(self) -> None:
        """A deprecation with a minor bump and a later date passes."""
        new = successor({"styles": {"anime": {"status": "deprecated"}}}, "1.1.0")
        assert () == ib.check_update(published(), new)

    def test_removal_after_deprecation(self) -> None:
        """Removing a style that the old table deprecated, with a major bump, passes."""
        deprecated = successor({"styles": {"anime": {"status": "deprecated"}}}, "1.1.0")
        removed = successor({"styles": {"anime": None}}, "2.0.0", deprecated,
                            when="2026-06-01T00:00:00Z")
        assert () == ib.check_update(deprecated, removed)

    def test_removal_message(self) -> None:
        """The removal finding names the style and both versions."""
        new = successor({"styles": {"anime": None}}, "2.0.0")
        (finding,) = ib.check_update(published(), new)
        assert ib.Finding(
            "deprecate-before-remove", "error", "/styles/anime",
            "style 'anime' was removed without being deprecated first (1.0.0 -> 2.0.0): set "
            "its status to \"deprecated\" in one version, remove it in a later one",
        ) == finding

    def test_version_must_increase(self) -> None:
        """A changed table with an equal or lower version is an error."""
        base = successor({}, "1.2.0")
        for version in ("1.1.9", "1.2.0"):
            document = base.to_dict()
            document.update(version=version, effective_from="2026-06-01T00:00:00Z", note="x")
            found = ib.check_update(base, ib.load_price_table(document))
            assert [("version-increases", "/version")] == rules(found)

    def test_versions_compare_as_numbers(self) -> None:
        """1.10.0 follows 1.9.0 (integers, not text)."""
        old = successor({}, "1.9.0")
        new = successor({"styles": {"n": {"name": "N", "cost": 1}}}, "1.10.0", old,
                        when="2026-06-01T00:00:00Z")
        assert () == ib.check_update(old, new)

    def test_semver_bump_message(self) -> None:
        """A minor bump for a rise says what needed the major bump and suggests a version."""
        new = successor({"styles": {"flux-dev": {"cost": 20}}}, "1.1.0")
        (finding,) = ib.check_update(published(), new)
        assert "semver-bump" == finding.rule
        assert "1.0.0 -> 1.1.0 is a minor bump" in finding.message
        assert "style 'flux-dev' rose from 15 to 20 tokens" in finding.message
        assert "2.0.0" in finding.message

    def test_bigger_bump_than_needed_is_fine(self) -> None:
        """A major bump for a price cut is allowed (at least, not exactly)."""
        new = successor({"styles": {"flux-dev": {"cost": 10}}}, "2.0.0")
        assert () == ib.check_update(published(), new)

    def test_new_version_without_changes_is_fine(self) -> None:
        """A re-issue with identical content under a new version and date passes."""
        assert () == ib.check_update(published(), successor({}, "1.0.1"))

    def test_effective_from_must_move_forward(self) -> None:
        """An equal or earlier effective_from is an error."""
        for when in ("2025-07-01T00:00:00Z", "2024-12-31T00:00:00Z"):
            new = successor({"note": "n"}, "1.0.1", when=when)
            assert [("effective-from-forward", "/effective_from")] == rules(
                ib.check_update(published(), new))

    def test_priced_stays_priced(self) -> None:
        """A priced style that becomes unpriced is an error even under a major bump."""
        new = unpriced(published(), "flux-dev", "2.0.0")
        assert [("priced-stays-priced", "/styles/flux-dev/cost")] == rules(
            ib.check_update(published(), new))

    def test_operation_stays_priced(self) -> None:
        """An operation that loses its flat cost is an error too."""
        new = successor({"operations": {"upscale": {"cost": None}}}, "2.0.0", flat_upscale(),
                        when="2026-06-01T00:00:00Z")
        found = ib.check_update(flat_upscale(), new)
        assert [("priced-stays-priced", "/operations/upscale/cost")] == rules(found)
        assert "operation 'upscale' was priced at 4 tokens" in found[0].message

    def test_default_style_to_an_unpriced_one(self) -> None:
        """Calls naming no style that move from imagine-turbo (1) to unpriced sdxl-1.0 lose
        their price: an error even under a major bump."""
        new = successor({"operations": {"text-to-image": {"default_style": "sdxl-1.0"}}}, "2.0.0")
        found = ib.check_update(published(), new)
        where = "/operations/text-to-image/default_style"
        assert [("priced-stays-priced", where)] == rules(found, "error")
        assert ("calls to operation 'text-to-image' that name no style were billed at "
                "'imagine-turbo' (1 token) and have no price in 2.0.0") in found[0].message

    def test_default_over_a_flat_cost_needs_a_major_bump(self) -> None:
        """upscale's calls naming no style go 4 -> 10 tokens: 1.2.0 is not enough."""
        found = ib.check_update(flat_upscale(), default_up_hd())
        assert [("semver-bump", "/version")] == rules(found, "error")
        assert "went from the flat cost (4 tokens) to 'up-hd' (10 tokens)" in found[0].message
        assert [("default-style-changed", "/operations/upscale/default_style")] == rules(
            found, "warning")

    def test_default_dropped_for_a_flat_cost(self) -> None:
        """Dropping a default style where a flat cost takes over is no error: calls naming no
        style still resolve (to 4 tokens); a warning says so."""
        found = ib.check_update(default_up_hd(), successor(
            {"operations": {"upscale": {"default_style": None}}}, "1.3.0", default_up_hd(),
            when="2026-09-01T00:00:00Z"))
        assert [] == rules(found, "error")
        (warning,) = found
        assert "default-style-changed" == warning.rule
        assert "now use the flat cost (4 tokens) instead of 'up-hd' (10 tokens)" in (
            warning.message)

    def test_unpriced_to_priced_is_fine(self) -> None:
        """Publishing a price for sdxl-1.0 with a minor bump passes."""
        new = successor({"styles": {"sdxl-1.0": {"cost": 3}}}, "1.1.0")
        assert () == ib.check_update(published(), new)

    def test_max_increase_for_all(self) -> None:
        """With '*': 1.5, 15 -> 22 passes (x1.47) and 15 -> 23 does not (x1.53)."""
        policy = ib.UpdatePolicy(max_increase={"*": "1.5"})
        fine = successor({"styles": {"flux-dev": {"cost": 22}}}, "2.0.0")
        over = successor({"styles": {"flux-dev": {"cost": 23}}}, "2.0.0")
        assert () == ib.check_update(published(), fine, policy)
        assert [("max-increase", "/styles/flux-dev/cost")] == rules(
            ib.check_update(published(), over, policy))

    def test_max_increase_exactly_at_limit(self) -> None:
        """A rise of exactly the limit passes: 10 -> 15 under 1.5."""
        old = successor({"styles": {"flux-dev": {"cost": 10}}}, "1.1.0")
        new = successor({"styles": {"flux-dev": {"cost": 15}}}, "2.0.0", old,
                        when="2026-06-01T00:00:00Z")
        assert () == ib.check_update(old, new, ib.UpdatePolicy(max_increase={"*": 1.5}))

    def test_max_increase_per_style(self) -> None:
        """A per-style limit overrides '*' for that style only."""
        policy = ib.UpdatePolicy(max_increase={"*": 1, "flux-dev": 2})
        new = successor({"styles": {"flux-dev": {"cost": 30}, "anime": {"cost": 6}}}, "2.0.0")
        found = ib.check_update(published(), new, policy)
        assert [("max-increase", "/styles/anime/cost")] == rules(found)
        assert "from 5 tokens to 6 tokens (x1.2)" in found[0].message

    def test_max_increase_from_zero(self) -> None:
        """0 -> N is an unbounded rise: over any limit."""
        old = successor({"styles": {"imagine-turbo": {"cost": 0}}}, "1.1.0")
        new = successor({"styles": {"imagine-turbo": {"cost": 1}}}, "2.0.0", old,
                        when="2026-06-01T00:00:00Z")
        found = ib.check_update(old, new, ib.UpdatePolicy(max_increase={"*": 100}))
        assert [("max-increase", "/styles/imagine-turbo/cost")] == rules(found)
        assert "unbounded" in found[0].message

    def test_max_increase_unknown_style(self) -> None:
        """A limit for a style in neither table is reported, with a suggestion."""
        policy = ib.UpdatePolicy(max_increase={"flux-dv": 2})
        found = ib.check_update(published(), successor({}, "1.0.1"), policy)
        assert [("max-increase", "")] == rules(found)
        assert "did you mean 'flux-dev'" in found[0].message

    def test_max_increase_unknown_style_is_a_warning(self) -> None:
        """A stale limit (a style neither table has) warns, so it cannot fail every later
        update; it names the key and says to remove it."""
        policy = ib.UpdatePolicy(rules={"max-increase": "error"}, max_increase={"retired": 2})
        (finding,) = ib.check_update(published(), successor({}, "1.0.1"), policy)
        assert ("max-increase", "warning", "") == (finding.rule, finding.severity, finding.path)
        assert "'retired', which is in neither table" in finding.message
        assert "remove it from the policy" in finding.message

    def test_max_increase_operation_flat_cost(self) -> None:
        """A limit applies to an operation's flat cost too: upscale 4 -> 10 is over x1.5."""
        policy = ib.UpdatePolicy(max_increase={"*": "1.5"})
        new = successor({"operations": {"upscale": {"cost": 10}}}, "2.0.0", flat_upscale(),
                        when="2026-06-01T00:00:00Z")
        found = ib.check_update(flat_upscale(), new, policy)
        assert [("max-increase", "/operations/upscale/cost")] == rules(found)
        assert "operation 'upscale' rose from 4 tokens to 10 tokens (x2.5)" in found[0].message

    def test_max_increase_default_style_switch(self) -> None:
        """Switching the default from imagine-turbo (1) to flux-dev (15) raises every call
        naming no style x15: over a limit of x1.5, at the default style's path."""
        policy = ib.UpdatePolicy(max_increase={"*": "1.5"})
        new = successor({"operations": {"text-to-image": {"default_style": "flux-dev"}}}, "2.0.0")
        found = ib.check_update(published(), new, policy)
        where = "/operations/text-to-image/default_style"
        assert [("max-increase", where)] == rules(found, "error")
        assert [("default-style-changed", where)] == rules(found, "warning")
        assert ("calls to operation 'text-to-image' that name no style rose from 1 token to 15 "
                "tokens (x15), above the policy's max_increase of x1.5: its default style went "
                "from 'imagine-turbo' to 'flux-dev' (1.0.0 -> 2.0.0)") == found[0].message

    def test_max_increase_default_style_uses_the_operation_limit(self) -> None:
        """The limit of calls naming no style is the operation's, not the new style's."""
        policy = ib.UpdatePolicy(max_increase={"*": 1, "text-to-image": 20})
        new = successor({"operations": {"text-to-image": {"default_style": "flux-dev"}}}, "2.0.0")
        assert [] == rules(ib.check_update(published(), new, policy), "error")

    def test_max_increase_operation_covers_its_default_style(self) -> None:
        """imagine-turbo 1 -> 20 raises text-to-image calls naming no style x20: over the
        operation's own limit of x1.5, though no style limit is set."""
        policy = ib.UpdatePolicy(max_increase={"text-to-image": "1.5"})
        new = successor({"styles": {"imagine-turbo": {"cost": 20}}}, "2.0.0")
        found = ib.check_update(published(), new, policy)
        assert [("max-increase", "/styles/imagine-turbo/cost")] == rules(found, "error")
        assert ("calls to operation 'text-to-image' that name no style rose from 1 token to 20 "
                "tokens (x20)") in found[0].message
        flux = successor({"styles": {"flux-dev": {"cost": 30}}}, "2.0.0")
        assert [] == rules(ib.check_update(published(), flux, policy), "error")

    def test_max_increase_default_over_a_flat_cost(self) -> None:
        """A default style dearer than the flat cost it replaces is held to the limit."""
        policy = ib.UpdatePolicy(max_increase={"*": 2})
        found = ib.check_update(flat_upscale(), default_up_hd("2.0.0"), policy)
        assert [("max-increase", "/operations/upscale/default_style")] == rules(found, "error")
        assert ("from 4 tokens to 10 tokens (x2.5), above the policy's max_increase of x2: its "
                "default style went from none (the flat cost) to 'up-hd'") in found[0].message

    def test_max_increase_off(self) -> None:
        """Turning the rule off ignores the limits."""
        policy = ib.UpdatePolicy(rules={"max-increase": "off"}, max_increase={"*": 1})
        new = successor({"styles": {"flux-dev": {"cost": 30}}}, "2.0.0")
        assert () == ib.check_update(published(), new, policy)

    def test_policy_lowers_to_warning(self) -> None:
        """A policy can make a removal without deprecation a warning."""
        policy = ib.UpdatePolicy(rules={"deprecate-before-remove": "warning"})
        found = ib.check_update(published(), successor({"styles": {"anime": None}}, "2.0.0"),
                                policy)
        assert [("deprecate-before-remove", "/styles/anime")] == rules(found, "warning")
        assert [] == rules(found, "error")

    def test_default_style_changed_warns_with_costs(self) -> None:
        """Switching text-to-image's default names both styles and their costs."""
        new = successor({"operations": {"text-to-image": {"default_style": "flux-dev"}}}, "2.0.0")
        (finding,) = ib.check_update(published(), new)
        assert ("default-style-changed", "warning") == (finding.rule, finding.severity)
        assert "'flux-dev' (15 tokens) instead of 'imagine-turbo' (1 token)" in finding.message

    def test_default_style_dropped(self) -> None:
        """An operation that loses its default style, with no flat cost, is an error."""
        new = successor({"operations": {"ai-background": {"default_style": None}}}, "2.0.0")
        assert [("default-style-exists", "/operations/ai-background/default_style")] == rules(
            ib.check_update(published(), new))

    def test_priced_default_style_dropped(self) -> None:
        """Dropping a priced default is one error (the calls no longer resolve), not two."""
        new = successor({"operations": {"text-to-image": {"default_style": None}}}, "2.0.0")
        found = ib.check_update(published(), new)
        assert [("default-style-exists", "/operations/text-to-image/default_style")] == rules(
            found)
        assert "and has no flat cost: calls that name no style would not resolve" in (
            found[0].message)

    def test_default_style_missing_in_a_table_built_directly(self) -> None:
        """A table built without validation whose default style is gone is caught."""
        table = successor({"note": "n"}, "1.0.1")
        styles = {k: v for k, v in table.styles.items() if k != "imagine-turbo"}
        with attrs.validators.disabled():
            broken = attrs.evolve(table, styles=styles)
        found = ib.check_update(published(), broken)
        assert ("default-style-exists", "/operations/text-to-image/default_style") in rules(found)

    def test_default_style_of_other_operation(self) -> None:
        """A default style that belongs to another operation is caught (unvalidated table)."""
        table = successor({"note": "n"}, "1.0.1")
        operations = dict(table.operations)
        operations["text-to-image"] = attrs.evolve(operations["text-to-image"],
                                                   default_style="product-shoot")
        with attrs.validators.disabled():
            broken = attrs.evolve(table, operations=operations)
        found = ib.check_update(published(), broken)
        assert ("default-style-exists", "/operations/text-to-image/default_style") in rules(found)

    def test_different_api(self) -> None:
        """Tables of two APIs are not an update of each other."""
        new = successor({"api": "other-api"}, "1.0.1")
        assert ("same-api", "/api") in rules(ib.check_update(published(), new))

    @pytest.mark.parametrize("version", ["1.1.5", "2.3.0", "1.0.2", "2.0.1"])
    def test_version_gap(self, version: str) -> None:
        """A version that skips others (not 1.0.1, 1.1.0 or 2.0.0 after 1.0.0) is a warning
        naming the next ones."""
        found = ib.check_update(published(), successor({"note": "n"}, version))
        assert [("version-gap", "/version")] == rules(found, "warning")
        assert [] == rules(found, "error")
        assert f"version {version} follows 1.0.0" in found[0].message
        assert "the next would be 1.0.1, 1.1.0, 2.0.0" in found[0].message

    @pytest.mark.parametrize("version", ["1.0.1", "1.1.0", "2.0.0"])
    def test_immediate_successors_have_no_gap(self, version: str) -> None:
        """The next patch, minor or major version is no gap."""
        assert () == ib.check_update(published(), successor({"note": "n"}, version))

    def test_not_semver(self) -> None:
        """A version that is not MAJOR.MINOR.PATCH (an unvalidated table) is an error."""
        broken = attrs.evolve(successor({"note": "n"}, "1.0.1"), version="v2")
        assert [("version-increases", "/version")] == rules(ib.check_update(published(), broken))

    def test_errors_come_first(self) -> None:
        """Findings are sorted: errors before warnings."""
        new = successor({"styles": {"anime": None},
                         "operations": {"text-to-image": {"default_style": "realistic"}}}, "2.0.0")
        severities = [f.severity for f in ib.check_update(published(), new)]
        assert ["error", "warning"] == severities

    def test_finding_to_dict(self) -> None:
        """A finding's dict has its four fields (and the version when set)."""
        finding = ib.Finding("semver-bump", "error", "/version", "m", "2.0.0")
        assert {"rule": "semver-bump", "severity": "error", "path": "/version", "message": "m",
                "version": "2.0.0"} == finding.to_dict()


class TestRealisticCases:
    """The published table against realistic successors in tests/data/updates/cases."""

    @pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
    def test_case(self, path: Path) -> None:
        """Each case gives the bump, errors and warnings written in its file."""
        case = json.loads(path.read_text())
        new = published().with_overrides(case["patch"], version=case["version"])
        found = ib.check_update(published(), new)
        expect = case["expect"]
        assert expect["required_bump"] == ib.diff_tables(published(), new).required_bump
        assert [tuple(e) for e in expect["errors"]] == rules(found, "error")
        assert [tuple(w) for w in expect["warnings"]] == rules(found, "warning")

    def test_every_documented_case_exists(self) -> None:
        """The three cases the issue names are among the fixtures."""
        names = {p.stem for p in CASES}
        assert {"flux-dev-cut", "anime-removed", "new-style-patch"} <= names


class TestCheckBook:
    """check_book(book, policy, previous=, now=)."""

    def book(self) -> ib.PriceBook:
        """1.0.0 published, 1.1.0 deprecates anime, 2.0.0 removes it."""
        deprecated = successor({"styles": {"anime": {"status": "deprecated"}}}, "1.1.0")
        removed = successor({"styles": {"anime": None}}, "2.0.0", deprecated,
                            when="2026-06-01T00:00:00Z")
        return ib.PriceBook([removed, published(), deprecated])

    def test_good_book(self) -> None:
        """A book whose every step follows the rules has no findings."""
        assert () == ib.check_book(self.book())

    def test_one_table(self) -> None:
        """A book of one table has nothing to compare."""
        assert () == ib.check_book(ib.PriceBook([published()]))

    def test_bad_pair_names_its_version(self) -> None:
        """A removal without deprecation is found, with the version of the newer table."""
        removed = successor({"styles": {"anime": None}}, "2.0.0")
        found = ib.check_book(ib.PriceBook([published(), removed]))
        assert [("deprecate-before-remove", "/styles/anime")] == rules(found)
        assert "2.0.0" == found[0].version

    def test_gap_is_a_warning(self) -> None:
        """1.1.0 then 3.0.0 (2.0.0 withdrawn?) is reported as a warning, not an error."""
        tables = self.book().tables
        third = successor({"styles": {"flux-dev": {"cost": 20}}}, "3.0.0", tables[1],
                          when="2027-01-01T00:00:00Z")
        found = ib.check_book(ib.PriceBook([tables[0], tables[1], third]))
        assert [("version-gap", "/version")] == rules(found, "warning")
        assert [] == rules(found, "error")
        assert "2.0.0" in found[0].message

    def test_withdrawn_scheduled_version(self) -> None:
        """A scheduled version gone from the book is a warning naming it."""
        previous = self.book()
        current = ib.PriceBook(previous.tables[:2])
        now = datetime(2026, 3, 1, tzinfo=UTC)
        found = ib.check_book(current, previous=previous, now=now)
        assert [ib.Finding(
            "withdrawn-version", "warning", "/version",
            "version 2.0.0, scheduled for 2026-06-01T00:00:00Z, was withdrawn before its date: "
            "make sure no copy of it still prices calls", "2.0.0",
        )] == list(found)

    def test_removed_version_in_force_is_an_error(self) -> None:
        """A version already in force cannot leave the book."""
        previous = self.book()
        current = ib.PriceBook(previous.tables[:2])
        found = ib.check_book(current, previous=previous, now=datetime(2026, 7, 1, tzinfo=UTC))
        assert [("published-unchanged", "/version")] == rules(found, "error")

    def test_changed_content_same_version(self) -> None:
        """A version whose content changed while its number stayed is an error."""
        previous = self.book()
        first, second, third = previous.tables
        edited = third.with_overrides({"note": "edited"}, version="9.9.9")
        edited = attrs.evolve(edited, version="2.0.0")
        found = ib.check_book(ib.PriceBook([first, second, edited]), previous=previous,
                              now=datetime(2026, 3, 1, tzinfo=UTC))
        assert [("published-unchanged", "/version")] == rules(found, "error")
        assert "2.0.0" == found[0].version

    def test_removed_at_its_start_is_in_force(self) -> None:
        """A version whose effective_from is exactly now is in force: removing it is an error,
        not a withdrawal."""
        previous = self.book()
        current = ib.PriceBook(previous.tables[:2])
        found = ib.check_book(current, previous=previous, now=at(2026, 6, 1))
        assert [("published-unchanged", "/version")] == rules(found)

    def history(self) -> ib.PriceBook:
        """1.0.0 published, then 2.0.0 (flux-dev 20) in force since 2025-12-01."""
        return ib.PriceBook([published(), successor({"styles": {"flux-dev": {"cost": 20}}},
                                                    "2.0.0", when="2025-12-01T00:00:00Z")])

    @pytest.mark.parametrize("version", ["1.5.0", "1.1.0"])
    def test_back_dated_insertion(self, version: str) -> None:
        """A new version slipped in before one already in force re-prices history: an error,
        whatever its number."""
        inserted = successor({"styles": {"flux-dev": {"cost": 10}}}, version,
                             when="2025-09-01T00:00:00Z")
        current = ib.PriceBook([*self.history().tables, inserted])
        assert version == current.at(at(2025, 10, 1)).version
        found = ib.check_book(current, previous=self.history(), now=at(2026, 3, 1))
        assert [("no-back-dating", "/effective_from")] == rules(found, "error")
        (error,) = [f for f in found if f.severity == "error"]
        assert version == error.version
        assert (f"version {version} is new but takes effect at 2025-09-01T00:00:00Z, not after "
                "now (2026-03-01T00:00:00Z): back-dated, it re-prices calls already made") in (
                    error.message)

    @pytest.mark.parametrize(
        ("when", "expected"),
        [("2026-02-01T00:00:00Z", [("no-back-dating", "/effective_from")]),
         ("2026-03-01T00:00:00Z", [("no-back-dating", "/effective_from")]),
         ("2026-03-01T00:00:01Z", [])],
    )
    def test_appended_version_dated_before_now(self, when: str,
                                               expected: list[tuple[str, str]]) -> None:
        """A new last version that takes effect at or before now is back-dated; after now it
        is scheduled, and fine."""
        history = self.history()
        appended = successor({"styles": {"flux-dev": {"cost": 25}}}, "3.0.0", history.latest,
                             when=when)
        current = ib.PriceBook([*history.tables, appended])
        assert expected == rules(ib.check_book(current, previous=history, now=at(2026, 3, 1)))

    def test_back_dating_rule_can_be_lowered(self) -> None:
        """no-back-dating is a known rule: a policy can make it a warning."""
        appended = successor({"styles": {"flux-dev": {"cost": 25}}}, "3.0.0",
                             self.history().latest, when="2026-02-01T00:00:00Z")
        current = ib.PriceBook([*self.history().tables, appended])
        policy = ib.UpdatePolicy.from_dict({"rules": {"no-back-dating": "warning"}})
        found = ib.check_book(current, policy, previous=self.history(), now=at(2026, 3, 1))
        assert [("no-back-dating", "/effective_from")] == rules(found, "warning")

    def test_now_must_be_aware(self) -> None:
        """A naive now is refused."""
        with pytest.raises(ValueError, match="timezone-aware"):
            ib.check_book(self.book(), previous=self.book(), now=datetime(2026, 1, 1))


class TestRecost:
    """recost(calls, old, new) from the planner."""

    def test_price_cut(self) -> None:
        """Four flux-dev calls cost 60 then 40: difference -20, ratio 2/3."""
        new = successor({"styles": {"flux-dev": {"cost": 10}}}, "1.1.0")
        impact = recost([Call("flux-dev", 4)], published(), new)
        assert (60, 40, -20, Fraction(2, 3)) == (
            impact.old_total, impact.new_total, impact.difference, impact.ratio)
        assert impact.complete
        assert ("1.0.0", "1.1.0") == (impact.old_version, impact.new_version)

    def test_grouped_by_resolved_style(self) -> None:
        """Calls naming the default style and calls naming none are one group."""
        impact = recost([Call("imagine-turbo", 2), Call(count=3), Call("anime")], published(),
                        successor({}, "1.0.1"))
        assert [("imagine-turbo", 5, 5), ("anime", 1, 5)] == [
            (s.label, s.calls, s.old) for s in impact.styles]

    def test_default_style_change_shows_both(self) -> None:
        """When the default changes, the group names both styles and each table's price."""
        new = successor({"operations": {"text-to-image": {"default_style": "anime"}}}, "1.0.1")
        (group,) = recost([Call(count=10)], published(), new).styles
        assert ("imagine-turbo -> anime", 10, 50, 40) == (
            group.label, group.old, group.new, group.difference)

    def test_removed_style_is_not_comparable(self) -> None:
        """A style missing from the new table is reported, and left out of the totals."""
        new = successor({"styles": {"anime": None}}, "2.0.0")
        impact = recost([Call("anime", 2), Call("flux-dev")], published(), new)
        (missing,) = impact.not_comparable
        assert ("anime", 10, None) == (missing.label, missing.old, missing.new)
        assert "unknown style 'anime'" in (missing.new_problem or "")
        assert (15, 15) == (impact.old_total, impact.new_total)
        assert not impact.complete

    def test_unpriced_style_is_not_comparable(self) -> None:
        """sdxl-1.0 has no price in either table: not comparable, no crash."""
        impact = recost([Call("sdxl-1.0")], published(), successor({}, "1.0.1"))
        assert (0, 0, None) == (impact.old_total, impact.new_total, impact.ratio)
        assert impact.styles[0].old_problem is not None
        assert impact.styles[0].new_problem is not None

    def test_flat_cost_operation(self) -> None:
        """An operation without styles is priced by its flat cost, labelled as such."""
        old = successor({"operations": {"upscale": {"cost": 4}}}, "1.1.0")
        new = successor({"operations": {"upscale": {"cost": 6}}}, "2.0.0", old,
                        when="2026-06-01T00:00:00Z")
        (group,) = recost([Call(operation="upscale", count=2)], old, new).styles
        assert ("(upscale flat cost)", 8, 12) == (group.label, group.old, group.new)

    def test_saved_workload(self) -> None:
        """The workload fixture, priced under the published table and a flux-dev cut."""
        calls = load_calls(UPDATES / "workload.json")
        new = successor({"styles": {"flux-dev": {"cost": 10}}}, "1.1.0")
        impact = recost(calls, published(), new)
        # flux-dev 4 x 15 = 60 -> 40; anime 2 x 5 = 10; 10 default (imagine-turbo) x 1 = 10;
        # sdxl-1.0 is unpriced in both.
        assert (80, 60, -20) == (impact.old_total, impact.new_total, impact.difference)
        assert ["sdxl-1.0"] == [s.label for s in impact.not_comparable]

    def test_to_dict(self) -> None:
        """The impact's dict is JSON with exact ratios."""
        new = successor({"styles": {"flux-dev": {"cost": 10}}}, "1.1.0")
        document = json.loads(json.dumps(recost([Call("flux-dev")], published(), new).to_dict()))
        assert ("2/3", -5, True) == (document["ratio"], document["difference"],
                                     document["complete"])

    def test_types(self) -> None:
        """recost returns a WorkloadImpact of StyleImpacts."""
        impact = recost([Call("anime")], published(), published())
        assert isinstance(impact, WorkloadImpact)
        assert all(isinstance(s, StyleImpact) for s in impact.styles)


class TestFormatRatio:
    """format_ratio: a ratio for people, without floats."""

    @pytest.mark.parametrize(
        ("ratio", "text"),
        [(Fraction(2, 3), "0.67"), (Fraction(3, 2), "1.5"), (Fraction(2), "2"),
         (Fraction(0), "0"), (Fraction(1, 3), "0.33")],
    )
    def test_examples(self, ratio: Fraction, text: str) -> None:
        """Two decimals at most, trailing zeros dropped."""
        assert text == format_ratio(ratio)


class TestRules:
    """The rule registry."""

    def test_documented_rules_exist(self) -> None:
        """The rules the issue names are all known, at their default severities."""
        expected = {"version-increases": "error", "semver-bump": "error",
                    "effective-from-forward": "error", "deprecate-before-remove": "error",
                    "priced-stays-priced": "error", "max-increase": "error",
                    "default-style-exists": "error", "no-back-dating": "error",
                    "version-gap": "warning"}
        assert expected == {k: RULES[k] for k in expected}

    def test_exported(self) -> None:
        """The update API is importable from the top-level package."""
        for name in ("TableDiff", "Repricing", "StatusChange", "MetadataChange", "Finding",
                     "UpdatePolicy", "diff_tables", "check_update", "check_book", "load_policy",
                     "recost", "WorkloadImpact", "StyleImpact"):
            assert name in ib.__all__
            assert getattr(ib, name) is not None

    def test_not_imported_to_price(self) -> None:
        """Pricing with the default table does not import the update checks (or decimal)."""
        code = ("import sys, imagine_billing as ib; ib.load_price_table().cost('flux-dev'); "
                "print(sorted(m for m in ('imagine_billing.pricing.updates', "
                "'imagine_billing.planner', 'fractions', 'decimal') if m in sys.modules))")
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                check=True)
        assert "[]" == result.stdout.strip()
