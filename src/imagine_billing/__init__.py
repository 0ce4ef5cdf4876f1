"""imagine-billing: pre-flight cost checks, token ledgers and budgets for the Imagine API.

Offline and exact: integer tokens, immutable versioned price tables, `Decimal` for money.
"""

from imagine_billing._lazy import attach as _attach

# Every public name, once, under the module that defines it. Each is imported on first use
# (PEP 562), so that `import imagine_billing` and pricing with a table load only what that
# needs (no sqlite3, no jsonschema). Type checkers read the same names from __init__.pyi.
_EXPORTS = {
    "imagine_billing.adapters.webhook": (
        "Delivery", "deliver_alerts",
    ),
    "imagine_billing.errors": (
        "AmbiguousStyleError", "AmountTooLarge", "ApiError", "BadRecordError", "BadTagError",
        "BillingError", "BudgetConflict", "BudgetExceeded", "DuplicateRequest", "HoldClosed",
        "IdempotencyConflict", "InsufficientTokens", "LedgerCorrupted", "LedgerStoreError",
        "NoPriceTableError", "OutOfOrder", "PolicyError", "PriceSchemaError",
        "PriceSourceError", "Problem", "UnknownBudget", "UnknownEntry", "UnknownStyleError",
        "UnpricedError",
    ),
    "imagine_billing.estimator": (
        "Call", "Estimate", "Line", "TokenRate", "Verdict", "estimate", "load_calls",
        "preflight",
    ),
    "imagine_billing.ledger": (
        "AsyncLedger", "Balance", "Entry", "Hold", "Ledger",
    ),
    "imagine_billing.planner": (
        "Alert", "Budget", "BudgetStatus", "Forecast", "Plan", "StyleImpact", "WorkloadImpact",
        "budget_status", "forecast", "max_calls", "plan", "recost",
    ),
    "imagine_billing.planner.alerting": (
        "evaluate_alerts",
    ),
    "imagine_billing.planner.history": (
        "UsageImport", "import_usage",
    ),
    "imagine_billing.planner.reconcile": (
        "Observation", "Reconciliation", "reconcile",
    ),
    "imagine_billing.pricing.book": (
        "PriceBook", "load_price_book",
    ),
    "imagine_billing.pricing.loading": (
        "load_price_table",
    ),
    "imagine_billing.pricing.model": (
        "Operation", "PriceTable", "Style",
    ),
    "imagine_billing.pricing.schema": (
        "price_table_schema",
    ),
    "imagine_billing.pricing.updates": (
        "Finding", "MetadataChange", "Repricing", "StatusChange", "TableDiff", "UpdatePolicy",
        "check_book", "check_update", "diff_tables", "load_policy",
    ),
    "imagine_billing.usage": (
        "ParquetLog", "UsageLog", "UsageTotals", "price_logs", "price_usage", "read_usage",
    ),
}
__getattr__, __dir__, __all__ = _attach(__name__, _EXPORTS)
