"""Where the tests' PostgreSQL comes from (`tests.pgserver`): its programs are found in a fixed
order, and a server started from the programs found answers queries."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import throwaway_server
from tests.pgserver import BINDIR_VARIABLE, WHEEL

REPO = Path(__file__).resolve().parents[2]

FIND = ("import sys, pathlib, tests.pgserver as found\n"
        "found.SYSTEM_ROOT = pathlib.Path(sys.argv[1])\n"
        "try:\n"
        "    print(found.bindir())\n"
        "except FileNotFoundError as error:\n"
        "    print('none:', error)\n")


def _programs(folder: Path, *names: str) -> Path:
    """A folder holding (empty) programs: discovery looks for them, never runs them."""
    folder.mkdir(parents=True)
    for name in names or ("initdb", "pg_ctl", "postgres"):
        (folder / name).write_text("")
    return folder


class Machine:
    """A made-up machine: which of the four places hold PostgreSQL's programs."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.env: dict[str, str] = {}
        self.path = root / "path"  # PATH: pg_config, when there is one, and nothing else
        self.path.mkdir()
        self.system = root / "usr-lib-postgresql"
        self.system.mkdir()
        self.site = root / "site"  # on PYTHONPATH: the wheel's package, when there is one

    def given(self) -> Path:
        self.env[BINDIR_VARIABLE] = str(_programs(self.root / "given"))
        return Path(self.env[BINDIR_VARIABLE])

    def pg_config(self, *programs: str) -> Path:
        folder = _programs(self.root / "configured", *programs)
        script = self.path / "pg_config"
        script.write_text(f"#!/bin/sh\necho {folder}\n")
        script.chmod(0o755)
        return folder

    def distribution(self) -> Path:
        _programs(self.system / "9.6" / "bin")
        _programs(self.system / "16" / "bin", "initdb")  # no server: passed over
        return _programs(self.system / "15" / "bin")

    def wheel(self) -> Path:
        _programs(self.site / WHEEL / "pginstall" / "bin")
        (self.site / WHEEL / "__init__.py").write_text("raise ImportError('never imported')\n")
        return _programs(self.site / WHEEL / "pginstall18" / "bin")

    def find(self) -> str:
        env = {"PATH": str(self.path), "PYTHONPATH": os.pathsep.join([str(REPO), str(self.site)]),
               **self.env}
        done = subprocess.run([sys.executable, "-c", FIND, str(self.system)], env=env,
                              capture_output=True, text=True, check=True, cwd=self.root)
        return done.stdout.strip()


def test_the_programs_are_found_in_order(tmp_path: Path) -> None:
    machine = Machine(tmp_path)
    assert machine.find().startswith("none: no PostgreSQL")
    wheel = machine.wheel()
    assert machine.find() == str(wheel)
    distribution = machine.distribution()
    assert machine.find() == str(distribution)
    machine.pg_config("pg_ctl")  # a client's pg_config (libpq's): no server there
    assert machine.find() == str(distribution)
    shutil.rmtree(tmp_path / "configured")
    configured = machine.pg_config()
    assert machine.find() == str(configured)
    given = machine.given()
    assert machine.find() == str(given)


def test_a_named_folder_without_a_server_is_refused(tmp_path: Path) -> None:
    machine = Machine(tmp_path)
    machine.distribution()
    machine.env[BINDIR_VARIABLE] = str(_programs(tmp_path / "half", "pg_ctl"))
    found = machine.find()
    assert found.startswith(f"none: ${BINDIR_VARIABLE} is ")
    assert str(tmp_path / "half") in found
    assert "initdb" in found


def test_a_server_from_the_programs_found_answers() -> None:
    import psycopg

    server = throwaway_server()
    try:
        shown = subprocess.run([str(server.bin / "postgres"), "--version"],
                               capture_output=True, text=True, check=True).stdout
        with psycopg.connect(server.url) as conn:
            version, answer = conn.execute("SELECT current_setting('server_version'), "
                                           "6 * 7").fetchone()
        assert answer == 42
        assert shown.split()[2] == version.split()[0]  # "postgres (PostgreSQL) 15.18 ..."
    finally:
        server.stop()
