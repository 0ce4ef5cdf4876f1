"""The estimator: Call, Line, Estimate, estimate, preflight, TokenRate, load_calls."""

from __future__ import annotations

import copy
import json
import pickle
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal, localcontext
from fractions import Fraction
from pathlib import Path

import attrs
import pytest

import imagine_billing as ib
from imagine_billing.estimator import resolve_table, unit_cost

# Hand-computed from the published costs: anime 5, realistic 5, flux-schnell 5,
# flux-dev-fast 5, flux-dev 15, imagine-turbo 1 (sdxl-1.0 unpriced).
GOLDEN = [
    ("published example", [("flux-dev", 4), ("anime", 1)], 65),
    ("one flux-dev", [("flux-dev", 1)], 15),
    ("one of each priced style", [("anime", 1), ("realistic", 1), ("flux-schnell", 1),
                                  ("flux-dev-fast", 1), ("flux-dev", 1), ("imagine-turbo", 1)],
     36),
    ("a thousand turbo", [("imagine-turbo", 1000)], 1000),
    ("the default style is imagine-turbo", [(None, 7)], 7),
    ("repeats add up", [("anime", 2), ("anime", 3), ("flux-dev", 2)], 55),
    ("the largest count stays exact", [("flux-dev", 2**53 - 1)], 15 * (2**53 - 1)),
    ("no calls", [], 0),
]


def calls_of(spec: list[tuple[str | None, int]]) -> list[ib.Call]:
    """Calls from (style, count) pairs."""
    return [ib.Call(style, count) for style, count in spec]


def book_of_two() -> tuple[ib.PriceBook, datetime]:
    """The bundled table and a 1.1.0 that raises flux-dev to 20 from 2026-01-01."""
    first = ib.load_price_table()
    second = first.with_overrides(
        {"version": "1.1.0", "effective_from": "2026-01-01T00:00:00Z",
         "styles": {"flux-dev": {"cost": 20}}},
        version="1.1.0",
    )
    return ib.PriceBook([second, first]), datetime(2026, 1, 1, tzinfo=UTC)


class TestCall:
    """Call: validated counts, styles and operations."""

    def test_defaults(self) -> None:
        """A bare Call is one text-to-image call in the default style."""
        assert (None, 1, "text-to-image") == attrs.astuple(ib.Call())

    @pytest.mark.parametrize(("count", "error"), [(0, ValueError), (-3, ValueError),
                                                   (1.0, TypeError), (True, TypeError),
                                                   ("2", TypeError), (None, TypeError)])
    def test_bad_counts_are_refused(self, count: object, error: type[Exception]) -> None:
        """count must be an int >= 1 (bool refused); the message names the value."""
        with pytest.raises(error, match="count must be an int >= 1"):
            ib.Call("anime", count)  # type: ignore[arg-type]

    @pytest.mark.parametrize(("style", "operation"), [(3, "text-to-image"), ("anime", None),
                                                      (["anime"], "text-to-image")])
    def test_bad_style_or_operation_types(self, style: object, operation: object) -> None:
        """style is a str or None, operation a str."""
        with pytest.raises(TypeError, match="must be a str"):
            ib.Call(style, 1, operation)  # type: ignore[arg-type]

    @pytest.mark.parametrize(("count", "shown"), [
        (2**53, "9007199254740992"), (2**60, "1152921504606846976"),
        (10**5000, "a number of 5001 digits"),
    ], ids=["2**53", "2**60", "10**5000"])
    def test_counts_past_2_53_minus_1_are_refused(self, count: int, shown: str) -> None:
        """count is at most 2**53-1, the largest token amount; the message names it."""
        with pytest.raises(ValueError, match="at most") as caught:
            ib.Call("flux-dev", count)
        assert f"count must be at most 2**53-1 = 9007199254740991 (got {shown})" == str(
            caught.value)

    def test_largest_count(self) -> None:
        """A count of 2**53-1 is a call."""
        assert 2**53 - 1 == ib.Call("flux-dev", 2**53 - 1).count

    def test_frozen(self) -> None:
        """A Call cannot be changed."""
        call = ib.Call("anime")
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            call.count = 2  # type: ignore[misc]


class TestEstimate:
    """estimate: the tokens of calls, line by line, traced to their table."""

    @pytest.mark.parametrize(("spec", "expected"), [(s, t) for _, s, t in GOLDEN],
                             ids=[name for name, _, _ in GOLDEN])
    def test_golden_totals(self, table: ib.PriceTable, spec: list[tuple[str | None, int]],
                           expected: int) -> None:
        """Totals hand-computed from the published costs."""
        assert expected == ib.estimate(calls_of(spec), table).total

    def test_published_example_lines(self) -> None:
        """4 x flux-dev + 1 x anime = 65, with one line per call (default table)."""
        result = ib.estimate([ib.Call("flux-dev", 4), ib.Call("anime")])
        assert 65 == result.total
        assert [(15, 60), (5, 5)] == [(line.unit_cost, line.subtotal) for line in result.lines]
        assert ib.Call("flux-dev", 4) == result.lines[0].call

    def test_lines_name_the_style_that_priced_them(self, table: ib.PriceTable) -> None:
        """A call naming no style is priced, and named, as the operation's default style."""
        flat = table.with_overrides({"operations": {"upscale": {"cost": 3}}}, version="1.1.0")
        result = ib.estimate([ib.Call(), ib.Call("anime"), ib.Call(operation="upscale")], flat)
        assert ["imagine-turbo", "anime", None] == [line.style for line in result.lines]
        assert [None, "anime", None] == [line.call.style for line in result.lines]
        assert "anime" == ib.Line(ib.Call("anime"), 5, 5).style

    def test_carries_version_and_digest(self, table: ib.PriceTable) -> None:
        """The estimate names the exact table that priced it."""
        result = ib.estimate([ib.Call("anime")], table)
        assert ("1.0.0", table.digest) == (result.table_version, result.table_digest)

    def test_accepts_any_iterable(self, table: ib.PriceTable) -> None:
        """Calls may come from a generator."""
        assert 20 == ib.estimate((ib.Call("anime") for _ in range(4)), table).total

    def test_to_dict(self, table: ib.PriceTable) -> None:
        """to_dict has total, lines, table_version and table_digest, and is JSON."""
        document = ib.estimate([ib.Call("flux-dev", 4), ib.Call()], table).to_dict()
        expected_lines = [
            {"style": "flux-dev", "count": 4, "operation": "text-to-image",
             "priced_style": "flux-dev", "unit_cost": 15, "subtotal": 60},
            {"style": None, "count": 1, "operation": "text-to-image",
             "priced_style": "imagine-turbo", "unit_cost": 1, "subtotal": 1},
        ]
        assert 61 == document["total"]
        assert expected_lines == document["lines"]
        assert "1.0.0" == document["table_version"]
        assert table.digest == document["table_digest"]
        assert document == json.loads(json.dumps(document))

    def test_equal_to_an_attrs_built_estimate(self, table: ib.PriceTable) -> None:
        """The estimate is the same value as one built through the constructors."""
        call = ib.Call("anime", 2)
        expected = ib.Estimate(10, (ib.Line(call, 5, 10),), table.version, table.digest)
        assert expected == ib.estimate([call], table)
        assert hash(expected) == hash(ib.estimate([call], table))
        assert repr(expected) == repr(ib.estimate([call], table))

    @pytest.mark.parametrize("read", ["lines", "table_version", "table_digest"])
    def test_each_field_read_first(self, table: ib.PriceTable, read: str) -> None:
        """Whichever field is read first, the estimate is the constructors' value."""
        calls = [ib.Call("anime", 2), ib.Call(), ib.Call("flux-dev")]
        result = ib.estimate(calls, table)
        getattr(result, read)
        expected = ib.Estimate(
            26, (ib.Line(calls[0], 5, 10), ib.Line(calls[1], 1, 1, "imagine-turbo"),
                 ib.Line(calls[2], 15, 15)), table.version, table.digest)
        assert (expected, repr(expected)) == (result, repr(result))

    @pytest.mark.parametrize("copied", [lambda value: pickle.loads(pickle.dumps(value)),
                                        copy.deepcopy, copy.copy],
                             ids=["pickle", "deepcopy", "copy"])
    def test_copies_before_any_read(self, table: ib.PriceTable,
                                    copied: Callable[[ib.Estimate], ib.Estimate]) -> None:
        """An estimate copied before its lines are read copies them all the same."""
        call = ib.Call("anime", 2)
        again = copied(ib.estimate([call], table))
        assert ((ib.Line(call, 5, 10),), table.digest) == (again.lines, again.table_digest)

    def test_calls_changed_later_change_nothing(self, table: ib.PriceTable) -> None:
        """The lines are those of the calls as they were when estimated."""
        calls = [ib.Call("anime")]
        result = ib.estimate(calls, table)
        calls.append(ib.Call("flux-dev"))
        assert (5, (ib.Line(ib.Call("anime"), 5, 5),)) == (result.total, result.lines)

    def test_other_attributes_do_not_exist(self, table: ib.PriceTable) -> None:
        """Only the fields are built on read: any other name is an AttributeError."""
        result = ib.estimate([ib.Call("anime")], table)
        built = ib.Estimate(5, (), table.version, table.digest)
        with pytest.raises(AttributeError, match="'Estimate' object has no attribute 'line'"):
            result.line  # type: ignore[attr-defined]  # noqa: B018 - the read is the test
        assert (False, False) == (hasattr(result, "lines_"), hasattr(built, "_priced"))

    def test_unknown_style_suggests(self, table: ib.PriceTable) -> None:
        """A misspelt style raises UnknownStyleError with close matches."""
        with pytest.raises(ib.UnknownStyleError) as caught:
            ib.estimate([ib.Call("flux-dv")], table)
        assert "flux-dev" == caught.value.suggestions[0]

    def test_unknown_operation(self, table: ib.PriceTable) -> None:
        """An unknown operation is an UnknownStyleError of kind operation."""
        with pytest.raises(ib.UnknownStyleError, match="unknown operation 'upscal'") as caught:
            ib.estimate([ib.Call(operation="upscal")], table)
        assert "operation" == caught.value.kind
        assert "upscale" in caught.value.suggestions

    def test_unpriced_style_says_how_to_price(self, table: ib.PriceTable) -> None:
        """sdxl-1.0 is unpriced: the error shows the override that prices it."""
        with pytest.raises(ib.UnpricedError, match=r'"sdxl-1.0": \{"cost": N\}'):
            ib.estimate([ib.Call("anime"), ib.Call("sdxl-1.0")], table)

    def test_unpriced_operation(self, table: ib.PriceTable) -> None:
        """An operation without a style and without a flat price is unpriced."""
        with pytest.raises(ib.UnpricedError, match="operation 'background-remover'") as caught:
            ib.estimate([ib.Call(operation="background-remover")], table)
        assert "operation" == caught.value.kind

    def test_style_of_another_operation(self, table: ib.PriceTable) -> None:
        """A style used with an operation it does not belong to is refused, naming both."""
        with pytest.raises(ib.UnknownStyleError,
                           match="'product-shoot' belongs to operation 'ai-background', "
                           "not 'text-to-image'"):
            ib.estimate([ib.Call("product-shoot")], table)

    def test_priced_style_of_another_operation(self, table: ib.PriceTable) -> None:
        """A priced style named with an operation it does not belong to is refused too."""
        priced = table.with_overrides({"styles": {"product-shoot": {"cost": 3}}},
                                      version="1.0.1")
        assert 3 == ib.estimate([ib.Call("product-shoot", 1, "ai-background")], priced).total
        with pytest.raises(ib.UnknownStyleError, match="belongs to operation 'ai-background'"):
            ib.estimate([ib.Call("product-shoot", 1, "text-to-image")], priced)

    def test_operation_that_needs_a_style(self, table: ib.PriceTable) -> None:
        """An operation with styles, no default and no flat price needs a style named."""
        custom = table.with_overrides(
            {"operations": {"ai-background": {"default_style": None}}}, version="1.0.1")
        with pytest.raises(ib.UnpricedError,
                           match=r"operation .ai-background. needs a style.*product-shoot"):
            ib.estimate([ib.Call(operation="ai-background")], custom)

    def test_flat_priced_operation(self, table: ib.PriceTable) -> None:
        """A call without a style costs the operation's flat price once it has one."""
        custom = table.with_overrides(
            {"operations": {"upscale": {"cost": 3}}}, version="1.0.1")
        assert 6 == ib.estimate([ib.Call(count=2, operation="upscale")], custom).total

    def test_priced_by_override(self, table: ib.PriceTable) -> None:
        """An override prices sdxl-1.0, and the estimate names the new version."""
        custom = table.with_overrides({"styles": {"sdxl-1.0": {"cost": 2}}}, version="1.0.1")
        result = ib.estimate([ib.Call("sdxl-1.0", 3)], custom)
        assert (6, "1.0.1") == (result.total, result.table_version)

    def test_not_a_call(self, table: ib.PriceTable) -> None:
        """Items must be Call objects."""
        with pytest.raises(TypeError, match="Call objects"):
            ib.estimate(["anime"], table)  # type: ignore[list-item]

    def test_book_prices_by_the_version_in_force(self) -> None:
        """With a PriceBook, at= picks the version: flux-dev 15 before 2026, 20 from then."""
        book, change = book_of_two()
        before = ib.estimate([ib.Call("flux-dev")], book, at=datetime(2025, 12, 31, tzinfo=UTC))
        after = ib.estimate([ib.Call("flux-dev")], book, at=change)
        assert (15, "1.0.0") == (before.total, before.table_version)
        assert (20, "1.1.0") == (after.total, after.table_version)

    def test_book_before_first_table(self) -> None:
        """A moment before every table is a NoPriceTableError."""
        book, _ = book_of_two()
        with pytest.raises(ib.NoPriceTableError):
            ib.estimate([ib.Call("anime")], book, at=datetime(2020, 1, 1, tzinfo=UTC))

    def test_naive_at_refused(self, table: ib.PriceTable) -> None:
        """at must be timezone-aware."""
        with pytest.raises(ValueError, match=r"^at must be timezone-aware"):
            ib.estimate([ib.Call("anime")], table, at=datetime(2025, 8, 1))

    def test_naive_at_refused_with_a_book(self) -> None:
        """With a book too, the error names at."""
        book, _ = book_of_two()
        with pytest.raises(ValueError, match=r"^at must be timezone-aware"):
            ib.estimate([ib.Call("anime")], book, at=datetime(2025, 8, 1))

    def test_total_past_2_53_minus_1(self, table: ib.PriceTable) -> None:
        """Each count is at most 2**53-1, the total is an exact int of any size."""
        calls = [ib.Call("flux-dev", 2**53 - 1)] * 3
        assert 3 * 15 * (2**53 - 1) == ib.estimate(calls, table).total


class TestResolveTable:
    """resolve_table: the one table that prices calls at a moment."""

    def test_none_is_bundled(self) -> None:
        """None is the bundled default table."""
        assert ib.load_price_table() == resolve_table(None)

    def test_table_before_its_date(self, table: ib.PriceTable) -> None:
        """A single table with at= before its effective_from is not in force."""
        with pytest.raises(ib.NoPriceTableError):
            resolve_table(table, datetime(2025, 6, 30, tzinfo=UTC))

    def test_book_without_at_is_now(self) -> None:
        """With a book and no moment, the version in force now prices."""
        book, _ = book_of_two()
        expected = book.at(datetime.now(UTC))
        assert expected == resolve_table(book)

    def test_not_a_table(self) -> None:
        """Anything else is a TypeError."""
        with pytest.raises(TypeError, match="PriceTable, a PriceBook or None"):
            resolve_table("imagine-api.json")  # type: ignore[arg-type]


class TestUnitCost:
    """unit_cost: tokens for one call."""

    @pytest.mark.parametrize(("style", "operation", "expected"),
                             [("flux-dev", "text-to-image", 15), (None, "text-to-image", 1),
                              ("anime", "text-to-image", 5)])
    def test_costs(self, table: ib.PriceTable, style: str | None, operation: str,
                   expected: int) -> None:
        """The style's cost, or the default style's."""
        assert expected == unit_cost(table, style, operation)


class TestPreflight:
    """preflight: do the calls fit the tokens available?"""

    def test_short(self, table: ib.PriceTable) -> None:
        """65 tokens needed with 50 available: not ok, short by 15."""
        verdict = ib.preflight([ib.Call("flux-dev", 4), ib.Call("anime")], 50, table)
        assert (False, 65, 50, 15) == (verdict.ok, verdict.total, verdict.available,
                                       verdict.shortfall)

    @pytest.mark.parametrize("available", [65, 66, 1000])
    def test_fits(self, table: ib.PriceTable, available: int) -> None:
        """Exactly enough, or more, is ok with no shortfall."""
        verdict = ib.preflight([ib.Call("flux-dev", 4), ib.Call("anime")], available, table)
        assert (True, 0) == (verdict.ok, verdict.shortfall)

    def test_carries_the_estimate(self, table: ib.PriceTable) -> None:
        """The verdict holds the estimate behind it."""
        verdict = ib.preflight([ib.Call("anime")], 10, table)
        assert ib.estimate([ib.Call("anime")], table) == verdict.estimate
        assert {"ok": True, "total": 5, "available": 10, "shortfall": 0} == verdict.to_dict()

    @pytest.mark.parametrize(("available", "error"), [(-1, ValueError), (1.5, TypeError),
                                                       (True, TypeError)])
    def test_bad_available(self, table: ib.PriceTable, available: object,
                           error: type[Exception]) -> None:
        """available must be an int >= 0."""
        with pytest.raises(error, match="available must be an int >= 0"):
            ib.preflight([ib.Call("anime")], available, table)  # type: ignore[arg-type]


class TestTokenRate:
    """TokenRate: tokens to money, exactly, rounded once half to even."""

    @pytest.mark.parametrize(
        ("tokens", "price", "currency", "used", "expected"),
        [
            (1000, "10.00", "USD", 65, "0.65"),     # a cent a token
            (3, "1", "USD", 1, "0.33"),            # 0.333... rounds down
            (3, "2", "USD", 1, "0.67"),            # 0.666... rounds up
            (1000, "5", "USD", 1, "0.00"),         # 0.005: half to even, down to 0.00
            (1000, "5", "USD", 3, "0.02"),         # 0.015: half to even, up to 0.02
            (1000, "5", "USD", 5, "0.02"),         # 0.025: half to even, down to 0.02
            (100, "150", "JPY", 65, "98"),         # 97.5 yen: half to even, 98 (no minor unit)
            (100, "150", "JPY", 61, "92"),         # 91.5 -> 92
            (100, "1", "KWD", 1, "0.010"),         # three digits for the dinar
            (7, "0", "EUR", 1000, "0.00"),
        ],
    )
    def test_price_of(self, tokens: int, price: str, currency: str, used: int,
                      expected: str) -> None:
        """Hand-computed amounts, with the currency's number of digits."""
        rate = ib.TokenRate(tokens, Decimal(price), currency)
        actual = rate.price_of(used)
        assert Decimal(expected) == actual
        assert str(Decimal(expected)) == str(actual)

    @pytest.mark.parametrize(("rate", "used", "expected"), [
        ((1, "1234567890123456789012345678.91", "USD"), 1, "1234567890123456789012345678.91"),
        ((1, "1234567.89", "USD"), 1, "1234567.89"),
        ((1, "0.01", "USD"), 10**30, "10000000000000000000000000000.00"),
        ((3, "1", "KWD"), 10**40, "3333333333333333333333333333333333333333.333"),
        ((7, "0", "EUR"), 10**30, "0.00"),
        ((100, "150", "JPY"), 65, "98"),
    ])
    @pytest.mark.parametrize("precision", [None, 6, 1])
    def test_price_of_ignores_the_decimal_context(self, rate: tuple[int, str, str], used: int,
                                                  expected: str, precision: int | None) -> None:
        """The amount is exact and in minor units whatever the caller's decimal precision."""
        tokens, price, currency = rate
        with localcontext() as context:
            if precision is not None:
                context.prec = precision
            actual = ib.TokenRate(tokens, Decimal(price), currency).price_of(used)
        assert str(Decimal(expected)) == str(actual)

    @pytest.mark.parametrize(("used", "expected"), [
        (Fraction(100, 3), "0.40"),     # 0.4 exactly: 100/3 tokens at 0.012
        (Fraction(5, 12), "0.00"),      # 0.005: half to even, down
        (Fraction(5, 4), "0.02"),       # 0.015: half to even, up
        (Fraction(0), "0.00"),
    ])
    def test_price_of_a_fraction(self, used: Fraction, expected: str) -> None:
        """A fraction of tokens (a forecast's burn) is priced exactly, then rounded once."""
        assert expected == str(ib.TokenRate(1, Decimal("0.012"), "USD").price_of(used))

    def test_zero_price_of_any_exponent(self) -> None:
        """A zero price is zero, whatever its exponent (0E-50 too)."""
        rate = ib.TokenRate(1, Decimal("0E-50"), "USD")
        assert "0.00" == str(rate.price_of(10))

    def test_estimate_in_money(self, table: ib.PriceTable) -> None:
        """The published example at a cent a token is $0.65."""
        rate = ib.TokenRate(1000, Decimal("10.00"), "USD")
        result = ib.estimate([ib.Call("flux-dev", 4), ib.Call("anime")], table)
        assert Decimal("0.65") == result.in_money(rate)

    def test_float_refused(self) -> None:
        """A float price is a TypeError naming the value."""
        with pytest.raises(TypeError, match=r"not a float \(got 0\.1\)"):
            ib.TokenRate(1000, 0.1, "USD")  # type: ignore[arg-type]

    def test_other_types_refused(self) -> None:
        """A price of another type (a list, a bool) is a TypeError."""
        for price in ([1], True):
            with pytest.raises(TypeError, match="price must be a Decimal"):
                ib.TokenRate(1, price, "USD")  # type: ignore[arg-type]

    def test_int_and_text_prices_are_converted(self) -> None:
        """An int or decimal text is an exact Decimal."""
        assert Decimal("2.50") == ib.TokenRate(1, "2.50", "USD").price  # type: ignore[arg-type]
        assert Decimal(3) == ib.TokenRate(1, 3, "USD").price  # type: ignore[arg-type]

    @pytest.mark.parametrize("price", ["-1", "NaN", "Infinity", "abc"])
    def test_bad_prices(self, price: str) -> None:
        """A price is a finite Decimal >= 0."""
        with pytest.raises(ValueError, match="price must be"):
            ib.TokenRate(1, Decimal(price) if price != "abc" else price, "USD")

    @pytest.mark.parametrize(("tokens", "error"), [(0, ValueError), (True, TypeError),
                                                    (1.0, TypeError)])
    def test_bad_tokens(self, tokens: object, error: type[Exception]) -> None:
        """tokens is an int >= 1."""
        with pytest.raises(error, match="tokens must be an int >= 1"):
            ib.TokenRate(tokens, Decimal(1), "USD")  # type: ignore[arg-type]

    @pytest.mark.parametrize("currency", ["usd", "US", "DOLLARS", 840, "A B", "U-D", "U1D",
                                          "\u00c9UR"])
    def test_bad_currency(self, currency: object) -> None:
        """currency is an ISO 4217 code: three ASCII capital letters, as the configuration
        file requires (attack review: "A B" was accepted)."""
        with pytest.raises(ValueError, match="ISO 4217"):
            ib.TokenRate(1, Decimal(1), currency)  # type: ignore[arg-type]

    @pytest.mark.parametrize("price", ["-0", "-0.00", "-0E+3"])
    def test_minus_zero_is_zero(self, price: str) -> None:
        """A price >= 0, and -0 is 0: never shown as "-0"."""
        rate = ib.TokenRate(1, Decimal(price), "USD")
        assert not rate.price.is_signed()
        assert rate.price == 0
        assert "-" not in str(rate.price)

    @pytest.mark.parametrize(("used", "error"), [(-1, ValueError), (1.0, TypeError),
                                                 (Fraction(-1, 2), ValueError),
                                                 (True, TypeError)])
    def test_bad_token_amount(self, used: object, error: type[Exception]) -> None:
        """price_of takes an int >= 0."""
        with pytest.raises(error, match="tokens must be an int >= 0"):
            ib.TokenRate(1, Decimal(1), "USD").price_of(used)  # type: ignore[arg-type]


class TestLoadCalls:
    """load_calls: the workload file format."""

    def write(self, tmp_path: Path, text: str) -> Path:
        """A workload file holding ``text``."""
        path = tmp_path / "calls.json"
        path.write_text(text, encoding="utf-8")
        return path

    def test_list_of_calls(self, tmp_path: Path) -> None:
        """A list of call objects, every key optional."""
        path = self.write(tmp_path, json.dumps([
            {"style": "flux-dev", "count": 4}, {"style": "anime"}, {},
            {"operation": "upscale", "count": 2},
        ]))
        expected = (ib.Call("flux-dev", 4), ib.Call("anime"), ib.Call(),
                    ib.Call(None, 2, "upscale"))
        assert expected == ib.load_calls(path)

    def test_calls_object(self, tmp_path: Path) -> None:
        """An object with a calls list is the same."""
        path = self.write(tmp_path, '{"calls": [{"style": "anime", "count": 2}]}')
        assert (ib.Call("anime", 2),) == ib.load_calls(str(path))

    def test_published_example_estimate(self, tmp_path: Path, table: ib.PriceTable) -> None:
        """A workload file estimates as its calls do."""
        path = self.write(tmp_path, '[{"style": "flux-dev", "count": 4}, {"style": "anime"}]')
        assert 65 == ib.estimate(ib.load_calls(path), table).total

    @pytest.mark.parametrize(
        ("text", "line", "reason", "message"),
        [
            ('[\n  {"style": "anime"},\n  {"style": "anime", "count": 0}\n]', 3, "bad-count",
             "call 1: count must be an integer >= 1 (got integer 0)"),
            ('[{"style": "anime", "count": true}]', 1, "bad-count", "got boolean true"),
            ('[{"style": "anime", "count": 1.0}]', 1, "bad-count", "got number 1.0"),
            ('[{"style": "anime", "count": -2}]', 1, "bad-count", "got integer -2"),
            ('[{"style": "anime", "count": 9007199254740992}]', 1, "bad-count",
             "call 0: count must be at most 2**53-1 = 9007199254740991 (got integer "
             "9007199254740992)"),
            ('[{"count": 100000000000000000000}]', 1, "bad-count",
             "must be at most 2**53-1"),
            ('{"calls": [\n{"style": "anime"},\n\n{"style": "anime", "n": 1}]}', 4,
             "unknown-key", "call 1: unknown key 'n'"),
            ('[{"style": 5}]', 1, "bad-style", "style must be a string or null"),
            ('[{"operation": null}]', 1, "bad-operation", "operation must be a string"),
            ('[\n"anime"]', 2, "bad-shape", "expected an object"),
            ('{"calls": [], "extra": 1}', 1, "bad-shape", "unknown key 'extra'"),
            ('{"jobs": []}', 1, "bad-shape", "unknown key 'jobs'"),
            ("{}", 1, "bad-shape", 'no "calls" list'),
            ('"anime"', 1, "bad-shape", "got string"),
            ('[\n{"style": "anime",}\n]', 2, "bad-json", "not JSON"),
        ],
    )
    def test_bad_files_name_file_and_line(self, tmp_path: Path, text: str, line: int,
                                          reason: str, message: str) -> None:
        """A bad file is a BadRecordError naming the file, the line and the call."""
        path = self.write(tmp_path, text)
        with pytest.raises(ib.BadRecordError) as caught:
            ib.load_calls(path)
        assert (str(path), line, reason) == (caught.value.source, caught.value.line,
                                             caught.value.reason)
        assert message in str(caught.value)
        assert str(caught.value).startswith(f"{path}:{line}: ")

    def test_missing_file(self, tmp_path: Path) -> None:
        """A file that cannot be read is a BadRecordError too, naming the file alone."""
        path = tmp_path / "nope.json"
        with pytest.raises(ib.BadRecordError, match="cannot read the file") as caught:
            ib.load_calls(path)
        assert "unreadable" == caught.value.reason
        assert str(caught.value).startswith(f"{path}: cannot read the file: ")

    def test_not_utf8(self, tmp_path: Path) -> None:
        """Bytes that are not UTF-8 are a BadRecordError naming the file."""
        path = tmp_path / "calls.json"
        path.write_bytes(b'[{"style": "\xff"}]')
        with pytest.raises(ib.BadRecordError, match="not UTF-8") as caught:
            ib.load_calls(path)
        assert str(path) == caught.value.source

    def test_round_trip(self, tmp_path: Path) -> None:
        """Call.to_dict objects load back as the same calls."""
        calls = (ib.Call("flux-dev", 4), ib.Call(None, 2, "upscale"))
        path = self.write(tmp_path, json.dumps([c.to_dict() for c in calls]))
        assert calls == ib.load_calls(path)
