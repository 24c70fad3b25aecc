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

It must never refuse what real peers read, so where data sets in the field break
the encoding rules it reads them as pydicom or DCMTK does (both checked with
pydicom 3.0 and dcmdump 3.6.7):

- an item of undefined length is in Explicit or Implicit VR as its first
  element's header says (two upper-case letters where an explicit VR goes), as
  pydicom decides; so the items of a UN of undefined length are read in
  Explicit VR when they were written so, though PS3.5 6.2.2 says Implicit VR
  Little Endian (DCMTK: ``-ui``), and so are those of an Explicit VR sequence
  written in Implicit VR. An Explicit VR data set is decided so too. Like
  pydicom, it takes an implicit first element of 16705 bytes or more whose
  length bytes are letters for an explicit one;
- an element whose VR bytes are no letters is an Implicit VR element inside
  Explicit VR (a private tag written so; pydicom; DCMTK: ``-vr``);
- a VR of two letters that PS3.5 Table 6.2-1 does not list has a 2-byte length
  for pydicom and a 4-byte one for DCMTK: both readings are followed (where the
  two bytes after it are zero, as the 4-byte form's reserved ones are);
- an OB or OW of undefined length whose items have undefined lengths is a
  sequence mislabelled (DCMTK: ``+oi``), except Pixel Data (PS3.5 A.4);
- any other VR of undefined length, or an item of undefined length outside a
  sequence, ends at the next Sequence Delimitation Item's bytes, found by a
  search as pydicom finds it;
- a Sequence Delimitation Item where an item's delimiter belongs ends the item
  (DCMTK: ``+rd``); a delimiter out of any sequence has its length passed over.

Trailing padding (FFFC,FFFC), group lengths and odd value lengths are elements
like any other.

Where the encoding is ambiguous (the unlisted VR above), the walk follows every
reading, up to :data:`MAX_READINGS` made in all (each counts, however soon it
meets an error), and the data set is whole when one of them ends it. The cost:
such a data set cut short is caught only when it is short in every reading, and
a reading that lost its place may end it by chance (one that walks into zero
bytes, which read as empty elements of group 0000, gives up, being one of
several). A data set that would need more readings than that cannot be told,
and is accepted (unless what feeds the walk fails it: a corrupt deflate
stream). Refusing a whole object that a peer reads loses it for good;
storing a rare cut one this ambiguous stores what the sender sent, as DCMTK and
pydicom would.

The bound counts readings made, not readings alive, so that the verdict never
depends on where the bytes were cut (the PDVs of a C-STORE, the reads of a
file): which readings are alive when another forks depends on the order the
pieces make them walk in, but each reading's own walk does not. The readings
followed are then all of them, or the bound was met (a reading followed came
to an element it would fork at) exactly when the data set has more readings
than the bound, however cut. Counting those alive instead made a data set
past the bound refused when fed whole and accepted when fed a byte at a time
(found by the fuzzer, tests/fuzz_harness).

What it cannot see: a data set cut exactly between two top-level elements (the
last ones are then missing, but what is there is well formed). Its limits are
those of the encoding, not of this walk.
"""

from __future__ import annotations

import functools
import struct
import zlib
from collections.abc import Iterator

from dicomnet.storage.deflate_end import StreamEnd
from dicomnet.storage.part10 import BIG_ENDIAN, DEFLATED_DATA_SETS, IMPLICIT_LE
from dicomnet.storage.scan import HEADER_STRUCTS, LONG_VRS, SHORT_VRS, implicit_vr_at

__all__ = ["DatasetWalker", "dataset_problem", "encapsulates_pixel_data",
           "file_dataset_problem", "inflated_past", "size_text", "walker_for"]

_UNDEFINED = 0xFFFFFFFF
_ITEM, _ITEM_END, _SEQUENCE_END = 0xE000, 0xE00D, 0xE0DD
_PIXEL_DATA = 0x7FE00010
_LE, _BE = HEADER_STRUCTS[False], HEADER_STRUCTS[True]

# What the walker is inside of (one frame each).
_TOP = 0  # the data set: elements, to its end
_ITEMS = 1  # an undefined-length sequence: items, then its delimiter
_NESTED = 2  # an undefined-length item: elements, then its delimiter
_FRAGMENTS = 3  # encapsulated Pixel Data: defined-length items, then its delimiter
_SCAN = 4  # a value of undefined length that is no sequence: up to the delimiter's bytes

#: Bytes a caller reads at a time when it walks a file (values beyond are skipped).
_READ = 64 << 10
#: Limits on what one data set may make the walker do (a hostile peer's stream is
#: walked on the server's event loop): sequences and items nested deeper than any
#: real object (a deep SR content tree stays far below), elements past any real
#: object's count (all readings together), and a deflated data set inflating past
#: what is checked (a bound, not a sign of a malformed data set; a walker made
#: with ``limited=False`` has none: an SCU walking its own files in a thread).
MAX_DEPTH = 256
MAX_ELEMENTS = 1 << 24
MAX_INFLATED = 1 << 30
#: Readings of an ambiguous encoding followed, made in all (each is walked in full).
MAX_READINGS = 8


def _tag(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def size_text(size: int) -> str:
    """``size`` bytes in the largest binary unit dividing it ("1 GiB", "1536 KiB")."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if size >= 1 << shift and not size % (1 << shift):
            return f"{size >> shift} {unit}"
    return f"{size} bytes"


def inflated_past(most: int, purpose: str = "check",
                  declared: tuple[int, int] | None = None) -> str:
    """Why a deflated data set (PS3.5 A.5) was not inflated whole: the bound ``most``.

    ``declared``: refused before inflating that far, for an element (its tag)
    whose value length ends it that many bytes in: said so, with the evidence,
    since the stream itself may be a few bytes long (a length claiming 4 GiB)."""
    if declared is not None:
        tag, end = declared
        return (f"its deflated data set would inflate past {size_text(most)}, the most "
                f"dicomnet inflates to {purpose} a deflated data set: its element "
                f"{_tag(tag)} ends {end} bytes in")
    return (f"its deflated data set inflates past {size_text(most)}, the most dicomnet "
            f"inflates to {purpose} a deflated data set")


class DatasetWalker:
    """Feed a data set's bytes in order (:meth:`feed`), then ask :meth:`problem`.

    ``implicit`` and ``big_endian`` are the transfer syntax's (PS3.5 10); where
    an Explicit VR data set or an item of undefined length is in Implicit VR,
    its first element's header tells (see the module). A caller
    reading a file may pass over the next :attr:`skippable` bytes itself (a
    seek) and say so with :meth:`skip`, instead of reading them.
    """

    __slots__ = ("_big_endian", "_encapsulated", "_error", "_forced", "_forks", "_head",
                 "_last", "_native", "_others", "_shared", "_skip", "_stack", "_why")

    #: Whether a deflated data set was not walked whole for inflating past the
    #: bound (:data:`MAX_INFLATED`): never, here.
    too_large = False
    #: Where a deflated data set's stream ended (:class:`StreamEnd`): none here.
    stream_end: StreamEnd | None = None
    #: The element whose declared length took a deflated data set past the
    #: bound, and where it would end (see :func:`inflated_past`): none here.
    declared: tuple[int, int] | None = None

    def __init__(self, *, implicit: bool, big_endian: bool = False,
                 encapsulated: bool = False, native: bool = False,
                 explicit_start: bool = False) -> None:
        self._big_endian = big_endian
        # The syntax encapsulates Pixel Data: at the top level it must have an
        # undefined length (PS3.5 A.4); a defined one is native pixels mislabelled.
        self._encapsulated = encapsulated
        # The syntax is native: Pixel Data has a defined length there (PS3.5 A.4,
        # 7.1.2); an undefined one is fragments mislabelled.
        self._native = native
        # Frames: (what, implicit, structs, the tag that opened it). ``implicit`` is
        # None until the frame's first element header says (PS3.5 7.1); for a
        # sequence, True when its items are in Implicit VR, False when each says.
        # An Implicit VR syntax is trusted: an explicit data set sent so is rare,
        # and the length of an implicit first element could pass for a VR.
        # ``explicit_start``: the caller found the first header explicit already
        # (``implicit_vr_at`` of 8 bytes or more, as ``_resume`` would).
        self._stack: list[tuple[int, bool | None, tuple[struct.Struct, ...], int]] = [
            (_TOP, True if implicit else (False if explicit_start else None),
             _BE if big_endian else _LE, 0)]
        self._skip = 0  # bytes of the current value still to pass over
        self._head = b""  # the start of an element header cut by the end of a piece
        self._last = 0  # the latest element's tag
        self._error: str | None = None
        self._why = ""  # what a search for the delimiter (_SCAN) stands for
        # Shared by every reading of this data set: [elements walked, readings made
        # (never fewer: see the module), whether a reading was left unfollowed
        # (MAX_READINGS), whether it was ever read more than one way, whether the
        # caller failed it (fail)].
        self._shared: list[int] = [0, 1, 0, 0, 0]
        self._others: tuple[DatasetWalker, ...] = ()  # other readings, forked from this one
        self._forks: list[tuple[DatasetWalker, int]] | None = None  # forked in this feed
        self._forced = False  # this reading takes the 4-byte length at its next unlisted VR

    @property
    def skippable(self) -> int:
        """Bytes, next in the data, that belong to a value: the walker does not
        look at them, and the caller may pass over them (:meth:`skip`)."""
        return self._skip

    def skip(self, count: int) -> None:
        """``count`` bytes (at most :attr:`skippable`) were passed over unread."""
        self._skip -= min(count, self._skip)

    @property
    def last_tag(self) -> int:
        """The tag of the latest element whose header was read (the one whose value
        :attr:`skippable` belongs to, when there is such a value)."""
        return self._last

    @property
    def failed(self) -> bool:
        """Whether :meth:`problem` has its answer, a problem, whatever bytes may
        follow: every reading met an error (or all together too many elements),
        and the data set was not past the bound on readings (it is then accepted,
        errors or not), unless the caller failed it. A caller stops feeding
        then: the rest is not looked at anyway."""
        shared = self._shared
        return shared[0] > MAX_ELEMENTS or bool(shared[4]) or (not shared[2] and all(
            reading._error is not None for reading in self._readings()))

    def fail(self, reason: str) -> None:
        """Record why the data cannot be a data set (found by whoever feeds it):
        :meth:`problem` says so whatever the readings did."""
        self._shared[4] = 1
        for reading in self._readings():
            if reading._error is None:
                reading._error = reason

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
            if self._forks is not None:
                with memoryview(data) as view:
                    self._start_forks(joined, view[pos + take:])
            if used < len(self._head):  # still not a whole header (or delimiter)
                self._head = joined[used:]
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
            if self._forks is not None:
                self._start_forks(view, None)
            if self._error is None and not self._skip and end < size:
                self._head = bytes(view[end:size])

    def _walk(self, data: bytes | memoryview, pos: int, size: int) -> int:
        """Walk whole headers from ``pos``; return where the walk stopped: at
        ``size``, inside a value (``_skip`` set, the return value past its
        start), or at a header cut by ``size``."""
        stack = self._stack
        what, implicit, (tag_length, tag_vr, long_length), _ = stack[-1]
        if what == _SCAN or implicit is None:
            pos = self._resume(data, pos, size)
            what, implicit, (tag_length, tag_vr, long_length), _ = stack[-1]
            if what == _SCAN or implicit is None:
                return pos
        count = 0
        vr: bytes | None = None
        # Elements, not items: an ordinary element's header and value are passed
        # over by the short loops below, the rest by the full step after them.
        plain = what in (_TOP, _NESTED)
        try:
            while pos + 8 <= size:
                if plain:
                    # The common element (PS3.5 7.1.2, 7.1.3): a defined length, a
                    # listed VR, below group 7FE0 (Pixel Data, an item or a
                    # delimiter, padding: the full step), passed over by its length
                    # in one unpack; of them only the last one's tag is kept (``_last``).
                    last = -1
                    limit = size - 8
                    if implicit:
                        while pos <= limit:
                            group, element, length = tag_length.unpack_from(data, pos)
                            if group >= 0x7FE0 or length == _UNDEFINED:
                                break
                            count += 1
                            last = pos
                            pos += 8 + length
                    else:
                        while pos <= limit:
                            group, element, vr, length = tag_vr.unpack_from(data, pos)
                            if group >= 0x7FE0:
                                break
                            if vr in SHORT_VRS:
                                end = pos + 8 + length
                            elif vr in LONG_VRS and pos + 4 <= limit:
                                (length,) = long_length.unpack_from(data, pos + 8)
                                if length == _UNDEFINED:
                                    break
                                end = pos + 12 + length
                            else:
                                break
                            count += 1
                            last = pos
                            pos = end
                    if last >= 0:
                        if pos <= limit:  # stopped at another element: the last one read again
                            group, element, _ = tag_length.unpack_from(data, last)
                        self._last = group << 16 | element
                        if pos > size:  # inside the last one's value
                            self._skip = pos - size
                            return size
                    if pos + 8 > size:
                        break
                count += 1
                # One unpack per element in either mode: Explicit VR reads its VR
                # and 2-byte length at once; only an item or a delimiter (no VR,
                # a 4-byte length) needs a second.
                if implicit:
                    group, element, length = tag_length.unpack_from(data, pos)
                else:
                    group, element, vr, length = tag_vr.unpack_from(data, pos)
                    if group == 0xFFFE:
                        (length,) = long_length.unpack_from(data, pos + 4)
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
                        elif what == _ITEMS or stack[-1][3] != _PIXEL_DATA:
                            if what == _FRAGMENTS:  # an OB or OW that holds data sets: a sequence
                                stack[-1] = (_ITEMS, implicit, stack[-1][2], stack[-1][3])
                            stack.append((_NESTED, True if implicit else (
                                None if pos + 8 > size else implicit_vr_at(data, pos)),
                                stack[-1][2], stack[-1][3]))
                        else:
                            self._error = f"a fragment of undefined length in {_tag(stack[-1][3])}"
                            return pos
                    elif what == _NESTED and element in (_ITEM_END, _SEQUENCE_END):
                        stack.pop()  # a Sequence Delimitation Item ending an item: as DCMTK
                    elif length == _UNDEFINED:  # an item out of place: to the delimiter
                        pos = self._search(data, pos, size,
                                           f"{_tag(tag)} of undefined length outside a sequence")
                        if stack[-1][0] == _SCAN:
                            return pos
                    else:
                        self._skip = length  # tolerated, as readers do
                else:
                    if implicit:
                        pos += 8
                        vr = None
                    elif vr in SHORT_VRS:
                        pos += 8
                    elif vr in LONG_VRS:
                        if pos + 12 > size:
                            return pos  # the 4-byte length is in the next piece
                        (length,) = long_length.unpack_from(data, pos + 8)
                        pos += 12
                    else:
                        read = self._unlisted(data, pos, size)
                        if read is None:
                            return pos
                        pos, length, vr = read
                    self._last = tag
                    if tag == _PIXEL_DATA and len(stack) == 1:
                        # The first words of each fit the Error Comment's 64 characters.
                        if length != _UNDEFINED and self._encapsulated:
                            self._error = (f"native {_tag(tag)} in an encapsulated syntax: a "
                                           f"defined length ({length} bytes), where it must "
                                           "have an undefined length and hold fragments "
                                           "(PS3.5 A.4)")
                            return pos
                        if length == _UNDEFINED and self._native:
                            self._error = (f"encapsulated {_tag(tag)} in a native syntax: an "
                                           "undefined length, which only an encapsulated "
                                           "transfer syntax allows (PS3.5 A.4)")
                            return pos
                    if length != _UNDEFINED:
                        self._skip = length
                    elif implicit:
                        stack.append((_ITEMS, True, stack[-1][2], tag))
                    elif vr == b"SQ" or vr is None:  # None: an Implicit VR element
                        stack.append((_ITEMS, False, stack[-1][2], tag))
                    elif vr == b"UN":  # PS3.5 6.2.2: a sequence, in Implicit VR Little Endian
                        stack.append((_ITEMS, False, _LE, tag))
                    elif vr in {b"OB", b"OW"}:  # encapsulated (PS3.5 A.4)
                        stack.append((_FRAGMENTS, False, stack[-1][2], tag))
                    else:
                        pos = self._search(data, pos, size, f"{_tag(tag)} "
                                           f"{vr.decode('latin-1')} has an undefined length")
                        if stack[-1][0] == _SCAN:
                            return pos
                if self._skip:
                    if pos + self._skip > size:
                        self._skip -= size - pos
                        pos = size
                        break
                    pos += self._skip
                    self._skip = 0
                if group == 0xFFFE or length == _UNDEFINED:
                    # Only an item, a delimiter or an undefined length opens or
                    # closes a frame: the others leave the stack as it was.
                    what, implicit, (tag_length, tag_vr, long_length), _ = stack[-1]
                    plain = what in (_TOP, _NESTED)
                    if len(stack) > MAX_DEPTH:
                        self._error = f"sequences and items nested deeper than {MAX_DEPTH}"
                        return pos
            return pos
        finally:
            shared = self._shared
            shared[0] += count
            if shared[0] > MAX_ELEMENTS and self._error is None:
                self._error = f"more than {MAX_ELEMENTS} elements"

    def _resume(self, data: bytes | memoryview, pos: int, size: int) -> int:
        """Go on with a search for a delimiter, or decide a frame's VR encoding
        from its first element header, once enough bytes are there."""
        what, _, structs, opener = self._stack[-1]
        if what == _SCAN:
            return self._scan(data, pos, size)
        if pos + 8 <= size:
            self._stack[-1] = (what, implicit_vr_at(data, pos), structs, opener)
        return pos

    def _unlisted(self, data: bytes | memoryview, pos: int,
                  size: int) -> tuple[int, int, bytes | None] | None:
        """Where the value of an element whose VR PS3.5 Table 6.2-1 does not list
        starts, its length and VR (None: in Implicit VR); None when its header
        is cut by ``size``."""
        tag_length, tag_vr, long_length = self._stack[-1][2]
        _, _, vr, short = tag_vr.unpack_from(data, pos)
        if 0x41 <= vr[0] <= 0x5A and 0x41 <= vr[1] <= 0x5A:
            # A VR newer than this code, or a writer's own: pydicom reads a 2-byte
            # length, DCMTK a 4-byte one (as for UN). Both readings are followed
            # where both can be: the 4-byte form has 2 reserved zero bytes first.
            if self._forced:
                if pos + 12 > size:
                    return None
                self._forced = False
                (length,) = long_length.unpack_from(data, pos + 8)
                return pos + 12, length, b"UN"
            if short == 0:
                self._fork(pos)
            return pos + 8, short, vr
        if b"AA" <= vr <= b"ZZ":  # both read a 2-byte length
            return pos + 8, short, vr
        # No VR at all: an element in Implicit VR (pydicom; DCMTK with -vr).
        group, element, length = tag_length.unpack_from(data, pos)
        if group == 0 and self._shared[3]:
            # Group 0000 (command elements, PS3.7 E) and no VR: zero bytes, as a
            # reading that lost its place in Pixel Data reads them, where they
            # would pass for empty elements to its end. One of several gives up;
            # "several" once forked, not those still followed: which reading met
            # them first, and was dropped, hung on where the PDVs were cut.
            self._error = f"({group:04X},{element:04X}) without a VR"
            return None
        return pos + 8, length, None

    def _search(self, data: bytes | memoryview, pos: int, size: int, why: str) -> int:
        """Pass over a value of undefined length that is no sequence, up to the
        Sequence Delimitation Item's bytes (as pydicom reads it)."""
        self._stack.append((_SCAN, False, self._stack[-1][2], self._last))
        self._why = why
        return self._scan(data, pos, size)

    def _scan(self, data: bytes | memoryview, pos: int, size: int) -> int:
        # (FFFE,E0DD) in the frame's byte order.
        delimiter = b"\xff\xfe\xe0\xdd" if self._stack[-1][2] is _BE else b"\xfe\xff\xdd\xe0"
        found = bytes(data[pos:size]).find(delimiter)
        if found < 0:
            return max(pos, size - 3)  # the last bytes may start the delimiter
        if pos + found + 8 > size:
            return pos + found  # its length is in the next piece
        self._stack.pop()
        return pos + found + 8

    def _fork(self, pos: int) -> None:
        """Follow the other reading of the element at ``pos`` too, from there."""
        shared = self._shared
        shared[3] = 1
        if shared[1] >= MAX_READINGS:
            shared[2] = 1
            return
        shared[1] += 1
        other = DatasetWalker.__new__(DatasetWalker)
        other._big_endian = self._big_endian
        other._encapsulated = self._encapsulated
        other._native = self._native
        other._stack = list(self._stack)
        other._skip = 0
        other._head = b""
        other._last = self._last
        other._error = None
        other._why = ""
        other._shared = shared
        other._others = ()
        other._forks = None
        other._forced = True
        if self._forks is None:
            self._forks = []
        self._forks.append((other, pos))
        # From the next piece on, this reading feeds the others too (a class of
        # its own keeps that check off the path of every piece of every data set).
        self.__class__ = _Readings

    def _start_forks(self, data: bytes | memoryview, rest: memoryview | None) -> None:
        """Feed the readings forked in this piece the bytes from their element on."""
        forks, self._forks = self._forks or [], None
        others = list(self._others)
        for other, pos in forks:
            other.feed(data[pos:])
            if rest is not None:
                other.feed(rest)
            others.append(other)
        self._others = tuple(others)

    def _readings(self) -> Iterator[DatasetWalker]:
        yield self
        for other in self._others:
            yield from other._readings()

    def problem(self) -> str | None:
        """None when the bytes fed so far end a data set (every value whole,
        every undefined length delimited); otherwise why they do not."""
        if self._error is not None:
            return f"malformed data set: {self._error}"
        if self._skip:
            return (f"the data set ends inside element {_tag(self._last)}: {self._skip} "
                    f"byte(s) of its value missing")
        if len(self._stack) > 1:
            if self._stack[-1][0] == _SCAN:
                return f"malformed data set: {self._why}"
            opener = self._stack[1][3]
            return (f"the data set ends inside {_tag(opener)}, whose undefined length "
                    "was never delimited")
        if self._head and self._in_header():  # (no call for a data set that ends whole)
            return "the data set ends inside an element header"
        return None

    def _in_header(self) -> bool:
        # Little Endian: a few zero bytes after the last element are padding
        # some writers leave (pydicom reads past them); a header cut there
        # would start with a group whose low byte is 0, which no common one has.
        return bool(self._head) and (self._big_endian or bool(self._head.strip(b"\x00")))


class _Readings(DatasetWalker):
    """A walker that follows other readings of the data set too (forked from it
    at an ambiguous element): each is fed every piece, and may be passed over
    only where all are inside a value."""

    __slots__ = ()

    @property
    def skippable(self) -> int:
        return min((r._skip for r in self._readings() if r._error is None), default=0)

    def skip(self, count: int) -> None:
        for reading in self._readings():
            reading._skip -= min(count, reading._skip)

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        others = self._others
        for other in others:
            other.feed(data)
        live = tuple(o for o in others if o._error is None or o._others)
        if len(live) < len(others):  # a reading that met an error is dropped (still counted)
            self._others = live
        super().feed(data)

    def problem(self) -> str | None:
        """None when one of the readings ends the data set; otherwise why the one
        nearest to an end does not (the fewest bytes missing, malformed last)."""
        if self._shared[0] > MAX_ELEMENTS:  # all readings together
            return f"malformed data set: more than {MAX_ELEMENTS} elements"
        if self._shared[2] and not self._shared[4]:
            return None  # more readings than followed: cannot tell (see the module)
        readings = list(self._readings())
        if any(DatasetWalker.problem(r) is None for r in readings):
            return None
        nearest = min(readings, key=lambda r: (r._error is not None, r._skip, len(r._stack)))
        return DatasetWalker.problem(nearest)


class _Inflating:
    """A walker behind a raw inflate (Deflated Explicit VR Little Endian, PS3.5 A.5),
    inflating at most ``most`` bytes (None: no bound). ``stream_end`` says where
    the deflate stream ended, and what followed it."""

    __slots__ = ("_inflate", "_inflated", "_most", "_walker", "declared", "stream_end",
                 "too_large")

    def __init__(self, most: int | None) -> None:
        self._inflate = zlib.decompressobj(-zlib.MAX_WBITS)
        self._walker = DatasetWalker(implicit=False)
        self._inflated = 0
        self._most = most
        self.too_large = False
        #: Refused for a declared length, not bytes inflated: (tag, where it ends).
        self.declared: tuple[int, int] | None = None
        self.stream_end = StreamEnd()

    skippable = 0

    def skip(self, count: int) -> None:
        raise AssertionError("deflated data cannot be passed over")

    @property
    def failed(self) -> bool:
        """Whether :meth:`problem` has its answer, a problem, whatever follows."""
        return self.too_large or self._walker.failed

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        inflate = self._inflate
        if inflate.eof:
            # What follows the stream (a byte of padding) is not the data set.
            self.stream_end.after(data)
            return
        if self.failed:
            # Once the walk failed, the rest is not inflated: a deflate bomb behind
            # a malformed start would cost its whole inflated size in CPU.
            return
        most = self._most
        walker = self._walker
        self.stream_end.fed += len(data)
        try:
            pending = bytes(data)
            while not inflate.eof:
                out = inflate.decompress(pending, _READ)
                if inflate.eof:
                    self.stream_end.ended(inflate.unused_data)
                self._inflated += len(out)
                if most is not None and self._inflated > most:
                    self.too_large = True
                    return
                walker.feed(out)
                if walker.failed:
                    return
                if most is not None and self._inflated + walker.skippable > most:
                    # A value whose length takes the data set past the bound: refused
                    # now, whether it inflates past it or ends short of that value,
                    # rather than after inflating up to the bound (a deflate bomb's
                    # Pixel Data: 1 GiB of CPU for nothing).
                    self.too_large = True
                    self.declared = (walker.last_tag, self._inflated + walker.skippable)
                    return
                pending = inflate.unconsumed_tail
                # A full output may leave more inside the inflater, its input all
                # taken: asked for again (with no input) until it comes out short.
                if not pending and len(out) < _READ:
                    break
        except zlib.error as exc:
            self._walker.fail(f"its deflated stream is corrupt ({exc})")

    def problem(self) -> str | None:
        if self.too_large:
            assert self._most is not None
            return inflated_past(self._most, declared=self.declared)
        problem = self._walker.problem()
        if problem is None and not self._inflate.eof:
            return "the data set ends inside its deflated stream"
        return problem


@functools.lru_cache(maxsize=64)  # asked per object of a few syntaxes: no Python call
def encapsulates_pixel_data(transfer_syntax: str) -> bool:
    """Whether ``transfer_syntax`` is one of the standard's encapsulated ones (PS3.5
    A.4, PS3.6 Table A-1): the JPEG family, MPEG, HEVC and High-Throughput JPEG
    2000 (1.2.840.10008.1.2.4.x), RLE Lossless, Encapsulated Uncompressed and
    Deflated Image Frame Compression. A private syntax is not presumed either way."""
    return (transfer_syntax.startswith("1.2.840.10008.1.2.4.")
            and transfer_syntax not in DEFLATED_DATA_SETS) or transfer_syntax in {
        "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.1.98", "1.2.840.10008.1.2.8.1"}


#: The uncompressed syntaxes whose data sets are not deflated (PS3.5 A.1-A.3).
_NATIVE = frozenset({IMPLICIT_LE, "1.2.840.10008.1.2.1", BIG_ENDIAN})


def walker_for(transfer_syntax: str, *, limited: bool = True, pixel_data: bool = False,
               explicit_start: bool = False) -> DatasetWalker | _Inflating:
    """A walker for data sets encoded in ``transfer_syntax`` (every syntax other
    than the three below is Explicit VR Little Endian, encapsulated or not).
    ``limited``: a deflated data set is inflated to :data:`MAX_INFLATED` at most,
    then ``problem()`` says so and ``too_large`` is True. ``pixel_data``: in an
    encapsulated syntax, top-level Pixel Data of a defined length is a problem
    too, and in Implicit, Explicit or Big Endian one of an undefined length
    (what an SCP receives; files already stored are not judged by it).
    ``explicit_start``: the data set's first element header (8 bytes or more of
    it) was found in Explicit VR (``implicit_vr_at``): not looked at again."""
    if transfer_syntax in DEFLATED_DATA_SETS:
        return _Inflating(MAX_INFLATED if limited else None)
    return DatasetWalker(implicit=transfer_syntax == IMPLICIT_LE,
                         big_endian=transfer_syntax == BIG_ENDIAN,
                         encapsulated=pixel_data and encapsulates_pixel_data(transfer_syntax),
                         native=pixel_data and transfer_syntax in _NATIVE,
                         explicit_start=explicit_start)


def dataset_problem(data: bytes | bytearray | memoryview, transfer_syntax: str, *,
                    limited: bool = True) -> str | None:
    """Why ``data`` is not a whole data set in ``transfer_syntax``, or None."""
    walker = walker_for(transfer_syntax, limited=limited)
    walker.feed(data)
    return walker.problem()


def file_dataset_problem(path: str, offset: int, transfer_syntax: str, *,
                         limited: bool = True, pixel_data: bool = False) -> str | None:
    """Why the data set from byte ``offset`` of the file to its end is not whole,
    or None; with ``pixel_data``, also why its top-level Pixel Data is not as its
    syntax has it (PS3.5 A.4: :func:`walker_for`). Values are passed over by
    seeking: a large file costs a few reads. Raises ``OSError``."""
    walker = walker_for(transfer_syntax, limited=limited, pixel_data=pixel_data)
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
            if walker.failed:  # the rest cannot change the answer: not read
                return walker.problem()
