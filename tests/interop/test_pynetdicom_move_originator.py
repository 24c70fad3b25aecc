"""A C-STORE sent as a C-MOVE's sub-operation names the C-MOVE behind it (Move
Originator AE Title and Message ID, PS3.7 9.3.1.1): pynetdicom sends them as a
Q/R SCP does; the handler and ``serve --json`` were told nothing of them, so a
node could not tell which retrieve an object answered."""

from __future__ import annotations

import asyncio
import json
import ssl
from pathlib import Path
from types import ModuleType

import pytest
from pydicom.uid import ExplicitVRLittleEndian

from dicomnet.cli.serve import _stored_event
from dicomnet.services.storage import StorageSCP, StoredInstance
from tests.aio.helpers import LOOPBACK, Pki, PkiFactory, run, running_server
from tests.storage.dicomfiles import SECONDARY_CAPTURE, make_image, write_part10

pytestmark = pytest.mark.interop
SERVER_AE = "DICOMNET-SCP"


@pytest.fixture(scope="module")
def pki(pkis: PkiFactory) -> Pki:
    return pkis("ecdsa")


def test_move_originator_reaches_the_handler(tmp_path: Path, pynetdicom: ModuleType,
                                             pki: Pki) -> None:
    moved = write_part10(tmp_path / "moved.dcm", make_image(701), ExplicitVRLittleEndian)
    sent = write_part10(tmp_path / "sent.dcm", make_image(702), ExplicitVRLittleEndian)

    def send(port: int) -> list[int]:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(pki.ca_file))
        context.load_cert_chain(str(pki.client_cert), str(pki.client_key))
        ae = pynetdicom.AE(ae_title="QR-SCP")
        ae.add_requested_context(SECONDARY_CAPTURE, [ExplicitVRLittleEndian])
        assoc = ae.associate(LOOPBACK, port, ae_title=SERVER_AE, tls_args=(context, LOOPBACK))
        try:
            assert assoc.is_established
            first = assoc.send_c_store(moved, originator_aet="VIEWER-7", originator_id=42)
            second = assoc.send_c_store(sent)
            return [int(first.Status), int(second.Status)]
        finally:
            if assoc.is_established:
                assoc.release()
            ae.shutdown()

    told: dict[str, tuple[str, int] | None] = {}

    def on_stored(instance: StoredInstance) -> None:
        told[instance.path.name] = instance.move_originator

    async def scenario() -> list[int]:
        scp = StorageSCP(tmp_path / "root", on_stored=on_stored)
        try:
            async with running_server(ae_title=SERVER_AE, tls=pki.server_tls(),
                                      providers=[scp]) as server:
                return await asyncio.to_thread(send, server.port)
        finally:
            scp.close()

    assert run(scenario(), timeout=60) == [0, 0]
    by_uid = {name.removesuffix(".dcm"): value for name, value in told.items()}
    assert by_uid == {make_image(701).SOPInstanceUID: ("VIEWER-7", 42),
                      make_image(702).SOPInstanceUID: None}


def test_serve_json_names_the_move_originator(capsys: pytest.CaptureFixture[str]) -> None:
    for originator in (("VIEWER-7", 42), None):
        _stored_event(StoredInstance(
            Path("/s/x.dcm"), SECONDARY_CAPTURE, "1.2.3", ExplicitVRLittleEndian, "QR-SCP",
            None, False, called_ae_title="ARCHIVE", peer=("127.0.0.1", 4000),
            move_originator=originator))
    first, second = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert first["move_originator"] == {"aet": "VIEWER-7", "message_id": 42}
    assert second["move_originator"] is None
