"""An A-RELEASE-RQ that comes while a C-STORE's data set is half received, sent
byte for byte to DCMTK's storescp and to a dicomnet StorageSCP: both answer
A-RELEASE-RP (PS3.8 7.2.2: the acceptor always accepts a release) and neither
stores anything of the unfinished object (storescp, in memory or with +B writing
as it receives, logs 'Store SCP Failed: ... DUL Peer Requested Release', then
'Association Release'). tests/storage/test_incomplete_datasets.py checks
dicomnet's side in more ways (spilled, a FIN at once, the index, its log)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian

from dicomnet.services.storage import INDEX_NAME, StorageSCP
from dicomnet.services.verification import VerificationSCP
from dicomnet.storage.part10 import read_part10
from dicomnet.ul.negotiation import ContextRequest
from dicomnet.ul.pdu import ReleaseRP, ReleaseRQ, encode_pdata
from tests.aio.helpers import (
    background_process,
    free_port,
    run,
    running_server,
    wait_output,
)
from tests.interop.conftest import Dcmtk
from tests.storage.dicomfiles import SECONDARY_CAPTURE, make_image, write_part10
from tests.storage.rawscu import RawAssociation, store_command

pytestmark = pytest.mark.interop

CONTEXTS = [ContextRequest(SECONDARY_CAPTURE, (ExplicitVRLittleEndian,))]


async def release_mid_data_set(port: int, uid: str, data: bytes) -> bytes:
    """The C-STORE-RQ command, half its data set in data PDVs none marked last,
    an A-RELEASE-RQ; what the SCP answers (then we close, as PS3.8 9.1.4 has the
    requestor do)."""
    raw = await RawAssociation.open(port, CONTEXTS, called_ae_title="ANY-SCP")
    try:
        ctx = raw.context_id(SECONDARY_CAPTURE)
        size = raw.fragment_size  # within storescp's 16 KiB PDUs too
        half = data[:len(data) // 2 & ~1]  # even: an odd fragment is refused
        command = store_command(SECONDARY_CAPTURE.encode(), uid.encode())
        await raw.send(encode_pdata(ctx, True, True, command), *(
            encode_pdata(ctx, False, False, half[start:start + size])
            for start in range(0, len(half), size)))
        await raw.send(ReleaseRQ().encode())
        return await asyncio.wait_for(raw.reader.readexactly(10), 20)
    finally:
        await raw.close()


@pytest.mark.parametrize("peer", ["storescp", "storescp +B", "dicomnet"])
def test_a_release_mid_data_set_is_answered_and_nothing_is_stored(
        dcmtk: Dcmtk, tmp_path: Path, peer: str) -> None:
    ds = make_image(1, rows=256, columns=256)
    path = write_part10(tmp_path / "in.dcm", ds, ExplicitVRLittleEndian)
    data = path.read_bytes()[read_part10(path).dataset_offset:]
    out = tmp_path / "out"
    out.mkdir()
    if peer == "dicomnet":
        async def scenario() -> bytes:
            scp = StorageSCP(out)
            try:
                async with running_server(providers=[VerificationSCP(), scp]) as server:
                    return await release_mid_data_set(server.port, str(ds.SOPInstanceUID), data)
            finally:
                scp.close()

        answer = run(scenario())
        left = {p.name for p in out.rglob("*")} - {INDEX_NAME, INDEX_NAME + "-wal",
                                                   INDEX_NAME + "-shm"}
    else:
        port = free_port()
        with background_process(dcmtk.storescp, "-v", *peer.split()[1:], "-od", out, str(port),
                                log_path=tmp_path / "storescp.log", port=port) as storescp:
            answer = run(release_mid_data_set(port, str(ds.SOPInstanceUID), data))
            output = wait_output(storescp, "Association Release")
        assert "Store SCP Failed" in output and "Peer Requested Release" in output, output
        left = {p.name for p in out.rglob("*")}
    assert answer == ReleaseRP().encode()
    assert left == set()
