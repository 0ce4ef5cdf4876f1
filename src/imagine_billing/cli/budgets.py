"""``budget``: add a budget to a ledger, or show where its budgets stand."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from imagine_billing.cli.arguments import (
    TIME_HELP,
    instant,
    open_ledger,
    tag,
    values_checked,
    whole_number,
)
from imagine_billing.cli.output import (
    JSON_NUMBERS,
    columns,
    decimal_text,
    emit_json,
    tokens_text,
    usage_error,
)
from imagine_billing.cli.sources import add_db_option

if TYPE_CHECKING:
    from imagine_billing.planner.budgets import Budget, BudgetStatus

__all__ = ["budget_document", "register", "run_budget_add", "run_budget_status",
           "status_document"]


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
    add.add_argument("--json", action="store_true",
                     help=f"print the budget as JSON. {JSON_NUMBERS}")
    add_db_option(add, repeated=True)
    add.set_defaults(run=values_checked(run_budget_add, _budget_action))
    status = actions.add_parser("status", help="spend, holds, remaining and alerts")
    status.add_argument("name", nargs="?", metavar="NAME", help="one budget (default: all)")
    status.add_argument("--now", type=instant, default=None, metavar="TIME",
                        help=f"the moment to report on ({TIME_HELP}); default now")
    status.add_argument("--json", action="store_true",
                        help=f"print the status as JSON. {JSON_NUMBERS}")
    add_db_option(status, repeated=True)
    status.set_defaults(run=values_checked(run_budget_status, _budget_action))


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
            return usage_error(f"--scope {name!r} is given twice ({scope[name]!r} and "
                               f"{value!r}); a scope has one value per tag name")
        scope[name] = value
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
    if args.json:
        emit_json(budget_document(added))
    else:
        print(f"budget {_describe(added)}")
    return 0


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
            {**alert.to_dict(), "threshold": decimal_text(alert.threshold),
             "tokens": decimal_text(alert.tokens)} for alert in alerts]
    return document


def _describe(budget: Budget) -> str:
    from imagine_billing.planner.budgets import percent

    scope = ", ".join(f"{k}={v}" for k, v in budget.scope.items()) or "every entry"
    hard = "hard" if budget.hard else "soft"
    return (f"{budget.name!r}: {budget.limit:,} tokens per {budget.period} ({scope}; {hard}; "
            f"alerts at {', '.join(percent(a) for a in budget.alerts)})")


def run_budget_status(args: argparse.Namespace) -> int:
    from imagine_billing.planner.budgets import budget_status

    with open_ledger(args.db, name=args.ledger_name, create=False, readonly=True) as ledger:
        names = [args.name] if args.name else [b.name for b in ledger.budgets()]
        statuses = [budget_status(ledger, name, args.now) for name in names]
    if args.json:
        documents = [status_document(s) for s in statuses]
        emit_json(documents if not args.name else documents[0])
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
                     tokens_text(status.projected), ", ".join(alerts) or "-"])
    print(columns(["BUDGET", "PERIOD", "LIMIT", "SPENT", "HELD", "REMAINING", "PROJECTED",
                   "ALERTS"], rows, right=(2, 3, 4, 5, 6)))
    return 0
