"""A webhook receiver on 127.0.0.1 for the alert delivery tests: a real HTTP server in a thread.

It records every POST (path, headers, body) and answers with the statuses the test queued
(`Receiver.answers`: one per request, then 200), or drops the connection (``"drop"``). With
``dedupe``, it acts as a careful receiver: a repeated ``Idempotency-Key`` is answered 200 and
not recorded as new (`Receiver.taken`).
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import attrs


@attrs.frozen
class Posted:
    """One request the receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    """The receiver's state: what it got, and how it is to answer."""

    def __init__(self) -> None:
        self.posts: list[Posted] = []
        self.answers: collections.deque[int | str] = collections.deque()
        self.taken: dict[str, bytes] = {}
        """Idempotency-Key -> body, of the requests answered 2xx."""
        self.url = ""
        self.lock = threading.Lock()
        self.gate: threading.Event | None = None
        """When set to an event, each request waits for it before it is answered (`arrived`
        is set first): a test acts while a request is in flight."""
        self.arrived = threading.Event()

    def handle(self, post: Posted) -> int | str:
        with self.lock:
            self.posts.append(post)
            answer = self.answers.popleft() if self.answers else 200
            if isinstance(answer, int) and 200 <= answer < 300:
                self.taken.setdefault(post.headers.get("idempotency-key", ""), post.body)
            return answer


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            if receiver.gate is not None:
                receiver.arrived.set()
                receiver.gate.wait(30)
            answer = receiver.handle(Posted(self.path, headers, body))
            if answer == "drop":
                self.close_connection = True
                self.connection.close()
                return
            assert isinstance(answer, int)
            self.send_response(answer)
            if answer in (301, 302, 307, 308):
                self.send_header("Location", "/elsewhere")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@contextmanager
def receiving() -> Iterator[Receiver]:
    """A receiver listening on a free port of 127.0.0.1 until the block ends."""
    receiver = Receiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(receiver))
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/secret-path"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
