"""A small stand-in for the Imagine API v2, served on 127.0.0.1 for the adapter tests.

It implements the documented shapes (DESIGN.md section 1): POST multipart/form-data in, raw
image bytes out; video submit answers JSON with a job id, polled with GET; errors as JSON
bodies ``{"status": "error", "code": ..., "error": ..., "message": ...}``. Faults are queued
by the test with `ImagineServer.fault` and applied to the next metered request:
``"drop"`` (the connection is closed mid-response), ``"vanish"`` (the work is done, then the
connection is closed before any answer), ``"slow"`` (the answer comes after the client has
timed out), ``"large"`` (a 200 whose body of ``large_bytes`` is generated 1 MiB at a time),
``"large-error"`` (the same body under a 502), ``"deep"`` (a 502 whose JSON body is nested
100000 levels deep, as a broken proxy might send), or an error status (``400``, ``401``,
``402``, ``404``, ``405``, ``424``, ``429``, ``503``). Request bodies are read by
Content-Length or chunked (``Transfer-Encoding: chunked``, as httpx sends generator bodies);
form fields given twice keep their last value.
A prefix before ``/v2/`` is dropped, as a proxy in front of the API would (paths are
case-sensitive, so ``/V2/IMAGE/GENERATIONS`` is a 404).
"""

from __future__ import annotations

import collections
import email.parser
import email.policy
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STYLES = {
    "anime",
    "realistic",
    "flux-schnell",
    "flux-dev",
    "flux-dev-fast",
    "sdxl-1.0",
    "imagine-turbo",
}
IMAGE_PATHS = {
    "/v2/image/generations",
    "/v2/image/generations/transparent",
    "/v2/image/generations/ai-background",
    "/v2/image/edits/generative-fill",
    "/v2/image/background/remover",
    "/v2/image/enhance",
    "/v2/image/edits/ai-resize",
    "/v2/image/edits/remove",
}
VIDEO_PATHS = {"/v2/video/text-to-video", "/v2/video/image-to-video"}
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
ERRORS = {
    400: (1100, "BadRequest", "The request is invalid: style does not exist."),
    401: (1001, "Unauthorized", "The bearer token is invalid."),
    402: (1101, "PaymentRequired", "Not enough tokens. Purchase a subscription or top-up tokens."),
    404: (1100, "NotFound", "no such path"),
    405: (1100, "MethodNotAllowed", "method not allowed"),
    424: (1101, "NotEnoughTokens", "Not enough tokens."),
    429: (1202, "TooManyRequests", "Too many requests."),
    503: (1200, "ServiceUnavailable", "The service is not available."),
}

_POLL_SECONDS = 0.01
"""How often the serving loop looks whether it is asked to stop."""


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that timed out and left is expected here (the "slow" fault)."""


class ImagineServer:
    """The server, its received requests and its queued faults."""

    def __init__(self, *, slow_seconds: float = 2.0, large_bytes: int = 2**20) -> None:
        self.slow_seconds = slow_seconds
        self.large_bytes = large_bytes
        self.received: list[tuple[str, str, dict[str, str]]] = []
        self._faults: collections.deque[str | int] = collections.deque()
        self._lock = threading.Lock()
        self._videos: dict[str, int] = {}
        self._httpd = _QuietServer(("127.0.0.1", 0), self._handler())
        # A short poll, so that `stop` (socketserver's shutdown waits for the loop to look at
        # its flag) takes milliseconds, not the default half second per test.
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": _POLL_SECONDS}, daemon=True)

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v2``."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/v2"

    def fault(self, *faults: str | int) -> None:
        """Queue faults for the next metered requests, one each."""
        with self._lock:
            self._faults.extend(faults)

    def count(self, path: str | None = None) -> int:
        """How many requests (to ``path``, or to any path) reached the server."""
        with self._lock:
            return sum(1 for _, p, _ in self.received if path is None or p == path)

    def start(self) -> ImagineServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)

    def _next_fault(self) -> str | int | None:
        with self._lock:
            return self._faults.popleft() if self._faults else None

    def _record(self, method: str, path: str, fields: dict[str, str]) -> None:
        with self._lock:
            self.received.append((method, path, fields))

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                """Quiet: the tests read `received`, not a log."""

            def setup(self) -> None:
                super().setup()
                # Small answers written as headers then body would wait on Nagle's algorithm
                # and the client's delayed ACK (about 40 ms each): send them at once.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _send_large(self, status: int) -> None:
                """A body of ``large_bytes``, written a block at a time (never held whole)."""
                self.send_response(status)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(server.large_bytes))
                self.end_headers()
                block = b"\xab" * 2**20
                left = server.large_bytes
                while left > 0:
                    self.wfile.write(block[:left])
                    left -= len(block)

            def _error(self, status: int) -> None:
                code, name, message = ERRORS[status]
                body = {"status": "error", "code": code, "error": name, "message": message}
                self._send(status, json.dumps(body).encode(), "application/json")

            def _body(self) -> bytes:
                if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                    chunks: list[bytes] = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass  # trailer fields, up to the blank line
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()  # the CRLF ending the chunk
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _fields(self) -> dict[str, str]:
                raw = self._body()
                content_type = self.headers.get("Content-Type", "")
                if not content_type.startswith("multipart/form-data"):
                    return {}
                message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                    b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw
                )
                fields = {}
                for part in message.iter_parts():
                    name = part.get_param("name", header="content-disposition")
                    if name and part.get_filename() is None:
                        fields[str(name)] = part.get_content().strip()
                return fields

            def do_POST(self) -> None:
                fields = self._fields()
                path = self.path.split("?")[0].rstrip("/")
                if "/v2/" in path:  # behind a proxy (/imagine/v2/...): what it forwards
                    path = path[path.index("/v2/"):]
                server._record("POST", path, fields)
                if not self.headers.get("Authorization", "").startswith("Bearer vk-"):
                    self._error(401)
                    return
                fault = server._next_fault() if path in IMAGE_PATHS | VIDEO_PATHS else None
                if fault == "drop":
                    self.send_response(200)
                    self.send_header("Content-Type", "image/png")
                    self.send_header("Content-Length", str(len(PNG) * 10))
                    self.end_headers()
                    self.wfile.write(PNG[:10])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                if fault == "vanish":
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                if fault in ("large", "large-error"):
                    self._send_large(200 if fault == "large" else 502)
                    return
                if fault == "deep":
                    self._send(502, b"[" * 100_000, "application/json")
                    return
                if fault == "slow":
                    time.sleep(server.slow_seconds)
                elif isinstance(fault, int):
                    self._error(fault)
                    return
                if (
                    path == "/v2/image/generations"
                    and fields.get("style", "imagine-turbo") not in STYLES
                ):
                    self._error(400)
                elif path in IMAGE_PATHS:
                    self._send(200, PNG, "image/png")
                elif path in VIDEO_PATHS:
                    job = str(uuid.uuid4())
                    server._videos[job] = 0
                    self._send(
                        200,
                        json.dumps({"id": job, "status": "processing"}).encode(),
                        "application/json",
                    )
                else:
                    body = {"status": "error", "code": 1100, "error": "NotFound",
                            "message": "no such path"}
                    self._send(404, json.dumps(body).encode(), "application/json")

            def do_GET(self) -> None:
                path = self.path.split("?")[0].rstrip("/")
                server._record("GET", path, {})
                parts = path.strip("/").split("/")
                if len(parts) == 4 and parts[:2] == ["v2", "video"] and parts[3] == "status":
                    body = {
                        "status": "success",
                        "video": {
                            "id": parts[2],
                            "status": "finished",
                            "url": {"generation": ["https://example.invalid/v.mp4"]},
                        },
                    }
                    self._send(200, json.dumps(body).encode(), "application/json")
                else:
                    self._send(404, b"not found", "text/plain")

            def do_DELETE(self) -> None:
                path = self.path.split("?")[0].rstrip("/")
                server._record("DELETE", path, {})
                self._send(200, b'{"status":"success"}', "application/json")

        return Handler


@contextmanager
def running(*, slow_seconds: float = 2.0, large_bytes: int = 2**20) -> Iterator[ImagineServer]:
    """A started server, stopped afterwards."""
    server = ImagineServer(slow_seconds=slow_seconds, large_bytes=large_bytes).start()
    try:
        yield server
    finally:
        server.stop()
