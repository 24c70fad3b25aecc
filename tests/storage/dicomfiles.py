"""Synthetic Part 10 files for the storage and interop tests, written by pydicom.

Every data set carries a few elements whose encoding depends on the transfer
syntax (US, SS, UL, FL, FD, a sequence, text) and random pixel bytes, so that
a receiver that decodes in the wrong byte order or VR mode shows up in an
element-by-element comparison. RLE Lossless pixel data is made by pydicom's
own pure-Python encoder (no numpy).
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from pathlib import Path

from pydicom import dcmread, dcmwrite
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.pixels.encoders.base import RLELosslessEncoder
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    RLELossless,
)

__all__ = [
    "ALL_SYNTAXES",
    "SECONDARY_CAPTURE",
    "SYNTAX_NAMES",
    "assert_same_dataset",
    "dataset_elements",
    "make_image",
    "pixel_bytes",
    "uid",
    "write_part10",
]

SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
#: Our test UID root (pydicom's, as in the other storage tests).
_ROOT = "1.2.826.0.1.3680043.8.498."

#: Short name -> transfer syntax UID, in the order the tests run them.
SYNTAX_NAMES: dict[str, str] = {
    "implicit-le": ImplicitVRLittleEndian,
    "explicit-le": ExplicitVRLittleEndian,
    "explicit-be": ExplicitVRBigEndian,
    "deflated": DeflatedExplicitVRLittleEndian,
    "rle": RLELossless,
}
ALL_SYNTAXES = tuple(SYNTAX_NAMES.values())


def uid(*parts: int | str) -> str:
    """A UID below the test root: ``uid(7, 1)`` -> ``1.2.826.0.1.3680043.8.498.7.1``."""
    return _ROOT + ".".join(str(p) for p in parts)


def make_image(
    number: int,
    *,
    rows: int = 32,
    columns: int = 24,
    frames: int = 1,
    seed: int | None = None,
    study: str | None = None,
    series: str | None = None,
    sop_class_uid: str = SECONDARY_CAPTURE,
    sop_instance_uid: str | None = None,
) -> Dataset:
    """An 8-bit monochrome image with random pixels and byte-order-sensitive elements.

    8 bits allocated keeps Pixel Data OB in every syntax, so its bytes are the
    same whatever the byte order (16-bit OW would be swapped in big endian).
    """
    rng = random.Random(number if seed is None else seed)
    ds = Dataset()
    ds.SOPClassUID = sop_class_uid
    ds.SOPInstanceUID = sop_instance_uid or uid(9, number)
    ds.StudyInstanceUID = study or uid(1, number)
    ds.SeriesInstanceUID = series or uid(2, number)
    ds.PatientName = f"Test^Patient{number}"
    ds.PatientID = f"PID{number:04d}"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.StudyDate = "20240115"
    ds.StudyTime = "101500"
    ds.AccessionNumber = f"ACC{number}"
    ds.StudyID = "1"
    ds.ReferringPhysicianName = ""
    ds.Modality = "OT"
    ds.SeriesNumber = 1
    ds.InstanceNumber = number
    ds.ConversionType = "WSD"
    ds.ImageComments = "dicomnet synthetic image"
    # Byte-order and VR sensitive values.
    ds.add(DataElement(0x00181310, "US", [0, rows, columns, 0]))  # Acquisition Matrix
    ds.add(DataElement(0x00280106, "US", 0))  # Smallest Image Pixel Value
    ds.add(DataElement(0x00280107, "US", 255))  # Largest Image Pixel Value
    ds.add(DataElement(0x00189219, "SS", -1234))  # Tag Angle Second Axis
    ds.add(DataElement(0x00209057, "UL", 0x01020304))  # In-Stack Position Number
    ds.add(DataElement(0x00189089, "FD", [0.25, -1.5, 3.125]))  # Diffusion Gradient Orientation
    ds.add(DataElement(0x00189087, "FD", 1000.5))  # Diffusion b-value
    ds.add(DataElement(0x00182043, "FL", [1.5, -2.25]))  # Localizing Cursor Position
    item = Dataset()
    item.ReferencedSOPClassUID = SECONDARY_CAPTURE
    item.ReferencedSOPInstanceUID = uid(8, number)
    item.ReferencedFrameNumber = [1, 2]
    ds.ReferencedImageSequence = Sequence([item])
    # Image Pixel module.
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows
    ds.Columns = columns
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.PixelData = rng.randbytes(rows * columns * frames)
    ds["PixelData"].VR = "OB"
    return ds


def _rle_encode(ds: Dataset) -> bytes:
    frames = int(ds.get("NumberOfFrames", 1))
    size = ds.Rows * ds.Columns * ds.SamplesPerPixel * (ds.BitsAllocated // 8)
    raw: bytes = ds.PixelData
    encoded: list[bytes] = [
        RLELosslessEncoder.encode(
            raw[i * size : (i + 1) * size],
            rows=ds.Rows,
            columns=ds.Columns,
            samples_per_pixel=ds.SamplesPerPixel,
            bits_allocated=ds.BitsAllocated,
            bits_stored=ds.BitsStored,
            pixel_representation=ds.PixelRepresentation,
            photometric_interpretation=ds.PhotometricInterpretation,
            number_of_frames=1,
        )
        for i in range(frames)
    ]
    return bytes(encapsulate(encoded))


def write_part10(path: Path, ds: Dataset, transfer_syntax: str) -> Path:
    """Write a copy of ``ds`` to ``path`` as a Part 10 file in ``transfer_syntax``.

    RLE Lossless: the pixels are compressed by pydicom (frames encapsulated).
    """
    out = Dataset()
    out.update(ds)
    if transfer_syntax == RLELossless:
        out.PixelData = _rle_encode(ds)
        out["PixelData"].VR = "OB"
        out["PixelData"].is_undefined_length = True
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(ds.SOPClassUID)
    meta.MediaStorageSOPInstanceUID = UID(ds.SOPInstanceUID)
    meta.TransferSyntaxUID = UID(transfer_syntax)
    out.file_meta = meta
    path.parent.mkdir(parents=True, exist_ok=True)
    dcmwrite(path, out, enforce_file_format=True)
    return path


def store_payloads(folder: Path, count: int) -> list[tuple[str, bytes]]:
    """``count`` images written as Explicit VR Little Endian files under
    ``folder``: each one's SOP Instance UID and data set bytes (what a C-STORE
    carries after its command)."""
    from dicomnet.storage.part10 import read_part10

    out = []
    for n in range(count):
        path = write_part10(folder / f"{n}.dcm", make_image(n), ExplicitVRLittleEndian)
        out.append((make_image(n).SOPInstanceUID,
                    path.read_bytes()[read_part10(path).dataset_offset:]))
    return out


def dataset_elements(ds: Dataset) -> Dataset:
    """The data set without its File Meta Information (group 0002)."""
    out = Dataset()
    for elem in ds:
        if elem.tag.group != 0x0002:
            out.add(elem)
    return out


def pixel_bytes(ds: Dataset) -> bytes:
    """The raw Pixel Data value (encapsulated bytes for a compressed syntax)."""
    value = ds["PixelData"].value
    assert isinstance(value, bytes)
    return value


def _describe(elem: DataElement) -> str:
    value = elem.value
    if isinstance(value, bytes) and len(value) > 32:
        value = f"<{len(value)} bytes>"
    return f"{elem.tag} {elem.VR} {value!r}"


def _dictionary_vr(tag: BaseTag) -> str:
    """The VR of ``tag`` in the data dictionary ("" when unknown). An element whose
    dictionary VR is ambiguous ("OB or OW", "US or SS") is resolved differently by
    readers of implicit VR data, so only its value is compared."""
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return ""


def _compare(sent: Iterable[DataElement], received: Dataset, where: str) -> list[str]:
    problems: list[str] = []
    sent_tags: set[int] = set()
    for elem in sent:
        if elem.tag.group == 0x0002:
            continue
        sent_tags.add(int(elem.tag))
        if elem.tag not in received:
            problems.append(f"{where}missing {_describe(elem)}")
            continue
        other = received[elem.tag]
        if elem.VR == "SQ":
            if other.VR != "SQ" or len(elem.value) != len(other.value):
                problems.append(f"{where}sequence {elem.tag} differs")
                continue
            for i, (a, b) in enumerate(zip(elem.value, other.value, strict=True)):
                problems += _compare(a, b, f"{where}{elem.tag}[{i}] ")
            continue
        if elem.value != other.value:
            problems.append(f"{where}{_describe(elem)} != {_describe(other)}")
        ambiguous = " or " in elem.VR or " or " in other.VR or " or " in _dictionary_vr(elem.tag)
        if not ambiguous and elem.VR != other.VR:
            problems.append(f"{where}{elem.tag} VR {elem.VR} != {other.VR}")
    for elem in received:
        if elem.tag.group != 0x0002 and int(elem.tag) not in sent_tags:
            problems.append(f"{where}extra {_describe(elem)}")
    return problems


def assert_same_dataset(sent: Dataset | Path, received: Dataset | Path) -> None:
    """Element by element, File Meta Information excluded; Pixel Data byte for byte."""
    a = dcmread(sent) if isinstance(sent, Path) else sent
    b = dcmread(received) if isinstance(received, Path) else received
    problems = _compare(a, b, "")
    assert not problems, "data sets differ:\n  " + "\n  ".join(problems[:20])
    if "PixelData" in a:
        assert pixel_bytes(a) == pixel_bytes(b)
