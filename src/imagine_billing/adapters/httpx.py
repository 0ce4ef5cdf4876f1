"""A metered httpx transport for the Imagine API: check before sending, record after answering.

    ledger = Ledger.open("tokens.db")
    client = httpx.Client(transport=MeteredTransport(ledger), base_url="https://api.vyro.ai/v2")
    form = {"prompt": (None, "a cat"), "style": (None, "flux-dev")}
    client.post("/image/generations", files=form, headers={"Authorization": "Bearer vk-..."})

For each request the transport maps its method and path to an operation of the price table;
reads the ``style`` form field (or takes the operation's default style); estimates the call;
places a ledger hold; and only then sends it. A hold that the ledger refuses raises
`InsufficientTokens` (or `BudgetExceeded`) and **nothing is sent**. When the answer comes:

- 2xx: the hold is captured (the call is spent);
- any other status: the hold is voided (a failed call costs nothing), unless
  ``charge_failed=True``; a 402 or 424 while the ledger thought the tokens were there is
  *drift*: a ``note`` entry records what the ledger believed was available, to reconcile with
  the Studio's Usage tab;
- a transport error (connection dropped, timeout): the hold is voided and the error raised.

The response body is read inside the transport, so a connection dropped mid-body counts as a
transport error, not as a success. Paths that are not operations of the table (video status,
video delete, anything unknown) pass through unmetered and are counted in `stats`.

Idempotency: the logical request is keyed by its ``Idempotency-Key`` header (a fresh key when
it has none). Each attempt holds under its own key, and the capture is keyed by the logical
key, so a retry with the same ``Idempotency-Key`` is never charged twice: once a key has been
captured, a retry passes through without a new charge (``stats.replayed``).

httpx is imported here only (the ``http`` extra: ``pip install "imagine-billing[http]"``).
The ledger is called synchronously, also from `AsyncMeteredTransport`: its writes are short
SQLite transactions.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Mapping
from email.message import Message
from typing import TYPE_CHECKING, Literal

import attrs

try:
    import httpx
except ImportError as error:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        'imagine_billing.adapters.httpx needs httpx: pip install "imagine-billing[http]"'
    ) from error

from imagine_billing.errors import ApiError, IdempotencyConflict, UnknownEntry, UnpricedError
from imagine_billing.estimator import Call, Estimate, estimate
from imagine_billing.pricing.loading import load_price_table
from imagine_billing.pricing.model import Operation, PriceTable

if TYPE_CHECKING:
    from imagine_billing.ledger import Hold, Ledger

__all__ = [
    "AsyncMeteredTransport",
    "MeteredTransport",
    "TransportStats",
    "parse_error",
]

INSUFFICIENT_STATUSES = frozenset({402, 424})
"""HTTP statuses meaning "not enough tokens": 402 in v2, 424 in the legacy v1 API."""
INSUFFICIENT_CODE = 1101

Unpriced = Literal["refuse", "allow"]


@attrs.define
class TransportStats:
    """What a transport did, by request (counters; read them, do not set them)."""

    metered: int = 0
    """Requests that were held for and sent."""
    captured: int = 0
    """Holds captured after a 2xx answer (or any answer with ``charge_failed``)."""
    voided: int = 0
    """Holds voided after a non-2xx answer or a transport error."""
    refused: int = 0
    """Requests refused before sending (not enough tokens, a budget, no price)."""
    passed_through: int = 0
    """Requests to paths that are not priced operations, sent unmetered."""
    replayed: int = 0
    """Retries of an ``Idempotency-Key`` already captured: sent, not charged again."""
    unpriced: int = 0
    """Requests sent with ``unpriced="allow"`` for an operation without a price (cost 0)."""
    drift: int = 0
    """402/424 answers while the ledger believed the tokens were available."""


def parse_error(response: httpx.Response) -> ApiError:
    """The `ApiError` of an error answer of the Imagine API.

    Reads the documented JSON body ``{"status": "error", "code": 1101, "error":
    "PaymentRequired", "message": "..."}``; lenient about ``code`` sent as a string
    (``"1101"``) and about bodies that are not JSON (the message is then the text, cut short).
    ``error.insufficient_tokens`` is true for 402, 424 or code 1101.
    """
    status = response.status_code
    body: object = None
    try:
        response.read()
        body = json.loads(response.content) if response.content else None
    except (ValueError, httpx.HTTPError):
        body = None
    fields: Mapping[str, object] = body if isinstance(body, Mapping) else {}
    code = _code(fields.get("code"))
    name = fields.get("error")
    message = fields.get("message")
    if not isinstance(message, str) or not message:
        try:
            message = " ".join(response.text.split())[:200] or response.reason_phrase
        except (UnicodeDecodeError, httpx.HTTPError):  # pragma: no cover - undecodable body
            message = response.reason_phrase
    return ApiError(
        status,
        code,
        name if isinstance(name, str) and name else response.reason_phrase,
        message,
    )


def _code(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value.strip())
    return None


def is_insufficient(error: ApiError) -> bool:
    """Whether an API error means "not enough tokens" (402, 424, or code 1101)."""
    return error.status in INSUFFICIENT_STATUSES or error.code == INSUFFICIENT_CODE


@attrs.frozen
class _Plan:
    """What metering one request means: its estimate, or a flagged unpriced call."""

    key: str
    given_key: bool
    """Whether the request carried its own ``Idempotency-Key`` (a fresh key cannot be a retry)."""
    operation: str
    style: str | None
    estimate: Estimate | None
    """None when the call is unpriced and ``unpriced="allow"``."""


class _Meter:
    """The logic shared by the sync and async transports (no I/O of its own but the ledger)."""

    def __init__(
        self, ledger: Ledger, table: PriceTable | None, charge_failed: bool, unpriced: Unpriced
    ) -> None:
        if unpriced not in ("refuse", "allow"):
            raise ValueError(f'unpriced must be "refuse" or "allow" (got {unpriced!r})')
        self.ledger = ledger
        self.table = load_price_table() if table is None else table
        self.charge_failed = charge_failed
        self.unpriced = unpriced
        self.stats = TransportStats()
        self._lock = threading.Lock()
        self._routes: dict[tuple[str, str], Operation] = {}
        for operation in self.table.operations.values():
            self._routes[(operation.method.upper(), _normal_path(operation.path))] = operation
        self._styled = {style.operation for style in self.table.styles.values()}

    def count(self, field: str) -> None:
        with self._lock:
            setattr(self.stats, field, getattr(self.stats, field) + 1)

    def operation_of(self, request: httpx.Request) -> Operation | None:
        """The operation a request calls, or None to pass it through."""
        return self._routes.get((request.method.upper(), _normal_path(request.url.path)))

    def plan(self, request: httpx.Request, operation: Operation, body: bytes) -> _Plan:
        given = request.headers.get("Idempotency-Key")
        key = given or f"imagine-billing-{uuid.uuid4()}"
        style = _form_field(request.headers.get("Content-Type", ""), body, "style")
        if operation.id not in self._styled:
            # The table prices this operation flat (video: the style field names a model
            # the table does not list): the style does not change the price.
            style = None
        style = style or operation.default_style
        call = Call(style=style, operation=operation.id)
        try:
            return _Plan(key, bool(given), operation.id, style, estimate([call], self.table))
        except UnpricedError:
            if self.unpriced == "refuse":
                self.count("refused")
                raise
            return _Plan(key, bool(given), operation.id, style, None)

    def already_captured(self, plan: _Plan) -> bool:
        if not plan.given_key:
            return False
        try:
            self.ledger.get(f"{plan.key}:capture")
        except UnknownEntry:
            return False
        return True

    def reserve(self, plan: _Plan) -> Hold | None:
        """Hold the estimate (raising, and counting a refusal, when the ledger says no)."""
        if plan.estimate is None:
            self.ledger.note(
                key=f"{plan.key}:unpriced:{uuid.uuid4()}",
                memo=f"unpriced call sent at cost 0: operation {plan.operation!r}"
                + (f", style {plan.style!r}" if plan.style else ""),
                tags=self._tags(plan, unpriced="true"),
            )
            self.count("unpriced")
            return None
        try:
            hold = self.ledger.hold(
                plan.estimate, key=f"{plan.key}:attempt:{uuid.uuid4()}", tags=self._tags(plan)
            )
        except Exception:
            self.count("refused")
            raise
        self.count("metered")
        return hold

    def _tags(self, plan: _Plan, **more: str) -> dict[str, str]:
        tags = {"operation": plan.operation, "idempotency_key": plan.key}
        if plan.style:
            tags["style"] = plan.style
        tags.update(more)
        return tags

    def release(self, hold: Hold | None) -> None:
        """Void a hold after a transport error."""
        if hold is not None:
            self.ledger.void(hold)
            self.count("voided")

    def settle(self, plan: _Plan, hold: Hold | None, response: httpx.Response) -> None:
        """Capture or void the hold by the answer's status; record drift."""
        if hold is None:
            return
        ok = 200 <= response.status_code < 300
        if ok or self.charge_failed:
            try:
                self.ledger.capture(hold, key=f"{plan.key}:capture")
            except IdempotencyConflict:
                # Another attempt of this Idempotency-Key was captured first: never twice.
                self.ledger.void(hold)
                self.count("replayed")
                return
            self.count("captured")
            return
        self.ledger.void(hold)
        self.count("voided")
        believed = self.ledger.balance().available
        error = parse_error(response)
        if is_insufficient(error):
            self.ledger.note(
                key=f"{plan.key}:drift:{uuid.uuid4()}",
                memo=(
                    f"drift: the API answered {error.status} (not enough tokens) while the "
                    f"ledger had {believed} tokens available for a call of {hold.tokens}; "
                    "reconcile with the Studio's Usage tab"
                ),
                tags={**self._tags(plan), "drift": "true", "believed_available": str(believed)},
            )
            self.count("drift")


def _normal_path(path: str) -> str:
    """A path compared without trailing slash or doubled slashes."""
    parts = [p for p in path.split("/") if p]
    return "/" + "/".join(parts)


def _form_field(content_type: str, body: bytes, name: str) -> str | None:
    """The text of the form field ``name`` of a multipart/form-data or urlencoded body."""
    kind = content_type.split(";", maxsplit=1)[0].strip().lower()
    if kind == "application/x-www-form-urlencoded":
        from urllib.parse import parse_qs

        values = parse_qs(body.decode("utf-8", "replace")).get(name)
        return values[0] if values else None
    if kind != "multipart/form-data":
        return None
    header = Message()
    header["Content-Type"] = content_type
    boundary = header.get_param("boundary")
    if not isinstance(boundary, str):
        return None
    delimiter = b"--" + boundary.encode("latin-1")
    for part in body.split(delimiter)[1:]:
        head, _, content = part.partition(b"\r\n\r\n")
        disposition = Message()
        for line in head.decode("latin-1").split("\r\n"):
            if line.lower().startswith("content-disposition:"):
                disposition["Content-Disposition"] = line.split(":", 1)[1].strip()
        if disposition.get_param("name", header="content-disposition") != name:
            continue
        if disposition.get_param("filename", header="content-disposition") is not None:
            continue
        return content.removesuffix(b"\r\n").decode("utf-8", "replace").strip()
    return None


class MeteredTransport(httpx.BaseTransport):
    """An httpx transport that holds tokens before each priced call and settles after it.

    Args:
        ledger: The `Ledger` to hold, capture and void in.
        table: The `PriceTable` that prices calls (default: the bundled table).
        inner: The transport that really sends (default: ``httpx.HTTPTransport()``).
        charge_failed: Capture holds of non-2xx answers too (default: a failed call is free).
        unpriced: ``"refuse"`` (default) raises `UnpricedError` for a call with no price;
            ``"allow"`` sends it at cost 0 and records a ``note`` entry flagging it.
    """

    def __init__(
        self,
        ledger: Ledger,
        table: PriceTable | None = None,
        inner: httpx.BaseTransport | None = None,
        *,
        charge_failed: bool = False,
        unpriced: Unpriced = "refuse",
    ) -> None:
        self._meter = _Meter(ledger, table, charge_failed, unpriced)
        self._inner = httpx.HTTPTransport() if inner is None else inner

    @property
    def stats(self) -> TransportStats:
        """Counters of what the transport did."""
        return self._meter.stats

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Meter and send one request."""
        meter = self._meter
        operation = meter.operation_of(request)
        if operation is None:
            meter.count("passed_through")
            return self._inner.handle_request(request)
        plan = meter.plan(request, operation, request.read())
        if meter.already_captured(plan):
            meter.count("replayed")
            return self._inner.handle_request(request)
        hold = meter.reserve(plan)
        try:
            response = self._inner.handle_request(request)
            response.read()
        except BaseException:
            meter.release(hold)
            raise
        meter.settle(plan, hold, response)
        return response

    def close(self) -> None:
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
    ) -> None:
        self._meter = _Meter(ledger, table, charge_failed, unpriced)
        self._inner = httpx.AsyncHTTPTransport() if inner is None else inner

    @property
    def stats(self) -> TransportStats:
        """Counters of what the transport did."""
        return self._meter.stats

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Meter and send one request."""
        meter = self._meter
        operation = meter.operation_of(request)
        if operation is None:
            meter.count("passed_through")
            return await self._inner.handle_async_request(request)
        plan = meter.plan(request, operation, await request.aread())
        if meter.already_captured(plan):
            meter.count("replayed")
            return await self._inner.handle_async_request(request)
        hold = meter.reserve(plan)
        try:
            response = await self._inner.handle_async_request(request)
            await response.aread()
        except BaseException:
            meter.release(hold)
            raise
        meter.settle(plan, hold, response)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()
