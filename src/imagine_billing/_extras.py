"""The optional packages of the extras, imported when a feature needs them, with one wording
for the one that is missing."""

from __future__ import annotations

from typing import Any

__all__ = ["duckdb_module"]


def duckdb_module(what: str) -> Any:
    """The ``duckdb`` module (extra ``bulk``), for ``what`` (``"writing Parquet"``).

    Raises:
        ImportError: DuckDB is not installed; the message says how to install it.
    """
    try:
        import duckdb
    except ImportError:
        raise ImportError(
            f"{what} needs DuckDB: pip install 'imagine-billing[bulk]' "
            "(from a clone: pip install -e '.[bulk]')"
        ) from None
    return duckdb
