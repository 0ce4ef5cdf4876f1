"""ledger import-usage, and ledger credit/debit --at: recording past spend."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import imagine_billing as ib
from imagine_billing.cli import main
from tests.helpers import exit_code, one_error_line, run, write_book

LOG = """timestamp,style,count
2025-12-20T09:00:00Z,flux-dev,4
2025-12-31T23:00:00Z,anime,1
2026-01-02T08:00:00Z,flux-dev,2
2026-01-02T08:00:00Z,flux-dev,2
"""


@pytest.fixture
def db(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """A new ledger file whose opening 1,000 tokens are credited on 2025-12-01."""
    path = str(tmp_path / "l.db")
    assert 0 == main(["ledger", "--db", path, "credit", "1000", "--key", "opening", "--at",
                      "2025-12-01"])
    capsys.readouterr()
    return path


@pytest.fixture
def log(tmp_path: Path) -> str:
    path = tmp_path / "usage.csv"
    path.write_text(LOG, encoding="utf-8")
    return str(path)


def imported(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict[str, object]:
    assert 0 == main([*argv, "--json"])
    document: dict[str, object] = json.loads(capsys.readouterr().out)
    return document


class TestImportUsage:
    """imagine-billing ledger import-usage LOG..."""

    def test_text(self, db: str, log: str, capsys: pytest.CaptureFixture[str]) -> None:
        """Four debits at their own times: 60 + 5 + 30 + 30 tokens."""
        assert 0 == main(["ledger", "--db", db, "import-usage", log])
        assert ["imported 4 debits of 125 tokens from 2025-12-20 09:00 UTC to 2026-01-02 "
                "08:00 UTC", "prices: 1.0.0: 125 tokens", "posted 875, held 0, available 875"
                ] == capsys.readouterr().out.splitlines()
        with ib.Ledger.open(db, readonly=True) as ledger:
            assert ["2025-12-01", "2025-12-20", "2025-12-31", "2026-01-02", "2026-01-02"] == [
                f"{e.at:%Y-%m-%d}" for e in ledger.entries()]
            assert 5 == ledger.verify()

    def test_twice_writes_nothing(self, db: str, log: str,
                                  capsys: pytest.CaptureFixture[str]) -> None:
        """The same log again: every record replayed, the balance as it was."""
        assert 4 == imported(capsys, ["ledger", "--db", db, "import-usage", log])["written"]
        again = imported(capsys, ["ledger", "import-usage", log, "--db", db])
        assert (0, 4, {"posted": 875, "held": 0, "available": 875}) == (
            again["written"], again["replayed"], again["balance"])
        assert 0 == main(["ledger", "--db", db, "import-usage", log])
        assert "replayed 4 records imported before: nothing written for them" in \
            capsys.readouterr().out

    def test_by_the_version_in_force(self, db: str, log: str, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
        """With a book, January's flux-dev costs 20 (1.1.0); the old --book A B LOG form
        sorts the log from the books."""
        books = write_book(tmp_path)
        document = imported(capsys, ["ledger", "--db", db, "import-usage", "--book", *books,
                                     log, "--tag", "project=shop"])
        assert {"1.0.0": 65, "1.1.0": 80} == document["by_version"]
        with ib.Ledger.open(db, readonly=True) as ledger:
            assert {"shop": 145} == ledger.spend(by="tag:project")

    def test_forecast_starts_from_the_history(self, db: str, log: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
        """The forecast of 2026-01-03 averages the imported spend of its window."""
        assert 0 == main(["ledger", "--db", db, "import-usage", log])
        capsys.readouterr()
        assert 0 == main(["forecast", "--db", db, "--now", "2026-01-03", "--window", "5",
                          "--json"])
        document = json.loads(capsys.readouterr().out)
        assert ([0, 0, 5, 0, 60], "13") == (document["daily"], document["burn_per_day"])

    def test_several_logs_from_stdin_too(self, db: str, log: str) -> None:
        """Logs are imported in the order given; - is standard input."""
        later = "timestamp,style,count\n2026-01-05T00:00:00Z,anime,3\n"
        done = run("ledger", "--db", db, "import-usage", log, "-", "--json", input=later)
        assert 0 == done.returncode, done.stderr
        assert (5, 140) == (json.loads(done.stdout)["written"],
                            json.loads(done.stdout)["tokens"])

    def test_skip_bad(self, db: str, tmp_path: Path,
                      capsys: pytest.CaptureFixture[str]) -> None:
        """Bad lines are counted by reason, with their lines."""
        bad = tmp_path / "bad.csv"
        bad.write_text("timestamp,style,count\n2025-12-02T00:00:00Z,sdxl-1.0,1\n"
                       "2025-12-02T01:00:00Z,anime,x\n2025-12-02T02:00:00Z,anime,1\n",
                       encoding="utf-8")
        assert 0 == main(["ledger", "--db", db, "import-usage", str(bad), "--skip-bad"])
        out = capsys.readouterr().out
        assert "imported 1 debit of 5 tokens" in out
        assert "skipped: 2 bad lines (bad-count 1 at line 3; unpriced 1 at line 2)" in out

    @pytest.mark.parametrize("logs", [1, 2])
    def test_progress_on_a_terminal(self, db: str, log: str, logs: int,
                                    monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
        """On a terminal, a large log shows a bar on stderr, cleared at the end; several
        logs read side by side, one bar of all their bytes."""
        from imagine_billing.cli import history

        monkeypatch.setattr(history, "PROGRESS_MIN_BYTES", 1)
        monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
        copies = [log]
        for number in range(1, logs):  # another file each (one file twice is refused)
            copy = Path(log).with_name(f"copy{number}.csv")
            copy.write_bytes(Path(log).read_bytes())
            copies.append(str(copy))
        assert 0 == main(["ledger", "--db", db, "import-usage", *copies])
        err = capsys.readouterr().err
        assert "import-usage [##############################] 100%" in err
        assert err.endswith("\r\033[K")


class TestImportRefused:
    """A refused import writes nothing, and says where and why in one line."""

    def test_no_tokens(self, tmp_path: Path, log: str,
                       capsys: pytest.CaptureFixture[str]) -> None:
        """Into a new ledger without credit: exit 1, with how to credit first."""
        db = str(tmp_path / "new.db")
        assert 1 == exit_code(["ledger", "--db", db, "import-usage", log])
        line = one_error_line(capsys.readouterr().err)
        assert f"{log}:2: not enough tokens: 60 needed, 0 available" in line
        assert "ledger credit TOKENS --key K --at TIME" in line
        assert line.endswith("; nothing was imported")

    @pytest.mark.parametrize(("text", "message"), [
        ("timestamp,style,count\n2025-12-03T00:00:00Z,anime,1\n2025-12-02T00:00:00Z,anime,1\n",
         "usage.csv:3: timestamp 2025-12-02T00:00:00Z is earlier than the record before"),
        ("timestamp,style,count\n2025-12-03T00:00:00Z,anime,1\n2025-12-04T00:00:00Z,sdxl-1.0,1\n",
         "usage.csv:3: style 'sdxl-1.0' has no published price in price table 1.0.0; give it a "
         "price with --price sdxl-1.0=TOKENS"),
        ("timestamp,style,count\n2025-11-30T00:00:00Z,anime,1\n",
         "usage.csv:2: at 2025-11-30T00:00:00Z is earlier than entry 1 (a credit at "
         "2025-12-01T00:00:00Z)"),
    ])
    def test_bad_logs(self, db: str, tmp_path: Path, text: str, message: str,
                      capsys: pytest.CaptureFixture[str]) -> None:
        """Out of time order, unpriced, or before the ledger's history: exit 2."""
        path = tmp_path / "usage.csv"
        path.write_text(text, encoding="utf-8")
        assert 2 == exit_code(["ledger", "--db", db, "import-usage", str(path)])
        assert message in one_error_line(capsys.readouterr().err)
        with ib.Ledger.open(db, readonly=True) as ledger:
            assert 1 == ledger.head()[0]

    def test_a_later_log_refused_undoes_the_earlier(self, db: str, log: str, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
        """Several logs are one transaction: a record of the second refused, the records of
        the first are not kept (even those before it)."""
        late = tmp_path / "late.csv"
        late.write_text("timestamp,style,count\n2026-01-03T00:00:00Z,sdxl-1.0,1\n",
                        encoding="utf-8")
        assert 2 == exit_code(["ledger", "--db", db, "import-usage", log, str(late)])
        assert "late.csv:2: style 'sdxl-1.0' has no published price" in \
            one_error_line(capsys.readouterr().err)
        with ib.Ledger.open(db, readonly=True) as ledger:
            assert 1000 == ledger.balance().available

    def test_other_prices_conflict(self, db: str, log: str,
                                   capsys: pytest.CaptureFixture[str]) -> None:
        """A log imported again at other prices is a conflict: the ledger keeps what it
        recorded."""
        assert 0 == main(["ledger", "--db", db, "import-usage", log])
        capsys.readouterr()
        assert 2 == exit_code(["ledger", "--db", db, "import-usage", log, "--price",
                               "flux-dev=20"])
        line = one_error_line(capsys.readouterr().err)
        assert "usage.csv:2: idempotency key 'usage:2025-12-20T09:00:00Z:flux-dev:4:1'" in line
        assert "imported before with other prices: the ledger keeps" in line

    def test_no_log(self, db: str, capsys: pytest.CaptureFixture[str]) -> None:
        assert 2 == exit_code(["ledger", "--db", db, "import-usage"])
        assert "give the usage logs to import" in one_error_line(capsys.readouterr().err)

    def test_json_error(self, db: str, tmp_path: Path,
                        capsys: pytest.CaptureFixture[str]) -> None:
        """Under --json, the error is one JSON object on stderr."""
        assert 2 == exit_code(["ledger", "--db", db, "import-usage",
                               str(tmp_path / "none.csv"), "--json"])
        document = json.loads(capsys.readouterr().err)
        assert (2, True) == (document["exit_code"], "cannot read the file" in document["error"])


SERVER1 = ("timestamp,style,count,project\n2026-11-03T10:00:00Z,flux-dev,1,shop\n"
           "2026-11-03T10:05:00Z,anime,1,shop\n")
SERVER2 = "timestamp,style,count,project\n2026-11-03T10:00:00Z,flux-dev,1,blog\n"


def logs_of(folder: Path, **texts: str) -> list[str]:
    """Each text written to NAME.csv in ``folder``: their paths, in the order given."""
    paths = []
    for name, text in texts.items():
        path = folder / f"{name}.csv"
        path.write_text(text, encoding="utf-8")
        paths.append(str(path))
    return paths


class TestSeveralSources:
    """Logs of several sources, merged into one stream; the same call logged otherwise."""

    @pytest.mark.parametrize("reverse", [False, True])
    def test_merged_as_price_log_prices_them(self, db: str, tmp_path: Path, reverse: bool,
                                             capsys: pytest.CaptureFixture[str]) -> None:
        """Finding 1 of the attack review: two servers' identical records at 10:00 are two
        calls, in either order of the files, and price-log's total; again, nothing."""
        paths = logs_of(tmp_path, server1=SERVER1, server2=SERVER2)
        if reverse:
            paths.reverse()
        total = imported(capsys, ["price-log", *paths])["total"]
        done = imported(capsys, ["ledger", "--db", db, "import-usage", *paths])
        assert (3, 35, 35) == (done["written"], done["tokens"], total)
        assert 1000 - 35 == done["balance"]["posted"]  # type: ignore[index]
        again = imported(capsys, ["ledger", "--db", db, "import-usage", *paths[::-1]])
        assert (0, 3, 965) == (again["written"], again["replayed"],
                               again["balance"]["posted"])  # type: ignore[index]

    def test_a_tag_per_project(self, db: str, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
        """Finding 1 with a --tag per log, imported in separate commands: no conflict,
        each project's spend; each again writes nothing."""
        server1, server2 = logs_of(tmp_path, server1=SERVER1, server2=SERVER2)
        for _ in range(2):
            imported(capsys, ["ledger", "--db", db, "import-usage", "--tag", "project=blog",
                              server2])
            imported(capsys, ["ledger", "--db", db, "import-usage", "--tag", "project=shop",
                              server1])
        with ib.Ledger.open(db, readonly=True) as ledger:
            assert ({"blog": 15, "shop": 20}, 965) == (ledger.spend(by="tag:project"),
                                                       ledger.balance().posted)

    def test_operation_column_or_not(self, db: str, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
        """Finding 2: the same call from a log without the operation column and from one
        naming its style's own operation is one debit."""
        plain, named = logs_of(
            tmp_path, a="timestamp,style,count\n2026-11-03T10:00:00Z,anime,1\n",
            b="timestamp,style,count,operation\n2026-11-03T10:00:00Z,anime,1,text-to-image\n")
        assert 1 == imported(capsys, ["ledger", "--db", db, "import-usage", plain])["written"]
        again = imported(capsys, ["ledger", "--db", db, "import-usage", named])
        assert (0, 1, 995) == (again["written"], again["replayed"],
                               again["balance"]["posted"])  # type: ignore[index]

    @pytest.mark.parametrize(("texts", "expected"), [
        ({"s1": "timestamp,style,count\n2026-01-01T09:00:00Z,anime,1\n"
                "2026-01-01T11:00:00Z,anime,1\n",
          "s2": "timestamp,style,count\n2026-01-01T10:00:00Z,flux-dev,100\n"},
         (1, "s2.csv:2: not enough tokens")),
        ({"s1": "timestamp,style,count\n2026-01-01T09:00:00Z,anime,1\n"
                "2026-01-01T12:00:00Z,anime,1\n2026-01-01T11:00:00Z,anime,1\n",
          "s2": "timestamp,style,count\n2026-01-01T11:30:00Z,anime,1\n"},
         (2, "s1.csv:4: timestamp 2026-01-01T11:00:00Z is earlier than the record before "
             "(2026-01-01T12:00:00Z)")),
        ({"s1": "timestamp,style,count\n2026-01-01T09:00:00Z,anime,1\n",
          "s2": "timestamp,style,count\n2026-01-01T08:00:00Z,anime,1\n"
                "2031-01-01T00:00:00Z,anime,1\n"},
         (2, "s2.csv:3: at 2031-01-01T00:00:00Z is later than now")),
    ])
    def test_errors_name_the_file_and_line(self, db: str, tmp_path: Path,
                                           texts: dict[str, str], expected: tuple[int, str],
                                           capsys: pytest.CaptureFixture[str]) -> None:
        """Though the logs are read side by side: the record's own file and line (a record
        out of order in its own log; a future record, the minor finding, as any refusal)."""
        code, message = expected
        paths = logs_of(tmp_path, **texts)
        assert code == exit_code(["ledger", "--db", db, "import-usage", *paths])
        line = one_error_line(capsys.readouterr().err)
        assert (True, True) == (message in line, line.endswith("; nothing was imported"))
        assert code == exit_code(["ledger", "--db", db, "import-usage", *paths, "--json"])
        document = json.loads(capsys.readouterr().err)
        assert (code, True) == (document["exit_code"], message in document["error"])
        with ib.Ledger.open(db, readonly=True) as ledger:
            assert 1 == ledger.head()[0]

    def test_skipped_lines_by_file(self, db: str, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
        """--skip-bad with several logs says each file's skipped lines, as price-log does."""
        paths = logs_of(
            tmp_path, s1="timestamp,style,count\n2026-01-01T10:00:00Z,sdxl-1.0,1\n"
                         "2026-01-01T10:01:00Z,anime,x\n",
            s2="timestamp,style,count\n2026-01-01T09:00:00Z,anime,1\n"
               "2026-01-01T10:00:30Z,sdxl-1.0,1\n")
        assert 0 == main(["ledger", "--db", db, "import-usage", "--skip-bad", *paths])
        out = capsys.readouterr().out.splitlines()
        assert ["skipped in " + paths[0] + ": 2 bad lines (bad-count 1 at line 3; unpriced 1 "
                "at line 2)", "skipped in " + paths[1] + ": 1 bad line (unpriced 1 at line 3)"
                ] == [line for line in out if line.startswith("skipped")]
        assert 0 == main(["price-log", "--skip-bad", *paths])
        assert [line for line in out if line.startswith("skipped")] == [
            line for line in capsys.readouterr().out.splitlines() if line.startswith("skipped")]
        document = imported(capsys, ["ledger", "--db", db, "import-usage", "--skip-bad",
                                     *paths])
        assert {paths[0]: {"skipped": {"bad-count": 1, "unpriced": 1},
                           "skipped_lines": {"bad-count": [3], "unpriced": [2]}},
                paths[1]: {"skipped": {"unpriced": 1}, "skipped_lines": {"unpriced": [3]}}
                } == document["skipped_by_file"]

    def test_key_prefix_with_controls(self, db: str, log: str,
                                      capsys: pytest.CaptureFixture[str]) -> None:
        """A key printed in an error escapes what does not print (of the --key-prefix)."""
        prefix = "\x1b]0;pwned\x07\u202e"
        assert 0 == main(["ledger", "--db", db, "import-usage", log, "--key-prefix", prefix])
        capsys.readouterr()
        assert 2 == exit_code(["ledger", "--db", db, "import-usage", log, "--key-prefix",
                               prefix, "--price", "flux-dev=20"])
        err = capsys.readouterr().err
        assert "\\x1b]0;pwned\\x07\\u202e:2025-12-20T09:00:00Z:flux-dev:4:1" in err
        assert not {"\x1b", "\x07", "\u202e"} & set(err)

    @pytest.mark.parametrize("again", ["{log}", "{dir}/./{name}", "{dir}/link.csv"],
                             ids=["same path", "another spelling", "a link"])
    def test_one_file_twice(self, db: str, log: str, again: str,
                            capsys: pytest.CaptureFixture[str]) -> None:
        """The same log given twice would import each record twice (the merged logs count
        identical records as separate calls): refused, nothing written (found by an
        attack review)."""
        path = Path(log)
        (path.parent / "link.csv").symlink_to(path)
        other = again.format(log=log, dir=path.parent, name=path.name)
        capsys.readouterr()
        assert 2 == exit_code(["ledger", "--db", db, "import-usage", log, other])
        assert "are the same file" in one_error_line(capsys.readouterr().err)
        with ib.Ledger.open(db) as ledger:
            assert not any(entry.kind == "debit" for entry in ledger.entries())

    def test_stdin_twice(self, db: str, capsys: pytest.CaptureFixture[str]) -> None:
        assert 2 == exit_code(["ledger", "--db", db, "import-usage", "-", "-"])
        assert "'-' (standard input) is given twice" in one_error_line(
            capsys.readouterr().err)


class TestBackdatedWrites:
    """ledger credit --at and ledger debit --at."""

    def test_debit_at(self, db: str, capsys: pytest.CaptureFixture[str]) -> None:
        assert 0 == main(["ledger", "--db", db, "debit", "flux-dev:2", "--key", "d", "--at",
                          "2025-12-05T10:00:00Z", "--json"])
        assert "2025-12-05T10:00:00Z" == json.loads(capsys.readouterr().out)["entry"]["at"]

    @pytest.mark.parametrize(("argv", "message"), [
        (["debit", "5", "--key", "d", "--at", "2025-11-01"],
         "is earlier than entry 1 (a credit at 2025-12-01T00:00:00Z)"),
        (["credit", "5", "--key", "c", "--at", "8999-01-01"], "is later than now"),
        (["credit", "5", "--key", "c", "--at", "yesterday"], "--at"),
    ])
    def test_refused(self, db: str, argv: list[str], message: str,
                     capsys: pytest.CaptureFixture[str]) -> None:
        """Before an entry that moves tokens, after now, or not a time: exit 2."""
        assert 2 == exit_code(["ledger", "--db", db, *argv])
        assert message in one_error_line(capsys.readouterr().err)
