""":meth:`StorageIndex.reindex <dicomnet.storage.index.StorageIndex.reindex>`: the
index made to describe the files under a store's root again, its rows written in
batches.

A transaction per row cost a commit each (about 0.4 ms: 20,000 objects took
8.5 s, a million minutes), so rows read from files are written
:data:`BATCH_ROWS` at a time, or once the oldest has waited :data:`BATCH_SECONDS`,
whichever comes first; the rows of files gone are removed in batches alike. Each
batch's transaction waits for another program's write lock as any index write
does (storage.transaction: ``BUSY_WAIT_S``, said after a second).

An indexed file whose size is not its row's is read again and its row
updated (``updated``): a server killed between renaming a copy over a stored
one (``--duplicates overwrite``, or a damaged copy replaced) and writing its
row left the old copy's row, whose size would make the intact new copy look
damaged (storage.damage). One ``stat`` per indexed file finds them.

Interrupted (Ctrl-C, SIGTERM, a crash), the batch being read or written is lost
whole (its transaction rolled back, or never begun) and the committed ones
stand. Each of their rows is of a file read by this walk, which was durable
before (the ordering rule of :mod:`~dicomnet.storage.index`), so the index is
consistent, and the next reindex reads the lost batch's files again.

It holds :data:`BATCH_ROWS` rows at a time, not the store's, nor a folder's:
every indexed path and every path walked, once kept in sets, took some 500
bytes a file (half a gigabyte for a million objects), and a folder's rows,
later, as much for a flat store's root (every file in one folder). The files
of each folder, yielded in the order of their names, are compared with its
rows read in the same order a chunk at a time (:class:`FolderRows`: a range of
the path index, merged as two sorted lists are); with pruning, the folders
walked and the rows of files gone from them go to two temporary tables
(SQLite's temporary file, not memory: :func:`make_scratch`), and the rows gone
are found after the walk, as before, walking the path index once: those gone
from a folder walked, and those of a folder not walked (removed, hidden, a
nested store). What memory grows with is the largest folder's listing
(``os.walk`` lists a folder at once: some 120 bytes a name).

It works on its index's connection, lock and file checks (its private parts):
it is that class's other half, kept apart for its size.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dicomnet.storage.files import StorageError
from dicomnet.storage.index_file import COMPANIONS
from dicomnet.storage.index_tables import RowValues, insert_row, prune_series, row_values
from dicomnet.storage.lock import store_files
from dicomnet.storage.names import UnsafeNameError
from dicomnet.storage.part10 import NotPart10Error, Part10Info, read_part10
from dicomnet.storage.relabel import relabel_file
from dicomnet.storage.rows import row_from_file
from dicomnet.storage.transaction import fails_every_row

if TYPE_CHECKING:
    from dicomnet.storage.index import StorageIndex

__all__ = ["BATCH_ROWS", "BATCH_SECONDS", "FOLDER_ROWS_SQL", "GONE_ROWS_SQL", "FolderRows",
           "ReindexProgress", "ReindexResult", "make_scratch", "reindex"]

logger = logging.getLogger("dicomnet.storage")

#: Rows written per transaction at most. Past a few hundred the commit's cost
#: is lost in the rows' own; a batch lost to an interruption is read again.
BATCH_ROWS = 500
#: Seconds a row read waits for its batch's commit at most (files read slowly,
#: over a network say): what an interruption loses stays small.
BATCH_SECONDS = 0.25

#: The rows of the files directly in one folder (relative, ending in ``/``) whose
#: paths sort after ``:after`` (the folder itself at first): the range of paths
#: up to ``:end`` (the folder with its last ``/`` made ``0``, the next
#: character), less those in its subfolders (a ``/`` from character ``:cut``,
#: just past the folder, on). One search of the path index, its bytes compared
#: (BINARY collation: UTF-8's order is that of Python's str, code points).
_IN_FOLDER = ("relative_path > :after AND relative_path < :end "
              "AND instr(substr(relative_path, :cut), '/') = 0")
#: Those of the root's own files: no range to end the search, the rows in
#: subfolders read past (one walk of the path index over all the chunks).
_IN_ROOT = "relative_path > :after AND instr(relative_path, '/') = 0"
#: The next ``:limit`` of them, paths and sizes, in path order.
FOLDER_ROWS_SQL = ("SELECT relative_path, size FROM instance WHERE {} "
                   "ORDER BY relative_path LIMIT :limit")
#: All the rest of them, noted gone (pruning: a folder left).
_REST_GONE_SQL = "INSERT INTO temp.reindex_gone SELECT relative_path FROM instance WHERE {}"
#: The next ``?2`` relative paths after ``?1``, in order, of rows whose file the walk
#: did not yield: in a folder it did not yield a file of (the ``rtrim`` drops the
#: last component: every character but ``/`` is in its set), or gone from one it
#: did. One walk of the path index, whatever the number of rows.
GONE_ROWS_SQL = (
    "SELECT relative_path FROM instance WHERE relative_path > ? AND ("
    "rtrim(relative_path, replace(relative_path, '/', '')) NOT IN "
    "(SELECT folder FROM temp.reindex_folder) "
    "OR relative_path IN (SELECT relative_path FROM temp.reindex_gone)) "
    "ORDER BY relative_path LIMIT ?")
_SCRATCH = ("reindex_folder (folder TEXT PRIMARY KEY)",
            "reindex_gone (relative_path TEXT PRIMARY KEY)")


@dataclass(frozen=True, slots=True)
class ReindexResult:
    """What :meth:`StorageIndex.reindex` did."""

    added: int
    removed: int
    skipped: int
    #: Rows of indexed files whose size was not the row's (the file replaced
    #: after its row was written), read again and rewritten.
    updated: int = 0
    #: Folders below the root skipped as stores of their own (their own index, or
    #: held by another server), relative to it, ``/``-separated.
    nested: tuple[str, ...] = ()
    #: Files read whose File Meta Information names Explicit VR Little Endian
    #: over an Implicit VR data set (storage.relabel), relative to the root:
    #: indexed as Implicit VR Little Endian, their header left as it is unless
    #: ``repair``.
    mislabelled: tuple[str, ...] = ()
    #: Those of them whose header ``repair`` rewrote to say so.
    relabelled: tuple[str, ...] = ()
    #: Those ``repair`` could not rewrite, with why (each left as it was).
    not_relabelled: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class ReindexProgress:
    """How far :meth:`StorageIndex.reindex` is: files read so far (``files``),
    of which rows added and files skipped; rows of files gone removed (pruning,
    after the walk). Rows added are counted as read: the last batch of them may
    not be written yet."""

    files: int
    added: int
    skipped: int
    removed: int = 0


def reindex(index: StorageIndex, root: Path, *, prune: bool, repair: bool,
            on_progress: Callable[[ReindexProgress], None] | None) -> ReindexResult:
    """What :meth:`StorageIndex.reindex` does (see there), in batches."""
    return _Reindex(index, Path(root), repair, on_progress).run(prune)


class _Reindex:
    """One run: the walk, its counts and the batch of rows not yet written."""

    def __init__(self, index: StorageIndex, root: Path, repair: bool,
                 on_progress: Callable[[ReindexProgress], None] | None) -> None:
        self.index = index
        self.root = root
        self.repair = repair
        self.on_progress = on_progress
        self.added = self.skipped = self.removed = self.updated = 0
        self.prune = True
        self.files = 0  # files read so far
        # The folder walked (relative, ending in "/"; "" the root), its rows read a
        # chunk at a time, and the paths of those passed over (gone), to note.
        self.folder: str | None = None
        self.rows: FolderRows | None = None
        self.gone: list[str] = []
        self.mislabelled: list[str] = []
        self.relabelled: list[str] = []
        self.failed: list[tuple[str, str]] = []
        self.batch: list[RowValues] = []
        #: The batch's instances and their files: a second file of one is a copy.
        self.batch_uids: dict[str, str] = {}
        self.batch_moved: set[str] = set()  # of them, rows whose indexed file is gone
        self.batch_updated: set[str] = set()  # of them, rows of their own file, rewritten
        self.batch_since = 0.0

    def run(self, prune: bool) -> ReindexResult:
        self.prune = prune
        if prune:
            self._scratch(make_scratch)
        try:
            nested = self._walk()
            if prune:
                self._prune()
        finally:
            if prune:
                # Not left in a long-lived connection (a server's reindex).
                with contextlib.suppress(StorageError):
                    self._scratch(_drop_scratch)
        for folder in nested:
            logger.info("reindex: skipping %s, a store of its own", self.root / folder)
        return ReindexResult(added=self.added, removed=self.removed, skipped=self.skipped,
                             updated=self.updated, nested=tuple(nested),
                             mislabelled=tuple(self.mislabelled),
                             relabelled=tuple(self.relabelled),
                             not_relabelled=tuple(self.failed))

    def _walk(self) -> list[str]:
        """Each file, compared with the rows of its folder; the last batch written.
        The stores nested in the root, not entered."""
        index = self.index
        own = {index._path.name + suffix for suffix in ("", *COMPANIONS)}
        nested: list[str] = []
        for path in store_files(self.root, index._path.name, nested):
            if path.name in own and path.parent.resolve() == index._path.parent.resolve():
                continue  # the index itself, in a C-STORE SCP's root
            if self.batch and time.monotonic() - self.batch_since >= BATCH_SECONDS:
                self._write_batch()
            if self.on_progress is not None:  # the files before this one done
                self.on_progress(ReindexProgress(self.files, self.added, self.skipped))
            relative = path.relative_to(self.root).as_posix()
            folder = relative[:relative.rfind("/") + 1]  # "" for the root's own files
            if folder != self.folder:  # store_files yields a folder's files together
                self._leave_folder()
                self._enter_folder(folder)
            self.files += 1
            assert self.rows is not None
            known = self.rows.size(relative, self.gone.append if self.prune else None)
            if len(self.gone) >= BATCH_ROWS:
                self._note_gone()
            if known is not None:
                if _size(path) not in (known, None):
                    self._read(path, relative, update=True)
                elif self.repair:
                    self._repair(path, relative)
                continue
            self._read(path, relative)
        self._leave_folder()
        self._write_batch()
        return nested

    def _enter_folder(self, folder: str) -> None:
        """The rows of the files directly in ``folder`` (relative, ending in ``/``;
        ``""`` the root), read as its files come (:class:`FolderRows`). A row this
        run writes is of a file it read, in a folder walked before or in this
        one at a path the rows read have reached already, so never one read
        after (the rows as they were, as a snapshot of the folder's would be)."""
        self.folder = folder
        self.rows = FolderRows(self.index, folder)

    def _leave_folder(self) -> None:
        """With pruning, the folder left noted as walked, and the paths of its rows
        whose file it did not yield as gone (rows, not files: found again after
        the walk, whose moves may have taken some of them elsewhere): those
        passed over, then those past its last file, by SQL."""
        if self.folder is not None and self.prune:
            self._note_gone()
            folder, rows = self.folder, self.rows
            assert rows is not None

            def note(db: sqlite3.Connection) -> None:
                db.execute("INSERT INTO temp.reindex_folder VALUES (?)", (folder,))
                rows.rest_gone(db)

            self._scratch(note)
        self.folder, self.rows = None, None

    def _note_gone(self) -> None:
        """The paths of the rows passed over (no file of theirs yielded), noted gone."""
        gone, self.gone = self.gone, []
        if gone:

            def note(db: sqlite3.Connection) -> None:
                db.executemany("INSERT INTO temp.reindex_gone VALUES (?)",
                               [(path,) for path in gone])

            self._scratch(note)

    def _scratch(self, work: Callable[[sqlite3.Connection], None]) -> None:
        """``work`` on the temporary tables, under the connection's lock, outside
        any transaction: each statement its own, which writes SQLite's temporary
        file only (a few microseconds; the index's file and log untouched)."""
        with self.index._lock:
            try:
                work(self.index._db)
            except sqlite3.Error as exc:
                raise StorageError(f"reindex's temporary tables failed (SQLite keeps them in "
                                   f"$SQLITE_TMPDIR, $TMPDIR or /var/tmp): {exc}") from exc

    def _read(self, path: Path, relative: str, *, update: bool = False) -> None:
        """The row of a file without one (with ``update``, of an indexed file whose
        row is not its own any more), to the batch; or the file skipped."""
        try:
            info = read_part10(path)
            if info.relabelled_from is not None:
                self.mislabelled.append(relative)
                if self.repair and _relabelled(info, relative, self.failed) is not None:
                    self.relabelled.append(relative)
                    info = read_part10(path)
            values = row_values(row_from_file(self.root, relative, info))
        except Exception as exc:  # pydicom raises many kinds on damaged files
            self.skipped += 1
            if update:  # an indexed object's only copy, perhaps truncated: the operator's
                logger.warning("reindex: %s is not the size its row records and cannot be "
                               "read (%s): its row is left as it is; damaged, its object "
                               "stored again replaces it", path, exc)
            elif isinstance(exc, (UnsafeNameError, NotPart10Error, StorageError)):
                logger.info("reindex: skipping %s: %s", path, exc)
            else:
                logger.warning("reindex: cannot read %s: %s", path, exc)
            return
        if values.sop_uid in self.batch_uids:
            self._second_copy(relative, values.sop_uid, self.batch_uids[values.sop_uid])
            return  # the one read first wins
        indexed_at = self._indexed_at(values.sop_uid)
        if update:
            if indexed_at != relative:
                # Not the copy of its row's instance: another file given its name.
                logger.warning("reindex: %s is not the instance its row names (it holds "
                               "%s): left as it is", path, values.sop_uid)
                self.skipped += 1
                return
            self.batch_updated.add(values.sop_uid)
        elif indexed_at is not None:
            if (self.root / indexed_at).exists():
                self._second_copy(relative, values.sop_uid, indexed_at)
                return  # the one indexed wins
            # Its indexed file is gone: this is it, moved (or a copy of it). The
            # row follows it (the upsert), where it was skipped as a duplicate of
            # its own row, then that row removed: unindexed until a second run.
            self.batch_moved.add(values.sop_uid)
        if not self.batch:
            self.batch_since = time.monotonic()
        self.batch.append(values)
        self.batch_uids[values.sop_uid] = relative
        if update:
            self.updated += 1
        else:
            self.added += 1
        if len(self.batch) >= BATCH_ROWS or time.monotonic() - self.batch_since >= BATCH_SECONDS:
            self._write_batch()

    def _second_copy(self, relative: str, sop_instance_uid: str, indexed: str) -> None:
        """A file of an instance indexed at another path: skipped, and said at
        WARNING, as it is a file without row that no resend finds. A server
        killed while it replaced a copy under another study or series
        (``--duplicates overwrite``, or a damaged copy) leaves one: the new
        copy named, perhaps answered Success, before its row and the removal
        of the copy it replaced (storage.instances). Which one is the
        operator's to choose: reindex removes no object."""
        self.skipped += 1
        logger.warning("reindex: %s holds %s, which the index finds at %s: a second copy, "
                       "left unindexed (a server killed while one replaced the other?); "
                       "keep one, remove the other and reindex again", relative,
                       sop_instance_uid, indexed)

    def _indexed_at(self, sop_instance_uid: str) -> str | None:
        """The relative path of the row of ``sop_instance_uid``; None if none."""
        with self.index._lock:
            row = self.index._query_one(
                "SELECT relative_path FROM instance WHERE sop_instance_uid = ?",
                (sop_instance_uid,))
        return None if row is None else str(row[0])

    def _write_batch(self) -> None:
        """The batch's rows in one transaction. Should it fail for one row's sake
        (not the disk's, nor the file's: those stop the run), each row is written
        alone, and those that still fail are files skipped, as before batches."""
        rows, self.batch = self.batch, []
        moved, self.batch_moved = self.batch_moved, set()
        updated, self.batch_updated = self.batch_updated, set()
        self.batch_uids.clear()
        if not rows:
            return
        index = self.index
        try:
            with index._write() as db:
                previous = None
                for values in rows:
                    insert_row(db, values, previous)
                    previous = values
            self.removed += len(moved)  # each moved row left a path with no file
            return
        except StorageError as exc:
            if index._gone or fails_every_row(exc):  # no other row would go further
                raise
            logger.warning("reindex: a batch of %d rows failed (%s); writing them one by one",
                           len(rows), exc)
        for values in rows:
            try:
                with index._write() as db:
                    insert_row(db, values)
                self.removed += values.sop_uid in moved
            except StorageError as exc:
                if index._gone or fails_every_row(exc):
                    raise
                logger.info("reindex: skipping %s: %s", self.root / str(values.instance[5]),
                            exc)
                if values.sop_uid in updated:
                    self.updated -= 1
                else:
                    self.added -= 1
                self.skipped += 1

    def _prune(self) -> None:
        """Remove the rows of the files the walk did not yield (and parents left
        empty), in path order, in batches as rows are added, each said once
        committed. Each batch is found after the last (:data:`GONE_ROWS_SQL`):
        at most :data:`BATCH_ROWS` paths held."""
        after = ""
        while True:
            with self.index._lock:
                try:
                    gone = [relative for (relative,) in self.index._db.execute(
                        GONE_ROWS_SQL, (after, BATCH_ROWS))]
                except sqlite3.Error as exc:
                    raise StorageError(f"index query failed: {exc}") from exc
            if not gone:
                return
            removed = 0
            with self.index._write() as db:
                since = time.monotonic()
                for relative in gone:
                    after = relative
                    row = db.execute("SELECT sop_instance_uid, series_uid FROM instance "
                                     "WHERE relative_path = ?", (relative,)).fetchone()
                    if row is not None:
                        db.execute("DELETE FROM instance WHERE sop_instance_uid = ?", (row[0],))
                        prune_series(db, row[1])
                        removed += 1
                    if time.monotonic() - since >= BATCH_SECONDS:
                        break
            self.removed += removed
            if removed and self.on_progress is not None:
                self.on_progress(ReindexProgress(self.files, self.added, self.skipped,
                                                 self.removed))

    def _repair(self, path: Path, relative: str) -> None:
        """``reindex(repair=True)`` of an indexed file: its header relabelled if
        it names another syntax than its data set's, its row following at once
        (not batched: the file is rewritten already)."""
        try:
            info = read_part10(path)
        except (NotPart10Error, StorageError) as exc:
            logger.info("reindex: cannot read %s: %s", path, exc)
            return
        if info.relabelled_from is None:
            return
        self.mislabelled.append(relative)
        size = _relabelled(info, relative, self.failed)
        if size is None:
            return
        self.relabelled.append(relative)
        with self.index._write() as db:
            db.execute("UPDATE instance SET transfer_syntax_uid = ?, size = ? "
                       "WHERE relative_path = ?", (info.transfer_syntax_uid, size, relative))


class FolderRows:
    """The rows of the files directly in ``folder`` (relative, ending in ``/``;
    ``""`` the root) of ``index``, read in path order ``chunk`` at a time
    (:data:`BATCH_ROWS` by default; :data:`FOLDER_ROWS_SQL`, on the index's
    connection, under its lock), as :meth:`size` asks for the folder's files in
    the order of their names: memory holds a chunk, whatever the folder's size.
    Reindex compares each folder's files with them, and so does the check a
    server runs after an unclean stop (storage.recovery)."""

    def __init__(self, index: StorageIndex, folder: str, chunk: int | None = None) -> None:
        if chunk is None:
            chunk = BATCH_ROWS  # read now: a test may set it
        self._index = index
        self._where = _IN_FOLDER if folder else _IN_ROOT
        self._params: dict[str, str | int] = {
            "after": folder, "end": folder[:-1] + "0", "cut": len(folder) + 1, "limit": chunk}
        self._rows: deque[tuple[str, int]] = deque()
        self._done = False

    def size(self, relative: str, passed: Callable[[str], None] | None = None) -> int | None:
        """The size the row of the file ``relative`` (in the folder; after every
        one asked before, in str order) holds; None if no row names it. The
        rows before it not asked for (no file of theirs) go to ``passed``."""
        rows = self._rows
        while True:
            while rows and rows[0][0] < relative:
                gone = rows.popleft()[0]
                if passed is not None:
                    passed(gone)
            if rows or self._done:
                break
            self._fetch()
        if rows and rows[0][0] == relative:
            return rows.popleft()[1]
        return None

    def rest_gone(self, db: sqlite3.Connection) -> None:
        """The paths of the rows not asked for yet, into ``temp.reindex_gone``
        (:func:`make_scratch`), by SQL (the chunk read, then those after it)."""
        db.executemany("INSERT INTO temp.reindex_gone VALUES (?)",
                       [(path,) for path, _ in self._rows])
        if not self._done:
            db.execute(_REST_GONE_SQL.format(self._where), self._params)
        self._rows.clear()
        self._done = True

    def _fetch(self) -> None:
        with self._index._lock:
            try:
                chunk = self._index._db.execute(
                    FOLDER_ROWS_SQL.format(self._where), self._params).fetchall()
            except sqlite3.Error as exc:
                raise StorageError(f"index query failed: {exc}") from exc
        self._rows.extend(chunk)
        if chunk:
            self._params["after"] = chunk[-1][0]
        self._done = len(chunk) < int(self._params["limit"])


def make_scratch(db: sqlite3.Connection) -> None:
    """The two temporary tables of a run that prunes, empty: the folders it
    walked, and the paths of the rows gone from them. In SQLite's temporary file,
    a few pages of them in its cache, not the process's memory: ``temp_store``
    is set to FILE (SQLite's usual default; a build whose default is memory
    would hold them there), which drops the connection's temporary tables, but
    this module makes the only ones."""
    db.execute("PRAGMA temp_store=FILE")
    for table in _SCRATCH:
        db.execute(f"CREATE TEMP TABLE IF NOT EXISTS {table} WITHOUT ROWID")
        db.execute(f"DELETE FROM temp.{table.split()[0]}")


def _drop_scratch(db: sqlite3.Connection) -> None:
    for table in _SCRATCH:
        db.execute(f"DROP TABLE IF EXISTS temp.{table.split()[0]}")


def _relabelled(info: Part10Info, relative: str, failed: list[tuple[str, str]]) -> int | None:
    """Relabel ``info``'s file (storage.relabel): its new size; None, logged
    and added to ``failed`` with why, if it cannot be."""
    try:
        size = relabel_file(info)
    except (NotPart10Error, StorageError) as exc:
        logger.warning("reindex: cannot relabel %s: %s", info.path, exc)
        failed.append((relative, str(exc)))
        return None
    logger.info("reindex: %s relabelled: its File Meta Information now names %s, "
                "its data set's transfer syntax (was %s)", relative,
                info.transfer_syntax_uid, info.relabelled_from)
    return size


def _size(path: Path) -> int | None:
    """``path``'s size; None if it cannot be told (gone since listed: pruned later)."""
    try:
        return path.stat().st_size
    except OSError:
        return None
