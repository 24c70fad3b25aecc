"""Making many newly written files durable at once: one ``syncfs`` instead of an
fsync each (Linux).

Each fsync ends with its own flush of the device's cache; ``syncfs`` writes
every dirty page and inode of the file system, then flushes once. The C-STORE
SCP's store thread commits a round of in-memory data sets this way
(``StoreDisk._finish_round``), keeping the order of
:meth:`~dicomnet.storage.files.AtomicWriter.commit`: bytes and inodes durable
first, names given after.
"""

from __future__ import annotations

import ctypes
import logging
import os
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, cast

from dicomnet.storage.files import StorageError, linux_libc_function

if TYPE_CHECKING:
    from dicomnet.storage.files import AtomicWriter

__all__ = ["SYNCFS_DIRTY_LIMIT", "can_sync_together", "sync_together"]

logger = logging.getLogger("dicomnet.storage")


_syncfs = cast("Callable[[int], int] | None", linux_libc_function("syncfs", ctypes.c_int))
#: Dirty and under-writeback memory (/proc/meminfo, all file systems) above which
#: ``sync_together`` declines: syncfs waits for every dirty page of the file
#: system, whoever wrote it, and a foreign writer must not stall our answers.
SYNCFS_DIRTY_LIMIT = 32 << 20


#: Where the kernel says how much is dirty and under writeback (kB).
_MEMINFO = "/proc/meminfo"
#: Both values found in one pass (read once per store-thread round): a call per
#: line had been 12 calls per object on 512 KB images. "WritebackTmp:" differs.
_DIRTY_LINES = re.compile(rb"^(?:Dirty|Writeback):[ \t]*(\d+)", re.MULTILINE)


def _dirty_bytes() -> int | None:
    try:
        with open(_MEMINFO, "rb") as meminfo:
            text = meminfo.read()
    except OSError:
        return None
    values = _DIRTY_LINES.findall(text)
    return (int(values[0]) + int(values[1])) << 10 if len(values) == 2 else None


def can_sync_together() -> bool:
    """True when :func:`sync_together` may be worth trying now: Linux's syncfs
    exists and little is waiting to be written system-wide (at most
    ``SYNCFS_DIRTY_LIMIT``). Costs one read of /proc/meminfo."""
    if _syncfs is None:
        return False
    dirty = _dirty_bytes()
    return dirty is not None and dirty <= SYNCFS_DIRTY_LIMIT


def _device(fd: int) -> int:
    return os.fstat(fd).st_dev


def sync_together(writers: Sequence[AtomicWriter]) -> bool:
    """Make what ``writers`` wrote durable with one ``syncfs`` of their file system,
    instead of one fsync each; True if done, and their commits may then be made
    with ``synced=True``. For a round of small objects, one flush instead of one
    per object (2,000 objects of 2 KB over TLS: 2,148 against 1,791 objects/s,
    docs/benchmarks.md item 18).

    False, with nothing raised, when it cannot stand for the fsyncs: no syncfs,
    writers on more than one file system, a flush or the syncfs failing. The
    caller then commits as usual; each file's own fsync reports (and pins to
    that file) any write error, which syncfs would only report for them all.
    """
    if _syncfs is None or not writers:
        return False
    try:
        for writer in writers:
            if writer._spool is not None:  # a direct writer (flush: a call per object)
                writer.flush()
        # A file made in a folder is on that folder's file system: one fstat per
        # folder (a system call each on the store thread), not per file.
        firsts = {writer.folder_name: writer for writer in reversed(writers)}
        devices = {_device(writer.fileno()) for writer in firsts.values()}
    except (StorageError, OSError, ValueError):
        return False
    if len(devices) != 1:
        return False
    if _syncfs(writers[0].fileno()) != 0:
        logger.debug("syncfs failed (%s); fsyncing file by file",
                     os.strerror(ctypes.get_errno()))
        return False
    return True
