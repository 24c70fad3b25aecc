"""Data sets and files that hold File Meta Information elements (group 0002) at
the start of their data set, as a careless writer makes them (storage.stray_meta)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from dicomnet.storage.part10 import part10_header


def meta_elements(ds: Dataset, syntax: str, *, private_value: int = 0) -> bytes:
    """Group 0002 elements as a data set in ``syntax`` would carry them: group
    length, version, the two UIDs, a Transfer Syntax UID naming another syntax,
    an implementation version, and (``private_value`` bytes) Private Information."""
    implicit, big = syntax == ImplicitVRLittleEndian, syntax == ExplicitVRBigEndian
    order = ">" if big else "<"

    def element(number: int, vr: bytes, value: bytes) -> bytes:
        if len(value) % 2:
            value += b"\0"
        if implicit:
            return struct.pack(f"{order}HHL", 2, number, len(value)) + value
        if vr in (b"OB", b"UN"):
            return struct.pack(f"{order}HH2sHL", 2, number, vr, 0, len(value)) + value
        return struct.pack(f"{order}HH2sH", 2, number, vr, len(value)) + value

    other = b"1.2.840.10008.1.2" if not implicit else b"1.2.840.10008.1.2.1"
    body = b"".join([
        element(0x0001, b"OB", b"\0\1"),
        element(0x0002, b"UI", str(ds.SOPClassUID).encode()),
        element(0x0003, b"UI", str(ds.SOPInstanceUID).encode()),
        element(0x0010, b"UI", other),
        element(0x0013, b"SH", b"STRAY_WRITER"),
        element(0x0102, b"OB", bytes(range(256)) * (private_value // 256)) if private_value
        else b"",
    ])
    return element(0x0000, b"UL", struct.pack(f"{order}L", len(body))) + body


def meta_group_length(data: bytes) -> int:
    """Where a Part 10 file's meta group ends by its (0002,0000) (PS3.10 7.1)."""
    assert data[128:132] == b"DICM" and data[132:140] == b"\x02\x00\x00\x00UL\x04\x00"
    return 144 + int(struct.unpack_from("<L", data, 140)[0])


def write_with_stray_meta(path: Path, ds: Dataset, syntax: str, plain: bytes,
                          **options: int) -> Path:
    """A Part 10 file: a correct meta group, then group 0002 again at the start of
    its data set (``plain``: the data set's own bytes in ``syntax``)."""
    header = part10_header(sop_class_uid=ds.SOPClassUID, sop_instance_uid=ds.SOPInstanceUID,
                           transfer_syntax_uid=syntax, implementation_class_uid="1.2.3.4",
                           implementation_version_name="WRITER", source_ae_title=None)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + meta_elements(ds, syntax, **options) + plain)
    return path


def write_deflated_with_stray_meta(path: Path, ds: Dataset, plain: bytes, *,
                                   private_value: int = 0) -> Path:
    """A Deflated Explicit VR Little Endian Part 10 file (PS3.5 A.5) whose deflate
    stream holds group 0002 elements before the data set (``plain``: its Explicit
    VR Little Endian bytes), padded to an even length."""
    header = part10_header(sop_class_uid=ds.SOPClassUID, sop_instance_uid=ds.SOPInstanceUID,
                           transfer_syntax_uid=DeflatedExplicitVRLittleEndian,
                           implementation_class_uid="1.2.3.4",
                           implementation_version_name="WRITER", source_ae_title=None)
    deflater = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    stream = deflater.compress(meta_elements(ds, ExplicitVRLittleEndian,
                                             private_value=private_value) + plain)
    stream += deflater.flush()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + stream + b"\x00" * (len(stream) % 2))
    return path


def inflated(stream: bytes) -> bytes:
    """A whole raw deflate stream (a deflated data set, PS3.5 A.5) inflated; it must
    end whole and be padded to an even length (one zero byte at most after it)."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    out = inflater.decompress(stream) + inflater.flush()
    assert inflater.eof and len(stream) % 2 == 0 and inflater.unused_data in (b"", b"\x00")
    return out


def assert_one_meta_group(stored: Path, ds: Dataset, syntax: str) -> None:
    """The stored file's meta group says ``syntax``, its data set holds no group 0002
    element (PS3.5 7.1), and every other element equals ``ds``'s."""
    from pydicom import dcmread

    from tests.storage.dicomfiles import assert_same_dataset

    read = dcmread(stored)
    assert read.file_meta.TransferSyntaxUID == syntax
    assert all(element.tag.group != 0x0002 for element in read)
    assert_same_dataset(ds, stored)
