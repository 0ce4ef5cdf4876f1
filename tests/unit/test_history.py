"""import_usage: a usage log recorded in a ledger as debits at their own times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import imagine_billing as ib
from tests.helpers import Clock, write_book

NOW = datetime(2026, 2, 1, tzinfo=UTC)
OPENING = datetime(2025, 12, 1, tzinfo=UTC)


def at(day: int, hour: int = 9) -> datetime:
    """A moment of December 2025 (day 1..31), or of January 2026 (day 32..62)."""
    return datetime(2025, 12, 1, hour, tzinfo=UTC) + timedelta(days=day - 1)


@pytest.fixture
def ledger() -> ib.Ledger:
    """A ledger at 2026-02-01 with 10,000 tokens credited on 2025-12-01."""
    ledger = ib.Ledger.memory(clock=Clock(NOW))
    ledger.credit(10_000, key="opening", at=OPENING)
    return ledger


@pytest.fixture
def book(tmp_path: Path) -> ib.PriceBook:
    """Flux Dev at 15 tokens, then at 20 from 2026-01-01."""
    return ib.load_price_book(*write_book(tmp_path))


def write_log(path: Path, lines: list[str]) -> Path:
    path.write_text("timestamp,style,count\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return path


class TestImportUsage:
    """Each record a debit at its time, priced by the version in force then."""

    def test_debits_at_their_times_by_the_version_then(self, ledger: ib.Ledger,
                                                       book: ib.PriceBook) -> None:
        """flux-dev:2 in December is 30 tokens (1.0.0), in January 40 (1.1.0)."""
        done = ib.import_usage(ledger, [("flux-dev", 2, at(31)), ("flux-dev", 2, at(33))],
                               book)
        debits = [e for e in ledger.entries() if e.kind == "debit"]
        assert [(30, at(31), "1.0.0"), (40, at(33), "1.1.0")] == [
            (e.tokens, e.at, e.table_version) for e in debits]
        assert ["usage:2025-12-31T09:00:00Z:flux-dev:2:1",
                "usage:2026-01-02T09:00:00Z:flux-dev:2:1"] == [e.key for e in debits]
        assert (2, 0, 70, 4) == (done.written, done.replayed, done.tokens, done.calls)
        assert {"1.0.0": 30, "1.1.0": 40} == dict(done.by_version)
        assert (at(31), at(33)) == (done.first, done.last)
        assert 3 == ledger.verify()

    def test_twice_writes_nothing(self, ledger: ib.Ledger, book: ib.PriceBook) -> None:
        """The same log again is all replays; a log that grew writes only its new records."""
        records = [("anime", 1, at(2)), ("anime", 1, at(2)), ("flux-dev", 1, at(3))]
        assert 3 == ib.import_usage(ledger, records, book).written
        again = ib.import_usage(ledger, records, book)
        assert (0, 3) == (again.written, again.replayed)
        grown = ib.import_usage(ledger, [*records, ("anime", 3, at(4))], book)
        assert (1, 3, 15) == (grown.written, grown.replayed, grown.tokens)
        assert 10_000 - 5 - 5 - 15 - 15 == ledger.balance().available
        assert 5 == ledger.verify()

    def test_identical_records_are_told_apart(self, ledger: ib.Ledger) -> None:
        """Two records saying the same at the same time are two debits, by their place."""
        ib.import_usage(ledger, [("anime", 1, at(2)), ("anime", 1, at(2))])
        assert ["usage:2025-12-02T09:00:00Z:anime:1:1", "usage:2025-12-02T09:00:00Z:anime:1:2"
                ] == [e.key for e in ledger.entries() if e.kind == "debit"]

    def test_the_same_records_from_another_format(self, ledger: ib.Ledger,
                                                  tmp_path: Path) -> None:
        """A CSV log and the same records in JSON lines, with another zone, share keys."""
        csv = write_log(tmp_path / "u.csv", ["2025-12-02T09:00:00Z,anime,2"])
        jsonl = tmp_path / "u.jsonl"
        jsonl.write_text('{"timestamp": "2025-12-02T10:00:00+01:00", "style": "anime", '
                         '"count": 2}\n', encoding="utf-8")
        assert 1 == ib.import_usage(ledger, ib.read_usage(csv)).written
        assert 1 == ib.import_usage(ledger, ib.read_usage(jsonl)).replayed

    def test_operation_and_prefix_in_the_key(self, ledger: ib.Ledger) -> None:
        """A record naming its style's own operation has the key of the style alone (as
        from a log without the operation column); a record naming an operation and no
        style keys it as OPERATION/; the prefix is given."""
        table = ib.load_price_table().with_overrides(
            {"styles": {"product-shoot": {"cost": 7}}}, version="1.0.1")
        done = ib.import_usage(ledger, [(("text-to-image", "anime"), 1, at(2)),
                                        ("anime", 1, at(2)),
                                        (("ai-background", None), 1, at(3))],
                               table, key_prefix="app-2")
        assert 3 == done.written  # two records at one time: two calls, places 1 and 2
        assert ["app-2:2025-12-02T09:00:00Z:anime:1:1", "app-2:2025-12-02T09:00:00Z:anime:1:2",
                "app-2:2025-12-03T09:00:00Z:ai-background/:1:1"] == [
            e.key for e in ledger.entries()][1:]

    def test_operation_column_or_not_is_one_call(self, ledger: ib.Ledger) -> None:
        """Finding 2 of the attack review: the same call from a log without the operation
        column, then from one with operation=text-to-image, is debited once."""
        ib.import_usage(ledger, [("anime", 1, at(2))])
        again = ib.import_usage(ledger, [(("text-to-image", "anime"), 1, at(2))])
        assert (0, 1) == (again.written, again.replayed)
        assert 10_000 - 5 == ledger.balance().posted

    def test_tags_in_the_key(self, ledger: ib.Ledger) -> None:
        """The same record with other tags is another call (no conflict); with the same
        tags, in any order, a replay; without tags the key has no tags part."""
        records = [("anime", 1, at(2))]
        ib.import_usage(ledger, records, tags={"project": "a", "team": "x"})
        ib.import_usage(ledger, records, tags={"project": "b"})
        again = ib.import_usage(ledger, records, tags={"team": "x", "project": "a"})
        ib.import_usage(ledger, records)
        keys = [e.key for e in ledger.entries()][1:]
        assert (0, 1, 3) == (again.written, again.replayed, len(keys))
        assert "usage:2025-12-02T09:00:00Z:anime:1:1" == keys[2]
        assert all(k.startswith("usage:2025-12-02T09:00:00Z:anime:1:1:tags-")
                   and len(k) == len(keys[2]) + 18 for k in keys[:2])
        assert keys[0] != keys[1]

    def test_out_of_order_writes_nothing(self, ledger: ib.Ledger, tmp_path: Path) -> None:
        """A record earlier than the one before is refused, naming its line; the import is
        all or nothing."""
        log = write_log(tmp_path / "u.csv", ["2025-12-03T09:00:00Z,anime,1",
                                            "2025-12-02T09:00:00Z,anime,1"])
        with pytest.raises(ib.BadRecordError, match=r"u.csv:3: .*earlier than the record "
                           "before") as raised:
            ib.import_usage(ledger, ib.read_usage(log))
        assert "out-of-order" == raised.value.reason
        assert 1 == ledger.head()[0]

    def test_out_of_order_even_when_skipping(self, ledger: ib.Ledger) -> None:
        """skip_bad never skips a record out of time order: that is no bad line."""
        with pytest.raises(ib.BadRecordError, match="earlier than the record before") as raised:
            ib.import_usage(ledger, [("anime", 1, at(3)), ("anime", 1, at(2))], skip_bad=True)
        assert "out-of-order" == raised.value.reason

    def test_before_the_ledgers_history(self, ledger: ib.Ledger) -> None:
        """A log earlier than a debit already in the ledger is refused, nothing written."""
        ledger.debit(5, key="live", at=at(10))
        with pytest.raises(ib.OutOfOrder, match=r"earlier than entry 2 \(a debit at 2025-12-10"):
            ib.import_usage(ledger, [("anime", 1, at(9)), ("anime", 1, at(11))])
        assert 2 == ledger.head()[0]
        assert 1 == ib.import_usage(ledger, [("anime", 1, at(10)), ]).written  # same time

    def test_not_enough_tokens_writes_nothing(self, ledger: ib.Ledger) -> None:
        """A record the balance cannot pay refuses the whole import."""
        with pytest.raises(ib.InsufficientTokens):
            ib.import_usage(ledger, [("anime", 1, at(2)), ("flux-dev", 700, at(3))])
        assert 1 == ledger.head()[0]

    def test_skip_bad(self, ledger: ib.Ledger, tmp_path: Path) -> None:
        """Unpriced and unknown styles are counted by reason with their lines."""
        log = write_log(tmp_path / "u.csv", ["2025-12-02T09:00:00Z,sdxl-1.0,1",
                                            "2025-12-02T10:00:00Z,anime,1",
                                            "2025-12-02T11:00:00Z,flux-dv,1",
                                            "2025-12-02T12:00:00Z,anime,zero"])
        done = ib.import_usage(ledger, ib.read_usage(log, skip_bad=True))
        assert (1, 5) == (done.written, done.tokens)
        assert (at(2, 10), at(2, 10)) == (done.first, done.last)  # skipped lines not counted
        assert {"unpriced": 1, "unknown-style": 1, "bad-count": 1} == dict(done.skipped)
        assert {"unpriced": (2,), "unknown-style": (4,), "bad-count": (5,)} == dict(
            done.skipped_lines)

    def test_bad_line_without_skipping(self, ledger: ib.Ledger) -> None:
        """An unpriced record is an error naming it, and nothing is written."""
        with pytest.raises(ib.BadRecordError, match=r"<records>:2: .*'sdxl-1.0' has no "
                           "published price") as raised:
            ib.import_usage(ledger, [("anime", 1, at(2)), ("sdxl-1.0", 1, at(3))])
        assert "unpriced" == raised.value.reason
        assert 1 == ledger.head()[0]

    def test_before_the_first_version(self, ledger: ib.Ledger, tmp_path: Path) -> None:
        """With a book, a record before its first version has no price."""
        book = ib.PriceBook([ib.load_price_table().with_overrides(
            {"effective_from": "2025-12-05T00:00:00Z"}, version="2.0.0")])
        with pytest.raises(ib.BadRecordError, match="no price table is in force"):
            ib.import_usage(ledger, [("anime", 1, at(2))], book)

    @pytest.mark.parametrize("record", [("anime", 0, at(2)), ("anime", 1, datetime(2025, 12, 2)),
                                        ("anime", 1), (None, 1, at(2))])
    def test_not_a_record(self, ledger: ib.Ledger, record: tuple[object, ...]) -> None:
        """What is not a (style, count, aware timestamp) record is refused, even skipping."""
        with pytest.raises(ib.BadRecordError, match="a record is a") as raised:
            ib.import_usage(ledger, [record], skip_bad=True)
        assert "bad-record" == raised.value.reason

    def test_tags_and_budgets(self) -> None:
        """Tags reach every debit; a budget counts the spend of its own periods only (a
        monthly one added in January: January's), and verify agrees with its figures."""
        ledger = ib.Ledger.memory(clock=Clock(datetime(2026, 1, 20, tzinfo=UTC)))
        ledger.credit(10_000, key="opening", at=OPENING)
        ledger.add_budget(ib.Budget("shop", 100, "month", {"project": "shop"}))
        ledger.add_budget(ib.Budget("ever", 100, "total", {"project": "shop"}))
        ib.import_usage(ledger, [("anime", 1, at(31)), ("anime", 2, at(32)),
                                 ("anime", 3, at(33)), ("flux-dev", 2, at(34))],
                        tags={"project": "shop"})
        assert (55, 0) == ledger.budget_usage("shop")
        assert (60, 0) == ledger.budget_usage("ever")
        assert {"shop": 60} == ledger.spend(by="tag:project")
        alerts = [(a.budget, a.period, str(a.threshold)) for a in ledger.alerts()]
        assert [("ever", "total", "1/2"), ("shop", "2026-01", "1/2")] == sorted(alerts)
        assert 7 == ledger.verify()


def test_forecasts_start_from_the_imported_history(ledger: ib.Ledger) -> None:
    """Fourteen days of 6 flux-dev calls (90 tokens) a day give a burn of 90 a day."""
    records = [("flux-dev", 6, NOW - timedelta(days=d) + timedelta(hours=3))
               for d in range(14, 0, -1)]
    assert 14 * 90 == ib.import_usage(ledger, records).tokens
    result = ib.forecast(ledger, now=NOW)
    left = 10_000 - 14 * 90
    assert (90, 90, 90, left) == (result.burn_per_day, result.low, result.high,
                                  result.available)
    assert timedelta(microseconds=left * 86_400_000_000 // 90) == result.runway


class TestUsageImport:
    def test_sum_and_document(self) -> None:
        """Two imports add up; the document has RFC 3339 times."""
        a = ib.UsageImport(1, 0, 5, 1, at(2), at(2), {"1.0.0": 5}, {"unpriced": 1},
                           {"unpriced": (3,)})
        b = ib.UsageImport(2, 1, 30, 2, at(3), at(4), {"1.0.0": 30}, {}, {})
        assert {"written": 3, "replayed": 1, "tokens": 35, "calls": 3,
                "first": "2025-12-02T09:00:00Z", "last": "2025-12-04T09:00:00Z",
                "by_version": {"1.0.0": 35}, "skipped": {"unpriced": 1},
                "skipped_lines": {"unpriced": [3]}, "skipped_by_file": {}} == (a + b).to_dict()
