"""The Imagine API's error answers, read from httpx responses.

Which answers the meter treats as "not enough tokens" is decided from the status (402, 424)
and, for other error statuses, the error ``code`` 1101 in the first 64 KiB of the body, read
here leniently so that a body that cannot be parsed never leaves a hold open.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Mapping

import httpx

from imagine_billing.errors import ApiError

__all__ = ["aparse_error", "parse_error", "says_short"]


def parse_error(response: httpx.Response) -> ApiError:
    """The `ApiError` of an error answer of the Imagine API.

    Reads the documented JSON body ``{"status": "error", "code": 1101, "error":
    "PaymentRequired", "message": "..."}``; lenient about ``code`` sent as a string
    (``"1101"``) and about bodies that are not JSON, or JSON nested too deeply to parse (the
    message is then the text, cut short). ``error.insufficient_tokens`` is true for 402, 424
    or code 1101.

    A body that cannot be read (a ``client.stream(...)`` response closed unread, an
    `httpx.AsyncClient` response not read yet) gives the reason phrase as the message: read
    async responses first (``await response.aread()``), or use `aparse_error`.
    """
    status = response.status_code
    content: bytes | None
    try:
        content = response.read()
    except (RuntimeError, httpx.HTTPError):
        # httpx.StreamClosed/StreamConsumed (RuntimeErrors), the RuntimeError of a sync read
        # of an async stream, or the connection dropped while reading.
        content = None
    body: object = None
    if content:
        try:
            body = json.loads(content)
        except (ValueError, RecursionError):  # not JSON, or nested past the parser's depth
            body = None
    fields: Mapping[str, object] = body if isinstance(body, Mapping) else {}
    code = _code(fields.get("code"))
    name = fields.get("error")
    message = fields.get("message")
    if not isinstance(message, str) or not message:
        text = ""
        if content:
            try:
                text = response.text
            except (UnicodeDecodeError, LookupError):  # pragma: no cover - undecodable body
                text = content.decode("utf-8", "replace")
        message = " ".join(text.split())[:200] or response.reason_phrase
    return ApiError(
        status,
        code,
        name if isinstance(name, str) and name else response.reason_phrase,
        message,
    )


async def aparse_error(response: httpx.Response) -> ApiError:
    """`parse_error` for a response of `httpx.AsyncClient`, read first if need be.

    ``async with client.stream("POST", ...) as response: error = await aparse_error(response)``
    """
    with contextlib.suppress(RuntimeError, httpx.HTTPError):  # then the reason phrase
        await response.aread()
    return parse_error(response)


def _code(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value.strip())
    return None


def says_short(read: Callable[[], httpx.Response]) -> bool:
    """Whether an error answer other than 402/424 carries the code 1101 (not enough tokens);
    false when its body cannot be read or parsed at all."""
    try:
        return parse_error(read()).code == 1101
    except Exception:  # a body that defeats the parser is not a 1101
        return False

