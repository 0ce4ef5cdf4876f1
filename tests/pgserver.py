"""A throwaway PostgreSQL server for the tests and the benches: started in a temporary
directory, listening on 127.0.0.1 and a free port, stopped and removed afterwards.

``initdb`` refuses to run as root: as root, the server's programs run as the ``postgres`` user
(``runuser -u postgres --``) in a directory it owns. The programs are found with
``pg_config --bindir`` (PostgreSQL 15 on the project's machines). The server asks for a
password (``scram-sha-256``), so that a wrong one can be tested.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

__all__ = ["PASSWORD", "Server", "bindir"]

PASSWORD = "imagine-test"
"""The password of the ``postgres`` user on a server started here."""


def bindir() -> Path:
    """The folder of PostgreSQL's programs (``pg_config --bindir``)."""
    found = shutil.which("pg_config")
    if found is None:
        candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
        if not candidates:
            raise FileNotFoundError("no PostgreSQL: pg_config is not on PATH")
        return candidates[-1]
    out = subprocess.run([found, "--bindir"], capture_output=True, text=True, check=True)
    return Path(out.stdout.strip())


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Server:
    """A PostgreSQL server of its own (`start` it, then `stop` it; a ``with`` block does
    both). ``url`` reaches its ``postgres`` database as the ``postgres`` user."""

    def __init__(self) -> None:
        self.bin = bindir()
        # Under $IMAGINE_BILLING_PG_ROOT when .ci/run sets it, so that its exit trap can
        # stop a server a killed test run left behind.
        self.root = Path(tempfile.mkdtemp(prefix="imagine-pg-",
                                          dir=os.environ.get("IMAGINE_BILLING_PG_ROOT")))
        self.data = self.root / "data"
        self.port = _free_port()
        self._as_root = os.geteuid() == 0
        self.running = False
        if self._as_root:
            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)

    @property
    def url(self) -> str:
        return f"postgresql://postgres:{PASSWORD}@127.0.0.1:{self.port}/postgres"

    def _run(self, program: str, *args: str, timeout: float = 120) -> None:
        command = [str(self.bin / program), *args]
        if self._as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              check=False, cwd=self.root)
        if done.returncode:
            raise RuntimeError(f"{program} failed ({done.returncode}): "
                               f"{done.stderr.strip() or done.stdout.strip()}")

    def start(self) -> Server:
        """Create the cluster (once) and start the server; returns ``self``."""
        try:
            if not self.data.exists():
                secret = self.root / "pw"
                secret.write_text(PASSWORD + "\n")
                if self._as_root:
                    user = pwd.getpwnam("postgres")
                    os.chown(secret, user.pw_uid, user.pw_gid)
                self._run("initdb", "-D", str(self.data), "-U", "postgres", "--no-sync",
                          "--auth=scram-sha-256", f"--pwfile={secret}", "-E", "UTF8",
                          "--locale=C")
            self._run("pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data),
                      "-l", str(self.root / "log"), "-o",
                      f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} "
                      "-c max_connections=300 -c fsync=off -c full_page_writes=off "
                      "-c shared_buffers=64MB")
        except BaseException:
            self.stop()
            raise
        self.running = True
        return self

    def restart(self, *, pause: float = 0.0) -> None:
        """Kill the server (``-m immediate``: as a crash would) and start it again."""
        self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "immediate")
        self.running = False
        time.sleep(pause)
        self.start()

    def stop(self) -> None:
        """Stop the server at once and remove its directory (also after a failed start)."""
        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "immediate")
        finally:
            self.running = False
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
