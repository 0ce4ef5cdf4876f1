"""Price tables: the model, loading and validation, books of versions, overrides."""

from imagine_billing.pricing.book import PriceBook, load_price_book
from imagine_billing.pricing.loading import load_price_table
from imagine_billing.pricing.model import Operation, PriceTable, Style
from imagine_billing.pricing.schema import price_table_schema

__all__ = [
    "Operation",
    "PriceBook",
    "PriceTable",
    "Style",
    "load_price_book",
    "load_price_table",
    "price_table_schema",
]
