"""One process per store: an exclusive lock on the store's folder.

A server removes the temporary files it finds when it starts (they belong to
stores that were interrupted); a second server on the same folder would remove
those of the first one's transfers under way, and both would write one index.
The lock is ``flock(2)`` on the folder itself, so that no file is added to the
store: the kernel drops it when its holder exits, however it exits (``kill -9``
included), and nothing stale can keep a restarted server out. Where ``fcntl``
is missing (Windows), nothing is locked.

The lock is on the folder, not on its name: a folder removed under its server
(``rm -rf`` of the store) and made again is another folder, free for a second
server. :meth:`StoreLock.follow` takes the new one before it is stored into.

Nor is a study or series folder of a store in use another store: a lock is
refused there too, since that store's server writes into it.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from dicomnet.storage.files import TEMP_SUFFIX, StorageError
from dicomnet.storage.names import UnsafeNameError, safe_uid

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

__all__ = ["StoreLock", "is_uid_folder", "locked_elsewhere", "store_files", "walk_store"]


class StoreLock:
    """The exclusive lock on a store's folder, held until :meth:`release`."""

    def __init__(self, root: Path | str) -> None:
        """Take the lock on the folder ``root``, or raise ``StorageError`` that
        names the process holding it (when the system says: Linux's /proc/locks)."""
        self.path = Path(root)
        # As text for follow()'s stat, once per store round: a Path is two calls.
        self._path_text = os.fspath(self.path)
        self._fd: int | None = None
        self._held: tuple[int, int] | None = None  # the locked folder's device, inode
        self._following = threading.Lock()
        if fcntl is None:  # pragma: no cover - not POSIX
            return
        _refuse_inside_held(self.path)
        self._fd, self._held = _lock(self.path)

    def release(self) -> None:
        """Let another process have the folder (closing it drops the lock)."""
        with self._following:
            fd, self._fd, self._held = self._fd, None, None
        if fd is not None:
            os.close(fd)

    def follow(self, moved: Callable[[], None] | None = None) -> bool:
        """Make sure the folder now at :attr:`path` is the one held: one stat, the
        usual case. If it was removed since it was locked, make it again (mode
        0755) and lock it, or, made again by another process already, lock it
        unless another server holds it. True when the lock moved to a new
        folder (the caller says so); raises ``StorageError`` when it could not
        (the old folder's lock is kept: nothing is stored meanwhile).

        ``moved`` is called once the new folder is locked, before any other
        thread's ``follow`` returns: what goes with the folder (its index) is
        made again there before anything is stored into it."""
        held = self._held
        if held is None:  # released, or not POSIX
            return False
        try:
            st = os.stat(self._path_text)
            if (st.st_dev, st.st_ino) == held:
                return False
        except OSError:
            pass
        with self._following:
            if self._held != held:  # another thread followed meanwhile
                return False
            try:
                self.path.mkdir(mode=0o755, parents=True, exist_ok=True)
            except OSError as exc:
                raise StorageError.from_os_error("cannot make the store's folder again",
                                                 self.path, exc) from exc
            try:
                fd, now = _lock(self.path)
            except _InUse as exc:
                raise StorageError(f"the store's folder {self.path} was removed while in use, "
                                   f"and the one made again is another server's "
                                   f"({exc.holder}): not storing there") from None
            try:
                if moved is not None:
                    moved()
            finally:
                old, self._fd, self._held = self._fd, fd, now
            if old is not None:
                os.close(old)
            return True

    @property
    def held(self) -> bool:
        """Whether this object holds the lock (never on a system without flock)."""
        return self._fd is not None


class _InUse(StorageError):
    def __init__(self, path: Path, pid: str | None) -> None:
        self.holder = _holder(pid)
        super().__init__(f"{path}: in use by {_whose(pid)}: one server per folder")


def _whose(pid: str | None) -> str:
    # A StorageSCP of this process not closed yet holds it: "another process"
    # would send its user looking for one.
    holder = _holder(pid)
    return (f"another StorageSCP of this process ({holder}; close it first)"
            if pid == str(os.getpid()) else f"another dicomnet process ({holder})")


def is_uid_folder(name: str) -> bool:
    """Whether a folder's name is one a store gives its study and series folders."""
    try:
        return safe_uid(name) == name
    except UnsafeNameError:
        return False


def _refuse_inside_held(path: Path) -> None:
    """Raise ``StorageError`` when ``path`` is in a study or series folder (one
    named as a UID) of a store another server holds: that server stores there,
    and an index made there would make the folder a store of its own, which the
    outer store's reindex skips, dropping the rows of the objects in it. A
    store of its own beside the studies (``archive/ct``) is left alone."""
    held = _flocks()
    if not held:  # the usual case: no other store in use, no stat at all
        return
    given, path = path, Path(os.path.abspath(path))
    for below, folder in zip((path, *path.parents), path.parents, strict=False):
        if not is_uid_folder(below.name):
            continue
        try:
            pid = held.get(_key(os.stat(folder)))
        except OSError:
            continue
        if pid is not None:
            raise StorageError(f"{given}: inside {below}, a study folder of the store "
                               f"{folder}, in use by {_whose(pid)}: its server stores "
                               f"there; give a folder outside it")


def _lock(path: Path) -> tuple[int, tuple[int, int]]:
    """An open descriptor of folder ``path``, flock-ed, and its device and inode."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise StorageError.from_os_error("cannot open the folder", path, exc) from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = _flocks().get(_key(os.fstat(fd)))
        os.close(fd)
        raise _InUse(path, pid) from None
    except OSError as exc:
        os.close(fd)
        raise StorageError.from_os_error("cannot lock", path, exc) from exc
    st = os.fstat(fd)
    return fd, (st.st_dev, st.st_ino)


def _flocks() -> dict[str, str]:
    """The files flock(2)-locked now, from /proc/locks (proc(5): id, FLOCK, mode,
    type, pid, major:minor:inode, ...): "major:minor:inode" -> the holder's pid.
    Empty where the system does not say (not Linux)."""
    held: dict[str, str] = {}
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as locks:
            for line in locks:
                fields = line.split()
                if len(fields) > 5 and fields[1] == "FLOCK":
                    held[fields[5]] = fields[4]
    except OSError:
        pass
    return held


def _key(st: os.stat_result) -> str:
    return f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"


def _holder(pid: str | None) -> str:
    """"process PID" (from /proc/locks), or a vaguer phrase where it cannot tell."""
    return f"process {pid}" if pid is not None else "a process that holds the folder's lock"


def locked_elsewhere(root: Path | str) -> Callable[[str], bool]:
    """For a server starting on ``root``: a test of whether a folder below it is
    another store in use (its server holds its lock, from /proc/locks read once
    now), whose temporary files are transfers under way. Always False where the
    system does not say which files are locked (not Linux)."""
    held = _flocks()
    with contextlib.suppress(OSError):
        held.pop(_key(os.stat(root)), None)  # this server's own
    if not held:  # the usual case: no other store, no stat per folder
        return lambda folder: False

    def test(folder: str) -> bool:
        try:
            return _key(os.stat(folder, follow_symlinks=False)) in held
        except OSError:
            return False

    return test


def walk_store(root: Path | str, index_name: str,
               nested: list[str] | None = None) -> Iterator[tuple[str, list[str], list[str]]]:
    """``os.walk`` of a store's folder (top-down, links to folders not followed;
    the caller may prune the folder lists) that does not enter the stores nested
    in it: a folder holding its own index file ``index_name``, or held by
    another server (one without an index). Their paths, relative to ``root``,
    are appended to ``nested``. Start-up cleanup and reindex both walk so: a
    nested store is its own server's and its own reindex's.

    ``os.walk`` lists a folder at once and keeps the listings of the folders
    above the one it yields: the root's study folders for the whole walk,
    some 140 bytes a study (100,000 empty study folders: a 13.8 MB peak),
    left so: a store of that many studies has millions of rows, and streaming
    the root's listing would give up its sorted order (reindex's path order)."""
    top = os.fspath(root)
    in_use = locked_elsewhere(root)
    for dirpath, dirnames, filenames in os.walk(top, followlinks=False):
        if dirpath != top and (index_name in filenames or in_use(dirpath)):
            dirnames[:] = []
            if nested is not None:
                nested.append(os.path.relpath(dirpath, top).replace(os.sep, "/"))
            continue
        yield dirpath, dirnames, filenames


def store_files(root: Path, index_name: str, nested: list[str]) -> Iterator[Path]:
    """Regular, non-hidden files under ``root``, not following links to folders, nor
    entering stores nested in it (appended to ``nested``: storage.lock.walk_store)."""
    for dirpath, dirnames, filenames in walk_store(root, index_name, nested):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith(".") or name.endswith(TEMP_SUFFIX):
                continue
            path = Path(dirpath, name)
            if path.is_file() and not path.is_symlink():
                yield path
