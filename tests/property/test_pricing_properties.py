"""Properties of price tables: round trips, digests, validation totality, immutability."""

from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import imagine_billing as ib
from tests.strategies import (
    MAX_DEPTH,
    Nesting,
    deep_nestings,
    json_values,
    price_documents,
    price_tables,
    surrogate_texts,
)


def _text_fields(document: dict[str, Any]) -> list[list[str]]:
    """The paths of the free-text fields of a document (names, note, source)."""
    paths: list[list[str]] = [["note"], ["source"]]
    for section in ("styles", "operations"):
        paths.extend([section, key, "name"] for key in document[section])
    return paths


def _value_paths(document: dict[str, Any]) -> list[list[str]]:
    """The paths of every top-level value, entry and field of a document."""
    paths: list[list[str]] = [[k] for k in document]
    for section in ("styles", "operations"):
        for key, entry in document[section].items():
            paths.append([section, key])
            paths.extend([section, key, field] for field in entry)
    return paths


def _replaced(document: dict[str, Any], path: list[str], value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(document)
    target = changed
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return changed


def _load_text(text: str) -> ib.PriceTable:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "t.json"
        path.write_text(text, encoding="ascii")
        return ib.load_price_table(path)


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


python_values = st.one_of(
    st.integers(min_value=10**4300, max_value=10**4400) | st.integers(max_value=-(10**4300)),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.complex_numbers(),
    st.floats(),
    st.fractions(),
    st.binary(max_size=4),
    st.sets(st.integers(), max_size=2),
    st.builds(object),
)
"""Python values that a mapping document may hold but JSON cannot: none of them is a price."""


class TestPythonValues:
    """A mapping document (or an override patch) holding any Python value, anywhere: it
    loads or raises PriceSchemaError naming the value's path, never ValueError,
    decimal.InvalidOperation or TypeError from deep inside the checks."""

    @given(price_documents(), st.data())
    def test_documents(self, document: dict[str, Any], data: st.DataObject) -> None:
        path = data.draw(st.sampled_from(_value_paths(document)))
        value = data.draw(python_values)
        try:
            table = ib.load_price_table(_replaced(document, path, value))
        except ib.PriceSchemaError as error:
            assert error.problems
            assert all(isinstance(p.path, str) for p in error.problems)
        else:  # a finite float is a JSON number: a whole one in a cost, or no cost at all
            assert isinstance(value, float)
            assert table.to_dict()["format"] == 1

    @given(st.sampled_from(["cost", "name", "operation"]), python_values)
    def test_override_patches(self, field: str, value: Any) -> None:
        table = ib.load_price_table()
        try:
            table.with_overrides({"styles": {"anime": {field: value}}}, version="9.0.0")
        except ib.PriceSchemaError as error:
            # a float may break more than one rule (not whole, too large): all at the field
            assert error.problems
            assert {f"/styles/anime/{field}"} == {p.path for p in error.problems}
        else:
            assert isinstance(value, float)


class TestLoneSurrogates:
    """A lone surrogate in any text of a document is a problem at its path, never a
    UnicodeEncodeError, whether the document is a mapping or a file."""

    @given(price_documents(), surrogate_texts, st.data())
    def test_in_a_mapping(
        self, document: dict[str, Any], text: str, data: st.DataObject
    ) -> None:
        """The problem's path is the field's."""
        path = data.draw(st.sampled_from(_text_fields(document)))
        with pytest.raises(ib.PriceSchemaError) as caught:
            ib.load_price_table(_replaced(document, path, text))
        assert "/" + "/".join(path) in [p.path for p in caught.value.problems]

    @given(price_documents(), surrogate_texts, st.data())
    def test_in_a_file(self, document: dict[str, Any], text: str, data: st.DataObject) -> None:
        """Written as a JSON escape in a file, the same problem at the same path."""
        path = data.draw(st.sampled_from(_text_fields(document)))
        with pytest.raises(ib.PriceSchemaError) as caught:
            _load_text(json.dumps(_replaced(document, path, text)))
        assert "/" + "/".join(path) in [p.path for p in caught.value.problems]


class TestDeepNesting:
    """A value nested between 62 and 990 levels deep, anywhere in a document, is refused
    with PriceSchemaError, never a RecursionError (as a mapping and as a file); an object
    or array 64 levels down is cut off as a problem of its own."""

    @given(price_documents(), deep_nestings(), st.data())
    def test_in_a_mapping(
        self, document: dict[str, Any], deep: Nesting, data: st.DataObject
    ) -> None:
        """The replaced value is a problem, and the cut is one exactly when it is reached."""
        path = data.draw(st.sampled_from(_value_paths(document)))
        where = "/" + "/".join(path)
        with pytest.raises(ib.PriceSchemaError) as caught:
            ib.load_price_table(_replaced(document, path, deep.value))
        assert any(p.path.startswith(where) for p in caught.value.problems)
        assert _reaches_the_cap(path, deep) == _was_cut(caught.value)

    @given(price_documents(), deep_nestings(), st.data())
    def test_in_a_file(self, document: dict[str, Any], deep: Nesting, data: st.DataObject) -> None:
        """The file is unreadable past the parser's limit; before it, as a mapping is."""
        path = data.draw(st.sampled_from(_value_paths(document)))
        text = json.dumps(_replaced(document, path, "\x00deep"))
        with pytest.raises(ib.PriceSchemaError) as caught:
            _load_text(text.replace(json.dumps("\x00deep"), deep.text))
        if not isinstance(caught.value, ib.PriceSourceError):
            assert _reaches_the_cap(path, deep) == _was_cut(caught.value)


def _reaches_the_cap(path: list[str], deep: Nesting) -> bool:
    # The innermost array or object lies len(path) + depth - 1 levels below the root.
    return len(path) + deep.depth - 1 >= MAX_DEPTH


def _was_cut(error: ib.PriceSchemaError) -> bool:
    return any("nested too deeply" in p.message for p in error.problems)


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
