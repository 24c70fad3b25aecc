"""A data set in Explicit VR Little Endian sent on an Implicit VR Little Endian
context (pynetdicom sending a file whose meta is wrong as it is: the interop
test test_explicit_vr_on_implicit): the mirror of test_implicit_on_explicit.
It was refused C000, "incomplete data set: ... ends inside element (0008,0016):
1721261 bytes missing", its explicit headers read as implicit lengths. The SCP
now knows it from the first element header (a known VR where an implicit
length's low bytes would be) and stores it relabelled Explicit VR Little Endian:
its header, its index row, what handlers see, one WARNING."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from dicomnet.services.storage import INDEX_NAME, StorageSCP, StoredInstance
from dicomnet.services.store_sink import SPILL_THRESHOLD, StoreSink
from dicomnet.storage.index import StorageIndex
from tests.aio.helpers import run
from tests.storage.dicomfiles import assert_same_dataset, make_image
from tests.storage.helpers import data_set_bytes, store_data_sets
from tests.storage.stray import meta_group_length
from tests.storage.test_implicit_on_explicit import header_of, meta_syntax


def _sink(sent: bytes, step: int) -> StoreSink:
    sink = StoreSink(header_of(ImplicitVRLittleEndian), None,
                     transfer_syntax=ImplicitVRLittleEndian)
    for start in range(0, len(sent), step):
        sink.write(sent[start:start + step])
    return sink


@pytest.mark.parametrize("step", [1, 5, 7, 1 << 20])
def test_the_sink_relabels_at_the_first_element_header_in_any_pieces(step: int) -> None:
    ds = make_image(1)
    plain = data_set_bytes(ds, ExplicitVRLittleEndian)
    sink = _sink(plain, step)
    assert sink.check_complete(ds.SOPInstanceUID) and sink.error is None
    assert sink.transfer_syntax == ExplicitVRLittleEndian
    assert sink.relabelled == ImplicitVRLittleEndian
    assert isinstance(sink.buffer, bytearray)
    assert bytes(sink.buffer) == header_of(ExplicitVRLittleEndian) + plain


@pytest.mark.parametrize("step", [1, 5, 1 << 20])
def test_the_sink_leaves_an_implicit_data_set_as_it_is(step: int) -> None:
    ds = make_image(1)
    plain = data_set_bytes(ds, ImplicitVRLittleEndian)
    sink = _sink(plain, step)
    assert sink.check_complete(ds.SOPInstanceUID) and sink.error is None
    assert sink.transfer_syntax == ImplicitVRLittleEndian and sink.relabelled is None
    assert isinstance(sink.buffer, bytearray)
    assert bytes(sink.buffer) == header_of(ImplicitVRLittleEndian) + plain


@pytest.mark.parametrize("sent", [b"\x08\x00", b"\x08\x00\x16\x00U"])
def test_a_data_set_cut_before_its_first_vr_is_still_refused(sent: bytes) -> None:
    """Its walker is made at the end, when the VR mode never came."""
    sink = _sink(sent, 1)
    assert not sink.check_complete("1.2.3")
    assert sink.status == 0xC000 and sink.error is not None
    assert sink.error.startswith("incomplete data set"), sink.error


def test_an_explicit_data_set_cut_short_is_refused_as_explicit() -> None:
    plain = data_set_bytes(make_image(1), ExplicitVRLittleEndian)
    sink = _sink(plain[:-10], 1 << 20)
    assert not sink.check_complete("1.2.3")
    assert sink.error is not None and "10 byte(s) of its value missing" in sink.error, sink.error


@pytest.mark.parametrize("size", ["small", "spilled"])
def test_the_scp_stores_it_as_explicit_vr_little_endian(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, size: str) -> None:
    ds = make_image(3, rows=1100 if size == "spilled" else 32, columns=1000)
    plain = data_set_bytes(ds, ExplicitVRLittleEndian)
    assert (len(plain) > SPILL_THRESHOLD) == (size == "spilled")
    seen: list[StoredInstance] = []
    scp = StorageSCP(tmp_path, on_stored=seen.append)
    with caplog.at_level(logging.WARNING, logger="dicomnet.services"):
        answers = run(store_data_sets(scp, ImplicitVRLittleEndian,
                                      [(ds.SOPInstanceUID, plain)]), timeout=60)
    assert [(a.status, a.error_comment) for a in answers] == [(0x0000, None)]
    (stored,) = tmp_path.rglob("*.dcm")
    data = stored.read_bytes()
    assert meta_syntax(data) == ExplicitVRLittleEndian
    assert data[meta_group_length(data):] == plain
    assert_same_dataset(ds, stored)
    assert [(s.transfer_syntax_uid, s.path) for s in seen] == [(ExplicitVRLittleEndian, stored)]
    with StorageIndex(tmp_path / INDEX_NAME) as index:
        row = index.get_instance(ds.SOPInstanceUID)
    assert row is not None and row.transfer_syntax_uid == ExplicitVRLittleEndian
    [line] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert line.startswith(f"C-STORE {ds.SOPInstanceUID} from DICOMNET@127.0.0.1:")
    assert line.endswith(
        "its data set is in Explicit VR Little Endian, not in the context's Implicit VR "
        f"Little Endian ({ImplicitVRLittleEndian}; PS3.5 A.1): the sender mislabelled it; "
        f"stored as Explicit VR Little Endian ({ExplicitVRLittleEndian}), the file's "
        "Transfer Syntax UID saying so"), line
