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
written beside the old one and renamed over it, after an fsync (an
:class:`~dicomnet.storage.files.AtomicWriter`): a crash leaves the old file or
the new one, never a mix (and no temporary file, where the file system has
O_TMPFILE); its modification time (a reindexed row's time
received), mode, owner and group are kept.
"""

from __future__ import annotations

import os
from stat import S_IMODE

from dicomnet.storage.files import AtomicWriter, DuplicatePolicy, StorageError
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
    is copied; ``NotPart10Error`` for a meta group
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
            # Unnamed until its rename (O_TMPFILE): a kill leaves nothing behind.
            writer = AtomicWriter(path, durable=durable, unnamed=True)
            try:
                writer.write(header)
                while piece := fp.read(_PIECE):
                    writer.write(piece)
                _keep_access(writer.fileno(), stat)
                # The time it was received, as reindex reads it (the file's mtime).
                os.utime(writer.fileno(), ns=(stat.st_atime_ns, stat.st_mtime_ns))
                # Last look, just before the rename (nothing above touched the old
                # file, so its change time is still what it was unless another
                # program wrote it): copied unchanged (on its own descriptor), and
                # still the one at its path (not renamed over).
                now = os.fstat(fp.fileno())
                there = os.stat(path, follow_symlinks=False)
                if (writer.size != len(header) + info.dataset_length
                        or (now.st_size, _identity(now)) != (stat.st_size, _identity(stat))
                        or (there.st_dev, there.st_ino) != (stat.st_dev, stat.st_ino)):
                    raise StorageError("changed while relabelled; left as it was")
                writer.commit(DuplicatePolicy.OVERWRITE)
            except BaseException:
                writer.abort()
                raise
    except OSError as exc:
        raise StorageError(exc.strerror or str(exc), errno=exc.errno) from exc
    return writer.size


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
