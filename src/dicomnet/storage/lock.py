"""One process per store: an exclusive lock on the store's folder.

A server removes the temporary files it finds when it starts (they belong to
stores that were interrupted); a second server on the same folder would remove
those of the first one's transfers under way, and both would write one index.
The lock is ``flock(2)`` on the folder itself, so that no file is added to the
store: the kernel drops it when its holder exits, however it exits (``kill -9``
included), and nothing stale can keep a restarted server out. Where ``fcntl``
is missing (Windows), nothing is locked.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path

from dicomnet.storage.files import StorageError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

__all__ = ["StoreLock", "locked_elsewhere"]


class StoreLock:
    """The exclusive lock on a store's folder, held until :meth:`release`."""

    def __init__(self, root: Path | str) -> None:
        """Take the lock on the folder ``root``, or raise ``StorageError`` that
        names the process holding it (when the system says: Linux's /proc/locks)."""
        self.path = Path(root)
        self._fd: int | None = None
        if fcntl is None:  # pragma: no cover - not POSIX
            return
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as exc:
            raise StorageError.from_os_error("cannot open the folder", self.path,
                                             exc) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(os.fstat(fd))
            os.close(fd)
            raise StorageError(f"in use by another dicomnet process ({holder}): "
                               "one server per folder") from None
        except OSError as exc:
            os.close(fd)
            raise StorageError.from_os_error("cannot lock", self.path, exc) from exc
        self._fd = fd

    def release(self) -> None:
        """Let another process have the folder (closing it drops the lock)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    @property
    def held(self) -> bool:
        """Whether this object holds the lock (never on a system without flock)."""
        return self._fd is not None


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


def _holder(st: os.stat_result) -> str:
    """"process PID" from /proc/locks, or a vaguer phrase where it cannot tell."""
    pid = _flocks().get(_key(st))
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
