"""``budget``: add a budget to a ledger, or show where its budgets stand."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from imagine_billing._checks import printable
from imagine_billing.cli.arguments import (
    TIME_HELP,
    instant,
    open_ledger,
    tag,
    values_checked,
    whole_number,
)
from imagine_billing.cli.money import add_money_options, money_figures, rate_note, rate_of
from imagine_billing.cli.output import (
    JSON_NUMBERS,
    columns,
    decimal_text,
    emit_json,
    tokens_text,
)
from imagine_billing.cli.sources import CommandLineError, add_db_option

if TYPE_CHECKING:
    from imagine_billing.estimator import TokenRate
    from imagine_billing.planner.budgets import Budget, BudgetStatus

__all__ = ["budget_document", "register", "run_budget_add", "run_budget_list",
           "run_budget_remove", "run_budget_status", "run_budget_update", "status_document"]


def register(commands: Any) -> None:
    """Add ``budget`` (actions ``add`` and ``status``) to the command parsers."""
    parser = commands.add_parser(
        "budget",
        help="add a budget to a ledger, or show where budgets stand",
        description="Budgets cap the spend of a UTC calendar period (day, ISO week, month) or "
        "of all time (total), for the entries whose tags match a scope. A hard budget refuses "
        "holds and debits past it.",
    )
    add_db_option(parser)
    actions = parser.add_subparsers(title="actions", dest="action", metavar="ACTION",
                                    parser_class=type(parser))
    actions.required = True
    add = actions.add_parser("add", help="add a budget (the same settings again: no change)")
    _settings(add, required=True)
    add.set_defaults(run=values_checked(run_budget_add, _budget_action))
    update = actions.add_parser("update", help="change a budget's settings (those given)")
    _settings(update, required=False)
    update.set_defaults(run=values_checked(run_budget_update, _budget_action))
    remove = actions.add_parser("remove", help="remove a budget: it no longer counts or "
                                "refuses (the removal is an entry of the chain)")
    remove.add_argument("name", metavar="NAME", help="the budget's name")
    remove.add_argument("--json", action="store_true", help="print the removed budget as JSON")
    add_db_option(remove, repeated=True)
    remove.set_defaults(run=values_checked(run_budget_remove, _budget_action))
    listing = actions.add_parser("list", help="the budgets and their settings")
    listing.add_argument("--json", action="store_true",
                         help=f"print the budgets as a JSON list. {JSON_NUMBERS}")
    add_db_option(listing, repeated=True)
    listing.set_defaults(run=values_checked(run_budget_list, _budget_action))
    status = actions.add_parser("status", help="spend, holds, remaining and alerts")
    status.add_argument("name", nargs="?", metavar="NAME", help="one budget (default: all)")
    status.add_argument("--now", type=instant, default=None, metavar="TIME",
                        help=f"the moment to report on ({TIME_HELP}); default now")
    status.add_argument("--check", action="store_true",
                        help="exit 1 when a hard budget is exhausted or any alert fired in "
                        "the current period (for cron and CI)")
    add_money_options(status)
    status.add_argument("--json", action="store_true",
                        help=f"print the status as JSON (with --rate, a 'money' part). "
                        f"{JSON_NUMBERS}")
    add_db_option(status, repeated=True)
    status.set_defaults(run=values_checked(run_budget_status, _budget_action))


def _settings(parser: argparse.ArgumentParser, *, required: bool) -> None:
    """The options of a budget's settings: all but ``--limit`` optional when adding, all
    optional (those not given kept) when updating."""
    kept = "" if required else " (default: as it is)"
    parser.add_argument("name", metavar="NAME", help="the budget's name, unique in the ledger")
    parser.add_argument("--limit", type=whole_number(1), required=required, metavar="N",
                        help=f"tokens the period may spend (a whole number >= 1){kept}")
    parser.add_argument("--period", choices=("day", "week", "month", "total"),
                        default="month" if required else None,
                        help="the period (UTC calendar; ISO weeks); "
                        + ("default month" if required else "default: as it is"))
    parser.add_argument("--scope", action="append", type=tag, default=None,
                        metavar="NAME=VALUE",
                        help=f"count only entries with this tag (repeat for several){kept}")
    parser.add_argument("--alerts", type=_thresholds, default=None, metavar="F,F,...",
                        help="alert thresholds as fractions of the limit "
                        + ("(default 0.5,0.8,1)" if required else "(default: as they are)"))
    if required:
        parser.add_argument("--hard", action="store_true",
                            help="refuse holds and debits that would exceed the limit")
    else:
        parser.add_argument("--hard", action=argparse.BooleanOptionalAction, default=None,
                            help="refuse (--hard) or only report (--no-hard) spend past the "
                            "limit (default: as it is)")
    parser.add_argument("--json", action="store_true",
                        help=f"print the budget as JSON. {JSON_NUMBERS}")
    add_db_option(parser, repeated=True)


def _budget_action(args: argparse.Namespace) -> str:
    return f"budget {args.action}"


def _thresholds(text: str) -> tuple[str, ...]:
    parts = tuple(p.strip() for p in text.split(","))
    if not all(parts):
        raise argparse.ArgumentTypeError(f"{text!r}: expected fractions such as 0.5,0.8,1")
    return parts


def _scope_of(pairs: list[tuple[str, str]]) -> dict[str, str]:
    scope: dict[str, str] = {}
    for name, value in pairs:
        if name in scope:
            raise CommandLineError(f"--scope {name!r} is given twice ({scope[name]!r} and "
                                   f"{value!r}); a scope has one value per tag name")
        scope[name] = value
    return scope


def run_budget_add(args: argparse.Namespace) -> int:
    from imagine_billing.errors import BudgetConflict
    from imagine_billing.planner.budgets import Budget

    scope = _scope_of(args.scope or [])
    # A value Budget refuses (a name that is not valid Unicode...): exit 2, values_checked.
    budget = Budget(args.name, args.limit, args.period, scope or None,
                    **({} if args.alerts is None else {"alerts": args.alerts}), hard=args.hard)
    with open_ledger(args.db, name=args.ledger_name, create=True) as ledger:
        try:
            added = ledger.add_budget(budget)
        except BudgetConflict:
            # The ledger's message holds the stored settings as JSON: show them as people
            # write them on this command line.
            existing = ledger.budget(budget.name)
            raise BudgetConflict(budget.name, _describe(existing)) from None
    _print_budget(added, args.json, "budget")
    return 0


def run_budget_update(args: argparse.Namespace) -> int:
    from imagine_billing.planner.budgets import Budget

    with open_ledger(args.db, name=args.ledger_name, create=False) as ledger:
        current = ledger.budget(args.name)
        settings = current.to_dict()
        for name in ("limit", "period", "alerts", "hard"):
            if getattr(args, name) is not None:
                settings[name] = getattr(args, name)
        if args.scope is not None:
            settings["scope"] = _scope_of(args.scope)
        updated = ledger.update_budget(Budget.from_dict(settings))
    _print_budget(updated, args.json, "budget" if updated != current else "budget unchanged")
    return 0


def run_budget_remove(args: argparse.Namespace) -> int:
    with open_ledger(args.db, name=args.ledger_name, create=False) as ledger:
        removed = ledger.remove_budget(args.name)
    _print_budget(removed, args.json, "removed budget")
    return 0


def run_budget_list(args: argparse.Namespace) -> int:
    with open_ledger(args.db, name=args.ledger_name, create=False, readonly=True) as ledger:
        budgets = ledger.budgets()
    if args.json:
        emit_json([budget_document(b) for b in budgets])
    elif not budgets:
        print("no budgets (add one with: imagine-billing budget --db FILE add NAME --limit N)")
    else:
        for budget in budgets:
            print(f"budget {_describe(budget)}")
    return 0


def _print_budget(budget: Budget, as_json: bool, what: str) -> None:
    if as_json:
        emit_json(budget_document(budget))
    else:
        print(f"{what} {_describe(budget)}")


def budget_document(budget: Budget) -> dict[str, Any]:
    """`Budget.to_dict` with its alert thresholds as decimal strings (``"0.8"``, not
    ``"4/5"``): see `JSON_NUMBERS`."""
    return {**budget.to_dict(), "alerts": [decimal_text(a) for a in budget.alerts]}


def status_document(status: BudgetStatus) -> dict[str, Any]:
    """`BudgetStatus.to_dict` with its numbers as `JSON_NUMBERS` says."""
    document = status.to_dict()
    document["budget"] = budget_document(status.budget)
    document["projected"] = None if status.projected is None else decimal_text(status.projected)
    document["burn_per_day"] = decimal_text(status.burn_per_day)
    for kind, alerts in (("actual", status.actual), ("forecasted", status.forecasted)):
        document["alerts"][kind] = [
            alert.document() for alert in alerts]
    return document


def _describe(budget: Budget) -> str:
    from imagine_billing.planner.budgets import percent

    scope = printable(", ".join(f"{k}={v}" for k, v in budget.scope.items())) or "every entry"
    hard = "hard" if budget.hard else "soft"
    return (f"{budget.name!r}: {budget.limit:,} tokens per {budget.period} ({scope}; {hard}; "
            f"alerts at {', '.join(percent(a) for a in budget.alerts)})")


def run_budget_status(args: argparse.Namespace) -> int:
    from imagine_billing.planner.budgets import budget_status

    rate = rate_of(args)
    with open_ledger(args.db, name=args.ledger_name, create=False, readonly=True) as ledger:
        names = [args.name] if args.name else [b.name for b in ledger.budgets()]
        statuses = [budget_status(ledger, name, args.now) for name in names]
    if args.now is None and any(status.fired for status in statuses):
        _record(args, statuses)
    failures = _check(statuses) if args.check else []
    if args.json:
        documents = [_with_money(status_document(s), s, rate) for s in statuses]
        emit_json(documents if not args.name else documents[0])
    elif not statuses:
        print("no budgets (add one with: imagine-billing budget --db FILE add NAME --limit N)")
    else:
        print(_status_table(statuses))
        if rate is not None:
            print(_money_lines(statuses, rate))
    for failure in failures:
        print(f"imagine-billing budget status: check failed: {failure}", file=sys.stderr)
    return 1 if failures else 0


def _money_of(status: BudgetStatus) -> dict[str, Any]:
    """The figures of a status that ``--rate`` also shows in money."""
    return {"limit": status.budget.limit, "spent": status.spent, "held": status.held,
            "remaining": status.remaining, "projected": status.projected}


def _with_money(document: dict[str, Any], status: BudgetStatus,
                rate: TokenRate | None) -> dict[str, Any]:
    return document if rate is None else {**document,
                                          "money": money_figures(rate, _money_of(status))}


def _money_lines(statuses: list[BudgetStatus], rate: TokenRate) -> str:
    """Each budget's figures in money, under the table."""
    lines = [f"money ({rate_note(rate)}):"]
    for status in statuses:
        figures = ", ".join(f"{name} {rate.price_of(tokens)}"
                            for name, tokens in _money_of(status).items() if tokens is not None)
        lines.append(f"  {status.budget.name}: {figures} {rate.currency}")
    return "\n".join(lines)


def _record(args: argparse.Namespace, statuses: list[BudgetStatus]) -> None:
    """Record the alerts of a status of now in the ledger's outbox (forecasted ones are
    recorded only when a status evaluates them); a ledger that cannot be written (a
    read-only file) is reported, not an error."""
    from imagine_billing.errors import LedgerStoreError

    try:
        with open_ledger(args.db, name=args.ledger_name, create=False) as ledger:
            ledger.record_alerts(alert for status in statuses for alert in status.fired)
    except LedgerStoreError as error:
        print(f"imagine-billing budget status: the alerts were not recorded: {error}",
              file=sys.stderr)


def _check(statuses: list[BudgetStatus]) -> list[str]:
    """What ``--check`` fails on: hard budgets exhausted, alerts fired this period."""
    failures = []
    for status in statuses:
        budget = status.budget
        if budget.hard and status.remaining == 0:
            failures.append(f"hard budget {budget.name!r} is exhausted in {status.period} "
                            f"(spent {status.spent:,}, held {status.held:,} of "
                            f"{budget.limit:,})")
        failures += [alert.message() + f" ({alert.kind})" for alert in status.fired]
    return failures


def _status_table(statuses: list[BudgetStatus]) -> str:
    rows = []
    for status in statuses:
        budget = status.budget
        alerts = [f"{a.percent}" for a in status.actual]
        alerts += [f"{a.percent} (forecast)" for a in status.forecasted]
        rows.append([budget.name, f"{budget.period} {status.period}" if budget.period != "total"
                     else "total", f"{budget.limit:,}", f"{status.spent:,}",
                     f"{status.held:,}", f"{status.remaining:,}",
                     tokens_text(status.projected), ", ".join(alerts) or "-"])
    return columns(["BUDGET", "PERIOD", "LIMIT", "SPENT", "HELD", "REMAINING", "PROJECTED",
                    "ALERTS"], rows, right=(2, 3, 4, 5, 6))
