"""Conversions where a value's VR is not known (store_convert): UN values keep
their bytes, Little Endian, whatever the target's byte order (PS3.5 6.2.2),
in memory and through a temporary file; an Implicit VR "US or SS" value with
no Pixel Representation to choose by is refused with a reason naming it."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from pydicom.dataelem import DataElement
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from dicomnet.services import store_convert
from dicomnet.services.store_convert import NotConvertible
from dicomnet.storage.part10 import read_part10
from tests.storage.dicomfiles import make_image, write_part10
from tests.storage.test_convert_contexts import _send

ILE, ELE, EBE = str(ImplicitVRLittleEndian), str(ExplicitVRLittleEndian), str(ExplicitVRBigEndian)


def _both_ways(path: Path, target: str, monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """``path``'s data set converted to ``target`` in memory, and through a
    temporary file with every value longer than a byte deferred (read from
    the file when written)."""
    info = read_part10(path)
    in_memory = store_convert.convert_in_memory(info, target)
    monkeypatch.setattr(store_convert, "_DEFER", 1)
    converted, length = store_convert.convert_to_file(info, target)
    with converted:
        return [in_memory, converted.read(length)]


def test_private_values_of_unknown_vr_go_to_big_endian_as_un_with_their_bytes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Private US, UL and SS values no dictionary knows, read from Implicit VR:
    UN in Explicit VR Big Endian, their Little Endian bytes unswapped (PS3.5
    6.2.2: not byte-swapped while the VR is unknown; one who learns it reads
    them as Implicit VR Little Endian). Swapping them as 2-byte words would
    be a guess: a UL swapped so is wrong, and so is an OB."""
    ds = make_image(2701)
    ds.add(DataElement(0x00330010, "LO", "NOBODY KNOWS"))
    ds.add(DataElement(0x00331001, "US", 0x1234))
    ds.add(DataElement(0x00331002, "UL", 0x01020304))
    ds.add(DataElement(0x00331003, "SS", -2))
    path = write_part10(tmp_path / "private.dcm", ds, ILE)
    for data in _both_ways(path, EBE, monkeypatch):
        for tag, value in ((0x00331001, b"\x34\x12"), (0x00331002, b"\x04\x03\x02\x01"),
                           (0x00331003, b"\xfe\xff")):
            header = struct.pack(">HH2sHI", tag >> 16, tag & 0xFFFF, b"UN", 0, len(value))
            assert header + value in data, hex(tag)


def _big_endian_with_un(path: Path) -> Path:
    """An Explicit VR Big Endian file holding Number of Slices (0054,0081), a US
    the dictionary knows, as UN: 300 in Little Endian bytes (PS3.5 6.2.2),
    as a writer that did not know its VR leaves it."""
    ds = make_image(2702)
    del ds.PixelData
    write_part10(path, ds, EBE)
    un = struct.pack(">HH2sHI", 0x0054, 0x0081, b"UN", 0, 2) + struct.pack("<H", 300)
    path.write_bytes(path.read_bytes() + un)
    return path


@pytest.mark.parametrize("target", [ELE, ILE], ids=["explicit-le", "implicit-le"])
def test_a_un_value_of_a_big_endian_file_keeps_its_little_endian_bytes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: str) -> None:
    """pydicom gives a UN value whose tag it knows that VR (US) and decodes its
    bytes in the file's byte order: 300 (2C 01) went as 11265 (01 2C). It goes
    UN now, its bytes as they are."""
    path = _big_endian_with_un(tmp_path / "be-un.dcm")
    if target == ELE:
        expected = struct.pack("<HH2sHI", 0x0054, 0x0081, b"UN", 0, 2) + b"\x2c\x01"
    else:
        expected = struct.pack("<HHI", 0x0054, 0x0081, 2) + b"\x2c\x01"
    for data in _both_ways(path, target, monkeypatch):
        assert expected in data
        assert b"\x01\x2c" not in data


def _without_pixel_representation(path: Path, *, pixels: bool) -> Path:
    ds = make_image(2703)
    del ds.PixelRepresentation
    if not pixels:
        del ds.PixelData
    return write_part10(path, ds, ILE)


_NO_SIGN = ("(0028,0106) Smallest Image Pixel Value is US or SS as Pixel Representation "
            "(0028,0103) says, and the data set has none: read in Implicit VR, its VR is "
            "unknown, and an Explicit VR syntax would have to name one (PS3.5 7.1.2, A.1); "
            "not converted")


@pytest.mark.parametrize("pixels", [True, False], ids=["pixels", "no-pixels"])
@pytest.mark.parametrize("target", [EBE, ELE], ids=["big-endian", "explicit-le"])
def test_us_or_ss_without_pixel_representation_is_refused_naming_the_element(
        tmp_path: Path, pixels: bool, target: str) -> None:
    """Smallest/Largest Image Pixel Value read in Implicit VR with no Pixel
    Representation: US or SS is not known, and an Explicit VR target must say
    which. Before, pydicom's own words ("Failed to resolve ambiguous VR ...:
    'FileDataset' object has no attribute 'PixelRepresentation'") with Pixel
    Data, and a silent US without."""
    path = _without_pixel_representation(tmp_path / "no-pr.dcm", pixels=pixels)
    info = read_part10(path)
    with pytest.raises(NotConvertible) as caught:
        store_convert.convert_in_memory(info, target)
    assert str(caught.value) == _NO_SIGN
    with pytest.raises(NotConvertible):
        store_convert.convert_to_file(info, target)


def test_a_peer_taking_big_endian_alone_is_told_why_the_file_did_not_go(
        tmp_path: Path) -> None:
    """Through store_paths to a server taking Explicit VR Big Endian alone: the
    file is not sent, its error saying why; a file with its Pixel
    Representation beside it goes, converted."""
    refused = _without_pixel_representation(tmp_path / "in" / "no-pr.dcm", pixels=True)
    whole = write_part10(tmp_path / "in" / "whole.dcm", make_image(2704), ILE)
    bad, good = _send(tmp_path, [refused, whole], [EBE])
    assert (bad.ok, bad.status, bad.error) == (False, None,
                                               f"cannot convert to Explicit VR Big Endian ({EBE}): "
                                               f"{_NO_SIGN}")
    assert (good.ok, good.converted_to) == (True, EBE), good
