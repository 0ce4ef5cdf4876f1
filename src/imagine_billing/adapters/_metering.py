"""The metering policy: route a request to an operation, price it, hold its tokens.

For each request the meter maps its method and path to an operation of the price table;
reads its ``style`` field (or takes the operation's default style); estimates the call; places
a ledger hold; and only then lets the transport send it. Refusals send **nothing** and are
counted in ``stats.refused``: a hold the ledger refuses (`InsufficientTokens`,
`BudgetExceeded`), a style the table does not know (`UnknownStyleError`, more likely a typo
than a new style, so ``unpriced="allow"`` does not cover it), a style or operation without a
price (`UnpricedError`, unless ``unpriced="allow"``), a form naming two different styles
(`AmbiguousStyleError`), and the idempotency refusals (`imagine_billing.adapters._attempts`).
When the answer comes, `imagine_billing.adapters._settling` settles the hold. A call priced 0
is sent without a hold (``stats.free``); with ``unpriced="allow"`` an unpriced call is sent
without a hold and noted.

Which requests are metered: method and path are compared case-insensitively, without trailing
or doubled slashes, and from the path's ``v2`` segment on, so a base URL behind a proxy
(``https://proxy.example/imagine/v2``) is metered too. Any other path (video status and
delete, an endpoint the table does not list, a path without a ``v2`` segment) passes through
unmetered and is counted in ``stats.passed_through``.

Holds expire: each carries ``expires_at = now + hold_expiry`` (10 minutes by default), so that
the hold of a process that died mid-request is released by ``ledger.expire_holds()``.

No httpx here: the transports (`imagine_billing.adapters._transports`) do the I/O and call
`Meter`. The ledger is called synchronously, also from the async transport: its writes are
short SQLite transactions.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Literal

from imagine_billing.adapters._attempts import Attempts
from imagine_billing.adapters._body import field_values, fingerprint
from imagine_billing.adapters._plan import Plan, Tally, TransportStats
from imagine_billing.adapters._settling import Ending, OnUncertain, Settler
from imagine_billing.errors import (
    AmbiguousStyleError,
    BudgetExceeded,
    DuplicateRequest,
    IdempotencyConflict,
    InsufficientTokens,
    UnknownStyleError,
    UnpricedError,
)
from imagine_billing.estimator import Call, Estimate, estimate
from imagine_billing.pricing.loading import load_price_table

if TYPE_CHECKING:
    from imagine_billing.ledger import Hold, Ledger
    from imagine_billing.pricing.model import Operation, PriceTable

__all__ = ["DEFAULT_HOLD_EXPIRY", "Meter", "OnUncertain", "Unpriced"]

DEFAULT_HOLD_EXPIRY = timedelta(minutes=10)
"""How long a hold lives by default: far longer than an image call, short enough that the hold
of a process that died mid-request does not keep its tokens for long."""

Unpriced = Literal["refuse", "allow"]

_REFUSALS = (
    InsufficientTokens,
    BudgetExceeded,
    UnpricedError,
    UnknownStyleError,
    AmbiguousStyleError,
    IdempotencyConflict,
    DuplicateRequest,
)
"""What the meter refuses a request with (counted in ``stats.refused``); anything else raised
before sending (a ledger that cannot be written, say) is an error, not a refusal."""
_RESERVE_TRIES = 3
"""How many attempt numbers a request tries when other processes keep taking them."""


class Meter:
    """The policy shared by the sync and async transports (no I/O of its own but the ledger):
    it prices and holds (`begin`), and hands the settling to a `Settler`."""

    def __init__(
        self,
        ledger: Ledger,
        table: PriceTable | None,
        charge_failed: bool,
        unpriced: Unpriced,
        hold_expiry: timedelta | None,
        *,
        on_uncertain: OnUncertain,
    ) -> None:
        if unpriced not in ("refuse", "allow"):
            raise ValueError(f'unpriced must be "refuse" or "allow" (got {unpriced!r})')
        if on_uncertain not in ("capture", "void"):
            raise ValueError(
                f'on_uncertain must be "capture" or "void" (got {on_uncertain!r})')
        if hold_expiry is not None and (
            not isinstance(hold_expiry, timedelta) or hold_expiry <= timedelta(0)
        ):
            raise ValueError(
                f"hold_expiry must be a positive timedelta or None (got {hold_expiry!r})"
            )
        self.ledger = ledger
        self.table = load_price_table() if table is None else table
        self.unpriced = unpriced
        self.hold_expiry = hold_expiry
        self.tally = Tally()
        self.attempts = Attempts(ledger)
        self.settler = Settler(ledger, self.tally, charge_failed=charge_failed,
                               on_uncertain=on_uncertain, settled=self.attempts.release)
        self._estimates: dict[tuple[str, str | None], Estimate] = {}
        self._routes: dict[tuple[str, tuple[str, ...]], Operation] = {}
        for operation in self.table.operations.values():
            self._routes[(operation.method.upper(), _segments(operation.path))] = operation
        self._styled = {style.operation for style in self.table.styles.values()}

    @property
    def stats(self) -> TransportStats:
        return self.tally.stats

    def operation_of(self, method: str, path: str) -> Operation | None:
        """The operation a request calls, or None to pass it through."""
        method = method.upper()
        segments = _segments(path)
        found = self._routes.get((method, segments))
        if found is None:
            # Behind a proxy the path has a prefix: match from its last "v2" segment on.
            for index in range(len(segments) - 1, 0, -1):
                if segments[index] == "v2":
                    found = self._routes.get((method, segments[index:]))
                    if found is not None:
                        break
        return found

    # -- before sending -----------------------------------------------------------------------

    def begin(self, operation: Operation, *, key: str | None, content_type: str, query: bytes,
              body: bytes) -> Plan:
        """Price a request, check its key (``Idempotency-Key``, if given) and hold its tokens;
        raise a counted refusal."""
        if self.settler.pending:
            self.settler.flush()
        try:
            plan = self._plan(operation, key, content_type, query, body)
            if plan.given_key:
                self.attempts.claim(plan)
            try:
                plan.hold = self._reserve(plan)
            except BaseException:
                self.attempts.release(plan)
                raise
        except _REFUSALS as refusal:
            if isinstance(refusal, DuplicateRequest):
                self.tally.add("refused", "replayed")
            else:
                self.tally.add("refused")
            raise
        if plan.hold is not None:
            self.tally.add("metered")
        elif plan.estimate is None:
            self.tally.add("unpriced")
        else:
            self.tally.add("free")
        return plan

    def _plan(self, operation: Operation, given: str | None, content_type: str, query: bytes,
              body: bytes) -> Plan:
        key = given or f"imagine-billing-{uuid.uuid4()}"
        style: str | None = None
        if operation.id in self._styled:
            styles = field_values(content_type, body, "style")
            if styles:
                distinct = tuple(dict.fromkeys(styles))
                if len(distinct) > 1:
                    raise AmbiguousStyleError(distinct)
                style = distinct[0]
        # Otherwise the table prices the operation flat (video: the style field names a model
        # the table does not list): the style does not change the price.
        style = style or operation.default_style
        priced: Estimate | None
        try:
            priced = self._estimate(operation.id, style)
        except UnpricedError:
            if self.unpriced == "refuse":
                raise
            priced = None
        tags = {"operation": operation.id, "idempotency_key": key}
        if style:
            tags["style"] = style
        if given:
            tags["request"] = fingerprint(operation.id, style, query, content_type, body)
        return Plan(key, bool(given), operation.id, style, priced, tags)

    def _estimate(self, operation: str, style: str | None) -> Estimate:
        # Estimates are immutable and the table too: price each (operation, style) once.
        found = self._estimates.get((operation, style))
        if found is None:
            found = estimate([Call(style=style, operation=operation)], self.table)
            self._estimates[(operation, style)] = found
        return found

    def _reserve(self, plan: Plan) -> Hold | None:
        """Hold the estimate (None for a call without a price or priced 0)."""
        if plan.estimate is None or plan.estimate.total == 0:
            return None
        for _ in range(_RESERVE_TRIES):
            now = self.ledger.now()
            expires_at = None if self.hold_expiry is None else now + self.hold_expiry
            # A nonce keeps two writers racing for one attempt number (two processes) from
            # replaying each other's hold: the loser's hold conflicts instead.
            memo = f"attempt {plan.attempt} ({uuid.uuid4().hex[:12]})" if plan.given_key else None
            try:
                return self.ledger.hold(
                    plan.estimate, key=plan.attempt_key, tags=plan.tags, expires_at=expires_at,
                    memo=memo,
                )
            except IdempotencyConflict:
                if not plan.given_key:
                    raise
            # Another process took this attempt number a moment ago: see what its attempt is
            # now (the refusal tells the truth), or take the next number if it already failed.
            plan.attempt = self.attempts.next(plan)
        raise DuplicateRequest(plan.key, in_flight=True)

    # -- after sending: the settler's -----------------------------------------------------------

    def settle(self, plan: Plan, status: int, says_short: Callable[[], bool]) -> None:
        """`Settler.settle`: capture or void by the answer's status."""
        self.settler.settle(plan, status, says_short)

    def stream(self, plan: Plan, status: int) -> Ending:
        """`Settler.stream`: the settling of a 2xx answer, run when its body ends."""
        return self.settler.stream(plan, status)

    def fail(self, plan: Plan, error: BaseException, *, sent: bool) -> None:
        """`Settler.fail`: settle after a transport error."""
        self.settler.fail(plan, error, sent=sent)

    def finish(self) -> None:
        """`Settler.finish`: settle what is left, when the transport closes."""
        self.settler.finish()


def _segments(path: str) -> tuple[str, ...]:
    """A path compared case-insensitively, without trailing or doubled slashes."""
    return tuple(part.lower() for part in path.split("/") if part)
