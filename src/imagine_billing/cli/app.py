"""The command-line application: argument parsing, dispatch, errors and exit codes.

Exit codes: 0 ok; 1 a check failed (an invalid table, a shortfall or an exceeded hard budget,
a policy violation);
2 bad usage or unreadable input. A `BillingError` becomes one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from imagine_billing.cli import estimating, ledger, planning, tables, updates
from imagine_billing.errors import (
    BillingError,
    BudgetExceeded,
    InsufficientTokens,
    PriceSchemaError,
)

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "build_parser", "main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

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
        epilog="Exit codes: 0 ok, 1 a check failed, 2 bad usage or unreadable input.",
    )
    commands = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND",
                                     parser_class=_Parser)
    commands.required = True
    for module in _MODULES:
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    run: Command = args.run
    try:
        return run(args)
    except (InsufficientTokens, BudgetExceeded) as error:
        _fail(error)
        return EXIT_FAILED
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


def _fail(error: BaseException) -> None:
    if isinstance(error, PriceSchemaError):
        message = error.summary
        if len(error.problems) > 1 and error.source:
            message += f" (all of them: imagine-billing validate {error.source})"
    else:
        message = " ".join(str(error).split())
    print(f"imagine-billing: error: {message}", file=sys.stderr)
