"""The command-line application: argument parsing, dispatch, errors and exit codes.

Exit codes: 0 ok; 1 a check failed (an invalid price table, a shortfall or an exceeded hard
budget, a policy violation, a ledger that does not verify); 2 bad usage or unreadable input;
3 an internal error, that is a bug of ours (the only case with a traceback). A `BillingError`
becomes one line on stderr; under ``--json`` every error is one JSON object on stderr instead,
``{"error": ..., "exit_code": N, "meaning": ...}`` (see `main`).

With no arguments at all, the command line prints its help on stdout and exits 0: the
help was asked for in the only way a bare command can ask, nothing failed. A command group
without its subcommand (``ledger --db F``) is bad usage and exits 2, as argparse does.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import sys
import traceback
from collections.abc import Callable, Sequence

from imagine_billing.cli import (
    alerts,
    completion,
    estimating,
    ledger,
    planning,
    tables,
    updates,
)
from imagine_billing.cli.output import JSON_NUMBERS, GuardedOutput, OutputError
from imagine_billing.cli.sources import (
    BOOK_ENV,
    DB_ENV,
    TABLE_ENV,
    CommandLineError,
    db_of,
    ledger_name_of,
    unpriced_message,
)
from imagine_billing.errors import (
    BillingError,
    BudgetExceeded,
    InsufficientTokens,
    LedgerCorrupted,
    PriceSchemaError,
    PriceSourceError,
    UnpricedError,
)

__all__ = ["EXIT_BUG", "EXIT_FAILED", "EXIT_MEANINGS", "EXIT_OK", "EXIT_USAGE", "build_parser",
           "main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_BUG = 3
EXIT_INTERRUPTED = 130

EXIT_MEANINGS = {
    EXIT_OK: "ok",
    EXIT_FAILED: "a check failed",
    EXIT_USAGE: "bad usage or unreadable input",
    EXIT_BUG: "internal error (a bug: please report it)",
    EXIT_INTERRUPTED: "interrupted",
}
"""What each exit code means, as ``--help`` and the JSON errors say it."""

Command = Callable[[argparse.Namespace], int]

_MODULES = (tables, estimating, updates, ledger, planning, alerts, completion)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse prints the whole usage; one line that says what is wrong reads better.
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command."""
    parser = _Parser(
        prog="imagine-billing",
        description="Cost estimates, token ledgers and budgets for the Imagine API (offline).",
        epilog="Exit codes: 0 ok, 1 a check failed, 2 bad usage or unreadable input, "
        "3 an internal error (a bug: please report it). Errors are one line on stderr; "
        'with --json, one JSON object: {"error": ..., "exit_code": N, "meaning": ...}. '
        f"{JSON_NUMBERS} Environment: {DB_ENV} is the default of --db, {TABLE_ENV} of "
        f"--table, {BOOK_ENV} (files separated by ':', ';' on Windows) of --book; an option "
        "given wins; then imagine-billing.toml, then [tool.imagine-billing] in pyproject.toml, "
        "of the current directory (keys db, table, book, rate, currency). Times: RFC 3339 "
        "with a zone, or a date alone (midnight UTC). With no "
        "arguments, this help (exit 0).",
    )
    parser.add_argument("--version", action="version",
                        version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND",
                                     parser_class=_Parser)
    commands.required = True
    for module in _MODULES:
        module.register(commands)
    parser.set_defaults(root_parser=parser)  # for `completion`, which walks it
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("imagine-billing")
    except PackageNotFoundError:  # pragma: no cover - run from a source tree not installed
        return "(version unknown: not installed)"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code.

    Under ``--json`` (or ``diff --format json``), what would be the error line on stderr is
    one JSON object instead, ``{"error": MESSAGE, "exit_code": N, "meaning": ...}`` (and
    ``"traceback"`` for exit 3), for every command and every kind of error, argparse's
    usage errors included.
    """
    _tolerate_encodings()
    arguments = list(sys.argv[1:] if argv is None else argv)
    original = sys.stdout
    with contextlib.ExitStack() as stack:
        # Standard output closed (``>&-``: Python's is None): what the command prints goes
        # nowhere, as print() would send it, and the exit code is the command's own.
        stream = original if original is not None else stack.enter_context(
            open(os.devnull, "w", encoding="utf-8"))
        sys.stdout = GuardedOutput(stream)
        try:
            return _json_main(arguments) if _wants_json(arguments) else _main(arguments)
        finally:
            sys.stdout = original


def _json_main(arguments: list[str]) -> int:
    """`_main` with its error line on stderr as one JSON object."""
    captured = _Captured(sys.stderr)
    with contextlib.redirect_stderr(captured):
        try:
            code = _main(arguments)
        except SystemExit as exited:
            code = exited.code if isinstance(exited.code, int) else \
                EXIT_OK if exited.code is None else EXIT_USAGE
    text = captured.getvalue()
    if code == EXIT_OK or not text.strip():
        # Success (what it said is a warning), or a failed check whose result document on
        # stdout says it all (validate, diff): nothing to turn into an error.
        sys.stderr.write(text)
        return code
    _json_error(text, code)
    return code


class _Captured(io.StringIO):
    """stderr while a command runs under --json: its error line is kept, to print as JSON.
    ``terminal`` is the real stderr, for a progress bar that redraws itself in place."""

    def __init__(self, terminal: object) -> None:
        super().__init__()
        self.terminal = terminal


def _wants_json(arguments: Sequence[str]) -> bool:
    """Whether the command line asks for JSON output (``--json``, or an abbreviation
    argparse accepts, or ``--format json``), before any ``--``."""
    words = list(arguments[:arguments.index("--")] if "--" in arguments else arguments)
    for i, word in enumerate(words):
        if len(word) >= 3 and "--json".startswith(word):
            return True
        if word == "--format=json" or (word == "--format" and words[i + 1:i + 2] == ["json"]):
            return True
    return False


_PREFIX = re.compile(r"^imagine-billing(?: [^:]*)?: (?:error: )?")


def _json_error(text: str, code: int) -> None:
    """The error a command wrote on stderr, as one JSON object on one line."""
    document: dict[str, object]
    if code == EXIT_BUG:
        lines = text.strip().splitlines()
        document = {"error": _PREFIX.sub("", lines[-1]) if lines else "internal error",
                    "exit_code": code, "meaning": EXIT_MEANINGS[code], "traceback": text}
    else:
        lines = [_PREFIX.sub("", line.strip()) for line in text.splitlines() if line.strip()]
        document = {"error": "; ".join(lines) or EXIT_MEANINGS.get(code, "failed"),
                    "exit_code": code, "meaning": EXIT_MEANINGS.get(code, "failed")}
    sys.stderr.write(json.dumps(document, ensure_ascii=True) + "\n")


def _main(arguments: list[str]) -> int:
    parser = build_parser()
    if not arguments:
        parser.print_help()
        return EXIT_OK
    args = parser.parse_args(arguments)
    run: Command = args.run
    try:
        if hasattr(args, "db") and not getattr(args, "db_optional", False):
            args.db = db_of(args)
            args.ledger_name = ledger_name_of(args)
        code = run(args)
        sys.stdout.flush()  # a full disk is found here, not as Python exits
        return code
    except OutputError as error:
        # Exit 2 (DESIGN section 3: "bad usage or unreadable input"), the closest: the output
        # named by the caller cannot be written; 1 is for failed checks, 3 for our bugs.
        print(f"imagine-billing: error: cannot write the output: {error.strerror}",
              file=sys.stderr)
        if isinstance(sys.stdout, GuardedOutput):
            sys.stdout.drop()
        return EXIT_USAGE
    except CommandLineError as error:
        print(f"imagine-billing: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except UnpricedError as error:
        print(f"imagine-billing: error: {unpriced_message(error)}", file=sys.stderr)
        return EXIT_USAGE
    except (InsufficientTokens, BudgetExceeded, LedgerCorrupted) as error:
        _fail(error)
        return EXIT_FAILED
    except PriceSchemaError as error:
        # A document that was read but is not a valid price table is a failed check (as
        # `validate` says); one that cannot be read at all is unreadable input.
        _fail(error)
        return EXIT_USAGE if isinstance(error, PriceSourceError) else EXIT_FAILED
    except BillingError as error:
        _fail(error)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("imagine-billing: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`... | head`): not an error of ours.
        sys.stderr.close()
        return EXIT_OK
    except Exception as error:
        # A bug: keep the traceback for the report, and an exit code that no CI step reads
        # as "the check failed" (1) or "your input is bad" (2).
        traceback.print_exc()
        print(f"imagine-billing: internal error ({type(error).__name__}): this is a bug, "
              "please report it with the traceback above", file=sys.stderr)
        return EXIT_BUG


def _tolerate_encodings() -> None:
    """Never fail on a character the terminal or file encoding cannot show.

    A Windows runner redirecting to a file writes cp1252, which has no arrow; and no encoding
    holds a lone surrogate (``"\\ud800"`` in a JSON file names one). Such characters are written
    as backslash escapes (and JSON output is pure ASCII unless stdout is UTF-8, see
    `emit_json`; ``\\ud800`` is then a JSON escape, read back as the same string).
    """
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper) and stream.errors != "backslashreplace":
            stream.reconfigure(errors="backslashreplace")


def _fail(error: BaseException) -> None:
    if isinstance(error, PriceSchemaError):
        message = error.summary
        if len(error.problems) > 1 and error.source:
            message += f" (all of them: imagine-billing validate {error.source})"
    else:
        message = " ".join(str(error).split())
    print(f"imagine-billing: error: {message}", file=sys.stderr)
