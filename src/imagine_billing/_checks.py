"""Argument checks shared by every layer: one wording for one rule."""

from __future__ import annotations

__all__ = ["MAX_TOKENS", "positive_int"]

MAX_TOKENS = 2**53 - 1
"""The largest count or token amount: the largest cost a price table may hold (2**53-1),
far beyond any real balance, and well inside SQLite's 64-bit integers."""


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
        raise ValueError(f"{name} must be an int >= 1 (got {value})")
    if value > MAX_TOKENS:
        raise ValueError(f"{name} must be at most 2**53-1 = {MAX_TOKENS} (got {value})")
    return value
