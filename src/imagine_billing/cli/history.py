"""``ledger import-usage``: a usage log recorded in a ledger as debits at their own times
(see `imagine_billing.planner.history`)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from imagine_billing._checks import shown
from imagine_billing.cli.arguments import open_ledger, tag
from imagine_billing.cli.estimating import _skipped_line as skipped_line
from imagine_billing.cli.output import PROGRESS_MIN_BYTES, Progress, emit_json, moment_text
from imagine_billing.cli.sources import add_price_options, prices_from, unpriced_advice
from imagine_billing.errors import (
    BadRecordError,
    BillingError,
    BudgetExceeded,
    IdempotencyConflict,
    InsufficientTokens,
    OutOfOrder,
)

if TYPE_CHECKING:
    from imagine_billing.ledger import Balance, Ledger
    from imagine_billing.planner.history import MergedLogs, UsageImport
    from imagine_billing.pricing.book import PriceBook
    from imagine_billing.pricing.model import PriceTable

__all__ = ["add_commands", "run_import_usage"]

Command = Callable[..., argparse.ArgumentParser]


def add_commands(sub: Any, command: Command) -> None:
    """Add ``import-usage`` to the ``ledger`` subcommands (``command`` makes one, with
    ``--db`` and ``--json``)."""
    parser = command(
        sub, "import-usage", run_import_usage,
        "record usage logs as debits at their own times, each priced by the version in "
        "force then (importing a log again writes nothing)",
        json_help="print a summary as JSON")
    # Appended to what --book may have taken already (see `cli.sources`), as price-log does.
    parser.add_argument("logs", nargs="*", action="extend", default=argparse.SUPPRESS,
                        metavar="LOG",
                        help="a usage log (.csv, .jsonl, either gzipped), or - for stdin, "
                        "in time order; several are merged into one log in time order "
                        "(identical records of several logs are several calls)")
    add_price_options(parser, book="logs")
    parser.add_argument("--format", choices=("csv", "jsonl"), default=None,
                        help="the logs' format (default: from each file, as price-log does)")
    parser.add_argument("--key-prefix", default="usage", metavar="P",
                        help="the first part of each record's key, "
                        "P:TIME:STYLE:COUNT:N[:tags-DIGEST] (default usage): the same record "
                        "imported again has the same key, and writes nothing; sources "
                        "imported in separate commands with the same tags need distinct "
                        "prefixes (their identical records are otherwise one call)")
    parser.add_argument("--tag", action="append", type=tag, default=[], metavar="NAME=VALUE",
                        help="a tag of every debit, such as project=shop (repeatable); "
                        "part of every key: a record imported with other tags is another "
                        "call")
    parser.add_argument("--skip-bad", action="store_true",
                        help="skip bad lines (unreadable, unknown or unpriced styles), "
                        "counting them by reason, instead of refusing the import")


def run_import_usage(args: argparse.Namespace) -> int:
    logs: list[str] = getattr(args, "logs", None) or []
    if not logs:
        print("imagine-billing ledger import-usage: error: give the usage logs to import, "
              "LOG...", file=sys.stderr)
        return 2
    if logs.count("-") > 1:
        print("imagine-billing ledger import-usage: error: '-' (standard input) is given "
              "twice: it can be read only once", file=sys.stderr)
        return 2
    twice = _given_twice(logs)
    if twice is not None:
        print(f"imagine-billing ledger import-usage: error: {shown(twice[0])} and "
              f"{shown(twice[1])} are the same file: each of its records would be imported "
              "twice", file=sys.stderr)
        return 2
    prices = prices_from(args)
    try:
        with open_ledger(args.db, name=args.ledger_name, create=True) as ledger:
            # One merged stream, one transaction: all of the logs, or nothing.
            done = _import(args, ledger, logs, prices)
            balance = ledger.balance()
    except _Refused as refused:
        print(f"imagine-billing: error: {refused}; nothing was imported", file=sys.stderr)
        return refused.code
    _report(args, done, balance)
    return 0


def _given_twice(logs: list[str]) -> tuple[str, str] | None:
    """Two of ``logs`` that name the same file (the same path, a link, ``./a`` and ``a``);
    a log that cannot be read is left to the reader, which names it."""
    seen: dict[tuple[int, int], str] = {}
    for log in logs:
        if log == "-":
            continue
        try:
            found = os.stat(log)
        except (OSError, ValueError):
            continue
        file = (found.st_dev, found.st_ino)
        if file in seen:
            return seen[file], log
        seen[file] = log
    return None


class _Refused(Exception):
    """An import refused: the message names the file and line; ``code`` is the exit code
    (1 for a refusal of the ledger, not enough tokens or a hard budget; 2 for bad input)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _import(args: argparse.Namespace, ledger: Ledger, paths: list[str],
            prices: PriceTable | PriceBook) -> UsageImport:
    """Import the logs merged in time order (`_Refused` naming the file and line of a
    record refused)."""
    from imagine_billing.planner.history import MergedLogs, import_usage
    from imagine_billing.usage import read_usage

    # Under --json, stderr is captured for the error object; the bar goes to the terminal.
    stream = getattr(sys.stderr, "terminal", sys.stderr)
    progress = (_Summed(Progress(stream, "import-usage", PROGRESS_MIN_BYTES), len(paths))
                if stream.isatty() else None)
    merged = MergedLogs(
        read_usage(path, skip_bad=args.skip_bad, format=args.format,
                   on_progress=None if progress is None else progress.part(at))
        for at, path in enumerate(paths))
    try:
        try:
            return import_usage(ledger, merged, prices, key_prefix=args.key_prefix,
                                tags=dict(args.tag) or None)
        finally:
            if progress is not None:  # cleared first: an error starts a line of its own
                progress.bar.done()
    except BillingError as error:
        raise _refusal(error, merged) from None
    except ValueError as error:
        if not merged.line:
            raise  # no record given yet: not about a record (a bad --key-prefix)
        # A record the ledger refuses otherwise, such as one later than now.
        raise _Refused(f"{merged.source}:{merged.line}: {' '.join(str(error).split())}",
                       2) from None


class _Summed:
    """One progress bar for logs read side by side (merged): their bytes read, summed."""

    def __init__(self, bar: Progress, logs: int) -> None:
        self.bar = bar
        self.done = [0] * logs
        self.sizes = [0] * logs

    def part(self, index: int) -> Callable[[int, int], None]:
        """What the log ``index`` calls with its ``(bytes read, size)``."""

        def shown(done: int, size: int) -> None:
            self.done[index], self.sizes[index] = done, size
            self.bar(sum(self.done), sum(self.sizes))

        return shown


_HINTS = {
    OutOfOrder: " (import history into a new ledger, its opening balance credited first "
    "with ledger credit TOKENS --key K --at TIME)",
    InsufficientTokens: " (credit the tokens first, back-dated to before the log: ledger "
    "credit TOKENS --key K --at TIME)",
    IdempotencyConflict: " (imported before with other prices: the ledger keeps what it "
    "recorded)",
}


def _refusal(error: BillingError, merged: MergedLogs) -> _Refused:
    """``error`` as the command line says it, with the file and line of the record."""
    # A key holds the --key-prefix as given: IdempotencyConflict quotes it with repr, which
    # escapes every character that does not print, as `shown` does.
    text = " ".join(str(error).split())
    if isinstance(error, BadRecordError):
        hint = ("" if error.reason in ("unreadable", "bad-header", "out-of-order")
                or merged.skip_bad else " (--skip-bad skips bad lines and counts them)")
        return _Refused(unpriced_advice(text) + hint, 2)
    code = 1 if isinstance(error, InsufficientTokens | BudgetExceeded) else 2
    hint = next((h for kind, h in _HINTS.items() if isinstance(error, kind)), "")
    return _Refused(f"{merged.source}:{merged.line}: {text}{hint}", code)


def _report(args: argparse.Namespace, done: UsageImport, balance: Balance) -> None:
    if args.json:
        emit_json({**done.to_dict(), "balance": balance.to_dict()})
        return
    span = ("" if done.first is None
            else f" from {moment_text(done.first)} to {moment_text(done.last or done.first)}")
    print(f"imported {done.written:,} debit{'s' if done.written != 1 else ''} of "
          f"{done.tokens:,} tokens{span}")
    if done.replayed:
        print(f"replayed {done.replayed:,} record{'s' if done.replayed != 1 else ''} imported "
              "before: nothing written for them")
    for version, tokens in sorted(done.by_version.items()):
        print(f"prices: {version}: {tokens:,} tokens")
    if len(getattr(args, "logs", None) or ()) > 1:  # by file, as price-log says them
        parts = [(f" in {name}", skipped, done.skipped_lines_by_file.get(name, {}))
                 for name, skipped in done.skipped_by_file.items()]
    else:
        parts = [("", done.skipped, done.skipped_lines)] if done.skipped else []
    for where, skipped, lines in parts:
        print(skipped_line({"skipped": dict(sorted(skipped.items())),
                            "skipped_lines": lines}, where))
    print(f"posted {balance.posted}, held {balance.held}, available {balance.available}")
