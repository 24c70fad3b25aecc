"""A data set in Implicit VR sent on an Explicit VR context (a peer whose encoding
flags are wrong: pynetdicom with a data set encoded implicit). PS3.5 10 and A.2
make the context's syntax the data set's, every element explicit; PS3.10 7.1
makes a file's Transfer Syntax UID its data set's. The SCP used to read such a
data set leniently, answer Success and store it under an Explicit VR Little
Endian File Meta Information: pydicom guessed its way through the file, DCMTK
read garbage. Now the SCP knows it from the first element header: on an
Explicit VR Little Endian context the file is relabelled Implicit VR Little
Endian (its header, the index row, what handlers see, one warning); on a Big
Endian or encapsulated one it is refused (C000), never stored mislabelled."""

from __future__ import annotations

import logging
import struct
import zlib
from pathlib import Path

import pytest
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
    RLELossless,
)

from dicomnet.services.storage import INDEX_NAME, StorageSCP, StoredInstance
from dicomnet.services.store_sink import SPILL_THRESHOLD, StoreSink
from dicomnet.storage.index import StorageIndex
from dicomnet.storage.part10 import part10_header, with_transfer_syntax
from tests.aio.helpers import run
from tests.storage.dicomfiles import assert_same_dataset, make_image
from tests.storage.helpers import data_set_bytes, store_data_sets
from tests.storage.stray import meta_elements, meta_group_length


def header_of(syntax: str) -> bytes:
    """A Part 10 header naming ``syntax``, of one Secondary Capture instance."""
    return part10_header(sop_class_uid="1.2.840.10008.5.1.4.1.1.7",
                         sop_instance_uid="1.2.826.0.1.3680043.8.498.9.1",
                         transfer_syntax_uid=syntax, implementation_class_uid="1.2.3.4",
                         implementation_version_name="V1", source_ae_title="PEER")


def meta_syntax(data: bytes) -> str:
    """(0002,0010) of a Part 10 file's meta group, read by its bytes."""
    at = data.index(b"\x02\x00\x10\x00UI")
    (length,) = struct.unpack_from("<H", data, at + 6)
    return data[at + 8:at + 8 + length].rstrip(b"\0").decode("ascii")


def _deflated(data: bytes) -> bytes:
    """Raw deflate (PS3.5 A.5), padded to an even length."""
    deflater = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    out = deflater.compress(data) + deflater.flush()
    return out + b"\0" * (len(out) % 2)


def test_with_transfer_syntax_is_the_header_made_for_that_syntax() -> None:
    relabelled = with_transfer_syntax(header_of(ExplicitVRLittleEndian), ImplicitVRLittleEndian)
    assert relabelled == header_of(ImplicitVRLittleEndian)
    # (0002,0000): the group is two bytes shorter ("1.2.840.10008.1.2" pads to 18).
    assert struct.unpack_from("<L", relabelled, 140)[0] + 144 == len(relabelled)
    assert len(relabelled) == len(header_of(ExplicitVRLittleEndian)) - 2


@pytest.mark.parametrize("step", [1, 5, 7, 1 << 20])
@pytest.mark.parametrize("stray", [False, True], ids=["plain", "after-stray-meta"])
def test_the_sink_relabels_at_the_first_element_header_in_any_pieces(step: int,
                                                                        stray: bool) -> None:
    ds = make_image(1)
    plain = data_set_bytes(ds, ImplicitVRLittleEndian)
    sent = (meta_elements(ds, ImplicitVRLittleEndian) if stray else b"") + plain
    sink = StoreSink(header_of(ExplicitVRLittleEndian), None,
                     transfer_syntax=ExplicitVRLittleEndian)
    for start in range(0, len(sent), step):
        sink.write(sent[start:start + step])
    assert sink.check_complete(ds.SOPInstanceUID) and sink.error is None
    assert sink.transfer_syntax == ImplicitVRLittleEndian
    assert sink.relabelled == ExplicitVRLittleEndian
    assert isinstance(sink.buffer, bytearray)
    assert bytes(sink.buffer) == header_of(ImplicitVRLittleEndian) + plain


@pytest.mark.parametrize("step", [1, 5, 1 << 20])
@pytest.mark.parametrize("encoding", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_on_a_deflated_context_the_inflated_first_header_decides(step: int,
                                                                  encoding: str) -> None:
    ds = make_image(2)
    sent = _deflated(data_set_bytes(ds, encoding))
    sink = StoreSink(header_of(DeflatedExplicitVRLittleEndian), None,
                     transfer_syntax=DeflatedExplicitVRLittleEndian)
    for start in range(0, len(sent), step):
        sink.write(sent[start:start + step])
    if encoding == ExplicitVRLittleEndian:
        assert sink.check_complete(ds.SOPInstanceUID) and sink.relabelled is None
        assert isinstance(sink.buffer, bytearray)
        assert bytes(sink.buffer) == header_of(DeflatedExplicitVRLittleEndian) + sent
    else:  # no syntax is Implicit VR deflated: refused, its bytes dropped at once
        assert not sink.check_complete(ds.SOPInstanceUID)
        assert (sink.status, sink.buffer) == (0xC000, None)
        assert sink.error is not None and "Deflated Explicit VR Little Endian" in sink.error


def test_the_sink_leaves_an_explicit_data_set_as_it_is() -> None:
    plain = data_set_bytes(make_image(1), ExplicitVRLittleEndian)
    sink = StoreSink(header_of(ExplicitVRLittleEndian), None,
                     transfer_syntax=ExplicitVRLittleEndian)
    for start in range(0, len(plain), 3):
        sink.write(plain[start:start + 3])
    assert sink.transfer_syntax == ExplicitVRLittleEndian and sink.relabelled is None
    assert isinstance(sink.buffer, bytearray)
    assert bytes(sink.buffer) == header_of(ExplicitVRLittleEndian) + plain


@pytest.mark.parametrize("hook", ["on_stored", "on_c_store"])
@pytest.mark.parametrize("size", ["small", "spilled"])
def test_the_scp_stores_it_as_implicit_vr_little_endian(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, hook: str, size: str) -> None:
    ds = make_image(3, rows=1100 if size == "spilled" else 32, columns=1000)
    plain = data_set_bytes(ds, ImplicitVRLittleEndian)
    assert (len(plain) > SPILL_THRESHOLD) == (size == "spilled")
    seen: list[StoredInstance] = []
    scp = StorageSCP(tmp_path, **{hook: seen.append})  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="dicomnet.services"):
        answers = run(store_data_sets(scp, ExplicitVRLittleEndian,
                                      [(ds.SOPInstanceUID, plain)]), timeout=60)
    assert [a.status for a in answers] == [0x0000]
    (stored,) = tmp_path.rglob("*.dcm")
    data = stored.read_bytes()
    assert meta_syntax(data) == ImplicitVRLittleEndian
    assert data[meta_group_length(data):] == plain
    assert_same_dataset(ds, stored)  # pydicom reads it in Implicit VR: no guess, no warning
    assert [(s.transfer_syntax_uid, s.path) for s in seen] == [(ImplicitVRLittleEndian, stored)]
    with StorageIndex(tmp_path / INDEX_NAME) as index:
        row = index.get_instance(ds.SOPInstanceUID)
    assert row is not None and row.transfer_syntax_uid == ImplicitVRLittleEndian
    lines = [r.getMessage() for r in caplog.records if "Implicit VR" in r.getMessage()]
    assert len(lines) == 1, lines
    assert ds.SOPInstanceUID in lines[0] and "DICOMNET@127.0.0.1:" in lines[0]
    assert f"not in the context's Explicit VR Little Endian ({ExplicitVRLittleEndian}" in lines[0]
    assert f"stored as Implicit VR Little Endian ({ImplicitVRLittleEndian})" in lines[0]


@pytest.mark.parametrize("syntax", [ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian,
                                    RLELossless, JPEGBaseline8Bit],
                         ids=["big-endian", "deflated", "rle", "jpeg"])
def test_on_another_explicit_context_it_is_refused_not_stored_mislabelled(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, syntax: str) -> None:
    ds = make_image(4)
    scp = StorageSCP(tmp_path, transfer_syntaxes=[syntax])
    with caplog.at_level(logging.WARNING, logger="dicomnet.services"):
        data = data_set_bytes(ds, ImplicitVRLittleEndian)
        if syntax == DeflatedExplicitVRLittleEndian:
            data = _deflated(data)
        answers = run(store_data_sets(scp, syntax, [(ds.SOPInstanceUID, data)]), timeout=60)
    assert [a.status for a in answers] == [0xC000]
    assert answers[0].error_comment is not None
    assert answers[0].error_comment.startswith("data set in Implicit VR, not in the context's ")
    assert not [p.name for p in tmp_path.rglob("*") if not p.name.startswith(INDEX_NAME)]
    (line,) = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert f"({syntax}), which is Explicit VR" in line and "status 0xC000" in line
