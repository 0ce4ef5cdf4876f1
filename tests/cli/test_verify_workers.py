"""ledger verify --workers N|auto: ranges of the chain checked by that many processes."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from imagine_billing.ledger import _verify_parts
from tests.cli.test_ledger_cli import Cli
from tests.helpers import one_error_line
from tests.unit.test_ledger_sqlite import sql


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> Cli:
    """Ten entries; any chain is split (the threshold lowered); children logged."""
    monkeypatch.setattr(_verify_parts, "MIN_PART", 1)
    log, wrapper = tmp_path / "children.log", tmp_path / "python"
    wrapper.write_text(f'#!/bin/sh\necho $$ >> "{log}"\nexec "{sys.executable}" "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setattr(_verify_parts, "PYTHON", str(wrapper))
    log.touch()
    cli = Cli(tmp_path / "ledger.db", capsys)
    for n in range(10):
        cli("credit", str(n + 1), "--key", f"c{n}")
    return cli


def started(cli: Cli) -> int:
    return len((cli.db.parent / "children.log").read_text().split())


def test_workers_n(cli: Cli) -> None:
    """--workers 3 checks the ten entries with two children."""
    assert {"ok": True, "entries": 10} == {
        k: v for k, v in cli.json("verify", "--workers", "3").items()  # type: ignore[attr-defined]
        if k != "head"}
    assert 2 == started(cli)


def test_auto_is_the_cpu_count_at_most_4(cli: Cli) -> None:
    assert 0 == cli("verify")[0]
    assert min(os.cpu_count() or 1, 4) - 1 == started(cli)


def test_a_corrupted_chain_names_the_same_entry(cli: Cli) -> None:
    sql(cli.db, "DROP TRIGGER entries_append_only_update",
        "UPDATE entries SET memo = 'x' WHERE id = 2")
    alone = cli("verify", "--workers", "1")
    assert (1, "", alone[2]) == cli("verify", "--workers", "4")
    assert "entry 2" in one_error_line(alone[2], named=False)


@pytest.mark.parametrize("bad", ["0", "-1", "x", "2.5", "Auto", "1" * 7, "²"])
def test_a_bad_number_is_2(cli: Cli, bad: str) -> None:
    code, _, err = cli("verify", "--workers", bad)
    assert 2 == code
    assert f"expected a number of processes >= 1 or auto (got {bad!r})" in err
