"""`PostgresStore`: named ledgers in one PostgreSQL database, shared by many hosts.

- One database holds many ledgers (``name``: a team, a tenant), isolated: every row carries
  its ledger's number, and each ledger has one row in ``ledgers`` that keeps its tip.
- Every write transaction starts with ``SELECT ... FOR UPDATE`` of that row (READ
  COMMITTED): writers of one ledger, on any host, run one after the other, so a check
  ("enough tokens?", "key used?") and the write that depends on it cannot interleave;
  writers of different ledgers lock different rows and never wait for each other. Waiting
  for the lock is bounded by ``timeout`` seconds, past which a `LedgerStoreError` surfaces.
- Round trips are few (psycopg's pipeline mode): ``BEGIN``, the lock and "has the chain any
  budget?" go in one; the bookkeeping of an entry (open holds, budget figures), the tip, and
  an entry whose key is known to be free are sent with the next statement or with
  ``COMMIT``. Under the lock no one else writes the ledger, so a write transaction keeps
  what it has read (keys, a hold's closing entry): a hold is 3 round trips, a capture 3.
- A commit that returned is durable (unless ``durable=False``: ``synchronous_commit =
  off``). A write that raised wrote nothing, except when the connection was lost while
  ``COMMIT`` was on its way: the server may have kept it or not, and the error says so
  (write again with the same key: an idempotent replay returns the entry if it was kept).
- One store may be shared by threads: it keeps a pool of connections (psycopg-pool); a
  write or read block takes one for its thread from start to end, and other threads' writes
  wait for the ledger's lock rather than join it.
- A nested `batch` is a ``SAVEPOINT``; entries are append-only (triggers refuse UPDATE,
  DELETE and TRUNCATE); errors are `LedgerStoreError`s naming the URL without its password.

psycopg is imported when a store is opened, never before: without the ``postgres`` extra,
opening one is a `LedgerStoreError` saying how to install it. The schema is in
`imagine_billing.ledger._postgres_schema`, the transactions in
`imagine_billing.ledger._postgres_transactions`.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from imagine_billing.errors import LedgerCorrupted, LedgerStoreError
from imagine_billing.ledger import _postgres_sql as queries
from imagine_billing.ledger._postgres_schema import COLUMNS, SCHEMA_VERSION, set_up
from imagine_billing.ledger._postgres_transactions import BEHIND, Transactions
from imagine_billing.ledger.model import Entry, Row, to_micros
from imagine_billing.ledger.store import (
    ALERT_COLUMNS,
    AlertRow,
    BudgetRow,
    Tip,
    budget_rows,
    decoded,
    figures_after,
)

__all__ = ["SCHEMA_VERSION", "PostgresStore", "is_url", "redacted"]

_INSTALL = ('PostgreSQL ledgers need psycopg: pip install "imagine-billing[postgres]" '
            '(from a clone: pip install -e ".[postgres]")')

_INSERT = (f"INSERT INTO entries (ledger, {COLUMNS}) VALUES "
           "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
           "ON CONFLICT (ledger, key) DO NOTHING")

_LOOKUP = (
    "WITH h AS (SELECT id, key FROM entries WHERE ledger = %(ledger)s AND {column} = %(value)s "
    "AND kind = 'hold') "
    f"SELECT 0, {COLUMNS} FROM entries WHERE ledger = %(ledger)s AND {{column}} = %(value)s "
    f"UNION ALL (SELECT 1, {COLUMNS} FROM entries WHERE ledger = %(ledger)s AND ref = "
    "(SELECT id FROM h) AND kind IN ('capture', 'void', 'expire') ORDER BY id LIMIT 1) "
    f"UNION ALL SELECT 2, {COLUMNS} FROM entries WHERE ledger = %(ledger)s AND key IN "
    "(SELECT key || ':capture' FROM h UNION ALL SELECT key || ':void' FROM h)")
"""An entry by key or id and, when it is a hold, its closing entry (if any) and the entries
with the keys a capture or void of it takes by default (``<key>:capture``, ``<key>:void``):
in a write, a capture or void reads all of them, in one round trip. Each row starts with
its part: 0, 1 or 2."""

_PAGE = 2048
"""Rows read per query by `PostgresStore.rows`."""

_BIGINT = 2**63
"""PostgreSQL's bigint holds -2**63 to 2**63 - 1."""

def is_url(target: object) -> bool:
    """Whether ``target`` is a PostgreSQL URL (``postgresql://`` or ``postgres://``)."""
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


def redacted(url: str) -> str:
    """``url`` without its secrets: the password of the user part, and every query
    parameter libpq reads a secret from (``password``; ``sslpassword``, the passphrase of
    the client key; ``oauth_client_secret``; any name holding ``password`` or ``secret``).

    A URL that cannot be parsed is shown as its scheme only (its parts cannot be told
    apart, so none of them is shown)."""
    try:
        parts = urllib.parse.urlsplit(url)
        query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    except ValueError:  # such as an unclosed "[" of an IPv6 host
        return f"{url.split(':', 1)[0]}://..."
    netloc = parts.netloc
    if "@" in netloc:
        user, host = netloc.rsplit("@", 1)
        netloc = f"{user.split(':', 1)[0]}@{host}"
    kept = urllib.parse.urlencode([(k, v) for k, v in query if not _secret(k)])
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, kept, parts.fragment))


def _secret(parameter: str) -> bool:
    """Whether libpq reads a secret from the connection parameter ``parameter``."""
    name = parameter.strip().lower()
    return "password" in name or "secret" in name


def scrubbed(text: str, url: str) -> str:
    """``text``, a message of libpq about ``url``, with the URL `redacted` and each secret
    of it that libpq quotes (``"..."``: a bad percent-encoding) as ``"***"``."""
    text = text.replace(url, redacted(url))
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return text
    user = parts.netloc.rsplit("@", 1)[0] if "@" in parts.netloc else ""
    found = [user.split(":", 1)[1]] if ":" in user else []
    for pair in parts.query.split("&"):
        key, _, value = pair.partition("=")
        if _secret(urllib.parse.unquote(key)):
            found.append(value)
    for secret in found:
        text = text.replace(f'"{secret}"', '"***"')
    return text


class PostgresStore(Transactions):
    """A `Store` for the ledger ``name`` in the PostgreSQL database at ``url`` (the schema
    and the ledger are created if missing, unless ``readonly``).

    Args:
        url: A libpq URL, ``postgresql://user:password@host:5432/database``.
        name: The ledger's name in the database.
        durable: ``True``: a commit returns once the server has flushed it; ``False``:
            ``synchronous_commit = off`` (a server crash may lose the last commits).
        timeout: Seconds to wait for a connection, or for another writer's lock.
        readonly: Only read: the ledger must exist, every write raises `LedgerStoreError`.
        pool_size: The most connections the store opens (one per thread in a block).

    Raises:
        LedgerStoreError: psycopg is not installed; the server cannot be reached, refuses
            the user or password, has no such database, or holds a newer schema; read-only,
            the ledger does not exist.
    """

    def __init__(self, url: str, *, name: str = "main", durable: bool = True,
                 timeout: float = 30.0, readonly: bool = False, pool_size: int = 8) -> None:
        if not isinstance(name, str) or not name or len(name) > 200:
            raise LedgerStoreError(redacted(url), f"a ledger's name is 1 to 200 characters "
                                   f"(got {name!r})")
        self.url = redacted(url)
        self._conninfo = url
        """The URL as given, password included: for `shared` only, never in a message."""
        super().__init__(f"{self.url} (ledger {name!r})", name, timeout=timeout,
                         readonly=readonly)
        try:
            import psycopg
            import psycopg_pool
        except ImportError:
            raise LedgerStoreError(self.path, _INSTALL) from None
        self._psycopg = psycopg
        settings = [f"SET lock_timeout = {int(timeout * 1000)}"]
        if not durable:
            settings.append("SET synchronous_commit = off")
        try:
            with psycopg.connect(url, autocommit=True,
                                 connect_timeout=max(1, round(timeout))) as db:
                self._ledger = set_up(db, self.path, name, create=not readonly)
        except psycopg.Error as error:
            failure = self._failure(error, connecting=True)
            raise LedgerStoreError(failure.where, scrubbed(failure.reason, url)) from None

        def configure(conn: Any) -> None:
            for statement in settings:
                conn.execute(statement)

        self._pool = psycopg_pool.ConnectionPool(
            url, min_size=1, max_size=max(1, pool_size), timeout=timeout, open=True,
            kwargs={"autocommit": True, "connect_timeout": max(1, round(timeout))},
            configure=configure, name=f"imagine-billing:{name}")

    def _entries(self, condition: str, args: tuple[Any, ...]) -> list[Entry]:
        rows = self._run(f"SELECT {COLUMNS} FROM entries WHERE ledger = %s AND {condition}",
                         (self._ledger, *args))
        return [self._checked(row) for row in rows]

    def append(self, entry: Entry, row: Row, tip: Tip, *, opens: bool = False,
               closes: int | None = None) -> Entry | None:
        state = self._state()
        if not state.depth:
            raise RuntimeError("append outside a write transaction")
        known = state.keys.get(entry.key, entry)
        if known is not entry:  # looked up in this transaction
            if known is not None:
                return known
            # Free under the lock: the insert goes with the next statement or the commit.
            state.pending.append((_INSERT, (self._ledger, *row)))
        else:
            try:
                added = self._run(_INSERT + " RETURNING 1", (self._ledger, *row))
            except LedgerStoreError as error:
                if BEHIND in error.reason:
                    raise LedgerCorrupted(entry.id, BEHIND) from None
                raise
            if not added:
                return self.by_key(entry.key)
        state.keys[entry.key] = entry
        if entry.kind == "budget":
            state.budgets = True
        if opens:
            state.closings[entry.id] = None
            expires = None if entry.expires_at is None else to_micros(entry.expires_at)
            state.pending.append(("INSERT INTO open_holds (ledger, id, expires_at) "
                                  "VALUES (%s, %s, %s)", (self._ledger, entry.id, expires)))
        if closes is not None:
            state.closings[closes] = entry
            state.pending.append(("DELETE FROM open_holds WHERE ledger = %s AND id = %s",
                                  (self._ledger, closes)))
        state.tip = tip
        return None

    def _lookup(self, column: str, value: object) -> Entry | None:
        """The entry of that key or id. In a write, what is read is kept for the rest of the
        transaction: the key's answer and, for a hold, its closing entry (for `closing`)
        and the answers for the keys its capture or void takes by default."""
        state = self._state()
        if not state.depth:
            found = self._entries(f"{column} = %s", (value,))
            return found[0] if found else None
        if column == "key" and value in state.keys:
            return state.keys[str(value)]
        rows = self._run(_LOOKUP.format(column=column),
                         {"ledger": self._ledger, "value": value})
        parts: dict[int, list[Row]] = {0: [], 1: [], 2: []}
        for row in rows:
            parts[row[0]].append(tuple(row[1:]))
        if not parts[0]:
            if column == "key":
                state.keys[str(value)] = None
            return None
        entry = self._checked(parts[0][0])
        state.keys[entry.key] = entry
        if entry.kind == "hold":
            last = self.tip().id
            closing = parts[1][0] if parts[1] else None
            if closing is None or 0 < closing[0] <= last:  # else `closing` reports it
                state.closings[entry.id] = None if closing is None else decoded(closing)
            taken = {row[2]: row for row in parts[2]}
            for key in (f"{entry.key}:capture", f"{entry.key}:void"):
                row = taken.get(key)
                if row is None or 0 < row[0] <= last:  # else `by_key` reports it
                    state.keys[key] = None if row is None else decoded(row)
        return entry

    def _checked(self, row: Row) -> Entry:
        """The entry of ``row``, which must be in the chain."""
        last = self.tip().id
        if not 0 < row[0] <= last:
            raise LedgerCorrupted(row[0], f"it is not in the chain, which ends at entry "
                                  f"{last}: a row written behind the ledger's back (run verify)")
        return decoded(row)

    def by_key(self, key: str) -> Entry | None:
        return self._lookup("key", key)

    def by_id(self, entry_id: int) -> Entry | None:
        if not -_BIGINT <= entry_id < _BIGINT:
            return None
        return self._lookup("id", entry_id)

    def closing(self, hold_id: int) -> Entry | None:
        if not -_BIGINT <= hold_id < _BIGINT:
            return None
        closings = self._state().closings
        if hold_id in closings:
            return closings[hold_id]
        found = self._entries("ref = %s AND kind IN ('capture', 'void', 'expire') "
                              "ORDER BY id LIMIT 1", (hold_id,))
        return found[0] if found else None

    def refunds(self, entry_id: int) -> list[Entry]:
        if not -_BIGINT <= entry_id < _BIGINT:
            return []
        return self._entries("ref = %s AND kind = 'refund' ORDER BY id", (entry_id,))

    def open_holds(self, due_by: int | None = None) -> list[int]:
        if due_by is None:
            rows = self._run("SELECT id FROM open_holds WHERE ledger = %s ORDER BY id",
                             (self._ledger,))
        else:
            rows = self._run("SELECT id FROM open_holds WHERE ledger = %s AND expires_at <= %s "
                             "ORDER BY id", (self._ledger, due_by))
        return [row[0] for row in rows]

    def open_hold_expiries(self) -> list[tuple[int, int | None]]:
        return [(id_, expires) for id_, expires in self._run(
            "SELECT id, expires_at FROM open_holds WHERE ledger = %s ORDER BY id",
            (self._ledger,))]

    def rows(self, since: int | None = None, until: int | None = None, *,
             first: int = 1) -> Iterator[Row]:
        # Up to the last entry now: rows written while the caller iterates are not read.
        low, last = max(first, 1), self.tip().id
        bounds, args = queries.where(since, until, {}, "entries")
        sql = (f"SELECT {COLUMNS} FROM entries WHERE ledger = %s AND id BETWEEN %s AND %s"
               + "".join(f" AND {w}" for w in bounds) + f" ORDER BY id LIMIT {_PAGE}")
        while low <= last:
            page = self._run(sql, (self._ledger, low, last, *args))
            yield from (tuple(row) for row in page)
            if len(page) < _PAGE:
                return
            low = page[-1][0] + 1

    def anchor_state(self, entry_id: int) -> tuple[int, list[tuple[Any, Any, Any]]]:
        posted, holds = queries.anchor_state(entry_id, self._ledger)
        return int(self._run(*posted)[0][0]), [tuple(row) for row in self._run(*holds)]

    def shared(self) -> dict[str, str] | None:
        """How another process opens this ledger to read it (`Ledger.verify` in parts; the
        URL may hold a password: pass it through a pipe, never on a command line); ``None``
        inside a write transaction (its rows are not committed yet)."""
        if self._state().depth:
            return None
        return {"postgres": self._conninfo, "name": self.name}

    def id_range(self) -> tuple[int, int] | None:
        first, last = self._run("SELECT min(id), max(id) FROM entries WHERE ledger = %s",
                                (self._ledger,))[0]
        return None if first is None else (first, last)

    # -- budgets and aggregates -------------------------------------------------------------

    def budget_entries(self, labels: Sequence[str]) -> list[BudgetRow]:
        state = self._state()
        if state.depth and state.budgets is False:
            return []  # none in the chain: known since the transaction began
        return budget_rows(self._run(
            *queries.budget_entries(labels, self._ledger, self._last())))

    def budget_table(self) -> list[tuple[Any, Any, Any, Any, Any]]:
        return [tuple(row) for row in self._run(
            "SELECT entry, name, period, document, added FROM budgets WHERE ledger = %s "
            "ORDER BY seq", (self._ledger,))]

    def budget_periods(self, name: str) -> dict[str, int]:
        return dict(self._run("SELECT period, spent FROM budget_usage WHERE ledger = %s "
                              "AND name = %s", (self._ledger, name)))

    def put_budget(self, name: str, period: str, document: str, *, entry: int, held: int,
                   added: int, usage: Mapping[str, int]) -> None:
        self._queue("INSERT INTO budgets (ledger, name, period, document, held, added, entry) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    (self._ledger, name, period, document, held, added, entry))
        for label, spent in usage.items():
            self._queue("INSERT INTO budget_usage (ledger, name, period, spent) "
                        "VALUES (%s, %s, %s, %s)", (self._ledger, name, label, spent))

    def bump_budget(self, name: str, label: str, *, spent: int = 0, held: int = 0) -> None:
        if held:
            self._queue("UPDATE budgets SET held = held + %s WHERE ledger = %s AND name = %s",
                        (held, self._ledger, name))
        if spent:
            self._queue("INSERT INTO budget_usage (ledger, name, period, spent) "
                        "VALUES (%s, %s, %s, %s) ON CONFLICT (ledger, name, period) "
                        "DO UPDATE SET spent = budget_usage.spent + excluded.spent",
                        (self._ledger, name, label, spent))

    def spend(self, since: int | None, until: int | None, width: int | None,
              scope: Mapping[str, str]) -> dict[int, int]:
        query = queries.spend(since, until, width, scope, ledger=self._ledger,
                              last=self._last())
        return {int(slot): int(total) for slot, total in self._run(*query)}

    def spend_by(self, group: str, since: int | None, until: int | None) -> dict[Any, int]:
        query = queries.spend_by(group, since, until, self._ledger, self._last())
        return {name: int(total) for name, total in self._run(*query)}

    def held_in(self, scope: Mapping[str, str]) -> int:
        return int(self._run(*queries.held_in(scope, self._ledger, self._last()))[0][0])

    def available_change(self, since: int | None, until: int | None) -> int:
        query = queries.available_change(since, until, self._ledger, self._last())
        return int(self._run(*query)[0][0])

    def written_after(self, moment: int, scope: Mapping[str, str]) -> tuple[
            int, int, list[tuple[int, int]]]:
        return figures_after(self._run(*queries.written_after(moment, scope, self._ledger,
                                                              self._last())))

    def drop_budget(self, name: str) -> None:
        self._queue("DELETE FROM budgets WHERE ledger = %s AND name = %s", (self._ledger, name))
        self._queue("DELETE FROM budget_usage WHERE ledger = %s AND name = %s",
                    (self._ledger, name))

    def add_alerts(self, rows: Sequence[AlertRow]) -> None:
        for row in rows:
            self._queue(f"INSERT INTO alerts (ledger, {_NEW_ALERT}) VALUES (%s, %s, %s, %s, "
                        "%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (ledger, id) DO NOTHING",
                        (self._ledger, *row))

    def alert_rows(self, undelivered: bool = False) -> list[AlertRow]:
        where = " AND delivered_at IS NULL" if undelivered else ""
        return [tuple(row) for row in self._run(
            f"SELECT {ALERT_COLUMNS} FROM alerts WHERE ledger = %s{where} ORDER BY seq",
            (self._ledger,))]

    def mark_alert(self, alert_id: str, *, delivered_at: int | None,
                   error: str | None) -> None:
        self._queue("UPDATE alerts SET delivered_at = COALESCE(delivered_at, %s), "
                    "attempts = attempts + 1, last_error = %s WHERE ledger = %s AND id = %s",
                    (delivered_at, error, self._ledger, alert_id))


_NEW_ALERT = ALERT_COLUMNS.rsplit(", delivered_at", 1)[0]
"""The columns of a new alert (no delivery yet)."""



