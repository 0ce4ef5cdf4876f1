"""``plan``, ``budget`` and ``forecast``: what a budget buys, where budgets stand, and when
the tokens run out (with an optional picture, ``--plot``, drawn by matplotlib)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from imagine_billing.cli.arguments import (
    add_table_option,
    instant,
    name_number,
    open_ledger,
    tag,
    values_checked,
    whole_number,
)
from imagine_billing.cli.output import PNG, columns, emit_json, output_problem, write_output
from imagine_billing.errors import BillingError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from imagine_billing.ledger import Ledger
    from imagine_billing.planner.budgets import Budget
    from imagine_billing.planner.forecasting import Forecast

__all__ = ["draw_forecast", "forecast_figure", "register"]

_MICRO = timedelta(microseconds=1)


def register(commands: Any) -> None:
    """Add ``plan``, ``budget`` and ``forecast`` to the command parsers."""
    parser = commands.add_parser(
        "plan",
        help="how many calls of each style fit in N tokens (STYLE[:WEIGHT]...)",
        description="Plan calls for a budget: whole batches of the mix first (WEIGHT calls "
        "of each style), then the leftover filled one call at a time with the style furthest "
        "behind its share, never exceeding the budget. E.g. 'plan --tokens 1000 flux-dev "
        "imagine-turbo:4' is four imagine-turbo calls for each flux-dev call.",
    )
    parser.add_argument("--tokens", type=whole_number(0), required=True, metavar="N",
                        help="the budget in tokens (a whole number >= 0)")
    parser.add_argument("mix", nargs="+", type=name_number("WEIGHT", "flux-dev:2"),
                        metavar="STYLE[:WEIGHT]",
                        help="a style id and its weight in the mix (default 1)")
    add_table_option(parser)
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")
    parser.set_defaults(run=run_plan)
    _register_budget(commands)
    _register_forecast(commands)


def run_plan(args: argparse.Namespace) -> int:
    from imagine_billing.planner.plans import plan
    from imagine_billing.pricing.loading import load_price_table

    mix: dict[str, int] = {}
    for style, weight in args.mix:
        if style in mix:
            return _usage(f"style {style!r} is named twice; give it once with its weight")
        mix[style] = weight
    table = load_price_table(args.table)
    try:
        result = plan(args.tokens, mix, table)
    except ValueError as error:  # a free style: no maximum (BillingErrors go to main)
        if isinstance(error, BillingError):
            raise
        return _usage(str(error))
    if args.json:
        emit_json({"tokens": args.tokens, "mix": mix, **result.to_dict()})
        return 0
    rows: list[list[object]] = []
    for style, weight in mix.items():
        each = table.cost(style)
        count = result.counts[style]
        rows.append([style, weight, each, count, each * count])
    rows.append(["total", "", "", sum(result.counts.values()), result.total])
    print(columns(["STYLE", "WEIGHT", "EACH", "CALLS", "TOKENS"], rows, right=(1, 2, 3, 4)))
    batch = sum(table.cost(style) * weight for style, weight in mix.items())
    print(f"{result.batches} whole batch{'es' if result.batches != 1 else ''} of {batch} "
          f"tokens; {result.leftover} of {args.tokens} tokens left")
    print(f"prices: {table.api} {table.version} ({table.digest[:19]}...)")
    return 0


def _usage(message: str) -> int:
    print(f"imagine-billing: error: {message}", file=sys.stderr)
    return 2


PLOT_HINT = ("--plot needs matplotlib: install the 'plot' extra, e.g. "
             "pip install 'imagine-billing[plot]'")


def _matplotlib() -> Any:
    """The matplotlib module, or ``None`` when it is not installed."""
    try:
        import matplotlib
    except ImportError:
        return None
    return matplotlib


def forecast_figure(forecast: Forecast, history: Sequence[tuple[datetime, int]],
                    budget_lines: Sequence[tuple[str, int, datetime | None]], *,
                    steps: bool = True) -> Figure:
    """The picture of a forecast: the available balance, its projection with the low/high
    band, the runs-out date, and one line per budget.

    Args:
        forecast: The forecast (its ``now``, ``available``, burn and range).
        history: ``(moment, available)`` after each change up to ``now``, oldest first: drawn
            as steps (the balance holds until the next entry).
        steps: ``False`` when ``history`` holds samples (once a day) rather than every
            change: then drawn as a line through them.
        budget_lines: ``(label, balance, until)``: the available balance at which each
            budget's current period would be used up, drawn as a horizontal line across the
            picture, with a mark at ``until`` (the period's end; ``None`` for a total budget).

    Returns:
        The matplotlib `Figure` (1100 x 600 pixels), not yet saved.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import dates as mdates
    from matplotlib.figure import Figure

    now = forecast.now
    available = float(forecast.available)
    burn, low, high = float(forecast.burn_per_day), float(forecast.low), float(forecast.high)
    end = now + forecast.horizon
    if forecast.runway is not None and forecast.runway <= timedelta(days=3650):
        end = max(now + forecast.runway * 1.15, now + timedelta(days=1))
    if forecast.latest_exhaustion is not None and forecast.latest_exhaustion - now <= timedelta(
            days=3650):
        end = max(end, forecast.latest_exhaustion + (forecast.latest_exhaustion - now) * 0.05)
    begin = min([now, *(t for t, _ in history)])

    def x(when: datetime) -> float:
        """Matplotlib's date number (floats are for plotting only)."""
        return float(mdates.date2num(when))  # type: ignore[no-untyped-call]

    points = 200
    moments = [now + (end - now) * (i / points) for i in range(points + 1)]
    times = [x(t) for t in moments]

    def level(rate: float) -> list[float]:
        return [max(0.0, available - rate * (t - now) / timedelta(days=1)) for t in moments]

    figure = Figure(figsize=(11, 6), dpi=100, layout="constrained")
    axes = figure.subplots()
    if history:
        axes.plot([x(t) for t, _ in history], [max(0, v) for _, v in history],
                  color="tab:blue", linewidth=2,
                  drawstyle="steps-post" if steps else "default",
                  marker=None if steps else "o", markersize=3,
                  label="available (ledger)" if steps else "available (ledger, once a day)")
    axes.fill_between(times, level(high), level(low), color="tab:orange", alpha=0.25,
                      label=f"forecast range ({low:,.1f} to {high:,.1f} tokens/day)")
    axes.plot(times, level(burn), color="tab:orange", linewidth=2, linestyle="--",
              label=f"forecast at {burn:,.1f} tokens/day")
    axes.axvline(x(now), color="grey", linewidth=1)
    axes.annotate("now", (x(now), 1), xycoords=("data", "axes fraction"), xytext=(3, -12),
                  textcoords="offset points", color="grey")
    if forecast.exhausted_at is not None and forecast.exhausted_at <= end:
        axes.axvline(x(forecast.exhausted_at), color="tab:red", linewidth=1, linestyle=":",
                     label=f"runs out {forecast.exhausted_at:%Y-%m-%d %H:%M} UTC")
        axes.annotate(f"runs out {forecast.exhausted_at:%Y-%m-%d %H:%M} UTC",
                      (x(forecast.exhausted_at), 0.5), xycoords=("data", "axes fraction"),
                      xytext=(4, 0), textcoords="offset points", color="tab:red",
                      rotation=90, va="center")
    _draw_budgets(axes, [(label, balance, None if until is None or not begin <= until <= end
                          else x(until)) for label, balance, until in budget_lines])
    top = max([available, *(float(v) for _, v in history),
               *(float(b) for _, b, _ in budget_lines)])
    axes.set_ylim(0, top * 1.12 if top > 0 else 1)  # headroom: a flat line is not the border
    axes.set_xlim(x(begin), x(end))
    axes.set_xlabel("date (UTC)")
    axes.set_ylabel("available tokens")
    axes.set_title(f"Available tokens and forecast ({forecast.available:,} available at "
                   f"{now:%Y-%m-%d %H:%M} UTC)")
    # matplotlib's date helpers are untyped.
    locator = mdates.AutoDateLocator(tz=UTC)  # type: ignore[no-untyped-call]
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(
        mdates.ConciseDateFormatter(locator, tz=UTC))  # type: ignore[no-untyped-call]
    axes.yaxis.set_major_formatter(matplotlib.ticker.StrMethodFormatter("{x:,.0f}"))
    axes.grid(True, alpha=0.3)
    # Below the axes, so that it hides no part of the picture; in two columns if they fit.
    widest = max(len(label) for label in axes.get_legend_handles_labels()[1])
    figure.legend(loc="outside lower center", ncols=2 if widest <= 72 else 1,
                  fontsize="small", frameon=False)
    return figure


def _draw_budgets(axes: Any, marks: Sequence[tuple[str, int, float | None]]) -> None:
    """One horizontal line per budget ``(label, balance, end)`` across the picture, named on
    the line, with a mark at ``end`` (the period's end as a date number, ``None`` when it is
    not in the picture)."""
    colours = ["tab:purple", "tab:green", "tab:brown", "tab:pink", "tab:olive", "tab:cyan"]
    styles: list[Literal["-.", ":", "--", "-"]] = ["-.", ":", "--", "-"]
    for index, (label, balance, until) in enumerate(marks):
        colour = colours[index % len(colours)]
        # Across the whole picture, whatever the period's length: a week's budget is as
        # visible as a total one; the period's end, when in the picture, is marked on it.
        axes.axhline(balance, color=colour, linewidth=1.5,
                     linestyle=styles[index % len(styles)], label=label)
        # Its name on the line, each budget's further right: lines close together stay legible.
        axes.annotate(label.split(":", 1)[0], (0.01 + 0.24 * (index % 4), balance),
                      xycoords=("axes fraction", "data"), xytext=(0, 3),
                      textcoords="offset points", color=colour, fontsize="small")
        if until is not None:
            axes.plot([until], [balance], color=colour, marker="|", markersize=16,
                      markeredgewidth=2, linestyle="none")


def draw_forecast(path: str, forecast: Forecast, history: Sequence[tuple[datetime, int]],
                  budget_lines: Sequence[tuple[str, int, datetime | None]], *,
                  steps: bool = True) -> Figure:
    """Draw `forecast_figure` to the PNG file ``path``, exactly that name (no suffix added),
    whole or not at all (see `write_output`): a file there is replaced only if it is empty
    or a PNG image.

    Raises:
        FileExistsError: ``path`` holds a file that is not a PNG image.
        OSError: The file cannot be written.
    """
    figure = forecast_figure(forecast, history, budget_lines, steps=steps)
    write_output("--plot", path, "a PNG image", PNG,
                 lambda file: figure.savefig(file, format="png"))
    return figure


def _plot_problem(path: str, ledger: str) -> str | None:
    """Why ``--plot PATH`` cannot be written, found before any work; ``None`` if it may be
    (see `output_problem`: never the ``ledger`` or a file SQLite keeps beside it, nor a file
    that is not a PNG image)."""
    target = Path(path)
    try:
        if target.is_dir():
            return (f"--plot {path!r} is a directory; expected a PNG file name such as "
                    f"{str(target / 'forecast.png')!r}")
        folder = target.parent
        if not folder.is_dir():
            what = "is not a directory" if folder.exists() else "does not exist"
            return f"--plot {path!r}: the directory {str(folder)!r} {what}"
    except OSError as error:  # a name too long, a loop of links...
        return f"--plot {path!r}: {error.strerror or error}"
    companions = {os.path.realpath(ledger) + suffix for suffix in ("-wal", "-shm", "-journal")}
    if os.path.realpath(path) in companions:
        return (f"--plot {path!r} is a file SQLite keeps beside the ledger {ledger!r}: give "
                "another file name")
    return output_problem("--plot", path, "a PNG image", PNG, keep=[ledger])


_EXACT_HISTORY = 20_000
"""The most entries `_history` walks one by one (about a second and a half of reading)."""


def _history(ledger: Ledger, since: datetime, until: datetime,
             limit: int = _EXACT_HISTORY) -> tuple[list[tuple[datetime, int]], bool]:
    """The available balance from ``since`` to ``until``, and whether it is exact steps.

    Up to ``limit`` entries: ``(moment, available)`` at ``since``, after each entry,
    and at ``until`` (thinned to about 4,000 steps for drawing), and ``True``. A busier
    window is sampled at each day from ``since`` and at ``until`` instead, and ``False``.
    """
    level = ledger.available_at(since)
    points = [(since, level)]
    holds: dict[int, int] = {}
    for entry in ledger.entries(since=since + _MICRO, until=until + _MICRO):
        if len(points) > limit:
            days = (until - since) // timedelta(days=1)
            moments = [since + timedelta(days=d) for d in range(days + 1)]
            if moments[-1] < until:
                moments.append(until)
            return [(t, ledger.available_at(t)) for t in moments], False
        if entry.kind in ("credit", "refund", "void", "expire"):
            level += entry.tokens
        elif entry.kind in ("debit", "hold"):
            level -= entry.tokens
            if entry.kind == "hold":
                holds[entry.id] = entry.tokens
        elif entry.kind == "capture" and entry.ref is not None:
            held = holds.pop(entry.ref, None)
            if held is None:
                held = ledger.get(entry.ref).tokens
            level += held - entry.tokens
        points.append((entry.at, level))
    points.append((until, ledger.available_at(until)))
    if len(points) > 8000:
        # The last point of each of 4,000 equal spans of time: far finer than the pixels.
        width = (until - since) / 4000
        kept: dict[int, tuple[datetime, int]] = {}
        for moment, value in points[1:]:
            kept[(moment - since) // width] = (moment, value)
        points = [points[0], *kept.values()]
    return points, True


def _register_budget(commands: Any) -> None:
    parser = commands.add_parser(
        "budget",
        help="add a budget to a ledger, or show where budgets stand",
        description="Budgets cap the spend of a UTC calendar period (day, ISO week, month) or "
        "of all time (total), for the entries whose tags match a scope. A hard budget refuses "
        "holds and debits past it.",
    )
    parser.add_argument("--db", required=True, metavar="FILE", help="the ledger file (SQLite)")
    actions = parser.add_subparsers(title="actions", dest="action", metavar="ACTION",
                                    parser_class=type(parser))
    actions.required = True
    add = actions.add_parser("add", help="add a budget (the same settings again: no change)")
    add.add_argument("name", metavar="NAME", help="the budget's name, unique in the ledger")
    add.add_argument("--limit", type=whole_number(1), required=True, metavar="N",
                     help="tokens the period may spend (a whole number >= 1)")
    add.add_argument("--period", choices=("day", "week", "month", "total"), default="month",
                     help="the period (UTC calendar; ISO weeks); default month")
    add.add_argument("--scope", action="append", type=tag, default=[], metavar="NAME=VALUE",
                     help="count only entries with this tag (repeat for several)")
    add.add_argument("--alerts", type=_thresholds, default=None, metavar="F,F,...",
                     help="alert thresholds as fractions of the limit (default 0.5,0.8,1)")
    add.add_argument("--hard", action="store_true",
                     help="refuse holds and debits that would exceed the limit")
    add.add_argument("--json", action="store_true", help="print the budget as JSON")
    add.set_defaults(run=values_checked(run_budget_add, _budget_action))
    status = actions.add_parser("status", help="spend, holds, remaining and alerts")
    status.add_argument("name", nargs="?", metavar="NAME", help="one budget (default: all)")
    status.add_argument("--now", type=instant, default=None, metavar="TIME",
                        help="the moment to report on (RFC 3339 with a zone); default now")
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    status.set_defaults(run=values_checked(run_budget_status, _budget_action))


def _register_forecast(commands: Any) -> None:
    parser = commands.add_parser(
        "forecast",
        help="burn per day, runway and exhaustion date of a ledger's tokens",
        description="Forecast spend from the last WINDOW days (24-hour slices ending now): "
        "the mean burn, a low/high range of mean -/+ 2 standard errors, the runway of the "
        "available tokens and the spend projected over HORIZON days.",
    )
    parser.add_argument("--db", required=True, metavar="FILE", help="the ledger file (SQLite)")
    parser.add_argument("--window", type=whole_number(1, 36_600), default=14, metavar="DAYS",
                        help="days of history the burn averages (default 14)")
    parser.add_argument("--horizon", type=whole_number(1, 36_600), default=30, metavar="DAYS",
                        help="days ahead to project the spend (default 30)")
    parser.add_argument("--now", type=instant, default=None, metavar="TIME",
                        help="the end of the window (RFC 3339 with a zone); default now")
    parser.add_argument("--plot", metavar="PNG", default=None,
                        help="also draw the balance, the forecast and the budgets to PNG "
                        "(needs the 'plot' extra: pip install 'imagine-billing[plot]')")
    parser.add_argument("--json", action="store_true", help="print the forecast as JSON")
    parser.set_defaults(run=run_forecast)


def _budget_action(args: argparse.Namespace) -> str:
    return f"budget {args.action}"


def _thresholds(text: str) -> tuple[str, ...]:
    parts = tuple(p.strip() for p in text.split(","))
    if not all(parts):
        raise argparse.ArgumentTypeError(f"{text!r}: expected fractions such as 0.5,0.8,1")
    return parts


def run_budget_add(args: argparse.Namespace) -> int:
    from imagine_billing.errors import BudgetConflict
    from imagine_billing.planner.budgets import Budget

    scope: dict[str, str] = {}
    for name, value in args.scope:
        if name in scope:
            return _usage(f"--scope {name!r} is given twice ({scope[name]!r} and {value!r}); "
                          "a scope has one value per tag name")
        scope[name] = value
    # A value Budget refuses (a name that is not valid Unicode...): exit 2, values_checked.
    budget = Budget(args.name, args.limit, args.period, scope or None,
                    **({} if args.alerts is None else {"alerts": args.alerts}), hard=args.hard)
    with open_ledger(args.db, create=True) as ledger:
        try:
            added = ledger.add_budget(budget)
        except BudgetConflict:
            # The ledger's message holds the stored settings as JSON: show them as people
            # write them on this command line.
            existing = ledger.budget(budget.name)
            raise BudgetConflict(budget.name, _describe(existing)) from None
    if args.json:
        emit_json(added.to_dict())
    else:
        print(f"budget {_describe(added)}")
    return 0


def _describe(budget: Budget) -> str:
    from imagine_billing.planner.budgets import percent

    scope = ", ".join(f"{k}={v}" for k, v in budget.scope.items()) or "every entry"
    hard = "hard" if budget.hard else "soft"
    return (f"{budget.name!r}: {budget.limit:,} tokens per {budget.period} ({scope}; {hard}; "
            f"alerts at {', '.join(percent(a) for a in budget.alerts)})")


def _tokens_text(value: Fraction | int | None) -> str:
    """Tokens for people: whole numbers as they are, fractions to two decimals."""
    if value is None:
        return "-"
    if isinstance(value, int) or value.denominator == 1:
        return f"{int(value):,}"
    rounded = (Decimal(value.numerator) / Decimal(value.denominator)).quantize(Decimal("0.01"))
    if rounded == rounded.to_integral_value():
        return f"{int(rounded):,}"
    return f"{rounded:,}"


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def run_budget_status(args: argparse.Namespace) -> int:
    from imagine_billing.planner.budgets import budget_status

    with open_ledger(args.db, create=False, readonly=True) as ledger:
        names = [args.name] if args.name else [b.name for b in ledger.budgets()]
        statuses = [budget_status(ledger, name, args.now) for name in names]
    if args.json:
        emit_json([s.to_dict() for s in statuses] if not args.name else statuses[0].to_dict())
        return 0
    if not statuses:
        print("no budgets (add one with: imagine-billing budget --db FILE add NAME --limit N)")
        return 0
    rows = []
    for status in statuses:
        budget = status.budget
        alerts = [f"{a.percent}" for a in status.actual]
        alerts += [f"{a.percent} (forecast)" for a in status.forecasted]
        rows.append([budget.name, f"{budget.period} {status.period}" if budget.period != "total"
                     else "total", f"{budget.limit:,}", f"{status.spent:,}",
                     f"{status.held:,}", f"{status.remaining:,}",
                     _tokens_text(status.projected), ", ".join(alerts) or "-"])
    print(columns(["BUDGET", "PERIOD", "LIMIT", "SPENT", "HELD", "REMAINING", "PROJECTED",
                   "ALERTS"], rows, right=(2, 3, 4, 5, 6)))
    return 0


def _runway(result: Forecast) -> str:
    """The runway line of the forecast, for people."""
    if result.burn_per_day == 0:
        return "no exhaustion in sight (nothing spent in the window)"
    between = ""
    if result.earliest_exhaustion is not None:
        latest = result.latest_exhaustion
        last = ("never" if result.low == 0 else _when(latest) if latest is not None
                else "beyond the year 9999")
        between = f" (between {_when(result.earliest_exhaustion)} and {last})"
    if result.runway is None:
        return ("more than 999,999,999 days: runs out beyond the year 9999, not within any "
                f"representable date{between}")
    days, rest = divmod(result.runway, timedelta(days=1))
    hours = rest // timedelta(hours=1)
    when = "beyond the year 9999" if result.exhausted_at is None else _when(result.exhausted_at)
    return f"{days:,} days {hours} hours: runs out {when}{between}"


def run_forecast(args: argparse.Namespace) -> int:
    from imagine_billing.planner.budgets import budget_status
    from imagine_billing.planner.forecasting import forecast

    if args.plot is not None:
        if _matplotlib() is None:
            return _usage(PLOT_HINT)
        problem = _plot_problem(args.plot, args.db)
        if problem is not None:
            return _usage(problem)
    with open_ledger(args.db, create=False, readonly=True) as ledger:
        result = forecast(ledger, now=args.now, window=timedelta(days=args.window),
                          horizon=timedelta(days=args.horizon))
        if args.plot is not None:
            history, steps = _history(ledger, result.now - timedelta(days=result.days),
                                      result.now)
            lines = []
            for budget in ledger.budgets():
                status = budget_status(ledger, budget.name, result.now)
                floor = max(0, result.available - status.remaining)
                period = "total" if status.end is None else f"{budget.period} {status.period}"
                until = "" if status.end is None else f" until {status.end:%Y-%m-%d %H:%M}"
                lines.append((f"budget {budget.name!r} ({period}): {status.remaining:,} "
                              f"left{until}; used up when available reaches {floor:,}",
                              floor, status.end))
    if args.plot is not None:
        try:
            draw_forecast(args.plot, result, history, lines, steps=steps)
        except OSError as error:
            return _usage(f"cannot write the plot to {args.plot!r}: "
                          f"{error.strerror or error}")
    if args.json:
        document = result.to_dict()
        if args.plot is not None:
            document["plot"] = args.plot
        emit_json(document)
        return 0
    print(f"available        {result.available:,} tokens at {_when(result.now)}")
    print(f"burn             {_tokens_text(result.burn_per_day)} tokens/day over "
          f"{result.days} day{'s' if result.days != 1 else ''} (range "
          f"{_tokens_text(result.low)} to {_tokens_text(result.high)})")
    print(f"runway           {_runway(result)}")
    print(f"projected spend  {_tokens_text(result.projected_spend)} tokens over "
          f"{args.horizon} days ({_tokens_text(result.projected_low)} to "
          f"{_tokens_text(result.projected_high)})")
    if args.plot is not None:
        print(f"plot             {args.plot} (PNG)")
    return 0
