"""An embedded SQLite index of the stored instances, for Query/Retrieve.

Four tables follow the Patient Root information model (PS3.4 C.6.1): patient,
study, series, instance, holding the keys a C-FIND SCP matches on (PS3.4
C.6.1.1.2 to C.6.1.1.5) and where each instance's file is (their SQL, and how
a row is written into them: :mod:`~dicomnet.storage.index_tables`).

Ordering rule: **no index row without a durable file.** Call
:meth:`StorageIndex.add_instance` only after
:meth:`~dicomnet.storage.files.AtomicWriter.commit` returned. A crash
between the two leaves a file without a row, which :meth:`StorageIndex.reindex`
repairs by scanning the tree; the opposite order could leave a row that
points at nothing, which a C-MOVE would then fail on.

Threads: one connection, opened with ``check_same_thread=False``, guarded by
a lock; every public method takes the lock, so an asyncio server may call
from any worker thread (``run_in_executor``). SQLite serialises writers
anyway, and one connection avoids per-call open costs and "database is
locked" retries between our own threads. The database is in WAL mode with
``synchronous=NORMAL``: a commit is atomic and survives a crash of the
process, but the last rows may be lost on a power cut (one fsync less per
stored object). The files themselves are fsynced before their rows are
written, so what a power cut can lose is only rows, and ``reindex`` restores
them from the files.

Modes: the index holds patient names and IDs, so it is its owner's only, as
the stored files are (``0600``): created so before SQLite opens it (which gives
its ``-wal``, ``-shm`` and ``-journal`` files the same mode). An existing one
that others may read (from an older version) is restricted when opened, said at
INFO, as nothing in a store is meant for other accounts; if it cannot be, a
warning says so.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

from pydicom.dataset import Dataset

from dicomnet.errors import ConfigurationError
from dicomnet.storage.files import StorageError
from dicomnet.storage.header import HeaderAttributes
from dicomnet.storage.index_file import (
    FileChange,
    IndexFiles,
    file_id,
    file_state,
    owner_only,
)
from dicomnet.storage.index_schema import SCHEMA_VERSION, is_new_index, make_schema
from dicomnet.storage.index_tables import (
    insert_row,
    match_condition,
    prune_series,
    row_values,
)
from dicomnet.storage.reindex import ReindexProgress, ReindexResult, reindex
from dicomnet.storage.rows import NewInstance
from dicomnet.storage.transaction import BUSY_WAIT_S, Transaction, damaged_hint, fails_every_row

__all__ = [
    "INDEX_NAME",
    "IndexedInstance",
    "NewInstance",
    "QueryLevel",
    "ReindexProgress",
    "ReindexResult",
    "SCHEMA_VERSION",
    "StorageIndex",
]

logger = logging.getLogger("dicomnet.storage")

QueryLevel = Literal["PATIENT", "STUDY", "SERIES", "IMAGE"]
_LEVELS: dict[str, int] = {"PATIENT": 0, "STUDY": 1, "SERIES": 2, "IMAGE": 3}

#: The index's file name in a store's folder (a C-STORE SCP's root).
INDEX_NAME = "index.sqlite"



# keyword -> (level, SQL column, VR); the VR decides how a value matches.
_KEYS: dict[str, tuple[int, str, str]] = {
    "PatientID": (0, "p.patient_id", "LO"),
    "PatientName": (0, "p.patient_name", "PN"),
    "PatientBirthDate": (0, "p.patient_birth_date", "DA"),
    "PatientSex": (0, "p.patient_sex", "CS"),
    "StudyInstanceUID": (1, "st.study_uid", "UI"),
    "StudyDate": (1, "st.study_date", "DA"),
    "StudyTime": (1, "st.study_time", "TM"),
    "AccessionNumber": (1, "st.accession_number", "SH"),
    "StudyID": (1, "st.study_id", "SH"),
    "StudyDescription": (1, "st.study_description", "LO"),
    "ReferringPhysicianName": (1, "st.referring_physician_name", "PN"),
    "ModalitiesInStudy": (1, "", "CS"),  # derived from the series rows
    "SeriesInstanceUID": (2, "se.series_uid", "UI"),
    "Modality": (2, "se.modality", "CS"),
    "SeriesNumber": (2, "se.series_number", "IS"),
    "SeriesDescription": (2, "se.series_description", "LO"),
    "SOPInstanceUID": (3, "i.sop_instance_uid", "UI"),
    "SOPClassUID": (3, "i.sop_class_uid", "UI"),
    "InstanceNumber": (3, "i.instance_number", "IS"),
}
_UNIQUE = ("PatientID", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
_FROM = (
    "patient p",
    "study st JOIN patient p ON p.patient_id = st.patient_id",
    "series se JOIN study st ON st.study_uid = se.study_uid "
    "JOIN patient p ON p.patient_id = st.patient_id",
    "instance i JOIN series se ON se.series_uid = i.series_uid "
    "JOIN study st ON st.study_uid = se.study_uid "
    "JOIN patient p ON p.patient_id = st.patient_id",
)
_MODALITIES_SQL = "SELECT DISTINCT modality FROM series WHERE study_uid = ? ORDER BY modality"

_INSTANCE_COLUMNS = (
    "i.sop_instance_uid, i.sop_class_uid, se.series_uid, st.study_uid, st.patient_id, "
    "i.instance_number, i.transfer_syntax_uid, i.relative_path, i.size, i.sha256, "
    "i.received_at, i.calling_ae, i.peer_fingerprint"
)
_INSTANCE_FROM = _FROM[3]

@dataclass(frozen=True, slots=True)
class IndexedInstance:
    """One instance row, with the keys of its parents."""

    sop_instance_uid: str
    sop_class_uid: str
    series_instance_uid: str
    study_instance_uid: str
    patient_id: str
    instance_number: str | None
    transfer_syntax_uid: str
    relative_path: str
    size: int
    sha256: str | None
    received_at: str
    calling_ae: str
    peer_fingerprint: str | None


#: What check_file says of a file removed with its folder (rm -rf of the store):
#: its rows' objects went too, no reindex brings them back.
_WITH_FOLDER = "removed with its folder"


class StorageIndex:
    """The SQLite index at ``path`` (created with its schema if absent).

    Use as a context manager or call :meth:`close`. Errors from SQLite are
    raised as :class:`~dicomnet.storage.files.StorageError`.
    """

    def __init__(self, path: Path) -> None:
        self._path = Path(path)
        self._lock = threading.Lock()
        self._reader: sqlite3.Connection | None = None  # for locate(), opened on first use
        self._read_lock = threading.Lock()
        self.closed = False
        owner_only(self._path)
        try:
            self._db = sqlite3.connect(
                self._path, isolation_level=None, check_same_thread=False, timeout=BUSY_WAIT_S
            )
        except sqlite3.Error as exc:
            raise self._cannot_open(exc) from exc
        try:
            # Checked first: a database this version does not read is left as it was.
            new = is_new_index(self._db, self._path)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            if new:
                make_schema(self._db)
            # Changes by other connections (commits, log resets) move it; checkpoints
            # do not.
            self._data_version: int = self._db.execute("PRAGMA data_version").fetchone()[0]
        except BaseException as exc:  # not an index this version reads, say
            self._db.close()
            if isinstance(exc, sqlite3.Error):
                raise self._cannot_open(exc) from exc
            raise
        self._file: tuple[int, int] | None = file_id(self._path)
        self._folder = file_id(self._path.parent)
        self._gone = False  # the file removed or replaced since: no more writes
        # Its size and modification time as this connection last left it: in WAL
        # mode only checkpoints write the file, so another change is another
        # program's: a cp over it, or its checkpoint (told apart: index_file).
        self._state = file_state(self._path)
        self._files = IndexFiles(self._path, self._state)  # SQLite made -wal, -shm by now
        self._unwritten = 0  # rows refused since the file went (said at close)
        self._fate = ""  # what happened to the file, for that line

    def _cannot_open(self, exc: sqlite3.Error) -> StorageError:
        return StorageError(f"cannot open index {self._path}: {exc}"
                            f"{damaged_hint(exc, self._path.parent)}")

    def close(self) -> None:
        """Close the connection."""
        if self._unwritten and self._fate != _WITH_FOLDER:
            logger.error("%d index row(s) were not written to %s, %s while in use; with the "
                         "server stopped, 'dicomnet reindex %s%s' restores them",
                         self._unwritten, self._path, self._fate,
                         "--create " if self._fate == "removed" else "", self._path.parent)
            self._unwritten = 0
        with self._lock:
            self._db.close()
        with self._read_lock:
            self.closed = True
            if self._reader is not None:
                self._reader.close()
                self._reader = None
        self._files.close()  # after SQLite's own descriptors: POSIX locks

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with Transaction(self._db, self._path) as db:
            yield db
            # Under the write lock, just before the commit (and its checkpoint).
            state, log = file_state(self._path), self._files.checkpoints()
        # Committed: the log may have been restarted, the file checkpointed. Its new
        # state is ours only if it was as we left it before and a checkpoint ran in
        # the commit: a change otherwise (a copy over it since the look before) is
        # left to the next look (check_file), as is one before the commit.
        committed = file_state(self._path)
        self._files.note()
        if state == self._state != committed and self._files.checkpointed_since(log):
            self._state = committed
            self._files.note_contents(committed)

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """The transaction of a write besides the row batches (remove_instance,
        add_instance, reindex's): the file looked at first, as a batch does, since
        its commit takes the file's state as its own; refused (StorageError) once
        the file is written no more."""
        if not self.check_file():
            raise StorageError(f"index {self._path} not written: {self._fate} while in use")
        with self._lock, self._transaction() as db:
            yield db

    def add_instance(
        self,
        ds: Dataset | HeaderAttributes,
        *,
        relative_path: str,
        transfer_syntax_uid: str,
        size: int,
        calling_ae: str,
        peer_fingerprint: str | None,
        sha256: str | None = None,
        received_at: datetime | None = None,
    ) -> None:
        """Record one stored instance, its series, study and patient, atomically.

        Call only after the file is durable (see the module docstring).
        ``ds`` needs SOP Instance, Study Instance and Series Instance UIDs;
        other keys are taken when present. Parent rows are created or
        updated with the latest values; a second instance with the same SOP
        Instance UID replaces the row (``OVERWRITE``), and parents left
        empty by the move are removed. Raises StorageError once the index is
        written no more (:meth:`check_file`).
        """
        self._add(NewInstance(ds, relative_path=relative_path,
                              transfer_syntax_uid=transfer_syntax_uid, size=size,
                              calling_ae=calling_ae, peer_fingerprint=peer_fingerprint,
                              sha256=sha256, received_at=received_at))

    def _add(self, row: NewInstance) -> None:
        values = row_values(row)
        with self._write() as db:
            insert_row(db, values)

    def add_instances(self, rows: Iterable[NewInstance]) -> int:
        """Record many stored instances in one transaction (a C-STORE SCP's batch);
        return how many rows were written (an instance given twice counts twice).

        A row that cannot be indexed (a missing UID, an unsafe path, attributes
        that cannot be read) is logged and skipped. Should the transaction fail
        (an SQL error on one row), each row is tried again in its own, so that
        only the faulty ones are lost (``reindex`` restores them from the files).
        """
        prepared = []
        for row in rows:
            try:
                prepared.append(row_values(row))
            except (StorageError, ConfigurationError) as exc:
                logger.warning("not indexed: %s: %s", row.relative_path, exc)
            except Exception as exc:  # pydicom raises many kinds on damaged values
                # One object's damage must not cost the batch the others' rows.
                logger.warning("not indexed: %s: cannot read its attributes (%s: %s)",
                               row.relative_path, type(exc).__name__, exc)
        if not prepared:
            return 0
        try:
            if not self.check_file():
                self._unwritten += len(prepared)
                return 0
        except StorageError as exc:  # not looked at: another program holds the write lock
            self._lost(len(prepared), exc)
            return 0
        try:
            with self._lock, self._transaction() as db:
                previous = None
                for values in prepared:
                    insert_row(db, values, previous)
                    previous = values
            return len(prepared)
        except StorageError as exc:
            if fails_every_row(exc):
                self._lost(len(prepared), exc)
                return 0
            logger.warning("index batch of %d rows failed (%s); writing them one by one",
                           len(prepared), exc)
        written = 0
        for done, values in enumerate(prepared):
            try:
                with self._lock, self._transaction() as db:
                    insert_row(db, values)
                written += 1
            except StorageError as exc:
                if fails_every_row(exc):  # the disk's, not the row's: one line for all
                    self._lost(len(prepared) - done, exc)
                    return written
                logger.warning("not indexed: %s: %s", values.instance[5], exc)
        return written

    def check_file(self) -> bool:
        """Whether rows may still be written: False once the file was removed or
        replaced since it was opened (an operator's rm, a backup restored), or
        overwritten in place (:meth:`_overwritten`; another program's checkpoint
        is not that), said once (removed with its folder, the objects its rows
        describe went too: said so, and reindex is not offered). One stat per
        batch of rows; a few reads more when the file changed.

        The connection holds the old file, which nothing reads again, but shares
        the write-ahead log with whatever file now has the name (SQLite finds it
        by name, ``-wal``): its frames, read or checkpointed with the new file,
        would show or write the old file's pages in it. So the log is emptied
        into the old file (``wal_checkpoint(TRUNCATE)``) and nothing more is
        written; the rows lost are said, and reindex restores them.

        Raises StorageError when the file changed and cannot be looked at (another
        program holds the write lock past the busy timeout): nothing is dropped,
        the file is looked at again at the next write."""
        if self._gone:
            return False
        # Under the lock: a commit of another thread (its checkpoint) notes the
        # file's new state under it (``_transaction``); looked at in between, that
        # checkpoint would pass for another program's write.
        with self._lock:
            state = file_state(self._path)
            if self._file is None or state == self._state:
                return True
            now = None if state is None else state[:2]
            change, failed = self._explain_change() if now == self._file else (None, None)
            if change is not None and change.log_fits:
                logger.debug("index %s changed: %s", self._path, change.why)
                self._state = state
                self._files.note_contents(state)
                return True
        if change is not None:
            return self._overwritten(change, failed)
        self._gone = True
        self._fate = "removed" if now is None else "replaced"
        with self._lock:
            try:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as exc:
                logger.warning("cannot empty the write-ahead log of index %s: %s", self._path,
                               exc)
        if now is None and file_id(self._path.parent) != self._folder:
            # rm -rf of the store: no reindex brings back what went with the folder.
            self._fate = _WITH_FOLDER
            logger.warning("index %s was removed with its folder while in use: the rows not "
                           "yet written are dropped, their objects gone with the folder",
                           self._path)
            return False
        logger.error("index %s was %s while in use: the rows of the objects stored since "
                     "are not in it; with the server stopped, 'dicomnet reindex %s%s' restores "
                     "them", self._path, "removed" if now is None else "replaced",
                     "--create " if now is None else "", self._path.parent)
        return False

    def _explain_change(self) -> tuple[FileChange, str | None]:
        """Why the file (the same one) changed outside this connection's commits:
        another program's checkpoint or a copy over it (storage.index_file),
        looked at under this connection's write lock, and whether another
        connection changed the log since the last look (``PRAGMA data_version``);
        and, unless a checkpoint, the log dropped under that same lock (see
        :meth:`_overwritten`): None, or why it could not be. Called under ``_lock``."""
        # Its whole file compared before the locks (a second a GiB): under them,
        # other programs' checkpoints answered busy all that time.
        same = self._files.same_contents()
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            # Another program writes the log: dropped under it, its transaction's
            # frames would go ("database disk image is malformed"). Looked at later.
            raise StorageError(f"index {self._path} changed, and cannot be locked to see "
                               f"how: {exc}") from exc
        try:
            # No other program's checkpoint from the look to the drop: a PASSIVE one
            # needs no write lock, and would copy the log into a copy found.
            with self._files.checkpoints_held():
                try:
                    version = self._db.execute("PRAGMA data_version").fetchone()[0]
                    others_wrote, self._data_version = version != self._data_version, version
                    change = self._files.explain(others_wrote=others_wrote, same=same)
                except sqlite3.Error as exc:
                    change = FileChange("unknown", f"it cannot be read: {exc}")
                return change, None if change.log_fits else self._files.drop_log()
        finally:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")

    def _overwritten(self, change: FileChange, failed: str | None) -> bool:
        """The file written by another program in a way that is not a checkpoint
        of this connection's log (a copy over it: same file, other contents), or
        cannot be told from one (``change.why``): its pages may no longer be those
        this connection's write-ahead log was made on. Checkpointed, by this
        connection's close or by any later opener (SQLite finds the log by name),
        the log would write this connection's pages into the new contents: a
        damaged database ("database disk image is malformed"). So the log was
        emptied unread, its index (``-shm``) cleared so that every connection
        reads the file as it now is (storage.index_file ``drop_log``; ``failed``:
        why it could not be), and nothing more is written; the rows it held, and
        those of the objects stored from now on, are restored by reindex. Another
        program's rows in the log went with it: written on the old file's pages or
        on pages of our log, they do not fit the new contents either. Another
        program's checkpoint (``PRAGMA wal_checkpoint``, the sqlite3 shell, a
        backup tool) is told apart from a copy by the log's own records
        (storage.index_file), also when it wrote since (restarting the log:
        its rows kept); when it cannot be, the writes stop as for a copy, and the
        log line says a checkpoint may be the cause. A copy made before a commit
        whose checkpoint wrote the log into it passes for that checkpoint
        (storage.index_file)."""
        self._gone = True
        self._fate = "overwritten" if change.verdict == "copy" else "changed by another program"
        if failed is not None:
            logger.warning("cannot drop the write-ahead log of index %s: %s", self._path, failed)
        if change.verdict == "copy":
            logger.error("index %s was overwritten while in use (the same file, other "
                         "contents: copied over?): this server writes it no more, and dropped "
                         "its own log of changes not yet in it, which would damage the new "
                         "contents; the rows of the objects stored since are not in it; with "
                         "the server stopped, 'dicomnet reindex %s' makes it describe the "
                         "folder's files", self._path, self._path.parent)
            logger.debug("index %s: %s", self._path, change.why)
            return False
        logger.error("index %s was written by another program while in use, and this cannot "
                     "be told from a copy over it (%s; another program's checkpoint, 'PRAGMA "
                     "wal_checkpoint', can look so): this server "
                     "writes it no more, and dropped its own log of changes not yet in it, "
                     "which would damage other contents; the rows of the objects stored since "
                     "are not in it; with the server stopped, 'dicomnet reindex %s' makes it "
                     "describe the folder's files", self._path, change.why, self._path.parent)
        return False

    def _lost(self, rows: int, exc: StorageError) -> None:
        logger.error("%d index row(s) not written (%s): the objects are stored; with the "
                     "server stopped, 'dicomnet reindex %s' restores them", rows, exc,
                     self._path.parent)

    def remove_instance(self, sop_instance_uid: str) -> bool:
        """Delete an instance row (and parents left empty); True if it existed.

        The file is the caller's to delete, after this returns. Raises
        StorageError once the index is written no more (:meth:`check_file`).
        """
        with self._write() as db:
            row = db.execute(
                "SELECT series_uid FROM instance WHERE sop_instance_uid = ?",
                (sop_instance_uid,),
            ).fetchone()
            if row is None:
                return False
            db.execute("DELETE FROM instance WHERE sop_instance_uid = ?", (sop_instance_uid,))
            prune_series(db, row[0])
            return True

    def get_instance(self, sop_instance_uid: str) -> IndexedInstance | None:
        """Return the row of one instance, or None."""
        with self._lock:
            row = self._query_one(
                f"SELECT {_INSTANCE_COLUMNS} FROM {_INSTANCE_FROM} WHERE i.sop_instance_uid = ?",
                (sop_instance_uid,),
            )
        return None if row is None else IndexedInstance(*row)

    def locate(self, sop_instance_uid: str) -> str | None:
        """Where an instance's file is (relative to the root), or None."""
        located = self.locate_sized(sop_instance_uid)
        return None if located is None else located[0]

    def locate_sized(self, sop_instance_uid: str) -> tuple[str, int] | None:
        """Where an instance's file is (relative to the root) and the size its row
        records, or None. On a connection of its own: a C-STORE SCP asks once per
        object, and must not wait for a batch of rows being written (in WAL mode
        readers do not)."""
        try:
            with self._read_lock:
                if self.closed:
                    raise StorageError(f"index {self._path} is closed")
                if self._reader is None:
                    self._reader = sqlite3.connect(self._path, isolation_level=None,
                                                   check_same_thread=False,
                                                   timeout=BUSY_WAIT_S)
                row = self._reader.execute(
                    "SELECT relative_path, size FROM instance WHERE sop_instance_uid = ?",
                    (sop_instance_uid,)).fetchone()
        except sqlite3.Error as exc:
            raise StorageError(f"index {self._path}: {exc}") from exc
        return None if row is None else (str(row[0]), int(row[1]))

    def count(self) -> dict[str, int]:
        """Return the number of patients, studies, series and instances."""
        with self._lock:
            row = self._query_one(
                "SELECT (SELECT COUNT(*) FROM patient), (SELECT COUNT(*) FROM study), "
                "(SELECT COUNT(*) FROM series), (SELECT COUNT(*) FROM instance)",
                (),
            )
        assert row is not None  # an aggregate always yields one row
        return dict(zip(("patients", "studies", "series", "instances"), row, strict=True))

    @staticmethod
    def supported_keys(level: QueryLevel) -> tuple[str, ...]:
        """Keywords :meth:`find` accepts at ``level`` (its own and the levels above)."""
        depth = _LEVELS[level]
        return tuple(k for k, (lvl, _c, _v) in _KEYS.items() if lvl <= depth)

    def find(self, level: QueryLevel, keys: Mapping[str, str]) -> list[dict[str, str]]:
        """Match ``keys`` at ``level`` as a C-FIND SCP would (PS3.4 C.2.2.2).

        Each key is a keyword of :meth:`supported_keys` (others raise
        ``ConfigurationError``). An empty value or ``*`` matches everything
        and only asks for the attribute back (Universal matching); a value
        with ``*`` or ``?`` on a text attribute is Wild Card matching (case
        sensitive); ``A-B``, ``-B`` and ``A-`` on a date or time is Range
        matching; ``\\``-separated UIDs are List of UID matching; anything
        else is Single Value matching. ``ModalitiesInStudy`` matches a study
        if any of its series has a matching Modality.

        Each result holds every requested key plus the unique key of
        ``level`` and the levels above, as text ("" when absent).
        """
        if level not in _LEVELS:
            raise ConfigurationError(f"unknown query level {level!r}")
        depth = _LEVELS[level]
        unknown = [k for k in keys if k not in _KEYS or _KEYS[k][0] > depth]
        if unknown:
            raise ConfigurationError(f"keys not supported at {level} level: {', '.join(unknown)}")
        returned = list(dict.fromkeys([*_UNIQUE[: depth + 1], *keys]))
        columns = [k for k in returned if k != "ModalitiesInStudy"]
        where: list[str] = []
        params: list[str] = []
        for keyword, value in keys.items():
            if value in ("", "*"):
                continue
            _lvl, column, vr = _KEYS[keyword]
            if keyword == "ModalitiesInStudy":
                conds = []
                for modality in value.split("\\"):
                    cond, extra = match_condition("s2.modality", vr, modality)
                    conds.append(cond)
                    params.extend(extra)
                where.append(
                    "EXISTS (SELECT 1 FROM series s2 WHERE s2.study_uid = st.study_uid "
                    f"AND ({' OR '.join(conds)}))"
                )
                continue
            cond, extra = match_condition(column, vr, value)
            where.append(cond)
            params.extend(extra)
        select = ", ".join(f"COALESCE({_KEYS[k][1]}, '')" for k in columns)
        sql = f"SELECT DISTINCT {select} FROM {_FROM[depth]}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY {_KEYS[_UNIQUE[depth]][1]}"
        results: list[dict[str, str]] = []
        with self._lock:
            try:
                rows = self._db.execute(sql, params).fetchall()
                for row in rows:
                    result = {k: str(v) for k, v in zip(columns, row, strict=True)}
                    if "ModalitiesInStudy" in returned:
                        found = self._db.execute(_MODALITIES_SQL, (result["StudyInstanceUID"],))
                        result["ModalitiesInStudy"] = "\\".join(m for (m,) in found if m)
                    results.append({k: result[k] for k in returned})
            except sqlite3.Error as exc:
                raise StorageError(f"index query failed: {exc}") from exc
        return results

    def _query_one(self, sql: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
        try:
            row: tuple[Any, ...] | None = self._db.execute(sql, params).fetchone()
        except sqlite3.Error as exc:
            raise StorageError(f"index query failed: {exc}") from exc
        return row

    def reindex(self, root: Path, *, prune: bool = True, repair: bool = False,
                on_progress: Callable[[ReindexProgress], None] | None = None,
                ) -> ReindexResult:
        """Add rows for files under ``root`` that have none; drop rows without files.

        This is the recovery half of the ordering rule. Hidden files (our
        temporary files among them) and folders reached through symbolic
        links are not visited; files that are not Part 10, lack the UIDs, or
        whose names fail :func:`~dicomnet.storage.names.safe_relative_path`
        are counted as skipped. A file whose SOP Instance UID is already
        indexed under another path is skipped too: the indexed one wins, unless
        its file is gone (a file moved), when the row follows the file. The
        index's own files are not visited, nor the stores nested in ``root``
        (a folder holding its own index file, or held by another server:
        ``nested`` in the result), whose files their own index keeps. The index's
        file changed under it (:meth:`check_file`) stops it (StorageError), as
        does a write that fails for every row (a full disk, the index locked by
        another program past ``BUSY_WAIT_S``): the rows written before stay.

        A file whose File Meta Information names Explicit VR Little Endian over
        an Implicit VR data set (stored so by servers before the SCP relabelled
        them) is indexed as Implicit VR Little Endian, its data set's syntax,
        and listed in ``mislabelled``; its header is left as it is: reindex
        writes the index, not the archive's files, unless asked. ``repair``
        reads every file's header, the indexed ones too, and rewrites those
        headers (atomically: :func:`~dicomnet.storage.relabel.relabel_file`),
        their rows following (``relabelled``). ``on_progress`` hears of each
        file visited and each batch of rows removed (a store of many thousand
        files takes minutes: its caller says how far it is).

        Rows are written in batches (:mod:`~dicomnet.storage.reindex`: a few
        hundred, or a quarter of a second's, per transaction); interrupted, it
        leaves the batches committed, each row of a file that is there, and the
        next reindex reads the rest again.
        """
        return reindex(self, Path(root), prune=prune, repair=repair, on_progress=on_progress)
