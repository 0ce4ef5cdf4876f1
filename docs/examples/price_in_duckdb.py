"""Price a usage log in DuckDB with the interval table of ``imagine-billing prices --export``.

Usage: python price_in_duckdb.py PRICES.parquet LOG.jsonl.gz (DuckDB: the ``bulk`` extra).
The query is docs/examples/pricing-query.sql, the one the project's tests run against
``price-log``'s figures.
"""

import sys
from pathlib import Path

import duckdb

prices, log = sys.argv[1:3]
query = (Path(__file__).parent / "pricing-query.sql").read_text(encoding="utf-8")
db = duckdb.connect()
db.execute("CREATE TABLE imagine_prices AS SELECT * FROM read_parquet(?)", [prices])
# The export's times are UTC without a zone: give the log's times the same form.
db.execute("""
    CREATE TABLE usage AS
    SELECT timezone('UTC', "timestamp") AS "timestamp", style, count
    FROM read_json(?, format = 'newline_delimited',
                   columns = {'timestamp': 'TIMESTAMPTZ', 'style': 'VARCHAR', 'count': 'BIGINT'})
""", [log])
print(f"{'STYLE':<14} {'CALLS':>7} {'TOKENS':>8}")
for style, calls, tokens in db.execute(query).fetchall():
    print(f"{style:<14} {calls:>7} {tokens:>8}")
