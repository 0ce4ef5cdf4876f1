"""A metered httpx transport for the Imagine API: check before sending, record after answering.

    ledger = Ledger.open("tokens.db")
    client = httpx.Client(transport=MeteredTransport(ledger), base_url="https://api.vyro.ai/v2")
    form = {"prompt": (None, "a cat"), "style": (None, "flux-dev")}
    client.post("/image/generations", files=form, headers={"Authorization": "Bearer vk-..."})

Each priced call is held for in the ledger before it is sent, and the hold is captured or
voided by the answer; a refused call sends nothing. A retry with the same ``Idempotency-Key``
is never sent twice once it has succeeded (`DuplicateRequest`), and a call of uncertain
outcome is counted and noted with ``outcome=uncertain``. See `MeteredTransport`; the rules
are documented in the modules that apply them: `imagine_billing.adapters._metering` (which
requests are metered, refusals), `imagine_billing.adapters._settling` (settling by status,
uncertain outcomes, deferred settlings), `imagine_billing.adapters._attempts` (idempotency)
and `imagine_billing.adapters._transports` (errors before and after sending).

httpx is imported here only (the ``http`` extra: ``pip install "imagine-billing[http]"``).
"""

from __future__ import annotations

try:
    import httpx  # noqa: F401 - checked here, for the install hint
except ImportError as error:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        'imagine_billing.adapters.httpx needs httpx: pip install "imagine-billing[http]"'
    ) from error

# Besides __all__, the names this module has always offered stay importable from it (F401).
from imagine_billing.adapters._errors import aparse_error, parse_error
from imagine_billing.adapters._metering import (
    DEFAULT_HOLD_EXPIRY,
    Unpriced,  # noqa: F401
)
from imagine_billing.adapters._plan import TransportStats
from imagine_billing.adapters._settling import OnUncertain  # noqa: F401
from imagine_billing.adapters._transports import AsyncMeteredTransport, MeteredTransport
from imagine_billing.errors import (  # noqa: F401
    AmbiguousStyleError,
    ApiError,
    BudgetExceeded,
    DuplicateRequest,
    HoldClosed,
    IdempotencyConflict,
    InsufficientTokens,
    LedgerStoreError,
    UnknownEntry,
    UnknownStyleError,
    UnpricedError,
)
from imagine_billing.estimator import Call, Estimate, estimate  # noqa: F401
from imagine_billing.pricing.loading import load_price_table  # noqa: F401
from imagine_billing.pricing.model import Operation, PriceTable  # noqa: F401

__all__ = [
    "DEFAULT_HOLD_EXPIRY",
    "AsyncMeteredTransport",
    "MeteredTransport",
    "TransportStats",
    "aparse_error",
    "parse_error",
]
