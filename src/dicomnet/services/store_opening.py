"""Opening a store for a :class:`~dicomnet.services.storage.StorageSCP`: its
folder made (mode 0755) and checked, its lock taken (one server per folder,
storage.lock), its index opened, how the previous server stopped read from it and
this one's start recorded there (storage.recovery.StopRecord), and the sweep of what an
interrupted run left started in a thread (storage.cleanup.StaleSweep), followed,
after a server that did not close, by the check for the objects it answered but
never indexed (storage.recovery.RowRecovery): the server listens at once,
however large the store."""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from ..storage.cleanup import StaleSweep, open_index
from ..storage.files import DuplicatePolicy, StorageError
from ..storage.index import INDEX_NAME, StorageIndex
from ..storage.lock import StoreLock
from ..storage.recovery import (
    CHECK_STOPPED,
    ROWS_LOST,
    RowRecovery,
    StopRecord,
    record_unindexed,
)

__all__ = ["OpenedStore", "missing_folders", "open_store"]

log = logging.getLogger("dicomnet.services")


@dataclass(frozen=True, slots=True)
class OpenedStore:
    """A store's folder held by this process: :meth:`stop` the threads, write the
    last rows, :meth:`close`, close the index, then release ``lock``."""

    lock: StoreLock
    index: StorageIndex | None
    sweep: StaleSweep
    record: StopRecord | None  # with an index
    recovery: RowRecovery

    def stop(self) -> None:
        """Stop the start-up sweep, then the check that follows it."""
        self.sweep.stop()
        self.recovery.stop()

    def close(self, *, rows_lost: bool) -> None:
        """Record in the index, before it is closed, how this server stopped
        (``rows_lost``: rows it could not write): "closed" only if every object
        it stored has its row and the check, if one ran, ended."""
        if self.record is not None:
            self.record.close(ROWS_LOST if rows_lost
                              else None if self.recovery.complete else CHECK_STOPPED)

    def reopened(self, index: StorageIndex) -> StorageIndex:
        """``index``, the new one of a store's folder made again under its server,
        with this server's start recorded in it; returned."""
        if self.record is not None:
            self.record.restart(index)
        return index


def open_store(root: Path, *, index: bool,
               duplicates: DuplicatePolicy = DuplicatePolicy.KEEP) -> OpenedStore:
    """Make ``root`` (and its missing parents) if need be, take its lock, open its
    index (with ``index``) and start the sweep, then the check (whose work
    depends on the server's ``duplicates`` policy: storage.recovery). Raises ``StorageError`` (the
    folder cannot be made or used, or another server holds it); a refused start
    leaves nothing behind: the folders it made are removed again."""
    missing = missing_folders(root)
    try:
        # 0755 as the study folders, whatever the umask (000 made it 0777).
        root.mkdir(mode=0o755, parents=True, exist_ok=True)
        mode = stat.S_IMODE(root.stat().st_mode)
    except OSError as exc:  # a file in the way, a read-only or missing parent
        raise StorageError.from_os_error("cannot make the store's folder", root, exc) from exc
    if mode & stat.S_IWOTH and not mode & stat.S_ISVTX:
        log.warning("the store's folder %s is writable by every account (mode %04o): "
                    "they can rename or remove what it holds; chmod o-w it", root, mode)
    # Before anything is removed: the temporary files of a second server's
    # transfers under way are not stale (one server per folder).
    try:
        lock = StoreLock(root)
    except BaseException:
        for folder in missing:
            with contextlib.suppress(OSError):  # not empty: another's meanwhile
                folder.rmdir()
        raise
    try:
        # A new index (none, or deleted) is said by open_index, which points at
        # reindex: not checked here, it would be every object's row.
        existed = (root / INDEX_NAME).exists()
        opened = open_index(root / INDEX_NAME) if index else None
        if not index and existed:
            # Its objects get no rows: the next indexed server must check for them.
            record_unindexed(root / INDEX_NAME)
    except BaseException:
        lock.release()
        raise
    # Before anything is stored; never raises.
    record = StopRecord(opened) if opened is not None else None
    # Last: once they run, nothing above may fail (they stop before the lock goes).
    sweep = StaleSweep(root)
    return OpenedStore(lock, opened, sweep, record, RowRecovery(
        root, opened, record.previous if record is not None and existed else None,
        after=sweep, duplicates=duplicates))


def missing_folders(root: Path) -> list[Path]:
    """``root`` and those of its parents that are not there, the innermost first."""
    missing = []
    folder = Path(os.path.abspath(root))
    while not os.path.lexists(folder) and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing
