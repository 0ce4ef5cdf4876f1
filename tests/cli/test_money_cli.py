"""--rate DECIMAL [--currency CODE]: money beside tokens, exact, rounded half to even to the
currency's minor unit (issue 16 item 10, for estimate and price-log)."""

from __future__ import annotations

import json
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imagine_billing.cli import main
from tests.helpers import DATA, exit_code, one_error_line


def money_of(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict[str, str]:
    assert 0 == main([*argv, "--json"])
    money: dict[str, str] = json.loads(capsys.readouterr().out)["money"]
    return money


def half_even(tokens: int, rate: str, digits: int) -> Decimal:
    """The reference: the exact product as a fraction, rounded half to even (Python's
    round on a Fraction), with ``digits`` decimals."""
    exact = Fraction(tokens) * Fraction(Decimal(rate))
    return Decimal(round(exact * 10**digits)).scaleb(-digits)


class TestEstimate:
    def test_text_and_json(self, capsys: pytest.CaptureFixture[str]) -> None:
        assert 0 == main(["estimate", "flux-dev:4", "anime", "--rate", "0.012"])
        assert "money: 0.78 USD (65 tokens at 0.012 USD each, rounded half to even)" in \
            capsys.readouterr().out
        assert {"amount": "0.78", "currency": "USD", "rate": "0.012",
                "rounding": "half-even"} == money_of(
            capsys, ["estimate", "flux-dev:4", "anime", "--rate", "0.012"])

    @pytest.mark.parametrize(("calls", "rate", "currency", "amount"), [
        (["imagine-turbo"], "0.005", "USD", "0.00"),     # 0.005: half to even, down
        (["imagine-turbo:3"], "0.005", "USD", "0.02"),   # 0.015: half to even, up
        (["flux-dev:4", "anime"], "0.012", "JPY", "1"),  # no minor unit
        (["flux-dev:4", "anime"], "0.012", "KWD", "0.780"),  # three
    ])
    def test_rounding(self, capsys: pytest.CaptureFixture[str], calls: list[str], rate: str,
                      currency: str, amount: str) -> None:
        assert amount == money_of(capsys, ["estimate", *calls, "--rate", rate,
                                           "--currency", currency])["amount"]

    @given(st.integers(1, 10_000), st.decimals(min_value=0, max_value=10, places=6,
                                               allow_nan=False))
    def test_exact_for_any_rate(self, count: int, rate: Decimal) -> None:
        """The amount is the exact product rounded half to even, never a float's."""
        import contextlib
        import io

        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert 0 == main(["estimate", f"imagine-turbo:{count}", "--rate", str(rate),
                              "--json"])
        money = json.loads(out.getvalue())["money"]
        assert half_even(count, str(rate), 2) == Decimal(money["amount"])

    @pytest.mark.parametrize(("argv", "message"), [
        (["--rate", "abc"], "expected the price of one token"),
        (["--rate", "-1"], "expected a finite decimal number >= 0"),
        (["--rate", "nan"], "expected a finite decimal number >= 0"),
        (["--rate", "1e99"], "price must be between"),
        (["--rate", "0.01", "--currency", "usd"], "ISO 4217"),
    ])
    def test_bad_rates_are_exit_2(self, capsys: pytest.CaptureFixture[str], argv: list[str],
                                  message: str) -> None:
        assert 2 == exit_code(["estimate", "anime", *argv])
        assert message in one_error_line(capsys.readouterr().err)


def test_price_log(capsys: pytest.CaptureFixture[str]) -> None:
    log = str(DATA / "usage" / "example.csv")
    assert 0 == main(["price-log", log, "--rate", "0.0125"])
    assert "money: 1.06 USD (85 tokens at 0.0125 USD each" in capsys.readouterr().out
    assert "1.06" == money_of(capsys, ["price-log", log, "--rate", "0.0125"])["amount"]
    assert 0 == main(["price-log", log, "--json"])
    assert "money" not in json.loads(capsys.readouterr().out)
