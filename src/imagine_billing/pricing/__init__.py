"""Price tables: the model, loading and validation, books of versions, overrides, updates."""

from imagine_billing._lazy import attach as _attach

# Each public name once, imported on first use (PEP 562): pricing a call needs only the model
# and the loader, so books, the schema and the update checks (a CI tool) are not paid for
# until used. Type checkers read the same names from __init__.pyi.
_EXPORTS = {
    "imagine_billing.pricing.book": ("PriceBook", "load_price_book"),
    "imagine_billing.pricing.loading": ("load_price_table",),
    "imagine_billing.pricing.model": ("Operation", "PriceTable", "Style"),
    "imagine_billing.pricing.schema": ("price_table_schema",),
    "imagine_billing.pricing.updates": (
        "Finding", "MetadataChange", "Repricing", "StatusChange", "TableDiff", "UpdatePolicy",
        "check_book", "check_update", "diff_tables", "load_policy",
    ),
}

__getattr__, __dir__, __all__ = _attach(__name__, _EXPORTS)
