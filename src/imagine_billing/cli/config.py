"""Defaults from a configuration file of the current directory: ``imagine-billing.toml``, or
the ``[tool.imagine-billing]`` table of ``pyproject.toml``.

Keys: ``db`` (the ledger: a SQLite file or a PostgreSQL URL), ``ledger`` (which ledger of
a PostgreSQL database, for ``--ledger``), ``table`` (a price document),
``book`` (a price document, or a list of them: the versions of a book), ``rate`` (the
price of one token, a TOML number or decimal text, read exactly: ``rate = 0.012`` is the
decimal 0.012, never a float) and ``currency`` (an ISO 4217 code). An example::

    # imagine-billing.toml
    db = "tokens.db"
    book = ["prices/1.0.0.json", "prices/1.1.0.json"]
    rate = 0.012
    currency = "EUR"

Precedence, for each key: the command-line option, then its environment variable
(``IMAGINE_BILLING_DB``, ``_TABLE``, ``_BOOK``), then ``imagine-billing.toml``, then
``pyproject.toml``, then the built-in default. ``table`` and ``book`` are one setting, the
prices: the first place that gives either gives them (a file that gives both is refused).
Relative paths are relative to the current directory, where the files are. A file that is
not TOML, a key that is not known or a value of the wrong type is one error line naming the
file and the key (exit 2).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

import attrs

from imagine_billing._checks import currency_code, shown

__all__ = ["CONFIG_FILE", "KEYS", "PYPROJECT", "Config", "Setting", "load_config"]

CONFIG_FILE = "imagine-billing.toml"
PYPROJECT = "pyproject.toml"
KEYS = ("book", "currency", "db", "ledger", "rate", "table")
"""The keys a configuration may set."""


@attrs.frozen
class Setting:
    """A value of the configuration and where it was read, such as ``imagine-billing.toml:
    rate`` (for error messages)."""

    value: Any
    where: str


@attrs.frozen
class Config:
    """The settings of the configuration files (``None``: not set in either)."""

    db: Setting | None = None
    ledger: Setting | None = None
    """A `Setting` whose value is the name of a ledger of a PostgreSQL database."""
    table: Setting | None = None
    book: Setting | None = None
    """A `Setting` whose value is a tuple of paths."""
    rate: Setting | None = None
    """A `Setting` whose value is decimal text."""
    currency: Setting | None = None


def load_config(folder: str | os.PathLike[str] | None = None) -> Config:
    """The configuration of ``folder`` (default: the current directory).

    Raises:
        CommandLineError: A file cannot be read or is not TOML, or a key is unknown or of
            the wrong type: the message names the file and the key.
    """
    base = os.fspath(folder if folder is not None else os.curdir)
    settings: dict[str, Setting] = {}
    for name, table in ((PYPROJECT, ("tool", "imagine-billing")), (CONFIG_FILE, ())):
        found = _read(os.path.join(base, name), name, table)
        if found and ({"table", "book"} & found.keys()):
            # The prices are one setting: a file that gives them replaces both.
            settings.pop("table", None)
            settings.pop("book", None)
        settings.update(found)
    return Config(**settings)


def _read(path: str, name: str, table: tuple[str, ...]) -> dict[str, Setting]:
    """The settings of one file (``table``: the path of the table in it), checked."""
    import tomllib

    from imagine_billing.cli.arguments import CommandLineError

    try:
        with open(path, "rb") as file:
            document = tomllib.load(file, parse_float=Decimal)
    except FileNotFoundError:
        return {}
    except OSError as error:
        raise CommandLineError(f"{name}: cannot read it: {error.strerror or error}") from None
    except tomllib.TOMLDecodeError as error:
        raise CommandLineError(f"{name}: not valid TOML: {error}") from None
    section: object = document
    for part in table:
        section = section.get(part) if isinstance(section, dict) else None
    if section is None:
        return {}
    prefix = f"{name}: {'.'.join(table)}" if table else name
    if not isinstance(section, dict):
        raise CommandLineError(f"{prefix}: expected a table of settings, such as "
                               f'db = "tokens.db" (got {_shown(section)})')
    return _checked(section, f"{prefix}." if table else f"{name}: ")


def _checked(section: Mapping[str, Any], where: str) -> dict[str, Setting]:
    from imagine_billing.cli.arguments import CommandLineError

    unknown = sorted(set(section) - set(KEYS))
    if unknown:
        raise CommandLineError(f"{where}{unknown[0]}: unknown key (known: {', '.join(KEYS)})")
    if "table" in section and "book" in section:
        raise CommandLineError(f"{where}table and book: give one of them (the prices are "
                               "one table, or the versions of one book)")
    settings = {}
    for key, value in section.items():
        check = _CHECKS[key]
        problem, checked = check(value)
        if problem:
            raise CommandLineError(f"{where}{key}: expected {problem} (got {_shown(value)})")
        settings[key] = Setting(checked, f"{where}{key}")
    return settings


def _path(value: object) -> tuple[str, Any]:
    ok = isinstance(value, str) and value.strip() != ""
    return ("" if ok else "a path (text, not empty)"), value


def _book(value: object) -> tuple[str, Any]:
    paths: list[object] = [value] if isinstance(value, str) else \
        value if isinstance(value, list) else []
    if paths and all(isinstance(p, str) and p.strip() for p in paths):
        return "", tuple(paths)
    return "a path, or a list of paths, such as [\"1.0.0.json\", \"1.1.0.json\"]", None


def _rate(value: object) -> tuple[str, Any]:
    problem = "the price of one token, a decimal number >= 0 such as 0.012"
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
        return problem, None
    try:
        number = Decimal(value)
    except InvalidOperation:
        return problem, None
    if not number.is_finite() or number < 0:
        return problem, None
    return "", str(value)


def _currency(value: object) -> tuple[str, Any]:
    return ("" if currency_code(value) else "an ISO 4217 code such as \"USD\""), value


def _ledger(value: object) -> tuple[str, Any]:
    ok = isinstance(value, str) and value.strip() != "" and value.isprintable()
    return ("" if ok else "the name of a ledger (text, not empty), such as \"team-a\""), value


_CHECKS = {"book": _book, "currency": _currency, "db": _path, "ledger": _ledger, "rate": _rate,
           "table": _path}


def _shown(value: object) -> str:
    """A TOML value as the file spells it, cut short."""
    if isinstance(value, bool):
        text = str(value).lower()
    elif isinstance(value, str):
        return shown(value)  # a basic string's spelling, what does not print escaped
    elif isinstance(value, dict):
        text = "a table"
    else:
        text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."
