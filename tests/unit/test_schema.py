"""The published JSON Schema of format 1: pinned, valid, shipped in the wheel."""

from __future__ import annotations

import hashlib
import re
import zipfile
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

import imagine_billing as ib
from imagine_billing.pricing.schema import SCHEMA_NAME, ecma_regex, schema_path

ROOT = Path(__file__).parents[2]
SCHEMA = ROOT / "schemas" / SCHEMA_NAME
PINNED_SHA256 = "3716cb1cda901628a41e0c67fd37a07b176696264ce9e4459cd54905c0437cf7"


class TestPublishedSchema:
    """schemas/price-table.v1.schema.json is published and must not drift."""

    def test_schema_is_pinned(self) -> None:
        """The file's sha256 is the published one."""
        actual = hashlib.sha256(SCHEMA.read_bytes()).hexdigest()
        assert PINNED_SHA256 == actual, (
            "format 1 is published: make format 2 instead (a new schema file and a new "
            "`format` value) rather than editing price-table.v1.schema.json"
        )

    def test_schema_is_a_valid_2020_12_schema(self) -> None:
        """The schema passes the draft 2020-12 meta-schema."""
        Draft202012Validator.check_schema(ib.price_table_schema())

    def test_package_reads_the_one_copy(self) -> None:
        """From a source checkout, the package reads schemas/ itself (no second copy)."""
        assert SCHEMA.read_bytes() == Path(schema_path()).read_bytes()
        assert not (ROOT / "src" / "imagine_billing" / "schemas").exists()

    def test_schema_is_a_fresh_dict(self) -> None:
        """Changing the returned schema does not change the next one."""
        first = ib.price_table_schema()
        first["type"] = "array"
        assert "object" == ib.price_table_schema()["type"]


class TestPatternKeyword:
    """``pattern`` matches as ECMA-262 does (the dialect JSON Schema specifies)."""

    @pytest.mark.parametrize(
        ("pattern", "expected"),
        [
            ("^a$", "^a\\Z"),
            ("^[$]$", "^[$]\\Z"),
            ("^\\$$", "^\\$\\Z"),
            ("^[^$\\]]*$", "^[^$\\]]*\\Z"),
            ("^[]$]$", "^[]$]\\Z"),
        ],
    )
    def test_dollar_is_the_end_of_the_text(self, pattern: str, expected: str) -> None:
        """Only a $ outside a character class, and not escaped, becomes \\Z."""
        assert expected == ecma_regex(pattern)

    @pytest.mark.parametrize(
        ("pattern", "text", "expected"),
        [
            ("^(0|[1-9][0-9]*)$", "10", True),
            ("^(0|[1-9][0-9]*)$", "10\n", False),
            ("^/[^\\s?#]*$", "/v2/x\n", False),
            ("a$", "a$", False),
            ("[$]", "a$", True),
        ],
    )
    def test_matches_like_ecma_262(self, pattern: str, text: str, expected: bool) -> None:
        """A final newline no longer satisfies $."""
        assert expected == bool(re.search(ecma_regex(pattern), text))


class TestWheel:
    """The built wheel carries the schema and the bundled table."""

    def test_wheel_contains_schema_and_data(self, tmp_path: Path) -> None:
        """A wheel built from this tree holds the schema byte for byte, and the default table."""
        from hatchling.builders.wheel import WheelBuilder

        builder = WheelBuilder(str(ROOT))
        [wheel] = list(builder.build(directory=str(tmp_path), versions=["standard"]))
        with zipfile.ZipFile(wheel) as archive:
            names = set(archive.namelist())
            schema = archive.read(f"imagine_billing/schemas/{SCHEMA_NAME}")
        assert SCHEMA.read_bytes() == schema
        assert "imagine_billing/data/imagine-api.json" in names
        assert "imagine_billing/py.typed" in names
