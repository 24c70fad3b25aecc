"""The objects a server answered Success for but never indexed: a record of how
each server of a store stopped, and, after one that did not close, a check in a
thread that gives every such object its index row.

A C-STORE SCP answers once an object's file is durable and queues its row, which
a thread writes a moment later (services.storage: the index's rule is "no row
without a durable file"). ``kill -9``, a crash or a power cut in between leaves
answered objects without rows: a query does not find them until they are sent
again or ``dicomnet reindex`` runs. The next server of the store finds and
indexes them itself, while it already serves.

**The record** (:class:`StopRecord`) is kept in the index itself, as its
``PRAGMA user_version`` (a number in the database's header, which SQLite leaves to
its users: no schema change, no file added to the store). A server reads it once
it holds the store's lock and has opened the index, then records "stopped
without closing" before it stores anything. Only a clean close, once every row
is written, records "closed", just before the index is closed. Each is its own
transaction, made durable at its commit (``synchronous=FULL`` for it: the log
fsynced, and with it every row committed before, which ``synchronous=NORMAL``
leaves to the next checkpoint). So a server that ends at any point leaves a
record other than "closed": the one it found, if it ended before writing its own
(it had stored nothing), else its own. A close that knows of objects without
rows records why instead (rows the index refused; its own check stopped before
its end). An index with no record (0: made by an earlier version, by reindex or
by a library user) counts as not closed: the check then runs once, which costs a
walk in the background, adds only what is missing, and repairs what kills under
earlier versions left.

A server run without an index (``index=False``) runs no check, and has
nothing a stop could leave half done: each object is a temporary file
renamed to its name whole (storage.files), the temporary files a kill leaves
are removed by the start-up sweep, which runs with or without an
index (services.store_opening), and it replaces no copy under another path
(its duplicates are found at the same path only), so no interrupted overwrite
leaves two copies. Its objects have no rows, by design; started on a folder
whose index an indexed server left, it records :data:`UNINDEXED` there
(:func:`record_unindexed`), so that the next indexed server checks, as after
a kill, and adds their rows.

**The check** (:class:`RowRecovery`), after the start-up sweep
(storage.cleanup.StaleSweep), in the same kind of thread: it lists the store's
folders (nested stores not entered: storage.lock.walk_store), then compares the
``.dcm`` files of each, in the order of their names, with the index's rows of
that folder, read in that order a chunk at a time (a range of the path index:
storage.reindex.FolderRows; a flat store's root holds every file, its rows
are not held at once) and reads those without a row as
reindex does (storage.rows.row_from_file: the File Meta Information and the
row's attributes, not the pixels). Their rows are written in batches
(storage.reindex: BATCH_ROWS, BATCH_SECONDS).

It runs beside live stores, so it only adds: each row is written, in one
transaction with the look, only if the index has no row at all for its
instance, nor for its path; parents are added only where missing, existing rows
are never changed, no file is moved or removed. A live row written before wins
(the check then skips its own); one written after is an upsert
(storage.index_tables.insert_row) that replaces the check's, as a resend would.
A second copy of an indexed instance is said at WARNING and left, as reindex
does; a file removed since it was listed (a copy a live store replaced) is
passed over.

**A row whose size is not its file's** (an indexed file of another size: a
copy replaced in place, by ``overwrite`` or over a damaged copy, by a server
killed before its row; a file truncated or replaced while no server ran) is
found with one ``lstat`` per indexed file (some 4 microseconds of CPU each), looked
at again once the walk has ended (a live store's row may have followed its
copy since), and said at WARNING, with the command that updates those rows
(``dicomnet reindex``, server stopped): neither the row nor the file is
changed. Which is right is not known here: a truncated file is the damaged
one, and its row the only record of the object's size (storage.damage replaces
such a copy when its object is stored again).

**An interrupted overwrite** is the one exception, under the server's
``duplicates="overwrite"`` only. A copy stored under another path than the
instance's (another study or series) is answered once durable, and the old
copy removed only once the new one's row is written (storage.instances): a
server killed in between leaves both, the row naming the old one. A second
copy whose modification time is later than that of the file the row names
(both written by this store's servers) is that interrupted overwrite: in the
same transaction as the look (so a live store's row written before, whose copy
is newer still, wins), its row replaces the old one (an upsert, as the live
store's would have been), then the old file is removed, if it is still the
file compared (a live store may have stored the instance there since), its
folder left for the next start's sweep if empty. The same time, a file that is
not a regular one, or a row naming no path below the root: the order is
unclear, both are said and left. As for a live overwrite, the row's commit is
not synced before the removal: a power cut may bring back the row naming the
removed copy, which the next start says (reindex moves it).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
import threading
import time
from pathlib import Path

from dicomnet.storage.cleanup import StaleSweep
from dicomnet.storage.files import DuplicatePolicy, StorageError
from dicomnet.storage.index import INDEX_NAME, StorageIndex
from dicomnet.storage.index_tables import RowValues, insert_row, row_values
from dicomnet.storage.instances import remove_below
from dicomnet.storage.lock import walk_store
from dicomnet.storage.names import UnsafeNameError, safe_relative_path
from dicomnet.storage.part10 import read_part10
from dicomnet.storage.reindex import BATCH_ROWS, BATCH_SECONDS, FolderRows
from dicomnet.storage.rows import row_from_file

__all__ = ["CHECK_STOPPED", "CLOSED", "NOT_CLOSED", "REASONS", "ROWS_LOST", "UNINDEXED",
           "RowRecovery", "StopRecord", "record_unindexed"]

logger = logging.getLogger("dicomnet.storage")

#: The record's values (``PRAGMA user_version``, 0 in an index no server of this
#: version has opened): "dcn" and a number, unlikely to be another program's.
_RECORD = 0x64636E00
#: What a clean close records.
CLOSED = _RECORD + 1
#: What a server records before it stores anything: what the next one reads if
#: it never closes.
NOT_CLOSED = _RECORD + 2
#: What a close records when the index refused rows, or its check had not ended.
ROWS_LOST = _RECORD + 3
CHECK_STOPPED = _RECORD + 4
#: What a server with no index (``StorageSCP(index=False)``) records in the index
#: it finds: it stores objects and writes no rows, so the next indexed server checks.
UNINDEXED = _RECORD + 5
#: How the log line at the next start says each ("the previous server ...").
REASONS = {
    0: "left no record of how it stopped (an earlier version?)",
    NOT_CLOSED: "stopped without closing",
    ROWS_LOST: "could not write some index rows",
    CHECK_STOPPED: "closed before its check for objects without index rows had ended",
    UNINDEXED: "ran without an index (it writes no rows)",
}


class StopRecord:
    """The record, in the store's index, of how its servers stopped. Made with the
    store's lock held, before anything is stored; :meth:`close` it, before the
    index is closed and the lock released."""

    def __init__(self, index: StorageIndex) -> None:
        """Read what the previous server recorded (:attr:`previous`), then record
        "stopped without closing", durably."""
        self._index = index
        self._open = True
        #: Why the previous server may have left objects without index rows, as
        #: "the previous server ..." goes on; None when it closed cleanly.
        self.previous = self._read()
        self.restart(index)

    def restart(self, index: StorageIndex) -> None:
        """Record "stopped without closing" in ``index``, durably: at the start, and
        in the new index of a store's folder made again under its server
        (storage.lock.StoreLock.follow), before anything is stored there."""
        self._index = index
        if self._open:
            self._write(NOT_CLOSED)

    def close(self, why: int | None) -> None:
        """Record "closed" (``why`` None: every object stored has its row), else
        ``why`` (:data:`ROWS_LOST`, :data:`CHECK_STOPPED`), durably: with the rows
        written before it. Once only; what cannot be written is said, and the
        next start checks."""
        if self._open:
            self._open = False
            self._write(CLOSED if why is None else why)

    def _read(self) -> str | None:
        index = self._index
        with index._lock:
            try:
                row = index._query_one("PRAGMA user_version", ())
            except StorageError as exc:
                return f"left a record that cannot be read ({exc})"
        value = 0 if row is None else int(row[0])
        if value == CLOSED:
            return None
        return REASONS.get(value, f"left a record this version does not know "
                                  f"(PRAGMA user_version {value})")

    def _write(self, value: int) -> None:
        _write_record(self._index, value)


def record_unindexed(path: Path) -> None:
    """Record in the index at ``path``, which an indexed server left, that a server
    with no index (``StorageSCP(index=False)``) stores in its folder now: its
    objects get no rows, so the next indexed server's start checks the store for
    them (:class:`RowRecovery`), as after a kill. Made with the store's lock held,
    before anything is stored; what cannot be written is said."""
    try:
        index = StorageIndex(path)
    except StorageError as exc:
        logger.warning("cannot record in %s that this server keeps no index (%s): the "
                       "next indexed server may not see the objects stored meanwhile "
                       "until 'dicomnet reindex %s'", path, exc, path.parent)
        return
    try:
        _write_record(index, UNINDEXED)
    finally:
        index.close()


def _write_record(index: StorageIndex, value: int) -> None:
    """``value`` as the index's user_version, in a transaction of its own made
    durable at its commit (``synchronous=FULL``: the log fsynced, and with it
    every row before; the index's own ``NORMAL`` syncs at checkpoints only)."""
    try:
        with index._lock:
            index._db.execute("PRAGMA synchronous=FULL")
        try:
            with index._write() as db:
                db.execute(f"PRAGMA user_version={int(value)}")
        finally:
            with index._lock:
                index._db.execute("PRAGMA synchronous=NORMAL")
    except (StorageError, sqlite3.Error) as exc:
        logger.warning("cannot record how this server stops in %s (%s): its next start "
                       "may not check the store for objects without index rows",
                       index._path, exc)


class RowRecovery:
    """The check for objects without index rows of the store at ``root`` (module
    docstring), in a thread started at once when ``why`` (the record's
    :attr:`~StopRecord.previous`) says it is needed, after ``after`` (the
    start-up sweep) has ended; ``duplicates``, the server's policy (overwrite:
    the overwrites the stop interrupted are finished). Call it with the store's
    lock held, and :meth:`stop` it (after the sweep) before the index is closed.
    A failure is logged, never raised: the server goes on."""

    def __init__(self, root: Path, index: StorageIndex | None, why: str | None, *,
                 after: StaleSweep | None = None,
                 duplicates: DuplicatePolicy = DuplicatePolicy.KEEP) -> None:
        self.root = Path(root)
        self.index = index
        #: Whether the check runs (the previous server did not close cleanly).
        self.needed = why is not None and index is not None
        #: Rows added, copies left unindexed, files that could not be read: None
        #: until the check has ended.
        self.added: int | None = None
        self.left: int | None = None
        self.unreadable: int | None = None
        #: Overwrites finished (a later copy's row replacing the old one's, the
        #: old copy removed): None until the check has ended.
        self.finished: int | None = None
        #: Relative paths of indexed files whose size is not their row's (a copy
        #: replaced in place by a server killed before its row, a file changed
        #: while no server ran), sorted, said at the end: None until it has ended.
        self.resized: list[str] | None = None
        #: Rows updated from copies replaced in place (overwrite policy), so far.
        self.updated = 0
        #: Whether every folder was checked (no stop, no failure).
        self.complete = not self.needed
        self._why = why or ""
        self._after = after
        self._stop = threading.Event()
        self._added = self._left = self._unreadable = self._finished = 0
        self._overwrite = duplicates is DuplicatePolicy.OVERWRITE
        self._batch: list[tuple[RowValues, str]] = []
        self._resized: list[str] = []
        self._batch_since = 0.0
        self._thread: threading.Thread | None = None
        if self.needed:
            self._thread = threading.Thread(target=self._run, name="dicomnet-recovery",
                                            daemon=True)
            self._thread.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the check has ended (at once if none runs); whether it has."""
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    def stop(self) -> None:
        """End the check before its next file (the rows read so far written), and
        wait for that; the next start checks again."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        said = False
        try:
            while (self._after is not None and not self._stop.is_set()
                   and not self._after.wait(0.25)):
                pass  # the sweep first: one walk of the store at a time
            folders = self._folders()
            if self._stop.is_set():
                return
            logger.info("the previous server of %s %s: checking %d folder(s) for objects "
                        "without index rows", self.root, self._why, len(folders))
            said = True
            assert self.index is not None  # needed: an index
            for folder in folders:
                if self._stop.is_set() or self.index.closed:
                    break  # the server closes, or the store's folder was made again
                self._check(folder)
            self._write()
            self._say_resized()
            self.complete = not (self._stop.is_set() or self.index.closed)
        except StorageError as exc:  # the index: locked past the wait, full, replaced
            logger.warning("the check of %s for objects without index rows stopped: %s; "
                           "the next start checks again", self.root, exc)
        except Exception as exc:  # a bug, or the store unreadable: it serves all the same
            logger.error("the check of %s for objects without index rows failed: %s; the "
                         "next start checks again", self.root, exc)
        finally:
            self.added, self.left, self.unreadable = self._added, self._left, self._unreadable
            self.finished = self._finished
            self.resized = sorted(self._resized)
            if said:
                logger.info("the check of %s for objects without index rows %s: %d row(s) "
                            "added, %d copy(ies) left without a row, %d file(s) unreadable",
                            self.root, "ended" if self.complete else "stopped",
                            self.added, self.left, self.unreadable)

    def _folders(self) -> list[str]:
        """The store's folders, hidden ones and nested stores left out: listed
        first, so that the start is said with their number."""
        folders = []
        for dirpath, dirnames, _ in walk_store(self.root, INDEX_NAME):
            if self._stop.is_set():
                break
            dirnames[:] = [name for name in dirnames if not name.startswith(".")]
            folders.append(dirpath)
        return folders

    def _check(self, folder: str) -> None:
        """The ``.dcm`` files directly in ``folder`` that no row names, read."""
        try:
            with os.scandir(folder) as entries:
                names = [entry.name for entry in entries
                         if entry.name.endswith(".dcm") and not entry.name.startswith(".")
                         and entry.is_file(follow_symlinks=False)]
        except FileNotFoundError:
            return  # removed since listed (emptied by a live store's overwrite)
        except OSError as exc:
            logger.warning("cannot list %s for objects without index rows: %s", folder,
                           exc.strerror or exc)
            self._unreadable += 1
            return
        if not names:
            return
        relative = os.path.relpath(folder, self.root).replace(os.sep, "/")
        prefix = "" if relative == "." else relative + "/"
        assert self.index is not None  # needed: an index
        known = FolderRows(self.index, prefix)
        for name in sorted(names):  # the rows' order: FolderRows.size
            if self._stop.is_set():
                return
            size = known.size(prefix + name)
            if size is None:
                self._read(Path(folder, name), prefix + name)
            elif _size(os.path.join(folder, name)) not in (size, None):
                self._resized.append(prefix + name)

    def _say_resized(self) -> None:
        """The rows whose size was not their file's, looked at again (a live
        store may have replaced a copy in place and written its row since: not
        said). Under the overwrite policy, a file that reads whole, of the
        row's instance, is a copy replaced in place by a server killed before
        its row: the row is updated from it (as the live store would have,
        :attr:`updated`). The others are said at WARNING with the command that
        updates them, not changed here: the row may be the right one (a file
        truncated, or changed while no server ran), and which is the
        operator's call; reindex reads the file again."""
        assert self.index is not None
        still = []
        for relative in self._resized:
            with self.index._lock:
                row = self.index._query_one(
                    "SELECT size FROM instance WHERE relative_path = ?", (relative,))
            if (row is not None and _size(self.root / relative) not in (int(row[0]), None)
                    and not (self._overwrite and self._update(relative, int(row[0])))):
                still.append(relative)
        self._resized = still
        if still:
            logger.warning("%d index row(s) of %s do not record their file's size: %s (a copy "
                           "replaced in place by a server killed before its row, or a file "
                           "changed while no server ran): left as they are; with the server "
                           "stopped, 'dicomnet reindex %s' reads those files again and updates "
                           "their rows, and names those it cannot read: damaged, their objects "
                           "stored again replace them", len(still), self.root,
                           ", ".join(sorted(still)), self.root)

    def _update(self, relative: str, size: int) -> bool:
        """The row at ``relative`` (of ``size``) replaced by one read from its
        file, if the file reads whole and is of the row's instance and the row
        is still the one looked at (a live store writes before or after)."""
        assert self.index is not None
        try:
            values = row_values(row_from_file(self.root, relative,
                                              read_part10(self.root / relative)))
        except Exception:  # damaged or gone: said with the others
            return False
        with self.index._write() as db:
            row = db.execute("SELECT sop_instance_uid, size FROM instance "
                             "WHERE relative_path = ?", (relative,)).fetchone()
            if row is None or row[0] != values.sop_uid or int(row[1]) != size:
                return False
            insert_row(db, values)
        self.updated += 1
        logger.info("the index row of %s updated from its file, a copy replaced in place "
                    "(--duplicates overwrite) by a server stopped before its row", relative)
        return True

    def _read(self, path: Path, relative: str) -> None:
        """The row of a file no row names, to the batch; or the file said."""
        try:
            values = row_values(row_from_file(self.root, relative, read_part10(path)))
        except FileNotFoundError:
            return  # removed since listed: a copy a live store replaced
        except Exception as exc:  # pydicom raises many kinds on damaged files
            logger.warning("cannot read %s for its index row, left without one: %s", path, exc)
            self._unreadable += 1
            return
        if not self._batch:
            self._batch_since = time.monotonic()
        self._batch.append((values, relative))
        if len(self._batch) >= BATCH_ROWS or time.monotonic() - self._batch_since >= BATCH_SECONDS:
            self._write()

    def _write(self) -> None:
        """The batch's rows, each only if the index has none for its instance or
        path, in one transaction (the look and the write together: a live row
        is written before or after it, never between), or replacing the row of
        an older copy (an interrupted overwrite: module docstring); the others
        said."""
        batch, self._batch = self._batch, []
        if not batch or self.index is None or self.index.closed:
            return  # closed: replaced, its files gone with the store's folder
        skipped: list[tuple[str, str, str | None]] = []
        finished: list[tuple[str, str, str, os.stat_result]] = []
        added = 0
        with self.index._write() as db:
            for values, relative in batch:
                row = db.execute("SELECT relative_path FROM instance WHERE sop_instance_uid = ?",
                                 (values.sop_uid,)).fetchone()
                taken = db.execute("SELECT 1 FROM instance WHERE relative_path = ?",
                                   (relative,)).fetchone() is not None
                if row is not None:
                    if row[0] == relative:
                        continue  # a live store indexed it meanwhile
                    old = None if taken else self._superseded(relative, str(row[0]))
                    if old is None:
                        skipped.append((relative, values.sop_uid, str(row[0])))
                    else:
                        insert_row(db, values)  # the old copy's parents pruned if empty
                        finished.append((values.sop_uid, relative, str(row[0]), old))
                    continue
                if taken:
                    skipped.append((relative, values.sop_uid, None))
                    continue
                _add_row(db, values)
                added += 1
        self._added += added
        self._left += len(skipped)
        self._finished += len(finished)
        for relative, uid, indexed in skipped:
            self._said(relative, uid, indexed)
        for uid, relative, old_relative, old in finished:
            self._remove(uid, relative, old_relative, old)

    def _superseded(self, relative: str, indexed: str) -> os.stat_result | None:
        """Under the overwrite policy, the ``lstat`` of the copy at ``indexed`` (the
        instance's row names it) if the unindexed copy at ``relative`` was made
        after it: both regular files, the times unequal; else None (the order
        unclear, or not this check's to settle)."""
        if not self._overwrite:
            return None
        try:
            safe_relative_path(indexed)
        except UnsafeNameError:  # a tampered row: never a path to remove
            return None
        try:
            new = os.lstat(self.root / relative)
            old = os.lstat(self.root / indexed)
        except OSError:  # gone (a live store's doing, or "not there" said), unreadable
            return None
        if not (stat.S_ISREG(new.st_mode) and stat.S_ISREG(old.st_mode)):
            return None  # a link is the operator's
        return old if new.st_mtime_ns > old.st_mtime_ns else None

    def _remove(self, uid: str, relative: str, old_relative: str,
                old: os.stat_result) -> None:
        """The copy at ``old_relative``, whose row the copy at ``relative`` took,
        removed if it is still the file compared (a live store may have stored
        the instance there since: its copy and row stand); its folder left for
        the next start's sweep."""
        path = self.root / old_relative
        try:
            now = os.lstat(path)
            if (now.st_dev, now.st_ino, now.st_mtime_ns, now.st_size) == (
                    old.st_dev, old.st_ino, old.st_mtime_ns, old.st_size):
                remove_below(self.root, old_relative.split("/"))
            else:
                logger.info("%s was stored again while the check of %s replaced its row "
                            "by that of %s: kept", old_relative, self.root, relative)
                return
        except FileNotFoundError:
            pass  # removed meanwhile: by a live store's overwrite
        except OSError as exc:
            logger.warning("cannot remove %s, replaced by %s: %s", path, relative,
                           exc.strerror or exc)
            return
        logger.info("finished the overwrite of %s interrupted by the stop: %s replaces %s",
                    uid, relative, old_relative)

    def _said(self, relative: str, uid: str, indexed: str | None) -> None:
        """A file left without a row, said at WARNING: the operator's to sort out."""
        if indexed is None:
            logger.warning("%s holds %s, but the index names that path for another "
                           "instance: left as it is; with the server stopped, 'dicomnet "
                           "reindex %s' says more", self.root / relative, uid, self.root)
        elif os.path.lexists(self.root / indexed):
            logger.warning("%s holds %s, which the index finds at %s: a second copy, left "
                           "without a row (a server killed while one replaced the other?); "
                           "keep one, remove the other and, with the server stopped, run "
                           "'dicomnet reindex %s'", relative, uid, indexed, self.root)
        else:
            logger.warning("%s holds %s, whose row names %s, which is not there: left as it "
                           "is; with the server stopped, 'dicomnet reindex %s' moves the row "
                           "to it", relative, uid, indexed, self.root)


def _size(path: str | Path) -> int | None:
    """``path``'s size (links not followed); None if it cannot be told (gone)."""
    try:
        return os.lstat(path).st_size
    except OSError:
        return None


def _add_row(db: sqlite3.Connection, values: RowValues) -> None:
    """One instance's row, and those of its series, study and patient that are
    missing (an existing one is left as it is: the instance hangs where the index
    has its series), inside the caller's transaction, which found no row of the
    instance nor of its path."""
    if db.execute("SELECT 1 FROM series WHERE series_uid = ?",
                  (values.series_uid,)).fetchone() is None:
        if db.execute("SELECT 1 FROM study WHERE study_uid = ?",
                      (values.study_uid,)).fetchone() is None:
            db.execute("INSERT INTO patient VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                       values.patient)
            db.execute("INSERT INTO study VALUES (?, ?, ?, ?, ?, ?, ?, ?)", values.study)
        db.execute("INSERT INTO series VALUES (?, ?, ?, ?, ?)", values.series)
    db.execute("INSERT INTO instance VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", values.instance)
