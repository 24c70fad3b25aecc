"""pynetdicom, made to send its C-ECHO-RQ on the storage presentation context it
negotiated (its ``send_c_echo`` with the context lookup replaced), gets 0122H,
Refused: SOP Class not supported (PS3.7 9.1.5.1.4), from a dicomnet server; on
the Verification context, Success (see tests/aio/test_echo_contexts.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import ModuleType

import pytest
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from dicomnet.services.storage import StorageSCP
from dicomnet.services.verification import VerificationSCP
from tests.aio.helpers import LOOPBACK, run, running_server
from tests.storage.dicomfiles import SECONDARY_CAPTURE

pytestmark = pytest.mark.interop

VERIFICATION = "1.2.840.10008.1.1"
SERVER_AE = "DICOMNET-SCP"


def echo_on_each_context(pynetdicom: ModuleType, port: int) -> dict[str, int]:
    """pynetdicom's own ``send_c_echo`` (Verification) on each accepted context, its
    context lookup pointed at that one: abstract syntax -> the status answered."""
    ae = pynetdicom.AE(ae_title="PYNETDICOM-SCU")
    ae.add_requested_context(SECONDARY_CAPTURE, [ExplicitVRLittleEndian])
    ae.add_requested_context(VERIFICATION, [ImplicitVRLittleEndian])
    ae.dimse_timeout = 20
    assoc = ae.associate(LOOPBACK, port, ae_title=SERVER_AE)
    try:
        assert assoc.is_established, "pynetdicom could not associate"
        statuses = {}
        for message_id, context in enumerate(assoc.accepted_contexts, 1):
            assoc._get_valid_context = lambda *args, chosen=context: chosen
            response = assoc.send_c_echo(msg_id=message_id)
            statuses[str(context.abstract_syntax)] = int(response.Status)
        return statuses
    finally:
        if assoc.is_established:
            assoc.release()
        ae.shutdown()


def test_pynetdicom_echo_on_a_storage_context_is_refused(
        tmp_path: Path, pynetdicom: ModuleType) -> None:
    async def scenario() -> dict[str, int]:
        scp = StorageSCP(tmp_path / "out")
        async with running_server(ae_title=SERVER_AE,
                                  providers=[VerificationSCP(), scp]) as server:
            return await asyncio.to_thread(echo_on_each_context, pynetdicom, server.port)

    assert run(scenario()) == {SECONDARY_CAPTURE: 0x0122, VERIFICATION: 0x0000}
