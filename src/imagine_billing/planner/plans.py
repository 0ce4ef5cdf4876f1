"""What a budget buys: `max_calls` for one style, `plan` for a weighted mix of styles.

``plan(1000, {"flux-dev": 1, "imagine-turbo": 4})`` on the published table: one batch (one
flux-dev call and four imagine-turbo calls) costs 15 + 4 = 19 tokens, so 52 whole batches fit
(988 tokens, 52 flux-dev and 208 imagine-turbo calls) and 12 tokens are left. The leftover is
then filled one call at a time, always with the style that is furthest behind its share of
the mix (the smallest ``count / weight``, ties to the style named first) among those that
still fit: flux-dev (15) does not fit in 12, so twelve more imagine-turbo calls go in. The
plan is 52 flux-dev and 220 imagine-turbo calls, 1000 tokens, nothing left. After the fill,
what is left is smaller than the cheapest style of the mix, and the plan never costs more
than the budget.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from fractions import Fraction
from types import MappingProxyType
from typing import Any

import attrs

from imagine_billing._checks import MAX_TOKENS
from imagine_billing.pricing.model import PriceTable

__all__ = ["Plan", "max_calls", "plan"]


def _frozen_counts(counts: Mapping[str, int]) -> Mapping[str, int]:
    return MappingProxyType(dict(counts))


@attrs.frozen
class Plan:
    """How many calls of each style a budget buys for a mix; build it with `plan`.

    ``plan(1000, {"flux-dev": 1, "imagine-turbo": 4})``: counts ``{"flux-dev": 52,
    "imagine-turbo": 220}``, total 1000, leftover 0, 52 whole batches.
    """

    counts: Mapping[str, int] = attrs.field(converter=_frozen_counts, hash=False)
    """Calls by style, in the order of the mix (a read-only mapping)."""
    total: int
    """Tokens the calls cost: at most the budget."""
    leftover: int
    """Budget tokens not spent: ``tokens - total``, less than the cheapest style's cost."""
    batches: int = 0
    """Whole batches of the mix that fit (one batch is ``weight`` calls of every style)."""
    table_version: str = ""
    """The version of the price table that priced the plan."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: counts, total, leftover, batches and the table version."""
        return {
            "counts": dict(self.counts),
            "total": self.total,
            "leftover": self.leftover,
            "batches": self.batches,
            "table_version": self.table_version,
        }


def _budget(tokens: object) -> int:
    if isinstance(tokens, bool) or not isinstance(tokens, int):
        raise TypeError(f"tokens must be an int >= 0 (got {tokens!r})")
    if tokens < 0:
        raise ValueError(f"tokens must be an int >= 0 (got {tokens!r})")
    return tokens


def _table(table: object) -> PriceTable:
    if table is None:
        from imagine_billing.pricing.loading import load_price_table

        return load_price_table()
    if not isinstance(table, PriceTable):
        raise TypeError(
            f"table must be a PriceTable or None (got {type(table).__name__}); for a "
            "PriceBook pass book.at(when)"
        )
    return table


def _unit(table: PriceTable, style: str) -> int:
    cost = table.cost(style)  # UnknownStyleError (with suggestions), UnpricedError
    if cost == 0:
        raise ValueError(
            f"style {style!r} costs 0 tokens in price table {table.version}: any number of "
            "calls fits, so there is no maximum"
        )
    return cost


def max_calls(tokens: int, style: str, table: PriceTable | None = None) -> int:
    """How many calls in ``style`` fit in ``tokens``.

    ``max_calls(100, "flux-dev")`` is 6 (6 x 15 = 90; a 7th would need 105). Always
    ``max_calls(t, s) * cost(s) <= t < (max_calls(t, s) + 1) * cost(s)``.

    Args:
        tokens: The budget, an int >= 0.
        style: A style id of the table.
        table: The price table; ``None`` for the bundled default.

    Returns:
        The number of calls, >= 0.

    Raises:
        TypeError, ValueError: ``tokens`` is not an int >= 0, or the style costs 0 tokens.
        UnknownStyleError: The style is not in the table (with close matches).
        UnpricedError: The style has no published price.
    """
    budget = _budget(tokens)
    price_table = _table(table)
    return budget // _unit(price_table, style)


def _weights(mix: object) -> dict[str, int]:
    if not isinstance(mix, Mapping):
        raise TypeError(f"mix must be a mapping of style ids to int weights (got {mix!r})")
    if not mix:
        raise ValueError("mix must name at least one style (got an empty mix)")
    weights: dict[str, int] = {}
    for style, weight in mix.items():
        if not isinstance(style, str):
            raise TypeError(f"mix: style ids must be strings (got {style!r})")
        if isinstance(weight, bool) or not isinstance(weight, int):
            raise TypeError(f"mix: the weight of {style!r} must be an int >= 1 (got {weight!r})")
        if weight < 1:
            raise ValueError(f"mix: the weight of {style!r} must be an int >= 1 (got {weight!r})")
        if weight > MAX_TOKENS:
            # As every count of the library: a weight past any count is a mistake, and it
            # keeps the fill's arithmetic (lcm of the weights) to a few hundred bits.
            raise ValueError(f"mix: the weight of {style!r} must be at most 2**53-1 = "
                             f"{MAX_TOKENS} (got {weight!r})")
        weights[style] = weight
    return weights


def plan(tokens: int, mix: Mapping[str, int], table: PriceTable | None = None) -> Plan:
    """How many calls of each style fit in ``tokens`` for a mix of weights.

    First whole batches: a batch is ``weight`` calls of every style of the mix, and as many
    batches as fit are taken. Then the leftover is filled one call at a time with the style
    furthest behind its share (the smallest ``count / weight``, ties to the style named
    first in the mix) among those whose cost still fits, until none fits. So the plan never
    costs more than ``tokens``, and what is left is less than the cheapest style's cost.
    The fill is computed in a few arithmetic jumps, not call by call: its time hardly
    grows with the budget or the weights (about a millisecond at most).

    ``plan(1000, {"flux-dev": 1, "imagine-turbo": 4})`` gives 52 flux-dev and 220
    imagine-turbo calls, 1000 tokens (see the module docstring for the arithmetic).

    Args:
        tokens: The budget, an int >= 0.
        mix: Style ids and their weights (ints >= 1), such as ``{"flux-dev": 1,
            "imagine-turbo": 4}``: four imagine-turbo calls for each flux-dev call.
        table: The price table; ``None`` for the bundled default.

    Returns:
        The `Plan`.

    Raises:
        TypeError, ValueError: ``tokens`` is not an int >= 0; the mix is empty or has a
            weight that is not an int from 1 to 2**53-1; a style of the mix costs 0 tokens.
        UnknownStyleError: A style is not in the table (with close matches).
        UnpricedError: A style has no published price.
    """
    budget = _budget(tokens)
    weights = _weights(mix)
    price_table = _table(table)
    units = {style: _unit(price_table, style) for style in weights}
    batch = sum(weights[s] * units[s] for s in weights)
    batches, left = divmod(budget, batch)
    extra, left = _fill(left, weights, units)
    counts = {style: weight * batches + extra[style] for style, weight in weights.items()}
    return Plan(counts=counts, total=budget - left, leftover=left, batches=batches,
                table_version=price_table.version)


def _below(q: int, spacing: Mapping[str, int], extra: Mapping[str, int]) -> dict[str, int]:
    """The calls of each style whose key is below ``q / grid``: ``ceil(q / spacing) - added``
    (none when the style is already past it)."""
    return {s: max(0, -(-q // gap) - extra[s]) for s, gap in spacing.items()}


def _fill(left: int, weights: Mapping[str, int],
          units: Mapping[str, int]) -> tuple[dict[str, int], int]:
    """The leftover fill of `plan`, in a few arithmetic jumps: ``(calls added, tokens left)``.

    One call at a time, the fill takes the style with the smallest ``(added / weight, mix
    order)`` among those that still fit. While every style of a set ``fitting`` fits, that
    is a merge of the sorted keys ``k / weight`` (k = added, added + 1, ...) of each style, so
    the calls taken up to a key value ``v`` are ``ceil(v x weight) - added`` per style. The
    fill searches (by bisection, on the grid of ``1 / lcm(weights)`` where every key lies)
    the largest ``v`` whose calls still leave room for the dearest style of ``fitting``,
    takes them at once, then single steps (a few: the calls tied at ``v``) until the dearest
    style no longer fits; then again with the styles that still fit. A style that no longer fits
    never fits again (the leftover only shrinks), so there are at most as many rounds as
    styles, each a bisection of a few hundred steps at most, whatever the budget or weights.
    """
    extra = dict.fromkeys(weights, 0)
    order = {style: index for index, style in enumerate(weights)}
    while True:
        fitting = [s for s in weights if units[s] <= left]
        if not fitting:
            return extra, left
        dearest = max(units[s] for s in fitting)
        room = left - dearest  # the jump must leave the dearest style room to fit
        grid = math.lcm(*(weights[s] for s in fitting))
        # Style s's key k / weight is k x spacing[s] / grid.
        spacing = {s: grid // weights[s] for s in fitting}
        # cost(low) <= room < cost(high): past the furthest ahead style by `rounds` whole
        # rounds, every style has `rounds x weight` calls more, costing more than `room`.
        rounds = room // sum(units[s] * weights[s] for s in fitting) + 1
        low, high = 0, max(extra[s] * spacing[s] for s in fitting) + rounds * grid
        while high - low > 1:
            middle = (low + high) // 2
            if sum(units[s] * n for s, n in _below(middle, spacing, extra).items()) <= room:
                low = middle
            else:
                high = middle
        for s, taken in _below(low, spacing, extra).items():
            extra[s] += taken
            left -= units[s] * taken
        while left >= dearest:  # every style of `fitting` fits: one call at a time
            style = min(fitting, key=lambda s: (Fraction(extra[s], weights[s]), order[s]))
            extra[style] += 1
            left -= units[style]
