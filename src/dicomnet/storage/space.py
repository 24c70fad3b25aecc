"""A free-space reserve for a store (``StorageSCP(min_free=...)``, ``dicomnet
serve --min-free``).

A sender that never stops, or many at once, must not fill the file system the
store is on: its index, the logs and whatever else lives on that disk need room
too. With a reserve, an object that would leave less than it free is refused
with 0xA700 "Refused: Out of Resources" (PS3.4 B.2.3), the status a sender may
retry later (``dicomnet store --retries`` does), and nothing of it stays on
disk: its temporary file is removed. The store thread checks a round of data
sets received in memory against one reading of the free space; a data set
streamed to a temporary file is checked as it grows (every
:data:`CHECK_EVERY` bytes) and once more before it is named.

Free space is what an unprivileged process may use (``shutil.disk_usage``:
``statvfs``'s ``f_bavail``; on Windows, what the caller may use), even for a
server running as root: the blocks a file system keeps for root
(ext4: 5% by default) are never counted, so a store never eats into what the
system keeps for itself. A percentage is of the file system's whole size.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
from pathlib import Path

from dicomnet.config import FreeSpace, size_words
from dicomnet.errors import StorageError

__all__ = ["CHECK_EVERY", "FreeSpace", "SpaceReserve", "size_words"]

log = logging.getLogger("dicomnet.storage")

#: A streamed data set's growth between two checks of the free space: a
#: ``shutil.disk_usage`` each (2.5 us here), nothing next to writing 16 MiB.
CHECK_EVERY = 16 << 20
#: What the peer is told (in the Error Comment, after "cannot store: "): why,
#: not where, and within its 64 characters.
REASON = "disk space down to the store's reserve"


class SpaceReserve:
    """The reserve kept free on the file system of the folder ``root``:
    :attr:`minimum` bytes, worked out once from ``reserve``. Raises
    ``StorageError`` when the file system cannot tell its size."""

    __slots__ = ("minimum", "reserve", "root")

    def __init__(self, root: str, reserve: FreeSpace) -> None:
        self.root = root
        self.reserve = reserve
        # A store's folder not made yet will be on its nearest folder's file system.
        where = os.path.abspath(root)
        while True:
            try:
                total = shutil.disk_usage(where).total
                break
            except FileNotFoundError:
                if os.path.dirname(where) == where:
                    raise
                where = os.path.dirname(where)
            except OSError as exc:
                raise StorageError.from_os_error("cannot read the free space of",
                                                 Path(where), exc) from exc
        #: Bytes to keep free.
        self.minimum = reserve.bytes_of(total)

    def available(self) -> int | None:
        """Bytes free for an unprivileged process now; None if the file system
        cannot say (the folder gone: the write that follows says why)."""
        try:
            return shutil.disk_usage(self.root).free
        except OSError:
            return None

    def refusal(self, free: int, incoming: int = 0) -> StorageError:
        """The error that refuses an object of ``incoming`` bytes (0: already on
        disk) with ``free`` bytes free: out of resources (ENOSPC, answered 0xA700),
        its message for the server's log, :data:`REASON` for the peer."""
        what = f"{size_words(incoming)} more" if incoming else "this object"
        return StorageError(
            f"no room for {what} in {self.root}: {size_words(free)} free, and "
            f"{size_words(self.minimum)} kept free (min_free {self.reserve})",
            errno=errno.ENOSPC, reason=REASON)

    def check(self, incoming: int = 0) -> None:
        """Raise :meth:`refusal` if ``incoming`` more bytes would leave less than
        the reserve free."""
        free = self.available()
        if free is not None and free - incoming < self.minimum:
            raise self.refusal(free, incoming)

    def warn_if_short(self) -> None:
        """Log a WARNING when the file system is already under the reserve: every
        object will be refused until room is made."""
        free = self.available()
        if free is not None and free < self.minimum:
            log.warning("store %s: %s free, under the %s it keeps free (min_free %s): "
                        "objects are refused (A700, out of resources) until room is made",
                        self.root, size_words(free), size_words(self.minimum), self.reserve)
