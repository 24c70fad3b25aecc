"""Opening a store for a :class:`~dicomnet.services.storage.StorageSCP`: its
folder made (mode 0755) and checked, its lock taken (one server per folder,
storage.lock), its index opened, and the sweep of what an interrupted run left
started in a thread (storage.cleanup.StaleSweep), so that the server listens at
once, however large the store."""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from ..storage.cleanup import StaleSweep, open_index
from ..storage.files import StorageError
from ..storage.index import INDEX_NAME, StorageIndex
from ..storage.lock import StoreLock

__all__ = ["OpenedStore", "missing_folders", "open_store"]

log = logging.getLogger("dicomnet.services")


@dataclass(frozen=True, slots=True)
class OpenedStore:
    """A store's folder held by this process: release ``lock`` only after
    ``sweep.stop()``."""

    lock: StoreLock
    index: StorageIndex | None
    sweep: StaleSweep


def open_store(root: Path, *, index: bool) -> OpenedStore:
    """Make ``root`` (and its missing parents) if need be, take its lock, open its
    index (with ``index``) and start the sweep. Raises ``StorageError`` (the
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
        opened = open_index(root / INDEX_NAME) if index else None
    except BaseException:
        lock.release()
        raise
    # Last: once it runs, nothing above may fail (it must stop before the lock goes).
    return OpenedStore(lock, opened, StaleSweep(root))


def missing_folders(root: Path) -> list[Path]:
    """``root`` and those of its parents that are not there, the innermost first."""
    missing = []
    folder = Path(os.path.abspath(root))
    while not os.path.lexists(folder) and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing
