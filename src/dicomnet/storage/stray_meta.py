"""File Meta Information elements (group 0002) found at the start of a data set.

Group 0002 belongs to the DICOM File Format: PS3.5 7.1 makes no data element of
group 0000, 0002, 0004 or 0006 a standard one ("reserved for DIMSE Commands and
DICOM File Formats"), and PS3.10 7.1 puts the File Meta Elements before the data
set, in a header of their own. Yet a peer may send a data set that starts with
them (a file's meta group copied into it), and a file may hold them twice: its
own meta group, then the same elements again at the start of its data set.
Stored after a Part 10 header, such a data set makes a file with two meta
groups that pydicom reads wrongly (it reads both as one, the second's Transfer
Syntax UID winning); sent as it is, the peer stores the same. DCMTK 3.6.7 keeps
them (storescu sends them, storescp stores them, dcmdump warns "Invalid
Element (0002,0000) found in data set").

:class:`StrayMeta` drops them from a data set as its bytes arrive, in any
pieces: data elements are in ascending tag order (PS3.5 7.1), so they can only
come first, and it reads element headers only until the first element of
another group; their values are passed over by length, never held.
:class:`DeflatedStrayMeta` does the same inside a deflated data set's stream.
:func:`meta_group_end` finds where a file's own meta group ends when another
group 0002 follows it.
"""

from __future__ import annotations

import struct
import zlib
from typing import TYPE_CHECKING

from dicomnet.storage.deflate_end import StreamEnd
from dicomnet.storage.scan import HEADER_STRUCTS, LONG_VRS, implicit_vr_at

if TYPE_CHECKING:  # completeness imports part10, which imports this module
    from dicomnet.storage.completeness import DatasetWalker

__all__ = ["DeflatedStrayMeta", "StrayMeta", "meta_group_end"]

#: Bytes inflated at a time: deflate inflates up to a thousandfold.
_PIECE = 64 << 10
#: The zlib level a data set is deflated again at (see :class:`DeflatedStrayMeta`).
REDEFLATE_LEVEL = 1
#: A re-deflated data set inflating past ``BOMB_FLOOR`` bytes at more than
#: ``BOMB_RATIO`` times the compressed bytes received is refused (see
#: :class:`DeflatedStrayMeta`).
BOMB_FLOOR = 256 << 20
BOMB_RATIO = 250

_UNDEFINED = 0xFFFFFFFF
_EXPLICIT_LE = HEADER_STRUCTS[False][1]
_LONG_LE = HEADER_STRUCTS[False][2]


def _tag_text(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


class StrayMeta:
    """Passes a data set's bytes on (:meth:`feed`) without the group 0002
    elements it starts with.

    ``implicit`` and ``big_endian`` are the transfer syntax's (PS3.5 10). An
    element of undefined length (no meta element has one) ends the dropping:
    it and what follows are passed on as they are.
    """

    __slots__ = ("_group", "_implicit", "_pending", "_skip", "_structs", "done", "dropped",
                 "tags")

    def __init__(self, *, implicit: bool, big_endian: bool = False) -> None:
        self._implicit = implicit
        self._structs = HEADER_STRUCTS[big_endian]
        self._group = struct.Struct(">H" if big_endian else "<H")
        self._pending = b""  # an element header cut by the end of a piece
        self._skip = 0  # bytes of the current element's value still to drop
        #: Whether the data set's first other element has been reached.
        self.done = False
        #: Bytes dropped so far.
        self.dropped = 0
        #: The tags of the elements dropped, in order.
        self.tags: list[int] = []

    @property
    def names(self) -> str:
        """The dropped elements' tags, for a log line."""
        return ", ".join(_tag_text(tag) for tag in self.tags)

    def feed(self, data: bytes | bytearray | memoryview) -> bytes | memoryview:
        """The next bytes of the data set; returns those to keep (empty while the
        start is still group 0002, or undecided)."""
        if self.done:
            return data if isinstance(data, bytes | memoryview) else bytes(data)
        view = memoryview(data)
        if self._skip:
            passed = min(self._skip, len(view))
            self._skip -= passed
            self.dropped += passed
            view = view[passed:]
            if self._skip:
                return b""
        if self._pending:
            view = memoryview(self._pending + bytes(view))
            self._pending = b""
        tag_length, tag_vr, long_length = self._structs
        pos, end = 0, len(view)
        while True:
            if end - pos < 8:
                if end - pos >= 2 and self._group.unpack_from(view, pos)[0] != 0x0002:
                    return self._finish(view, pos)
                self._pending = bytes(view[pos:])
                return b""
            group, element, length = tag_length.unpack_from(view, pos)
            if group != 0x0002:
                return self._finish(view, pos)
            header = 8
            # An explicit VR is two upper-case letters (PS3.5 7.1.2); else the element
            # is in Implicit VR, as pydicom reads one inside an Explicit VR data set.
            if not self._implicit and (0x41 <= view[pos + 4] <= 0x5A
                                       and 0x41 <= view[pos + 5] <= 0x5A):
                _, _, vr, length = tag_vr.unpack_from(view, pos)
                if vr in LONG_VRS:
                    if end - pos < 12:
                        self._pending = bytes(view[pos:])
                        return b""
                    (length,) = long_length.unpack_from(view, pos + 8)
                    header = 12
            if length == _UNDEFINED:
                return self._finish(view, pos)
            self.tags.append(0x00020000 | element)
            size = header + length
            if end - pos < size:
                self._skip = size - (end - pos)
                self.dropped += end - pos
                return b""
            pos += size
            self.dropped += size

    def _finish(self, view: memoryview, pos: int) -> memoryview:
        self.done = True
        return view[pos:]

    @property
    def cut(self) -> bool:
        """Whether the bytes fed so far end inside an element (header or value)."""
        return bool(self._skip or self._pending)


def meta_group_end(data: bytes | bytearray | memoryview, offset: int) -> int | None:
    """Where the File Meta Information that starts at ``offset`` ends: before its
    first element of another group, or whose tag it already holds (PS3.5 7.1:
    each tag once), where a second group 0002 starts. Not at a tag below its
    predecessor's: a careless writer's group, out of order, is still one (as
    pydicom and DCMTK read it). None when an element runs past ``data`` or has
    an undefined length."""
    view = memoryview(data)
    end, seen = len(view), set()
    while offset + 8 <= end:
        group, element, vr, length = _EXPLICIT_LE.unpack_from(view, offset)
        if group != 0x0002 or element in seen:
            return offset
        start = offset + 8
        if vr in LONG_VRS:
            if start + 4 > end:
                return None
            (length,) = _LONG_LE.unpack_from(view, start)
            start += 4
        if length == _UNDEFINED or start + length > end:
            return None
        offset = start + length
        seen.add(element)
    return offset if offset == end else None


class DeflatedStrayMeta:
    """:class:`StrayMeta` for a deflated data set (Deflated Explicit VR Little
    Endian, PS3.5 A.5): the elements to drop are inside the deflate stream, so
    it is inflated as it arrives (:meth:`feed`), at most ``_PIECE`` bytes out at
    a time, passed through a StrayMeta, and deflated again (RFC 1951 raw
    deflate); :meth:`finish` gives the stream's end, padded to an even length
    (PS3.5 A.5). Memory stays flat whatever the size; at most ``most`` bytes
    are inflated (``too_large``). ``implicit``: the data set's first element
    after them is in Implicit VR (``storage.scan.implicit_vr_at``). Bytes after
    the stream's end are no part of it, and not passed on (``stream_end`` says
    how many came).

    The kept bytes are given to ``walker`` (a ``storage.completeness.DatasetWalker``
    for Explicit VR Little Endian, fed nothing else) as they are inflated, so
    :meth:`problem` also says where the data set does not end as its elements
    say: the new stream is never inflated again to check it (that cost 12% of
    the CPU of receiving such a data set, and the walk saw each element's header
    only once the deflater gave the block holding it).

    The new stream is deflated at zlib level 1 (``REDEFLATE_LEVEL``): PS3.5 A.5
    asks for a deflate stream (RFC 1951), not for a level, and a reader inflates
    any level alike. Deflating a GiB of zeros takes 2.3 s of CPU at level 6, 1.0 s
    at level 1 (inflating it: 0.33 s); at level 6 a deflate bomb cost this path
    eight times what it costs a deflated data set stored as it came (inflated
    only, to walk it).

    That path's bound (``most``, 1 GiB) applies, and a tighter one on this path
    only, whose sender is malformed already (group 0002 in its data set): past
    ``BOMB_FLOOR`` (256 MiB) inflated, at more than ``BOMB_RATIO`` (250) times
    the compressed bytes fed so far, the data set is refused (``bomb``). Real
    DICOM deflates 2 to 20 to 1; a sparse mask or blank frames deflate more, up
    to deflate's own ceiling near 1030:1, where a bomb of zeros is too, so no
    ratio tells them apart. 250:1 is where the CPU a sender gets for each byte
    it sends here (inflated, walked and deflated again) is about what a bomb at
    that ceiling gets on the other path (1 GiB inflated for 1 MB sent); a bomb
    under it costs up to ``most``. The floor keeps every data set under 256 MiB
    out of it, and bounds a refused bomb's CPU near a third of a second. The
    price: a data set past 256 MiB at over 250:1 sent with group 0002 is
    refused (Out of Resources) where the same without group 0002 is stored."""

    __slots__ = ("_deflate", "_first", "_floor", "_inflate", "_most", "_ratio", "_walker",
                 "_written", "bomb", "declared", "error", "implicit", "inflated", "stray",
                 "stream_end", "too_large")

    def __init__(self, most: int, walker: DatasetWalker) -> None:
        self._inflate = zlib.decompressobj(-zlib.MAX_WBITS)
        self._deflate = zlib.compressobj(REDEFLATE_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
        self._most = most
        self._floor, self._ratio = BOMB_FLOOR, BOMB_RATIO
        self._first = b""  # the first element header kept, up to its VR
        self._written = 0
        self.stray = StrayMeta(implicit=False)
        self._walker = walker
        #: Why the stream cannot be a deflated data set, or None.
        self.error: str | None = None
        self.implicit = False
        self.inflated = 0
        self.too_large = False
        #: Refused for a declared length, not bytes inflated: (tag, where it ends).
        self.declared: tuple[int, int] | None = None
        #: Whether it inflated past ``BOMB_FLOOR`` at over ``BOMB_RATIO``:1 (refused).
        self.bomb = False
        self.stream_end = StreamEnd()

    def feed(self, data: bytes | bytearray | memoryview) -> bytes:
        """The next bytes of the deflated stream; returns those of the new one."""
        inflate = self._inflate
        if inflate.eof:
            self.stream_end.after(data)  # its padding (PS3.5 A.5), or bytes none of it
            return b""
        walker = self._walker
        if self.error is not None or self.too_large or self.bomb or walker.failed:
            # Refused whatever follows: a deflate bomb behind it is not inflated.
            return b""
        out: list[bytes] = []
        pending = bytes(data)
        self.stream_end.fed += len(pending)
        try:
            while not inflate.eof:
                chunk = inflate.decompress(pending, _PIECE)
                if inflate.eof:
                    self.stream_end.ended(inflate.unused_data)
                self.inflated += len(chunk)
                if self.inflated > self._most:
                    self.too_large = True
                    break
                if (self.inflated > self._floor
                        and self.inflated > self._ratio * self.stream_end.fed):
                    self.bomb = True
                    break
                kept = self.stray.feed(chunk)
                if kept:
                    if len(self._first) < 6:
                        self._first += bytes(kept[:6 - len(self._first)])
                        self.implicit = implicit_vr_at(self._first)
                    walker.feed(kept)
                    if walker.failed:
                        break
                    end = self.inflated - self.stray.dropped + walker.skippable
                    if end > self._most:
                        # A value whose length takes the data set past the bound:
                        # refused now, as completeness._Inflating refuses it.
                        self.too_large = True
                        self.declared = (walker.last_tag, end)
                        break
                    out.append(self._deflate.compress(kept))
                pending = inflate.unconsumed_tail
                if not pending and len(chunk) < _PIECE:
                    break
        except zlib.error as exc:
            self.error = f"its deflated stream is corrupt ({exc})"
        data_out = b"".join(out)
        self._written += len(data_out)
        return data_out

    def problem(self) -> str | None:
        """Once every byte is fed: why the stream is no whole deflated data set,
        or its data set (after the elements dropped) not a whole one
        (``DatasetWalker.problem``); a walk that failed says so first, the
        stream not inflated past it."""
        if self.error is not None:
            return self.error
        if not self._inflate.eof and not self._walker.failed:
            return "the data set ends inside its deflated stream"
        return self._walker.problem()

    def finish(self) -> bytes:
        """The new stream's last bytes, padded to an even length (PS3.5 A.5)."""
        tail = self._deflate.flush()
        if (self._written + len(tail)) % 2:
            tail += b"\x00"
        return tail
