"""Whether an index file written outside our own commits was checkpointed by
another program or copied over.

In WAL mode only checkpoints write a database file, so the index
(:mod:`~dicomnet.storage.index`) takes a change of its file's size or time
outside its own commits for another program's write: a copy over it (``cp
other.sqlite index.sqlite``: the same inode, other contents), whose pages its
write-ahead log must then never be checkpointed into. Another program's
checkpoint of the live index (``PRAGMA wal_checkpoint``, any mode: the sqlite3
shell, a backup tool) changes them too, writing this index's own log into it.
:meth:`IndexFiles.explain` tells the two apart from the files' own records
(sqlite.org/fileformat2.html "The Write-Ahead Log", sqlite.org/walformat.html
"The WAL-Index File Format"):

* the file's contents the same bytes as at the last look (a ``touch``, a tool
  setting its time back, a copy of itself), and none of the log checkpointed
  since: unchanged, the log fits it still. Known for a file of at most
  :data:`DIGEST_MOST` bytes, whose pages' digests are noted each time its size
  or time moves as ours: all of them at open, then only those of the pages the
  log has frames for (only a checkpoint writes the file, only those pages, and
  the pages past its former end), the whole file read only to compare. A fresh
  index is one page until its first checkpoint, its every row in the log;
* frames of the log already checkpointed (the WAL-index's nBackfill): a
  checkpoint copies each page whose latest frame it may copy, so the file's
  pages not written again in later frames are those frames' pages; a few of
  them, the last checkpointed first, are compared byte for byte. Equal, a
  checkpoint; any other, a copy. A checkpoint still copying (nBackfillAttempted
  ahead of nBackfill) is waited for, at most :data:`WAIT` seconds;
* an empty log (mxFrame 0): emptied since by ``wal_checkpoint(TRUNCATE)`` (it
  checkpoints all first) if another connection changed the log since the last
  look (SQLite's ``PRAGMA data_version``: another connection's commit or log
  reset), else nothing could have been checkpointed: a copy;
* a log none of whose frames is checkpointed: restarted since the last look
  (its salts moved: fileformat2.html "WAL File Format"), another program
  checkpointed all of it (SQLite restarts no other log) and wrote since: a
  checkpoint, the log none of ours, its rows kept; not restarted, nothing was
  checkpointed: a copy, whoever wrote the log. Its salts not known (no
  ``-shm`` to read at the last look), and another connection wrote: not told
  apart.

A copy made together with another program's checkpoint (or its TRUNCATE) in
one interval between two looks may pass for a checkpoint: that checkpoint
wrote this log into the copy already (SQLite finds the log by name), which no
look afterwards undoes; the change of the log reset the connection's page
cache, so later rows go into the copy as it then is.

The caller holds its connection's write lock (``BEGIN IMMEDIATE``) while it
asks, so no frame is appended, the log is not restarted and no FULL, RESTART or
TRUNCATE checkpoint runs meanwhile; a PASSIVE one needs no write lock, so it
holds SQLite's checkpoint lock too (:meth:`IndexFiles.checkpoints_held`), from
the look until a log found not to fit is dropped unread
(:meth:`IndexFiles.drop_log`): another program's checkpoint starting between the
two would copy the log into the copy. Not had within :data:`WAIT` (a checkpoint
running that long), a checkpoint may go on meanwhile, seen by the WAL-index's
checkpoint information changing (looked at again). The whole file is read to
compare before either lock (:meth:`IndexFiles.same_contents`), its answer taken
only if neither the file nor the log's record moved since.

The files are read (and ``-shm``'s header cleared, its lock taken) through
descriptors kept open until :meth:`IndexFiles.close`, called after
SQLite's connections closed: closing any descriptor of a file drops every POSIX
lock the process holds on it, SQLite's own among them (sqlite.org/howtocorrupt.html,
"Posix advisory locks canceled by a separate thread doing close()").
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import logging
import os
import stat
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from dicomnet.storage.files import StorageError

__all__ = ["COMPANIONS", "DB_MODE", "WAIT", "FileChange", "IndexFiles", "Verdict", "file_id",
           "file_state", "owner_only"]

logger = logging.getLogger("dicomnet.storage")

DB_MODE = 0o600  # patient names and IDs: readable by the service account only
#: What SQLite puts beside the database file, with the database file's mode.
COMPANIONS = ("-wal", "-shm", "-journal")

Verdict = Literal["checkpoint", "unchanged", "copy", "unknown"]

#: At most this long (seconds) a checkpoint still copying is waited for.
WAIT = 1.0
_STEP = 0.005

#: Pages compared when the log's checkpointed frames say what the file holds.
_SAMPLE = 8
#: A file at most this large has its pages' digests noted: one whose time alone
#: moved (touch) is then known unchanged. Read whole at open (once), and to
#: compare; kept in 16 bytes a page (4 MiB for 1 GiB of 4 KiB pages).
DIGEST_MOST = 1 << 30
_PAGE_DIGEST = 16
#: Seconds of that read at open past which it is logged (INFO).
SLOW_OPEN = 0.5
_READ_PAGES = 256  # pages read at once when all are digested
#: Frames beyond which the WAL-index's page numbers are not read (16 MiB of them).
_MAX_FRAMES = 1 << 22

# WAL header (fileformat2.html, "WAL File Format"): big-endian magic, format version, page size,
# checkpoint sequence, salt-1, salt-2, checksums; each frame's header: page
# number, database size after a commit (else 0), salt-1, salt-2, checksums.
_WAL_MAGIC = (0x377F0682, 0x377F0683)
_WAL_VERSION = 3007000
_WAL_HEADER = 32
_FRAME_HEADER = 24

# WAL-index (walformat.html, "The WAL-Index Header"), native byte order: its header twice (48 bytes
# each: iVersion, unused, iChange, isInit, bigEndCksum, szPage, mxFrame, nPage,
# aFrameCksum, aSalt, aCksum), then the checkpoint information (nBackfill at 96,
# nBackfillAttempted at 128). Its hash tables follow in 32 KiB blocks,
# each starting with the page numbers of its frames: 4062 in the first (after
# the 136 bytes above), 4096 in each next ("Hash Tables").
_INDEX_HEADER = struct.Struct("=IIIBBHII8s8s8s")
_INDEX_VERSION = 3007000
_BACKFILL = struct.Struct("=I")
_BACKFILL_AT, _ATTEMPTED_AT, _INDEX_INFO_END = 96, 128, 136
_BLOCK = 32768
_FIRST_BLOCK_FRAMES = (_BLOCK // 8 - _INDEX_INFO_END // 4)  # 4062
_BLOCK_FRAMES = _BLOCK // 8  # 4096
# The WAL-index's locks (walformat.html, "WAL-Index Locks"; SQLite's unix VFS takes
# each as a POSIX lock of one byte of -shm, from offset 120): the checkpointer's.
_CHECKPOINT_LOCK = 121


@dataclass(frozen=True, slots=True)
class FileChange:
    """What changed an index file: ``verdict``, and ``why`` (for the log)."""

    verdict: Verdict
    why: str

    @property
    def log_fits(self) -> bool:
        """Whether the log still fits the file: its writes go on."""
        return self.verdict in ("checkpoint", "unchanged")


@dataclass(frozen=True, slots=True)
class _Log:
    """The WAL-index's record of the log (walformat.html)."""

    page_size: int
    frames: int  # mxFrame: valid frames in the log
    pages: int  # nPage: the database's size in pages, as of the log's last commit
    salts: bytes  # the log's salts, as in its header
    backfilled: int  # nBackfill: frames checkpointed
    attempted: int  # nBackfillAttempted: frames a checkpoint began copying


class IndexFiles:
    """Read-only descriptors of an index's database file, ``-wal`` and ``-shm``,
    opened once SQLite made them (after the connection's first read), kept
    open until :meth:`close` (see the module docstring). One that cannot be
    opened leaves the answer unknown."""

    def __init__(self, path: Path, state: tuple[int, int, int, int] | None) -> None:
        """``state``: the file's (:func:`file_state`) as its index last saw it."""
        self._wal = Path(f"{path}-wal")
        # The -shm writable: drop_log clears its header through this descriptor.
        self._fds = (_open(path), _open(self._wal), _open(Path(f"{path}-shm"), os.O_RDWR))
        self._salts: bytes | None = None  # the log's, at the last look (note)
        self._digests: bytes | None = None  # of the file's pages (note_contents)
        self._page_size = 0  # theirs
        # The file's state and the log's record when they were noted.
        self._digest_state: tuple[int, int, int, int] | None = None
        self._digest_log: _Log | None = None
        self.note()
        started = time.monotonic()
        self.note_contents(state)
        took = time.monotonic() - started
        if took >= SLOW_OPEN and state is not None:
            # A large index delays the server's start by this: said, not a mystery.
            logger.info("index %s: its %.0f MB read at open in %.1f s, to tell a touch of "
                        "it from a copy over it later", path, state[2] / 1e6, took)

    def note_contents(self, state: tuple[int, int, int, int] | None) -> None:
        """Note the digests of the file's pages, if at most :data:`DIGEST_MOST`
        bytes, when its ``state`` (:func:`file_state`) as ours moved: at open,
        at our own checkpoints, another program's taken. :meth:`explain` then
        finds it unchanged, whatever moved its time. None if the file moved
        from ``state`` meanwhile: a copy made then must not pass for ours.

        Since the last note, only checkpoints of the same log (its salts) wrote
        the file, none past the frames it holds now: only those frames' pages
        are digested again, and the pages past the file's former end; another
        log (restarted), all of them."""
        previous, noted = self._digests, self._digest_log
        self._digests = None
        if state is None or self._stat() != state or state[2] > DIGEST_MOST:
            return
        log, page_size = self._log(), self._file_page_size()
        if log is None or page_size is None:
            return
        digests = None
        if previous is not None and noted is not None and log.salts == noted.salts \
                and noted.frames <= log.frames <= _MAX_FRAMES \
                and page_size == self._page_size:
            pages = self._page_numbers(log.frames)
            if pages is not None:
                digests = _page_digests(self._fds[0], state[2], page_size, previous, pages)
        if digests is None:
            digests = _page_digests(self._fds[0], state[2], page_size)
        if digests is not None and self._stat() == state:  # not written while read
            self._digests, self._page_size = digests, page_size
            self._digest_state, self._digest_log = state, log

    def _file_page_size(self) -> int | None:
        """The database's page size, from its header (fileformat2.html "The Database
        Header", offset 16: 1 for 65536); an empty file's any. None if unreadable."""
        state = self._stat()
        if state is not None and state[2] == 0:
            return 4096
        header = _read(self._fds[0], 2, 16)
        if header is None:
            return None
        size = struct.unpack(">H", header)[0]
        size = 65536 if size == 1 else size
        return size if size >= 512 and size & (size - 1) == 0 else None

    def _stat(self) -> tuple[int, int, int, int] | None:
        """The database file's :func:`file_state`, through its descriptor."""
        try:
            st = os.fstat(self._fds[0]) if self._fds[0] is not None else None
        except OSError:
            return None
        return None if st is None else (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)

    def same_contents(self) -> tuple[int, int, int, int] | None:
        """The file's state (:func:`file_state`) if its pages are those noted and
        no checkpoint wrote it since (:meth:`_as_noted`), the whole file read;
        else None. For :meth:`explain`, asked before its caller takes the locks:
        held while up to :data:`DIGEST_MOST` bytes are read, they kept other
        programs' checkpoints off (busy) that long. :meth:`explain` takes it only
        if the file's state and the log's record then still say so."""
        state, noted = self._stat(), self._digest_state
        if not self._as_noted() or state is None or noted is None or state[2] != noted[2]:
            return None
        same = _page_digests(self._fds[0], state[2], self._page_size) == self._digests
        return state if same and self._stat() == state else None  # not written while read

    def note(self) -> None:
        """Note the log's salts as they are: after each of our commits, under its
        lock, and at each look (:meth:`explain`). A log restarted since has others
        (fileformat2.html, "WAL File Format": a restart draws new salts)."""
        log = self._log()
        self._salts = None if log is None else log.salts
        if self._digests is not None and log is not None \
                and self._stat() == self._digest_state:
            # The file not written since: the log, restarted or not, is on those bytes.
            self._digest_log = log

    def checkpoints(self) -> tuple[bytes, int] | None:
        """The log's salts and how many of its frames are checkpointed (nBackfill),
        for :meth:`checkpointed_since`; None if unknown."""
        log = self._log()
        return None if log is None else (log.salts, log.backfilled)

    def checkpointed_since(self, before: tuple[bytes, int] | None) -> bool:
        """Whether a checkpoint copied frames since :meth:`checkpoints` said
        ``before``: more of the same log checkpointed, or any of a log restarted
        since (walformat.html, "nBackfill")."""
        now = self.checkpoints()
        if before is None or now is None:
            return False
        return now[1] > (before[1] if now[0] == before[0] else 0)

    def close(self) -> None:
        """Close the descriptors: only after SQLite's connections to the file."""
        for fd in self._fds:
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._fds = (None, None, None)

    @contextlib.contextmanager
    def checkpoints_held(self) -> Iterator[bool]:
        """Hold off other programs' checkpoints meanwhile: SQLite's checkpoint lock
        (walformat.html, "WAL-Index Locks": WAL_CKPT_LOCK, one byte of ``-shm``),
        which every checkpoint takes before it reads the WAL-index, answering
        SQLITE_BUSY without a wait when it cannot (sqlite.org/c3ref/wal_checkpoint_v2.html).
        Taken as SQLite's unix VFS does, a POSIX lock through the descriptor kept
        open; waited for while a checkpoint runs, at most :data:`WAIT` seconds (never
        through a read-only ``-shm``, where it cannot be had).
        Yields whether it is held. POSIX locks are the process's: a connection
        of this same process is not held off, so the caller has its own
        connections' checkpoints serialised with this (its lock)."""
        fd = self._fds[2]
        held = False
        deadline = time.monotonic() + WAIT
        while fd is not None:
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, _CHECKPOINT_LOCK)
                held = True
                break
            except OSError as exc:
                # EBADF: -shm opened read-only, where no write lock is ever had (fcntl(2)).
                if exc.errno == errno.EBADF or time.monotonic() >= deadline:
                    break
                time.sleep(_STEP)
        try:
            yield held
        finally:
            if held:
                assert fd is not None
                with contextlib.suppress(OSError):
                    fcntl.lockf(fd, fcntl.LOCK_UN, 1, _CHECKPOINT_LOCK)

    def drop_log(self) -> str | None:
        """Empty the log unread, for every connection: None, or why it could not be.

        Truncating ``-wal`` alone left the WAL-index (``-shm``) describing frames
        the log no longer held, which each connection trusts while one has the
        database open ("disk I/O error" for all, pages of the old log still
        cached). So its header is cleared first (walformat.html, "The WAL-Index
        Header": both copies, isInit 0): each connection, ours too, finds it
        invalid at its next transaction and rebuilds it from the log ("Recovery"),
        which it can do only once the write lock is free, after the log is
        emptied; then the log is truncated, as ``wal_checkpoint(TRUNCATE)``
        leaves it, so no checkpoint and no recovery finds a frame of it. The
        caller holds the write lock (``BEGIN IMMEDIATE``)."""
        try:
            # Both copies of the header end where the checkpoint information begins.
            cleared = self._fds[2] is not None \
                and os.pwrite(self._fds[2], bytes(_BACKFILL_AT), 0) == _BACKFILL_AT
        except OSError:
            cleared = False
        if not cleared:
            return "its write-ahead log's index (-shm) cannot be written"
        try:
            os.truncate(self._wal, 0)
        except FileNotFoundError:
            pass  # no log: nothing in it
        except OSError as exc:
            return f"its write-ahead log cannot be emptied: {exc.strerror or exc}"
        return None

    def explain(self, *, others_wrote: bool,
                same: tuple[int, int, int, int] | None = None) -> FileChange:
        """Why the database file changed outside our commits (see the module
        docstring); ``others_wrote``: another connection committed to it or
        reset its log since the last look. Called under the write lock. Its
        contents the same bytes as at the last :meth:`note_contents` (a touch,
        a tool setting its time; ``same``: :meth:`same_contents` asked before
        the locks), and neither the file nor the log's record moved since:
        unchanged, the log fits it as it did."""
        if same is not None and self._as_noted() and self._stat() == same:
            self.note()
            return FileChange("unchanged", "its contents are as they were, only its time moved")
        for _attempt in range(3):
            log, settled = self._settled_log()
            if log is None:
                return FileChange("unknown", "its write-ahead log's index (-shm) cannot be read")
            change = self._explain(log, settled, others_wrote)
            if self._log() == log:
                self._salts = log.salts
                return change
        return FileChange("unknown", "checkpoints went on while it was looked at")

    def _as_noted(self) -> bool:
        """Whether the log says no checkpoint wrote the file since its digest was
        noted: the same log (its salts), none of its frames checkpointed since
        (nBackfill not past what it was; a recovery sets it back to 0). The same bytes
        are then the same file; else they are not enough: a copy of the file as it was
        before a checkpoint lacks the frames the log says are in it, which the log's
        next restart drops (the rows they held lost, the schema too for a fresh index)."""
        noted, log = self._digest_log, self._log()
        return self._digests is not None and noted is not None and log is not None \
            and log.salts == noted.salts and log.backfilled <= noted.backfilled

    def _explain(self, log: _Log, settled: bool, others_wrote: bool) -> FileChange:
        if log.frames == 0:
            if others_wrote:
                return FileChange("checkpoint", "its write-ahead log was checkpointed and "
                                                "emptied by another program")
            return FileChange("copy", "its write-ahead log is empty and was not emptied since")
        if not self._log_matches(log):
            return FileChange("unknown", "its write-ahead log does not match its index")
        if log.backfilled == 0:
            if not settled:
                return FileChange("unknown", "a checkpoint is still writing it")
            if self._salts is not None and log.salts != self._salts:
                # Restarted: SQLite restarts a log only once all of it is checkpointed
                # (walformat.html, "nBackfill"): none of our frames is left in it.
                return FileChange("checkpoint", "its write-ahead log was checkpointed and "
                                                "restarted by another program, which wrote")
            if others_wrote and self._salts is None:
                return FileChange("unknown", "none of its write-ahead log is checkpointed, "
                                             "which another program wrote")
            return FileChange("copy", "none of its write-ahead log is checkpointed")
        if log.frames > _MAX_FRAMES:
            return FileChange("unknown", f"its write-ahead log holds {log.frames} frames")
        pages = self._page_numbers(log.frames)
        if pages is None:
            return FileChange("unknown", "its write-ahead log's index (-shm) cannot be read")
        # Only pages not written again after the checkpointed frames: a checkpoint
        # copies a page only if its latest frame is within those it may copy,
        # leaving the others as they were (and may be copying those now).
        later = set(pages[log.backfilled:])
        seen: set[int] = set()
        compared = 0
        for frame in range(log.backfilled, 0, -1):
            page = pages[frame - 1]
            if page in seen or page in later or page > log.pages:
                continue  # the file's pages past its size (nPage) are cut off
            seen.add(page)
            same = self._same_page(log, frame, page)
            if same is None:
                return FileChange("unknown", f"frame {frame} of its write-ahead log "
                                             "cannot be read")
            if not same:
                return FileChange("copy", f"its page {page} is not the one its write-ahead "
                                          "log checkpointed")
            compared += 1
            if compared == _SAMPLE:
                break
        if compared == 0:
            return FileChange("unknown", "each page its write-ahead log checkpointed is "
                                         "written again in its later frames")
        return FileChange("checkpoint", f"its write-ahead log checkpointed by another "
                                        f"program ({log.backfilled} of {log.frames} frames)")

    def _settled_log(self) -> tuple[_Log | None, bool]:
        """The log, once no checkpoint is copying (or :data:`WAIT` passed: False)."""
        deadline = time.monotonic() + WAIT
        while True:
            log = self._log()
            if log is None or log.attempted <= log.backfilled:
                return log, True
            if time.monotonic() >= deadline:
                return log, False
            time.sleep(_STEP)

    def _log(self) -> _Log | None:
        data = _read(self._fds[2], _INDEX_INFO_END, 0)
        if data is None or data[:48] != data[48:96]:  # a header being written
            return None
        version, _unused, _change, initialised, _big, size, frames, pages, _sums, salts, \
            _sum = _INDEX_HEADER.unpack_from(data)
        if version != _INDEX_VERSION or not initialised:
            return None
        return _Log(page_size=65536 if size == 1 else size, frames=frames, pages=pages,
                    salts=salts,
                    backfilled=_BACKFILL.unpack_from(data, _BACKFILL_AT)[0],
                    attempted=_BACKFILL.unpack_from(data, _ATTEMPTED_AT)[0])

    def _log_matches(self, log: _Log) -> bool:
        """The log file's header is the one its index describes."""
        header = _read(self._fds[1], _WAL_HEADER, 0)
        if header is None:
            return False
        magic, version, page_size = struct.unpack_from(">III", header)
        return (magic in _WAL_MAGIC and version == _WAL_VERSION
                and page_size == log.page_size and header[16:24] == log.salts)

    def _page_numbers(self, frames: int) -> list[int] | None:
        """The page number of each frame, 1 to ``frames``, from the hash tables."""
        numbers: list[int] = []
        block, start, count = 0, _INDEX_INFO_END, _FIRST_BLOCK_FRAMES
        while len(numbers) < frames:
            want = min(count, frames - len(numbers))
            data = _read(self._fds[2], 4 * want, block * _BLOCK + start)
            if data is None:
                return None
            numbers.extend(struct.unpack(f"={want}I", data))
            block, start, count = block + 1, 0, _BLOCK_FRAMES
        return numbers

    def _same_page(self, log: _Log, frame: int, page: int) -> bool | None:
        """Whether the file's ``page`` is ``frame``'s; None if the frame cannot be read."""
        size = log.page_size
        data = _read(self._fds[1], _FRAME_HEADER + size,
                     _WAL_HEADER + (frame - 1) * (_FRAME_HEADER + size))
        if data is None or struct.unpack_from(">I", data)[0] != page \
                or data[8:16] != log.salts:
            return None
        held = _read(self._fds[0], size, (page - 1) * size)
        return held is not None and held == data[_FRAME_HEADER:]


def file_state(path: Path) -> tuple[int, int, int, int] | None:
    """The device, inode, size and modification time (ns) of ``path``, or None."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def file_id(path: Path) -> tuple[int, int] | None:
    """The device and inode of ``path``, or None if there is none."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _page_digests(fd: int | None, size: int, page_size: int, previous: bytes | None = None,
                  pages: list[int] | None = None) -> bytes | None:
    """The digest of each page of the first ``size`` bytes of ``fd``'s file (the
    last page maybe short); or ``previous``'s with only ``pages`` read again, and
    those past its end (the last of it too: it may have been short). None if it
    cannot be read, or ends before ``size``."""
    count = -(-size // page_size)
    if previous is None or pages is None:
        digests = bytearray()
        for first in range(0, count, _READ_PAGES):
            start = first * page_size
            data = _read(fd, min(_READ_PAGES * page_size, size - start), start)
            if data is None:
                return None
            for at in range(0, len(data), page_size):
                digests += _digest(data[at:at + page_size])
        return bytes(digests)
    kept = min(len(previous) // _PAGE_DIGEST, count)
    digests = bytearray(previous[:kept * _PAGE_DIGEST])
    digests += bytes((count - kept) * _PAGE_DIGEST)
    for page in sorted({n for n in pages if n <= count} | set(range(max(kept, 1), count + 1))):
        start = (page - 1) * page_size
        data = _read(fd, min(page_size, size - start), start)
        if data is None:
            return None
        digests[start // page_size * _PAGE_DIGEST:page * _PAGE_DIGEST] = _digest(data)
    return bytes(digests)


def _digest(page: bytes) -> bytes:
    return hashlib.blake2b(page, digest_size=_PAGE_DIGEST).digest()


def _open(path: Path, mode: int = os.O_RDONLY) -> int | None:
    """A descriptor of ``path``, read-only if it cannot be opened in ``mode``."""
    for flags in dict.fromkeys((mode, os.O_RDONLY)):
        try:
            return os.open(path, flags | os.O_CLOEXEC)
        except OSError:
            continue
    return None


def _read(fd: int | None, size: int, offset: int) -> bytes | None:
    """Exactly ``size`` bytes at ``offset``, or None (no file, short, an error)."""
    if fd is None:
        return None
    try:
        data = os.pread(fd, size, offset)
    except OSError:
        return None
    return data if len(data) == size else None


def owner_only(path: Path) -> None:
    """Create the database file owner-only, or restrict it and its companions."""
    try:
        os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, DB_MODE))
    except OSError as exc:
        raise StorageError.from_os_error("cannot open index", path, exc) from exc
    for file in (path, *(path.with_name(path.name + suffix) for suffix in COMPANIONS)):
        try:
            mode = stat.S_IMODE(os.stat(file).st_mode)
            if mode & 0o077:
                os.chmod(file, mode & ~0o077)
                logger.info("index file %s was readable by other accounts (mode %04o): "
                            "now %04o, as the stored files", file, mode, mode & ~0o077)
        except FileNotFoundError:  # no such companion, the usual case
            pass
        except OSError as exc:
            logger.warning("cannot make index file %s its owner's only: %s", file,
                           exc.strerror or exc)
