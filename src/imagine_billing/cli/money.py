"""``--rate DECIMAL [--currency CODE]``: money beside tokens, exact (`Decimal`), rounded half to
even to the currency's minor unit only when shown (see `imagine_billing.TokenRate`)."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from imagine_billing._checks import currency_code

if TYPE_CHECKING:
    from fractions import Fraction

    from imagine_billing.estimator import TokenRate

__all__ = ["MONEY_HELP", "add_money_options", "amount_text", "money_document", "money_figures",
           "money_line", "rate_note", "rate_of"]

MONEY_HELP = ("money is exact: tokens x rate, rounded half to even to the currency's minor "
              "unit (cents for USD, none for JPY) only when shown")


def _rate(text: str) -> str:
    """An argument type for ``--rate``: decimal text (checked by `TokenRate` later, so that
    its one message says what is wrong)."""
    from decimal import Decimal, InvalidOperation

    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected the price of one token as a decimal number, e.g. 0.012"
        ) from None
    if not value.is_finite() or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a finite decimal number >= 0")
    return text


def add_money_options(parser: argparse.ArgumentParser) -> None:
    """``--rate DECIMAL`` and ``--currency CODE``."""
    parser.add_argument("--rate", type=_rate, default=None, metavar="DECIMAL",
                        help=f"also show money: the price of one token, e.g. 0.012 ({MONEY_HELP}; "
                        "default: rate in imagine-billing.toml or pyproject.toml, else none)")
    parser.add_argument("--currency", default=None, metavar="CODE",
                        help="with --rate: the ISO 4217 code of its money (default: currency "
                        "of the configuration, else USD)")


def rate_of(args: argparse.Namespace) -> TokenRate | None:
    """The `TokenRate` of ``--rate`` and ``--currency``, each else the configuration's
    ``rate`` and ``currency`` (`imagine_billing.cli.config`); ``None`` without a rate.

    Raises:
        CommandLineError: the currency is not an ISO 4217 code, the rate is out of range, or
            the configuration is bad.
    """
    from decimal import Decimal

    from imagine_billing.cli.sources import CommandLineError
    from imagine_billing.estimator import TokenRate

    rate, currency = args.rate, args.currency
    given = f"--rate {rate}" if rate is not None else ""
    if rate is None or currency is None:
        from imagine_billing.cli.config import load_config

        config = load_config()
        if rate is None and config.rate is not None:
            rate, given = config.rate.value, f"{config.rate.where} = {config.rate.value}"
        if currency is None and config.currency is not None:
            currency = config.currency.value
    if rate is None:
        return None
    currency = currency or "USD"
    try:
        return TokenRate(1, Decimal(rate), currency)
    except (TypeError, ValueError) as error:
        # A bad currency is named by the error itself (escaped): not repeated raw here.
        money = f" (currency {currency})" if currency_code(currency) else ""
        raise CommandLineError(f"{given}{money}: {error}") from None


def money_document(rate: TokenRate, tokens: int) -> dict[str, Any]:
    """The money of ``tokens`` for ``--json``: amount and rate as decimal strings."""
    return {"amount": str(rate.price_of(tokens)), "currency": rate.currency,
            "rate": str(rate.price), "rounding": "half-even"}


def money_line(rate: TokenRate, tokens: int) -> str:
    """The money of ``tokens`` for people."""
    return (f"money: {rate.price_of(tokens)} {rate.currency} ({tokens:,} tokens at "
            f"{rate.price} {rate.currency} each, rounded half to even)")


def money_figures(rate: TokenRate,
                  figures: Mapping[str, int | Fraction | None]) -> dict[str, Any]:
    """The ``"money"`` part of a ``--json`` document with several figures: each figure of
    tokens (an int, an exact `Fraction` such as a burn per day, or ``None``) as a decimal
    string, each rounded on its own from its exact value, with the rate beside them."""
    return {**{name: None if tokens is None else str(rate.price_of(tokens))
               for name, tokens in figures.items()},
            "currency": rate.currency, "rate": str(rate.price), "rounding": "half-even"}


def amount_text(rate: TokenRate, tokens: int | Fraction) -> str:
    """The money of ``tokens`` for people, such as ``0.78 USD``."""
    return f"{rate.price_of(tokens)} {rate.currency}"


def rate_note(rate: TokenRate) -> str:
    """How the money shown was computed, for people."""
    return f"at {rate.price} {rate.currency} a token, rounded half to even"
