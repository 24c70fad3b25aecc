"""What a store's server clears when it starts: the temporary files of stores
that were interrupted, and the empty folders they and other stores left; and
the index it opens, said when new in a folder that already holds objects."""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

from dicomnet.storage.files import TEMP_SUFFIX
from dicomnet.storage.index import INDEX_NAME, StorageIndex
from dicomnet.storage.lock import is_uid_folder, walk_store

__all__ = ["cleanup_stale", "open_index"]

logger = logging.getLogger("dicomnet.storage")


def cleanup_stale(root: Path) -> int:
    """Remove every ``*.dicomnet-part`` file below ``root``; return how many (one
    that cannot be removed, in a read-only folder say, is said and left).
    Empty folders below ``root`` named as the store names its folders (a study
    or series UID), left by such a store or by a duplicate kept where the
    instance already was, are removed too; other folders are left alone.

    Run it at server start, before any association is accepted: a temporary
    file that exists then belongs to a store that was interrupted. Symbolic
    links to folders are not followed, nor folders that are stores of their
    own, nested in this one (holding their own index, or held by another
    server: their temporary files may be transfers under way), as
    :meth:`~dicomnet.storage.index.StorageIndex.reindex` does not; nothing
    else is touched.
    """
    removed = folders = 0
    emptied: set[str] = set()
    top = os.fspath(root)
    # Not the stores nested in this one: a folder with its own index, or one another
    # server holds (their temporary files are transfers under way, or their own
    # server's to remove when it starts).
    walked = list(walk_store(root, INDEX_NAME))
    # Bottom-up (each folder after all below it), so that a folder whose
    # subfolders all went can go too.
    for dirpath, dirnames, filenames in reversed(walked):
        kept = 0
        for name in filenames:
            if not name.endswith(TEMP_SUFFIX):
                kept += 1
                continue
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
        if dirpath != top and not kept and is_uid_folder(os.path.basename(dirpath)) and all(
                os.path.join(dirpath, name) in emptied for name in dirnames):
            with contextlib.suppress(OSError):  # not empty after all, or not ours to remove
                os.rmdir(dirpath)
                emptied.add(dirpath)
                folders += 1
    if removed or folders:
        # Temporary files left mean stores were interrupted (a crash, kill -9).
        logger.log(logging.WARNING if removed else logging.INFO,
                   "removed %d stale temporary file(s) and %d empty folder(s) under %s",
                   removed, folders, root)
    return removed


def open_index(path: Path) -> StorageIndex:
    """The store's index at ``path``, made if there is none. Made in a folder that
    holds stored objects already (``.dcm`` files, in study and series folders or
    not: the index was deleted, or moved aside when damaged), it is said at
    WARNING: those objects have no rows (a query does not find them, a duplicate
    is found at its own path only) until reindex. Run after :func:`cleanup_stale` (which removes the
    empty study folders)."""
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
