"""Which other process holds the index's write lock, so that a wait for it, and
a failure past its end, can name the program to close (an ``sqlite3`` shell or
a database browser left in a transaction, say).

SQLite's locks are POSIX byte-range locks (fcntl(2)), listed by Linux in
/proc/locks with the holder's pid and the file's device and inode. In WAL mode
(the index's) a writer holds byte 120 of the ``-shm`` file (WAL_WRITE_LOCK,
sqlite.org/walformat.html 2.3.1); in rollback mode, the RESERVED byte of the
database file (sqlite.org/lockingv3.html: the byte after PENDING, 0x40000001).
Where the system does not say (not Linux), nothing is named.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["index_writers"]

_WAL_WRITE_LOCK = 120
_RESERVED_BYTE = 0x40000001


def index_writers(path: Path) -> list[str]:
    """"process PID (NAME)" for each process other than this one that holds the
    write lock of the SQLite database at ``path``; empty if none is seen."""
    wanted: dict[str, int] = {}
    for name, byte in ((f"{path}-shm", _WAL_WRITE_LOCK), (str(path), _RESERVED_BYTE)):
        try:
            st = os.stat(name)
        except OSError:
            continue
        wanted[f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"] = byte
    if not wanted:
        return []
    mine = str(os.getpid())
    pids: list[str] = []
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as locks:
            for line in locks:
                # "1: POSIX  ADVISORY  WRITE 12240 fe:00:3483059 120 120" (proc(5))
                fields = line.split()
                if (len(fields) < 8 or fields[1] != "POSIX" or fields[3] != "WRITE"
                        or fields[4] in (mine, *pids)):
                    continue
                locked = wanted.get(fields[5])
                if locked is not None and _covers(fields[6], fields[7], locked):
                    pids.append(fields[4])
    except OSError:
        return []
    return [f"process {pid}{_program(pid)}" for pid in pids]


def _covers(start: str, end: str, byte: int) -> bool:
    try:
        return int(start) <= byte and (end == "EOF" or byte <= int(end))
    except ValueError:
        return False


def _program(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as comm:
            return f" ({comm.read().strip()})"
    except OSError:
        return ""
