"""Durable, atomic placement of received objects on disk.

A C-STORE SCP that writes straight to the final name (as DCMTK ``storescp``
does) leaves a truncated object behind when it is killed, and a reader may
pick that up as if it were complete. Here an object is streamed to a hidden
temporary file in the destination folder, flushed and ``fsync``-ed, then
given its final name in one atomic step, and finally the folder is
``fsync``-ed so the new name itself survives a power cut. A crash at any
point leaves either no file under the final name or the complete one, plus
at most a ``.*.dicomnet-part`` file that the next server's start-up sweep
(:func:`~dicomnet.storage.cleanup.cleanup_stale`) removes: one not marked
with this process's :data:`RUN_MARK`, which it leaves, as its own server's
transfers may be under way while it sweeps.

OS errors are translated here into :class:`StorageError`, keeping the
``errno`` so the SCP can pick its answer: a full disk or quota is "Refused:
Out of Resources" (0xA7xx, PS3.4 B.2.3).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import logging
import os
import secrets
import sys
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Self, cast

from dicomnet.errors import StorageError
from dicomnet.storage.direct import AlignedBuffer, DirectBatch, DirectSpool
from dicomnet.storage.layout import (
    CommitOutcome,
    CommitResult,
    DuplicatePolicy,
    Layout,
    StoragePolicy,
    forget_verified,
)

__all__ = [
    "AtomicWriter",
    "CommitOutcome",
    "CommitResult",
    "DuplicatePolicy",
    "Layout",
    "StorageError",
    "StoragePolicy",
    "TEMP_SUFFIX",
    "sync_folder",
]

logger = logging.getLogger("dicomnet.storage")

#: Suffix of our temporary files; with the leading dot they are hidden and no
#: name built by :func:`~dicomnet.storage.names.join_under` can match one.
TEMP_SUFFIX = ".dicomnet-part"

#: This process's mark, drawn once: its temporary files are named
#: ``.<RUN_MARK>-<random>.dicomnet-part``, so that a start-up sweep running
#: while its server stores tells them from those of an interrupted run
#: (another process: another mark) by name alone, whatever the clocks say.
RUN_MARK = secrets.token_hex(4)


def temp_name() -> str:
    """A new temporary file's name (``.<RUN_MARK>-<64 random bits>.dicomnet-part``)."""
    return f".{RUN_MARK}-{secrets.token_hex(8)}{TEMP_SUFFIX}"

_DIR_MODE = 0o755
_FILE_MODE = 0o600  # medical data: readable by the service account only

#: errno values of os.link meaning "this file system has no hard links".
_NO_LINKS = frozenset(
    code
    for code in (errno.EPERM, getattr(errno, "EOPNOTSUPP", None), errno.ENOTSUP)
    if code is not None
)


def linux_libc_function(name: str, *argtypes: Any) -> Any | None:
    """libc's ``name`` (returning an int, setting errno) on Linux, for the calls
    Python's os module does not offer; None elsewhere or where libc lacks it."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = getattr(ctypes.CDLL(None, use_errno=True), name)
    except (OSError, AttributeError):
        return None
    function.argtypes = argtypes
    function.restype = ctypes.c_int
    return function


_sync_file_range = cast(
    "Callable[[int, int, int, int], int] | None",
    linux_libc_function("sync_file_range", ctypes.c_int, ctypes.c_int64, ctypes.c_int64,
                        ctypes.c_uint))
_SYNC_FILE_RANGE_WRITE = 2


def sync_folder(path: Path | str) -> None:
    """Make the names just given in folder ``path`` durable (after commits made
    with ``sync_folder=False``). Raises :class:`StorageError`."""
    try:
        _fsync_dir(path)
    except OSError as exc:
        raise StorageError.from_os_error("cannot sync folder", Path(path), exc) from exc


def _fsync_dir(path: Path | str) -> None:
    """Make the directory entries of ``path`` durable (POSIX; no-op elsewhere)."""
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
    if os.name != "posix":
        return  # Windows cannot open a directory for fsync; NTFS journals names
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


#: Folders already made (or seen) by this process: a store puts thousands of
#: objects in one series folder, and checking it again each time was a
#: measurable share of a small object's cost. A folder removed behind our back
#: is made again (see AtomicWriter.__init__). Kept as str: a Path is hashed and
#: compared in Python, a few calls per object.
_KNOWN_DIRS: set[str] = set()
_KNOWN_DIRS_MAX = 4096


_O_TMPFILE = getattr(os, "O_TMPFILE", 0)
#: errno values of open(O_TMPFILE) meaning "not on this file system or kernel".
_NO_TMPFILE = frozenset(
    code for code in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL,
                      getattr(errno, "ENOTSUP", None)) if code is not None
)
#: Folders where O_TMPFILE failed for want of support: not tried again there.
_UNNAMED_UNSUPPORTED: set[str] = set()


#: The descriptor of this process's /proc/self/fd, once opened (see _proc_fd_dir).
_PROC_FD_DIR: list[int] = []
if hasattr(os, "register_at_fork"):
    # A forked child opens its own: the parent's names the parent's files. Forgotten
    # by a hook rather than checked with a getpid, a system call per object.
    os.register_at_fork(after_in_child=_PROC_FD_DIR.clear)


def _proc_fd_dir() -> int:
    """A descriptor of this process's /proc/self/fd, opened once per process."""
    if not _PROC_FD_DIR:
        _PROC_FD_DIR.append(os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
    return _PROC_FD_DIR[0]


@functools.cache
def _unnamed_files_supported() -> bool:
    """O_TMPFILE exists, and /proc can name such a file (linkat through /proc)."""
    return bool(_O_TMPFILE) and os.path.isdir("/proc/self/fd")


def forget_folder(directory: Path | str) -> None:
    """``directory`` was removed by this process: the next writer makes it again
    (and proves it inside its root again) without first failing in it."""
    _KNOWN_DIRS.discard(os.fspath(directory))
    forget_verified(directory)


#: Walks of a folder's path when its parents keep disappearing under it.
_MAKE_ATTEMPTS = 3


def _make_dirs(directory: Path | str, *, durable: bool = True) -> None:
    key = os.fspath(directory)
    if key in _KNOWN_DIRS:
        return
    _make_dirs_uncached(Path(directory), durable=durable)
    if len(_KNOWN_DIRS) >= _KNOWN_DIRS_MAX:
        _KNOWN_DIRS.clear()
    _KNOWN_DIRS.add(key)


def _make_dirs_uncached(directory: Path, *, durable: bool = True) -> None:
    """Create ``directory`` and missing parents with mode 0o755, durably.

    ``os.makedirs`` applies ``mode`` to the leaf only; each parent here gets
    it too, and each parent is fsync-ed so the new entry survives a crash.
    """
    for attempt in range(_MAKE_ATTEMPTS):
        missing: list[Path] = []
        current = directory
        while not current.is_dir():
            missing.append(current)
            if current.parent == current:
                break
            current = current.parent
        try:
            for path in reversed(missing):
                try:
                    os.mkdir(path, _DIR_MODE)
                except FileExistsError:
                    if not path.is_dir():
                        raise
                    continue  # another writer made it first: fine
                if durable:
                    _fsync_dir(path.parent)
            return
        except FileNotFoundError:
            # A parent went since we looked (the store prunes folders an
            # overwrite emptied, storage.instances): walk again.
            if attempt == _MAKE_ATTEMPTS - 1:
                raise


class AtomicWriter:
    """Stream one object to ``destination`` through a temporary file.

    The temporary file is ``<dir>/.<run>-<random>.dicomnet-part`` in the final
    folder, so the rename stays on one file system; it is created with
    ``O_CREAT | O_EXCL`` and mode 0o600. Use as a context manager: leaving
    the block by an exception, or without :meth:`commit`, aborts::

        with AtomicWriter(path) as w:
            w.write(header)
            for fragment in fragments:
                w.write(fragment)
            result = w.commit(DuplicatePolicy.KEEP)

    Every ``OSError`` surfaces as :class:`StorageError`. Not thread-safe:
    one writer belongs to one C-STORE operation.
    """

    # Defaults for a writer whose __init__ failed before setting them: __del__
    # reads them as attributes, not with getattr (two calls per object).
    _spool: DirectSpool | None = None
    _fd: int = -1

    def __init__(self, destination: Path | str, *, durable: bool = True, unnamed: bool = False,
                 direct: bool = False, folder: Path | str | None = None) -> None:
        # Paths kept as text: a Path per object (made, hashed, turned into text)
        # was ~16 Python calls of a received image's few hundred.
        #: The final path the object gets on commit, as text (:attr:`destination`).
        self.destination_name = (destination if type(destination) is str  # the store thread's
                                 else os.fspath(destination))
        #: With ``direct``, bytes go to disk as they come, without the page cache
        #: (:mod:`dicomnet.storage.direct`): for large objects, whose every byte the
        #: commit must wait for anyway. Ignored where the file system cannot.
        self._spool = None
        #: With ``unnamed``, the file has no name at all until its commit (Linux
        #: ``O_TMPFILE``, named by ``linkat``): nothing to remove after a crash, and
        #: a random name, its creation and its removal fewer per object. Where the
        #: file system cannot, a named temporary file is used as without it.
        #: False skips every fsync: the rename stays atomic (never a partial file
        #: under a final name, even if the process is killed) but a power cut may
        #: lose objects already answered with Success. For benchmarks and scratch
        #: stores; the default is durable.
        self.durable = durable
        # ``folder``: the destination's parent, when the caller has it already
        # (Layout.place_in): not worked out again per object.
        folder_name = (os.path.dirname(self.destination_name) or os.curdir if folder is None
                       else folder if type(folder) is str else os.fspath(folder))
        self._size = 0
        self._done = False
        #: The folder the file is made in (and named into), as a string: its file
        #: system is the file's (``syncfs.sync_together`` checks one per folder).
        self.folder_name = folder_name
        if folder_name not in _KNOWN_DIRS:  # checked here too: one call fewer per object
            try:
                _make_dirs(folder_name, durable=durable)
            except OSError as exc:
                raise StorageError.from_os_error("cannot create folder", Path(folder_name),
                                                 exc) from exc
        self._temp: str | None = None
        if unnamed and folder_name not in _UNNAMED_UNSUPPORTED and _unnamed_files_supported():
            try:
                self._fd = os.open(folder_name, _O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC, _FILE_MODE)
                if direct:
                    self._spool = DirectSpool.open(self._fd)
                return
            except OSError as exc:
                if exc.errno in _NO_TMPFILE:
                    _UNNAMED_UNSUPPORTED.add(folder_name)
                # Anything else (a folder removed behind our back...): the named path
                # below handles it, or explains it.
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        flags |= getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
        flags |= getattr(os, "O_BINARY", 0)
        made_again = 0
        while True:
            # A str, not a Path: building Paths was a tenth of a small object's cost.
            temp = os.path.join(folder_name, temp_name())
            try:
                self._fd = os.open(temp, flags, _FILE_MODE)
            except FileExistsError:
                continue  # 64 random bits already taken: draw again
            except FileNotFoundError as exc:
                # Removed since we made or saw it (a retention job; the store's own
                # pruning, storage.instances): make it again, a few times at most.
                made_again += 1
                if made_again > _MAKE_ATTEMPTS:
                    raise StorageError.from_os_error("cannot create", Path(temp), exc) from exc
                _KNOWN_DIRS.discard(folder_name)
                try:
                    _make_dirs(folder_name, durable=durable)
                except OSError as exc:
                    raise StorageError.from_os_error(
                        "cannot create folder", Path(folder_name), exc) from exc
                continue
            except OSError as exc:
                raise StorageError.from_os_error("cannot create", Path(temp), exc) from exc
            break
        self._temp = temp
        if direct:
            self._spool = DirectSpool.open(self._fd)

    @property
    def destination(self) -> Path:
        """The final path the object gets on commit."""
        return Path(self.destination_name)

    @property
    def temp_path(self) -> Path:
        """The temporary file being written (for an unnamed one, its /proc link)."""
        return Path(self.temp_filename)

    @property
    def temp_filename(self) -> str:
        """:attr:`temp_path` as text."""
        if self._temp is None:
            return f"/proc/self/fd/{self._fd}"
        return self._temp

    @property
    def size(self) -> int:
        """Bytes written so far."""
        return self._size

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Append ``data``; loops over short writes. Raises :class:`StorageError`."""
        if self._done:
            raise StorageError("write after commit or abort")
        view = memoryview(data).cast("B")
        try:
            if self._spool is not None:
                self._spool.write(view)
                self._size += len(view)
                return
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
                self._size += written
        except OSError as exc:
            raise StorageError.from_os_error("cannot write", self._written_as, exc) from exc

    @property
    def _written_as(self) -> Path:
        """What error messages name: the temporary file, or for an unnamed one the
        object it will become (its /proc link would tell a reader nothing)."""
        if self._temp is None:
            return Path(f"{self.destination_name} (unnamed, being written)")
        return Path(self._temp)

    def reserve(self, most: int) -> memoryview | None:
        """Memory to receive the next bytes in place (see DirectSpool.reserve)."""
        return None if self._spool is None or self._done else self._spool.reserve(most)

    def fileno(self) -> int:
        """The temporary file's descriptor (-1 once closed)."""
        return self._fd

    def write_in(self, batch: DirectBatch, buffer: AlignedBuffer) -> bool:
        """Hand the whole object to ``batch``, to be written with others without
        the page cache (a writer nothing was written to). True: it is
        being written, and is complete once ``batch.finish()`` reported no
        failure for :meth:`fileno` (abort the writer if it did). False: nothing
        was done; :meth:`write` it."""
        if self._size or self._spool is not None:
            return False
        if not batch.add(self._fd, buffer):
            return False
        self._size = buffer.size  # an attribute: len() is a Python call (__len__)
        return True

    @property
    def direct(self) -> bool:
        """True while bytes go to disk without the page cache (``direct=True``
        on a file system that allows it)."""
        return self._spool is not None

    def flush(self) -> None:
        """Finish the writes still in flight, so that the file holds every byte
        written (a direct writer's are in the background until then); :meth:`commit`
        does this itself. Raises :class:`StorageError`; the caller aborts."""
        spool, self._spool = self._spool, None
        if spool is not None:
            try:
                spool.finish()
            except OSError as exc:
                raise StorageError.from_os_error("cannot write", self._written_as, exc) from exc

    def truncate(self, size: int) -> None:
        """Cut the object to its first ``size`` bytes (at most :attr:`size`), to
        be written on from there. A direct writer's writes are finished first,
        and it goes on through the page cache. Raises :class:`StorageError`."""
        self.flush()
        try:
            os.ftruncate(self._fd, size)
            # The direct writes (pwrite) left the offset where it was.
            os.lseek(self._fd, size, os.SEEK_SET)
        except OSError as exc:
            raise StorageError.from_os_error("cannot write", self._written_as, exc) from exc
        self._size = size

    def make_durable(self) -> None:
        """Finish the writes and fsync the file now, so that a later
        ``commit(synced=True, sync_folder=False)`` only names it: for a caller
        that names under a lock and keeps the waits for the disk out of it.
        Raises :class:`StorageError`, the temporary file then removed."""
        try:
            if self._spool is not None:  # a direct writer's (flush: a call per object)
                self.flush()
            if self.durable:
                os.fsync(self._fd)
        except StorageError:
            self.abort()
            raise
        except OSError as exc:
            self.abort()
            raise StorageError.from_os_error("cannot store", self._written_as, exc) from exc

    def start_sync(self) -> None:
        """Start writing what was written so far to disk, without waiting (Linux
        ``sync_file_range(SYNC_FILE_RANGE_WRITE)``; nothing elsewhere). A batch of
        objects started this way before their commits has its I/O in flight at
        once, and each commit's fsync only waits for what is left."""
        if self._fd >= 0 and self.durable and _sync_file_range is not None:
            _sync_file_range(self._fd, 0, 0, _SYNC_FILE_RANGE_WRITE)

    def sync_data(self) -> None:
        """Push what was written so far to disk (fdatasync), from any thread, so that
        :meth:`commit`'s fsync has little left to wait for. Errors are ignored here:
        the fsync in :meth:`commit` reports them."""
        fd = self._fd
        if fd >= 0 and self._spool is None:  # a direct writer's bytes are on their way
            with contextlib.suppress(OSError):
                os.fdatasync(fd)

    def commit(
        self, policy: DuplicatePolicy = DuplicatePolicy.KEEP, *,
        destination: Path | str | None = None,
        sync_folder: bool = True, synced: bool = False,
        damaged: Callable[[Path], bool] | None = None,
    ) -> CommitResult:
        """Make the object durable under its final name, per ``policy``.

        Order (each step only after the previous one succeeded): ``fsync``
        the file; give it the final name (``os.link``, which fails if the name
        exists; then ``OVERWRITE`` replaces the file there with ``os.replace``,
        the outcome ``REPLACED``, while ``KEEP``/``REJECT`` never touch it,
        unless ``damaged`` says it is damaged: it is then replaced as by
        ``OVERWRITE``); remove the temporary name;
        ``fsync`` the folder. Only after this returns may the index learn of
        the file. On error the temporary file is removed and
        :class:`StorageError` raised.

        ``destination`` overrides the final path given at creation, for a
        C-STORE SCP that learns the study and series folders only once the
        data set is in; it must be on the same file system (its folders are
        created here).

        ``sync_folder=False`` leaves the folder's ``fsync`` to the caller, who
        must call :func:`sync_folder` before telling anyone the object is
        stored: a batch of objects in one folder then costs one folder fsync.
        ``synced=True`` skips the file's own fsync, for a caller whose
        :func:`~dicomnet.storage.syncfs.sync_together` covering this writer
        returned True.

        ``damaged``, for ``KEEP``/``REJECT``: called with the final path when a
        file already has it; True (the file is not what was stored there:
        :func:`~dicomnet.storage.damage.damaged_part10` for a C-STORE SCP)
        replaces it, as ``OVERWRITE`` would. Called for duplicates only.
        """
        if self._done:
            raise StorageError("commit after commit or abort")
        # The same str as given at creation (the store thread's): nothing to make.
        if destination is not None and destination is not self.destination_name:
            final = os.fspath(destination)
            try:
                _make_dirs(os.path.dirname(final) or os.curdir, durable=self.durable)
            except OSError as exc:
                self.abort()
                raise StorageError.from_os_error(
                    "cannot create folder", Path(final).parent, exc
                ) from exc
            self.destination_name = final
        final = self.destination_name
        if self._spool is not None:  # a direct writer's (flush: a call per object)
            try:
                self.flush()
            except StorageError:
                self.abort()
                raise
        try:
            if self.durable and not synced:
                os.fsync(self._fd)
            if self._temp is None:
                outcome = self._name_unnamed(policy, damaged)
                # _close(), inline (a call per object): no spool left after the flush.
                fd, self._fd = self._fd, -1
                if fd >= 0:
                    os.close(fd)
                if self.durable and sync_folder:
                    _fsync_dir(os.path.dirname(final) or os.curdir)
                self._done = True
                if logger.isEnabledFor(logging.DEBUG):  # else outcome.value costs two calls
                    logger.debug("%s %s (%d bytes)", outcome.value, final, self._size)
                return CommitResult(outcome=outcome, path=final, size=self._size)
            self._close()
            try:
                outcome = self._give_final_name(policy, damaged)
            except FileNotFoundError:
                parent = os.path.dirname(final) or os.curdir
                if os.path.isdir(parent) or not os.path.exists(self._temp):
                    raise
                # The folder was removed behind our back (a retention job, an
                # operator) after this process made it: make it again, once.
                _KNOWN_DIRS.discard(parent)
                _make_dirs(parent, durable=self.durable)
                outcome = self._give_final_name(policy, damaged)
            if self.durable and sync_folder:
                _fsync_dir(os.path.dirname(final) or os.curdir)
        except OSError as exc:
            self.abort()
            raise StorageError.from_os_error("cannot store", Path(final), exc) from exc
        except BaseException:
            self.abort()
            raise
        self._done = True
        if logger.isEnabledFor(logging.DEBUG):  # else outcome.value costs two calls
            logger.debug("%s %s (%d bytes)", outcome.value, final, self._size)
        return CommitResult(outcome=outcome, path=final, size=self._size)

    def _name_unnamed(self, policy: DuplicatePolicy,
                      damaged: Callable[[Path], bool] | None) -> CommitOutcome:
        """Give an O_TMPFILE its final name: ``linkat`` through /proc, which fails
        if the name exists; then (OVERWRITE, or a damaged copy) a link to a
        temporary name that replaces the final one."""
        # linkat(AT_SYMLINK_FOLLOW) on /proc/self/fd/N; os.link only uses linkat (and
        # follows the magic link) when given a directory descriptor.
        # The descriptor looked up inline: _proc_fd_dir() is a call per object.
        proc_fd_dir = _PROC_FD_DIR[0] if _PROC_FD_DIR else _proc_fd_dir()
        source = str(self._fd)
        final = self.destination_name
        # Linked without replacing first under every policy: a name free (the
        # usual case) costs one linkat, and an earlier copy is known to be there
        # when it is replaced (CommitOutcome.REPLACED), through a temporary name.
        replacing = False
        for attempt in (1, 2, 3):
            try:
                if replacing:
                    temp = os.path.join(os.path.dirname(final), temp_name())
                    os.link(source, temp, src_dir_fd=proc_fd_dir, follow_symlinks=True)
                    try:
                        os.replace(temp, final)
                    except BaseException:
                        with contextlib.suppress(OSError):
                            os.unlink(temp)
                        raise
                    return CommitOutcome.REPLACED
                os.link(source, final, src_dir_fd=proc_fd_dir, follow_symlinks=True)
                return CommitOutcome.STORED
            except FileExistsError:
                if replacing:
                    continue  # 64 random bits already taken: draw again
                if policy is not DuplicatePolicy.OVERWRITE and (
                        damaged is None or not damaged(Path(final))):
                    return (CommitOutcome.DUPLICATE_REJECTED
                            if policy is DuplicatePolicy.REJECT else CommitOutcome.DUPLICATE_KEPT)
                replacing = True  # the sender's copy takes its place
            except FileNotFoundError:
                parent = os.path.dirname(final) or os.curdir
                if attempt == 3 or os.path.isdir(parent):
                    raise
                # The folder was removed behind our back after this process made it.
                _KNOWN_DIRS.discard(parent)
                _make_dirs(parent, durable=self.durable)
        raise StorageError(f"cannot name {final}")

    def _give_final_name(self, policy: DuplicatePolicy,
                         damaged: Callable[[Path], bool] | None) -> CommitOutcome:
        assert self._temp is not None
        # Linked without replacing first under every policy, so that a copy
        # replaced is known (CommitOutcome.REPLACED).
        outcome = self._link_no_replace(policy)
        if outcome is not CommitOutcome.STORED and (
                policy is DuplicatePolicy.OVERWRITE
                or (damaged is not None and damaged(Path(self.destination_name)))):
            os.replace(self._temp, self.destination_name)
            return CommitOutcome.REPLACED
        # Gone already if the no-hard-link fallback renamed it.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._temp)
        return outcome

    def _link_no_replace(self, policy: DuplicatePolicy) -> CommitOutcome:
        assert self._temp is not None
        final = self.destination_name
        duplicate = (
            CommitOutcome.DUPLICATE_REJECTED
            if policy is DuplicatePolicy.REJECT
            else CommitOutcome.DUPLICATE_KEPT
        )
        try:
            os.link(self._temp, final, follow_symlinks=False)
        except FileExistsError:
            return duplicate
        except OSError as exc:
            if exc.errno not in _NO_LINKS:
                raise
            # No hard links here (FAT, some network shares): check, then
            # rename. Racy against a concurrent writer of the same UID, but
            # never leaves a partial file under the final name.
            if os.path.lexists(final):
                return duplicate
            os.rename(self._temp, final)
        return CommitOutcome.STORED

    def abort(self) -> None:
        """Close and remove the temporary file; the final name is untouched.

        Safe to call more than once and after a failed commit.
        """
        self._done = True
        self._close()
        if self._temp is None:
            return  # unnamed: closing it was the whole removal
        try:
            os.unlink(self._temp)
        except FileNotFoundError:
            pass
        except OSError as exc:  # leave it to cleanup_stale; do not hide the first error
            logger.warning("cannot remove %s: %s", self._temp, exc)

    def _close(self) -> None:
        spool, self._spool = self._spool, None
        if spool is not None:
            spool.cancel()  # the kernel must be done with the descriptor first
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._done:
            self.abort()

    def __del__(self) -> None:
        # Last resort against a leaked descriptor; the file is left for
        # cleanup_stale because a finalizer must not do I/O that can fail.
        spool = self._spool
        if spool is not None:
            spool.cancel()
        fd = self._fd
        if fd >= 0:
            os.close(fd)
