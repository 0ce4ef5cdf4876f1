"""Properties of estimates, pre-flight checks and usage-log pricing."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal, localcontext
from fractions import Fraction
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

import imagine_billing as ib
from imagine_billing._checks import rfc3339
from tests.strategies import price_tables


@st.composite
def tables_and_calls(draw: st.DrawFn, *, lists: int = 1) -> tuple[Any, ...]:
    """A priced table and ``lists`` lists of calls it can price."""
    table = draw(price_tables(priced=True))
    options: list[ib.Call] = [ib.Call(s.id, 1, s.operation) for s in table.styles.values()]
    options += [ib.Call(None, 1, o.id) for o in table.operations.values()
                if o.default_style is not None or o.cost is not None]
    call = st.builds(
        lambda base, count: ib.Call(base.style, count, base.operation),
        st.sampled_from(options),
        st.integers(1, 10**6),
    )
    return (table, *(draw(st.lists(call, max_size=12)) for _ in range(lists)))


@st.composite
def books_and_records(draw: st.DrawFn) -> tuple[ib.PriceBook, list[Any]]:
    """A book of one to three versions of a priced table, and records to price with it:
    mostly good, some bad (unknown style, bad count, before every table)."""
    base = draw(price_tables(priced=True))
    tables = [base]
    for index in range(draw(st.integers(0, 2))):
        start = base.effective_from + timedelta(hours=draw(st.integers(1, 24 * 20)))
        if start in {t.effective_from for t in tables}:
            continue
        costs = {sid: {"cost": draw(st.integers(0, 1000))} for sid in base.styles}
        tables.append(base.with_overrides(
            {"effective_from": start.strftime("%Y-%m-%dT%H:%M:%SZ"), "styles": costs},
            version=f"{900 + index}.0.0",
        ))
    book = ib.PriceBook(tables)
    moments = st.integers(-24, 24 * 30).map(lambda h: base.effective_from + timedelta(hours=h))
    good = st.tuples(st.sampled_from(sorted(base.styles)), st.integers(1, 1000), moments)
    bad = st.tuples(st.sampled_from(["no-such-style", *base.styles]),
                    st.sampled_from([0, -1, 1, True]), moments)
    records = draw(st.lists(st.one_of(good, good, good, bad), max_size=40))
    return book, records


def total(calls: list[ib.Call], table: ib.PriceTable) -> int:
    """The estimated total of ``calls``."""
    return ib.estimate(calls, table).total


class TestEstimateIsAdditive:
    """estimate(a + b).total == estimate(a).total + estimate(b).total, lines concatenated."""

    @given(tables_and_calls(lists=2))
    def test_concatenation(self, drawn: tuple[Any, ...]) -> None:
        """The estimate of a concatenation is the sum of the estimates."""
        table, first, second = drawn
        whole = ib.estimate(first + second, table)
        parts = [ib.estimate(first, table), ib.estimate(second, table)]
        assert parts[0].total + parts[1].total == whole.total
        assert parts[0].lines + parts[1].lines == whole.lines

    @given(tables_and_calls(), st.randoms(use_true_random=False))
    def test_order_does_not_matter(self, drawn: tuple[Any, ...], random: Any) -> None:
        """Shuffling the calls leaves the total unchanged."""
        table, calls = drawn
        shuffled = list(calls)
        random.shuffle(shuffled)
        assert total(calls, table) == total(shuffled, table)

    @given(tables_and_calls())
    def test_total_is_sum_of_unit_costs(self, drawn: tuple[Any, ...]) -> None:
        """Each line's subtotal is its unit cost times its count; the total is their sum."""
        table, calls = drawn
        result = ib.estimate(calls, table)
        assert sum(line.unit_cost * line.call.count for line in result.lines) == result.total
        assert [line.call for line in result.lines] == calls


class TestPreflight:
    """preflight(calls, available).ok iff estimate(calls).total <= available."""

    @given(tables_and_calls(), st.integers(0, 10**8))
    def test_ok_iff_total_fits(self, drawn: tuple[Any, ...], available: int) -> None:
        """ok exactly when the total fits; the shortfall is what is missing."""
        table, calls = drawn
        expected = total(calls, table)
        verdict = ib.preflight(calls, available, table)
        assert (expected <= available) == verdict.ok
        assert max(0, expected - available) == verdict.shortfall

    @given(tables_and_calls())
    def test_exactly_enough_fits(self, drawn: tuple[Any, ...]) -> None:
        """The total itself fits; one token less does not (unless the total is 0)."""
        table, calls = drawn
        needed = total(calls, table)
        assert ib.preflight(calls, needed, table).ok
        if needed > 0:
            assert 1 == ib.preflight(calls, needed - 1, table).shortfall


class TestPriceUsageSplits:
    """price_usage(a + b) == price_usage(a) + price_usage(b) for a log split at any line."""

    @given(books_and_records(), st.data())
    def test_split_anywhere(
        self, drawn: tuple[ib.PriceBook, list[Any]], data: st.DataObject
    ) -> None:
        """Pricing in one pass equals pricing the two parts and adding."""
        book, records = drawn
        cut = data.draw(st.integers(0, len(records)))
        whole = ib.price_usage(records, book, skip_bad=True)
        parts = (ib.price_usage(records[:cut], book, skip_bad=True)
                 + ib.price_usage(records[cut:], book, skip_bad=True))
        assert whole == parts
        assert len(records) == whole.records + sum(whole.skipped.values())

    @given(books_and_records())
    def test_total_is_each_record_priced_alone(self, drawn: tuple[ib.PriceBook, list[Any]]) -> None:
        """The total is the sum of each good record priced by the table in force at its time."""
        book, records = drawn
        expected = 0
        for style, count, ts in records:
            if count.__class__ is not int or count < 1 or ts < book.tables[0].effective_from:
                continue
            if style in book.at(ts).styles:
                expected += book.at(ts).cost(style, count)
        assert expected == ib.price_usage(records, book, skip_bad=True).total

    @given(books_and_records())
    def test_order_does_not_matter(self, drawn: tuple[ib.PriceBook, list[Any]]) -> None:
        """Reversing the records changes no figure (records need not be in time order)."""
        book, records = drawn
        assert ib.price_usage(records, book, skip_bad=True) == ib.price_usage(
            list(reversed(records)), book, skip_bad=True)


class TestTokenRate:
    """price_of(n) is n * price / tokens rounded half to even to the minor unit, exactly,
    whatever the caller's decimal context."""

    @given(st.integers(1, 10**6), st.decimals(0, 10**12, allow_nan=False, places=4),
           st.sampled_from(["USD", "JPY", "KWD"]), st.integers(0, 10**40),
           st.integers(1, 28))
    def test_exact_under_any_precision(self, tokens: int, price: Decimal, currency: str,
                                       used: int, precision: int) -> None:
        """The amount equals the exact fraction rounded half to even (Python's round)."""
        rate = ib.TokenRate(tokens, price, currency)
        digits = rate.minor_unit
        expected = round(Fraction(price) * used / tokens * 10**digits)
        with localcontext() as context:
            context.prec = precision
            actual = rate.price_of(used)
        assert (Fraction(expected, 10**digits), -digits) == (Fraction(actual),
                                                             actual.as_tuple().exponent)


class TestRfc3339:
    """Every RFC 3339 spelling of an aware datetime reads back as that datetime."""

    @given(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
           st.integers(-(23 * 60 + 59), 23 * 60 + 59), st.booleans(), st.booleans())
    def test_round_trip(self, naive: datetime, minutes: int, zulu: bool, lower: bool) -> None:
        """isoformat (with Z for UTC, in lower case or not) reads back."""
        when = naive.replace(tzinfo=timezone(timedelta(minutes=minutes)))
        text = when.isoformat()
        if zulu and minutes == 0:
            text = text.replace("+00:00", "Z")
        if lower:
            text = text.lower()
        assert when == rfc3339(text)
