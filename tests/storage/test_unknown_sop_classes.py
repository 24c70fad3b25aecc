"""A storage SCP told to accept unknown SOP classes stores a private one, and still
refuses known SOP classes of other services and abstract syntaxes that are no UID.
The log's hint for a refused SOP Class fits what it is: accept_unknown_sop_classes
for an unknown one only; a Query/Retrieve one (findscu -P, movescu, getscu) was
told of that option too, which takes no known SOP Class."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian

from dicomnet.aio.client import open_association
from dicomnet.services.storage import INDEX_NAME, StorageSCP, StoreResult, store_paths
from dicomnet.services.verification import VERIFICATION_SOP_CLASS as VERIFICATION
from dicomnet.services.verification import VerificationSCP
from dicomnet.storage.index import StorageIndex
from dicomnet.ul.negotiation import ContextRequest
from tests.aio.helpers import run, running_server

from .dicomfiles import SECONDARY_CAPTURE, make_image, uid, write_part10

#: Under pydicom's test root: no standard SOP class.
PRIVATE = "1.2.826.0.1.3680043.8.498.999.1"
WORKLIST_FIND = "1.2.840.10008.5.1.4.31"  # known, but another service's
#: Query/Retrieve (PS3.4 C.6): what findscu -P, movescu and getscu propose.
STUDY_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
PATIENT_MOVE = "1.2.840.10008.5.1.4.1.2.1.2"
STUDY_GET = "1.2.840.10008.5.1.4.1.2.2.3"


def _send(root: Path, files: list[Path], *, unknown: bool) -> list[StoreResult]:
    async def scenario() -> list[StoreResult]:
        scp = StorageSCP(root, accept_unknown_sop_classes=unknown)
        try:
            async with running_server(providers=[VerificationSCP(), scp]) as server:
                return list(await store_paths("127.0.0.1", server.port, files))
        finally:
            scp.close()

    return run(scenario(), timeout=60)


@pytest.fixture
def private_file(tmp_path: Path) -> Path:
    return write_part10(tmp_path / "private.dcm", make_image(7, sop_class_uid=PRIVATE),
                        ExplicitVRLittleEndian)


def test_a_private_sop_class_is_stored_when_unknown_ones_are_accepted(
        tmp_path: Path, private_file: Path) -> None:
    root = tmp_path / "root"
    [result] = _send(root, [private_file], unknown=True)
    assert result.ok and result.status == 0
    stored = root / uid(1, 7) / uid(2, 7) / f"{uid(9, 7)}.dcm"
    assert stored.read_bytes()[-64:] == private_file.read_bytes()[-64:]
    with StorageIndex(root / INDEX_NAME) as index:
        row = index.get_instance(uid(9, 7))
        assert row is not None and row.sop_class_uid == PRIVATE


def test_a_private_sop_class_is_refused_by_default(tmp_path: Path, private_file: Path) -> None:
    [result] = _send(tmp_path / "root", [private_file], unknown=False)
    assert not result.ok and result.status is None
    assert result.error == (f"the peer accepted no context for {PRIVATE}: it does not take "
                            "that SOP Class (abstract syntax not supported)")


def test_other_services_and_malformed_uids_stay_refused(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """And the server's log says which contexts it refused and why (the operator
    heard nothing, while the peer said "no acceptable presentation context")."""
    proposed = [PRIVATE, WORKLIST_FIND, STUDY_FIND, PATIENT_MOVE, STUDY_GET, "1.2.abc",
                "1." + "2" * 70]

    async def scenario() -> dict[str, bool]:
        scp = StorageSCP(tmp_path / "root", accept_unknown_sop_classes=True)
        try:
            async with running_server(providers=[VerificationSCP(), scp]) as server:
                assoc = await open_association(
                    "127.0.0.1", server.port,
                    contexts=[ContextRequest(a, (ExplicitVRLittleEndian,)) for a in proposed])
                accepted = {c.abstract_syntax: True for c in assoc.contexts.values()}
                await assoc.release()
                return {a: accepted.get(a, False) for a in proposed}
        finally:
            scp.close()

    with caplog.at_level(logging.INFO, logger="dicomnet.aio"):
        accepted = run(scenario(), timeout=60)
    assert accepted == {PRIVATE: True, WORKLIST_FIND: False, STUDY_FIND: False,
                        PATIENT_MOVE: False, STUDY_GET: False, "1.2.abc": False,
                        "1." + "2" * 70: False}
    why = "no service here takes this SOP Class (a storage server takes unknown ones " \
          "with accept_unknown_sop_classes)"
    # A known SOP Class is never taken by accept_unknown_sop_classes: no hint of it.
    qr = "Query/Retrieve is not served by this version"
    [line] = [r.getMessage() for r in caplog.records if "refused presentation" in r.getMessage()]
    assert line.endswith(
        f"refused presentation context(s) for {WORKLIST_FIND} (no service here takes this SOP "
        "Class (Modality Worklist Information Model - FIND: not served here)); "
        f"{STUDY_FIND} (no service here takes this SOP Class (Study Root Query/Retrieve "
        f"Information Model - FIND: {qr})); "
        f"{PATIENT_MOVE} (no service here takes this SOP Class (Patient Root Query/Retrieve "
        f"Information Model - MOVE: {qr})); "
        f"{STUDY_GET} (no service here takes this SOP Class (Study Root Query/Retrieve "
        f"Information Model - GET: {qr})); "
        f"1.2.abc ({why}); {'1.' + '2' * 70} ({why})")


def test_a_dicomdir_is_no_object_to_store(tmp_path: Path) -> None:
    """Media Storage Directory Storage (a DICOMDIR, PS3.10 8.6) has "Storage" in its
    name but no study nor series: it was accepted, then refused with C000 and a
    comment cut at 64 characters; storescp refuses its context, as now we do."""
    for unknown in (False, True):
        scp = StorageSCP(tmp_path / f"root-{unknown}", accept_unknown_sop_classes=unknown)
        try:
            assert "1.2.840.10008.1.3.10" not in scp.contexts
            assert "1.2.840.10008.5.1.4.1.1.7" in scp.contexts  # Secondary Capture
        finally:
            scp.close()


def test_a_sop_class_taken_in_no_syntax_proposed_is_told_apart(tmp_path: Path) -> None:
    """The peer takes the SOP Class, in JPEG Baseline only (a file is converted to
    any uncompressed syntax, none to a compressed one): the failure says so
    rather than "the peer accepted no context", as when the class itself is
    refused."""
    from pydicom.uid import JPEGBaseline8Bit

    path = write_part10(tmp_path / "le.dcm", make_image(8), ExplicitVRLittleEndian)

    async def scenario() -> list[StoreResult]:
        scp = StorageSCP(tmp_path / "root", transfer_syntaxes=[JPEGBaseline8Bit])
        try:
            async with running_server(providers=[VerificationSCP(), scp]) as server:
                return list(await store_paths("127.0.0.1", server.port, [path]))
        finally:
            scp.close()

    [result] = run(scenario(), timeout=60)
    assert result.error == (f"the peer accepted no context for Secondary Capture Image "
                            f"Storage ({make_image(8).SOPClassUID}): "
                            "it takes that SOP Class in none of the transfer syntaxes proposed")


def test_a_context_refused_for_its_transfer_syntaxes_names_them(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The server's line for a context whose transfer syntaxes it takes none of
    names them ("MPEG2 Main Profile / Main Level (1.2.840.10008.1.2.4.100)"), an
    operator reading it then knows what the sender offered."""
    mpeg2, private = "1.2.840.10008.1.2.4.100", "1.2.826.0.1.3680043.8.498.1"

    async def scenario() -> dict[str, int]:
        scp = StorageSCP(tmp_path / "store", transfer_syntaxes=[ExplicitVRLittleEndian])
        try:
            async with running_server(providers=[VerificationSCP(), scp]) as server:
                assoc = await open_association(
                    "127.0.0.1", server.port,
                    contexts=[ContextRequest(VERIFICATION, (ExplicitVRLittleEndian,)),
                              ContextRequest(SECONDARY_CAPTURE, (mpeg2, private))])
                refused = dict(assoc.refused)
                await assoc.release()
                return refused
        finally:
            scp.close()

    with caplog.at_level(logging.INFO, logger="dicomnet.aio"):
        refused = run(scenario(), timeout=60)
    assert refused == {SECONDARY_CAPTURE: 4}  # transfer syntaxes not supported (PS3.8 9.3.3.2)
    [line] = [r.getMessage() for r in caplog.records if "refused presentation" in r.getMessage()]
    assert line.endswith(
        f"refused presentation context(s) for {SECONDARY_CAPTURE} (none of its transfer "
        f"syntaxes is taken here: MPEG2 Main Profile / Main Level ({mpeg2}), {private})")
