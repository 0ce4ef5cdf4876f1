"""A ledger's archive: its entries exported as JSON lines or CSV, and JSON lines imported.

JSON lines are the form to keep and re-import: exact, hash included, the chain verified on
import (`Replay`). CSV is for people and spreadsheets only: it does not round-trip.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from typing import IO, Literal

from imagine_billing.errors import BadRecordError, LedgerCorrupted, LedgerStoreError
from imagine_billing.ledger._budget_tracking import BudgetTracker
from imagine_billing.ledger._chain import Anchor, Replay
from imagine_billing.ledger.model import Entry, Row, canonical
from imagine_billing.ledger.store import Store

__all__ = ["export", "import_lines"]

_CSV_FIELDS = ("id", "kind", "key", "tokens", "at", "ref", "memo", "tags", "styles",
               "table_version", "table_digest", "expires_at", "fingerprint", "hash")

_LINE_BREAKS = {0x85: "\\u0085", 0x2028: "\\u2028", 0x2029: "\\u2029"}
"""Characters `str.splitlines` breaks at that JSON leaves as they are (it escapes the rest)."""


def export(entries: Iterable[Entry], out: IO[str], format: Literal["jsonl", "csv"]) -> int:
    """Write ``entries`` to ``out`` in ``format``; returns how many (see `Ledger.export`)."""
    if format not in ("jsonl", "csv"):
        raise ValueError(f"format must be 'jsonl' or 'csv' (got {format!r})")
    count = 0
    if format == "jsonl":
        for entry in entries:
            line = json.dumps(entry.to_dict(), ensure_ascii=False, sort_keys=True)
            if not line.isascii():
                # Only inside strings, where an escape means the same character.
                line = line.translate(_LINE_BREAKS)
            out.write(line + "\n")
            count += 1
        return count
    writer = csv.writer(out)  # RFC 4180 line ends: a memo with \r or \n is quoted
    writer.writerow(_CSV_FIELDS)
    for entry in entries:
        document = entry.to_dict()
        document["tags"] = canonical(document["tags"])
        document["styles"] = canonical(document["styles"])
        writer.writerow(["" if document[f] is None else document[f] for f in _CSV_FIELDS])
        count += 1
    return count


def import_lines(store: Store, budgets: BudgetTracker, lines: Iterable[str], source: str,
                 anchor: Anchor | None) -> None:
    """Append the exported entries of ``lines`` to the empty ``store``, in one write
    transaction, replaying the chain as they come (see `Ledger.from_jsonl`)."""
    with store.write():
        if store.tip().id:
            raise LedgerStoreError(getattr(store, "path", "store"),
                                   "it already holds entries: import into a new ledger")
        replay = Replay(anchor, budgets.parse)
        for number, line in _numbered(lines, source):
            if not line.strip():
                continue
            entry, row = _entry(line, source, number)
            opens, closes = replay.apply(row)
            taken = store.append(entry, row, replay.tip, opens=opens, closes=closes)
            if taken is not None:
                raise LedgerCorrupted(entry.id, f"its key {entry.key!r} is used twice "
                                      f"(entry {taken.id} has it)")
        replay.finish()
        # The budgets come with their entries: their figures, from all the entries.
        for budget_id, budget, document, added in replay.budgets.values():
            budgets.keep(budget, document, budget_id, added)


def _entry(line: str, source: str, number: int) -> tuple[Entry, Row]:
    """The entry of an exported line, and its row (`BadRecordError` at its number if it is
    none)."""
    try:
        entry = Entry.from_dict(json.loads(line))
        row = entry.to_row()
    except (KeyError, TypeError, ValueError, OverflowError) as error:
        raise BadRecordError(source, number, "bad-entry",
                             f"not a ledger entry: {error}") from None
    except RecursionError:
        raise BadRecordError(source, number, "bad-entry", "not a ledger entry: "
                             "its JSON is nested too deeply") from None
    return entry, row


def _numbered(lines: Iterable[str], source: str) -> Iterator[tuple[int, str]]:
    """``(line number, line)``; text that is not UTF-8 is a `BadRecordError` at its line."""
    number = 0
    iterator = iter(lines)
    while True:
        number += 1
        try:
            line = next(iterator)
        except StopIteration:
            return
        except UnicodeDecodeError as error:
            raise BadRecordError(source, number, "bad-encoding",
                                 f"not UTF-8 text ({error.reason})") from None
        yield number, line
