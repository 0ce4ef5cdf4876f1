"""--rate DECIMAL [--currency CODE]: money beside tokens, exact, rounded half to even to the
currency's minor unit (issue 16 item 10, for estimate and price-log)."""

from __future__ import annotations

import json
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

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
        (["--rate", "0.01", "--currency", "A B"], "(got 'A B')"),
        (["--rate", "0.01", "--currency", "U\x1bD"], "(got 'U\\x1bD')"),
    ])
    def test_bad_rates_are_exit_2(self, capsys: pytest.CaptureFixture[str], argv: list[str],
                                  message: str) -> None:
        assert 2 == exit_code(["estimate", "anime", *argv])
        line = one_error_line(capsys.readouterr().err)
        assert message in line
        assert line.isprintable()

    @pytest.mark.parametrize("rate", ["-0", "-0.000"])
    def test_minus_zero_is_a_rate_of_zero(self, rate: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
        assert 0 == exit_code(["estimate", "anime", "--rate", rate])
        out = capsys.readouterr().out
        assert "at 0" in out
        assert "-0" not in out
        assert 0 == exit_code(["estimate", "anime", "--rate", rate, "--json"])
        assert not json.loads(capsys.readouterr().out)["money"]["rate"].startswith("-")


def test_price_log(capsys: pytest.CaptureFixture[str]) -> None:
    log = str(DATA / "usage" / "example.csv")
    assert 0 == main(["price-log", log, "--rate", "0.0125"])
    assert "money: 1.06 USD (85 tokens at 0.0125 USD each" in capsys.readouterr().out
    assert "1.06" == money_of(capsys, ["price-log", log, "--rate", "0.0125"])["amount"]
    assert 0 == main(["price-log", log, "--json"])
    assert "money" not in json.loads(capsys.readouterr().out)


class TestBudgetStatus:
    """budget status --rate: each figure of a budget in money, rounded on its own."""

    def test_text(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """Under the table, a line of money per budget: 1,000 of 2,000 spent at 0.012."""
        db = str(make_ledger(tmp_path))
        assert 0 == main(["budget", "--db", db, "status", "--now", JAN_31, "--rate", "0.012"])
        out = capsys.readouterr().out.splitlines()
        assert "money (at 0.012 USD a token, rounded half to even):" == out[2]
        assert out[3].startswith("  shop: limit 24.00, spent 12.00, held 0.00, "
                                 "remaining 12.00, projected 12.")
        assert out[3].endswith(" USD")

    def test_json(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """"money" holds each figure as a decimal string; a total budget projects nothing."""
        db = str(make_ledger(tmp_path))
        assert 0 == main(["budget", "--db", db, "add", "all", "--limit", "5000", "--period",
                          "total"])
        capsys.readouterr()
        assert 0 == main(["budget", "--db", db, "status", "--now", JAN_31, "--rate", "0.5",
                          "--currency", "JPY", "--json"])
        shop, every = json.loads(capsys.readouterr().out)
        assert {"limit": "1000", "spent": "500", "held": "0", "remaining": "500",
                "currency": "JPY", "rate": "0.5", "rounding": "half-even"} == {
            k: v for k, v in shop["money"].items() if k != "projected"}
        assert Decimal(shop["money"]["projected"]) > 500
        assert (None, "1000") == (every["money"]["projected"], every["money"]["spent"])

    def test_without_rate_no_money(self, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
        db = str(make_ledger(tmp_path))
        assert 0 == main(["budget", "--db", db, "status", "shop", "--now", JAN_31, "--json"])
        assert "money" not in json.loads(capsys.readouterr().out)

    def test_bad_rate(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        db = str(make_ledger(tmp_path))
        assert 2 == exit_code(["budget", "--db", db, "status", "--rate", "0.1",
                               "--currency", "euro"])
        assert "ISO 4217" in one_error_line(capsys.readouterr().err)


class TestForecast:
    """forecast --rate: the balance, the burn and the projections in money."""

    def test_text(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """8,000 tokens, 100 a day, 3,000 over 30 days, at 0.012 a token."""
        db = str(make_ledger(tmp_path))
        assert 0 == main(["forecast", "--db", db, "--now", FEB_1, "--rate", "0.012"])
        out = capsys.readouterr().out
        assert "available        8,000 tokens (96.00 USD) at 2026-02-01 00:00 UTC" in out
        assert "burn             100 tokens/day (1.20 USD/day) over 14 days" in out
        assert "projected spend  3,000 tokens (36.00 USD) over 30 days" in out
        assert "money            at 0.012 USD a token, rounded half to even" in out

    def test_json_of_a_fractional_burn(self, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
        """A burn of 100/3 tokens a day at 0.005 is 0.1666...: 0.17, from the exact
        fraction; the projection over 30 days is 1000 tokens, 5.00."""
        db = str(make_ledger(tmp_path))
        assert 0 == main(["forecast", "--db", db, "--now", "2026-01-13T00:00:00Z",
                          "--window", "3", "--rate", "0.005", "--json"])
        document = json.loads(capsys.readouterr().out)
        assert ("33.333333", "1000") == (document["burn_per_day"],
                                         document["projected_spend"])
        money = document["money"]
        assert ("0.17", "5.00", "49.50") == (money["burn_per_day"], money["projected_spend"],
                                             money["available"])

    def test_without_rate_no_money(self, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
        db = str(make_ledger(tmp_path))
        assert 0 == main(["forecast", "--db", db, "--now", FEB_1])
        assert "USD" not in capsys.readouterr().out


class TestPlan:
    """plan --rate, and plan --db: the ledger's available balance as the budget."""

    def test_money(self, capsys: pytest.CaptureFixture[str]) -> None:
        """32 tokens, 30 of them planned, 2 left, at 0.25 a token."""
        argv = ["plan", "--tokens", "32", "anime:2", "flux-dev", "--rate", "0.25"]
        assert 0 == main(argv)
        assert ("money: 7.50 USD of 8.00 USD, 0.50 USD left (at 0.25 USD a token, rounded "
                "half to even)") in capsys.readouterr().out
        assert {"tokens": "8.00", "total": "7.50", "leftover": "0.50", "currency": "USD",
                "rate": "0.25", "rounding": "half-even"} == money_of(capsys, argv)

    def test_budget_from_the_ledger(self, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
        """8,000 tokens available: 533 flux-dev calls, 5 tokens left."""
        db = str(make_ledger(tmp_path))
        assert 0 == main(["plan", "--db", db, "flux-dev"])
        out = capsys.readouterr().out
        assert "533 whole batches of 15 tokens; 5 of 8000 tokens left" in out
        assert "budget: the 8,000 tokens available in ledger 'main'" in out
        assert 0 == main(["plan", "flux-dev", "--db", db, "--json"])
        document = json.loads(capsys.readouterr().out)
        assert (8000, {"flux-dev": 533}, "main") == (document["tokens"], document["counts"],
                                                     document["ledger"])

    def test_budget_from_the_environment(self, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
        """Without --tokens or --db, $IMAGINE_BILLING_DB is the ledger; --tokens given
        wins over the variable."""
        monkeypatch.setenv("IMAGINE_BILLING_DB", str(make_ledger(tmp_path)))
        assert 0 == main(["plan", "flux-dev", "--json"])
        assert 8000 == json.loads(capsys.readouterr().out)["tokens"]
        assert 0 == main(["plan", "flux-dev", "--tokens", "30", "--json"])
        assert 30 == json.loads(capsys.readouterr().out)["tokens"]

    @pytest.mark.parametrize(("argv", "message"), [
        (["--tokens", "10", "--db", "{db}"], "give --tokens 10 or --db "),
        ([], "give the budget, --tokens N, or a ledger"),
        (["--tokens", "10", "--ledger", "team"], "--ledger team needs --db FILE|URL"),
        (["--db", "{missing}"], "no such file"),
    ])
    def test_exactly_one_budget(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str], argv: list[str],
                                message: str) -> None:
        """Both --tokens and --db, or neither, is one error line and exit 2."""
        monkeypatch.delenv("IMAGINE_BILLING_DB", raising=False)
        db = str(make_ledger(tmp_path))
        words = [w.format(db=db, missing=tmp_path / "none.db") for w in argv]
        assert 2 == exit_code(["plan", "flux-dev", *words])
        assert message in one_error_line(capsys.readouterr().err)


JAN_31 = "2026-01-31T23:00:00Z"
FEB_1 = "2026-02-01T00:00:00Z"


def make_ledger(folder: Path) -> Path:
    """The ledger of the plan/budget/forecast tests (`tests.cli.test_planning_cli`): 10,000
    tokens, 100 a day for 20 days from 2026-01-12, half for the shop, its budget 2,000 a
    month."""
    from tests.cli.test_planning_cli import make_ledger as build

    path = folder / "l.db"
    build(path)
    return path
