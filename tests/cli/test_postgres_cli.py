"""The command line on a PostgreSQL ledger: --db URL, --ledger NAME, IMAGINE_BILLING_DB,
and moving a ledger between SQLite and PostgreSQL (issue 12 item 5), on a real server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imagine_billing.cli import main
from tests.helpers import exit_code, one_error_line


def out_of(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert 0 == main(argv), capsys.readouterr().err
    return capsys.readouterr().out


class TestLedgerOnAServer:
    def test_writes_and_reads_by_url_and_name(self, pg_url: str, pg_name: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
        """--db URL and --ledger NAME before or after the subcommand; the read-only
        commands (balance, entries, verify, budget status, forecast) read it too."""
        db = ["--db", pg_url, "--ledger", pg_name]
        out_of(capsys, ["ledger", *db, "credit", "100", "--key", "top-up"])
        out_of(capsys, ["ledger", "debit", "flux-dev:4", "anime", "--key", "batch", *db])
        out_of(capsys, ["budget", *db, "add", "month", "--limit", "500", "--period", "month"])
        balance = json.loads(out_of(capsys, ["ledger", "balance", *db, "--json"]))
        assert 35 == balance["available"]
        entries = json.loads(out_of(capsys, ["ledger", *db, "entries", "--json"]))["entries"]
        assert ["credit", "debit", "budget"] == [e["kind"] for e in entries]
        assert "head:" in out_of(capsys, ["ledger", *db, "verify"])
        assert 65 == json.loads(out_of(capsys, ["budget", *db, "status", "--json"]))[0]["spent"]
        assert "available" in out_of(capsys, ["forecast", *db])

    def test_the_environment_names_the_server(self, pg_url: str, pg_name: str,
                                              monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
        monkeypatch.setenv("IMAGINE_BILLING_DB", pg_url)
        out_of(capsys, ["ledger", "--ledger", pg_name, "credit", "7", "--key", "k"])
        assert 7 == json.loads(out_of(capsys, ["ledger", "balance", "--ledger", pg_name,
                                               "--json"]))["available"]

    def test_the_configuration_names_the_ledger(self, pg_url: str, pg_name: str,
                                                tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
        """``ledger`` of imagine-billing.toml is the default of --ledger (the option wins),
        and plan --tokens does not take it for a --ledger given in vain."""
        monkeypatch.chdir(tmp_path)
        monkeypatch.delenv("IMAGINE_BILLING_DB", raising=False)
        (tmp_path / "imagine-billing.toml").write_text(
            f'db = "{pg_url}"\nledger = "{pg_name}"\n', encoding="utf-8")
        out_of(capsys, ["ledger", "credit", "7", "--key", "k"])
        assert 7 == json.loads(out_of(capsys, ["ledger", "--ledger", pg_name, "balance",
                                               "--json"]))["available"]
        other = ["ledger", "--ledger", f"{pg_name}-other"]
        out_of(capsys, [*other, "credit", "1", "--key", "k"])
        assert 1 == json.loads(out_of(capsys, [*other, "balance", "--json"]))["available"]
        assert 7 == json.loads(out_of(capsys, ["ledger", "balance", "--json"]))["available"]
        assert 7 == json.loads(out_of(capsys, ["plan", "anime", "--json"]))["tokens"]
        assert 10 == json.loads(out_of(capsys, ["plan", "--tokens", "10", "anime",
                                                "--json"]))["tokens"]

    def test_two_names_are_two_ledgers(self, pg_url: str, pg_name: str,
                                       capsys: pytest.CaptureFixture[str]) -> None:
        out_of(capsys, ["ledger", "--db", pg_url, "--ledger", f"{pg_name}-a", "credit", "5",
                        "--key", "k"])
        out_of(capsys, ["ledger", "--db", pg_url, "--ledger", f"{pg_name}-b", "credit", "9",
                        "--key", "k"])
        figures = [json.loads(out_of(capsys, ["ledger", "--db", pg_url, "--ledger",
                                              f"{pg_name}-{x}", "balance", "--json"]))
                   for x in "ab"]
        assert [5, 9] == [f["available"] for f in figures]

    def test_sqlite_to_postgres_and_back(self, pg_url: str, pg_name: str, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
        """ledger export from a file, import into the server, export again: the same lines
        (entries and hashes), and back into a new file."""
        local = str(tmp_path / "l.db")
        out_of(capsys, ["ledger", "--db", local, "credit", "100", "--key", "c"])
        out_of(capsys, ["ledger", "--db", local, "hold", "flux-dev", "--key", "h"])
        out_of(capsys, ["ledger", "--db", local, "capture", "h"])
        exported = tmp_path / "l.jsonl"
        exported.write_text(out_of(capsys, ["ledger", "--db", local, "export"]),
                            encoding="utf-8")
        imported = out_of(capsys, ["ledger", "--db", pg_url, "--ledger", pg_name, "import",
                                   str(exported)])
        assert f"(ledger {pg_name!r})" in imported
        again = tmp_path / "again.jsonl"
        again.write_text(out_of(capsys, ["ledger", "--db", pg_url, "--ledger", pg_name,
                                         "export"]), encoding="utf-8")
        assert exported.read_text(encoding="utf-8") == again.read_text(encoding="utf-8")
        back = str(tmp_path / "back.db")
        out_of(capsys, ["ledger", "--db", back, "import", str(again)])
        assert 85 == json.loads(out_of(capsys, ["ledger", "--db", back, "balance",
                                                "--json"]))["available"]

    def test_a_password_is_never_printed(self, pg_url: str, pg_name: str,
                                         capsys: pytest.CaptureFixture[str]) -> None:
        """A wrong password: exit 2, one line, naming the server but not the password."""
        import urllib.parse

        parts = urllib.parse.urlsplit(pg_url)
        user = parts.username or "postgres"
        wrong = parts._replace(netloc=f"{user}:s3cret-guess@{parts.hostname}:{parts.port}")
        assert 2 == exit_code(["ledger", "--db", urllib.parse.urlunsplit(wrong), "--ledger",
                               pg_name, "balance"])
        line = one_error_line(capsys.readouterr().err)
        assert "s3cret-guess" not in line
        assert str(parts.port) in line


def test_export_piped_into_import(pg_url: str, pg_name: str, tmp_path: Path) -> None:
    """The README's move: ledger --db F export | ledger --ledger NAME import - (real
    processes, the server named by IMAGINE_BILLING_DB)."""
    import os
    import subprocess
    import sys

    local = str(tmp_path / "l.db")
    assert 0 == main(["ledger", "--db", local, "credit", "40", "--key", "c"])
    command = [sys.executable, "-m", "imagine_billing", "ledger"]
    exporter = subprocess.Popen([*command, "--db", local, "export"], stdout=subprocess.PIPE)
    env = {**os.environ, "IMAGINE_BILLING_DB": pg_url}
    done = subprocess.run([*command, "--ledger", pg_name, "import", "-"],
                          stdin=exporter.stdout, capture_output=True, text=True, env=env,
                          check=False, timeout=120)
    assert exporter.stdout is not None
    exporter.stdout.close()
    assert 0 == exporter.wait(timeout=60)
    assert 0 == done.returncode, done.stderr
    assert "imported 1 entries" in done.stdout
    import urllib.parse

    password = urllib.parse.urlsplit(pg_url).password
    assert not password or password not in done.stdout  # the URL is shown redacted
