"""``alerts``: list a ledger's budget alerts, or deliver them to a webhook."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from typing import TYPE_CHECKING, Any

from imagine_billing.cli.arguments import open_ledger, values_checked
from imagine_billing.cli.output import JSON_NUMBERS, columns, emit_json, moment_text
from imagine_billing.cli.sources import add_db_option

if TYPE_CHECKING:
    from collections.abc import Callable

    from imagine_billing.adapters.webhook import Delivery

__all__ = ["SECRET_ENV", "register", "run_alerts_deliver", "run_alerts_list"]

SECRET_ENV = "IMAGINE_BILLING_WEBHOOK_SECRET"
"""The default of ``alerts deliver --secret`` (a secret on a command line is seen by every
user of the machine, in the process list)."""


def register(commands: Any) -> None:
    """Add ``alerts`` (actions ``list`` and ``deliver``) to the command parsers."""
    parser = commands.add_parser(
        "alerts", help="list budget alerts, or deliver them to a webhook",
        description="A write that takes a budget past one of its thresholds records an alert "
        "in the ledger (once per budget, period, threshold and kind); a status or delivery "
        "run also records the forecasted ones. 'deliver' POSTs each undelivered alert as "
        "JSON, with its id in an Idempotency-Key header, signed with a secret in "
        "X-Imagine-Billing-Signature (sha256=HMAC-SHA256 of the body, hex); marked delivered "
        "on a 2xx only, so a receiver that is down loses nothing.")
    add_db_option(parser)
    actions = parser.add_subparsers(title="actions", dest="action", metavar="ACTION",
                                    parser_class=type(parser))
    actions.required = True
    listing = actions.add_parser("list", help="the alerts recorded, oldest first")
    listing.add_argument("--undelivered", action="store_true",
                         help="only those no receiver has taken yet")
    listing.add_argument("--json", action="store_true",
                         help=f"print the alerts as a JSON list. {JSON_NUMBERS}")
    add_db_option(listing, repeated=True)
    listing.set_defaults(run=values_checked(run_alerts_list, _action))
    deliver = actions.add_parser("deliver", help="POST the undelivered alerts to a webhook")
    deliver.add_argument("--webhook", required=True, metavar="URL",
                         help="where to POST them (http:// or https://)")
    deliver.add_argument("--secret", metavar="S", default=None,
                         help=f"sign each body with this secret (default: ${SECRET_ENV}, "
                         "which keeps it out of the process list)")
    deliver.add_argument("--format", choices=("json", "slack"), default="json",
                         help="json: the alert's document (default); slack: {\"text\": ...} "
                         "for a Slack incoming webhook")
    deliver.add_argument("--attempts", type=_count, default=4, metavar="N",
                         help="tries per alert before the run gives up on the receiver "
                         "(default 4, with exponential backoff)")
    deliver.add_argument("--follow", action="store_true",
                         help="keep delivering as new alerts arrive, until Ctrl-C or "
                         "SIGTERM (exit 0): the alert in flight is finished first, a second "
                         "one stops at once")
    deliver.add_argument("--interval", type=_seconds, default=10.0, metavar="SECONDS",
                         help="with --follow, seconds between two looks (default 10)")
    deliver.add_argument("--json", action="store_true",
                         help="print what each run delivered and failed as JSON")
    add_db_option(deliver, repeated=True)
    deliver.set_defaults(run=values_checked(run_alerts_deliver, _action))


def _action(args: argparse.Namespace) -> str:
    return f"alerts {args.action}"


def _count(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 20:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to 20 (got {text!r})")
    return int(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.05 <= value <= 86_400:
        raise argparse.ArgumentTypeError(f"must be a number of seconds from 0.05 to 86400 "
                                         f"(got {text!r})")
    return value


def run_alerts_list(args: argparse.Namespace) -> int:
    with open_ledger(args.db, name=args.ledger_name, create=False, readonly=True) as ledger:
        alerts = ledger.alerts(undelivered=args.undelivered)
    if args.json:
        emit_json([alert.document() for alert in alerts])
        return 0
    if not alerts:
        print("no alerts" + (" undelivered" if args.undelivered else ""))
        return 0
    rows = [[moment_text(a.at), a.budget, a.period, a.percent, a.kind, f"{a.spent:,}",
             f"{a.limit:,}", moment_text(a.delivered_at) if a.delivered else
             (f"no ({a.attempts} tried)" if a.attempts else "no"), a.id] for a in alerts]
    print(columns(["AT", "BUDGET", "PERIOD", "THRESHOLD", "KIND", "SPENT", "LIMIT",
                   "DELIVERED", "ID"], rows, right=(3, 5, 6)))
    return 0


class _Stop(Exception):
    """A stop asked during ``--follow`` takes effect."""


class _Stopping:
    """SIGTERM or Ctrl-C during ``--follow``: the alert in flight is finished first (its
    answer read, the outbox marked, the line printed), then the run stops; while it waits
    between looks or tries, at once. A second signal stops at once whatever it is doing (a
    receiver that does not answer), leaving that alert undelivered for the next run."""

    def __init__(self) -> None:
        self.asked = False
        self.idle = False

    def __call__(self, *_: object) -> None:  # the signal handler
        if self.idle or self.asked:
            raise _Stop
        self.asked = True

    def __bool__(self) -> bool:
        return self.asked

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds``, unless a stop is asked (before or during the wait)."""
        if self.asked:
            raise _Stop
        self.idle = True
        try:
            time.sleep(seconds)
        finally:
            self.idle = False


def run_alerts_deliver(args: argparse.Namespace) -> int:
    from imagine_billing.adapters.webhook import deliver_alerts

    secret = args.secret if args.secret is not None else os.environ.get(SECRET_ENV) or None
    stopping = _Stopping() if args.follow else None
    with open_ledger(args.db, name=args.ledger_name, create=False) as ledger:
        def once() -> Delivery:
            if stopping is None:
                return deliver_alerts(ledger, args.webhook, secret=secret, format=args.format,
                                      attempts=args.attempts)
            return deliver_alerts(ledger, args.webhook, secret=secret, format=args.format,
                                  attempts=args.attempts, sleep=stopping.sleep,
                                  stopping=stopping.__bool__)

        if stopping is None:
            delivery = once()
            _report(delivery, args.json)
            return 0 if delivery.ok else 1
        return _follow(once, args, stopping)


def _follow(once: Callable[[], Delivery], args: argparse.Namespace,
            stopping: _Stopping) -> int:
    """Deliver, wait ``--interval``, again, until Ctrl-C or SIGTERM (then exit 0, once the
    alert in flight is finished: see `_Stopping`); a ledger that cannot be reached for a
    while is reported and tried again."""
    from imagine_billing.errors import LedgerStoreError

    previous = {number: signal.signal(number, stopping)
                for number in (signal.SIGTERM, signal.SIGINT)}
    try:
        while True:
            try:
                delivery = once()
            except LedgerStoreError as error:
                # A database restarting, a lock held too long: report it, try again later.
                print(f"imagine-billing alerts deliver: {error} (trying again in "
                      f"{args.interval:g} s)", file=sys.stderr)
            else:
                if delivery.delivered or delivery.failed:
                    _report(delivery, args.json)
            sys.stdout.flush()
            stopping.sleep(args.interval)
    except (KeyboardInterrupt, _Stop):
        print("imagine-billing alerts deliver: stopped", file=sys.stderr)
        return 0
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _report(delivery: Delivery, as_json: bool) -> None:
    if as_json:
        emit_json({"delivered": [a.id for a in delivery.delivered],
                   "failed": [{"id": a.id, "error": why} for a, why in delivery.failed],
                   "not_tried": delivery.pending})
        return
    for alert in delivery.delivered:
        print(f"delivered {alert.id}: {alert.message()}")
    for alert, why in delivery.failed:
        print(f"not delivered {alert.id}: {why}", file=sys.stderr)
    if delivery.pending:
        print(f"{delivery.pending} more alert(s) left for the next run", file=sys.stderr)
    if not delivery.delivered and not delivery.failed:
        print("no alerts to deliver")
