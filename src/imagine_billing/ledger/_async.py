"""`AsyncLedger`: the ledger's async face, each call run in a worker thread.

Why threads, on SQLite and PostgreSQL alike: the writer (`imagine_billing.ledger._writer`)
interleaves its checks with reads under the ledger's lock (the idempotency lookup, the
balance, the budgets, lapsed holds); a second writer on psycopg's ``AsyncConnection`` would
hold that logic twice. A worker thread runs the one writer: the event loop never waits on a
commit or a lock, and every rule holds as in `Ledger`.

Each method is the `Ledger` method of the same name, forwarded by `_InThread` with its
signature (so type checkers see the real arguments) and run by
`imagine_billing.ledger._threads.off_the_loop`, the runner the async httpx transport uses too.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Coroutine, Iterable
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, TypeVar, overload

from imagine_billing.ledger._threads import off_the_loop
from imagine_billing.ledger.ledger import Clock, Ledger

if TYPE_CHECKING:
    from typing import Self


__all__ = ["AsyncLedger"]

_P = ParamSpec("_P")
_R = TypeVar("_R")
_T = TypeVar("_T")


class _InThread(Generic[_P, _R]):
    """A method of `AsyncLedger`: ``method`` of its `Ledger`, awaited, run off the loop.

    ``AsyncLedger.credit = _InThread(Ledger.credit)`` makes ``await aledger.credit(100,
    key="k")`` run ``ledger.credit(100, key="k")`` in a worker thread; type checkers see
    ``credit``'s own arguments and an awaitable of its result.
    """

    def __init__(self, method: Callable[Concatenate[Ledger, _P], _R]) -> None:
        self._method = method
        self.__doc__ = method.__doc__

    @overload
    def __get__(self, instance: None, owner: type[AsyncLedger]) -> Self: ...

    @overload
    def __get__(self, instance: AsyncLedger, owner: type[AsyncLedger]
                ) -> Callable[_P, Coroutine[Any, Any, _R]]: ...

    def __get__(self, instance: AsyncLedger | None, owner: type[AsyncLedger]
                ) -> Self | Callable[_P, Coroutine[Any, Any, _R]]:
        if instance is None:
            return self
        method, ledger = self._method, instance.ledger

        async def call(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            return await _forward(method, ledger, *args, **kwargs)
        call.__name__ = call.__qualname__ = method.__name__
        call.__doc__ = method.__doc__
        call.__wrapped__ = functools.partial(method, ledger)  # type: ignore[attr-defined]
        return call


async def _forward(method: Callable[Concatenate[Ledger, _P], _R], ledger: Ledger,
                   *args: _P.args, **kwargs: _P.kwargs) -> _R:
    """``method(ledger, *args, **kwargs)``, run off the loop."""
    return await off_the_loop(functools.partial(method, ledger, *args, **kwargs))


def _listed(method: Callable[Concatenate[Ledger, _P], Iterable[_T]]
            ) -> Callable[Concatenate[Ledger, _P], list[_T]]:
    """``method`` with its results read into a list (in the worker thread, not on the
    loop, where a lazy iterator would read the store)."""
    @functools.wraps(method)
    def listed(ledger: Ledger, /, *args: _P.args, **kwargs: _P.kwargs) -> list[_T]:
        return list(method(ledger, *args, **kwargs))
    return listed


class AsyncLedger:
    """A `Ledger` for asyncio code: the same methods, awaited, each run in a worker thread.

    The event loop never waits on a commit, nor on another process' lock (SQLite's write
    lock, PostgreSQL's row lock of the ledger): the loop's other tasks run meanwhile. Every
    rule of `Ledger` holds, on every store, as the same code runs::

        async with await AsyncLedger.open("tokens.db") as ledger:
            await ledger.credit(100, key="topup-1")
            hold = await ledger.hold(15, key="job-7")      # available 85
            await ledger.capture(hold, 10)                 # spends 10, releases the other 5
            await ledger.balance()                         # Balance(posted=90, held=0, ...)

    - Cancelling a task that awaits a write does not abandon the write half-known: it runs
      to its end in its thread, then the await raises the cancellation (``TimeoutError``
      under ``asyncio.timeout`` or anyio's ``fail_after``). The write is done or refused by
      then; a retry with the same key tells which (a replay returns the entry).
    - Concurrency: each awaited call takes a thread of the loop's default executor
      (``min(32, cpus + 4)`` threads unless the loop was given another); more concurrent
      calls queue for a thread. Writers of one ledger take turns on its lock whatever their
      number (on PostgreSQL each running call also takes a connection of the store's pool).
    - `entries` returns a list, read in the worker thread: for a ledger too large for
      memory, export it (`export`) or iterate ``ledger.ledger.entries()`` in a thread of
      your own.
    - `run` runs any function of the sync ledger in a thread: a `Ledger.batch` of writes,
      a `Ledger.snapshot` of several reads, `imagine_billing.budget_status` or
      `imagine_billing.reconcile`.
    - It needs only the standard library under asyncio; under trio, anyio (an httpx
      dependency) runs the threads.

    The awaitable methods, each the `Ledger` method of that name (same arguments, same
    result): writes `Ledger.credit`, `Ledger.debit`, `Ledger.hold`, `Ledger.capture`,
    `Ledger.void`, `Ledger.refund`, `Ledger.expire_holds`, `Ledger.note`,
    `Ledger.observe`, `Ledger.add_budget`, `Ledger.update_budget`, `Ledger.remove_budget`,
    `Ledger.record_alerts`, `Ledger.mark_alert`; reads `Ledger.balance`,
    `Ledger.entries` (a list), `Ledger.get`, `Ledger.get_hold`, `Ledger.open_holds`,
    `Ledger.first_at`, `Ledger.head`, `Ledger.spent`, `Ledger.held`, `Ledger.spend`,
    `Ledger.spend_slices`, `Ledger.available_at`, `Ledger.written_after`,
    `Ledger.budgets`, `Ledger.budget`, `Ledger.budget_usage`, `Ledger.alerts`,
    `Ledger.origin`, `Ledger.verify`, `Ledger.export`. The planner's functions of a
    ledger run with `run`: ``await aledger.run(imagine_billing.budget_status, "daily")``.

    Args:
        ledger: The `Ledger` to run (`open` opens one); closed by `aclose`.
    """

    def __init__(self, ledger: Ledger) -> None:
        if not isinstance(ledger, Ledger):
            raise TypeError(f"AsyncLedger takes a Ledger (got {ledger!r}); open one with "
                            "`await AsyncLedger.open(path_or_url)`")
        self._ledger = ledger

    @classmethod
    async def open(cls, path: str | os.PathLike[str], *, name: str = "main",
                   clock: Clock | None = None, durable: bool = True, timeout: float = 30.0,
                   readonly: bool = False) -> AsyncLedger:
        """`Ledger.open` (a SQLite file or a ``postgresql://`` URL, the same arguments) run
        off the loop (creating a schema or connecting may take a while).

        Raises:
            LedgerStoreError: As `Ledger.open`.
        """
        return cls(await off_the_loop(functools.partial(
            Ledger.open, path, name=name, clock=clock, durable=durable, timeout=timeout,
            readonly=readonly)))

    @property
    def ledger(self) -> Ledger:
        """The sync `Ledger` (for `Ledger.now` and other pure computations, and for
        threads of your own: calls on the loop would block it)."""
        return self._ledger

    async def aclose(self) -> None:
        """Close the ledger, off the loop."""
        await off_the_loop(self._ledger.close)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def run(self, call: Callable[Concatenate[Ledger, _P], _R], /,
                  *args: _P.args, **kwargs: _P.kwargs) -> _R:
        """``call(ledger, *args, **kwargs)`` run in a worker thread, for what has no async
        method: a batch of writes (all or nothing) or several reads of one state::

            def top_up(ledger: Ledger) -> None:
                with ledger.batch():
                    ledger.credit(500, key="grant-a")
                    ledger.credit(300, key="grant-b")

            await aledger.run(top_up)
        """
        return await _forward(call, self._ledger, *args, **kwargs)

    # Writes.
    note = _InThread(Ledger.note)
    observe = _InThread(Ledger.observe)
    credit = _InThread(Ledger.credit)
    hold = _InThread(Ledger.hold)
    debit = _InThread(Ledger.debit)
    capture = _InThread(Ledger.capture)
    void = _InThread(Ledger.void)
    expire_holds = _InThread(Ledger.expire_holds)
    refund = _InThread(Ledger.refund)
    add_budget = _InThread(Ledger.add_budget)
    update_budget = _InThread(Ledger.update_budget)
    remove_budget = _InThread(Ledger.remove_budget)
    record_alerts = _InThread(Ledger.record_alerts)
    mark_alert = _InThread(Ledger.mark_alert)
    # Reads.
    entries = _InThread(_listed(Ledger.entries))
    balance = _InThread(Ledger.balance)
    get = _InThread(Ledger.get)
    get_hold = _InThread(Ledger.get_hold)
    open_holds = _InThread(Ledger.open_holds)
    first_at = _InThread(Ledger.first_at)
    head = _InThread(Ledger.head)
    spent = _InThread(Ledger.spent)
    held = _InThread(Ledger.held)
    spend = _InThread(Ledger.spend)
    spend_slices = _InThread(Ledger.spend_slices)
    available_at = _InThread(Ledger.available_at)
    written_after = _InThread(Ledger.written_after)
    budgets = _InThread(Ledger.budgets)
    budget = _InThread(Ledger.budget)
    budget_usage = _InThread(Ledger.budget_usage)
    alerts = _InThread(Ledger.alerts)
    origin = _InThread(Ledger.origin)
    verify = _InThread(Ledger.verify)
    export = _InThread(Ledger.export)
