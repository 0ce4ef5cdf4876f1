"""Price tables: the model, loading and validation, books of versions, overrides, updates."""

from typing import TYPE_CHECKING, Any

from imagine_billing.pricing.book import PriceBook, load_price_book
from imagine_billing.pricing.loading import load_price_table
from imagine_billing.pricing.model import Operation, PriceTable, Style
from imagine_billing.pricing.schema import price_table_schema

if TYPE_CHECKING:
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

# The update checks (diffs, policies) are a CI tool, not needed to price a call: imported on
# first use (PEP 562) so that `import imagine_billing` does not pay for their classes.
_UPDATES = frozenset({
    "Finding", "MetadataChange", "Repricing", "StatusChange", "TableDiff", "UpdatePolicy",
    "check_book", "check_update", "diff_tables", "load_policy",
})

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
    if name not in _UPDATES:
        raise AttributeError(f"module 'imagine_billing.pricing' has no attribute {name!r}")
    from imagine_billing.pricing import updates

    value = getattr(updates, name)
    globals()[name] = value
    return value
