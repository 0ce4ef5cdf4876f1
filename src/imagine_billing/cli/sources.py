"""Where a command's prices and ledger come from: ``--table``, ``--book``, the ``--price`` and
``--prices`` overrides, ``--db``, and the environment variables and configuration files that
give their defaults.

An option on the command line always wins over its environment variable:
``IMAGINE_BILLING_DB`` is the default of ``--db``, ``IMAGINE_BILLING_TABLE`` of ``--table``,
and ``IMAGINE_BILLING_BOOK`` (files separated by `os.pathsep`, ``:`` on POSIX) of ``--book``.
A command that takes one table and finds only ``IMAGINE_BILLING_BOOK`` uses the version of the
book in force now. An empty variable is not set. Neither given, the configuration of the
current directory (`imagine_billing.cli.config`: ``imagine-billing.toml``, then
``pyproject.toml``) gives them, read only then.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from imagine_billing.cli.arguments import CommandLineError, name_number, whole_number
from imagine_billing.errors import (
    PriceSchemaError,
    PriceSourceError,
    UnknownStyleError,
    UnpricedError,
)

if TYPE_CHECKING:
    from imagine_billing.pricing.book import PriceBook
    from imagine_billing.pricing.model import PriceTable

__all__ = [
    "BOOK_ENV",
    "DB_ENV",
    "TABLE_ENV",
    "Calls",
    "CommandLineError",
    "add_db_option",
    "add_price_options",
    "db_of",
    "ledger_name_of",
    "prices_from",
    "table_from",
    "unpriced_advice",
    "unpriced_message",
]

DB_ENV = "IMAGINE_BILLING_DB"
TABLE_ENV = "IMAGINE_BILLING_TABLE"
BOOK_ENV = "IMAGINE_BILLING_BOOK"


def _env(name: str) -> str | None:
    return os.environ.get(name) or None


def _default(name: str, otherwise: str) -> str:
    """The ``(default: ...)`` part of a help text for an option with an environment variable."""
    value = _env(name)
    now = "" if value is None else f", now {value!r}"
    return f"(default: ${name}{now}; else {otherwise})" if otherwise else \
        f"(default: ${name}{now})"


def add_db_option(parser: argparse.ArgumentParser, *, repeated: bool = False) -> None:
    """The ``--db FILE`` option. ``repeated``: the option again on a subcommand (so that
    ``ledger balance --db F`` works as ``ledger --db F balance`` does); it then sets nothing
    unless given, and the later one wins."""
    parser.add_argument(
        "--db", metavar="FILE|URL", default=argparse.SUPPRESS if repeated else None,
        help="the ledger: a SQLite file, or a PostgreSQL URL (postgresql://user@host/db; "
        "needs the 'postgres' extra) shared by many hosts " + _default(DB_ENV, ""),
    )
    parser.add_argument(
        "--ledger", metavar="NAME", dest="ledger_name",
        default=argparse.SUPPRESS if repeated else None,
        help="which ledger of a PostgreSQL database (one database holds many, apart); a "
        "SQLite file holds one, 'main' (default: ledger of the configuration file, else "
        "main)",
    )


def ledger_name_of(args: argparse.Namespace) -> str:
    """The ledger's name: ``--ledger``, else, for a PostgreSQL URL, ``ledger`` of the
    configuration, else main (the one ledger of a SQLite file)."""
    name: str | None = getattr(args, "ledger_name", None)
    if name is None:
        from imagine_billing.ledger.postgres import is_url

        configured = None
        if is_url(args.db):
            from imagine_billing.cli.config import load_config

            configured = load_config().ledger
        name = "main" if configured is None else str(configured.value)
    return name


def db_text(db: str) -> str:
    """The ledger ``db`` for a message: a PostgreSQL URL without its secrets (`redacted`),
    a file as it is."""
    from imagine_billing.ledger.postgres import is_url, redacted

    return redacted(db) if is_url(db) else db


def db_of(args: argparse.Namespace) -> str:
    """The ledger file: ``--db``, else ``$IMAGINE_BILLING_DB``, else ``db`` of the
    configuration.

    Raises:
        CommandLineError: none is given, or the configuration is bad.
    """
    db: str | None = getattr(args, "db", None) or _env(DB_ENV)
    if db is None:
        from imagine_billing.cli.config import CONFIG_FILE, load_config

        configured = load_config().db
        if configured is None:
            raise CommandLineError(f"--db FILE is required (or set {DB_ENV}, or db in "
                                   f"{CONFIG_FILE})")
        db = str(configured.value)
    return db


def add_price_options(parser: argparse.ArgumentParser, *, book: str | None = None,
                      what: str = "a price document (JSON)") -> None:
    """``--table FILE``, ``--price STYLE=TOKENS`` and ``--prices PATCH.json``; with ``book``,
    also ``--book FILE``, where ``book`` names where the other words after ``--book`` go
    (``"calls"``, ``"file"`` or ``"files"``, see `_BookFiles`)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--table", metavar="FILE", default=None,
                       help=f"{what} {_default(TABLE_ENV, 'the bundled table')}")
    if book is not None:
        parser.set_defaults(takes_book=True)
        group.add_argument(
            "--book", action=_BookFiles, nargs="+", metavar="FILE", default=None,
            rest=book,
            help="a version of one API's price table; repeat for each version (any order): "
            "each call is priced by the version in force at its time. --book A.json B.json "
            "also works: the words after --book that end in .json are files "
            f"{_default(BOOK_ENV, 'the bundled table')}")
    else:
        parser.set_defaults(book=None, takes_book=False)
    parser.add_argument(
        "--price", action="append", type=_price, default=[], metavar="STYLE=TOKENS",
        help="price STYLE (or an operation billed without a style) at TOKENS, a whole number "
        ">= 0, over the table: e.g. --price sdxl-1.0=2 (repeatable)")
    parser.add_argument(
        "--prices", metavar="PATCH.json", default=None,
        help='a JSON Merge Patch (RFC 7396) over the table document, e.g. {"styles": '
        '{"sdxl-1.0": {"cost": 2}}}; --price applies after it. The changed table gets the '
        "next patch version (1.0.0 -> 1.0.1) unless the patch sets one")


def _price(text: str) -> tuple[str, int]:
    """An argument type for ``STYLE=TOKENS``."""
    name, equals, digits = text.partition("=")
    if not equals or not name:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected STYLE=TOKENS, e.g. sdxl-1.0=2")
    try:
        return name, whole_number(0)(digits)
    except argparse.ArgumentTypeError as error:
        raise argparse.ArgumentTypeError(f"{text!r}: TOKENS {error}") from None


class _BookFiles(argparse.Action):
    """``--book FILE``, repeatable; ``--book A.json B.json WORD...`` also works, as it did
    when --book took several files: its first word is a file, then the words ending in
    ``.json`` are files and any other word is an argument of the command: a call
    (``rest="calls"``, appended to ``calls`` in command-line order), a log (``rest="logs"``,
    appended to ``logs``), the command's FILE (``rest="file"``) or one of its FILEs
    (``rest="files"``)."""

    def __init__(self, *args: Any, rest: str, **kwargs: Any) -> None:
        self.rest = rest
        super().__init__(*args, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: str | Sequence[Any] | None, option_string: str | None = None) -> None:
        words = [str(v) for v in values or ()]
        files: list[str] = list(getattr(namespace, self.dest, None) or [])
        files.append(words[0])
        for word in words[1:]:
            if word.lower().endswith(".json"):
                files.append(word)
            elif self.rest == "calls":
                try:
                    call = name_number("COUNT", "flux-dev:4")(word)
                except argparse.ArgumentTypeError as error:
                    parser.error(f"argument STYLE[:COUNT]: {error}")
                namespace.calls = [*(getattr(namespace, "calls", None) or []), call]
            elif self.rest in ("files", "logs"):
                setattr(namespace, self.rest, [*(getattr(namespace, self.rest, None) or []),
                                               word])
            elif getattr(namespace, self.rest, None) is None:
                setattr(namespace, self.rest, word)
            else:
                parser.error(f"unrecognized arguments: {word} (one {self.rest.upper()} "
                             "is taken already; a price document after --book ends in .json, "
                             "or give each after a --book of its own)")
        setattr(namespace, self.dest, files)


class Calls(argparse.Action):
    """The ``STYLE[:COUNT]...`` words of a command, appended to ``calls`` in command-line
    order (``--book`` may also append some: see `_BookFiles`)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: str | Sequence[Any] | None, option_string: str | None = None) -> None:
        namespace.calls = [*(getattr(namespace, "calls", None) or []), *(values or ())]


def prices_from(args: argparse.Namespace) -> PriceTable | PriceBook:
    """The prices of a command: ``--table`` or ``--book``, else their environment variables,
    else the configuration's ``table`` or ``book``, else the bundled table; with the
    ``--prices`` and ``--price`` overrides applied.

    Raises:
        CommandLineError: both environment variables are set and neither option is given,
            or a ``--prices`` patch sets a version for a whole book.
        PriceSchemaError: a document is invalid or cannot be read, or an override makes it
            invalid.
        CommandLineError: ``--price`` names a style or operation the table lacks, or the
            ``--prices`` file cannot be read or is not a JSON object.
    """
    from imagine_billing.pricing.book import PriceBook, load_price_book
    from imagine_billing.pricing.loading import load_price_table

    table: str | None = args.table
    book: list[str] | None = args.book
    if table is None and book is None:
        table = _env(TABLE_ENV)
        books = [p for p in (_env(BOOK_ENV) or "").split(os.pathsep) if p]
        if table is not None and books:
            choose = ("--table FILE or --book FILE" if getattr(args, "takes_book", False)
                      else "--table FILE")
            raise CommandLineError(
                f"{TABLE_ENV} and {BOOK_ENV} are both set: give {choose} to choose, or "
                "unset one")
        if books:
            book = books
        elif table is None:
            table, book = _configured_prices()
    prices: PriceTable | PriceBook = (load_price_book(*book) if book
                                      else load_price_table(table))
    patch = _patch(args)
    if patch is None and not args.price:
        return prices
    if isinstance(prices, PriceBook):
        if patch is not None and "version" in patch:
            raise CommandLineError(
                f"--prices {args.prices}: a patch for a whole --book cannot set one "
                "'version' for every table (leave it out: each gets its next patch version)")
        return PriceBook([_overridden(t, patch, args.price, args.prices)
                          for t in prices.tables])
    return _overridden(prices, patch, args.price, args.prices)


def _configured_prices() -> tuple[str | None, list[str] | None]:
    """``(table, book)`` of the configuration (both ``None`` when it sets neither)."""
    from imagine_billing.cli.config import load_config

    config = load_config()
    table = None if config.table is None else str(config.table.value)
    book = None if config.book is None else list(config.book.value)
    return table, book


def table_from(args: argparse.Namespace, at: datetime | None = None) -> PriceTable:
    """The one table of a command (`prices_from`): of a book, the version in force at
    ``at`` (default now)."""
    from imagine_billing.estimator import resolve_table
    from imagine_billing.pricing.book import PriceBook

    prices = prices_from(args)
    if isinstance(prices, PriceBook):
        return resolve_table(prices, at or datetime.now(UTC))
    return prices


def _patch(args: argparse.Namespace) -> dict[str, Any] | None:
    """The JSON Merge Patch of ``--prices``, or ``None``."""
    if args.prices is None:
        return None
    from imagine_billing.pricing.loading import read_document

    try:
        document, problems = read_document(args.prices)
    except PriceSourceError as error:
        raise CommandLineError(f"--prices {args.prices}: "
                               f"{'; '.join(p.message for p in error.problems)}") from None
    if problems:
        raise CommandLineError(f"--prices {args.prices}: "
                               f"{'; '.join(f'{p.path}: {p.message}' for p in problems)}")
    if not isinstance(document, dict):
        raise CommandLineError(
            f"--prices {args.prices}: a JSON Merge Patch of a price table is a JSON object, "
            f'such as {{"styles": {{"sdxl-1.0": {{"cost": 2}}}}}} (got {type(document).__name__})')
    return dict(document)


def _overridden(table: PriceTable, patch: dict[str, Any] | None,
                prices: Sequence[tuple[str, int]], patch_file: str | None) -> PriceTable:
    """``table`` with ``patch``, then each ``(name, tokens)`` of ``--price``, applied as one
    JSON Merge Patch."""
    from imagine_billing.pricing.overrides import merge_patch

    whole: dict[str, Any] = dict(patch or {})
    if prices:
        # The names --price may use: those of the table once --prices has been applied.
        base = merge_patch(table.to_dict(), whole)
        styles = base.get("styles", {}) if isinstance(base, dict) else {}
        operations = base.get("operations", {}) if isinstance(base, dict) else {}
        for name, tokens in prices:
            if name in styles:
                section = "styles"
            elif name in operations:
                section = "operations"
            else:
                unknown = UnknownStyleError(name, [*styles, *operations],
                                            kind="style or operation", version=table.version)
                raise CommandLineError(f"--price {name}={tokens}: {unknown} (a new style "
                                       "needs its whole entry: --prices PATCH.json)")
            whole = _deep_merge(whole, {section: {name: {"cost": tokens}}})
    version = whole.get("version")
    if not isinstance(version, str):
        major, minor, patch_number = table.version.split(".")
        version = f"{major}.{minor}.{int(patch_number) + 1}"
    try:
        return table.with_overrides(whole, version=version)
    except PriceSchemaError as error:
        given = " and ".join(
            ([f"--prices {patch_file}"] if patch_file else [])
            + [f"--price {name}={tokens}" for name, tokens in prices])
        raise CommandLineError(f"{given} would make an invalid price table: "
                               f"{error.summary}") from None


def _deep_merge(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    from imagine_billing.pricing.overrides import merge_patch

    merged = merge_patch(target, patch)
    assert isinstance(merged, dict)
    return merged


_PYTHON_ADVICE = re.compile(
    r"; supply one with table\.with_overrides\(.*, version=\.\.\.\) or a table file of "
    r"your own", re.DOTALL)


_UNPRICED = re.compile(r"(?:style|operation) '([^'\s]+)' has no published price")


def unpriced_advice(message: str, name: str | None = None) -> str:
    """An `UnpricedError` message (alone or inside another) with its Python advice
    (``table.with_overrides(...)``) replaced by the command-line options that do the same."""
    if name is None:
        named = _UNPRICED.search(message)
        name = named.group(1) if named else None
    option = f"--price {name}=TOKENS" if name else "--price STYLE=TOKENS"
    return _PYTHON_ADVICE.sub(
        f"; give it a price with {option} (or --prices PATCH.json, a JSON Merge Patch, or "
        "--table FILE)", message)


def unpriced_message(error: UnpricedError) -> str:
    """The message of ``error`` for the command line."""
    return unpriced_advice(" ".join(str(error).split()), error.style)

