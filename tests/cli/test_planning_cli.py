"""The plan, budget and forecast commands."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import imagine_billing as ib
from imagine_billing.cli import main
from imagine_billing.cli.planning import forecast_figure
from imagine_billing.planner.forecasting import available_history, forecast_from
from tests.helpers import Clock, exit_code, one_error_line, run


class TestPlan:
    """imagine-billing plan --tokens N STYLE[:WEIGHT]..."""

    def test_table(self, capsys: pytest.CaptureFixture[str]) -> None:
        """1000 tokens of 1 flux-dev : 4 imagine-turbo: 52 and 220 calls, nothing left."""
        assert 0 == main(["plan", "--tokens", "1000", "flux-dev", "imagine-turbo:4"])
        out = capsys.readouterr().out.splitlines()
        assert ["flux-dev", "1", "15", "52", "780"] == out[1].split()
        assert ["imagine-turbo", "4", "1", "220", "220"] == out[2].split()
        assert ["total", "272", "1000"] == out[3].split()
        assert "52 whole batches of 19 tokens; 0 of 1000 tokens left" == out[4]

    def test_json(self, capsys: pytest.CaptureFixture[str]) -> None:
        """--json prints the plan document."""
        assert 0 == main(["plan", "--tokens", "32", "anime:2", "flux-dev", "--json"])
        document = json.loads(capsys.readouterr().out)
        assert {"anime": 3, "flux-dev": 1} == document["counts"]
        assert (30, 2, 1) == (document["total"], document["leftover"], document["batches"])

    @pytest.mark.parametrize(
        ("argv", "message"),
        [(["plan", "--tokens", "10", "flux-dv"], "did you mean 'flux-dev'"),
         (["plan", "--tokens", "10", "sdxl-1.0"], "no published price"),
         (["plan", "--tokens", "10", "anime", "anime:2"], "named twice"),
         (["plan", "--tokens", "-5", "anime"], "must be a whole number >= 0"),
         (["plan", "--tokens", "10", "anime:0"], "weight must be a whole number >= 1"),
         (["plan", "--tokens", "10", "anime:9007199254740992"],
          "must be at most 2**53-1")],
    )
    def test_errors_are_one_line(self, argv: list[str], message: str,
                                 capsys: pytest.CaptureFixture[str]) -> None:
        """Bad input exits 2 with one line on stderr naming the problem."""
        assert 2 == exit_code(argv)
        assert message in one_error_line(capsys.readouterr().err)

    def test_huge_weight(self) -> None:
        """A weight past the budget fills the budget with that style (a process that ends,
        not one that steps through 100 million calls)."""
        done = run("plan", "--tokens", "100000000", "imagine-turbo:100000001", "--json")
        assert 0 == done.returncode, done.stderr
        assert {"imagine-turbo": 100_000_000} == json.loads(done.stdout)["counts"]

    def test_as_a_process(self) -> None:
        """python -m imagine_billing plan works end to end."""
        done = run("plan", "--tokens", "100", "flux-dev")
        assert 0 == done.returncode, done.stderr
        assert "6 whole batches of 15 tokens; 10 of 100 tokens left" in done.stdout


def make_ledger(path: Path) -> None:
    """A ledger of 10,000 tokens spending 100 a day over the 20 days before 2026-02-01,
    half of it tagged project=shop, with a budget for the shop."""
    clock = Clock(datetime(2026, 1, 1, tzinfo=UTC))
    with ib.Ledger.open(path, clock=clock, durable=False) as ledger:
        ledger.credit(10_000, key="c")
        ledger.add_budget(ib.Budget("shop", 2000, "month", {"project": "shop"}, hard=True))
        for day in range(20):
            clock.now = datetime(2026, 1, 12, 6, tzinfo=UTC) + timedelta(days=day)
            ledger.debit(50, key=f"s{day}", tags={"project": "shop"})
            ledger.debit(50, key=f"o{day}")


NOW = "2026-02-01T00:00:00Z"


class TestBudget:
    """imagine-billing budget --db F add|status."""

    def test_add_then_status(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A budget added from the command line shows in status with its figures."""
        db = str(tmp_path / "l.db")
        make_ledger(tmp_path / "l.db")
        assert 0 == main(["budget", "--db", db, "add", "all", "--limit", "5000", "--period",
                          "total", "--alerts", "0.25,0.5"])
        assert "'all': 5,000 tokens per total (every entry; soft; alerts at 25%, 50%)" in \
            capsys.readouterr().out
        assert 0 == main(["budget", "--db", db, "status", "--now", NOW])
        out = capsys.readouterr().out.splitlines()
        assert ["all", "total", "5,000", "2,000", "0", "3,000", "-", "25%"] == out[2].split()
        assert out[1].split()[:6] == ["shop", "month", "2026-02", "2,000", "0", "0"]

    def test_status_json(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """One budget's status as JSON: January's shop spend is 1000 of 2000 (50%)."""
        make_ledger(tmp_path / "l.db")
        assert 0 == main(["budget", "--db", str(tmp_path / "l.db"), "status", "shop",
                          "--now", "2026-01-31T23:00:00Z", "--json"])
        document = json.loads(capsys.readouterr().out)
        assert (1000, 0, 1000) == (document["spent"], document["held"], document["remaining"])
        assert ["0.5"] == [a["threshold"] for a in document["alerts"]["actual"]]

    @pytest.mark.parametrize(
        ("argv", "message"),
        [(["add", "x", "--limit", "0"], "must be a whole number >= 1"),
         (["add", "x", "--limit", "5", "--alerts", "0.5,abc"], "got 'abc'"),
         (["add", "x", "--limit", "5", "--scope", "project"], "expected NAME=VALUE"),
         (["status", "nope"], "no budget named 'nope' (budgets: shop)"),
         (["add", "x", "--limit", "5", "--scope", "a=1", "--scope", "a=2"],
          "--scope 'a' is given twice ('1' and '2')"),
         (["add", "shop", "--limit", "5"], "a budget named 'shop' already exists with other "
          "settings: 'shop': 2,000 tokens per month (project=shop; hard;")],
    )
    def test_errors_are_one_line(self, tmp_path: Path, argv: list[str], message: str,
                                 capsys: pytest.CaptureFixture[str]) -> None:
        """Bad input exits 2 with one line on stderr naming the problem."""
        make_ledger(tmp_path / "l.db")
        assert 2 == exit_code(["budget", "--db", str(tmp_path / "l.db"), *argv])
        assert message in one_error_line(capsys.readouterr().err)

    def test_same_budget_again_is_no_change(self, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
        """Adding a budget with the very settings it has is accepted (exit 0), not a clash."""
        make_ledger(tmp_path / "l.db")
        assert 0 == main(["budget", "--db", str(tmp_path / "l.db"), "add", "shop", "--limit",
                          "2000", "--scope", "project=shop", "--hard"])
        assert "budget 'shop': 2,000 tokens per month" in capsys.readouterr().out

    def test_status_in_the_past(self, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
        """--now before a hold and a refund shows neither: the status as it was then."""
        db = tmp_path / "l.db"
        clock = Clock(datetime(2026, 3, 2, tzinfo=UTC))
        with ib.Ledger.open(db, clock=clock) as ledger:
            ledger.credit(1000, key="c")
            ledger.add_budget(ib.Budget("all", 500))
            debit = ledger.debit(100, key="d")
            clock.now = datetime(2026, 3, 20, tzinfo=UTC)
            ledger.hold(200, key="h")
            ledger.refund(debit, 40, key="r")
        assert 0 == main(["budget", "--db", str(db), "status", "all", "--now",
                          "2026-03-10T00:00:00Z", "--json"])
        then = json.loads(capsys.readouterr().out)
        assert (100, 0, 400) == (then["spent"], then["held"], then["remaining"])
        assert 0 == main(["budget", "--db", str(db), "status", "all", "--now",
                          "2026-03-21T00:00:00Z", "--json"])
        later = json.loads(capsys.readouterr().out)
        assert (60, 200, 240) == (later["spent"], later["held"], later["remaining"])
        assert 0 == main(["budget", "--db", str(db), "status", "--now", "1970-01-01T00:00:00Z"])
        row = capsys.readouterr().out.splitlines()[1].split()
        assert ["all", "month", "1970-01", "500", "0", "0", "500"] == row[:7]

    @pytest.mark.parametrize("args", [["\udcff"], ["n", "--scope", "a=\udcff"],
                                      ["n", "--scope", "\udcff=a"]])
    def test_text_that_is_not_unicode(self, tmp_path: Path, args: list[str],
                                      capsys: pytest.CaptureFixture[str]) -> None:
        """A byte that is not UTF-8 in the name or --scope (as the ledger commands' --key):
        exit 2, one line naming it, and no budget added."""
        make_ledger(tmp_path / "l.db")
        code = exit_code(["budget", "--db", str(tmp_path / "l.db"), "add", *args,
                          "--limit", "5"])
        assert (2, True) == (code, "is not valid Unicode text" in one_error_line(
            capsys.readouterr().err))
        with ib.Ledger.open(tmp_path / "l.db", readonly=True) as ledger:
            assert ["shop"] == [budget.name for budget in ledger.budgets()]

    def test_missing_ledger(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """status on a file that does not exist says so, and creates nothing."""
        assert 2 == exit_code(["budget", "--db", str(tmp_path / "none.db"), "status"])
        assert "no such file" in one_error_line(capsys.readouterr().err)
        assert not (tmp_path / "none.db").exists()


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


class TestForecast:
    """imagine-billing forecast --db F [--plot PNG] [--json]."""

    def test_text(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """100 a day from 8,000 left: runway 80 days, out on 2026-04-22."""
        make_ledger(tmp_path / "l.db")
        assert 0 == main(["forecast", "--db", str(tmp_path / "l.db"), "--now", NOW])
        out = capsys.readouterr().out
        assert "available        8,000 tokens at 2026-02-01 00:00 UTC" in out
        assert "burn             100 tokens/day over 14 days (range 100 to 100)" in out
        assert "runway           80 days 0 hours: runs out 2026-04-22 00:00 UTC" in out
        assert "projected spend  3,000 tokens over 30 days" in out

    def test_json(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """--json prints the forecast document."""
        make_ledger(tmp_path / "l.db")
        assert 0 == main(["forecast", "--db", str(tmp_path / "l.db"), "--now", NOW,
                          "--window", "7", "--horizon", "10", "--json"])
        document = json.loads(capsys.readouterr().out)
        assert ("100", "2026-04-22T00:00:00Z", "1000") == (
            document["burn_per_day"], document["exhausted_at"], document["projected_spend"])
        assert 7 == document["days"]

    def test_plot(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """--plot writes a PNG of a readable size (1100 x 600 pixels)."""
        make_ledger(tmp_path / "l.db")
        picture = tmp_path / "forecast.png"
        assert 0 == main(["forecast", "--db", str(tmp_path / "l.db"), "--now", NOW,
                          "--plot", str(picture)])
        assert f"plot             {picture}" in capsys.readouterr().out
        assert (1100, 600) == png_size(picture)
        assert picture.stat().st_size > 20_000

    @pytest.mark.parametrize("name", ["chart.PNG", "p.svg.png"])
    def test_plot_is_written_to_the_path_given(self, tmp_path: Path, name: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
        """--plot NAME writes a PNG at exactly NAME (no suffix added), and reports that
        path."""
        make_ledger(tmp_path / "l.db")
        picture = tmp_path / name
        assert 0 == main(["forecast", "--db", str(tmp_path / "l.db"), "--now", NOW,
                          "--plot", str(picture), "--json"])
        assert str(picture) == json.loads(capsys.readouterr().out)["plot"]
        assert (1100, 600) == png_size(picture)
        assert sorted([name, "l.db"]) == sorted(p.name for p in tmp_path.iterdir())

    @pytest.mark.parametrize(("name", "signature"), [
        ("f.png", b"\x89PNG\r\n\x1a\n"), ("f.svg", b"<?xml"), ("f.pdf", b"%PDF-")])
    def test_the_format_follows_the_name(self, tmp_path: Path, name: str, signature: bytes,
                                         capsys: pytest.CaptureFixture[str]) -> None:
        """PNG, SVG or PDF by the extension (--plot x.svg wrote PNG data), each rendered and
        recognised by its first bytes; drawn twice, an SVG or PDF is the same bytes."""
        make_ledger(tmp_path / "l.db")
        picture = tmp_path / name
        argv = ["forecast", "--db", str(tmp_path / "l.db"), "--now", NOW, "--plot",
                str(picture)]
        assert 0 == main(argv)
        first = picture.read_bytes()
        assert first.startswith(signature)
        assert len(first) > 5_000
        assert 0 == main(argv)  # replaces its own earlier picture
        if not name.endswith(".png"):
            assert first == picture.read_bytes()
        capsys.readouterr()

    @pytest.mark.parametrize("name", ["chart", "p.xyz", "p.jpg"])
    def test_an_unknown_format_is_refused(self, tmp_path: Path, name: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
        make_ledger(tmp_path / "l.db")
        assert 2 == exit_code(["forecast", "--db", str(tmp_path / "l.db"), "--now", NOW,
                               "--plot", str(tmp_path / name)])
        assert "must end in .png, .svg or .pdf" in one_error_line(capsys.readouterr().err)
        assert ["l.db"] == [p.name for p in tmp_path.iterdir()]

    def test_an_svg_replaces_only_an_svg(self, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
        make_ledger(tmp_path / "l.db")
        picture = tmp_path / "f.svg"
        picture.write_bytes(b"\x89PNG\r\n\x1a\n a PNG named .svg")
        assert 2 == exit_code(["forecast", "--db", str(tmp_path / "l.db"), "--now", NOW,
                               "--plot", str(picture)])
        assert "is not an SVG image" in one_error_line(capsys.readouterr().err)

    @pytest.mark.parametrize(
        ("where", "message"),
        [(".", "is a directory; expected a file name such as"),
         ("missing/p.png", "missing' does not exist"),
         ("l.db/p.png", "l.db' is not a directory"),
         ("x" * 300 + ".png", "File name too long")],
    )
    def test_plot_that_cannot_be_written(self, tmp_path: Path, where: str, message: str,
                                         capsys: pytest.CaptureFixture[str]) -> None:
        """A --plot path that is a directory, or in a folder that is missing (or a file), or
        that the system refuses, exits 2 with one line naming it, and writes nothing."""
        make_ledger(tmp_path / "l.db")
        before = sorted(tmp_path.iterdir())
        assert 2 == exit_code(["forecast", "--db", str(tmp_path / "l.db"), "--now", NOW,
                               "--plot", str(tmp_path / where)])
        captured = capsys.readouterr()
        assert message in one_error_line(captured.err)
        assert "" == captured.out
        assert before == sorted(tmp_path.iterdir())

    @pytest.mark.parametrize("name", ["l.db", "symlink", "hard-link", "notes.txt",
                                      "l.db-wal"])
    def test_plot_never_replaces_what_it_did_not_write(
            self, tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]) -> None:
        """--plot naming the ledger (by any name), a file SQLite keeps beside it or a file
        that is not a PNG image: exit 2, one line, every file as it was."""
        db = tmp_path / "l.db"
        make_ledger(db)
        (tmp_path / "notes.txt").write_text("mine\n")
        (tmp_path / "symlink").symlink_to(db)
        if name == "hard-link":
            (tmp_path / name).hardlink_to(db)
        before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
        assert 2 == exit_code(["forecast", "--db", str(db), "--now", NOW,
                               "--plot", str(tmp_path / name)])
        assert "--plot" in one_error_line(capsys.readouterr().err)
        assert before == {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    @pytest.mark.parametrize("existing", [b"", b"\x89PNG\r\n\x1a\n an earlier plot"])
    def test_plot_replaces_an_empty_file_or_a_png(self, tmp_path: Path, existing: bytes,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
        """An empty file or an earlier PNG is replaced by the new picture, keeping its
        permissions; no temporary file is left."""
        make_ledger(tmp_path / "l.db")
        picture = tmp_path / "p.png"
        picture.write_bytes(existing)
        picture.chmod(0o640)
        assert 0 == main(["forecast", "--db", str(tmp_path / "l.db"), "--now", NOW,
                          "--plot", str(picture)])
        assert ((1100, 600), 0o640, ["l.db", "p.png"]) == (
            png_size(picture), picture.stat().st_mode & 0o777,
            sorted(p.name for p in tmp_path.iterdir()))

    def test_read_only_folder(self, tmp_path: Path) -> None:
        """forecast and budget status read a ledger in a folder its user may not write."""
        from tests.unit.test_ledger_sqlite import read_only_folder, run_as_another_user

        folder, path = read_only_folder(tmp_path)
        done = [run_as_another_user([sys.executable, "-m", "imagine_billing", *args,
                                     "--db", str(path), *more], folder)
                for args, more in ((["forecast"], []), (["budget"], ["status"]))]
        assert [0, 0] == [d.returncode for d in done], [d.stderr for d in done]

    @pytest.mark.parametrize(
        ("credit", "line"),
        [(10**8 + 1, "runway           100,000,000 days 0 hours: runs out beyond the year 9999"),
         (10**12 + 1, "runway           more than 999,999,999 days: runs out beyond the year "
          "9999, not within any representable date")],
    )
    def test_runway_past_the_last_date(self, tmp_path: Path, credit: int, line: str,
                                       capsys: pytest.CaptureFixture[str]) -> None:
        """1 token a day from a huge balance: the runway says how far (not "nothing
        spent"), beyond the year 9999 or beyond what a duration holds."""
        clock = Clock(datetime(2026, 1, 1, tzinfo=UTC))
        with ib.Ledger.open(tmp_path / "l.db", clock=clock) as ledger:
            ledger.credit(credit, key="c")
            ledger.debit(1, key="d")
        assert 0 == main(["forecast", "--db", str(tmp_path / "l.db"), "--now",
                          "2026-01-01T12:00:00Z"])
        out = capsys.readouterr().out
        assert line in out.splitlines()
        assert "nothing spent" not in out

    def test_plot_with_nothing_spent(self, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
        """A ledger that spent nothing still plots (a flat projection), and says so."""
        with ib.Ledger.open(tmp_path / "l.db") as ledger:
            ledger.credit(500, key="c")
        picture = tmp_path / "flat.png"
        assert 0 == main(["forecast", "--db", str(tmp_path / "l.db"), "--plot", str(picture)])
        assert "no exhaustion in sight" in capsys.readouterr().out
        assert (1100, 600) == png_size(picture)

    def test_plot_without_matplotlib(self, tmp_path: Path) -> None:
        """Without matplotlib, --plot fails cleanly (exit 2, one line, the extra to
        install) and writes nothing."""
        make_ledger(tmp_path / "l.db")
        picture = tmp_path / "forecast.png"
        wrapper = ("import sys; sys.modules['matplotlib'] = None; "
                   "from imagine_billing.cli import main; sys.exit(main(sys.argv[1:]))")
        done = subprocess.run(
            [sys.executable, "-c", wrapper, "forecast", "--db", str(tmp_path / "l.db"),
             "--plot", str(picture)], capture_output=True, text=True, timeout=60, check=False)
        assert 2 == done.returncode
        assert "pip install 'imagine-billing[plot]'" in one_error_line(done.stderr)
        assert not picture.exists()

    def test_matplotlib_only_imported_for_plot(self, tmp_path: Path) -> None:
        """A forecast without --plot does not import matplotlib."""
        make_ledger(tmp_path / "l.db")
        code = ("import sys; from imagine_billing.cli import main; "
                "main(['forecast', '--db', sys.argv[1]]); "
                "print('matplotlib' in sys.modules)")
        done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "l.db")],
                              capture_output=True, text=True, timeout=60, check=False)
        assert "False" == done.stdout.strip().splitlines()[-1], done.stderr


class TestForecastFigure:
    """forecast_figure: what the --plot picture holds (read from the figure itself)."""

    NOW = datetime(2026, 3, 7, tzinfo=UTC)

    def figure(self) -> Any:
        """The figure of 100 a day from 1000: a week budget ending in 2 days, a total one,
        and a budget scoped to a project, used up by its own burn on 10 March."""
        from imagine_billing.cli._plot import BudgetMark

        now = self.NOW
        result = forecast_from([100] * 14, 1000, now=now)
        history = [(now - timedelta(days=2), 1200), (now - timedelta(days=1, hours=15), 1100),
                   (now, 1000)]
        lines = [BudgetMark("budget 'wk' (week 2026-W10): 50 left", 950,
                            datetime(2026, 3, 9, tzinfo=UTC), None),
                 BudgetMark("budget 'all' (total): 400 left", 600, None, None),
                 BudgetMark("budget 'shop' (project=shop, month 2026-03): 90 left", None,
                            datetime(2026, 4, 1, tzinfo=UTC), datetime(2026, 3, 10, tzinfo=UTC))]
        return forecast_figure(result, history, lines)

    def test_legend_names_every_part(self) -> None:
        """The legend lists the history, the band, the forecast, the runs-out date and each
        budget."""
        texts = [t.get_text() for t in self.figure().legends[0].get_texts()]
        assert ["available (ledger)", "forecast range (100.0 to 100.0 tokens/day)",
                "forecast at 100.0 tokens/day", "runs out 2026-03-17 00:00 UTC",
                "budget 'wk' (week 2026-W10): 50 left", "budget 'all' (total): 400 left",
                "budget 'shop' (project=shop, month 2026-03): 90 left"] == texts

    def test_budgets_span_their_own_period(self) -> None:
        """A budget of every entry is drawn at its balance from now to its period's end (the
        week's ends in 2 days; a total one to the picture's edge), not across the picture;
        a scoped one is no balance line but a mark on the forecast where its own scope's
        burn uses it up."""
        from matplotlib import dates as mdates

        axes = self.figure().axes[0]
        spans = {}
        for collection in axes.collections:
            label = str(collection.get_label())
            if label.startswith("budget"):
                [[(x0, y0), (x1, y1)]] = collection.get_segments()
                spans[label] = (mdates.num2date(x0), mdates.num2date(x1), y0, y1)
        right = mdates.num2date(axes.get_xlim()[1])
        assert {"budget 'wk' (week 2026-W10): 50 left": (
                    self.NOW, datetime(2026, 3, 9, tzinfo=UTC), 950, 950),
                "budget 'all' (total): 400 left": (self.NOW, right, 600, 600)} == spans
        [mark] = [line for line in axes.get_lines() if str(line.get_label()).startswith(
            "budget 'shop'")]
        assert [mdates.date2num(datetime(2026, 3, 10, tzinfo=UTC))] == list(mark.get_xdata())
        assert [700] == list(mark.get_ydata())  # 1000 less 3 days at 100 a day

    def test_labels_are_clear_of_lines_and_show_the_year(self) -> None:
        """The runs-out label sits beside its line, not on it; the year is on the axis."""
        figure = self.figure()
        axes = figure.axes[0]
        figure.canvas.draw()
        [runs_out] = [t for t in axes.texts if t.get_text().startswith("runs out")]
        assert 0 == runs_out.get_rotation()
        assert "right" == runs_out.get_horizontalalignment()
        assert "date (UTC, 2026)" == axes.get_xlabel()

    def test_history_is_steps_with_headroom(self) -> None:
        """The balance holds until the next entry (steps, not ramps), and the y axis leaves
        room above the highest point."""
        axes = self.figure().axes[0]
        history = next(line for line in axes.get_lines()
                       if line.get_label() == "available (ledger)")
        assert "steps-post" == history.get_drawstyle()
        assert [1200, 1100, 1000] == list(history.get_ydata())
        bottom, top = axes.get_ylim()
        assert 0 == bottom
        assert top > 1200 * 1.05

    def test_history_follows_the_ledger(self, tmp_path: Path) -> None:
        """Every step of the history is the ledger's own available balance at that time:
        credits, holds, captures, voids, debits and refunds."""
        clock = Clock(datetime(2026, 3, 1, tzinfo=UTC))
        with ib.Ledger.open(tmp_path / "l.db", clock=clock) as ledger:
            ledger.credit(1000, key="c")
            for hour, write in enumerate([
                    lambda: ledger.hold(30, key="h1"), lambda: ledger.capture("h1", 20),
                    lambda: ledger.hold(15, key="h2"), lambda: ledger.void("h2"),
                    lambda: ledger.debit(100, key="d"),
                    lambda: ledger.refund("d", 40, key="r"),
                    lambda: ledger.credit(500, key="top-up")], start=1):
                clock.now = datetime(2026, 3, 2, hour, tzinfo=UTC)
                write()
            since, until = datetime(2026, 3, 1, 12, tzinfo=UTC), datetime(2026, 3, 3, tzinfo=UTC)
            points, exact = available_history(ledger, since, until)
            assert exact
            assert [ledger.available_at(t) for t, _ in points] == [v for _, v in points]
            assert [since, *(datetime(2026, 3, 2, h, tzinfo=UTC) for h in range(1, 8)),
                    until] == [t for t, _ in points]
            assert [1000, 970, 980, 965, 980, 880, 920, 1420, 1420] == [v for _, v in points]
            daily, exact = available_history(ledger, since, until, limit=3)
            assert not exact
            assert [(since, 1000), (since + timedelta(days=1), 1420),
                    (until, 1420)] == daily

    def test_daily_samples_are_a_line(self) -> None:
        """History sampled once a day (a busy ledger) is drawn as a line through the samples,
        and the legend says so."""
        axes = forecast_figure(forecast_from([100] * 14, 1000, now=datetime(2026, 3, 7,
                                                                          tzinfo=UTC)),
                               [(datetime(2026, 3, 6, tzinfo=UTC), 1100),
                                (datetime(2026, 3, 7, tzinfo=UTC), 1000)], [],
                               steps=False).axes[0]
        line = axes.get_lines()[0]
        assert ("available (ledger, once a day)", "default") == (line.get_label(),
                                                                line.get_drawstyle())


class TestHardBudgetOnTheCommandLine:
    """A debit refused by a hard budget is a failed check: exit 1, one line."""

    def test_exceeded_is_exit_1(self, tmp_path: Path) -> None:
        """With a hard daily budget of 10, a debit of 15 exits 1 naming the budget."""
        db = str(tmp_path / "l.db")
        assert 0 == main(["ledger", "--db", db, "credit", "100", "--key", "c"])
        assert 0 == main(["budget", "--db", db, "add", "daily", "--limit", "10", "--period",
                          "day", "--hard"])
        result = run("ledger", "--db", db, "debit", "flux-dev", "--key", "d")
        assert 1 == result.returncode
        assert "budget 'daily' would be exceeded: 15 needed, 10 remaining" == one_error_line(
            result.stderr).removeprefix("imagine-billing: error: ")
