"""Blocking ledger calls run off the event loop: the one runner of `AsyncLedger` and of the
async httpx transport.

A ledger write may wait seconds for another process' lock (SQLite's write lock, PostgreSQL's
row lock on the ledger): `off_the_loop` runs it in a worker thread of the running loop's
default executor, so that the loop's other tasks go on meanwhile. Under asyncio it needs
nothing beyond the standard library; under another event loop (trio), it uses anyio, which
comes with httpx.

A cancelled await never abandons a call half-known: the call runs to its end in its thread,
its result (or error) is returned to the awaiting task as usual, and the cancellation is
delivered at that task's next ``await``, whether the call returned or raised (anyio's
shielded scope does the same). So a write that was cancelled while it waited for a lock is
either written, and its entry returned, or refused, and its error raised: never written
behind the caller's back.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable
from typing import TypeVar

__all__ = ["off_the_loop"]

_T = TypeVar("_T")


async def off_the_loop(call: Callable[[], _T]) -> _T:
    """``call()`` run in a worker thread (the running loop's default executor, with the
    caller's context variables), shielded from cancellation until it ends.

    Raises:
        BaseException: What ``call()`` raises.
    """
    import asyncio  # imported already where a loop runs; not by `import imagine_billing`

    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # not asyncio: trio, through anyio (an httpx dependency)
        return await _off_another_loop(call)
    context = contextvars.copy_context()
    future = loop.run_in_executor(None, functools.partial(context.run, call))
    cancelled = False
    try:
        while True:
            try:
                return await asyncio.shield(future)
            except asyncio.CancelledError:
                if future.cancelled():  # the executor shut down: the call never ran
                    raise
                cancelled = True  # the call goes on in its thread: wait for its outcome
    finally:
        if cancelled and not future.cancelled():  # its result returned or its error raised
            _cancel_later()


def _cancel_later() -> None:
    """Deliver the cancellation this task swallowed at its next ``await`` (its count of
    pending cancellations as it was, for `asyncio.timeout`)."""
    import asyncio

    task = asyncio.current_task()
    if task is not None:
        task.uncancel()
        task.cancel()


async def _off_another_loop(call: Callable[[], _T]) -> _T:
    """`off_the_loop` under an event loop other than asyncio's, with anyio."""
    try:
        import anyio
    except ImportError:
        raise RuntimeError("imagine-billing runs ledger calls off the event loop with "
                           "asyncio, or with anyio under another loop (pip install "
                           "anyio)") from None
    with anyio.CancelScope(shield=True):
        return await anyio.to_thread.run_sync(call)
    raise AssertionError("unreachable: a shielded scope does not swallow exceptions")
