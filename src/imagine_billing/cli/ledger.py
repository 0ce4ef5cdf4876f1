"""``ledger``: credit, hold, capture, void, debit and refund tokens in a ledger file; read,
verify, export and import it.

Exit codes: 0 ok; 1 not enough tokens, a failed ``verify`` or a refused ``import``; 2 bad
input (an unknown hold, a reused key, an unreadable, read-only or damaged file).

Errors go to stderr as one line. With ``--json``, stdout carries the result document of a
command that succeeded; ``verify`` and ``import`` also print ``{"ok": false, ...}`` when the
check fails, as their result is the check itself.

``verify`` prints the head of the chain (``ID:HASH`` of the last entry it checked): keep it
elsewhere, and ``verify --expect ID:HASH`` later fails if the chain no longer holds that entry
as it was (cut short or rewritten, which the hash chain alone cannot show). The same head is
an anchor: ``verify --since ID:HASH`` checks only the entries after it (a nightly check of a
large ledger), and prints the next one.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from imagine_billing._checks import printable
from imagine_billing.cli import history, reconciling
from imagine_billing.cli.arguments import (
    TIME_HELP,
    calls_of,
    instant,
    name_number,
    open_ledger,
    tag,
    values_checked,
    whole_number,
)
from imagine_billing.cli.output import columns, emit_json
from imagine_billing.cli.sources import add_db_option, add_price_options, db_text, table_from
from imagine_billing.errors import LedgerCorrupted, LedgerStoreError, UnknownEntry

if TYPE_CHECKING:
    from imagine_billing.estimator import Estimate
    from imagine_billing.ledger import Entry, Ledger

__all__ = ["register"]


def register(commands: Any) -> None:
    """Add ``ledger`` and its subcommands to the command parsers."""
    ledger = commands.add_parser(
        "ledger",
        help="a token ledger in a SQLite file: credit, hold, capture, debit, refund, verify",
        description="Keep tokens in a ledger file (SQLite, created by its first write). Every "
        "write takes an idempotency --key: the same key with the same request does nothing "
        "more. HOLD and ENTRY are an entry's key or its id. Exit 1 when tokens are short, "
        "verify fails or an import is refused; 2 on bad input.",
    )
    add_db_option(ledger)
    sub = ledger.add_subparsers(title="subcommands", dest="ledger_command", metavar="SUBCOMMAND")
    sub.required = True
    _register_writes(sub)
    _register_reads(sub)


def _register_writes(sub: Any) -> None:
    """The subcommands that write: credit, debit, hold, capture, expire, void, refund."""
    credit = _command(sub, "credit", run_credit, "add tokens")
    credit.add_argument("tokens", type=whole_number(1), metavar="TOKENS", help="an int >= 1")
    _add_key(credit)
    credit.add_argument("--memo", metavar="M", default=None, help="free text")
    _add_tags(credit)
    _add_at(credit)

    for name, run, what in (("debit", run_debit, "spend tokens at once"),
                            ("hold", run_hold, "reserve tokens, to capture or void later")):
        parser = _command(sub, name, run, what)
        parser.add_argument(
            "amount", nargs="+", metavar="AMOUNT",
            help="tokens (an int >= 1), or calls to estimate: STYLE[:COUNT]... (e.g. flux-dev:4)")
        _add_key(parser)
        parser.add_argument("--memo", metavar="M", default=None, help="free text")
        _add_tags(parser)
        add_price_options(parser, what="the price document that prices STYLE[:COUNT] "
                          "amounts")
        if name == "debit":
            _add_at(parser)
        if name == "hold":
            parser.add_argument("--expires-in", type=whole_number(1, 10 * 366 * 86_400),
                                metavar="SECONDS",
                                default=None, help="the hold lapses SECONDS after it is first "
                                "placed (then it cannot be captured)")

    capture = _command(sub, "capture", run_capture, "spend some or all of a hold, release the rest")
    capture.add_argument("hold", metavar="HOLD", help="the hold's key or id")
    capture.add_argument("tokens", nargs="?", type=whole_number(1), metavar="TOKENS", default=None,
                         help="at most the hold's tokens (default: all of them)")
    capture.add_argument("--key", default=None, metavar="K",
                         help="idempotency key (default: the hold's key + ':capture', or "
                         "':capture:2'... when another entry has that key)")

    _command(sub, "expire", run_expire,
             "release every hold past its expiry (held tokens become available again)")
    void = _command(sub, "void", run_void, "cancel a hold: all its tokens are released")
    void.add_argument("hold", metavar="HOLD", help="the hold's key or id")
    void.add_argument("--key", metavar="K", default=None,
                      help="the idempotency key (default: the hold's key + ':void', or "
                      "':void:2'... when another entry has that key)")

    refund = _command(sub, "refund", run_refund, "give back tokens of a debit or capture")
    refund.add_argument("entry", metavar="ENTRY", help="the debit's or capture's key or id")
    refund.add_argument("tokens", nargs="?", type=whole_number(1), metavar="TOKENS", default=None,
                        help="at most what is left to refund (default: all of it)")
    _add_key(refund)


def _register_reads(sub: Any) -> None:
    """The subcommands that read: balance, entries, verify, export; and import, which
    writes a new ledger from an export."""
    _command(sub, "balance", run_balance, "posted, held and available tokens")

    entries = _command(sub, "entries", run_entries, "list entries, oldest first")
    entries.add_argument("--since", type=instant, metavar="T", default=None,
                         help=f"from this time on ({TIME_HELP})")
    entries.add_argument("--until", type=instant, metavar="T", default=None,
                         help=f"before this time ({TIME_HELP})")
    _add_tags(entries, "only entries with this tag (repeatable: all must match)")

    verify = _command(sub, "verify", run_verify,
                      "check the hash chain and the balance (exit 1 if bad), print the head")
    _add_expect(verify, "the chain must still hold entry ID with hash HASH (a head printed "
                "by an earlier verify, kept elsewhere): catches a chain cut short or rewritten")
    verify.add_argument("--since", type=_anchor, metavar="ID:HASH", default=None,
                        help="check only the entries after entry ID (a head printed by an "
                        "earlier verify), once it still has hash HASH; a full verify now and "
                        "then checks the entries before it")
    verify.add_argument("--workers", type=_workers, metavar="N|auto", default="auto",
                        help="processes to check ranges of the chain at once, this one "
                        "included (default auto: the CPU count, at most 4); a chain part of "
                        "under 50,000 entries a process uses fewer, down to 1")

    export = _command(sub, "export", run_export, "write every entry as JSON lines or CSV",
                      json_help="the same as --format jsonl")
    export.add_argument("--format", choices=("jsonl", "csv"), default="jsonl",
                        help="JSON lines (default; exact, 'import' reads them) or CSV (for "
                        "people and spreadsheets: it does not round-trip)")

    reconciling.add_commands(sub, _command)
    history.add_commands(sub, _command)

    imported = _command(sub, "import", run_import,
                        "load an export (JSON lines) into a new ledger, verifying its chain")
    imported.add_argument("file", metavar="FILE",
                          help="the JSON lines of an export, or - for standard input")
    _add_expect(imported, "the export must hold entry ID with hash HASH (the head of the "
                "ledger it came from): catches an export cut short or rewritten")


def _command(sub: Any, name: str, run: Any, what: str, *,
             json_help: str = "print the result as JSON") -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(name, help=what, description=what + ".")
    add_db_option(parser, repeated=True)
    parser.add_argument("--json", action="store_true", help=json_help)
    parser.set_defaults(run=values_checked(run, lambda args: f"ledger {args.ledger_command}"))
    return parser


def _anchor(text: str) -> tuple[int, str]:
    """An argument type for ``ID:HASH`` (a head as ``verify`` prints it)."""
    number, colon, digest = text.partition(":")
    if (not colon or not (number.isascii() and number.isdigit()) or len(number) > 19
            or len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest)):
        shown = text if len(text) <= 90 else text[:60] + "..."
        raise argparse.ArgumentTypeError(
            f"expected ID:HASH, an entry id and its 64 hex digit hash, as verify prints "
            f"the head (got {shown!r})")
    return int(number), digest


def _workers(text: str) -> int:
    """An argument type for ``--workers``: an int >= 1, or ``auto``."""
    if text == "auto":
        return min(os.cpu_count() or 1, 4)
    if not (text.isascii() and text.isdigit()) or len(text) > 6 or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a number of processes >= 1 or auto "
                                         f"(got {text!r})")
    return int(text)


def _add_expect(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--expect", type=_anchor, metavar="ID:HASH", default=None, help=what)


def _add_key(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--key", required=True, metavar="K",
                        help="the idempotency key (a retry with the same key writes nothing)")


def _add_at(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--at", type=instant, default=None, metavar="TIME",
        help=f"back-date it: when it happened ({TIME_HELP}); not later than now, nor before "
        "an entry that moves tokens (default now)")


def _add_tags(parser: argparse.ArgumentParser,
              what: str = "a label such as project=site (repeatable)") -> None:
    parser.add_argument("--tag", action="append", type=tag, default=[], metavar="NAME=VALUE",
                        help=what)


def _amount(args: argparse.Namespace) -> int | Estimate:
    """An int for ``AMOUNT`` in tokens, else the estimate of ``STYLE[:COUNT]...``."""
    specs: list[str] = args.amount
    if len(specs) == 1 and specs[0].isascii() and specs[0].isdigit():
        if int(specs[0]) < 1:
            raise _BadInput(f"AMOUNT must be a whole number >= 1 (got {specs[0]!r})")
        return int(specs[0])
    from imagine_billing.estimator import estimate

    parse = name_number("COUNT", "flux-dev:4")
    try:
        pairs = [parse(spec) for spec in specs]
    except argparse.ArgumentTypeError as error:
        raise _BadInput(f"{error} (AMOUNT is TOKENS or STYLE[:COUNT]...)") from None
    table = table_from(args)
    return estimate(calls_of(pairs, table), table)


class _BadInput(Exception):
    """An AMOUNT argparse could not check: the command exits 2 with this message."""


def _ref(ledger: Ledger, text: str) -> int | str:
    """A key as given, or an id when no key is ``text`` and it is a number."""
    if text.isascii() and text.isdigit():
        try:
            ledger.get(text)
        except UnknownEntry:
            return int(text)
    return text


def _report(args: argparse.Namespace, ledger: Ledger, entry: Entry, before: int,
            **extra: Any) -> int:
    """Print the entry a write gave and the balance. ``before``: the id of the last entry
    before the write; an entry no later than it was there already, so the write was a
    replay of its key (the same request again) and wrote nothing."""
    balance = ledger.balance()
    replayed = entry.id <= before
    if args.json:
        emit_json({"entry": entry.to_dict(), **extra, "replayed": replayed,
                   "balance": balance.to_dict()})
        return 0
    again = ": replayed, already recorded by an earlier run, nothing written" if replayed else ""
    print(f"entry {entry.id}: {entry.kind} of {entry.tokens} tokens "
          f"(key {printable(entry.key)}){again}")
    print(f"posted {balance.posted}, held {balance.held}, available {balance.available}")
    return 0


def run_credit(args: argparse.Namespace) -> int:
    with open_ledger(args.db, name=args.ledger_name, create=True) as ledger:
        before = ledger.head()[0]
        entry = ledger.credit(args.tokens, key=args.key, memo=args.memo,
                              tags=dict(args.tag) or None, at=args.at)
        return _report(args, ledger, entry, before)


def _usage(args: argparse.Namespace, message: str) -> int:
    print(f"imagine-billing ledger {args.ledger_command}: error: {message}", file=sys.stderr)
    return 2


def run_debit(args: argparse.Namespace) -> int:
    try:
        amount = _amount(args)
    except _BadInput as error:
        return _usage(args, str(error))
    with open_ledger(args.db, name=args.ledger_name, create=True) as ledger:
        before = ledger.head()[0]
        entry = ledger.debit(amount, key=args.key, tags=dict(args.tag) or None, memo=args.memo,
                             at=args.at)
        return _report(args, ledger, entry, before)


def run_hold(args: argparse.Namespace) -> int:
    try:
        amount = _amount(args)
    except _BadInput as error:
        return _usage(args, str(error))
    expires = (None if args.expires_in is None
               else datetime.now(UTC) + timedelta(seconds=args.expires_in))
    with open_ledger(args.db, name=args.ledger_name, create=True) as ledger:
        if expires is not None:
            # A retry of the same command must replay, not conflict: --expires-in counts
            # from the first attempt, whose expiry the hold recorded.
            try:
                first = ledger.get(args.key)
            except UnknownEntry:
                pass
            else:
                expires = first.expires_at or expires
        before = ledger.head()[0]
        hold = ledger.hold(amount, key=args.key, tags=dict(args.tag) or None, expires_at=expires,
                           memo=args.memo)
        return _report(args, ledger, hold.entry, before, hold=hold.to_dict())


def run_capture(args: argparse.Namespace) -> int:
    with open_ledger(args.db, name=args.ledger_name, create=False) as ledger:
        before = ledger.head()[0]
        entry = ledger.capture(_ref(ledger, args.hold), args.tokens, key=args.key)
        return _report(args, ledger, entry, before)


def run_expire(args: argparse.Namespace) -> int:
    with open_ledger(args.db, name=args.ledger_name, create=False) as ledger:
        expired = ledger.expire_holds()
        balance = ledger.balance()
        if args.json:
            emit_json({"expired": [entry.to_dict() for entry in expired],
                       "balance": balance.to_dict()})
        else:
            print(f"{len(expired)} hold{'s' if len(expired) != 1 else ''} expired, "
                  f"{sum(e.tokens for e in expired)} tokens released")
            print(f"posted {balance.posted}, held {balance.held}, "
                  f"available {balance.available}")
        return 0


def run_void(args: argparse.Namespace) -> int:
    with open_ledger(args.db, name=args.ledger_name, create=False) as ledger:
        before = ledger.head()[0]
        entry = ledger.void(_ref(ledger, args.hold), key=args.key)
        return _report(args, ledger, entry, before)


def run_refund(args: argparse.Namespace) -> int:
    with open_ledger(args.db, name=args.ledger_name, create=False) as ledger:
        before = ledger.head()[0]
        entry = ledger.refund(_ref(ledger, args.entry), args.tokens, key=args.key)
        return _report(args, ledger, entry, before)


def run_balance(args: argparse.Namespace) -> int:
    with open_ledger(args.db, name=args.ledger_name, create=False, readonly=True) as ledger:
        balance = ledger.balance()
    if args.json:
        emit_json(balance.to_dict())
    else:
        print(f"posted {balance.posted}, held {balance.held}, available {balance.available}")
    return 0


def run_entries(args: argparse.Namespace) -> int:
    with open_ledger(args.db, name=args.ledger_name, create=False, readonly=True) as ledger:
        found = list(ledger.entries(args.since, args.until, dict(args.tag) or None))
    if args.json:
        emit_json({"entries": [e.to_dict() for e in found]})
        return 0
    rows = [(e.id, e.to_dict()["at"], e.kind, e.tokens, e.key, "" if e.ref is None else e.ref,
             " ".join(f"{k}={v}" for k, v in e.tags.items())) for e in found]
    print(columns(["ID", "AT", "KIND", "TOKENS", "KEY", "REF", "TAGS"], rows, right=(0, 3, 5)))
    return 0


def run_verify(args: argparse.Namespace) -> int:
    with open_ledger(args.db, name=args.ledger_name, create=False, readonly=True) as ledger:
        try:
            count = ledger.verify(expect=args.expect, since=args.since, workers=args.workers)
            # The last entry checked, not the tip now: another writer may have added more.
            last = count + (args.since[0] if args.since else 0)
            head = (last, ledger.get(last).hash) if last else ledger.head()
        except LedgerCorrupted as error:
            if args.json:
                emit_json({"ok": False, "entry": error.entry, "reason": error.reason})
            print(f"imagine-billing: error: {' '.join(str(error).split())}", file=sys.stderr)
            return 1
    if args.json:
        document: dict[str, Any] = {"ok": True, "entries": count}
        if args.since:
            document["since"] = {"id": args.since[0], "hash": args.since[1]}
        emit_json({**document, "head": {"id": head[0], "hash": head[1]}})
    else:
        after = f" after entry {args.since[0]}" if args.since else ""
        print(f"ok: {count} entries{after}, hash chain and balance intact")
        print(f"head: {head[0]}:{head[1]}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    with open_ledger(args.db, name=args.ledger_name, create=False, readonly=True) as ledger:
        ledger.export(sys.stdout, format="jsonl" if args.json else args.format)
    return 0


def run_import(args: argparse.Namespace) -> int:
    from imagine_billing.ledger import Ledger

    try:
        # "-" reads standard input (export | import moves a ledger between stores).
        source = (open(sys.stdin.fileno(), encoding="utf-8", closefd=False)  # noqa: SIM115
                  if args.file == "-" else open(args.file, encoding="utf-8"))  # noqa: SIM115
    except OSError as error:
        raise LedgerStoreError(args.file, f"cannot read: {error.strerror}") from None
    try:
        # A failed import removes the file it created (from_jsonl): none is left behind.
        with source, Ledger.from_jsonl(source, path=args.db, source=args.file,
                                       expect=args.expect, name=args.ledger_name) as ledger:
            count, balance, head = ledger.verify(), ledger.balance(), ledger.head()
    except LedgerCorrupted as error:
        if args.json:
            emit_json({"ok": False, "entry": error.entry, "reason": error.reason})
        print(f"imagine-billing: error: import refused: {error}", file=sys.stderr)
        return 1
    if args.json:
        emit_json({"ok": True, "entries": count, "balance": balance.to_dict(),
                   "head": {"id": head[0], "hash": head[1]}})
    else:
        from imagine_billing.ledger.postgres import is_url

        where = (f"{db_text(args.db)} (ledger {args.ledger_name!r})" if is_url(args.db)
                 else args.db)
        print(f"imported {count} entries into {where}: posted {balance.posted}, "
              f"held {balance.held}, available {balance.available}")
        print(f"head: {head[0]}:{head[1]}")
    return 0
