"""Properties of price tables: round trips, digests, validation totality, immutability."""

from __future__ import annotations

import copy
import json
from typing import Any

import attrs
from hypothesis import assume, given
from hypothesis import strategies as st

import imagine_billing as ib
from tests.strategies import json_values, price_documents, price_tables


class TestRoundTrip:
    """from_dict(to_dict(t)) == t for every valid table."""

    @given(price_tables())
    def test_round_trip(self, table: ib.PriceTable) -> None:
        """The document of a table loads back to an equal table with the same digest."""
        again = ib.PriceTable.from_dict(table.to_dict())
        assert table == again
        assert table.digest == again.digest
        assert hash(table) == hash(again)

    @given(price_tables())
    def test_json_round_trip(self, table: ib.PriceTable) -> None:
        """The canonical JSON text loads back to an equal table."""
        assert table == ib.load_price_table(json.loads(table.to_json()))


class TestDigest:
    """The digest depends on content only."""

    @given(price_documents(), st.randoms(use_true_random=False), st.integers(0, 4))
    def test_key_order_and_whitespace_do_not_matter(
        self, document: dict[str, Any], random: Any, indent: int
    ) -> None:
        """Shuffling keys at every level and re-spacing the text keeps the digest."""

        def shuffle(value: Any) -> Any:
            if isinstance(value, dict):
                items = list(value.items())
                random.shuffle(items)
                return {k: shuffle(v) for k, v in items}
            return value

        text = json.dumps(shuffle(document), indent=indent or None)
        assert ib.load_price_table(document).digest == ib.load_price_table(json.loads(text)).digest

    @given(price_documents(priced=True), st.data())
    def test_any_cost_change_changes_the_digest(
        self, document: dict[str, Any], data: st.DataObject
    ) -> None:
        """Changing one style's cost to any other value gives another digest."""
        style = data.draw(st.sampled_from(sorted(document["styles"])))
        old = document["styles"][style]["cost"]
        new = data.draw(st.one_of(st.none(), st.integers(0, 2**53 - 1)).filter(lambda c: c != old))
        changed = copy.deepcopy(document)
        changed["styles"][style]["cost"] = new
        assert ib.load_price_table(document).digest != ib.load_price_table(changed).digest


class TestValidationIsTotal:
    """Any JSON value either loads or raises PriceSchemaError, nothing else."""

    @given(json_values)
    def test_arbitrary_json(self, value: Any) -> None:
        """Arbitrary JSON is refused with PriceSchemaError (it is never a valid table)."""
        try:
            ib.load_price_table({"document": value} if not isinstance(value, dict) else value)
        except ib.PriceSchemaError as error:
            assert error.problems
        else:  # pragma: no cover - a random value is practically never a price table
            pass

    @given(price_documents(), st.data())
    def test_mutated_documents(self, document: dict[str, Any], data: st.DataObject) -> None:
        """A valid document with one value replaced by any JSON value loads or is refused."""
        paths: list[list[str]] = [[k] for k in document]
        for section in ("styles", "operations"):
            for key, entry in document[section].items():
                paths.append([section, key])
                paths.extend([section, key, field] for field in entry)
        path = data.draw(st.sampled_from(paths))
        replacement = data.draw(json_values)
        mutated = copy.deepcopy(document)
        target = mutated
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = replacement
        try:
            table = ib.load_price_table(mutated)
        except ib.PriceSchemaError as error:
            assert all(isinstance(p.path, str) for p in error.problems)
            assert error.problems
        else:
            assert table.to_dict()["format"] == 1

    @given(st.text(max_size=60))
    def test_arbitrary_text_files(self, text: str) -> None:
        """Any text in a file loads or raises PriceSchemaError (or its PriceSourceError)."""
        import tempfile
        from pathlib import Path

        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "t.json"
            path.write_text(text, encoding="utf-8")
            try:
                ib.load_price_table(path)
            except ib.PriceSchemaError as error:
                assert error.problems


class TestImmutable:
    """Tables are hashable and cannot be changed."""

    @given(price_tables())
    def test_hashable_and_frozen(self, table: ib.PriceTable) -> None:
        """A table hashes, refuses assignment, and its mappings refuse writes."""
        assert table in {table}
        try:
            table.api = "x"  # type: ignore[misc]
        except attrs.exceptions.FrozenInstanceError:
            pass
        else:  # pragma: no cover
            raise AssertionError("assignment succeeded")
        assume(table.styles)
        key = next(iter(table.styles))
        try:
            table.styles[key] = table.styles[key]  # type: ignore[index]
        except TypeError:
            pass
        else:  # pragma: no cover
            raise AssertionError("mapping write succeeded")

    @given(price_tables(), price_tables())
    def test_equal_iff_same_digest(self, a: ib.PriceTable, b: ib.PriceTable) -> None:
        """Two tables are equal exactly when their digests are."""
        assert (a == b) == (a.digest == b.digest)
