"""Argument checks shared by every layer: one wording for one rule."""

from __future__ import annotations

from datetime import datetime

__all__ = ["MAX_DIGITS", "MAX_TOKENS", "positive_int", "rfc3339", "shown_int", "too_large"]

MAX_TOKENS = 2**53 - 1
"""The largest count or token amount: the largest cost a price table may hold (2**53-1),
far beyond any real balance, and well inside SQLite's 64-bit integers."""

MAX_DIGITS = len(str(MAX_TOKENS))
"""Digits of `MAX_TOKENS` (16): a number written with more is too large, whatever it is."""


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


def rfc3339(text: str) -> datetime | None:
    """The datetime that RFC 3339 text names, with its offset; else ``None``.

    RFC 3339 is ``YYYY-MM-DDTHH:MM:SS``, an optional fraction, then ``Z`` or ``+hh:mm`` /
    ``-hh:mm`` (``t`` and ``z`` may be lower case). The other forms of ISO 8601 that
    `datetime.fromisoformat` takes (``20250702T000000Z``, ``2025-W27-3``, a space for the
    ``T``, ``+0100``, no seconds) give ``None``. Text that is RFC 3339 but for a missing zone
    gives a naive datetime, so callers can say "no time zone".
    """
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        upper = text.upper()
        if upper == text:
            return None
        try:
            when = datetime.fromisoformat(upper)
        except ValueError:
            return None
        text = upper
    # fromisoformat checks the digits; the separators say which form of ISO 8601 it read.
    if text[4:17:3] not in ("--T::", "--t::"):
        return None
    if text[19:20] == "." and not text[20:21].isdigit():
        return None  # a point with no digits after it
    if when.tzinfo is None:
        return when if len(text) == 19 or text[19] == "." else None
    if text[19] not in ".Z+-":
        return None  # a comma before the fraction
    if text[-1] == "Z" or (text[-6] in "+-" and text[-3] == ":"):
        return when
    return None  # an offset of +hhmm, +hh or +hh:mm:ss
