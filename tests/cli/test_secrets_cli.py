"""No command prints a secret of the PostgreSQL URL it was given (attack review item 4):
the password, nor libpq's other secret parameters (``sslpassword``...), on stderr or in a
``--json`` error. No server is needed: the URLs name a port where none listens."""

from __future__ import annotations

import json
import os
import socket
import urllib.parse

import pytest

from tests.helpers import exit_code, one_error_line


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
def url() -> str:
    return (f"postgresql://bob:Sup3rS3cret@127.0.0.1:{closed_port()}/billing"
            "?sslmode=prefer&sslpassword=KeyPassphrase&connect_timeout=2")


SHOWN = "postgresql://bob@127.0.0.1:{port}/billing?sslmode=prefer&connect_timeout=2"


def assert_no_secret(text: str) -> None:
    assert "Sup3rS3cret" not in text, text
    assert "KeyPassphrase" not in text, text


@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_plan_with_both_budgets(url: str, json_flag: list[str],
                                capsys: pytest.CaptureFixture[str]) -> None:
    """plan --tokens N --db URL is refused, naming the URL without its secrets."""
    assert 2 == exit_code(["plan", "--tokens", "100", "--db", url, "flux-dev", *json_flag])
    captured = capsys.readouterr()
    assert_no_secret(captured.out + captured.err)
    port = urllib.parse.urlsplit(url).port
    shown = SHOWN.format(port=port)
    if json_flag:
        assert shown in json.loads(captured.err)["error"]
    else:
        assert shown in one_error_line(captured.err)


@pytest.mark.parametrize("argv", [
    ["ledger", "balance"], ["ledger", "entries"], ["ledger", "credit", "5", "--key", "k"],
    ["budget", "status"], ["forecast"], ["plan", "flux-dev"], ["alerts", "list"],
    ["ledger", "import", "-"],
])
@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_an_unreachable_server(url: str, argv: list[str], json_flag: list[str],
                               capsys: pytest.CaptureFixture[str],
                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Every command that opens the ledger names the server without its secrets."""
    with open(os.devnull, encoding="utf-8") as empty:  # ledger import - reads stdin
        monkeypatch.setattr("sys.stdin", empty)
        code = exit_code([*argv, "--db", url, *json_flag])
    captured = capsys.readouterr()
    assert code == 2, captured
    assert_no_secret(captured.out + captured.err)
    assert "cannot reach the server" in captured.out + captured.err
