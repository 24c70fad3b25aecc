"""Part 10 framing (PS3.10 7.1): header bytes, meta reading, exact data set offsets."""

from __future__ import annotations

import hashlib
import io
import zlib
from pathlib import Path

import pytest
from pydicom import dcmread, dcmwrite
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filereader import read_dataset, read_file_meta_info
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from dicomnet.errors import ConfigurationError
from dicomnet.storage import (
    AtomicWriter,
    DuplicatePolicy,
    Layout,
    NotPart10Error,
    part10_header,
    read_part10,
)

from .helpers import SECONDARY_CAPTURE, make_dataset, write_part10_file

IMPLEMENTATION_UID = "1.2.826.0.1.3680043.10.1234"
SYNTAXES = [
    ImplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    DeflatedExplicitVRLittleEndian,
]


def body(ds: Dataset) -> dict[int, object]:
    """The data set's elements as tag -> value, for comparing.

    Values, not VRs: Implicit VR Little Endian Pixel Data reads back as OW
    (PS3.5 A.1) whatever VR it was written with.
    """
    return {int(elem.tag): elem.value for elem in ds}


def decode_dataset_bytes(raw: bytes, transfer_syntax: str) -> Dataset:
    """Decode data set bytes independently of read_part10 (pydicom's reader)."""
    if transfer_syntax == DeflatedExplicitVRLittleEndian:
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        raw = inflater.decompress(raw) + inflater.flush()
        # Exactly one deflate stream, plus the pad to even length (PS3.5 A.5).
        assert inflater.eof and inflater.unused_data in (b"", b"\x00")
    implicit = transfer_syntax == ImplicitVRLittleEndian
    little = transfer_syntax != ExplicitVRBigEndian
    return read_dataset(io.BytesIO(raw), is_implicit_VR=implicit, is_little_endian=little)


def header(ts: str, *, ae: str | None = "STORESCU", version: str | None = "DICOMNET_010") -> bytes:
    return part10_header(
        sop_class_uid=SECONDARY_CAPTURE,
        sop_instance_uid="1.2.826.0.1.3680043.8.498.1",
        transfer_syntax_uid=ts,
        implementation_class_uid=IMPLEMENTATION_UID,
        implementation_version_name=version,
        source_ae_title=ae,
    )


def test_header_layout_byte_by_byte() -> None:
    raw = header(ExplicitVRLittleEndian)
    assert raw[:128] == b"\x00" * 128  # preamble, unused (PS3.10 7.1)
    assert raw[128:132] == b"DICM"  # prefix
    group_length = len(raw) - 144
    assert raw[132:144] == (
        b"\x02\x00\x00\x00"  # tag (0002,0000) File Meta Information Group Length
        b"UL"  # VR
        b"\x04\x00"  # value length 4
        + group_length.to_bytes(4, "little")  # counts bytes after this element
    )
    assert raw[144:158] == (
        b"\x02\x00\x01\x00"  # tag (0002,0001) File Meta Information Version
        b"OB\x00\x00"  # VR OB, 2 reserved bytes
        b"\x02\x00\x00\x00"  # 32-bit value length 2
        b"\x00\x01"  # version 00 01
    )
    assert raw[158:166] == (
        b"\x02\x00\x02\x00"  # tag (0002,0002) Media Storage SOP Class UID
        b"UI"  # VR
        b"\x1a\x00"  # length 26: the UID with NUL padding to even length
    )
    assert raw[166:192] == SECONDARY_CAPTURE.encode() + b"\x00"


def test_header_meta_values(tmp_path: Path) -> None:
    raw = header(DeflatedExplicitVRLittleEndian)
    path = tmp_path / "h.dcm"
    path.write_bytes(raw)
    meta = read_file_meta_info(path)
    assert meta.MediaStorageSOPClassUID == SECONDARY_CAPTURE
    assert meta.MediaStorageSOPInstanceUID == "1.2.826.0.1.3680043.8.498.1"
    assert meta.TransferSyntaxUID == DeflatedExplicitVRLittleEndian
    assert meta.ImplementationClassUID == IMPLEMENTATION_UID
    assert meta.ImplementationVersionName == "DICOMNET_010"
    assert meta.SourceApplicationEntityTitle == "STORESCU"
    assert meta.FileMetaInformationGroupLength == len(raw) - 144


def test_header_without_optional_fields(tmp_path: Path) -> None:
    path = tmp_path / "h.dcm"
    path.write_bytes(header(ExplicitVRLittleEndian, ae=None))
    meta = read_file_meta_info(path)
    assert "SourceApplicationEntityTitle" not in meta
    assert meta.ImplementationClassUID == IMPLEMENTATION_UID


@pytest.mark.parametrize("ae", ["", "   ", "A" * 17, "A\\B", "A\nB", "ÄE"])
def test_header_refuses_bad_ae_title(ae: str) -> None:
    with pytest.raises(ConfigurationError):
        header(ExplicitVRLittleEndian, ae=ae)


def test_header_refuses_bad_version_name() -> None:
    with pytest.raises(ConfigurationError):
        header(ExplicitVRLittleEndian, version="X" * 17)


def test_a_meta_group_longer_than_the_quick_look_is_read_whole(tmp_path: Path) -> None:
    """The first read covers a usual meta group; one that runs past it (20 KB of
    Private Information, PS3.10 Table 7.1-1) goes to the full reader, whose
    offset must be as exact."""
    ds = make_dataset()
    path = tmp_path / "long-meta.dcm"
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.PrivateInformationCreatorUID = UID("1.2.826.0.1.3680043.10.1234")
    meta.PrivateInformation = bytes(range(256)) * 80
    ds.file_meta = meta
    dcmwrite(path, ds, enforce_file_format=True)
    raw = path.read_bytes()
    info = read_part10(path)
    assert info.dataset_offset == 144 + int.from_bytes(raw[140:144], "little") > 20_000
    assert info.sop_instance_uid == ds.SOPInstanceUID
    assert b"".join(info.iter_dataset()) == raw[info.dataset_offset:]


@pytest.mark.parametrize("ts", SYNTAXES, ids=lambda ts: ts.name)
def test_dataset_offset_is_exact(tmp_path: Path, ts: str) -> None:
    ds = make_dataset()
    path = write_part10_file(tmp_path / "f.dcm", ds, ts)
    raw = path.read_bytes()
    info = read_part10(path)
    # (0002,0000) of pydicom's own file says where the meta group ends.
    assert info.dataset_offset == 144 + int.from_bytes(raw[140:144], "little")
    assert info.size == len(raw)
    assert info.transfer_syntax_uid == ts
    assert info.sop_class_uid == ds.SOPClassUID
    assert info.sop_instance_uid == ds.SOPInstanceUID
    assert info.meta.TransferSyntaxUID == ts
    # And the bytes from there on decode, alone, to the whole data set.
    assert body(decode_dataset_bytes(raw[info.dataset_offset :], ts)) == body(ds)
    assert b"".join(info.iter_dataset(chunk_size=7)) == raw[info.dataset_offset :]


@pytest.mark.parametrize("ts", SYNTAXES, ids=lambda ts: ts.name)
def test_header_plus_received_bytes_round_trip(tmp_path: Path, ts: str) -> None:
    """What the SCP does: our header, then the data set bytes as received."""
    original = make_dataset()
    source = write_part10_file(tmp_path / "sent.dcm", original, ts)
    sent = read_part10(source)
    received = b"".join(sent.iter_dataset())

    dest = Layout.HIERARCHICAL.destination(
        tmp_path / "archive",
        sop_instance_uid=sent.sop_instance_uid,
        study_instance_uid=original.StudyInstanceUID,
        series_instance_uid=original.SeriesInstanceUID,
    )
    head = part10_header(
        sop_class_uid=sent.sop_class_uid,
        sop_instance_uid=sent.sop_instance_uid,
        transfer_syntax_uid=ts,
        implementation_class_uid=IMPLEMENTATION_UID,
        implementation_version_name="DICOMNET_010",
        source_ae_title="STORESCU",
    )
    with AtomicWriter(dest) as writer:
        writer.write(head)
        for start in range(0, len(received), 100):  # as PDV fragments
            writer.write(received[start : start + 100])
        writer.commit(DuplicatePolicy.REJECT)

    stored = dest.read_bytes()
    assert stored == head + received
    reread = dcmread(dest)
    assert body(reread) == body(original)
    assert reread.file_meta.TransferSyntaxUID == ts
    assert reread.file_meta.SourceApplicationEntityTitle == "STORESCU"
    info = read_part10(dest)
    assert info.dataset_offset == len(head)
    assert hashlib.sha256(b"".join(info.iter_dataset())).digest() == (
        hashlib.sha256(received).digest()
    )


@pytest.mark.parametrize("delta", [-10, -1, 1, 10, 1000])
def test_wrong_group_length_is_survived(tmp_path: Path, delta: int) -> None:
    ds = make_dataset()
    path = write_part10_file(tmp_path / "f.dcm", ds)
    raw = path.read_bytes()
    good = 144 + int.from_bytes(raw[140:144], "little")
    lying = int.from_bytes(raw[140:144], "little") + delta
    path.write_bytes(raw[:140] + lying.to_bytes(4, "little") + raw[144:])
    assert read_part10(path).dataset_offset == good


def test_missing_group_length_is_survived(tmp_path: Path) -> None:
    ds = make_dataset()
    path = write_part10_file(tmp_path / "f.dcm", ds)
    raw = path.read_bytes()
    good = 144 + int.from_bytes(raw[140:144], "little")
    path.write_bytes(raw[:132] + raw[144:])
    info = read_part10(path)
    assert info.dataset_offset == good - 12
    assert body(decode_dataset_bytes(raw[good:], ExplicitVRLittleEndian)) == body(ds)


def test_raw_dataset_is_refused(tmp_path: Path) -> None:
    ds = make_dataset()
    path = write_part10_file(tmp_path / "f.dcm", ds)
    raw = path.read_bytes()
    offset = read_part10(path).dataset_offset
    raw_path = tmp_path / "raw.dcm"
    raw_path.write_bytes(raw[offset:])
    with pytest.raises(NotPart10Error, match="preamble"):
        read_part10(raw_path)


@pytest.mark.parametrize("content", [b"", b"DICM", b"\x00" * 131, b"\x00" * 128 + b"DICX"])
def test_not_dicom_is_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "junk"
    path.write_bytes(content)
    with pytest.raises(NotPart10Error):
        read_part10(path)


def test_meta_without_transfer_syntax_is_refused(tmp_path: Path) -> None:
    raw = header(ExplicitVRLittleEndian)
    ts_tag = b"\x02\x00\x10\x00UI"
    at = raw.index(ts_tag)
    length = int.from_bytes(raw[at + 6 : at + 8], "little")
    stripped = raw[:at] + raw[at + 8 + length :]
    path = tmp_path / "f.dcm"
    path.write_bytes(stripped)
    with pytest.raises(NotPart10Error, match="TransferSyntaxUID"):
        read_part10(path)


def _implicit_meta(element: int, value: bytes) -> bytes:
    """A group 0002 element in Implicit VR Little Endian: tag, 4-byte length, value."""
    value += b"\x00" * (len(value) % 2)
    return b"\x02\x00" + element.to_bytes(2, "little") + len(value).to_bytes(4, "little") + value


@pytest.mark.parametrize("meta", [
    # Found by atheris (tests/fuzz_harness, part10_file): no VR letters after the tag.
    b"\x02\x00\xfb\xfb\xfb\xfb",
    # A whole meta group in Implicit VR, which PS3.10 7.1 does not allow.
    _implicit_meta(0x0002, SECONDARY_CAPTURE.encode()) + _implicit_meta(0x0003, b"1.2.3.4")
    + _implicit_meta(0x0010, ImplicitVRLittleEndian.encode()),
], ids=["no VR", "implicit VR"])
def test_a_meta_group_not_in_explicit_vr_is_refused_without_a_warning(
        tmp_path: Path, meta: bytes) -> None:
    """pydicom warns (UserWarning) when the meta group's first element has no VR:
    under ``-W error`` (here, pytest's filterwarnings) that escaped read_part10 as
    no StorageError, and an SCU's whole run failed on one bad file. Refused now as
    before, without the warning."""
    path = tmp_path / "f.dcm"
    path.write_bytes(b"\x00" * 128 + b"DICM" + meta)
    with pytest.raises(NotPart10Error, match="not in Explicit VR Little Endian"):
        read_part10(path)


def test_an_empty_meta_element_of_an_unknown_vr_is_refused(tmp_path: Path) -> None:
    """Found by atheris (part10_file): (0002,0003) with VR bytes "U\\0" and length 0.
    pydicom read it raw and converted it when first asked for it, raising
    NotImplementedError ("Unknown Value Representation"), no StorageError: an
    SCU's whole run failed on that one file."""
    raw = header(ExplicitVRLittleEndian)
    at = raw.index(b"\x02\x00\x03\x00UI")
    length = int.from_bytes(raw[at + 6:at + 8], "little")
    meta = raw[144:at] + b"\x02\x00\x03\x00U\x00\x00\x00" + raw[at + 8 + length:]
    path = tmp_path / "f.dcm"
    path.write_bytes(raw[:140] + len(meta).to_bytes(4, "little") + meta)
    with pytest.raises(NotPart10Error, match="lacks MediaStorageSOPInstanceUID"):
        read_part10(path)


@pytest.mark.parametrize("header", [
    b"\x02\x00\x02\x00OB\x00\x00\xff\xff\xff\xff",
    # As found: no VR letters, so pydicom reads this one element in Implicit VR.
    b"\x02\x00\x02\xff\xff\xff\xff\xff",
], ids=["OB", "no VR"])
def test_a_meta_element_of_undefined_length_is_refused_without_a_warning(
        tmp_path: Path, header: bytes) -> None:
    """Found by atheris (part10_file): a meta element of undefined length, no
    delimiter to its end. pydicom looked for one to the end of the file and
    warned (UserWarning, an exception under -W error: no StorageError)."""
    meta = (b"\x02\x00\x01\x00OB\x00\x00\x02\x00\x00\x00\x00\x01"
            + header + b"1.2.840.10008.5.1.4.1.1.7\x00")
    # Without (0002,0000), then with it: read as the group it bounds (the way a
    # deflated data set's meta is read), where pydicom warned the same.
    for group in (b"", b"\x02\x00\x00\x00UL\x04\x00" + len(meta).to_bytes(4, "little")):
        path = tmp_path / "f.dcm"
        path.write_bytes(b"\x00" * 128 + b"DICM" + group + meta)
        with pytest.raises(NotPart10Error, match="undefined length"):
            read_part10(path)


def test_missing_file_is_a_storage_error(tmp_path: Path) -> None:
    from dicomnet.storage import StorageError

    with pytest.raises(StorageError) as info:
        read_part10(tmp_path / "absent.dcm")
    assert info.value.errno == 2


# (Without a version name pydicom inserts its own, so that case is not comparable.)
@pytest.mark.parametrize("version_name", ["DICOMNET_010", "ODD"])
@pytest.mark.parametrize("source_ae", [None, "STORESCU", "AE1"])
def test_part10_header_is_byte_identical_to_pydicoms(
    version_name: str, source_ae: str | None
) -> None:
    """The hand-encoded meta group (kept off pydicom for speed) equals pydicom's own."""
    from pydicom.dataset import FileMetaDataset as Meta
    from pydicom.filebase import DicomBytesIO as Buffer
    from pydicom.filewriter import write_file_meta_info as write_meta

    args = {
        "sop_class_uid": "1.2.840.10008.5.1.4.1.1.2",
        "sop_instance_uid": "1.2.3.4.5",  # odd length: padded with NUL
        "transfer_syntax_uid": "1.2.840.10008.1.2.1",
        "implementation_class_uid": "2.25.12345",
    }
    ours = part10_header(**args, implementation_version_name=version_name,
                         source_ae_title=source_ae)
    meta = Meta()
    meta.MediaStorageSOPClassUID = UID(args["sop_class_uid"])
    meta.MediaStorageSOPInstanceUID = UID(args["sop_instance_uid"])
    meta.TransferSyntaxUID = UID(args["transfer_syntax_uid"])
    meta.ImplementationClassUID = UID(args["implementation_class_uid"])
    meta.ImplementationVersionName = version_name
    if source_ae is not None:
        meta.SourceApplicationEntityTitle = source_ae
    buffer = Buffer()
    buffer.write(b"\x00" * 128 + b"DICM")
    write_meta(buffer, meta, enforce_standard=True)
    assert ours == bytes(buffer.getvalue())


def test_part10_header_bytes() -> None:
    """The File Meta Information written for a received object, byte for byte
    (PS3.10 7.1): its group length, and an odd-length instance UID NUL-padded."""
    from dicomnet.storage.part10 import part10_header

    header = part10_header(sop_class_uid="1.2", sop_instance_uid="1.2.3",
                           transfer_syntax_uid="1.2.840.10008.1.2.1",
                           implementation_class_uid="1.9", implementation_version_name=None,
                           source_ae_title="AE")
    body = (b"\x02\x00\x01\x00OB\x00\x00\x02\x00\x00\x00\x00\x01"  # (0002,0001) OB 2: 00 01
            b"\x02\x00\x02\x00UI\x04\x001.2\x00"  # (0002,0002) UI 4: "1.2" NUL
            b"\x02\x00\x03\x00UI\x06\x001.2.3\x00"  # (0002,0003) UI 6: "1.2.3" NUL
            b"\x02\x00\x10\x00UI\x14\x001.2.840.10008.1.2.1\x00"  # (0002,0010) UI 20
            b"\x02\x00\x12\x00UI\x04\x001.9\x00"  # (0002,0012) UI 4
            b"\x02\x00\x16\x00AE\x02\x00AE")  # (0002,0016) AE 2
    assert header == (b"\x00" * 128 + b"DICM"
                      + b"\x02\x00\x00\x00UL\x04\x00" + len(body).to_bytes(4, "little")
                      + body)
