"""`AsyncLedger`: the ledger's async face, on SQLite and PostgreSQL (issue 12 item 4).

The event loop must never wait on a commit: while another process holds the SQLite write
lock, or another connection holds the ledger's row lock in PostgreSQL, an awaited write
waits and the loop's other tasks run. No timings: the lock holder lets go only once a task
on the same loop has ticked, so a write that blocked the loop would find no ticks.
"""

from __future__ import annotations

import asyncio
import inspect
import io
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import psycopg
import pytest

import imagine_billing as ib
from imagine_billing.ledger import AsyncLedger, Ledger

TICKS = 5
"""How many times the ticker must run while a write waits for a lock."""

CAP = 20.0
"""Seconds after which a lock holder lets go all the same (a blocked loop never ticks): the
test then fails on its missing ticks, not by hanging."""


class Target(Protocol):
    """Where a ledger lives, and how another process or connection takes its write lock."""

    where: str
    name: str

    def lock(self) -> None: ...

    def release(self) -> None: ...


class SqliteTarget:
    """A ledger file; its write lock taken by another process (``BEGIN IMMEDIATE``)."""

    name = "main"

    def __init__(self, path: Path) -> None:
        self.where = str(path)
        self._holder: subprocess.Popen[str] | None = None

    def lock(self) -> None:
        code = ("import select, sqlite3, sys\n"
                "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
                "db.execute('BEGIN IMMEDIATE')\n"
                "print('locked', flush=True)\n"
                f"select.select([sys.stdin], [], [], {CAP})\n"
                "db.execute('ROLLBACK')\n")
        self._holder = subprocess.Popen([sys.executable, "-c", code, self.where],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True)
        assert self._holder.stdout is not None
        assert "locked" == self._holder.stdout.readline().strip()

    def release(self) -> None:
        holder = self._holder
        if holder is None:
            return
        self._holder = None
        assert holder.stdin is not None
        assert holder.stdout is not None
        try:
            holder.stdin.write("go\n")
            holder.stdin.flush()
        except BrokenPipeError:  # it let go at the cap already
            pass
        holder.stdin.close()
        holder.stdout.close()
        assert 0 == holder.wait(timeout=CAP + 10)


class PostgresTarget:
    """A named ledger in PostgreSQL; its row lock taken by another connection
    (``SELECT ... FROM ledgers WHERE ... FOR UPDATE`` in an open transaction)."""

    def __init__(self, url: str, name: str) -> None:
        self.where = url
        self.name = name
        self._holder: psycopg.Connection[tuple[object, ...]] | None = None
        self._cap: threading.Timer | None = None
        self._guard = threading.Lock()

    def lock(self) -> None:
        self._holder = psycopg.connect(self.where)
        row = self._holder.execute("SELECT id FROM ledgers WHERE name = %s FOR UPDATE",
                                   (self.name,)).fetchone()
        assert row is not None
        self._cap = threading.Timer(CAP, self.release)
        self._cap.start()

    def release(self) -> None:
        with self._guard:
            holder, self._holder = self._holder, None
            if self._cap is not None and threading.current_thread() is not self._cap:
                self._cap.cancel()
            if holder is not None:
                holder.rollback()
                holder.close()


@pytest.fixture(params=["sqlite", "postgres"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    """A ledger's place of each kind, holding 100 tokens (credit ``top-up``)."""
    made: Target
    if request.param == "sqlite":
        made = SqliteTarget(tmp_path / "tokens.db")
    else:
        made = PostgresTarget(request.getfixturevalue("pg_url"),
                              request.getfixturevalue("pg_name"))
    with Ledger.open(made.where, name=made.name) as ledger:
        ledger.credit(100, key="top-up")
    try:
        yield made
    finally:
        made.release()


class Ticker:
    """A task of the loop that ticks, and lets the lock holder go after `TICKS` ticks."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.ticks = 0

    async def run(self, then_release: bool = True) -> None:
        for _ in range(TICKS):
            await asyncio.sleep(0.01)
            self.ticks += 1
        if then_release:
            self.target.release()


class TestLoopGoesOn:
    """An awaited write that waits for another's lock leaves the event loop running."""

    def test_a_debit_waits_while_the_loop_ticks(self, target: Target) -> None:
        """The debit ends after the ticker ticked (it released the lock), and is written."""
        async def scenario() -> tuple[int, ib.Entry]:
            async with await AsyncLedger.open(target.where, name=target.name,
                                              timeout=CAP * 3) as ledger:
                ticker = Ticker(target)
                target.lock()
                debit = asyncio.create_task(ledger.debit(7, key="job-1"))
                ticking = asyncio.create_task(ticker.run())
                entry = await debit
                ticks_seen = ticker.ticks
                await ticking
                return ticks_seen, entry

        ticks_seen, entry = asyncio.run(scenario())
        assert TICKS == ticks_seen
        with Ledger.open(target.where, name=target.name, readonly=True) as ledger:
            assert entry == ledger.get("job-1")
            assert 93 == ledger.balance().available


class TestCancellation:
    """A cancelled await never abandons a write half-known."""

    def test_a_cancelled_debit_is_written_once_and_replays(self, target: Target) -> None:
        """Cancelled while it waits for the lock, the debit still runs to its end before the
        task ends (cancelled); it is written once, and a retry with its key replays it."""
        async def scenario() -> tuple[bool, ib.Entry, list[ib.Entry]]:
            async with await AsyncLedger.open(target.where, name=target.name,
                                              timeout=CAP * 3) as ledger:
                target.lock()
                debit = asyncio.create_task(ledger.debit(7, key="job-1"))
                await Ticker(target).run(then_release=False)  # the debit waits for the lock
                debit.cancel()
                await Ticker(target).run(then_release=False)
                waited = not debit.done()  # still waiting for its write's outcome
                target.release()
                with pytest.raises(asyncio.CancelledError):
                    await debit
                assert debit.cancelled()
                written = [e for e in await ledger.entries() if e.key == "job-1"]
                replay = await ledger.debit(7, key="job-1")
                return waited, replay, written

        waited, replay, written = asyncio.run(scenario())
        assert waited
        assert [replay] == written
        with Ledger.open(target.where, name=target.name, readonly=True) as ledger:
            assert 93 == ledger.balance().available
            assert 2 == ledger.verify()

    @pytest.mark.parametrize("tokens", [5, 500])
    def test_the_cancellation_comes_once_the_write_ends(self, tmp_path: Path,
                                                         tokens: int) -> None:
        """A task cancelled during a write is cancelled once the write has ended (written,
        or refused): what it does after the await never runs, and the write stays done."""
        steps: list[str] = []
        gate = threading.Event()

        async def job(ledger: AsyncLedger, started: asyncio.Event) -> None:
            loop = asyncio.get_running_loop()

            def slow_write(sync: Ledger) -> ib.Entry:
                loop.call_soon_threadsafe(started.set)
                gate.wait(CAP)
                return sync.debit(tokens, key="job-1")

            try:
                entry = await ledger.run(slow_write)
                steps.append(f"debited {entry.tokens}")
            except ib.InsufficientTokens:
                steps.append("refused")
            await asyncio.sleep(0)
            steps.append("went on")

        async def scenario() -> bool:
            async with await AsyncLedger.open(tmp_path / "t.db") as ledger:
                await ledger.credit(100, key="top-up")
                started = asyncio.Event()
                task = asyncio.create_task(job(ledger, started))
                await started.wait()
                task.cancel()
                await asyncio.sleep(0)
                gate.set()
                with pytest.raises(asyncio.CancelledError):
                    await task
                return task.cancelled()

        assert asyncio.run(scenario())
        assert [] == steps
        with Ledger.open(tmp_path / "t.db", readonly=True) as ledger:
            assert 100 - (tokens if tokens <= 100 else 0) == ledger.balance().posted

    def test_a_timeout_stays_a_timeout(self, tmp_path: Path) -> None:
        """`asyncio.timeout` expiring during a write raises `TimeoutError` once the write is
        done (the write is kept), as it would around any other await, even with no other
        await in its block; the task is not cancelled afterwards."""
        gate = threading.Event()

        def slow_credit(sync: Ledger, started: asyncio.Event,
                        loop: asyncio.AbstractEventLoop) -> ib.Entry:
            loop.call_soon_threadsafe(started.set)
            gate.wait(CAP)
            return sync.credit(5, key="grant")

        async def expire(deadline: asyncio.Timeout, started: asyncio.Event,
                         writer: asyncio.Task[None]) -> None:
            await started.wait()
            deadline.reschedule(asyncio.get_running_loop().time())  # now, during the write
            while writer.cancelling() == 0:
                await asyncio.sleep(0)
            for _ in range(TICKS):  # the cancellation reaches the writer's await
                await asyncio.sleep(0)
            gate.set()

        async def write(ledger: AsyncLedger) -> None:
            loop = asyncio.get_running_loop()
            started = asyncio.Event()
            async with asyncio.timeout(None) as deadline:
                writer = asyncio.current_task()
                assert writer is not None
                expiring = asyncio.create_task(expire(deadline, started, writer))
                await ledger.run(slow_credit, started, loop)
            await expiring

        async def scenario() -> str:
            async with await AsyncLedger.open(tmp_path / "t.db") as ledger:
                with pytest.raises(TimeoutError):
                    await write(ledger)
                await asyncio.sleep(0)  # no cancellation left over for the task
                return "went on"

        assert "went on" == asyncio.run(scenario())
        with Ledger.open(tmp_path / "t.db", readonly=True) as ledger:
            assert 5 == ledger.balance().posted


    def test_an_anyio_deadline_stays_a_timeout(self, tmp_path: Path) -> None:
        """anyio's ``fail_after`` (what Starlette and FastAPI use) expiring during a write
        raises `TimeoutError` once the write is done, and leaves no cancellation behind:
        the scope must see its own cancellation come out of the await."""
        import anyio

        def slow_credit(sync: Ledger) -> ib.Entry:
            time.sleep(0.3)  # the deadline passes meanwhile
            return sync.credit(5, key="grant")

        async def scenario() -> str:
            async with await AsyncLedger.open(tmp_path / "t.db") as ledger:
                with pytest.raises(TimeoutError), anyio.fail_after(0.05):
                    await ledger.run(slow_credit)
                await asyncio.sleep(0.01)  # no cancellation left over for the task
                return "went on"

        assert "went on" == asyncio.run(scenario())
        with Ledger.open(tmp_path / "t.db", readonly=True) as ledger:
            assert 5 == ledger.balance().posted


class TestConcurrency:
    """Many concurrent awaits on one ledger keep every rule."""

    def test_fifty_concurrent_holds(self, target: Target) -> None:
        """50 holds of 30 on 1,100 tokens: 36 succeed, 14 are refused, the balance is
        exact and the chain verifies."""
        async def scenario() -> list[ib.Hold | BaseException]:
            async with await AsyncLedger.open(target.where, name=target.name) as ledger:
                await ledger.credit(1_000, key="grant")
                return await asyncio.gather(
                    *(ledger.hold(30, key=f"job-{i}") for i in range(50)),
                    return_exceptions=True)

        results = asyncio.run(scenario())
        holds = [r for r in results if isinstance(r, ib.Hold)]
        refused = [r for r in results if not isinstance(r, ib.Hold)]
        assert (36, 14) == (len(holds), len(refused))
        assert all(isinstance(r, ib.InsufficientTokens) for r in refused)
        with Ledger.open(target.where, name=target.name, readonly=True) as ledger:
            assert ib.Balance(posted=1_100, held=1_080) == ledger.balance()
            assert 2 + 36 == ledger.verify()
            assert sorted(h.entry.id for h in holds) == sorted(
                h.entry.id for h in ledger.open_holds())


class TestFace:
    """The methods of `AsyncLedger` are those of `Ledger`, awaited."""

    ONLY_SYNC = frozenset({"batch", "relaxed", "snapshot", "close", "now", "open", "memory",
                           "from_jsonl"})
    """`Ledger` members with no async method: thread-bound blocks (`AsyncLedger.run`
    runs them), ``close`` (`aclose`), pure computations and constructors."""

    def test_every_ledger_method_has_an_async_one(self) -> None:
        """Each public method of `Ledger` that reads or writes the store is awaitable."""
        wanted = {name for name, _ in inspect.getmembers(Ledger, callable)
                  if not name.startswith("_")} - self.ONLY_SYNC
        missing = sorted(name for name in wanted if not hasattr(AsyncLedger, name))
        assert [] == missing

    def test_the_methods_tell_their_arguments(self) -> None:
        """`inspect.signature` of an async method gives the sync method's arguments (what
        help(), IDEs and frameworks read at run time), without ``self``."""
        face = AsyncLedger(Ledger.memory())
        for name in ("credit", "hold", "capture", "entries", "verify"):
            wanted = list(inspect.signature(getattr(Ledger, name)).parameters)[1:]
            assert wanted == list(inspect.signature(getattr(face, name)).parameters), name

    def test_a_tour(self, target: Target) -> None:
        """Holds, captures, refunds, budgets, reads and an export give what `Ledger` gives."""
        async def scenario() -> tuple[list[object], str]:
            async with await AsyncLedger.open(target.where, name=target.name) as ledger:
                hold = await ledger.hold(15, key="job-7", tags={"team": "a"})
                capture = await ledger.capture(hold, 10)
                await ledger.refund(capture, 4, key="refund-1")
                await ledger.void(await ledger.hold(5, key="job-8"))
                await ledger.add_budget(ib.Budget("daily", 50, period="day"))
                await ledger.note(key="n-1", memo="checked")
                out = io.StringIO()
                seen: list[object] = [
                    await ledger.balance(), await ledger.spent(),
                    await ledger.held(), [e.kind for e in await ledger.entries()],
                    await ledger.spend(by="tag:team"), await ledger.verify(),
                    (await ledger.run(ib.budget_status, "daily")).spent,
                    await ledger.export(out), ledger.ledger.balance()]
                return seen, out.getvalue()

        seen, exported = asyncio.run(scenario())
        balance = ib.Balance(posted=94, held=0)  # 100 - 10 captured + 4 refunded
        kinds = ["credit", "hold", "capture", "refund", "hold", "void", "budget", "note"]
        assert [balance, 6, 0, kinds, {"a": 6}, 8, 6, 8, balance] == seen
        with Ledger.from_jsonl(exported.splitlines()) as copy:
            assert balance == copy.balance()

    def test_the_methods_say_what_they_are(self, tmp_path: Path) -> None:
        """A bound method carries the name and docstring of its `Ledger` method."""
        async def scenario() -> tuple[str, str | None]:
            async with await AsyncLedger.open(tmp_path / "t.db") as ledger:
                return ledger.credit.__name__, ledger.credit.__doc__

        assert ("credit", Ledger.credit.__doc__) == asyncio.run(scenario())

    def test_exported(self) -> None:
        """AsyncLedger is public: in ``imagine_billing.__all__``, the same at the top level
        and in ``imagine_billing.ledger``."""
        assert "AsyncLedger" in ib.__all__
        assert AsyncLedger is ib.AsyncLedger

    def test_a_ledger_only(self) -> None:
        """AsyncLedger wraps a Ledger; anything else is refused, naming what it got."""
        with pytest.raises(TypeError, match=r"AsyncLedger takes a Ledger \(got 'tokens\.db'\)"):
            AsyncLedger("tokens.db")  # type: ignore[arg-type]

    def test_no_anyio_needed(self, tmp_path: Path) -> None:
        """Under asyncio the async ledger needs only the standard library."""
        code = ("import sys; sys.modules['anyio'] = None\n"
                "import asyncio, imagine_billing as ib\n"
                "async def main():\n"
                "    async with await ib.AsyncLedger.open(sys.argv[1]) as ledger:\n"
                "        await ledger.credit(3, key='k')\n"
                "        print((await ledger.balance()).posted)\n"
                "asyncio.run(main())\n")
        out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "t.db")],
                             capture_output=True, text=True, check=True, timeout=60).stdout
        assert "3" == out.strip()
