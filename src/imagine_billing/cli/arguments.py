"""Argument types and options shared by the commands: one parser for each kind of value.

Each type raises `argparse.ArgumentTypeError` with a message naming the value and what was
expected, which the command line prints as one line with exit 2.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from imagine_billing._checks import MAX_TOKENS
from imagine_billing.errors import LedgerStoreError, UnknownStyleError

if TYPE_CHECKING:
    from imagine_billing.estimator import Call
    from imagine_billing.ledger import Ledger
    from imagine_billing.pricing.model import PriceTable

__all__ = [
    "add_table_option",
    "calls_of",
    "instant",
    "name_number",
    "open_ledger",
    "tag",
    "whole_number",
]


def whole_number(minimum: int, maximum: int = MAX_TOKENS) -> Callable[[str], int]:
    """An argument type for a whole number from ``minimum`` to ``maximum``, in digits."""

    def parse(text: str) -> int:
        if not (text.isascii() and text.isdigit()) or int(text) < minimum:
            raise argparse.ArgumentTypeError(
                f"must be a whole number >= {minimum} (got {text!r})"
            )
        if int(text) > maximum:
            raise argparse.ArgumentTypeError(f"must be at most {maximum} (got {text})")
        return int(text)

    return parse


def name_number(number: str, example: str) -> Callable[[str], tuple[str, int]]:
    """An argument type for ``NAME[:NUMBER]`` (NUMBER a whole number >= 1, default 1).

    ``name_number("COUNT", "flux-dev:4")`` parses ``"flux-dev:4"`` to ``("flux-dev", 4)`` and
    ``"anime"`` to ``("anime", 1)``.
    """

    def parse(text: str) -> tuple[str, int]:
        name, colon, digits = text.rpartition(":")
        if not colon:
            name, digits = text, "1"
        if not name:
            raise argparse.ArgumentTypeError(
                f"{text!r}: expected STYLE[:{number}], e.g. {example}"
            )
        if not (digits.isascii() and digits.isdigit()) or int(digits) < 1:
            raise argparse.ArgumentTypeError(
                f"{text!r}: the {number.lower()} must be a whole number >= 1 (got {digits!r})"
            )
        return name, int(digits)

    return parse


def instant(text: str) -> datetime:
    """An argument type for an RFC 3339 time with a zone, such as 2026-11-01T00:00:00Z."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        what = "has no time zone" if when is not None else "is not an RFC 3339 time"
        raise argparse.ArgumentTypeError(f"{text!r} {what}; write e.g. 2026-11-01T00:00:00Z")
    if not 1970 <= when.year <= 9000:
        # Periods, windows and horizons are computed around a time: keep them in range.
        raise argparse.ArgumentTypeError(f"{text!r}: the year must be from 1970 to 9000")
    return when


def tag(text: str) -> tuple[str, str]:
    """An argument type for ``NAME=VALUE``, such as ``project=shop``."""
    name, equals, value = text.partition("=")
    if not equals or not name:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=VALUE, e.g. project=shop")
    return name, value


def add_table_option(
    parser: argparse.ArgumentParser | argparse._MutuallyExclusiveGroup,
    help: str = "a price document (JSON) to use instead of the bundled default table",
) -> None:
    """The ``--table FILE`` option of every command where prices matter."""
    parser.add_argument("--table", metavar="FILE", default=None, help=help)


def calls_of(specs: Sequence[tuple[str, int]], table: PriceTable) -> list[Call]:
    """Calls from ``(name, count)`` pairs: a style id (priced under its own operation) or
    the id of an operation billed without a style.

    Raises:
        UnknownStyleError: a name is neither (with close matches among the styles).
    """
    from imagine_billing.estimator import Call

    calls = []
    for name, count in specs:
        style = table.styles.get(name)
        if style is not None:
            calls.append(Call(name, count, style.operation))
        elif name in table.operations:
            calls.append(Call(None, count, name))
        else:
            raise UnknownStyleError(name, table.styles, version=table.version)
    return calls


def open_ledger(path: str, *, create: bool) -> Ledger:
    """The ledger file at ``path``; one that does not exist is created only if ``create``.

    Raises:
        LedgerStoreError: the file does not exist and ``create`` is false.
    """
    from imagine_billing.ledger import Ledger

    if not create and not os.path.exists(path):
        raise LedgerStoreError(path, "no such file (a ledger is created by its first write)")
    return Ledger.open(path)
