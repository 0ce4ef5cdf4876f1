"""The names `imagine_billing` exports, for type checkers: the module itself imports each
one on first use (`__init__.py`, PEP 562); a test keeps the two in step."""

from typing import Any

from imagine_billing.adapters.webhook import (
    Delivery as Delivery,
    deliver_alerts as deliver_alerts,
)
from imagine_billing.errors import (
    AmbiguousStyleError as AmbiguousStyleError,
    AmountTooLarge as AmountTooLarge,
    ApiError as ApiError,
    BadRecordError as BadRecordError,
    BadTagError as BadTagError,
    BillingError as BillingError,
    BudgetConflict as BudgetConflict,
    BudgetExceeded as BudgetExceeded,
    DuplicateRequest as DuplicateRequest,
    HoldClosed as HoldClosed,
    IdempotencyConflict as IdempotencyConflict,
    InsufficientTokens as InsufficientTokens,
    LedgerCorrupted as LedgerCorrupted,
    LedgerStoreError as LedgerStoreError,
    NoPriceTableError as NoPriceTableError,
    OutOfOrder as OutOfOrder,
    PolicyError as PolicyError,
    PriceSchemaError as PriceSchemaError,
    PriceSourceError as PriceSourceError,
    Problem as Problem,
    UnknownBudget as UnknownBudget,
    UnknownEntry as UnknownEntry,
    UnknownStyleError as UnknownStyleError,
    UnpricedError as UnpricedError,
)
from imagine_billing.estimator import (
    Call as Call,
    Estimate as Estimate,
    Line as Line,
    TokenRate as TokenRate,
    Verdict as Verdict,
    estimate as estimate,
    load_calls as load_calls,
    preflight as preflight,
)
from imagine_billing.ledger import (
    AsyncLedger as AsyncLedger,
    Balance as Balance,
    Entry as Entry,
    Hold as Hold,
    Ledger as Ledger,
)
from imagine_billing.planner import (
    Alert as Alert,
    Budget as Budget,
    BudgetStatus as BudgetStatus,
    Forecast as Forecast,
    Plan as Plan,
    StyleImpact as StyleImpact,
    WorkloadImpact as WorkloadImpact,
    budget_status as budget_status,
    forecast as forecast,
    max_calls as max_calls,
    plan as plan,
    recost as recost,
)
from imagine_billing.planner.alerting import (
    evaluate_alerts as evaluate_alerts,
)
from imagine_billing.planner.history import (
    UsageImport as UsageImport,
    import_usage as import_usage,
)
from imagine_billing.planner.reconcile import (
    Observation as Observation,
    Reconciliation as Reconciliation,
    reconcile as reconcile,
)
from imagine_billing.pricing.book import (
    PriceBook as PriceBook,
    load_price_book as load_price_book,
)
from imagine_billing.pricing.loading import (
    load_price_table as load_price_table,
)
from imagine_billing.pricing.model import (
    Operation as Operation,
    PriceTable as PriceTable,
    Style as Style,
)
from imagine_billing.pricing.schema import (
    price_table_schema as price_table_schema,
)
from imagine_billing.pricing.updates import (
    Finding as Finding,
    MetadataChange as MetadataChange,
    Repricing as Repricing,
    StatusChange as StatusChange,
    TableDiff as TableDiff,
    UpdatePolicy as UpdatePolicy,
    check_book as check_book,
    check_update as check_update,
    diff_tables as diff_tables,
    load_policy as load_policy,
)
from imagine_billing.usage import (
    ParquetLog as ParquetLog,
    UsageLog as UsageLog,
    UsageTotals as UsageTotals,
    price_logs as price_logs,
    price_usage as price_usage,
    read_usage as read_usage,
)

__all__: list[str]

def __getattr__(name: str) -> Any: ...
def __dir__() -> list[str]: ...
