"""``plan`` and ``forecast``: what a budget buys, and when the tokens run out (with an
optional picture, ``--plot``, drawn by matplotlib: see `imagine_billing.cli._plot`).
``budget`` is in `imagine_billing.cli.budgets`."""

from __future__ import annotations

import argparse
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from imagine_billing.cli import budgets
from imagine_billing.cli._plot import (
    PLOT_HINT,
    BudgetMark,
    draw_forecast,
    forecast_figure,
    matplotlib_module,
    plot_problem,
)
from imagine_billing.cli.arguments import (
    TIME_HELP,
    instant,
    name_number,
    open_ledger,
    whole_number,
)
from imagine_billing.cli.money import (
    add_money_options,
    amount_text,
    money_figures,
    rate_note,
    rate_of,
)
from imagine_billing.cli.output import (
    JSON_NUMBERS,
    columns,
    decimal_text,
    emit_json,
    moment_text,
    tokens_text,
    usage_error,
)
from imagine_billing.cli.sources import (
    DB_ENV,
    CommandLineError,
    add_db_option,
    add_price_options,
    db_of,
    db_text,
    ledger_name_of,
    table_from,
)
from imagine_billing.errors import BillingError

if TYPE_CHECKING:
    from fractions import Fraction

    from imagine_billing.estimator import TokenRate
    from imagine_billing.ledger import Ledger
    from imagine_billing.planner.forecasting import Forecast
    from imagine_billing.planner.plans import Plan
    from imagine_billing.pricing.model import PriceTable

__all__ = ["draw_forecast", "forecast_document", "forecast_figure", "register", "run_forecast",
           "run_plan"]


def register(commands: Any) -> None:
    """Add ``plan``, ``budget`` and ``forecast`` to the command parsers (in that order, the
    order ``--help`` lists them)."""
    parser = commands.add_parser(
        "plan",
        help="how many calls of each style fit in N tokens, or in a ledger's available "
        "balance (STYLE[:WEIGHT]...)",
        description="Plan calls for a budget: whole batches of the mix first (WEIGHT calls "
        "of each style), then the leftover filled one call at a time with the style furthest "
        "behind its share, never exceeding the budget. E.g. 'plan --tokens 1000 flux-dev "
        "imagine-turbo:4' is four imagine-turbo calls for each flux-dev call. The budget is "
        "--tokens N, or with --db the ledger's available balance (exactly one of the two; "
        "without either, $IMAGINE_BILLING_DB is the --db).",
    )
    parser.add_argument("--tokens", type=whole_number(0), default=None, metavar="N",
                        help="the budget in tokens (a whole number >= 0); or --db")
    parser.add_argument("mix", nargs="+", type=name_number("WEIGHT", "flux-dev:2"),
                        metavar="STYLE[:WEIGHT]",
                        help="a style id and its weight in the mix (default 1)")
    add_db_option(parser)
    parser.set_defaults(db_optional=True)  # --tokens or --db: see _plan_tokens
    add_price_options(parser)
    add_money_options(parser)
    parser.add_argument("--json", action="store_true",
                        help="print the plan as JSON (with --rate, a 'money' part)")
    parser.set_defaults(run=run_plan)
    budgets.register(commands)
    _register_forecast(commands)


def run_plan(args: argparse.Namespace) -> int:
    from imagine_billing.planner.plans import plan

    mix: dict[str, int] = {}
    for style, weight in args.mix:
        if style in mix:
            return usage_error(f"style {style!r} is named twice; give it once with its weight")
        mix[style] = weight
    rate = rate_of(args)
    table = table_from(args)
    tokens = _plan_tokens(args)
    try:
        result = plan(tokens, mix, table)
    except ValueError as error:  # a free style: no maximum (BillingErrors go to main)
        if isinstance(error, BillingError):
            raise
        return usage_error(str(error))
    if args.json:
        document = {"tokens": tokens, "mix": mix, **result.to_dict()}
        if args.tokens is None:
            document["ledger"] = args.ledger_name
        if rate is not None:
            document["money"] = money_figures(rate, {"tokens": tokens, "total": result.total,
                                                     "leftover": result.leftover})
        emit_json(document)
        return 0
    _print_plan(args, table, mix, tokens, result, rate=rate)
    return 0


def _plan_tokens(args: argparse.Namespace) -> int:
    """The budget of ``plan``: ``--tokens N``, or the available balance of the ledger of
    ``--db`` (else ``$IMAGINE_BILLING_DB``).

    Raises:
        CommandLineError: both ``--tokens`` and ``--db`` are given, or neither (and no
            ``$IMAGINE_BILLING_DB``); or ``--ledger`` without a ledger.
    """
    if args.tokens is not None:
        if args.db is not None:
            raise CommandLineError(f"plan: give --tokens {args.tokens} or --db {db_text(args.db)}, "
                                   "not both (--db plans with the ledger's available balance)")
        if args.ledger_name is not None:
            raise CommandLineError(f"plan: --ledger {args.ledger_name} needs --db FILE|URL "
                                   f"instead of --tokens {args.tokens}")
        return int(args.tokens)
    try:
        args.db = db_of(args)
    except CommandLineError:
        raise CommandLineError(
            f"plan: give the budget, --tokens N, or a ledger whose available balance is the "
            f"budget, --db FILE|URL (or set {DB_ENV}, or db in imagine-billing.toml)"
        ) from None
    args.ledger_name = ledger_name_of(args)
    with open_ledger(args.db, name=args.ledger_name, create=False, readonly=True) as ledger:
        return ledger.balance().available


def _print_plan(args: argparse.Namespace, table: PriceTable, mix: dict[str, int],
                tokens: int, result: Plan, *, rate: TokenRate | None) -> None:
    """The plan for people: a row per style, then the batches and what is left."""
    rows: list[list[object]] = []
    for style, weight in mix.items():
        each = table.cost(style)
        count = result.counts[style]
        rows.append([style, weight, each, count, each * count])
    rows.append(["total", "", "", sum(result.counts.values()), result.total])
    print(columns(["STYLE", "WEIGHT", "EACH", "CALLS", "TOKENS"], rows, right=(1, 2, 3, 4)))
    batch = sum(table.cost(style) * weight for style, weight in mix.items())
    print(f"{result.batches} whole batch{'es' if result.batches != 1 else ''} of {batch} "
          f"tokens; {result.leftover} of {tokens} tokens left")
    if args.tokens is None:
        print(f"budget: the {tokens:,} tokens available in ledger {args.ledger_name!r}")
    print(f"prices: {table.api} {table.version} ({table.digest[:19]}...)")
    if rate is not None:
        print(f"money: {amount_text(rate, result.total)} of {amount_text(rate, tokens)}, "
              f"{amount_text(rate, result.leftover)} left ({rate_note(rate)})")


def _register_forecast(commands: Any) -> None:
    parser = commands.add_parser(
        "forecast",
        help="burn per day, runway and exhaustion date of a ledger's tokens",
        description="Forecast spend from the last WINDOW days (24-hour slices ending now): "
        "the mean burn, a low/high range of mean -/+ 2 standard errors, the runway of the "
        "available tokens and the spend projected over HORIZON days.",
    )
    add_db_option(parser)
    parser.add_argument("--window", type=whole_number(1, 36_600), default=14, metavar="DAYS",
                        help="days of history the burn averages (default 14)")
    parser.add_argument("--horizon", type=whole_number(1, 36_600), default=30, metavar="DAYS",
                        help="days ahead to project the spend (default 30)")
    parser.add_argument("--now", type=instant, default=None, metavar="TIME",
                        help=f"the end of the window ({TIME_HELP}); default now")
    parser.add_argument("--plot", metavar="FILE", default=None,
                        help="also draw the balance, the forecast and the budgets to FILE, "
                        "a .png, .svg or .pdf (the format from the name; needs the 'plot' "
                        "extra: pip install -e '.[plot]' from a clone)")
    add_money_options(parser)
    parser.add_argument("--json", action="store_true",
                        help=f"print the forecast as JSON (with --rate, a 'money' part). "
                        f"{JSON_NUMBERS}")
    parser.set_defaults(run=run_forecast)


def _runway(result: Forecast) -> str:
    """The runway line of the forecast, for people."""
    if result.burn_per_day == 0:
        return "no exhaustion in sight (nothing spent in the window)"
    between = ""
    if result.earliest_exhaustion is not None:
        latest = result.latest_exhaustion
        last = ("never" if result.low == 0 else moment_text(latest) if latest is not None
                else "beyond the year 9999")
        between = f" (between {moment_text(result.earliest_exhaustion)} and {last})"
    if result.runway is None:
        return ("more than 999,999,999 days: runs out beyond the year 9999, not within any "
                f"representable date{between}")
    days, rest = divmod(result.runway, timedelta(days=1))
    hours = rest // timedelta(hours=1)
    when = ("beyond the year 9999" if result.exhausted_at is None
            else moment_text(result.exhausted_at))
    return f"{days:,} days {hours} hours: runs out {when}{between}"


def _budget_lines(ledger: Ledger, result: Forecast) -> list[BudgetMark]:
    """For the picture, each budget of ``ledger`` in its current period (`BudgetMark`)."""
    from imagine_billing.planner.budgets import budget_status

    lines = []
    for budget in ledger.budgets():
        status = budget_status(ledger, budget.name, result.now)
        scope = ", ".join(f"{k}={v}" for k, v in budget.scope.items())
        period = "total" if status.end is None else f"{budget.period} {status.period}"
        until = "" if status.end is None else f" until {status.end:%Y-%m-%d %H:%M}"
        used_up = None
        if status.burn_per_day > 0:
            at = result.now + timedelta(days=float(status.remaining / status.burn_per_day))
            if status.end is None or at < status.end:
                used_up = at
        burn = tokens_text(status.burn_per_day)
        if used_up is not None:
            when = f"; used up about {used_up:%Y-%m-%d} at {burn}/day"
        elif status.burn_per_day > 0:
            when = f"; not used up this period at {burn}/day"
        else:
            when = "; nothing spent lately"
        floor = None if scope else max(0, result.available - status.remaining)
        lines.append(BudgetMark(
            f"budget {budget.name!r} ({scope + ', ' if scope else ''}{period}): "
            f"{status.remaining:,} left{until}{when}", floor, status.end, used_up))
    return lines


def run_forecast(args: argparse.Namespace) -> int:
    from imagine_billing.planner.forecasting import available_history, forecast

    rate = rate_of(args)
    if args.plot is not None:
        if matplotlib_module() is None:
            return usage_error(PLOT_HINT)
        problem = plot_problem(args.plot, args.db)
        if problem is not None:
            return usage_error(problem)
    with open_ledger(args.db, name=args.ledger_name, create=False, readonly=True) as ledger:
        result = forecast(ledger, now=args.now, window=timedelta(days=args.window),
                          horizon=timedelta(days=args.horizon))
        if args.plot is not None:
            history, steps = available_history(
                ledger, result.now - timedelta(days=result.days), result.now)
            lines = _budget_lines(ledger, result)
    if args.plot is not None:
        try:
            draw_forecast(args.plot, result, history, lines, steps=steps)
        except OSError as error:
            return usage_error(f"cannot write the plot to {args.plot!r}: "
                               f"{error.strerror or error}")
    if args.json:
        document = forecast_document(result)
        if args.plot is not None:
            document["plot"] = args.plot
        if rate is not None:
            document["money"] = money_figures(rate, {
                name: getattr(result, name) for name in _MONEY_FIGURES})
        emit_json(document)
        return 0
    _print_forecast(result, args.horizon, args.plot, rate)
    return 0


_MONEY_FIGURES = ("available", "burn_per_day", "low", "high", "projected_spend",
                  "projected_low", "projected_high")
"""The figures of a forecast that ``--rate`` also shows in money."""


def forecast_document(result: Forecast) -> dict[str, Any]:
    """`Forecast.to_dict` with its numbers as `JSON_NUMBERS` says: the burn and projections
    as decimal strings, ``horizon_days`` and ``runway_seconds`` as JSON integers (whole
    seconds, rounded down)."""
    document = result.to_dict()
    for name in ("burn_per_day", "low", "high", "projected_spend", "projected_low",
                 "projected_high"):
        document[name] = decimal_text(getattr(result, name))
    document["horizon_days"] = result.horizon // timedelta(days=1)
    document["runway_seconds"] = (None if result.runway is None
                                  else result.runway // timedelta(seconds=1))
    return document


def _print_forecast(result: Forecast, horizon: int, plot: str | None,
                    rate: TokenRate | None = None) -> None:
    """The forecast for people, a figure a line (with ``rate``, money beside the tokens)."""
    def money(tokens: int | Fraction, per: str = "") -> str:
        return "" if rate is None else f" ({amount_text(rate, tokens)}{per})"

    print(f"available        {result.available:,} tokens{money(result.available)} at "
          f"{moment_text(result.now)}")
    print(f"burn             {tokens_text(result.burn_per_day)} tokens/day"
          f"{money(result.burn_per_day, '/day')} over "
          f"{result.days} day{'s' if result.days != 1 else ''} (range "
          f"{tokens_text(result.low)} to {tokens_text(result.high)})")
    print(f"runway           {_runway(result)}")
    print(f"projected spend  {tokens_text(result.projected_spend)} tokens"
          f"{money(result.projected_spend)} over "
          f"{horizon} days ({tokens_text(result.projected_low)} to "
          f"{tokens_text(result.projected_high)})")
    if rate is not None:
        print(f"money            {rate_note(rate)}")
    if plot is not None:
        print(f"plot             {plot}")
