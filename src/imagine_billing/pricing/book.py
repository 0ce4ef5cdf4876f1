"""`PriceBook`: the versions of one API's price table, in force one after another."""

from __future__ import annotations

import bisect
import os
from collections.abc import Iterable
from datetime import datetime

import attrs

from imagine_billing._checks import format_timestamp
from imagine_billing.errors import NoPriceTableError, PriceSchemaError, PriceSourceError, Problem
from imagine_billing.pricing.model import PriceTable, require_aware

__all__ = ["PriceBook", "load_price_book", "require_aware"]


def _sorted_tables(tables: Iterable[PriceTable]) -> tuple[PriceTable, ...]:
    given = tuple(tables)
    for table in given:
        if not isinstance(table, PriceTable):
            raise TypeError(f"a price book holds PriceTable objects (got {type(table).__name__})")
    ordered = tuple(sorted(given, key=lambda t: t.effective_from))
    problems: list[Problem] = []
    if not ordered:
        problems.append(Problem("", "a price book needs at least one table"))
    for index, table in enumerate(ordered):
        first = ordered[0]
        if table.api != first.api:
            # Once per table that differs from the oldest, not once per pair.
            problems.append(
                Problem(
                    "/api",
                    f"table {table.version} is for {table.api!r}, table {first.version} "
                    f"for {first.api!r}: a book holds the versions of one API",
                )
            )
        for other in ordered[:index]:
            if other.version == table.version:
                problems.append(
                    Problem(
                        "/version",
                        f"version {table.version} appears twice (once with "
                        f"effective_from {format_timestamp(other.effective_from)}, once with "
                        f"{format_timestamp(table.effective_from)})",
                    )
                )
            if other.effective_from == table.effective_from:
                problems.append(
                    Problem(
                        "/effective_from",
                        f"versions {other.version} and {table.version} both take "
                        f"effect at {format_timestamp(table.effective_from)}",
                    )
                )
    if problems:
        raise PriceSchemaError(problems)
    return ordered


@attrs.frozen
class PriceBook:
    """Several versions of one API's table, sorted by ``effective_from``.

    ``book.at(when)`` is the table in force at ``when``: the last whose ``effective_from`` is
    at or before it. Scheduled versions (dated in the future) are allowed; they come into
    force when their date arrives.
    """

    tables: tuple[PriceTable, ...] = attrs.field(converter=_sorted_tables)
    """The versions, oldest first."""
    _starts: tuple[datetime, ...] = attrs.field(init=False, eq=False, hash=False, repr=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_starts", tuple(t.effective_from for t in self.tables))

    @property
    def api(self) -> str:
        """The API of every table in the book."""
        return self.tables[0].api

    @property
    def latest(self) -> PriceTable:
        """The table with the latest ``effective_from`` (it may be scheduled, not yet in force)."""
        return self.tables[-1]

    def at(self, when: datetime) -> PriceTable:
        """The table in force at ``when`` (a timezone-aware datetime).

        Raises:
            NoPriceTableError: ``when`` is before the first table takes effect.
        """
        index = bisect.bisect_right(self._starts, require_aware(when)) - 1
        if index < 0:
            raise NoPriceTableError(when.isoformat(), format_timestamp(self._starts[0]))
        return self.tables[index]


def load_price_book(*paths: str | os.PathLike[str]) -> PriceBook:
    """A `PriceBook` of the price documents at ``paths`` (in any order).

    Raises:
        PriceSchemaError: a document is invalid (every problem of every file), or the
            versions do not make one book (two with the same ``version`` or
            ``effective_from``, or different ``api``).
    """
    from imagine_billing.pricing.loading import load_price_table

    tables: list[PriceTable] = []
    problems: list[Problem] = []
    unreadable = False
    for path in paths:
        try:
            tables.append(load_price_table(path))
        except PriceSchemaError as error:
            problems.extend(error.problems)
            unreadable = unreadable or isinstance(error, PriceSourceError)
    if problems:
        raise (PriceSourceError if unreadable else PriceSchemaError)(problems)
    return PriceBook(tables)
