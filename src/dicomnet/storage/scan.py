"""Finding the top-level elements of DICOM data by their lengths.

An SCU reads the File Meta Information of every file it sends, and an SCP the
first attributes of every data set it receives; through pydicom's reader that
was the largest cost per small object on both sides. Neither needs a value
decoded: only where each element starts and ends (PS3.5 7.1), and the bytes of
a few. :func:`scan_elements` walks exactly that and gives up (returns None) on
anything out of the ordinary, an undefined length or an element cut short, so
the caller can hand those to a slower reader (the SCP's header:
:mod:`~dicomnet.storage.toplevel`). It is no codec: no value is interpreted,
no sequence entered.
"""

from __future__ import annotations

import struct
from typing import Any

__all__ = ["HEADER_STRUCTS", "LONG_VRS", "SHORT_VRS", "RawElements", "implicit_vr_at",
           "scan_elements"]

#: Tag -> (VR, or None in Implicit VR; the value's bytes as they are).
RawElements = dict[int, tuple[str | None, bytes]]

#: Explicit VRs whose length field is 4 bytes after 2 reserved ones (PS3.5 7.1.2).
LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN",
                       b"UR", b"UT", b"UV"})
#: Every VR of PS3.5 Table 6.2-1, by its two bytes: one lookup per element where
#: checking and decoding the bytes took three calls.
_KNOWN_VRS = {vr.encode("ascii"): vr for vr in (
    "AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "OB", "OD", "OF",
    "OL", "OV", "OW", "PN", "SH", "SL", "SQ", "SS", "ST", "SV", "TM", "UC", "UI", "UL", "UN",
    "UR", "US", "UT", "UV")}
#: Explicit VRs with a 2-byte length (PS3.5 7.1.2): the others of Table 6.2-1.
SHORT_VRS = frozenset(_KNOWN_VRS) - LONG_VRS
#: The names of each kind, by their bytes: a short VR (most) is one lookup.
_SHORT_NAMES = {vr: name for vr, name in _KNOWN_VRS.items() if vr in SHORT_VRS}
_LONG_NAMES = {vr: name for vr, name in _KNOWN_VRS.items() if vr in LONG_VRS}
#: An element header's three layouts, by byte order (big_endian): (group, element,
#: 4-byte length), (group, element, VR, 2-byte length), and the 4-byte length
#: after a long VR's reserved bytes.
HEADER_STRUCTS = {
    big: (struct.Struct(f"{order}HHL"), struct.Struct(f"{order}HH2sH"), struct.Struct(f"{order}L"))
    for big, order in ((False, "<"), (True, ">"))
}
_UNDEFINED = 0xFFFFFFFF
_TAG_LENGTH = struct.Struct("<HHL")  # implicit VR: group, element, 4-byte length
_TAG_VR = struct.Struct("<HH2sH")  # explicit VR: group, element, VR, 2-byte length
_LONG_LENGTH = struct.Struct("<L")


def scan_elements(data: bytes | bytearray | memoryview, offset: int, *, implicit: bool,
                  end_tag: int = 0xFFFFFFFF, group: int | None = None,
                  big_endian: bool = False) -> tuple[RawElements, int, bool] | None:
    """The elements of ``data`` from ``offset`` on, in Little Endian, or with
    ``big_endian`` in Explicit VR Big Endian (PS3.5 A.3, retired: the header's
    numbers big endian; values are returned as their bytes, unswapped).

    Stops before the first element whose tag is ``end_tag`` or more, or (with
    ``group``) outside that group. Returns ``(elements, offset after the last
    one, stopped)``, ``stopped`` being False when the data simply ended on an
    element boundary; None when an element has an undefined length, runs past
    the data, or has a VR that is not two ASCII letters.
    """
    raw: RawElements = {}
    tag_vr, long_length = _TAG_VR, _LONG_LENGTH
    if big_endian:
        _, tag_vr, long_length = HEADER_STRUCTS[True]
    # bytes are read and sliced as they are (a value: one slice, no call); any
    # other buffer through a view, each value copied out of it.
    copy = data.__class__ is not bytes
    view: Any = memoryview(data) if copy else data
    end = len(view)
    # The tags kept: below end_tag, and with ``group`` within it (one comparison).
    low, high = (0, end_tag) if group is None else (
        group << 16, min(end_tag, (group + 1) << 16))
    while offset + 8 <= end:
        if implicit:
            tag_group, element, length = _TAG_LENGTH.unpack_from(view, offset)
            vr = None
            start = offset + 8
        else:
            tag_group, element, vr_bytes, length = tag_vr.unpack_from(view, offset)
            start = offset + 8
            vr = _SHORT_NAMES.get(vr_bytes)
            if vr is None:
                vr = _LONG_NAMES.get(vr_bytes)
                if vr is not None:
                    if start + 4 > end:
                        return None
                    (length,) = long_length.unpack_from(view, start)
                    start += 4
                elif not vr_bytes.isalpha() or not vr_bytes.isascii():
                    return None
                else:
                    vr = vr_bytes.decode("ascii")
        tag = tag_group << 16 | element
        if not low <= tag < high:
            return raw, offset, True
        if length == _UNDEFINED:
            return None
        offset = start + length
        if offset > end:
            return None
        raw[tag] = (vr, bytes(view[start:offset]) if copy else view[start:offset])
    if offset != end:
        return None  # a few bytes left: an element header cut short
    return raw, offset, False


def implicit_vr_at(data: bytes | bytearray | memoryview, pos: int = 0) -> bool:
    """Whether the element header at ``pos``, the first of an Explicit VR data set
    or item, is in Implicit VR: no upper-case letters where an Explicit VR header
    has its VR (PS3.5 7.1.2, 7.1.3), pydicom's test. An implicit length would need
    16705 bytes or more to pass for one. An item or a delimiter (group FFFE, no VR
    in any syntax), or a header cut short, says nothing: explicit, as the syntax."""
    if len(data) < pos + 6 or (0x41 <= data[pos + 4] <= 0x5A and 0x41 <= data[pos + 5] <= 0x5A):
        return False
    return bytes(data[pos:pos + 2]) not in (b"\xfe\xff", b"\xff\xfe")
