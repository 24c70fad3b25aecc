"""The storage SCP stores only what is consistent: the command's SOP Class is the
presentation context's abstract syntax (PS3.7 9.1.1.1: else 0122H, SOP Class
not supported) and the data set is the instance the command names (else A900H,
Data Set does not match SOP Class, PS3.4 B.2.3), which it says (else C000H,
cannot understand). Nothing is stored otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian

from dicomnet.aio.client import associate
from dicomnet.dimse.messages import CStoreRQ, CStoreRSP
from dicomnet.services.storage import StorageSCP
from dicomnet.services.verification import VerificationSCP
from dicomnet.storage.part10 import read_part10
from dicomnet.ul.negotiation import ContextRequest
from tests.aio.helpers import LOOPBACK, run, running_server
from tests.storage.dicomfiles import CT_IMAGE_STORAGE, SECONDARY_CAPTURE, make_image, write_part10
from tests.storage.helpers import data_set_bytes

VERIFICATION = "1.2.840.10008.1.1"
SOP_CLASS_NOT_SUPPORTED, DATASET_MISMATCH = 0x0122, 0xA900


@pytest.mark.parametrize(("context", "command_class", "command_instance", "expected"), [
    (VERIFICATION, SECONDARY_CAPTURE, None, (SOP_CLASS_NOT_SUPPORTED,
                                             "SOP Class differs from the presentation context's")),
    (SECONDARY_CAPTURE, CT_IMAGE_STORAGE, None, (SOP_CLASS_NOT_SUPPORTED,
                                                 "SOP Class differs from the presentation "
                                                 "context's")),
    (CT_IMAGE_STORAGE, CT_IMAGE_STORAGE, None, (DATASET_MISMATCH,
                                                "SOP Class UID in the data set differs from the "
                                                "command")),
    (SECONDARY_CAPTURE, SECONDARY_CAPTURE, "1.2.3.4", (DATASET_MISMATCH,
                                                       "SOP Instance UID in the data set differs "
                                                       "from the command")),
    (SECONDARY_CAPTURE, SECONDARY_CAPTURE, None, (0, None)),
], ids=["store-on-verification", "class-not-the-context", "data-set-of-another-class",
        "data-set-of-another-instance", "consistent"])
def test_only_a_consistent_c_store_is_stored(
        tmp_path: Path, context: str, command_class: str, command_instance: str | None,
        expected: tuple[int, str | None]) -> None:
    image = make_image(1)  # a Secondary Capture data set
    source = write_part10(tmp_path / "a.dcm", image, ExplicitVRLittleEndian)
    data = source.read_bytes()[read_part10(source).dataset_offset:]
    syntaxes = (str(ExplicitVRLittleEndian),)

    async def main() -> CStoreRSP:
        scp = StorageSCP(tmp_path / "out")
        try:
            async with running_server(providers=[VerificationSCP(), scp]) as server, associate(
                    LOOPBACK, server.port, contexts=[
                        ContextRequest(uid, syntaxes)
                        for uid in (VERIFICATION, SECONDARY_CAPTURE, CT_IMAGE_STORAGE)]) as assoc:
                rsp, _ = await assoc.request_one(CStoreRQ(
                    message_id=1, affected_sop_class_uid=command_class,
                    affected_sop_instance_uid=command_instance or image.SOPInstanceUID,
                ), assoc.context_for(context).context_id, dataset=data)
                assert int(await assoc.echo()) == 0  # the association goes on
        finally:
            scp.close()
        assert isinstance(rsp, CStoreRSP)
        return rsp

    rsp = run(main())
    assert (rsp.status, rsp.error_comment) == expected
    stored = sorted((tmp_path / "out").rglob("*.dcm"))
    assert len(stored) == (1 if expected[0] == 0 else 0)
    assert not [p for p in (tmp_path / "out").rglob("*") if p.name.endswith(".dicomnet-part")]



def _store_one(tmp_path: Path, image: Dataset, sop_instance_uid: str) -> CStoreRSP:
    """Send ``image`` as is (pydicom's writer, no checks) in one C-STORE-RQ for
    ``sop_instance_uid``, to a StorageSCP storing under ``tmp_path / "out"``."""
    data = data_set_bytes(image, ExplicitVRLittleEndian)

    async def main() -> CStoreRSP:
        scp = StorageSCP(tmp_path / "out")
        try:
            async with running_server(providers=[VerificationSCP(), scp]) as server, associate(
                    LOOPBACK, server.port, contexts=[
                        ContextRequest(SECONDARY_CAPTURE, (str(ExplicitVRLittleEndian),))],
            ) as assoc:
                rsp, _ = await assoc.request_one(CStoreRQ(
                    message_id=1, affected_sop_class_uid=SECONDARY_CAPTURE,
                    affected_sop_instance_uid=sop_instance_uid,
                ), assoc.context_for(SECONDARY_CAPTURE).context_id, dataset=data)
        finally:
            scp.close()
        assert isinstance(rsp, CStoreRSP)
        return rsp

    return run(main())


def _stored(tmp_path: Path) -> list[str]:
    return [p.name for p in (tmp_path / "out").rglob("*")
            if p.is_file() and not p.name.startswith("index.sqlite")]


@pytest.mark.parametrize(("missing", "comment"), [
    (("StudyInstanceUID",), "cannot place the object: no Study Instance UID (0020,000D)"),
    (("SeriesInstanceUID",), "cannot place the object: no Series Instance UID (0020,000E)"),
    (("StudyInstanceUID", "SeriesInstanceUID"),
     "cannot place the object: no Study or Series Instance UID"),
], ids=["study", "series", "both"])
def test_a_data_set_without_the_uids_its_folders_need_is_told_which(
        tmp_path: Path, missing: tuple[str, ...], comment: str) -> None:
    """The Error Comment (LO: 64 characters) names the UID the hierarchical layout
    lacks. It said "...the hierarchical layout needs the study" whichever it was
    (its end cut off), so a sender missing only the series was told the study."""
    image = make_image(1)
    for keyword in missing:
        delattr(image, keyword)
    rsp = _store_one(tmp_path, image, make_image(1).SOPInstanceUID)
    assert (rsp.status, rsp.error_comment) == (0xC000, comment)
    assert len(comment) <= 64  # whole, not cut
    assert _stored(tmp_path) == []


@pytest.mark.parametrize(("keyword", "value", "comment"), [
    ("SOPInstanceUID", None, "no SOP Instance UID (0008,0018) in the data set"),
    ("SOPInstanceUID", "", "no SOP Instance UID (0008,0018) in the data set"),
    ("SOPClassUID", None, "no SOP Class UID (0008,0016) in the data set"),
], ids=["no-sop-instance-uid", "empty-sop-instance-uid", "no-sop-class-uid"])
def test_a_data_set_that_does_not_say_which_instance_it_is_is_not_stored(
        tmp_path: Path, keyword: str, value: str | None, comment: str) -> None:
    """PS3.4 B.2.3 C000H (cannot understand), as DCMTK's storescp answers: a data
    set without its SOP Instance or Class UID (SOP Common, type 1) is no object
    of the class the command names. It was stored under the command's UID and
    answered Success: the archive held a file that does not say what it is."""
    image = make_image(1)
    uid = image.SOPInstanceUID
    if value is None:
        delattr(image, keyword)
    else:
        setattr(image, keyword, value)
    rsp = _store_one(tmp_path, image, uid)
    assert (rsp.status, rsp.error_comment) == (0xC000, comment)
    assert _stored(tmp_path) == []
