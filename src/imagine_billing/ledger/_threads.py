"""Blocking ledger calls run off the event loop: the one runner of `AsyncLedger` and of the
async httpx transport.

A ledger write may wait seconds for another process' lock (SQLite's write lock, PostgreSQL's
row lock on the ledger): `off_the_loop` runs it in a worker thread of the running loop's
default executor, so that the loop's other tasks go on meanwhile. Under asyncio it needs
nothing beyond the standard library; under another event loop (trio), it uses anyio, which
comes with httpx.

A cancelled await never abandons a call half-known: the call runs to its end in its thread,
and only then does the awaiting task see its cancellation (a `CancelledError`, which
`asyncio.timeout` and anyio's scopes turn into `TimeoutError`). So a write that was
cancelled while it waited for a lock is either written or refused when the task ends, never
written later behind the caller's back; the caller does not learn which, and a retry with
the same key tells (a replay returns the entry). A caller that must undo what a cancelled
call did gives ``undo``: it runs, in a thread too, with the call's result, before the
cancellation is raised (the async transport voids a hold this way).
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable
from contextlib import suppress
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    import asyncio

__all__ = ["off_the_loop"]

_T = TypeVar("_T")


async def off_the_loop(call: Callable[[], _T], *,
                      undo: Callable[[_T], object] | None = None) -> _T:
    """``call()`` run in a worker thread (the running loop's default executor, with the
    caller's context variables), awaited to its end whatever cancellations come meanwhile.

    Args:
        call: What to run.
        undo: Run with ``call()``'s result when the task was cancelled meanwhile, before
            the cancellation is raised (its own errors are not raised: the cancellation is).

    Raises:
        BaseException: What ``call()`` raises; `asyncio.CancelledError` when the task was
            cancelled meanwhile (once the call has ended, whatever its outcome).
    """
    import asyncio  # imported already where a loop runs; not by `import imagine_billing`

    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # not asyncio: trio, through anyio (an httpx dependency)
        return await _off_another_loop(call, undo)
    result, cancelled = await _to_the_end(loop, call)
    if cancelled is not None:
        if undo is not None:
            with suppress(Exception):
                await _to_the_end(loop, functools.partial(undo, result))
        raise cancelled  # the one that came (its message tells a scope it is its own)
    return result


async def _to_the_end(loop: asyncio.AbstractEventLoop, call: Callable[[], _T]) -> tuple[
        _T, asyncio.CancelledError | None]:
    """``call()``'s result, run in a worker thread and awaited to its end, and the
    cancellation of the awaiting task that came meanwhile, if one did (raised instead of
    ``call()``'s error when it failed)."""
    import asyncio

    context = contextvars.copy_context()
    future = loop.run_in_executor(None, functools.partial(context.run, call))
    cancelled: asyncio.CancelledError | None = None
    while True:
        try:
            return await asyncio.shield(future), cancelled
        except asyncio.CancelledError as error:
            if future.cancelled():  # the executor shut down: the call never ran
                raise
            cancelled = error  # the call goes on in its thread: wait for its outcome
        except BaseException as error:
            if cancelled is not None:
                raise cancelled from error
            raise


async def _off_another_loop(call: Callable[[], _T],
                            undo: Callable[[_T], object] | None) -> _T:
    """`off_the_loop` under an event loop other than asyncio's, with anyio."""
    try:
        import anyio
    except ImportError:
        raise RuntimeError("imagine-billing runs ledger calls off the event loop with "
                           "asyncio, or with anyio under another loop (pip install "
                           "anyio)") from None
    with anyio.CancelScope(shield=True):
        result = await anyio.to_thread.run_sync(call)
    try:
        await anyio.lowlevel.checkpoint_if_cancelled()
    except anyio.get_cancelled_exc_class():
        if undo is not None:
            with anyio.CancelScope(shield=True), suppress(Exception):
                await anyio.to_thread.run_sync(functools.partial(undo, result))
        raise
    return result
