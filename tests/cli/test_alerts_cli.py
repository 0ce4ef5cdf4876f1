"""The command line of budgets managed, alerts listed and delivered, balances reconciled."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import imagine_billing as ib
from imagine_billing.adapters.webhook import signature
from imagine_billing.cli import main
from tests.helpers import exit_code, one_error_line, run
from tests.receiver import Receiver, receiving


@pytest.fixture
def db(tmp_path: Path) -> str:
    """A ledger file with 1000 tokens credited."""
    path = str(tmp_path / "t.db")
    assert 0 == main(["ledger", "--db", path, "credit", "1000", "--key", "c"])
    return path


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as receiver:
        yield receiver


def out_of(capsys: pytest.CaptureFixture[str], argv: list[str], code: int = 0) -> str:
    assert code == exit_code(argv)
    return capsys.readouterr().out


class TestBudgets:
    """budget add, update, remove, list."""

    def test_update_keeps_what_is_not_given(self, db: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
        out_of(capsys, ["budget", "--db", db, "add", "shop", "--limit", "100", "--hard",
                        "--scope", "project=shop", "--alerts", "0.5,0.9"])
        out = out_of(capsys, ["budget", "--db", db, "update", "shop", "--limit", "200"])
        assert ("budget 'shop': 200 tokens per month (project=shop; hard; alerts at 50%, "
                "90%)") == out.strip()
        out = out_of(capsys, ["budget", "--db", db, "update", "shop", "--no-hard",
                              "--period", "week", "--json"])
        document = json.loads(out)
        assert (200, "week", False, ["0.5", "0.9"], {"project": "shop"}) == (
            document["limit"], document["period"], document["hard"], document["alerts"],
            document["scope"])
        out = out_of(capsys, ["budget", "--db", db, "update", "shop", "--no-hard"])
        assert out.startswith("budget unchanged 'shop'")

    def test_remove_and_list(self, db: str, capsys: pytest.CaptureFixture[str]) -> None:
        for name in ("a", "b"):
            out_of(capsys, ["budget", "--db", db, "add", name, "--limit", "10"])
        out = out_of(capsys, ["budget", "--db", db, "remove", "a"])
        assert out.startswith("removed budget 'a': 10 tokens per month")
        assert ["b"] == [b["name"] for b in json.loads(
            out_of(capsys, ["budget", "--db", db, "list", "--json"]))]
        assert "budget 'b': 10 tokens" in out_of(capsys, ["budget", "--db", db, "list"])
        assert 0 == ib.Ledger.open(db).verify() - 4  # credit, two adds, one removal

    @pytest.mark.parametrize("action", ["update", "remove"])
    def test_an_unknown_budget(self, db: str, action: str) -> None:
        result = run("budget", "--db", db, action, "nope",
                     *(["--limit", "5"] if action == "update" else []))
        assert 2 == result.returncode
        assert "no budget named 'nope'" in one_error_line(result.stderr)


class TestStatusCheck:
    """budget status --check: exit 1 on an exhausted hard budget or any alert this period."""

    def test_nothing_fired(self, db: str) -> None:
        assert 0 == main(["budget", "--db", db, "add", "big", "--limit", "100000"])
        result = run("budget", "--db", db, "status", "--check")
        assert (0, "") == (result.returncode, result.stderr)

    def test_an_alert_fails_the_check_and_is_recorded(self, db: str) -> None:
        assert 0 == main(["budget", "--db", db, "add", "shop", "--limit", "100",
                          "--alerts", "0.5"])
        assert 0 == main(["ledger", "--db", db, "debit", "50", "--key", "d"])
        result = run("budget", "--db", db, "status", "--check")
        assert 1 == result.returncode
        assert "check failed: budget 'shop'" in result.stderr
        assert "past 50% (actual)" in result.stderr
        assert "shop" in result.stdout  # the table is printed all the same

    def test_an_exhausted_hard_budget(self, db: str) -> None:
        assert 0 == main(["budget", "--db", db, "add", "cap", "--limit", "10", "--hard",
                          "--alerts", "100"])  # an alert it cannot reach: only exhaustion
        assert 0 == main(["ledger", "--db", db, "hold", "10", "--key", "h"])
        result = run("budget", "--db", db, "status", "--check", "--json")
        assert 1 == result.returncode
        assert "hard budget 'cap' is exhausted" in result.stderr
        assert 0 == json.loads(result.stdout)[0]["remaining"]

    def test_a_status_of_now_records_forecasts_a_past_one_does_not(
            self, db: str, capsys: pytest.CaptureFixture[str]) -> None:
        assert 0 == main(["budget", "--db", db, "add", "shop", "--limit", "20"])
        assert 0 == main(["ledger", "--db", db, "debit", "9", "--key", "d"])
        capsys.readouterr()
        out_of(capsys, ["budget", "--db", db, "status", "--now", "2030-01-01"])
        assert [] == json.loads(out_of(capsys, ["alerts", "--db", db, "list", "--json"]))
        out_of(capsys, ["budget", "--db", db, "status"])
        kinds = {a["kind"] for a in json.loads(out_of(capsys, ["alerts", "--db", db, "list",
                                                                "--json"]))}
        assert {"forecasted"} == kinds


class TestAlertsCommand:
    """alerts list and alerts deliver, to a real receiver."""

    def crossed(self, db: str) -> None:
        """Two actual alerts (50% and 80% of 100, spent 90), and no threshold left to
        forecast."""
        assert 0 == main(["budget", "--db", db, "add", "shop", "--limit", "100", "--alerts",
                          "0.5,0.8"])
        assert 0 == main(["ledger", "--db", db, "debit", "90", "--key", "d"])

    def test_list(self, db: str, capsys: pytest.CaptureFixture[str]) -> None:
        assert "no alerts" == out_of(capsys, ["alerts", "--db", db, "list"]).strip()
        self.crossed(db)
        capsys.readouterr()
        lines = out_of(capsys, ["alerts", "--db", db, "list"]).splitlines()
        assert lines[0].split() == ["AT", "BUDGET", "PERIOD", "THRESHOLD", "KIND", "SPENT",
                                    "LIMIT", "DELIVERED", "ID"]
        assert ["50%", "80%"] == [line.split()[5] for line in lines[1:]]
        documents = json.loads(out_of(capsys, ["alerts", "--db", db, "list", "--json"]))
        assert ["0.5", "0.8"] == [d["threshold"] for d in documents]
        assert all(d["id"].startswith("alert-") for d in documents)

    def test_deliver_signed_with_the_secret_from_the_environment(
            self, db: str, receiver: Receiver) -> None:
        self.crossed(db)
        result = run("alerts", "--db", db, "deliver", "--webhook", receiver.url, "--json",
                     env={"IMAGINE_BILLING_WEBHOOK_SECRET": "k"})
        assert 0 == result.returncode, result.stderr
        assert 2 == len(json.loads(result.stdout)["delivered"])
        for post in receiver.posts:
            assert signature(post.body, "k") == post.headers["x-imagine-billing-signature"]
        result = run("alerts", "--db", db, "list", "--undelivered")
        assert "no alerts undelivered" == result.stdout.strip()

    def test_a_receiver_down_exits_1_and_loses_nothing(self, db: str,
                                                       receiver: Receiver) -> None:
        self.crossed(db)
        receiver.answers.extend([500])
        result = run("alerts", "--db", db, "deliver", "--webhook", receiver.url,
                     "--attempts", "1")
        assert 1 == result.returncode
        assert "not delivered alert-" in result.stderr
        assert "HTTP 500 after 1 attempt to http://127.0.0.1" in result.stderr
        assert "secret-path" not in result.stderr
        assert "1 more alert(s) left for the next run" in result.stderr
        result = run("alerts", "--db", db, "deliver", "--webhook", receiver.url)
        assert 0 == result.returncode
        assert 2 == len(receiver.taken)

    @pytest.mark.parametrize(("argv", "message"), [
        (["--webhook", "ftp://x/"], "webhook URL must be http"),
        (["--webhook", "http://x/", "--attempts", "0"], "from 1 to 20"),
        (["--webhook", "http://x/", "--interval", "nan"], "seconds from 0.05"),
    ])
    def test_bad_usage(self, db: str, argv: list[str], message: str) -> None:
        result = run("alerts", "--db", db, "deliver", *argv)
        assert 2 == result.returncode
        assert message in one_error_line(result.stderr)

    @pytest.mark.parametrize("json_flag", [[], ["--json"]])
    @pytest.mark.parametrize("url", ["https://hooks.slack.com:99999/services/T0/B0/SeCrEt",
                                     "hxxps://hooks.slack.com/services/T0/B0/SeCrEt"])
    def test_a_bad_url_keeps_its_secret_path(self, db: str, url: str,
                                             json_flag: list[str]) -> None:
        """A refused webhook URL is named by its scheme and host, on stderr and in the
        --json error alike (attack review item 5)."""
        result = run("alerts", "--db", db, "deliver", "--webhook", url, *json_flag)
        assert 2 == result.returncode
        assert "SeCrEt" not in result.stdout + result.stderr
        line = one_error_line(result.stderr, named=not json_flag)
        error = json.loads(line)["error"] if json_flag else line
        assert "hooks.slack.com" in error

    def test_follow_delivers_new_alerts_until_stopped(self, db: str,
                                                      receiver: Receiver) -> None:
        assert 0 == main(["budget", "--db", db, "add", "shop", "--limit", "100",
                          "--alerts", "0.5,0.8"])
        child = subprocess.Popen(
            [sys.executable, "-m", "imagine_billing", "alerts", "--db", db, "deliver",
             "--webhook", receiver.url, "--follow", "--interval", "0.1"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            # 55 spent in a day: 50% reached, 80% forecast.
            assert 0 == main(["ledger", "--db", db, "debit", "55", "--key", "d1"])
            wait_for(lambda: len(receiver.taken) == 2)
            assert 0 == main(["ledger", "--db", db, "debit", "30", "--key", "d2"])
            wait_for(lambda: len(receiver.taken) == 3)
        finally:
            child.send_signal(signal.SIGTERM)
            out, err = child.communicate(timeout=30)
        assert 0 == child.returncode, err
        assert "stopped" in err
        assert 3 == out.count("delivered alert-")
        assert 3 == len(receiver.posts)  # each once
        kinds = [(json.loads(p.body)["threshold"], json.loads(p.body)["kind"])
                 for p in receiver.posts]
        assert [("0.5", "actual"), ("0.8", "forecasted"), ("0.8", "actual")] == kinds


    def follow(self, db: str, receiver: Receiver) -> subprocess.Popen[str]:
        """``alerts deliver --follow`` in a child, once two alerts are due (50% reached,
        80% forecast), the receiver holding its first request until released."""
        assert 0 == main(["budget", "--db", db, "add", "shop", "--limit", "100",
                          "--alerts", "0.5,0.8"])
        assert 0 == main(["ledger", "--db", db, "debit", "55", "--key", "d1"])
        receiver.gate = threading.Event()
        return subprocess.Popen(
            [sys.executable, "-m", "imagine_billing", "alerts", "--db", db, "deliver",
             "--webhook", receiver.url, "--follow", "--interval", "0.1"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    @pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
    def test_a_stop_during_a_delivery_finishes_that_alert_first(
            self, db: str, receiver: Receiver, stop: signal.Signals) -> None:
        """A stop asked while the receiver has an alert in hand: that alert is marked
        delivered and printed (not sent again next run), the next one is not sent."""
        child = self.follow(db, receiver)
        try:
            assert receiver.arrived.wait(20)
            child.send_signal(stop)
            time.sleep(0.2)  # the child takes the signal while it waits for the answer
        finally:
            assert receiver.gate is not None
            receiver.gate.set()
            out, err = child.communicate(timeout=30)
        assert 0 == child.returncode, err
        assert "stopped" in err
        assert "Traceback" not in err
        assert 1 == out.count("delivered alert-"), out
        assert "1 more alert(s) left for the next run" in err
        assert 1 == len(receiver.posts)
        left = ib.Ledger.open(db, readonly=True).alerts(undelivered=True)
        assert 1 == len(left)
        assert left[0].id != receiver.posts[0].headers["idempotency-key"]

    def test_a_second_stop_does_not_wait_for_the_receiver(self, db: str,
                                                          receiver: Receiver) -> None:
        """A receiver that does not answer: a second SIGTERM stops at once, and the alert
        in flight stays undelivered for the next run."""
        child = self.follow(db, receiver)
        try:
            assert receiver.arrived.wait(20)
            child.send_signal(signal.SIGTERM)
            time.sleep(0.2)
            child.send_signal(signal.SIGTERM)
            out, err = child.communicate(timeout=20)  # the gate is still closed
        finally:
            assert receiver.gate is not None
            receiver.gate.set()
        assert 0 == child.returncode, err
        assert "stopped" in err
        assert "Traceback" not in err
        assert 0 == out.count("delivered alert-")
        assert 2 == len(ib.Ledger.open(db, readonly=True).alerts(undelivered=True))

    def test_follow_outlasts_a_ledger_it_cannot_write(self, db: str,
                                                      receiver: Receiver) -> None:
        """While marking alerts fails (a trigger refuses it), --follow reports each failure
        and goes on; the alert is sent again (the same id) and marked once it can be."""
        import sqlite3

        self.crossed(db)
        file = sqlite3.connect(db)
        file.execute("CREATE TRIGGER no_marks BEFORE UPDATE ON alerts BEGIN "
                     "SELECT RAISE(ABORT, 'marks refused for the test'); END")
        file.commit()
        child = subprocess.Popen(
            [sys.executable, "-m", "imagine_billing", "alerts", "--db", db, "deliver",
             "--webhook", receiver.url, "--follow", "--interval", "0.1"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_for(lambda: len(receiver.posts) >= 3)
            file.execute("DROP TRIGGER no_marks")
            file.commit()
            wait_for(lambda: not ib.Ledger.open(db, readonly=True).alerts(undelivered=True))
        finally:
            file.close()
            child.send_signal(signal.SIGTERM)
            _, err = child.communicate(timeout=30)
        assert 0 == child.returncode, err
        assert "marks refused for the test" in err
        assert "(trying again in 0.1 s)" in err
        assert "Traceback" not in err
        first = receiver.posts[0].headers["idempotency-key"]
        assert receiver.posts[1].headers["idempotency-key"] == first


def wait_for(condition: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


class TestReconcile:
    """ledger observe and ledger reconcile."""

    def test_observe_then_reconcile(self, db: str, capsys: pytest.CaptureFixture[str]) -> None:
        assert "no observed balance yet" in out_of(capsys, ["ledger", "--db", db,
                                                            "reconcile"])
        out = out_of(capsys, ["ledger", "--db", db, "observe", "1000", "--key", "o1"])
        assert "observed balance 1,000" in out
        out = out_of(capsys, ["ledger", "--db", db, "observe", "1000", "--key", "o1"])
        assert "(replayed: already recorded)" in out
        assert 0 == main(["ledger", "--db", db, "debit", "40", "--key", "d"])
        capsys.readouterr()
        out_of(capsys, ["ledger", "--db", db, "observe", "950", "--key", "o2"])
        report = json.loads(out_of(capsys, ["ledger", "--db", db, "reconcile", "--json"]))
        assert (960, 950, -10) == (report["expected"], report["observed"], report["drift"])
        assert [None, -10] == [o["change"] for o in report["observations"]]
        text = out_of(capsys, ["ledger", "--db", db, "reconcile"])
        assert "latest: observed 950, the ledger expected 960: drift -10" in text

    @pytest.mark.parametrize(("argv", "message"), [
        (["-1", "--key", "k"], "must be a whole number >= 0"),
        (["5", "--key", "k", "--at", "2999-01-01"], "later than now"),
    ])
    def test_bad_observations(self, db: str, argv: list[str], message: str) -> None:
        result = run("ledger", "--db", db, "observe", *argv)
        assert 2 == result.returncode
        assert message in one_error_line(result.stderr)
