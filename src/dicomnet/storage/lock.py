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

import os
from pathlib import Path

from dicomnet.storage.files import StorageError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

__all__ = ["StoreLock"]


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


def _holder(st: os.stat_result) -> str:
    """"process PID" from /proc/locks (proc(5): id, FLOCK, mode, type, pid,
    major:minor:inode, ...), or a vaguer phrase where it cannot tell."""
    device = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as locks:
            for line in locks:
                fields = line.split()
                if len(fields) > 5 and fields[1] == "FLOCK" and fields[5] == device:
                    return f"process {fields[4]}"
    except OSError:
        pass
    return "a process that holds the folder's lock"
