"""Reading a metered request's body: the fields the meter needs, and its fingerprint.

No httpx here: bytes and a Content-Type in, text and digests out.

The style is read from a multipart/form-data body (CRLF or LF-only line breaks; a delimiter
counts only at the start of a line, as for the API's parser), a urlencoded form, or a JSON
object (`field_values`).

The fingerprint of a logical request (`fingerprint`) is what makes a retry under the same
``Idempotency-Key`` the same request: operation, style, query string, and the body's fields
(each multipart part by name, file name and bytes, so neither a new multipart boundary nor a
file's guessed Content-Type makes a retry differ; fields in any order, a repeated field's
values in theirs, as a JSON object's keys or a urlencoded form's).
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import re
from email.message import Message
from urllib.parse import parse_qsl

__all__ = ["field_values", "fingerprint"]

# The boundary parameter of a Content-Type: after the type or a ";" (not inside "xboundary=").
_BOUNDARY = re.compile(r'(?:^|;)\s*boundary\s*=\s*(?:"([^"]+)"|([^;\s]+))', re.IGNORECASE)
_BLANK_LINE = re.compile(rb"\r?\n\r?\n")
_HEADER_LINE = re.compile(rb"[\x21-\x39\x3b-\x7e]*:|[ \t]")
"""A header line, or the continuation of one (as the email package tells them)."""


def _parts(content_type: str, body: bytes) -> list[bytes] | None:
    """The parts of a multipart body, each without its delimiter lines; None if not multipart.

    A delimiter is ``--boundary`` at the start of the body or of a line, then padding and a
    line break (CRLF or LF), or ``--`` for the close delimiter (RFC 2046, as the API's parser
    reads it): ``--boundary`` elsewhere in a line is content. The line break before a
    delimiter belongs to it, not to the part.
    """
    found = _BOUNDARY.search(content_type)
    if found is None:
        return None
    dash = b"--" + (found.group(1) or found.group(2)).encode("latin-1")
    parts: list[bytes] = []
    begin = -1  # where the current part's content starts (-1: in the preamble)
    at = 0 if body.startswith(dash) else _line_starting(body, dash, 0)
    size = len(body)
    while at >= 0:
        end = at  # the current part ends before the line break that precedes the delimiter
        if end > 0:
            end -= 2 if end > 1 and body[end - 2] == 0x0D else 1
        after = at + len(dash)
        if body.startswith(b"--", after):  # the close delimiter
            if begin >= 0:
                parts.append(body[begin:end])
            return parts
        line = after
        while line < size and body[line] in (0x20, 0x09):  # transport padding
            line += 1
        if body.startswith(b"\r\n", line):
            start = line + 2
        elif body.startswith(b"\n", line) or line == size:
            start = line + 1
        else:  # "--boundaryX...": a longer string, not this delimiter
            at = _line_starting(body, dash, after)
            continue
        if begin >= 0:
            parts.append(body[begin:end])
        begin = start
        at = _line_starting(body, dash, start)
    if begin >= 0:
        parts.append(body[begin:])  # no close delimiter: the last part runs to the end
    return parts


def _line_starting(body: bytes, dash: bytes, start: int) -> int:
    """Where the next line starting with ``dash`` begins, from ``start`` on (-1: none)."""
    found = body.find(b"\n" + dash, max(start - 1, 0))
    return -1 if found < 0 else found + 1


def _part_head(part: bytes, hint: bytes | None = None) -> tuple[dict[str, str], bytes] | None:
    """The ``name``/``filename`` parameters of a part's Content-Disposition, and its content
    (None for a part without headers or without that header, or when ``hint`` is not in its
    headers: a cheap test that they cannot name the field sought).

    The headers end at the blank line or, as the email package reads a part that has none,
    at the first line that is not a header (nor the continuation of one).
    """
    if part.startswith((b"\r\n", b"\n")):
        return None  # no headers, so no name
    found = _BLANK_LINE.search(part)
    head, content = (part, b"") if found is None else (part[: found.start()],
                                                       part[found.end():])
    if hint is not None and hint not in head and b"*" not in head:
        return None
    offset = 0
    for raw in head.split(b"\n"):
        if not _HEADER_LINE.match(raw):
            head, content = part[:offset], part[offset:]
            break
        offset += len(raw) + 1
    if not head:
        return None
    disposition = None
    for line in head.decode("latin-1").replace("\r\n", "\n").replace("\n ", " ").replace(
            "\n\t", " ").split("\n"):
        label, _, value = line.partition(":")
        if disposition is None and label.strip().lower() == "content-disposition":
            disposition = value.strip()  # the first, as the email package reads it
    if disposition is None:
        return None
    return _disposition_params(disposition), content


def _part_field(part: bytes, name: str) -> str | None:
    """The text of a part that is the form field ``name`` (None for a file or another name)."""
    found = _part_head(part, name.encode())
    if found is None:
        return None
    params, content = found
    if params.get("name") != name or "filename" in params:
        return None
    return content.decode("utf-8", "replace").strip()


_PARAM = re.compile(r';\s*([^\s=;"]+)\s*=\s*(?:"([^"\\]*)"|([^";\s]*))')


def _disposition_params(disposition: str) -> dict[str, str]:
    """The ``name`` and ``filename`` parameters of a Content-Disposition value.

    Plain ``name="x"`` and ``name=x`` are read by a regular expression (fast); anything rarer
    (RFC 2231 ``name*=``, backslash escapes, text the expression leaves) by the email package.
    """
    rest = _PARAM.sub("", disposition)
    if "*" not in disposition and "\\" not in disposition and not any(
            c in rest for c in ';="'):
        return {m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
                for m in _PARAM.finditer(disposition)}
    header = Message()
    header["Content-Disposition"] = disposition
    found = {}
    for label in ("name", "filename"):
        value = header.get_param(label, header="content-disposition")
        if value is not None:
            found[label] = email.utils.collapse_rfc2231_value(value)
    return found


def field_values(content_type: str, body: bytes, name: str) -> list[str]:
    """Every text value of the field ``name`` of a multipart, urlencoded or JSON body."""
    kind = content_type.split(";", maxsplit=1)[0].strip().lower()
    if kind == "multipart/form-data":
        values = []
        for part in _parts(content_type, body) or ():
            value = _part_field(part, name)
            if value is not None:
                values.append(value)
        return values
    if kind == "application/x-www-form-urlencoded":
        pairs = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
        return [value.strip() for field, value in pairs if field == name]
    if kind == "application/json" or kind.endswith("+json"):
        try:
            document = json.loads(body)
        except (ValueError, RecursionError):
            return []
        value = document.get(name) if isinstance(document, dict) else None
        return [value.strip()] if isinstance(value, str) else []
    return []


def fingerprint(operation: str, style: str | None, query: bytes, content_type: str,
                 body: bytes) -> str:
    """The logical request: operation, style, query string and the body's fields.

    Left out, as a retry may change them without changing the call: the multipart boundary,
    each part's headers but its name and file name (a file's Content-Type is guessed from its
    name, differently on different hosts), the order of differently named fields, and a JSON
    body's key order and spacing (it is hashed in canonical form). A body that cannot be read
    as fields (no multipart part found, JSON that does not parse) is hashed as it is.
    """
    digest = hashlib.blake2b(digest_size=16)
    for piece in (operation.encode(), (style or "").encode(), query,
                  *_canonical(content_type, body)):
        digest.update(len(piece).to_bytes(8, "big"))
        digest.update(piece)
    return digest.hexdigest()


def _canonical(content_type: str, body: bytes) -> list[bytes]:
    """The pieces of a body that make it the request it is (see `fingerprint`)."""
    kind = content_type.split(";", maxsplit=1)[0].strip().lower()
    fields: list[tuple[bytes, bytes, bytes]] = []  # (name, file name or marker, content)
    if kind.startswith("multipart/"):
        for part in _parts(content_type, body) or ():
            head = _part_head(part)
            if head is None:
                fields.append((b"", b"\0raw", part))
            else:
                params, content = head
                filename = params.get("filename")
                fields.append((params.get("name", "").encode(),
                               b"\0field" if filename is None else b"\0file " + filename.encode(),
                               content))
    elif kind == "application/x-www-form-urlencoded":
        text = body.decode("latin-1")  # byte for byte: percent escapes decoded as bytes too
        fields = [(name.encode("latin-1"), b"", value.encode("latin-1")) for name, value in
                  parse_qsl(text, keep_blank_values=True, encoding="latin-1")]
    elif kind == "application/json" or kind.endswith("+json"):
        try:
            document = json.loads(body)
            return [b"json", json.dumps(document, sort_keys=True, separators=(",", ":"),
                                        ensure_ascii=False).encode()]
        except (ValueError, RecursionError):
            pass
    if not fields:
        return [b"raw", body]
    # Fields by name, a repeated field's values in their order (the API keeps the last).
    fields.sort(key=lambda field: field[0])
    return [b"fields", *(piece for field in fields for piece in field)]

