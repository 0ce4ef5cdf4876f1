"""Defaults from imagine-billing.toml and [tool.imagine-billing] in pyproject.toml, with
their precedence: option > environment variable > imagine-billing.toml > pyproject.toml >
built-in default."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import imagine_billing as ib
from imagine_billing.cli import main
from tests.helpers import exit_code, one_error_line, write_book


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty current directory, and none of the environment variables set."""
    monkeypatch.chdir(tmp_path)
    for name in ("IMAGINE_BILLING_DB", "IMAGINE_BILLING_TABLE", "IMAGINE_BILLING_BOOK"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def write(folder: Path, name: str, text: str) -> None:
    (folder / name).write_text(text, encoding="utf-8")


def pyproject(folder: Path, settings: str) -> None:
    write(folder, "pyproject.toml", f'[project]\nname = "x"\n\n[tool.imagine-billing]\n{settings}')


def credit(db: str, tokens: int) -> None:
    with ib.Ledger.open(db) as ledger:
        ledger.credit(tokens, key="c")


def available(capsys: pytest.CaptureFixture[str], *argv: str) -> int:
    assert 0 == main(["ledger", "balance", "--json", *argv])
    value: int = json.loads(capsys.readouterr().out)["available"]
    return value


def money(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, str] | None:
    assert 0 == main(["estimate", "imagine-turbo:3", "--json", *argv])
    found: dict[str, str] | None = json.loads(capsys.readouterr().out).get("money")
    return found


def flux_dev(capsys: pytest.CaptureFixture[str], *argv: str) -> int:
    """What a flux-dev call costs now under the prices in force."""
    assert 0 == main(["estimate", "flux-dev", "--json", *argv])
    total: int = json.loads(capsys.readouterr().out)["total"]
    return total


class TestPrecedence:
    """Each key: the option, then the variable, then imagine-billing.toml, then
    pyproject.toml, then the default."""

    def test_db(self, here: Path, monkeypatch: pytest.MonkeyPatch,
                capsys: pytest.CaptureFixture[str]) -> None:
        for name, tokens in (("py.db", 1), ("toml.db", 2), ("env.db", 3), ("option.db", 4)):
            credit(name, tokens)
        pyproject(here, 'db = "py.db"\n')
        assert 1 == available(capsys)
        write(here, "imagine-billing.toml", 'db = "toml.db"\n')
        assert 2 == available(capsys)
        monkeypatch.setenv("IMAGINE_BILLING_DB", "env.db")
        assert 3 == available(capsys)
        assert 4 == available(capsys, "--db", "option.db")

    def test_prices(self, here: Path, monkeypatch: pytest.MonkeyPatch,
                    capsys: pytest.CaptureFixture[str]) -> None:
        """table and book are one setting: imagine-billing.toml's table replaces
        pyproject.toml's book."""
        first, second = write_book(here)
        cheap = ib.load_price_table().with_overrides({"styles": {"flux-dev": {"cost": 9}}},
                                                     version="1.0.1")
        write(here, "cheap.json", cheap.to_json())
        assert 15 == flux_dev(capsys)
        pyproject(here, f'book = ["{Path(second).name}", "{Path(first).name}"]\n')
        assert 20 == flux_dev(capsys)  # the version in force now, 1.1.0
        write(here, "imagine-billing.toml", 'table = "cheap.json"\n')
        assert 9 == flux_dev(capsys)
        monkeypatch.setenv("IMAGINE_BILLING_TABLE", first)
        assert 15 == flux_dev(capsys)
        assert 20 == flux_dev(capsys, "--table", second)

    def test_rate_and_currency(self, here: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """Each key on its own: the currency of the file with the rate of the option."""
        assert money(capsys) is None
        pyproject(here, 'rate = "0.5"\ncurrency = "EUR"\n')
        assert ("1.50", "EUR") == tuple(money(capsys)[k] for k in ("amount", "currency"))
        write(here, "imagine-billing.toml", "rate = 2\n")
        assert ("6.00", "EUR") == tuple(money(capsys)[k] for k in ("amount", "currency"))
        assert ("3", "JPY") == tuple(money(capsys, "--rate", "1", "--currency", "JPY")[k]
                                     for k in ("amount", "currency"))

    def test_a_toml_number_is_read_exactly(self, here: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
        """rate = 0.005 is the decimal 0.005: 3 tokens are 0.015, 0.02 half to even (the
        float 0.005 would give 0.01499... and 0.01)."""
        write(here, "imagine-billing.toml", "rate = 0.005\n")
        assert {"amount": "0.02", "currency": "USD", "rate": "0.005",
                "rounding": "half-even"} == money(capsys)

    def test_plan_from_the_configured_ledger(self, here: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
        credit("tokens.db", 100)
        write(here, "imagine-billing.toml", 'db = "tokens.db"\n')
        assert 0 == main(["plan", "flux-dev", "--json"])
        assert 100 == json.loads(capsys.readouterr().out)["tokens"]

    def test_read_only_when_needed(self, here: Path, capsys: pytest.CaptureFixture[str]
                                   ) -> None:
        """Options given for every key it would set: the file is not read at all."""
        credit("tokens.db", 7)
        write(here, "imagine-billing.toml", "not toml at all\n")
        assert 7 == available(capsys, "--db", "tokens.db")

    def test_without_our_table_pyproject_is_ignored(self, here: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
        write(here, "pyproject.toml", '[project]\nname = "x"\n[tool.other]\ndb = 3\n')
        assert 15 == flux_dev(capsys)


class TestBadConfiguration:
    """One error line naming the file and the key, exit 2."""

    @pytest.mark.parametrize(("name", "text", "message"), [
        ("imagine-billing.toml", "dbs = 'x.db'\n",
         "imagine-billing.toml: dbs: unknown key (known: book, currency, db, ledger, rate, "
         "table)"),
        ("imagine-billing.toml", "db = \n", "imagine-billing.toml: not valid TOML: "),
        ("imagine-billing.toml", "db = 5\n",
         "imagine-billing.toml: db: expected a path (text, not empty) (got 5)"),
        ("imagine-billing.toml", "table = 'a.json'\nbook = 'b.json'\n",
         "imagine-billing.toml: table and book: give one of them"),
        ("imagine-billing.toml", "book = []\n",
         "imagine-billing.toml: book: expected a path, or a list of paths"),
        ("imagine-billing.toml", "rate = -1\n",
         "imagine-billing.toml: rate: expected the price of one token, a decimal number >= 0 "
         "such as 0.012 (got -1)"),
        ("imagine-billing.toml", "rate = 'cheap'\n", 'rate: expected the price of one token'),
        ("imagine-billing.toml", "rate = nan\n", "rate: expected the price of one token"),
        ("imagine-billing.toml", "rate = 1\ncurrency = 'euro'\n",
         "imagine-billing.toml: currency: expected an ISO 4217 code such as \"USD\" "
         "(got \"euro\")"),
        ("pyproject.toml", "[tool.imagine-billing]\nrate = true\n",
         "pyproject.toml: tool.imagine-billing.rate: expected the price of one token"),
        ("pyproject.toml", "[tool]\nimagine-billing = 'x'\n",
         "pyproject.toml: tool.imagine-billing: expected a table of settings"),
        ("pyproject.toml", "[tool.imagine-billing]\nname = 'team'\n",
         "pyproject.toml: tool.imagine-billing.name: unknown key (known: book, currency, "
         "db, ledger, rate, table)"),
        ("imagine-billing.toml", "ledger = 5\n",
         'imagine-billing.toml: ledger: expected the name of a ledger (text, not empty), such '
         'as "team-a" (got 5)'),
        ("imagine-billing.toml", 'ledger = "a\\u2028b"\n',
         "imagine-billing.toml: ledger: expected the name of a ledger"),
    ])
    def test_one_line(self, here: Path, capsys: pytest.CaptureFixture[str], name: str,
                      text: str, message: str) -> None:
        write(here, name, text)
        assert 2 == exit_code(["estimate", "anime"])
        assert message in one_error_line(capsys.readouterr().err)

    def test_rate_out_of_range_names_the_key(self, here: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
        write(here, "imagine-billing.toml", "rate = 1e99\n")
        assert 2 == exit_code(["estimate", "anime"])
        assert "imagine-billing.toml: rate = 1E+99 (currency USD): price must be between" in \
            one_error_line(capsys.readouterr().err)

    def test_no_db_anywhere(self, here: Path, capsys: pytest.CaptureFixture[str]) -> None:
        assert 2 == exit_code(["ledger", "balance"])
        assert ("--db FILE is required (or set IMAGINE_BILLING_DB, or db in "
                "imagine-billing.toml)") in one_error_line(capsys.readouterr().err)

    def test_json_error(self, here: Path, capsys: pytest.CaptureFixture[str]) -> None:
        write(here, "imagine-billing.toml", "colour = 'red'\n")
        assert 2 == exit_code(["estimate", "anime", "--json"])
        document = json.loads(capsys.readouterr().err)
        assert "imagine-billing.toml: colour: unknown key" in document["error"]
