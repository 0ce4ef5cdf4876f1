"""Settling a metered call once its answer (or its error) is known: the outcome policy.

- 2xx: the hold is captured (the call is spent);
- 402 or 424 (the API's "not enough tokens"): the hold is voided whatever ``charge_failed``
  says (the API refused the call, so nothing was spent) and a ``note`` entry records *drift*:
  the tokens the ledger believed available, to reconcile with the Studio's Usage tab;
- 404 or 405: the hold is voided whatever ``charge_failed`` says: no operation ran (a path
  metered case-insensitively that the API does not route, say);
- any other status: the hold is voided (a failed call costs nothing), or captured with
  ``charge_failed=True``; the error code 1101 in its body counts as 402 does;
- an error before any byte of the request was sent: the API cannot have run the call, so the
  hold is voided and the error raised;
- an *uncertain outcome*, an error once the request may have reached the API: the API may
  have run and billed the call, so when in doubt it is counted. With
  ``on_uncertain="capture"`` (the default) the hold is captured; with ``on_uncertain="void"``
  it is voided, as a failure. Either way a ``note`` entry tagged ``outcome=uncertain``
  records the call (for a held call its ``hold`` tag is the hold's id, ``error`` the
  exception's type, ``on_uncertain`` what was done; an unpriced call's note says
  ``outcome=uncertain`` instead of ``failed``), the error is raised, and ``stats.uncertain``
  counts it. A retry with the same ``Idempotency-Key`` is sent again (the caller has no
  answer): if the first attempt was billed, the retry is billed too, and both are counted.

A 2xx answer's hold is settled once (`Ending`), when its body ends (captured), fails (an
uncertain outcome) or is closed, read or not (captured: the API answered 2xx). A response
never closed keeps its hold open until the transport is closed (then captured) or the hold
expires. With ``unpriced="allow"`` an unpriced call is sent without a hold, and a ``note``
entry, written once the answer (or the error) is known, flags it with its outcome (``ok``,
``failed`` or ``uncertain``). A call that outlives its hold is still spent: its tokens are
debited when the answer comes (or, when the ledger no longer has them, the call is noted as
drift).

Settling never loses the answer. If the ledger cannot be written when the answer comes (a
`LedgerStoreError`: another process holding the write lock past the ledger's ``timeout``, say),
the settling is tried twice more; if that fails too, the response is returned all the same
(``stats.deferred`` counts these), the hold stays open (its tokens stay reserved) and the
settling is written before the transport's next request and when it is closed (then the
ledger's error is raised if it still cannot be). After a transport error, the error is raised
whatever the ledger does: a ledger error while voiding is added to it as a note. Until a
deferred settling is written, only this transport knows the answer: another process sees an
open hold (``in_flight``), and could resend the key once that hold has expired and been
released, so keep ``hold_expiry`` longer than a ledger outage.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Literal

import attrs

from imagine_billing.errors import (
    BudgetExceeded,
    HoldClosed,
    IdempotencyConflict,
    InsufficientTokens,
    LedgerStoreError,
    UnknownEntry,
)

if TYPE_CHECKING:
    from imagine_billing.adapters._plan import Plan, Tally
    from imagine_billing.ledger import Hold, Ledger

__all__ = ["Ending", "OnUncertain", "Settler"]

OnUncertain = Literal["capture", "void"]

_SHORT = (402, 424)
"""The API's "not enough tokens" (v2, legacy v1): never charged, noted as drift."""
_NOT_RUN = (404, 405)
"""No operation ran (no such path, or not with that method): never charged."""
_SETTLE_TRIES = 3
"""How many times settling an answer is tried at once before it is deferred."""


@attrs.define
class _Settling:
    """The ledger writes that settle one answer, in order; each may be run again (keyed)."""

    plan: Plan
    steps: list[Callable[[], None]]
    error: BaseException | None = None
    """The ledger's error when the settling was last tried and could not be written."""
    deferred: bool = False
    """Whether it was deferred (counted once in ``stats.deferred``)."""


class Settler:
    """Writes the settling of each answer in the ledger, or defers it (no I/O but the ledger).

    ``settled`` is called with a plan once its settling is written.
    """

    def __init__(self, ledger: Ledger, tally: Tally, *, charge_failed: bool,
                 on_uncertain: OnUncertain, settled: Callable[[Plan], None]) -> None:
        self.ledger = ledger
        self.charge_failed = charge_failed
        self.on_uncertain = on_uncertain
        self._tally = tally
        self._settled = settled
        self._lock = threading.Lock()
        self._pending: list[_Settling] = []
        self._streaming: set[Ending] = set()
        """The answers whose body is streaming to the caller: settled when it ends."""

    @property
    def pending(self) -> bool:
        """Whether some settlings are deferred (written by `flush`)."""
        return bool(self._pending)

    def settle(self, plan: Plan, status: int, says_short: Callable[[], bool]) -> None:
        """Capture or void the hold by the answer's status; note unpriced calls and drift.

        ``says_short`` tells whether the answer's body carries the error code 1101 (asked
        only of an error status that is not 402/424/404/405). Never raises but for an
        interrupt (a `KeyboardInterrupt`): a ledger that cannot be written defers the
        settling.
        """
        ok = 200 <= status < 300
        short = status in _SHORT or (not ok and status not in _NOT_RUN and says_short())
        plan.answered_ok = ok
        steps: list[Callable[[], None]] = []
        if plan.hold is None:
            if plan.estimate is None:
                steps.append(partial(self._note_unpriced, plan, f"answered {status}", ok=ok,
                                     status=str(status)))
        elif ok or (self.charge_failed and not short and status not in _NOT_RUN):
            steps.append(partial(self._capture, plan, plan.hold, "ok" if ok else "failed",
                                 str(status)))
        else:
            steps.append(partial(self._void, plan.hold))
        if short:
            steps.append(partial(self._drift, plan, status, f"{plan.attempt_key}:drift:"
                                 f"{uuid.uuid4()}"))
        error = self._run(_Settling(plan, steps), tries=_SETTLE_TRIES)
        if error is not None and not isinstance(error, Exception):
            raise error

    def stream(self, plan: Plan, status: int) -> Ending:
        """The settling of a 2xx answer whose body streams to the caller, run once by
        `Ending.end` (or by `finish`, for an answer never closed)."""
        plan.answered_ok = True
        ending = Ending(self, plan, status)
        with self._lock:
            self._streaming.add(ending)
        return ending

    def ended(self, ending: Ending) -> None:
        with self._lock:
            self._streaming.discard(ending)

    def fail(self, plan: Plan, error: BaseException, *, sent: bool) -> None:
        """Settle after a transport error (or an interrupt) instead of a whole answer.

        ``sent``: whether the API may have received the request; then the outcome is
        uncertain, and settled as ``on_uncertain`` says (and noted); otherwise nothing ran and
        nothing is spent.

        Never raises: ``error`` stays the one the caller sees, and a ledger error while
        settling is added to it as a note (the settling is deferred).
        """
        steps: list[Callable[[], None]] = []
        name = type(error).__name__
        plan.answered_ok = False
        if sent:
            self._tally.add("uncertain")
        if plan.hold is not None:
            if sent and self.on_uncertain == "capture":
                steps.append(partial(self._capture, plan, plan.hold, "uncertain", name))
            else:
                steps.append(partial(self._void, plan.hold))
            if sent:
                steps.append(partial(self._note_uncertain, plan, plan.hold, name))
        elif plan.estimate is None:
            steps.append(partial(
                self._note_unpriced, plan,
                f"uncertain: {name} once sent" if sent else f"failed: {name}, no answer",
                ok=False, status=name, outcome="uncertain" if sent else "failed"))
        problem = self._run(_Settling(plan, steps), tries=_SETTLE_TRIES)
        if problem is not None:
            error.add_note(f"imagine-billing: the ledger could not be settled after this error "
                           f"({type(problem).__name__}: {problem}); the settling is retried "
                           "before the transport's next request")

    def _run(self, settling: _Settling, *, tries: int) -> BaseException | None:
        """Write a settling's steps, trying up to ``tries`` times on a `LedgerStoreError`;
        defer what is left on any error, and return that error (None once all is written)."""
        attempt = 1
        while True:
            try:
                # Settlements need no disk flush of their own: they survive a crash of the
                # process, and the next hold (durable, written before its request is sent)
                # flushes them (`Ledger.relaxed`): one flush per request, not two.
                with self.ledger.relaxed():
                    while settling.steps:
                        settling.steps[0]()
                        del settling.steps[0]  # done: each step is written once
            except BaseException as error:  # deferred, and returned to the caller
                settling.error = error
                if isinstance(error, LedgerStoreError) and attempt < tries:
                    attempt += 1
                    continue
                with self._lock:
                    if not settling.deferred:
                        settling.deferred = True
                        self._tally.add("deferred")
                    self._pending.append(settling)
                return error
            self._settled(settling.plan)
            return None

    def flush(self) -> None:
        """Write the deferred settlings (one try each); those that still fail stay deferred."""
        with self._lock:
            pending, self._pending = self._pending, []
        for index, settling in enumerate(pending):
            error = self._run(settling, tries=1)
            if error is not None and not isinstance(error, Exception):  # an interrupt
                with self._lock:
                    self._pending.extend(pending[index + 1:])
                raise error

    def finish(self) -> None:
        """Settle the answers still streaming (as closed: captured), write the deferred
        settlings; raise the ledger's error if some still cannot be."""
        with self._lock:
            streaming = list(self._streaming)
        for ending in streaming:
            ending.end(None)
        self.flush()
        with self._lock:
            left = list(self._pending)
        if left:
            error = left[0].error or LedgerStoreError("ledger", "settling could not be written")
            error.add_note(
                f"imagine-billing: {len(left)} answer(s) could not be settled in the ledger; "
                "their holds stay open until they expire (reconcile with the Studio's Usage tab)")
            raise error

    def _capture(self, plan: Plan, hold: Hold, outcome: str, status: str) -> None:
        """Spend a hold: ``outcome`` is ``"ok"`` (a 2xx), ``"failed"`` (a charged failure)
        or ``"uncertain"``; ``status`` the answer's status or the error's type."""
        # A charged failure or an uncertain outcome is captured under its own key, so that a
        # retry is not refused as the duplicate of a call that succeeded.
        key = f"{hold.key}:capture"
        if outcome != "ok":
            key += f":{status}" if outcome == "failed" else f":{outcome}"
        try:
            self.ledger.capture(hold, key=key)
        except HoldClosed:
            # The hold lapsed (past its expires_at) or was released while the call ran; the
            # API did the work all the same: spend the tokens now (unless an earlier try of
            # this settling did, or noted why it could not).
            with contextlib.suppress(UnknownEntry):
                self.ledger.get(key)
                return
            self._release(hold)
            self._tally.add(self._spend_late(plan, hold, key, outcome, status))
            return
        self._tally.add("captured")

    def _spend_late(self, plan: Plan, hold: Hold, key: str, outcome: str, status: str) -> str:
        """Debit a call whose hold lapsed, under ``key``, or note it as drift when the ledger
        no longer has its tokens; the counter this adds to (``captured`` or ``drift``)."""
        assert plan.estimate is not None  # a hold is placed for a priced call only
        try:
            self.ledger.debit(plan.estimate, key=key, tags=plan.tags,
                              memo="spent after its hold had lapsed")
        except (InsufficientTokens, BudgetExceeded) as refusal:
            # Noted under the key the debit would have had: for a success, that is what
            # stops a resend of its key (`Attempts.next`).
            believed = self.ledger.balance().available
            call = ("the call succeeded" if outcome == "ok" else
                    f"the call failed with {status} and is charged (charge_failed)"
                    if outcome == "failed" else
                    f"the call's outcome is uncertain ({status} once sent) and is counted")
            with contextlib.suppress(IdempotencyConflict):  # noted by an earlier try
                self.ledger.note(
                    key=key,
                    memo=(f"drift: {call} after its hold had lapsed, and the ledger could "
                          f"not spend its {hold.tokens} tokens ({refusal}); reconcile "
                          "with the Studio's Usage tab"),
                    tags={**plan.tags, "drift": "true", "believed_available": str(believed),
                          "outcome": outcome, "status": status},
                )
            return "drift"
        return "captured"

    def _release(self, hold: Hold) -> None:
        with contextlib.suppress(HoldClosed):  # already expired: its tokens are back
            self.ledger.void(hold)

    def _void(self, hold: Hold) -> None:
        self._release(hold)
        self._tally.add("voided")

    def _note_uncertain(self, plan: Plan, hold: Hold, error: str) -> None:
        done = "captured" if self.on_uncertain == "capture" else "voided"
        self.ledger.note(
            key=f"{hold.key}:uncertain",
            memo=(f"outcome uncertain: the request was sent, then {error}; the API may have "
                  f"billed the call, so its hold {hold.id} of {hold.tokens} tokens was {done} "
                  f"(on_uncertain={self.on_uncertain!r}); reconcile with the Studio's Usage "
                  "tab"),
            tags={**plan.tags, "outcome": "uncertain", "error": error, "hold": str(hold.id),
                  "on_uncertain": self.on_uncertain},
        )

    def _note_unpriced(self, plan: Plan, what: str, *, ok: bool, status: str,
                       outcome: str | None = None) -> None:
        memo = (f"unpriced call sent at cost 0: operation {plan.operation!r}"
                + (f", style {plan.style!r}" if plan.style else "") + f"; {what}")
        tags = {**plan.tags, "unpriced": "true",
                "outcome": outcome or ("ok" if ok else "failed"), "status": status}
        number = plan.attempt
        while True:
            try:
                self.ledger.note(key=f"{plan.key}:attempt:{number}", memo=memo, tags=tags)
            except IdempotencyConflict:
                # Another process noted this attempt number a moment ago: take the next free
                # one, so that `Attempts.next` sees this outcome too.
                number += 1
            else:
                return

    def _drift(self, plan: Plan, status: int, key: str) -> None:
        believed = self.ledger.balance().available
        if plan.hold is not None:
            call = f"a call of {plan.hold.tokens}"
        elif plan.estimate is None:
            call = "an unpriced call"
        else:
            call = "a call priced 0"
        with contextlib.suppress(IdempotencyConflict):  # noted by an earlier try
            self.ledger.note(
                key=key,
                memo=(
                    f"drift: the API answered {status} (not enough tokens) while the "
                    f"ledger had {believed} tokens available for {call}; "
                    "reconcile with the Studio's Usage tab"
                ),
                tags={**plan.tags, "drift": "true", "believed_available": str(believed),
                      "status": str(status)},
            )
        self._tally.add("drift")



class Ending:
    """The settling of a 2xx answer whose body streams to the caller: run once, by the first
    of the body's end, its failure, its closing, or the transport's closing."""

    def __init__(self, settler: Settler, plan: Plan, status: int) -> None:
        self._settler = settler
        self._plan = plan
        self._status = status
        self._lock = threading.Lock()
        self._done = False

    def end(self, error: BaseException | None) -> None:
        """Capture (``error`` None: the body ended or was closed), or settle as an uncertain
        outcome (reading the body failed with ``error``); later calls do nothing."""
        with self._lock:
            if self._done:
                return
            self._done = True
        self._settler.ended(self)
        if error is None:
            self._settler.settle(self._plan, self._status, _not_asked)
        else:
            self._settler.fail(self._plan, error, sent=True)


def _not_asked() -> bool:  # pragma: no cover - a 2xx answer's body is never asked
    return False
