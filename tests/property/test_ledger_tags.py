"""Properties of tags in a SQLite ledger: any text the API accepts as a tag is counted right."""

from __future__ import annotations

import tempfile
import unicodedata
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import imagine_billing as ib

START = datetime(2026, 1, 1, tzinfo=UTC)

texts = st.text(max_size=6) | st.sampled_from(
    ["", "a\tb", "a\x00b", '"', "\\", "$.a", "a[0]", "*", "'", "\x7f", "\u2028", "ä文"])
"""Tag names and values: any text, and some that JSON paths and SQLite find awkward."""

writes = st.lists(
    st.tuples(st.sampled_from(["debit", "hold"]), st.integers(1, 50),
              st.dictionaries(texts, texts, max_size=2)),
    min_size=1, max_size=6)
"""Debits and holds of 1 to 50 tokens, each with up to two tags of any text."""


def accepted(tags: dict[str, str]) -> bool:
    """The plain model's rule: no control character (category Cc) in a name or a value."""
    return not any(unicodedata.category(c) == "Cc" for text in tags.items() for part in text
                   for c in part)


def matches(tags: dict[str, str], wanted: dict[str, str]) -> bool:
    return all(tags.get(name) == value for name, value in wanted.items())


class TestTagTotals:
    """For any writes with any text tags: those with a control character are refused with
    BadTagError and write nothing; for the others, spent, held, spend by tag and budgets
    scoped on their tags equal a plain model's sums, and verify() passes."""

    @given(writes=writes)
    @example(writes=[("debit", 5, {"a\tb": "x"}), ("hold", 3, {"p": "a\x00b"}),
                     ("debit", 2, {'"': "\\"}), ("hold", 4, {"": "$.a"})])
    def test_totals_agree_with_a_plain_model(
            self, writes: list[tuple[str, int, dict[str, str]]]) -> None:
        """Each accepted tag set, as a filter and as a budget's scope, gives the model's
        spend and holds; the refused ones change nothing."""
        kept: list[tuple[str, int, dict[str, str]]] = []
        with tempfile.TemporaryDirectory() as folder, ib.Ledger.open(
                Path(folder) / "l.db", clock=lambda: START, durable=False) as ledger:
            ledger.credit(1000, key="c")
            scopes = [tags for _, _, tags in writes if tags and accepted(tags)]
            for number, scope in enumerate(scopes):
                ledger.add_budget(ib.Budget(f"b{number}", 10_000, "month", scope))
            for number, (kind, tokens, tags) in enumerate(writes):
                write = ledger.debit if kind == "debit" else ledger.hold
                if not accepted(tags):
                    with pytest.raises(ib.BadTagError):
                        write(tokens, key=f"w{number}", tags=tags)
                    continue
                write(tokens, key=f"w{number}", tags=tags)
                kept.append((kind, tokens, tags))
            for number, scope in enumerate([{}, *scopes]):
                spent = sum(t for k, t, tags in kept if k == "debit" and matches(tags, scope))
                held = sum(t for k, t, tags in kept if k == "hold" and matches(tags, scope))
                assert (spent, held) == (ledger.spent(tags=scope), ledger.held(tags=scope))
                if scope:
                    assert (spent, held) == ledger.budget_usage(f"b{number - 1}")
            for name in {name for _, _, tags in kept for name in tags if name}:
                by_value: dict[str | None, int] = {}
                for kind, tokens, tags in kept:
                    if kind == "debit":
                        by_value[tags.get(name)] = by_value.get(tags.get(name), 0) + tokens
                assert by_value == ledger.spend(by=f"tag:{name}")
            assert 1 + len(scopes) + len(kept) == ledger.verify()
