"""The metered httpx transport against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

import imagine_billing as ib
from imagine_billing.adapters.httpx import (
    DEFAULT_HOLD_EXPIRY,
    AsyncMeteredTransport,
    MeteredTransport,
    aparse_error,
    parse_error,
)
from imagine_billing.ledger import Entry, Ledger
from tests.adapters.imagine_server import ImagineServer, running
from tests.helpers import Clock

AUTH = {"Authorization": "Bearer vk-test"}
GENERATIONS = "/v2/image/generations"


def form(style: str | None = None, prompt: str = "a red fox") -> dict[str, tuple[None, str]]:
    """A multipart form as the text-to-image endpoint takes it."""
    fields = {"prompt": (None, prompt), "aspect_ratio": (None, "1:1")}
    if style is not None:
        fields["style"] = (None, style)
    return fields


def multipart(style: str, line_break: bytes = b"\r\n") -> bytes:
    """A hand-written multipart body (boundary ``B0undary``) with a prompt and a style."""
    lines = [
        b"--B0undary",
        b'Content-Disposition: form-data; name="prompt"',
        b"",
        b"a red fox",
        b"--B0undary",
        b'Content-Disposition: form-data; name="style"',
        b"",
        style.encode(),
        b"--B0undary--",
        b"",
    ]
    return line_break.join(lines)


MULTIPART = {"Content-Type": "multipart/form-data; boundary=B0undary"}


class LateTransport(httpx.HTTPTransport):
    """Really sends, once ``clock`` is past the hold's expiry (moved on 11 minutes)."""

    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self.clock = clock

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.clock.now += timedelta(minutes=11)
        return super().handle_request(request)


@pytest.fixture
def server() -> Iterator[ImagineServer]:
    """The stand-in API, answering slowly (0.6 s) only when a test queues "slow"."""
    with running(slow_seconds=0.6) as started:
        yield started


@pytest.fixture
def refused_url() -> str:
    """A base URL on 127.0.0.1 whose port nothing listens on: connections are refused."""
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    return f"http://127.0.0.1:{port}/v2"


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    """A SQLite ledger file with 100 tokens."""
    with Ledger.open(tmp_path / "tokens.db") as opened:
        opened.credit(100, key="top-up")
        yield opened


def client(server: ImagineServer, transport: MeteredTransport) -> httpx.Client:
    """An httpx client through the metered transport, with a 0.3 s timeout."""
    return httpx.Client(transport=transport, base_url=server.base_url, headers=AUTH, timeout=0.3)


def assert_settled(ledger: Ledger, posted: int) -> None:
    """No hold is open, and posted is exactly as expected."""
    balance = ledger.balance()
    assert (posted, 0, posted) == (balance.posted, balance.held, balance.available)
    assert () == ledger.open_holds()
    ledger.verify()


def notes(ledger: Ledger) -> list[Entry]:
    """The ledger's note entries, oldest first."""
    return [e for e in ledger.entries() if e.kind == "note"]


def kinds(ledger: Ledger) -> list[str]:
    """The kinds of the ledger's entries after the first (the top-up), oldest first."""
    return [str(e.kind) for e in ledger.entries()][1:]


class WriteLock:
    """Another connection to a ledger file that takes its write lock, as another process may."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.connection: sqlite3.Connection | None = None

    def take(self) -> None:
        """Hold the write lock until `release`."""
        self.connection = sqlite3.connect(self.path, isolation_level=None)
        self.connection.execute("BEGIN IMMEDIATE")

    def release(self) -> None:
        """Give the write lock back."""
        assert self.connection is not None
        self.connection.rollback()
        self.connection.close()
        self.connection = None


class LockAfterAnswer(httpx.HTTPTransport):
    """Really sends; once the first answer's headers are in, another writer takes the lock."""

    def __init__(self, lock: WriteLock) -> None:
        super().__init__()
        self.lock = lock
        self.locked = False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if not self.locked:
            self.locked = True
            self.lock.take()
        return response


class TestMetering:
    """Priced calls are held before sending and captured after a 2xx."""

    def test_success_is_captured(self, server: ImagineServer, ledger: Ledger) -> None:
        """A flux-dev call costs 15: held, sent, answered with image bytes, captured."""
        transport = MeteredTransport(ledger)
        with client(server, transport) as http:
            response = http.post("/image/generations", files=form("flux-dev"))
        assert 200 == response.status_code
        assert response.content.startswith(b"\x89PNG")
        assert_settled(ledger, 85)
        assert (1, 1, 0) == (
            transport.stats.metered,
            transport.stats.captured,
            transport.stats.voided,
        )
        [capture] = [e for e in ledger.entries() if e.kind == "capture"]
        assert (("flux-dev", 15),) == capture.styles
        assert ib.load_price_table().digest == capture.table_digest

    def test_default_style_when_the_form_names_none(
        self, server: ImagineServer, ledger: Ledger
    ) -> None:
        """Without a style field the operation's default style (imagine-turbo, 1) is used."""
        with client(server, MeteredTransport(ledger)) as http:
            assert 200 == http.post("/image/generations", files=form()).status_code
        assert_settled(ledger, 99)

    def test_trailing_slash_and_urlencoded_form(
        self, server: ImagineServer, ledger: Ledger
    ) -> None:
        """The path with a trailing slash is the same operation; a urlencoded style is read."""
        with client(server, MeteredTransport(ledger)) as http:
            http.post("/image/generations/", data={"prompt": "x", "style": "anime"})
        assert_settled(ledger, 95)

    def test_base_url_without_v2(self, server: ImagineServer, ledger: Ledger) -> None:
        """A client whose base URL stops at the host and writes /v2/... is metered the same."""
        host = server.base_url.removesuffix("/v2")
        with httpx.Client(transport=MeteredTransport(ledger), base_url=host, headers=AUTH,
                          timeout=5) as http:
            assert 200 == http.post("/v2/image/generations", files=form("anime")).status_code
        assert_settled(ledger, 95)

    def test_insufficient_tokens_sends_nothing(self, server: ImagineServer, tmp_path: Path) -> None:
        """With 10 tokens a flux-dev call (15) is refused and never reaches the server."""
        with Ledger.open(tmp_path / "poor.db") as poor:
            poor.credit(10, key="k")
            transport = MeteredTransport(poor)
            with client(server, transport) as http, pytest.raises(ib.InsufficientTokens) as caught:
                http.post("/image/generations", files=form("flux-dev"))
            assert (15, 10) == (caught.value.needed, caught.value.available)
            assert 0 == server.count()
            assert 1 == transport.stats.refused
            assert_settled(poor, 10)

    def test_unpriced_style_is_refused_by_default(
        self, server: ImagineServer, ledger: Ledger
    ) -> None:
        """sdxl-1.0 has no published price: UnpricedError, nothing sent, counted as refused."""
        transport = MeteredTransport(ledger)
        with client(server, transport) as http, pytest.raises(ib.UnpricedError):
            http.post("/image/generations", files=form("sdxl-1.0"))
        assert 0 == server.count()
        assert 1 == transport.stats.refused
        assert_settled(ledger, 100)

    def test_unpriced_allowed_is_flagged(self, server: ImagineServer, ledger: Ledger) -> None:
        """unpriced="allow" sends at cost 0 and writes a note entry that says so and how it went."""
        transport = MeteredTransport(ledger, unpriced="allow")
        with client(server, transport) as http:
            assert 200 == http.post("/image/generations", files=form("sdxl-1.0")).status_code
        assert_settled(ledger, 100)
        [note] = notes(ledger)
        assert "unpriced call sent at cost 0" in (note.memo or "")
        assert "answered 200" in (note.memo or "")
        assert ("sdxl-1.0", "ok", "200") == (
            note.tags["style"], note.tags["outcome"], note.tags["status"])
        assert 1 == transport.stats.unpriced

    def test_own_prices_through_a_table(self, server: ImagineServer, ledger: Ledger) -> None:
        """A table with sdxl-1.0 priced at 2 meters it at 2."""
        table = ib.load_price_table().with_overrides(
            {"styles": {"sdxl-1.0": {"cost": 2}}}, version="1.0.1"
        )
        with client(server, MeteredTransport(ledger, table)) as http:
            http.post("/image/generations", files=form("sdxl-1.0"))
        assert_settled(ledger, 98)

    def test_style_priced_zero_is_sent_free(self, server: ImagineServer, ledger: Ledger) -> None:
        """A style the table prices at 0 is sent without a hold and costs nothing."""
        table = ib.load_price_table().with_overrides(
            {"styles": {"imagine-turbo": {"cost": 0}}}, version="1.1.0"
        )
        transport = MeteredTransport(ledger, table)
        with client(server, transport) as http:
            assert 200 == http.post("/image/generations", files=form("imagine-turbo")).status_code
        assert 1 == server.count(GENERATIONS)
        assert (1, 0, 0) == (transport.stats.free, transport.stats.metered, transport.stats.refused)
        assert [] == kinds(ledger)
        assert_settled(ledger, 100)

    def test_a_closed_ledger_is_an_error_not_a_refusal(
        self, server: ImagineServer, tmp_path: Path
    ) -> None:
        """A ledger that cannot be written raises its own error; stats.refused stays 0."""
        closed = Ledger.open(tmp_path / "closed.db")
        closed.credit(100, key="top-up")
        closed.close()
        transport = MeteredTransport(closed)
        with client(server, transport) as http, pytest.raises(ValueError, match="closed"):
            http.post("/image/generations", files=form("flux-dev"))
        assert (0, 0) == (transport.stats.refused, server.count())


class TestStyleField:
    """The style is read wherever the request carries it, and never guessed."""

    def test_two_different_styles_are_refused(self, server: ImagineServer, ledger: Ledger) -> None:
        """Two style fields that differ raise AmbiguousStyleError naming both; nothing is sent."""
        transport = MeteredTransport(ledger)
        files = [("prompt", (None, "x")), ("style", (None, "imagine-turbo")),
                 ("style", (None, "flux-dev"))]
        with client(server, transport) as http, pytest.raises(ib.AmbiguousStyleError) as caught:
            http.post("/image/generations", files=files)
        assert ("imagine-turbo", "flux-dev") == caught.value.values
        assert "'imagine-turbo', 'flux-dev'" in str(caught.value)
        assert (0, 1) == (server.count(), transport.stats.refused)
        assert_settled(ledger, 100)

    def test_two_different_urlencoded_styles_are_refused(
        self, server: ImagineServer, ledger: Ledger
    ) -> None:
        """The same goes for a urlencoded form."""
        with client(server, MeteredTransport(ledger)) as http, pytest.raises(
                ib.AmbiguousStyleError):
            http.post("/image/generations", data={"style": ["imagine-turbo", "flux-dev"]})
        assert 0 == server.count()

    def test_identical_styles_are_one(self, server: ImagineServer, ledger: Ledger) -> None:
        """A style field repeated with the same value is priced once, as that style."""
        files = [("prompt", (None, "x")), ("style", (None, "flux-dev")),
                 ("style", (None, "flux-dev"))]
        with client(server, MeteredTransport(ledger)) as http:
            assert 200 == http.post("/image/generations", files=files).status_code
        assert_settled(ledger, 85)

    def test_lf_only_multipart(self, server: ImagineServer, ledger: Ledger) -> None:
        """A multipart body with bare LF line breaks is read too (the server reads it)."""
        with client(server, MeteredTransport(ledger)) as http:
            response = http.post("/image/generations", content=multipart("flux-dev", b"\n"),
                                 headers=MULTIPART)
        assert 200 == response.status_code
        assert "flux-dev" == server.received[0][2]["style"]
        assert_settled(ledger, 85)

    def test_json_body(self, server: ImagineServer, ledger: Ledger) -> None:
        """A style in a JSON object body is priced, not replaced by the default style."""
        with client(server, MeteredTransport(ledger)) as http:
            http.post("/image/generations", json={"prompt": "x", "style": "flux-dev"})
        assert_settled(ledger, 85)

    def test_generator_body(self, server: ImagineServer, ledger: Ledger) -> None:
        """A body from a generator (sent chunked) is read for its style and reaches the server."""
        def chunks() -> Iterator[bytes]:
            body = multipart("flux-dev")
            yield body[:40]
            yield body[40:]

        with client(server, MeteredTransport(ledger)) as http:
            response = http.post("/image/generations", content=chunks(), headers=MULTIPART)
        assert 200 == response.status_code
        assert "flux-dev" == server.received[0][2]["style"]
        assert_settled(ledger, 85)

    def test_async_generator_body(self, server: ImagineServer, ledger: Ledger) -> None:
        """An async generator body is read the same under the async transport."""
        async def chunks() -> AsyncIterator[bytes]:
            body = multipart("anime")
            yield body[:30]
            yield body[30:]

        async def go() -> int:
            async with httpx.AsyncClient(transport=AsyncMeteredTransport(ledger),
                                         base_url=server.base_url, headers=AUTH) as http:
                response = await http.post("/image/generations", content=chunks(),
                                           headers=MULTIPART)
                return response.status_code

        assert 200 == asyncio.run(go())
        assert "anime" == server.received[0][2]["style"]
        assert_settled(ledger, 95)

    @pytest.mark.parametrize("unpriced", ["refuse", "allow"])
    def test_unknown_style_is_refused_and_counted(
        self, server: ImagineServer, ledger: Ledger, unpriced: str
    ) -> None:
        """A style the table does not know (a typo) is refused, even with unpriced="allow"."""
        transport = MeteredTransport(ledger, unpriced=unpriced)  # type: ignore[arg-type]
        with client(server, transport) as http, pytest.raises(ib.UnknownStyleError) as caught:
            http.post("/image/generations", files=form("Flux-Dev"))
        assert "Flux-Dev" == caught.value.style
        assert (0, 1) == (server.count(), transport.stats.refused)
        assert [] == kinds(ledger)


    def test_delimiter_inside_a_line_is_content(
        self, server: ImagineServer, ledger: Ledger
    ) -> None:
        """--boundary in the middle of a line is prompt text, not a part: no phantom style."""
        prompt = (b'a fox --B0undary\r\nContent-Disposition: form-data; name="style"\r\n\r\n'
                  b"flux-dev")
        body = b"\r\n".join([b"--B0undary", b'Content-Disposition: form-data; name="prompt"',
                              b"", prompt, b"--B0undary--", b""])
        with client(server, MeteredTransport(ledger)) as http:
            assert 200 == http.post("/image/generations", content=body,
                                    headers=MULTIPART).status_code
        assert "style" not in server.received[0][2]
        assert_settled(ledger, 99)  # the default style, imagine-turbo

    def test_boundary_parameter_is_not_read_inside_another(
        self, server: ImagineServer, ledger: Ledger
    ) -> None:
        """boundary= is the parameter itself, not the end of xboundary=."""
        headers = {"Content-Type": "multipart/form-data; xboundary=NOPE; boundary=B0undary"}
        with client(server, MeteredTransport(ledger)) as http:
            http.post("/image/generations", content=multipart("flux-dev"), headers=headers)
        assert "flux-dev" == server.received[0][2]["style"]
        assert_settled(ledger, 85)


class TestPaths:
    """Which requests are metered."""

    def test_uppercase_path_is_metered(self, server: ImagineServer, ledger: Ledger) -> None:
        """/V2/IMAGE/GENERATIONS is held for (the stand-in answers 404, so it is voided)."""
        host = server.base_url.removesuffix("/v2")
        transport = MeteredTransport(ledger)
        with httpx.Client(transport=transport, base_url=host, headers=AUTH, timeout=5) as http:
            assert 404 == http.post("/V2/IMAGE/GENERATIONS", files=form("flux-dev")).status_code
        assert (1, 1, 0) == (transport.stats.metered, transport.stats.voided,
                             transport.stats.passed_through)
        assert_settled(ledger, 100)

    def test_charge_failed_never_charges_an_unrouted_path(
        self, server: ImagineServer, ledger: Ledger
    ) -> None:
        """With charge_failed=True the stand-in's 404 for /V2/IMAGE/GENERATIONS is voided."""
        host = server.base_url.removesuffix("/v2")
        transport = MeteredTransport(ledger, charge_failed=True)
        with httpx.Client(transport=transport, base_url=host, headers=AUTH, timeout=5) as http:
            assert 404 == http.post("/V2/IMAGE/GENERATIONS", files=form("flux-dev")).status_code
        assert (0, 1) == (transport.stats.captured, transport.stats.voided)
        assert_settled(ledger, 100)


    def test_base_url_behind_a_proxy(self, server: ImagineServer, ledger: Ledger) -> None:
        """A base URL with a prefix before /v2 (a proxy) is metered from its v2 segment on."""
        proxy = server.base_url.removesuffix("/v2") + "/imagine/v2"
        transport = MeteredTransport(ledger)
        with httpx.Client(transport=transport, base_url=proxy, headers=AUTH, timeout=5) as http:
            assert 200 == http.post("/image/generations", files=form("flux-dev")).status_code
        assert (1, 1) == (transport.stats.metered, transport.stats.captured)
        assert_settled(ledger, 85)


class TestPassThrough:
    """Calls that are not priced operations pass through unmetered."""

    def test_video_status_and_delete(self, server: ImagineServer, ledger: Ledger) -> None:
        """Status (GET) and delete (DELETE) are free and counted as passed through."""
        transport = MeteredTransport(ledger)
        with client(server, transport) as http:
            assert 200 == http.get("/video/abc/status").status_code
            http.get("/video/status/abc")  # the deprecated form of the status path
            http.get("/assets/abc/status")  # the newer asset status path
            assert 200 == http.delete("/video/abc").status_code
            assert 404 == http.post("/nowhere", files=form()).status_code
        assert 5 == transport.stats.passed_through
        assert 5 == server.count()
        assert_settled(ledger, 100)

    def test_video_submit_is_metered(self, server: ImagineServer, ledger: Ledger) -> None:
        """Text-to-video is an operation: unpriced in the bundled table, so refused..."""
        with client(server, MeteredTransport(ledger)) as http, pytest.raises(ib.UnpricedError):
            http.post("/video/text-to-video", files=form("kling-1.0-pro"))
        assert 0 == server.count()

    def test_video_submit_with_a_flat_price(self, server: ImagineServer, ledger: Ledger) -> None:
        """...and held and captured at its flat cost once the user prices it."""
        table = ib.load_price_table().with_overrides(
            {"operations": {"text-to-video": {"cost": 40}}}, version="1.0.1"
        )
        with client(server, MeteredTransport(ledger, table)) as http:
            job = http.post("/video/text-to-video", files=form()).json()
            assert 200 == http.get(f"/video/{job['id']}/status").status_code
        assert_settled(ledger, 60)


class TestFailures:
    """Failed calls cost nothing (by default) and leave no hold open."""

    @pytest.mark.parametrize("status", [400, 401, 429, 503])
    def test_error_status_voids(self, server: ImagineServer, ledger: Ledger, status: int) -> None:
        """A documented error answer voids the hold, notes nothing; the response is returned."""
        server.fault(status)
        transport = MeteredTransport(ledger)
        with client(server, transport) as http:
            response = http.post("/image/generations", files=form("flux-dev"))
        assert status == response.status_code
        assert_settled(ledger, 100)
        assert (1, 0) == (transport.stats.voided, transport.stats.drift)
        assert ["hold", "void"] == kinds(ledger)

    def test_bad_style_answer(self, server: ImagineServer, tmp_path: Path) -> None:
        """A style the API refuses (400/1100) costs nothing when the table prices it."""
        table = ib.load_price_table().with_overrides(
            {"styles": {"retro": {"name": "Retro", "cost": 3}}}, version="1.1.0"
        )
        with Ledger.open(tmp_path / "l.db") as ledger:
            ledger.credit(50, key="k")
            with client(server, MeteredTransport(ledger, table)) as http:
                response = http.post("/image/generations", files=form("retro"))
            assert (400, 1100) == (response.status_code, parse_error(response).code)
            assert_settled(ledger, 50)

    def test_charge_failed(self, server: ImagineServer, ledger: Ledger) -> None:
        """charge_failed=True captures the hold of a failed call too."""
        server.fault(503)
        with client(server, MeteredTransport(ledger, charge_failed=True)) as http:
            http.post("/image/generations", files=form("anime"))
        assert_settled(ledger, 95)

    @pytest.mark.parametrize("status", [402, 424])
    def test_charge_failed_never_charges_a_402(
        self, server: ImagineServer, ledger: Ledger, status: int
    ) -> None:
        """With charge_failed=True a 402/424 is still voided (the API refused), noted as drift."""
        server.fault(status)
        transport = MeteredTransport(ledger, charge_failed=True)
        with client(server, transport) as http:
            assert status == http.post("/image/generations", files=form("anime")).status_code
        assert_settled(ledger, 100)
        assert (0, 1, 1) == (transport.stats.captured, transport.stats.voided,
                             transport.stats.drift)
        [note] = notes(ledger)
        assert "true" == note.tags["drift"]

    def test_charge_failed_retry_is_sent(self, server: ImagineServer, ledger: Ledger) -> None:
        """A charged failure is not a success: a retry of its key is sent (and charged)."""
        server.fault(503)
        headers = {"Idempotency-Key": "order-9"}
        with client(server, MeteredTransport(ledger, charge_failed=True)) as http:
            http.post("/image/generations", files=form("anime"), headers=headers)
            assert 200 == http.post("/image/generations", files=form("anime"),
                                    headers=headers).status_code
        assert 2 == server.count()
        assert_settled(ledger, 90)

    @pytest.mark.parametrize("status", [404, 405])
    def test_charge_failed_never_charges_what_did_not_run(
        self, server: ImagineServer, ledger: Ledger, status: int
    ) -> None:
        """A 404/405 means no operation ran: voided even with charge_failed=True."""
        server.fault(status)
        transport = MeteredTransport(ledger, charge_failed=True)
        with client(server, transport) as http:
            assert status == http.post("/image/generations", files=form("anime")).status_code
        assert (0, 1) == (transport.stats.captured, transport.stats.voided)
        assert_settled(ledger, 100)

    def test_deeply_nested_error_body(self, server: ImagineServer, ledger: Ledger) -> None:
        """A 502 whose JSON is nested too deep to parse is returned, settled, parsed leniently."""
        server.fault("deep")
        transport = MeteredTransport(ledger, charge_failed=True)
        headers = {"Idempotency-Key": "deep-1"}
        with client(server, transport) as http:
            response = http.post("/image/generations", files=form("flux-dev"), headers=headers)
            assert (502, None) == (response.status_code, parse_error(response).code)
            assert_settled(ledger, 85)  # charged as charge_failed asks: a hold never left open
            assert 200 == http.post("/image/generations", files=form("flux-dev"),
                                    headers=headers).status_code
        assert_settled(ledger, 70)


    def test_connection_dropped_mid_response(self, server: ImagineServer, ledger: Ledger) -> None:
        """A 2xx body cut short raises the error; its outcome is uncertain: captured, noted."""
        server.fault("drop")
        transport = MeteredTransport(ledger)
        with client(server, transport) as http, pytest.raises(httpx.RemoteProtocolError):
            http.post("/image/generations", files=form("flux-dev"))
        assert_settled(ledger, 85)
        assert (0, 1, 1) == (transport.stats.voided, transport.stats.captured,
                             transport.stats.uncertain)
        [note] = ledger.entries(tags={"outcome": "uncertain"})
        assert "RemoteProtocolError" == note.tags["error"]

    def test_timeout(self, server: ImagineServer, ledger: Ledger) -> None:
        """An answer slower than the client's timeout is an uncertain outcome: counted."""
        server.fault("slow")
        with client(server, MeteredTransport(ledger)) as http, pytest.raises(httpx.ReadTimeout):
            http.post("/image/generations", files=form("flux-dev"))
        assert_settled(ledger, 85)
        [note] = ledger.entries(tags={"outcome": "uncertain"})
        assert ("ReadTimeout", "capture") == (note.tags["error"], note.tags["on_uncertain"])

    @pytest.mark.parametrize("status", [402, 424])
    def test_402_is_drift(self, server: ImagineServer, ledger: Ledger, status: int) -> None:
        """A 402/424 while the ledger had the tokens voids and notes the drift with the balance."""
        server.fault(status)
        transport = MeteredTransport(ledger)
        with client(server, transport) as http:
            response = http.post("/image/generations", files=form("flux-dev"))
        assert status == response.status_code
        assert_settled(ledger, 100)
        [note] = notes(ledger)
        assert ("100", str(status)) == (note.tags["believed_available"], note.tags["status"])
        assert "Usage tab" in (note.memo or "")
        assert 1 == transport.stats.drift

    def test_unpriced_402_is_drift(self, server: ImagineServer, ledger: Ledger) -> None:
        """An unpriced call answered 402 is noted as sent with its status, and as drift."""
        server.fault(402)
        transport = MeteredTransport(ledger, unpriced="allow")
        with client(server, transport) as http:
            http.post("/image/generations", files=form("sdxl-1.0"))
        unpriced, drift = notes(ledger)
        assert ("failed", "402") == (unpriced.tags["outcome"], unpriced.tags["status"])
        assert "answered 402" in (unpriced.memo or "")
        assert "true" == drift.tags["drift"]
        assert "an unpriced call" in (drift.memo or "")
        assert_settled(ledger, 100)

    def test_unpriced_transport_error_is_noted_as_uncertain(
        self, server: ImagineServer, ledger: Ledger
    ) -> None:
        """An unpriced call whose connection drops after sending is noted as uncertain."""
        server.fault("vanish")
        with client(server, MeteredTransport(ledger, unpriced="allow")) as http, pytest.raises(
                httpx.RemoteProtocolError):
            http.post("/image/generations", files=form("sdxl-1.0"))
        [note] = notes(ledger)
        assert ("uncertain", "RemoteProtocolError") == (note.tags["outcome"],
                                                        note.tags["status"])
        assert "once sent" in (note.memo or "")

    def test_unpriced_call_not_sent_is_noted_as_failed(
        self, ledger: Ledger, refused_url: str
    ) -> None:
        """An unpriced call whose connection is refused is noted as failed, no answer."""
        with httpx.Client(transport=MeteredTransport(ledger, unpriced="allow"),
                          base_url=refused_url, headers=AUTH) as http, pytest.raises(
                httpx.ConnectError):
            http.post("/image/generations", files=form("sdxl-1.0"))
        [note] = notes(ledger)
        assert ("failed", "ConnectError") == (note.tags["outcome"], note.tags["status"])
        assert "no answer" in (note.memo or "")


class TestUncertainOutcome:
    """A call the API may have billed is counted (or voided, if asked) and noted."""

    def test_work_done_then_connection_dropped_is_captured_and_tagged(
        self, server: ImagineServer, ledger: Ledger
    ) -> None:
        """The server runs the call, then drops the connection unanswered: captured, tagged."""
        server.fault("vanish")
        transport = MeteredTransport(ledger)
        with client(server, transport) as http, pytest.raises(httpx.RemoteProtocolError):
            http.post("/image/generations", files=form("flux-dev"))
        assert 1 == server.count()
        assert_settled(ledger, 85)
        [hold] = [e for e in ledger.entries() if e.kind == "hold"]
        [capture] = [e for e in ledger.entries() if e.kind == "capture"]
        [note] = ledger.entries(tags={"outcome": "uncertain"})
        assert (hold.id, 15) == (capture.ref, capture.tokens)
        assert ("note", str(hold.id), "RemoteProtocolError", "capture") == (
            note.kind, note.tags["hold"], note.tags["error"], note.tags["on_uncertain"])
        assert "Usage tab" in (note.memo or "")
        assert (1, 1, 0) == (transport.stats.uncertain, transport.stats.captured,
                             transport.stats.voided)

    def test_void_setting_voids_and_still_notes(
        self, server: ImagineServer, ledger: Ledger
    ) -> None:
        """With on_uncertain="void" the hold is released; the note still lists the call."""
        server.fault("vanish")
        transport = MeteredTransport(ledger, on_uncertain="void")
        with client(server, transport) as http, pytest.raises(httpx.RemoteProtocolError):
            http.post("/image/generations", files=form("flux-dev"))
        assert_settled(ledger, 100)
        [note] = ledger.entries(tags={"outcome": "uncertain"})
        assert "void" == note.tags["on_uncertain"]
        assert (1, 0, 1) == (transport.stats.uncertain, transport.stats.captured,
                             transport.stats.voided)

    def test_connection_refused_voids(self, ledger: Ledger, refused_url: str) -> None:
        """Nothing sent (connection refused): voided, not uncertain, nothing noted."""
        transport = MeteredTransport(ledger)
        with httpx.Client(transport=transport, base_url=refused_url, headers=AUTH) as http, \
                pytest.raises(httpx.ConnectError):
            http.post("/image/generations", files=form("flux-dev"))
        assert_settled(ledger, 100)
        assert [] == notes(ledger)
        assert (0, 1) == (transport.stats.uncertain, transport.stats.voided)

    def test_async_refused_and_vanished(
        self, server: ImagineServer, ledger: Ledger, refused_url: str
    ) -> None:
        """The async transport: a refused connection voids, a vanished answer is counted."""
        transport = AsyncMeteredTransport(ledger)

        async def post(url: str) -> None:
            async with httpx.AsyncClient(transport=transport, base_url=url,
                                         headers=AUTH) as http:
                await http.post("/image/generations", files=form("flux-dev"))

        with pytest.raises(httpx.ConnectError):
            asyncio.run(post(refused_url))
        server.fault("vanish")
        with pytest.raises(httpx.RemoteProtocolError):
            asyncio.run(post(server.base_url))
        assert_settled(ledger, 85)
        assert (1, 1, 1) == (transport.stats.uncertain, transport.stats.captured,
                             transport.stats.voided)

    def test_task_cancelled_while_waiting_is_uncertain(
        self, server: ImagineServer, ledger: Ledger
    ) -> None:
        """A task cancelled once the request went out (a caller's timeout) is counted."""
        server.fault("slow")

        async def go() -> None:
            async with httpx.AsyncClient(transport=AsyncMeteredTransport(ledger),
                                         base_url=server.base_url, headers=AUTH,
                                         timeout=10) as http:
                await asyncio.wait_for(
                    http.post("/image/generations", files=form("flux-dev")), 0.2)

        with pytest.raises(TimeoutError):
            asyncio.run(go())
        assert_settled(ledger, 85)
        [note] = ledger.entries(tags={"outcome": "uncertain"})
        assert "CancelledError" == note.tags["error"]

    def test_retry_of_an_uncertain_attempt_is_sent(
        self, server: ImagineServer, ledger: Ledger
    ) -> None:
        """The caller has no answer: a retry of the key is sent, and both calls counted."""
        server.fault("vanish")
        headers = {"Idempotency-Key": "order-7"}
        with client(server, MeteredTransport(ledger)) as http:
            with pytest.raises(httpx.RemoteProtocolError):
                http.post("/image/generations", files=form("anime"), headers=headers)
            assert 200 == http.post("/image/generations", files=form("anime"),
                                    headers=headers).status_code
            with pytest.raises(ib.DuplicateRequest):
                http.post("/image/generations", files=form("anime"), headers=headers)
        assert 2 == server.count()
        assert_settled(ledger, 90)

    def test_callers_trace_extension_is_still_called(
        self, server: ImagineServer, ledger: Ledger
    ) -> None:
        """The transport watches httpcore's trace events and passes them on to the caller's."""
        seen: list[str] = []
        with client(server, MeteredTransport(ledger)) as http:
            http.post("/image/generations", files=form("anime"),
                      extensions={"trace": lambda name, info: seen.append(name)})
        assert "http11.send_request_headers.started" in seen

    def test_bad_on_uncertain_setting(self, ledger: Ledger) -> None:
        """on_uncertain takes "capture" or "void" only."""
        with pytest.raises(ValueError, match="'refund'"):
            MeteredTransport(ledger, on_uncertain="refund")  # type: ignore[arg-type]


class TestIdempotency:
    """A retry with the same Idempotency-Key is never charged twice, nor sent twice."""

    def test_retry_after_timeout_charges_once(self, server: ImagineServer, ledger: Ledger) -> None:
        """Timeout (on_uncertain="void"), retry (captured), retry again (unsent): 15."""
        server.fault("slow")
        transport = MeteredTransport(ledger, on_uncertain="void")
        headers = {"Idempotency-Key": "order-42"}
        with client(server, transport) as http:
            with pytest.raises(httpx.ReadTimeout):
                http.post("/image/generations", files=form("flux-dev"), headers=headers)
            retry = http.post("/image/generations", files=form("flux-dev"), headers=headers)
            assert 200 == retry.status_code
            with pytest.raises(ib.DuplicateRequest) as caught:
                http.post("/image/generations", files=form("flux-dev"), headers=headers)
        assert (False, 15) == (caught.value.in_flight, caught.value.tokens)
        assert "order-42" in str(caught.value)
        assert 2 == server.count()
        assert_settled(ledger, 85)
        assert (1, 1, 1) == (transport.stats.captured, transport.stats.replayed,
                             transport.stats.refused)

    def test_different_keys_are_different_calls(
        self, server: ImagineServer, ledger: Ledger
    ) -> None:
        """Two keys, two charges."""
        with client(server, MeteredTransport(ledger)) as http:
            for key in ("a", "b"):
                http.post(
                    "/image/generations", files=form("anime"), headers={"Idempotency-Key": key}
                )
        assert_settled(ledger, 90)

    def test_key_reused_for_another_request(self, server: ImagineServer, tmp_path: Path) -> None:
        """A key captured for imagine-turbo, reused for flux-dev: IdempotencyConflict, unsent."""
        with Ledger.open(tmp_path / "one.db") as one:
            one.credit(1, key="top-up")
            transport = MeteredTransport(one)
            headers = {"Idempotency-Key": "k1"}
            with client(server, transport) as http:
                http.post("/image/generations", files=form("imagine-turbo"), headers=headers)
                for prompt in ("a", "b", "c"):
                    with pytest.raises(ib.IdempotencyConflict) as caught:
                        http.post("/image/generations", files=form("flux-dev", prompt),
                                  headers=headers)
            assert "'imagine-turbo'" in str(caught.value)
            assert "'flux-dev'" in str(caught.value)
            assert 1 == server.count()
            assert (1, 3, 0) == (transport.stats.captured, transport.stats.refused,
                                 transport.stats.replayed)
            assert_settled(one, 0)

    def test_key_reused_with_another_prompt(self, server: ImagineServer, ledger: Ledger) -> None:
        """Same style, another prompt under a used key: a conflict too, after a failure as well."""
        server.fault(503)
        headers = {"Idempotency-Key": "k2"}
        with client(server, MeteredTransport(ledger)) as http:
            http.post("/image/generations", files=form("anime", "a cat"), headers=headers)
            with pytest.raises(ib.IdempotencyConflict, match="other fields"):
                http.post("/image/generations", files=form("anime", "a dog"), headers=headers)
        assert 1 == server.count()
        assert_settled(ledger, 100)

    def test_retries_after_failures_are_sent(self, server: ImagineServer, ledger: Ledger) -> None:
        """Two failures and a drop (counted), then a success: four sent, then no more sends."""
        server.fault(503, 429, "drop")
        headers = {"Idempotency-Key": "order-5"}
        with client(server, MeteredTransport(ledger)) as http:
            for _ in range(2):
                http.post("/image/generations", files=form("anime"), headers=headers)
            with pytest.raises(httpx.RemoteProtocolError):
                http.post("/image/generations", files=form("anime"), headers=headers)
            assert 200 == http.post("/image/generations", files=form("anime"),
                                    headers=headers).status_code
            with pytest.raises(ib.DuplicateRequest):
                http.post("/image/generations", files=form("anime"), headers=headers)
        assert 4 == server.count()
        assert_settled(ledger, 90)

    def test_unpriced_attempts_are_noted_per_key(
        self, server: ImagineServer, ledger: Ledger
    ) -> None:
        """Unpriced calls too: a failed attempt may be retried, a succeeded one is not resent."""
        server.fault(503)
        headers = {"Idempotency-Key": "sdxl-1"}
        transport = MeteredTransport(ledger, unpriced="allow")
        with client(server, transport) as http:
            assert 503 == http.post("/image/generations", files=form("sdxl-1.0"),
                                    headers=headers).status_code
            assert 200 == http.post("/image/generations", files=form("sdxl-1.0"),
                                    headers=headers).status_code
            with pytest.raises(ib.DuplicateRequest) as caught:
                http.post("/image/generations", files=form("sdxl-1.0"), headers=headers)
        assert (False, 0) == (caught.value.in_flight, caught.value.tokens)
        assert ["failed", "ok"] == [n.tags["outcome"] for n in notes(ledger)]
        assert 2 == server.count()

    def test_concurrent_duplicates_are_sent_once(
        self, server: ImagineServer, ledger: Ledger
    ) -> None:
        """Five concurrent async posts with one key: one is sent and charged, four refused."""
        transport = AsyncMeteredTransport(ledger)

        async def go() -> list[object]:
            async with httpx.AsyncClient(transport=transport, base_url=server.base_url,
                                         headers=AUTH, timeout=10) as http:
                calls = [http.post("/image/generations", files=form("flux-dev"),
                                   headers={"Idempotency-Key": "once"}) for _ in range(5)]
                return await asyncio.gather(*calls, return_exceptions=True)

        results = asyncio.run(go())
        duplicates = [r for r in results if isinstance(r, ib.DuplicateRequest)]
        assert 4 == len(duplicates)
        assert all(d.in_flight for d in duplicates)
        assert 1 == server.count()
        assert (1, 4) == (transport.stats.captured, transport.stats.replayed)
        assert_settled(ledger, 85)

    def test_in_flight_in_another_transport(self, server: ImagineServer, ledger: Ledger) -> None:
        """A key being sent by another transport (as by another process) is refused, unsent."""
        server.fault("slow")
        first, second = AsyncMeteredTransport(ledger), AsyncMeteredTransport(ledger)
        headers = {"Idempotency-Key": "shared"}

        async def post(transport: AsyncMeteredTransport) -> object:
            async with httpx.AsyncClient(transport=transport, base_url=server.base_url,
                                         headers=AUTH, timeout=10) as http:
                return await http.post("/image/generations", files=form("anime"), headers=headers)

        async def go() -> tuple[object, object]:
            return await asyncio.gather(post(first), post(second), return_exceptions=True)

        # The ledger writes run in worker threads: either transport may place its hold
        # first, and the other is refused.
        sent, refused = sorted(asyncio.run(go()),
                               key=lambda result: isinstance(result, ib.DuplicateRequest))
        assert isinstance(sent, httpx.Response)
        assert isinstance(refused, ib.DuplicateRequest)
        [hold] = [e for e in ledger.entries() if e.kind == "hold"]
        assert (True, hold.id) == (refused.in_flight, refused.entry)
        assert 1 == server.count()
        assert_settled(ledger, 95)

    def test_crashed_attempt_blocks_until_its_hold_expires(
        self, server: ImagineServer, ledger: Ledger, tmp_path: Path
    ) -> None:
        """A process that dies mid-request leaves its hold; expire_holds() lets the retry go."""
        crash = (
            "import os, sys, httpx\n"
            "from imagine_billing.ledger import Ledger\n"
            "from imagine_billing.adapters.httpx import MeteredTransport\n"
            "class Crash(httpx.HTTPTransport):\n"
            "    def handle_request(self, request):\n"
            "        os._exit(3)\n"
            "ledger = Ledger.open(sys.argv[1])\n"
            "http = httpx.Client(transport=MeteredTransport(ledger, inner=Crash()),\n"
            "                    base_url=sys.argv[2])\n"
            "http.post('/image/generations', files={'prompt': (None, 'a red fox'),\n"
            "          'aspect_ratio': (None, '1:1'), 'style': (None, 'flux-dev')},\n"
            "          headers={'Idempotency-Key': 'order-7'})\n"
        )
        died = subprocess.run([sys.executable, "-c", crash, str(tmp_path / "tokens.db"),
                               server.base_url], check=False, timeout=60)
        assert 3 == died.returncode
        assert 15 == ledger.balance().held
        headers = {"Idempotency-Key": "order-7"}
        with client(server, MeteredTransport(ledger)) as http:
            with pytest.raises(ib.DuplicateRequest):
                http.post("/image/generations", files=form("flux-dev"), headers=headers)
            [expired] = ledger.expire_holds(now=ledger.now() + DEFAULT_HOLD_EXPIRY)
            assert 15 == expired.tokens
            assert 200 == http.post("/image/generations", files=form("flux-dev"),
                                    headers=headers).status_code
        assert 1 == server.count()
        assert_settled(ledger, 85)


    def test_other_request_while_in_flight_here_is_a_conflict(
        self, server: ImagineServer, ledger: Ledger
    ) -> None:
        """Another prompt under a key this transport is sending: IdempotencyConflict, unsent."""
        server.fault("slow")
        transport = AsyncMeteredTransport(ledger)
        headers = {"Idempotency-Key": "busy"}

        async def go() -> tuple[object, object]:
            async with httpx.AsyncClient(transport=transport, base_url=server.base_url,
                                         headers=AUTH, timeout=10) as http:
                return await asyncio.gather(
                    http.post("/image/generations", files=form("anime", "a cat"),
                              headers=headers),
                    http.post("/image/generations", files=form("anime", "a dog"),
                              headers=headers),
                    return_exceptions=True)

        sent, refused = asyncio.run(go())
        assert isinstance(sent, httpx.Response)
        assert isinstance(refused, ib.IdempotencyConflict)
        assert "other fields" in str(refused)
        assert (1, 0) == (server.count(), transport.stats.replayed)
        assert_settled(ledger, 95)

    def test_process_between_choosing_and_holding(
        self, server: ImagineServer, tmp_path: Path
    ) -> None:
        """Another process sends the key between this one's attempt choice and hold: sent once."""
        path = tmp_path / "shared.db"
        start = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
        headers = {"Idempotency-Key": "between"}
        other: list[object] = []

        def other_process() -> None:
            with Ledger.open(path, clock=lambda: start) as own, httpx.Client(
                    transport=MeteredTransport(own), base_url=server.base_url, headers=AUTH,
                    timeout=10) as http:
                other.append(http.post("/image/generations", files=form("flux-dev"),
                                       headers=headers).status_code)

        armed = threading.Event()

        def clock() -> datetime:
            # The first reading of the clock in a request is the hold's expires_at, taken
            # after the attempt number is chosen: the other process runs right then.
            if armed.is_set():
                armed.clear()
                thread = threading.Thread(target=other_process)
                thread.start()
                thread.join()
            return start

        with Ledger.open(path, clock=clock) as mine:
            mine.credit(100, key="top-up")
            armed.set()
            with client(server, MeteredTransport(mine)) as http, pytest.raises(
                    ib.DuplicateRequest) as caught:
                http.post("/image/generations", files=form("flux-dev"), headers=headers)
            [capture] = [e for e in mine.entries() if e.kind == "capture"]
            assert [200] == other
            assert (False, capture.id) == (caught.value.in_flight, caught.value.entry)
            assert 1 == server.count()
            assert_settled(mine, 85)

    @pytest.mark.parametrize("first_fails", [True, False])
    def test_unpriced_outcomes_of_racing_processes(
        self, server: ImagineServer, tmp_path: Path, first_fails: bool
    ) -> None:
        """Two processes noting one attempt number: both outcomes count, a success stops resends."""
        path = tmp_path / "shared.db"
        headers = {"Idempotency-Key": "race"}

        def other_process() -> None:
            with Ledger.open(path) as own, httpx.Client(
                    transport=MeteredTransport(own, unpriced="allow"),
                    base_url=server.base_url, headers=AUTH, timeout=10) as http:
                http.post("/image/generations", files=form("sdxl-1.0"), headers=headers)

        class OtherFirst(httpx.HTTPTransport):
            """Lets the other process send and note the same key before really sending."""

            def handle_request(self, request: httpx.Request) -> httpx.Response:
                if first_fails:
                    server.fault(503)  # for the other process
                thread = threading.Thread(target=other_process)
                thread.start()
                thread.join()
                if not first_fails:
                    server.fault(503)  # for this one
                return super().handle_request(request)

        with Ledger.open(path) as mine:
            transport = MeteredTransport(mine, unpriced="allow", inner=OtherFirst())
            with client(server, transport) as http:
                http.post("/image/generations", files=form("sdxl-1.0"), headers=headers)
            with client(server, MeteredTransport(mine, unpriced="allow")) as http, \
                    pytest.raises(ib.DuplicateRequest):
                http.post("/image/generations", files=form("sdxl-1.0"), headers=headers)
            outcomes = [(n.key, n.tags["outcome"]) for n in notes(mine)]
            assert [("race:attempt:1", "failed" if first_fails else "ok"),
                    ("race:attempt:2", "ok" if first_fails else "failed")] == outcomes
        assert 2 == server.count()


class TestFingerprint:
    """What makes a retry the same request as an earlier attempt of its key."""

    def retry(self, server: ImagineServer, ledger: Ledger, first: dict[str, Any],
              again: dict[str, Any], key: str = "fp") -> object:
        """Post ``first`` (answered 503), then ``again`` under the same key: status or error."""
        server.fault(503)
        with client(server, MeteredTransport(ledger)) as http:
            outcomes: list[object] = []
            for given in (first, again):
                options = dict(given)
                url = options.pop("url", "/image/generations")
                headers = {**options.pop("headers", {}), "Idempotency-Key": key}
                try:
                    outcomes.append(http.post(url, headers=headers, **options).status_code)
                except ib.IdempotencyConflict as conflict:
                    outcomes.append(conflict)
        assert 503 == outcomes[0]
        return outcomes[1]

    def test_query_string_counts(self, server: ImagineServer, ledger: Ledger) -> None:
        """Another query string is another request."""
        outcome = self.retry(server, ledger, {"url": "/image/generations?seed=1", "files": form()},
                             {"url": "/image/generations?seed=2", "files": form()})
        assert isinstance(outcome, ib.IdempotencyConflict)

    def test_json_key_order_does_not_count(self, server: ImagineServer, ledger: Ledger) -> None:
        """A JSON body with its keys in another order is the same request (canonical JSON)."""
        outcome = self.retry(server, ledger, {"json": {"prompt": "fox", "style": "anime"}},
                             {"json": {"style": "anime", "prompt": "fox"}})
        assert 200 == outcome

    def test_file_content_type_does_not_count(
        self, server: ImagineServer, ledger: Ledger
    ) -> None:
        """A file part's Content-Type (guessed per host) is left out; its name and bytes count."""
        image = b"\x89PNG" + bytes(range(256))

        def files(kind: str, data: bytes = image) -> dict[str, Any]:
            return {"files": {**form("anime"), "image": ("a.png", data, kind)}}

        assert 200 == self.retry(server, ledger, files("image/png"),
                                 files("application/octet-stream"))
        outcome = self.retry(server, ledger, files("image/png", image + b"x"),
                             files("image/png"), key="fp-2")
        assert isinstance(outcome, ib.IdempotencyConflict)

    def test_multipart_without_parts_hashes_the_body(
        self, server: ImagineServer, ledger: Ledger
    ) -> None:
        """A multipart body whose boundary matches no part still differs by its bytes."""
        headers = {"Content-Type": "multipart/form-data; boundary=NOPE"}
        outcome = self.retry(server, ledger,
                             {"content": multipart("anime"), "headers": headers},
                             {"content": multipart("flux-dev"), "headers": headers})
        assert isinstance(outcome, ib.IdempotencyConflict)


class TestHoldExpiry:
    """Holds lapse, so a crash does not keep tokens held forever."""

    @pytest.mark.parametrize("expiry", [DEFAULT_HOLD_EXPIRY, timedelta(seconds=30), None])
    def test_holds_carry_an_expiry(
        self, server: ImagineServer, tmp_path: Path, expiry: timedelta | None
    ) -> None:
        """Each hold expires hold_expiry after it is placed (10 minutes by default; None: never)."""
        clock = Clock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
        with Ledger.open(tmp_path / "l.db", clock=clock) as ledger:
            ledger.credit(100, key="top-up")
            with client(server, MeteredTransport(ledger, hold_expiry=expiry)) as http:
                http.post("/image/generations", files=form("anime"))
            [hold] = [e for e in ledger.entries() if e.kind == "hold"]
            assert (None if expiry is None else clock.now + expiry) == hold.expires_at

    def test_call_outliving_its_hold_is_still_spent(
        self, server: ImagineServer, tmp_path: Path
    ) -> None:
        """A call answered after its hold lapsed is debited: the API did the work."""
        clock = Clock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))

        with Ledger.open(tmp_path / "l.db", clock=clock) as ledger:
            ledger.credit(100, key="top-up")
            transport = MeteredTransport(ledger, inner=LateTransport(clock))
            with client(server, transport) as http:
                assert 200 == http.post("/image/generations", files=form("flux-dev")).status_code
            assert ["hold", "void", "debit"] == kinds(ledger)
            assert 1 == transport.stats.captured
            assert_settled(ledger, 85)

    def test_retry_after_a_late_debit_is_not_sent(
        self, server: ImagineServer, tmp_path: Path
    ) -> None:
        """A call spent by a late debit succeeded: a retry of its key is refused, unsent."""
        clock = Clock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))

        headers = {"Idempotency-Key": "late"}
        with Ledger.open(tmp_path / "l.db", clock=clock) as ledger:
            ledger.credit(100, key="top-up")
            with client(server, MeteredTransport(ledger, inner=LateTransport(clock))) as http:
                http.post("/image/generations", files=form("flux-dev"), headers=headers)
                with pytest.raises(ib.DuplicateRequest) as caught:
                    http.post("/image/generations", files=form("flux-dev"), headers=headers)
            assert (False, 15) == (caught.value.in_flight, caught.value.tokens)
            assert 1 == server.count()
            assert_settled(ledger, 85)

    @pytest.mark.parametrize("status", [200, 503])
    def test_late_call_the_ledger_cannot_spend(
        self, server: ImagineServer, tmp_path: Path, status: int
    ) -> None:
        """Outlived its hold, whose tokens went to another hold: drift; a success is not resent."""
        clock = Clock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
        headers = {"Idempotency-Key": "lapsed"}

        with Ledger.open(tmp_path / "l.db", clock=clock) as ledger:

            class Late(httpx.HTTPTransport):
                """Once: the hold lapses and another hold takes its tokens; then really sends."""

                done = False

                def handle_request(self, request: httpx.Request) -> httpx.Response:
                    if not self.done:
                        self.done = True
                        clock.now += timedelta(minutes=11)
                        ledger.hold(15, key="someone-else")  # expires the lapsed hold
                    return super().handle_request(request)

            ledger.credit(15, key="top-up")
            if status != 200:
                server.fault(status)
            transport = MeteredTransport(ledger, inner=Late(), charge_failed=True)
            with client(server, transport) as http:
                assert status == http.post("/image/generations", files=form("flux-dev"),
                                           headers=headers).status_code
                note = ledger.get("lapsed:attempt:1:capture"
                                  + ("" if status == 200 else f":{status}"))
                ledger.credit(15, key="top-up-2")
                try:
                    retry: object = http.post("/image/generations", files=form("flux-dev"),
                                              headers=headers).status_code
                except ib.DuplicateRequest as duplicate:
                    retry = duplicate
        assert ("note", "true") == (note.kind, note.tags["drift"])
        assert (int(status != 200), 1) == (transport.stats.captured, transport.stats.drift)
        if status == 200:
            assert ("ok", "the call succeeded") == (note.tags["outcome"], (note.memo or "")[7:25])
            assert isinstance(retry, ib.DuplicateRequest)
            assert 1 == server.count()
        else:  # a charged failure is no success: its retry is a new call
            assert "failed with 503 and is charged" in (note.memo or "")
            assert ("failed", 200) == (note.tags["outcome"], retry)
            assert 2 == server.count()


    def test_bad_hold_expiry(self, ledger: Ledger) -> None:
        """hold_expiry is a positive timedelta or None."""
        with pytest.raises(ValueError, match="hold_expiry"):
            MeteredTransport(ledger, hold_expiry=timedelta(0))


class TestStreaming:
    """client.stream(...) responses."""

    def test_hold_is_captured_when_the_stream_ends(
        self, server: ImagineServer, ledger: Ledger
    ) -> None:
        """The body streams through: the hold stays open while it is read, captured after."""
        with client(server, MeteredTransport(ledger)) as http, http.stream(
                "POST", "/image/generations", files=form("flux-dev")) as response:
            assert (100, 15) == (ledger.balance().posted, ledger.balance().held)
            assert response.read().startswith(b"\x89PNG")
        assert_settled(ledger, 85)

    def test_response_is_timed_and_streamed_as_without_the_meter(
        self, server: ImagineServer, ledger: Ledger
    ) -> None:
        """elapsed is set, and client.stream(...) iterates the body, as with the bare transport."""
        with client(server, MeteredTransport(ledger)) as http:
            response = http.post("/image/generations", files=form("anime"))
            assert timedelta(0) < response.elapsed
            with http.stream("POST", "/image/generations", files=form("anime")) as streamed:
                body = b"".join(streamed.iter_bytes())
            assert (response.content, True) == (body, timedelta(0) < streamed.elapsed)
        assert_settled(ledger, 90)

    def test_async_response_is_timed_and_streamed(
        self, server: ImagineServer, ledger: Ledger
    ) -> None:
        """The same through AsyncMeteredTransport."""
        async def go() -> tuple[httpx.Response, bytes, timedelta]:
            async with httpx.AsyncClient(transport=AsyncMeteredTransport(ledger),
                                         base_url=server.base_url, headers=AUTH) as http:
                response = await http.post("/image/generations", files=form("anime"))
                async with http.stream("POST", "/image/generations",
                                       files=form("anime")) as streamed:
                    body = b"".join([chunk async for chunk in streamed.aiter_bytes()])
                return response, body, streamed.elapsed

        response, body, elapsed = asyncio.run(go())
        assert timedelta(0) < response.elapsed
        assert (response.content, True) == (body, timedelta(0) < elapsed)
        assert_settled(ledger, 90)


    def test_stream_closed_early_is_captured_once(
        self, server: ImagineServer, ledger: Ledger
    ) -> None:
        """A 2xx stream closed after its first chunk is captured, once."""
        server.fault("large")
        transport = MeteredTransport(ledger)
        with client(server, transport) as http:
            with http.stream("POST", "/image/generations", files=form("flux-dev")) as response:
                first = next(response.iter_raw())
                assert 15 == ledger.balance().held
            assert 0 < len(first) < server.large_bytes
            assert_settled(ledger, 85)
        assert (1, 0) == (transport.stats.captured, transport.stats.voided)
        assert_settled(ledger, 85)

    def test_unread_stream_is_captured_when_closed(
        self, server: ImagineServer, ledger: Ledger
    ) -> None:
        """A 2xx response closed without reading a byte is captured."""
        with client(server, MeteredTransport(ledger)) as http:
            request = http.build_request("POST", "/image/generations", files=form("flux-dev"))
            response = http.send(request, stream=True)
            assert 15 == ledger.balance().held
            response.close()
            assert_settled(ledger, 85)

    def test_stream_left_open_is_captured_when_the_transport_closes(
        self, server: ImagineServer, ledger: Ledger
    ) -> None:
        """A response never closed is captured when the client (its transport) is closed."""
        transport = MeteredTransport(ledger)
        http = client(server, transport)
        request = http.build_request("POST", "/image/generations", files=form("flux-dev"))
        response = http.send(request, stream=True)
        http.close()
        assert_settled(ledger, 85)
        response.close()
        assert 1 == transport.stats.captured
        assert_settled(ledger, 85)

    def test_async_stream_is_settled_when_closed(
        self, server: ImagineServer, ledger: Ledger
    ) -> None:
        """Async: the hold is open while streaming; a stream closed early is captured once."""
        server.fault("large")
        transport = AsyncMeteredTransport(ledger)

        async def go() -> tuple[int, int]:
            async with httpx.AsyncClient(transport=transport, base_url=server.base_url,
                                         headers=AUTH) as http:
                async with http.stream("POST", "/image/generations",
                                       files=form("flux-dev")) as response:
                    async for _ in response.aiter_raw():
                        break
                    held = ledger.balance().held
                return held, ledger.balance().held

        assert (15, 0) == asyncio.run(go())
        assert 1 == transport.stats.captured
        assert_settled(ledger, 85)

    def test_async_body_failing_midway_is_uncertain(
        self, server: ImagineServer, ledger: Ledger
    ) -> None:
        """Async: a streamed 2xx body cut short is counted and noted, once."""
        server.fault("drop")
        transport = AsyncMeteredTransport(ledger)

        async def go() -> None:
            async with httpx.AsyncClient(transport=transport, base_url=server.base_url,
                                         headers=AUTH) as http, http.stream(
                    "POST", "/image/generations", files=form("flux-dev")) as response:
                await response.aread()

        with pytest.raises(httpx.RemoteProtocolError):
            asyncio.run(go())
        assert (1, 1) == (transport.stats.uncertain, transport.stats.captured)
        assert_settled(ledger, 85)

    def test_large_error_body_streams_through(
        self, server: ImagineServer, ledger: Ledger
    ) -> None:
        """An error answer longer than the transport reads is voided and reaches the caller."""
        server.fault("large-error")
        with client(server, MeteredTransport(ledger)) as http, http.stream(
                "POST", "/image/generations", files=form("flux-dev")) as response:
            assert_settled(ledger, 100)
            size = sum(len(chunk) for chunk in response.iter_raw())
        assert (502, server.large_bytes) == (response.status_code, size)

    def test_async_large_error_body_streams_through(
        self, server: ImagineServer, ledger: Ledger
    ) -> None:
        """The same through AsyncMeteredTransport."""
        server.fault("large-error")

        async def go() -> tuple[int, int]:
            async with httpx.AsyncClient(transport=AsyncMeteredTransport(ledger),
                                         base_url=server.base_url, headers=AUTH) as http, \
                    http.stream("POST", "/image/generations",
                                files=form("flux-dev")) as response:
                return response.status_code, len(await response.aread())

        assert (502, server.large_bytes) == asyncio.run(go())
        assert_settled(ledger, 100)

    def test_large_body_is_not_buffered(self, tmp_path: Path) -> None:
        """A 200 MiB body streamed through the transport grows peak memory by far less."""
        code = f"""
import json, resource, httpx
from imagine_billing.adapters.httpx import MeteredTransport
from imagine_billing.ledger import Ledger
from tests.adapters.imagine_server import running
from tests.adapters.test_httpx_adapter import AUTH, form

def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

with running(large_bytes=200 * 2**20) as server, Ledger.open({str(tmp_path / "l.db")!r}) as ledger:
    ledger.credit(100, key="top-up")
    transport = MeteredTransport(ledger)
    with httpx.Client(transport=transport, base_url=server.base_url, headers=AUTH,
                      timeout=60) as http:
        http.post("/image/generations", files=form("anime")).read()
        server.fault("large")
        before = peak()
        size = 0
        with http.stream("POST", "/image/generations", files=form("flux-dev")) as response:
            held = ledger.balance().held
            for chunk in response.iter_bytes():
                size += len(chunk)
        grown = peak() - before
        print(json.dumps([size, grown, held, ledger.balance().held, ledger.balance().posted]))
"""
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True, timeout=300, cwd=Path(__file__).parents[2]).stdout
        size, grown, held_while, held_after, posted = json.loads(out)
        assert grown < 50 * 2**20, f"peak memory grew by {grown / 2**20:.0f} MiB"
        assert (200 * 2**20, 15, 0, 80) == (size, held_while, held_after, posted)

    def test_parse_error_of_a_closed_stream(self, server: ImagineServer, ledger: Ledger) -> None:
        """parse_error of a stream closed unread gives the reason phrase, not StreamClosed."""
        with client(server, MeteredTransport(ledger)) as http:
            with http.stream("POST", "/nowhere", files=form()) as response:
                pass
            error = parse_error(response)
        assert (404, None, "Not Found", "Not Found") == (
            error.status, error.code, error.error, error.message)

    def test_parse_error_of_an_unread_async_stream(
        self, server: ImagineServer, ledger: Ledger
    ) -> None:
        """parse_error of an unread async response falls back; aparse_error reads it first."""
        async def go() -> tuple[ib.ApiError, ib.ApiError]:
            async with httpx.AsyncClient(transport=AsyncMeteredTransport(ledger),
                                         base_url=server.base_url, headers=AUTH) as http, \
                    http.stream("POST", "/nowhere", files=form()) as response:
                return parse_error(response), await aparse_error(response)

        unread, read = asyncio.run(go())
        assert (None, "Not Found") == (unread.code, unread.message)
        assert (1100, "no such path") == (read.code, read.message)


class TestThreads:
    """One MeteredTransport, one client and one SQLite ledger shared by threads."""

    def test_threads_share_one_client(self, server: ImagineServer, tmp_path: Path) -> None:
        """16 threads, tokens for 10 flux-dev calls: exactly 10 are sent and captured."""
        with Ledger.open(tmp_path / "shared.db") as shared:
            shared.credit(150, key="top-up")
            transport = MeteredTransport(shared)
            results: list[object] = []
            with httpx.Client(transport=transport, base_url=server.base_url, headers=AUTH,
                              timeout=10) as http:

                def call() -> None:
                    try:
                        results.append(http.post("/image/generations",
                                                 files=form("flux-dev")).status_code)
                    except ib.InsufficientTokens:
                        results.append("refused")
                    except Exception as error:  # any other error: recorded, so the test fails
                        results.append(repr(error))

                threads = [threading.Thread(target=call) for _ in range(16)]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
            assert [200] * 10 + ["refused"] * 6 == sorted(results, key=str)
            assert 10 == server.count(GENERATIONS)
            assert (10, 6) == (transport.stats.captured, transport.stats.refused)
            assert_settled(shared, 0)

    def test_threads_with_one_key(self, server: ImagineServer, ledger: Ledger) -> None:
        """8 threads posting one Idempotency-Key: one is sent and charged, 7 are duplicates."""
        server.fault("slow")  # the first stays in flight while the others try
        transport = MeteredTransport(ledger)
        results: list[str] = []
        with httpx.Client(transport=transport, base_url=server.base_url, headers=AUTH,
                          timeout=10) as http:

            def call() -> None:
                try:
                    http.post("/image/generations", files=form("anime"),
                              headers={"Idempotency-Key": "t-1"}).raise_for_status()
                    results.append("sent")
                except ib.DuplicateRequest:
                    results.append("duplicate")
                except Exception as error:  # any other error: recorded, so the test fails
                    results.append(repr(error))

            threads = [threading.Thread(target=call) for _ in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        assert ["duplicate"] * 7 + ["sent"] == sorted(results)
        assert 1 == server.count()
        assert_settled(ledger, 95)


class TestAsync:
    """AsyncMeteredTransport under concurrency."""

    def test_fifty_concurrent_requests_against_ten_calls_worth(
        self, server: ImagineServer, tmp_path: Path
    ) -> None:
        """Exactly 10 of 50 reach the server; 40 are refused before sending; 10 captures."""
        with Ledger.open(tmp_path / "l.db") as ledger:
            ledger.credit(150, key="top-up")  # 10 flux-dev calls
            transport = AsyncMeteredTransport(ledger)

            async def go() -> list[object]:
                async with httpx.AsyncClient(
                    transport=transport, base_url=server.base_url, headers=AUTH, timeout=10
                ) as http:
                    calls = [
                        http.post("/image/generations", files=form("flux-dev")) for _ in range(50)
                    ]
                    return await asyncio.gather(*calls, return_exceptions=True)

            results = asyncio.run(go())
            ok = [r for r in results if isinstance(r, httpx.Response) and r.status_code == 200]
            refused = [r for r in results if isinstance(r, ib.InsufficientTokens)]
            assert (10, 40) == (len(ok), len(refused))
            assert 10 == server.count(GENERATIONS)
            assert 10 == len([e for e in ledger.entries() if e.kind == "capture"])
            assert_settled(ledger, 0)

    def test_async_dropped_connection_is_uncertain(
        self, server: ImagineServer, ledger: Ledger
    ) -> None:
        """A body cut short under the async transport is an uncertain outcome too: counted."""
        server.fault("drop")

        async def go() -> None:
            async with httpx.AsyncClient(
                transport=AsyncMeteredTransport(ledger), base_url=server.base_url, headers=AUTH
            ) as http:
                await http.post("/image/generations", files=form("flux-dev"))

        with pytest.raises(httpx.RemoteProtocolError):
            asyncio.run(go())
        assert_settled(ledger, 85)
        assert 1 == len(list(ledger.entries(tags={"outcome": "uncertain"})))


    def test_cancelled_task_leaves_no_hold(self, server: ImagineServer, ledger: Ledger) -> None:
        """A task cancelled before its request goes out voids the hold; the retry is sent."""
        class Cancelling(httpx.AsyncHTTPTransport):
            """Cancels the task that sends, once, before sending."""

            cancelled = False

            async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
                if not self.cancelled:
                    self.cancelled = True
                    task = asyncio.current_task()
                    assert task is not None
                    task.cancel()
                    await asyncio.sleep(0)
                return await super().handle_async_request(request)

        transport = AsyncMeteredTransport(ledger, inner=Cancelling())
        headers = {"Idempotency-Key": "cancel-1"}

        async def post(http: httpx.AsyncClient) -> httpx.Response:
            return await http.post("/image/generations", files=form("flux-dev"), headers=headers)

        async def go() -> tuple[bool, tuple[object, ...], int]:
            async with httpx.AsyncClient(transport=transport, base_url=server.base_url,
                                         headers=AUTH, timeout=10) as http:
                first = asyncio.create_task(post(http))
                with contextlib.suppress(asyncio.CancelledError):
                    await first
                left = ledger.open_holds()
                return first.cancelled(), left, (await post(http)).status_code

        assert (True, (), 200) == asyncio.run(go())
        assert 1 == server.count()
        assert_settled(ledger, 85)

    def test_keyboard_interrupt_leaves_no_hold(
        self, server: ImagineServer, ledger: Ledger
    ) -> None:
        """A KeyboardInterrupt while sending (sync) voids the hold too; the retry is sent."""
        class Interrupted(httpx.HTTPTransport):
            """Raises KeyboardInterrupt, once, before sending."""

            interrupted = False

            def handle_request(self, request: httpx.Request) -> httpx.Response:
                if not self.interrupted:
                    self.interrupted = True
                    raise KeyboardInterrupt
                return super().handle_request(request)

        headers = {"Idempotency-Key": "interrupt-1"}
        with client(server, MeteredTransport(ledger, inner=Interrupted())) as http:
            with pytest.raises(KeyboardInterrupt):
                http.post("/image/generations", files=form("flux-dev"), headers=headers)
            assert () == ledger.open_holds()
            assert 200 == http.post("/image/generations", files=form("flux-dev"),
                                    headers=headers).status_code
        assert 1 == server.count()
        assert_settled(ledger, 85)


class TestParseError:
    """parse_error reads the documented error body, leniently."""

    def test_documented_body(self) -> None:
        """Status, code, error name and message are taken from the JSON body."""
        response = httpx.Response(
            402,
            json={
                "status": "error",
                "code": 1101,
                "error": "PaymentRequired",
                "message": "Not enough",
            },
        )
        error = parse_error(response)
        assert (402, 1101, "PaymentRequired", "Not enough") == (
            error.status,
            error.code,
            error.error,
            error.message,
        )
        assert error.insufficient_tokens

    def test_code_as_string(self) -> None:
        """A code sent as a string is read as the number."""
        response = httpx.Response(
            401,
            json={
                "code": "1208",
                "error": "Unauthorized",
                "message": "The provided API key is invalid.",
            },
        )
        assert 1208 == parse_error(response).code

    def test_not_json(self) -> None:
        """A body that is not JSON gives its text as the message and no code."""
        error = parse_error(httpx.Response(503, text="<html> upstream   down </html>"))
        assert (503, None, "Service Unavailable", "<html> upstream down </html>") == (
            error.status,
            error.code,
            error.error,
            error.message,
        )

    def test_empty_body(self) -> None:
        """An empty body falls back to the reason phrase."""
        error = parse_error(httpx.Response(429))
        assert ("Too Many Requests", "Too Many Requests") == (error.error, error.message)

    def test_legacy_424(self) -> None:
        """v1's 424 means not enough tokens, like 402; a 429 does not."""
        assert parse_error(httpx.Response(424, json={"code": 1101})).insufficient_tokens
        assert not parse_error(httpx.Response(429, json={"code": 1202})).insufficient_tokens

    def test_deeply_nested_body(self) -> None:
        """JSON nested past the parser's depth is not JSON: no code, the reason phrase as name."""
        error = parse_error(httpx.Response(502, content=b"[" * 100_000))
        assert (502, None, "Bad Gateway") == (error.status, error.code, error.error)


    def test_is_a_billing_error(self) -> None:
        """ApiError is a BillingError with a message naming status and code."""
        error = parse_error(
            httpx.Response(400, json={"code": 1100, "error": "BadRequest", "message": "bad style"})
        )
        assert isinstance(error, ib.BillingError)
        assert "400" in str(error)
        assert "1100" in str(error)


class TestLedgerFaults:
    """A ledger that cannot be written while settling never loses the answer nor resends it."""

    def test_capture_that_cannot_be_written_is_deferred(
        self, server: ImagineServer, tmp_path: Path
    ) -> None:
        """Locked out: the image is returned, the hold stays; once expired the key is not resent."""
        path = tmp_path / "l.db"
        lock = WriteLock(path)
        headers = {"Idempotency-Key": "locked"}
        with Ledger.open(path, timeout=0.05) as ledger:
            ledger.credit(100, key="top-up")
            transport = MeteredTransport(ledger, inner=LockAfterAnswer(lock))
            with client(server, transport) as http:
                response = http.post("/image/generations", files=form("flux-dev"),
                                     headers=headers)
                assert (200, True) == (response.status_code,
                                       response.content.startswith(b"\x89PNG"))
                assert (1, 0, 15) == (transport.stats.deferred, transport.stats.captured,
                                      ledger.balance().held)
                with pytest.raises(ib.DuplicateRequest) as unsettled:  # still locked
                    http.post("/image/generations", files=form("flux-dev"), headers=headers)
                lock.release()
                ledger.expire_holds(now=ledger.now() + DEFAULT_HOLD_EXPIRY)
                # The next request writes the deferred settling first: a late debit.
                assert 200 == http.post("/image/generations", files=form("anime")).status_code
                assert_settled(ledger, 80)
            with client(server, MeteredTransport(ledger)) as other, pytest.raises(
                    ib.DuplicateRequest) as caught:  # as from another process
                other.post("/image/generations", files=form("flux-dev"), headers=headers)
            assert (False, 15) == (unsettled.value.in_flight, unsettled.value.tokens)
            assert (False, 15) == (caught.value.in_flight, caught.value.tokens)
            assert 2 == server.count()
            assert_settled(ledger, 80)

    def test_deferred_capture_is_written_on_close(
        self, server: ImagineServer, tmp_path: Path
    ) -> None:
        """A deferred capture is written when the transport closes, and counted then."""
        path = tmp_path / "l.db"
        lock = WriteLock(path)
        with Ledger.open(path, timeout=0.05) as ledger:
            ledger.credit(100, key="top-up")
            transport = MeteredTransport(ledger, inner=LockAfterAnswer(lock))
            with client(server, transport) as http:
                http.post("/image/generations", files=form("flux-dev"))
                lock.release()
                assert 15 == ledger.balance().held
            assert (1, 1) == (transport.stats.deferred, transport.stats.captured)
            assert_settled(ledger, 85)

    def test_capture_is_tried_again_at_once(self, server: ImagineServer, tmp_path: Path) -> None:
        """A capture that fails once is written by the next try: nothing deferred."""
        class Faulty(Clock):
            """A clock that fails (as a store error) the times it is told to."""

            failures = 0

            def __call__(self) -> datetime:
                if self.failures:
                    self.failures -= 1
                    raise ib.LedgerStoreError("l.db", "disk I/O error")
                return self.now

        clock = Faulty()

        class FailOnce(httpx.HTTPTransport):
            """Really sends; the ledger's next reading of the clock (the capture's) then fails."""

            def handle_request(self, request: httpx.Request) -> httpx.Response:
                response = super().handle_request(request)
                clock.failures = 1
                return response

        with Ledger.open(tmp_path / "l.db", clock=clock) as ledger:
            ledger.credit(100, key="top-up")
            transport = MeteredTransport(ledger, inner=FailOnce())
            with client(server, transport) as http:
                assert 200 == http.post("/image/generations", files=form("flux-dev")).status_code
                assert (0, 1) == (transport.stats.deferred, transport.stats.captured)
                assert_settled(ledger, 85)

    def test_void_that_cannot_be_written_keeps_the_transport_error(
        self, server: ImagineServer, tmp_path: Path
    ) -> None:
        """A dropped connection is raised even if the void fails: the ledger's error is a note."""
        path = tmp_path / "l.db"
        lock = WriteLock(path)
        server.fault("drop")
        with Ledger.open(path, timeout=0.05) as ledger:
            ledger.credit(100, key="top-up")
            transport = MeteredTransport(ledger, inner=LockAfterAnswer(lock),
                                         on_uncertain="void")
            with client(server, transport) as http:
                with pytest.raises(httpx.RemoteProtocolError) as caught:
                    http.post("/image/generations", files=form("flux-dev"))
                lock.release()
                assert "LedgerStoreError" in " ".join(caught.value.__notes__)
                assert 200 == http.post("/image/generations", files=form("anime")).status_code
            assert (1, 1, 1) == (transport.stats.deferred, transport.stats.voided,
                                 transport.stats.captured)
            assert_settled(ledger, 95)


class TestExtra:
    """The adapter is an optional extra."""

    def test_without_httpx_the_import_says_how_to_install(self) -> None:
        """Importing the adapter without httpx raises ImportError naming the extra."""
        code = ("import sys; sys.modules['httpx'] = None\n"
                "try:\n    import imagine_billing.adapters.httpx\n"
                "except ImportError as e:\n    print(e)\n")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True, timeout=60).stdout
        assert 'pip install "imagine-billing[http]"' in out

    def test_bad_unpriced_setting(self, ledger: Ledger) -> None:
        """unpriced takes "refuse" or "allow" only."""
        with pytest.raises(ValueError, match="maybe"):
            MeteredTransport(ledger, unpriced="maybe")  # type: ignore[arg-type]


class TestAsyncLedgerWrites:
    """The async transport never blocks the event loop on a ledger write (issue 12 item 4):
    while another process holds the SQLite write lock, the loop's other tasks run."""

    def test_other_tasks_run_while_the_ledger_waits(self, server: ImagineServer,
                                                    tmp_path: Path) -> None:
        """A real process holds the write lock until a task on the same loop tells it to
        let go. A transport that waited for the lock on the loop would stop that task, and
        the hold would fail when the ledger's 5 s timeout ran out."""
        path = tmp_path / "tokens.db"
        with Ledger.open(path) as ledger:
            ledger.credit(100, key="top-up")
        locker = subprocess.Popen(
            [sys.executable, "-c",
             "import sqlite3, sys\n"
             "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
             "db.execute('BEGIN IMMEDIATE')\n"
             "print('locked', flush=True)\n"
             "sys.stdin.readline()\n"
             "db.execute('ROLLBACK')\n", str(path)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert locker.stdout is not None
            assert locker.stdin is not None
            assert "locked" == locker.stdout.readline().strip()
            ticks: list[int] = []

            async def release() -> None:
                for tick in range(5):  # the loop runs while the hold waits for the lock
                    await asyncio.sleep(0.05)
                    ticks.append(tick)
                assert locker.stdin is not None
                locker.stdin.write("go\n")
                locker.stdin.flush()

            async def go() -> int:
                with Ledger.open(path, timeout=5.0) as ledger:
                    transport = AsyncMeteredTransport(ledger)
                    async with httpx.AsyncClient(transport=transport, base_url=server.base_url,
                                                 headers=AUTH, timeout=2.0) as http:
                        sent = asyncio.create_task(
                            http.post("/image/generations", files=form("flux-dev")))
                        await release()
                        response = await sent
                    return response.status_code

            assert 200 == asyncio.run(go())
            assert [0, 1, 2, 3, 4] == ticks
            with Ledger.open(path, readonly=True) as ledger:
                assert 85 == ledger.balance().available
        finally:
            for pipe in (locker.stdin, locker.stdout):
                if pipe is not None:
                    pipe.close()
            locker.wait(timeout=10)
