"""The public contract of DESIGN.md section 3: every documented name is exported."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import imagine_billing as ib
from imagine_billing import errors

PRICING = [
    "PriceTable",
    "Style",
    "Operation",
    "load_price_table",
    "PriceBook",
    "load_price_book",
    "price_table_schema",
]
ESTIMATING = ["Call", "estimate", "Estimate", "Line", "preflight", "Verdict", "price_usage"]
LEDGER = ["Ledger", "Balance", "Hold", "Entry"]
PLANNING = ["Budget", "budget_status", "forecast", "Forecast", "max_calls", "plan", "Plan",
            "recost"]
UPDATES = ["diff_tables", "TableDiff", "check_update", "Finding", "UpdatePolicy"]
DOCUMENTED = PRICING + ESTIMATING + LEDGER + PLANNING + UPDATES
ERRORS = [
    "BillingError",
    "PriceSchemaError",
    "UnknownStyleError",
    "UnpricedError",
    "InsufficientTokens",
    "BudgetExceeded",
    "IdempotencyConflict",
    "LedgerCorrupted",
    "ApiError",
    "DuplicateRequest",
    "AmbiguousStyleError",
    "BudgetConflict",
    "UnknownBudget",
]


class TestExports:
    """imagine_billing exports what DESIGN.md documents."""

    @pytest.mark.parametrize("name", DOCUMENTED + ERRORS)
    def test_in_all(self, name: str) -> None:
        """The name is in __all__ and importable from the top level."""
        assert name in ib.__all__
        assert getattr(ib, name) is not None

    def test_all_is_sorted_and_resolves(self) -> None:
        """__all__ is sorted and every name in it exists."""
        assert sorted(ib.__all__) == ib.__all__
        missing = [n for n in ib.__all__ if not hasattr(ib, n)]
        assert [] == missing

    @pytest.mark.parametrize("name", ERRORS)
    def test_errors_share_one_root(self, name: str) -> None:
        """Every error derives from BillingError and is the one in imagine_billing.errors."""
        error = getattr(ib, name)
        assert issubclass(error, ib.BillingError)
        assert error is getattr(errors, name)

    @pytest.mark.parametrize("package", ["imagine_billing", "imagine_billing.pricing"])
    def test_the_stub_names_what_the_package_exports(self, package: str) -> None:
        """__init__.pyi (what type checkers read) re-exports exactly the names, from the same
        modules, that __init__.py imports on first use: the two cannot drift apart."""
        module = importlib.import_module(package)
        assert module.__file__ is not None
        stub = ast.parse(Path(module.__file__).with_suffix(".pyi").read_text(encoding="utf-8"))
        in_stub = {(node.module, alias.name) for node in stub.body
                   if isinstance(node, ast.ImportFrom) and node.module != "typing"
                   for alias in node.names if alias.asname == alias.name}
        exported = {(where, name) for where, names in module._EXPORTS.items() for name in names}
        assert exported == in_stub
        assert sorted(name for _, name in exported) == module.__all__
        assert all(getattr(module, name) is getattr(importlib.import_module(where), name)
                   for where, name in exported)

    def test_ledger_methods(self) -> None:
        """The Ledger has every operation DESIGN.md names."""
        for method in ("open", "memory", "credit", "hold", "capture", "void", "debit", "refund",
                       "expire_holds", "balance", "entries", "spend", "verify", "add_budget",
                       "budgets"):
            assert callable(getattr(ib.Ledger, method))

    def test_builtin_bases(self) -> None:
        """Leaves also subclass the builtin they resemble."""
        assert issubclass(ib.PriceSchemaError, ValueError)
        assert issubclass(ib.UnknownStyleError, LookupError)
        assert issubclass(ib.UnpricedError, LookupError)


class TestImportCost:
    """Importing the package and pricing with the bundled table stays light."""

    def test_default_pricing_imports_no_heavy_modules(self) -> None:
        """Neither jsonschema nor sqlite3 is imported to price with the default table."""
        code = (
            "import sys, imagine_billing as ib; ib.load_price_table().cost('flux-dev'); "
            "print(sorted(m for m in ('jsonschema', 'sqlite3', 'decimal', 'httpx') "
            "if m in sys.modules))"
        )
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        assert "[]" == result.stdout.strip()

    def test_nothing_reaches_the_network_at_import(self) -> None:
        """No socket is created while importing and pricing (sockets are disabled)."""
        code = (
            "import socket\n"
            "def refuse(*a, **k):\n    raise AssertionError('network used')\n"
            "socket.socket = refuse\nsocket.create_connection = refuse\n"
            "import imagine_billing as ib\nprint(ib.load_price_table().cost('anime'))\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        assert "5" == result.stdout.strip()
