"""Price-table updates: what changed (`diff_tables`) and whether it is sane (`check_update`).

A team that keeps its own copy of the price table, or receives a new bundled one, runs these in
CI before the new table is merged: the diff says what changed, the findings say which of the
update rules (semantic versioning, deprecation before removal, prices that stay known, bounded
increases) the new version breaks. `check_book` runs the same rules over every consecutive pair
of a `PriceBook`.

Ratios are `fractions.Fraction`: 15 -> 10 tokens is exactly 2/3, and a policy's ``1.5`` is
exactly 3/2, so comparisons never go through floats.

Only attrs and light standard modules are imported at the top (`decimal` and `fractions` only
when a ratio is computed), so importing this module is cheap.

The package is three parts: `_diff` (what changed), `_policy` (which rules, how severe) and
`_rules` (the checks); import from here.
"""

from imagine_billing.pricing.updates._diff import (
    BUMPS,
    MetadataChange,
    Repricing,
    StatusChange,
    TableDiff,
    diff_tables,
    format_ratio,
)
from imagine_billing.pricing.updates._policy import RULES, UpdatePolicy, load_policy
from imagine_billing.pricing.updates._rules import Finding, check_book, check_update

__all__ = [
    "BUMPS",
    "RULES",
    "Finding",
    "MetadataChange",
    "Repricing",
    "StatusChange",
    "TableDiff",
    "UpdatePolicy",
    "check_book",
    "check_update",
    "diff_tables",
    "format_ratio",
    "load_policy",
]
