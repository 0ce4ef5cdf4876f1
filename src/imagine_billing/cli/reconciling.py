"""``ledger observe`` and ``ledger reconcile``: the ledger against the provider's balance."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from imagine_billing._checks import printable
from imagine_billing.cli.arguments import TIME_HELP, instant, open_ledger, whole_number
from imagine_billing.cli.output import columns, emit_json, moment_text

__all__ = ["add_commands", "run_observe", "run_reconcile"]

Command = Callable[..., argparse.ArgumentParser]


def add_commands(sub: Any, command: Command) -> None:
    """Add ``observe`` and ``reconcile`` to the ``ledger`` subcommands (``command`` makes
    one, with ``--db`` and ``--json``)."""
    observe = command(sub, "observe", run_observe, "record a balance read from the Studio's "
                      "Usage tab (an entry that moves no tokens), to reconcile with")
    observe.add_argument("balance", type=whole_number(0), metavar="BALANCE",
                         help="the tokens the provider showed (a whole number >= 0)")
    observe.add_argument("--key", required=True, metavar="K",
                         help="the idempotency key (a retry with the same key writes nothing)")
    observe.add_argument("--at", type=instant, default=None, metavar="TIME",
                         help=f"when it was read ({TIME_HELP}); default now")
    command(sub, "reconcile", run_reconcile, "each observed balance beside the ledger's "
            "figure then, the drift and what may explain it")


def run_observe(args: argparse.Namespace) -> int:
    with open_ledger(args.db, name=args.ledger_name, create=True) as ledger:
        before = ledger.head()[0]
        entry = ledger.observe(args.balance, key=args.key, at=args.at)
    replayed = entry.id <= before
    if args.json:
        emit_json({**entry.to_dict(), "replayed": replayed})
    else:
        print(f"entry {entry.id}: observed balance {args.balance:,}"
              + (" (replayed: already recorded)" if replayed else ""))
    return 0


def run_reconcile(args: argparse.Namespace) -> int:
    from imagine_billing.planner.reconcile import reconcile

    with open_ledger(args.db, name=args.ledger_name, create=False, readonly=True) as ledger:
        report = reconcile(ledger)
    if args.json:
        emit_json(report.to_dict())
        return 0
    latest = report.latest
    if latest is None:
        print("no observed balance yet: record one with "
              "imagine-billing ledger --db FILE observe BALANCE --key K")
        return 0
    rows = [[moment_text(o.at), f"{o.observed:,}", f"{o.expected:,}", f"{o.drift:+,}",
             "-" if o.change is None else f"{o.change:+,}", f"{o.held:,}",
             str(len(o.suspects))] for o in report.observations]
    print(columns(["OBSERVED AT", "OBSERVED", "EXPECTED", "DRIFT", "CHANGE", "HELD",
                   "SUSPECTS"], rows, right=(1, 2, 3, 4, 5, 6)))
    window = f"since {moment_text(latest.since)}" if latest.since else "since the start"
    print(f"\nlatest: observed {latest.observed:,}, the ledger expected {latest.expected:,}: "
          f"drift {latest.drift:+,} ({window})")
    for entry in latest.suspects:
        tags = printable(", ".join(f"{k}={v}" for k, v in entry.tags.items()))
        print(f"  may explain it: entry {entry.id} {entry.kind} {entry.key!r} "
              f"{moment_text(entry.at)} ({tags})")
    return 0
