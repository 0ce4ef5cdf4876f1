"""``prices`` and ``validate``: look at price tables and check price documents."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any, BinaryIO

from imagine_billing._checks import format_timestamp
from imagine_billing.cli.arguments import TIME_HELP, instant
from imagine_billing.cli.output import columns, emit_json, usage_error, write_output
from imagine_billing.cli.sources import add_price_options, prices_from
from imagine_billing.cli.sources import table_from as _table_of
from imagine_billing.cli.updates import add_policy_option, policy_from
from imagine_billing.errors import PriceSchemaError, PriceSourceError
from imagine_billing.pricing.loading import load_price_table
from imagine_billing.pricing.model import PriceTable

if TYPE_CHECKING:
    from datetime import datetime

    from imagine_billing.pricing.updates import UpdatePolicy

__all__ = ["register"]


def register(commands: Any) -> None:
    """Add ``prices`` and ``validate`` to the command parsers."""
    _register_prices(commands)
    _register_validate(commands)


def _register_prices(commands: Any) -> None:
    prices = commands.add_parser(
        "prices",
        help="list the styles and operations of a price table with their token costs",
        description="List the styles and operations of a price table (the bundled default, "
        "or --table FILE) with their token costs. 'unpriced' means no price is published.",
    )
    add_price_options(prices, book="file")
    prices.add_argument("--json", action="store_true",
                        help="print the table's price document (format 1, JSON): what "
                        "'validate' checks and --table reads")
    prices.add_argument(
        "--export", choices=("csv", "jsonl", "sql", "parquet"), default=None, metavar="FORMAT",
        help="print the prices as one interval table for SQL engines, a row per style and "
        "version (api, version, digest, style, cost, valid_from, valid_to; valid_to empty for "
        "the last version, cost empty when unpriced): csv, jsonl, sql (CREATE TABLE "
        "imagine_prices and INSERTs) or parquet (needs --output and the 'bulk' extra). With "
        "--book, every version; else the one table")
    prices.add_argument("--output", metavar="FILE", default=None,
                        help="with --export: write to FILE (whole or not at all; an existing "
                        "file is replaced only if it is empty or an export of that format) "
                        "instead of standard output")
    prices.set_defaults(run=run_prices)


def _register_validate(commands: Any) -> None:
    validate = commands.add_parser(
        "validate",
        help="check price documents and list every problem with its JSON pointer",
        description="Check price documents (format 1) against the JSON Schema and the "
        "invariants it cannot express, listing every problem of every file. With --book, "
        "also check that the versions make one book and that each follows the one before "
        "under the update rules (see 'diff'). "
        "Exit 0 when all are valid, 1 when one is invalid or a rule finds an error, "
        "2 when one cannot be read.",
    )
    validate.add_argument("files", nargs="*", metavar="FILE", help="price documents (JSON)")
    validate.add_argument(
        "--book",
        nargs="+",
        action="extend",
        metavar="FILE",
        default=[],
        help="the versions of one API's table (any order; repeatable, as on other "
        "commands): check every consecutive pair",
    )
    validate.add_argument(
        "--previous",
        nargs="+",
        action="extend",
        metavar="FILE",
        default=None,
        help="with --book: the book before this change (such as the base branch's files); "
        "versions it scheduled that are gone are reported, versions in force must stay",
    )
    validate.add_argument(
        "--now",
        type=instant,
        default=None,
        metavar="TIME",
        help="with --book: the moment that separates versions in force from scheduled ones "
        f"({TIME_HELP}; default: the current time), so that a check in CI does not depend "
        "on the clock",
    )
    add_policy_option(validate)
    validate.add_argument("--json", action="store_true", help="print the results as JSON")
    validate.set_defaults(run=run_validate)


def table_from(args: argparse.Namespace) -> PriceTable:
    """The table of ``--table`` (or its environment variable) with the overrides, or the
    bundled default."""
    return _table_of(args)


def _cost(cost: int | None) -> str:
    return "unpriced" if cost is None else str(cost)


_EXPORT_SIGNATURES = {"csv": b"api,version,digest,style,", "jsonl": b'{"api": ',
                      "sql": b"CREATE TABLE imagine_prices", "parquet": b"PAR1"}
"""How each export starts: a file is replaced by ``--output`` only if it starts so."""


def run_prices(args: argparse.Namespace) -> int:
    if getattr(args, "file", None) is not None:
        return usage_error(f"prices takes no FILE (got {args.file!r}); a price document after "
                           "--book ends in .json")
    if args.export is not None:
        return _export(args)
    if args.output is not None:
        return usage_error("--output goes with --export FORMAT")
    table = table_from(args)
    if args.json:
        emit_json(table.to_dict())
        return 0
    print(
        f"{table.api} {table.version}, in force from {format_timestamp(table.effective_from)}"
        f"  ({table.digest[:19]}...)"
    )
    print()
    styles = sorted(
        table.styles.values(), key=lambda s: (s.operation, s.cost is None, s.cost or 0, s.id)
    )
    print(
        columns(
            ["STYLE", "NAME", "TOKENS", "STATUS", "OPERATION"],
            [(s.id, s.name, _cost(s.cost), s.status, s.operation) for s in styles],
            right=(2,),
        )
    )
    print()
    print(
        columns(
            ["OPERATION", "NAME", "METHOD", "PATH", "TOKENS", "DEFAULT STYLE"],
            [
                (
                    o.id,
                    o.name,
                    o.method,
                    o.path,
                    "by style" if o.cost is None and o.default_style else _cost(o.cost),
                    o.default_style or "-",
                )
                for o in table.operations.values()
            ],
            right=(4,),
        )
    )
    if table.source:
        print(f"\nsource: {table.source}")
    return 0


def run_validate(args: argparse.Namespace) -> int:
    paths = list(dict.fromkeys([*args.files, *args.book]))
    if not paths:
        print(
            "imagine-billing validate: error: give price documents (FILE...) or --book "
            "FILE... (see imagine-billing validate --help)",
            file=sys.stderr,
        )
        return 2
    for option in ("previous", "policy", "now"):
        if getattr(args, option) and not args.book:
            print(f"imagine-billing validate: error: --{option} needs --book", file=sys.stderr)
            return 2
    policy = policy_from(args) if args.book else None
    tables: dict[str, PriceTable] = {}
    results: list[dict[str, Any]] = []
    for path in paths:
        result: dict[str, Any] = {"path": path, "readable": True, "valid": True, "problems": []}
        try:
            table = load_price_table(path)
        except PriceSchemaError as error:
            result["valid"] = False
            result["readable"] = not isinstance(error, PriceSourceError)
            result["problems"] = [{"path": p.path, "message": p.message} for p in error.problems]
        else:
            tables[path] = table
            result.update(api=table.api, version=table.version, digest=table.digest)
        results.append(result)
    unreadable = any(not r["readable"] for r in results)
    code = 2 if unreadable else 1 if any(not r["valid"] for r in results) else 0
    book = None
    if args.book and all(path in tables for path in args.book):
        book = _check_book(
            [tables[path] for path in args.book], args.previous, policy, args.now
        )
        if code == 0 and not book["valid"]:
            code = 1
    if args.json:
        document: dict[str, Any] = {"valid": code == 0, "files": results}
        if args.book:
            document["book"] = book
        emit_json(document)
        return code
    for r in results:
        if r["valid"]:
            print(f"valid    {r['path']}  ({r['api']} {r['version']}, {r['digest'][:19]}...)")
            continue
        count = len(r["problems"])
        label = "invalid " if r["readable"] else "unreadable"
        print(f"{label} {r['path']}: {count} problem{'s' if count != 1 else ''}")
        for p in r["problems"]:
            print(f"  {p['path'] or '(document)'}: {p['message']}")
    if args.book and book is None:
        print("book     not checked: every --book file must be valid first")
    elif book is not None:
        _print_book(book)
    return code


def _check_book(
    tables: list[PriceTable],
    previous: list[str] | None,
    policy: UpdatePolicy | None,
    now: datetime | None = None,
) -> dict[str, Any]:
    from imagine_billing.pricing.book import PriceBook, load_price_book
    from imagine_billing.pricing.updates import check_book

    try:
        book = PriceBook(tables)
    except PriceSchemaError as error:
        return {
            "valid": False,
            "versions": [t.version for t in tables],
            "findings": [],
            "problems": [{"path": p.path, "message": p.message} for p in error.problems],
        }
    before = None if previous is None else load_price_book(*previous)
    findings = check_book(book, policy, previous=before, now=now)
    return {
        "valid": not any(f.severity == "error" for f in findings),
        "api": book.api,
        "versions": [t.version for t in book.tables],
        "findings": [f.to_dict() for f in findings],
        "problems": [],
    }


def _print_book(book: dict[str, Any]) -> None:
    versions = ", ".join(book["versions"])
    if book["problems"]:
        count = len(book["problems"])
        print(f"invalid  book ({versions}): {count} problem{'s' if count != 1 else ''}")
        for p in book["problems"]:
            print(f"  {p['path'] or '(document)'}: {p['message']}")
        return
    findings = book["findings"]
    errors = sum(f["severity"] == "error" for f in findings)
    warnings = len(findings) - errors
    label = "valid   " if book["valid"] else "invalid "
    print(
        f"{label} book {book['api']} ({versions}): {errors} error{'s' if errors != 1 else ''}, "
        f"{warnings} warning{'s' if warnings != 1 else ''}"
    )
    for f in findings:
        where = f["path"] or "(document)"
        print(f"  {f['severity']}: {f['version']}: {where}: {f['message']} [{f['rule']}]")


def _export(args: argparse.Namespace) -> int:
    """``prices --export FORMAT [--output FILE]``."""
    import io

    from imagine_billing.pricing.intervals import price_intervals, write_intervals

    fmt = args.export
    if args.json:
        return usage_error("--export and --json are two outputs: give one")
    if fmt == "parquet" and args.output is None:
        return usage_error("--export parquet writes a binary file: give --output FILE")
    rows = price_intervals(prices_from(args))
    if args.output is None:
        write_intervals(rows, fmt, sys.stdout)
        return 0

    def write(file: BinaryIO) -> None:
        if fmt == "parquet":
            import tempfile
            from pathlib import Path

            with tempfile.TemporaryDirectory() as folder:
                path = str(Path(folder) / "prices.parquet")
                write_intervals(rows, fmt, path)
                file.write(Path(path).read_bytes())
        else:
            text = io.TextIOWrapper(file, encoding="utf-8", newline="")
            write_intervals(rows, fmt, text)
            text.detach()

    try:
        write_output("--output", args.output, f"a {fmt} export of prices",
                     _EXPORT_SIGNATURES[fmt], write)
    except ImportError as error:
        return usage_error(str(error))
    except FileExistsError as error:  # a file that is not an export: its message says so
        return usage_error(error.strerror or str(error))
    except OSError as error:
        return usage_error(f"--output {args.output!r}: {error.strerror or error}")
    return 0
