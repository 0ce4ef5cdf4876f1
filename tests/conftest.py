"""Shared fixtures and the Hypothesis profiles (pick one with HYPOTHESIS_PROFILE=ci|dev)."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

import imagine_billing as ib

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
