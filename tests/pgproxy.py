"""A TCP proxy on 127.0.0.1 between PostgreSQL clients and a server that can lose one
``COMMIT``: it reads the client's side of the protocol enough to see the ``COMMIT`` coming
(a simple query ``Q``, as psycopg's ``transaction()`` sends it, or an extended-protocol
``Parse``/``Bind`` of it, as psycopg sends it in pipeline mode; a ``Bind`` of a statement
prepared earlier by name counts too), and then, once armed:

- ``BEFORE``: drops both connections before the ``COMMIT`` reaches the server, which rolls
  the transaction back (or before another statement named when armed: mid-transaction);
- ``AFTER``: forwards the ``COMMIT``, waits for the server's ``CommandComplete`` of it (the
  transaction is kept), and drops both connections before that answer reaches the client.

Plain sockets and one thread per direction; the startup packets (no type byte) pass through,
and connections must not ask for TLS (``sslmode=disable``).
"""

from __future__ import annotations

import socket
import struct
import threading
from contextlib import suppress
from urllib.parse import urlsplit, urlunsplit

__all__ = ["AFTER", "BEFORE", "Proxy"]

BEFORE = "before"
AFTER = "after"
COMMITTED = b"C" + struct.pack("!I", 4 + len(b"COMMIT\0")) + b"COMMIT\0"
"""The server's ``CommandComplete`` of a ``COMMIT`` that kept the transaction."""
_READY = b"Z" + struct.pack("!I", 5)
"""The start of the server's ``ReadyForQuery``: the end of its answer to a ``Sync``."""

_STARTUP = 196608  # protocol 3.0; the other startup codes ask for TLS, GSS or a cancel


def _starts(sql: bytes, statement: bytes) -> bool:
    """Whether ``sql`` is ``statement`` or starts with it (words, case ignored)."""
    words = b" ".join(sql.rstrip().rstrip(b";").split()).upper()
    return words == statement or words.startswith(statement + b" ")


def _cstring(body: bytes, start: int = 0) -> tuple[bytes, int]:
    end = body.index(b"\0", start)
    return body[start:end], end + 1


class _Reader:
    """Whole frontend messages, ``(type, raw bytes)``, from a client's byte stream."""

    def __init__(self) -> None:
        self.buffer = b""
        self.started = False

    def messages(self, data: bytes) -> list[tuple[bytes, bytes]]:
        self.buffer += data
        found = []
        while True:
            head = 4 if not self.started else 5
            if len(self.buffer) < head:
                return found
            size = struct.unpack("!I", self.buffer[head - 4:head])[0] + head - 4
            if len(self.buffer) < size:
                return found
            raw, self.buffer = self.buffer[:size], self.buffer[size:]
            if not self.started:
                self.started = struct.unpack("!I", raw[4:8])[0] == _STARTUP
                found.append((b"", raw))
            else:
                found.append((raw[:1], raw))


class _Link:
    """One client's connection and its server connection."""

    def __init__(self, proxy: Proxy, client: socket.socket) -> None:
        self.proxy = proxy
        self.client = client
        self.server = socket.create_connection(proxy.target)
        self.statements: dict[bytes, bytes] = {}
        self.watching = False
        """Whether the COMMIT was forwarded and its answer is to be held back (``AFTER``)."""

    def start(self) -> None:
        for target in (self._upstream, self._downstream):
            threading.Thread(target=target, daemon=True).start()

    def drop(self) -> None:
        for side in (self.client, self.server):
            with suppress(OSError):
                side.shutdown(socket.SHUT_RDWR)
            side.close()

    def _sql(self, kind: bytes, raw: bytes) -> bytes:
        """The SQL this message sends, or b"" (and remember the statements parsed)."""
        body = raw[5:]
        if kind == b"Q":
            return _cstring(body)[0]
        if kind == b"P":
            name, at = _cstring(body)
            self.statements[name] = _cstring(body, at)[0]
            return self.statements[name]
        if kind == b"B":
            _portal, at = _cstring(body)
            return self.statements.get(_cstring(body, at)[0], b"")
        return b""

    def _upstream(self) -> None:
        reader = _Reader()
        try:
            while data := self.client.recv(65536):
                for kind, raw in reader.messages(data):
                    fault = None
                    if kind and not self.watching:
                        fault = self.proxy.take(self._sql(kind, raw))
                    if fault == BEFORE:
                        self.proxy.fired.set()  # first: the client wakes at the drop
                        self.drop()
                        return
                    self.watching = self.watching or fault == AFTER
                    self.server.sendall(raw)
        except OSError:
            pass
        self.drop()

    def _downstream(self) -> None:
        held = b""
        try:
            while data := self.server.recv(65536):
                if not self.watching:
                    self.client.sendall(data)
                    continue
                held += data
                if COMMITTED in held:  # the server kept it; the client never hears so
                    self.proxy.fired.set()
                    self.drop()
                    return
                if _READY in held:  # answered without keeping it: pass it on, not fired
                    self.watching = False
                    self.client.sendall(held)
                    held = b""
        except OSError:
            pass
        self.drop()


class Proxy:
    """The proxy (see the module's notes): `url` reaches the server through it; `arm` makes
    the next ``COMMIT`` (or other statement) of any connection fail one way, once; `fired`
    is set when it has."""

    def __init__(self, server_url: str) -> None:
        parts = urlsplit(server_url)
        self.target = (parts.hostname or "127.0.0.1", parts.port or 5432)
        self._listener = socket.create_server(("127.0.0.1", 0))
        port = self._listener.getsockname()[1]
        netloc = parts.netloc.rsplit(":", 1)[0] + f":{port}"
        self.url = urlunsplit(parts._replace(netloc=netloc, query="sslmode=disable"))
        self.fired = threading.Event()
        self._armed: tuple[str, bytes] | None = None
        self._lock = threading.Lock()
        self._links: list[_Link] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def arm(self, fault: str, statement: str = "COMMIT") -> None:
        """Break the next ``statement`` (SQL that is it or starts with it) of any connection:
        drop both connections ``BEFORE`` it reaches the server, or (a ``COMMIT`` only) once
        the server has kept it, ``AFTER``."""
        if fault not in (BEFORE, AFTER) or (fault == AFTER and statement != "COMMIT"):
            raise ValueError(f"fault must be {BEFORE!r}, or {AFTER!r} with COMMIT "
                             f"(got {fault!r} with {statement!r})")
        self.fired.clear()
        with self._lock:
            self._armed = (fault, statement.upper().encode())

    def take(self, sql: bytes) -> str | None:
        """The armed fault if ``sql`` is its statement, disarmed; else ``None``."""
        with self._lock:
            if self._armed is None or not sql or not _starts(sql, self._armed[1]):
                return None
            fault, self._armed = self._armed[0], None
        return fault

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            link = _Link(self, client)
            self._links.append(link)
            link.start()

    def close(self) -> None:
        with suppress(OSError):  # wakes the accepting thread (a close alone does not)
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        for link in self._links:
            link.drop()

    def __enter__(self) -> Proxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
