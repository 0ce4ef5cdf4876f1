"""Money: `TokenRate` turns tokens into a `Decimal`, rounded half-even to the minor unit."""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from imagine_billing._checks import currency_code, positive_int, shown_repr

if TYPE_CHECKING:
    from decimal import Decimal
    from fractions import Fraction


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
    if price.is_zero():
        price = price.copy_abs()  # -0 is 0 (shown as "0", not "-0")
    if price and not -_PRICE_EXPONENT <= price.adjusted() <= _PRICE_EXPONENT:
        # Exact arithmetic on 1e999999999 would build a billion-digit integer.
        raise ValueError(f"price must be between 1e-{_PRICE_EXPONENT} and "
                         f"1e{_PRICE_EXPONENT} (got {value!r})")
    return price


_PRICE_EXPONENT = 30


def _tokens(_: object, attribute: attrs.Attribute[int], value: object) -> None:
    positive_int(value, attribute.name)


def _currency(_: object, attribute: attrs.Attribute[str], value: object) -> None:
    if not currency_code(value):
        raise ValueError(f"currency must be an ISO 4217 code, three capital letters such as "
                         f"'USD' (got {shown_repr(value)})")


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

    def price_of(self, tokens: int | Fraction) -> Decimal:
        """The money for ``tokens`` tokens: ``tokens * price / self.tokens`` computed exactly,
        then rounded half to even to the currency's minor unit.

        ``TokenRate(3, Decimal("1"), "USD").price_of(1)`` is ``Decimal("0.33")``;
        ``TokenRate(1000, Decimal("5"), "USD").price_of(1)`` is 0.005, so ``Decimal("0.00")``
        (half to even), and ``price_of(3)`` is 0.015, so ``Decimal("0.02")``. The result is
        exact whatever the decimal context (its precision and rounding play no part).
        ``tokens`` may be a `Fraction` (a forecast's burn of ``Fraction(100, 3)`` tokens a
        day), priced as exactly: never through a float.

        Raises:
            TypeError, ValueError: ``tokens`` is not an int or a `Fraction` >= 0.
        """
        from decimal import Decimal
        from fractions import Fraction

        if tokens.__class__ is not int and tokens.__class__ is not Fraction:
            raise TypeError(
                f"tokens must be an int >= 0 or a Fraction >= 0 (got {tokens!r} of type "
                f"{type(tokens).__name__})"
            )
        if tokens < 0:
            raise ValueError(f"tokens must be an int >= 0 or a Fraction >= 0 (got {tokens})")
        digits = self.minor_unit
        numerator, denominator = self.price.as_integer_ratio()
        exact = Fraction(tokens)
        numerator *= exact.numerator * 10**digits
        denominator *= self.tokens * exact.denominator
        quotient, remainder = divmod(numerator, denominator)
        if 2 * remainder > denominator or (2 * remainder == denominator and quotient % 2):
            quotient += 1
        # Built from its digits, not with arithmetic: the result must not depend on the
        # caller's decimal context (its precision would round a large amount).
        return Decimal((0, Decimal(quotient).as_tuple().digits, -digits))


