"""imagine-billing: pre-flight cost checks, token ledgers and budgets for the Imagine API.

Offline and exact: integer tokens, immutable versioned price tables, `Decimal` for money.
"""

from typing import TYPE_CHECKING, Any

from imagine_billing.errors import (
    AmbiguousStyleError,
    AmountTooLarge,
    ApiError,
    BadRecordError,
    BadTagError,
    BillingError,
    BudgetConflict,
    BudgetExceeded,
    DuplicateRequest,
    HoldClosed,
    IdempotencyConflict,
    InsufficientTokens,
    LedgerCorrupted,
    LedgerStoreError,
    NoPriceTableError,
    OutOfOrder,
    PolicyError,
    PriceSchemaError,
    PriceSourceError,
    Problem,
    UnknownBudget,
    UnknownEntry,
    UnknownStyleError,
    UnpricedError,
)
from imagine_billing.pricing.loading import load_price_table
from imagine_billing.pricing.model import Operation, PriceTable, Style

if TYPE_CHECKING:
    from imagine_billing.adapters.webhook import Delivery, deliver_alerts
    from imagine_billing.estimator import (
        Call,
        Estimate,
        Line,
        TokenRate,
        Verdict,
        estimate,
        load_calls,
        preflight,
    )
    from imagine_billing.ledger import AsyncLedger, Balance, Entry, Hold, Ledger
    from imagine_billing.planner import (
        Alert,
        Budget,
        BudgetStatus,
        Forecast,
        Plan,
        StyleImpact,
        WorkloadImpact,
        budget_status,
        forecast,
        max_calls,
        plan,
        recost,
    )
    from imagine_billing.planner.alerting import evaluate_alerts
    from imagine_billing.planner.history import UsageImport, import_usage
    from imagine_billing.planner.reconcile import Observation, Reconciliation, reconcile
    from imagine_billing.pricing.book import PriceBook, load_price_book
    from imagine_billing.pricing.schema import price_table_schema
    from imagine_billing.pricing.updates import (
        Finding,
        MetadataChange,
        Repricing,
        StatusChange,
        TableDiff,
        UpdatePolicy,
        check_book,
        check_update,
        diff_tables,
        load_policy,
    )
    from imagine_billing.usage import (
        ParquetLog,
        UsageLog,
        UsageTotals,
        price_logs,
        price_usage,
        read_usage,
    )

# Names imported on first use (PEP 562), so that `import imagine_billing` and pricing with a
# table load only what that needs (no sqlite3, no jsonschema): name -> its module.
_LAZY = {
    "Call": "imagine_billing.estimator",
    "Estimate": "imagine_billing.estimator",
    "Line": "imagine_billing.estimator",
    "PriceBook": "imagine_billing.pricing.book",
    "TokenRate": "imagine_billing.estimator",
    "Verdict": "imagine_billing.estimator",
    "estimate": "imagine_billing.estimator",
    "load_calls": "imagine_billing.estimator",
    "load_price_book": "imagine_billing.pricing.book",
    "preflight": "imagine_billing.estimator",
    "price_table_schema": "imagine_billing.pricing.schema",
    "Alert": "imagine_billing.planner",
    "Delivery": "imagine_billing.adapters.webhook",
    "Observation": "imagine_billing.planner.reconcile",
    "Reconciliation": "imagine_billing.planner.reconcile",
    "deliver_alerts": "imagine_billing.adapters.webhook",
    "evaluate_alerts": "imagine_billing.planner.alerting",
    "reconcile": "imagine_billing.planner.reconcile",
    "UsageImport": "imagine_billing.planner.history",
    "import_usage": "imagine_billing.planner.history",
    "AsyncLedger": "imagine_billing.ledger",
    "Balance": "imagine_billing.ledger",
    "Budget": "imagine_billing.planner",
    "BudgetStatus": "imagine_billing.planner",
    "Entry": "imagine_billing.ledger",
    "Finding": "imagine_billing.pricing.updates",
    "Forecast": "imagine_billing.planner",
    "Hold": "imagine_billing.ledger",
    "Ledger": "imagine_billing.ledger",
    "MetadataChange": "imagine_billing.pricing.updates",
    "Plan": "imagine_billing.planner",
    "Repricing": "imagine_billing.pricing.updates",
    "StatusChange": "imagine_billing.pricing.updates",
    "StyleImpact": "imagine_billing.planner",
    "TableDiff": "imagine_billing.pricing.updates",
    "UpdatePolicy": "imagine_billing.pricing.updates",
    "ParquetLog": "imagine_billing.usage",
    "UsageLog": "imagine_billing.usage",
    "UsageTotals": "imagine_billing.usage",
    "WorkloadImpact": "imagine_billing.planner",
    "budget_status": "imagine_billing.planner",
    "check_book": "imagine_billing.pricing.updates",
    "check_update": "imagine_billing.pricing.updates",
    "diff_tables": "imagine_billing.pricing.updates",
    "forecast": "imagine_billing.planner",
    "load_policy": "imagine_billing.pricing.updates",
    "max_calls": "imagine_billing.planner",
    "plan": "imagine_billing.planner",
    "price_logs": "imagine_billing.usage",
    "price_usage": "imagine_billing.usage",
    "read_usage": "imagine_billing.usage",
    "recost": "imagine_billing.planner",
}

__all__ = [
    "Alert",
    "AmbiguousStyleError",
    "AmountTooLarge",
    "ApiError",
    "AsyncLedger",
    "BadRecordError",
    "BadTagError",
    "Balance",
    "BillingError",
    "Budget",
    "BudgetConflict",
    "BudgetExceeded",
    "BudgetStatus",
    "Call",
    "Delivery",
    "DuplicateRequest",
    "Entry",
    "Estimate",
    "Finding",
    "Forecast",
    "Hold",
    "HoldClosed",
    "IdempotencyConflict",
    "InsufficientTokens",
    "Ledger",
    "LedgerCorrupted",
    "LedgerStoreError",
    "Line",
    "MetadataChange",
    "NoPriceTableError",
    "Observation",
    "Operation",
    "OutOfOrder",
    "ParquetLog",
    "Plan",
    "PolicyError",
    "PriceBook",
    "PriceSchemaError",
    "PriceSourceError",
    "PriceTable",
    "Problem",
    "Reconciliation",
    "Repricing",
    "StatusChange",
    "Style",
    "StyleImpact",
    "TableDiff",
    "TokenRate",
    "UnknownBudget",
    "UnknownEntry",
    "UnknownStyleError",
    "UnpricedError",
    "UpdatePolicy",
    "UsageImport",
    "UsageLog",
    "UsageTotals",
    "Verdict",
    "WorkloadImpact",
    "budget_status",
    "check_book",
    "check_update",
    "deliver_alerts",
    "diff_tables",
    "estimate",
    "evaluate_alerts",
    "forecast",
    "import_usage",
    "load_calls",
    "load_policy",
    "load_price_book",
    "load_price_table",
    "max_calls",
    "plan",
    "preflight",
    "price_logs",
    "price_table_schema",
    "price_usage",
    "read_usage",
    "reconcile",
    "recost",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'imagine_billing' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
