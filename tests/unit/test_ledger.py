"""The ledger's rules, on the in-memory store, and on both stores where they must agree (the
SQLite file has tests of its own)."""

from __future__ import annotations

import copy
import csv
import hashlib
import io
import json
import pickle
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import attrs
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import imagine_billing as ib
from imagine_billing.estimator import Call, estimate
from imagine_billing.ledger._draft import split as _split
from imagine_billing.ledger.model import GENESIS, canonical, chain_hash, entry_hash
from tests.helpers import Clock

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def ledger(clock: Clock) -> Iterator[ib.Ledger]:
    with ib.Ledger.memory(clock=clock) as ledger:
        ledger.credit(100, key="opening")
        yield ledger


class TestAmounts:
    """Token amounts are ints >= 1; everything else is refused, naming the value."""

    @pytest.mark.parametrize("bad", [0, -5])
    def test_zero_and_negatives_are_value_errors(self, ledger: ib.Ledger, bad: int) -> None:
        """0 and negative amounts raise ValueError naming the value."""
        for write in (lambda: ledger.credit(bad, key="x"), lambda: ledger.hold(bad, key="x"),
                      lambda: ledger.debit(bad, key="x")):
            with pytest.raises(ValueError, match=str(bad)):
                write()

    @pytest.mark.parametrize("bad", [1.0, True, "5", None])
    def test_other_types_are_type_errors(self, ledger: ib.Ledger, bad: object) -> None:
        """Floats, bools, strings and None raise TypeError naming the value."""
        for write in (lambda: ledger.credit(bad, key="x"),  # type: ignore[arg-type]
                      lambda: ledger.hold(bad, key="x"), lambda: ledger.debit(bad, key="x")):
            with pytest.raises(TypeError, match=repr(bad).replace(".", r"\.")):
                write()

    def test_capture_and_refund_amounts_are_checked(self, ledger: ib.Ledger) -> None:
        """capture(hold, 0) and refund(entry, 1.5) are refused before anything is read."""
        hold = ledger.hold(10, key="h")
        with pytest.raises(ValueError, match="0"):
            ledger.capture(hold, 0)
        with pytest.raises(TypeError, match=r"1\.5"):
            ledger.refund("opening", 1.5, key="r")  # type: ignore[arg-type]

    def test_refused_writes_write_nothing(self, ledger: ib.Ledger) -> None:
        """After refused amounts the ledger still holds its one entry."""
        for bad in (0, 2.5):
            with pytest.raises((TypeError, ValueError)):
                ledger.debit(bad, key="x")
        assert 1 == ledger.verify()

    def test_keys_must_be_non_empty_strings(self, ledger: ib.Ledger) -> None:
        """An empty key is a ValueError, a non-string key a TypeError."""
        with pytest.raises(ValueError, match="key"):
            ledger.credit(1, key="")
        with pytest.raises(TypeError, match="7"):
            ledger.credit(1, key=7)  # type: ignore[arg-type]


class TestCredit:
    """Credits add to posted and available."""

    def test_credit_adds(self, ledger: ib.Ledger) -> None:
        """credit(50) after credit(100): posted 150."""
        entry = ledger.credit(50, key="topup", memo="March", tags={"project": "site"})
        assert ("credit", 50, "March", {"project": "site"}) == (
            entry.kind, entry.tokens, entry.memo, dict(entry.tags))
        assert ib.Balance(150, 0, 150) == ledger.balance()

    def test_entries_are_numbered_and_timed(self, ledger: ib.Ledger, clock: Clock) -> None:
        """The second entry has id 2 and the clock's time."""
        clock.advance(seconds=5)
        entry = ledger.credit(1, key="b")
        assert (2, T0 + timedelta(seconds=5)) == (entry.id, entry.at)

    def test_a_naive_clock_is_refused(self) -> None:
        """A clock returning a naive datetime makes writes fail, not guess a zone."""
        with ib.Ledger.memory(clock=lambda: datetime(2026, 1, 1)) as ledger, \
                pytest.raises(ValueError, match="naive"):
            ledger.credit(1, key="a")


class TestHolds:
    """Holds reserve tokens; a capture spends some or all, a void releases them."""

    def test_a_hold_reserves(self, ledger: ib.Ledger) -> None:
        """hold(15) of 100: posted 100, held 15, available 85."""
        hold = ledger.hold(15, key="job")
        assert ("open", 15) == (hold.status, hold.tokens)
        assert ib.Balance(100, 15, 85) == ledger.balance()

    def test_a_partial_capture_releases_the_rest(self, ledger: ib.Ledger) -> None:
        """capture(hold of 15, tokens=10) spends 10 and releases the other 5."""
        hold = ledger.hold(15, key="job")
        entry = ledger.capture(hold, 10)
        assert ("capture", 10, hold.id, "job:capture") == (
            entry.kind, entry.tokens, entry.ref, entry.key)
        assert ib.Balance(90, 0, 90) == ledger.balance()
        closed = ledger.get_hold("job")
        assert ("captured", 10, 5) == (closed.status, closed.captured, closed.released)

    def test_a_full_capture_by_default(self, ledger: ib.Ledger) -> None:
        """capture(hold) spends all of it."""
        ledger.hold(15, key="job")
        assert 15 == ledger.capture("job").tokens
        assert ib.Balance(85, 0) == ledger.balance()

    def test_capture_never_exceeds_the_hold(self, ledger: ib.Ledger) -> None:
        """capture(hold of 15, tokens=20) raises AmountTooLarge and writes nothing."""
        hold = ledger.hold(15, key="job")
        with pytest.raises(ib.AmountTooLarge) as caught:
            ledger.capture(hold, 20)
        assert (20, 15) == (caught.value.requested, caught.value.limit)
        assert ib.Balance(100, 15) == ledger.balance()

    def test_void_releases_everything(self, ledger: ib.Ledger) -> None:
        """void(hold of 15) gives all 15 back."""
        hold = ledger.hold(15, key="job")
        entry = ledger.void(hold)
        assert ("void", 15) == (entry.kind, entry.tokens)
        assert ib.Balance(100, 0) == ledger.balance()
        assert "voided" == ledger.get_hold(hold.id).status

    def test_a_closed_hold_cannot_be_closed_again(self, ledger: ib.Ledger) -> None:
        """capture after void, or void after capture, raises HoldClosed."""
        ledger.hold(5, key="a")
        ledger.void("a")
        with pytest.raises(ib.HoldClosed, match="voided"):
            ledger.capture("a")
        ledger.hold(5, key="b")
        ledger.capture("b", 2)
        with pytest.raises(ib.HoldClosed, match="captured"):
            ledger.void("b")
        with pytest.raises(ib.HoldClosed, match="captured"):
            ledger.capture("b", 2, key="another")

    def test_replaying_the_closing_write_is_not_an_error(self, ledger: ib.Ledger) -> None:
        """capture twice with the same key and amount returns the first capture."""
        ledger.hold(5, key="a")
        first = ledger.capture("a", 3)
        assert first == ledger.capture("a", 3)
        assert ib.Balance(97, 0) == ledger.balance()
        ledger.hold(5, key="b")
        assert ledger.void("b") == ledger.void("b")

    def test_capture_of_all_equals_capture_by_default(self, ledger: ib.Ledger) -> None:
        """capture(hold) and capture(hold, its tokens) are the same request."""
        ledger.hold(5, key="a")
        assert ledger.capture("a") == ledger.capture("a", 5)

    def test_a_hold_over_available_is_refused(self, ledger: ib.Ledger) -> None:
        """hold(90) with 85 available raises InsufficientTokens(90, 85) and writes nothing."""
        ledger.hold(15, key="a")
        with pytest.raises(ib.InsufficientTokens) as caught:
            ledger.hold(90, key="b")
        assert (90, 85) == (caught.value.needed, caught.value.available)
        assert (2, ib.Balance(100, 15)) == (ledger.verify(), ledger.balance())

    def test_holding_exactly_what_is_available(self, ledger: ib.Ledger) -> None:
        """A hold of all 100 tokens leaves 0 available, and then 1 more is refused."""
        ledger.hold(100, key="all")
        assert 0 == ledger.balance().available
        with pytest.raises(ib.InsufficientTokens):
            ledger.debit(1, key="one")

    def test_unknown_holds(self, ledger: ib.Ledger) -> None:
        """An unknown key or id, or an entry that is not a hold, is UnknownEntry."""
        for ref in ("nope", 99, "opening", 1):
            with pytest.raises(ib.UnknownEntry, match="hold"):
                ledger.capture(ref)
        with pytest.raises(TypeError):
            ledger.void(1.5)

    def test_open_holds(self, ledger: ib.Ledger) -> None:
        """open_holds lists the holds not yet closed, oldest first."""
        ledger.hold(1, key="a")
        ledger.hold(2, key="b")
        ledger.hold(3, key="c")
        ledger.void("b")
        assert ["a", "c"] == [h.key for h in ledger.open_holds()]


class TestExpiry:
    """Holds with an expiry lapse: they cannot be captured, and expire_holds releases them."""

    def test_expire_holds_releases_due_holds(self, ledger: ib.Ledger, clock: Clock) -> None:
        """Of holds due at +60 s and +120 s, expire_holds at +90 s releases the first."""
        ledger.hold(10, key="soon", expires_at=T0 + timedelta(seconds=60))
        ledger.hold(20, key="later", expires_at=T0 + timedelta(seconds=120))
        ledger.hold(30, key="never")
        clock.advance(seconds=90)
        written = ledger.expire_holds()
        assert [("expire", 10, "soon:expire")] == [(e.kind, e.tokens, e.key) for e in written]
        assert ib.Balance(100, 50) == ledger.balance()
        assert () == ledger.expire_holds()
        late = ledger.expire_holds(T0 + timedelta(days=1))
        assert ["later"] == [ledger.get(e.ref).key for e in late]
        assert ib.Balance(100, 30) == ledger.balance()
        assert "expired" == ledger.get_hold("soon").status

    def test_an_expired_hold_cannot_be_captured(self, ledger: ib.Ledger, clock: Clock) -> None:
        """Past its expires_at, a hold refuses capture even before expire_holds runs."""
        ledger.hold(10, key="h", expires_at=T0 + timedelta(seconds=60))
        clock.advance(seconds=60)
        with pytest.raises(ib.HoldClosed, match="expired"):
            ledger.capture("h")

    def test_expiry_must_be_in_the_future(self, ledger: ib.Ledger) -> None:
        """A hold that would lapse at once is refused; a naive time is too."""
        with pytest.raises(ValueError, match="future"):
            ledger.hold(1, key="h", expires_at=T0)
        with pytest.raises(ValueError, match="naive"):
            ledger.hold(1, key="h", expires_at=datetime(2030, 1, 1))

    def test_a_replayed_hold_may_be_past_its_expiry(self, ledger: ib.Ledger, clock: Clock) -> None:
        """Replaying a hold after its expiry returns it (now expired), no error."""
        when = T0 + timedelta(seconds=60)
        ledger.hold(10, key="h", expires_at=when)
        clock.advance(seconds=120)
        ledger.expire_holds()
        assert "expired" == ledger.hold(10, key="h", expires_at=when).status

    def test_an_expiry_key_already_taken_gets_a_suffix(self, ledger: ib.Ledger,
                                                        clock: Clock) -> None:
        """A user key equal to the derived expiry key does not block the expiry."""
        ledger.hold(10, key="h", expires_at=T0 + timedelta(seconds=1))
        ledger.credit(1, key="h:expire")
        clock.advance(seconds=2)
        assert ["h:expire:2"] == [e.key for e in ledger.expire_holds()]


class TestDebitAndRefund:
    """Debits spend at once; refunds give back at most what a debit or capture spent."""

    def test_debit_spends(self, ledger: ib.Ledger) -> None:
        """debit(30) of 100 leaves 70."""
        entry = ledger.debit(30, key="d", tags={"user": "ana"})
        assert (("debit", 30), ((None, 30),)) == ((entry.kind, entry.tokens), entry.styles)
        assert ib.Balance(70, 0) == ledger.balance()

    def test_debit_over_available(self, ledger: ib.Ledger) -> None:
        """debit(101) of 100 raises InsufficientTokens(101, 100)."""
        with pytest.raises(ib.InsufficientTokens, match="short by 1"):
            ledger.debit(101, key="d")

    def test_refunds_add_up_to_at_most_the_debit(self, ledger: ib.Ledger) -> None:
        """After debit(20) and refund(15), refund(10) is refused with 5 left; refund() takes 5."""
        ledger.debit(20, key="d")
        ledger.refund("d", 15, key="r1")
        with pytest.raises(ib.AmountTooLarge) as caught:
            ledger.refund("d", 10, key="r2")
        assert (10, 5) == (caught.value.requested, caught.value.limit)
        assert 5 == ledger.refund("d", key="r3").tokens
        with pytest.raises(ib.AmountTooLarge):
            ledger.refund("d", key="r4")
        assert ib.Balance(100, 0) == ledger.balance()

    def test_captures_are_refundable(self, ledger: ib.Ledger) -> None:
        """A capture is spend: it can be refunded, up to what it captured."""
        ledger.hold(15, key="h")
        capture = ledger.capture("h", 10)
        assert 10 == ledger.refund(capture, key="r").tokens
        assert ib.Balance(100, 0) == ledger.balance()

    def test_only_spend_is_refundable(self, ledger: ib.Ledger) -> None:
        """Refunding a credit or a hold is UnknownEntry (no such debit or capture)."""
        ledger.hold(5, key="h")
        for ref in ("opening", "h", 99):
            with pytest.raises(ib.UnknownEntry, match="debit or capture"):
                ledger.refund(ref, key="r")

    def test_refunds_keep_the_tags_of_their_entry(self, ledger: ib.Ledger) -> None:
        """A refund carries its debit's tags, so spend by tag nets out."""
        ledger.debit(8, key="d", tags={"project": "site"})
        refund = ledger.refund("d", 3, key="r")
        assert {"project": "site"} == dict(refund.tags)
        assert {"site": 5} == ledger.spend(by="tag:project")


class TestIdempotency:
    """Same key + same request: the original entry; same key + another request: a conflict."""

    def test_replays_return_the_original(self, ledger: ib.Ledger, clock: Clock) -> None:
        """Every write replayed later returns the same entry and changes nothing."""
        first = (ledger.credit(5, key="c", memo="m"), ledger.debit(3, key="d"),
                 ledger.hold(4, key="h").entry, ledger.refund("d", 1, key="r"))
        clock.advance(hours=1)
        balance = ledger.balance()
        again = (ledger.credit(5, key="c", memo="m"), ledger.debit(3, key="d"),
                 ledger.hold(4, key="h").entry, ledger.refund("d", 1, key="r"))
        assert first == again
        assert (balance, 5) == (ledger.balance(), ledger.verify())

    @pytest.mark.parametrize("write", [
        lambda led: led.credit(6, key="c"),
        lambda led: led.credit(5, key="c", memo="other"),
        lambda led: led.credit(5, key="c", tags={"a": "b"}),
        lambda led: led.debit(5, key="c"),
        lambda led: led.hold(5, key="c"),
    ])
    def test_other_content_conflicts(self, ledger: ib.Ledger, write: object) -> None:
        """A different amount, memo, tags or kind under a used key is IdempotencyConflict."""
        ledger.credit(5, key="c")
        with pytest.raises(ib.IdempotencyConflict, match="'c'"):
            write(ledger)  # type: ignore[operator]
        assert ib.Balance(105, 0) == ledger.balance()

    def test_a_replay_is_not_refused_for_lack_of_tokens(self, ledger: ib.Ledger) -> None:
        """A debit that took everything can be replayed although nothing is left."""
        first = ledger.debit(100, key="all")
        assert first == ledger.debit(100, key="all")

    def test_a_refund_replay_repeats_its_request(self, ledger: ib.Ledger) -> None:
        """refund(d) and refund(d, 10) are different requests, even when both mean 10."""
        ledger.debit(10, key="d")
        ledger.refund("d", key="r")
        with pytest.raises(ib.IdempotencyConflict):
            ledger.refund("d", 10, key="r")


class TestEstimates:
    """An Estimate as amount records its total, styles and price table."""

    def test_debit_of_an_estimate(self, ledger: ib.Ledger, table: ib.PriceTable) -> None:
        """2 flux-dev + 1 anime: 35 tokens, split by style, with the table's version."""
        cost = estimate([Call("flux-dev", 2), Call("anime")], table)
        entry = ledger.debit(cost, key="job")
        assert (35, (("anime", 5), ("flux-dev", 30))) == (entry.tokens, entry.styles)
        assert (table.version, table.digest) == (entry.table_version, entry.table_digest)
        assert {"anime": 5, "flux-dev": 30} == ledger.spend(by="style")

    def test_a_default_style_call_is_spend_of_that_style(self, ledger: ib.Ledger,
                                                         table: ib.PriceTable) -> None:
        """Call() is imagine-turbo: its token is spend of imagine-turbo, not of no style."""
        ledger.debit(estimate([Call(), Call("flux-dev")], table), key="job")
        assert {"flux-dev": 15, "imagine-turbo": 1} == ledger.spend(by="style")

    def test_a_partial_capture_splits_the_styles(self, ledger: ib.Ledger,
                                                 table: ib.PriceTable) -> None:
        """Capturing 21 of a 35-token hold (30 flux-dev, 5 anime) splits 18 and 3."""
        hold = ledger.hold(estimate([Call("flux-dev", 2), Call("anime")], table), key="job")
        entry = ledger.capture(hold, 21)
        assert (("anime", 3), ("flux-dev", 18)) == entry.styles
        assert entry.table_digest == table.digest

    def test_refunds_never_give_back_more_of_a_style_than_was_spent(
            self, ledger: ib.Ledger, table: ib.PriceTable) -> None:
        """Refunding 1 token at a time brings every style back to exactly 0."""
        ledger.debit(estimate([Call("flux-dev"), Call("anime"), Call("imagine-turbo")], table),
                     key="job")
        for n in range(21):
            ledger.refund("job", 1, key=f"r{n}")
        assert {"anime": 0, "flux-dev": 0, "imagine-turbo": 0} == ledger.spend(by="style")

    def test_split(self) -> None:
        """_split shares in proportion, largest remainder first, summing to the total."""
        assert (("a", 7), ("b", 3)) == _split(10, (("a", 10), ("b", 5)))
        assert (("a", 1),) == _split(1, (("a", 1), ("b", 1)))
        assert ((None, 4),) == _split(4, ())


class TestQueries:
    """entries() filters by time and tags; spend() groups by style, day or tag."""

    @pytest.fixture
    def busy(self, ledger: ib.Ledger, clock: Clock) -> ib.Ledger:
        ledger.debit(10, key="a", tags={"project": "site", "user": "ana"})
        clock.advance(days=1)
        ledger.hold(20, key="b", tags={"project": "app"})
        ledger.capture("b", 15)
        clock.advance(days=1)
        ledger.debit(5, key="c")
        ledger.refund("a", 4, key="d")
        return ledger

    def test_entries_by_time(self, busy: ib.Ledger) -> None:
        """since is inclusive, until exclusive."""
        day2 = T0 + timedelta(days=1)
        assert ["b", "b:capture"] == [
            e.key for e in busy.entries(since=day2, until=day2 + timedelta(days=1))]
        assert ["opening", "a"] == [e.key for e in busy.entries(until=day2)]

    def test_entries_by_tags(self, busy: ib.Ledger) -> None:
        """Every tag given must match."""
        assert ["a", "d"] == [e.key for e in busy.entries(tags={"project": "site"})]
        assert ["a", "d"] == [e.key for e in busy.entries(tags={"user": "ana", "project": "site"})]
        assert [] == list(busy.entries(tags={"user": "ana", "project": "app"}))

    def test_spend_by_day(self, busy: ib.Ledger) -> None:
        """Debits and captures count on their day; a refund on the day of what it refunds."""
        assert {"2026-03-01": 6, "2026-03-02": 15, "2026-03-03": 5} == busy.spend(by="day")

    def test_spend_by_tag_and_style(self, busy: ib.Ledger) -> None:
        """Untagged spend is under None; plain amounts have style None."""
        assert {None: 5, "app": 15, "site": 6} == busy.spend(by="tag:project")
        assert {None: 26} == busy.spend()

    def test_spend_by_something_else(self, busy: ib.Ledger) -> None:
        """An unknown grouping is a ValueError naming it."""
        for by in ("week", "tag:"):
            with pytest.raises(ValueError, match=by):
                busy.spend(by=by)

    def test_get(self, busy: ib.Ledger) -> None:
        """get finds an entry by id or key, and UnknownEntry names a missing one."""
        assert busy.get("b:capture") == busy.get(4)
        with pytest.raises(ib.UnknownEntry, match="'zz'"):
            busy.get("zz")


class TestBatch:
    """A batch is one transaction: all of its writes or none."""

    def test_all(self, ledger: ib.Ledger) -> None:
        """Writes in a batch are seen by later writes in it, and kept."""
        with ledger.batch():
            ledger.credit(10, key="a")
            ledger.debit(110, key="b")
            assert 0 == ledger.balance().available
        assert (3, ib.Balance(0, 0)) == (ledger.verify(), ledger.balance())

    def test_nothing(self, ledger: ib.Ledger) -> None:
        """An exception undoes the whole batch, holds, keys and balance included."""
        def overdraw() -> None:
            with ledger.batch():
                ledger.hold(50, key="h")
                ledger.credit(10, key="c")
                ledger.debit(61, key="d")

        with pytest.raises(ib.InsufficientTokens):
            overdraw()
        assert (1, ib.Balance(100, 0), ()) == (
            ledger.verify(), ledger.balance(), ledger.open_holds())
        assert 10 == ledger.credit(10, key="c").tokens

    def test_a_caught_refusal_keeps_the_rest(self, ledger: ib.Ledger) -> None:
        """A refused write inside a batch writes nothing; the others still commit."""
        with ledger.batch():
            ledger.credit(10, key="c")
            with pytest.raises(ib.InsufficientTokens):
                ledger.debit(1000, key="d")
        assert (2, ib.Balance(110, 0)) == (ledger.verify(), ledger.balance())


class TestExport:
    """Exports in JSON lines and CSV; JSON lines import into a new ledger, chain verified."""

    @pytest.fixture
    def full(self, ledger: ib.Ledger, table: ib.PriceTable) -> ib.Ledger:
        ledger.hold(estimate([Call("flux-dev")], table), key="h", tags={"p": "x"},
                    expires_at=T0 + timedelta(hours=1))
        ledger.capture("h", 7)
        ledger.debit(9, key="d", memo="naïve memo, with commas")
        ledger.refund("d", 2, key="r")
        ledger.hold(3, key="open")
        return ledger

    def jsonl(self, ledger: ib.Ledger) -> list[str]:
        out = io.StringIO()
        ledger.export(out)
        return out.getvalue().splitlines()

    def test_round_trip(self, full: ib.Ledger, clock: Clock) -> None:
        """Export then import gives the same entries, balance and open holds."""
        lines = self.jsonl(full)
        assert 6 == len(lines)
        with ib.Ledger.from_jsonl(lines, clock=clock) as copy:
            assert list(full.entries()) == list(copy.entries())
            assert full.balance() == copy.balance()
            assert [h.key for h in full.open_holds()] == [h.key for h in copy.open_holds()]
            assert 6 == copy.verify()
            assert 7 == copy.credit(1, key="later").id

    def test_import_into_a_file(self, full: ib.Ledger, tmp_path: Path) -> None:
        """Importing into a new SQLite file keeps everything."""
        with ib.Ledger.from_jsonl(self.jsonl(full), path=tmp_path / "l.db") as copy:
            assert list(full.entries()) == list(copy.entries())
        with ib.Ledger.open(tmp_path / "l.db") as reopened:
            assert (6, full.balance()) == (reopened.verify(), reopened.balance())

    def test_import_refuses_a_ledger_with_entries(self, full: ib.Ledger, tmp_path: Path) -> None:
        """A file that already holds entries is not imported into."""
        with ib.Ledger.open(tmp_path / "l.db") as other:
            other.credit(1, key="x")
        with pytest.raises(ib.LedgerStoreError, match="already holds entries"):
            ib.Ledger.from_jsonl(self.jsonl(full), path=tmp_path / "l.db")

    @pytest.mark.parametrize(("field", "value"), [("tokens", 8), ("key", "other"),
                                                  ("memo", "x"), ("hash", "0" * 64)])
    def test_import_refuses_a_changed_entry(self, full: ib.Ledger, field: str,
                                            value: object) -> None:
        """A changed entry 4 is refused, naming entry 4."""
        lines = self.jsonl(full)
        document = json.loads(lines[3])
        document[field] = value
        lines[3] = json.dumps(document)
        with pytest.raises(ib.LedgerCorrupted) as caught:
            ib.Ledger.from_jsonl(lines)
        assert 4 == caught.value.entry

    def test_import_refuses_missing_and_reordered_entries(self, full: ib.Ledger) -> None:
        """A gap names the missing entry; a swap is caught at the first moved entry."""
        lines = self.jsonl(full)
        with pytest.raises(ib.LedgerCorrupted) as caught:
            ib.Ledger.from_jsonl(lines[:2] + lines[3:])
        assert 3 == caught.value.entry
        with pytest.raises(ib.LedgerCorrupted) as caught:
            ib.Ledger.from_jsonl([lines[1], lines[0], *lines[2:]])
        assert 1 == caught.value.entry

    def test_import_refuses_a_line_that_is_no_entry(self, full: ib.Ledger) -> None:
        """A line that is not an entry document is a BadRecordError naming the line."""
        lines = self.jsonl(full)
        lines[2] = '{"kind": "credit"}'
        with pytest.raises(ib.BadRecordError, match=":3:"):
            ib.Ledger.from_jsonl(lines, source="x.jsonl")

    def test_import_refuses_a_rehashed_chain_that_breaks_the_rules(
            self, ledger: ib.Ledger) -> None:
        """A chain re-hashed to debit more than was there still fails: balance below 0."""
        lines = self.jsonl(ledger)
        entry = ib.Entry.from_dict(json.loads(lines[0]))
        debit = attrs.evolve(entry, id=2, kind="debit", key="steal", tokens=101)
        debit = attrs.evolve(debit, hash=chain_hash(entry.hash, debit.to_row()[:-1]))
        with pytest.raises(ib.LedgerCorrupted, match="below 0") as caught:
            ib.Ledger.from_jsonl([lines[0], json.dumps(debit.to_dict())])
        assert 2 == caught.value.entry

    def test_csv(self, full: ib.Ledger) -> None:
        """CSV has a header and one row an entry; empty cells for None, tags as JSON."""
        out = io.StringIO()
        assert 6 == full.export(out, format="csv")
        rows = list(csv.DictReader(io.StringIO(out.getvalue())))
        assert ["opening", "h", "h:capture", "d", "r", "open"] == [r["key"] for r in rows]
        assert ('{"p":"x"}', "", "naïve memo, with commas") == (
            rows[1]["tags"], rows[1]["memo"], rows[3]["memo"])
        assert full.get("h").expires_at is not None
        with pytest.raises(ValueError, match="xml"):
            full.export(out, format="xml")  # type: ignore[arg-type]


class TestValueObjects:
    """Entry, Hold and Balance are frozen and say what they hold."""

    def test_frozen(self, ledger: ib.Ledger) -> None:
        """Assigning to a field raises; tags are read-only."""
        entry = ledger.get(1)
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            entry.tokens = 5  # type: ignore[misc]
        with pytest.raises(TypeError):
            entry.tags["x"] = "y"  # type: ignore[index]

    def test_balance_agrees(self) -> None:
        """Balance(80, 15) has available 65; an inconsistent available is refused."""
        assert 65 == ib.Balance(80, 15).available
        assert ib.Balance(80, 15) == ib.Balance(80, 15, 65)
        with pytest.raises(ValueError, match="65"):
            ib.Balance(80, 15, 70)

    def test_entry_round_trips(self, ledger: ib.Ledger) -> None:
        """to_dict/from_dict and to_row/from_row are inverses."""
        entry = ledger.hold(5, key="h", tags={"a": "b"},
                            expires_at=T0 + timedelta(seconds=1, microseconds=7)).entry
        assert entry == ib.Entry.from_dict(json.loads(json.dumps(entry.to_dict())))
        assert entry == ib.Entry.from_row(entry.to_row())
        assert {"posted": 100, "held": 5, "available": 95} == ledger.balance().to_dict()
        assert "open" == ledger.get_hold("h").to_dict()["status"]

    def test_closed_ledger(self) -> None:
        """A closed ledger refuses to be used."""
        ledger = ib.Ledger.memory()
        ledger.close()
        with pytest.raises(ValueError, match="closed"):
            ledger.credit(1, key="a")


class TestPickling:
    """Entry, Hold, Balance and Budget survive pickle and deepcopy equal to the original."""

    @staticmethod
    def values(ledger: ib.Ledger) -> list[object]:
        ledger.hold(5, key="h", tags={"project": "site"},
                    expires_at=T0 + timedelta(days=1))
        ledger.capture("h", 3)
        ledger.hold(estimate([Call("flux-dev", 2)]), key="open")
        return [
            ledger.get(1), ledger.get("h"), ledger.get("h:capture"), ledger.get_hold("h"),
            ledger.get_hold("open"), ledger.balance(),
            ib.Budget("site", 50, period="week", scope={"project": "site"}, hard=True,
                      alerts=(0.25, 1)),
            ib.Budget("all", 10),
        ]

    @pytest.mark.parametrize("copy", [
        pytest.param(lambda value: pickle.loads(pickle.dumps(value)), id="pickle"),
        pytest.param(copy.deepcopy, id="deepcopy"),
    ])
    def test_round_trip(self, ledger: ib.Ledger, copy: Callable[[object], object]) -> None:
        """Each value comes back equal, with the same repr, its mappings still read-only."""
        for value in self.values(ledger):
            again = copy(value)
            assert value == again
            assert repr(value) == repr(again)
        entry = copy(ledger.get("h"))
        assert isinstance(entry, ib.Entry)
        with pytest.raises(TypeError):
            entry.tags["x"] = "y"  # type: ignore[index]
        budget = copy(ib.Budget("site", 50, scope={"project": "site"}))
        assert isinstance(budget, ib.Budget)
        with pytest.raises(TypeError):
            budget.scope["x"] = "y"  # type: ignore[index]


class TestPackage:
    """The ledger's names are exported, and importing the package stays light."""

    def test_names_exported(self) -> None:
        """Ledger, Entry, Hold and Balance are in __all__ and importable from the top."""
        for name in ("Balance", "Entry", "Hold", "Ledger", "AmountTooLarge", "HoldClosed",
                     "LedgerStoreError"):
            assert name in ib.__all__
            assert getattr(ib, name) is not None
        with pytest.raises(AttributeError, match="Nope"):
            ib.Nope  # type: ignore[attr-defined]  # noqa: B018

    def test_import_does_not_load_sqlite(self) -> None:
        """`import imagine_billing` does not import sqlite3 (nor does using Ledger.memory)."""
        code = ("import sys, imagine_billing as ib; ib.Ledger.memory().close(); "
                "print('sqlite3' in sys.modules)")
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                timeout=60, check=True)
        assert "False" == result.stdout.strip()


class TestNote:
    """note(): a fact in the chain that moves no tokens (unpriced calls, drift)."""

    def test_note_moves_no_tokens(self, ledger: ib.Ledger) -> None:
        """A note is a 0-token entry; the balance is unchanged and the chain verifies."""
        before = ledger.balance()
        note = ledger.note(key="drift-1", memo="402 while 100 were available",
                           tags={"drift": "true"})
        assert ("note", 0, "true") == (note.kind, note.tokens, note.tags["drift"])
        assert before == ledger.balance()
        assert 2 == ledger.verify()

    def test_replay_and_conflict(self, ledger: ib.Ledger) -> None:
        """The same key and memo replays; another memo under the key is a conflict."""
        first = ledger.note(key="n", memo="one")
        assert first == ledger.note(key="n", memo="one")
        with pytest.raises(ib.IdempotencyConflict):
            ledger.note(key="n", memo="two")

    def test_a_note_needs_a_memo(self, ledger: ib.Ledger) -> None:
        """An empty memo is refused."""
        with pytest.raises(ValueError, match="memo"):
            ledger.note(key="n", memo="")

    def test_notes_survive_export_and_import(self, ledger: ib.Ledger, clock: Clock) -> None:
        """A ledger with a note exports and imports with its chain intact."""
        ledger.note(key="n", memo="unpriced call sent at cost 0")
        out = io.StringIO()
        ledger.export(out)
        with ib.Ledger.from_jsonl(out.getvalue().splitlines(), clock=clock) as copy:
            assert ["credit", "note"] == [e.kind for e in copy.entries()]
            assert ledger.balance() == copy.balance()

    def test_a_note_with_tokens_is_corruption(self, ledger: ib.Ledger) -> None:
        """A rehashed note that claims tokens is refused on import."""
        out = io.StringIO()
        ledger.note(key="n", memo="m")
        ledger.export(out)
        lines = out.getvalue().splitlines()
        forged = json.loads(lines[1])
        forged["tokens"] = 5
        row = ib.Entry.from_dict(forged).to_row()
        forged["hash"] = chain_hash(json.loads(lines[0])["hash"], row[:-1])
        with pytest.raises(ib.LedgerCorrupted, match="moves no tokens"):
            ib.Ledger.from_jsonl([lines[0], json.dumps(forged)])


class TestCsvExport:
    """CSV export keeps one row per entry whatever the memo holds."""

    def test_memo_with_line_breaks(self, ledger: ib.Ledger) -> None:
        """A memo with a bare \\r (no \\n) comes back whole through a CSV reader."""
        ledger.credit(1, key="odd", memo="a\rb")
        out = io.StringIO()
        ledger.export(out, format="csv")
        rows = list(csv.DictReader(io.StringIO(out.getvalue(), newline="")))
        assert ["opening", "odd"] == [r["key"] for r in rows]
        assert "a\rb" == rows[1]["memo"]


@pytest.fixture(params=["memory", "sqlite"])
def either(request: pytest.FixtureRequest, tmp_path: Path,
           clock: Clock) -> Iterator[ib.Ledger]:
    """A ledger with 100 tokens credited, in memory or in a SQLite file."""
    if request.param == "memory":
        opened = ib.Ledger.memory(clock=clock)
    else:
        opened = ib.Ledger.open(tmp_path / "ledger.db", clock=clock, durable=False)
    with opened:
        opened.credit(100, key="opening")
        yield opened


def keys(ledger: ib.Ledger) -> list[str]:
    return [e.key for e in ledger.entries()]


def rehashed(documents: list[dict[str, object]]) -> list[str]:
    """Export lines of ``documents`` with every hash recomputed: a forger's chain."""
    lines, previous = [], GENESIS
    for document in documents:
        entry = ib.Entry.from_dict({**document, "hash": ""})
        previous = chain_hash(previous, entry.to_row()[:-1])
        lines.append(json.dumps({**document, "hash": previous}))
    return lines


class TestNestedBatch:
    """A batch inside a batch is all or nothing on its own, on both stores."""

    @staticmethod
    def failing(ledger: ib.Ledger, *writes: Callable[[], object]) -> None:
        """Make ``writes`` in a batch, then raise RuntimeError out of it."""
        with ledger.batch():
            for write in writes:
                write()
            raise RuntimeError

    def test_a_failed_inner_batch_undoes_only_its_writes(self, either: ib.Ledger) -> None:
        """The inner block's debit is undone, the outer block's is kept."""
        with either.batch():
            either.debit(1, key="o1")
            with pytest.raises(RuntimeError):
                self.failing(either, lambda: either.debit(2, key="inner1"))
            assert ib.Balance(99, 0) == either.balance()
            either.debit(3, key="o2")
        assert (["opening", "o1", "o2"], ib.Balance(96, 0), 3) == (
            keys(either), either.balance(), either.verify())
        assert 2 == either.debit(2, key="inner1").tokens  # the key is free again

    def test_a_failed_outer_batch_undoes_the_inner_one_too(self, either: ib.Ledger) -> None:
        """An exception in the outer block undoes the inner block that had succeeded."""
        def inner() -> None:
            with either.batch():
                either.debit(2, key="inner")

        with pytest.raises(RuntimeError):
            self.failing(either, lambda: either.hold(10, key="h"), inner)
        assert (["opening"], ib.Balance(100, 0), (), 1) == (
            keys(either), either.balance(), either.open_holds(), either.verify())

    def test_an_inner_batch_undoes_holds_and_closings(self, either: ib.Ledger) -> None:
        """Undoing an inner block reopens the hold it captured and drops the hold it placed."""
        hold = either.hold(10, key="h")
        def overdraw() -> None:
            with either.batch():
                either.capture(hold, 4)
                either.hold(5, key="h2")
                either.debit(1000, key="too-much")

        with either.batch():
            with pytest.raises(ib.InsufficientTokens):
                overdraw()
            assert (["h"], ib.Balance(100, 10)) == (
                [h.key for h in either.open_holds()], either.balance())
            either.capture(hold, 6)
        assert (ib.Balance(94, 0), 3) == (either.balance(), either.verify())


class TestSpendTimes:
    """spend() puts a refund where spent(), spend_slices() and budgets put it: at the time of
    the debit or capture it gives back."""

    def test_a_refund_counts_on_the_day_of_its_debit(self, either: ib.Ledger,
                                                      clock: Clock) -> None:
        """Debit 10 on 1 March, refund 4 on 2 March: 6 spent on 1 March, none on the 2nd."""
        either.debit(10, key="d", tags={"p": "x"})
        clock.advance(days=1)
        either.refund("d", 4, key="r")
        day2 = datetime(2026, 3, 2, tzinfo=UTC)
        assert {"2026-03-01": 6} == either.spend(by="day")
        assert {} == either.spend(by="tag:p", since=day2)
        assert {"x": 6} == either.spend(by="tag:p", until=day2)
        assert {None: 6} == either.spend(by="style", until=day2)
        assert 6 == either.spent(until=day2)

    def test_styles_days_and_tags_of_a_mix(self, either: ib.Ledger, clock: Clock,
                                           table: ib.PriceTable) -> None:
        """Styles, days and tags agree with each other, captures and refunds included."""
        hold = either.hold(estimate([Call("flux-dev"), Call("anime")], table), key="h",
                           tags={"p": "x"})
        either.capture(hold, 10)
        clock.advance(days=1)
        either.debit(3, key="d")
        either.refund("h:capture", 5, key="r")
        assert {"flux-dev": 4, "anime": 1, None: 3} == either.spend()
        assert {"2026-03-01": 5, "2026-03-02": 3} == either.spend(by="day")
        assert {None: 3, "x": 5} == either.spend(by="tag:p")


class TestHashChain:
    """The hash of an entry is pinned, and covers every stored field."""

    ROW = (1, "capture", "job-7:capture", 7, 1_772_366_400_000_000, 3, "a memo",
           '{"p":"x"}', '[["flux-dev",7]]', "1.0.0", "sha256:" + "ab" * 32,
           1_772_370_000_000_000, "f" * 64)

    def test_the_hash_of_a_fixed_entry_is_pinned(self) -> None:
        """An existing ledger's hashes stay valid: the encoding must never change."""
        assert ("0d59ab44371c167c6788d34b2416cb46efcc41f3a8aacd6ab5129ccddea14435"
                == chain_hash(GENESIS, self.ROW))

    @given(st.tuples(
        st.integers(), st.text(), st.text(), st.integers(), st.integers(),
        st.none() | st.integers(), st.none() | st.text(), st.text(), st.text(),
        st.none() | st.text(), st.none() | st.text(), st.none() | st.integers(), st.text()),
        st.text())
    @example(  # types a tampered file may hold: each as the canonical encoder writes it
        (True, "credit", "k", 1.5, 2, False, b"x", "{}", "[]", None, None, None, "f"), "p")
    def test_the_fast_encoding_is_the_canonical_one(self, row: tuple[object, ...],
                                                    previous: str) -> None:
        """For every row of the stored types, the hash is sha256 of the canonical JSON."""
        try:
            text = canonical([previous, *row])
        except TypeError:  # bytes: no JSON at all, whichever way it is written
            with pytest.raises(TypeError):
                chain_hash(previous, row)
            return
        assert hashlib.sha256(text.encode("utf-8")).hexdigest() == chain_hash(previous, row)

    @given(st.tuples(
        st.integers(), st.text(), st.text(), st.integers(), st.integers(),
        st.none() | st.integers(), st.none() | st.text(), st.text(), st.text(),
        st.none() | st.text(), st.none() | st.text(), st.none() | st.integers(), st.text()),
        st.text() | st.just(GENESIS), st.text())
    @example(  # types a tampered file may hold: each as the canonical encoder writes it
        (True, "credit", "k", 1.5, 2, False, b"x", "{}", "[]", None, None, None, "f"), "p", "h")
    @example(ROW, GENESIS, "h")
    @example((*ROW[:-1], 'a"b\\c'), GENESIS, "h")  # a fingerprint that needs quoting
    def test_the_hash_of_a_stored_row(self, row: tuple[object, ...], previous: str,
                                      stored: str) -> None:
        """entry_hash of a stored row (its hash last) is chain_hash of its fields."""
        try:
            expected = chain_hash(previous, row)
        except TypeError:  # bytes: no JSON at all
            with pytest.raises(TypeError):
                entry_hash(previous, (*row, stored))
            return
        assert expected == entry_hash(previous, (*row, stored))

    @pytest.mark.parametrize("field", range(len(ROW)))
    def test_every_field_changes_the_hash(self, field: int) -> None:
        """Changing any one stored field (expires_at, styles, fingerprint, ref...) changes it."""
        changed = list(self.ROW)
        changed[field] = None if self.ROW[field] is not None else 1
        assert chain_hash(GENESIS, self.ROW) != chain_hash(GENESIS, tuple(changed))


class TestFingerprints:
    """A replay must repeat every part of its request: each part is in the fingerprint."""

    def test_a_hold_with_other_tags_conflicts(self, ledger: ib.Ledger) -> None:
        """hold(5, key=k, tags a) then hold(5, key=k, tags b) is a conflict."""
        ledger.hold(5, key="k", tags={"p": "a"})
        with pytest.raises(ib.IdempotencyConflict):
            ledger.hold(5, key="k", tags={"p": "b"})

    def test_a_debit_with_another_memo_conflicts(self, ledger: ib.Ledger) -> None:
        """debit(5, key=k, memo a) then debit(5, key=k, memo b) is a conflict."""
        ledger.debit(5, key="k", memo="a")
        with pytest.raises(ib.IdempotencyConflict):
            ledger.debit(5, key="k", memo="b")
        assert ib.Balance(95, 0) == ledger.balance()


class TestReplayRules:
    """An import (and verify) refuses a chain, even one re-hashed throughout, whose entries
    the ledger could not have written."""

    @pytest.fixture
    def documents(self, ledger: ib.Ledger, clock: Clock) -> list[dict[str, object]]:
        ledger.hold(10, key="h", expires_at=T0 + timedelta(seconds=60))
        ledger.debit(5, key="d")
        out = io.StringIO()
        ledger.export(out)
        return [json.loads(line) for line in out.getvalue().splitlines()]

    def refusal(self, lines: list[str]) -> ib.LedgerCorrupted:
        with pytest.raises(ib.LedgerCorrupted) as caught:
            ib.Ledger.from_jsonl(lines)
        return caught.value

    def entry(self, document: dict[str, object], **changes: object) -> dict[str, object]:
        return {**document, "fingerprint": "f" * 64, **changes}

    def test_the_control_imports(self, documents: list[dict[str, object]]) -> None:
        """The re-hashed chain itself, unchanged, imports."""
        with ib.Ledger.from_jsonl(rehashed(documents)) as copy:
            assert 3 == copy.verify()

    def test_refunds_past_the_debit(self, documents: list[dict[str, object]]) -> None:
        """Two refunds of 3 of a debit of 5: the second is refused."""
        refund = self.entry(documents[2], kind="refund", tokens=3, ref=3, styles=[[None, 3]])
        lines = rehashed([*documents, {**refund, "id": 4, "key": "r1"},
                          {**refund, "id": 5, "key": "r2"}])
        caught = self.refusal(lines)
        assert (5, "2 left to refund") == (caught.entry, caught.reason[-16:])

    def test_a_capture_past_the_hold(self, documents: list[dict[str, object]]) -> None:
        """A capture of 11 of a hold of 10 is refused."""
        capture = self.entry(documents[1], id=4, kind="capture", key="c", tokens=11, ref=2,
                             expires_at=None)
        assert 4 == self.refusal(rehashed([*documents, capture])).entry

    def test_a_partial_void(self, documents: list[dict[str, object]]) -> None:
        """A void of 4 of a hold of 10 is refused."""
        void = self.entry(documents[1], id=4, kind="void", key="v", tokens=4, ref=2,
                          expires_at=None, styles=[])
        assert 4 == self.refusal(rehashed([*documents, void])).entry

    def test_an_expiry_before_the_hold_lapsed(self, documents: list[dict[str, object]]) -> None:
        """An expire entry written before the hold's expires_at is refused."""
        expire = self.entry(documents[1], id=4, kind="expire", key="x", tokens=10, ref=2,
                            expires_at=None, styles=[])
        caught = self.refusal(rehashed([*documents, expire]))
        assert (4, True) == (caught.entry, "before its expiry" in caught.reason)
        expire["at"] = "2026-03-01T12:01:00Z"  # exactly at expires_at: allowed
        with ib.Ledger.from_jsonl(rehashed([*documents, expire])) as copy:
            assert ib.Balance(95, 0) == copy.balance()

    def test_a_capture_after_the_hold_lapsed(self, documents: list[dict[str, object]]) -> None:
        """A capture written at or after the hold's expires_at is refused."""
        capture = self.entry(documents[1], id=4, kind="capture", key="c", tokens=10, ref=2,
                             expires_at=None, at="2026-03-01T12:01:00Z")
        assert 4 == self.refusal(rehashed([*documents, capture])).entry

    @pytest.mark.parametrize("path", [None, "ledger.db"])
    def test_amounts_past_the_limits(self, documents: list[dict[str, object]], tmp_path: Path,
                                     path: str | None) -> None:
        """A credit of 2**63, or credits past a balance of 2**62: LedgerCorrupted, in memory
        or SQLite (not an OverflowError)."""
        credit = {**documents[0], "fingerprint": "f" * 64}
        huge = rehashed([{**credit, "tokens": 2**63}])
        many = rehashed([{**credit, "id": n, "key": f"c{n}", "tokens": 2**53 - 1}
                         for n in range(1, 515)])  # 513 of them pass 2**62
        for lines, entry, limit in ((huge, 1, "2**53-1"), (many, 513, "2**62")):
            with pytest.raises(ib.LedgerCorrupted) as caught:
                ib.Ledger.from_jsonl(lines, path=None if path is None else tmp_path / path)
            assert (entry, True) == (caught.value.entry, limit in caught.value.reason)

    @pytest.mark.parametrize(("field", "value"), [
        ("ref", [1]), ("styles", "x"), ("styles", [[None, "3"]]), ("tags", {"a": 1}),
        ("key", 5), ("memo", 5), ("fingerprint", None)])
    def test_a_field_of_another_type(self, documents: list[dict[str, object]], field: str,
                                     value: object) -> None:
        """A field of the wrong JSON type is a bad record naming its line, not a TypeError."""
        documents[2][field] = value
        with pytest.raises(ib.BadRecordError, match=":3:"):
            ib.Ledger.from_jsonl([*rehashed(documents[:2]), json.dumps(documents[2])])


class TestAnchors:
    """head() and verify(expect=...): a chain cut short or rewritten is caught once its head
    was recorded elsewhere."""

    def test_the_head_of_an_empty_ledger(self) -> None:
        """An empty ledger's head is (0, GENESIS), and it verifies against it."""
        with ib.Ledger.memory() as ledger:
            assert (0, GENESIS) == ledger.head()
            assert 0 == ledger.verify(expect=(0, GENESIS))

    def test_an_old_head_stays_valid(self, ledger: ib.Ledger) -> None:
        """A head recorded earlier is still in the chain after more writes."""
        head = ledger.head()
        assert (1, ledger.get(1).hash) == head
        ledger.credit(1, key="more")
        assert 2 == ledger.verify(expect=head)

    def test_a_wrong_hash_or_a_missing_entry(self, ledger: ib.Ledger) -> None:
        """Another hash at the id, or an id past the end, names the anchored entry."""
        with pytest.raises(ib.LedgerCorrupted, match="rewritten") as caught:
            ledger.verify(expect=(1, "0" * 64))
        assert 1 == caught.value.entry
        with pytest.raises(ib.LedgerCorrupted, match="ends at entry 1") as caught:
            ledger.verify(expect=(5, "0" * 64))
        assert 5 == caught.value.entry

    @pytest.mark.parametrize("bad", [(1,), ("1", "0" * 64), (-1, "0" * 64), (1, "XYZ"),
                                     (0, "1" * 64), "1:00"])
    def test_a_bad_anchor_is_refused(self, ledger: ib.Ledger, bad: object) -> None:
        """An anchor that is no (id, 64 hex digits) pair is a TypeError or ValueError."""
        with pytest.raises((TypeError, ValueError)):
            ledger.verify(expect=bad)  # type: ignore[arg-type]

    @pytest.mark.parametrize("bad", [(1,), ("1", "0" * 64), (-1, "0" * 64), (1, "XYZ"),
                                     (0, "1" * 64), "1:00"])
    def test_a_bad_since_is_refused(self, ledger: ib.Ledger, bad: object) -> None:
        """A since that is no (id, 64 hex digits) pair is a TypeError or ValueError naming it."""
        with pytest.raises((TypeError, ValueError), match=r"^since"):
            ledger.verify(since=bad)  # type: ignore[arg-type]

    def test_since_checks_the_entries_after_it(self, ledger: ib.Ledger) -> None:
        """From the head of an earlier verify, the new entries are checked: their number."""
        anchor = ledger.head()
        hold = ledger.hold(30, key="h")
        ledger.debit(10, key="d")
        ledger.capture(hold, 20)
        ledger.refund("d", 4, key="r")
        assert (4, 0, 5, 1) == (ledger.verify(since=anchor), ledger.verify(since=ledger.head()),
                                ledger.verify(since=(0, GENESIS)), ledger.verify(since=(4, (
                                    ledger.get(4).hash))))

    def test_closes_and_refunds_of_entries_before_the_anchor(self, ledger: ib.Ledger) -> None:
        """A hold placed and a debit partly refunded before the anchor are settled after it."""
        hold = ledger.hold(30, key="h")
        ledger.debit(10, key="d")
        ledger.refund("d", 4, key="r1")
        anchor = ledger.head()
        ledger.capture(hold, 20)
        ledger.refund("d", 6, key="r2")
        with pytest.raises(ib.AmountTooLarge):
            ledger.refund("d", 1, key="r3")
        assert (2, ib.Balance(100 - 10 + 4 - 20 + 6, 0)) == (ledger.verify(since=anchor),
                                                              ledger.balance())

    def test_a_wrong_since_names_its_entry(self, ledger: ib.Ledger) -> None:
        """Another hash at the since id, or an id past the end, names that entry."""
        ledger.credit(1, key="more")
        with pytest.raises(ib.LedgerCorrupted, match="rewritten") as caught:
            ledger.verify(since=(1, "0" * 64))
        assert 1 == caught.value.entry
        with pytest.raises(ib.LedgerCorrupted, match="ends at entry 2") as caught:
            ledger.verify(since=(3, "0" * 64))
        assert 3 == caught.value.entry

    def test_expect_before_or_after_since(self, ledger: ib.Ledger) -> None:
        """An expected entry is checked whether it comes before the since one or after it."""
        ledger.credit(1, key="two")
        ledger.credit(1, key="three")
        since = (2, ledger.get(2).hash)
        for good in ((1, ledger.get(1).hash), (3, ledger.get(3).hash)):
            assert 1 == ledger.verify(since=since, expect=good)
        for entry_id in (1, 3):
            with pytest.raises(ib.LedgerCorrupted, match="rewritten") as caught:
                ledger.verify(since=since, expect=(entry_id, "0" * 64))
            assert entry_id == caught.value.entry

    def test_an_export_cut_short_is_refused(self, ledger: ib.Ledger) -> None:
        """Without its last line an export imports, unless the head is expected."""
        ledger.debit(5, key="d")
        out = io.StringIO()
        ledger.export(out)
        lines = out.getvalue().splitlines()
        with ib.Ledger.from_jsonl(lines[:-1]) as copy:
            assert 1 == copy.verify()
        with pytest.raises(ib.LedgerCorrupted) as caught:
            ib.Ledger.from_jsonl(lines[:-1], expect=ledger.head())
        assert 2 == caught.value.entry

    def test_an_export_rewritten_is_refused(self, ledger: ib.Ledger) -> None:
        """An export changed at entry 1 and re-hashed throughout fails against the head."""
        ledger.debit(5, key="d")
        out = io.StringIO()
        ledger.export(out)
        documents = [json.loads(line) for line in out.getvalue().splitlines()]
        documents[0]["memo"] = "rewritten"
        with ib.Ledger.from_jsonl(rehashed(documents)) as copy:
            assert 2 == copy.verify()
        with pytest.raises(ib.LedgerCorrupted, match="rewritten") as caught:
            ib.Ledger.from_jsonl(rehashed(documents), expect=ledger.head())
        assert 2 == caught.value.entry


class TestLapsedHolds:
    """A hold or debit refused for want of room first expires the lapsed holds."""

    def test_a_lapsed_hold_no_longer_blocks_a_debit(self, either: ib.Ledger,
                                                    clock: Clock) -> None:
        """A hold of 60 lapsed an hour ago: a debit of 50 expires it, then goes through."""
        either.hold(60, key="h", expires_at=T0 + timedelta(seconds=60))
        clock.advance(hours=1)
        entry = either.debit(50, key="d")
        assert (["opening", "h", "h:expire", "d"], ib.Balance(50, 0)) == (
            keys(either), either.balance())
        assert ("expired", 3) == (either.get_hold("h").status, entry.id - 1)
        assert 4 == either.verify()

    def test_refused_all_the_same_it_writes_nothing(self, either: ib.Ledger,
                                                    clock: Clock) -> None:
        """A debit too large even once the hold is expired: no expire entry either."""
        either.hold(60, key="h", expires_at=T0 + timedelta(seconds=60))
        clock.advance(hours=1)
        with pytest.raises(ib.InsufficientTokens) as caught:
            either.debit(101, key="d")
        assert (101, 40) == (caught.value.needed, caught.value.available)
        assert (["opening", "h"], ib.Balance(100, 60), "open") == (
            keys(either), either.balance(), either.get_hold("h").status)

    def test_refused_inside_a_batch_it_writes_nothing(self, either: ib.Ledger,
                                                     clock: Clock) -> None:
        """Caught inside a batch, the refusal leaves no expire entry in the batch."""
        either.hold(60, key="h", expires_at=T0 + timedelta(seconds=60))
        clock.advance(hours=1)
        with either.batch():
            with pytest.raises(ib.InsufficientTokens):
                either.debit(101, key="d")
            either.credit(1, key="c")
        assert (["opening", "h", "c"], "open") == (keys(either), either.get_hold("h").status)

    def test_a_hold_that_has_not_lapsed_still_counts(self, either: ib.Ledger,
                                                     clock: Clock) -> None:
        """Before its expiry a hold reserves its tokens: the debit is refused."""
        either.hold(60, key="h", expires_at=T0 + timedelta(seconds=60))
        clock.advance(seconds=59)
        with pytest.raises(ib.InsufficientTokens):
            either.hold(50, key="h2")
        assert ["opening", "h"] == keys(either)

    def test_a_lapsed_hold_no_longer_blocks_a_hard_budget(self, either: ib.Ledger,
                                                          clock: Clock) -> None:
        """A day budget of 50 with a lapsed hold of 40: a hold of 30 fits once it expires."""
        either.add_budget(ib.Budget("day", 50, "day", hard=True))
        either.hold(40, key="h", expires_at=T0 + timedelta(seconds=1))
        clock.advance(seconds=2)
        assert 30 == either.hold(30, key="h2").tokens
        assert (["opening", "budget:day", "h", "h:expire", "h2"], 5) == (
            keys(either), either.verify())


class TestExpiryBoundary:
    """A hold lapses at its expires_at exactly, on both stores."""

    def test_expire_holds_at_the_exact_expiry(self, either: ib.Ledger) -> None:
        """expire_holds(expires_at) expires it; a microsecond before does not."""
        when = T0 + timedelta(seconds=60)
        either.hold(10, key="h", expires_at=when)
        assert () == either.expire_holds(when - timedelta(microseconds=1))
        assert ["h:expire"] == [e.key for e in either.expire_holds(when)]

    def test_expiries_in_the_future_are_written_at_that_time(self, either: ib.Ledger,
                                                             clock: Clock) -> None:
        """expire_holds(now later than the clock) dates its entries at now: they verify."""
        either.hold(10, key="h", expires_at=T0 + timedelta(days=1))
        (expired,) = either.expire_holds(T0 + timedelta(days=2))
        assert (T0 + timedelta(days=2), 3) == (expired.at, either.verify())


class TestDefaultClosingKeys:
    """capture and void without a key find a free one, as expire does."""

    def test_a_taken_capture_key_gets_a_suffix(self, ledger: ib.Ledger) -> None:
        """With 'h:capture' used by a credit, the capture is 'h:capture:2', and replays."""
        hold = ledger.hold(10, key="h")
        ledger.credit(1, key="h:capture")
        first = ledger.capture(hold)
        assert ("h:capture:2", first) == (first.key, ledger.capture(hold))

    def test_a_taken_void_key_gets_a_suffix(self, ledger: ib.Ledger) -> None:
        """With 'h:void' used by a credit, the void is 'h:void:2', and replays."""
        ledger.hold(10, key="h")
        ledger.credit(1, key="h:void")
        first = ledger.void("h")
        assert ("h:void:2", first) == (first.key, ledger.void("h"))

    def test_a_capture_of_another_amount_still_conflicts(self, ledger: ib.Ledger) -> None:
        """The default key of this hold's own capture keeps its replay semantics."""
        hold = ledger.hold(10, key="h")
        ledger.capture(hold, 4)
        with pytest.raises(ib.IdempotencyConflict):
            ledger.capture(hold, 5)


class TestJsonlLineBreaks:
    """An export reads back line by line whatever its memos hold."""

    def test_unicode_line_separators_in_a_memo(self, ledger: ib.Ledger, clock: Clock) -> None:
        """U+2028, U+2029 and U+0085 in a memo survive export and splitlines()."""
        memo = "a\u2028b\u2029c\x85d é"
        ledger.credit(1, key="m", memo=memo)
        out = io.StringIO()
        ledger.export(out)
        text = out.getvalue()
        assert (2, "é" in text) == (len(text.splitlines()), True)
        with ib.Ledger.from_jsonl(text.splitlines(), clock=clock) as copy:
            assert memo == copy.get("m").memo


BAD_TAGS = [({"a\tb": "x"}, "name", "\t"), ({"p": "a\x00b"}, "value", "\x00"),
            ({"a\nb": "x"}, "name", "\n"), ({"p": "\x85"}, "value", "\x85"),
            ({"p": "x\udcff"}, "value", "\udcff")]


class TestTagText:
    """Tags whose totals SQLite's JSON functions would get wrong (a control character, a NUL,
    a lone surrogate, in a name or a value) are refused with BadTagError, nothing written."""

    @pytest.mark.parametrize(("tags", "part", "char"), BAD_TAGS)
    def test_every_write_refuses_them(self, ledger: ib.Ledger, tags: dict[str, str],
                                      part: str, char: str) -> None:
        """credit, hold, debit and note raise BadTagError naming the tag and the character;
        no entry is written."""
        writes: list[Callable[[], object]] = [
            lambda: ledger.credit(1, key="c", tags=tags),
            lambda: ledger.hold(1, key="h", tags=tags),
            lambda: ledger.debit(1, key="d", tags=tags),
            lambda: ledger.note(key="n", memo="m", tags=tags),
        ]
        for write in writes:
            with pytest.raises(ib.BadTagError) as caught:
                write()
            ((name, value),) = tags.items()
            assert (name, value, part, char) == (
                caught.value.name, caught.value.value, caught.value.part, caught.value.char)
            assert f"U+{ord(char):04X}" in str(caught.value)
        assert 1 == ledger.verify()

    @pytest.mark.parametrize(("tags", "part", "char"), BAD_TAGS)
    def test_filters_and_budget_scopes_refuse_them(self, ledger: ib.Ledger,
                                                   tags: dict[str, str], part: str,
                                                   char: str) -> None:
        """spent, held and entries filters and a Budget's scope raise it too (a ValueError)."""
        reads: list[Callable[[], object]] = [
            lambda: ledger.spent(tags=tags), lambda: ledger.held(tags=tags),
            lambda: list(ledger.entries(tags=tags)),
            lambda: ib.Budget("b", 10, scope=tags),
        ]
        for read in reads:
            with pytest.raises(ValueError, match=f"its {part} holds .*U\\+{ord(char):04X}"):
                read()

    def test_a_long_tag_is_trimmed_in_the_message(self, ledger: ib.Ledger) -> None:
        """A 10,000-character value is cut short in the message."""
        with pytest.raises(ib.BadTagError) as caught:
            ledger.credit(1, key="c", tags={"p": "\x01" + "x" * 10_000})
        assert len(str(caught.value)) < 300

    def test_the_error_pickles(self) -> None:
        """BadTagError survives pickle with its facts."""
        import pickle

        error = ib.BadTagError("a\tb", "x", "name", "\t")
        again = pickle.loads(pickle.dumps(error))
        assert (str(error), "name") == (str(again), again.part)

    def test_printable_unicode_is_kept(self, ledger: ib.Ledger) -> None:
        """Quotes, backslashes, dots, spaces and non-Latin text are fine tags."""
        tags = {'a"b\\c.d[0] $': "ä ß 文字 \u2028"}
        ledger.debit(5, key="d", tags=tags)
        assert (5, {'ä ß 文字 \u2028': 5}) == (
            ledger.spent(tags=tags), ledger.spend(by='tag:a"b\\c.d[0] $'))
