"""The ledger's rules, on the in-memory store (the SQLite file has tests of its own)."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import attrs
import pytest

import imagine_billing as ib
from imagine_billing.estimator import Call, estimate
from imagine_billing.ledger.ledger import _split
from imagine_billing.ledger.model import chain_hash

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


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
        """Debits and captures count on their day, refunds subtract on theirs."""
        assert {"2026-03-01": 10, "2026-03-02": 15, "2026-03-03": 1} == busy.spend(by="day")

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
