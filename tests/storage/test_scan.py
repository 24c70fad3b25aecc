"""scan_elements: top-level Little Endian elements found by their lengths (PS3.5 7.1),
and its refusals (None) of what it leaves to pydicom."""

from __future__ import annotations

import struct

import pytest

from dicomnet.storage.scan import scan_elements


def explicit(group: int, element: int, vr: bytes, value: bytes) -> bytes:
    if vr in (b"OB", b"OW", b"SQ", b"UN", b"UT", b"UC", b"UR", b"OD", b"OF", b"OL", b"OV",
              b"SV", b"UV"):
        return struct.pack("<HH2s2xL", group, element, vr, len(value)) + value
    return struct.pack("<HH2sH", group, element, vr, len(value)) + value


def implicit(group: int, element: int, value: bytes) -> bytes:
    return struct.pack("<HHL", group, element, len(value)) + value


def test_explicit_elements_with_short_and_long_lengths() -> None:
    data = (explicit(0x0008, 0x0016, b"UI", b"1.2.3\0")
            + explicit(0x0010, 0x0010, b"PN", b"Doe")
            + explicit(0x0011, 0x0010, b"UT", b"long text ")
            + explicit(0x0020, 0x0013, b"IS", b"7 "))
    assert scan_elements(data, 0, implicit=False) == ({
        0x00080016: ("UI", b"1.2.3\0"), 0x00100010: ("PN", b"Doe"),
        0x00110010: ("UT", b"long text "), 0x00200013: ("IS", b"7 "),
    }, len(data), False)


def test_a_vr_outside_the_table_is_kept_if_it_is_two_letters() -> None:
    data = explicit(0x0009, 0x0001, b"XY", b"ab") + explicit(0x0010, 0x0020, b"LO", b"ID")
    raw, _, stopped = scan_elements(data, 0, implicit=False) or ({}, 0, True)
    assert raw == {0x00090001: ("XY", b"ab"), 0x00100020: ("LO", b"ID")} and not stopped


@pytest.mark.parametrize("vr", [b"\x00\x01", b"1A", b"\xc3\xa9", b" A"])
def test_a_vr_that_is_not_two_ascii_letters_is_refused(vr: bytes) -> None:
    data = explicit(0x0010, 0x0010, b"PN", b"Doe") + explicit(0x0010, 0x0020, vr, b"ID")
    assert scan_elements(data, 0, implicit=False) is None


def test_implicit_elements_stop_before_the_end_tag() -> None:
    data = implicit(0x0008, 0x0018, b"1.2\0") + implicit(0x0020, 0x000D, b"9.8\0") + implicit(
        0x0028, 0x0010, b"\x10\x00")
    assert scan_elements(data, 0, implicit=True, end_tag=0x00280000) == (
        {0x00080018: (None, b"1.2\0"), 0x0020000D: (None, b"9.8\0")},
        len(data) - 10, True)


def test_undefined_lengths_and_cut_elements_are_refused() -> None:
    undefined = struct.pack("<HH2s2xL", 0x0008, 0x1140, b"SQ", 0xFFFFFFFF)
    assert scan_elements(undefined, 0, implicit=False) is None
    whole = explicit(0x0010, 0x0010, b"PN", b"Doe^Jane")
    assert scan_elements(whole[:-2], 0, implicit=False) is None  # value cut short
    assert scan_elements(whole + b"\x10\x00", 0, implicit=False) is None  # a header cut short


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_any_buffer_gives_the_values_as_bytes(kind: type[bytes | bytearray | memoryview]
                                              ) -> None:
    """bytes are sliced as they are, any other buffer copied out of a view: the
    same elements either way, each value a ``bytes`` (none holds the buffer)."""
    data = (explicit(0x0002, 0x0000, b"UL", b"\x1a\x00\x00\x00")
            + explicit(0x0002, 0x0001, b"OB", b"\x00\x01")
            + explicit(0x0002, 0x0010, b"UI", b"1.2.840.10008.1.2.1\0")
            + explicit(0x0008, 0x0016, b"UI", b"1.2\0"))
    scanned = scan_elements(kind(data), 0, implicit=False, group=0x0002)
    assert scanned is not None
    assert all(type(element[1]) is bytes for element in scanned[0].values())
    assert scanned == ({0x00020000: ("UL", b"\x1a\x00\x00\x00"), 0x00020001: ("OB", b"\x00\x01"),
                        0x00020010: ("UI", b"1.2.840.10008.1.2.1\0")}, len(data) - 12, True)


def test_a_group_stops_at_a_lower_group_and_at_the_end_tag_within_it() -> None:
    """With ``group``: a tag below the group stops the scan as one above it does,
    and so does ``end_tag`` inside the group."""
    lower = explicit(0x0001, 0x0010, b"LO", b"ab")
    assert scan_elements(lower, 0, implicit=False, group=0x0002) == ({}, 0, True)
    data = explicit(0x0002, 0x0001, b"OB", b"\x00\x01") + explicit(0x0002, 0x0010, b"UI", b"1\0")
    assert scan_elements(data, 0, implicit=False, group=0x0002, end_tag=0x00020010) == (
        {0x00020001: ("OB", b"\x00\x01")}, 14, True)
    assert scan_elements(data, 0, implicit=False, group=0x0002, end_tag=0x00030000) == (
        {0x00020001: ("OB", b"\x00\x01"), 0x00020010: ("UI", b"1\0")}, len(data), False)


def test_a_long_vr_whose_length_is_cut_is_refused() -> None:
    whole = explicit(0x0011, 0x0010, b"UT", b"text")
    assert scan_elements(whole[:10], 0, implicit=False) is None
