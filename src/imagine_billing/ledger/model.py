"""The ledger's value objects: `Entry`, `Hold` and `Balance`, and the entry's stored form.

Times are aware UTC datetimes in the objects and whole **microseconds since the Unix epoch**
(UTC) in stores and in the hashed content, so they round-trip exactly. An entry's hash is the
sha256 of a canonical JSON array: the previous entry's hash (64 zeros for the first entry),
then the entry's stored fields in a fixed order (`Entry.to_row`, without the hash itself).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, Literal

import attrs

from imagine_billing._checks import rfc3339, stamp
from imagine_billing.errors import BadTagError

__all__ = [
    "GENESIS",
    "KINDS",
    "Balance",
    "Entry",
    "EntryKind",
    "Hold",
    "HoldStatus",
    "Row",
    "canonical",
    "budget_key",
    "chain_hash",
    "check_tag",
    "entry_hash",
    "fingerprint_of",
    "from_micros",
    "reduce_fields",
    "styles_text",
    "tags_text",
    "to_micros",
]

GENESIS = "0" * 64
"""The "previous hash" of the first entry of every ledger."""

EntryKind = Literal["credit", "hold", "capture", "void", "expire", "debit", "refund", "note",
                    "budget", "observe"]
HoldStatus = Literal["open", "captured", "voided", "expired"]

KINDS: tuple[str, ...] = (
    "credit", "hold", "capture", "void", "expire", "debit", "refund", "note", "budget",
    "observe",
)
"""Every kind of entry, in the order the docs list them."""

Row = tuple[Any, ...]
"""An entry as stored: the fields of `Entry.to_row`, in that order."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                         allow_nan=False)
_MAKE_ENCODER = getattr(json.encoder, "c_make_encoder", None)
_C_ENCODER = (
    None if _MAKE_ENCODER is None
    else _MAKE_ENCODER(None, _JSON.default, json.encoder.encode_basestring, None, ":", ",",
                       True, False, False)
)


def canonical(value: list[Any] | dict[str, Any]) -> str:
    """Canonical JSON of a list or dict: keys sorted, no spaces, UTF-8 as is, no NaN.

    The same text as ``json.dumps(value, sort_keys=True, separators=(",", ":"),
    ensure_ascii=False, allow_nan=False)``, through CPython's C encoder directly when it has
    one (the hash chain encodes every entry, so the per-call set-up of ``json.dumps`` shows).
    """
    if _C_ENCODER is None:  # pragma: no cover - CPython always has it
        return _JSON.encode(value)
    return "".join(_C_ENCODER(value, 0))


def to_micros(when: datetime) -> int:
    """Whole microseconds since the Unix epoch of an aware datetime.

    Raises:
        ValueError: ``when`` is naive (has no time zone).
    """
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"time {when!r} is naive: give an aware datetime (in UTC)")
    delta = when - _EPOCH  # every write converts its time: no timedelta division here
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(micros: int) -> datetime:
    """The aware UTC datetime of `to_micros`' number (``from_micros(0)`` is 1970-01-01Z)."""
    return _EPOCH + timedelta(0, 0, micros)


def chain_hash(previous: str, row: Row) -> str:
    """The hash of an entry: sha256 of ``[previous, *row]`` as canonical JSON (hex).

    Args:
        previous: The hash of the entry before (`GENESIS` for the first).
        row: The entry's stored fields without its hash (``Entry.to_row()[:-1]``).
    """
    return hashlib.sha256(_chain_text(previous, row).encode("utf-8")).hexdigest()


def entry_hash(previous: str, stored: Row) -> str:
    """What the hash of a stored row (`Entry.to_row`, its own hash last) should be:
    ``chain_hash(previous, stored[:-1])``, for `verify`, which hashes every entry.

    The same text as `_chain_text` writes, without slicing the row, and without the quoting
    function for ``previous`` and the fingerprint when they are ASCII letters and digits (two
    hashes, as a rule): quoting 64 characters costs more than all the rest of the text.
    """
    if len(stored) == 14:
        (id_, kind, key, tokens, at, ref, memo, tags, styles, version, digest, expires,
         fingerprint, _) = stored
        if (type(id_) is int and type(tokens) is int and type(at) is int
                and (ref is None or type(ref) is int)
                and (expires is None or type(expires) is int)
                and type(fingerprint) is str and (previous + fingerprint).encode().isalnum()):
            q = _QUOTE
            try:
                text = (f'["{previous}",{id_},{q(kind)},{q(key)},{tokens},{at},'
                        f"{'null' if ref is None else ref},{'null' if memo is None else q(memo)},"
                        f"{q(tags)},{q(styles)},{'null' if version is None else q(version)},"
                        f"{'null' if digest is None else q(digest)},"
                        f'{"null" if expires is None else expires},"{fingerprint}"]')
            except TypeError:
                pass  # a field that is no string: `chain_hash` says what it makes of it
            else:
                return _SHA256(text.encode()).hexdigest()
    return chain_hash(previous, stored[:-1])


_SHA256 = hashlib.sha256
_QUOTE = json.encoder.encode_basestring
"""The function the canonical encoder quotes strings with (UTF-8 as is, see `canonical`)."""


def _chain_text(previous: str, row: Row) -> str:
    """``canonical([previous, *row])``, written out directly for a row of the stored types.

    Every write and every entry of `verify` is hashed, and this is the hot part: the same
    text, by construction (strings quoted by the encoder's own function, ints as ``repr``
    gives them, ``null`` for None), without the encoder's generic walk. Any other row
    (one read from a tampered file, say) goes through `canonical` itself.
    """
    if len(row) == 13:
        id_, kind, key, tokens, at, ref, memo, tags, styles, version, digest, expires, \
            fingerprint = row
        # Numbers must be ints (a bool or a float would be written otherwise); the quoting
        # function itself refuses anything but a string.
        if (type(id_) is int and type(tokens) is int and type(at) is int
                and (ref is None or type(ref) is int)
                and (expires is None or type(expires) is int)):
            q = _QUOTE
            try:
                return (f"[{q(previous)},{id_},{q(kind)},{q(key)},{tokens},{at},"
                        f"{'null' if ref is None else ref},{'null' if memo is None else q(memo)},"
                        f"{q(tags)},{q(styles)},{'null' if version is None else q(version)},"
                        f"{'null' if digest is None else q(digest)},"
                        f"{'null' if expires is None else expires},{q(fingerprint)}]")
            except TypeError:
                pass  # a field that is no string: the encoder says what it makes of it
    return canonical([previous, *row])


_UNFIT = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
"""What no tag name or value may hold: C0 and C1 control characters, DEL, lone surrogates.
SQLite's JSON functions, which every tag total and budget scope goes through, cut text at a
NUL and cannot name a key holding a control character."""


def check_tag(name: str, value: str) -> None:
    """Raise `BadTagError` unless the tag ``name=value`` is printable text (both strings).

    ``check_tag("project", "shop")`` passes; ``check_tag("a\\tb", "x")`` raises (a tab).
    """
    for part, text in (("name", name), ("value", value)):
        found = _UNFIT.search(text)
        if found is not None:
            raise BadTagError(name, value, part, found.group())


def fingerprint_of(**request: Any) -> str:
    """An entry's ``fingerprint``: sha256 (hex) of the canonical JSON of its request."""
    return hashlib.sha256(canonical(request).encode("utf-8")).hexdigest()


def budget_key(name: str, taken: Callable[[str], bool]) -> str:
    """The key of the ``budget`` entry that adds budget ``name``: ``"budget:<name>"``, or
    ``"budget:<name>:2"``, ``":3"``... while ``taken`` says another entry has it."""
    key = base = f"budget:{name}"
    suffix = 1
    while taken(key):
        suffix += 1
        key = f"{base}:{suffix}"
    return key


def tags_text(tags: Mapping[str, str]) -> str:
    """The stored form of tags: canonical JSON of the mapping."""
    return canonical(dict(tags)) if tags else "{}"


def styles_text(styles: tuple[tuple[str | None, int], ...]) -> str:
    """The stored form of styles: canonical JSON of ``[[style, tokens], ...]``."""
    if len(styles) == 1:
        style, tokens = styles[0]
        if style is None and type(tokens) is int:
            return f"[[null,{tokens}]]"  # a plain amount: most entries
    return canonical([list(s) for s in styles]) if styles else "[]"


def _parse_time(text: object) -> datetime | None:
    if text is None:
        return None
    if not isinstance(text, str):
        raise TypeError(f"time must be RFC 3339 text (got {text!r})")
    when = rfc3339(text)
    if when is None:
        raise ValueError(f"time {text!r} is not RFC 3339 (such as 2026-07-01T12:00:00Z)")
    if when.tzinfo is None:
        raise ValueError(f"time {text!r} has no time zone")
    try:
        return when.astimezone(UTC)
    except OverflowError:  # year 1 ahead of UTC, year 9999 behind it
        raise ValueError(f"time {text!r} is out of range in UTC") from None


_NO_TAGS: Mapping[str, str] = MappingProxyType({})


def _frozen_tags(tags: Mapping[str, str] | None) -> Mapping[str, str]:
    if not tags:
        return _NO_TAGS  # most entries: one shared read-only empty mapping
    return MappingProxyType(dict(sorted(tags.items())))


def reduce_fields(self: Any) -> tuple[Any, ...]:
    """``__reduce__`` for an attrs class holding read-only mappings, which cannot be pickled:
    rebuild it from its fields, each read-only mapping as a plain dict (the class' converters
    make it read-only again). Makes `pickle` and `copy.deepcopy` work; see `Entry`."""
    cls = type(self)
    return cls, tuple(
        dict(value) if isinstance(value, MappingProxyType) else value
        for value in (getattr(self, field.name) for field in attrs.fields(cls))
    )


def _styles_tuple(styles: Any) -> tuple[tuple[str | None, int], ...]:
    if not styles:
        return ()
    return tuple((style, int(tokens)) for style, tokens in styles)


@attrs.frozen
class Entry:
    """One line of the ledger: append-only, hash-chained to the line before it.

    The effect of each kind on the balance, for ``tokens`` = t:

    - ``credit``: posted + t.
    - ``debit``: posted - t (spend).
    - ``hold``: held + t (a reservation; available - t).
    - ``capture`` of a hold of h: posted - t, held - h: the hold's other h - t tokens are
      released (capture(hold of 15, tokens=10) spends 10 and releases the other 5).
    - ``void``/``expire`` of a hold of h: held - h; ``tokens`` is h, all released.
    - ``refund`` of a debit or capture: posted + t (spend given back).
    - ``note`` and ``budget``: nothing (``tokens`` is 0). A note's ``memo`` says what
      happened; a budget's ``memo`` is the document of the budget it adds (canonical JSON
      of `Budget.to_dict`), and its ``at`` the time it was added, so that the budget's
      settings are in the chain and `Ledger.verify` sees any edit of them.
    """

    id: int
    """The entry's position in the chain: 1 for the first entry, then 2, 3..."""
    kind: EntryKind
    """What the entry does: credit, hold, capture, void, expire, debit, refund, note or
    budget."""
    key: str
    """The idempotency key of the write that made the entry (unique in the ledger)."""
    tokens: int
    """The tokens of the entry, >= 1 but for notes and budgets (0; see the kinds above)."""
    at: datetime
    """When the entry was written, by the ledger's clock (aware, UTC)."""
    ref: int | None = None
    """The hold a capture, void or expire closes; the debit or capture a refund gives back."""
    memo: str | None = None
    """Free text given with the write."""
    tags: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_tags, hash=False)
    """Labels such as ``{"project": "site", "user": "ana"}`` (read-only). Captures, voids and
    expiries copy the tags of their hold; refunds those of the entry they refund."""
    styles: tuple[tuple[str | None, int], ...] = attrs.field(default=(), converter=_styles_tuple)
    """Tokens by style, summing to ``tokens``: ``(("flux-dev", 30), ("anime", 5))`` for an
    estimate of 2 flux-dev calls and 1 anime call; ``((None, 12),)`` for a plain amount. A
    capture splits its hold's styles in proportion (largest remainder); a refund splits what is
    left to refund of its entry's styles. Empty for credits, voids and expiries."""
    table_version: str | None = None
    """The version of the price table of the estimate that made the entry, if any."""
    table_digest: str | None = None
    """The digest of that price table (``"sha256:..."``), if any."""
    expires_at: datetime | None = None
    """For a hold: when it lapses (`Ledger.expire_holds` then releases it); else ``None``."""
    fingerprint: str = ""
    """sha256 of the request that made the entry: a replay with its key must have the same."""
    hash: str = ""
    """sha256 (hex) of the previous entry's hash and this entry's content (see `chain_hash`)."""

    __reduce__ = reduce_fields  # the read-only tags: see `reduce_fields`

    def to_row(self) -> Row:
        """The stored form: plain values in a fixed order (times in microseconds, tags and
        styles as canonical JSON text), the hash last."""
        return (
            self.id, self.kind, self.key, self.tokens, to_micros(self.at), self.ref, self.memo,
            tags_text(self.tags), styles_text(self.styles),
            self.table_version, self.table_digest,
            None if self.expires_at is None else to_micros(self.expires_at),
            self.fingerprint, self.hash,
        )

    @classmethod
    def from_row(cls, row: Row) -> Entry:
        """The entry of a stored row (the inverse of `to_row`)."""
        (id_, kind, key, tokens, at, ref, memo, tags, styles, version, digest, expires,
         fingerprint, hash_) = row
        return cls(
            id=id_, kind=kind, key=key, tokens=tokens, at=from_micros(at), ref=ref, memo=memo,
            tags=json.loads(tags), styles=json.loads(styles), table_version=version,
            table_digest=digest, expires_at=None if expires is None else from_micros(expires),
            fingerprint=fingerprint, hash=hash_,
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready document of the entry (times as RFC 3339 text), as `export` writes."""
        return {
            "id": self.id, "kind": self.kind, "key": self.key, "tokens": self.tokens,
            "at": stamp(self.at), "ref": self.ref, "memo": self.memo,
            "tags": dict(self.tags), "styles": [list(s) for s in self.styles],
            "table_version": self.table_version, "table_digest": self.table_digest,
            "expires_at": stamp(self.expires_at), "fingerprint": self.fingerprint,
            "hash": self.hash,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Entry:
        """The entry of a `to_dict` document.

        Raises:
            KeyError, TypeError, ValueError: The document lacks a field or has a bad one.
        """
        if not isinstance(data, Mapping):
            raise TypeError(f"an entry is a JSON object (got {type(data).__name__})")
        kind = data["kind"]
        if kind not in KINDS:
            raise ValueError(f"unknown entry kind {kind!r}")
        for name in ("id", "tokens"):
            if type(data[name]) is not int:
                raise TypeError(f"{name} must be an integer (got {data[name]!r})")
        ref = data.get("ref")
        if ref is not None and type(ref) is not int:
            raise TypeError(f"ref must be an integer or null (got {ref!r})")
        for name in ("key", "fingerprint", "hash"):
            if not isinstance(data.get(name, ""), str):
                raise TypeError(f"{name} must be a string (got {data[name]!r})")
        for name in ("memo", "table_version", "table_digest"):
            if data.get(name) is not None and not isinstance(data[name], str):
                raise TypeError(f"{name} must be a string or null (got {data[name]!r})")
        tags = data.get("tags") or {}
        if not isinstance(tags, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in tags.items()):
            raise TypeError(f"tags must map strings to strings (got {tags!r})")
        styles = data.get("styles") or []
        if not isinstance(styles, list) or not all(
                isinstance(s, list) and len(s) == 2 and (s[0] is None or isinstance(s[0], str))
                and type(s[1]) is int for s in styles):
            raise TypeError(f"styles must be a list of [style or null, tokens] (got {styles!r})")
        at = _parse_time(data["at"])
        if at is None:
            raise ValueError("at must be a time (got null)")
        return cls(
            id=data["id"], kind=kind, key=data["key"], tokens=data["tokens"], at=at,
            ref=ref, memo=data.get("memo"), tags=dict(tags),
            styles=[(s, t) for s, t in styles],
            table_version=data.get("table_version"), table_digest=data.get("table_digest"),
            expires_at=_parse_time(data.get("expires_at")),
            fingerprint=data.get("fingerprint", ""), hash=data.get("hash", ""),
        )


@attrs.frozen
class Hold:
    """A reservation of tokens, captured (spent) or voided later, like a card authorisation.

    While open, its ``tokens`` count against `Balance.available`. A hold of 15 captured with
    ``tokens=10`` has ``captured == 10`` and ``released == 5``; voided or expired, it has
    ``captured == 0`` and ``released == 15``.
    """

    entry: Entry
    """The ``hold`` entry that placed it."""
    closed_by: Entry | None = None
    """The capture, void or expire entry that closed it; ``None`` while it is open."""

    @property
    def id(self) -> int:
        """The id of the hold's entry."""
        return self.entry.id

    @property
    def key(self) -> str:
        """The idempotency key of the hold."""
        return self.entry.key

    @property
    def tokens(self) -> int:
        """The tokens held."""
        return self.entry.tokens

    @property
    def expires_at(self) -> datetime | None:
        """When the hold lapses, if ever."""
        return self.entry.expires_at

    @property
    def status(self) -> HoldStatus:
        """``"open"``, ``"captured"``, ``"voided"`` or ``"expired"``."""
        if self.closed_by is None:
            return "open"
        kind = self.closed_by.kind
        return "captured" if kind == "capture" else "voided" if kind == "void" else "expired"

    @property
    def captured(self) -> int:
        """Tokens spent by its capture (0 unless captured)."""
        if self.closed_by is not None and self.closed_by.kind == "capture":
            return self.closed_by.tokens
        return 0

    @property
    def released(self) -> int:
        """Tokens given back to ``available`` when it closed (0 while open)."""
        return 0 if self.closed_by is None else self.tokens - self.captured

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary of the hold."""
        return {
            "id": self.id, "key": self.key, "tokens": self.tokens, "status": self.status,
            "captured": self.captured, "released": self.released,
            "expires_at": stamp(self.expires_at),
            "closed_by": None if self.closed_by is None else self.closed_by.id,
        }


@attrs.frozen
class Balance:
    """A ledger's balance: ``available == posted - held``, never below 0.

    After ``credit(100)``, ``hold(15)`` and ``debit(20)``: posted 80, held 15, available 65.
    """

    posted: int
    """Credits + refunds - debits - captures: the tokens owned."""
    held: int
    """The tokens of every open hold."""

    available: int = attrs.field()
    """``posted - held``: what a new hold or debit may take (given or not, it must agree)."""

    @available.default
    def _available(self) -> int:
        return self.posted - self.held

    @available.validator
    def _check_available(self, _: object, value: int) -> None:
        if value != self.posted - self.held:
            raise ValueError(
                f"available must be posted - held = {self.posted - self.held} (got {value})"
            )

    def to_dict(self) -> dict[str, int]:
        """``{"posted": ..., "held": ..., "available": ...}``."""
        return {"posted": self.posted, "held": self.held, "available": self.available}
