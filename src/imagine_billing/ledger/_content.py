"""What a replay checks of an entry's content besides its hash and amounts: its key, tags and
styles are ones the ledger writes.

A hash proves an entry unchanged since its hash was computed, not that the ledger wrote it:
a chain whose hashes were recomputed over content the ledger refuses (an empty key, a tag
with a control character, a style of -985 tokens on a 15-token debit), in a file changed
behind the ledger's back or in an archive crafted for `import`, is found here, naming the
entry. The rules are the writer's (`imagine_billing.ledger._draft`): a key is a non-empty
string; tags are the canonical JSON of printable ``name=value`` strings; styles are ``[]``
or the canonical JSON of ``[style or null, tokens >= 1]`` pairs, one per style, in the
writer's order, whose tokens sum to the entry's.

Ledgers repeat the same few tag sets and style splits, so each text found good is
remembered (a bounded set) and checked once.
"""

from __future__ import annotations

import json

from imagine_billing._checks import shown_repr
from imagine_billing.errors import BadTagError
from imagine_billing.ledger.model import _UNFIT, canonical, check_tag

__all__ = ["ContentCheck"]

_REMEMBERED = 4096
"""How many good tag and style texts each check remembers before it starts afresh."""


class ContentCheck:
    """Checks entries' keys, tags and styles (see the module); one per replay."""

    def __init__(self) -> None:
        self._tags: set[object] = {"{}"}
        self._styles: dict[object, int | None] = {"[]": None}

    def problem(self, key: object, tokens: int, tags: object, styles: object) -> str | None:
        """Why an entry of ``tokens`` with this stored key, tags and styles is not one the
        ledger writes; ``None`` when it is."""
        if type(key) is not str or not key:
            return f"bad key {shown_repr(key)} (a key is a non-empty string)"
        if tags not in self._tags:
            why = _tags_problem(tags)
            if why is not None:
                return why
            _remember(self._tags, tags)
        total = self._styles.get(styles, -1)
        if total == -1:
            why_or_total = _styles_problem(styles)
            if isinstance(why_or_total, str):
                return why_or_total
            total = why_or_total
            if len(self._styles) >= _REMEMBERED:
                self._styles.clear()
            self._styles[styles] = total
        if total is not None and total != tokens:
            return (f"its styles {shown_repr(styles)} add up to {total} tokens, not its "
                    f"{tokens}")
        return None


def _remember(found: set[object], text: object) -> None:
    if len(found) >= _REMEMBERED:
        found.clear()
        found.add("{}")
    found.add(text)


def _loaded(text: object) -> object:
    """The JSON value of a stored text; a `ValueError` when it is none."""
    if not isinstance(text, str):
        raise ValueError
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError from None


def _tags_problem(text: object) -> str | None:
    try:
        tags = _loaded(text)
    except ValueError:
        tags = None
    if not isinstance(tags, dict) or not all(
            isinstance(name, str) and isinstance(value, str) for name, value in tags.items()):
        return f"bad tags {shown_repr(text)} (a JSON object of strings)"
    try:
        for name, value in tags.items():
            check_tag(name, value)
    except BadTagError as error:
        return f"bad tags {shown_repr(text)}: {error}"
    if canonical(tags) != text:
        return f"bad tags {shown_repr(text)} (not in the ledger's canonical form)"
    return None


def _styles_problem(text: object) -> str | int | None:
    """Why ``text`` is not a styles text the ledger writes; else the tokens its pairs add up
    to (``None`` for ``[]``)."""
    try:
        styles = _loaded(text)
    except ValueError:
        styles = None
    expected = ("a JSON list of [style or null, tokens >= 1] pairs, one per style, "
                "null first then by name")
    if not isinstance(styles, list):
        return f"bad styles {shown_repr(text)} ({expected})"
    names: list[str] = []
    total = 0
    for pair in styles:
        if not (isinstance(pair, list) and len(pair) == 2
                and (pair[0] is None or (isinstance(pair[0], str) and pair[0]
                                         and _UNFIT.search(pair[0]) is None))
                and type(pair[1]) is int and pair[1] >= 1):
            return f"bad styles {shown_repr(text)} ({expected})"
        names.append("" if pair[0] is None else "\x00" + pair[0])
        total += pair[1]
    if names != sorted(set(names)) or canonical(styles) != text:
        return f"bad styles {shown_repr(text)} ({expected})"
    return total if styles else None
