"""Delivering budget alerts out of the process: a POST to a webhook per alert, at least once.

`deliver_alerts` posts each alert of a ledger's outbox that no receiver has taken yet:

- The body is JSON: the alert's `Alert.document` (``format="json"``), or ``{"text": ...}``
  for a Slack incoming webhook (``format="slack"``).
- Headers: ``Idempotency-Key`` is the alert's stable id (the same on every attempt and every
  run, so a receiver drops repeats); with a ``secret``, ``X-Imagine-Billing-Signature`` is
  ``sha256=`` and the hex HMAC-SHA256 of the body's bytes under the secret (`signature`), for
  the receiver to recompute and compare with `hmac.compare_digest`.
- An alert is marked delivered only on a 2xx answer. A connection error, a timeout, 408, 429
  or a 5xx is retried with exponential backoff (``Retry-After`` honoured, up to a minute);
  once the attempts are spent the run stops, and the alerts left stay undelivered for the
  next run: a receiver that is down loses nothing. Any other answer (a 3xx is not followed,
  a 4xx) fails that alert for this run, and the run goes on with the next.

Nothing here runs unless called: no network at import. The standard library's HTTP client is
used (no extra to install); proxies come from the usual environment variables.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import http.client
import json
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

import attrs

from imagine_billing._checks import printable

if TYPE_CHECKING:
    from imagine_billing.ledger import Ledger
    from imagine_billing.ledger.alerts import Alert

__all__ = ["SIGNATURE_HEADER", "Delivery", "deliver_alerts", "signature"]

SIGNATURE_HEADER = "X-Imagine-Billing-Signature"
"""The header of the body's signature, when a secret is given: ``sha256=<hex>``."""

_RETRIED = frozenset((408, 425, 429, 500, 502, 503, 504))
"""Answers worth trying again: the receiver is busy or down, not refusing this alert."""

_MAX_WAIT = 60.0
"""The longest wait between two attempts, in seconds (whatever ``Retry-After`` asks)."""


def signature(body: bytes, secret: str) -> str:
    """The value of `SIGNATURE_HEADER` for ``body``: ``"sha256="`` and the hex HMAC-SHA256
    of the body's bytes, keyed by ``secret`` (UTF-8).

    A receiver checks it with::

        expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        ok = hmac.compare_digest(expected, request.headers["X-Imagine-Billing-Signature"])
    """
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


@attrs.frozen
class Delivery:
    """What a delivery run did: the alerts taken by the receiver, and those it could not
    deliver with why (they stay undelivered, for the next run)."""

    delivered: tuple[Alert, ...] = ()
    failed: tuple[tuple[Alert, str], ...] = ()
    pending: int = 0
    """Undelivered alerts not tried, because the receiver stopped answering."""

    @property
    def ok(self) -> bool:
        """Whether every undelivered alert was delivered."""
        return not self.failed and not self.pending


def where(url: str) -> str:
    """``url`` for messages: its scheme and host (with the port as written) only, never its
    path, query or user part (a webhook's path is often a secret, as a Slack incoming
    webhook's is); a URL that cannot be split is shown as ``"an unreadable URL"``. Every
    character that does not print is escaped."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:  # an unclosed "[" of an IPv6 host...
        return "an unreadable URL"
    text = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
    return printable(text)


def _check_url(url: object) -> str:
    if not isinstance(url, str):
        raise TypeError(f"the webhook URL must be a string (got {type(url).__name__}: not "
                        "shown, its path may be a secret)")
    parts: urllib.parse.SplitResult | None
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port  # a bad port raises ValueError
    except ValueError:
        parts = port = None
    if parts is None or port == 0 or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"the webhook URL must be http:// or https:// with a host and a "
                         f"port from 1 to 65535 (got {where(url)}, path not shown)")
    if any(ord(c) < 33 or ord(c) == 127 for c in url):
        raise ValueError("the webhook URL must not hold spaces or control characters")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"the webhook URL must not hold a user or password (got one for "
                         f"{where(url)}): sign with a secret instead")
    return url


def body_of(alert: Alert, format: Literal["json", "slack"]) -> bytes:
    """The JSON body posted for ``alert``."""
    document = ({"text": _slack_text(f"imagine-billing: {alert.message()}")}
                if format == "slack" else alert.document())
    return json.dumps(document, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")


def _slack_text(text: str) -> str:
    """``text`` with the three characters Slack reads as markup escaped (``&``, ``<``,
    ``>``), so that a budget named ``<!channel>`` notifies no one."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer, not a delivery: never followed (a POST would become a GET)."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


class _Deadline:
    """The end of one attempt, ``seconds`` after `start`: the connections given to `watch` are
    shut down then, so a receiver that drips its answer (a header every few seconds, each
    within the timeout of one read) cannot hold the attempt longer; `finish` tells whether
    that happened (the answer then counts as none: a timeout, retried like one).

    A duplicate of each socket is kept: a shutdown reaches the connection whatever wraps
    its socket (TLS), and the duplicate's descriptor cannot be reused before `finish`."""

    def __init__(self, seconds: float) -> None:
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._expired = self._done = False
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def start(self) -> None:
        self._timer.start()

    def watch(self, connection: socket.socket) -> socket.socket:
        """``connection``, shut down when the deadline passes (at once if it has)."""
        with self._lock:
            self._sockets.append(connection.dup())
            if self._expired:
                self._shut(self._sockets[-1])
        return connection

    def _expire(self) -> None:
        with self._lock:
            if not self._done:
                self._expired = True
                for watched in self._sockets:
                    self._shut(watched)

    @staticmethod
    def _shut(watched: socket.socket) -> None:
        with contextlib.suppress(OSError):  # already closed by the other end
            watched.shutdown(socket.SHUT_RDWR)

    def finish(self) -> bool:
        """End the attempt (its connection is no longer watched): whether the deadline
        passed first."""
        self._timer.cancel()
        with self._lock:
            self._done = True
            for watched in self._sockets:
                watched.close()
            return self._expired


def _watched(kind: type[http.client.HTTPConnection], deadline: _Deadline, host: str,
             **settings: Any) -> http.client.HTTPConnection:
    """A connection of ``kind`` whose socket (made when it connects) ``deadline`` watches."""
    connection = kind(host, **settings)
    # http.client makes every socket of a connection (a proxy's tunnel, TLS) through this
    # attribute, set in HTTPConnection.__init__.
    connect = connection._create_connection  # type: ignore[attr-defined]
    connection._create_connection = (  # type: ignore[attr-defined]
        lambda *args: deadline.watch(connect(*args)))
    return connection


class _HTTP(urllib.request.HTTPHandler):
    def __init__(self, deadline: _Deadline) -> None:
        super().__init__()
        self.deadline = deadline

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(functools.partial(_watched, http.client.HTTPConnection,
                                              self.deadline), req)


class _HTTPS(urllib.request.HTTPSHandler):
    def __init__(self, deadline: _Deadline) -> None:
        super().__init__()
        self.deadline = deadline

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(functools.partial(_watched, http.client.HTTPSConnection,
                                              self.deadline), req,
                            context=self._context)  # type: ignore[attr-defined]


def _post(url: str, body: bytes, headers: dict[str, str], timeout: float
          ) -> tuple[int | None, str, float | None]:
    """POST once, within ``timeout`` seconds in all (each read also waits at most that
    long): ``(status or None, what happened, Retry-After seconds or None)``."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    deadline = _Deadline(timeout)
    opener = urllib.request.build_opener(_NoRedirect(), _HTTP(deadline), _HTTPS(deadline))
    deadline.start()
    try:
        answer = _answer(opener, request, timeout)
    finally:
        expired = deadline.finish()
    if expired:
        return None, f"no answer (timed out: no whole answer within {timeout:g} s)", None
    return answer


def _answer(opener: urllib.request.OpenerDirector, request: urllib.request.Request,
            timeout: float) -> tuple[int | None, str, float | None]:
    try:
        with opener.open(request, timeout=timeout) as answer:
            return answer.status, f"HTTP {answer.status}", None
    except urllib.error.HTTPError as error:
        return error.code, f"HTTP {error.code}", _retry_after(error.headers.get("Retry-After"))
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        return None, f"no answer ({' '.join(str(reason).split())[:200]})", None


def _retry_after(value: str | None) -> float | None:
    if value is None or not value.strip().isdigit():
        return None
    return min(float(value.strip()), _MAX_WAIT)


def deliver_alerts(ledger: Ledger, webhook_url: str, *, secret: str | None = None,
                   format: Literal["json", "slack"] = "json", attempts: int = 4,
                   backoff: float = 0.5, timeout: float = 10.0, evaluate: bool = True,
                   sleep: Callable[[float], None] = time.sleep,
                   stopping: Callable[[], bool] | None = None) -> Delivery:
    """POST every undelivered alert of ``ledger`` to ``webhook_url``, oldest first; mark
    each delivered on a 2xx (see the module's notes for the headers and the retries).

    Args:
        ledger: The ledger whose outbox to deliver.
        webhook_url: An ``http://`` or ``https://`` URL.
        secret: Signs each body (`SIGNATURE_HEADER`); ``None``: no signature.
        format: ``"json"`` (the alert's document) or ``"slack"`` (``{"text": ...}``).
        attempts: Tries per alert in this run (>= 1).
        backoff: Seconds before the second try, doubled for each one after (at most a
            minute).
        timeout: Seconds to wait for each answer, whole: a receiver that sends it slowly
            (each part in time) is cut off then, and the attempt counts as a timeout.
        evaluate: First record the alerts the budgets have now, forecasted ones included
            (`imagine_billing.planner.alerting.evaluate_alerts`).
        sleep: Waits between tries (tests pass their own).
        stopping: Asked before each alert: once it returns ``True``, the run ends there and
            the alerts left are counted in `Delivery.pending` (a service shutting down
            finishes the alert in flight, marked or not, and sends no other).

    Returns:
        The `Delivery`: what was delivered, what failed and why, what was not tried.

    Raises:
        ValueError, TypeError: A bad URL, format, secret or number of attempts.
    """
    url = _check_url(webhook_url)
    if format not in ("json", "slack"):
        raise ValueError(f"format must be 'json' or 'slack' (got {format!r})")
    if type(attempts) is not int or attempts < 1:
        raise ValueError(f"attempts must be an int >= 1 (got {attempts!r})")
    if secret is not None and (not isinstance(secret, str) or not secret):
        raise ValueError("secret must be a non-empty string, or None")
    if evaluate:
        from imagine_billing.planner.alerting import evaluate_alerts

        evaluate_alerts(ledger)
    sender = _Sender(url, secret, format, attempts, backoff, timeout, sleep)
    pending = list(ledger.alerts(undelivered=True))
    delivered: list[Alert] = []
    failed: list[tuple[Alert, str]] = []
    while pending and not (stopping is not None and stopping()):
        alert = pending.pop(0)
        ok, why, down = sender.send(ledger, alert)
        if ok:
            delivered.append(alert)
            continue
        failed.append((alert, why))
        if down:  # the receiver is not answering: leave the rest for the next run
            break
    return Delivery(tuple(delivered), tuple(failed), len(pending))


@attrs.frozen
class _Sender:
    """How to post alerts: where, signed with what, in which form, how hard to try."""

    url: str
    secret: str | None
    format: Literal["json", "slack"]
    attempts: int
    backoff: float
    timeout: float
    sleep: Callable[[float], None]

    def send(self, ledger: Ledger, alert: Alert) -> tuple[bool, str, bool]:
        """Try ``alert`` up to ``attempts`` times: ``(delivered, what happened, receiver
        down)``; each attempt is counted in the ledger's outbox."""
        body = body_of(alert, self.format)
        headers = {"Content-Type": "application/json", "Idempotency-Key": alert.id,
                   "User-Agent": "imagine-billing"}
        if self.secret is not None:
            headers[SIGNATURE_HEADER] = signature(body, self.secret)
        why, delay = "", 0.0
        for attempt in range(self.attempts):
            if attempt:
                self.sleep(delay)
            status, why, wait = _post(self.url, body, headers, self.timeout)
            if status is not None and 200 <= status < 300:
                ledger.mark_alert(alert, delivered=True)
                return True, why, False
            ledger.mark_alert(alert, delivered=False, error=why)
            if status is not None and status not in _RETRIED:
                return False, why, False  # the receiver refuses this one: go on
            delay = wait if wait is not None else min(self.backoff * 2**attempt, _MAX_WAIT)
        tries = f"{self.attempts} attempt{'s' * (self.attempts > 1)}"
        return False, f"{why} after {tries} to {where(self.url)}", True
