"""Review 26: pynetdicom as a requestor with an asynchronous operations window
(PS3.7 D.3.3.3) into dicomnet's StorageSCP whose ``on_c_store`` is slow, over
TLS. pynetdicom's own ``send_c_store`` waits for each answer, so the requests
go out through its DIMSE provider (``assoc.dimse.send_msg``) and the answers
are taken as its public events report them: ``EVT_DIMSE_RECV`` for each
response decoded, ``EVT_ABORTED`` for an A-ABORT (its reactor, left running,
discards the responses no ``send_*`` waits for). Within the window: every
object answered Success, never more handlers at once than granted; beyond it:
pynetdicom is aborted, and the server's line says why."""

from __future__ import annotations

import asyncio
import io
import queue
import ssl
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from pydicom.uid import ExplicitVRLittleEndian

from dicomnet.services.storage import StorageSCP, StoredInstance
from tests.aio.helpers import LOOPBACK, Pki, PkiFactory, association_lines, run, running_server
from tests.storage.dicomfiles import SECONDARY_CAPTURE, store_payloads

pytestmark = pytest.mark.interop
SERVER_AE = "DICOMNET-SCP"


@pytest.fixture(scope="module")
def pki(pkis: PkiFactory) -> Pki:
    return pkis("ecdsa")


class Busy:
    """An ``on_c_store`` that sleeps, counting how many run at once."""

    def __init__(self) -> None:
        self.now = 0
        self.most = 0

    async def __call__(self, outcome: StoredInstance) -> None:
        self.now += 1
        self.most = max(self.most, self.now)
        await asyncio.sleep(0.02)
        self.now -= 1


def _pipeline(pynetdicom: ModuleType, pki: Pki, port: int, objects: list[tuple[str, bytes]],
              *, invoked: int, depth: int) -> dict[str, Any]:
    """pynetdicom proposes ``invoked`` and keeps up to ``depth`` C-STOREs
    outstanding: what it was granted, the (Message ID, status) answers in the
    order they came, and whether it was aborted."""
    from pynetdicom import evt
    from pynetdicom.dimse_primitives import C_STORE
    from pynetdicom.pdu_primitives import AsynchronousOperationsWindowNegotiation

    # What pynetdicom's events report, in order: (Message ID, status) for each
    # response decoded; a string once the association aborted or its connection
    # closed (nothing more will come).
    heard: queue.Queue[tuple[int, int] | str] = queue.Queue()

    def on_dimse(event: Any) -> None:
        command = event.message.command_set
        if "MessageIDBeingRespondedTo" in command:
            heard.put((int(command.MessageIDBeingRespondedTo), int(command.Status)))

    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(pki.ca_file))
    context.load_cert_chain(str(pki.client_cert), str(pki.client_key))
    ae = pynetdicom.AE(ae_title="PYNETDICOM-SCU")
    ae.add_requested_context(SECONDARY_CAPTURE, [ExplicitVRLittleEndian])
    window = AsynchronousOperationsWindowNegotiation()
    window.maximum_number_operations_invoked = invoked
    window.maximum_number_operations_performed = 1
    assoc = ae.associate(LOOPBACK, port, ae_title=SERVER_AE, ext_neg=[window],
                         tls_args=(context, LOOPBACK),
                         evt_handlers=[(evt.EVT_DIMSE_RECV, on_dimse),
                                       (evt.EVT_ABORTED, lambda event: heard.put("aborted")),
                                       (evt.EVT_CONN_CLOSE, lambda event: heard.put("closed"))])
    try:
        assert assoc.is_established, "pynetdicom could not associate"
        granted = [(item.maximum_number_operations_invoked,
                    item.maximum_number_operations_performed)
                   for item in assoc.acceptor.user_information
                   if isinstance(item, AsynchronousOperationsWindowNegotiation)]
        context_id = assoc.accepted_contexts[0].context_id
        answers: list[tuple[int, int]] = []
        sent = outstanding = 0
        while sent < len(objects) or outstanding:
            while sent < len(objects) and outstanding < depth:
                uid, data = objects[sent]
                rq = C_STORE()
                rq.MessageID = sent + 1
                rq.AffectedSOPClassUID = SECONDARY_CAPTURE
                rq.AffectedSOPInstanceUID = uid
                rq.Priority = 2
                rq.DataSet = io.BytesIO(data)
                # Its DIMSE provider (internal), because its public API keeps no
                # window (checked on pynetdicom 3.0.4, which says it "doesn't support
                # asynchronous operations"): send_c_store (send_c_echo alike) sends
                # one request and blocks on the association's one queue of answers.
                # From 8 threads at once, the first answered resumes pynetdicom's
                # reactor, which takes the answers the others wait for ("Received
                # unexpected C-STORE service message"): they time out and pynetdicom
                # aborts (all 60 stored, Success answered); from 16, nothing bounds
                # what is outstanding (the 9th breaks a window of 8).
                assoc.dimse.send_msg(rq, context_id)
                sent += 1
                outstanding += 1
            try:
                item = heard.get(timeout=30)
            except queue.Empty:
                raise AssertionError(f"no answer within 30 s; {len(answers)} so far") from None
            if isinstance(item, str):
                assoc.join(timeout=10)  # its reactor has seen the end: is_aborted is set
                break
            answers.append(item)
            outstanding -= 1
        return {"granted": granted, "answers": answers, "aborted": assoc.is_aborted}
    finally:
        if assoc.is_established:
            assoc.release()
        ae.shutdown()


def _scenario(tmp_path: Path, pynetdicom: ModuleType, pki: Pki, count: int, *, invoked: int,
              depth: int, caplog: pytest.LogCaptureFixture | None = None
              ) -> tuple[dict[str, Any], int, int]:
    objects = store_payloads(tmp_path / "in", count)
    busy = Busy()

    async def main() -> dict[str, Any]:
        scp = StorageSCP(tmp_path / "out", on_c_store=busy)
        try:
            async with running_server(ae_title=SERVER_AE, tls=pki.server_tls(),
                                      providers=[scp]) as server:
                result = await asyncio.to_thread(_pipeline, pynetdicom, pki, server.port,
                                                 objects, invoked=invoked, depth=depth)
                # The association's line, once it ended: logged after its count
                # drops (the server closes the connection in between: TLS's
                # close_notify), so wait for the line itself.
                for _ in range(200):
                    if server.active_associations == 0 and (
                            caplog is None or association_lines(caplog)):
                        break
                    await asyncio.sleep(0.05)
                return result
        finally:
            scp.close()

    result = run(main(), timeout=60)
    return result, busy.most, len(list((tmp_path / "out").rglob("*.dcm")))


@pytest.mark.parametrize(("invoked", "granted"), [(8, 8), (0, 32)])
def test_pynetdicom_within_its_window_is_answered_whole(
        tmp_path: Path, pynetdicom: ModuleType, pki: Pki, invoked: int, granted: int) -> None:
    """pynetdicom asks 8 (or unlimited, 0: the server grants 32) and keeps that
    many C-STOREs outstanding: 60 objects stored, each answered Success once
    (in whatever order: the window allows any), never more handlers at once
    than granted."""
    result, most, stored = _scenario(tmp_path, pynetdicom, pki, 60, invoked=invoked,
                                     depth=granted)
    assert result["granted"] == [(granted, 1)]  # it may invoke that many (D.3.3.3.2)
    assert sorted(result["answers"]) == [(n + 1, 0) for n in range(60)]
    assert not result["aborted"]
    assert most <= granted and stored == 60


def test_pynetdicom_beyond_its_window_is_aborted(
        tmp_path: Path, pynetdicom: ModuleType, pki: Pki,
        caplog: pytest.LogCaptureFixture) -> None:
    """pynetdicom asks for a window of 4, then keeps 12 C-STOREs outstanding:
    aborted (it hears an A-ABORT), the server's line naming the window; before,
    the requests were queued and all answered."""
    caplog.set_level("INFO", logger="dicomnet.aio")
    result, most, stored = _scenario(tmp_path, pynetdicom, pki, 24, invoked=4, depth=12,
                                     caplog=caplog)
    assert result["granted"] == [(4, 1)]
    assert result["aborted"]
    assert len(result["answers"]) < 24 and most <= 4 and stored < 24
    lines = association_lines(caplog)
    assert len(lines) == 1 and "PYNETDICOM-SCU" in lines[0]
    assert ("5 requests outstanding, more than the asynchronous operations window of 4 "
            "negotiated (PS3.7 D.3.3.3)") in lines[0]
