"""The command-line application: argument parsing, dispatch, errors and exit codes.

Exit codes: 0 ok; 1 a check failed (an invalid price table, a shortfall or an exceeded hard
budget, a policy violation, a ledger that does not verify); 2 bad usage or unreadable input;
3 an internal error, that is a bug of ours (the only case with a traceback). A `BillingError`
becomes one line on stderr.
"""

from __future__ import annotations

import argparse
import io
import sys
import traceback
from collections.abc import Callable, Sequence

from imagine_billing.cli import estimating, ledger, planning, tables, updates
from imagine_billing.errors import (
    BillingError,
    BudgetExceeded,
    InsufficientTokens,
    LedgerCorrupted,
    PriceSchemaError,
    PriceSourceError,
)

__all__ = ["EXIT_BUG", "EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "build_parser", "main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_BUG = 3

Command = Callable[[argparse.Namespace], int]

_MODULES = (tables, estimating, updates, ledger, planning)


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
        "3 an internal error (a bug: please report it).",
    )
    commands = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND",
                                     parser_class=_Parser)
    commands.required = True
    for module in _MODULES:
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    _tolerate_encodings()
    parser = build_parser()
    args = parser.parse_args(argv)
    run: Command = args.run
    try:
        return run(args)
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
        return 130
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
