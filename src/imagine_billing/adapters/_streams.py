"""The bodies of metered answers, as httpx streams: passed through as they come.

A 2xx body is not read by the transport: it streams through to the caller
(``client.stream(...)`` holds one chunk at a time, as without the meter), and its end, its
failure or its closing settles the hold (`imagine_billing.adapters._settling.Ending`). Of an
error answer the transport reads only the first 64 KiB (`Head`), to look for the error code
1101; a longer body streams through to the caller after it (`Tail`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from functools import partial
from typing import TYPE_CHECKING

import httpx

from imagine_billing.ledger._threads import off_the_loop

if TYPE_CHECKING:
    from imagine_billing.adapters._settling import Ending

__all__ = ["AsyncStreamed", "AsyncTail", "Head", "Streamed", "Tail", "answer", "readable"]

_ERROR_BODY_LIMIT = 64 * 1024
"""How much of an error answer's body the transport reads to look for the code 1101 (error
bodies are short JSON); a longer body streams through to the caller."""


def answer(response: httpx.Response,
           stream: httpx.SyncByteStream | httpx.AsyncByteStream) -> httpx.Response:
    """A response like the inner transport's, for the client, its body ``stream`` not read
    yet: the client reads it (or streams it), decodes it and times it, as without the meter."""
    return httpx.Response(response.status_code, headers=response.headers, stream=stream,
                          extensions=response.extensions)


def readable(response: httpx.Response) -> httpx.Response:
    """The answer with its body readable by `parse_error`: a copy, as the caller's answer is
    not read yet (unless the inner transport read it)."""
    if response.is_stream_consumed:
        return response
    return httpx.Response(response.status_code, headers=response.headers,
                          stream=response.stream, extensions=response.extensions)


class Head:
    """The part of an error answer's body read so far (up to `_ERROR_BODY_LIMIT`, and the
    chunk that passes it)."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self._size = 0

    def add(self, chunk: bytes) -> bool:
        """Keep ``chunk``; whether the limit is passed (then the rest is not read)."""
        self.chunks.append(chunk)
        self._size += len(chunk)
        return self._size > _ERROR_BODY_LIMIT

    def read(self, chunks: Iterator[bytes]) -> bool:
        """Read up to the limit of a body; whether the body ended."""
        return not any(self.add(chunk) for chunk in chunks)

    async def aread(self, chunks: AsyncIterator[bytes]) -> bool:
        """`read` of an async body."""
        async for chunk in chunks:
            if self.add(chunk):
                return False
        return True

    def answer(self, response: httpx.Response) -> httpx.Response:
        """The answer with the part of its body read so far, for `parse_error`."""
        return answer(response, httpx.ByteStream(b"".join(self.chunks)))


class Streamed(httpx.SyncByteStream):
    """A 2xx answer's body, passed through as it comes; its end settles the hold."""

    def __init__(self, response: httpx.Response, ending: Ending) -> None:
        self._response = response
        self._ending = ending

    def __iter__(self) -> Iterator[bytes]:
        chunks = self._response.iter_raw()
        while True:
            try:
                chunk = next(chunks)
            except StopIteration:
                break
            except BaseException as error:
                self._ending.end(error)
                raise
            yield chunk
        self._ending.end(None)

    def close(self) -> None:
        try:
            self._response.close()
        finally:
            self._ending.end(None)


class AsyncStreamed(httpx.AsyncByteStream):
    """`Streamed` for the async transport."""

    def __init__(self, response: httpx.Response, ending: Ending) -> None:
        self._response = response
        self._ending = ending

    async def __aiter__(self) -> AsyncIterator[bytes]:
        chunks = self._response.aiter_raw()
        while True:
            try:
                chunk = await anext(chunks)
            except StopAsyncIteration:
                break
            except BaseException as error:
                await off_the_loop(partial(self._ending.end, error))
                raise
            yield chunk
        await off_the_loop(partial(self._ending.end, None))

    async def aclose(self) -> None:
        try:
            await self._response.aclose()
        finally:
            await off_the_loop(partial(self._ending.end, None))


class Tail(httpx.SyncByteStream):
    """An error answer's body longer than the transport reads: what it read, then the rest."""

    def __init__(self, head: Head, rest: Iterator[bytes], response: httpx.Response) -> None:
        self._head = head.chunks
        self._rest = rest
        self._response = response

    def __iter__(self) -> Iterator[bytes]:
        yield from self._head
        yield from self._rest

    def close(self) -> None:
        self._response.close()


class AsyncTail(httpx.AsyncByteStream):
    """`Tail` for the async transport."""

    def __init__(self, head: Head, rest: AsyncIterator[bytes],
                 response: httpx.Response) -> None:
        self._head = head.chunks
        self._rest = rest
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self._head:
            yield chunk
        async for chunk in self._rest:
            yield chunk

    async def aclose(self) -> None:
        await self._response.aclose()
