"""Price tables: the model, loading and validation, books of versions, overrides, updates."""

from typing import TYPE_CHECKING, Any

from imagine_billing.pricing.loading import load_price_table
from imagine_billing.pricing.model import Operation, PriceTable, Style

if TYPE_CHECKING:
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

# Imported on first use (PEP 562): pricing a call needs only the model and the loader, so
# books, the schema and the update checks (a CI tool) are not paid for until used.
_LAZY = {
    "PriceBook": "book", "load_price_book": "book", "price_table_schema": "schema",
    **dict.fromkeys(
        ("Finding", "MetadataChange", "Repricing", "StatusChange", "TableDiff", "UpdatePolicy",
         "check_book", "check_update", "diff_tables", "load_policy"),
        "updates",
    ),
}

__all__ = [
    "Finding",
    "MetadataChange",
    "Operation",
    "PriceBook",
    "PriceTable",
    "Repricing",
    "StatusChange",
    "Style",
    "TableDiff",
    "UpdatePolicy",
    "check_book",
    "check_update",
    "diff_tables",
    "load_policy",
    "load_price_book",
    "load_price_table",
    "price_table_schema",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'imagine_billing.pricing' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"imagine_billing.pricing.{module}"), name)
    globals()[name] = value
    return value
