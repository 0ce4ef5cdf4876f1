"""The SQL of a PostgreSQL store's aggregates: spend, open holds and budgets, each in one query.

The same figures as `imagine_billing.ledger._sqlite_sql`, in PostgreSQL's dialect, for the
entries of one ledger (``ledger``, its number). ``last`` is the last id of the write
transaction in progress (whose tip is not stored yet), else ``None``: the stored tip, read in
the statement's own snapshot (see `chain`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["DAY", "anchor_state", "available_change", "budget_entries", "held_in", "spend",
           "spend_by", "where", "written_after"]

Query = tuple[str, list[Any]]
"""A statement and its arguments."""

DAY = 86_400_000_000
"""A day in microseconds."""


def chain(table: str, ledger: int, last: int | None) -> Query:
    """The condition that an entry is of the ledger and in its chain (ids 1 to the tip): a
    row outside it (written behind the ledger's back) counts in no figure."""
    return (f"{table}.ledger = %s AND {table}.id BETWEEN 1 AND "
            "COALESCE(%s::bigint, (SELECT tip_id FROM ledgers WHERE id = %s))",
            [ledger, last, ledger])


def _spending(since: int | None, until: int | None, scope: Mapping[str, str], ledger: int,
              last: int | None) -> Query:
    """Debits and captures at their time, refunds (negative) at the time of what they give
    back: ``tokens``, ``at``, ``tags`` (jsonb) and ``styles`` (text)."""
    spends, spend_args = where(since, until, scope, "e")
    times, time_args = where(since, until, {}, "s")
    tags, tag_args = where(None, None, scope, "r")
    own, own_args = chain("e", ledger, last)
    theirs, their_args = chain("r", ledger, last)
    sql = ("SELECT e.tokens AS tokens, e.at AS at, e.tag_doc AS tags, e.styles AS styles "
           f"FROM entries e WHERE e.kind IN ('debit', 'capture') AND {own}"
           + "".join(f" AND {w}" for w in spends)
           + " UNION ALL SELECT -r.tokens, s.at, r.tag_doc, r.styles FROM entries r "
           "JOIN entries s ON s.ledger = r.ledger AND s.id = r.ref "
           f"WHERE r.kind = 'refund' AND {theirs}"
           + "".join(f" AND {w}" for w in times + tags))
    return sql, [*own_args, *spend_args, *their_args, *time_args, *tag_args]


def spend(since: int | None, until: int | None, width: int | None, scope: Mapping[str, str],
          *, ledger: int, last: int | None) -> Query:
    """Spend by slot of ``width`` from ``since`` (one slot 0 without them)."""
    inner, args = _spending(since, until, scope, ledger, last)
    if width is None or since is None:
        return f"SELECT 0, SUM(tokens) FROM ({inner}) u GROUP BY 1", args
    # at >= since here, so integer division is floor division.
    return (f"SELECT (at - %s) / %s, SUM(tokens) FROM ({inner}) u GROUP BY 1",
            [since, width, *args])


def spend_by(group: str, since: int | None, until: int | None, ledger: int,
             last: int | None) -> Query:
    """Spend by style, by day (days since 1970) or by the value of tag ``tag:<name>``."""
    inner, args = _spending(since, until, {}, ledger, last)
    if group == "style":
        return ("SELECT j.value ->> 0, SUM(CASE WHEN u.tokens < 0 THEN -(j.value ->> 1)::bigint "
                "ELSE (j.value ->> 1)::bigint END) "
                f"FROM ({inner}) u, jsonb_array_elements(u.styles::jsonb) j GROUP BY 1", args)
    if group == "day":
        return (f"SELECT floor(at / {DAY}::numeric)::bigint, SUM(tokens) FROM ({inner}) u "
                "GROUP BY 1", args)
    return f"SELECT u.tags ->> %s, SUM(tokens) FROM ({inner}) u GROUP BY 1", [group[4:], *args]


def held_in(scope: Mapping[str, str], ledger: int, last: int | None) -> Query:
    """The tokens of the open holds carrying ``scope``."""
    conditions, args = where(None, None, scope, "e")
    own, own_args = chain("e", ledger, last)
    sql = ("SELECT COALESCE(SUM(e.tokens), 0) FROM entries e JOIN open_holds o "
           f"ON o.ledger = e.ledger AND o.id = e.id WHERE {own}"
           + "".join(f" AND {w}" for w in conditions))
    return sql, [*own_args, *args]


def available_change(since: int | None, until: int | None, ledger: int,
                     last: int | None) -> Query:
    """How much the entries written ``since <= at < until`` changed ``available``."""
    conditions, args = where(since, until, {}, "e")
    own, own_args = chain("e", ledger, last)
    sql = ("SELECT COALESCE(SUM(CASE e.kind WHEN 'credit' THEN e.tokens WHEN 'refund' THEN "
           "e.tokens WHEN 'void' THEN e.tokens WHEN 'expire' THEN e.tokens WHEN 'capture' "
           "THEN (SELECT h.tokens FROM entries h WHERE h.ledger = e.ledger AND h.id = e.ref) "
           f"- e.tokens ELSE -e.tokens END), 0) FROM entries e WHERE {own}"
           + "".join(f" AND {w}" for w in conditions))
    return sql, [*own_args, *args]


def written_after(moment: int, scope: Mapping[str, str], ledger: int,
                  last: int | None) -> Query:
    """Of the entries with ``at > moment`` carrying ``scope`` (see `Store.written_after`),
    as `imagine_billing.ledger._sqlite_sql.written_after` gives them (ordered by ``e.id +
    0``, so that the planner keeps to the time index rather than walk the ids in order)."""
    tags, tag_args = where(None, None, scope, "e")
    own, own_args = chain("e", ledger, last)
    after = f"e.at > %s AND {own}" + "".join(f" AND {w}" for w in tags)
    part = [moment, *own_args, *tag_args]
    sql = (f"SELECT 'count', COUNT(*), 0::bigint FROM entries e WHERE {after} "
           "UNION ALL SELECT 'held', COALESCE(SUM(CASE WHEN e.kind = 'hold' THEN "
           "(CASE WHEN EXISTS (SELECT 1 FROM open_holds o WHERE o.ledger = e.ledger AND "
           "o.id = e.id) THEN e.tokens ELSE 0 END) ELSE -(SELECT h.tokens FROM entries h "
           "WHERE h.ledger = e.ledger AND h.id = e.ref AND h.at <= %s) END), 0)::bigint, "
           f"0::bigint FROM entries e WHERE {after} AND e.kind IN ('hold', 'capture', "
           "'void', 'expire') "
           "UNION ALL (SELECT 'refund', s.at, e.tokens FROM entries e JOIN entries s ON "
           f"s.ledger = e.ledger AND s.id = e.ref WHERE {after} AND e.kind = 'refund' "
           "AND s.at <= %s ORDER BY e.id + 0)")
    return sql, [*part, moment, *part, *part, moment]


def anchor_state(entry_id: int, ledger: int) -> tuple[Query, Query]:
    """What the entries 1 to ``entry_id`` give (see `Store.anchor_state`): posted, summed
    over them; the holds among them open after the last, found from the open holds and the
    closing entries after it (no walk of the earlier entries: ``ref + 0`` keeps the closing
    entries to the primary key, ids after the anchor)."""
    posted = ("SELECT COALESCE(SUM(CASE WHEN kind IN ('credit', 'refund') THEN tokens "
              "WHEN kind IN ('debit', 'capture') THEN -tokens ELSE 0 END), 0) "
              "FROM entries WHERE ledger = %s AND id BETWEEN 1 AND %s", [ledger, entry_id])
    holds = ("SELECT id, tokens, expires_at FROM entries WHERE ledger = %s AND kind = 'hold' "
             "AND id IN (SELECT id FROM open_holds WHERE ledger = %s AND id BETWEEN 1 AND %s "
             "UNION SELECT ref FROM entries WHERE ledger = %s AND id > %s AND kind IN "
             "('capture', 'void', 'expire') AND ref + 0 BETWEEN 1 AND %s) ORDER BY id",
             [ledger, ledger, entry_id, ledger, entry_id, entry_id])
    return posted, holds


def budget_entries(labels: Sequence[str], ledger: int, last: int | None) -> Query:
    """The budget entries of the chain with their rows and their spend in ``labels``."""
    own, own_args = chain("e", ledger, last)
    return ("SELECT e.id, e.memo, e.at, b.name, b.held, u.period, u.spent FROM entries e "
            "LEFT JOIN budgets b ON b.ledger = e.ledger AND b.entry = e.id "
            "LEFT JOIN budget_usage u ON u.ledger = b.ledger AND u.name = b.name "
            f"AND u.period = ANY(%s) WHERE e.kind = 'budget' AND {own} ORDER BY e.id",
            [list(labels), *own_args])


def where(since: int | None, until: int | None, scope: Mapping[str, str],
          table: str) -> tuple[list[str], list[Any]]:
    """SQL conditions (and their arguments) for ``since <= at < until`` and a tag scope, on
    the columns of ``table`` (an alias)."""
    conditions: list[str] = []
    args: list[Any] = []
    if since is not None:
        conditions.append(f"{table}.at >= %s")
        args.append(since)
    if until is not None:
        conditions.append(f"{table}.at < %s")
        args.append(until)
    for name, value in scope.items():
        conditions.append(f"{table}.tag_doc ->> %s = %s")
        args += [name, value]
    return conditions, args
