"""Relabelling a stored file whose File Meta Information names another transfer
syntax than its data set's: Explicit VR Little Endian over an Implicit VR data
set (:attr:`~dicomnet.storage.part10.Part10Info.relabelled_from`), as servers
before the SCP's relabelling stored what a peer sent so (pydicom and pynetdicom
send such data sets when told to).

PS3.10 7.1 makes (0002,0010) Transfer Syntax UID the data set's encoding: read
by it, such a file is misread (DCMTK's dcmdump and storescp fail on it). dicomnet
reads it for what it is, and ``reindex`` indexes it so; :func:`relabel_file`
also makes the file say so, as the SCP writes one today: its meta group with
the data set's syntax, the data set after it unchanged (any group 0002 elements
at its start dropped, :mod:`~dicomnet.storage.stray_meta`). The new file is
written beside the old one (an :class:`~dicomnet.storage.files.AtomicWriter`,
fsynced) and exchanged with it in one step (Linux ``renameat2(RENAME_EXCHANGE)``),
so that what comes out can be checked to be the very file that was read, and
put back if another program replaced or rewrote it in the meantime; where the
system cannot exchange (not Linux, a kernel before 3.15, a file system that
refuses it), renamed over it after the same checks, with a small gap between
the last check and the rename. A crash leaves the old file or the new one,
never a mix (and at most a ``.dicomnet-part`` temporary file, which the next
server start removes); its modification time (a reindexed row's time
received), mode, owner and group are kept.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import os
import secrets
import sys
from collections.abc import Callable
from pathlib import Path
from stat import S_IMODE

from dicomnet.storage.files import (
    TEMP_SUFFIX,
    AtomicWriter,
    CommitOutcome,
    DuplicatePolicy,
    StorageError,
    sync_folder,
)
from dicomnet.storage.part10 import (
    PREAMBLE_LENGTH,
    NotPart10Error,
    Part10Info,
    with_transfer_syntax,
)
from dicomnet.storage.stray_meta import meta_group_end

__all__ = ["relabel_file"]

_PIECE = 1 << 20


def relabel_file(info: Part10Info, *, durable: bool = True) -> int:
    """Give ``info``'s file (a :func:`~dicomnet.storage.part10.read_part10` of
    it whose ``relabelled_from`` is set) a File Meta Information naming
    ``info.transfer_syntax_uid``; returns the file's new size. Raises
    :class:`StorageError` (the file unchanged) when it cannot be read or
    written, or changed since ``info`` was read (its size, device, inode,
    modification or change time: another file put there, or written in place,
    even of the same size and its modification time given back) or while it
    is copied, up to the moment the new file takes its place (where the
    system can exchange two files); ``NotPart10Error`` for a meta group
    it cannot rewrite. Their words do not name the file: the caller does."""
    path = info.path
    try:
        with open(path, "rb") as fp:
            stat = os.fstat(fp.fileno())
            # Without an identity (a Part10Info not from read_part10): the size only.
            if stat.st_size != info.size or info.identity not in (None, _identity(stat)):
                raise StorageError("changed since it was read; not relabelled")
            head = fp.read(info.dataset_offset)
            end = meta_group_end(head, PREAMBLE_LENGTH)
            if end is None or len(head) != info.dataset_offset:
                raise NotPart10Error("its File Meta Information cannot be rewritten")
            header = with_transfer_syntax(head[:end], info.transfer_syntax_uid)
            # Unnamed until named beside it (O_TMPFILE): a kill leaves nothing behind.
            writer = AtomicWriter(path, durable=durable, unnamed=True)
            digest = hashlib.blake2b(head, digest_size=16)
            try:
                writer.write(header)
                while piece := fp.read(_PIECE):
                    digest.update(piece)
                    writer.write(piece)
                _keep_access(writer.fileno(), stat)
                # The time it was received, as reindex reads it (the file's mtime).
                os.utime(writer.fileno(), ns=(stat.st_atime_ns, stat.st_mtime_ns))
                # Last look before the exchange (nothing above touched the old
                # file, so its change time is still what it was unless another
                # program wrote it): copied unchanged (on its own descriptor), and
                # still the one at its path (not renamed over).
                now = os.fstat(fp.fileno())
                there = os.stat(path, follow_symlinks=False)
                if (writer.size != len(header) + info.dataset_length
                        or (now.st_size, _identity(now)) != (stat.st_size, _identity(stat))
                        or (there.st_dev, there.st_ino) != (stat.st_dev, stat.st_ino)):
                    raise StorageError("changed while relabelled; left as it was")
                new = os.fstat(writer.fileno())
                temp = path.with_name(f".{secrets.token_hex(8)}{TEMP_SUFFIX}")
                named = writer.commit(DuplicatePolicy.KEEP, destination=temp,
                                      sync_folder=False)
            except BaseException:
                writer.abort()
                raise
            if named.outcome is not CommitOutcome.STORED:  # 64 random bits taken
                raise StorageError("cannot name its new file; not relabelled")
            _put_in_place(temp, path, fd=fp.fileno(), was=stat, digest=digest.digest(), new=new)
            if durable:
                sync_folder(path.parent)
    except OSError as exc:
        raise StorageError(exc.strerror or str(exc), errno=exc.errno) from exc
    return writer.size


def _put_in_place(temp: Path, path: Path, *, fd: int, was: os.stat_result, digest: bytes,
                  new: os.stat_result) -> None:
    """Put the new file (at ``temp``, its stat ``new``) at ``path`` in place of the
    old one (open as ``fd``, its stat ``was`` and the digest of its bytes as
    copied): exchanged with it, then the old one, now at ``temp``, checked and
    removed; exchanged back, the new one removed and :class:`StorageError`
    raised, if it is not that file as it was copied (another program renamed
    or wrote a file there since the last look). Where the system cannot
    exchange, renamed over it as before. Leaves no file at ``temp``."""
    try:
        exchanged = _exchange(temp, path)
        if not exchanged:
            os.replace(temp, path)
            return
    except BaseException:
        _remove_if(temp, new)
        raise
    same = False
    try:
        out = os.stat(temp, follow_symlinks=False)
        # Not the change time: the exchange itself sets it (ext4, tmpfs, xfs...);
        # a write in place with its modification time given back shows in the bytes.
        same = ((out.st_dev, out.st_ino, out.st_size, out.st_mtime_ns)
                == (was.st_dev, was.st_ino, was.st_size, was.st_mtime_ns)
                and _digest_of(fd, was.st_size) == digest)
    finally:
        if not same:  # (also on an error) what came out goes back; the new file goes
            _exchange(temp, path)
            _remove_if(temp, new)
    if not same:
        raise StorageError("changed while relabelled; left as it was")
    os.unlink(temp)


def _remove_if(temp: Path, new: os.stat_result) -> None:
    """Remove ``temp`` if it is still our new file (``new``), not one another
    program put there."""
    try:
        there = os.stat(temp, follow_symlinks=False)
    except FileNotFoundError:
        return
    if (there.st_dev, there.st_ino) == (new.st_dev, new.st_ino):
        os.unlink(temp)


def _digest_of(fd: int, size: int) -> bytes:
    """The digest of ``fd``'s first ``size`` bytes, read as they are on disk now
    (pread: the copy's buffered reader may still hold some)."""
    digest = hashlib.blake2b(digest_size=16)
    offset = 0
    while offset < size and (piece := os.pread(fd, min(_PIECE, size - offset), offset)):
        digest.update(piece)
        offset += len(piece)
    return digest.digest()


# linux/fs.h: renameat2's flag that swaps two names atomically (Linux 3.15).
_RENAME_EXCHANGE = 1 << 1
_AT_FDCWD = -100
# The kernel lacks the call, or the file system the flag (renameat2(2) ERRORS).
_CANNOT_EXCHANGE = frozenset({errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP})


def _load_renameat2() -> Callable[..., int] | None:
    """libc's renameat2 (glibc 2.28, musl 1.2.5), or None where there is none."""
    if sys.platform != "linux":
        return None
    try:
        call = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    call.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                     ctypes.c_uint]
    call.restype = ctypes.c_int
    return call


_renameat2 = _load_renameat2()


def _exchange(first: Path, second: Path) -> bool:
    """Swap the files at ``first`` and ``second`` atomically (Linux
    ``renameat2(RENAME_EXCHANGE)``): True once done; False where the system
    cannot, nothing done. Raises OSError for any other failure."""
    if _renameat2 is None:
        return False
    if _renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second),
                  _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in _CANNOT_EXCHANGE:
        return False
    raise OSError(code, os.strerror(code), os.fspath(second))


def _identity(stat: os.stat_result) -> tuple[int, int, int, int]:
    """A file's device, inode, modification and change times, as Part10Info
    keeps them. The change time because the modification time can be given
    back (``touch -r``, ``cp -p``, ``rsync -t``: ``utime``) after a write in
    place, and the change time cannot (POSIX stat: any write, or that utime,
    sets it to now). Where the kernel stamps it from a coarse clock (before
    Linux 6.13's multigrain timestamps), a write within the same tick as the
    file's last change still goes unseen."""
    return stat.st_dev, stat.st_ino, stat.st_mtime_ns, stat.st_ctime_ns


def _keep_access(fd: int, was: os.stat_result) -> None:
    """Give the new file (``fd``, the AtomicWriter's: 0600, ours) the old one's
    owner, group and mode: run as root (sudo), a repair would otherwise take the
    server's files from its user, who could no longer read them. Raises
    :class:`StorageError` where the kernel refuses (not root: the file was
    another user's), the file then left as it was."""
    now = os.fstat(fd)
    if (now.st_uid, now.st_gid) != (was.st_uid, was.st_gid):
        try:
            os.fchown(fd, was.st_uid, was.st_gid)
        except PermissionError as exc:
            raise StorageError(
                f"cannot keep its owner and group ({was.st_uid}:{was.st_gid}) in a "
                "new file; not relabelled (run reindex as the file's owner, or as root)"
            ) from exc
    # After fchown, which clears the set-user-ID and set-group-ID bits.
    os.fchmod(fd, S_IMODE(was.st_mode))
