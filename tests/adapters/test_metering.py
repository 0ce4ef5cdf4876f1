"""The metering policy (`imagine_billing.adapters._metering`), driven without httpx."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagine_billing.adapters._metering import DEFAULT_HOLD_EXPIRY, Meter
from imagine_billing.adapters._plan import Plan
from imagine_billing.errors import DuplicateRequest, IdempotencyConflict, UnpricedError
from imagine_billing.ledger import Ledger

FORM = "application/x-www-form-urlencoded"


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    """A SQLite ledger file with 100 tokens."""
    with Ledger.open(tmp_path / "tokens.db") as opened:
        opened.credit(100, key="top-up")
        yield opened


@pytest.fixture
def meter(ledger: Ledger) -> Meter:
    """A meter with the defaults of the transports."""
    return Meter(ledger, None, False, "refuse", DEFAULT_HOLD_EXPIRY, on_uncertain="capture")


def never() -> bool:
    """A body that must not be asked for."""
    raise AssertionError("the body was asked for")


class TestRoutes:
    def test_case_slashes_and_proxy_prefix(self, meter: Meter) -> None:
        """Method and path match case-insensitively, without doubled or trailing slashes,
        from the path's v2 segment on."""
        for method, path in [("POST", "/v2/image/generations"),
                             ("post", "/V2//Image/Generations/"),
                             ("POST", "/imagine/v2/image/generations")]:
            found = meter.operation_of(method, path)
            assert found is not None
            assert "text-to-image" == found.id

    def test_other_paths_pass_through(self, meter: Meter) -> None:
        """A path the table does not list, or another method, is not metered."""
        assert meter.operation_of("GET", "/v2/image/generations") is None
        assert meter.operation_of("POST", "/image/generations") is None
        assert meter.operation_of("GET", "/v2/video/status/1") is None


def begin(meter: Meter, body: bytes, key: str | None = None) -> Plan:
    """Begin a text-to-image request with a urlencoded ``body``."""
    return meter.begin(meter.table.operations["text-to-image"], key=key, content_type=FORM,
                       query=b"", body=body)


class TestPolicy:
    def test_2xx_captures_without_reading_the_body(self, meter: Meter, ledger: Ledger) -> None:
        """A 2xx answer spends the hold; its body is not asked for."""
        plan = begin(meter, b"style=flux-dev")
        assert plan.hold is not None
        assert 85 == ledger.balance().available
        meter.settle(plan, 200, never)
        assert "captured" == ledger.get_hold(plan.hold.id).status
        assert (1, 1) == (meter.stats.metered, meter.stats.captured)

    def test_402_voids_and_notes_drift(self, meter: Meter, ledger: Ledger) -> None:
        """A 402 is never charged and is noted as drift, without reading the body."""
        plan = begin(meter, b"style=anime")
        assert plan.hold is not None
        meter.settle(plan, 402, never)
        assert "voided" == ledger.get_hold(plan.hold.id).status
        assert 100 == ledger.balance().available
        assert (1, 1) == (meter.stats.voided, meter.stats.drift)

    def test_other_error_asks_the_body_for_1101(self, meter: Meter, ledger: Ledger) -> None:
        """Another error status is drift when its body says 1101."""
        plan = begin(meter, b"style=anime")
        meter.settle(plan, 400, lambda: True)
        assert (1, 1) == (meter.stats.voided, meter.stats.drift)

    def test_unpriced_is_refused_and_counted(self, meter: Meter) -> None:
        """An unpriced style is refused before anything is sent."""
        with pytest.raises(UnpricedError):
            begin(meter, b"style=sdxl-1.0")
        assert 1 == meter.stats.refused

    def test_retry_of_a_success_is_a_duplicate(self, meter: Meter) -> None:
        """A key whose call succeeded is refused; another request under it conflicts."""
        meter.settle(begin(meter, b"style=anime", key="k"), 200, never)
        with pytest.raises(DuplicateRequest):
            begin(meter, b"style=anime", key="k")
        with pytest.raises(IdempotencyConflict):
            begin(meter, b"style=realistic", key="k")
        assert (2, 1) == (meter.stats.refused, meter.stats.replayed)

    def test_uncertain_outcome_is_captured_and_noted(self, meter: Meter,
                                                     ledger: Ledger) -> None:
        """An error once sent captures the hold and notes outcome=uncertain."""
        plan = begin(meter, b"style=anime")
        meter.fail(plan, TimeoutError("read"), sent=True)
        notes = list(ledger.entries(tags={"outcome": "uncertain"}))
        assert ["TimeoutError"] == [note.tags["error"] for note in notes]
        assert (1, 1) == (meter.stats.uncertain, meter.stats.captured)


def test_policy_modules_do_not_import_httpx() -> None:
    """The policy modules import (and import each other) without httpx."""
    code = ("import sys; sys.modules['httpx'] = None\n"
            "import imagine_billing.adapters._metering, imagine_billing.adapters._body\n"
            "print(sorted(m for m in sys.modules if m.startswith('imagine_billing.adapters')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert ("['imagine_billing.adapters', 'imagine_billing.adapters._attempts', "
            "'imagine_billing.adapters._body', 'imagine_billing.adapters._metering', "
            "'imagine_billing.adapters._plan', 'imagine_billing.adapters._settling']\n"
            == done.stdout)
