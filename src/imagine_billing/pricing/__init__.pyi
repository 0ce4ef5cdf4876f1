"""The names `imagine_billing.pricing` exports, for type checkers: the package imports each
one on first use (`__init__.py`, PEP 562); a test keeps the two in step."""

from typing import Any

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

__all__: list[str]

def __getattr__(name: str) -> Any: ...
def __dir__() -> list[str]: ...
