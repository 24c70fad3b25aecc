"""Whether a data set's bytes end where its own elements say they do.

A Part 10 file cut short (a copy interrupted, a disk full while writing it) and
a data set whose sender stopped mid-value both end somewhere their last element
does not: inside its value, inside its header, or inside a sequence or an
encapsulated Pixel Data whose delimiter never came. Neither side reads a data
set whole (an SCU sends the file's bytes as they are, an SCP reads only the
first attributes), so without this such an object would be sent, answered
Success and stored as if complete.

:class:`DatasetWalker` follows the element structure (PS3.5 7.1, 7.5; A.4 for
encapsulated Pixel Data) as bytes arrive, in any pieces: it reads each element's
header, passes over its value by its length (a defined-length sequence is passed
over whole), and enters only what has an undefined length. No value is decoded.
It needs a few CPU microseconds per element and nothing per byte of value, so
a 256 MB object costs what its header does.

What it cannot see: a data set cut exactly between two top-level elements (the
last ones are then missing, but what is there is well formed). Its limits are
those of the encoding, not of this walk.
"""

from __future__ import annotations

import struct
import zlib

from dicomnet.storage.part10 import DEFLATED_DATA_SETS
from dicomnet.storage.scan import LONG_VRS

__all__ = ["DatasetWalker", "dataset_problem", "file_dataset_problem", "walker_for"]

_UNDEFINED = 0xFFFFFFFF
_ITEM, _ITEM_END, _SEQUENCE_END = 0xE000, 0xE00D, 0xE0DD
_LE = (struct.Struct("<HHL"), struct.Struct("<HH2sH"), struct.Struct("<L"))
_BE = (struct.Struct(">HHL"), struct.Struct(">HH2sH"), struct.Struct(">L"))

# What the walker is inside of (one frame each).
_TOP = 0  # the data set: elements, to its end
_ITEMS = 1  # an undefined-length sequence: items, then its delimiter
_NESTED = 2  # an undefined-length item: elements, then its delimiter
_FRAGMENTS = 3  # encapsulated Pixel Data: defined-length items, then its delimiter

_IMPLICIT = "1.2.840.10008.1.2"
_BIG_ENDIAN = "1.2.840.10008.1.2.2"
#: Bytes a caller reads at a time when it walks a file (values beyond are skipped).
_READ = 64 << 10
#: Limits on what one data set may make the walker do (a hostile peer's stream is
#: walked on the server's event loop): sequences and items nested deeper than any
#: real object (a deep SR content tree stays far below), elements past any real
#: object's count, and a deflated data set inflating past any real one.
MAX_DEPTH = 256
MAX_ELEMENTS = 1 << 24
MAX_INFLATED = 1 << 30


def _tag(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


class DatasetWalker:
    """Feed a data set's bytes in order (:meth:`feed`), then ask :meth:`problem`.

    ``implicit`` and ``big_endian`` are the transfer syntax's (PS3.5 10); a
    sequence of VR UN with an undefined length is walked in Implicit VR Little
    Endian, as PS3.5 6.2.2 encodes it. A caller reading a file may pass over
    the next :attr:`skippable` bytes itself (a seek) and say so with
    :meth:`skip`, instead of reading them.
    """

    __slots__ = ("_big_endian", "_elements", "_error", "_head", "_last", "_skip", "_stack")

    def __init__(self, *, implicit: bool, big_endian: bool = False) -> None:
        self._big_endian = big_endian
        self._elements = 0
        # Frames: (what, implicit, structs, the tag that opened it).
        self._stack: list[tuple[int, bool, tuple[struct.Struct, ...], int]] = [
            (_TOP, implicit, _BE if big_endian else _LE, 0)]
        self._skip = 0  # bytes of the current value still to pass over
        self._head = b""  # the start of an element header cut by the end of a piece
        self._last = 0  # the latest element's tag
        self._error: str | None = None

    @property
    def skippable(self) -> int:
        """Bytes, next in the data, that belong to a value: the walker does not
        look at them, and the caller may pass over them (:meth:`skip`)."""
        return self._skip

    def skip(self, count: int) -> None:
        """``count`` bytes (at most :attr:`skippable`) were passed over unread."""
        self._skip -= min(count, self._skip)

    def fail(self, reason: str) -> None:
        """Record why the data cannot be a data set (found by whoever feeds it)."""
        if self._error is None:
            self._error = reason

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """The next bytes of the data set."""
        if self._error is not None:
            return
        size = len(data)
        pos = 0
        if self._skip:
            if self._skip >= size:
                self._skip -= size
                return
            pos = self._skip
            self._skip = 0
        if self._head:
            # Complete the cut header from this piece, then walk on from after it.
            take = min(12 - len(self._head), size - pos)
            joined = self._head + bytes(data[pos:pos + take])
            used = self._walk(joined, 0, len(joined))
            if used < len(self._head):  # still not a whole header
                self._head = joined
                return
            pos += used - len(self._head)
            self._head = b""
            if self._error is not None:
                return
            if self._skip:
                if self._skip >= size - pos:
                    self._skip -= size - pos
                    return
                pos += self._skip
                self._skip = 0
        with memoryview(data) as view:
            end = self._walk(view, pos, size)
            if self._error is None and not self._skip and end < size:
                self._head = bytes(view[end:size])

    def _walk(self, data: bytes | memoryview, pos: int, size: int) -> int:
        """Walk whole headers from ``pos``; return where the walk stopped: at
        ``size``, inside a value (``_skip`` set, the return value past its
        start), or at a header cut by ``size``."""
        stack = self._stack
        what, implicit, (tag_length, tag_vr, long_length), _ = stack[-1]
        count = 0
        while pos + 8 <= size:
            count += 1
            group, element, length = tag_length.unpack_from(data, pos)
            tag = group << 16 | element
            if group == 0xFFFE:  # an item or a delimiter: no VR, in any syntax
                pos += 8
                if what in (_ITEMS, _FRAGMENTS):
                    if element == _SEQUENCE_END:
                        stack.pop()
                    elif element != _ITEM:
                        self._error = f"{_tag(tag)} inside the sequence {_tag(stack[-1][3])}"
                        return pos
                    elif length != _UNDEFINED:
                        self._skip = length
                    elif what == _ITEMS:
                        stack.append((_NESTED, implicit, stack[-1][2], stack[-1][3]))
                    else:
                        self._error = (f"a fragment of undefined length in {_tag(stack[-1][3])}")
                        return pos
                elif what == _NESTED and element == _ITEM_END:
                    stack.pop()
                elif length == _UNDEFINED:  # an item out of place: cannot be passed over
                    self._error = f"{_tag(tag)} of undefined length outside a sequence"
                    return pos
                else:
                    self._skip = length  # tolerated, as readers do
            else:
                if implicit:
                    pos += 8
                    vr = b""
                else:
                    _, _, vr, length = tag_vr.unpack_from(data, pos)
                    if vr in LONG_VRS:
                        if pos + 12 > size:
                            return pos  # the 4-byte length is in the next piece
                        (length,) = long_length.unpack_from(data, pos + 8)
                        pos += 12
                    else:
                        pos += 8
                self._last = tag
                if length != _UNDEFINED:
                    self._skip = length
                elif implicit or vr == b"SQ":
                    stack.append((_ITEMS, implicit, stack[-1][2], tag))
                elif vr == b"UN":  # PS3.5 6.2.2: a sequence, in Implicit VR Little Endian
                    stack.append((_ITEMS, True, _LE, tag))
                elif vr in (b"OB", b"OW"):  # encapsulated (PS3.5 A.4)
                    stack.append((_FRAGMENTS, implicit, stack[-1][2], tag))
                else:
                    self._error = f"{_tag(tag)} {vr.decode('latin-1')} has an undefined length"
                    return pos
            if self._skip:
                if pos + self._skip > size:
                    self._skip -= size - pos
                    pos = size
                    break
                pos += self._skip
                self._skip = 0
            what, implicit, (tag_length, tag_vr, long_length), _ = stack[-1]
            if len(stack) > MAX_DEPTH:
                self._error = f"sequences and items nested deeper than {MAX_DEPTH}"
                return pos
        self._elements += count
        if self._elements > MAX_ELEMENTS:
            self._error = f"more than {MAX_ELEMENTS} elements"
        return pos

    def problem(self) -> str | None:
        """None when the bytes fed so far end a data set (every value whole,
        every undefined length delimited); otherwise why they do not."""
        if self._error is not None:
            return f"malformed data set: {self._error}"
        if self._skip:
            return (f"the data set ends inside element {_tag(self._last)}: {self._skip} "
                    f"byte(s) of its value missing")
        if len(self._stack) > 1:
            opener = self._stack[1][3]
            return (f"the data set ends inside {_tag(opener)}, whose undefined length "
                    "was never delimited")
        if self._head and (self._big_endian or self._head.strip(b"\x00")):
            # Little Endian: a few zero bytes after the last element are padding
            # some writers leave (pydicom reads past them); a header cut there
            # would start with a group whose low byte is 0, which no common one has.
            return "the data set ends inside an element header"
        return None


class _Inflating:
    """A walker behind a raw inflate (Deflated Explicit VR Little Endian, PS3.5 A.5)."""

    __slots__ = ("_inflate", "_inflated", "_walker")

    def __init__(self) -> None:
        self._inflate = zlib.decompressobj(-zlib.MAX_WBITS)
        self._walker = DatasetWalker(implicit=False)
        self._inflated = 0

    skippable = 0

    def skip(self, count: int) -> None:
        raise AssertionError("deflated data cannot be passed over")

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        inflate = self._inflate
        if inflate.eof or self._inflated > MAX_INFLATED:
            return  # what follows the stream (a byte of padding) is not the data set
        try:
            pending = bytes(data)
            while pending and not inflate.eof:
                out = inflate.decompress(pending, _READ)
                self._inflated += len(out)
                if self._inflated > MAX_INFLATED:
                    self._walker.fail(f"it inflates past {MAX_INFLATED} bytes")
                    return
                self._walker.feed(out)
                pending = inflate.unconsumed_tail
        except zlib.error as exc:
            self._walker.fail(f"its deflated stream is corrupt ({exc})")

    def problem(self) -> str | None:
        problem = self._walker.problem()
        if problem is None and not self._inflate.eof:
            return "the data set ends inside its deflated stream"
        return problem


def walker_for(transfer_syntax: str) -> DatasetWalker | _Inflating:
    """A walker for data sets encoded in ``transfer_syntax`` (every syntax other
    than the three below is Explicit VR Little Endian, encapsulated or not)."""
    if transfer_syntax in DEFLATED_DATA_SETS:
        return _Inflating()
    return DatasetWalker(implicit=transfer_syntax == _IMPLICIT,
                         big_endian=transfer_syntax == _BIG_ENDIAN)


def dataset_problem(data: bytes | bytearray | memoryview, transfer_syntax: str) -> str | None:
    """Why ``data`` is not a whole data set in ``transfer_syntax``, or None."""
    walker = walker_for(transfer_syntax)
    walker.feed(data)
    return walker.problem()


def file_dataset_problem(path: str, offset: int, transfer_syntax: str) -> str | None:
    """Why the data set from byte ``offset`` of the file to its end is not whole,
    or None. Values are passed over by seeking: a large file costs a few reads.
    Raises ``OSError``."""
    walker = walker_for(transfer_syntax)
    with open(path, "rb", buffering=0) as fp:
        fp.seek(offset)
        while True:
            passed = walker.skippable
            if passed > _READ:
                # Not past the end: a value longer than the file must show as missing.
                here = fp.tell()
                size = fp.seek(0, 2)
                passed = min(passed, size - here)
                fp.seek(here + passed)
                walker.skip(passed)
            chunk = fp.read(_READ)
            if not chunk:
                return walker.problem()
            walker.feed(chunk)
