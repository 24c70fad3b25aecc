"""Which object a file's C-STORE names: its data set's own SOP Class and Instance
UIDs (0008,0016), (0008,0018). PS3.7 9.3.1.1 has the request's Affected SOP Class
and Instance UIDs name the SOP Instance it carries, and PS3.10 7.1 makes the File
Meta Information's Media Storage SOP Class and Instance UIDs (0002,0002),
(0002,0003) copies of them. A file whose data set lacks either is not sent: sent
under its meta's UID, the peer would keep an object whose data set does not say
what it is (DCMTK's storescu refuses it too, "No SOP Class or Instance UID in
file"). One whose two differ goes as its data set says, as storescu sends it, and
its result says so (``StoreResult.note``).

``read_part10`` compares the two where the data set's first bytes hold them
(``Part10Info.meta_uids`` is None when they agree, the usual case: nothing is
read here). For the others (one differs or is missing, a deflated data set, UIDs
past the bytes it read) the data set's start is read here, up to its SOP
Instance UID. Used by :mod:`dicomnet.services.store_scu` as it lists the files,
and by ``store_prepare.as_it_is_now`` for a file read again."""

from __future__ import annotations

import dataclasses
import io
import logging
import struct
import warnings
import zlib
from typing import Any, BinaryIO

from pydicom.filereader import read_dataset

from ..storage.files import StorageError
from ..storage.part10 import BIG_ENDIAN, DEFLATED_DATA_SETS, IMPLICIT_LE, Part10Info
from ..storage.scan import scan_elements

__all__ = ["NoOwnIdentity", "dataset_uids", "own_identity"]

log = logging.getLogger("dicomnet.services")

#: The data set's SOP Class and Instance UIDs (PS3.3 C.12.1), the File Meta
#: Information's copies of them (PS3.10 7.1), and their names.
_UIDS = ((0x00080016, "SOP Class UID", "(0008,0016)", "Media Storage SOP Class UID (0002,0002)"),
         (0x00080018, "SOP Instance UID", "(0008,0018)",
          "Media Storage SOP Instance UID (0002,0003)"))
#: The first tag past them.
_PAST = 0x00080019
#: Bytes of the data set walked first (inflated, for a deflated one: PS3.5 A.5).
_FIRST_LOOK = 16 << 10
#: Bytes of a deflated data set inflated at most for pydicom to read on.
_INFLATED_LOOK = 1 << 20
_READ_ERRORS = (ValueError, NotImplementedError, EOFError, KeyError, IndexError,
                struct.error, zlib.error)


class NoOwnIdentity(StorageError):
    """A file's data set lacks its SOP Class or Instance UID: it is not sent."""


def own_identity(info: Part10Info) -> tuple[Part10Info, str | None]:
    """``info`` naming its data set's own SOP Class and Instance UIDs, and a note
    when the File Meta Information named others (None: it did not). ``info``
    itself when ``read_part10`` found them the same, when the data set holds
    nothing but group 0002 elements, or when it cannot be read up to them
    (``store_prepare`` then says why it is not sent, before sending). Raises
    :class:`NoOwnIdentity` when the data set has either UID missing or empty,
    StorageError when the file cannot be read."""
    meta = info.meta_uids
    if meta is None or info.dataset_length == 0 or info.dataset_unseen:
        # Nothing to send, perhaps (storage.stray_meta): store_prepare says so.
        return info, None
    own = dataset_uids(info)
    if own is None:
        return info, None
    missing = [f"{name} {tag}" for (_, name, tag, _), value in zip(_UIDS, own, strict=True)
               if not value]
    if missing:
        raise NoOwnIdentity(
            f"no {' and no '.join(missing)} in the data set (a C-STORE names the data set's "
            "own, not the File Meta Information's copy: PS3.7 9.3.1.1, PS3.10 7.1)")
    differ = [f"{meta_name} {theirs}, its data set {mine}"
              for (_, _, _, meta_name), theirs, mine in zip(_UIDS, meta, own, strict=True)
              if theirs != mine]
    note = None
    if differ:
        note = (f"its File Meta Information names {'; '.join(differ)}: sent as its data set "
                "says (PS3.10 7.1 makes them the same object's)")
        log.info("%s: %s", info.path, note)
    return dataclasses.replace(info, sop_class_uid=own[0], sop_instance_uid=own[1],
                               meta_uids=None), note


def dataset_uids(info: Part10Info) -> tuple[str, str] | None:
    """The data set's SOP Class and Instance UIDs as text ("" for one missing or
    empty), read from its start up to them (a deflated one inflated that far), or
    None when it cannot be read so far. Its first ``_FIRST_LOOK`` bytes are
    walked by element lengths (storage.scan): they hold them in any file seen;
    pydicom reads on past a longer element or one of undefined length. Raises
    StorageError when the file cannot be read."""
    syntax = info.transfer_syntax_uid
    deflated = syntax in DEFLATED_DATA_SETS
    try:
        with open(info.path, "rb") as fp:
            fp.seek(info.dataset_offset)
            start, whole = _inflated(fp, _FIRST_LOOK) if deflated else _read(fp, _FIRST_LOOK)
            scanned = scan_elements(start, 0, implicit=syntax == IMPLICIT_LE, end_tag=_PAST,
                                    big_endian=syntax == BIG_ENDIAN)
            found: dict[int, bytes] | None
            if scanned is not None and (scanned[2] or whole):
                if not scanned[2] and all(tag >> 16 == 2 for tag in scanned[0]):
                    return None  # empty but for group 0002: store_prepare says so
                found = {tag: value for tag, (_, value) in scanned[0].items()}
            else:
                fp.seek(info.dataset_offset)
                found = _read_on(_inflated(fp, _INFLATED_LOOK)[0] if deflated else fp, syntax)
    except OSError as exc:
        raise StorageError.from_os_error("cannot read", info.path, exc) from exc
    if found is None:
        return None
    # Raw bytes as read (a UID is text, the same in either byte order: PS3.5 A.3).
    values = [found.get(tag, b"").decode("ascii", "replace").strip("\0 ") for tag, *_ in _UIDS]
    return values[0], values[1]


def _read_on(source: BinaryIO | bytes, syntax: str) -> dict[int, bytes] | None:
    """The raw values of the data set's SOP Class and Instance UIDs, read by
    pydicom from ``source`` (the file at the data set, or its inflated start) up
    to them; None when it cannot read that far."""
    try:
        # pydicom's warnings (an odd value) are errors under -W error: nothing
        # here is the user's to hear of; the walk before sending says more.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dataset = read_dataset(io.BytesIO(source) if isinstance(source, bytes) else source,
                                   is_implicit_VR=syntax == IMPLICIT_LE,
                                   is_little_endian=syntax != BIG_ENDIAN,
                                   stop_when=_past_sop_instance)
    except _READ_ERRORS:
        return None
    found = {}
    for tag, *_ in _UIDS:
        element = dataset.get_item(tag, keep_deferred=True)
        value = b"" if element is None else element.value
        found[tag] = value if isinstance(value, bytes) else str(value or "").encode("ascii",
                                                                                   "replace")
    return found


def _past_sop_instance(tag: Any, vr: str | None, length: int) -> bool:
    return int(tag) >= _PAST


def _read(fp: BinaryIO, size: int) -> tuple[bytes, bool]:
    """Up to ``size`` bytes of ``fp``, and whether they are all it had left."""
    data = fp.read(size)
    return data, len(data) < size


def _inflated(fp: BinaryIO, size: int) -> tuple[bytes, bool]:
    """Up to ``size`` bytes of the deflated stream at ``fp``'s position, and
    whether they are all of it (deflate inflates up to a thousandfold: read a
    piece at a time)."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    out = bytearray()
    while len(out) < size and not inflater.eof:
        piece = inflater.unconsumed_tail or fp.read(16 << 10)
        if not piece:
            return bytes(out), True
        out += inflater.decompress(piece, size - len(out))
    return bytes(out), inflater.eof
