"""A data set in Explicit VR Little Endian sent on an Implicit VR Little Endian
context, the mirror of test_implicit_vr_on_explicit.

pynetdicom sends a file as it is (``STORE_SEND_CHUNKED_DATASET``) on the context
its File Meta Information names: a file whose meta says Implicit VR Little
Endian over an Explicit VR data set goes in Explicit VR on an Implicit VR
context. dicomnet serve refused it 0xC000 "incomplete data set: ... ends inside
element (0008,0016): 1721261 bytes missing" (its explicit headers read as
implicit lengths); it now stores it as what it is, under an Explicit VR Little
Endian meta (PS3.5 A.2; PS3.10 7.1), said at WARNING, as the reverse case is.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from dicomnet.services.storage import INDEX_NAME
from dicomnet.storage.index import StorageIndex
from tests.interop.conftest import Dcmtk, dicomnet_serve_plain
from tests.interop.test_implicit_vr_on_explicit import dcmdump, mislabelled, pynetdicom_sends
from tests.storage.dicomfiles import assert_same_dataset, make_image

pytestmark = pytest.mark.interop


def test_pynetdicom_sends_it_on_an_implicit_context_and_dicomnet_serve_relabels_it(
        dcmtk: Dcmtk, pynetdicom: ModuleType, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    ds = make_image(23)
    source = mislabelled(tmp_path / "in" / "mislabelled.dcm", ds,
                         labelled=ImplicitVRLittleEndian, encoded=ExplicitVRLittleEndian)
    store = tmp_path / "store"
    monkeypatch.setattr(pynetdicom._config, "STORE_SEND_CHUNKED_DATASET", True)
    with dicomnet_serve_plain(store) as (port, events, stderr):
        status = pynetdicom_sends(pynetdicom, port, source, ImplicitVRLittleEndian)
    assert status == 0x0000, stderr
    (stored,) = store.rglob(f"{ds.SOPInstanceUID}.dcm")
    output = dcmdump(stored)
    assert "(0002,0010) UI =LittleEndianExplicit" in output, output
    assert "# Used TransferSyntax: Little Endian Explicit" in output, output
    assert f"(0010,0010) PN [{ds.PatientName}]" in output, output
    assert "(0018,9219) SS -1234" in output, output
    assert_same_dataset(ds, stored)
    (event,) = [e for e in events if e["event"] == "stored"]
    assert event["transfer_syntax_uid"] == ExplicitVRLittleEndian
    with StorageIndex(store / INDEX_NAME) as index:
        row = index.get_instance(ds.SOPInstanceUID)
    assert row is not None and row.transfer_syntax_uid == ExplicitVRLittleEndian
    (line,) = [x for x in stderr[0].splitlines() if "WARNING" in x]
    assert ds.SOPInstanceUID in line and "WRONGTS@127.0.0.1:" in line
    assert line.endswith(
        "its data set is in Explicit VR Little Endian, not in the context's Implicit VR "
        f"Little Endian ({ImplicitVRLittleEndian}; PS3.5 A.1): the sender mislabelled it; "
        f"stored as Explicit VR Little Endian ({ExplicitVRLittleEndian}), the file's "
        "Transfer Syntax UID saying so"), line
