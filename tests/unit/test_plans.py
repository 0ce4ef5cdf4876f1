"""max_calls and plan: what a budget buys on the published table."""

from __future__ import annotations

import attrs
import pytest

import imagine_billing as ib


class TestMaxCalls:
    """max_calls(tokens, style, table)."""

    @pytest.mark.parametrize(
        ("tokens", "style", "expected"),
        [(100, "flux-dev", 6), (0, "anime", 0), (14, "flux-dev", 0), (15, "flux-dev", 1),
         (29, "flux-dev", 1), (30, "flux-dev", 2), (7, "imagine-turbo", 7)],
    )
    def test_published_prices(self, tokens: int, style: str, expected: int) -> None:
        """Whole calls that fit: 100 tokens buy 6 flux-dev calls (90), not 7 (105)."""
        assert expected == ib.max_calls(tokens, style)

    def test_other_table(self, table: ib.PriceTable) -> None:
        """The table given prices the calls, not the bundled one."""
        dearer = table.with_overrides({"styles": {"flux-dev": {"cost": 20}}}, version="2.0.0")
        assert 5 == ib.max_calls(100, "flux-dev", dearer)

    @pytest.mark.parametrize("tokens", [True, 1.0, "10", None])
    def test_tokens_must_be_int(self, tokens: object) -> None:
        """Bools, floats, text and None are refused, naming the value."""
        with pytest.raises(TypeError, match=r"tokens must be an int >= 0 \(got"):
            ib.max_calls(tokens, "anime")  # type: ignore[arg-type]

    def test_negative_tokens(self) -> None:
        """A negative budget is refused."""
        with pytest.raises(ValueError, match=r"got -1"):
            ib.max_calls(-1, "anime")

    def test_unknown_style_suggests(self) -> None:
        """A misspelt style names the close match."""
        with pytest.raises(ib.UnknownStyleError) as caught:
            ib.max_calls(10, "flux-dv")
        assert "flux-dev" in caught.value.suggestions

    def test_unpriced_style(self) -> None:
        """sdxl-1.0 has no published price: no guess."""
        with pytest.raises(ib.UnpricedError, match=r"sdxl-1\.0"):
            ib.max_calls(10, "sdxl-1.0")

    def test_free_style_has_no_maximum(self, table: ib.PriceTable) -> None:
        """A style costing 0 tokens is refused with a reason, not divided by."""
        free = table.with_overrides({"styles": {"anime": {"cost": 0}}}, version="2.0.0")
        with pytest.raises(ValueError, match="'anime' costs 0 tokens"):
            ib.max_calls(10, "anime", free)

    def test_book_is_refused(self, table: ib.PriceTable) -> None:
        """A PriceBook must be resolved to one table first (no hidden 'now')."""
        with pytest.raises(TypeError, match=r"book.at\(when\)"):
            ib.max_calls(10, "anime", ib.PriceBook([table]))  # type: ignore[arg-type]


class TestPlan:
    """plan(tokens, mix, table): whole batches, then the leftover filled."""

    def test_documented_example(self) -> None:
        """1000 tokens, 1 flux-dev : 4 imagine-turbo: 52 batches of 19, 12 more turbo calls."""
        result = ib.plan(1000, {"flux-dev": 1, "imagine-turbo": 4})
        assert {"flux-dev": 52, "imagine-turbo": 220} == dict(result.counts)
        assert 1000 == result.total
        assert 0 == result.leftover
        assert 52 == result.batches
        assert "1.0.0" == result.table_version

    def test_leftover_only_with_cheaper_styles(self) -> None:
        """30 tokens: one batch (19), then flux-dev (15) no longer fits: 11 turbo calls."""
        result = ib.plan(30, {"flux-dev": 1, "imagine-turbo": 4})
        assert {"flux-dev": 1, "imagine-turbo": 15} == dict(result.counts)
        assert (30, 0, 1) == (result.total, result.leftover, result.batches)

    def test_less_than_one_batch(self) -> None:
        """14 tokens: no whole batch; flux-dev does not fit, so 14 turbo calls."""
        result = ib.plan(14, {"flux-dev": 1, "imagine-turbo": 4})
        assert {"flux-dev": 0, "imagine-turbo": 14} == dict(result.counts)
        assert 0 == result.batches

    def test_fill_follows_shares(self) -> None:
        """20 tokens of 1 flux-dev : 2 anime (batch 25): flux-dev first (tie, named
        first), then anime is furthest behind: 15 + 5, nothing left."""
        result = ib.plan(20, {"flux-dev": 1, "anime": 2})
        assert {"flux-dev": 1, "anime": 1} == dict(result.counts)
        assert 0 == result.leftover

    def test_fill_takes_turns(self) -> None:
        """15 tokens of 2 anime : 2 realistic (batch 20): anime, realistic, then anime again
        (both at 1/2, anime named first), not three anime calls."""
        result = ib.plan(15, {"anime": 2, "realistic": 2})
        assert {"anime": 2, "realistic": 1} == dict(result.counts)
        assert (15, 0, 0) == (result.total, result.leftover, result.batches)

    def test_huge_weight(self) -> None:
        """10**7 - 1 tokens of 10**7 imagine-turbo : 1 flux-dev (no whole batch): turbo, then
        flux-dev (furthest behind), then turbo to the end: 9,999,984 and 1."""
        result = ib.plan(10**7 - 1, {"imagine-turbo": 10**7, "flux-dev": 1})
        assert {"imagine-turbo": 9_999_984, "flux-dev": 1} == dict(result.counts)
        assert (10**7 - 1, 0, 0) == (result.total, result.leftover, result.batches)

    def test_largest_budget_and_weight(self) -> None:
        """2**53-1 tokens of 2**53-1 imagine-turbo : 1 flux-dev: one turbo, one flux-dev, then
        turbo for the rest (2**53-16 in all); the fill is arithmetic, not call by call."""
        biggest = 2**53 - 1
        result = ib.plan(biggest, {"imagine-turbo": biggest, "flux-dev": 1})
        assert {"imagine-turbo": 2**53 - 16, "flux-dev": 1} == dict(result.counts)
        assert (biggest, 0) == (result.total, result.leftover)

    def test_weight_too_large(self) -> None:
        """A weight past 2**53-1 (the largest count) is refused, naming it."""
        with pytest.raises(ValueError, match=r"weight of 'anime' must be at most 2\*\*53-1 = "
                           r"9007199254740991 \(got 9007199254740992\)"):
            ib.plan(10, {"anime": 2**53})

    def test_ties_go_to_the_style_named_first(self) -> None:
        """7 tokens of anime and realistic (5 each): the first named gets the call."""
        result = ib.plan(7, {"realistic": 1, "anime": 1})
        assert {"realistic": 1, "anime": 0} == dict(result.counts)
        assert (5, 2) == (result.total, result.leftover)

    def test_nothing_fits(self) -> None:
        """4 tokens buy no 5-token call: all counts 0, all 4 left."""
        result = ib.plan(4, {"anime": 1})
        assert ({"anime": 0}, 0, 4) == (dict(result.counts), result.total, result.leftover)

    def test_counts_keep_mix_order_and_are_read_only(self) -> None:
        """Counts list the styles in the mix's order and cannot be changed."""
        result = ib.plan(100, {"imagine-turbo": 1, "anime": 1})
        assert ["imagine-turbo", "anime"] == list(result.counts)
        with pytest.raises(TypeError):
            result.counts["anime"] = 1  # type: ignore[index]
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            result.total = 0  # type: ignore[misc]

    def test_to_dict(self) -> None:
        """The JSON document has counts, total, leftover, batches and the table version."""
        expected = {"counts": {"anime": 2}, "total": 10, "leftover": 1, "batches": 2,
                    "table_version": "1.0.0"}
        assert expected == ib.plan(11, {"anime": 1}).to_dict()

    @pytest.mark.parametrize(
        ("mix", "error", "message"),
        [({}, ValueError, "at least one style"),
         ({"anime": 0}, ValueError, r"weight of 'anime' must be an int >= 1 \(got 0\)"),
         ({"anime": True}, TypeError, r"got True"),
         ({"anime": 1.5}, TypeError, r"got 1.5"),
         ([("anime", 1)], TypeError, "mix must be a mapping")],
    )
    def test_bad_mix(self, mix: object, error: type[Exception], message: str) -> None:
        """A bad mix is refused, naming the value."""
        with pytest.raises(error, match=message):
            ib.plan(10, mix)  # type: ignore[arg-type]

    def test_unknown_style_in_mix(self) -> None:
        """A style the table lacks is an UnknownStyleError."""
        with pytest.raises(ib.UnknownStyleError, match="flux-dv"):
            ib.plan(10, {"anime": 1, "flux-dv": 1})


PLANNER = ["Budget", "BudgetStatus", "Alert", "Forecast", "Plan", "budget_status", "forecast",
           "max_calls", "plan", "recost"]


class TestPlannerExports:
    """The planner's names of DESIGN.md are exported, and loaded only when used."""

    @pytest.mark.parametrize("name", PLANNER)
    def test_in_all(self, name: str) -> None:
        """The name is in __all__ and importable from the top level."""
        assert name in ib.__all__
        assert getattr(ib, name) is not None

    def test_lazy(self) -> None:
        """import imagine_billing does not import the planner or sqlite3."""
        import subprocess
        import sys

        code = ("import sys, imagine_billing; "
                "print('imagine_billing.planner' in sys.modules, 'sqlite3' in sys.modules)")
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=60, check=True)
        assert "False False" == done.stdout.strip()
