"""The top-level elements of a data set as DCMTK and pydicom read them, for the
attributes a storage SCP places and indexes an object by.

:func:`~dicomnet.storage.scan.scan_elements` is the fast path, and gives up on
anything out of the ordinary. :func:`top_level_elements` does not: it passes
over each element by its length (PS3.5 7.1), over a sequence or another value
of undefined length by its items and delimiters (7.5), and reads the ways real
writers break PS3.5 as :mod:`~dicomnet.storage.completeness` does:

- a data set or an item of undefined length is in Explicit or Implicit VR as
  its first element's header says; an element whose VR bytes are no letters is
  an Implicit VR element inside Explicit VR;
- a VR of two letters PS3.5 Table 6.2-1 does not list has a 2-byte length for
  pydicom and a 4-byte one for DCMTK (after two zero bytes): the reading after
  which the next element's tag is the greater (7.1: elements in ascending
  order) is taken, pydicom's when both are;
- the items of a UN of undefined length are read in the VR mode their first
  element shows (6.2.2 says Implicit VR Little Endian); an OB or OW of
  undefined length holds items as a sequence does;
- an item ends at an Item or a Sequence Delimitation Item (DCMTK's +rd);
  another VR of undefined length ends at the Sequence Delimitation Item's
  bytes (pydicom); a delimiter out of place at the top level is passed over.

No value is decoded, and only those of the elements kept are read: a file is
read in windows and what lies between passed over by seeking, a deflated data
set (PS3.5 A.5) inflated as far as needed. None where the walk loses its place
(a top-level tag not above the one before, a length past the end of the data,
nesting past :data:`~dicomnet.storage.completeness.MAX_DEPTH`): the caller
decides what then.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from typing import BinaryIO, Protocol

from dicomnet.storage.completeness import MAX_DEPTH
from dicomnet.storage.scan import HEADER_STRUCTS, LONG_VRS, SHORT_VRS, RawElements, implicit_vr_at

__all__ = ["BufferSource", "FileSource", "InflatingSource", "Source", "top_level_elements"]

_UNDEFINED = 0xFFFFFFFF
_ITEM, _ITEM_END, _SEQUENCE_END = 0xE000, 0xE00D, 0xE0DD
#: Bytes read at once from a file, inflated at once, or searched at once.
_WINDOW = 64 << 10
#: VRs of undefined length whose value is items (a sequence, or encapsulated data).
_ITEMS_VRS = frozenset((None, "SQ", "UN", "OB", "OW"))
_LE, _BE = HEADER_STRUCTS[False], HEADER_STRUCTS[True]


class Source(Protocol):
    """The bytes of a data set, read forward."""

    def get(self, offset: int, count: int) -> bytes:
        """``count`` bytes from ``offset`` on; fewer only where the data ends."""
        ...

    def release(self, offset: int) -> None:
        """Nothing before ``offset`` will be asked for again."""
        ...


class BufferSource:
    """A data set held in memory."""

    __slots__ = ("_view",)

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        self._view = memoryview(data)

    def get(self, offset: int, count: int) -> bytes:
        return bytes(self._view[offset:offset + count])

    def release(self, offset: int) -> None:
        pass


class FileSource:
    """A data set in an open file from byte ``start`` on, read a window at a time."""

    __slots__ = ("_at", "_fp", "_start", "_window")

    def __init__(self, fp: BinaryIO, start: int) -> None:
        self._fp = fp
        self._start = start
        self._window = b""
        self._at = 0

    def get(self, offset: int, count: int) -> bytes:
        skip = offset - self._at
        if skip >= 0 and skip + count <= len(self._window):
            return self._window[skip:skip + count]
        self._fp.seek(self._start + offset)
        if count > _WINDOW:  # a long value kept: read as it is
            return self._fp.read(count)
        self._window, self._at = self._fp.read(_WINDOW), offset
        return self._window[:count]

    def release(self, offset: int) -> None:
        pass


class InflatingSource:
    """A deflated data set (PS3.5 A.5: raw deflate), inflated as far as it is read;
    ``pieces`` are its compressed bytes, in order. Holds what was inflated from
    the offset last released on; bytes jumped over (a value passed over) are
    inflated and dropped."""

    __slots__ = ("_at", "_inflate", "_inflated", "_pieces", "_tail")

    def __init__(self, pieces: Iterator[bytes | memoryview]) -> None:
        self._pieces = pieces
        self._inflate = zlib.decompressobj(-zlib.MAX_WBITS)
        self._inflated = bytearray()
        self._at = 0  # the offset of _inflated[0]
        self._tail: bytes | memoryview = b""  # compressed bytes not yet inflated

    def get(self, offset: int, count: int) -> bytes:
        while self._at + len(self._inflated) + _WINDOW < offset and self._more(_WINDOW):
            # A jump ahead: what lies between is never asked for.
            gap = min(offset - self._at, len(self._inflated))
            del self._inflated[:gap]
            self._at += gap
        while len(self._inflated) < offset + count - self._at and self._more(_WINDOW):
            pass
        start = offset - self._at
        if start < 0:  # the walk never looks back past what it released
            raise ValueError(f"byte {offset} of the inflated data set was released")
        return bytes(self._inflated[start:start + count])

    def release(self, offset: int) -> None:
        drop = offset - self._at
        if drop > _WINDOW:
            del self._inflated[:drop]
            self._at = offset

    def _more(self, most: int) -> bool:
        """Inflate up to ``most`` more bytes; False at the end of the stream."""
        while not self._inflate.eof:
            if not self._tail:
                self._tail = next(self._pieces, b"")
                if not self._tail:
                    return False
            out = self._inflate.decompress(self._tail, most)
            self._tail = self._inflate.unconsumed_tail
            if out:
                self._inflated += out
                return True
        return False


class _Walk:
    __slots__ = ("_get", "_release", "_structs")

    def __init__(self, source: Source, big_endian: bool) -> None:
        self._get = source.get
        self._release = source.release
        self._structs = _BE if big_endian else _LE

    def element(self, pos: int, implicit: bool, structs: tuple[struct.Struct, ...]
                ) -> tuple[int, str | None, int, int] | None:
        """(tag, VR or None, where the value starts, its length) of the element
        at ``pos``; None where its header is cut."""
        tag_length, tag_vr, long_length = structs
        head = self._get(pos, 12)
        if len(head) < 8:
            return None
        if implicit:
            group, element, length = tag_length.unpack_from(head)
            return group << 16 | element, None, pos + 8, length
        group, element, vr, short = tag_vr.unpack_from(head)
        tag = group << 16 | element
        if vr in SHORT_VRS:
            return tag, vr.decode("ascii"), pos + 8, short
        if vr in LONG_VRS:
            if len(head) < 12:
                return None
            return tag, vr.decode("ascii"), pos + 12, long_length.unpack_from(head, 8)[0]
        if not (0x41 <= vr[0] <= 0x5A and 0x41 <= vr[1] <= 0x5A):
            # No VR at all: an Implicit VR element inside Explicit VR.
            return tag, None, pos + 8, tag_length.unpack_from(head)[2]
        if short == 0 and len(head) == 12:
            # A VR PS3.5 does not list: pydicom reads a 2-byte length, DCMTK two
            # reserved zero bytes and a 4-byte one. The reading after which the
            # next tag is the greater is the writer's.
            length = long_length.unpack_from(head, 8)[0]
            if not self._next_fits(pos + 8, tag, structs) and (
                    length == _UNDEFINED or length > _WINDOW
                    or self._next_fits(pos + 12 + length, tag, structs)):
                return tag, vr.decode("ascii"), pos + 12, length
        return tag, vr.decode("ascii"), pos + 8, short

    def _next_fits(self, pos: int, tag: int, structs: tuple[struct.Struct, ...]) -> bool:
        """Whether an element (or a delimiter) after ``tag`` can start at ``pos``."""
        head = self._get(pos, 4)
        if not head:
            return True  # the data ends there
        if len(head) < 4:
            return False
        group, element, _ = structs[0].unpack_from(head + bytes(4))
        return bool((group << 16 | element) > tag or group == 0xFFFE)

    def skip_undefined(self, pos: int, vr: str | None, structs: tuple[struct.Struct, ...],
                       depth: int) -> int | None:
        """Where a value of undefined length starting at ``pos`` ends (after its
        Sequence Delimitation Item), or None."""
        if depth > MAX_DEPTH:
            return None
        if vr not in _ITEMS_VRS:  # no sequence: up to the delimiter's bytes (pydicom)
            return self._search(pos, structs)
        if vr == "UN":
            structs = _LE  # PS3.5 6.2.2: Implicit VR Little Endian, whatever the syntax
        while True:
            head = self._get(pos, 8)
            if len(head) < 8:
                return None
            group, element, length = structs[0].unpack_from(head)
            pos += 8
            if group != 0xFFFE:
                return None
            if element == _SEQUENCE_END:
                return pos
            if element != _ITEM:
                return None
            self._release(pos)
            if length != _UNDEFINED:
                pos += length
                continue
            end = self._skip_item(pos, structs, depth + 1)
            if end is None:
                return None
            pos = end

    def _skip_item(self, pos: int, structs: tuple[struct.Struct, ...], depth: int) -> int | None:
        """Where an item of undefined length whose elements start at ``pos`` ends."""
        implicit = implicit_vr_at(self._get(pos, 8))
        while True:
            head = self._get(pos, 8)
            if len(head) < 8:
                return None
            group, element, _ = structs[0].unpack_from(head)
            if group == 0xFFFE:
                # Its Item Delimitation Item, or a Sequence Delimitation Item in
                # its place (DCMTK's +rd).
                return pos + 8 if element in (_ITEM_END, _SEQUENCE_END) else None
            found = self.element(pos, implicit, structs)
            if found is None:
                return None
            _, vr, start, length = found
            if length == _UNDEFINED:
                end = self.skip_undefined(start, vr, structs, depth + 1)
                if end is None:
                    return None
                pos = end
            else:
                pos = start + length

    def _search(self, pos: int, structs: tuple[struct.Struct, ...]) -> int | None:
        delimiter = structs[0].pack(0xFFFE, _SEQUENCE_END, 0)[:4]
        while True:
            window = self._get(pos, _WINDOW + 8)
            found = window.find(delimiter)
            if found >= 0 and found + 8 <= len(window):
                return pos + found + 8
            if len(window) < _WINDOW + 8:
                return None
            pos += _WINDOW

    def top_level(self, *, implicit: bool | None, end_tag: int,
                  keep_most: int) -> RawElements | None:
        structs, get = self._structs, self._get
        raw: RawElements = {}
        pos, last = 0, -1
        while True:
            self._release(pos)
            head = get(pos, 8)
            if len(head) < 8:
                # The end, or zero bytes after the last element (padding some
                # writers leave, as pydicom and storage.completeness take it).
                return raw if not head.strip(b"\0") else None
            group, element, length = structs[0].unpack_from(head)
            tag = group << 16 | element
            if tag >= end_tag:
                return raw
            if group == 0xFFFE:  # a delimiter out of place: passed over, as readers do
                if length == _UNDEFINED:
                    return None
                pos += 8 + length
                continue
            if implicit is None:
                implicit = implicit_vr_at(head)  # an Explicit VR data set decides (pydicom)
            found = self.element(pos, implicit, structs)
            if found is None or found[0] <= last:
                return None  # a header cut, or the walk lost its place
            tag, vr, start, length = found
            last = tag
            if length == _UNDEFINED:  # passed over, not kept: nothing placed by it
                end = self.skip_undefined(start, vr, structs, 1)
                if end is None:
                    return None
                pos = end
                continue
            if length <= keep_most:
                value = get(start, length)
                if len(value) < length:
                    return None
                raw[tag] = (vr, value)
            elif length and len(get(start + length - 1, 1)) < 1:
                return None  # a value longer than the data
            pos = start + length


def top_level_elements(source: Source, *, implicit: bool, big_endian: bool = False,
                       end_tag: int = 0xFFFFFFFF,
                       keep_most: int = 1 << 20) -> RawElements | None:
    """The top-level elements of the data set in ``source`` whose tags are below
    ``end_tag``, as tag -> (VR, or None for an element in Implicit VR; value
    bytes), for those of a defined length of at most ``keep_most`` bytes (one
    of undefined length, a sequence say, is passed over). ``implicit`` and
    ``big_endian`` are the transfer syntax's. None where the data cannot be
    walked so (see the module)."""
    return _Walk(source, big_endian).top_level(
        implicit=True if implicit else None, end_tag=end_tag, keep_most=keep_most)
