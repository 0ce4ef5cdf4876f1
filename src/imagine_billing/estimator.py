"""Estimates: what a list of calls costs under a price table, before any call is made.

``estimate([Call("flux-dev", 4), Call("anime")])`` is 65 tokens on the published table. Every
`Estimate` carries the version and digest of the table that priced it, so a figure can always
be traced to its prices. `preflight` compares an estimate with the tokens available; a
`TokenRate` turns tokens into money when the user knows what tokens cost them (the bundled
table has no plan prices: money is never invented).

Pricing a call: its operation must exist; its style is the one it names, else the operation's
default style. A call with a style costs that style's tokens (the style must exist, belong to
the operation and be priced); a call without one costs the operation's flat cost.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import attrs

from imagine_billing._checks import MAX_TOKENS, positive_int, shown_int, too_large
from imagine_billing.errors import (
    BadRecordError,
    NoPriceTableError,
    UnknownStyleError,
    UnpricedError,
)
from imagine_billing.pricing._document import DEFAULT_OPERATION
from imagine_billing.pricing.book import PriceBook, require_aware
from imagine_billing.pricing.loading import load_price_table
from imagine_billing.pricing.model import PriceTable, format_timestamp

if TYPE_CHECKING:
    from decimal import Decimal

__all__ = [
    "Call",
    "Estimate",
    "Line",
    "TokenRate",
    "Verdict",
    "estimate",
    "load_calls",
    "preflight",
    "resolve_table",
    "unit_cost",
]


def _check_call(style: object, count: object, operation: object) -> None:
    if style is not None and style.__class__ is not str:
        raise TypeError(
            f"style must be a str or None (got {style!r} of type {type(style).__name__})"
        )
    if operation.__class__ is not str:
        raise TypeError(
            f"operation must be a str (got {operation!r} of type {type(operation).__name__})"
        )
    positive_int(count, "count")


@attrs.frozen(init=False)
class Call:
    """Calls to make: ``count`` calls of one operation in one style.

    ``Call("flux-dev", 4)`` is four text-to-image calls in Flux Dev (60 tokens published).

    Raises:
        TypeError, ValueError: ``count`` is not an int from 1 to 2**53-1 (``True``, ``1.0``,
            ``0`` and negatives are refused), ``style`` not a str or None, ``operation`` not
            a str.
    """

    style: str | None = None
    """The style id; ``None`` uses the operation's default style (``imagine-turbo`` for
    text-to-image), or its flat cost when it has no default style."""
    count: int = 1
    """How many calls: an int from 1 to 2**53-1 (``True``, ``1.0``, ``0`` and negatives are
    refused)."""
    operation: str = DEFAULT_OPERATION
    """The operation id, ``"text-to-image"`` unless told."""

    def __init__(
        self, style: str | None = None, count: int = 1, operation: str = DEFAULT_OPERATION
    ) -> None:
        # Written by hand rather than generated with validators: calls are built in hot
        # loops, and one cheap test of the usual case is a third faster.
        if (
            count.__class__ is not int
            or count < 1
            or count > MAX_TOKENS
            or operation.__class__ is not str
            or (style is not None and style.__class__ is not str)
        ):
            _check_call(style, count, operation)
        _set_style(self, style)
        _set_count(self, count)
        _set_operation(self, operation)

    def to_dict(self) -> dict[str, Any]:
        """The call as a workload-file object: ``{"style", "count", "operation"}``."""
        return {"style": self.style, "count": self.count, "operation": self.operation}


@attrs.frozen
class Line:
    """One call of an estimate, priced: ``Line(Call("flux-dev", 4), 15, 60)``."""

    call: Call
    """The call priced."""
    unit_cost: int
    """Tokens for one call."""
    subtotal: int
    """Tokens for all ``call.count`` calls: ``unit_cost * call.count``."""
    style: str | None = attrs.field(
        default=attrs.Factory(lambda self: self.call.style, takes_self=True)
    )
    """The style that priced the call: ``call.style``, or the operation's default style when
    the call names none (``Call()`` is priced as ``"imagine-turbo"``); ``None`` for an
    operation billed flat. A ledger records spend by this style."""

    def to_dict(self) -> dict[str, Any]:
        """The line as JSON: the call's fields, ``priced_style`` (`style`), ``unit_cost``
        and ``subtotal``."""
        return {**self.call.to_dict(), "priced_style": self.style, "unit_cost": self.unit_cost,
                "subtotal": self.subtotal}


@attrs.frozen
class Estimate:
    """What a list of calls costs, and which prices said so."""

    total: int
    """Tokens for every call: the sum of the lines' subtotals. Counts and costs are at most
    2**53-1 each, the total is not bounded: it is an exact int, and a ledger refuses to hold
    or debit more than 2**53-1 tokens at once."""
    lines: tuple[Line, ...]
    """One line per call, in the order given."""
    table_version: str
    """The version of the price table that priced the calls."""
    table_digest: str
    """The digest (``"sha256:..."``) of that table: the exact prices behind the figure."""

    def to_dict(self) -> dict[str, Any]:
        """The estimate as JSON (the ``estimate --json`` document)."""
        return {
            "total": self.total,
            "unit": "token",
            "lines": [line.to_dict() for line in self.lines],
            "table_version": self.table_version,
            "table_digest": self.table_digest,
        }

    def in_money(self, rate: TokenRate) -> Decimal:
        """The total in money at ``rate``, rounded as `TokenRate.price_of` says."""
        return rate.price_of(self.total)


@attrs.frozen
class Verdict:
    """Whether calls fit the tokens available: ``ok`` iff ``total <= available``."""

    ok: bool
    """``True`` when the calls fit: ``total <= available``."""
    total: int
    """Tokens the calls need."""
    available: int
    """Tokens available."""
    shortfall: int
    """Tokens missing: ``total - available`` when that is positive, else 0 (65 needed with
    50 available is a shortfall of 15)."""
    estimate: Estimate
    """The estimate behind the verdict."""

    def to_dict(self) -> dict[str, Any]:
        """The verdict as JSON (without the estimate's lines)."""
        return {
            "ok": self.ok,
            "total": self.total,
            "available": self.available,
            "shortfall": self.shortfall,
        }


# ISO 4217 currencies whose minor unit is not 2 digits; every other currency has 2.
_MINOR_UNITS = {
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0,
    "PYG": 0, "RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0,
    "XPF": 0, "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
    "CLF": 4, "UYW": 4,
}


def _price(value: object) -> Decimal:
    from decimal import Decimal

    if isinstance(value, float):
        raise TypeError(
            f"price must be a Decimal, not a float (got {value!r}): write Decimal({str(value)!r})"
        )
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
        raise TypeError(f"price must be a Decimal (got {value!r} of type {type(value).__name__})")
    try:
        price = Decimal(value)
    except ArithmeticError:
        raise ValueError(f"price must be a decimal number (got {value!r})") from None
    if not price.is_finite() or price < 0:
        raise ValueError(f"price must be a finite Decimal >= 0 (got {value!r})")
    if price and not -_PRICE_EXPONENT <= price.adjusted() <= _PRICE_EXPONENT:
        # Exact arithmetic on 1e999999999 would build a billion-digit integer.
        raise ValueError(f"price must be between 1e-{_PRICE_EXPONENT} and "
                         f"1e{_PRICE_EXPONENT} (got {value!r})")
    return price


_PRICE_EXPONENT = 30


def _tokens(_: object, attribute: attrs.Attribute[int], value: object) -> None:
    positive_int(value, attribute.name)


def _currency(_: object, attribute: attrs.Attribute[str], value: object) -> None:
    if not (isinstance(value, str) and len(value) == 3 and value.isascii() and value.isupper()):
        raise ValueError(f"currency must be an ISO 4217 code such as 'USD' (got {value!r})")


@attrs.frozen
class TokenRate:
    """What tokens cost in money: ``tokens`` tokens for ``price`` in ``currency``.

    ``TokenRate(1000, Decimal("10.00"), "USD")`` is a cent a token: 65 tokens are $0.65.
    Money is computed exactly, then rounded once, half to even, to the currency's minor
    unit (2 digits for most currencies, 0 for JPY, 3 for KWD, as ISO 4217 says).
    """

    tokens: int = attrs.field(validator=_tokens)
    """How many tokens ``price`` buys: an int >= 1."""
    price: Decimal = attrs.field(converter=_price)
    """What they cost: a `Decimal` >= 0 (an int or decimal text is converted; a float is
    refused with `TypeError`, as binary fractions are not money)."""
    currency: str = attrs.field(validator=_currency)
    """The ISO 4217 code of the money, such as ``"USD"``."""

    @property
    def minor_unit(self) -> int:
        """Digits after the decimal point of the currency (2 for USD, 0 for JPY)."""
        return _MINOR_UNITS.get(self.currency, 2)

    def price_of(self, tokens: int) -> Decimal:
        """The money for ``tokens`` tokens: ``tokens * price / self.tokens`` computed exactly,
        then rounded half to even to the currency's minor unit.

        ``TokenRate(3, Decimal("1"), "USD").price_of(1)`` is ``Decimal("0.33")``;
        ``TokenRate(1000, Decimal("5"), "USD").price_of(1)`` is 0.005, so ``Decimal("0.00")``
        (half to even), and ``price_of(3)`` is 0.015, so ``Decimal("0.02")``. The result is
        exact whatever the decimal context (its precision and rounding play no part).

        Raises:
            TypeError, ValueError: ``tokens`` is not an int >= 0.
        """
        from decimal import Decimal

        if tokens.__class__ is not int:
            raise TypeError(
                f"tokens must be an int >= 0 (got {tokens!r} of type {type(tokens).__name__})"
            )
        if tokens < 0:
            raise ValueError(f"tokens must be an int >= 0 (got {tokens})")
        digits = self.minor_unit
        numerator, denominator = self.price.as_integer_ratio()
        numerator *= tokens * 10**digits
        denominator *= self.tokens
        quotient, remainder = divmod(numerator, denominator)
        if 2 * remainder > denominator or (2 * remainder == denominator and quotient % 2):
            quotient += 1
        # Built from its digits, not with arithmetic: the result must not depend on the
        # caller's decimal context (its precision would round a large amount).
        return Decimal((0, Decimal(quotient).as_tuple().digits, -digits))


Table = PriceTable | PriceBook


def resolve_table(table: Table | None = None, at: datetime | None = None) -> PriceTable:
    """The one table that prices calls made at ``at``.

    Args:
        table: a `PriceTable`, a `PriceBook`, or ``None`` for the bundled default table.
        at: a timezone-aware moment. With a book, the table in force then (``None``: now).
            With a table, it must be at or after the table's ``effective_from``.

    Raises:
        NoPriceTableError: no table is in force at ``at``.
        TypeError, ValueError: ``at`` is not a timezone-aware datetime.
    """
    if table is None:
        table = load_price_table()
    if isinstance(table, PriceBook):
        if at is None:
            from datetime import UTC

            at = datetime.now(UTC)
        return table.at(require_aware(at, "at"))
    if not isinstance(table, PriceTable):
        raise TypeError(
            f"table must be a PriceTable, a PriceBook or None (got {type(table).__name__})"
        )
    if at is not None and require_aware(at, "at") < table.effective_from:
        raise NoPriceTableError(at.isoformat(), format_timestamp(table.effective_from))
    return table


def unit_cost(table: PriceTable, style: str | None, operation: str = DEFAULT_OPERATION) -> int:
    """Tokens for one call of ``operation`` in ``style`` (``None``: its default style).

    Raises:
        UnknownStyleError: the operation or the style does not exist (with close matches),
            or the style belongs to another operation.
        UnpricedError: the style (or, without a style, the operation) has no published
            price; or the operation has styles but no default and the call named none.
    """
    op = table.operation(operation)
    if style is None:
        style = op.default_style
        if style is None:
            if op.cost is not None:
                return op.cost
            own = sorted(s.id for s in table.styles.values() if s.operation == op.id)
            error = UnpricedError(op.id, kind="operation", version=table.version)
            if own:
                error.args = (
                    f"operation {op.id!r} needs a style: it has no flat price and no default "
                    f"style; name one of {', '.join(own)}",
                )
            raise error
    found = table.styles.get(style) if style.__class__ is str else None
    if found is None:
        raise UnknownStyleError(style, table.styles, version=table.version)
    if found.operation != op.id:
        own = [s.id for s in table.styles.values() if s.operation == op.id]
        error_ = UnknownStyleError(style, own, kind=f"{op.id} style", version=table.version)
        error_.args = (
            f"style {style!r} belongs to operation {found.operation!r}, not {op.id!r}"
            + (f"; {op.id} styles: {', '.join(sorted(own))}" if own else ""),
        )
        raise error_
    if found.cost is None:
        raise UnpricedError(style, version=table.version)
    return found.cost


def estimate(
    calls: Iterable[Call], table: Table | None = None, *, at: datetime | None = None
) -> Estimate:
    """What ``calls`` cost, line by line.

    ``estimate([Call("flux-dev", 4), Call("anime")])`` is 65 tokens on the published table.

    Args:
        calls: the calls (any iterable of `Call`).
        table: a `PriceTable`, a `PriceBook` (``at`` picks the version), or ``None`` for the
            bundled default table.
        at: when the calls are made (timezone-aware); with a book, ``None`` is now.

    Returns:
        The `Estimate`, carrying the pricing table's version and digest.

    Raises:
        UnknownStyleError, UnpricedError: a call cannot be priced (see `unit_cost`).
        NoPriceTableError: no table is in force at ``at``.
        TypeError: an item of ``calls`` is not a `Call`.
    """
    if not isinstance(table, PriceTable) or at is not None:
        table = resolve_table(table, at)
    styles = table.styles
    lines: list[Line] = []
    total = 0
    for call in calls:
        if call.__class__ is not Call:
            raise TypeError(f"calls must be Call objects (got {call!r})")
        # The common case inline: a priced style of the call's operation (the table's
        # invariants make that operation exist). Everything else, errors included, is
        # `unit_cost`'s.
        name = call.style
        style = styles.get(name)  # type: ignore[arg-type]  # None is never a style id
        if style is None or style.operation != call.operation or style.cost is None:
            unit = unit_cost(table, name, call.operation)
            if name is None:
                name = table.operations[call.operation].default_style
        else:
            unit = style.cost
        subtotal = unit * call.count
        line = _new(Line)
        _set_call(line, call)
        _set_unit_cost(line, unit)
        _set_subtotal(line, subtotal)
        _set_line_style(line, name)
        lines.append(line)
        total += subtotal
    result = _new(Estimate)
    _set_total(result, total)
    _set_lines(result, tuple(lines))
    _set_table_version(result, table.version)
    _set_table_digest(result, table.digest)
    return result


# `estimate` builds its `Line`s and `Estimate` by setting their slots directly: attrs'
# generated ``__init__`` would double the cost of a one-call estimate (about 0.8 us instead
# of 1.5). Neither class has a validator or converter, and every field is set (``Line.style``'s
# default included), so the objects are the same.
_new = object.__new__
_set_style = Call.__dict__["style"].__set__
_set_count = Call.__dict__["count"].__set__
_set_operation = Call.__dict__["operation"].__set__
_set_call = Line.__dict__["call"].__set__
_set_unit_cost = Line.__dict__["unit_cost"].__set__
_set_subtotal = Line.__dict__["subtotal"].__set__
_set_line_style = Line.__dict__["style"].__set__
_set_total = Estimate.__dict__["total"].__set__
_set_lines = Estimate.__dict__["lines"].__set__
_set_table_version = Estimate.__dict__["table_version"].__set__
_set_table_digest = Estimate.__dict__["table_digest"].__set__


def preflight(
    calls: Iterable[Call],
    available: int,
    table: Table | None = None,
    *,
    at: datetime | None = None,
) -> Verdict:
    """Whether ``calls`` fit in ``available`` tokens: ``ok`` iff the total <= available.

    ``preflight([Call("flux-dev", 4), Call("anime")], 50)`` is not ok, short by 15.

    Args:
        calls: the calls to make.
        available: the tokens available: an int >= 0.
        table: as for `estimate`.
        at: as for `estimate`.

    Raises:
        TypeError, ValueError: ``available`` is not an int >= 0.
        UnknownStyleError, UnpricedError, NoPriceTableError: as `estimate` raises them.
    """
    if available.__class__ is not int:
        raise TypeError(
            f"available must be an int >= 0 (got {available!r} of type {type(available).__name__})"
        )
    if available < 0:
        raise ValueError(f"available must be an int >= 0 (got {available})")
    result = estimate(calls, table, at=at)
    shortfall = max(0, result.total - available)
    return Verdict(shortfall == 0, result.total, available, shortfall, result)


_CALL_KEYS = frozenset({"style", "count", "operation"})


def load_calls(path: str | os.PathLike[str]) -> tuple[Call, ...]:
    """Read a workload file: the calls a job will make.

    The file is JSON: a list of call objects, or ``{"calls": [...]}``. A call object is
    ``{"style": "flux-dev", "count": 4, "operation": "text-to-image"}``, every key optional
    (``count`` defaults to 1, ``operation`` to ``"text-to-image"``, ``style`` to the
    operation's default); other keys are refused.

    Raises:
        BadRecordError: the file cannot be read, is not JSON of that shape, or a call is bad;
            it names the file and the line (and index) of the offending call.
    """
    import json

    from imagine_billing._checks import read_bounded

    source = os.fspath(path)
    try:
        text = read_bounded(source).decode("utf-8-sig")
    except OSError as error:
        reason = error.strerror or str(error)
        raise BadRecordError(source, 0, "unreadable", f"cannot read the file: {reason}") from None
    except UnicodeDecodeError as error:
        detail = f"not UTF-8 text (byte {error.start})"
        raise BadRecordError(source, 0, "unreadable", detail) from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        detail = f"not JSON: {error.msg} at column {error.colno}"
        raise BadRecordError(source, error.lineno, "bad-json", detail) from None
    except (RecursionError, ValueError) as error:
        # Nesting deeper than Python's stack, or an integer of more than 4300 digits.
        reason = "nested too deeply" if isinstance(error, RecursionError) else str(error)
        raise BadRecordError(source, 1, "bad-json",
                             f"not JSON this library reads: {reason}") from None
    if isinstance(document, dict):
        extra = sorted(set(document) - {"calls"})
        if extra or not isinstance(document.get("calls"), list):
            raise BadRecordError(
                source, 1, "bad-shape",
                'expected a list of calls or {"calls": [...]}'
                + (f" (unknown key {extra[0]!r})" if extra else " (no \"calls\" list)"),
            )
        items = document["calls"]
    elif isinstance(document, list):
        items = document
    else:
        raise BadRecordError(
            source, 1, "bad-shape",
            f'expected a list of calls or {{"calls": [...]}} (got {_json_type(document)})',
        )
    calls: list[Call] = []
    for index, item in enumerate(items):
        problem = _call_problem(item)
        if problem is not None:
            reason, detail = problem
            line = _element_lines(text).get(index, 1)
            raise BadRecordError(source, line, reason, f"call {index}: {detail}")
        calls.append(
            Call(item.get("style"), item.get("count", 1), item.get("operation", DEFAULT_OPERATION))
        )
    return tuple(calls)


def _call_problem(item: object) -> tuple[str, str] | None:
    if not isinstance(item, dict):
        example = '{"style": "flux-dev", "count": 4}'
        return "bad-shape", f"expected an object such as {example} (got {_json_type(item)})"
    unknown = sorted(set(item) - _CALL_KEYS)
    if unknown:
        return "unknown-key", f"unknown key {unknown[0]!r}; expected only style, count, operation"
    style = item.get("style")
    if style is not None and not isinstance(style, str):
        got = f"{_json_type(style)} {json_text(style)}"
        return "bad-style", f"style must be a string or null (got {got})"
    count = item.get("count", 1)
    if count.__class__ is not int or count < 1:
        shown = shown_int(count) if count.__class__ is int else json_text(count)
        return "bad-count", f"count must be an integer >= 1 (got {_json_type(count)} {shown})"
    if count > MAX_TOKENS:
        return "bad-count", f"count {too_large(f'integer {shown_int(count)}')}"
    operation = item.get("operation", DEFAULT_OPERATION)
    if not isinstance(operation, str):
        got = f"{_json_type(operation)} {json_text(operation)}"
        return "bad-operation", f"operation must be a string (got {got})"
    return None


def json_text(value: object) -> str:
    """``value`` spelled as JSON (``true`` rather than ``True``), for messages."""
    import json

    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def _json_type(value: object) -> str:
    names = {bool: "boolean", int: "integer", float: "number", str: "string",
             list: "array", dict: "object", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _element_lines(text: str) -> Mapping[int, int]:
    """The line where each call of the document's calls list starts, by index.

    Only used to name the line of a bad call, so it is computed then, from the raw text.
    """
    import json

    decoder = json.JSONDecoder()
    whitespace = " \t\n\r"

    def skip(pos: int) -> int:
        while pos < len(text) and text[pos] in whitespace:
            pos += 1
        return pos

    def line_of(pos: int) -> int:
        return text.count("\n", 0, pos) + 1

    pos = skip(1 if text.startswith("\ufeff") else 0)
    if text.startswith("{", pos):
        pos = skip(pos + 1)
        while pos < len(text) and text[pos] != "}":
            key, pos = decoder.raw_decode(text, pos)
            pos = skip(skip(pos) + 1)  # past the colon
            if key == "calls" and text.startswith("[", pos):
                break
            _, pos = decoder.raw_decode(text, pos)
            pos = skip(pos)
            pos = skip(pos + 1) if text.startswith(",", pos) else pos
    if not text.startswith("[", pos):
        return {}
    lines: dict[int, int] = {}
    pos = skip(pos + 1)
    index = 0
    while pos < len(text) and text[pos] != "]":
        lines[index] = line_of(pos)
        _, pos = decoder.raw_decode(text, pos)
        pos = skip(pos)
        pos = skip(pos + 1) if text.startswith(",", pos) else pos
        index += 1
    return lines
