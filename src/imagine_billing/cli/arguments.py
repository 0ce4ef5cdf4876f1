"""Argument types and options shared by the commands: one parser for each kind of value.

Each type raises `argparse.ArgumentTypeError` with a message naming the value and what was
expected, which the command line prints as one line with exit 2.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, time
from typing import TYPE_CHECKING

from imagine_billing._checks import MAX_DIGITS, MAX_TOKENS, rfc3339, shown_int, too_large
from imagine_billing.errors import BillingError, LedgerStoreError, UnknownStyleError

if TYPE_CHECKING:
    from imagine_billing.estimator import Call
    from imagine_billing.ledger import Ledger
    from imagine_billing.pricing.model import PriceTable

__all__ = [
    "TIME_HELP",
    "CommandLineError",
    "calls_of",
    "instant",
    "name_number",
    "open_ledger",
    "tag",
    "values_checked",
    "whole_number",
]


class CommandLineError(Exception):
    """A usage problem found after parsing (a missing ``--db``, a bad ``--prices`` file, a
    bad configuration file): the command line prints the message as its one error line and
    exits 2."""


def whole_number(minimum: int, maximum: int = MAX_TOKENS) -> Callable[[str], int]:
    """An argument type for a whole number from ``minimum`` to ``maximum``, in digits."""

    def parse(text: str) -> int:
        value = _digits(text)
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(
                f"must be a whole number >= {minimum} (got {_quoted(text)})"
            )
        if value > maximum:
            raise argparse.ArgumentTypeError(
                too_large(shown_int(text)) if maximum == MAX_TOKENS
                else f"must be at most {maximum} (got {shown_int(text)})"
            )
        return value

    return parse


def _digits(text: str) -> int | None:
    """The number that ``text`` writes in ASCII digits, else ``None``.

    More digits than `MAX_TOKENS` has are read as `MAX_TOKENS` + 1: too large anyway, and
    never converted (Python refuses to convert more than 4300 digits).
    """
    if not (text.isascii() and text.isdigit()):
        return None
    if len(text.lstrip("0")) > MAX_DIGITS:
        return MAX_TOKENS + 1
    return int(text)


def _quoted(text: str) -> str:
    """``text`` quoted for a message, cut short when it is long."""
    return repr(text) if len(text) <= 60 else f"{text[:40]!r}... ({len(text)} characters)"


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
                f"{_quoted(text)}: expected STYLE[:{number}], e.g. {example}"
            )
        value = _digits(digits)
        if value is None or value < 1:
            raise argparse.ArgumentTypeError(
                f"{_quoted(text)}: the {number.lower()} must be a whole number >= 1 "
                f"(got {_quoted(digits)})"
            )
        if value > MAX_TOKENS:
            raise argparse.ArgumentTypeError(
                f"{_quoted(text)}: the {number.lower()} {too_large(shown_int(digits))}"
            )
        return name, value

    return parse


TIME_HELP = "RFC 3339 with a zone, e.g. 2026-11-01T00:00:00Z; a date alone is midnight UTC"
"""What every option that takes a time accepts, for its help."""

_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def instant(text: str) -> datetime:
    """An argument type for an RFC 3339 time with a zone, such as 2026-11-01T00:00:00Z, or a
    date alone, such as 2026-11-01, which is midnight UTC. A time without seconds
    (``2026-11-01T10:00Z``) or without a zone is refused, not guessed."""
    when = rfc3339(text)
    if when is None and _DATE.fullmatch(text):
        try:
            when = datetime.combine(date.fromisoformat(text), time(), UTC)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{_quoted(text)} is not a date (YYYY-MM-DD)") from None
    if when is None or when.tzinfo is None:
        what = "has no time zone" if when is not None else "is not an RFC 3339 time"
        raise argparse.ArgumentTypeError(
            f"{_quoted(text)} {what}; write e.g. 2026-11-01T00:00:00Z, or a date alone, "
            "2026-11-01, for midnight UTC"
        )
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


def calls_of(specs: Sequence[tuple[str, int]], table: PriceTable) -> list[Call]:
    """Calls from ``(name, count)`` pairs: a style id (priced under its own operation) or
    the id of an operation billed without a style.

    Raises:
        UnknownStyleError: a name is neither (with close matches among the styles and
            the operations).
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
            raise UnknownStyleError(name, [*table.styles, *table.operations],
                                    kind="style or operation", version=table.version)
    return calls


def open_ledger(path: str, *, create: bool, readonly: bool = False,
                name: str = "main") -> Ledger:
    """The ledger at ``path``: a SQLite file (one that does not exist is created only if
    ``create``), or the ledger ``name`` of a PostgreSQL URL. ``readonly`` for commands that
    only read: a file may then be in a folder, or on a mount, that cannot be written.

    Raises:
        LedgerStoreError: the file does not exist and ``create`` is false, or it cannot be
            used as a ledger; the server cannot be reached or refuses.
    """
    from imagine_billing.ledger import Ledger
    from imagine_billing.ledger.postgres import is_url

    if not create and not is_url(path) and not os.path.exists(path):
        raise LedgerStoreError(path, "no such file (a ledger is created by its first write)")
    return Ledger.open(path, readonly=readonly, name=name)


def values_checked(run: Callable[[argparse.Namespace], int],
                   command: Callable[[argparse.Namespace], str]) -> Callable[
                       [argparse.Namespace], int]:
    """``run``, with the library's refusals of argument values it was given (text that is
    not valid Unicode, such as a byte that is not UTF-8 on the command line, amounts past
    2**53-1...: a `TypeError` or `ValueError` that is no `BillingError`) as one line on
    stderr, ``imagine-billing COMMAND: error: ...``, and exit 2. A `BillingError` goes on
    to `main`, which knows its exit code."""

    def checked(args: argparse.Namespace) -> int:
        try:
            return int(run(args))
        except (TypeError, ValueError) as error:
            if isinstance(error, BillingError):
                raise
            print(f"imagine-billing {command(args)}: error: {error}", file=sys.stderr)
            return 2

    return checked
