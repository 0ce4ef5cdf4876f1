"""``estimate`` and ``price-log``: what calls will cost, and what a usage log did cost."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from imagine_billing.cli.arguments import TIME_HELP, calls_of, instant, name_number, whole_number
from imagine_billing.cli.money import add_money_options, money_document, money_line, rate_of
from imagine_billing.cli.output import (
    PROGRESS_MIN_BYTES,
    Progress,
    columns,
    emit_json,
    usage_error,
)
from imagine_billing.cli.sources import Calls, add_price_options, prices_from, unpriced_advice
from imagine_billing.errors import BadRecordError, InsufficientTokens
from imagine_billing.estimator import Estimate, estimate, preflight, resolve_table
from imagine_billing.pricing.model import PriceTable
from imagine_billing.usage._logs import ENGINES

if TYPE_CHECKING:
    from imagine_billing.estimator import TokenRate
    from imagine_billing.usage import UsageTotals

__all__ = ["register"]



def register(commands: Any) -> None:
    """Add ``estimate`` and ``price-log`` to the command parsers."""
    parser = commands.add_parser(
        "estimate",
        help="the token cost of calls before making them (STYLE[:COUNT]...)",
        description="Estimate the tokens of calls, line by line, with the price table that "
        "priced them. Each argument is a style id (an operation id for an operation billed "
        "without a style) and a count, e.g. 'flux-dev:4 anime'. With --balance, say "
        "whether the calls fit: exit 1 with the shortfall when they do not.",
    )
    parser.add_argument("calls", nargs="*", type=name_number("COUNT", "flux-dev:4"),
                        action=Calls, default=None, metavar="STYLE[:COUNT]",
                        help="a style (or operation) id and how many calls (default 1)")
    parser.add_argument("--balance", type=whole_number(0), metavar="N", default=None,
                        help="tokens available: check the calls fit (exit 1 when they do not)")
    parser.add_argument("--at", type=instant, metavar="TIME", default=None,
                        help=f"price with the table in force at TIME ({TIME_HELP}); default now")
    add_price_options(parser, book="calls")
    add_money_options(parser)
    parser.add_argument("--json", action="store_true",
                        help="print the estimate document as JSON (with 'total')")
    parser.set_defaults(run=run_estimate)

    log = commands.add_parser(
        "price-log",
        help="token totals of usage logs (CSV, JSON lines, Parquet) by style and UTC day",
        description="Price usage logs: CSV with a header timestamp,style,count (and "
        "optionally operation; any case, other columns allowed), JSON lines with those keys, "
        "or Parquet; gzip-compressed or not. Several logs are priced together. One table "
        "(--table, or the bundled one) prices every record whatever its date; with --book "
        "each record is priced by the version in force at its timestamp. A bad line (lines "
        "are shorter than 64 Ki characters) is an error naming its file and line, unless "
        "--skip-bad, which counts skipped lines by reason and shows the first of each.",
    )
    log.add_argument("files", nargs="*", action="extend", default=argparse.SUPPRESS,
                     metavar="FILE",
                     help="a usage log (.csv, .jsonl, either gzipped, or .parquet), or - for "
                     "stdin (once)")
    add_price_options(log, book="files")
    add_money_options(log)
    log.add_argument("--format", choices=("csv", "jsonl", "parquet"), default=None,
                     help="the files' format (default: each file's own: Parquet when it "
                     "starts with PAR1, JSON lines when its first character is '{', else from "
                     "its name: .parquet, .jsonl/.ndjson/.json, else csv)")
    log.add_argument("--engine", choices=ENGINES, default="python",
                     help="python (default: streams in constant memory) or duckdb (extra "
                     "bulk: the same figures, faster on large logs)")
    log.add_argument("--by", action="append", type=_names, default=[], metavar="NAME[,NAME]",
                     help="also total by style, day, month (UTC) and columns of the log such "
                     "as project, in that order, e.g. --by project,month (repeatable)")
    log.add_argument("--skip-bad", action="store_true",
                     help="skip bad lines, counting them by reason, instead of stopping")
    log.add_argument("--json", action="store_true", help="print the totals as JSON")
    log.set_defaults(run=run_price_log)


def _names(text: str) -> list[str]:
    """An argument type for ``--by NAME[,NAME]``."""
    return [name.strip() for name in text.split(",")]


def run_estimate(args: argparse.Namespace) -> int:
    if not args.calls:
        return usage_error("estimate: give the calls to estimate, STYLE[:COUNT]... "
                           "(e.g. flux-dev:4 anime)")
    rate = rate_of(args)
    table = resolve_table(prices_from(args), args.at)
    calls = calls_of(args.calls, table)
    if args.balance is None:
        result = estimate(calls, table)
        if args.json:
            emit_json(_with_money(result.to_dict(), rate, result.total))
        else:
            _print_estimate(result, table, rate)
        return 0
    verdict = preflight(calls, args.balance, table)
    result = verdict.estimate
    if args.json:
        emit_json(_with_money({**result.to_dict(), "preflight": verdict.to_dict()}, rate,
                              result.total))
    else:
        _print_estimate(result, table, rate)
        if verdict.ok:
            print(f"balance: {verdict.available} tokens: fits, "
                  f"{verdict.available - verdict.total} left")
        else:
            print(f"balance: {verdict.available} tokens: short by {verdict.shortfall}")
    if not verdict.ok:
        raise InsufficientTokens(verdict.total, verdict.available)
    return 0


def _with_money(document: dict[str, Any], rate: TokenRate | None,
                tokens: int) -> dict[str, Any]:
    """``document`` with ``"money"`` when there is a ``--rate``."""
    return document if rate is None else {**document, "money": money_document(rate, tokens)}


def _print_estimate(result: Estimate, table: PriceTable, rate: TokenRate | None) -> None:
    rows: list[list[object]] = []
    for line in result.lines:
        call = line.call
        rows.append([line.style or "-", call.operation, call.count, line.unit_cost,
                     line.subtotal])
    rows.append(["total", "", "", "", result.total])
    print(columns(["STYLE", "OPERATION", "COUNT", "EACH", "TOKENS"], rows, right=(2, 3, 4)))
    print(f"prices: {table.api} {result.table_version} ({result.table_digest[:19]}...)")
    if rate is not None:
        print(money_line(rate, result.total))


def run_price_log(args: argparse.Namespace) -> int:
    from imagine_billing.usage import price_logs

    files: list[str] = getattr(args, "files", None) or []
    if not files:
        return usage_error("price-log: give the usage logs to price, FILE... (- for stdin)")
    if files.count("-") > 1:
        return usage_error("price-log: '-' (standard input) is given twice; it can be read "
                           "only once")
    by = [name for names in args.by for name in names]
    rate = rate_of(args)
    prices = prices_from(args)
    # Under --json, stderr is captured for the error object; the bar goes to the terminal.
    stream = getattr(sys.stderr, "terminal", sys.stderr)
    progress = (Progress(stream, "price-log", PROGRESS_MIN_BYTES) if stream.isatty()
                else None)
    try:
        try:
            results = price_logs(files, prices, engine=args.engine, skip_bad=args.skip_bad,
                                 by=by, format=args.format, on_progress=progress)
        finally:
            # Cleared first, so that an error starts a line of its own.
            if progress is not None:
                progress.done()
    except (ImportError, ValueError) as error:
        if isinstance(error, BadRecordError):
            return _bad_record(error)
        return usage_error(f"price-log: {error}")
    totals = results[0][1]
    for _, more in results[1:]:
        totals += more
    document = totals.to_dict()
    if len(results) > 1:
        document["files"] = [_file_document(name, part) for name, part in results]
    if args.json:
        emit_json(_with_money(document, rate, totals.total))
        return 0
    _print_totals(totals, document, rate)
    for name, part in results:
        if part.skipped:
            where = f" in {name}" if len(results) > 1 else ""
            print(_skipped_line(part.to_dict(), where))
    return 0


def _bad_record(error: BadRecordError) -> int:
    """The one error line of a bad record, with what to do about it; exit 2."""
    # A file that cannot be read, or a bad header, leaves no lines to skip.
    if error.reason in ("unreadable", "bad-header"):
        hint = ""
    elif error.reason == "no-price-table":
        # Skipping would drop real spend: say how to price it instead.
        hint = (" (add the version in force then to the --book, or price every line "
                "with one table: --table FILE)")
    else:
        hint = " (--skip-bad skips bad lines and counts them)"
    message = unpriced_advice(" ".join(str(error).split()))
    print(f"imagine-billing: error: {message}{hint}", file=sys.stderr)
    return 2


def _file_document(name: str, totals: UsageTotals) -> dict[str, Any]:
    """What ``--json`` says of one of several files."""
    document = totals.to_dict()
    return {"file": name, **{key: document[key] for key in (
        "total", "calls", "records", "skipped", "skipped_lines")}}


def _print_totals(totals: UsageTotals, document: dict[str, Any],
                  rate: TokenRate | None) -> None:
    print(columns(
        ["STYLE", "CALLS", "TOKENS"],
        [(style, v["calls"], v["tokens"]) for style, v in document["by_style"].items()],
        right=(1, 2),
    ))
    print()
    print(columns(
        ["DAY (UTC)", "CALLS", "TOKENS"],
        [(day, v["calls"], v["tokens"]) for day, v in document["by_day"].items()],
        right=(1, 2),
    ))
    print()
    if totals.by:
        width = len(totals.by)
        print(columns(
            [*(name.upper() for name in totals.by), "CALLS", "TOKENS"],
            [(*("-" if v is None else v for v in group["by"].values()), group["calls"],
              group["tokens"]) for group in document["groups"]],
            right=(width, width + 1),
        ))
        print()
    print(f"total: {totals.total} tokens for {totals.calls} call{'s' if totals.calls != 1 else ''}"
          f" in {totals.records} record{'s' if totals.records != 1 else ''}")
    for version, v in document["tables"].items():
        print(f"prices: {version} ({v['digest'][:19]}...): {v['tokens']} tokens")
    if rate is not None:
        print(money_line(rate, totals.total))


def _skipped_line(document: dict[str, Any], where: str) -> str:
    """``skipped: N bad lines (reason n at lines ...; ...)`` of one file."""
    count = sum(document["skipped"].values())
    reasons = "; ".join(
        f"{reason} {n} at line{'s' if len(lines) > 1 else ''} "
        f"{', '.join(map(str, lines))}{', ...' if n > len(lines) else ''}"
        for reason, n in document["skipped"].items()
        for lines in [document["skipped_lines"].get(reason, [])])
    return f"skipped{where}: {count} bad line{'s' if count != 1 else ''} ({reasons})"

