"""The price model: PriceTable, Style, Operation."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

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

    def test_tables_are_hashable(self, table: ib.PriceTable) -> None:
        """Tables can be set members and dict keys."""
        again = ib.load_price_table(table.to_dict())
        assert 1 == len({table, again})


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
