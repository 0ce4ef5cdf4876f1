"""The price model: PriceTable, Style, Operation."""

from __future__ import annotations

import copy
import json
import pickle
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import attrs
import pytest

import imagine_billing as ib


class TestCost:
    """PriceTable.cost: tokens for a number of calls in one style."""

    @pytest.mark.parametrize(
        ("style", "count", "expected"),
        [
            ("flux-dev", 1, 15),
            ("flux-dev", 4, 60),
            ("anime", 3, 15),
            ("imagine-turbo", 1000, 1000),
            ("realistic", 2, 10),
            ("flux-schnell", 1, 5),
            ("flux-dev-fast", 7, 35),
        ],
    )
    def test_published_costs_times_count(
        self, table: ib.PriceTable, style: str, count: int, expected: int
    ) -> None:
        """cost is the published unit cost times count."""
        assert expected == table.cost(style, count)

    def test_unknown_style_suggests(self, table: ib.PriceTable) -> None:
        """A misspelt style raises UnknownStyleError with the close match first."""
        with pytest.raises(ib.UnknownStyleError) as caught:
            table.cost("flux-dv")
        assert "flux-dev" == caught.value.suggestions[0]
        assert isinstance(caught.value, LookupError)
        assert "did you mean 'flux-dev'" in str(caught.value)

    def test_unknown_style_without_close_match_lists_styles(self, table: ib.PriceTable) -> None:
        """With nothing close, the error lists the known styles."""
        with pytest.raises(ib.UnknownStyleError, match="expected one of: anime") as caught:
            table.cost("zzzzzz")
        assert () == caught.value.suggestions

    def test_suggestions_ignore_case(self, table: ib.PriceTable) -> None:
        """An upper-case style id suggests its lower-case spelling first."""
        with pytest.raises(ib.UnknownStyleError) as caught:
            table.cost("FLUX-DEV")
        assert "flux-dev" == caught.value.suggestions[0]

    def test_unhashable_style_is_unknown(self, table: ib.PriceTable) -> None:
        """A style that is not a string is an UnknownStyleError, not a TypeError."""
        with pytest.raises(ib.UnknownStyleError):
            table.cost(["flux-dev"])  # type: ignore[arg-type]

    def test_unpriced_style_says_how_to_price_it(self, table: ib.PriceTable) -> None:
        """sdxl-1.0 has no published price; the error shows the override that supplies one."""
        with pytest.raises(ib.UnpricedError, match=r'with_overrides\(\{"styles": \{"sdxl-1.0"'):
            table.cost("sdxl-1.0")

    @pytest.mark.parametrize(
        ("count", "error"),
        [(0, ValueError), (-1, ValueError), (1.0, TypeError), (True, TypeError), ("2", TypeError)],
    )
    def test_bad_counts(self, table: ib.PriceTable, count: object, error: type[Exception]) -> None:
        """count must be an int >= 1; the message names the value."""
        with pytest.raises(error, match=repr(count).replace("'", ".")):
            table.cost("anime", count)  # type: ignore[arg-type]


    def test_counts_up_to_the_limit(self, table: ib.PriceTable) -> None:
        """Counts go up to 2**53-1, as for every count of the library; one more is refused."""
        assert 15 * (2**53 - 1) == table.cost("flux-dev", 2**53 - 1)
        with pytest.raises(ValueError, match=r"at most 2\*\*53-1"):
            table.cost("flux-dev", 2**53)


class TestImmutability:
    """Tables cannot be changed after they are made."""

    def test_attributes_cannot_be_assigned(self, table: ib.PriceTable) -> None:
        """Assigning to any attribute raises."""
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            table.version = "9.9.9"  # type: ignore[misc]

    def test_mappings_are_read_only(self, table: ib.PriceTable) -> None:
        """The styles and operations mappings refuse item assignment."""
        with pytest.raises(TypeError):
            table.styles["anime"] = table.styles["flux-dev"]  # type: ignore[index]
        with pytest.raises(TypeError):
            del table.operations["upscale"]  # type: ignore[attr-defined]

    def test_styles_are_frozen(self, table: ib.PriceTable) -> None:
        """A Style cannot be repriced in place."""
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            table.styles["anime"].cost = 1  # type: ignore[misc]

    def test_constructor_copies_its_mappings(self) -> None:
        """Changing the dict a table was built from does not change the table."""
        styles = {"a": ib.Style("a", "A", 2)}
        operations = {"text-to-image": ib.Operation("text-to-image", "T", "POST", "/x")}
        table = ib.PriceTable(
            "imagine-api", "1.0.0", datetime(2025, 1, 1, tzinfo=UTC), styles, operations
        )
        styles["a"] = ib.Style("a", "A", 99)
        assert 2 == table.cost("a")

    def test_cost_cache_is_read_only(self, table: ib.PriceTable) -> None:
        """The shared bundled table's cost lookup cannot be changed behind cost()'s back."""
        with pytest.raises(TypeError):
            table._costs["flux-dev"] = 0  # type: ignore[index]
        assert 15 == ib.load_price_table().cost("flux-dev")

    def test_tables_are_hashable(self, table: ib.PriceTable) -> None:
        """Tables can be set members and dict keys."""
        again = ib.load_price_table(table.to_dict())
        assert 1 == len({table, again})


def hand_built(**changes: Any) -> ib.PriceTable:
    """A small table made with the trusting constructor."""
    fields: dict[str, Any] = {
        "api": "imagine-api",
        "version": "1.0.0",
        "effective_from": datetime(2025, 1, 1, tzinfo=UTC),
        "styles": {"a": ib.Style("a", "A", 2)},
        "operations": {
            "text-to-image": ib.Operation("text-to-image", "T", "POST", "/x", default_style="a")
        },
    }
    return ib.PriceTable(**{**fields, **changes})


class TestConstructor:
    """PriceTable(...) trusts its arguments' shape but keeps the invariants."""

    def test_naive_effective_from_refused(self) -> None:
        """A naive datetime would make the digest depend on the TZ variable: refused."""
        with pytest.raises(ValueError, match="effective_from must be timezone-aware"):
            hand_built(effective_from=datetime(2025, 1, 1))

    def test_effective_from_is_kept_in_utc(self) -> None:
        """Another offset is the same instant, kept in UTC, with the same digest."""
        plus2 = timezone(timedelta(hours=2))
        other = hand_built(effective_from=datetime(2025, 1, 1, 2, tzinfo=plus2))
        assert (UTC, hand_built().digest) == (other.effective_from.tzinfo, other.digest)

    def test_style_of_a_missing_operation_refused(self) -> None:
        """A style's operation must be in the table."""
        with pytest.raises(ib.PriceSchemaError) as caught:
            hand_built(styles={"a": ib.Style("a", "A", 2), "b": ib.Style("b", "B", 1, "nope")})
        assert ["/styles/b/operation"] == [p.path for p in caught.value.problems]

    def test_default_style_must_exist_and_belong(self) -> None:
        """An operation's default style exists and is one of its own."""
        operations = {
            "text-to-image": ib.Operation("text-to-image", "T", "POST", "/x", default_style="z"),
            "fill": ib.Operation("fill", "F", "POST", "/y", default_style="a"),
        }
        with pytest.raises(ib.PriceSchemaError) as caught:
            hand_built(operations=operations)
        assert [
            ("/operations/text-to-image/default_style", "style 'z' does not exist"),
            (
                "/operations/fill/default_style",
                "style 'a' belongs to operation 'text-to-image', not 'fill'",
            ),
        ] == [(p.path, p.message) for p in caught.value.problems]

    def test_keys_are_the_ids(self) -> None:
        """A style stored under another id than its own is refused."""
        with pytest.raises(ib.PriceSchemaError, match="holds the style of id 'b'"):
            hand_built(styles={"a": ib.Style("b", "B", 2)})


class TestPickle:
    """Tables cross process boundaries (pickle, multiprocessing) and deep-copy."""

    def test_pickle_round_trip(self, table: ib.PriceTable) -> None:
        """An unpickled table equals the original, with the same digest and costs."""
        again = pickle.loads(pickle.dumps(table))
        assert (table, table.digest, 15) == (again, again.digest, again.cost("flux-dev"))

    def test_deepcopy(self, table: ib.PriceTable) -> None:
        """A deep copy is equal, read-only, and has the same digest."""
        again = copy.deepcopy(table)
        assert (table, table.digest) == (again, again.digest)
        with pytest.raises(TypeError):
            again.styles["anime"] = again.styles["flux-dev"]  # type: ignore[index]

    def test_styles_and_operations_pickle(self, table: ib.PriceTable) -> None:
        """Style and Operation pickle on their own too."""
        parts = (table.styles["flux-dev"], table.operations["text-to-image"])
        assert parts == pickle.loads(pickle.dumps(parts))


class TestDigest:
    """The digest names a table's content."""

    def test_digest_form(self, table: ib.PriceTable) -> None:
        """sha256: and 64 hex digits."""
        prefix, hexdigits = table.digest.split(":")
        assert "sha256" == prefix
        assert 64 == len(hexdigits)
        assert set(hexdigits) <= set("0123456789abcdef")

    def test_canonical_json_is_compact_and_sorted(self, table: ib.PriceTable) -> None:
        """to_json has sorted keys and no insignificant whitespace."""
        text = table.to_json()
        assert text == json.dumps(
            json.loads(text), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        )

    def test_same_instant_other_offset_same_digest(self, table: ib.PriceTable) -> None:
        """effective_from is normalised to UTC, so equal instants give equal digests."""
        document = table.to_dict()
        document["effective_from"] = "2025-07-01T02:00:00+02:00"
        assert table.digest == ib.load_price_table(document).digest

    def test_explicit_defaults_same_digest(self) -> None:
        """A style with status and operation spelled out equals one that omits them."""
        base = {
            "format": 1,
            "api": "imagine-api",
            "version": "1.0.0",
            "effective_from": "2025-01-01T00:00:00Z",
            "operations": {"text-to-image": {"name": "T", "method": "POST", "path": "/x"}},
        }
        short = {**base, "styles": {"a": {"name": "A", "cost": 1}}}
        long = {
            **base,
            "styles": {
                "a": {"name": "A", "cost": 1, "status": "active", "operation": "text-to-image"}
            },
        }
        assert ib.load_price_table(short).digest == ib.load_price_table(long).digest


class TestRoundTrip:
    """to_dict and from_dict are inverses."""

    def test_from_dict_of_to_dict(self, table: ib.PriceTable) -> None:
        """from_dict(to_dict(t)) == t for the bundled table."""
        assert table == ib.PriceTable.from_dict(table.to_dict())

    @pytest.mark.parametrize("data", [None, "tests/data/valid/bundled-minified.json", 42])
    def test_from_dict_takes_a_mapping_only(self, data: object) -> None:
        """from_dict is not load_price_table: None or a path is a TypeError."""
        with pytest.raises(TypeError, match="takes a mapping"):
            ib.PriceTable.from_dict(data)  # type: ignore[arg-type]

    def test_to_dict_is_a_fresh_copy(self, table: ib.PriceTable) -> None:
        """Changing the returned document does not change the table."""
        document = table.to_dict()
        document["styles"]["anime"]["cost"] = 999
        assert 5 == table.cost("anime")

    def test_effective_from_is_aware_utc(self, table: ib.PriceTable) -> None:
        """effective_from comes back timezone-aware in UTC."""
        assert timedelta(0) == table.effective_from.utcoffset()
        assert datetime(2025, 7, 1, tzinfo=timezone.utc) == table.effective_from  # noqa: UP017


class TestOverrides:
    """with_overrides: a user's own prices as a new table."""

    def test_prices_an_unpriced_style(self, table: ib.PriceTable) -> None:
        """Pricing sdxl-1.0 gives a new table; the original stays unpriced."""
        mine = table.with_overrides({"styles": {"sdxl-1.0": {"cost": 2}}}, version="1.0.1")
        assert 2 == mine.cost("sdxl-1.0")
        assert "1.0.1" == mine.version
        assert table.styles["sdxl-1.0"].cost is None
        assert table.digest != mine.digest

    def test_negotiated_rate(self, table: ib.PriceTable) -> None:
        """A lower negotiated flux-dev rate changes only flux-dev."""
        mine = table.with_overrides({"styles": {"flux-dev": {"cost": 12}}}, version="1.1.0")
        assert 12 == mine.cost("flux-dev")
        assert {s: table.cost(s) for s in ("anime", "imagine-turbo")} == {
            s: mine.cost(s) for s in ("anime", "imagine-turbo")
        }

    def test_null_removes_a_key(self, table: ib.PriceTable) -> None:
        """A JSON Merge Patch null deletes: removing a style."""
        mine = table.with_overrides({"styles": {"anime": None}}, version="2.0.0")
        assert "anime" not in mine.styles
        assert "anime" in table.styles

    def test_patch_is_validated(self, table: ib.PriceTable) -> None:
        """An override with a float cost is refused with its path."""
        with pytest.raises(ib.PriceSchemaError) as caught:
            table.with_overrides({"styles": {"sdxl-1.0": {"cost": 2.5}}}, version="1.0.1")
        assert ["/styles/sdxl-1.0/cost"] == [p.path for p in caught.value.problems]

    def test_same_version_refused(self, table: ib.PriceTable) -> None:
        """A changed table keeps no old version number."""
        with pytest.raises(ib.PriceSchemaError, match="version of its own"):
            table.with_overrides({"styles": {"sdxl-1.0": {"cost": 2}}}, version=table.version)

    def test_patch_version_conflicting_with_keyword(self, table: ib.PriceTable) -> None:
        """A patch setting another version than the keyword is refused, naming both."""
        with pytest.raises(ib.PriceSchemaError, match=r"'5\.0\.0' but version='1\.0\.1'"):
            table.with_overrides({"version": "5.0.0"}, version="1.0.1")

    def test_patch_version_equal_to_keyword(self, table: ib.PriceTable) -> None:
        """A patch repeating the keyword's version is fine."""
        assert "1.0.1" == table.with_overrides({"version": "1.0.1"}, version="1.0.1").version

    def test_null_cost_explains_merge_patch(self, table: ib.PriceTable) -> None:
        """{"cost": null} removes the cost: the message says why and what to do instead."""
        with pytest.raises(ib.PriceSchemaError) as caught:
            table.with_overrides({"styles": {"anime": {"cost": None}}}, version="1.0.1")
        [problem] = caught.value.problems
        assert "/styles/anime/cost" == problem.path
        assert "null in a JSON Merge Patch removes the key" in problem.message
        assert "PriceTable.from_dict" in problem.message

    def test_deep_patch_is_a_problem(self, table: ib.PriceTable) -> None:
        """A patch nested 3000 deep is a PriceSchemaError, not a RecursionError."""
        patch: dict[str, Any] = {}
        node = patch
        for _ in range(3000):
            node["a"] = {}
            node = node["a"]
        with pytest.raises(ib.PriceSchemaError, match="nested more than 64 levels"):
            table.with_overrides(patch, version="1.0.1")

    def test_lone_surrogate_in_patch(self, table: ib.PriceTable) -> None:
        """A lone surrogate in a patched note is a problem at its path."""
        with pytest.raises(ib.PriceSchemaError) as caught:
            table.with_overrides({"note": "\udfff"}, version="1.0.1")
        assert [("/note", "not valid Unicode text (a lone surrogate \\udfff)")] == [
            (p.path, p.message) for p in caught.value.problems
        ]

    def test_patch_must_be_a_mapping(self, table: ib.PriceTable) -> None:
        """A non-mapping patch is a TypeError."""
        with pytest.raises(TypeError, match="JSON Merge Patch"):
            table.with_overrides([1], version="1.0.1")  # type: ignore[arg-type]


class TestLookups:
    """style() and operation() lookups."""

    def test_operation_lookup(self, table: ib.PriceTable) -> None:
        """operation() returns the operation; an unknown one suggests."""
        assert "/v2/image/generations" == table.operation("text-to-image").path
        with pytest.raises(ib.UnknownStyleError, match=r"unknown operation 'upscal'.*'upscale'"):
            table.operation("upscal")

    def test_style_lookup(self, table: ib.PriceTable) -> None:
        """style() returns the style; an unknown one suggests."""
        assert "Flux Dev" == table.style("flux-dev").name
        with pytest.raises(ib.UnknownStyleError, match="'anime'"):
            table.style("anim")


def test_an_unknown_style_lists_fifteen_names_and_how_many_more() -> None:
    """A table of 2,000 styles gave a message listing all of them (an attack found a 160 KB
    line); it shows 15 and says how many more."""
    document = ib.load_price_table().to_dict()
    for index in range(2000):
        document["styles"][f"s{index:04}"] = {"name": "S", "cost": 1}
    table = ib.load_price_table(document)
    with pytest.raises(ib.UnknownStyleError) as caught:
        table.cost("qqqq")
    assert str(caught.value).endswith(f" and {len(table.styles) - 15} more")
    assert len(str(caught.value)) < 400
