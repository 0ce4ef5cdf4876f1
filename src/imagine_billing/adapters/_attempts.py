"""Idempotency: the attempts of each ``Idempotency-Key``, in flight here and in the ledger.

The API documents no idempotency, so each request that reaches it is a new, billed
generation. The transport therefore guarantees that a retry with the same ``Idempotency-Key``
never charges twice by never *sending* it twice once it has succeeded:

- each attempt of a key is recorded under ``KEY:attempt:N`` (a hold, or the note of an
  unpriced call) with a fingerprint of the logical request (see `imagine_billing.adapters._body`);
- a key reused for a different request (another style, operation, prompt, file or query)
  raises `IdempotencyConflict` before anything is sent, whether its other attempt is done or
  still being sent, here or in another process;
- a retry after an attempt that failed (voided: error status, an error before sending) or
  whose outcome is uncertain (a timeout, a dropped connection) is held for and sent again;
- a retry of a key whose call succeeded raises `DuplicateRequest` (``in_flight`` false) and is
  not sent: the caller already has its answer. A call that outlived its hold and could not be
  spent late (the tokens had gone to other holds) succeeded all the same: its drift note,
  written where the late debit would have been, stops a resend too;
- a request while another attempt of its key is being sent (another thread or task of this
  transport, or another process sharing the ledger) raises `DuplicateRequest` (``in_flight``
  true) and is not sent: concurrent duplicates never all go out. When two processes race for
  one attempt number, the loser looks again and reports what the winner's attempt is by then
  (succeeded, in flight), or is held for the next number if that attempt already failed.

Requests without an ``Idempotency-Key`` get a fresh key each and are never refused as
duplicates. Calls sent without a hold (unpriced, or priced 0) have no open hold to show while
in flight: their concurrent duplicates are refused within one transport only (an unpriced
call's note, written after the answer under the next free attempt number, still stops a
resend once any attempt succeeded; a call priced 0 is not recorded at all).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from imagine_billing.errors import DuplicateRequest, IdempotencyConflict, UnknownEntry

if TYPE_CHECKING:
    from imagine_billing.adapters._plan import Plan
    from imagine_billing.ledger import Entry, Ledger

__all__ = ["Attempts"]


class Attempts:
    """The attempts of each key: those this transport is sending, and the ledger's record."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self._lock = threading.Lock()
        self._in_flight: dict[str, Plan] = {}

    def claim(self, plan: Plan) -> None:
        """Refuse a duplicate of a key in flight or already done; pick the attempt number.

        The content is checked first, here as in `next`: another request under a key is an
        `IdempotencyConflict` whether its attempt is in flight or done.
        """
        with self._lock:
            other = self._in_flight.get(plan.key)
            if other is not None:
                if other.fingerprint != plan.fingerprint:
                    raise IdempotencyConflict(plan.key, _differs(
                        f"an attempt being sent by this transport is "
                        f"{_describe(other.operation, other.style)}", plan))
                hold = other.hold
                raise DuplicateRequest(
                    plan.key, in_flight=not other.answered_ok,
                    entry=None if hold is None else hold.id,
                    tokens=hold.tokens if hold is not None and other.answered_ok else 0)
            self._in_flight[plan.key] = plan
            plan.claimed = True
        try:
            plan.attempt = self.next(plan)
        except BaseException:
            self.release(plan)
            raise

    def release(self, plan: Plan) -> None:
        """Take the plan's key out of the in-flight map (its call is settled, or refused)."""
        if plan.claimed:
            with self._lock:
                if self._in_flight.get(plan.key) is plan:
                    del self._in_flight[plan.key]
            plan.claimed = False

    def next(self, plan: Plan) -> int:
        """The number of the plan's next attempt, from the ledger's record of its key.

        Raises:
            IdempotencyConflict: The key's last attempt was another request.
            DuplicateRequest: An attempt of the key succeeded, or is being sent.
        """
        number, last = self._last(plan.key)
        if last is None:
            return 1
        recorded = last.tags.get("request")
        if recorded is not None and recorded != plan.fingerprint:
            raise IdempotencyConflict(plan.key, _differs(
                f"attempt {number} (ledger entry {last.id}) was "
                f"{_describe(last.tags.get('operation'), last.tags.get('style'))}", plan))
        if last.kind == "note":  # an unpriced attempt, noted with its outcome
            # Processes racing for one attempt number note apart (the next free number), so
            # a success may be followed by a failure noted later: look at every attempt.
            for earlier in range(number, 0, -1):
                found = last if earlier == number else self._get(plan.key, earlier)
                if (found is not None and found.kind == "note"
                        and found.tags.get("outcome") == "ok"):
                    raise DuplicateRequest(plan.key, in_flight=False, entry=found.id)
            return number + 1
        hold = self._ledger.get_hold(last.id)
        if hold.status == "open":
            raise DuplicateRequest(plan.key, in_flight=True, entry=last.id)
        closing = hold.closed_by
        if closing is not None and closing.key == f"{last.key}:capture":
            raise DuplicateRequest(plan.key, in_flight=False, entry=closing.id,
                                   tokens=closing.tokens)
        if hold.status != "captured":
            # Voided or expired; a call that outlived its hold was spent by a late debit, or
            # noted as drift under the same key when the ledger no longer had its tokens.
            try:
                late = self._ledger.get(f"{last.key}:capture")
            except UnknownEntry:
                return number + 1
            raise DuplicateRequest(plan.key, in_flight=False, entry=late.id, tokens=late.tokens)
        return number + 1  # captured as a charged failure (charge_failed): a retry is a new call

    def _get(self, key: str, number: int) -> Entry | None:
        try:
            return self._ledger.get(f"{key}:attempt:{number}")
        except UnknownEntry:
            return None

    def _last(self, key: str) -> tuple[int, Entry | None]:
        """The number and entry of a key's last attempt ((0, None) for none): attempts are
        numbered 1, 2, 3... without gaps, so a doubling then halving search finds it."""
        found = self._get(key, 1)
        if found is None:
            return 0, None
        low, last, high = 1, found, 2
        while (found := self._get(key, high)) is not None:
            low, last, high = high, found, high * 2
        while high - low > 1:
            middle = (low + high) // 2
            found = self._get(key, middle)
            if found is None:
                high = middle
            else:
                low, last = middle, found
        return low, last


def _describe(operation: str | None, style: str | None) -> str:
    return f"{operation}" + (f" in style {style!r}" if style else "")


def _differs(before: str, plan: Plan) -> str:
    """The detail of an `IdempotencyConflict`: what the key was used for, and this request."""
    this = _describe(plan.operation, plan.style)
    return (f"{before}; this request is {this}"
            + (" with other fields" if before.endswith(f" {this}") else ""))
