"""The metered httpx transport against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import imagine_billing as ib
from imagine_billing.adapters.httpx import (
    AsyncMeteredTransport,
    MeteredTransport,
    is_insufficient,
    parse_error,
)
from imagine_billing.ledger import Ledger
from tests.adapters.imagine_server import ImagineServer, running

AUTH = {"Authorization": "Bearer vk-test"}


def form(style: str | None = None, prompt: str = "a red fox") -> dict[str, tuple[None, str]]:
    """A multipart form as the text-to-image endpoint takes it."""
    fields = {"prompt": (None, prompt), "aspect_ratio": (None, "1:1")}
    if style is not None:
        fields["style"] = (None, style)
    return fields


@pytest.fixture
def server() -> Iterator[ImagineServer]:
    """The stand-in API, answering slowly (0.6 s) only when a test queues "slow"."""
    with running(slow_seconds=0.6) as started:
        yield started


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
        """sdxl-1.0 has no published price: UnpricedError, nothing sent."""
        with client(server, MeteredTransport(ledger)) as http, pytest.raises(ib.UnpricedError):
            http.post("/image/generations", files=form("sdxl-1.0"))
        assert 0 == server.count()
        assert_settled(ledger, 100)

    def test_unpriced_allowed_is_flagged(self, server: ImagineServer, ledger: Ledger) -> None:
        """unpriced="allow" sends at cost 0 and writes a note entry that says so."""
        transport = MeteredTransport(ledger, unpriced="allow")
        with client(server, transport) as http:
            assert 200 == http.post("/image/generations", files=form("sdxl-1.0")).status_code
        assert_settled(ledger, 100)
        [note] = [e for e in ledger.entries() if e.kind == "note"]
        assert "unpriced" in (note.memo or "")
        assert "sdxl-1.0" == note.tags["style"]
        assert 1 == transport.stats.unpriced

    def test_own_prices_through_a_table(self, server: ImagineServer, ledger: Ledger) -> None:
        """A table with sdxl-1.0 priced at 2 meters it at 2."""
        table = ib.load_price_table().with_overrides(
            {"styles": {"sdxl-1.0": {"cost": 2}}}, version="1.0.1"
        )
        with client(server, MeteredTransport(ledger, table)) as http:
            http.post("/image/generations", files=form("sdxl-1.0"))
        assert_settled(ledger, 98)


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
        """A documented error answer voids the hold; the response is returned as is."""
        server.fault(status)
        transport = MeteredTransport(ledger)
        with client(server, transport) as http:
            response = http.post("/image/generations", files=form("flux-dev"))
        assert status == response.status_code
        assert_settled(ledger, 100)
        assert 1 == transport.stats.voided

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

    def test_connection_dropped_mid_response(self, server: ImagineServer, ledger: Ledger) -> None:
        """A body cut short raises the transport error and voids the hold."""
        server.fault("drop")
        transport = MeteredTransport(ledger)
        with client(server, transport) as http, pytest.raises(httpx.RemoteProtocolError):
            http.post("/image/generations", files=form("flux-dev"))
        assert_settled(ledger, 100)
        assert (1, 0) == (transport.stats.voided, transport.stats.captured)

    def test_timeout(self, server: ImagineServer, ledger: Ledger) -> None:
        """An answer slower than the client's timeout voids the hold."""
        server.fault("slow")
        with client(server, MeteredTransport(ledger)) as http, pytest.raises(httpx.ReadTimeout):
            http.post("/image/generations", files=form("flux-dev"))
        assert_settled(ledger, 100)

    def test_402_is_drift(self, server: ImagineServer, ledger: Ledger) -> None:
        """A 402 while the ledger had the tokens voids and notes the drift with the balance."""
        server.fault(402)
        transport = MeteredTransport(ledger)
        with client(server, transport) as http:
            response = http.post("/image/generations", files=form("flux-dev"))
        assert 402 == response.status_code
        assert_settled(ledger, 100)
        [note] = [e for e in ledger.entries() if e.kind == "note"]
        assert "100" == note.tags["believed_available"]
        assert "Usage tab" in (note.memo or "")
        assert 1 == transport.stats.drift


class TestIdempotency:
    """A retry with the same Idempotency-Key is never charged twice."""

    def test_retry_after_timeout_charges_once(self, server: ImagineServer, ledger: Ledger) -> None:
        """Timeout (voided), retry (captured), retry again (sent, not charged): 15 in all."""
        server.fault("slow")
        transport = MeteredTransport(ledger)
        headers = {"Idempotency-Key": "order-42"}
        with client(server, transport) as http:
            with pytest.raises(httpx.ReadTimeout):
                http.post("/image/generations", files=form("flux-dev"), headers=headers)
            assert (
                200
                == http.post(
                    "/image/generations", files=form("flux-dev"), headers=headers
                ).status_code
            )
            assert (
                200
                == http.post(
                    "/image/generations", files=form("flux-dev"), headers=headers
                ).status_code
            )
        assert_settled(ledger, 85)
        assert (1, 1) == (transport.stats.captured, transport.stats.replayed)

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
            assert 10 == server.count("/v2/image/generations")
            assert 10 == len([e for e in ledger.entries() if e.kind == "capture"])
            assert_settled(ledger, 0)

    def test_async_transport_error_voids(self, server: ImagineServer, ledger: Ledger) -> None:
        """A dropped connection under the async transport voids too."""
        server.fault("drop")

        async def go() -> None:
            async with httpx.AsyncClient(
                transport=AsyncMeteredTransport(ledger), base_url=server.base_url, headers=AUTH
            ) as http:
                await http.post("/image/generations", files=form("flux-dev"))

        with pytest.raises(httpx.RemoteProtocolError):
            asyncio.run(go())
        assert_settled(ledger, 100)


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
        assert is_insufficient(error)

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
        """v1's 424 means not enough tokens, like 402."""
        assert is_insufficient(parse_error(httpx.Response(424, json={"code": 1101})))
        assert not is_insufficient(parse_error(httpx.Response(429, json={"code": 1202})))

    def test_is_a_billing_error(self) -> None:
        """ApiError is a BillingError with a message naming status and code."""
        error = parse_error(
            httpx.Response(400, json={"code": 1100, "error": "BadRequest", "message": "bad style"})
        )
        assert isinstance(error, ib.BillingError)
        assert "400" in str(error)
        assert "1100" in str(error)


class TestExtra:
    """The adapter is an optional extra."""

    def test_without_httpx_the_import_says_how_to_install(self) -> None:
        """Importing the adapter without httpx raises ImportError naming the extra."""
        import subprocess
        import sys

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
