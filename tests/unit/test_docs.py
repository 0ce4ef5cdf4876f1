"""The documentation keeps up with the code: the command-line reference names every command and
option of the parser (and no option the parser lacks), every ``:::`` API reference of the docs
resolves, and the SQL query the docs run is the one the tests run."""

from __future__ import annotations

import argparse
import pkgutil
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagine_billing.cli.app import build_parser
from imagine_billing.pricing.intervals import PRICING_QUERY

DOCS = Path(__file__).parents[2] / "docs"
CLI_PAGE = DOCS / "reference" / "cli.md"
HELP = ("-h", "--help")


Command = tuple[tuple[str, ...], argparse.ArgumentParser]


def commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[Command]:
    """Every parser under ``parser`` (itself first) with its command path, such as
    ``("ledger", "credit")``."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from commands(child, (*path, name))


def options(parser: argparse.ArgumentParser) -> list[str]:
    """The option strings of ``parser``'s own arguments, such as ``--db``."""
    return [s for action in parser._actions for s in action.option_strings]


def choices(parser: argparse.ArgumentParser) -> list[str]:
    """The fixed values of its options and positionals (``--format {csv,jsonl}``, ``SHELL``)."""
    return [str(c) for action in parser._actions
            if action.choices and not isinstance(action, argparse._SubParsersAction)
            for c in action.choices]


def mentions(text: str, word: str) -> bool:
    """Whether ``word`` stands in ``text`` as a word of its own: ``--price`` is not found in
    ``--prices``, nor ``csv`` in ``csvx``."""
    return re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text) is not None


def sections(markdown: str) -> dict[str, str]:
    """The page's sections by heading (backticks dropped), each its text up to the next
    heading of any level; lines inside code fences are never headings."""
    found: dict[str, str] = {}
    heading, body, fenced = "", [], False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and re.match(r"#{1,6} ", line):
            found[heading] = "\n".join(body)
            heading, body = line.lstrip("#").strip().replace("`", ""), []
            continue
        body.append(line)
    found[heading] = "\n".join(body)
    return found


PARSER = build_parser()
COMMANDS = {" ".join(path): parser for path, parser in commands(PARSER) if path}


def test_the_walk_finds_the_commands() -> None:
    """The walk reaches nested commands, so the tests below check something."""
    assert {"prices", "price-log", "ledger", "ledger credit", "budget status",
            "completion"} <= set(COMMANDS)
    assert "--skip-bad" in options(COMMANDS["price-log"])


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_has_a_section_naming_its_options(command: str) -> None:
    """Each command path has a heading of its own in cli.md, and its section names every
    option of the command (and every value of a closed choice)."""
    page = sections(CLI_PAGE.read_text(encoding="utf-8"))
    assert command in page, f"docs/reference/cli.md has no section '## {command}'"
    parser = COMMANDS[command]
    missing = [word for word in options(parser) + choices(parser)
               if word not in HELP and not mentions(page[command], word)]
    assert [] == missing, f"the section '{command}' of docs/reference/cli.md does not name these"


def test_every_option_string_is_on_the_page() -> None:
    """-h, --help, --version and every option of every command appear on the page."""
    text = CLI_PAGE.read_text(encoding="utf-8")
    every = {word for _, parser in commands(PARSER) for word in options(parser)}
    assert [] == sorted(word for word in every if not mentions(text, word))


def test_the_page_names_no_option_that_does_not_exist() -> None:
    """Every --option the page names is an option of some command: no documented flag that
    the command line would refuse."""
    text = CLI_PAGE.read_text(encoding="utf-8")
    every = {word for _, parser in commands(PARSER) for word in options(parser)}
    named = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", text))
    assert [] == sorted(named - every)


def api_references() -> list[tuple[str, str]]:
    """Every ``::: dotted.name`` of the docs, with the page that has it."""
    return [(str(page.relative_to(DOCS)), match.group(1))
            for page in sorted(DOCS.rglob("*.md"))
            for match in re.finditer(r"^:::\s+(\S+)", page.read_text(encoding="utf-8"), re.M)]


def test_the_docs_have_api_references() -> None:
    assert len(api_references()) > 50


@pytest.mark.parametrize(("page", "name"), api_references())
def test_every_api_reference_resolves(page: str, name: str) -> None:
    """A ``:::`` name imports: a renamed or removed name fails here, not only in mkdocs."""
    assert pkgutil.resolve_name(name) is not None, f"{page}: ::: {name}"


def test_the_guide_runs_the_query_the_tests_run() -> None:
    """docs/examples/pricing-query.sql, which the guide includes and runs, is PRICING_QUERY
    (tested against price_usage in SQLite and DuckDB), word for word."""
    text = (DOCS / "examples" / "pricing-query.sql").read_text(encoding="utf-8")
    assert PRICING_QUERY == text.rstrip().removesuffix(";")


@pytest.mark.parametrize(("guide", "example"), [("ledger.md", "history.py"),
                                                ("ledger.md", "async_ledger.py"),
                                                ("budgets.md", "budgets.py")])
def test_the_guides_python_examples_print_what_they_say(guide: str, example: str,
                                                        tmp_path: Path) -> None:
    """A guide's Python example, run in an empty folder, prints the text the guide shows
    under it (the block after "prints")."""
    import subprocess
    import sys

    text = (DOCS / "guides" / guide).read_text(encoding="utf-8")
    included = f'--8<-- "docs/examples/{example}"\n```\n\nprints\n\n```text\n'
    assert included in text
    shown = text.split(included, 1)[1].split("```", 1)[0]
    done = subprocess.run([sys.executable, str(DOCS / "examples" / example)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, check=False)
    assert (0, "") == (done.returncode, done.stderr)
    assert shown == done.stdout
