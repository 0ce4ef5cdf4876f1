"""Pricing usage records: `price_usage` and the `UsageTotals` it returns, in constant memory."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from types import MappingProxyType
from typing import Any

import attrs

from imagine_billing._checks import (
    MAX_TOKENS,
    SHOWN_WIDTH,
    format_timestamp,
    shown,
    shown_int,
    too_large,
)
from imagine_billing.errors import BadRecordError, UnknownStyleError, UnpricedError
from imagine_billing.estimator import unit_cost
from imagine_billing.pricing.book import PriceBook
from imagine_billing.pricing.loading import load_price_table
from imagine_billing.pricing.model import PriceTable

StyleKey = str | tuple[str, str | None]
"""What a record bills: a style id, or ``(operation, style or None)`` when the log names the
operation (a style id alone implies its own operation)."""

Grouped = tuple[StyleKey, tuple[str | None, ...]]
"""A style with the values of the log's columns that its record is grouped by."""

Record = tuple[StyleKey | Grouped, int, datetime]
"""One line of a usage log: ``(style, count, timestamp)``; the timestamp is timezone-aware.
Grouped by columns of the log, the style is ``(style, values)`` (see `price_usage`)."""


def _names(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


def _frozen_map(items: Mapping[Any, Any]) -> Mapping[Any, Any]:
    return MappingProxyType(dict(items))


def _sum_maps(left: Mapping[Any, int], right: Mapping[Any, int]) -> dict[Any, int]:
    merged = dict(left)
    for key, value in right.items():
        merged[key] = merged.get(key, 0) + value
    return merged


@attrs.frozen
class UsageTotals:
    """Token totals of a usage log. Totals of two parts of a log add up (``a + b``) to the
    totals of the whole: pricing in one pass or in two gives the same figures."""

    total: int = 0
    """Tokens for every record priced."""
    calls: int = 0
    """Calls of every record priced (the sum of their counts)."""
    records: int = 0
    """Records priced (skipped ones are not counted here but in ``skipped``)."""
    by_style: Mapping[str, int] = attrs.field(converter=_frozen_map, factory=dict)
    """Tokens by style id; a call priced by an operation's flat cost (no style) counts
    under ``"operation:<id>"``."""
    calls_by_style: Mapping[str, int] = attrs.field(converter=_frozen_map, factory=dict)
    """Calls by style id (keys as in ``by_style``)."""
    by_day: Mapping[date, int] = attrs.field(converter=_frozen_map, factory=dict)
    """Tokens by UTC day."""
    calls_by_day: Mapping[date, int] = attrs.field(converter=_frozen_map, factory=dict)
    """Calls by UTC day."""
    by_version: Mapping[str, int] = attrs.field(converter=_frozen_map, factory=dict)
    """Tokens by the version of the price table that priced them."""
    digests: Mapping[str, str] = attrs.field(converter=_frozen_map, factory=dict)
    """The digest of each table version used: the exact prices behind the figures."""
    skipped: Mapping[str, int] = attrs.field(converter=_frozen_map, factory=dict)
    """Bad records skipped (with ``skip_bad``), by reason such as ``"bad-count"``."""
    skipped_lines: Mapping[str, tuple[int, ...]] = attrs.field(
        converter=_frozen_map, factory=dict, eq=False)
    """The first lines (or record numbers) skipped, up to `FIRST_LINES` by reason, so that
    what was skipped can be looked at. Where, not what: not compared by ``==`` (a log priced
    in two parts has the same figures, with lines counted from each part's start)."""
    by: tuple[str, ...] = attrs.field(converter=_names, default=())
    """What ``groups`` are keyed by, in order: ``"style"``, ``"day"`` (UTC, ``2025-08-01``),
    ``"month"`` (UTC, ``2025-08``) or a column of the log (``"project"``)."""
    groups: Mapping[tuple[str | None, ...], tuple[int, int]] = attrs.field(
        converter=_frozen_map, factory=dict)
    """``(calls, tokens)`` by group: the values of ``by`` of the records of each (a column's
    value ``None`` where a JSON line lacks it). ``{("shop", "anime"): (3, 15)}`` for
    ``by=("project", "style")``."""

    def __add__(self, other: UsageTotals) -> UsageTotals:
        """The totals of both logs (or both parts of one log)."""
        if not isinstance(other, UsageTotals):
            return NotImplemented
        if self.by != other.by:
            raise ValueError(f"totals grouped by {self.by} and by {other.by} do not add up")
        groups = dict(self.groups)
        for key, (calls, tokens) in other.groups.items():
            before = groups.get(key, (0, 0))
            groups[key] = (before[0] + calls, before[1] + tokens)
        return UsageTotals(
            total=self.total + other.total,
            calls=self.calls + other.calls,
            records=self.records + other.records,
            by_style=_sum_maps(self.by_style, other.by_style),
            calls_by_style=_sum_maps(self.calls_by_style, other.calls_by_style),
            by_day=_sum_maps(self.by_day, other.by_day),
            calls_by_day=_sum_maps(self.calls_by_day, other.calls_by_day),
            by_version=_sum_maps(self.by_version, other.by_version),
            digests={**self.digests, **other.digests},
            skipped=_sum_maps(self.skipped, other.skipped),
            skipped_lines=_first_lines(self.skipped_lines, other.skipped_lines),
            by=self.by,
            groups=groups,
        )

    def to_dict(self) -> dict[str, Any]:
        """The totals as JSON (the ``price-log --json`` document); keys in sorted order.

        With ``by``, also ``"by"`` (its names) and ``"groups"``: a list of ``{"by": {name:
        value}, "calls": N, "tokens": N}`` in the order of their values (nulls last)."""
        grouped = {} if not self.by else {
            "by": list(self.by),
            "groups": [
                {"by": dict(zip(self.by, key, strict=True)), "calls": calls, "tokens": tokens}
                for key, (calls, tokens) in sorted(self.groups.items(), key=_group_order)
            ],
        }
        return {
            "total": self.total,
            "unit": "token",
            "calls": self.calls,
            "records": self.records,
            "by_style": {
                key: {"calls": self.calls_by_style[key], "tokens": self.by_style[key]}
                for key in sorted(self.by_style)
            },
            "by_day": {
                day.isoformat(): {"calls": self.calls_by_day[day], "tokens": self.by_day[day]}
                for day in sorted(self.by_day)
            },
            "tables": {
                version: {"tokens": self.by_version[version], "digest": self.digests[version]}
                for version in sorted(self.by_version)
            },
            "skipped": {reason: self.skipped[reason] for reason in sorted(self.skipped)},
            "skipped_lines": {reason: list(self.skipped_lines[reason])
                              for reason in sorted(self.skipped_lines)},
        } | grouped


def _group_order(item: tuple[tuple[str | None, ...], object]) -> tuple[tuple[bool, str], ...]:
    return tuple((value is None, value or "") for value in item[0])


GROUPS = ("style", "day", "month")
"""What `price_usage` groups by without any column of the log."""


def group_keys(by: Iterable[str]) -> tuple[str, ...]:
    """``by`` checked and case-folded: names, none twice.

    Raises:
        ValueError: an empty name, or one given twice.
    """
    keys = tuple(name.strip().casefold() for name in by)
    for key in keys:
        if not key:
            raise ValueError("a name to group by is empty")
        if keys.count(key) > 1:
            raise ValueError(f"{key!r} is given twice to group by")
    return keys


def log_columns(by: Iterable[str]) -> tuple[str, ...]:
    """The names of ``by`` that are columns of the log (not style, day or month)."""
    return tuple(name for name in group_keys(by) if name not in GROUPS)


FIRST_LINES = 5
"""How many skipped lines are kept by reason (`UsageTotals.skipped_lines`)."""


def count_skipped(skipped: dict[str, int], lines: dict[str, list[int]], reason: str,
                  line: int) -> None:
    """Count a skipped line under ``reason``, keeping its number if among the first."""
    skipped[reason] = skipped.get(reason, 0) + 1
    kept = lines.setdefault(reason, [])
    if len(kept) < FIRST_LINES:
        kept.append(line)


def _first_lines(*parts: Mapping[str, Sequence[int]]) -> dict[str, tuple[int, ...]]:
    merged: dict[str, tuple[int, ...]] = {}
    for part in parts:
        for reason, lines in part.items():
            merged[reason] = tuple(sorted({*merged.get(reason, ()), *lines}))[:FIRST_LINES]
    return merged


_ONE_DAY = timedelta(days=1)
_NEVER = datetime.max.replace(tzinfo=UTC)
_EVER = datetime.min.replace(tzinfo=UTC)


class _Pricer:
    """The state of one `price_usage` pass outside its hot loop: windows, units, errors."""

    def __init__(
        self, book: PriceTable | PriceBook | None, records: object, skip_bad: bool,
        by: tuple[str, ...] = (),
    ) -> None:
        if book is None:
            book = load_price_table()
        if isinstance(book, PriceBook):
            self.tables: tuple[PriceTable, ...] = book.tables
            self.starts = [t.effective_from for t in self.tables]
        elif isinstance(book, PriceTable):
            # One table prices every record, whatever its date (as estimate does): its
            # effective_from says when its prices were taken, not that earlier calls were free.
            self.tables = (book,)
            self.starts = [_EVER]
        else:
            raise TypeError(f"book must be a PriceBook or a PriceTable (got {type(book).__name__})")
        self.records = records
        self.by = by
        self.keyed = bool(log_columns(by))
        """Whether records carry the values of columns: ``((style, values), count, ts)``."""
        self.source = getattr(records, "source", None) or "<records>"
        self.skip_bad = skip_bad
        self.skipped: dict[str, int] = {}
        self.skipped_lines: dict[str, list[int]] = {}
        # (day, table index) -> style key -> calls
        self.windows: dict[tuple[date, int], dict[StyleKey | Grouped, int]] = {}
        # (table index, style key) -> (unit cost, label): only keys the tables price, so
        # as many as their styles and operations at most.
        self.units: dict[tuple[int, object], tuple[int, str]] = {}
        # (table index, style key) -> reason, when skipping: at most _BAD_KEYS of them, as
        # a log may hold any number of distinct bad styles.
        self.bad: dict[tuple[int, object], str] = {}

    def reject(self, number: int, reason: str, detail: str) -> None:
        """Count a bad record when skipping them; otherwise raise naming its line."""
        if self.skip_bad:
            count_skipped(self.skipped, self.skipped_lines, reason, self.line_of(number))
            return
        raise self.error(number, reason, detail)

    def line_of(self, number: int) -> int:
        """The line of record ``number`` when the records know it, else the number."""
        line = getattr(self.records, "line", None)
        return line if isinstance(line, int) else number

    def error(self, number: int, reason: str, detail: str) -> BadRecordError:
        """The error for record ``number``, naming its line when the records know it."""
        return BadRecordError(self.source, self.line_of(number), reason, detail)

    def window(
        self, ts: object, number: int
    ) -> tuple[datetime, datetime, dict[StyleKey | Grouped, int], int] | None:
        """The window (one UTC day under one table) holding ``ts``: its bounds, its counts
        and its table; ``None`` (after `reject`) when ``ts`` is bad or before every table."""
        if not isinstance(ts, datetime) or ts.utcoffset() is None:
            got = "naive " if isinstance(ts, datetime) else ""
            self.reject(number, "bad-timestamp",
                        f"timestamp must be timezone-aware (got {got}{ts!r})")
            return None
        try:
            utc = ts.astimezone(UTC)
        except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00
            self.reject(number, "bad-timestamp",
                        f"timestamp {ts.isoformat()} is out of range in UTC")
            return None
        index = bisect.bisect_right(self.starts, utc) - 1
        if index < 0:
            self.reject(number, "no-price-table",
                        f"no price table is in force at {format_timestamp(utc)}: the first "
                        f"takes effect at {format_timestamp(self.starts[0])}")
            return None
        day = utc.date()
        day_start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        low = max(day_start, self.starts[index])
        following = self.starts[index + 1] if index + 1 < len(self.starts) else _NEVER
        end_of_day = day_start + _ONE_DAY if day < date.max else _NEVER
        high = min(end_of_day, following)
        counts = self.windows.setdefault((day, index), {})
        return low, high, counts, index

    def admit(self, index: int, key: object, number: int) -> bool:
        """Whether records of ``key`` can be priced by table ``index`` (else `reject`)."""
        try:
            cache_key = (index, key)
            known = cache_key in self.units
        except TypeError:  # an unhashable style
            self.reject(number, "bad-style", f"style must be a string (got {shown(key)})")
            return False
        if known:
            return True
        if self.keyed:
            if not (isinstance(key, tuple) and len(key) == 2 and isinstance(key[1], tuple)):
                self.reject(number, "bad-record", "a record grouped by columns is ((style, "
                            f"values), count, timestamp) (got style {shown(key)})")
                return False
            key = key[0]
        table = self.tables[index]
        if self.skip_bad:
            return self._admit_skipping(cache_key, table, key, number)
        try:
            self.units[cache_key] = self._unit(table, key)
        except UnknownStyleError as error:
            reason = "unknown-operation" if error.kind == "operation" else "unknown-style"
            detail = " ".join(_quoted_short(str(error), error.style).split())
        except UnpricedError as error:
            reason, detail = "unpriced", str(error)
        except _BadKeyError as error:
            reason, detail = "bad-style", str(error)
        else:
            return True
        raise self.error(number, reason, detail) from None

    def _admit_skipping(self, cache_key: tuple[int, object], table: PriceTable,
                        key: object, number: int) -> bool:
        """`admit` when skipping: only the reason is wanted, so no error (and no search for
        close matches) is built for a style that does not exist."""
        reason = self.bad.get(cache_key) or _missing(table, key)
        if reason is None:
            try:
                self.units[cache_key] = self._unit(table, key)
                return True
            except UnknownStyleError:  # a style of another operation
                reason = "unknown-style"
            except UnpricedError:
                reason = "unpriced"
        if len(self.bad) < _BAD_KEYS:
            self.bad[cache_key] = reason
        count_skipped(self.skipped, self.skipped_lines, reason, self.line_of(number))
        return False

    @staticmethod
    def _unit(table: PriceTable, key: object) -> tuple[int, str]:
        if isinstance(key, str):
            style = table.style(key)
            return unit_cost(table, key, style.operation), key
        if (
            isinstance(key, tuple)
            and len(key) == 2
            and isinstance(key[0], str)
            and (key[1] is None or isinstance(key[1], str))
        ):
            operation, style_id = key
            unit = unit_cost(table, style_id, operation)
            label = style_id or table.operation(operation).default_style
            return unit, label or f"operation:{operation}"
        raise _BadKeyError(f"style must be a string (got {key!r})")

    def totals(self, records: int) -> UsageTotals:
        by_style: dict[str, int] = {}
        calls_by_style: dict[str, int] = {}
        by_day: dict[date, int] = {}
        calls_by_day: dict[date, int] = {}
        by_version: dict[str, int] = {}
        digests: dict[str, str] = {}
        groups: dict[tuple[str | None, ...], tuple[int, int]] = {}
        group_of = self._group_of
        total = calls = 0
        for (day, index), counts in self.windows.items():
            table = self.tables[index]
            for key, count in counts.items():
                unit, label = self.units[index, key]
                tokens = unit * count
                if self.by:
                    group = group_of(label, day, key)
                    before = groups.get(group, (0, 0))
                    groups[group] = (before[0] + count, before[1] + tokens)
                total += tokens
                calls += count
                by_style[label] = by_style.get(label, 0) + tokens
                calls_by_style[label] = calls_by_style.get(label, 0) + count
                by_day[day] = by_day.get(day, 0) + tokens
                calls_by_day[day] = calls_by_day.get(day, 0) + count
                by_version[table.version] = by_version.get(table.version, 0) + tokens
                digests[table.version] = table.digest
        skipped = dict(getattr(self.records, "skipped", None) or {})
        skipped = _sum_maps(skipped, self.skipped)
        skipped_lines = _first_lines(getattr(self.records, "skipped_lines", None) or {},
                                     self.skipped_lines)
        return UsageTotals(
            total=total,
            calls=calls,
            records=records - sum(self.skipped.values()),
            by_style=by_style,
            calls_by_style=calls_by_style,
            by_day=by_day,
            calls_by_day=calls_by_day,
            by_version=by_version,
            digests=digests,
            skipped=skipped,
            skipped_lines=skipped_lines,
            by=self.by,
            groups=groups,
        )

    def _group_of(self, label: str, day: date, key: object) -> tuple[str | None, ...]:
        """The group of the calls of ``key`` (priced under ``label``) on ``day``."""
        values: tuple[str | None, ...] = key[1] if self.keyed else ()  # type: ignore[index]
        return group_of(self.by, label, day, values)


def group_of(by: tuple[str, ...], label: str, day: date,
             values: Sequence[str | None]) -> tuple[str | None, ...]:
    """The group (`UsageTotals.groups`) of calls of style ``label`` on ``day`` with
    ``values`` of the log's columns, in the order of ``by``."""
    group: list[str | None] = []
    at = 0
    for name in by:
        if name == "style":
            group.append(label)
        elif name == "day":
            group.append(day.isoformat())
        elif name == "month":
            group.append(day.isoformat()[:7])
        else:
            group.append(values[at])
            at += 1
    return tuple(group)


class _BadKeyError(ValueError):
    pass


_BAD_KEYS = 1024
"""The most bad style keys a pass remembers (each is cheap to look at again)."""


def _missing(table: PriceTable, key: object) -> str | None:
    """Why ``key`` names nothing in ``table`` (a reason), or ``None`` when all it names exists.

    Cheap, unlike `unit_cost`'s errors: used when skipping bad records.
    """
    if isinstance(key, str):
        return None if key in table.styles else "unknown-style"
    if (
        isinstance(key, tuple)
        and len(key) == 2
        and isinstance(key[0], str)
        and (key[1] is None or isinstance(key[1], str))
    ):
        if key[0] not in table.operations:
            return "unknown-operation"
        return None if key[1] is None or key[1] in table.styles else "unknown-style"
    return "bad-style"


def _count_problem(count: object) -> str:
    """Why a record's count is refused (it is not an int from 1 to 2**53-1)."""
    if count.__class__ is int:
        assert isinstance(count, int)
        if count > MAX_TOKENS:
            return f"count {too_large(shown_int(count))}"
        return f"count must be an int >= 1 (got {shown_int(count)})"
    return f"count must be an int >= 1 (got {count!r})"


def _quoted_short(message: str, value: object) -> str:
    """``message``, built elsewhere, with the ``repr`` of ``value`` in it cut short (by
    `shown`) when ``value`` is long text: a style read from a file may be 64 KiB long."""
    if isinstance(value, str) and len(value) > SHOWN_WIDTH:
        return message.replace(repr(value), shown(value))
    return message


def price_usage(
    records: Iterable[Record],
    book: PriceTable | PriceBook | None = None,
    *,
    skip_bad: bool | None = None,
    by: Sequence[str] = (),
) -> UsageTotals:
    """Token totals of usage records, each priced by the table in force at its timestamp.

    One pass, in memory that does not grow with the number of records (only with the
    number of distinct days and styles). Fastest on records in time order: the table and
    day are looked up again only when a timestamp leaves the current day.

    ``price_usage([("flux-dev", 4, t), ("anime", 1, t)], book).total`` is 65 on the
    published prices.

    Args:
        records: ``(style, count, timestamp)`` tuples: a style id (or ``(operation,
            style or None)``), an int count >= 1, a timezone-aware datetime. A `UsageLog`
            (from `read_usage`) lets errors name its file and line.
        book: a `PriceBook`, whose versions each price the records from their
            ``effective_from`` on; or a single `PriceTable` (``None``: the bundled table),
            which prices every record whatever its date.
        skip_bad: count bad records by reason instead of raising; ``None`` follows the
            records' own ``skip_bad`` (a `UsageLog`'s), else ``False``.
        by: group the totals (``UsageTotals.groups``) by ``"style"``, ``"day"``,
            ``"month"`` and columns of the log, in that order of names given. With a column,
            each record is ``((style, values), count, timestamp)``, ``values`` the tuple of
            the columns' values in the order of ``by``: what `read_usage` gives with
            ``columns=log_columns(by)``.

    Returns:
        The `UsageTotals`.

    Raises:
        BadRecordError: a bad record (unknown or unpriced style, bad count, naive or
            missing timestamp, a timestamp before a book's first version), naming the file (or
            ``<records>``) and the line (or the record's number, from 1).
    """
    if skip_bad is None:
        skip_bad = bool(getattr(records, "skip_bad", False))
    pricer = _Pricer(book, records, skip_bad, group_keys(by))
    window = pricer.window
    admit = pricer.admit
    reject = pricer.reject
    low = high = _NEVER
    counts: dict[StyleKey | Grouped, int] = {}
    index = 0
    number = 0
    integer, most = int, MAX_TOKENS  # locals: a little faster in the loop
    for record in records:
        number += 1
        try:
            style, count, ts = record
        except (TypeError, ValueError):
            reject(number, "bad-record",
                   f"a record is a (style, count, timestamp) tuple (got {record!r})")
            continue
        if count.__class__ is not integer or count < 1 or count > most:
            reject(number, "bad-count", _count_problem(count))
            continue
        try:
            inside = low <= ts < high
        except TypeError:  # naive, or not a datetime: `window` says which
            inside = False
        if not inside:
            found = window(ts, number)
            if found is None:
                continue
            low, high, counts, index = found
        try:
            counts[style] += count
        except (KeyError, TypeError):
            if admit(index, style, number):
                counts[style] = count
    return pricer.totals(number)


