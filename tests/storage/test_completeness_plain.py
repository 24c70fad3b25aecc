"""storage.completeness: the short loops that pass over ordinary elements (a
defined length, a listed VR, below group 7FE0) say what the full step says,
byte for byte: every cut of a data set, fed whole or in two pieces at every
place, in Explicit VR Little and Big Endian and Implicit VR Little Endian,
next to what hands the walk back to the full step (a sequence of undefined
length, encapsulated Pixel Data, an item, an unlisted VR)."""

from __future__ import annotations

import struct

import pytest

from dicomnet.storage.completeness import DatasetWalker, walker_for

EXPLICIT_LE = "1.2.840.10008.1.2.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
BIG_ENDIAN = "1.2.840.10008.1.2.2"
RLE = "1.2.840.10008.1.2.5"
UNDEFINED = 0xFFFFFFFF
_LONG = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT",
         b"UV"}


def _element(tag: int, vr: bytes, value: bytes, syntax: str) -> tuple[bytes, int]:
    """The element's bytes in ``syntax`` (PS3.5 7.1.2, 7.1.3), and its header's length."""
    group, element = tag >> 16, tag & 0xFFFF
    if syntax == IMPLICIT_LE:
        return struct.pack("<HHL", group, element, len(value)) + value, 8
    order = ">" if syntax == BIG_ENDIAN else "<"
    if vr in _LONG:
        return struct.pack(f"{order}HH2sHL", group, element, vr, 0, len(value)) + value, 12
    return struct.pack(f"{order}HH2sH", group, element, vr, len(value)) + value, 8


#: Top-level elements: short and long VRs, an empty value, a long value.
_ELEMENTS = [
    (0x00080016, b"UI", b"1.2.840.10008.5.1.4.1.1.7\x00"),
    (0x00080060, b"CS", b"OT"),
    (0x00100010, b"PN", b""),
    (0x00100020, b"LO", b"ID12"),
    (0x00181030, b"UT", b"a protocol " * 30 + b"x "),
    (0x00280010, b"US", b"\x00\x02"),
    (0x00291010, b"OB", bytes(range(40))),
    (0x7FE00010, b"OW", bytes(64)),
]


def _flat(syntax: str) -> tuple[bytes, list[tuple[int, int, int]]]:
    """The data set's bytes, and each element's (start, header length, tag)."""
    data, spans = b"", []
    for tag, vr, value in _ELEMENTS:
        encoded, header = _element(tag, vr, value, syntax)
        spans.append((len(data), header, tag))
        data += encoded
    return data, spans


def _expected(cut: int, spans: list[tuple[int, int, int]], size: int) -> str | None:
    """What a walk must say of the data set's first ``cut`` bytes, worked out from
    where each element starts and ends (not from the walker)."""
    ends = [start for start, _, _ in spans[1:]] + [size]
    for (start, header, tag), end in zip(spans, ends, strict=True):
        if cut == start:
            return None
        if start < cut < start + header:
            return "the data set ends inside an element header"
        if start + header <= cut < end:
            return (f"the data set ends inside element ({tag >> 16:04X},{tag & 0xFFFF:04X}): "
                    f"{end - cut} byte(s) of its value missing")
    return None


def _problems(syntax: str, data: bytes, split: int | None) -> tuple[str | None, int]:
    """The walk's answer, fed whole or in two pieces at ``split``, and its
    elements counted."""
    walker = walker_for(syntax, pixel_data=True)
    assert isinstance(walker, DatasetWalker)
    if split is None:
        walker.feed(data)
    else:
        walker.feed(memoryview(data)[:split])
        walker.feed(memoryview(data)[split:])
    return walker.problem(), walker._shared[0]


@pytest.mark.parametrize("syntax", [EXPLICIT_LE, BIG_ENDIAN, IMPLICIT_LE],
                         ids=["explicit-le", "explicit-be", "implicit-le"])
def test_every_cut_of_ordinary_elements_is_told_as_the_full_step_tells_it(syntax: str) -> None:
    data, spans = _flat(syntax)
    for cut in range(len(data) + 1):
        expected = _expected(cut, spans, len(data))
        piece = data[:cut]
        for split in (None, *range(0, cut + 1, 3), cut - 1 if cut else 0):
            problem, _ = _problems(syntax, piece, split)
            assert problem == expected, (cut, split)


@pytest.mark.parametrize("syntax", [EXPLICIT_LE, BIG_ENDIAN, IMPLICIT_LE],
                         ids=["explicit-le", "explicit-be", "implicit-le"])
def test_each_element_is_counted_once(syntax: str) -> None:
    """Every element counts towards MAX_ELEMENTS once, whichever loop walked it."""
    data, spans = _flat(syntax)
    for split in (None, 5, 40, len(data) - 3):
        assert _problems(syntax, data, split) == (None, len(spans))


def _sequence_between(syntax: str) -> tuple[bytes, int]:
    """Ordinary elements, a sequence of undefined length holding one item of
    undefined length (two ordinary elements), ordinary elements after it; and
    where the item's second element starts."""
    order = ">" if syntax == BIG_ENDIAN else "<"

    def delimiter(element: int, length: int = 0) -> bytes:
        return struct.pack(f"{order}HHL", 0xFFFE, element, length)

    before = b"".join(_element(t, v, x, syntax)[0] for t, v, x in _ELEMENTS[:3])
    if syntax == IMPLICIT_LE:
        opener = struct.pack("<HHL", 0x0040, 0xA730, UNDEFINED)
    else:
        opener = struct.pack(f"{order}HH2sHL", 0x0040, 0xA730, b"SQ", 0, UNDEFINED)
    first = _element(0x0040A010, b"CS", b"CONTAINS", syntax)[0]
    second = _element(0x0040A160, b"LO", b"some text ", syntax)[0]
    after = b"".join(_element(t, v, x, syntax)[0] for t, v, x in _ELEMENTS[3:6])
    head = before + opener + delimiter(0xE000, UNDEFINED) + first
    data = (head + second + delimiter(0xE00D) + delimiter(0xE0DD) + after)
    return data, len(head)


@pytest.mark.parametrize("syntax", [EXPLICIT_LE, BIG_ENDIAN, IMPLICIT_LE],
                         ids=["explicit-le", "explicit-be", "implicit-le"])
def test_a_sequence_of_undefined_length_between_ordinary_elements(syntax: str) -> None:
    data, second = _sequence_between(syntax)
    for split in (None, *range(len(data) + 1)):
        assert _problems(syntax, data, split)[0] is None, split
    # Cut inside the item's second element (the short loop's, inside an item):
    # its value, then the sequence never delimited.
    cut = data[:second + 14]
    assert _problems(syntax, cut, None)[0] == (
        "the data set ends inside element (0040,A160): 4 byte(s) of its value missing")
    cut = data[:second + 18]
    for split in (None, second, second + 9):
        assert _problems(syntax, cut, split)[0] == (
            "the data set ends inside (0040,A730), whose undefined length was never delimited")


def _fragments(pixel_length: int | None) -> bytes:
    """Ordinary elements, then Pixel Data: encapsulated (``pixel_length`` None:
    an empty offset table and one fragment, PS3.5 A.4), or native with that
    length."""
    data = b"".join(_element(t, v, x, EXPLICIT_LE)[0] for t, v, x in _ELEMENTS[:6])
    if pixel_length is not None:
        return data + _element(0x7FE00010, b"OB", bytes(pixel_length), EXPLICIT_LE)[0]
    return (data + struct.pack("<HH2sHL", 0x7FE0, 0x0010, b"OB", 0, UNDEFINED)
            + struct.pack("<HHL", 0xFFFE, 0xE000, 0)
            + struct.pack("<HHL", 0xFFFE, 0xE000, 6) + b"\xff\xd8\x00\x00\xff\xd9"
            + struct.pack("<HHL", 0xFFFE, 0xE0DD, 0))


def test_pixel_data_fragments_after_ordinary_elements() -> None:
    data = _fragments(None)
    for split in (None, *range(len(data) + 1)):
        assert _problems(RLE, data, split)[0] is None, split
    assert _problems(RLE, data[:-8], None)[0] == (
        "the data set ends inside (7FE0,0010), whose undefined length was never delimited")
    # Native Pixel Data in an encapsulated syntax, and fragments in a native one.
    assert (_problems(RLE, _fragments(16), None)[0] or "").startswith(
        "malformed data set: native (7FE0,0010) in an encapsulated syntax")
    assert (_problems(EXPLICIT_LE, data, None)[0] or "").startswith(
        "malformed data set: encapsulated (7FE0,0010) in a native syntax")


def test_an_unlisted_vr_after_ordinary_elements_is_read_both_ways() -> None:
    """A VR PS3.5 Table 6.2-1 does not list hands the element to the full step,
    which follows both readings (the short loops stop before it)."""
    before = b"".join(_element(t, v, x, EXPLICIT_LE)[0] for t, v, x in _ELEMENTS[:4])
    # "XY" with a 4-byte length of 4 (DCMTK's reading): pydicom's reads an empty
    # value, then walks into the reserved and length bytes.
    odd = struct.pack("<HH2sHL", 0x0011, 0x1010, b"XY", 0, 4) + b"ABCD"
    after = _element(0x00200013, b"IS", b"1 ", EXPLICIT_LE)[0]
    data = before + odd + after
    for split in (None, *range(len(data) + 1)):
        assert _problems(EXPLICIT_LE, data, split)[0] is None, split
    assert _problems(EXPLICIT_LE, data[:-1], None)[0] is not None
