"""Where each SOP Instance is stored: duplicate policies that hold across folders,
and index rows in the order of the names they record.

A received object's path holds its study and series as well as its SOP Instance
UID (``Layout.HIERARCHICAL``), so the same instance sent again under another
study or series (after a study was corrected, split or merged) gets another
path, and the link that fails when the name exists
(:meth:`~dicomnet.storage.files.AtomicWriter.commit`) does not see the first
copy. A duplicate policy is about the instance, not the path (PS3.4 B.2.3:
0111H, Duplicate SOP Instance). :class:`InstanceLocator` finds where an
instance already is, from the names this process gave that the index does not
hold yet and otherwise from the index, and names new files under one lock.

It also orders the index rows. Objects are named by several threads (the store
thread, a worker per spilled object) and their rows queued after each one's
folder is synced, so two associations storing the same instance at once could
queue their rows in the other order than their names; the index would then
point at the copy that was replaced. Each name gets a generation; only the row
of an instance's latest name is written, the others are dropped (the latest
one's row follows).
"""

from __future__ import annotations

import errno
import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .damage import instance_damage, size_damage
from .files import (
    AtomicWriter,
    CommitOutcome,
    CommitResult,
    DuplicatePolicy,
    StorageError,
    forget_folder,
    sync_folder,
)
from .index import NewInstance, StorageIndex
from .names import UnsafeNameError, safe_relative_path
from .part10 import Part10Info
from .rows import row_from_file

__all__ = ["IndexRow", "InstanceLocator", "remove_below"]

#: An index row, the SOP Instance UID it is for, and its name's generation.
IndexRow = tuple[NewInstance, str, int | None]

logger = logging.getLogger("dicomnet.storage")


@dataclass(slots=True)
class _Named:
    """An instance named by this process whose latest row the index does not hold yet."""

    relative_path: str
    generation: int
    outstanding: int  # names given whose rows are neither written nor dropped
    size: int  # of the latest name's file, as its row will record it
    #: Older copies under other paths, removed once the latest name is durable
    #: and the index names it.
    superseded: set[str] = field(default_factory=set)
    settled: bool = False  # the latest name is durable (its folder synced)
    indexed: bool = False  # the latest name's row is written


#: Opens a folder without following a symbolic link where the system can
#: (O_NOFOLLOW): a link there fails with ELOOP.
_FOLDER_FLAGS = (os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
                 | getattr(os, "O_NOFOLLOW", 0))
#: Whether removals can go folder by folder from the root, by descriptor.
_BY_DESCRIPTOR = (hasattr(os, "O_NOFOLLOW") and os.open in os.supports_dir_fd
                  and os.unlink in os.supports_dir_fd and os.rmdir in os.supports_dir_fd)


def remove_below(root: Path, parts: Sequence[str], *, folder: bool = False) -> None:
    """Remove the file (or, with ``folder``, the empty folder) ``root/parts...``,
    following no symbolic link below ``root``: each folder on the way is opened
    from the one before with O_NOFOLLOW, and the last name is removed from its
    folder's descriptor, so that a folder replaced by a link meanwhile is not
    followed either (no check-then-use gap). A link on the way fails with
    OSError (ELOOP); a link named last is itself removed, not where it points.
    Where the system cannot do that (no O_NOFOLLOW or ``dir_fd``), the path is
    resolved first and must lie inside ``root`` resolved, link free.
    Raises OSError (FileNotFoundError when something on the way is gone)."""
    path = root.joinpath(*parts)
    if not _BY_DESCRIPTOR:
        real_root = os.path.realpath(root)
        if os.path.realpath(path.parent) != os.path.join(real_root, *parts[:-1]):
            raise OSError(errno.ELOOP, "reached through a symbolic link", str(path))
        (os.rmdir if folder else os.unlink)(path)
        return
    fds = [os.open(root, _FOLDER_FLAGS & ~getattr(os, "O_NOFOLLOW", 0))]  # the root may be one
    try:
        for depth, part in enumerate(parts[:-1], start=1):
            try:
                fds.append(os.open(part, _FOLDER_FLAGS, dir_fd=fds[-1]))
            except OSError as exc:
                # O_NOFOLLOW with O_DIRECTORY fails a link with ENOTDIR or ELOOP.
                if exc.errno in (errno.ENOTDIR, errno.ELOOP) and os.path.islink(
                        root.joinpath(*parts[:depth])):
                    raise OSError(errno.ELOOP, "reached through a symbolic link",
                                  str(path)) from exc
                raise
        (os.rmdir if folder else os.unlink)(parts[-1], dir_fd=fds[-1])
    finally:
        for fd in fds:
            os.close(fd)


def _why(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "reached through a symbolic link (not the store's own folder): kept"
    return str(exc)


class InstanceLocator:
    """The names of the instances under ``root``, as ``index`` and this process know
    them. Thread-safe; one per storage root and index."""

    def __init__(self, root: Path, index: StorageIndex,
                 relative: Callable[[Path], str], *, durable: bool = True) -> None:
        self._root = root
        self._durable = durable
        self._index = index
        self._relative = relative
        self._lock = threading.Lock()
        self._named: dict[str, _Named] = {}
        self._generation = 0
        self._index_failing = False
        #: Names of this generation on are in the folder of the index now used;
        #: the rows of those before it are written if their file is still there.
        self._first_of_index = 0
        #: Each name whose row is neither written nor dropped, by generation: its
        #: folder sync may still be to come, so its folder must stay (_prune).
        #: The path (as text), not its parent: that is made only when a folder is
        #: pruned.
        self._pending: dict[int, str] = {}
        #: Copies kept though their size was not the recorded one (a stale row:
        #: _sound), by instance: where, and the file as read; their rows are read
        #: back from them (:meth:`lost_row`).
        self._stale: dict[str, tuple[str, Part10Info]] = {}

    def commit(self, writer: AtomicWriter, sop_instance_uid: str, destination: Path | str,
               policy: DuplicatePolicy, *, damaged: Callable[[Path], bool] | None = None,
               relative: str | None = None) -> tuple[CommitResult, int | None]:
        """Name ``writer``'s file (made durable already: ``make_durable``) at
        ``destination`` per ``policy``, wherever the instance is now:

        * not stored: as ``AtomicWriter.commit``;
        * stored (at ``destination`` or elsewhere): ``KEEP`` and ``REJECT``
          discard the new file and report the existing one as the duplicate's
          path; ``OVERWRITE`` names the new file, and an old one elsewhere is
          removed once the new name is durable (:meth:`settled`) and indexed
          (:meth:`rows_written`). An existing file whose size is not the one
          recorded (storage.damage) and that is no whole Part 10 file of the
          instance is damaged: whatever the policy, the new file replaces it as
          under ``OVERWRITE`` (logged at WARNING). One that is (a stale row) is
          kept, its row read back from it (:meth:`lost_row`). A file
          at ``destination`` that nothing recorded is judged by ``damaged``
          (``AtomicWriter.commit``).

        ``relative``: ``destination`` below the root, ``/``-separated, when the
        caller has it already (``PlacedFolder.relative`` and the name).

        The result's outcome is ``REPLACED`` when an earlier copy (there or
        elsewhere) is replaced. Returns the result and, when a file was named,
        its generation, which
        goes with its index row (:meth:`rows_to_write`), queued whether or not
        the folder sync that follows succeeds. The caller syncs the folder, then
        calls :meth:`settled`.
        Raises what the commit raises (the temporary file removed)."""
        with self._lock:
            try:
                if relative is None:
                    relative = self._relative(Path(destination))
                existing = self._existing(sop_instance_uid)
                kept = elsewhere = None
                if existing is not None and policy is not DuplicatePolicy.OVERWRITE:
                    sound = self._sound(sop_instance_uid, existing)
                    if sound:
                        kept = existing[0]  # at ``relative`` too: no link attempted
                    elif sound is not None:  # damaged: the new file takes its place
                        policy = DuplicatePolicy.OVERWRITE
                        elsewhere = existing[0] if existing[0] != relative else None
                elif existing is not None and existing[0] != relative and os.path.lexists(
                        self._root / existing[0]):  # else removed behind the index's back
                    elsewhere = existing[0]
            except BaseException:
                writer.abort()  # no temporary file outlives a failure
                raise
            if kept is not None:
                size = writer.size
                writer.abort()
                outcome = (CommitOutcome.DUPLICATE_REJECTED if policy is DuplicatePolicy.REJECT
                           else CommitOutcome.DUPLICATE_KEPT)
                return CommitResult(outcome=outcome, path=self._root / kept,
                                    size=size), None
            result = writer.commit(policy, destination=destination, sync_folder=False,
                                   synced=True, damaged=damaged)
            outcome = result.outcome
            # result.stored, without its call per object.
            if outcome is not CommitOutcome.STORED and outcome is not CommitOutcome.REPLACED:
                return result, None
            if elsewhere is not None and outcome is CommitOutcome.STORED:
                # A copy under another path goes once this one is durable and indexed.
                result = CommitResult(CommitOutcome.REPLACED, result.filename, result.size)
            self._generation += 1
            self._pending[self._generation] = result.filename
            named = self._named.get(sop_instance_uid)
            if named is None:
                named = self._named[sop_instance_uid] = _Named(relative, self._generation, 1,
                                                               result.size)
            else:
                named.relative_path, named.generation = relative, self._generation
                named.size = result.size
                named.outstanding += 1
                named.settled = named.indexed = False
            if elsewhere is not None:
                named.superseded.add(elsewhere)
            named.superseded.discard(relative)  # named again where it once was
            return result, self._generation

    def settled(self, sop_instance_uid: str, generation: int | None) -> None:
        """The name ``generation`` is durable (its folder synced). If it is still the
        instance's latest, the copies it replaced elsewhere are removed once the
        index names it too (:meth:`rows_written`): not before it is durable (a
        failed sync must not cost the copy that was there), nor before the index
        names it (a query would find a path that is gone), and by the latest
        name only (an older one could remove a copy stored after it)."""
        if generation is None:
            return
        with self._lock:
            named = self._named.get(sop_instance_uid)
            if named is None or named.generation != generation:
                return
            named.settled = True
            if not (named.indexed and named.superseded):
                return  # the usual case: nothing replaced elsewhere, nothing to tidy
            folders = self._remove_superseded(named)
        self._tidy(folders)

    def _remove_superseded(self, named: _Named) -> set[Path]:
        """Remove the copies ``named``'s latest name replaced (under the lock: a
        commit may name the instance again at one of their paths); return their
        folders. A copy reached through a symbolic link (a study moved to
        another disk and linked back) is the operator's, and stays: nothing
        outside the store's own folders is removed."""
        folders: set[Path] = set()
        for relative in named.superseded:
            old = self._root / relative
            try:
                remove_below(self._root, relative.split("/"))
            except FileNotFoundError:
                pass  # removed by hand: its folder may be empty all the same
            except OSError as exc:
                logger.warning("cannot remove %s, replaced by %s: %s", old,
                               named.relative_path, _why(exc))
                continue
            folders.add(old.parent)
        named.superseded.clear()
        return folders

    def _tidy(self, folders: set[Path]) -> None:
        """Make the removals in ``folders`` durable, then remove those left empty."""
        for folder in folders:
            if self._durable:  # else a crash could bring the old copy back
                try:
                    sync_folder(folder)
                except StorageError as exc:
                    if os.path.isdir(folder):  # else pruned by another thread: done
                        logger.warning("%s", exc)
                    continue
            self._prune(folder)

    def _prune(self, folder: Path) -> None:
        """Remove ``folder``, then each parent below the root, while they are empty:
        an instance overwritten under another study or series leaves its old
        folders behind otherwise. Writers make again a folder removed under them
        (``AtomicWriter``, as after a retention job), and an unnamed temporary file
        (``O_TMPFILE``) is linked into the new one. A folder where a name given
        by this process may still await its folder sync is kept (the copy just
        removed was named there by another association a moment ago). Not
        synced: a crash can at worst bring back an empty folder."""
        root, text = self._root, os.fspath(folder)
        with self._lock:
            if any(os.path.dirname(path) == text for path in self._pending.values()):
                return
        if root not in folder.parents:
            return
        parts = folder.relative_to(root).parts
        for depth in range(len(parts), 0, -1):
            try:
                # Only the store's own folders: one reached through a link (a study
                # moved to another disk and linked back) is the operator's, as is
                # where it points.
                remove_below(root, parts[:depth], folder=True)
            except OSError:  # not empty (a file, a named temporary file), gone, a link
                return
            forget_folder(root.joinpath(*parts[:depth]))

    def _existing(self, sop_instance_uid: str) -> tuple[str, int] | None:
        """Where the instance's file is recorded (relative to the root) and the size
        recorded for it, from the names this process gave, else from the index;
        None when neither knows it, or names no path below the root.
        An index that cannot be read does not stop storing: only a file at the
        same path is then found (logged once until the index answers again)."""
        named = self._named.get(sop_instance_uid)
        if named is not None:
            return named.relative_path, named.size
        try:
            located = self._index.locate_sized(sop_instance_uid)
        except StorageError as exc:
            if not self._index_failing:
                logger.warning("cannot look up stored instances (%s): duplicates "
                               "are found at the same path only until it works", exc)
            self._index_failing = True
            return None
        if self._index_failing:
            logger.warning("index readable again: duplicates found wherever stored")
            self._index_failing = False
        if located is None:
            return None
        try:
            safe_relative_path(located[0])
        except UnsafeNameError:  # a tampered row: never a path to remove or report
            logger.warning("the index names %r for %s: not a path below the root; "
                           "ignored", located[0], sop_instance_uid)
            return None
        return located

    def _sound(self, sop_instance_uid: str, existing: tuple[str, int]) -> bool | None:
        """Whether the recorded file of a duplicate is still what was stored: its
        size the recorded one (storage.damage; one ``stat``, for duplicates
        only), or else a whole Part 10 file of the instance all the same (the
        row is stale: a crash between a rename over the old copy and its row,
        a file replaced by hand; read for those only, under the lock as the
        copy must not change before it is kept). None when it is gone (removed
        behind the index's back: nothing to keep); False, said at WARNING, when
        it is damaged."""
        relative, recorded = existing
        path = self._root / relative
        try:
            why = size_damage(path, recorded)
        except FileNotFoundError:
            return None
        except PermissionError:
            return True  # the operator's doing: kept, as before
        except OSError as exc:  # EIO: a disk fault
            why = f"unreadable: {exc.strerror or exc}"
        if why is None:
            return True
        if not why.startswith("unreadable"):
            info, _ = instance_damage(path, sop_instance_uid)
            if info is not None:
                logger.info("%s: the stored copy %s is not the size its index row records "
                            "(%s) but a whole Part 10 file of the instance: kept, its row "
                            "read back from it", sop_instance_uid, path, why)
                self._stale[sop_instance_uid] = relative, info
                named = self._named.get(sop_instance_uid)
                if named is not None and named.relative_path == relative:
                    named.size = info.size  # the next duplicate: one stat again
                return True
        logger.warning("%s: the stored copy %s is damaged (%s): replaced by the copy "
                       "just received", sop_instance_uid, path, why)
        return False

    def replace_index(self, open_index: Callable[[], StorageIndex]) -> StorageIndex:
        """For a store whose folder was removed and made again: close the index (its
        file went with the folder), and look instances up in the one
        ``open_index`` opens from now on; return it. The old one is closed
        first: SQLite removes a closing database's write-ahead log by its name,
        which would be the new index's. The rows of the names given until now
        are written only where their file still is (:meth:`rows_to_write`):
        the others went with the old folder. Raises what ``open_index`` raises
        (lookups then fail, said once: duplicates found at the same path only)."""
        with self._lock:
            self._index.close()
            self._index = open_index()
            self._index_failing = False
            self._first_of_index = self._generation + 1
            return self._index

    def lost_row(self, sop_instance_uid: str, relative: str) -> NewInstance | None:
        """For a duplicate discarded for the file at ``relative``: that file's row,
        read back from it (as reindex does), if the index names no file of the
        instance and no row of this process's is on its way to it, or if its row
        was found stale (:meth:`commit`: another size). So a resend restores the
        rows a crash between names and rows lost or left stale, or a deleted
        index. The file was there before this commit and is not this process's
        to index, so it is durable: the row may follow it. One index query, for
        duplicates only (the others' rows come from what they received)."""
        located = None
        with self._lock:
            stale = self._stale.pop(sop_instance_uid, None)
            info = stale[1] if stale is not None and stale[0] == relative else None
            if info is None:
                if sop_instance_uid in self._named:  # its row is written, or on its way
                    return None
                try:
                    located = self._index.locate(sop_instance_uid)
                except StorageError as exc:
                    logger.warning("cannot check the index row of %s: %s", sop_instance_uid,
                                   exc)
                    return None
        if located is not None and (located == relative
                                    or os.path.lexists(self._root / located)):
            return None  # indexed, here or (left as it is) at another copy
        try:
            return row_from_file(self._root, relative, info)
        except Exception as exc:  # pydicom raises many kinds on damaged files
            logger.warning("cannot read %s back for its index row: %s", relative, exc)
            return None

    def rows_to_write(self, rows: Sequence[IndexRow]) -> list[NewInstance]:
        """Of ``rows``, those of each instance's latest name (and, for a name given
        before the index was replaced, whose file is still there); call
        :meth:`rows_written` with all of them once the index holds those."""
        with self._lock:
            return [row for row, uid, generation in rows
                    if (generation is None or (named := self._named.get(uid)) is None
                        or named.generation == generation)
                    and (generation is None or generation >= self._first_of_index
                         or os.path.lexists(self._root / row.relative_path))]

    def rows_written(self, rows: Sequence[IndexRow], *, written: bool = True) -> None:
        """The index now holds what :meth:`rows_to_write` chose of ``rows``: their
        instances are the index's to locate once no other name of theirs is on
        its way, and the copies a durable latest name replaced are removed.
        Called with ``written=False`` when the index could not take them all: the
        copies a row not written replaced then stay (the index still names them),
        for the instance's next name to remove; a row the index holds all the same
        (a batch written in part) counts as written."""
        folders: set[Path] = set()
        for _, uid, generation in rows:
            if generation is None:  # no name given (a lost row read back): nothing held
                continue
            with self._lock:  # per row: the store thread names objects meanwhile
                named = self._named.get(uid)
                if named is not None:
                    if named.generation == generation and (
                            written or self._indexed(uid, named.relative_path)):
                        named.indexed = True
                        if named.settled and named.superseded:
                            folders |= self._remove_superseded(named)
                    # This name's row is through (what _forget did, inline: a call
                    # per row). The instance is forgotten once none of its names
                    # is on its way, unless copies wait for removal: a name that
                    # never settled (its folder sync failed) leaves them to the
                    # instance's next name.
                    named.outstanding -= 1
                    if named.outstanding <= 0 and not named.superseded:
                        del self._named[uid]
                self._pending.pop(generation, None)
        self._tidy(folders)

    def _indexed(self, sop_instance_uid: str, relative: str) -> bool:
        """Whether the index names ``relative`` for the instance (one query)."""
        try:
            return self._index.locate(sop_instance_uid) == relative
        except StorageError:  # closed, or unreadable: taken as not written
            return False

