"""Shared fixtures and the Hypothesis profiles (pick one with HYPOTHESIS_PROFILE=ci|dev)."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, settings

import imagine_billing as ib

if TYPE_CHECKING:
    from tests.pgserver import Server

settings.register_profile(
    "ci", max_examples=400, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=60, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.fixture
def table() -> ib.PriceTable:
    """The bundled default table."""
    return ib.load_price_table()


def under_ci() -> bool:
    """Whether the tests run under CI, where no test may skip for want of a server."""
    return bool(os.environ.get("CI")) or os.environ.get("HYPOTHESIS_PROFILE") == "ci"


def no_server(reason: str) -> None:
    """Skip a PostgreSQL test that cannot get a server; under CI, fail it instead."""
    if under_ci():
        pytest.fail(f"PostgreSQL tests must run under CI, but {reason}", pytrace=False)
    pytest.skip(reason)


def throwaway_server() -> Server:
    """A PostgreSQL server of the test's own, started (`tests.pgserver`; stop it after);
    where none can be started, the test is skipped, or under CI failed (`no_server`)."""
    from tests.pgserver import Server

    try:
        return Server().start()
    except (OSError, RuntimeError, subprocess.SubprocessError) as error:
        no_server(f"no PostgreSQL server could be started ({error})")
        raise  # not reached: no_server raises


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A PostgreSQL server's URL: ``$IMAGINE_BILLING_TEST_PG`` if set, else a throwaway
    server started for the session (`tests.pgserver`), stopped and removed at its end."""
    given = os.environ.get("IMAGINE_BILLING_TEST_PG")
    if given:
        yield given
        return
    server = throwaway_server()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def pg_name(request: pytest.FixtureRequest) -> str:
    """A ledger name of this test's own, so that tests sharing the database never meet."""
    return f"t-{uuid.uuid4().hex[:12]}-{request.node.name[:80]}"
