"""Recording past spend: a usage log imported into a ledger as debits at their own times.

`import_usage` writes one back-dated debit (`Ledger.debit` with ``at=``) per record of a
usage log (the ``(style, count, timestamp)`` records `imagine_billing.read_usage` reads),
each priced by the version of the price book in force at its time, so that forecasts and
budgets start from real history.

The rules, and why:

- **Idempotent.** A record's key is made from what it says, ``PREFIX:TIME:STYLE:COUNT:N``
  (``usage:2026-11-03T10:00:00Z:flux-dev:4:1``): its time in UTC, its style (or
  ``OPERATION/STYLE`` when the log names the operation), its count, and N, its place among
  the records of the log that say the same at the same time (1 for the first). Importing a
  log again writes nothing; importing a log that has grown writes only its new records;
  the same records in another file or format (CSV or JSON lines) have the same keys. The
  same key priced otherwise (another book, other tags) is an `IdempotencyConflict`: the
  ledger keeps what it recorded. Logs of several sources whose records interleave in time
  are merged into one log first (identical records then get places 1, 2...).
- **In time order.** Records must come in time order (a record earlier than the one before
  is a `BadRecordError` of reason ``"out-of-order"``: sort the log first), and no record may
  be earlier than an entry of the ledger that moves tokens (`OutOfOrder`, see
  `Ledger.debit`): the ledger's history stays in time order, so its balance at any past
  moment, forecasts and budget periods are right. Entries that move no tokens (budgets,
  notes, observations) may be later. A record already imported is a replay whatever its
  time. To import history into a ledger that has newer entries, import it into a new
  ledger first: credit its opening balance back-dated (`Ledger.credit` with ``at=``), then
  import.
- **All or nothing.** The whole import is one transaction (`Ledger.batch`): a refused record
  (a bad line without ``skip_bad``, not enough tokens, a hard budget passed) writes
  nothing. Other writers of the ledger wait until it ends, so split a very large log in
  parts (by month, say): each part is imported on its own, and a part imported twice
  writes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import attrs

from imagine_billing._checks import format_timestamp, stamp
from imagine_billing.errors import (
    BadRecordError,
    NoPriceTableError,
    UnknownStyleError,
    UnpricedError,
)

if TYPE_CHECKING:
    from imagine_billing.estimator import Estimate
    from imagine_billing.ledger import Ledger
    from imagine_billing.pricing.book import PriceBook
    from imagine_billing.pricing.model import PriceTable

__all__ = ["UsageImport", "import_usage"]

FIRST_LINES = 5
"""How many skipped lines `UsageImport.skipped_lines` keeps by reason."""


def _frozen(items: Mapping[Any, Any]) -> Mapping[Any, Any]:
    return MappingProxyType(dict(items))


@attrs.frozen
class UsageImport:
    """What `import_usage` did: 3 records of 60 tokens imported into a ledger that already
    held the first give ``written == 2``, ``replayed == 1``, ``tokens`` the 2 written."""

    written: int = 0
    """Debits written."""
    replayed: int = 0
    """Records imported before (their key is in the ledger already): nothing written."""
    tokens: int = 0
    """Tokens of the debits written."""
    calls: int = 0
    """Calls of the records written (the sum of their counts)."""
    first: datetime | None = None
    """The time of the first record imported or replayed (``None``: none)."""
    last: datetime | None = None
    """The time of the last one."""
    by_version: Mapping[str, int] = attrs.field(converter=_frozen, factory=dict)
    """Tokens written by the version of the price table that priced them."""
    skipped: Mapping[str, int] = attrs.field(converter=_frozen, factory=dict)
    """Bad records skipped (with ``skip_bad``), by reason such as ``"unpriced"``."""
    skipped_lines: Mapping[str, tuple[int, ...]] = attrs.field(converter=_frozen,
                                                               factory=dict)
    """The first lines (or record numbers) skipped, by reason."""

    def __add__(self, other: UsageImport) -> UsageImport:
        """Both imports (two logs imported one after the other)."""
        if not isinstance(other, UsageImport):
            return NotImplemented
        return UsageImport(
            self.written + other.written, self.replayed + other.replayed,
            self.tokens + other.tokens, self.calls + other.calls,
            self.first or other.first, other.last or self.last,
            _summed(self.by_version, other.by_version), _summed(self.skipped, other.skipped),
            {reason: tuple(sorted({*self.skipped_lines.get(reason, ()),
                                   *other.skipped_lines.get(reason, ())}))[:FIRST_LINES]
             for reason in {*self.skipped_lines, *other.skipped_lines}})

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (times RFC 3339; mappings with sorted keys)."""
        return {
            "written": self.written, "replayed": self.replayed, "tokens": self.tokens,
            "calls": self.calls, "first": stamp(self.first), "last": stamp(self.last),
            "by_version": {v: self.by_version[v] for v in sorted(self.by_version)},
            "skipped": {r: self.skipped[r] for r in sorted(self.skipped)},
            "skipped_lines": {r: list(self.skipped_lines[r]) for r in sorted(self.skipped_lines)},
        }


def _summed(left: Mapping[str, int], right: Mapping[str, int]) -> dict[str, int]:
    merged = dict(left)
    for name, value in right.items():
        merged[name] = merged.get(name, 0) + value
    return merged


def import_usage(ledger: Ledger, records: Iterable[Any],
                 book: PriceTable | PriceBook | None = None, *, key_prefix: str = "usage",
                 tags: Mapping[str, str] | None = None,
                 skip_bad: bool | None = None) -> UsageImport:
    """Debit each record of a usage log at its own time, priced then (see the module).

    Args:
        ledger: The ledger to write to.
        records: ``(style, count, timestamp)`` records in time order: a `UsageLog` (from
            `read_usage`) lets errors name its file and line.
        book: A `PriceBook` (each record priced by the version in force at its time), or one
            `PriceTable` for every record whatever its date; ``None``: the bundled table.
        key_prefix: The first part of every key.
        tags: Tags of every debit (a budget's scope, say).
        skip_bad: Count records that cannot be priced by reason instead of raising;
            ``None`` follows the records' own ``skip_bad`` (a `UsageLog`'s).

    Returns:
        The `UsageImport`. Lines the `UsageLog` itself skipped are in its ``skipped`` too.

    Raises:
        BadRecordError: A bad record (unknown or unpriced style, no table in force, not a
            record), or one earlier than the record before (``"out-of-order"``, never
            skipped); nothing is written.
        OutOfOrder: A record is earlier than an entry of the ledger that moves tokens.
        InsufficientTokens, BudgetExceeded, IdempotencyConflict: As for `Ledger.debit`;
            nothing is written.
    """
    run = _Run(records, book, key_prefix,
               bool(getattr(records, "skip_bad", False)) if skip_bad is None else skip_bad)
    before = ledger.head()[0]
    with ledger.batch():
        for number, record in enumerate(records, 1):
            found = run.priced(number, record)
            if found is None:
                continue
            estimate, at, key = found
            entry = ledger.debit(estimate, key=key, tags=tags, at=at)
            if entry.id > before:
                before = entry.id
                run.wrote(estimate)
            else:
                run.replayed += 1
    return run.result(records)


class _Run:
    """The state of one `import_usage`: the order of the records, their keys, the counts."""

    def __init__(self, records: object, book: PriceTable | PriceBook | None, prefix: str,
                 skip_bad: bool) -> None:
        from imagine_billing.ledger._draft import check_key

        self.records = records
        self.source = getattr(records, "source", None) or "<records>"
        if book is None:
            from imagine_billing.pricing.loading import load_price_table

            book = load_price_table()
        self.book: PriceTable | PriceBook = book
        self.prefix = check_key(prefix)
        self.skip_bad = skip_bad
        self.previous: datetime | None = None  # the time of the record before
        self.first: datetime | None = None  # of the first record imported or replayed
        self.last: datetime | None = None
        self.same: dict[str, int] = {}  # keys of the records at `previous`: how many
        self.written = self.replayed = self.tokens = self.calls = 0
        self.by_version: dict[str, int] = {}
        self.skipped: dict[str, int] = {}
        self.skipped_lines: dict[str, list[int]] = {}

    def line(self, number: int) -> int:
        line = getattr(self.records, "line", None)
        return line if isinstance(line, int) and line else number

    def priced(self, number: int, record: object) -> tuple[Estimate, datetime, str] | None:
        """The estimate, time and key of ``record``; ``None`` when it is skipped."""
        style, operation, count, at = self._parsed(number, record)
        if self.previous is not None and at < self.previous:
            raise BadRecordError(
                self.source, self.line(number), "out-of-order",
                f"timestamp {format_timestamp(at)} is earlier than the record before "
                f"({format_timestamp(self.previous)}): a usage log is imported in time "
                "order (sort it by time first)")
        if at != self.previous:
            self.previous, self.same = at, {}
        try:
            estimate = _estimate(self.book, style, operation, count, at)
        except (UnknownStyleError, UnpricedError, NoPriceTableError) as error:
            reason = ("no-price-table" if isinstance(error, NoPriceTableError)
                      else "unpriced" if isinstance(error, UnpricedError)
                      else "unknown-operation" if error.kind == "operation" else "unknown-style")
            self._reject(number, reason, " ".join(str(error).split()))
            return None
        self.first, self.last = self.first or at, at
        what = style if operation is None else f"{operation}/{style or ''}"
        base = f"{self.prefix}:{format_timestamp(at)}:{what}:{count}"
        self.same[base] = place = self.same.get(base, 0) + 1
        return estimate, at, f"{base}:{place}"

    def _parsed(self, number: int, record: object) -> tuple[str | None, str | None, int,
                                                             datetime]:
        """``(style, operation or None, count, UTC time)`` of a record (`BadRecordError`
        when it is no record: such a line is never skipped here, `UsageLog` skips it)."""
        parts: tuple[Any, ...] = record if isinstance(record, tuple) else ()
        key, count, at = parts if len(parts) == 3 else (None, None, None)
        operation, style = key if isinstance(key, tuple) and len(key) == 2 else (None, key)
        if not (isinstance(at, datetime) and at.utcoffset() is not None
                and count.__class__ is int and count >= 1
                and (style is None or isinstance(style, str))
                and (operation is None or isinstance(operation, str))
                and (operation is not None or style is not None)):
            raise BadRecordError(self.source, self.line(number), "bad-record",
                                 "a record is a (style, count, timestamp) tuple with a count "
                                 f">= 1 and an aware timestamp (got {record!r})")
        return style, operation, count, at.astimezone(UTC)

    def _reject(self, number: int, reason: str, detail: str) -> None:
        if not self.skip_bad:
            raise BadRecordError(self.source, self.line(number), reason, detail)
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        kept = self.skipped_lines.setdefault(reason, [])
        if len(kept) < FIRST_LINES:
            kept.append(self.line(number))

    def wrote(self, estimate: Estimate) -> None:
        self.written += 1
        self.tokens += estimate.total
        self.calls += sum(line.call.count for line in estimate.lines)
        self.by_version[estimate.table_version] = (
            self.by_version.get(estimate.table_version, 0) + estimate.total)

    def result(self, records: object) -> UsageImport:
        skipped = _summed(getattr(records, "skipped", None) or {}, self.skipped)
        lines = {reason: tuple(sorted({*getattr(records, "skipped_lines", {}).get(reason, ()),
                                       *self.skipped_lines.get(reason, ())}))[:FIRST_LINES]
                 for reason in skipped}
        return UsageImport(self.written, self.replayed, self.tokens, self.calls, self.first,
                           self.last, self.by_version, skipped, lines)


def _estimate(book: PriceTable | PriceBook, style: str | None, operation: str | None,
              count: int, at: datetime) -> Estimate:
    """What ``count`` calls cost at ``at``: by the book's version in force then, or by one
    table whatever the date (as `price_usage` prices them)."""
    from imagine_billing.estimator import Call, estimate
    from imagine_billing.pricing.book import PriceBook

    table = book.at(at) if isinstance(book, PriceBook) else book
    if operation is None:
        assert style is not None
        operation = table.style(style).operation
    return estimate([Call(style, count, operation)], table)
