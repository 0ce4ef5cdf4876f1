"""imagine-billing: pre-flight cost checks, token ledgers and budgets for the Imagine API.

Offline and exact: integer tokens, immutable versioned price tables, `Decimal` for money.
"""

from imagine_billing.errors import (
    ApiError,
    BadRecordError,
    BillingError,
    BudgetExceeded,
    IdempotencyConflict,
    InsufficientTokens,
    LedgerCorrupted,
    NoPriceTableError,
    PolicyError,
    PriceSchemaError,
    PriceSourceError,
    Problem,
    UnknownEntry,
    UnknownStyleError,
    UnpricedError,
)
from imagine_billing.pricing import (
    Operation,
    PriceBook,
    PriceTable,
    Style,
    load_price_book,
    load_price_table,
    price_table_schema,
)

__all__ = [
    "ApiError",
    "BadRecordError",
    "BillingError",
    "BudgetExceeded",
    "IdempotencyConflict",
    "InsufficientTokens",
    "LedgerCorrupted",
    "NoPriceTableError",
    "Operation",
    "PolicyError",
    "PriceBook",
    "PriceSchemaError",
    "PriceSourceError",
    "PriceTable",
    "Problem",
    "Style",
    "UnknownEntry",
    "UnknownStyleError",
    "UnpricedError",
    "load_price_book",
    "load_price_table",
    "price_table_schema",
]
