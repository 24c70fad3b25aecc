"""Data sets that break PS3.5's encoding rules the way real writers do, and that
pydicom or DCMTK still read whole (storage.completeness must not refuse them).

Each is Explicit VR Little Endian and built element by element, so the tests know
where every top-level element ends: the conformant elements by pydicom, the odd
one in raw bytes, annotated. Which reader takes each, and how, was checked with
pydicom 3.0 and dcmdump 3.6.7 (tests/interop/test_dcmtk_oddities.py checks
DCMTK again).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

from dicomnet.storage.part10 import part10_header

from .dicomfiles import SECONDARY_CAPTURE, uid
from .helpers import data_set_bytes

__all__ = ["EXPLICIT_LE", "ODDITIES", "Oddity", "write_oddity"]

EXPLICIT_LE = "1.2.840.10008.1.2.1"
UNDEFINED = 0xFFFFFFFF
#: The value of the private element that follows every odd one: a reader that lost
#: its place in the odd element does not find it.
AFTER = b"AFTER ODD "


@dataclass(frozen=True)
class Oddity:
    """One data set: its top-level elements as encoded, in order."""

    name: str
    number: int  # its SOP Instance UID is uid(9, number), its study uid(1, number)
    elements: tuple[bytes, ...]
    #: dcmdump's options under which it reads the data set without an error;
    #: None where no option makes DCMTK read it.
    dcmdump: tuple[str, ...] | None
    #: Whether pydicom reads it with every value in place (else only DCMTK does).
    pydicom: bool = True

    @property
    def data(self) -> bytes:
        return b"".join(self.elements)

    @property
    def boundaries(self) -> set[int]:
        """Where each top-level element ends (and 0): the only places where a
        cut leaves a well-formed data set."""
        ends, at = {0}, 0
        for element in self.elements:
            at += len(element)
            ends.add(at)
        return ends

    @property
    def sop_instance_uid(self) -> str:
        return uid(9, self.number)


def explicit(tag: int, vr: bytes, value: bytes) -> bytes:
    """group, element, VR, then a 2-byte length, or 2 reserved bytes and a
    4-byte one for the VRs of PS3.5 Table 7.1-1."""
    if vr in (b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR",
              b"UT", b"UV"):
        return struct.pack("<HH2sHL", tag >> 16, tag & 0xFFFF, vr, 0, len(value)) + value
    return struct.pack("<HH2sH", tag >> 16, tag & 0xFFFF, vr, len(value)) + value


def explicit_undefined(tag: int, vr: bytes) -> bytes:
    return struct.pack("<HH2sHL", tag >> 16, tag & 0xFFFF, vr, 0, UNDEFINED)


def implicit(tag: int, value: bytes) -> bytes:
    """group, element, 4-byte length: no VR (PS3.5 7.1.3)."""
    return struct.pack("<HHL", tag >> 16, tag & 0xFFFF, len(value)) + value


def implicit_undefined(tag: int) -> bytes:
    return struct.pack("<HHL", tag >> 16, tag & 0xFFFF, UNDEFINED)


def item(length: int = UNDEFINED) -> bytes:
    return struct.pack("<HHL", 0xFFFE, 0xE000, length)  # (FFFE,E000) Item


ITEM_END = struct.pack("<HHL", 0xFFFE, 0xE00D, 0)  # (FFFE,E00D) Item Delimitation Item
SEQUENCE_END = struct.pack("<HHL", 0xFFFE, 0xE0DD, 0)  # (FFFE,E0DD) Sequence Delimitation


def _encoded(ds: Dataset) -> list[bytes]:
    """Each element of ``ds`` as pydicom encodes it in Explicit VR Little Endian."""
    out = []
    for element in ds:
        one = Dataset()
        one.add(element)
        out.append(data_set_bytes(one, EXPLICIT_LE))
    return out


def _data_set(number: int, odd: list[bytes], *, group_0008: list[bytes] | None = None,
              last: list[bytes] | None = None) -> tuple[bytes, ...]:
    """Group 0008 (pydicom's, or ``group_0008``), the private creator of group
    0009, the odd elements, a private element after them, then the patient,
    study and image elements and 8 bytes of Pixel Data; ``last`` after all."""
    first = Dataset()
    first.SOPClassUID = SECONDARY_CAPTURE
    first.SOPInstanceUID = uid(9, number)
    first.StudyDate = "20240115"
    first.Modality = "OT"
    rest = Dataset()
    rest.PatientName = "Odd^Writer"
    rest.PatientID = f"ODD{number:03d}"
    rest.StudyInstanceUID = uid(1, number)
    rest.SeriesInstanceUID = uid(2, number)
    rest.InstanceNumber = number
    rest.SamplesPerPixel = 1
    rest.PhotometricInterpretation = "MONOCHROME2"
    rest.Rows = 2
    rest.Columns = 4
    rest.BitsAllocated = 8
    rest.BitsStored = 8
    rest.HighBit = 7
    rest.PixelRepresentation = 0
    rest.add(DataElement(0x7FE00010, "OB", bytes(range(1, 9))))
    creator = explicit(0x00090010, b"LO", b"DICOMNET ODD")
    after = explicit(0x000910F0, b"LO", AFTER)
    return tuple((group_0008 if group_0008 is not None else _encoded(first))
                 + [creator, *odd, after] + _encoded(rest) + (last or []))


def _group_0008_with_length(number: int) -> list[bytes]:
    first = Dataset()
    first.SOPClassUID = SECONDARY_CAPTURE
    first.SOPInstanceUID = uid(9, number)
    first.StudyDate = "20240115"
    first.Modality = "OT"
    elements = _encoded(first)
    # (0008,0000) Group Length UL: the bytes of the group's other elements (retired
    # in PS3.5 7.2, still written by some).
    length = explicit(0x00080000, b"UL", struct.pack("<L", sum(map(len, elements))))
    return [length, *elements]


def _items(*values: bytes) -> bytes:
    """Items of defined length holding ``values``."""
    return b"".join(item(len(value)) + value for value in values)


_SC_UID = SECONDARY_CAPTURE.encode() + b"\x00"  # 26 bytes: padded to even (PS3.5 9.1)

ODDITIES: tuple[Oddity, ...] = (
    # A private sequence relabelled UN, undefined length, its item still in Explicit
    # VR (PS3.5 6.2.2 says Implicit VR Little Endian). DCMTK: -ui (CP-246 off).
    Oddity("un-of-undefined-length-in-explicit-vr", 1, _data_set(1, [
        explicit_undefined(0x00091010, b"UN") + item()
        + explicit(0x00091011, b"LO", b"ABCD") + explicit(0x00091012, b"US", b"\x01\x00")
        + ITEM_END + SEQUENCE_END]), ("-ui",)),
    # A private sequence labelled UN, defined length, its item in Implicit VR as
    # PS3.5 6.2.2 encodes a UN value.
    Oddity("sequence-labelled-un", 2, _data_set(2, [
        explicit(0x00091013, b"UN", _items(implicit(0x00081150, _SC_UID)))]), ()),
    # A private sequence labelled OB, defined length, its item in Explicit VR.
    Oddity("sequence-labelled-ob", 3, _data_set(3, [
        explicit(0x00091013, b"OB", _items(explicit(0x00091011, b"LO", b"ABCD")))]), ()),
    # A private sequence labelled OB, undefined length: an item of undefined length,
    # which an encapsulated fragment never has (PS3.5 A.4). DCMTK: +oi.
    Oddity("sequence-labelled-ob-of-undefined-length", 4, _data_set(4, [
        explicit_undefined(0x00091014, b"OB") + item() + explicit(0x00091011, b"LO", b"ABCD")
        + ITEM_END + SEQUENCE_END]), ("+oi",)),
    # A VR that PS3.5 Table 6.2-1 does not list, with a 2-byte length: pydicom reads
    # it (as raw bytes), DCMTK takes a 4-byte length and fails.
    Oddity("unlisted-vr-with-a-2-byte-length", 5, _data_set(5, [
        struct.pack("<HH2sH", 0x0009, 0x1015, b"XX", 4) + b"ABCD"]), None),
    # The same with a 4-byte length: DCMTK reads it, pydicom takes a 2-byte one.
    Oddity("unlisted-vr-with-a-4-byte-length", 6, _data_set(6, [
        struct.pack("<HH2sHL", 0x0009, 0x1015, b"XX", 0, 4) + b"ABCD"]), (), pydicom=False),
    # A private element written in Implicit VR in an Explicit VR data set. DCMTK: -vr.
    Oddity("implicit-vr-private-element", 7, _data_set(7, [
        implicit(0x00091016, b"ABCDEF")]), ("-vr",)),
    # A private sequence written in Implicit VR, undefined length. DCMTK: -vr.
    Oddity("implicit-vr-private-sequence", 8, _data_set(8, [
        implicit_undefined(0x00091017) + item() + implicit(0x00091018, b"ABCD")
        + ITEM_END + SEQUENCE_END]), ("-vr",)),
    # An Explicit VR sequence whose item is in Implicit VR. DCMTK: -vr.
    Oddity("sequence-with-an-implicit-vr-item", 9, _data_set(9, [
        explicit_undefined(0x00091019, b"SQ") + item() + implicit(0x00081150, _SC_UID)
        + implicit(0x00081155, b"1.2.3.4\x00") + ITEM_END + SEQUENCE_END]), ("-vr",)),
    # (FFFC,FFFC) Data Set Trailing Padding (PS3.10 7.2), OB, after Pixel Data.
    Oddity("trailing-padding", 10, _data_set(10, [], last=[
        explicit(0xFFFCFFFC, b"OB", bytes(16))]), ()),
    # A Sequence Delimitation Item after the last element, outside any sequence.
    # DCMTK: +rd (it ends the data set there; one between elements, it reads up
    # to it only, pydicom past it, and the walker too).
    Oddity("stray-sequence-delimiter", 11, _data_set(11, [], last=[SEQUENCE_END]), ("+rd",)),
    # (0008,0000) Group Length, retired (PS3.5 7.2) but still written.
    Oddity("group-length", 12, _data_set(12, [], group_0008=_group_0008_with_length(12)), ()),
    # Values of odd length in a sequence's item (PS3.5 7.1.1 asks for even ones).
    Oddity("odd-lengths-in-a-sequence", 13, _data_set(13, [
        explicit_undefined(0x0009101B, b"SQ") + item()
        + explicit(0x00091011, b"LO", b"ABC") + explicit(0x00091012, b"UN", b"odd")
        + ITEM_END + SEQUENCE_END]), ()),
    # An item ended by a Sequence Delimitation Item, not an Item Delimitation Item
    # (pydicom reads on inside the item). DCMTK: +rd.
    Oddity("item-ended-as-a-sequence", 14, _data_set(14, [
        explicit_undefined(0x00091019, b"SQ") + item() + explicit(0x00091011, b"LO", b"ABCD")
        + SEQUENCE_END + SEQUENCE_END]), ("+rd",), pydicom=False),
    # A UT of undefined length (only OB, OW, SQ, UN may have one): pydicom reads the
    # value up to the Sequence Delimitation Item's bytes; DCMTK does not read it.
    Oddity("text-of-undefined-length", 15, _data_set(15, [
        explicit_undefined(0x0009101A, b"UT") + b"SOME TEXT " + SEQUENCE_END]), None),
)


def write_oddity(path: Path, oddity: Oddity) -> Path:
    """The oddity as a Part 10 file (File Meta Information by dicomnet)."""
    header = part10_header(sop_class_uid=SECONDARY_CAPTURE,
                           sop_instance_uid=oddity.sop_instance_uid,
                           transfer_syntax_uid=EXPLICIT_LE, implementation_class_uid="1.2.3.4",
                           implementation_version_name="ODD", source_ae_title=None)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + oddity.data)
    return path
