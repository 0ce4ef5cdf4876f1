"""Budget tracking: the budgets of a ledger's chain, their running figures, and their checks.

A budget is an entry of the chain (see `Ledger.add_budget`); beside the chain the store keeps
its row and running figures (the tokens of the open holds in its scope, its spend by
period), updated in the transaction of every write (`BudgetTracker.track`). A hard budget is
checked against those figures before a hold or debit (`BudgetTracker.check`), and `verify`
checks them against the entries (`BudgetTracker.verify`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from imagine_billing._checks import shown_repr
from imagine_billing.errors import BudgetExceeded, LedgerCorrupted
from imagine_billing.ledger._chain import ChainBudgets, budget_of, removed_budget, when
from imagine_billing.ledger._outbox import check_outbox
from imagine_billing.ledger.alerts import alert_id
from imagine_billing.ledger.model import GENESIS, from_micros, to_micros
from imagine_billing.ledger.store import AlertRow, Store, Tip

if TYPE_CHECKING:
    from imagine_billing.ledger.budgets import Budget

__all__ = ["DAY", "BudgetTracker", "BudgetUse", "labels_at", "micros_of"]

BudgetUse = list[tuple["Budget", int, int, int | None]]
"""Each budget with the tokens of its open holds, its spend in the current period, and the
first moment it counts (microseconds: the start of the period it was added in; ``None`` for
a total budget, which counts all time)."""

_Kept = tuple["Budget", int, int | None, int | None]
"""A budget of the chain, when it was added, and its open holds and spend as kept beside
the chain (see `BudgetTracker.chain_budgets`)."""

DAY = 86_400_000_000
"""A day in microseconds."""


class BudgetTracker:
    """The budgets of the ledger over ``store``; ``now`` is the ledger clock's time.

    It caches what never changes: each budget document parsed, the first moment each
    (period, added) pair counts from, and the period labels of each day. It also keeps the
    budgets' use of the last write (`use`), for the tip it was read at: a batch of writes
    reads the budgets once, not once a write (see `written`).
    """

    def __init__(self, store: Store, now: Callable[[], datetime]) -> None:
        self._store = store
        self._now = now
        self._parsed: dict[str, Budget] = {}
        self._starts: dict[tuple[str, int], int | None] = {}
        self._labels: dict[int, dict[str, str]] = {}
        self._kept: tuple[Tip, int, BudgetUse] | None = None

    def parse(self, entry_id: object, document: object) -> Budget:
        """The budget of a ``budget`` entry's memo (parsed once per document)."""
        budget = self._parsed.get(document) if isinstance(document, str) else None
        if budget is None:
            budget = budget_of(entry_id, document)
            self._parsed[str(document)] = budget
        return budget

    def chain_budgets(self, at: datetime | None = None) -> list[_Kept]:
        """Every budget of the chain, in the order added (or last changed), as its latest
        entry says (a removed one left out), with what is
        kept beside it: ``(budget, added, held, spent)``, ``added`` in microseconds,
        ``held`` the tokens of its open holds and ``spent`` its spend in the period holding
        ``at`` (default: the clock's now), both ``None`` when nothing beside the chain is
        kept for it under its name (`verify` reports that)."""
        labels = labels_at(self._now() if at is None else at)
        found: dict[str, _Kept] = {}
        for entry_id, document, added, name, held, spent in self._store.budget_entries(
                tuple(labels.values())):
            if type(added) is not int:
                raise LedgerCorrupted(entry_id, f"bad time {shown_repr(added)} (microseconds "
                                      "since 1970)")
            removed = removed_budget(document)
            if removed is not None:
                found.pop(removed, None)
                continue
            budget = self.parse(entry_id, document)
            found.pop(budget.name, None)  # a change of settings: the budget as it is now
            if name != budget.name or held is None:
                found[budget.name] = (budget, added, None, None)
            else:
                found[budget.name] = (budget, added, held,
                                      spent.get(labels[budget.period], 0))
        return list(found.values())

    def labels(self, micros: int) -> dict[str, str]:
        """`labels_at` the moment ``micros``, computed once per day (every period is whole
        days). Shared: not to be changed."""
        day = micros // DAY
        labels = self._labels.get(day)
        if labels is None:
            if len(self._labels) > 64:
                self._labels.clear()
            labels = self._labels[day] = labels_at(from_micros(micros))
        return labels

    def use(self, at: datetime | None, micros: int | None = None) -> BudgetUse:
        """Every budget, as its entry in the chain sets it, with its open holds, its spend
        in the period holding ``at`` (or ``micros``: one of them is given), and the first
        moment it counts.

        Read from the store once per tip and day: the use kept for the store's tip (by the
        last call, or brought up to date by `written`) is returned as it is, and is not to
        be changed by the caller.
        """
        if micros is None:
            if at is None:
                raise TypeError("use: give at or micros")
            micros = to_micros(at)
        tip = self._store.tip()
        kept = self._kept
        if kept is not None and kept[1] == micros // DAY and (
                kept[0] is tip or kept[0] == tip):
            return kept[2]
        if at is None:
            at = from_micros(micros)
        use, exact = [], True
        with self._store.read():
            tip = self._store.tip()
            for budget, added, kept_held, kept_spent in self.chain_budgets(at):
                if kept_held is None or kept_spent is None:  # nothing kept beside the chain
                    held, spent = self._summed(budget, at)
                    exact = False  # figures `written` could not follow
                else:
                    held, spent = kept_held, kept_spent
                use.append((budget, held, spent, self.first(budget, added)))
        self._kept = (tip, micros // DAY, use) if exact else None
        return use

    def written(self, before: Tip, after: Tip, use: BudgetUse | None, day: int | None) -> None:
        """The store's tip went from ``before`` to ``after`` by one entry of this
        transaction. ``use``: the budgets' use after it on day ``day`` (`track`'s); ``day``
        ``None``: the entry changed no budget's figures (the use kept at ``before`` stays
        right); ``use`` ``None``: not known, as after a ``budget`` entry (which adds,
        changes or removes a budget)."""
        kept = self._kept
        if day is None:
            if kept is not None and (kept[0] is before or kept[0] == before):
                self._kept = (after, kept[1], kept[2])
            else:
                self._kept = None
        else:
            self._kept = None if use is None else (after, day, use)

    def _summed(self, budget: Budget, at: datetime) -> tuple[int, int]:
        """``(held, spent)`` of ``budget`` in the period holding ``at``, from the entries."""
        start, end = budget.bounds(at)
        scope = dict(budget.scope)
        spent = self._store.spend(micros_of(start), micros_of(end), None, scope)
        return self._store.held_in(scope), sum(spent.values())

    def first(self, budget: Budget, added: int) -> int | None:
        """The first moment ``budget``, added at ``added``, counts (microseconds): the start
        of the period holding ``added``; ``None`` for a total budget."""
        key = (budget.period, added)
        if key not in self._starts:
            from imagine_billing.ledger.budgets import period_bounds

            start, _ = period_bounds(budget.period, from_micros(added))
            self._starts[key] = None if start is None else to_micros(start)
        return self._starts[key]

    def _spend_by_period(self, budget: Budget, since: int | None) -> dict[str, int]:
        """The entries' spend in ``budget``'s scope from ``since`` on, by period label (one
        grouped query: by day, then days summed into the budget's periods)."""
        from imagine_billing.ledger.budgets import period_label

        scope = dict(budget.scope)
        if since is None:
            return {"total": sum(self._store.spend(None, None, None, scope).values())}
        usage: dict[str, int] = {}
        for day, tokens in sorted(self._store.spend(since, None, DAY, scope).items()):
            label = period_label(budget.period, from_micros(since + day * DAY))
            usage[label] = usage.get(label, 0) + tokens
        return usage
    def keep(self, budget: Budget, document: str, entry: int, added: int) -> dict[str, int]:
        """Keep beside the chain the row and running figures of ``budget``, which entry
        ``entry`` added at ``added``: its open holds and its spend by period so far (which
        it returns, by period label)."""
        from imagine_billing.ledger.budgets import period_label

        usage = self._spend_by_period(budget, self.first(budget, added))
        usage.setdefault(period_label(budget.period, from_micros(added)), 0)
        self._store.put_budget(budget.name, budget.period, document, entry=entry,
                               held=self._store.held_in(dict(budget.scope)), added=added,
                               usage=usage)
        return usage

    def track(self, tags: Mapping[str, str], at: datetime, spent: int, held: int, *,
              use: BudgetUse | None, period_at: datetime,
              entry: int | None = None) -> BudgetUse | None:
        """Add the spend and hold change of an entry (with ``tags``, written ``at``) to the
        budgets whose scope it matches (``use``: the budgets as `check` found them, if it did).

        The spend goes to the periods holding ``period_at``: for a refund, the time of the
        debit or capture it gives back, so that refunding last month's spend gives this
        month no room (and no period's spend goes below 0). A spend that takes a budget
        past one of its thresholds records its actual alert (entry ``entry`` crossed it), in
        the same transaction; the store keeps one per budget, period and threshold.

        Returns the budgets' use after the entry, in the period holding ``at``, when
        ``use`` is the one `use` keeps (else ``None``: figures summed from the entries).
        """
        at_micros = to_micros(at)
        if use is None:
            use = self.use(at, at_micros)
        kept = self._kept
        if not use:
            return use if kept is not None and kept[2] is use else None
        if period_at is at:  # all but refunds: one time, one set of labels
            micros, labels = at_micros, self.labels(at_micros)
            own = labels
        else:
            micros = to_micros(period_at)
            labels, own = self.labels(micros), self.labels(at_micros)
        raised: list[AlertRow] = []
        after: BudgetUse = []
        for budget, budget_held, before, since in use:
            if budget.matches(tags):
                # Spend in a period before the budget's first is not the budget's.
                counted = spent if since is None or micros >= since else 0
                if counted or held:
                    label = labels[budget.period]
                    self._store.bump_budget(budget.name, label, spent=counted, held=held)
                    if counted > 0:
                        raised += self.crossing(budget, label, before, before + counted,
                                                micros=micros, entry=entry)
                    if label != own[budget.period]:
                        counted = 0  # spend of another period than the one ``use`` holds
                    after.append((budget, budget_held + held, before + counted, since))
                    continue
            after.append((budget, budget_held, before, since))
        if raised:
            self._store.add_alerts(raised)
        return after if kept is not None and kept[2] is use else None

    def crossing(self, budget: Budget, label: str, before: int, after: int, *, micros: int,
                 entry: int | None) -> list[AlertRow]:
        """The actual alerts of the thresholds of ``budget`` a spend going from ``before``
        to ``after`` in the period ``label`` crosses (``before`` -1: every threshold
        ``after`` reaches), as the store keeps them."""
        limit = budget.limit
        rows: list[AlertRow] = []
        origin = None
        for threshold in budget.alerts:
            num, den = threshold.numerator, threshold.denominator
            if before * den < limit * num <= after * den:
                origin = origin or self.origin()  # read once, and only when one is crossed
                rows.append((alert_id(origin, budget.name, label, threshold, "actual"),
                             budget.name, label, str(threshold), "actual", after, limit, None,
                             micros, entry))
        return rows

    def origin(self) -> str:
        """The hash of the ledger's first entry: what makes its alerts' ids its own."""
        first = self._store.by_id(1)
        return GENESIS if first is None else first.hash

    def check(self, tokens: int, tags: Mapping[str, str], micros: int) -> BudgetUse:
        """Raise `BudgetExceeded` for the first hard budget ``tokens`` more would exceed
        (open holds count); returns the budgets' use, for `track` to update."""
        use = self.use(None, micros)
        for budget, held, spent, since in use:
            if budget.hard and budget.matches(tags) and (since is None or micros >= since):
                remaining = budget.limit - spent - held
                if tokens > remaining:
                    raise BudgetExceeded(budget.name, tokens, max(0, remaining))
        return use

    def verify(self, chain: ChainBudgets) -> None:
        """The budgets kept beside the chain are those its entries add, with the same
        settings, and the running figures of each agree with the entries: its open holds,
        and its spend in every period it has figures for (the one it was added in and those
        after it), each period's entries only; then that each alert of the outbox is one
        the chain could have raised (`check_outbox`)."""
        store = self._store
        with store.read():
            self._check_rows(chain)
            held_of = {entry_id: held for entry_id, _, _, _, held, _
                       in store.budget_entries(())}
            for name, (entry_id, budget, _, added) in chain.items():
                held = held_of.get(entry_id)
                actual_held = store.held_in(dict(budget.scope))
                if held != actual_held:
                    raise LedgerCorrupted(f"budget {name!r}", f"the entries give held "
                                          f"{actual_held}; the budget records held {held}")
                since = self.first(budget, added)
                expected = {label: tokens for label, tokens
                            in self._spend_by_period(budget, since).items() if tokens}
                recorded = self._recorded_spend(budget, since)
                if expected != recorded:
                    label = min(set(expected) ^ set(recorded)
                                or {k for k in expected if expected[k] != recorded[k]})
                    raise LedgerCorrupted(
                        f"budget {name!r}",
                        f"the entries give spent {expected.get(label, 0)} in {label}; the "
                        f"budget records spent {shown_repr(recorded.get(label, 0))}")
            check_outbox(store, self.parse)

    def _check_rows(self, chain: ChainBudgets) -> None:
        """Each budget row beside the chain has a ``budget`` entry of its name, and the
        entry's id, period, document and time; each such entry has its row."""
        rows = {}
        for entry_id, name, period, document, added in self._store.budget_table():
            found = chain.get(name) if isinstance(name, str) else None
            if found is None:
                raise LedgerCorrupted(f"budget {shown_repr(name)}", "the ledger keeps it, but no "
                                      "entry of the chain adds it: a budget written behind "
                                      "the ledger's back")
            expected = (found[0], found[1].period, found[2], when(found[3]))
            kept_row = (entry_id, period, document,
                        when(added) if type(added) is int else shown_repr(added))
            for what, kept, chained in zip(("entry", "period", "document", "added time"),
                                           kept_row, expected, strict=True):
                if kept != chained:
                    texts = (kept, chained) if what == "added time" else (
                        shown_repr(kept), shown_repr(chained))
                    raise LedgerCorrupted(
                        f"budget {name!r}", f"its {what} kept beside the chain is {texts[0]}, "
                        f"but its entry {found[0]} gives {texts[1]}: the budget's settings "
                        "were changed behind the ledger's back")
            rows[name] = entry_id
        for name, (entry_id, _, _, _) in chain.items():
            if name not in rows:
                raise LedgerCorrupted(f"budget {name!r}", f"entry {entry_id} adds it, but the "
                                      "ledger keeps no row for it: the budget was deleted "
                                      "behind the ledger's back")

    def _recorded_spend(self, budget: Budget, since: int | None) -> dict[str, object]:
        """The spend ``budget`` records by period label, for its periods from ``since`` on
        (those before are not its own), zeros left out."""
        from imagine_billing.ledger.budgets import label_bounds

        recorded: dict[str, object] = {}
        for label, tokens in self._store.budget_periods(budget.name).items():
            try:
                start, _ = label_bounds(budget.period, label)
            except ValueError:
                raise LedgerCorrupted(f"budget {budget.name!r}", f"it records spend for "
                                      f"{shown_repr(label)}, which names no {budget.period}"
                                      ) from None
            if tokens and (since is None or start is None or to_micros(start) >= since):
                recorded[label] = tokens
        return recorded


def micros_of(when: datetime | None) -> int | None:
    """`to_micros` of ``when``; ``None`` for None."""
    return None if when is None else to_micros(when)


def labels_at(at: datetime) -> dict[str, str]:
    """The label of the period of each kind holding ``at`` (see `period_label`)."""
    from imagine_billing.ledger.budgets import PERIODS, period_label

    return {period: period_label(period, at) for period in PERIODS}
