"""The reports of `Ledger` about its budgets, alerts and chain: `LedgerAudit`, between
`LedgerReads` and `Ledger` (see there)."""

from __future__ import annotations

from datetime import datetime
from typing import IO, TYPE_CHECKING, Literal

from imagine_billing.errors import LedgerCorrupted, LedgerStoreError, UnknownBudget
from imagine_billing.ledger import _archive
from imagine_billing.ledger._budget_tracking import BudgetTracker
from imagine_billing.ledger._chain import Anchor, check_anchor
from imagine_billing.ledger._reads import LedgerReads
from imagine_billing.ledger._verify_parts import check_workers, verify_in_parts
from imagine_billing.ledger.alerts import Alert, from_row
from imagine_billing.ledger.model import from_micros, to_micros

if TYPE_CHECKING:
    from imagine_billing.ledger.budgets import Budget

__all__ = ["LedgerAudit"]


class LedgerAudit(LedgerReads):
    """The budgets, the alerts' outbox, `verify` and `export` of `Ledger` (see there), over
    ``_store`` and the budget tracker ``_budgets``."""

    _budgets: BudgetTracker

    def alerts(self, *, undelivered: bool = False) -> tuple[Alert, ...]:
        """The budget alerts the ledger recorded (its outbox), oldest first.

        A write that takes a budget's spend past one of its thresholds records an
        ``actual`` alert in its own transaction; a status or delivery run records the
        ``forecasted`` ones it evaluates (`imagine_billing.planner.alerting`). Each is
        recorded once per budget, period, threshold and kind, whatever the number of
        writers; its `Alert.id` is stable.

        Args:
            undelivered: Only those no receiver has taken yet.
        """
        with self._store.read():
            rows = self._store.alert_rows(undelivered)
        return tuple(from_row(row) for row in rows)

    def origin(self) -> str:
        """The hash of the ledger's first entry (`GENESIS` while it has none): what makes
        the ids of its alerts its own (see `imagine_billing.ledger.alerts.alert_id`)."""
        with self._store.read():
            return self._budgets.origin()

    def budget_usage(self, name: str, at: datetime | None = None) -> tuple[int, int] | None:
        """The running figures the ledger keeps for budget ``name``, read in O(1).

        ``(spent, held)``: its spend in its period holding ``at`` (default: the clock's now),
        refunds counted in the period of the spend they give back, and the tokens of the
        open holds in its scope now: the figures a hard budget is checked against, kept in
        each write's transaction (and checked by `verify`). The spend is the whole period's
        as written so far, entries stamped after ``at`` included (a clock set back writes
        them).

        Returns:
            The figures; ``None`` when ``at`` is in a period before the one the budget was
            added in: the ledger keeps none for it (`budget_status` sums the entries then).

        Raises:
            UnknownBudget: The ledger has no budget of that name.
            ValueError: ``at`` is naive.
        """
        micros = to_micros(self._clock() if at is None else at)  # naive: ValueError
        with self._store.read():
            use = self._budgets.use(from_micros(micros))
        for budget, held, spent, since in use:
            if budget.name == name:
                return None if since is not None and micros < since else (spent, held)
        raise UnknownBudget(name, [budget.name for budget, _, _, _ in use])

    def budgets(self) -> tuple[Budget, ...]:
        """The ledger's budgets, in the order they were added."""
        with self._store.read():
            return tuple(budget for budget, _, _, _ in self._budgets.chain_budgets())

    def budget(self, name: str) -> Budget:
        """The budget of that name.

        Raises:
            UnknownBudget: The ledger has none (an `UnknownEntry`; ``.known`` lists the names
                it has).
        """
        budgets = self.budgets()
        for budget in budgets:
            if budget.name == name:
                return budget
        raise UnknownBudget(name, [b.name for b in budgets])

    def verify(self, *, expect: Anchor | None = None, since: Anchor | None = None,
               workers: int = 1) -> int:
        """Check the whole chain, and the balance and open holds the store keeps; with
        ``since``, only the entries after an anchor checked before.

        The chain's hash is not keyed: it detects a change to any entry, an entry removed,
        inserted or reordered, or a tip that disagrees, but not a chain cut at its end with
        the tip set back, nor one rewritten with every hash recomputed. ``expect``, a `head`
        recorded earlier elsewhere, closes that gap.

        ``since`` is for a regular check of a large ledger: record the entry a verify ends
        at, ``(n, ledger.get(n).hash)`` with ``n`` the count it returns (plus ``since[0]``
        when it had one; the ``head:`` line of ``ledger verify``), and check from it next
        time, ``ledger.verify(since=(n, hash))``. That first proves the anchor's entry still has
        its hash (recomputed from its content and the hash stored before it), then replays
        the entries after it with every rule of a full verify: each entry's hash, amounts,
        holds closed once and within their amount and time, refunds of at most what is left,
        the balance never past 2**62 nor ``available`` below 0, and at the end the tip,
        balance, open holds and budget figures the store keeps. The running figures at the
        anchor are taken from the entries up to it, not from the tip (which they are
        checked against): posted summed by the store (one SQL pass, no hashing nor
        decoding), the holds open at the anchor through the open holds and the closing
        entries after it, what is left to refund of an earlier debit or capture when a
        refund names it, the budgets from their entries. Python's work is then in the
        entries after the anchor; the database's includes one sum over the entries up to it
        (about 0.2 s at a million entries): the price of keeping the anchor the
        ``(id, hash)`` head people already record, rather than one that also carries the
        balance. The entries before the anchor are trusted: a change to them is found by a
        full ``verify()`` (run one now and then), not by this one (a changed amount shows
        in the sum, so in the balance).

        ``workers`` above 1 splits the entries to check into ranges replayed at once by
        that many processes (this one included), each a fresh interpreter that imports this
        package and opens the store read-only: for a ledger in a SQLite file or on a
        PostgreSQL server (``durable=False`` included: its commits are seen by others at
        once; a store in memory, or a verify inside a write transaction, whose rows other
        processes cannot see yet, is checked in this process), when the part to
        check holds at least 50,000 entries per process (below that, starting a process
        costs more than it saves; the number of processes is reduced to fit). Each range
        but the first resumes from the state the store derives from the entries before it,
        as ``since`` does, and that state must equal the one the previous range ends with;
        where it does not, the rest is replayed in this process. It proves exactly what one
        process proves and names the same first bad entry, in about ``1/workers`` of the
        time on as many idle cores, plus about 0.2 s to start the processes. A process
        that cannot start or fails is replaced by a check of its range here.

        Args:
            expect: ``(id, hash)``: the entry ``id`` must still be in the chain with that
                hash.
            since: ``(id, hash)``: an entry checked by an earlier verify; only the entries
                after it are replayed. ``(0, GENESIS)`` checks every entry.
            workers: The number of processes to use, this one included (an int >= 1).

        Returns:
            The number of entries checked (replayed): with ``since``, those after it; the
            last of them is entry ``since[0]`` plus that number.

        Raises:
            LedgerCorrupted: Names the first bad entry: changed (its hash does not match),
                missing, inserted or reordered, outside the chain (past the recorded last
                entry), making an impossible balance, with a key, tags or styles the ledger
                does not write, or not the ``expect``-ed or ``since`` one; or
                ``"tip"``/``"balance"``/``"open holds"``/``"budget ..."``/``"alert ..."``
                when what the ledger keeps disagrees with the chain (an alert of the outbox
                that the chain could not have raised); ``"file"`` when the file is damaged.
            TypeError, ValueError: ``expect`` or ``since`` is not an ``(id, hash)`` pair;
                ``workers`` is not an int >= 1.
        """
        anchor = check_anchor(expect)
        start = check_anchor(since, "since")
        processes = check_workers(workers)
        try:
            with self._store.read():
                replay = verify_in_parts(self._store, anchor, self._budgets.parse, start,
                                         processes)
                self._budgets.verify(replay.budgets)
        except LedgerStoreError as error:
            if error.damaged:
                raise LedgerCorrupted("file", error.reason) from None
            raise
        replay.finish()
        return replay.id - (0 if start is None else start[0])

    def export(self, out: IO[str], *, format: Literal["jsonl", "csv"] = "jsonl") -> int:
        """Write every entry to ``out``, oldest first.

        JSON lines are the form to keep and re-import: exact, hash included (`from_jsonl`
        verifies them). CSV is for people and spreadsheets only: it cannot tell a memo of
        ``None`` from an empty one (both an empty cell), so it does not round-trip.

        Args:
            out: A text stream.
            format: ``"jsonl"``: one `Entry.to_dict` document a line (`from_jsonl` reads
                it back; the line separators U+0085, U+2028 and U+2029 are escaped, so
                that ``str.splitlines`` cuts lines where ``\\n`` does); ``"csv"``: a header,
                then one row an entry (tags and styles as JSON).

        Returns:
            The number of entries written.
        """
        return _archive.export(self.entries(), out, format)
