"""Argument checks shared by every layer: one wording for one rule."""

from __future__ import annotations

import errno
import json
import os
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from collections.abc import Iterable
    from fractions import Fraction

__all__ = [
    "MAX_DIGITS",
    "MAX_FILE_BYTES",
    "MAX_SUGGESTED",
    "SHOWN_WIDTH",
    "MAX_TOKENS",
    "PLACES",
    "NumberProblem",
    "close_names",
    "decimal_text",
    "exact_number",
    "format_timestamp",
    "parse_timestamp",
    "positive_int",
    "read_bounded",
    "rfc3339",
    "shortened",
    "stamp",
    "shown_int",
    "too_large",
    "within",
    "unicode_text",
]

MAX_TOKENS = 2**53 - 1
"""The largest count or token amount: the largest cost a price table may hold (2**53-1),
far beyond any real balance, and well inside SQLite's 64-bit integers."""

MAX_DIGITS = len(str(MAX_TOKENS))
"""Digits of `MAX_TOKENS` (16): a number written with more is too large, whatever it is."""


MAX_FILE_BYTES = 16 * 2**20
"""The most this library reads of one JSON document (a price table, a workload, a policy):
16 MiB, a thousand times the bundled table, so that ``/dev/zero`` or a log passed by mistake
is an error instead of a process that eats the machine's memory."""


def read_bounded(path: str, limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of the file at ``path``, reading at most ``limit`` + 1 of them.

    Raises:
        OSError: the file cannot be read, or holds more than ``limit`` bytes (``errno.EFBIG``,
            with a reason that says so), so callers report both the same way.
    """
    with open(path, "rb") as handle:
        raw = handle.read(limit + 1)
    if len(raw) > limit:
        reason = f"larger than {limit // 2**20} MiB, the most this library reads of one document"
        raise OSError(errno.EFBIG, reason, os.fspath(path))
    return raw


MAX_SUGGESTED = 5
"""The most "did you mean" suggestions one validation makes: each compares a name with every
known one, so a document with thousands of bad references would take minutes otherwise."""


def close_names(word: str, known: Iterable[str], n: int = 1) -> tuple[str, ...]:
    """Up to ``n`` of the ``known`` names close to ``word``, best first, compared
    case-insensitively ("FLUX-DEV" finds "flux-dev")."""
    import difflib

    folded: dict[str, str] = {}
    for name in known:
        folded.setdefault(name.casefold(), name)
    return tuple(folded[match] for match in difflib.get_close_matches(word.casefold(), folded, n=n))


def within(names: Iterable[str], limit: int = 15) -> str:
    """``names`` joined by commas, the first ``limit`` of them and how many more."""
    shown = list(names)
    more = len(shown) - limit
    return ", ".join(shown[:limit]) + (f" and {more} more" if more > 0 else "")


SHOWN_WIDTH = 60
"""The most characters of a value a message shows: a 100 MB style read from a file, or a
number of a million digits, stays out of the message."""


def shortened(text: str, width: int = SHOWN_WIDTH) -> str:
    """``text`` if it has at most ``width`` characters, else its start and ``...``."""
    return text if len(text) <= width else text[: width - 3] + "..."


def shown(value: object, width: int = SHOWN_WIDTH, *, python: bool = False) -> str:
    """Any value for a message, as JSON spells it (``"anime"``, ``5``, ``null``), or with
    ``python`` as Python does (``'anime'``, ``None``: the ledger's values), cut short after
    ``width`` characters; a huge integer as its size (`shown_int`), a value JSON cannot spell
    as its ``repr``, and every character that does not print (controls, bidi overrides, line
    separators, lone surrogates) as an escape, so a hostile value cannot rewrite the lines
    around it."""
    if type(value) is int:
        return shown_int(value)
    if isinstance(value, str) and len(value) > width:
        value = value[:width]
    try:
        text = repr(value) if python else json.dumps(value, ensure_ascii=False, allow_nan=True)
    except RecursionError:  # pragma: no cover - documents are cut off at 64 levels
        text = f"a {type(value).__name__}"
    except Exception:  # JSON cannot spell it, or its repr fails
        try:
            text = repr(value)
        except Exception:
            text = f"a {type(value).__name__}"
    return shortened(printable(text), width)


def printable(text: str) -> str:
    """``text`` as it is, but every character that does not print (controls, bidi
    overrides, line separators, lone surrogates) as an escape (``\\u001b``), so a hostile
    value printed as it is (a key in a table) cannot rewrite the terminal. Not shortened."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escaped(c) for c in text)


def _escaped(character: str) -> str:
    code = ord(character)
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def shown_repr(value: object) -> str:
    """`shown` with Python's spelling (``'anime'``, ``None``): the ledger's messages."""
    return shown(value, python=True)


def currency_code(value: object) -> bool:
    """Whether ``value`` is spelled as an ISO 4217 code: three ASCII capital letters
    (``"USD"``; not ``"A B"``, ``"usd"`` or ``"ÉUR"``)."""
    return (isinstance(value, str) and len(value) == 3 and value.isascii()
            and value.isalpha() and value.isupper())


def positive_int(value: object, name: str) -> int:
    """``value`` if it is an int from 1 to `MAX_TOKENS`, else an error naming it.

    Booleans, floats (even ``1.0``), strings and int subclasses are refused: token amounts
    and counts are plain integers.

    Raises:
        TypeError: ``value`` is not an int.
        ValueError: ``value`` is 0, negative, or more than `MAX_TOKENS`.
    """
    if value.__class__ is not int:
        raise TypeError(
            f"{name} must be an int >= 1 (got {value!r} of type {type(value).__name__})"
        )
    assert isinstance(value, int)
    if value < 1:
        raise ValueError(f"{name} must be an int >= 1 (got {shown_int(value)})")
    if value > MAX_TOKENS:
        raise ValueError(f"{name} {too_large(shown_int(value))}")
    return value


def too_large(got: str) -> str:
    """The one wording for a count or amount past `MAX_TOKENS`, after its name.

    ``f"count {too_large('9007199254740992')}"`` is ``"count must be at most 2**53-1 =
    9007199254740991 (got 9007199254740992)"``.
    """
    return f"must be at most 2**53-1 = {MAX_TOKENS} (got {got})"


def shown_int(value: int | str) -> str:
    """An integer (or its digits) for a message: as it is, unless it is too long to read.

    ``shown_int(10**5000)`` is ``"a number of 5001 digits"``: neither a 5000-digit line nor
    Python's own limit on converting long integers to text gets in the way.
    """
    if isinstance(value, str):
        return value if len(value) <= 40 else f"a number of {len(value)} digits"
    if value.bit_length() <= 128:
        return str(value)
    digits = int(abs(value).bit_length() * 0.30102999566398120)  # log10(2)
    if abs(value) >= 10**digits:
        digits += 1
    return f"a number of {digits} digits"


_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt](?:[01][0-9]|2[0-3]):[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?"
    r"(?:[Zz]|[+-][0-9]{2}:[0-9]{2})?"
)


def rfc3339(text: str) -> datetime | None:
    """The datetime that RFC 3339 text names, with its offset; else ``None``. Never raises.

    RFC 3339 is ``YYYY-MM-DDTHH:MM:SS``, an optional fraction, then ``Z`` or ``+hh:mm`` /
    ``-hh:mm`` (``t`` and ``z`` may be lower case). The other forms of ISO 8601 that
    `datetime.fromisoformat` takes (``20250702T000000Z``, ``2025-W27-3``, a space for the
    ``T``, ``+0100``, no seconds, a comma before the fraction) give ``None``, as do dates
    and times that do not exist (month 13, hour 24, a leap second). Text that is RFC 3339
    but for a missing zone gives a naive datetime, so callers can say "no time zone".
    """
    # The pattern fixes the form (ASCII digits only, no hour 24, which newer Pythons read as
    # the next midnight); fromisoformat checks the other ranges.
    if _rfc3339_form(text) is None:
        return None
    try:
        return _fromisoformat(text)
    except ValueError:
        pass
    try:
        return _fromisoformat(text.upper())  # a lower-case t or z, or no such date
    except ValueError:
        return None


_rfc3339_form = _RFC3339.fullmatch
_fromisoformat = datetime.fromisoformat


NumberProblem = Literal["not-a-number", "negative", "too-precise", "too-large", "too-small"]
"""What `exact_number` found wrong with a value."""

_RATIO = re.compile(r"([+-]?)([0-9]+)/([0-9]+)")


def exact_number(value: object, *, digits: int,
                 exponents: tuple[int, int]) -> Fraction | NumberProblem:
    """The exact number ``value`` stands for, or what is wrong with it, bounded before any
    `Fraction` is built: ``Fraction("1e-999999999")`` is a billion-digit denominator, which
    takes for ever to make.

    ``value`` is an int, a float (read as its shortest decimal: 0.8 is 4/5), a `Decimal`, a
    `Fraction`, or text: a decimal (``"0.8"``, ``"8e-1"``) or a ratio (``"4/5"``). With
    ``digits=30, exponents=(-6, 2)``, ``"0.8"`` is ``Fraction(4, 5)``, ``"1e-7"`` is
    ``"too-small"`` and ``"1e999999999"`` is ``"too-large"``, both at once; ``"-1e999999999"``
    is ``"negative"``.

    Args:
        value: The number.
        digits: The most significant digits of a decimal, or digits of a ratio's (or a
            Fraction's) numerator and denominator.
        exponents: ``(low, high)``: a number other than 0 must have ``10**low <= value <
            10**(high + 1)``.

    Returns:
        The `Fraction` (0 included: the caller says whether it takes it), else
        ``"not-a-number"`` (a bool, text that is no number, NaN, an infinity, a ratio over
        0), ``"negative"`` (below 0, whatever its size), ``"too-precise"``, ``"too-large"``
        or ``"too-small"``.
    """
    # decimal and fractions are imported here: pricing with the default table must not pay
    # for them (tests/unit/test_public_api.py checks it).
    from decimal import Decimal, InvalidOperation
    from fractions import Fraction

    low, high = exponents
    if isinstance(value, bool):
        return "not-a-number"
    if isinstance(value, float):
        value = repr(value)  # the shortest text that reads back as this float
    if isinstance(value, str):
        text = value.strip()
        match = _RATIO.fullmatch(text)
        if match is not None:
            sign, numerator, denominator = match.groups()
            # Leading zeros say nothing, but int() would count them against its digit limit.
            numerator, denominator = numerator.lstrip("0") or "0", denominator.lstrip("0") or "0"
            if max(len(numerator), len(denominator)) > digits:
                return "too-precise"
            if denominator == "0":
                return "not-a-number"
            if sign == "-" and numerator != "0":
                return "negative"
            return _in_range(Fraction(int(numerator), int(denominator)), low, high)
        if "/" in text:
            return "not-a-number"
        try:
            value = Decimal(text)
        except InvalidOperation:
            return "not-a-number"
    if isinstance(value, Decimal):
        if not value.is_finite():
            return "not-a-number"
        negative, figures, exponent = value.as_tuple()
        assert isinstance(exponent, int)  # a finite Decimal's exponent
        significant = "".join(map(str, figures)).rstrip("0")
        if not significant:
            return Fraction(0)
        if negative:
            return "negative"
        if value.adjusted() > high:
            return "too-large"
        if value.adjusted() < low:
            return "too-small"
        if len(significant) > digits:
            return "too-precise"
        # The exponent is now bounded, so the power is small.
        scale = exponent + len(figures) - len(significant)
        return Fraction(int(significant)) * Fraction(10) ** scale
    if isinstance(value, int | Fraction):
        if value < 0:
            return "negative"
        number = _in_range(Fraction(value), low, high)
        if not isinstance(number, str) and (
                number.denominator >= 10**digits or number.numerator >= 10**digits):
            return "too-precise"
        return number
    return "not-a-number"


def _in_range(number: Fraction, low: int, high: int) -> Fraction | NumberProblem:
    from fractions import Fraction

    if number >= Fraction(10) ** (high + 1):
        return "too-large"
    if number and number < Fraction(10) ** low:
        return "too-small"
    return number


def unicode_text(value: str, what: str) -> str:
    """``value`` if it can be stored as UTF-8: no lone surrogates, as the command line makes
    of bytes that are not UTF-8 (``"\\udcff"`` for ``b"\\xff"``).

    Raises:
        ValueError: naming ``what`` and the value: ``key '\\udcff' is not valid Unicode text``.
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{what} {value!r} is not valid Unicode text") from None
    return value


_FRACTION = re.compile(r"\.([0-9]*)")


def parse_timestamp(text: str) -> datetime:
    """An aware UTC datetime from RFC 3339 text with a zone (``Z`` or an offset).

    RFC 3339 allows a lower-case ``t`` and ``z``. Raises `ValueError` (its message names
    the text and what is wrong) for text that is not a real time, has no zone, has a
    fraction of a second finer than a microsecond (which would be cut off, silently
    changing the time), or is out of range in UTC (year 1 minus an offset).
    """
    when = rfc3339(text)
    if when is None:
        raise ValueError(f"not a real date and time (got {text!r})")
    if when.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no time zone")
    fraction = _FRACTION.search(text)
    if fraction and fraction.group(1)[6:].strip("0"):
        raise ValueError(
            f"timestamp {text!r} has a fraction of a second finer than a microsecond "
            "(6 digits): it would be cut off"
        )
    try:
        return when.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"timestamp {text!r} is out of range in UTC") from None


def format_timestamp(when: datetime) -> str:
    """RFC 3339 in UTC with a ``Z``, the one spelling the canonical form uses."""
    text = when.astimezone(UTC).isoformat()
    return text.removesuffix("+00:00") + "Z"


def stamp(when: datetime | None) -> str | None:
    """`format_timestamp`, or ``None`` for no time."""
    return None if when is None else format_timestamp(when)


PLACES = 6
"""Decimal places of the numbers `decimal_text` writes."""


def decimal_text(value: Fraction | int) -> str:
    """``value`` for JSON output: a decimal string rounded half to even to `PLACES` places,
    without trailing zeros. ``Fraction(500, 7)`` is ``"71.428571"``, ``Fraction(4, 5)``
    ``"0.8"``, ``40`` ``"40"``. Exact for any size (no float, no Decimal context)."""
    from fractions import Fraction

    scaled = round(Fraction(value) * 10**PLACES)  # round() of a Fraction: half to even
    digits = str(abs(scaled)).rjust(PLACES + 1, "0")
    whole, fraction = digits[:-PLACES], digits[-PLACES:].rstrip("0")
    sign = "-" if scaled < 0 else ""
    return f"{sign}{whole}.{fraction}" if fraction else f"{sign}{whole}"
