"""The exceptions of imagine-billing.

`BillingError` is the root of them all; each leaf also subclasses the builtin it resembles
(`PriceSchemaError` is a `ValueError`, `UnknownStyleError` a `LookupError`), so callers can catch
either. Every error keeps its facts as attributes and builds its message from them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import attrs

__all__ = [
    "AmbiguousStyleError",
    "AmountTooLarge",
    "ApiError",
    "BadRecordError",
    "BadTagError",
    "BillingError",
    "BudgetConflict",
    "BudgetExceeded",
    "DuplicateRequest",
    "HoldClosed",
    "IdempotencyConflict",
    "InsufficientTokens",
    "LedgerCorrupted",
    "LedgerStoreError",
    "NoPriceTableError",
    "OutOfOrder",
    "PolicyError",
    "PriceSchemaError",
    "PriceSourceError",
    "Problem",
    "UnknownBudget",
    "UnknownEntry",
    "UnknownStyleError",
    "UnpricedError",
]


class BillingError(Exception):
    """The root of every error this library raises on purpose.

    Every error survives `pickle` and `copy.deepcopy` with its type, message and attributes
    (to a worker process and back, say): it is rebuilt from what it holds, not by calling
    its constructor again, whose arguments are not what ``args`` keeps (``args`` holds the
    message).
    """

    def __reduce__(self) -> tuple[Any, ...]:
        return _rebuilt, (type(self), self.args), self.__dict__


def _rebuilt(cls: type[BillingError], args: tuple[Any, ...]) -> BillingError:
    """An error of ``cls`` holding ``args``, its constructor not called: `pickle` then
    restores its attributes (see `BillingError`)."""
    error = cls.__new__(cls, *args)
    error.args = args
    return error


@attrs.frozen(order=True)
class Problem:
    """One problem found in a price document.

    Example: ``Problem("/styles/flux-dev/cost", "must be an integer >= 0 or null (got 1.5)")``.
    """

    path: str
    """A JSON pointer (RFC 6901) to the offending value; ``""`` is the whole document."""
    message: str
    """What is wrong, naming the value found and what was expected."""
    source: str | None = None
    """The file (or other source) the document came from, when known."""

    def __str__(self) -> str:
        where = self.path or "(document)"
        prefix = f"{self.source}: " if self.source else ""
        return f"{prefix}{where}: {self.message}"


class PriceSchemaError(BillingError, ValueError):
    """A price document (or book of them) is invalid; `.problems` lists every problem found."""

    def __init__(self, problems: Iterable[Problem], source: str | None = None) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        self.source = source
        super().__init__(self._message())

    @property
    def summary(self) -> str:
        """One line: what is invalid, how many problems, and the first of them."""
        count = len(self.problems)
        what = f"price table {self.source}" if self.source else "price table"
        head = f"{what} is invalid ({count} problem{'s' if count != 1 else ''})"
        return f"{head}: {self._show(self.problems[0])}" if self.problems else head

    def _show(self, problem: Problem) -> str:
        return str(attrs.evolve(problem, source=None) if problem.source == self.source else problem)

    def _message(self) -> str:
        if len(self.problems) <= 1:
            return self.summary
        lines = [f"  {self._show(p)}" for p in self.problems]
        return self.summary.split(": ", 1)[0] + ":\n" + "\n".join(lines)


class PriceSourceError(PriceSchemaError):
    """A price document could not be read at all: a missing file, unreadable bytes, not JSON."""


class NoPriceTableError(BillingError, LookupError):
    """No table of a `PriceBook` is in force at the moment asked about."""

    def __init__(self, when: object, first: object) -> None:
        self.when = when
        self.first = first
        super().__init__(f"no price table is in force at {when}: the first takes effect at {first}")


class UnknownStyleError(BillingError, LookupError):
    """A style id is not in the price table; `.suggestions` holds close matches."""

    def __init__(
        self, style: object, known: Iterable[str], *, kind: str = "style", version: str = ""
    ) -> None:
        from imagine_billing._checks import close_names, within

        self.style = style
        self.kind = kind
        self.known: tuple[str, ...] = tuple(sorted(known))
        self.suggestions: tuple[str, ...] = (
            close_names(style, self.known, 3) if isinstance(style, str) else ()
        )
        table = f" of price table {version}" if version else ""
        message = f"unknown {kind} {style!r}{table}"
        if self.suggestions:
            message += f"; did you mean {_or_list(self.suggestions)}?"
        else:
            message += f"; expected one of: {within(self.known)}"
        super().__init__(message)

    def __str__(self) -> str:
        # LookupError would wrap the message in quotes (as KeyError does); keep it plain.
        return str(self.args[0])


class UnpricedError(BillingError, LookupError):
    """A style or operation exists but has no known price (its cost is null)."""

    def __init__(self, style: str, *, kind: str = "style", version: str = "") -> None:
        self.style = style
        self.kind = kind
        table = f" in price table {version}" if version else ""
        patch = (
            f'{{"styles": {{"{style}": {{"cost": N}}}}}}'
            if kind == "style"
            else f'{{"operations": {{"{style}": {{"cost": N}}}}}}'
        )
        super().__init__(
            f"{kind} {style!r} has no published price{table}; supply one with "
            f"table.with_overrides({patch}, version=...) or a table file of your own"
        )


class InsufficientTokens(BillingError):
    """An operation needs more tokens than are available."""

    def __init__(self, needed: int, available: int) -> None:
        self.needed = needed
        self.available = available
        self.shortfall = needed - available
        super().__init__(
            f"not enough tokens: {needed} needed, {available} available "
            f"(short by {needed - available})"
        )


class BudgetExceeded(BillingError):
    """A hard budget would be exceeded by a hold or debit."""

    def __init__(self, budget: str, needed: int, remaining: int) -> None:
        self.budget = budget
        self.needed = needed
        self.remaining = remaining
        super().__init__(
            f"budget {budget!r} would be exceeded: {needed} needed, {remaining} remaining"
        )


class IdempotencyConflict(BillingError):
    """An idempotency key was reused for a write with different content."""

    def __init__(self, key: str, detail: str = "") -> None:
        self.key = key
        super().__init__(self._message(detail))

    def _message(self, detail: str) -> str:
        return (f"idempotency key {self.key!r} was already used for a different write"
                + (f": {detail}" if detail else ""))


class BudgetConflict(IdempotencyConflict):
    """A budget of that name is already in the ledger with other settings (``.existing``)."""

    def __init__(self, name: str, existing: str = "") -> None:
        self.name = name
        self.existing = existing
        super().__init__(name, existing)  # the budget's name is the key of its entry

    def _message(self, detail: str) -> str:
        return (f"a budget named {self.name!r} already exists with other settings"
                + (f": {detail}" if detail else ""))


class DuplicateRequest(BillingError):
    """A request whose ``Idempotency-Key`` already succeeded, or is being sent, was not sent again.

    The Imagine API documents no idempotency: each request it receives is a new generation,
    billed again. So the metered transport never resends a key whose call succeeded
    (``in_flight`` false; ``entry`` is the ledger entry that spent its ``tokens``), nor one
    that another attempt is sending right now (``in_flight`` true; ``entry`` is its open hold,
    when the ledger has one).
    """

    def __init__(
        self, key: str, *, in_flight: bool, entry: int | None = None, tokens: int = 0
    ) -> None:
        self.key = key
        self.in_flight = in_flight
        self.entry = entry
        self.tokens = tokens
        if in_flight:
            held = f" (hold {entry} is open)" if entry is not None else ""
            message = (
                f"a request with Idempotency-Key {key!r} is already being sent{held}: it is not "
                "sent twice; retry once that attempt has settled (the hold of a process that "
                "died is released by expire_holds() when it expires)"
            )
        else:
            message = (
                f"the request with Idempotency-Key {key!r} already succeeded (ledger entry "
                f"{entry}, {tokens} tokens): it is not sent again, as the API would bill a new "
                "generation; use a new key for a new call"
            )
        super().__init__(message)


class AmbiguousStyleError(BillingError, ValueError):
    """A request names several different styles, so its price is not known before sending.

    ``style=imagine-turbo`` and ``style=flux-dev`` in one form: the API generates one of them
    (the stand-in server, like most form parsers, takes the last), the ledger cannot know which.
    """

    def __init__(self, values: Sequence[str]) -> None:
        self.values: tuple[str, ...] = tuple(values)
        shown = ", ".join(repr(v) for v in self.values)
        super().__init__(
            f"the request names {len(self.values)} different styles ({shown}): expected one "
            "style field (or repeated identical ones), so that the style charged is the one "
            "generated"
        )


class LedgerCorrupted(BillingError):
    """A ledger's hash chain does not verify; `.entry` names the first bad entry."""

    def __init__(self, entry: object, reason: str) -> None:
        self.entry = entry
        self.reason = reason
        super().__init__(f"ledger corrupted at entry {entry}: {reason}")


class BadRecordError(BillingError, ValueError):
    """A record of a usage log (or a call list) is bad; names the file and line.

    ``line`` 0 is the whole file (one that cannot be read): the message then names the file
    alone, ``"nope.csv: cannot read the file: ..."``, not ``"nope.csv:0: ..."``.
    """

    def __init__(self, source: str, line: int, reason: str, detail: str) -> None:
        self.source = source
        self.line = line
        self.reason = reason
        """A short machine-readable reason, such as ``"unknown-style"`` or ``"bad-count"``."""
        self.detail = detail
        super().__init__(f"{source}:{line}: {detail}" if line else f"{source}: {detail}")


class BadTagError(BillingError, ValueError):
    """A tag, or a budget's scope, holds text no total can be kept by: a control character
    (a tab, a newline, a NUL...) or a lone surrogate, in its name or its value.

    ``BadTagError("a\\tb", "x", "name", "\\t")``: "tag 'a\\tb'='x': its name holds the
    control character U+0009; tag names and values must be printable text (no tabs,
    newlines, NULs or other control characters)".
    """

    def __init__(self, name: str, value: str, part: str, char: str) -> None:
        self.name = name
        self.value = value
        self.part = part
        """Which of the two holds the character: ``"name"`` or ``"value"``."""
        self.char = char
        """The first such character."""
        if "\ud800" <= char <= "\udfff":
            what = (f"a lone surrogate U+{ord(char):04X}, so it is not valid Unicode text "
                    "(as from bytes that are not UTF-8)")
        else:
            what = f"the control character U+{ord(char):04X}"
        super().__init__(
            f"tag {_trimmed(name)}={_trimmed(value)}: its {part} holds {what}; tag names and "
            "values must be printable text (no tabs, newlines, NULs or other control "
            "characters)")


def _trimmed(text: str) -> str:
    """``repr(text)``, cut short if long."""
    from imagine_billing._checks import shortened

    return shortened(repr(text))


class UnknownEntry(BillingError, LookupError):
    """No ledger entry (or hold) has that id or key."""

    def __init__(self, ref: object, kind: str = "entry") -> None:
        self.ref = ref
        self.kind = kind
        super().__init__(self._message())

    def _message(self) -> str:
        return f"no {self.kind} with id or key {self.ref!r}"

    def __str__(self) -> str:
        return str(self.args[0])


class UnknownBudget(UnknownEntry):
    """No budget of the ledger has that name; `.known` lists the names it has.

    ``UnknownBudget("nope", ["a", "b"])``: "no budget named 'nope' (budgets: a, b)".
    """

    def __init__(self, name: object, known: Iterable[str] = ()) -> None:
        self.known: tuple[str, ...] = tuple(known)
        super().__init__(name, "budget")

    def _message(self) -> str:
        listed = f"budgets: {', '.join(self.known)}" if self.known else "the ledger has none"
        return f"no budget named {self.ref!r} ({listed})"


class PolicyError(BillingError, ValueError):
    """An update policy is invalid (an unknown rule name, a bad ratio)."""


class ApiError(BillingError):
    """An error answer of the Imagine API.

    ``ApiError(402, 1101, "PaymentRequired", "Not enough tokens...")`` is the API saying the
    account is out of tokens; `insufficient_tokens` is then true.
    """

    def __init__(self, status: int, code: int | None, error: str, message: str) -> None:
        self.status = status
        """The HTTP status of the answer (402)."""
        self.code = code
        """The API's error code (1101), or None when the body gave none that is a number."""
        self.error = error
        """The API's error name ("PaymentRequired"), else the HTTP reason phrase."""
        self.message = message
        """The API's message, else the start of the body's text."""
        super().__init__(f"Imagine API error {status} (code {code}, {error}): {message}")

    @property
    def insufficient_tokens(self) -> bool:
        """Whether the answer means "not enough tokens": status 402 (v2) or 424 (legacy
        v1), or code 1101, whatever the status."""
        return self.status in (402, 424) or self.code == 1101


def _or_list(items: Sequence[str]) -> str:
    quoted = [repr(i) for i in items]
    if len(quoted) == 1:
        return quoted[0]
    return ", ".join(quoted[:-1]) + " or " + quoted[-1]


class HoldClosed(BillingError):
    """A hold was already captured, voided or expired, so it cannot be captured or voided again.

    A replay of the very write that closed it (same operation, same key) is not an error: it
    returns the original entry.
    """

    def __init__(self, hold: object, status: str) -> None:
        self.hold = hold
        self.status = status
        if status == "lapsed":
            # Past its expires_at but not yet released by expire_holds.
            message = (f"hold {hold} has expired: it can no longer be captured; void it, or "
                       "expire holds (`ledger expire`), to release its tokens")
        else:
            message = f"hold {hold} is already {status}: it can no longer be captured or voided"
        super().__init__(message)


class AmountTooLarge(BillingError, ValueError):
    """A capture or refund asks for more tokens than its hold or entry allows.

    Example: ``capture(hold of 15, tokens=20)`` names ``requested=20, limit=15``.
    """

    def __init__(self, what: str, ref: object, requested: int, limit: int) -> None:
        self.what = what
        self.ref = ref
        self.requested = requested
        self.limit = limit
        super().__init__(
            f"{what} of {requested} tokens is more than entry {ref} allows ({limit} at most)"
        )


class OutOfOrder(BillingError, ValueError):
    """A back-dated write (``at=``) would come before an entry that moves tokens.

    A ledger's token history stays in time order, so that its balance at any past moment
    is the one it had then: ``debit(5, key="k", at=<Nov 1>)`` after a debit of Nov 20 names
    ``entry=<its id>``, ``kind="debit"`` and both times (RFC 3339 text).
    """

    def __init__(self, at: str, entry: int, kind: str, entry_at: str) -> None:
        self.at = at
        self.entry = entry
        self.kind = kind
        self.entry_at = entry_at
        article = "an" if kind[:1] in ("a", "e", "i", "o", "u") else "a"
        super().__init__(
            f"at {at} is earlier than entry {entry} ({article} {kind} at {entry_at}): a "
            "back-dated "
            "write comes after every entry that moves tokens, so that the ledger's history "
            "stays in time order"
        )


class LedgerStoreError(BillingError, OSError):
    """A ledger's store cannot be opened or used (not a ledger file, a newer schema, a
    read-only or damaged file...). ``damaged`` is true when the file itself is damaged
    (SQLite: "database disk image is malformed"): `Ledger.verify` reports that as
    `LedgerCorrupted`."""

    def __init__(self, where: object, reason: str, *, damaged: bool = False) -> None:
        self.where = where
        self.reason = reason
        self.damaged = damaged
        super().__init__(f"ledger {where}: {reason}")
