"""The errors: each survives pickle and deepcopy whole (type, message, attributes)."""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable
from typing import Any

import pytest

from imagine_billing import errors

PROBLEM = errors.Problem("/styles/flux-dev/cost", "must be an integer >= 0 (got 1.5)",
                         "prices.json")

EXAMPLES: dict[str, Callable[[], errors.BillingError]] = {
    "AmbiguousStyleError": lambda: errors.AmbiguousStyleError(["imagine-turbo", "flux-dev"]),
    "AmountTooLarge": lambda: errors.AmountTooLarge("capture", 3, 20, 15),
    "ApiError": lambda: errors.ApiError(402, 1101, "PaymentRequired", "Not enough tokens"),
    "BadRecordError": lambda: errors.BadRecordError("usage.csv", 3, "bad-count",
                                                    "count must be a whole number >= 1"),
    "BadTagError": lambda: errors.BadTagError("a\tb", "x", "name", "\t"),
    "BillingError": lambda: errors.BillingError("something went wrong"),
    "BudgetConflict": lambda: errors.BudgetConflict(
        "shop", "'shop': 2,000 tokens per month (project=shop; hard)"),
    "BudgetExceeded": lambda: errors.BudgetExceeded("daily", 15, 10),
    "DuplicateRequest": lambda: errors.DuplicateRequest("req-1", in_flight=False, entry=7,
                                                        tokens=15),
    "HoldClosed": lambda: errors.HoldClosed(4, "captured"),
    "IdempotencyConflict": lambda: errors.IdempotencyConflict("c1", "credit of 5, not 6"),
    "InsufficientTokens": lambda: errors.InsufficientTokens(64, 63),
    "LedgerCorrupted": lambda: errors.LedgerCorrupted(12, "its hash does not match"),
    "LedgerStoreError": lambda: errors.LedgerStoreError("l.db", "not a ledger file",
                                                        damaged=True),
    "NoPriceTableError": lambda: errors.NoPriceTableError("2020-01-01 00:00:00+00:00",
                                                          "2025-07-01 00:00:00+00:00"),
    "OutOfOrder": lambda: errors.OutOfOrder("2026-11-01T00:00:00Z", 7, "debit",
                                            "2026-11-20T09:30:00Z"),
    "PolicyError": lambda: errors.PolicyError("unknown rule 'semver'"),
    "PriceSchemaError": lambda: errors.PriceSchemaError(
        [PROBLEM, errors.Problem("/version", "must be MAJOR.MINOR.PATCH (got '1')",
                                 "prices.json")], "prices.json"),
    "PriceSourceError": lambda: errors.PriceSourceError(
        [errors.Problem("", "not JSON: Expecting value (line 1)")], "prices.json"),
    "UnknownBudget": lambda: errors.UnknownBudget("nope", ["daily", "shop"]),
    "UnknownEntry": lambda: errors.UnknownEntry("h1", "hold"),
    "UnknownStyleError": lambda: errors.UnknownStyleError(
        "flux-dv", ["anime", "flux-dev", "imagine-turbo"], version="1.0.0"),
    "UnpricedError": lambda: errors.UnpricedError("sdxl-1.0", version="1.0.0"),
}


def public(error: BaseException) -> dict[str, Any]:
    """The attributes a user reads: instance fields and properties (OSError's
    ``characters_written`` raises when unset: left out), not methods or dunders."""
    found = {}
    for name in dir(error):
        if name.startswith("_"):
            continue
        try:
            value = getattr(error, name)
        except AttributeError:
            continue
        if not callable(value):
            found[name] = value
    return found


class TestEveryErrorHasAnExample:
    """The examples below cover every exception of imagine_billing.errors."""

    def test_all_covered(self) -> None:
        """Each exception class in the module has an example built with realistic values."""
        classes = {name for name in errors.__all__
                   if isinstance(getattr(errors, name), type)
                   and issubclass(getattr(errors, name), BaseException)}
        assert classes == set(EXAMPLES)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
@pytest.mark.parametrize("again", [lambda e: pickle.loads(pickle.dumps(e)), copy.deepcopy],
                         ids=["pickle", "deepcopy"])
class TestCopies:
    """A copy of an error (pickled, deep-copied) is the same error."""

    def test_same_type_message_and_attributes(
            self, name: str, again: Callable[[errors.BillingError], errors.BillingError]) -> None:
        """Type, str(), args and every public attribute survive."""
        error = EXAMPLES[name]()
        copied = again(error)
        assert type(error) is type(copied)
        assert str(error) == str(copied)
        assert error.args == copied.args
        assert public(error) == public(copied)

    def test_copy_is_raised_and_caught_alike(
            self, name: str, again: Callable[[errors.BillingError], errors.BillingError]) -> None:
        """The copy is caught as a BillingError and as the builtin its class resembles."""
        error = EXAMPLES[name]()
        with pytest.raises(type(error)) as caught:
            raise again(error)
        assert isinstance(caught.value, errors.BillingError)
        assert str(error) == str(caught.value)


class TestSubclassesCallTheirParent:
    """BudgetConflict and UnknownBudget are built through their parents' constructors."""

    def test_budget_conflict(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """BudgetConflict runs IdempotencyConflict.__init__ (its key is the budget's name)."""
        seen: list[tuple[object, ...]] = []
        original = errors.IdempotencyConflict.__init__

        def spy(self: errors.IdempotencyConflict, *args: Any) -> None:
            seen.append(args)
            original(self, *args)

        monkeypatch.setattr(errors.IdempotencyConflict, "__init__", spy)
        error = errors.BudgetConflict("shop", "2,000 tokens")
        assert [("shop", "2,000 tokens")] == seen
        assert ("shop", "shop", "2,000 tokens") == (error.key, error.name, error.existing)
        assert ("a budget named 'shop' already exists with other settings: 2,000 tokens"
                == str(error))

    def test_unknown_budget(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """UnknownBudget runs UnknownEntry.__init__ (ref the name, kind "budget")."""
        seen: list[tuple[object, ...]] = []
        original = errors.UnknownEntry.__init__

        def spy(self: errors.UnknownEntry, *args: Any) -> None:
            seen.append(args)
            original(self, *args)

        monkeypatch.setattr(errors.UnknownEntry, "__init__", spy)
        error = errors.UnknownBudget("nope", ["a", "b"])
        assert [("nope", "budget")] == seen
        assert ("nope", "budget", ("a", "b")) == (error.ref, error.kind, error.known)
        assert "no budget named 'nope' (budgets: a, b)" == str(error)
        assert "no budget named 'nope' (the ledger has none)" == str(errors.UnknownBudget("nope"))
