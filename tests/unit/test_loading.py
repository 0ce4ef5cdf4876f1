"""Loading and validating price documents: files, mappings and the bundled table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

import imagine_billing as ib
from imagine_billing.pricing import loading
from imagine_billing.pricing.loading import BUNDLED_DIGEST, bundled_path

DATA = Path(__file__).parents[1] / "data"
INVALID = DATA / "invalid"
EXPECTED: dict[str, list[str]] = json.loads((INVALID / "expected-paths.json").read_text())
VALID = sorted((DATA / "valid").glob("*.json"))


def bundled_document() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(Path(bundled_path()).read_text())
    return document


class TestInvalidSuite:
    """Every file of tests/data/invalid/ is refused, naming the paths listed for it."""

    def test_every_file_has_expected_paths(self) -> None:
        """The suite's index and its files agree, so no case is silently skipped."""
        files = {p.name for p in INVALID.glob("*.json")} - {"expected-paths.json"}
        assert files == set(EXPECTED)

    @pytest.mark.parametrize("name", sorted(EXPECTED))
    def test_invalid_file_names_its_paths(self, name: str) -> None:
        """Loading raises PriceSchemaError naming exactly the expected paths, each once."""
        with pytest.raises(ib.PriceSchemaError) as caught:
            ib.load_price_table(INVALID / name)
        paths = [p.path for p in caught.value.problems]
        assert sorted(EXPECTED[name]) == sorted(paths)
        assert all(p.source == str(INVALID / name) for p in caught.value.problems)
        assert not isinstance(caught.value, ib.PriceSourceError)


class TestValidSuite:
    """Every file of tests/data/valid/ loads."""

    @pytest.mark.parametrize("path", VALID, ids=lambda p: p.name)
    def test_valid_file_loads(self, path: Path) -> None:
        """The file gives a table whose document is its own, normalised."""
        table = ib.load_price_table(path)
        assert table.api == "imagine-api"
        assert ib.load_price_table(table.to_dict()) == table

    def test_reformatted_copies_share_the_bundled_digest(self) -> None:
        """Key order and whitespace do not change the digest."""
        digests = {
            ib.load_price_table(DATA / "valid" / n).digest
            for n in ("bundled-minified.json", "bundled-reordered.json")
        }
        assert {ib.load_price_table().digest} == digests


class TestBundledTable:
    """The bundled default table: valid, published prices, digest recorded."""

    def test_bundled_file_satisfies_the_schema(self) -> None:
        """The bundled file passes JSON Schema validation (not re-run at load)."""
        errors = list(Draft202012Validator(ib.price_table_schema()).iter_errors(bundled_document()))
        assert [] == errors

    def test_bundled_file_passes_full_validation(self) -> None:
        """Loading the bundled document as a mapping (schema + invariants) gives the same table."""
        assert ib.load_price_table() == ib.load_price_table(bundled_document())

    def test_recorded_digest_matches_the_file(self) -> None:
        """BUNDLED_DIGEST is the digest of the file's content (update both together)."""
        assert BUNDLED_DIGEST == ib.load_price_table(bundled_document()).digest

    def test_published_costs(self) -> None:
        """The six published styles cost what the billing page says; sdxl-1.0 is unpriced."""
        table = ib.load_price_table()
        published = {
            "anime": 5,
            "realistic": 5,
            "flux-schnell": 5,
            "flux-dev-fast": 5,
            "flux-dev": 15,
            "imagine-turbo": 1,
        }
        assert published == {s: table.cost(s) for s in published}
        assert table.styles["sdxl-1.0"].cost is None

    def test_every_documented_operation_is_there(self) -> None:
        """DESIGN.md section 1's endpoints are all operations, with method and path."""
        table = ib.load_price_table()
        routes = {(o.method, o.path) for o in table.operations.values()}
        for path in (
            "/image/generations",
            "/image/generations/transparent",
            "/image/generations/ai-background",
            "/image/edits/generative-fill",
            "/image/background/remover",
            "/image/enhance",
            "/image/edits/ai-resize",
            "/image/edits/remove",
            "/video/text-to-video",
            "/video/image-to-video",
        ):
            assert ("POST", "/v2" + path) in routes
        unpublished = [o.id for o in table.operations.values() if o.cost is not None]
        assert [] == unpublished

    def test_bundled_table_is_shared_not_reparsed(self) -> None:
        """Two loads of the default give the same immutable object."""
        assert ib.load_price_table() is ib.load_price_table()

    def test_damaged_bundled_file_says_reinstall(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A bundled file whose content is not the recorded digest is refused at load."""
        document = bundled_document()
        document["styles"]["flux-dev"]["cost"] = 1
        damaged = tmp_path / "imagine-api.json"
        damaged.write_text(json.dumps(document))
        monkeypatch.setattr(loading, "bundled_path", lambda: str(damaged))
        loading._bundled.cache_clear()
        try:
            with pytest.raises(ib.PriceSourceError, match="reinstall") as caught:
                ib.load_price_table()
        finally:
            loading._bundled.cache_clear()
        assert [str(damaged)] == [caught.value.source]

    def test_bundled_table_records_its_source(self) -> None:
        """The table says where and when its prices were taken."""
        table = ib.load_price_table()
        assert table.source is not None
        assert "billing" in table.source
        assert table.note is not None
        assert "taken on" in table.note


class TestUnreadableSources:
    """Files that cannot be read at all raise PriceSourceError (a PriceSchemaError)."""

    def test_missing_file(self, tmp_path: Path) -> None:
        """A missing file names the file and says it cannot be read."""
        missing = tmp_path / "nope.json"
        with pytest.raises(ib.PriceSourceError, match="cannot read the file") as caught:
            ib.load_price_table(missing)
        assert str(missing) in str(caught.value)

    def test_directory(self, tmp_path: Path) -> None:
        """A directory is not a price file."""
        with pytest.raises(ib.PriceSourceError):
            ib.load_price_table(tmp_path)

    def test_not_json(self, tmp_path: Path) -> None:
        """Text that is not JSON names the line and column."""
        path = tmp_path / "t.json"
        path.write_text('{"format": 1,\n  oops}')
        with pytest.raises(ib.PriceSourceError, match=r"not JSON: .* line 2 column 3"):
            ib.load_price_table(path)

    def test_not_utf8(self, tmp_path: Path) -> None:
        """Bytes that are not UTF-8 are refused cleanly."""
        path = tmp_path / "t.json"
        path.write_bytes(b'{"api": "\xff"}')
        with pytest.raises(ib.PriceSourceError, match="not UTF-8"):
            ib.load_price_table(path)

    def test_deeply_nested(self, tmp_path: Path) -> None:
        """A pathological nesting depth is refused, not a RecursionError."""
        path = tmp_path / "t.json"
        path.write_text("[" * 100_000 + "]" * 100_000)
        with pytest.raises(ib.PriceSchemaError):
            ib.load_price_table(path)

    def test_unreadable_problems_name_their_file(self, tmp_path: Path) -> None:
        """Each problem of an unreadable file carries the file's name."""
        missing = tmp_path / "nope.json"
        with pytest.raises(ib.PriceSourceError) as caught:
            ib.load_price_table(missing)
        assert [str(missing)] == [p.source for p in caught.value.problems]

    def test_number_out_of_range(self) -> None:
        """1e400 is valid JSON but out of range: said so, not "not a number JSON allows"."""
        with pytest.raises(ib.PriceSchemaError) as caught:
            ib.load_price_table(INVALID / "overflow-cost.json")
        assert ["1e400 is out of range (no number this large is a price)"] == [
            p.message for p in caught.value.problems
        ]

    def test_nested_too_deep_is_cut_off(self) -> None:
        """A value nested 500 deep is a problem at 64 levels, not a RecursionError."""
        with pytest.raises(ib.PriceSchemaError) as caught:
            ib.load_price_table(INVALID / "nested-too-deep.json")
        assert (
            "/extra" + "/0" * 63,
            "nested too deeply for a price table (more than 64 levels)",
        ) in [(p.path, p.message) for p in caught.value.problems]

    def test_byte_order_mark_is_accepted(self, tmp_path: Path) -> None:
        """A UTF-8 byte order mark (some editors write one) does not make a file invalid."""
        path = tmp_path / "t.json"
        path.write_bytes(b"\xef\xbb\xbf" + Path(bundled_path()).read_bytes())
        assert ib.load_price_table() == ib.load_price_table(path)


class TestMappingSources:
    """Documents given as mappings are validated like files."""

    def test_all_problems_reported_at_once(self) -> None:
        """Three independent problems give three problems, not the first only."""
        document = bundled_document()
        document["styles"]["flux-dev"]["cost"] = 1.5
        document["styles"]["anime"]["cost"] = "5"
        document["version"] = "1"
        with pytest.raises(ib.PriceSchemaError) as caught:
            ib.load_price_table(document)
        assert {"/styles/flux-dev/cost", "/styles/anime/cost", "/version"} == {
            p.path for p in caught.value.problems
        }

    def test_message_names_value_and_expectation(self) -> None:
        """The message says what was found and what was expected."""
        document = bundled_document()
        document["styles"]["flux-dev"]["cost"] = 1.5
        with pytest.raises(ib.PriceSchemaError) as caught:
            ib.load_price_table(document)
        assert "/styles/flux-dev/cost: must be an integer >= 0 or null (got 1.5)" in str(
            caught.value
        )

    def test_python_nan_is_refused(self) -> None:
        """A float NaN in a mapping is refused like any float cost."""
        document = bundled_document()
        document["styles"]["flux-dev"]["cost"] = float("nan")
        with pytest.raises(ib.PriceSchemaError) as caught:
            ib.load_price_table(document)
        assert ["/styles/flux-dev/cost"] == [p.path for p in caught.value.problems]

    def test_unknown_format_message(self) -> None:
        """An unknown format says which format this version reads."""
        document = bundled_document()
        document["format"] = 2
        with pytest.raises(ib.PriceSchemaError, match=r"unsupported format 2 .*reads format 1"):
            ib.load_price_table(document)

    def test_suggestion_for_a_misspelt_default_style(self) -> None:
        """A default style that does not exist suggests the close match."""
        document = bundled_document()
        document["operations"]["text-to-image"]["default_style"] = "imagine-turbos"
        with pytest.raises(ib.PriceSchemaError, match="did you mean 'imagine-turbo'"):
            ib.load_price_table(document)

    def test_a_wrong_format_comes_first(self) -> None:
        """For a format-2 document the /format problem is the best match, listed first."""
        document = bundled_document()
        document["format"] = 2
        document["currency"] = "USD"
        with pytest.raises(ib.PriceSchemaError) as caught:
            ib.load_price_table(document)
        assert ["/format", "/currency"] == [p.path for p in caught.value.problems]

    def test_each_missing_key_once(self) -> None:
        """{"format": 1} lacks five keys: five problems, one per key."""
        with pytest.raises(ib.PriceSchemaError) as caught:
            ib.load_price_table({"format": 1})
        assert [
            f"missing: {key!r} is required"
            for key in ("api", "version", "effective_from", "styles", "operations")
        ] == [p.message for p in caught.value.problems]

    def test_style_named_cost_must_be_an_object(self) -> None:
        """A style whose id is "cost" gets the message of a style, not of a cost."""
        document = bundled_document()
        document["styles"]["cost"] = 5
        with pytest.raises(ib.PriceSchemaError) as caught:
            ib.load_price_table(document)
        assert [("/styles/cost", "must be an object (got 5)")] == [
            (p.path, p.message) for p in caught.value.problems
        ]

    @pytest.mark.parametrize(
        ("key", "value"),
        [
            ("version", "1.0.0\n"),
            ("api", "imagine-api\n"),
            ("effective_from", "2025-07-01T00:00:00Z\n"),
        ],
    )
    def test_trailing_newline_does_not_match(self, key: str, value: str) -> None:
        """A final newline fails the pattern, as in ECMA-262 (Python's $ would match)."""
        document = bundled_document()
        document[key] = value
        with pytest.raises(ib.PriceSchemaError) as caught:
            ib.load_price_table(document)
        assert [f"/{key}"] == [p.path for p in caught.value.problems]

    def test_style_id_with_trailing_newline(self) -> None:
        """A style id "flux-dev\\n" is an invalid id."""
        document = bundled_document()
        document["styles"]["flux-dev\n"] = document["styles"].pop("flux-dev")
        with pytest.raises(ib.PriceSchemaError) as caught:
            ib.load_price_table(document)
        assert [("/styles/flux-dev\n", 'invalid id "flux-dev\\n": must be a lower-case '
                 "style id such as flux-dev")] == [
            (p.path, p.message) for p in caught.value.problems
        ]

    def test_lone_surrogate_is_a_problem(self) -> None:
        """A lone surrogate in a name is a problem at its path, not a UnicodeEncodeError."""
        document = bundled_document()
        document["styles"]["anime"]["name"] = "Anime \ud800"
        with pytest.raises(ib.PriceSchemaError) as caught:
            ib.load_price_table(document)
        assert [
            ("/styles/anime/name", "not valid Unicode text (a lone surrogate \\ud800)")
        ] == [(p.path, p.message) for p in caught.value.problems]

    def test_fraction_finer_than_a_microsecond(self) -> None:
        """Seven digits of fraction would be cut off (changing the time): refused."""
        document = bundled_document()
        document["effective_from"] = "2025-07-01T00:00:00.1234567Z"
        with pytest.raises(ib.PriceSchemaError, match="finer than a microsecond") as caught:
            ib.load_price_table(document)
        assert ["/effective_from"] == [p.path for p in caught.value.problems]

    def test_fraction_with_trailing_zeros_is_exact(self) -> None:
        """Digits past the sixth that are zeros change nothing and are accepted."""
        document = bundled_document()
        document["effective_from"] = "2025-07-01T00:00:00.1234560Z"
        assert 123456 == ib.load_price_table(document).effective_from.microsecond

    def test_suggestion_ignores_case(self) -> None:
        """An upper-case default style suggests its lower-case id."""
        document = bundled_document()
        document["operations"]["text-to-image"]["default_style"] = "IMAGINE-TURBO"
        with pytest.raises(ib.PriceSchemaError, match="did you mean 'imagine-turbo'"):
            ib.load_price_table(document)

    def test_deep_mapping_is_cut_off(self) -> None:
        """A mapping nested 3000 deep is a problem at 64 levels, not a RecursionError."""
        deep: dict[str, Any] = {}
        node = deep
        for _ in range(3000):
            node["a"] = {}
            node = node["a"]
        document = bundled_document()
        document["extra"] = deep
        with pytest.raises(ib.PriceSchemaError) as caught:
            ib.load_price_table(document)
        assert ["/extra", "/extra" + "/a" * 63] == sorted(p.path for p in caught.value.problems)

    def test_other_source_types_are_a_type_error(self) -> None:
        """A source that is neither None, a path nor a mapping is a programming error."""
        with pytest.raises(TypeError, match="got int"):
            ib.load_price_table(42)  # type: ignore[arg-type]

    def test_from_dict_validates(self) -> None:
        """PriceTable.from_dict refuses an invalid document."""
        with pytest.raises(ib.PriceSchemaError):
            ib.PriceTable.from_dict({"format": 1})


class TestSuggestions:
    """"Did you mean" is bounded: the first MAX_SUGGESTED bad references get one, the rest a
    plain message, and no message lists more than 15 names (issue 10 item 15: a document
    with 2,000 bad references took 18 s and printed megabytes)."""

    @staticmethod
    def with_bad_references(count: int) -> dict[str, Any]:
        """The bundled document plus ``count`` styles naming the operation "text-to-imag"."""
        document = bundled_document()
        for index in range(count):
            document["styles"][f"style-{index}"] = {
                "name": "S", "cost": 1, "operation": "text-to-imag"}
        return document

    def test_only_the_first_are_suggested(self) -> None:
        from imagine_billing._checks import MAX_SUGGESTED

        with pytest.raises(ib.PriceSchemaError) as caught:
            ib.load_price_table(self.with_bad_references(200))
        messages = [p.message for p in caught.value.problems]
        assert 200 == len(messages)
        suggested = [m for m in messages if "did you mean 'text-to-image'?" in m]
        assert MAX_SUGGESTED == len(suggested)
        assert all(m.startswith("operation 'text-to-imag' does not exist") for m in messages)

    def test_a_long_list_of_names_is_cut(self) -> None:
        """A default style with no close match lists 15 of the styles and how many more."""
        document = self.with_bad_references(0)
        for index in range(109):
            document["styles"][f"style-{index:03}"] = {"name": "S", "cost": 1}
        document["operations"]["text-to-image"]["default_style"] = "zzzzzzzz"
        with pytest.raises(ib.PriceSchemaError) as caught:
            ib.load_price_table(document)
        [problem] = caught.value.problems
        assert problem.message.endswith(f" and {len(document['styles']) - 15} more")
        shown = problem.message.split("expected one of: ")[1].split(" and ")[0]
        assert 15 == len(shown.split(", "))
