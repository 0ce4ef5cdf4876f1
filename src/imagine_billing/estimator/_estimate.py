"""Pricing calls: `Call`, `Line`, `Estimate`, `estimate`, `preflight` and `unit_cost`."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import attrs

from imagine_billing._checks import MAX_TOKENS, format_timestamp, positive_int
from imagine_billing.errors import (
    NoPriceTableError,
    UnknownStyleError,
    UnpricedError,
)
from imagine_billing.estimator._money import TokenRate
from imagine_billing.pricing._document import DEFAULT_OPERATION
from imagine_billing.pricing.book import PriceBook, require_aware
from imagine_billing.pricing.loading import load_price_table
from imagine_billing.pricing.model import PriceTable

if TYPE_CHECKING:
    from decimal import Decimal


def _check_call(style: object, count: object, operation: object) -> None:
    if style is not None and style.__class__ is not str:
        raise TypeError(
            f"style must be a str or None (got {style!r} of type {type(style).__name__})"
        )
    if operation.__class__ is not str:
        raise TypeError(
            f"operation must be a str (got {operation!r} of type {type(operation).__name__})"
        )
    positive_int(count, "count")


@attrs.frozen(init=False)
class Call:
    """Calls to make: ``count`` calls of one operation in one style.

    ``Call("flux-dev", 4)`` is four text-to-image calls in Flux Dev (60 tokens published).

    Raises:
        TypeError, ValueError: ``count`` is not an int from 1 to 2**53-1 (``True``, ``1.0``,
            ``0`` and negatives are refused), ``style`` not a str or None, ``operation`` not
            a str.
    """

    style: str | None = None
    """The style id; ``None`` uses the operation's default style (``imagine-turbo`` for
    text-to-image), or its flat cost when it has no default style."""
    count: int = 1
    """How many calls: an int from 1 to 2**53-1 (``True``, ``1.0``, ``0`` and negatives are
    refused)."""
    operation: str = DEFAULT_OPERATION
    """The operation id, ``"text-to-image"`` unless told."""

    def __init__(
        self, style: str | None = None, count: int = 1, operation: str = DEFAULT_OPERATION
    ) -> None:
        # Written by hand rather than generated with validators: calls are built in hot
        # loops, and one cheap test of the usual case is a third faster.
        if (
            count.__class__ is not int
            or count < 1
            or count > MAX_TOKENS
            or operation.__class__ is not str
            or (style is not None and style.__class__ is not str)
        ):
            _check_call(style, count, operation)
        _set_style(self, style)
        _set_count(self, count)
        _set_operation(self, operation)

    def to_dict(self) -> dict[str, Any]:
        """The call as a workload-file object: ``{"style", "count", "operation"}``."""
        return {"style": self.style, "count": self.count, "operation": self.operation}


@attrs.frozen
class Line:
    """One call of an estimate, priced: ``Line(Call("flux-dev", 4), 15, 60)``."""

    call: Call
    """The call priced."""
    unit_cost: int
    """Tokens for one call."""
    subtotal: int
    """Tokens for all ``call.count`` calls: ``unit_cost * call.count``."""
    style: str | None = attrs.field(
        default=attrs.Factory(lambda self: self.call.style, takes_self=True)
    )
    """The style that priced the call: ``call.style``, or the operation's default style when
    the call names none (``Call()`` is priced as ``"imagine-turbo"``); ``None`` for an
    operation billed flat. A ledger records spend by this style."""

    def to_dict(self) -> dict[str, Any]:
        """The line as JSON: the call's fields, ``priced_style`` (`style`), ``unit_cost``
        and ``subtotal``."""
        return {**self.call.to_dict(), "priced_style": self.style, "unit_cost": self.unit_cost,
                "subtotal": self.subtotal}


class _Priced:
    """The base of `Estimate`: a slot for what `estimate` priced, ``(calls, table)``, from
    which an estimate it built makes its lines when they are first read."""

    __slots__ = ("_priced",)


@attrs.frozen
class Estimate(_Priced):
    """What a list of calls costs, and which prices said so.

    An estimate from `estimate` keeps the calls and the table it priced, and builds its
    `lines` (and reads the table's version and digest) when they are first read: most
    callers read only the total. It is the same value, equal, hashed, shown and pickled
    alike, as one built by this constructor.
    """

    total: int
    """Tokens for every call: the sum of the lines' subtotals. Counts and costs are at most
    2**53-1 each, the total is not bounded: it is an exact int, and a ledger refuses to hold
    or debit more than 2**53-1 tokens at once."""
    lines: tuple[Line, ...]
    """One line per call, in the order given."""
    table_version: str
    """The version of the price table that priced the calls."""
    table_digest: str
    """The digest (``"sha256:..."``) of that table: the exact prices behind the figure."""

    def to_dict(self) -> dict[str, Any]:
        """The estimate as JSON (the ``estimate --json`` document)."""
        return {
            "total": self.total,
            "unit": "token",
            "lines": [line.to_dict() for line in self.lines],
            "table_version": self.table_version,
            "table_digest": self.table_digest,
        }

    def in_money(self, rate: TokenRate) -> Decimal:
        """The total in money at ``rate``, rounded as `TokenRate.price_of` says."""
        return rate.price_of(self.total)

    if not TYPE_CHECKING:  # to type checkers, an estimate has its fields and nothing else

        def __getattr__(self, name: str) -> Any:
            # Python calls this only for an attribute it did not find: here, the lines and
            # table of an estimate from `estimate`, not yet read.
            if name in ("lines", "table_version", "table_digest"):
                try:
                    calls, table = _get_priced(self)
                except AttributeError:
                    pass
                else:
                    if name == "lines":
                        lines = _lines(calls, table)
                        _set_lines(self, lines)
                        return lines
                    _set_table_version(self, table.version)
                    _set_table_digest(self, table.digest)
                    return table.version if name == "table_version" else table.digest
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


@attrs.frozen
class Verdict:
    """Whether calls fit the tokens available: ``ok`` iff ``total <= available``."""

    ok: bool
    """``True`` when the calls fit: ``total <= available``."""
    total: int
    """Tokens the calls need."""
    available: int
    """Tokens available."""
    shortfall: int
    """Tokens missing: ``total - available`` when that is positive, else 0 (65 needed with
    50 available is a shortfall of 15)."""
    estimate: Estimate
    """The estimate behind the verdict."""

    def to_dict(self) -> dict[str, Any]:
        """The verdict as JSON (without the estimate's lines)."""
        return {
            "ok": self.ok,
            "total": self.total,
            "available": self.available,
            "shortfall": self.shortfall,
        }


# ISO 4217 currencies whose minor unit is not 2 digits; every other currency has 2.
Table = PriceTable | PriceBook


def resolve_table(table: Table | None = None, at: datetime | None = None) -> PriceTable:
    """The one table that prices calls made at ``at``.

    Args:
        table: a `PriceTable`, a `PriceBook`, or ``None`` for the bundled default table.
        at: a timezone-aware moment. With a book, the table in force then (``None``: now).
            With a table, it must be at or after the table's ``effective_from``.

    Raises:
        NoPriceTableError: no table is in force at ``at``.
        TypeError, ValueError: ``at`` is not a timezone-aware datetime.
    """
    if table is None:
        table = load_price_table()
    if isinstance(table, PriceBook):
        if at is None:
            from datetime import UTC

            at = datetime.now(UTC)
        return table.at(require_aware(at, "at"))
    if not isinstance(table, PriceTable):
        raise TypeError(
            f"table must be a PriceTable, a PriceBook or None (got {type(table).__name__})"
        )
    if at is not None and require_aware(at, "at") < table.effective_from:
        raise NoPriceTableError(at.isoformat(), format_timestamp(table.effective_from))
    return table


def unit_cost(table: PriceTable, style: str | None, operation: str = DEFAULT_OPERATION) -> int:
    """Tokens for one call of ``operation`` in ``style`` (``None``: its default style).

    Raises:
        UnknownStyleError: the operation or the style does not exist (with close matches),
            or the style belongs to another operation.
        UnpricedError: the style (or, without a style, the operation) has no published
            price; or the operation has styles but no default and the call named none.
    """
    op = table.operation(operation)
    if style is None:
        style = op.default_style
        if style is None:
            if op.cost is not None:
                return op.cost
            own = sorted(s.id for s in table.styles.values() if s.operation == op.id)
            error = UnpricedError(op.id, kind="operation", version=table.version)
            if own:
                error.args = (
                    f"operation {op.id!r} needs a style: it has no flat price and no default "
                    f"style; name one of {', '.join(own)}",
                )
            raise error
    found = table.styles.get(style) if style.__class__ is str else None
    if found is None:
        raise UnknownStyleError(style, table.styles, version=table.version)
    if found.operation != op.id:
        own = [s.id for s in table.styles.values() if s.operation == op.id]
        error_ = UnknownStyleError(style, own, kind=f"{op.id} style", version=table.version)
        error_.args = (
            f"style {style!r} belongs to operation {found.operation!r}, not {op.id!r}"
            + (f"; {op.id} styles: {', '.join(sorted(own))}" if own else ""),
        )
        raise error_
    if found.cost is None:
        raise UnpricedError(style, version=table.version)
    return found.cost


def estimate(
    calls: Iterable[Call], table: Table | None = None, *, at: datetime | None = None
) -> Estimate:
    """What ``calls`` cost, line by line.

    ``estimate([Call("flux-dev", 4), Call("anime")])`` is 65 tokens on the published table.

    Args:
        calls: the calls (any iterable of `Call`).
        table: a `PriceTable`, a `PriceBook` (``at`` picks the version), or ``None`` for the
            bundled default table.
        at: when the calls are made (timezone-aware); with a book, ``None`` is now.

    Returns:
        The `Estimate`, carrying the pricing table's version and digest.

    Raises:
        UnknownStyleError, UnpricedError: a call cannot be priced (see `unit_cost`).
        NoPriceTableError: no table is in force at ``at``.
        TypeError: an item of ``calls`` is not a `Call`.
    """
    if table.__class__ is not PriceTable or at is not None:
        table = resolve_table(table, at)
    calls = tuple(calls)
    styles = table.styles
    total = 0
    for call in calls:
        if call.__class__ is not Call:
            raise TypeError(f"calls must be Call objects (got {call!r})")
        # The common case inline: a priced style of the call's operation (the table's
        # invariants make that operation exist). Everything else, errors included, is
        # `unit_cost`'s.
        style = styles.get(call.style)  # type: ignore[arg-type]  # None is never a style id
        if style is None or style.operation != call.operation or style.cost is None:
            total += unit_cost(table, call.style, call.operation) * call.count
        else:
            total += style.cost * call.count
    result = _new(Estimate)
    _set_total(result, total)
    _set_priced(result, (calls, table))
    return result


def _lines(calls: tuple[Call, ...], table: PriceTable) -> tuple[Line, ...]:
    """The lines of calls that `estimate` priced (so each is priced without error)."""
    styles = table.styles
    lines = []
    for call in calls:
        name = call.style
        style = styles.get(name)  # type: ignore[arg-type]  # None is never a style id
        if style is None or style.operation != call.operation or style.cost is None:
            unit = unit_cost(table, name, call.operation)
            if name is None:
                name = table.operations[call.operation].default_style
        else:
            unit = style.cost
        line = _new(Line)
        _set_call(line, call)
        _set_unit_cost(line, unit)
        _set_subtotal(line, unit * call.count)
        _set_line_style(line, name)
        lines.append(line)
    return tuple(lines)


# `estimate` builds its `Line`s and `Estimate` by setting their slots directly: attrs'
# generated ``__init__`` would double the cost of a one-call estimate. Neither class has a
# validator or converter, and every field is set (``Line.style``'s default included; an
# estimate's lines, version and digest when first read), so the objects are the same.
_new = object.__new__
_set_style = Call.__dict__["style"].__set__
_set_count = Call.__dict__["count"].__set__
_set_operation = Call.__dict__["operation"].__set__
_set_call = Line.__dict__["call"].__set__
_set_unit_cost = Line.__dict__["unit_cost"].__set__
_set_subtotal = Line.__dict__["subtotal"].__set__
_set_line_style = Line.__dict__["style"].__set__
_set_total = Estimate.__dict__["total"].__set__
_set_lines = Estimate.__dict__["lines"].__set__
_set_table_version = Estimate.__dict__["table_version"].__set__
_set_table_digest = Estimate.__dict__["table_digest"].__set__
_set_priced = _Priced.__dict__["_priced"].__set__
_get_priced = _Priced.__dict__["_priced"].__get__


def preflight(
    calls: Iterable[Call],
    available: int,
    table: Table | None = None,
    *,
    at: datetime | None = None,
) -> Verdict:
    """Whether ``calls`` fit in ``available`` tokens: ``ok`` iff the total <= available.

    ``preflight([Call("flux-dev", 4), Call("anime")], 50)`` is not ok, short by 15.

    Args:
        calls: the calls to make.
        available: the tokens available: an int >= 0.
        table: as for `estimate`.
        at: as for `estimate`.

    Raises:
        TypeError, ValueError: ``available`` is not an int >= 0.
        UnknownStyleError, UnpricedError, NoPriceTableError: as `estimate` raises them.
    """
    if available.__class__ is not int:
        raise TypeError(
            f"available must be an int >= 0 (got {available!r} of type {type(available).__name__})"
        )
    if available < 0:
        raise ValueError(f"available must be an int >= 0 (got {available})")
    result = estimate(calls, table, at=at)
    shortfall = max(0, result.total - available)
    return Verdict(shortfall == 0, result.total, available, shortfall, result)


