"""`dicomnet store`, as users run it, against a pynetdicom storage SCP over TLS that
releases the association itself (A-RELEASE-RQ from the acceptor, which PS3.8 7.2.2
allows either side) once it has received the third object, before answering it.

Having asked for the release, the peer sends no more P-DATA (PS3.8 7.2.2): the
third object can never be answered, and no more may be sent once we answer the
release. Each is said so, naming the peer's release, and may be sent again; the
two answered before stand. The report had said "association aborted - the
connection closed", as if the link had dropped, and a peer that asked for the
release but kept its connection open held each request for the whole DIMSE
timeout.
"""

from __future__ import annotations

import io
import json
import ssl
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

from tests.aio.helpers import LOOPBACK, Pki, PkiFactory
from tests.storage.dicomfiles import assert_same_dataset, make_image, write_part10

pytestmark = pytest.mark.interop

#: The object (by arrival) on whose C-STORE-RQ the peer releases the association.
RELEASE_ON = 3


class ReleasingSCP:
    """What the pynetdicom SCP received (encoded data sets, in order) and how its
    own release ended."""

    def __init__(self) -> None:
        self.port = 0
        self.received: list[bytes] = []
        self.released: list[bool] = []
        self.lock = threading.Lock()


@pytest.fixture
def releasing_scp(pynetdicom: ModuleType, pkis: PkiFactory
                  ) -> Iterator[tuple[ReleasingSCP, Pki]]:
    pki = pkis("rsa")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki.ca_file))
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_cert_chain(str(pki.server_cert), str(pki.server_key))
    ae = pynetdicom.AE(ae_title="PYNETDICOM-SCP")
    ae.acse_timeout = 10
    ae.add_supported_context("1.2.840.10008.5.1.4.1.1.7", [ExplicitVRLittleEndian])
    scp = ReleasingSCP()

    def on_store(event: Any) -> int:
        with scp.lock:
            scp.received.append(bytes(event.encoded_dataset()))
            count = len(scp.received)
        if count == RELEASE_ON:
            # Release from another thread (this one is the association's reactor,
            # which must read the A-RELEASE-RP), and answer nothing before it ends.
            assoc = event.assoc
            releasing = threading.Thread(target=assoc.release)
            releasing.start()
            releasing.join(20)
            scp.released.append(bool(assoc.is_released))
        return 0x0000

    server = ae.start_server((LOOPBACK, 0), block=False, ssl_context=context,
                             evt_handlers=[(pynetdicom.evt.EVT_C_STORE, on_store)])
    scp.port = server.server_address[1]
    try:
        yield scp, pki
    finally:
        server.shutdown()
        ae.shutdown()


def test_a_peer_releasing_before_its_answer_is_reported_as_such(
        tmp_path: Path, releasing_scp: tuple[ReleasingSCP, Pki]) -> None:
    scp, pki = releasing_scp
    sources = [write_part10(tmp_path / "in" / f"{n}.dcm", make_image(n, rows=64, columns=80),
                            ExplicitVRLittleEndian) for n in range(1, 6)]
    done = subprocess.run(
        [sys.executable, "-m", "dicomnet.cli.main", "store", LOOPBACK, str(scp.port),
         str(tmp_path / "in"), "--called-aet", "PYNETDICOM-SCP", "--tls", "--ca",
         str(pki.ca_file), "--cert", str(pki.client_cert), "--key", str(pki.client_key),
         "--json"], capture_output=True, text=True, timeout=90, check=False)
    assert done.returncode == 1, done.stdout + done.stderr  # two stored, three not
    doc = json.loads(done.stdout)
    assert (doc["total"], doc["stored"], doc["failed"], doc["error"]) == (5, 2, 3, None)
    released = "association ended by the peer - the peer released the association (A-RELEASE-RQ)"
    got = [(Path(r["path"]).stem, r["sent"], r["status"], r["status_text"], r["error"],
            r["retryable"]) for r in doc["results"]]
    assert got == [
        ("1", True, 0, "0x0000 Success", None, False),
        ("2", True, 0, "0x0000 Success", None, False),
        ("3", True, None, "no answer", released, True),
        ("4", False, None, "not sent", f"not sent: {released}", True),
        ("5", False, None, "not sent", f"not sent: {released}", True),
    ]
    assert scp.released == [True]  # our A-RELEASE-RP came
    assert len(scp.received) == RELEASE_ON
    for source, encoded in zip(sources, scp.received, strict=False):
        assert_same_dataset(source, dcmread(io.BytesIO(encoded), force=True))
