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
from collections.abc import Iterable, Iterator
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
    module's notes).

    Two passes over the entries, in one snapshot, in memory of the observations and the
    suspect entries only (not of every entry): the first finds the observations, the second
    sums ``posted`` and ``held`` into the stretches between their times.
    """
    with ledger.snapshot():
        seen = sorted(_observations(ledger.entries()))
        if not seen:
            return Reconciliation(())
        times = [when for when, _, _ in seen]
        posted, held, suspects = _stretches(ledger.entries(), times)
    found: list[Observation] = []
    for index, (when, balance, entry_id) in enumerate(seen):
        previous = found[-1] if found else None
        expected = sum(posted[: index + 1])
        found.append(Observation(
            entry=entry_id, at=from_micros(when), observed=balance, expected=expected,
            held=sum(held[: index + 1]), since=None if previous is None else previous.at,
            change=None if previous is None else (balance - expected) - previous.drift,
            suspects=tuple(suspects[index])))
    return Reconciliation(tuple(found))


def _observations(entries: Iterable[Entry]) -> Iterator[tuple[int, int, int]]:
    """``(read at, balance, entry id)`` of each ``observe`` entry."""
    for entry in entries:
        if entry.kind == "observe":
            balance, when = observation_of(entry.id, entry.memo)
            yield when, balance, entry.id


def _stretches(entries: Iterable[Entry], times: list[int]
               ) -> tuple[list[int], list[int], list[list[Entry]]]:
    """The change of ``posted`` and of ``held`` in each stretch of time up to each of
    ``times`` (stretch ``i``: after ``times[i-1]``, up to and with ``times[i]``; the last
    one, after the last time, is not needed), and the suspect entries of each."""
    posted = [0] * (len(times) + 1)
    held = [0] * (len(times) + 1)
    suspects: list[list[Entry]] = [[] for _ in range(len(times) + 1)]
    holds: dict[int, tuple[int, int]] = {}  # open hold id -> (tokens, its stretch)
    for entry in entries:
        stretch = bisect.bisect_left(times, to_micros(entry.at))
        posted[stretch] += _POSTED.get(entry.kind, 0) * entry.tokens
        if entry.kind == "hold":
            held[stretch] += entry.tokens
            holds[entry.id] = (entry.tokens, stretch)
        elif entry.kind in ("capture", "void", "expire") and entry.ref in holds:
            tokens, placed = holds.pop(entry.ref)
            # A clock set back may time the closing before its hold: the hold counts in no
            # stretch before its own.
            held[max(stretch, placed)] -= tokens
        if entry.kind != "observe" and suspect(entry):
            suspects[stretch].append(entry)
    return posted, held, suspects
