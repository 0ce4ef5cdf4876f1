"""The fingerprint of a hold or debit, written out directly (`spend_fingerprint`), is the
sha256 of the canonical JSON of its request, as `fingerprint_of` makes it: the text every
ledger's stored fingerprints were made from, which replays are compared with."""

from __future__ import annotations

from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from imagine_billing.ledger._draft import spend_fingerprint
from imagine_billing.ledger.model import fingerprint_of

texts = st.text(st.characters(exclude_categories=("Cs",)), max_size=8) | st.sampled_from(
    ["", '"', "\\", "\x00", "\x7f", "\u2028", "ä文", "é\u0301", "</script>"])
"""Any valid Unicode text, and some that JSON quotes in its own way."""

amounts = st.integers(1, 2**53 - 1)
styles = st.lists(st.tuples(st.none() | texts, st.integers(0, 2**53 - 1)), max_size=3).map(
    tuple) | amounts.map(lambda tokens: ((None, tokens),))


requests = st.fixed_dictionaries({
    "kind": st.sampled_from(["debit", "hold"]), "tokens": amounts, "styles": styles,
    "memo": st.none() | texts, "tags": st.dictionaries(texts, texts, max_size=3),
    "table_version": st.none() | texts, "table_digest": st.none() | texts})
"""The fields of a hold's or debit's request, but its time."""


@given(request=requests, moment=st.none() | st.integers(-(2**62), 2**62))
@example(request={"kind": "debit", "tokens": 1, "styles": ((None, 1),), "memo": None,
                  "tags": {}, "table_version": None, "table_digest": None}, moment=None)
def test_the_written_out_fingerprint_is_the_canonical_one(request: dict[str, Any],
                                                          moment: int | None) -> None:
    """Debits (``at`` given or not) and holds (``expires_at`` always there, maybe null)."""
    earlier: dict[str, Any] = {}
    first = ""
    if request["kind"] == "hold":
        earlier["expires_at"] = moment
        first = f'"expires_at":{"null" if moment is None else moment},'
    elif moment is not None:
        earlier["at"] = moment
        first = f'"at":{moment},'
    expected = fingerprint_of(**request, **earlier)
    assert spend_fingerprint(
        request["kind"], request["tokens"], request["styles"], memo=request["memo"],
        tags=request["tags"], version=request["table_version"],
        digest=request["table_digest"], first=first) == expected
