"""Reconciliation: the ledger's figure against the balances the provider showed.

`Ledger.observe` records a balance read from the Studio's Usage tab as an ``observe`` entry.
`reconcile` sets each observation beside what the ledger expected then: ``posted`` (credits
and refunds less debits and captures) from the entries timed at or before the observation.
The *drift* is ``observed - expected`` (negative: the provider charged more than the ledger
recorded); its change since the previous observation arose in the window between the two,
and the entries of that window that may explain it are listed: calls of uncertain or failed
outcome, and drift notes (a 402 while the ledger believed the tokens were there), as the
metered transport notes them.

Open holds are not in ``expected``: a held call may or may not have been charged yet when
the balance was read, so a hold open at that moment is shown beside it (``held``).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import attrs

from imagine_billing._checks import stamp
from imagine_billing.ledger._chain import observation_of
from imagine_billing.ledger.model import Entry, from_micros, to_micros

if TYPE_CHECKING:
    from imagine_billing.ledger import Ledger

__all__ = ["Observation", "Reconciliation", "reconcile"]

_POSTED = {"credit": 1, "refund": 1, "debit": -1, "capture": -1}
"""How each kind of entry moves ``posted``."""


def suspect(entry: Entry) -> bool:
    """Whether ``entry`` may explain a drift: a call of uncertain or failed outcome, or a
    drift note."""
    return (entry.tags.get("drift") == "true"
            or entry.tags.get("outcome") in ("uncertain", "failed")
            or entry.key.endswith(":uncertain"))


@attrs.frozen
class Observation:
    """One balance the provider showed, beside the ledger's figure then."""

    entry: int
    """The id of the ``observe`` entry."""
    at: datetime
    """When the balance was read."""
    observed: int
    """The balance the provider showed."""
    expected: int
    """The ledger's ``posted`` then (entries timed at or before ``at``)."""
    held: int
    """Tokens of the holds open then (charged or not: the provider may be ahead)."""
    since: datetime | None
    """When the previous observation was read (``None`` for the first)."""
    change: int | None
    """How much the drift moved since the previous observation (``None`` for the first)."""
    suspects: tuple[Entry, ...]
    """The entries between the previous observation and this one that may explain the
    change (uncertain or failed outcomes, drift notes)."""

    @property
    def drift(self) -> int:
        """``observed - expected``: negative when the provider charged more than the
        ledger recorded."""
        return self.observed - self.expected

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (times RFC 3339; each suspect as its id, key, kind and tags)."""
        return {
            "entry": self.entry, "at": stamp(self.at), "observed": self.observed,
            "expected": self.expected, "drift": self.drift, "held": self.held,
            "since": stamp(self.since), "change": self.change,
            "suspects": [{"id": e.id, "key": e.key, "kind": e.kind, "at": stamp(e.at),
                          "tokens": e.tokens, "tags": dict(e.tags)} for e in self.suspects],
        }


@attrs.frozen
class Reconciliation:
    """Every observation of a ledger, oldest first, beside the ledger's figures."""

    observations: tuple[Observation, ...]

    @property
    def latest(self) -> Observation | None:
        """The last observation read (``None`` when there is none)."""
        return self.observations[-1] if self.observations else None

    def to_dict(self) -> dict[str, Any]:
        latest = self.latest
        return {
            "expected": None if latest is None else latest.expected,
            "observed": None if latest is None else latest.observed,
            "drift": None if latest is None else latest.drift,
            "observations": [o.to_dict() for o in self.observations],
        }


def reconcile(ledger: Ledger) -> Reconciliation:
    """Each balance recorded with `Ledger.observe`, beside the ledger's figure at the moment
    it was read, the drift between them, and what may explain its changes (see the
    module's notes). One pass over the entries.
    """
    with ledger.snapshot():
        entries = list(ledger.entries())
    return _reconciled(entries)


def _reconciled(entries: Iterable[Entry]) -> Reconciliation:
    moves: list[tuple[int, int, int]] = []  # (at, posted change, held change)
    seen: list[tuple[int, int, int]] = []  # (at, balance, entry id)
    suspects: list[tuple[int, Entry]] = []
    holds: dict[int, int] = {}
    for entry in entries:
        at = to_micros(entry.at)
        sign = _POSTED.get(entry.kind, 0)
        held = entry.tokens if entry.kind == "hold" else 0
        if entry.kind in ("capture", "void", "expire") and entry.ref is not None:
            held = -holds.get(entry.ref, 0)
        if entry.kind == "hold":
            holds[entry.id] = entry.tokens
        if sign or held:
            moves.append((at, sign * entry.tokens, held))
        if entry.kind == "observe":
            balance, when = observation_of(entry.id, entry.memo)
            seen.append((when, balance, entry.id))
        elif suspect(entry):
            suspects.append((at, entry))
    moves.sort(key=lambda move: move[0])
    times = [move[0] for move in moves]
    posted_sums, held_sums = [0], [0]
    for _, posted, held in moves:
        posted_sums.append(posted_sums[-1] + posted)
        held_sums.append(held_sums[-1] + held)
    suspects.sort(key=lambda pair: pair[0])
    found: list[Observation] = []
    for when, balance, entry_id in sorted(seen):
        count = bisect.bisect_right(times, when)
        previous = found[-1] if found else None
        low = None if previous is None else to_micros(previous.at)
        window = tuple(e for at, e in suspects if (low is None or at > low) and at <= when)
        expected = posted_sums[count]
        found.append(Observation(
            entry=entry_id, at=from_micros(when), observed=balance, expected=expected,
            held=held_sums[count], since=None if previous is None else previous.at,
            change=None if previous is None else (balance - expected) - previous.drift,
            suspects=window))
    return Reconciliation(tuple(found))
