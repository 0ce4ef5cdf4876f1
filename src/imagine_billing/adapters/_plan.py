"""What the meter knows of one request (`Plan`) and what it counts of all (`TransportStats`)."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from imagine_billing.estimator import Estimate
    from imagine_billing.ledger import Hold

__all__ = ["Plan", "Tally", "TransportStats"]


@attrs.define
class TransportStats:
    """What a transport did, by request (counters; read them, do not set them).

    Each request handled is counted once in one of ``metered``, ``free``, ``unpriced``,
    ``passed_through`` and ``refused`` (in none if it failed before sending for another
    reason, such as a ledger that cannot be written); ``captured``, ``voided``, ``replayed``,
    ``drift`` and ``deferred`` say more about some of them.
    """

    metered: int = 0
    """Requests that were held for and sent."""
    captured: int = 0
    """Metered requests whose tokens were spent: a 2xx answer (or, with ``charge_failed``, an
    error answer other than 402/424/404/405; with ``on_uncertain="capture"``, an uncertain
    outcome)."""
    voided: int = 0
    """Metered requests whose hold was released: an error answer, an error before sending, or
    (with ``on_uncertain="void"``) an uncertain outcome."""
    uncertain: int = 0
    """Requests of uncertain outcome (sent, then the connection dropped or the read timed
    out): held ones are also in ``captured`` or ``voided`` (``on_uncertain``); each is noted
    with ``outcome=uncertain``."""
    refused: int = 0
    """Requests refused before sending (see `imagine_billing.adapters._metering`): nothing
    was sent."""
    passed_through: int = 0
    """Requests to paths that are not priced operations, sent unmetered."""
    replayed: int = 0
    """Refusals (also in ``refused``) of a retry whose ``Idempotency-Key`` already succeeded or
    is being sent: `DuplicateRequest`, not sent, not charged."""
    unpriced: int = 0
    """Requests sent with ``unpriced="allow"`` for a call without a price (cost 0, noted)."""
    free: int = 0
    """Requests for a call the table prices at 0 tokens: sent without a hold."""
    drift: int = 0
    """402/424 answers to calls the ledger let through, and calls that outlived their hold
    when the ledger no longer had their tokens (noted for reconciliation)."""
    deferred: int = 0
    """Answers (or transport errors) whose settling the ledger could not write at once: the
    response was returned (the error raised) all the same, and the settling is written before
    the transport's next request or when it is closed."""

class Tally:
    """A transport's `TransportStats`, counted under a lock (threads may share a transport)."""

    def __init__(self) -> None:
        self.stats = TransportStats()
        self._lock = threading.Lock()

    def add(self, *fields: str) -> None:
        """Count one more in each of ``fields`` (at once, as one event)."""
        with self._lock:
            for field in fields:
                setattr(self.stats, field, getattr(self.stats, field) + 1)


@attrs.define
class Plan:
    """What metering one request means, from its pricing to its settling."""

    key: str
    """The logical request's key: its ``Idempotency-Key``, or a fresh one."""
    given_key: bool
    """Whether the request carried its own ``Idempotency-Key`` (a fresh key cannot be a retry)."""
    operation: str
    style: str | None
    estimate: Estimate | None
    """None when the call is unpriced and ``unpriced="allow"``."""
    tags: dict[str, str]
    attempt: int = 1
    hold: Hold | None = None
    claimed: bool = False
    """Whether the key is in the meter's in-flight map (released when the call settles)."""
    answered_ok: bool = False
    """Whether the API answered 2xx (so a deferred settling is a success being recorded)."""

    @property
    def attempt_key(self) -> str:
        return f"{self.key}:attempt:{self.attempt}"

    @property
    def fingerprint(self) -> str | None:
        return self.tags.get("request")

