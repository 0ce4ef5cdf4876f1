"""Alert delivery to a real HTTP receiver on 127.0.0.1: one POST per alert, signed, at least
once, nothing lost while the receiver is down."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

import imagine_billing as ib
from imagine_billing.adapters.webhook import SIGNATURE_HEADER, deliver_alerts, signature
from tests.helpers import Clock
from tests.receiver import Receiver, receiving


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as receiver:
        yield receiver


@pytest.fixture
def ledger() -> ib.Ledger:
    """A ledger whose budget 'shop' (100 a month) has spent 90: two actual alerts."""
    ledger = ib.Ledger.memory(clock=Clock(datetime(2026, 3, 1, 12, tzinfo=UTC)))
    ledger.credit(1000, key="c")
    ledger.add_budget(ib.Budget("shop", 100))
    ledger.debit(90, key="d")
    return ledger


def no_wait(seconds: float) -> None:
    """A `sleep` that records nothing and waits for nothing."""


def test_one_post_per_alert_signed(ledger: ib.Ledger, receiver: Receiver) -> None:
    delivery = deliver_alerts(ledger, receiver.url, secret="s3cret", evaluate=False)
    alerts = ledger.alerts()
    assert delivery.ok
    assert [a.id for a in alerts] == [a.id for a in delivery.delivered]
    assert [a.id for a in alerts] == [p.headers["idempotency-key"] for p in receiver.posts]
    for post, alert in zip(receiver.posts, alerts, strict=True):
        assert "/hooks/secret-path" == post.path
        assert "application/json" == post.headers["content-type"]
        expected = "sha256=" + hmac.new(b"s3cret", post.body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(expected, post.headers[SIGNATURE_HEADER.lower()])
        document = json.loads(post.body)
        assert (alert.id, "shop", "2026-03", "actual", 90, 100) == (
            document["id"], document["budget"], document["period"], document["kind"],
            document["spent"], document["limit"])
        assert document["threshold"] in ("0.5", "0.8")
    assert all(a.delivered for a in ledger.alerts())
    again = deliver_alerts(ledger, receiver.url, secret="s3cret", evaluate=False)
    assert () == again.delivered
    assert 2 == len(receiver.posts)


def test_without_a_secret_no_signature(ledger: ib.Ledger, receiver: Receiver) -> None:
    deliver_alerts(ledger, receiver.url, evaluate=False)
    assert all(SIGNATURE_HEADER.lower() not in p.headers for p in receiver.posts)


def test_a_signature_of_another_body_does_not_match() -> None:
    assert signature(b'{"a":1}', "k") != signature(b'{"a":2}', "k")
    assert signature(b'{"a":1}', "k") != signature(b'{"a":1}', "other")


def test_a_failing_receiver_then_recovering(ledger: ib.Ledger, receiver: Receiver) -> None:
    """503 on every attempt: nothing marked delivered, the rest not tried; once it
    recovers, each alert is delivered exactly once more."""
    receiver.answers.extend([503, 503, 503])
    waits: list[float] = []
    delivery = deliver_alerts(ledger, receiver.url, attempts=3, backoff=0.25,
                              evaluate=False, sleep=waits.append)
    assert not delivery.ok
    assert () == delivery.delivered
    assert 1 == delivery.pending
    assert [0.25, 0.5] == waits
    assert "HTTP 503 after 3 attempts to http://127.0.0.1" in delivery.failed[0][1]
    assert "secret-path" not in delivery.failed[0][1]
    assert 2 == len(ledger.alerts(undelivered=True))
    assert 3 == ledger.alerts()[0].attempts
    delivery = deliver_alerts(ledger, receiver.url, evaluate=False, sleep=no_wait)
    assert delivery.ok
    assert 2 == len(delivery.delivered)
    assert {a.id for a in ledger.alerts()} == set(receiver.taken)
    assert 5 == len(receiver.posts)  # 3 refused, then one each


def test_a_dropped_connection_is_retried(ledger: ib.Ledger, receiver: Receiver) -> None:
    receiver.answers.extend(["drop", 200])
    delivery = deliver_alerts(ledger, receiver.url, evaluate=False, sleep=no_wait)
    assert delivery.ok
    first = receiver.posts[0].headers["idempotency-key"]
    assert first == receiver.posts[1].headers["idempotency-key"]  # the same id again


def test_a_receiver_that_is_not_there(ledger: ib.Ledger) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    delivery = deliver_alerts(ledger, f"http://127.0.0.1:{port}/x", attempts=2,
                              evaluate=False, sleep=no_wait, timeout=2)
    assert not delivery.ok
    assert "no answer" in delivery.failed[0][1]
    assert 2 == len(ledger.alerts(undelivered=True))


def test_a_refused_alert_does_not_stop_the_others(ledger: ib.Ledger,
                                                  receiver: Receiver) -> None:
    """A 400 (or a redirect, never followed) fails that alert for the run only."""
    receiver.answers.extend([400])
    delivery = deliver_alerts(ledger, receiver.url, evaluate=False, sleep=no_wait)
    assert 1 == len(delivery.failed)
    assert 1 == len(delivery.delivered)
    assert 2 == len(receiver.posts)
    receiver.answers.extend([302])
    delivery = deliver_alerts(ledger, receiver.url, evaluate=False, sleep=no_wait)
    assert ("HTTP 302",) == tuple(why for _, why in delivery.failed)
    assert 3 == len(receiver.posts)  # not followed to /elsewhere


def test_retry_after_is_honoured(ledger: ib.Ledger, receiver: Receiver) -> None:
    receiver.answers.extend([429])
    waits: list[float] = []
    deliver_alerts(ledger, receiver.url, evaluate=False, sleep=waits.append, backoff=0.1)
    assert [0.1] == waits  # no Retry-After header: the backoff


def test_slack_format(ledger: ib.Ledger, receiver: Receiver) -> None:
    deliver_alerts(ledger, receiver.url, format="slack", evaluate=False)
    texts = [json.loads(p.body) for p in receiver.posts]
    assert all(set(t) == {"text"} for t in texts)
    assert "budget 'shop' 2026-03: spent 90 of 100 tokens, past 50%" in texts[0]["text"]


def test_evaluate_records_forecasted_alerts_first(receiver: Receiver) -> None:
    clock = Clock(datetime(2026, 3, 1, tzinfo=UTC))
    ledger = ib.Ledger.memory(clock=clock)
    ledger.credit(1000, key="c")
    ledger.add_budget(ib.Budget("shop", 100, alerts=(1,)))
    for day in range(3):
        ledger.debit(10, key=f"d{day}")
        clock.advance(days=1)
    delivery = deliver_alerts(ledger, receiver.url)
    assert ["forecasted"] == [a.kind for a in delivery.delivered]


@pytest.mark.parametrize("url", ["ftp://host/x", "http://", "not a url", "http://h x/",
                                 "http://host:99999/"])
def test_bad_urls_are_refused(ledger: ib.Ledger, url: str) -> None:
    with pytest.raises(ValueError, match="webhook URL"):
        deliver_alerts(ledger, url)


@pytest.mark.parametrize(("url", "shown"), [
    ("https://hooks.slack.com:99999/services/T0A/B0B/SeCrEt?token=SeCrEt",
     "https://hooks.slack.com:99999"),
    ("https://hooks.slack.com:0/services/T0A/B0B/SeCrEt", "https://hooks.slack.com:0"),
    ("hxxps://hooks.slack.com/services/T0A/B0B/SeCrEt", "hxxps://hooks.slack.com"),
    ("https://[::1/services/SeCrEt", "an unreadable URL"),
    ("http:///SeCrEt#SeCrEt", "(got http://,"),
])
def test_a_bad_url_is_named_without_its_path(ledger: ib.Ledger, url: str, shown: str
                                              ) -> None:
    """A webhook's path is often its secret (a Slack incoming webhook's is): a URL refused
    for its scheme, host or port is named by its scheme and host only."""
    with pytest.raises(ValueError, match="webhook URL") as raised:
        deliver_alerts(ledger, url)
    assert shown in str(raised.value)
    assert "SeCrEt" not in str(raised.value)


def test_bad_settings_are_refused(ledger: ib.Ledger, receiver: Receiver) -> None:
    with pytest.raises(ValueError, match="format"):
        deliver_alerts(ledger, receiver.url, format="xml")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="attempts"):
        deliver_alerts(ledger, receiver.url, attempts=0)
    with pytest.raises(ValueError, match="secret"):
        deliver_alerts(ledger, receiver.url, secret="")
    assert [] == receiver.posts


def test_the_readme_receiver_check(ledger: ib.Ledger, receiver: Receiver) -> None:
    """The ten lines of Python the README gives a receiver accept what was delivered, and
    refuse a body changed by one byte or signed with another secret."""
    from pathlib import Path

    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Budget alerts that leave the process", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    assert len(code.strip().splitlines()) <= 10
    namespace: dict[str, object] = {}
    exec(code, namespace)
    verified = namespace["verified"]
    deliver_alerts(ledger, receiver.url, secret="s3cret", evaluate=False)
    post = receiver.posts[0]
    header = post.headers[SIGNATURE_HEADER.lower()]
    assert verified(post.body, header, "s3cret")  # type: ignore[operator]
    assert not verified(post.body.replace(b"90", b"10"), header, "s3cret")  # type: ignore[operator]
    assert not verified(post.body, header, "other")  # type: ignore[operator]


def test_a_url_with_credentials_is_refused(ledger: ib.Ledger) -> None:
    """A user or password in the URL would be sent nowhere useful and shown in messages."""
    with pytest.raises(ValueError, match=r"user or password \(got one for https://host\)"):
        deliver_alerts(ledger, "https://me:pw@host/hook")


def test_slack_markup_in_a_budget_name_is_escaped(receiver: Receiver) -> None:
    ledger = ib.Ledger.memory(clock=Clock(datetime(2026, 3, 1, tzinfo=UTC)))
    ledger.credit(100, key="c")
    ledger.add_budget(ib.Budget("<!channel> & co", 10, alerts=(1,)))
    ledger.debit(10, key="d")
    deliver_alerts(ledger, receiver.url, format="slack", evaluate=False)
    text = json.loads(receiver.posts[0].body)["text"]
    assert "&lt;!channel&gt; &amp; co" in text
    assert "<" not in text


@pytest.fixture
def dripping() -> Iterator[str]:
    """The URL of a receiver on 127.0.0.1 that drips its answer: "HTTP/1.1 200 OK", then
    a header every quarter of a second, each well within a read's timeout, and the blank
    line that ends the answer only after 10 s (attack review item 8)."""
    stop = threading.Event()
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)

    def drip() -> None:
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except TimeoutError:
                continue
            with connection, contextlib.suppress(OSError):  # cut off by the client
                connection.recv(65536)
                connection.sendall(b"HTTP/1.1 200 OK\r\n")
                for _ in range(40):
                    if stop.wait(0.25):
                        return
                    connection.sendall(b"X-Slow: yes\r\n")
                connection.sendall(b"Content-Length: 0\r\n\r\n")

    thread = threading.Thread(target=drip, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}/hook"
    finally:
        stop.set()
        thread.join(timeout=30)
        server.close()


@pytest.mark.parametrize("attempts", [1, 2])
def test_a_dripping_receiver_is_cut_off_at_the_timeout(ledger: ib.Ledger, dripping: str,
                                                       attempts: int) -> None:
    """``timeout`` bounds a whole attempt, not each read: the receiver still dripping
    headers when it passes does not deliver the alert; each attempt is counted and retried
    as a timeout, and the run stops there as for a receiver that is down."""
    delivery = deliver_alerts(ledger, dripping, attempts=attempts, timeout=1.0,
                              evaluate=False, sleep=no_wait)
    assert () == delivery.delivered
    [(alert, why)] = delivery.failed
    assert "timed out" in why
    assert f"after {attempts} attempt" in why
    assert 1 == delivery.pending
    [stored] = [a for a in ledger.alerts() if a.id == alert.id]
    assert attempts == stored.attempts
    assert stored.delivered_at is None
    assert "timed out" in (stored.last_error or "")
