"""A metered httpx transport for the Imagine API: check before sending, record after answering.

    ledger = Ledger.open("tokens.db")
    client = httpx.Client(transport=MeteredTransport(ledger), base_url="https://api.vyro.ai/v2")
    form = {"prompt": (None, "a cat"), "style": (None, "flux-dev")}
    client.post("/image/generations", files=form, headers={"Authorization": "Bearer vk-..."})

For each request the transport maps its method and path to an operation of the price table;
reads its ``style`` field (or takes the operation's default style); estimates the call; places
a ledger hold; and only then sends it. Refusals send **nothing** and are counted in
``stats.refused``: a hold the ledger refuses (`InsufficientTokens`, `BudgetExceeded`), a style
the table does not know (`UnknownStyleError`, more likely a typo than a new style, so
``unpriced="allow"`` does not cover it), a style or operation without a price (`UnpricedError`,
unless ``unpriced="allow"``), a form naming two different styles (`AmbiguousStyleError`), and
the idempotency refusals below. When the answer comes:

- 2xx: the hold is captured (the call is spent);
- 402 or 424 (the API's "not enough tokens"): the hold is voided whatever ``charge_failed``
  says (the API refused the call, so nothing was spent) and a ``note`` entry records *drift*:
  the tokens the ledger believed available, to reconcile with the Studio's Usage tab;
- 404 or 405: the hold is voided whatever ``charge_failed`` says: no operation ran (a path
  metered case-insensitively that the API does not route, say);
- any other status: the hold is voided (a failed call costs nothing), or captured with
  ``charge_failed=True``;
- an error before any byte of the request was sent (`httpx.ConnectError`, including a DNS
  failure or a refused connection; `httpx.ConnectTimeout`, `httpx.PoolTimeout`,
  `httpx.UnsupportedProtocol`, `httpx.ProxyError`, `httpx.LocalProtocolError`): the API
  cannot have run the call, so the hold is voided and the error raised;
- an *uncertain outcome*, an error once the request may have reached the API (the
  connection dropped or the read timed out after sending: `httpx.ReadError`,
  `httpx.ReadTimeout`, `httpx.RemoteProtocolError`, `httpx.WriteError`, `httpx.WriteTimeout`,
  any other `httpx.TransportError`; a body cut short after a 2xx status; an interrupt or a
  cancelled task once httpx's own transport has begun sending the request): the API may have
  run and billed the call, so when in doubt it is counted. With ``on_uncertain="capture"``
  (the default) the hold is captured; with ``on_uncertain="void"`` it is voided, as a failure.
  Either way a ``note`` entry tagged ``outcome=uncertain`` records the call (for a held call
  its ``hold`` tag is the hold's id, ``error`` the exception's type, ``on_uncertain`` what
  was done; an unpriced call's note says ``outcome=uncertain`` instead of ``failed``), the
  error is raised, and ``stats.uncertain`` counts it. List them to reconcile with the
  Studio's Usage tab: ``ledger.entries(tags={"outcome": "uncertain"})``, or
  ``imagine-billing ledger --db L.db entries --tag outcome=uncertain``. A retry with the same
  ``Idempotency-Key`` is sent again (the caller has no answer): if the first attempt was
  billed, the retry is billed too, and both are counted.

Which of these applies is decided from the status (and, for other error statuses, the first
64 KiB of the body, for the error ``code`` 1101), so that a body that cannot be parsed never
leaves a hold open. A 2xx body is not read by the transport: it streams through to the caller
(``client.stream(...)`` holds one chunk at a time, as without the meter), and the hold is
settled once, when the body ends (captured), fails (an uncertain outcome) or is closed,
read or not (captured: the API answered 2xx). A response never closed keeps its hold open
until the transport is closed (then captured) or the hold expires. The caller gets a response
like the inner transport's (``elapsed``, ``iter_bytes()`` and ``client.stream(...)`` work as
without the meter). A call priced 0 is sent without a hold (``stats.free``). With
``unpriced="allow"`` an unpriced call is sent without a hold, and a ``note`` entry, written
once the answer (or the error) is known, flags it with its outcome (``ok``, ``failed`` or
``uncertain``).

Settling never loses the answer. If the ledger cannot be written when the answer comes (a
`LedgerStoreError`: another process holding the write lock past the ledger's ``timeout``, say),
the transport tries twice more; if that fails too, it returns the response all the same
(``stats.deferred`` counts these), keeps the hold open (its tokens stay reserved) and writes the
settling before its next request and when it is closed (`MeteredTransport.close` raises the
ledger's error if it still cannot). A call settled late after its hold lapsed is debited as
below. After a transport error, the error is raised whatever the ledger does: a ledger error
while voiding is added to it as a note. Until a deferred settling is written, only this
transport knows the answer: another process sees an open hold (``in_flight``), and could resend
the key once that hold has expired and been released, so keep ``hold_expiry`` longer than a
ledger outage.

Which requests are metered: method and path are compared case-insensitively, without trailing
or doubled slashes, and from the path's ``v2`` segment on, so a base URL behind a proxy
(``https://proxy.example/imagine/v2``) is metered too. Any other path (video status and
delete, an endpoint the table does not list, a path without a ``v2`` segment) passes through
unmetered and is counted in ``stats.passed_through``. The style is read from a
multipart/form-data body (CRLF or LF-only line breaks; a delimiter counts only at the start of
a line, as for the API's parser), a urlencoded form, or a JSON object.

Idempotency: the API documents none, so each request that reaches it is a new, billed
generation. The transport therefore guarantees that a retry with the same ``Idempotency-Key``
never charges twice by never *sending* it twice once it has succeeded:

- each attempt of a key is recorded under ``KEY:attempt:N`` (a hold, or the note of an
  unpriced call) with a fingerprint of the logical request: operation, style, query string,
  and the body's fields (each multipart part by name, file name and bytes, so neither a new
  multipart boundary nor a file's guessed Content-Type makes a retry differ; fields in any
  order, a repeated field's values in theirs, as a JSON object's keys or a urlencoded form's);
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
duplicates. ``stats.replayed`` counts the `DuplicateRequest` refusals. Calls sent without a
hold (unpriced, or priced 0) have no open hold to show while in flight: their concurrent
duplicates are refused within one transport only (an unpriced call's note, written after the
answer under the next free attempt number, still stops a resend once any attempt succeeded; a
call priced 0 is not recorded at all).

Holds expire: each carries ``expires_at = now + hold_expiry`` (10 minutes by default), so that
the hold of a process that died mid-request is released by ``ledger.expire_holds()``. A call
that outlives its hold is still spent: its tokens are debited when the answer comes (or, when
the ledger no longer has them, the call is noted as drift).

httpx is imported here only (the ``http`` extra: ``pip install "imagine-billing[http]"``).
The ledger is called synchronously, also from `AsyncMeteredTransport`: its writes are short
SQLite transactions.
"""

from __future__ import annotations

import contextlib
import email.utils
import hashlib
import json
import re
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from datetime import timedelta
from email.message import Message
from functools import partial
from typing import TYPE_CHECKING, Literal
from urllib.parse import parse_qsl

import attrs

try:
    import httpx
except ImportError as error:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        'imagine_billing.adapters.httpx needs httpx: pip install "imagine-billing[http]"'
    ) from error

from imagine_billing.errors import (
    AmbiguousStyleError,
    ApiError,
    BudgetExceeded,
    DuplicateRequest,
    HoldClosed,
    IdempotencyConflict,
    InsufficientTokens,
    LedgerStoreError,
    UnknownEntry,
    UnknownStyleError,
    UnpricedError,
)
from imagine_billing.estimator import Call, Estimate, estimate
from imagine_billing.pricing.loading import load_price_table
from imagine_billing.pricing.model import Operation, PriceTable

if TYPE_CHECKING:
    from imagine_billing.ledger import Entry, Hold, Ledger

__all__ = [
    "DEFAULT_HOLD_EXPIRY",
    "AsyncMeteredTransport",
    "MeteredTransport",
    "TransportStats",
    "aparse_error",
    "parse_error",
]

DEFAULT_HOLD_EXPIRY = timedelta(minutes=10)
"""How long a hold lives by default: far longer than an image call, short enough that the hold
of a process that died mid-request does not keep its tokens for long."""

Unpriced = Literal["refuse", "allow"]
OnUncertain = Literal["capture", "void"]

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

_SHORT = (402, 424)
"""The API's "not enough tokens" (v2, legacy v1): never charged, noted as drift."""
_NOT_RUN = (404, 405)
"""No operation ran (no such path, or not with that method): never charged."""
_NOT_SENT = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.UnsupportedProtocol,
    httpx.ProxyError,
    httpx.LocalProtocolError,
)
"""Transport errors raised before a complete request could reach the API (no connection, no
free connection, no proxy tunnel, a request httpx would not send): the call did not run. Any
other `httpx.TransportError` may come after the API received the request."""
_ERROR_BODY_LIMIT = 64 * 1024
"""How much of an error answer's body the transport reads to look for the code 1101 (error
bodies are short JSON); a longer body streams through to the caller."""
_SETTLE_TRIES = 3
"""How many times settling an answer is tried at once before it is deferred."""
_RESERVE_TRIES = 3
"""How many attempt numbers a request tries when other processes keep taking them."""


@attrs.define
class TransportStats:
    """What a transport did, by request (counters; read them, do not set them).

    Each request handled is counted once in one of ``metered``, ``free``, ``unpriced``,
    ``passed_through`` and ``refused`` (in none if it failed before sending for another
    reason, such as a ledger that cannot be written); ``captured``, ``voided``, ``replayed``,
    ``drift`` and ``deferred`` say more about some of them.
    """

    metered: int = 0
    """Requests that were held for and sent."""
    captured: int = 0
    """Metered requests whose tokens were spent: a 2xx answer (or, with ``charge_failed``, an
    error answer other than 402/424/404/405; with ``on_uncertain="capture"``, an uncertain
    outcome)."""
    voided: int = 0
    """Metered requests whose hold was released: an error answer, an error before sending, or
    (with ``on_uncertain="void"``) an uncertain outcome."""
    uncertain: int = 0
    """Requests of uncertain outcome (sent, then the connection dropped or the read timed
    out): held ones are also in ``captured`` or ``voided`` (``on_uncertain``); each is noted
    with ``outcome=uncertain``."""
    refused: int = 0
    """Requests refused before sending (see the module documentation): nothing was sent."""
    passed_through: int = 0
    """Requests to paths that are not priced operations, sent unmetered."""
    replayed: int = 0
    """Refusals (also in ``refused``) of a retry whose ``Idempotency-Key`` already succeeded or
    is being sent: `DuplicateRequest`, not sent, not charged."""
    unpriced: int = 0
    """Requests sent with ``unpriced="allow"`` for a call without a price (cost 0, noted)."""
    free: int = 0
    """Requests for a call the table prices at 0 tokens: sent without a hold."""
    drift: int = 0
    """402/424 answers to calls the ledger let through, and calls that outlived their hold
    when the ledger no longer had their tokens (noted for reconciliation)."""
    deferred: int = 0
    """Answers (or transport errors) whose settling the ledger could not write at once: the
    response was returned (the error raised) all the same, and the settling is written before
    the transport's next request or when it is closed."""


def parse_error(response: httpx.Response) -> ApiError:
    """The `ApiError` of an error answer of the Imagine API.

    Reads the documented JSON body ``{"status": "error", "code": 1101, "error":
    "PaymentRequired", "message": "..."}``; lenient about ``code`` sent as a string
    (``"1101"``) and about bodies that are not JSON, or JSON nested too deeply to parse (the
    message is then the text, cut short). ``error.insufficient_tokens`` is true for 402, 424
    or code 1101.

    A body that cannot be read (a ``client.stream(...)`` response closed unread, an
    `httpx.AsyncClient` response not read yet) gives the reason phrase as the message: read
    async responses first (``await response.aread()``), or use `aparse_error`.
    """
    status = response.status_code
    content: bytes | None
    try:
        content = response.read()
    except (RuntimeError, httpx.HTTPError):
        # httpx.StreamClosed/StreamConsumed (RuntimeErrors), the RuntimeError of a sync read
        # of an async stream, or the connection dropped while reading.
        content = None
    body: object = None
    if content:
        try:
            body = json.loads(content)
        except (ValueError, RecursionError):  # not JSON, or nested past the parser's depth
            body = None
    fields: Mapping[str, object] = body if isinstance(body, Mapping) else {}
    code = _code(fields.get("code"))
    name = fields.get("error")
    message = fields.get("message")
    if not isinstance(message, str) or not message:
        text = ""
        if content:
            try:
                text = response.text
            except (UnicodeDecodeError, LookupError):  # pragma: no cover - undecodable body
                text = content.decode("utf-8", "replace")
        message = " ".join(text.split())[:200] or response.reason_phrase
    return ApiError(
        status,
        code,
        name if isinstance(name, str) and name else response.reason_phrase,
        message,
    )


async def aparse_error(response: httpx.Response) -> ApiError:
    """`parse_error` for a response of `httpx.AsyncClient`, read first if need be.

    ``async with client.stream("POST", ...) as response: error = await aparse_error(response)``
    """
    with contextlib.suppress(RuntimeError, httpx.HTTPError):  # then the reason phrase
        await response.aread()
    return parse_error(response)


def _code(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value.strip())
    return None


def _says_short(read: Callable[[], httpx.Response]) -> bool:
    """Whether an error answer other than 402/424 carries the code 1101 (not enough tokens);
    false when its body cannot be read or parsed at all."""
    try:
        return parse_error(read()).code == 1101
    except Exception:  # a body that defeats the parser is not a 1101
        return False


@attrs.define
class _Plan:
    """What metering one request means, from its pricing to its settling."""

    key: str
    """The logical request's key: its ``Idempotency-Key``, or a fresh one."""
    given_key: bool
    """Whether the request carried its own ``Idempotency-Key`` (a fresh key cannot be a retry)."""
    operation: str
    style: str | None
    estimate: Estimate | None
    """None when the call is unpriced and ``unpriced="allow"``."""
    tags: dict[str, str]
    attempt: int = 1
    hold: Hold | None = None
    claimed: bool = False
    """Whether the key is in the meter's in-flight map (released when the call settles)."""
    answered_ok: bool = False
    """Whether the API answered 2xx (so a deferred settling is a success being recorded)."""

    @property
    def attempt_key(self) -> str:
        return f"{self.key}:attempt:{self.attempt}"

    @property
    def fingerprint(self) -> str | None:
        return self.tags.get("request")


@attrs.define
class _Settling:
    """The ledger writes that settle one answer, in order; each may be run again (keyed)."""

    plan: _Plan
    steps: list[Callable[[], None]]
    error: BaseException | None = None
    """The ledger's error when the settling was last tried and could not be written."""
    deferred: bool = False
    """Whether it was deferred (counted once in ``stats.deferred``)."""


class _Meter:
    """The logic shared by the sync and async transports (no I/O of its own but the ledger)."""

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
        self.charge_failed = charge_failed
        self.unpriced = unpriced
        self.hold_expiry = hold_expiry
        self.on_uncertain = on_uncertain
        self.stats = TransportStats()
        self._streaming: set[_Ending] = set()
        """The answers whose body is streaming to the caller: settled when it ends."""
        self._lock = threading.Lock()
        self._in_flight: dict[str, _Plan] = {}
        self._pending: list[_Settling] = []
        self._estimates: dict[tuple[str, str | None], Estimate] = {}
        self._routes: dict[tuple[str, tuple[str, ...]], Operation] = {}
        for operation in self.table.operations.values():
            self._routes[(operation.method.upper(), _segments(operation.path))] = operation
        self._styled = {style.operation for style in self.table.styles.values()}

    def count(self, field: str) -> None:
        with self._lock:
            setattr(self.stats, field, getattr(self.stats, field) + 1)

    def operation_of(self, request: httpx.Request) -> Operation | None:
        """The operation a request calls, or None to pass it through."""
        method = request.method.upper()
        segments = _segments(request.url.path)
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

    def begin(self, request: httpx.Request, operation: Operation, body: bytes) -> _Plan:
        """Price the request, check its key and hold its tokens; raise a counted refusal."""
        if self._pending:
            self.flush()
        try:
            plan = self._plan(request, operation, body)
            if plan.given_key:
                self._claim(plan)
            try:
                plan.hold = self._reserve(plan)
            except BaseException:
                self._unclaim(plan)
                raise
        except _REFUSALS as refusal:
            with self._lock:
                self.stats.refused += 1
                if isinstance(refusal, DuplicateRequest):
                    self.stats.replayed += 1
            raise
        if plan.hold is not None:
            self.count("metered")
        elif plan.estimate is None:
            self.count("unpriced")
        else:
            self.count("free")
        return plan

    def _plan(self, request: httpx.Request, operation: Operation, body: bytes) -> _Plan:
        given = request.headers.get("Idempotency-Key")
        key = given or f"imagine-billing-{uuid.uuid4()}"
        content_type = request.headers.get("Content-Type", "")
        style: str | None = None
        if operation.id in self._styled:
            styles = _field_values(content_type, body, "style")
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
            tags["request"] = _fingerprint(operation.id, style, request.url.query,
                                           content_type, body)
        return _Plan(key, bool(given), operation.id, style, priced, tags)

    def _estimate(self, operation: str, style: str | None) -> Estimate:
        # Estimates are immutable and the table too: price each (operation, style) once.
        found = self._estimates.get((operation, style))
        if found is None:
            found = estimate([Call(style=style, operation=operation)], self.table)
            self._estimates[(operation, style)] = found
        return found

    def _claim(self, plan: _Plan) -> None:
        """Refuse a duplicate of a key in flight or already done; pick the attempt number.

        The content is checked first, here as in `_next_attempt`: another request under a key
        is an `IdempotencyConflict` whether its attempt is in flight or done.
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
            plan.attempt = self._next_attempt(plan)
        except BaseException:
            self._unclaim(plan)
            raise

    def _unclaim(self, plan: _Plan) -> None:
        if plan.claimed:
            with self._lock:
                if self._in_flight.get(plan.key) is plan:
                    del self._in_flight[plan.key]
            plan.claimed = False

    def _attempt(self, key: str, number: int) -> Entry | None:
        try:
            return self.ledger.get(f"{key}:attempt:{number}")
        except UnknownEntry:
            return None

    def _last_attempt(self, key: str) -> tuple[int, Entry | None]:
        """The number and entry of a key's last attempt ((0, None) for none): attempts are
        numbered 1, 2, 3... without gaps, so a doubling then halving search finds it."""
        found = self._attempt(key, 1)
        if found is None:
            return 0, None
        low, last, high = 1, found, 2
        while (found := self._attempt(key, high)) is not None:
            low, last, high = high, found, high * 2
        while high - low > 1:
            middle = (low + high) // 2
            found = self._attempt(key, middle)
            if found is None:
                high = middle
            else:
                low, last = middle, found
        return low, last

    def _next_attempt(self, plan: _Plan) -> int:
        number, last = self._last_attempt(plan.key)
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
                found = last if earlier == number else self._attempt(plan.key, earlier)
                if (found is not None and found.kind == "note"
                        and found.tags.get("outcome") == "ok"):
                    raise DuplicateRequest(plan.key, in_flight=False, entry=found.id)
            return number + 1
        hold = self.ledger.get_hold(last.id)
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
                late = self.ledger.get(f"{last.key}:capture")
            except UnknownEntry:
                return number + 1
            raise DuplicateRequest(plan.key, in_flight=False, entry=late.id, tokens=late.tokens)
        return number + 1  # captured as a charged failure (charge_failed): a retry is a new call

    def _reserve(self, plan: _Plan) -> Hold | None:
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
            plan.attempt = self._next_attempt(plan)
        raise DuplicateRequest(plan.key, in_flight=True)

    # -- after sending ------------------------------------------------------------------------

    def settle(self, plan: _Plan, status: int, read: Callable[[], httpx.Response]) -> None:
        """Capture or void the hold by the answer's status; note unpriced calls and drift.

        ``read`` gives the answer with its body, for an error code 1101 under another status.
        Never raises but for an interrupt (a `KeyboardInterrupt`): a ledger that cannot be
        written defers the settling (see the module documentation).
        """
        ok = 200 <= status < 300
        short = status in _SHORT or (not ok and status not in _NOT_RUN and _says_short(read))
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

    def stream(self, plan: _Plan, status: int) -> _Ending:
        """The settling of a 2xx answer whose body streams to the caller, run once by
        `_Ending.end` (or by `finish`, for an answer never closed)."""
        plan.answered_ok = True
        ending = _Ending(self, plan, status)
        with self._lock:
            self._streaming.add(ending)
        return ending

    def ended(self, ending: _Ending) -> None:
        with self._lock:
            self._streaming.discard(ending)

    def fail(self, plan: _Plan, error: BaseException, *, sent: bool) -> None:
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
            self.count("uncertain")
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
                        self.stats.deferred += 1
                    self._pending.append(settling)
                return error
            self._unclaim(settling.plan)
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

    def _capture(self, plan: _Plan, hold: Hold, outcome: str, status: str) -> None:
        """Spend a hold: ``outcome`` is ``"ok"`` (a 2xx), ``"failed"`` (a charged failure)
        or ``"uncertain"``; ``status`` the answer's status or the error's type."""
        # A charged failure or an uncertain outcome is captured under its own key, so that a
        # retry is not refused as the duplicate of a call that succeeded.
        ok = outcome == "ok"
        key = f"{hold.key}:capture"
        if not ok:
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
            assert plan.estimate is not None  # a hold is placed for a priced call only
            try:
                self.ledger.debit(plan.estimate, key=key, tags=plan.tags,
                                  memo="spent after its hold had lapsed")
            except (InsufficientTokens, BudgetExceeded) as refusal:
                # Noted under the key the debit would have had: for a success, that is what
                # stops a resend of its key (`_next_attempt`).
                believed = self.ledger.balance().available
                call = ("the call succeeded" if ok else
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
                self.count("drift")
                return
        self.count("captured")

    def _release(self, hold: Hold) -> None:
        with contextlib.suppress(HoldClosed):  # already expired: its tokens are back
            self.ledger.void(hold)

    def _void(self, hold: Hold) -> None:
        self._release(hold)
        self.count("voided")

    def _note_uncertain(self, plan: _Plan, hold: Hold, error: str) -> None:
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

    def _note_unpriced(self, plan: _Plan, what: str, *, ok: bool, status: str,
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
                # one, so that `_next_attempt` sees this outcome too.
                number += 1
            else:
                return

    def _drift(self, plan: _Plan, status: int, key: str) -> None:
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
        self.count("drift")


def _describe(operation: str | None, style: str | None) -> str:
    return f"{operation}" + (f" in style {style!r}" if style else "")


def _differs(before: str, plan: _Plan) -> str:
    """The detail of an `IdempotencyConflict`: what the key was used for, and this request."""
    this = _describe(plan.operation, plan.style)
    return (f"{before}; this request is {this}"
            + (" with other fields" if before.endswith(f" {this}") else ""))


def _segments(path: str) -> tuple[str, ...]:
    """A path compared case-insensitively, without trailing or doubled slashes."""
    return tuple(part.lower() for part in path.split("/") if part)


# The boundary parameter of a Content-Type: after the type or a ";" (not inside "xboundary=").
_BOUNDARY = re.compile(r'(?:^|;)\s*boundary\s*=\s*(?:"([^"]+)"|([^;\s]+))', re.IGNORECASE)
_BLANK_LINE = re.compile(rb"\r?\n\r?\n")
_HEADER_LINE = re.compile(rb"[\x21-\x39\x3b-\x7e]*:|[ \t]")
"""A header line, or the continuation of one (as the email package tells them)."""


def _parts(content_type: str, body: bytes) -> list[bytes] | None:
    """The parts of a multipart body, each without its delimiter lines; None if not multipart.

    A delimiter is ``--boundary`` at the start of the body or of a line, then padding and a
    line break (CRLF or LF), or ``--`` for the close delimiter (RFC 2046, as the API's parser
    reads it): ``--boundary`` elsewhere in a line is content. The line break before a
    delimiter belongs to it, not to the part.
    """
    found = _BOUNDARY.search(content_type)
    if found is None:
        return None
    dash = b"--" + (found.group(1) or found.group(2)).encode("latin-1")
    parts: list[bytes] = []
    begin = -1  # where the current part's content starts (-1: in the preamble)
    at = 0 if body.startswith(dash) else _line_starting(body, dash, 0)
    size = len(body)
    while at >= 0:
        end = at  # the current part ends before the line break that precedes the delimiter
        if end > 0:
            end -= 2 if end > 1 and body[end - 2] == 0x0D else 1
        after = at + len(dash)
        if body.startswith(b"--", after):  # the close delimiter
            if begin >= 0:
                parts.append(body[begin:end])
            return parts
        line = after
        while line < size and body[line] in (0x20, 0x09):  # transport padding
            line += 1
        if body.startswith(b"\r\n", line):
            start = line + 2
        elif body.startswith(b"\n", line) or line == size:
            start = line + 1
        else:  # "--boundaryX...": a longer string, not this delimiter
            at = _line_starting(body, dash, after)
            continue
        if begin >= 0:
            parts.append(body[begin:end])
        begin = start
        at = _line_starting(body, dash, start)
    if begin >= 0:
        parts.append(body[begin:])  # no close delimiter: the last part runs to the end
    return parts


def _line_starting(body: bytes, dash: bytes, start: int) -> int:
    """Where the next line starting with ``dash`` begins, from ``start`` on (-1: none)."""
    found = body.find(b"\n" + dash, max(start - 1, 0))
    return -1 if found < 0 else found + 1


def _part_head(part: bytes, hint: bytes | None = None) -> tuple[dict[str, str], bytes] | None:
    """The ``name``/``filename`` parameters of a part's Content-Disposition, and its content
    (None for a part without headers or without that header, or when ``hint`` is not in its
    headers: a cheap test that they cannot name the field sought).

    The headers end at the blank line or, as the email package reads a part that has none,
    at the first line that is not a header (nor the continuation of one).
    """
    if part.startswith((b"\r\n", b"\n")):
        return None  # no headers, so no name
    found = _BLANK_LINE.search(part)
    head, content = (part, b"") if found is None else (part[: found.start()],
                                                       part[found.end():])
    if hint is not None and hint not in head and b"*" not in head:
        return None
    offset = 0
    for raw in head.split(b"\n"):
        if not _HEADER_LINE.match(raw):
            head, content = part[:offset], part[offset:]
            break
        offset += len(raw) + 1
    if not head:
        return None
    disposition = None
    for line in head.decode("latin-1").replace("\r\n", "\n").replace("\n ", " ").replace(
            "\n\t", " ").split("\n"):
        label, _, value = line.partition(":")
        if disposition is None and label.strip().lower() == "content-disposition":
            disposition = value.strip()  # the first, as the email package reads it
    if disposition is None:
        return None
    return _disposition_params(disposition), content


def _part_field(part: bytes, name: str) -> str | None:
    """The text of a part that is the form field ``name`` (None for a file or another name)."""
    found = _part_head(part, name.encode())
    if found is None:
        return None
    params, content = found
    if params.get("name") != name or "filename" in params:
        return None
    return content.decode("utf-8", "replace").strip()


_PARAM = re.compile(r';\s*([^\s=;"]+)\s*=\s*(?:"([^"\\]*)"|([^";\s]*))')


def _disposition_params(disposition: str) -> dict[str, str]:
    """The ``name`` and ``filename`` parameters of a Content-Disposition value.

    Plain ``name="x"`` and ``name=x`` are read by a regular expression (fast); anything rarer
    (RFC 2231 ``name*=``, backslash escapes, text the expression leaves) by the email package.
    """
    rest = _PARAM.sub("", disposition)
    if "*" not in disposition and "\\" not in disposition and not any(
            c in rest for c in ';="'):
        return {m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
                for m in _PARAM.finditer(disposition)}
    header = Message()
    header["Content-Disposition"] = disposition
    found = {}
    for label in ("name", "filename"):
        value = header.get_param(label, header="content-disposition")
        if value is not None:
            found[label] = email.utils.collapse_rfc2231_value(value)
    return found


def _field_values(content_type: str, body: bytes, name: str) -> list[str]:
    """Every text value of the field ``name`` of a multipart, urlencoded or JSON body."""
    kind = content_type.split(";", maxsplit=1)[0].strip().lower()
    if kind == "multipart/form-data":
        values = []
        for part in _parts(content_type, body) or ():
            value = _part_field(part, name)
            if value is not None:
                values.append(value)
        return values
    if kind == "application/x-www-form-urlencoded":
        pairs = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
        return [value.strip() for field, value in pairs if field == name]
    if kind == "application/json" or kind.endswith("+json"):
        try:
            document = json.loads(body)
        except (ValueError, RecursionError):
            return []
        value = document.get(name) if isinstance(document, dict) else None
        return [value.strip()] if isinstance(value, str) else []
    return []


def _fingerprint(operation: str, style: str | None, query: bytes, content_type: str,
                 body: bytes) -> str:
    """The logical request: operation, style, query string and the body's fields.

    Left out, as a retry may change them without changing the call: the multipart boundary,
    each part's headers but its name and file name (a file's Content-Type is guessed from its
    name, differently on different hosts), the order of differently named fields, and a JSON
    body's key order and spacing (it is hashed in canonical form). A body that cannot be read
    as fields (no multipart part found, JSON that does not parse) is hashed as it is.
    """
    digest = hashlib.blake2b(digest_size=16)
    for piece in (operation.encode(), (style or "").encode(), query,
                  *_canonical(content_type, body)):
        digest.update(len(piece).to_bytes(8, "big"))
        digest.update(piece)
    return digest.hexdigest()


def _canonical(content_type: str, body: bytes) -> list[bytes]:
    """The pieces of a body that make it the request it is (see `_fingerprint`)."""
    kind = content_type.split(";", maxsplit=1)[0].strip().lower()
    fields: list[tuple[bytes, bytes, bytes]] = []  # (name, file name or marker, content)
    if kind.startswith("multipart/"):
        for part in _parts(content_type, body) or ():
            head = _part_head(part)
            if head is None:
                fields.append((b"", b"\0raw", part))
            else:
                params, content = head
                filename = params.get("filename")
                fields.append((params.get("name", "").encode(),
                               b"\0field" if filename is None else b"\0file " + filename.encode(),
                               content))
    elif kind == "application/x-www-form-urlencoded":
        text = body.decode("latin-1")  # byte for byte: percent escapes decoded as bytes too
        fields = [(name.encode("latin-1"), b"", value.encode("latin-1")) for name, value in
                  parse_qsl(text, keep_blank_values=True, encoding="latin-1")]
    elif kind == "application/json" or kind.endswith("+json"):
        try:
            document = json.loads(body)
            return [b"json", json.dumps(document, sort_keys=True, separators=(",", ":"),
                                        ensure_ascii=False).encode()]
        except (ValueError, RecursionError):
            pass
    if not fields:
        return [b"raw", body]
    # Fields by name, a repeated field's values in their order (the API keeps the last).
    fields.sort(key=lambda field: field[0])
    return [b"fields", *(piece for field in fields for piece in field)]


def _answer(response: httpx.Response,
            stream: httpx.SyncByteStream | httpx.AsyncByteStream) -> httpx.Response:
    """A response like the inner transport's, for the client, its body ``stream`` not read
    yet: the client reads it (or streams it), decodes it and times it, as without the meter."""
    return httpx.Response(response.status_code, headers=response.headers, stream=stream,
                          extensions=response.extensions)


def _head_answer(response: httpx.Response, head: list[bytes]) -> httpx.Response:
    """The answer with the part of its body read so far, for `parse_error`."""
    return _answer(response, httpx.ByteStream(b"".join(head)))


class _Ending:
    """The settling of a 2xx answer whose body streams to the caller: run once, by the first
    of the body's end, its failure, its closing, or the transport's closing."""

    def __init__(self, meter: _Meter, plan: _Plan, status: int) -> None:
        self._meter = meter
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
        self._meter.ended(self)
        if error is None:
            self._meter.settle(self._plan, self._status, partial(httpx.Response, self._status))
        else:
            self._meter.fail(self._plan, error, sent=True)


class _Streamed(httpx.SyncByteStream):
    """A 2xx answer's body, passed through as it comes; its end settles the hold."""

    def __init__(self, response: httpx.Response, ending: _Ending) -> None:
        self._response = response
        self._ending = ending

    def __iter__(self) -> Iterator[bytes]:
        chunks = self._response.iter_raw()
        while True:
            try:
                chunk = next(chunks)
            except StopIteration:
                break
            except BaseException as error:
                self._ending.end(error)
                raise
            yield chunk
        self._ending.end(None)

    def close(self) -> None:
        try:
            self._response.close()
        finally:
            self._ending.end(None)


class _AsyncStreamed(httpx.AsyncByteStream):
    """`_Streamed` for `AsyncMeteredTransport`."""

    def __init__(self, response: httpx.Response, ending: _Ending) -> None:
        self._response = response
        self._ending = ending

    async def __aiter__(self) -> AsyncIterator[bytes]:
        chunks = self._response.aiter_raw()
        while True:
            try:
                chunk = await anext(chunks)
            except StopAsyncIteration:
                break
            except BaseException as error:
                self._ending.end(error)
                raise
            yield chunk
        self._ending.end(None)

    async def aclose(self) -> None:
        try:
            await self._response.aclose()
        finally:
            self._ending.end(None)


class _Tail(httpx.SyncByteStream):
    """An error answer's body longer than the transport reads: what it read, then the rest."""

    def __init__(self, head: list[bytes], rest: Iterator[bytes], response: httpx.Response) -> None:
        self._head = head
        self._rest = rest
        self._response = response

    def __iter__(self) -> Iterator[bytes]:
        yield from self._head
        yield from self._rest

    def close(self) -> None:
        self._response.close()


class _AsyncTail(httpx.AsyncByteStream):
    """`_Tail` for `AsyncMeteredTransport`."""

    def __init__(self, head: list[bytes], rest: AsyncIterator[bytes],
                 response: httpx.Response) -> None:
        self._head = head
        self._rest = rest
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self._head:
            yield chunk
        async for chunk in self._rest:
            yield chunk

    async def aclose(self) -> None:
        await self._response.aclose()


def _read_head(chunks: Iterator[bytes], head: list[bytes]) -> bool:
    """Read up to `_ERROR_BODY_LIMIT` of a body into ``head``; whether the body ended."""
    size = 0
    for chunk in chunks:
        head.append(chunk)
        size += len(chunk)
        if size > _ERROR_BODY_LIMIT:
            return False
    return True


async def _aread_head(chunks: AsyncIterator[bytes], head: list[bytes]) -> bool:
    """`_read_head` of an async body."""
    size = 0
    async for chunk in chunks:
        head.append(chunk)
        size += len(chunk)
        if size > _ERROR_BODY_LIMIT:
            return False
    return True


class _Sending:
    """Whether a request may have reached the API, from the error that ended it and from
    httpcore's ``trace`` events (httpx's own transports report them; another inner transport
    may not, and then an error that is not an `httpx.TransportError` counts as before
    sending)."""

    def __init__(self) -> None:
        self.began = False

    def see(self, name: str) -> None:
        if name.endswith(".send_request_headers.started"):  # http11. or http2.
            self.began = True

    def maybe_sent(self, error: BaseException) -> bool:
        if isinstance(error, _NOT_SENT):
            return False
        return self.began or isinstance(error, httpx.TransportError)

    def trace(self, previous: object) -> Callable[[str, dict[str, object]], None]:
        """A ``trace`` extension that watches, then calls the request's own (``previous``)."""
        def trace(name: str, info: dict[str, object]) -> None:
            self.see(name)
            if callable(previous):
                previous(name, info)
        return trace

    def atrace(self, previous: object) -> Callable[[str, dict[str, object]], Awaitable[None]]:
        """The async ``trace`` extension, for `AsyncMeteredTransport`."""
        async def trace(name: str, info: dict[str, object]) -> None:
            self.see(name)
            if callable(previous):
                await previous(name, info)
        return trace


class MeteredTransport(httpx.BaseTransport):
    """An httpx transport that holds tokens before each priced call and settles after it.

    A retry with the same ``Idempotency-Key`` never charges twice: it is sent again only when
    every earlier attempt failed; once one succeeded it raises `DuplicateRequest` unsent, and
    a concurrent duplicate does too (see the module documentation).

    An error once the request may have reached the API (a dropped connection, a read
    timeout, a 2xx body cut short) is an *uncertain outcome*: the API may have billed the
    call, so by default it is counted (the hold captured) and noted with the tag
    ``outcome=uncertain``; list those notes to reconcile with the Studio's Usage tab::

        for note in ledger.entries(tags={"outcome": "uncertain"}):
            print(note.at, note.tags.get("hold"), note.tags["error"], note.memo)

    An error before any byte was sent (connection refused, DNS failure, connect or pool
    timeout) voids the hold. A 2xx body is streamed through, not buffered: the hold is
    settled when the body ends or the response is closed (read or not).

    Args:
        ledger: The `Ledger` to hold, capture and void in (it may be shared with threads).
        table: The `PriceTable` that prices calls (default: the bundled table).
        inner: The transport that really sends (default: ``httpx.HTTPTransport()``).
        charge_failed: Capture holds of error answers too (default: a failed call is free);
            a 402/424 is never charged (the API refused the call for lack of tokens), nor a
            404/405 (no operation ran).
        unpriced: ``"refuse"`` (default) raises `UnpricedError` for a call with no price;
            ``"allow"`` sends it at cost 0 and records a ``note`` entry flagging it, with its
            outcome. An unknown style is refused either way (`UnknownStyleError`).
        hold_expiry: How long each hold lives (``expires_at``), so that ``expire_holds()``
            releases the hold of a process that died mid-request; ``None``: holds never
            expire. Keep it longer than the slowest call (a call that outlives its hold is
            debited when it answers).
        on_uncertain: ``"capture"`` (default) counts a call of uncertain outcome (when in
            doubt, count it: the ledger may over-count, never under-count); ``"void"``
            releases its hold, as a failure. Noted with ``outcome=uncertain`` either way.

    Raises:
        ValueError: A bad ``unpriced``, ``hold_expiry`` or ``on_uncertain``.
    """

    def __init__(
        self,
        ledger: Ledger,
        table: PriceTable | None = None,
        inner: httpx.BaseTransport | None = None,
        *,
        charge_failed: bool = False,
        unpriced: Unpriced = "refuse",
        hold_expiry: timedelta | None = DEFAULT_HOLD_EXPIRY,
        on_uncertain: OnUncertain = "capture",
    ) -> None:
        self._meter = _Meter(ledger, table, charge_failed, unpriced, hold_expiry,
                             on_uncertain=on_uncertain)
        self._inner = httpx.HTTPTransport() if inner is None else inner

    @property
    def stats(self) -> TransportStats:
        """Counters of what the transport did."""
        return self._meter.stats

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Meter and send one request.

        Raises:
            InsufficientTokens, BudgetExceeded, UnpricedError, UnknownStyleError,
                AmbiguousStyleError, IdempotencyConflict, DuplicateRequest: Refused, not sent.
        """
        meter = self._meter
        operation = meter.operation_of(request)
        if operation is None:
            meter.count("passed_through")
            return self._inner.handle_request(request)
        plan = meter.begin(request, operation, request.read())
        sending = _Sending()
        extensions = request.extensions
        request.extensions = {**extensions, "trace": sending.trace(extensions.get("trace"))}
        try:
            response = self._inner.handle_request(request)
        except BaseException as error:
            meter.fail(plan, error, sent=sending.maybe_sent(error))
            raise
        finally:
            request.extensions = extensions
        status = response.status_code
        if response.is_stream_consumed:  # an inner transport that read the body itself
            meter.settle(plan, status, partial(_readable, response))
            return response
        if 200 <= status < 300:
            return _answer(response, _Streamed(response, meter.stream(plan, status)))
        head: list[bytes] = []
        chunks = response.iter_raw()
        try:
            ended = _read_head(chunks, head)
        except BaseException:
            response.close()
            meter.settle(plan, status, partial(_head_answer, response, head))
            raise
        meter.settle(plan, status, partial(_head_answer, response, head))
        if ended:
            response.close()
            return _head_answer(response, head)
        return _answer(response, _Tail(head, chunks, response))

    def close(self) -> None:
        """Close the inner transport, once the answers still streaming are settled (as
        closed: captured) and the deferred settlings are written.

        Raises:
            LedgerStoreError: (or the ledger's other error) A deferred settling still cannot be
                written; the inner transport is closed all the same.
        """
        try:
            self._meter.finish()
        finally:
            self._inner.close()


class AsyncMeteredTransport(httpx.AsyncBaseTransport):
    """The asynchronous `MeteredTransport` (same arguments; ``inner`` is async)."""

    def __init__(
        self,
        ledger: Ledger,
        table: PriceTable | None = None,
        inner: httpx.AsyncBaseTransport | None = None,
        *,
        charge_failed: bool = False,
        unpriced: Unpriced = "refuse",
        hold_expiry: timedelta | None = DEFAULT_HOLD_EXPIRY,
        on_uncertain: OnUncertain = "capture",
    ) -> None:
        self._meter = _Meter(ledger, table, charge_failed, unpriced, hold_expiry,
                             on_uncertain=on_uncertain)
        self._inner = httpx.AsyncHTTPTransport() if inner is None else inner

    @property
    def stats(self) -> TransportStats:
        """Counters of what the transport did."""
        return self._meter.stats

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Meter and send one request (refusals as `MeteredTransport.handle_request`)."""
        meter = self._meter
        operation = meter.operation_of(request)
        if operation is None:
            meter.count("passed_through")
            return await self._inner.handle_async_request(request)
        plan = meter.begin(request, operation, await request.aread())
        sending = _Sending()
        extensions = request.extensions
        request.extensions = {**extensions, "trace": sending.atrace(extensions.get("trace"))}
        try:
            response = await self._inner.handle_async_request(request)
        except BaseException as error:
            meter.fail(plan, error, sent=sending.maybe_sent(error))
            raise
        finally:
            request.extensions = extensions
        status = response.status_code
        if response.is_stream_consumed:  # an inner transport that read the body itself
            meter.settle(plan, status, partial(_readable, response))
            return response
        if 200 <= status < 300:
            return _answer(response, _AsyncStreamed(response, meter.stream(plan, status)))
        head: list[bytes] = []
        chunks = response.aiter_raw()
        try:
            ended = await _aread_head(chunks, head)
        except BaseException:
            await response.aclose()
            meter.settle(plan, status, partial(_head_answer, response, head))
            raise
        meter.settle(plan, status, partial(_head_answer, response, head))
        if ended:
            await response.aclose()
            return _head_answer(response, head)
        return _answer(response, _AsyncTail(head, chunks, response))

    async def aclose(self) -> None:
        """Close the inner transport, once the answers still streaming are settled and the
        deferred settlings are written (as `MeteredTransport.close`)."""
        try:
            self._meter.finish()
        finally:
            await self._inner.aclose()


def _readable(answer: httpx.Response) -> httpx.Response:
    """The answer with its body readable by `parse_error`: a copy, as the caller's answer is
    not read yet (unless the inner transport read it)."""
    if answer.is_stream_consumed:
        return answer
    return httpx.Response(answer.status_code, headers=answer.headers, stream=answer.stream,
                          extensions=answer.extensions)
