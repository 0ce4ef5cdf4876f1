"""Helpers shared by the tests: the command line as a process or in-process, its one error
line, and a clock a test moves by hand. (Fixtures are in ``conftest.py``.)"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from imagine_billing.cli import main

__all__ = ["DATA", "Clock", "exit_code", "one_error_line", "run"]

DATA = Path(__file__).parent / "data"
"""The test data: price documents, update cases, usage logs."""


def run(*args: str, text: bool = True, env: Mapping[str, str] | None = None,
        **options: Any) -> subprocess.CompletedProcess[Any]:
    """The command line as a real process, ``python -m imagine_billing ARGS...``.

    Args:
        args: The command line's arguments.
        text: Decode stdout and stderr (``False``: bytes).
        env: Variables to set on top of this process' environment.
        options: More for `subprocess.run` (``input``, ``encoding``, ``preexec_fn``...).
    """
    return subprocess.run([sys.executable, "-m", "imagine_billing", *args],
                          capture_output=True, text=text, timeout=60, check=False,
                          env=None if env is None else {**os.environ, **env}, **options)


def exit_code(argv: Sequence[str]) -> int | str | None:
    """The exit code of the command line run in-process, whether argparse exits or main
    returns."""
    try:
        return main(list(argv))
    except SystemExit as exited:
        return exited.code


def one_error_line(err: str, *, named: bool = True) -> str:
    """stderr holds exactly one line, an error, without a traceback; returns it.

    Args:
        err: What the command wrote on stderr.
        named: The line must also start with the program's name, ``imagine-billing``.
    """
    lines = err.strip().splitlines()
    assert 1 == len(lines), err
    assert "Traceback" not in err
    if named:
        assert lines[0].startswith("imagine-billing")
    return lines[0]


class Clock:
    """A ledger clock the test sets (``clock.now = ...``) or moves (`advance`) by hand."""

    def __init__(self, now: datetime = datetime(2026, 1, 1, tzinfo=UTC)) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        """Move the clock on by ``timedelta(**delta)``."""
        self.now += timedelta(**delta)


def write_book(folder: Path) -> list[str]:
    """The bundled table and a 1.1.0 raising flux-dev to 20 from 2026-01-01, as files in
    ``folder``; their paths, oldest first."""
    import imagine_billing as ib

    first = ib.load_price_table()
    second = first.with_overrides(
        {"effective_from": "2026-01-01T00:00:00Z", "styles": {"flux-dev": {"cost": 20}}},
        version="1.1.0",
    )
    paths = []
    for table in (first, second):
        path = folder / f"{table.version}.json"
        path.write_text(table.to_json(), encoding="utf-8")
        paths.append(str(path))
    return paths


CRASH_WRITER = """
import sys
import imagine_billing as ib

target, name, prefix = sys.argv[1], sys.argv[2], sys.argv[3]
with ib.Ledger.open(target, name=name) as ledger:
    i = 0
    while True:
        key = f"{prefix}-{i}"
        step = i % 4
        if step == 0:
            ledger.credit(5, key=key)
        elif step == 1:
            ledger.hold(2, key=key)
        elif step == 2:
            ledger.capture(f"{prefix}-{i - 1}", key=key)
        else:
            with ledger.batch():
                ledger.debit(1, key=key)
                ledger.credit(1, key=key + "-b")
            print(key + "-b", flush=True)  # acknowledged: the batch has committed
        print(key, flush=True)
        i += 1
"""
"""A child process for kill -9 tests (``python -c CRASH_WRITER TARGET NAME PREFIX``): it
writes credits, holds, captures and batches to the ledger ``NAME`` at ``TARGET`` (a SQLite
path or a PostgreSQL URL) until killed, printing each key once its write has returned."""
