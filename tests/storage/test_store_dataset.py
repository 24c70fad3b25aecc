"""C-STORE of a data set held in memory (``ClientAssociation.store``, and the
blocking facade's): encoded in a syntax the peer accepted, its own when it is
compressed, and stored equal element by element to what was in memory."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless

from dicomnet import blocking
from dicomnet.aio.client import open_association
from dicomnet.dimse.status import Status
from dicomnet.errors import ConfigurationError, NoAcceptedContext
from dicomnet.security.certificates import make_dev_pki
from dicomnet.security.config import dev_pki_configs
from dicomnet.services.storage import StorageSCP
from dicomnet.services.verification import VerificationSCP
from dicomnet.ul.negotiation import ContextRequest
from tests.aio.helpers import run, running_server
from tests.aio.test_blocking import server_thread

from .dicomfiles import (
    CT_IMAGE_STORAGE,
    SECONDARY_CAPTURE,
    assert_same_dataset,
    make_image,
    uid,
    write_part10,
)


def _stored(root: Path, number: int) -> Path:
    return root / uid(1, number) / uid(2, number) / f"{uid(9, number)}.dcm"


def store_in_memory(root: Path, syntaxes: tuple[str, ...], datasets: list[Dataset]
                    ) -> list[Status]:
    """``assoc.store`` of each data set to a StorageSCP under ``root``, on one
    association proposing ``syntaxes`` for Secondary Capture."""
    async def scenario() -> list[Status]:
        scp = StorageSCP(root)
        try:
            async with running_server(providers=[VerificationSCP(), scp]) as server:
                assoc = await open_association(
                    "127.0.0.1", server.port,
                    contexts=[ContextRequest(SECONDARY_CAPTURE, (s,)) for s in syntaxes])
                try:
                    return [await assoc.store(ds) for ds in datasets]
                finally:
                    await assoc.release()
        finally:
            scp.close()

    return run(scenario(), timeout=60)


def test_a_data_set_made_in_memory_is_stored_as_it_was(tmp_path: Path) -> None:
    made = [make_image(n) for n in range(2)]  # no File Meta Information at all
    statuses = store_in_memory(tmp_path / "root",
                               (ImplicitVRLittleEndian, ExplicitVRLittleEndian), made)
    assert [int(s) for s in statuses] == [0, 0]
    for n, ds in enumerate(made):
        stored = _stored(tmp_path / "root", n)
        # Little Endian first, Explicit VR before Implicit: both were accepted.
        assert dcmread(stored).file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
        assert_same_dataset(ds, stored)


def test_a_compressed_data_set_goes_in_its_own_syntax_or_not_at_all(tmp_path: Path) -> None:
    rle = dcmread(write_part10(tmp_path / "rle.dcm", make_image(5), RLELossless))
    [status] = store_in_memory(tmp_path / "root", (ExplicitVRLittleEndian, RLELossless), [rle])
    assert int(status) == 0
    stored = dcmread(_stored(tmp_path / "root", 5))
    assert stored.file_meta.TransferSyntaxUID == RLELossless
    assert stored.PixelData == rle.PixelData  # the fragments as they were
    with pytest.raises(NoAcceptedContext) as refused:
        store_in_memory(tmp_path / "other", (ExplicitVRLittleEndian,), [rle])
    # Both UIDs named, as an operator reads them.
    assert str(refused.value) == (
        "the peer accepted no presentation context for Secondary Capture Image Storage "
        f"({rle.SOPClassUID}) in RLE Lossless ({RLELossless}), the data set's compressed "
        "syntax (it is not converted)")


def test_a_data_set_without_its_uids_is_a_configuration_error(tmp_path: Path) -> None:
    ds = make_image(1)
    del ds.SOPInstanceUID
    with pytest.raises(ConfigurationError, match=r"no SOP Class UID \(0008,0016\) or SOP "):
        store_in_memory(tmp_path / "root", (ExplicitVRLittleEndian,), [ds])


def test_the_blocking_facade_stores_a_data_set(tmp_path: Path) -> None:
    server_cfg, client_cfg = dev_pki_configs(make_dev_pki(tmp_path / "pki"))
    scp = StorageSCP(tmp_path / "store")
    ds = make_image(3)
    try:
        with server_thread(server_cfg, [VerificationSCP(), scp]) as server, blocking.associate(
                "localhost", server.port, tls=client_cfg, called_ae_title="DICOMNET",
                contexts=[ContextRequest(SECONDARY_CAPTURE, (ExplicitVRLittleEndian,))],
        ) as assoc:
            assert int(assoc.store(ds)) == 0
    finally:
        scp.close()
    assert_same_dataset(ds, _stored(tmp_path / "store", 3))


def test_a_sop_class_never_proposed_says_how_to_propose_it(tmp_path: Path) -> None:
    # The usual slip of a script: an association opened for Secondary Capture (or
    # with the default contexts, Verification alone) asked to store a CT. The
    # error names the SOP Class and says what to pass, not only that the peer
    # "accepted" nothing: the peer was never asked.
    ct = make_image(4)
    ct.SOPClassUID = CT_IMAGE_STORAGE
    with pytest.raises(NoAcceptedContext, match=(
            rf"no presentation context was proposed for CT Image Storage \({CT_IMAGE_STORAGE}\) "
            r"on this association: open it with contexts=\[ContextRequest\(")):
        store_in_memory(tmp_path / "root", (ExplicitVRLittleEndian,), [ct])


def test_a_sop_class_the_peer_refused_says_why(tmp_path: Path) -> None:
    # Proposed, and refused by the peer (a SOP Class it does not store): its
    # reason of PS3.8 Table 9-18, as store_paths gives it for a file.
    private = make_image(6)
    private.SOPClassUID = "1.2.826.0.1.3680043.8.498.99.1"

    async def scenario() -> None:
        scp = StorageSCP(tmp_path / "root")
        try:
            async with running_server(providers=[VerificationSCP(), scp]) as server:
                assoc = await open_association(
                    "127.0.0.1", server.port,
                    contexts=[ContextRequest(private.SOPClassUID, (ExplicitVRLittleEndian,))])
                try:
                    await assoc.store(private)
                finally:
                    await assoc.release()
        finally:
            scp.close()

    with pytest.raises(NoAcceptedContext, match=(
            r"the peer accepted no presentation context for 1\.2\.826\.0\.1\.3680043\.8\.498"
            r"\.99\.1: it does not take that SOP Class \(abstract syntax not supported\)")):
        run(scenario(), timeout=60)
