"""Pricing usage logs: token totals by style and by UTC day, in one streaming pass.

`price_usage` takes ``(style, count, timestamp)`` records, any number of them, and prices
each by the table of a `PriceBook` in force at its timestamp. Memory does not grow with the
number of records: calls are summed per (UTC day, table version, style) and multiplied by
the unit costs at the end (a cost is linear in the count). `read_usage` reads such records
from a CSV file (header ``timestamp,style,count``, an ``operation`` column optional) or a
JSON-lines file. A bad record is an error naming the file and line; with ``skip_bad`` it is
counted by reason instead. Nothing is ever dropped silently.

`price_logs` prices several logs with the python engine (those two) or in DuckDB (extra
``bulk``), for the same figures.

Parts: `_pricing` (the totals), `_readers` (CSV and JSON lines), `_parquet` (Parquet),
`_logs` (logs by name, either engine), `_duckdb_engine` and `_sql_rows` (the duckdb engine);
import from here.
"""

from imagine_billing.usage._logs import ENGINES, price_logs, read_usage
from imagine_billing.usage._parquet import ParquetLog
from imagine_billing.usage._pricing import Record, StyleKey, UsageTotals, price_usage
from imagine_billing.usage._readers import UsageLog

__all__ = [
    "ENGINES",
    "ParquetLog",
    "Record",
    "StyleKey",
    "UsageLog",
    "UsageTotals",
    "price_logs",
    "price_usage",
    "read_usage",
]
