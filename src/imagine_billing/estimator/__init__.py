"""Estimates: what a list of calls costs under a price table, before any call is made.

``estimate([Call("flux-dev", 4), Call("anime")])`` is 65 tokens on the published table. Every
`Estimate` carries the version and digest of the table that priced it, so a figure can always
be traced to its prices. `preflight` compares an estimate with the tokens available; a
`TokenRate` turns tokens into money when the user knows what tokens cost them (the bundled
table has no plan prices: money is never invented).

Pricing a call: its operation must exist; its style is the one it names, else the operation's
default style. A call with a style costs that style's tokens (the style must exist, belong to
the operation and be priced); a call without one costs the operation's flat cost.

Three parts: `_estimate` (pricing calls), `_money` (`TokenRate`) and `_workloads`
(`load_calls`); import from here.
"""

from imagine_billing.estimator._estimate import (
    Call,
    Estimate,
    Line,
    Verdict,
    estimate,
    preflight,
    resolve_table,
    unit_cost,
)
from imagine_billing.estimator._money import TokenRate
from imagine_billing.estimator._workloads import load_calls

__all__ = [
    "Call",
    "Estimate",
    "Line",
    "TokenRate",
    "Verdict",
    "estimate",
    "load_calls",
    "preflight",
    "resolve_table",
    "unit_cost",
]
