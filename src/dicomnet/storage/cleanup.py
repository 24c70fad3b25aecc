"""What a store's server clears when it starts: the temporary files of stores
that were interrupted, and the empty folders they and other stores left; and
the index it opens, said when new in a folder that already holds objects.

The server sweeps in a thread (:class:`StaleSweep`) while it already listens
and stores: walking a store of a million files takes seconds, during which
senders would find no one listening. What it may remove is chosen so that the
transfers it runs beside are never touched:

* a temporary file named with this process's mark (``storage.files.RUN_MARK``:
  every temporary file this process makes carries it) is left; any other is an
  interrupted run's (the store's lock keeps every other process out). A name
  needs no clock: a wall clock stepped back, or a file system's coarse or
  remote timestamps, cannot make a transfer under way look old. (So one an
  earlier server of this same process left, a writer never aborted, stays
  until another process's start, or reindex.)
* an empty study or series folder is removed only if it has not changed since
  shortly before the sweep started (:data:`FOLDER_SETTLE`; a parent looked at
  before the sweep removes a folder in it, which changes it): a folder a store
  names a file in, or empties by an overwrite elsewhere (storage.instances),
  changed since, and is left. A store that opened an unnamed file
  (``O_TMPFILE``: no name, no change) in an old empty folder finds it gone when
  it names the file, and makes it again (``AtomicWriter.commit``), as after a
  retention job: the sweep costs it a retry, never a failure.

``dicomnet reindex`` sweeps before it reads the store, synchronously and
without those rules: it holds the lock and nothing stores meanwhile.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
from pathlib import Path

from dicomnet.storage.files import RUN_MARK, TEMP_SUFFIX, forget_folder
from dicomnet.storage.index import INDEX_NAME, StorageIndex
from dicomnet.storage.lock import is_uid_folder, walk_store

__all__ = ["FOLDER_SETTLE", "StaleSweep", "cleanup_stale", "open_index"]

logger = logging.getLogger("dicomnet.storage")

#: Seconds before the sweep started within which a folder's last change keeps it
#: from the sweep: more than a file system's timestamp granularity (FAT's 2 s;
#: a kernel's coarse clock lags the one ``time.time`` reads by a tick). A folder
#: emptied by the run interrupted just before stays until the next start.
FOLDER_SETTLE = 5.0


def cleanup_stale(root: Path, *, started: float | None = None,
                  stop: threading.Event | None = None) -> int:
    """Remove every ``*.dicomnet-part`` file below ``root``; return how many (one
    that cannot be removed, in a read-only folder say, is said and left).
    Empty folders below ``root`` named as the store names its folders (a study
    or series UID), left by such a store or by a duplicate kept where the
    instance already was, are removed too; other folders are left alone.

    ``started`` (``time.time()`` once the store's lock is held, before the
    server stores anything) says that it stores meanwhile: this process's
    temporary files (named with ``RUN_MARK``) are then left, and the folders
    changed since ``started - FOLDER_SETTLE`` (module docstring). Without it,
    run it with the lock held and nothing storing (reindex). ``stop``, once set, ends the
    sweep before its next removal or folder; what was removed is said all the
    same.

    Symbolic links to folders are not followed, nor folders that are stores of
    their own, nested in this one (holding their own index, or held by
    another server: their temporary files may be transfers under way), as
    :meth:`~dicomnet.storage.index.StorageIndex.reindex` does not; nothing
    else is touched.
    """
    own = None if started is None else f".{RUN_MARK}-"
    removed = folders = 0
    top = os.fspath(root)
    # Folders that kept no file, with how many subfolders they had: removed
    # deepest first once their subfolders all went. Only these are remembered,
    # not the whole walk (a million names).
    empty: list[tuple[str, int]] = []
    # Not the stores nested in this one: a folder with its own index, or one another
    # server holds (their temporary files are transfers under way, or their own
    # server's to remove when it starts).
    for dirpath, dirnames, filenames in walk_store(root, INDEX_NAME):
        if stop is not None and stop.is_set():
            break
        kept = 0
        for name in filenames:
            if not name.endswith(TEMP_SUFFIX) or (own is not None and name.startswith(own)):
                kept += 1
                continue
            if stop is not None and stop.is_set():
                break
            path = Path(dirpath, name)
            try:
                os.unlink(path)
            except FileNotFoundError:
                continue
            except OSError as exc:
                # Harmless where it is (hidden, never read): no reason not to serve.
                logger.warning("cannot remove the stale temporary file %s: %s", path,
                               exc.strerror or exc)
                kept += 1
                continue
            removed += 1
        if dirpath != top and not kept and is_uid_folder(os.path.basename(dirpath)):
            empty.append((dirpath, len(dirnames)))
    settled = None if started is None else started - FOLDER_SETTLE
    emptied: collections.Counter[str] = collections.Counter()
    # Whether a folder was unchanged, looked at before this sweep removed the
    # first folder in it (which changes it).
    unchanged: dict[str, bool] = {}
    # Walked top-down: reversed, each folder comes after every folder below it.
    for dirpath, subfolders in reversed(empty):
        if stop is not None and stop.is_set():
            break
        if emptied[dirpath] != subfolders:
            continue
        if settled is not None:
            if not (unchanged.pop(dirpath) if subfolders
                    else not _changed_since(dirpath, settled)):
                continue
            parent = os.path.dirname(dirpath)
            if parent not in unchanged:
                unchanged[parent] = not _changed_since(parent, settled)
        try:
            os.rmdir(dirpath)
        except OSError:  # not empty after all (a store names a file there), or not ours
            continue
        forget_folder(Path(dirpath))  # a writer that knew it makes it again at once
        emptied[os.path.dirname(dirpath)] += 1
        folders += 1
    if removed or folders:
        # Temporary files left mean stores were interrupted (a crash, kill -9).
        logger.log(logging.WARNING if removed else logging.INFO,
                   "removed %d stale temporary file(s) and %d empty folder(s) under %s",
                   removed, folders, root)
    return removed


def _changed_since(folder: str, when: float) -> bool:
    """Whether ``folder`` changed (a name added or removed) at or after ``when``,
    or cannot be told."""
    try:
        return os.stat(folder, follow_symlinks=False).st_mtime >= when
    except OSError:
        return True


class StaleSweep:
    """:func:`cleanup_stale` of a store in use, in a thread started at once: its
    server listens meanwhile. Call it with the store's lock held, and
    :meth:`stop` it before releasing the lock (another process's transfers
    could follow). A failure is logged, never raised: the server goes on."""

    def __init__(self, root: Path) -> None:
        self.root = root
        #: Temporary files removed; None until the sweep has ended.
        self.removed: int | None = None
        self._started = time.time()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dicomnet-sweep", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.removed = cleanup_stale(self.root, started=self._started, stop=self._stop)
        except Exception as exc:  # a bug, or the store unreadable: it serves all the same
            logger.error("the start-up sweep of %s failed, its stale temporary files are "
                         "left for the next start: %s", self.root, exc)
            self.removed = 0
        if self._stop.is_set():
            logger.debug("the start-up sweep of %s stopped: the server closed", self.root)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the sweep has ended; whether it has."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def stop(self) -> None:
        """End the sweep before its next removal or folder, and wait for that."""
        self._stop.set()
        self._thread.join()


def open_index(path: Path) -> StorageIndex:
    """The store's index at ``path``, made if there is none. Made in a folder that
    holds stored objects already (``.dcm`` files, in study and series folders or
    not: the index was deleted, or moved aside when damaged), it is said at
    WARNING: those objects have no rows (a query does not find them, a duplicate
    is found at its own path only) until reindex."""
    new = not path.exists()
    index = StorageIndex(path)
    if new and _holds_objects(path.parent):
        logger.warning("%s had no index: the objects already stored there have no rows "
                       "until, with the server stopped, 'dicomnet reindex %s' restores them",
                       path.parent, path.parent)
    return index


def _holds_objects(folder: Path | str) -> bool:
    """Whether a file the store names (not hidden) is in ``folder`` or in a study or
    series folder below it; stops at the first one found."""
    try:
        with os.scandir(folder) as entries:
            below = []
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                if entry.name.endswith(".dcm") and entry.is_file(follow_symlinks=False):
                    return True
                if is_uid_folder(entry.name) and entry.is_dir(follow_symlinks=False):
                    below.append(entry.path)
    except OSError:
        return False
    return any(_holds_objects(path) for path in below)
