"""Opening a ledger's SQLite file safely: connections, the write lock, and the file checks.

SQLite keeps a database's write-ahead log and locks beside the path it is given, following
symbolic links first: a file reached through two hard links would get two logs and two sets
of locks (`refuse_links`), and a file this process cannot write is opened read-only, as it
is on disk when no writer has it open (`open_read_only`). An import that fails removes the
files it created (`new_files`), at the end of a symbolic link if the path is one.
"""

from __future__ import annotations

import os
import sqlite3
import time
import urllib.parse

from imagine_billing.errors import LedgerStoreError
from imagine_billing.ledger._sqlite_schema import SCHEMA_VERSION, check_version

__all__ = [
    "READ_ONLY",
    "begin_immediate",
    "cannot_write",
    "connect",
    "damaged",
    "has_log",
    "new_files",
    "open_read_only",
    "refuse_links",
]

READ_ONLY = " (is the file, or its folder, read-only for you?)"
"""The hint added to an error SQLite gives for a file it may not write."""

_SQLITE_FILES = ("", "-wal", "-shm", "-journal")
"""The files SQLite may make of a database: the file itself and its companions."""


def connect(path: str, target: str, timeout: float, *, uri: bool = False) -> sqlite3.Connection:
    """A connection to ``target`` (``path``, or a ``file:`` URI of it) in autocommit mode,
    to be shared by threads (the store's lock serialises every use of it)."""
    try:
        return sqlite3.connect(target, timeout=timeout, isolation_level=None,
                               check_same_thread=False, uri=uri)
    except sqlite3.Error as error:
        raise LedgerStoreError(path, f"cannot open: {error}") from None


def begin_immediate(db: sqlite3.Connection, path: str, timeout: float) -> None:
    """``BEGIN IMMEDIATE``: take the write lock, waiting up to ``timeout`` seconds.

    The connection's busy timeout makes SQLite wait for the lock; should it still report
    "locked" (a deadlock avoided, or a slow writer), retry until our own deadline.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) and "busy" not in str(error):
                raise
            if time.monotonic() >= deadline:
                raise LedgerStoreError(
                    path, f"another writer held the lock for over {timeout:g} s") from None
            time.sleep(0.01)
        else:
            return


def refuse_links(path: str) -> None:
    """Refuse a file that more than one name reaches unseen by SQLite (see `SqliteStore`)."""
    for suffix in ("", "-wal", "-shm"):
        try:
            links = os.stat(path + suffix).st_nlink
        except FileNotFoundError:
            continue
        except OSError as error:
            raise LedgerStoreError(path + suffix, f"cannot read: {error.strerror}") from None
        if links > 1:
            raise LedgerStoreError(
                path + suffix, f"it has {links} hard links: a ledger is written "
                "through one name only (writers through two hard links would lose each "
                "other's entries); remove the other links or copy the file, then retry")


def open_read_only(path: str, timeout: float) -> sqlite3.Connection:
    """A connection that only reads, for a file this process cannot write (see
    `SqliteStore`), its schema checked."""
    try:
        name = urllib.parse.quote(os.fsencode(os.path.abspath(path)), safe="/")
    except (UnicodeError, ValueError) as error:
        raise LedgerStoreError(path, f"cannot open: {error}") from None
    for options in ("mode=ro", "mode=ro&immutable=1"):
        db = connect(path, f"file:{name}?{options}", timeout, uri=True)
        try:
            version = check_version(db, path)
        except sqlite3.Error as error:
            db.close()
            if "immutable" not in options and getattr(error, "sqlite_errorname", "") in (
                    "SQLITE_READONLY_DIRECTORY", "SQLITE_CANTOPEN"):
                if not has_log(path):
                    continue  # no log: no writer has the file open; read it as it is
                raise LedgerStoreError(
                    path, "its write-ahead log (-wal) cannot be read: SQLite needs "
                    "to create its -shm file, and the folder is read-only for you; open "
                    "the file for writing once where you can, or copy it with its -wal "
                    "file to a folder you may write") from None
            raise LedgerStoreError(path, f"cannot use as a ledger: {error}",
                                   damaged=damaged(error)) from None
        except BaseException:
            db.close()
            raise
        if version < SCHEMA_VERSION:
            db.close()
            what = ("it holds no ledger yet" if version == 0 else
                    f"its schema (version {version}) is older than this library's "
                    f"({SCHEMA_VERSION})")
            raise LedgerStoreError(path, f"{what}, and it is read-only for you: "
                                   "open it for writing once where you can")
        return db
    raise AssertionError("unreachable: the immutable open returns or raises")


def new_files(path: str | os.PathLike[str]) -> list[str]:
    """The files that opening ``path`` as a new database would create: the database and
    its companions, at the end of ``path``'s symbolic links (SQLite follows them); none
    when the database is there already (its companions may be another's)."""
    target = os.path.realpath(path)
    created = [name for name in (target + suffix for suffix in _SQLITE_FILES)
               if not os.path.lexists(name)]
    return created if target in created else []


def cannot_write(error: sqlite3.Error) -> bool:
    """Whether SQLite failed for want of writing the file or its folder."""
    name = getattr(error, "sqlite_errorname", "")
    return name.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN"))


def has_log(path: str) -> bool:
    """Whether a write-ahead log with frames lies beside the database ``path``."""
    try:
        return os.stat(path + "-wal").st_size > 0
    except FileNotFoundError:
        return False
    except OSError:
        return True  # there, but unreadable: not to be ignored


def damaged(error: sqlite3.Error) -> bool:
    """Whether SQLite says the file is damaged or not a database at all."""
    name = getattr(error, "sqlite_errorname", "")
    return name.startswith("SQLITE_CORRUPT") or name == "SQLITE_NOTADB"
