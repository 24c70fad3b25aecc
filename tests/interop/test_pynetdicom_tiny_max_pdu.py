"""pynetdicom configured with a maximum PDU length of 6 bytes (``maximum_pdu_size``,
which it takes as it is), both ways, plain DICOM.

A P-DATA-TF PDU of at most 6 bytes holds a PDV's length, context ID and header
and no data (PS3.8 9.3.5.1): nothing can be sent to such a peer. Its A-ASSOCIATE-AC
(or -RQ) carries an invalid PDU parameter value: dicomnet aborts the association
there (PS3.8 Table 9-26, reason 6) and says why. Before, the client failed at its
first message with "maximum PDU length 6 leaves no room for data", exit 2 (a usage
error: the user's settings were fine), and the server stored the peer's object,
then aborted the association instead of answering it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.uid import ExplicitVRLittleEndian

from tests.aio.helpers import LOOPBACK
from tests.interop.conftest import dicomnet_serve_plain
from tests.storage.dicomfiles import SECONDARY_CAPTURE, make_image, write_part10

pytestmark = pytest.mark.interop

TINY = 6


@pytest.fixture
def tiny_scp(pynetdicom: ModuleType) -> Iterator[tuple[int, list[str]]]:
    """A pynetdicom storage SCP announcing a maximum PDU length of 6: its port, and
    the SOP Instance UIDs it received."""
    ae = pynetdicom.AE(ae_title="PYNETDICOM-SCP")
    ae.maximum_pdu_size = TINY
    ae.add_supported_context(SECONDARY_CAPTURE, [ExplicitVRLittleEndian])
    ae.add_supported_context("1.2.840.10008.1.1")
    received: list[str] = []
    lock = threading.Lock()

    def on_store(event: Any) -> int:
        with lock:
            received.append(str(event.request.AffectedSOPInstanceUID))
        return 0x0000

    server = ae.start_server((LOOPBACK, 0), block=False,
                             evt_handlers=[(pynetdicom.evt.EVT_C_STORE, on_store)])
    try:
        yield server.server_address[1], received
    finally:
        server.shutdown()
        ae.shutdown()


REASON = "A-ASSOCIATE-AC: Maximum Length 6 leaves no room for PDV data (PS3.8 D.1.1, 9.3.5)"


@pytest.mark.parametrize("command", ["store", "echo"])
def test_dicomnet_aborts_an_acceptor_announcing_a_6_byte_maximum_pdu(
        tmp_path: Path, tiny_scp: tuple[int, list[str]], command: str) -> None:
    port, received = tiny_scp
    source = write_part10(tmp_path / "1.dcm", make_image(1, rows=16, columns=16),
                          ExplicitVRLittleEndian)
    done = subprocess.run(
        [sys.executable, "-m", "dicomnet.cli.main", command, LOOPBACK, str(port),
         *([str(source)] if command == "store" else []), "--called-aet", "PYNETDICOM-SCP",
         "--json"], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 3, done.stdout + done.stderr  # the association failed
    doc = json.loads(done.stdout)
    assert REASON in doc["error"], doc["error"]
    if command == "store":
        assert [(r["status_text"], r["sent"]) for r in doc["results"]] == [("not sent", False)]
    assert received == []


def test_dicomnet_serve_refuses_a_requestor_announcing_a_6_byte_maximum_pdu(
        pynetdicom: ModuleType, tmp_path: Path) -> None:
    source = write_part10(tmp_path / "1.dcm", make_image(1, rows=16, columns=16),
                          ExplicitVRLittleEndian)
    store = tmp_path / "store"
    with dicomnet_serve_plain(store) as (port, events, stderr):
        ae = pynetdicom.AE(ae_title="TINY-SCU")
        ae.add_requested_context(SECONDARY_CAPTURE, ExplicitVRLittleEndian)
        assoc = ae.associate(LOOPBACK, port, max_pdu=TINY)
        established, aborted = assoc.is_established, assoc.is_aborted
        if established:  # only without the fix: send, to show what the server did
            assoc.send_c_store(dcmread(source))
            assoc.release()
        ae.shutdown()
    assert (established, aborted) == (False, True)
    refused = [e for e in events if e["event"] == "connection_refused"]
    assert [(e["stage"], e["calling_aet"]) for e in refused] == [("protocol", "TINY-SCU")]
    reason = ("A-ASSOCIATE-RQ: Maximum Length 6 leaves no room for PDV data "
              "(PS3.8 D.1.1, 9.3.5); A-ABORT sent")
    assert refused[0]["reason"] == reason
    assert f"connection refused: {refused[0]['peer']}: {reason}" in "".join(stderr)
    assert not list(store.rglob("*.dcm"))
