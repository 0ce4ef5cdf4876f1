"""``plan``, ``budget`` and ``forecast``: what a budget buys, where budgets stand, and when
the tokens run out (with an optional picture, ``--plot``, drawn by matplotlib)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Literal

from imagine_billing.cli.arguments import (
    add_table_option,
    instant,
    name_number,
    open_ledger,
    tag,
    whole_number,
)
from imagine_billing.cli.output import columns, emit_json
from imagine_billing.errors import BillingError

if TYPE_CHECKING:
    from imagine_billing.planner.budgets import Budget
    from imagine_billing.planner.forecasting import Forecast

__all__ = ["register"]


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


def draw_forecast(path: str, forecast: Forecast, history: Sequence[tuple[datetime, int]],
                  budget_lines: Sequence[tuple[str, int, datetime | None]]) -> None:
    """Draw the available balance, its projection with the low/high band, and budget lines.

    Args:
        path: The PNG file to write.
        forecast: The forecast (its ``now``, ``available``, burn and range).
        history: ``(moment, available)`` points up to ``now``, oldest first.
        budget_lines: ``(label, balance, until)``: the available balance at which each
            budget's current period would be used up, drawn from ``now`` to ``until`` (the
            period's end; ``None`` for a total budget).
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
    def x(when: datetime) -> float:
        """Matplotlib's date number (floats are for plotting only)."""
        return float(mdates.date2num(when))  # type: ignore[no-untyped-call]

    steps = 200
    moments = [now + (end - now) * (i / steps) for i in range(steps + 1)]
    times = [x(t) for t in moments]

    def level(rate: float) -> list[float]:
        return [max(0.0, available - rate * (t - now) / timedelta(days=1)) for t in moments]


    figure = Figure(figsize=(11, 6), dpi=100, layout="constrained")
    axes = figure.subplots()
    if history:
        axes.plot([x(t) for t, _ in history], [v for _, v in history], color="tab:blue",
                  linewidth=2, marker="o", markersize=3, label="available (ledger)")
    axes.fill_between(times, level(high), level(low), color="tab:orange", alpha=0.25,
                      label=f"forecast range ({low:,.1f} to {high:,.1f} tokens/day)")
    axes.plot(times, level(burn), color="tab:orange", linewidth=2, linestyle="--",
              label=f"forecast at {burn:,.1f} tokens/day")
    axes.axvline(x(now), color="grey", linewidth=1)
    axes.annotate("now", (x(now), 1), xycoords=("data", "axes fraction"), xytext=(3, -12),
                  textcoords="offset points", color="grey")
    if forecast.exhausted_at is not None and forecast.exhausted_at <= end:
        axes.axvline(x(forecast.exhausted_at), color="tab:red", linewidth=1, linestyle=":")
        axes.annotate(f"runs out {forecast.exhausted_at:%Y-%m-%d %H:%M} UTC",
                      (x(forecast.exhausted_at), 0.5), xycoords=("data", "axes fraction"),
                      xytext=(4, 0), textcoords="offset points", color="tab:red",
                      rotation=90, va="center")
    colours = ["tab:purple", "tab:green", "tab:brown", "tab:pink", "tab:olive", "tab:cyan"]
    styles: list[Literal["-.", ":", "--", "-"]] = ["-.", ":", "--", "-"]
    for index, (label, balance, until) in enumerate(budget_lines):
        stop = end if until is None or until > end else until
        axes.hlines(balance, x(now), x(stop), colors=colours[index % len(colours)],
                    linewidth=2, linestyles=styles[index % len(styles)], label=label)
    axes.set_ylim(bottom=0)
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
    axes.legend(loc="upper right", fontsize="small")
    figure.savefig(path)


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
    add.set_defaults(run=run_budget_add)
    status = actions.add_parser("status", help="spend, holds, remaining and alerts")
    status.add_argument("name", nargs="?", metavar="NAME", help="one budget (default: all)")
    status.add_argument("--now", type=instant, default=None, metavar="TIME",
                        help="the moment to report on (RFC 3339 with a zone); default now")
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    status.set_defaults(run=run_budget_status)


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






def _thresholds(text: str) -> tuple[str, ...]:
    parts = tuple(p.strip() for p in text.split(","))
    if not all(parts):
        raise argparse.ArgumentTypeError(f"{text!r}: expected fractions such as 0.5,0.8,1")
    return parts






def run_budget_add(args: argparse.Namespace) -> int:
    from imagine_billing.planner.budgets import Budget

    try:
        budget = Budget(args.name, args.limit, args.period, dict(args.scope) or None,
                        **({} if args.alerts is None else {"alerts": args.alerts}),
                        hard=args.hard)
    except (TypeError, ValueError) as error:
        return _usage(str(error))
    with open_ledger(args.db, create=True) as ledger:
        added = ledger.add_budget(budget)
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

    with open_ledger(args.db, create=False) as ledger:
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


def run_forecast(args: argparse.Namespace) -> int:
    from imagine_billing.planner.budgets import budget_status
    from imagine_billing.planner.forecasting import forecast

    if args.plot and _matplotlib() is None:
        return _usage(PLOT_HINT)
    with open_ledger(args.db, create=False) as ledger:
        result = forecast(ledger, now=args.now, window=timedelta(days=args.window),
                          horizon=timedelta(days=args.horizon))
        if args.plot:
            history = [(result.now - timedelta(days=d), ledger.available_at(
                result.now - timedelta(days=d))) for d in range(result.days, -1, -1)]
            lines = []
            for budget in ledger.budgets():
                status = budget_status(ledger, budget.name, result.now)
                floor = max(0, result.available - status.remaining)
                until = "" if status.end is None else f" until {status.end:%Y-%m-%d}"
                lines.append((f"budget {budget.name!r} ({budget.period}): {status.remaining:,} "
                              f"left{until}, used up at this balance", floor, status.end))
    if args.plot:
        draw_forecast(args.plot, result, history, lines)
    if args.json:
        document = result.to_dict()
        if args.plot:
            document["plot"] = args.plot
        emit_json(document)
        return 0
    print(f"available        {result.available:,} tokens at {_when(result.now)}")
    print(f"burn             {_tokens_text(result.burn_per_day)} tokens/day over "
          f"{result.days} day{'s' if result.days != 1 else ''} (range "
          f"{_tokens_text(result.low)} to {_tokens_text(result.high)})")
    if result.runway is None:
        print("runway           no exhaustion in sight (nothing spent in the window)")
    else:
        days, rest = divmod(result.runway, timedelta(days=1))
        hours = rest // timedelta(hours=1)
        between = ""
        if result.earliest_exhaustion is not None:
            latest = result.latest_exhaustion
            between = (f" (between {_when(result.earliest_exhaustion)} and "
                       f"{'never' if latest is None else _when(latest)})")
        print(f"runway           {days} days {hours} hours: runs out "
              f"{_when(result.exhausted_at)}{between}")
    print(f"projected spend  {_tokens_text(result.projected_spend)} tokens over "
          f"{args.horizon} days ({_tokens_text(result.projected_low)} to "
          f"{_tokens_text(result.projected_high)})")
    if args.plot:
        print(f"plot             {args.plot}")
    return 0
