"""Recording past spend: a usage log imported into a ledger as debits at their own times.

`import_usage` writes one back-dated debit (`Ledger.debit` with ``at=``) per record of a
usage log (the ``(style, count, timestamp)`` records `imagine_billing.read_usage` reads),
each priced by the version of the price book in force at its time, so that forecasts and
budgets start from real history.

The rules, and why:

- **Idempotent.** A record's key is made from what it says,
  ``PREFIX:TIME:STYLE:COUNT:N[:tags-DIGEST]`` (``usage:2026-11-03T10:00:00Z:flux-dev:4:1``):
  its time in UTC, its style (``OPERATION/STYLE`` when the log names an operation that is
  not the style's own, as the price table says: ``text-to-image`` and ``anime`` give the
  key of ``anime`` alone), its count, N, its place among the records that say the same at
  the same time (1 for the first), and, with tags, 12 hex digits of the SHA-256 of the
  tags (sorted, as JSON): the same record with other tags is another call. Importing a
  log again writes nothing; importing a log that has grown writes only its new records;
  the same records in another file or format (CSV or JSON lines, with or without the
  operation column) have the same keys. The same key priced otherwise (another book) is
  an `IdempotencyConflict`: the ledger keeps what it recorded. Logs of several sources
  whose records interleave in time are merged into one log first (`MergedLogs`): identical
  records then get places 1, 2... in the order the logs are given. Identical records of
  sources imported in separate imports with the same tags cannot be told apart (the second
  is a replay): give each source its own ``key_prefix``.
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

import hashlib
import heapq
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
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

__all__ = ["MergedLogs", "UsageImport", "import_usage"]

FIRST_LINES = 5
"""How many skipped lines `UsageImport.skipped_lines` keeps by reason."""

Skips = tuple[Mapping[str, int], Mapping[str, Sequence[int]]]
"""Lines skipped by reason, and the first of them by reason."""


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
    """The first lines (or record numbers) skipped, by reason (of every log: see
    `skipped_by_file` for whose lines they are)."""
    skipped_by_file: Mapping[str, Mapping[str, int]] = attrs.field(converter=_frozen,
                                                                   factory=dict)
    """`skipped` of each log that skipped lines, by its name (its ``source``)."""
    skipped_lines_by_file: Mapping[str, Mapping[str, tuple[int, ...]]] = attrs.field(
        converter=_frozen, factory=dict)
    """`skipped_lines` of each log that skipped lines, by its name."""

    def __add__(self, other: UsageImport) -> UsageImport:
        """Both imports (two logs imported one after the other)."""
        if not isinstance(other, UsageImport):
            return NotImplemented
        files = {}
        for name in {**self.skipped_by_file, **other.skipped_by_file}:
            files[name] = _merged_skips([
                (part.skipped_by_file.get(name, {}), part.skipped_lines_by_file.get(name, {}))
                for part in (self, other)])
        return UsageImport(
            self.written + other.written, self.replayed + other.replayed,
            self.tokens + other.tokens, self.calls + other.calls,
            self.first or other.first, other.last or self.last,
            _summed(self.by_version, other.by_version),
            *_merged_skips([(self.skipped, self.skipped_lines),
                            (other.skipped, other.skipped_lines)]),
            {name: skips[0] for name, skips in files.items()},
            {name: skips[1] for name, skips in files.items()})

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (times RFC 3339; mappings with sorted keys, but
        ``skipped_by_file`` in the order of the logs)."""
        return {
            "written": self.written, "replayed": self.replayed, "tokens": self.tokens,
            "calls": self.calls, "first": stamp(self.first), "last": stamp(self.last),
            "by_version": {v: self.by_version[v] for v in sorted(self.by_version)},
            **_skips_document(self.skipped, self.skipped_lines),
            "skipped_by_file": {
                name: _skips_document(skipped, self.skipped_lines_by_file.get(name, {}))
                for name, skipped in self.skipped_by_file.items()},
        }


def _skips_document(skipped: Mapping[str, int],
                    lines: Mapping[str, Sequence[int]]) -> dict[str, Any]:
    return {"skipped": {r: skipped[r] for r in sorted(skipped)},
            "skipped_lines": {r: list(lines[r]) for r in sorted(lines)}}


def _summed(left: Mapping[str, int], right: Mapping[str, int]) -> dict[str, int]:
    merged = dict(left)
    for name, value in right.items():
        merged[name] = merged.get(name, 0) + value
    return merged


def _merged_skips(parts: Iterable[Skips]) -> tuple[dict[str, int],
                                                  dict[str, tuple[int, ...]]]:
    """The skips of several parts in one: counts summed, the first lines of all of them."""
    skipped: dict[str, int] = {}
    lines: dict[str, tuple[int, ...]] = {}
    for counts, kept in parts:
        skipped = _summed(skipped, counts)
        for reason, numbers in kept.items():
            lines[reason] = tuple(sorted({*lines.get(reason, ()), *numbers}))[:FIRST_LINES]
    return skipped, lines


class MergedLogs:
    """Several usage logs read as one, in time order: what several sources logged (one
    log per server, say) imported together, so that identical records of different logs
    get places 1, 2... of one key (see the module).

    Records of all the logs come in timestamp order; records at the same time keep the
    order of the logs given. While it is read, ``source`` and ``line`` are the log and line
    (or record number) of the last record given, so that errors name them; a record out of
    time order within its own log is still refused by `import_usage` naming its log and
    line (nothing else can come between it and the record before it in its log).
    """

    def __init__(self, logs: Iterable[Iterable[Any]]) -> None:
        self.logs: tuple[Iterable[Any], ...] = tuple(logs)
        """The logs, in the order given."""
        self.skip_bad = any(bool(getattr(log, "skip_bad", False)) for log in self.logs)
        """Whether any of the logs skips bad lines (`import_usage` then skips too)."""
        self.source = _source_of(self.logs[0]) if self.logs else "<records>"
        """The log of the last record given."""
        self.line = 0
        """The line (or record number) of the last record given."""

    def __iter__(self) -> Iterator[Any]:
        streams = [_timed(log) for log in self.logs]
        for _, source, line, record in heapq.merge(*streams, key=lambda item: item[0]):
            self.source, self.line = source, line
            yield record


def _source_of(records: object) -> str:
    return getattr(records, "source", None) or "<records>"


def _line_of(records: object, number: int) -> int:
    """The line of the last record given by ``records`` (a `UsageLog`'s), else ``number``."""
    line = getattr(records, "line", None)
    return line if isinstance(line, int) and line else number


def _timed(log: Iterable[Any]) -> Iterator[tuple[datetime, str, int, Any]]:
    """``(time, source, line, record)`` for each record of ``log``, read as it is merged."""
    source = _source_of(log)
    for number, record in enumerate(log, 1):
        line = _line_of(log, number)
        fields = _fields(record)
        if fields is None:
            raise _not_a_record(source, line, record)
        yield fields[3], source, line, record


def _fields(record: object) -> tuple[str | None, str | None, int, datetime] | None:
    """``(style, operation or None, count, UTC time)`` of a record; ``None`` for what is no
    record."""
    parts: tuple[Any, ...] = record if isinstance(record, tuple) else ()
    key, count, at = parts if len(parts) == 3 else (None, None, None)
    operation, style = key if isinstance(key, tuple) and len(key) == 2 else (None, key)
    if not (isinstance(at, datetime) and at.utcoffset() is not None
            and count.__class__ is int and count >= 1
            and (style is None or isinstance(style, str))
            and (operation is None or isinstance(operation, str))
            and (operation is not None or style is not None)):
        return None
    return style, operation, count, at.astimezone(UTC)


def _not_a_record(source: str, line: int, record: object) -> BadRecordError:
    """Such a line is never skipped here: `UsageLog` skips what it cannot read."""
    return BadRecordError(source, line, "bad-record",
                          "a record is a (style, count, timestamp) tuple with a count >= 1 "
                          f"and an aware timestamp (got {record!r})")


def import_usage(ledger: Ledger, records: Iterable[Any],
                 book: PriceTable | PriceBook | None = None, *, key_prefix: str = "usage",
                 tags: Mapping[str, str] | None = None,
                 skip_bad: bool | None = None) -> UsageImport:
    """Debit each record of a usage log at its own time, priced then (see the module).

    Args:
        ledger: The ledger to write to.
        records: ``(style, count, timestamp)`` records in time order: a `UsageLog` (from
            `read_usage`) lets errors name its file and line; several logs go in one
            `MergedLogs`.
        book: A `PriceBook` (each record priced by the version in force at its time), or one
            `PriceTable` for every record whatever its date; ``None``: the bundled table.
        key_prefix: The first part of every key.
        tags: Tags of every debit (a budget's scope, say); part of every key.
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
        ValueError: A record later than now (as for `Ledger.debit`); nothing is written.
    """
    run = _Run(records, book, key_prefix, tags,
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


def _tags_part(tags: Mapping[str, str] | None) -> str:
    """The end of every key with ``tags``: ``:tags-`` and 12 hex digits of the SHA-256 of
    the tags (sorted, as JSON); ``""`` without tags (the keys of an import without tags)."""
    from imagine_billing.ledger._draft import check_tags

    checked = check_tags(tags)
    if not checked:
        return ""
    canonical = json.dumps(checked, ensure_ascii=False, separators=(",", ":"))
    return f":tags-{hashlib.sha256(canonical.encode()).hexdigest()[:12]}"


class _Run:
    """The state of one `import_usage`: the order of the records, their keys, the counts."""

    def __init__(self, records: object, book: PriceTable | PriceBook | None, prefix: str,
                 tags: Mapping[str, str] | None, skip_bad: bool) -> None:
        from imagine_billing.ledger._draft import check_key

        self.records = records
        if book is None:
            from imagine_billing.pricing.loading import load_price_table

            book = load_price_table()
        self.book: PriceTable | PriceBook = book
        self.prefix = check_key(prefix)
        self.tags = _tags_part(tags)
        self.skip_bad = skip_bad
        self.previous: datetime | None = None  # the time of the record before
        self.first: datetime | None = None  # of the first record imported or replayed
        self.last: datetime | None = None
        self.same: dict[str, int] = {}  # keys of the records at `previous`: how many
        self.written = self.replayed = self.tokens = self.calls = 0
        self.by_version: dict[str, int] = {}
        self.rejected: dict[str, tuple[dict[str, int], dict[str, list[int]]]] = {}

    def where(self, number: int) -> tuple[str, int]:
        """The log and line of record ``number``, the last one given."""
        return _source_of(self.records), _line_of(self.records, number)

    def priced(self, number: int, record: object) -> tuple[Estimate, datetime, str] | None:
        """The estimate, time and key of ``record``; ``None`` when it is skipped."""
        fields = _fields(record)
        if fields is None:
            raise _not_a_record(*self.where(number), record)
        style, operation, count, at = fields
        if self.previous is not None and at < self.previous:
            raise BadRecordError(
                *self.where(number), "out-of-order",
                f"timestamp {format_timestamp(at)} is earlier than the record before "
                f"({format_timestamp(self.previous)}): a usage log is imported in time "
                "order (sort it by time first)")
        if at != self.previous:
            self.previous, self.same = at, {}
        try:
            estimate, named = _estimate(self.book, style, operation, count, at)
        except (UnknownStyleError, UnpricedError, NoPriceTableError) as error:
            reason = ("no-price-table" if isinstance(error, NoPriceTableError)
                      else "unpriced" if isinstance(error, UnpricedError)
                      else "unknown-operation" if error.kind == "operation" else "unknown-style")
            self._reject(number, reason, " ".join(str(error).split()))
            return None
        self.first, self.last = self.first or at, at
        what = style if named is None else f"{named}/{style or ''}"
        base = f"{self.prefix}:{format_timestamp(at)}:{what}:{count}"
        self.same[base] = place = self.same.get(base, 0) + 1
        return estimate, at, f"{base}:{place}{self.tags}"

    def _reject(self, number: int, reason: str, detail: str) -> None:
        from imagine_billing.usage._pricing import count_skipped

        source, line = self.where(number)
        if not self.skip_bad:
            raise BadRecordError(source, line, reason, detail)
        skipped, lines = self.rejected.setdefault(source, ({}, {}))
        count_skipped(skipped, lines, reason, line)

    def wrote(self, estimate: Estimate) -> None:
        self.written += 1
        self.tokens += estimate.total
        self.calls += sum(line.call.count for line in estimate.lines)
        self.by_version[estimate.table_version] = (
            self.by_version.get(estimate.table_version, 0) + estimate.total)

    def result(self, records: object) -> UsageImport:
        """The counts, with the lines the logs skipped themselves, in all and by log."""
        parts: dict[str, list[Skips]] = {}
        for log in getattr(records, "logs", None) or (records,):
            parts.setdefault(_source_of(log), []).append(
                (getattr(log, "skipped", None) or {}, getattr(log, "skipped_lines", None) or {}))
        for source, skips in self.rejected.items():
            parts.setdefault(source, []).append(skips)
        files = {source: _merged_skips(skips) for source, skips in parts.items()}
        files = {source: skips for source, skips in files.items() if skips[0]}
        return UsageImport(self.written, self.replayed, self.tokens, self.calls, self.first,
                           self.last, self.by_version,
                           *_merged_skips(files.values()),
                           {source: skips[0] for source, skips in files.items()},
                           {source: skips[1] for source, skips in files.items()})


def _estimate(book: PriceTable | PriceBook, style: str | None, operation: str | None,
              count: int, at: datetime) -> tuple[Estimate, str | None]:
    """What ``count`` calls cost at ``at``: by the book's version in force then, or by one
    table whatever the date (as `price_usage` prices them); and the operation the key
    names: ``None`` when it is the style's own (what the record means without an operation),
    as the table in force says."""
    from imagine_billing.estimator import Call, estimate
    from imagine_billing.pricing.book import PriceBook

    table = book.at(at) if isinstance(book, PriceBook) else book
    if operation is None:
        assert style is not None
        return estimate([Call(style, count, table.style(style).operation)], table), None
    priced = estimate([Call(style, count, operation)], table)
    own = None if style is None else table.style(style).operation
    return priced, None if operation == own else operation
