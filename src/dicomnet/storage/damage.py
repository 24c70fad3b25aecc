"""Whether a stored copy that a duplicate would be discarded for is still what was
stored.

A duplicate kept (``keep``) or refused (``reject``) costs the sender's copy: if
the stored one was damaged since (overwritten by hand, truncated by a disk
fault), the one good copy would be thrown away, the sender told Success. So
before a duplicate is discarded its stored copy is checked, cheaply, on the
duplicate path only (a new object pays nothing):

* where an index row (or this process) recorded its size: one ``stat``, the
  size against the recorded one (:func:`size_damage`); a size that differs is
  confirmed by a Part 10 look (:func:`instance_damage`), as the row may be the
  one that is wrong: a crash between renaming a new copy over the old one and
  writing its row leaves the old copy's, and an operator may have replaced the
  file by hand with a sound copy in another transfer syntax;
* where nothing recorded it (no index, a row lost): its first 144 bytes, which
  must be a Part 10 file's preamble, ``DICM`` prefix and, when it starts with
  one, File Meta Information Group Length, the file holding that whole group and
  more (PS3.10 7.1; :func:`part10_damage`).

The file is not hashed: the C-STORE SCP records no digest (storage.rows), and
reading every byte of each duplicate would cost what storing it again does. A
copy of the right size whose bytes changed is not found. A false alarm costs
little: the copy is replaced by the one the sender just offered, as
``overwrite`` would.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from .completeness import file_dataset_problem
from .part10 import Part10Info, read_part10

__all__ = ["damaged_part10", "instance_damage", "part10_damage", "size_damage"]

logger = logging.getLogger("dicomnet.storage")

#: PS3.10 7.1: a 128-byte preamble, then "DICM".
_PREFIX_END = 132
#: (0002,0000) File Meta Information Group Length, UL, Explicit VR Little Endian.
_GROUP_LENGTH = b"\x02\x00\x00\x00UL\x04\x00"
_HEAD = _PREFIX_END + len(_GROUP_LENGTH) + 4
#: The shortest data set element: a tag and a length (Implicit VR), no value.
_ELEMENT = 8


def size_damage(path: Path, recorded: int) -> str | None:
    """Why the copy at ``path`` is not what was stored, told by its size against the
    ``recorded`` one ("8 bytes, 4220 recorded"); None when they match.
    Raises OSError (FileNotFoundError when it is gone); one ``stat``."""
    size = os.stat(path).st_size
    return None if size == recorded else f"{size} bytes, {recorded} recorded"


def instance_damage(path: Path, sop_instance_uid: str) -> tuple[Part10Info | None, str]:
    """Whether the file at ``path``, whose size is not the recorded one, is a sound
    copy of the instance all the same: a Part 10 file (PS3.10 7.1) of SOP
    Instance ``sop_instance_uid`` whose data set ends where its elements say
    (storage.completeness). Its :func:`read_part10` and "" when it is; None
    and why not otherwise. Reads the File Meta Information and the data set's
    element headers (values are passed over by seeking); for the rare
    duplicate whose size differs only."""
    try:
        info = read_part10(path)
        if info.sop_instance_uid != sop_instance_uid:
            return None, f"a file of SOP Instance {info.sop_instance_uid[:64]!r}"
        problem = file_dataset_problem(str(path), info.dataset_offset,
                                       info.transfer_syntax_uid)
    except OSError as exc:
        return None, f"unreadable: {exc.strerror or exc}"
    except Exception as exc:  # NotPart10Error, StorageError; pydicom's many kinds
        return None, str(exc)
    return (info, "") if problem is None else (None, problem)


def part10_damage(path: Path) -> str | None:
    """Why the file at ``path`` is no plausible Part 10 file (PS3.10 7.1: preamble,
    ``DICM``, the File Meta Information whole and a data set after it); None
    when it is one, or cannot be read for want of permission (the operator's:
    kept as it is). A file gone or unreadable otherwise (EIO) is damaged."""
    try:
        with open(path, "rb") as f:
            head = f.read(_HEAD)
            size = os.fstat(f.fileno()).st_size
    except PermissionError:
        return None
    except OSError as exc:
        return f"unreadable: {exc.strerror or exc}"
    if len(head) < _PREFIX_END or head[128:_PREFIX_END] != b"DICM":
        return f"{size} bytes, no Part 10 preamble and DICM prefix"
    if head[_PREFIX_END:_HEAD - 4] == _GROUP_LENGTH and len(head) == _HEAD:
        meta_end = _HEAD + int.from_bytes(head[_HEAD - 4:], "little")
        if size < meta_end + _ELEMENT:
            return (f"{size} bytes, its File Meta Information alone {meta_end} bytes: "
                    "no data set after it")
    return None


def damaged_part10(path: Path) -> bool:
    """Whether the file at ``path``, which a duplicate would be discarded for, is
    damaged (:func:`part10_damage`), said at WARNING: the copy just received
    then takes its place (``AtomicWriter.commit``'s ``damaged``)."""
    why = part10_damage(path)
    if why is not None:
        logger.warning("the stored copy %s is damaged (%s): replaced by the copy just "
                       "received", path, why)
    return why is not None
