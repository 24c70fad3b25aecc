"""pynetdicom 3.0.4's own race that loses a C-STORE-RSP, any peer's (session 29).

pynetdicom's requestor runs a reactor thread beside the thread calling
``send_c_store``; ``send_c_store`` pauses it with a checkpoint Event and a
``_is_paused`` flag that is still True while the reactor, woken by the previous
operation's ``set()``, has not run yet. The reactor then makes one
``get_msg(block=False)``: should the answer be queued by then, it takes it and
drops it ("Received unexpected C-STORE service message") and ``send_c_store``
waits its DIMSE timeout. docs/security.md has the analysis and the figures.

The ``pynetdicom`` fixture (conftest.py) installs a guard that leaves the
queue to the waiting operation. This test forces the losing interleaving on
every store and checks that each C-STORE is still answered by our server (the
second one is lost without the guard).
"""

from __future__ import annotations

import ssl
import threading
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from tests.aio.helpers import LOOPBACK, Pki, PkiFactory
from tests.interop.conftest import dicomnet_serve
from tests.interop.pynetdicom_race import RACES
from tests.storage.dicomfiles import SECONDARY_CAPTURE, make_image

pytestmark = pytest.mark.interop
STORES = 40
LATE = 0.02


@pytest.fixture(scope="module")
def pki(pkis: PkiFactory) -> Pki:
    return pkis("ecdsa")


def _late_reactor(pynetdicom: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    """Force the losing interleaving on every store, as a busy machine does now and
    then: the reactor thread, once past its checkpoint (``_is_paused`` still True),
    is held until a store has started and its answer is queued; the thread calling
    ``send_c_store`` is held after sending until that answer is queued, then
    ``LATE`` more, so the reactor reaches the queue first."""
    association = pynetdicom.association.Association
    dimse = pynetdicom.dimse.DIMSEServiceProvider
    original_init, original_send = association.__init__, dimse.send_msg

    def queued(assoc: Any) -> bool:
        deadline = time.monotonic() + 1
        while not assoc.dimse.msg_queue.qsize() and time.monotonic() < deadline:
            time.sleep(0.0005)
        return bool(assoc.dimse.msg_queue.qsize())

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        event = self._reactor_checkpoint
        plain_wait = event.wait

        def wait(timeout: float | None = None) -> bool:
            passed = bool(plain_wait(timeout))
            if threading.current_thread() is self:  # the reactor, not send_c_store
                deadline = time.monotonic() + 0.05
                while event.is_set() and time.monotonic() < deadline:
                    time.sleep(0.0005)  # a store is about to start: wait for it
                if not event.is_set():
                    queued(self)
            return passed

        event.wait = wait

    def send_msg(self: Any, primitive: Any, context_id: int) -> None:
        original_send(self, primitive, context_id)
        if queued(self.assoc):
            time.sleep(LATE)

    monkeypatch.setattr(association, "__init__", init)
    monkeypatch.setattr(dimse, "send_msg", send_msg)


def test_a_response_the_reactor_takes_still_reaches_send_c_store(
        pki: Pki, pynetdicom: ModuleType, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    _late_reactor(pynetdicom, monkeypatch)
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(pki.ca_file))
    context.load_cert_chain(str(pki.client_cert), str(pki.client_key))
    ae = pynetdicom.AE(ae_title="PYN")
    ae.acse_timeout = ae.network_timeout = 15
    ae.dimse_timeout = 2  # a lost answer fails the test in 2 s, not 30
    ae.add_requested_context(SECONDARY_CAPTURE, ExplicitVRLittleEndian)
    races_before = RACES.count
    statuses: list[int | None] = []
    with dicomnet_serve(pki, tmp_path / "store", "--no-fsync") as (port, stderr):
        assoc = ae.associate(LOOPBACK, port, ae_title="DICOMNET",
                             tls_args=(context, LOOPBACK))
        assert assoc.is_established
        try:
            for n in range(STORES):
                ds = make_image(2900 + n, rows=8, columns=8)
                ds.file_meta = FileMetaDataset()
                ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
                answer: Dataset = assoc.send_c_store(ds)
                statuses.append(answer.get("Status"))
                if not assoc.is_established:  # pynetdicom aborts after a DIMSE timeout
                    break
        finally:
            if assoc.is_established:
                assoc.release()
    assert statuses == [0x0000] * STORES, (statuses, stderr)
    # The race did happen (the late reactor reached the queue while a store waited).
    assert RACES.count > races_before
