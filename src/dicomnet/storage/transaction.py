"""The index's write transactions, and which of their failures are the disk's
(every row fails alike) rather than one row's."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from pathlib import Path
from types import TracebackType

from dicomnet.storage.files import StorageError
from dicomnet.storage.index_locks import index_writers

__all__ = ["BUSY_WAIT_S", "Transaction", "damaged_hint", "fails_every_row"]

log = logging.getLogger("dicomnet.storage")

#: How long a write waits for another program's write lock on the index (its
#: connections' busy timeout), and after how long the wait is said.
BUSY_WAIT_S = 30.0
_NOTICE_MS = 1000
_SQLITE_BUSY = 5

#: SQLite primary result codes (sqlite.org/rescode.html) that say nothing about a
#: row: the disk or quota is full, I/O failed, the file is read-only, damaged,
#: gone, locked by another process past the busy timeout, or memory ran out.
#: Trying each row again in its own transaction fails the same way, once per row
#: (locked: after waiting out the timeout again, for each row).
_NOT_THE_ROW = frozenset({
    5,   # SQLITE_BUSY
    6,   # SQLITE_LOCKED
    7,   # SQLITE_NOMEM
    8,   # SQLITE_READONLY
    10,  # SQLITE_IOERR
    11,  # SQLITE_CORRUPT
    13,  # SQLITE_FULL
    14,  # SQLITE_CANTOPEN
    26,  # SQLITE_NOTADB
})


def damaged_hint(error: sqlite3.Error, folder: object) -> str:
    """What to do about an index SQLite finds damaged or not a database (said when
    it cannot be opened: the server and reindex stop there); else nothing."""
    if getattr(error, "sqlite_errorcode", 0) & 0xFF not in (11, 26):  # CORRUPT, NOTADB
        return ""
    return (f" (damaged: move it aside, then 'dicomnet reindex --create {folder}' builds "
            "a new one from the files)")


def fails_every_row(error: StorageError) -> bool:
    """Whether an index write failed for a reason no other row escapes."""
    cause = error.__cause__
    code = getattr(cause, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF in _NOT_THE_ROW


class Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, or ``ROLLBACK`` on any exception.
    SQLite ends the transaction itself on some errors (SQLITE_FULL, IOERR: its
    "automatic rollback"); no ROLLBACK is sent then, whose own error ("no
    transaction is active") would hide the cause."""

    def __init__(self, db: sqlite3.Connection, path: Path | None = None) -> None:
        self._db = db
        self._path = path
        self._waited_ms = 0

    def __enter__(self) -> sqlite3.Connection:
        try:
            self._begin()
        except sqlite3.Error as exc:
            raise StorageError(f"index transaction failed: {exc}{self._held_hint(exc)}"
                               ) from exc
        return self._db

    def _begin(self) -> None:
        """``BEGIN IMMEDIATE``, waiting for another program's write lock (an
        ``sqlite3`` shell in a transaction, say) as long as the connection's busy
        timeout says, but saying so after a second: a reindex stayed silent for
        the whole 30 s before failing."""
        db = self._db
        wait = self._waited_ms = db.execute("PRAGMA busy_timeout").fetchone()[0]
        if wait <= _NOTICE_MS:
            db.execute("BEGIN IMMEDIATE")
            return
        db.execute(f"PRAGMA busy_timeout={_NOTICE_MS}")
        try:
            try:
                db.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if not _busy(exc):
                    raise
            log.warning("index %s is locked by %s: waiting up to %.0f s for it to end its "
                        "transaction", self._path or "(in memory)", self._holders(),
                        wait / 1000)
            db.execute(f"PRAGMA busy_timeout={wait - _NOTICE_MS}")
            db.execute("BEGIN IMMEDIATE")
        finally:
            db.execute(f"PRAGMA busy_timeout={wait}")

    def _holders(self) -> str:
        return ", ".join(index_writers(self._path) if self._path is not None else []
                         ) or "another program"

    def _held_hint(self, exc: sqlite3.Error) -> str:
        if not _busy(exc):
            return ""
        waited = self._waited_ms / 1000
        return (f"; {self._holders()} held its write lock"
                f"{f' through a {waited:.0f} s wait' if waited else ''}: end that program's "
                "transaction, or close it, and try again")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            try:
                self._db.execute("COMMIT")
            except sqlite3.Error as error:
                self._rollback()
                raise StorageError(f"index commit failed: {error}") from error
            return
        self._rollback()
        if isinstance(exc, sqlite3.Error):
            raise StorageError(f"index update failed: {exc}") from exc

    def _rollback(self) -> None:
        if self._db.in_transaction:
            with contextlib.suppress(sqlite3.Error):  # the first error is the one to tell
                self._db.execute("ROLLBACK")


def _busy(exc: sqlite3.Error) -> bool:
    return getattr(exc, "sqlite_errorcode", 0) & 0xFF == _SQLITE_BUSY
