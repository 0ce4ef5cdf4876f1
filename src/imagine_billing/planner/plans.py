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

import heapq
from collections.abc import Mapping
from fractions import Fraction
from types import MappingProxyType
from typing import Any

import attrs

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
        weights[style] = weight
    return weights


def plan(tokens: int, mix: Mapping[str, int], table: PriceTable | None = None) -> Plan:
    """How many calls of each style fit in ``tokens`` for a mix of weights.

    First whole batches: a batch is ``weight`` calls of every style of the mix, and as many
    batches as fit are taken. Then the leftover is filled one call at a time with the style
    furthest behind its share (the smallest ``count / weight``, ties to the style named
    first in the mix) among those whose cost still fits, until none fits. So the plan never
    costs more than ``tokens``, and what is left is less than the cheapest style's cost.

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
            weight that is not an int >= 1; a style of the mix costs 0 tokens.
        UnknownStyleError: A style is not in the table (with close matches).
        UnpricedError: A style has no published price.
    """
    budget = _budget(tokens)
    weights = _weights(mix)
    price_table = _table(table)
    units = {style: _unit(price_table, style) for style in weights}
    batch = sum(weights[s] * units[s] for s in weights)
    batches, left = divmod(budget, batch)
    counts = {style: weight * batches for style, weight in weights.items()}
    extra = dict.fromkeys(weights, 0)
    cheapest = min(units.values())
    # The fill: a heap of (calls added / weight, mix order, style); the whole batches add the
    # same share to every style, so they do not change the order. A style that no longer
    # fits never fits again (the leftover only shrinks), so it is dropped for good.
    heap = [(Fraction(0), i, s) for i, s in enumerate(weights)]
    heapq.heapify(heap)
    while heap and left >= cheapest:
        _, order, style = heapq.heappop(heap)
        unit = units[style]
        if unit > left:
            continue
        left -= unit
        extra[style] += 1
        heapq.heappush(heap, (Fraction(extra[style], weights[style]), order, style))
    counts = {style: counts[style] + extra[style] for style in weights}
    return Plan(counts=counts, total=budget - left, leftover=left, batches=batches,
                table_version=price_table.version)
