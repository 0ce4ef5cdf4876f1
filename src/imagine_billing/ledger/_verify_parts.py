"""`Ledger.verify` in parts: ranges of the chain replayed at once in child processes.

A full verify of entries ``first+1 .. N`` splits at boundaries ``m1 < ... < mk`` picked
inside the caller's read snapshot. Each range but the last runs in a child process
(`BOOTSTRAP`: a fresh interpreter that imports this very module, the same file; not
`multiprocessing`, which would re-import the user's ``__main__`` or fork a threaded process):
it resumes at its start from the state the store derives from the entries up to it
(`resume`, as ``verify(since=...)`` does), replays its rows through its end entry, and
reports the state it started from and the one it ends with. The last range runs in this
process, ending with the checks of the tip, balance and open holds.

Then, boundary by boundary, the state the chain gives at the end of a range (id, hash,
posted, held, open holds, budgets) must equal the one the next range resumed from: the
entries up to the boundary are proven by then, so the next range's verdict is the one a
sequential replay gives. Where they differ (the store's open holds disagree with the
entries, or a hold closed before the boundary is closed again after it), the rest of the
chain is replayed here from the proven state, rather than the boundary named: the verdict,
and the entry it names, are then a sequential verify's too (a forged open hold is
``"open holds"``, a second capture names the capture).

What is left to refund of a debit or capture before a boundary is read from the store
(`refundable_before`): the debit's own entry and the refunds naming it up to the boundary.
Those entries are proven by the ranges before it (every id from 1 to the boundary is one
replayed, hashed entry, and no row lies outside the chain), so the store's answer is the
chain's.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from imagine_billing.errors import LedgerCorrupted, LedgerStoreError
from imagine_billing.ledger._chain import (
    Anchor,
    Replay,
    budget_of,
    check_extent,
    refundable_before,
    replay_store,
    resume,
    start_replay,
)
from imagine_billing.ledger.store import Store

if TYPE_CHECKING:
    from imagine_billing.ledger.budgets import Budget

__all__ = ["BOOTSTRAP", "MIN_PART", "PYTHON", "check_workers", "child", "verify_in_parts"]

MIN_PART = 50_000
"""The fewest entries a range of its own is worth: a child process starts in about 0.15 s
on a small machine, the time to replay some 25,000 entries (measured; see benches/verify.py).
Tests lower it to split a small chain."""

PYTHON = sys.executable
"""The interpreter the children run."""

BOOTSTRAP = """\
import json, sys
job = json.loads(sys.stdin.read())
sys.path[:] = job["path"]
from imagine_billing.ledger._verify_parts import child
sys.stdout.write(json.dumps(child(job)))
"""
"""The children's program: one JSON job on stdin (see `_job`), one JSON answer on stdout."""

Parse = Callable[[object, object], "Budget"]
State = list[Any]
"""Where a replay stands, as JSON: ``[id, hash, posted, held, [[hold, tokens, expires],
...], [[budget name, entry, document, added], ...]]``."""


class Part:
    """A range's outcome: the state it resumed from and the one it ends with, or the
    `LedgerCorrupted` it met (``started`` is ``None`` when that came before it started)."""

    def __init__(self, started: State | None = None, ended: State | None = None,
                 error: LedgerCorrupted | None = None) -> None:
        self.started, self.ended, self.error = started, ended, error


def check_workers(workers: object) -> int:
    """``workers`` if it is an int >= 1 (not a bool)."""
    if type(workers) is not int or workers < 1:
        raise ValueError(f"workers must be an int >= 1, the number of processes verify uses "
                         f"(got {workers!r})")
    return workers


def state_of(replay: Replay) -> State:
    """Where ``replay`` stands, as JSON (see `State`)."""
    holds = [[hold, tokens, due] for hold, (tokens, due) in sorted(replay.open.items())]
    budgets = [[name, entry, document, added]
               for name, (entry, _, document, added) in sorted(replay.budgets.items())]
    return [replay.id, replay.hash, replay.posted, replay.held, holds, budgets]


def replay_part(store: Store, since: Anchor | None, end: int, anchor: Anchor | None,
                parse: Parse) -> Part:
    """Replay the entries after ``since`` (from entry 1 when ``None``) through entry ``end``
    (inside the store's ``read``), checking ``anchor`` if the range reaches it."""
    started: State | None = None
    try:
        replay = start_replay(store, since, anchor, parse)
        started = state_of(replay)
        apply = replay.apply
        for row in store.rows(first=replay.id + 1):
            if row[0] > end:
                raise replay._misplaced(row[0])  # entry ``end`` is missing
            apply(row)
            if replay.id == end:
                return Part(started, state_of(replay))
        raise LedgerCorrupted(replay.id + 1, f"the entry is missing (the chain ends at entry "
                              f"{replay.id})")
    except LedgerCorrupted as error:
        return Part(started, None, error)


def child(job: dict[str, Any]) -> dict[str, Any]:
    """A child's work (`BOOTSTRAP`): open the store the job names read-only, replay its
    range; the answer holds the range's `Part`, or ``failed`` (the parent then replays the
    range itself)."""
    if job.get("file") != __file__:
        return {"failed": f"imported {__file__}, not {job.get('file')}"}
    where = job["store"]
    store: Any
    try:
        if "sqlite" in where:
            from imagine_billing.ledger.sqlite import SqliteStore
            store = SqliteStore(where["sqlite"], readonly=True)
        else:
            from imagine_billing.ledger.postgres import PostgresStore
            store = PostgresStore(where["postgres"], name=where["name"], readonly=True,
                                  pool_size=1)
        try:
            with store.read():
                other = _not_the_parents(store, _pair(job["since"]), (job["end"],
                                                                      job["end_hash"]))
                if other is not None:
                    return {"failed": other}
                part = replay_part(store, _pair(job["since"]), job["end"],
                                   _pair(job["anchor"]), budget_of)
        finally:
            store.close()
    except LedgerStoreError as error:
        return {"failed": str(error)}
    found = None if part.error is None else [part.error.entry, part.error.reason]
    return {"started": part.started, "ended": part.ended, "error": found}


def _not_the_parents(store: Store, *bounds: Anchor | None) -> str | None:
    """Why the child's store is not the parent's (``None`` when it is): a range's first and
    last rows must hold the hashes the parent read in its snapshot. The path may now name
    another file (a ledger restored or moved over it while the parent holds the old one
    open): the parent then checks that range itself rather than report the other file's
    entries as its own."""
    for bound in bounds:
        if bound is None:
            continue
        entry, digest = bound
        row = next(store.rows(first=entry), None)
        if row is None or row[0] != entry or row[-1] != digest:
            return f"entry {entry} here is not the one the parent read (another file?)"
    return None


def _pair(data: list[Any] | None) -> Anchor | None:
    """An `Anchor` sent as JSON."""
    return None if data is None else (data[0], data[1])


def verify_in_parts(store: Store, anchor: Anchor | None, parse: Parse, since: Anchor | None,
                    workers: int) -> Replay:
    """`replay_store` over ranges in up to ``workers`` processes (this one included), inside
    the store's ``read``; one process when the chain part is small or the store cannot be
    opened by another process."""
    shared = getattr(store, "shared", None)
    where = shared() if workers > 1 and shared is not None else None
    bounds = None if where is None else _bounds(store, since, workers)
    if where is None or bounds is None:
        return replay_store(store, anchor, parse, since)
    check_extent(store)
    starts, ends = bounds[:-1], [entry for entry, _ in bounds[1:-1]] + [-1]
    end_hashes = [digest for _, digest in bounds[1:-1]]
    anchors = [_anchor_in(anchor, start, end, index == 0)
               for index, (start, end) in enumerate(zip(starts, ends, strict=True))]
    children: list[subprocess.Popen[bytes] | None] = []
    try:
        for start, end, digest, pinned in zip(starts[:-1], ends, end_hashes, anchors,
                                              strict=False):
            _spawn(children, where, start, (end, digest), pinned)
        own, last = _own(store, starts[-1], anchors[-1], parse)
        parts = [_answer(proc) or _here(store, start, end, pinned, parse)
                 for proc, start, end, pinned in zip(children, starts, ends, anchors,
                                                     strict=False)]
    finally:
        for proc in children:
            _stop(proc)
    return _verdict(store, anchor, parse, [*parts, own], last)


def _bounds(store: Store, since: Anchor | None, workers: int) -> list[Any] | None:
    """``[since, (m1, hash), ..., (mk, hash), N]``: the ranges' starts, then the last entry;
    ``None`` when one range will do (or a boundary's row is missing: a sequential replay
    then names what is wrong)."""
    first = 0 if since is None else since[0]
    last = store.tip().id
    count = last - first
    parts = min(workers, count // MIN_PART)
    if parts < 2:
        return None
    bounds: list[Any] = [since if first else None]
    for index in range(1, parts):
        entry = first + count * index // parts
        row = next(store.rows(first=entry), None)
        if row is None or row[0] != entry or not isinstance(row[-1], str):
            return None
        bounds.append((entry, row[-1]))
    return [*bounds, last]


def _anchor_in(anchor: Anchor | None, start: Anchor | None, end: int,
               first: bool) -> Anchor | None:
    """``anchor`` for the range after ``start`` through ``end`` (-1: the last range) when
    that range checks it: it lies in the range, or before every range (the first one checks
    it, as a sequential replay does before its first row)."""
    if anchor is None:
        return None
    low = 0 if start is None else start[0]
    if (first or anchor[0] > low) and (end < 0 or anchor[0] <= end):
        return anchor
    return None


def _spawn(children: list[subprocess.Popen[bytes] | None], where: dict[str, str],
           since: Anchor | None, end: Anchor, anchor: Anchor | None) -> None:
    """Add to ``children`` a child replaying one range, after ``since`` through entry
    ``end`` (``None`` when none could start), before its job is sent: the caller ends it if
    interrupted. The job goes through stdin: a PostgreSQL URL may hold a password, and argv
    is visible to every user."""
    try:
        job = json.dumps({
            # sys.path may hold what is no str (a Path, appended by a program): not a path
            # the child's import system reads either.
            "path": [entry for entry in sys.path if isinstance(entry, str)],
            "file": __file__, "store": where, "since": since, "end": end[0],
            "end_hash": end[1], "anchor": anchor}).encode()
    except (TypeError, ValueError):
        children.append(None)  # its range is checked here
        return
    try:
        # -I: no user site nor PYTHON* variables; the job gives the parent's sys.path.
        children.append(subprocess.Popen(
            [PYTHON, "-I", "-c", BOOTSTRAP], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL))
    except OSError:
        children.append(None)
        return
    proc = children[-1]
    assert proc is not None
    try:
        assert proc.stdin is not None
        proc.stdin.write(job)
        proc.stdin.close()
    except OSError:  # it died at once: its answer will be nonsense
        pass


def _own(store: Store, since: Anchor, anchor: Anchor | None,
         parse: Parse) -> tuple[Part, Replay | None]:
    """The last range, here: from ``since`` to the end, tip and balance checks included."""
    started: State | None = None
    try:
        replay = resume(store, since, anchor, parse)
        started = state_of(replay)
        return Part(started), replay_store(store, anchor, parse, replay=replay)
    except LedgerCorrupted as error:
        return Part(started, None, error), None


def _answer(proc: subprocess.Popen[bytes] | None) -> Part | None:
    """The `Part` a child reports; ``None`` when it did not start, failed, or answered
    nonsense."""
    if proc is None:
        return None
    assert proc.stdout is not None
    out = proc.stdout.read()
    proc.wait()
    try:
        answer = json.loads(out)
        error = answer["error"]
        if error is not None:
            entry, reason = error
            if not isinstance(entry, int | str) or not isinstance(reason, str):
                return None
            return Part(_state(answer["started"]), None, LedgerCorrupted(entry, reason))
        started, ended = _state(answer["started"]), _state(answer["ended"])
    except (ValueError, TypeError, KeyError):
        return None
    return None if started is None or ended is None else Part(started, ended)


def _state(data: object) -> State | None:
    """``data`` if it has the shape of a `State`."""
    if (isinstance(data, list) and len(data) == 6 and type(data[0]) is int
            and isinstance(data[1], str) and type(data[2]) is int and type(data[3]) is int
            and isinstance(data[4], list) and isinstance(data[5], list)):
        return data
    return None


def _here(store: Store, since: Anchor | None, end: int, anchor: Anchor | None,
          parse: Parse) -> Part:
    """A range a child could not check, checked here (slower, never wrong)."""
    return replay_part(store, since, end, anchor, parse)


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    """End a child still running (this process was interrupted): no orphan is left."""
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.wait()
    if proc is not None and proc.stdout is not None:
        proc.stdout.close()


def _verdict(store: Store, anchor: Anchor | None, parse: Parse, parts: list[Part],
             last: Replay | None) -> Replay:
    """The ranges' verdict, boundary by boundary: a range's error is the first bad entry
    once every range before it checked out and it resumed from the state they give."""
    ended: State | None = None
    for part in parts:
        if ended is not None and part.started is not None and part.started != ended:
            return _rest(store, anchor, parse, ended)
        if part.error is not None:
            raise part.error
        ended = part.ended
    assert last is not None  # the last part had no error
    return last


def _rest(store: Store, anchor: Anchor | None, parse: Parse, state: State) -> Replay:
    """Replay the chain here from the proven ``state`` at a boundary where the store's
    account of it (what the next range resumed from) differs: the entries after it are
    then checked as a sequential replay checks them."""
    entry, digest, posted, held, holds, budgets = state
    replay = Replay(anchor if anchor is not None and anchor[0] > entry else None, parse)
    replay.id, replay.hash, replay.posted, replay.held = entry, digest, posted, held
    replay.open = {hold: (tokens, due) for hold, tokens, due in holds}
    replay.budgets = {name: (budget_entry, parse(budget_entry, document), document, added)
                      for name, budget_entry, document, added in budgets}
    # What is left to refund of a debit or capture up to the boundary, read from the store:
    # the chain's figure, the entries up to the boundary being proven (see the module).
    replay.earlier = refundable_before(store, entry)
    return replay_store(store, anchor, parse, replay=replay)
