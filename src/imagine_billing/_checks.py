"""Argument checks shared by every layer: one wording for one rule."""

from __future__ import annotations

__all__ = ["positive_int"]


def positive_int(value: object, name: str) -> int:
    """``value`` if it is an int >= 1, else an error naming it and what was expected.

    Booleans, floats (even ``1.0``), strings and int subclasses are refused: token amounts
    and counts are plain integers.

    Raises:
        TypeError: ``value`` is not an int.
        ValueError: ``value`` is 0 or negative.
    """
    if value.__class__ is not int:
        raise TypeError(
            f"{name} must be an int >= 1 (got {value!r} of type {type(value).__name__})"
        )
    assert isinstance(value, int)
    if value < 1:
        raise ValueError(f"{name} must be an int >= 1 (got {value})")
    return value
