"""Workloads under two price tables: `recost` says what a price-table update does to spend.

A saved workload is the call list the estimator reads (`imagine_billing.estimator.load_calls`).
`recost` prices it under the old and the new table, style by style, so a reviewer sees the
effect of an update on a real job before it is merged.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import attrs

from imagine_billing.errors import UnknownStyleError, UnpricedError

if TYPE_CHECKING:
    from fractions import Fraction

    from imagine_billing.estimator import Call
    from imagine_billing.pricing.model import PriceTable

__all__ = ["StyleImpact", "WorkloadImpact", "recost"]


@attrs.frozen
class StyleImpact:
    """The calls of a workload that resolve to one style, priced under both tables.

    ``StyleImpact("text-to-image", "flux-dev", "flux-dev", 4, 60, 40)``: four flux-dev calls
    cost 60 tokens before and 40 after, a difference of -20 and a ratio of 2/3.
    """

    operation: str
    """The operation of the calls."""
    old_style: str | None
    """The style the calls resolve to under the old table: the one they name, else the
    operation's default; ``None`` for an operation billed at its flat cost."""
    new_style: str | None
    """The same under the new table (it differs when the default style changed)."""
    calls: int
    """How many calls (the sum of their counts)."""
    old: int | None
    """Tokens under the old table; ``None`` when it cannot price them (see ``old_problem``)."""
    new: int | None
    """Tokens under the new table; ``None`` when it cannot price them (see ``new_problem``)."""
    old_problem: str | None = None
    """Why the old table cannot price the calls (an unknown or unpriced style), if so."""
    new_problem: str | None = None
    """Why the new table cannot price the calls (an unknown or unpriced style), if so."""

    @property
    def label(self) -> str:
        """The style for people: ``"flux-dev"``, ``"imagine-turbo -> anime"`` when the
        default changed, ``"(text-to-png flat cost)"`` for an operation priced without one."""
        def name(style: str | None) -> str:
            return f"({self.operation} flat cost)" if style is None else style

        if self.old_style == self.new_style:
            return name(self.old_style)
        return f"{name(self.old_style)} -> {name(self.new_style)}"

    @property
    def comparable(self) -> bool:
        """Both tables price these calls."""
        return self.old is not None and self.new is not None

    @property
    def difference(self) -> int | None:
        """``new - old`` in tokens; ``None`` when not comparable."""
        if self.old is None or self.new is None:
            return None
        return self.new - self.old

    @property
    def ratio(self) -> Fraction | None:
        """``new / old`` exactly; ``None`` when not comparable or ``old`` is 0."""
        return _ratio(self.old, self.new)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; ``ratio`` is exact text such as ``"2/3"``."""
        ratio = self.ratio
        return {
            "operation": self.operation,
            "style": self.label,
            "old_style": self.old_style,
            "new_style": self.new_style,
            "calls": self.calls,
            "old": self.old,
            "new": self.new,
            "difference": self.difference,
            "ratio": None if ratio is None else str(ratio),
            "comparable": self.comparable,
            "old_problem": self.old_problem,
            "new_problem": self.new_problem,
        }


@attrs.frozen
class WorkloadImpact:
    """A workload priced under an old and a new table; build it with `recost`.

    Totals cover the comparable styles only (priced by both tables); ``complete`` says
    whether that is every call.
    """

    old_version: str
    """The version of the old table."""
    new_version: str
    """The version of the new table."""
    styles: tuple[StyleImpact, ...]
    """One entry per (operation, resolved style), in the order the workload first names it."""

    @property
    def old_total(self) -> int:
        """Tokens under the old table, over the comparable styles."""
        return sum(s.old for s in self.styles if s.old is not None and s.new is not None)

    @property
    def new_total(self) -> int:
        """Tokens under the new table, over the comparable styles."""
        return sum(s.new for s in self.styles if s.old is not None and s.new is not None)

    @property
    def difference(self) -> int:
        """``new_total - old_total``: 60 -> 40 tokens is -20."""
        return self.new_total - self.old_total

    @property
    def ratio(self) -> Fraction | None:
        """``new_total / old_total`` exactly; ``None`` when ``old_total`` is 0."""
        return _ratio(self.old_total, self.new_total)

    @property
    def complete(self) -> bool:
        """Every call was priced by both tables, so the totals cover the whole workload."""
        return all(s.comparable for s in self.styles)

    @property
    def not_comparable(self) -> tuple[StyleImpact, ...]:
        """The styles one of the tables cannot price (left out of the totals)."""
        return tuple(s for s in self.styles if not s.comparable)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the totals and every style."""
        ratio = self.ratio
        return {
            "old_version": self.old_version,
            "new_version": self.new_version,
            "old_total": self.old_total,
            "new_total": self.new_total,
            "difference": self.difference,
            "ratio": None if ratio is None else str(ratio),
            "complete": self.complete,
            "styles": [s.to_dict() for s in self.styles],
        }


def recost(calls: Iterable[Call], old: PriceTable, new: PriceTable) -> WorkloadImpact:
    """Price a workload under two tables, style by style.

    ``recost([Call("flux-dev", 4)], published, cheaper)`` where the cheaper table prices
    flux-dev at 10 gives totals 60 and 40, a difference of -20 and a ratio of 2/3.

    Calls are grouped by operation and resolved style (the style they name, else the
    operation's default in each table). A style that one table lacks or leaves unpriced does
    not raise: its group is marked not comparable, with the reason, and left out of the
    totals.

    Args:
        calls: The workload (`Call` objects; `imagine_billing.estimator.load_calls` reads
            them from a file).
        old: The table in force before.
        new: The proposed table.

    Returns:
        The `WorkloadImpact`.
    """
    from imagine_billing.estimator import unit_cost

    groups: dict[tuple[str, str | None, str | None], list[Call]] = {}
    for call in calls:
        key = (call.operation, _resolve(old, call), _resolve(new, call))
        groups.setdefault(key, []).append(call)

    def price(table: PriceTable, members: list[Call]) -> tuple[int | None, str | None]:
        total = 0
        for call in members:
            try:
                total += unit_cost(table, call.style, call.operation) * call.count
            except (UnknownStyleError, UnpricedError) as error:
                return None, " ".join(str(error).split())
        return total, None

    styles = []
    for (operation, old_style, new_style), members in groups.items():
        old_tokens, old_problem = price(old, members)
        new_tokens, new_problem = price(new, members)
        styles.append(StyleImpact(
            operation=operation,
            old_style=old_style,
            new_style=new_style,
            calls=sum(c.count for c in members),
            old=old_tokens,
            new=new_tokens,
            old_problem=old_problem,
            new_problem=new_problem,
        ))
    return WorkloadImpact(old_version=old.version, new_version=new.version, styles=tuple(styles))


def _resolve(table: PriceTable, call: Call) -> str | None:
    if call.style is not None:
        return call.style
    operation = table.operations.get(call.operation)
    return None if operation is None else operation.default_style


def _ratio(old: int | None, new: int | None) -> Fraction | None:
    if old is None or new is None or old == 0:
        return None
    from fractions import Fraction

    return Fraction(new, old)
