"""The SQL of a SQLite store's aggregates: spend, open holds and budgets, each in one query.

Each function returns a statement and its arguments. ``last`` is the last id of the write
transaction in progress (whose tip is not stored yet), else ``None`` (see `CHAIN`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["CHAIN", "DAY", "anchor_state", "available_change", "budget_entries", "held_in",
           "spend", "spend_by", "spending", "where", "written_after"]

Query = tuple[str, list[Any]]
"""A statement and its arguments."""

DAY = 86_400_000_000
"""A day in microseconds."""


CHAIN = "BETWEEN 1 AND COALESCE(?, (SELECT id FROM tip WHERE one = 1))"
"""The ids of the chain, from 1 to the last entry: a row outside it (written behind the
ledger's back) counts in no figure; `Ledger.verify` reports it. The argument is the last id
of the write transaction in progress (whose tip is not stored yet), else ``None``: the
stored tip, read in the statement's own snapshot. Written ``+id`` in a condition, so that
the planner keeps to the time index rather than walk the ids."""

_SPENDING = (
    # Debits and captures by their own time; refunds by the time of what they give back, so
    # each half filters on an indexed time (``entries_at``). For a time range, the spends in
    # it are the outer loop (CROSS JOIN fixes the order) and their refunds are found through
    # ``entries_ref``; for all time, the refunds are, each finding its spend by id.
    "SELECT e.tokens AS tokens, e.at AS at, e.tags AS tags, e.styles AS styles "
    f"FROM entries e WHERE e.kind IN ('debit', 'capture') AND +e.id {CHAIN}{{spends}} "
    "UNION ALL "
    "SELECT -r.tokens, s.at, r.tags, r.styles FROM {join} "
    f"ON r.ref = s.id AND r.kind = 'refund' WHERE +r.id {CHAIN}{{refunds}}"
)


def spending(since: int | None, until: int | None, scope: Mapping[str, str],
              last: int | None) -> Query:
    """The `_SPENDING` query (``tokens`` signed, ``at`` the spend time) and its arguments,
    for spend times ``since <= at < until`` and tags carrying ``scope``."""
    spends, spend_args = where(since, until, scope, "e")
    times, time_args = where(since, until, {}, "s")
    tags, tag_args = where(None, None, scope, "r")
    join = "entries s CROSS JOIN entries r" if times else "entries r CROSS JOIN entries s"
    sql = _SPENDING.format(spends="".join(f" AND {w}" for w in spends), join=join,
                           refunds="".join(f" AND {w}" for w in times + tags))
    return sql, [last, *spend_args, last, *time_args, *tag_args]


def spend(since: int | None, until: int | None, width: int | None, scope: Mapping[str, str],
          last: int | None) -> Query:
    """Spend by slot of ``width`` from ``since`` (one slot 0 without them)."""
    inner, args = spending(since, until, scope, last)
    if width is None or since is None:
        return f"SELECT 0, SUM(tokens) FROM ({inner}) GROUP BY 1", args
    return (f"SELECT (at - ?) / ?, SUM(tokens) FROM ({inner}) GROUP BY 1",
            [since, width, *args])


def spend_by(group: str, since: int | None, until: int | None, last: int | None) -> Query:
    """Spend by style, by day (days since 1970) or by the value of tag ``tag:<name>``."""
    inner, args = spending(since, until, {}, last)
    if group == "style":
        return ("SELECT json_extract(j.value, '$[0]'), SUM(CASE WHEN u.tokens < 0 THEN "
                "-json_extract(j.value, '$[1]') ELSE json_extract(j.value, '$[1]') END) "
                f"FROM ({inner}) u, json_each(u.styles) j GROUP BY 1", args)
    if group == "day":
        # Floor division (SQLite's / truncates towards 0: times before 1970 are negative).
        return (f"SELECT CASE WHEN at >= 0 THEN at / {DAY} ELSE (at + 1) / {DAY} - 1 END, "
                f"SUM(tokens) FROM ({inner}) GROUP BY 1", args)
    return ("SELECT (SELECT value FROM json_each(u.tags) WHERE key = ?), SUM(tokens) "
            f"FROM ({inner}) u GROUP BY 1", [group[4:], *args])


def held_in(scope: Mapping[str, str], last: int | None) -> Query:
    """The tokens of the open holds carrying ``scope``."""
    conditions, args = where(None, None, scope)
    sql = ("SELECT COALESCE(SUM(tokens), 0) FROM entries WHERE id IN "
           f"(SELECT id FROM open_holds) AND +id {CHAIN}"
           + "".join(f" AND {w}" for w in conditions))
    return sql, [last, *args]


def available_change(since: int | None, until: int | None, last: int | None) -> Query:
    """How much the entries written ``since <= at < until`` changed ``available``."""
    conditions, args = where(since, until, {})
    sql = ("SELECT COALESCE(SUM(CASE kind WHEN 'credit' THEN tokens WHEN 'refund' THEN "
           "tokens WHEN 'void' THEN tokens WHEN 'expire' THEN tokens WHEN 'capture' THEN "
           "(SELECT h.tokens FROM entries h WHERE h.id = e.ref) - tokens ELSE -tokens END"
           f"), 0) FROM entries e WHERE +e.id {CHAIN}"
           + "".join(f" AND {w}" for w in conditions))
    return sql, [last, *args]


def written_after(moment: int, scope: Mapping[str, str], last: int | None) -> Query:
    """Of the entries with ``at > moment`` carrying ``scope`` (see `Store.written_after`):
    one row per part, ``(part, a, b)``: ``("count", n, 0)``, ``("held", tokens, 0)``,
    then a ``("refund", spend time, tokens)`` row per refund of earlier spend. Every part
    walks the time index from ``moment`` on (``+e.id`` keeps the planner from scanning the
    ids in order instead)."""
    tags, tag_args = where(None, None, scope, "e")
    scoped = "".join(f" AND {w}" for w in tags)
    after = f"e.at > ? AND +e.id {CHAIN}{scoped}"
    sql = (f"SELECT 'count', COUNT(*), 0 FROM entries e WHERE {after} "
           "UNION ALL SELECT 'held', COALESCE(SUM(CASE WHEN e.kind = 'hold' THEN "
           "(CASE WHEN e.id IN (SELECT id FROM open_holds) THEN e.tokens ELSE 0 END) "
           "ELSE -(SELECT h.tokens FROM entries h WHERE h.id = e.ref AND h.at <= ?) END), 0), 0 "
           f"FROM entries e WHERE {after} AND e.kind IN ('hold', 'capture', 'void', 'expire') "
           "UNION ALL SELECT * FROM (SELECT 'refund', s.at, e.tokens FROM entries e "
           f"JOIN entries s ON s.id = e.ref WHERE {after} AND e.kind = 'refund' "
           "AND s.at <= ? ORDER BY +e.id)")
    part = [moment, last, *tag_args]
    return sql, [*part, moment, *part, *part, moment]


def anchor_state(entry_id: int) -> tuple[Query, Query]:
    """What the entries 1 to ``entry_id`` give (see `Store.anchor_state`): posted, summed
    over them; the holds among them open after the last, found from the open holds and the
    closing entries after it (no walk of the earlier entries)."""
    posted = ("SELECT COALESCE(SUM(CASE WHEN kind IN ('credit', 'refund') THEN tokens "
              "WHEN kind IN ('debit', 'capture') THEN -tokens ELSE 0 END), 0) "
              "FROM entries WHERE id BETWEEN 1 AND ?", [entry_id])
    # ``+ref``: the closing entries are found by id (those after the anchor), never by
    # walking the ``entries_ref`` index over every earlier hold.
    holds = ("SELECT id, tokens, expires_at FROM entries WHERE kind = 'hold' AND id IN ("
             "SELECT id FROM open_holds WHERE id BETWEEN 1 AND ?1 UNION SELECT ref FROM "
             "entries WHERE id > ?1 AND kind IN ('capture', 'void', 'expire') AND +ref "
             "BETWEEN 1 AND ?1) ORDER BY id", [entry_id])
    return posted, holds


def budget_entries(labels: Sequence[str], last: int | None) -> Query:
    """The budget entries of the chain with their rows and their spend in ``labels``."""
    marks = ", ".join("?" * len(labels))
    return ("SELECT e.id, e.memo, e.at, b.name, b.held, u.period, u.spent FROM entries e "
            "LEFT JOIN budgets b ON b.entry = e.id LEFT JOIN budget_usage u ON u.name = "
            f"b.name AND u.period IN ({marks}) WHERE e.kind = 'budget' AND +e.id {CHAIN} "
            "ORDER BY e.id", [*labels, last])


def where(since: int | None, until: int | None, scope: Mapping[str, str],
           table: str = "") -> tuple[list[str], list[Any]]:
    """SQL conditions (and their arguments) for ``since <= at < until`` and a tag scope, on
    the columns of ``table`` (an alias) or unqualified."""
    at, tags = (f"{table}.at", f"{table}.tags") if table else ("at", "tags")
    where: list[str] = []
    args: list[Any] = []
    if since is not None:
        where.append(f"{at} >= ?")
        args.append(since)
    if until is not None:
        where.append(f"{at} < ?")
        args.append(until)
    for name, value in scope.items():
        if '"' in name or "\\" in name:
            where.append(f"EXISTS (SELECT 1 FROM json_each({tags}) WHERE key = ? AND value = ?)")
            args += [name, value]
        else:
            where.append(f"json_extract({tags}, ?) = ?")
            args += [f'$."{name}"', value]
    return where, args
