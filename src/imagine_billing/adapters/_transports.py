"""The httpx transports: thin shells that do the I/O, around the shared `Meter`.

Both transports meter a request the same way (`_Exchange`): the meter prices and holds it,
the inner transport sends it, and the answer is settled by its status. Only reading and
closing (sync or async) differ.

Whether a request may have reached the API decides how an error is settled:

- an error before any byte of the request was sent (`httpx.ConnectError`, including a DNS
  failure or a refused connection; `httpx.ConnectTimeout`, `httpx.PoolTimeout`,
  `httpx.UnsupportedProtocol`, `httpx.ProxyError`, `httpx.LocalProtocolError`): the API
  cannot have run the call, so the hold is voided and the error raised;
- an *uncertain outcome*, an error once the request may have reached the API (the
  connection dropped or the read timed out after sending: `httpx.ReadError`,
  `httpx.ReadTimeout`, `httpx.RemoteProtocolError`, `httpx.WriteError`, `httpx.WriteTimeout`,
  any other `httpx.TransportError`; a body cut short after a 2xx status; an interrupt or a
  cancelled task once httpx's own transport has begun sending the request): settled as
  ``on_uncertain`` says (see `imagine_billing.adapters._settling`).

The caller gets a response like the inner transport's (``elapsed``, ``iter_bytes()`` and
``client.stream(...)`` work as without the meter).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from functools import partial
from types import TracebackType
from typing import TYPE_CHECKING

import httpx

from imagine_billing.adapters._errors import says_short
from imagine_billing.adapters._metering import DEFAULT_HOLD_EXPIRY, Meter, Unpriced
from imagine_billing.adapters._streams import (
    AsyncStreamed,
    AsyncTail,
    Head,
    Streamed,
    Tail,
    answer,
    readable,
)
from imagine_billing.ledger._threads import off_the_loop

if TYPE_CHECKING:
    from imagine_billing.adapters._plan import TransportStats
    from imagine_billing.adapters._settling import OnUncertain
    from imagine_billing.ledger import Ledger
    from imagine_billing.pricing.model import Operation, PriceTable

__all__ = ["AsyncMeteredTransport", "MeteredTransport"]

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


class _Exchange:
    """One metered request, from its plan to its answer: what both transports decide alike.

    ``with exchange:`` around the inner transport's send watches whether the request may have
    reached the API, and settles a send that raised.
    """

    def __init__(self, meter: Meter, request: httpx.Request, operation: Operation,
                 body: bytes, *, asynchronous: bool) -> None:
        headers = request.headers
        self.meter = meter
        self.plan = meter.begin(operation, key=headers.get("Idempotency-Key"),
                                content_type=headers.get("Content-Type", ""),
                                query=request.url.query, body=body)
        self._request = request
        self._extensions = request.extensions
        self._sending = _Sending()
        self._asynchronous = asynchronous

    def __enter__(self) -> _Exchange:
        previous = self._extensions.get("trace")
        trace = (self._sending.atrace(previous) if self._asynchronous
                 else self._sending.trace(previous))
        self._request.extensions = {**self._extensions, "trace": trace}
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if error is not None:
            self.meter.fail(self.plan, error, sent=self._sending.maybe_sent(error))
        self._request.extensions = self._extensions

    def answered(self, response: httpx.Response,
                 streamed: type[Streamed | AsyncStreamed]) -> httpx.Response | None:
        """The answer to return now (a 2xx streams through, ``streamed``, and is settled when
        its body ends), or None when the head of its error body must be read first."""
        status = response.status_code
        if response.is_stream_consumed:  # an inner transport that read the body itself
            self.meter.settle(self.plan, status, partial(says_short, partial(readable, response)))
            return response
        if 200 <= status < 300:
            return answer(response, streamed(response, self.meter.stream(self.plan, status)))
        return None

    def settle(self, response: httpx.Response, head: Head) -> None:
        """Settle an error answer, from its status and the head of its body."""
        self.meter.settle(self.plan, response.status_code,
                          partial(says_short, partial(head.answer, response)))


def _never_sent(exchange: _Exchange) -> None:
    """Settle an exchange whose request is never sent: its task was cancelled while its hold
    was written (the hold is voided)."""
    import asyncio

    cancelled = asyncio.CancelledError()
    exchange.__exit__(type(cancelled), cancelled, None)


class _Metered:
    """What both transports have: a `Meter`, and its counters."""

    _meter: Meter

    @property
    def stats(self) -> TransportStats:
        """Counters of what the transport did."""
        return self._meter.stats

    def _operation(self, request: httpx.Request) -> Operation | None:
        """The operation a request calls, or None (counted) to pass it through unmetered."""
        operation = self._meter.operation_of(request.method, request.url.path)
        if operation is None:
            self._meter.tally.add("passed_through")
        return operation


class MeteredTransport(_Metered, httpx.BaseTransport):
    """An httpx transport that holds tokens before each priced call and settles after it.

    A retry with the same ``Idempotency-Key`` never charges twice: it is sent again only when
    every earlier attempt failed; once one succeeded it raises `DuplicateRequest` unsent, and
    a concurrent duplicate does too (see `imagine_billing.adapters._attempts`).

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
        self._meter = Meter(ledger, table, charge_failed, unpriced, hold_expiry,
                            on_uncertain=on_uncertain)
        self._inner = httpx.HTTPTransport() if inner is None else inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Meter and send one request.

        Raises:
            InsufficientTokens: Refused, not sent.
            BudgetExceeded: Refused, not sent.
            UnpricedError: Refused, not sent.
            UnknownStyleError: Refused, not sent.
            AmbiguousStyleError: Refused, not sent.
            IdempotencyConflict: Refused, not sent.
            DuplicateRequest: Refused, not sent.
        """
        operation = self._operation(request)
        if operation is None:
            return self._inner.handle_request(request)
        exchange = _Exchange(self._meter, request, operation, request.read(),
                             asynchronous=False)
        with exchange:
            response = self._inner.handle_request(request)
        ready = exchange.answered(response, Streamed)
        if ready is not None:
            return ready
        head = Head()
        chunks = response.iter_raw()
        try:
            ended = head.read(chunks)
        except BaseException:
            response.close()
            exchange.settle(response, head)
            raise
        exchange.settle(response, head)
        if ended:
            response.close()
            return head.answer(response)
        return answer(response, Tail(head, chunks, response))

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


class AsyncMeteredTransport(_Metered, httpx.AsyncBaseTransport):
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
        self._meter = Meter(ledger, table, charge_failed, unpriced, hold_expiry,
                            on_uncertain=on_uncertain)
        self._inner = httpx.AsyncHTTPTransport() if inner is None else inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Meter and send one request (refusals as `MeteredTransport.handle_request`)."""
        operation = self._operation(request)
        if operation is None:
            return await self._inner.handle_async_request(request)
        body = await request.aread()
        # Every ledger write runs off the event loop: a commit may wait for another process'
        # lock, and the loop's other tasks must go on meanwhile.
        # A cancellation that comes while the hold is written is raised once it is written,
        # and the hold voided first: the request is never sent (see `off_the_loop`).
        exchange: _Exchange = await off_the_loop(
            partial(_Exchange, self._meter, request, operation, body, asynchronous=True),
            undo=_never_sent)
        exchange.__enter__()
        try:
            response = await self._inner.handle_async_request(request)
        except BaseException as error:
            await off_the_loop(partial(exchange.__exit__, type(error), error,
                                        error.__traceback__))
            raise
        exchange.__exit__(None, None, None)
        ready = await off_the_loop(partial(exchange.answered, response, AsyncStreamed))
        if ready is not None:
            return ready
        head = Head()
        chunks = response.aiter_raw()
        try:
            ended = await head.aread(chunks)
        except BaseException:
            await response.aclose()
            await off_the_loop(partial(exchange.settle, response, head))
            raise
        await off_the_loop(partial(exchange.settle, response, head))
        if ended:
            await response.aclose()
            return head.answer(response)
        return answer(response, AsyncTail(head, chunks, response))

    async def aclose(self) -> None:
        """Close the inner transport, once the answers still streaming are settled and the
        deferred settlings are written (as `MeteredTransport.close`)."""
        try:
            await off_the_loop(self._meter.finish)
        finally:
            await self._inner.aclose()
