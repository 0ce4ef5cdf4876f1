"""Values in messages (`_checks.shown`): hostile values cannot rewrite the lines around
them, nor turn the error they are quoted in into another one."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

import imagine_billing as ib
from imagine_billing._checks import SHOWN_WIDTH, printable, shown, shown_repr


class Unprintable:
    """A value whose ``repr`` fails, as a user's object may."""

    def __repr__(self) -> str:
        raise RuntimeError("repr failed")


@given(st.text() | st.lists(st.text(), max_size=3) | st.dictionaries(st.text(), st.text(),
                                                                       max_size=3))
def test_every_character_shown_prints(value: object) -> None:
    for text in (shown(value), shown_repr(value)):
        assert text.isprintable(), ascii(text)
        assert len(text) <= SHOWN_WIDTH


def test_a_price_update_cannot_spoof_lines_in_a_diff() -> None:
    """A fetched table's metadata with a line separator, a bidi override and a C1 control:
    the diff's message escapes them (it is printed in CI logs)."""
    document = json.loads(ib.load_price_table().to_json())
    table = ib.load_price_table(document)
    hostile = dict(document, version="1.0.1",
                   note="x\u202eFREE\u2066 \x9b2J\u2028patch: nothing else changed")
    reasons = [text for _, text in ib.diff_tables(table, ib.load_price_table(hostile))
               .bump_reasons() if "note" in text]
    assert reasons
    assert all(text.isprintable() for text in reasons), [ascii(t) for t in reasons]


def test_a_value_whose_repr_fails_keeps_the_error() -> None:
    with pytest.raises(TypeError, match=r"alert threshold .* \(got a Unprintable\)"):
        ib.Budget("b", 10, "month", alerts=(Unprintable(),))
    assert "a Unprintable" == shown(Unprintable()) == shown_repr(Unprintable())


@given(st.text())
def test_printable_escapes_only_what_does_not_print(text: str) -> None:
    """`printable` (a key in a table, unquoted) prints, and keeps printable text as it
    is, whole: never shortened."""
    result = printable(text)
    assert result.isprintable()
    if text.isprintable():
        assert text == result


def test_printable_escapes_as_shown_does() -> None:
    key = "k\x1b[2J\u202e" + "x" * 100
    assert "k\\u001b[2J\\u202e" + "x" * 100 == printable(key)
    assert shown(key).startswith(f'"{printable(key)[:40]}')
