"""Values pydicom warns of when it converts them (an invalid date, an IS with
letters) do not change what the SCP stores, whatever the application's warning
filters: pytest runs with filterwarnings=error, as ``python -W error`` would.

pydicom said so with ``warnings.warn`` as the SCP read such a data set's header
where its values went through pydicom (another character set, Deflated, Big
Endian before the raw walk, a spilled file): the warning became an exception
and the object was refused (C000, 'data set cannot be parsed'). The header is
now decoded without pydicom's conversion (storage.header), so it is stored,
byte for byte, and indexed with the values as they came.
"""

from __future__ import annotations

import warnings
import zlib
from pathlib import Path

import pytest
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from dicomnet.aio.client import open_association
from dicomnet.dimse.messages import CStoreRQ, CStoreRSP
from dicomnet.services.storage import INDEX_NAME, StorageSCP
from dicomnet.services.verification import VerificationSCP
from dicomnet.storage.index import StorageIndex
from dicomnet.storage.part10 import read_part10
from dicomnet.ul.negotiation import ContextRequest
from tests.aio.helpers import run, running_server

from .dicomfiles import SECONDARY_CAPTURE, make_image
from .helpers import data_set_bytes

#: Ivanov^Pyotr in Cyrillic, ISO_IR 144: not a character set decoded the plain way.
CYRILLIC = "\u0418\u0432\u0430\u043d\u043e\u0432^\u041f\u0451\u0442\u0440"
BAD_DATE = "2024-13-45"  # DA: neither YYYYMMDD nor a real date
BAD_NUMBER = "12AB"  # IS: letters


def _invalid_data_set(number: int, syntax: str, *, charset: str, rows: int) -> tuple[str, bytes]:
    """(SOP Instance UID, the data set as sent) with Study Date BAD_DATE and
    Instance Number BAD_NUMBER: pydicom refuses to write the latter, so it is
    written as "7531" and its bytes replaced."""
    ds = make_image(number, rows=rows, columns=rows)
    if charset:
        ds.SpecificCharacterSet = charset
        ds.PatientName = CYRILLIC
    ds.InstanceNumber = "7531"
    with warnings.catch_warnings():  # the test's own writing only
        warnings.simplefilter("ignore")
        ds.StudyDate = BAD_DATE
        deflated = syntax == DeflatedExplicitVRLittleEndian
        plain = data_set_bytes(ds, ExplicitVRLittleEndian if deflated else syntax)
    assert plain.count(b"7531") == 1
    plain = plain.replace(b"7531", BAD_NUMBER.encode())
    if deflated:
        deflater = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
        plain = deflater.compress(plain) + deflater.flush()
        plain += b"\x00" * (len(plain) % 2)  # PS3.5 A.5
    return str(ds.SOPInstanceUID), plain


SYNTAXES = {"explicit-le": ExplicitVRLittleEndian, "implicit-le": ImplicitVRLittleEndian,
            "explicit-be": ExplicitVRBigEndian, "deflated": DeflatedExplicitVRLittleEndian}


@pytest.mark.parametrize("syntax", list(SYNTAXES.values()), ids=list(SYNTAXES))
@pytest.mark.parametrize("charset", ["", "ISO_IR 144"], ids=["default", "cyrillic"])
@pytest.mark.parametrize("rows", [40, 1100], ids=["in-memory", "spilled"])
def test_values_pydicom_warns_of_are_stored_as_they_came(
        tmp_path: Path, syntax: str, charset: str, rows: int) -> None:
    # As an application run with -W error: pytest's filterwarnings = error.
    assert ("error", None, Warning, None, 0) in warnings.filters
    uid, data = _invalid_data_set(7, syntax, charset=charset, rows=rows)
    root = tmp_path / "root"

    async def scenario() -> CStoreRSP:
        scp = StorageSCP(root)
        try:
            async with running_server(providers=[VerificationSCP(), scp]) as server:
                assoc = await open_association(
                    "127.0.0.1", server.port, contexts=[ContextRequest(SECONDARY_CAPTURE,
                                                                       (syntax,))])
                rq = CStoreRQ(message_id=1, affected_sop_class_uid=SECONDARY_CAPTURE,
                              affected_sop_instance_uid=uid)
                rsp, _ = await assoc.request_one(
                    rq, assoc.context_for(SECONDARY_CAPTURE).context_id, dataset=data)
                await assoc.release()
                assert isinstance(rsp, CStoreRSP)
                return rsp
        finally:
            scp.close()

    rsp = run(scenario(), timeout=60)
    assert (rsp.status, rsp.error_comment) == (0x0000, None)
    (stored,) = root.rglob(f"{uid}.dcm")
    assert stored.read_bytes()[read_part10(stored).dataset_offset:] == data
    _assert_indexed(root, uid, charset)
    # Its row read back from the file (reindex; the SCP does so for a kept duplicate
    # whose row was lost) is the same.
    for name in (INDEX_NAME, INDEX_NAME + "-wal", INDEX_NAME + "-shm"):
        (root / name).unlink(missing_ok=True)
    with StorageIndex(root / INDEX_NAME) as index:
        assert index.reindex(root).added == 1
    _assert_indexed(root, uid, charset)


def _assert_indexed(root: Path, uid: str, charset: str) -> None:
    with StorageIndex(root / INDEX_NAME) as index:
        row = index.get_instance(uid)
        assert row is not None and row.instance_number == BAD_NUMBER
        (study,) = index.find("STUDY", {"StudyDate": "", "PatientName": ""})
    assert study["StudyDate"] == BAD_DATE
    assert study["PatientName"] == (CYRILLIC if charset else "Test^Patient7")
