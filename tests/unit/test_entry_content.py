"""An entry's key, tags and styles must be ones the ledger writes: a chain re-hashed over
content the ledger refuses (an archive crafted for import, a file changed behind the
ledger's back) is found, naming the entry (`imagine_billing.ledger._content`)."""

from __future__ import annotations

import contextlib
import io
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

import imagine_billing as ib
from imagine_billing.ledger.model import GENESIS, Entry, chain_hash
from tests.helpers import Clock

FORGED: dict[str, tuple[str, Any, str]] = {
    # name: (field, forged value, what the error says)
    "negative style": ("styles", [["flux-dev", -985]], "bad styles"),
    "styles over the tokens": ("styles", [["flux-dev", 30]], "add up to 30 tokens, not its 15"),
    "styles under the tokens": ("styles", [[None, 5], ["flux-dev", 5]], "add up to 10"),
    "styles out of order": ("styles", [["flux-dev", 10], [None, 5]], "bad styles"),
    "a style twice": ("styles", [["anime", 5], ["anime", 10]], "bad styles"),
    "a style of no name": ("styles", [["", 15]], "bad styles"),
    "a style with a control": ("styles", [["flux\x1b[2J", 15]], "bad styles"),
    "a zero style": ("styles", [[None, 15], ["anime", 0]], "bad styles"),
    "empty key": ("key", "", "bad key ''"),
    "a tag with a newline": ("tags", {"pro=ject\n": "\x1b[2Jx"}, "bad tags"),
    "a tag with an escape": ("tags", {"project": "\x1b[2J"}, "bad tags"),
}


def exported(tmp_path: Path) -> list[dict[str, Any]]:
    """The export of a ledger: a credit, then a 15-token debit of flux-dev, tagged."""
    clock = Clock()
    with ib.Ledger.open(tmp_path / "source.db", clock=clock) as ledger:
        ledger.credit(1000, key="c")
        ledger.debit(ib.estimate([ib.Call("flux-dev")]), key="d", tags={"project": "shop"})
        out = io.StringIO()
        ledger.export(out)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def rehashed(documents: list[dict[str, Any]]) -> list[str]:
    """The documents as export lines, every hash recomputed: what the chain alone passes."""
    previous, lines = GENESIS, []
    for document in documents:
        document["hash"] = "0" * 64
        previous = chain_hash(previous, Entry.from_dict(document).to_row()[:-1])
        document["hash"] = previous
        lines.append(json.dumps(document) + "\n")
    return lines


class TestForgedArchive:
    @pytest.mark.parametrize("name", sorted(FORGED))
    def test_an_import_refuses_it(self, tmp_path: Path, name: str) -> None:
        field, value, says = FORGED[name]
        documents = exported(tmp_path)
        documents[1][field] = value
        with pytest.raises(ib.LedgerCorrupted) as caught:
            ib.Ledger.from_jsonl(rehashed(documents), path=tmp_path / "copy.db")
        assert 2 == caught.value.entry
        assert says in caught.value.reason

    def test_the_genuine_archive_imports(self, tmp_path: Path) -> None:
        """The control: the same archive, re-hashed but not changed, imports and verifies."""
        with ib.Ledger.from_jsonl(rehashed(exported(tmp_path)),
                                  path=tmp_path / "copy.db") as ledger:
            assert 2 == ledger.verify()


class TestForgedFile:
    @pytest.mark.parametrize("name", sorted(FORGED))
    def test_verify_names_the_entry(self, tmp_path: Path, name: str) -> None:
        """The same forgeries written into the SQLite file, every hash and the tip's
        recomputed: verify (whole, and from entry 1 on) names entry 2."""
        field, value, says = FORGED[name]
        exported(tmp_path)
        path = tmp_path / "source.db"
        with ib.Ledger.open(path) as ledger:
            documents = [entry.to_dict() for entry in ledger.entries()]
            anchor = (1, ledger.get(1).hash)
        documents[1][field] = value
        lines = rehashed(documents)
        stored = Entry.from_dict(json.loads(lines[1])).to_row()
        with contextlib.closing(sqlite3.connect(path)) as db:
            db.execute("DROP TRIGGER entries_append_only_update")
            db.execute("UPDATE entries SET key = ?, tags = ?, styles = ?, hash = ? WHERE id = 2",
                       (stored[2], stored[7], stored[8], stored[-1]))
            db.execute("UPDATE tip SET hash = ?", (stored[-1],))
            db.commit()
        with ib.Ledger.open(path) as ledger:
            for run in (ledger.verify, lambda: ledger.verify(since=anchor)):
                with pytest.raises(ib.LedgerCorrupted) as caught:
                    run()
                assert 2 == caught.value.entry
                assert says in caught.value.reason
