"""A handler that never returns costs its association at the operation timeout
(``Timeouts.operation``): the operator hears of it at WARNING, naming the
handler, what it was performing (the SOP Instance, for a C-STORE) and the
timeout. It was said at INFO only ("aborting: ..."), below the default level,
so a hung handler's aborts were silent."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian

from dicomnet.aio.server_association import ServerAssociation
from dicomnet.config import Timeouts
from dicomnet.dimse.messages import CEchoRQ, encode_message
from dicomnet.services.storage import StorageSCP, StoredInstance
from dicomnet.services.verification import VerificationSCP
from dicomnet.storage.part10 import read_part10
from dicomnet.ul.negotiation import ContextRequest
from dicomnet.ul.pdu import AAbort, encode_pdata
from tests.aio.helpers import read_until_eof, run, running_server
from tests.storage.dicomfiles import SECONDARY_CAPTURE, make_image, write_part10
from tests.storage.rawscu import RawAssociation, store_command

VERIFICATION = "1.2.840.10008.1.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
A_ABORT = AAbort(source=0, reason=0).encode()


async def hung_async_store(instance: StoredInstance) -> int:
    await asyncio.Event().wait()  # cancelled by the abort
    return 0


RELEASE = threading.Event()


def hung_plain_store(instance: StoredInstance) -> int:
    RELEASE.wait(30)  # a worker thread cannot be stopped: let go at the test's end
    return 0


async def hung_echo(assoc: ServerAssociation) -> int:
    await asyncio.Event().wait()
    return 0


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The WARNING lines about the operation timeout (a plain handler still running
    when the server closes has one of its own)."""
    return [r.getMessage() for r in caplog.records
            if r.levelno >= logging.WARNING and r.name == "dicomnet.aio"
            and "operation timeout" in r.getMessage()]


@pytest.mark.parametrize("handler", [hung_async_store, hung_plain_store])
def test_a_hung_store_handler_is_said_at_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, handler: object) -> None:
    source = write_part10(tmp_path / "in.dcm", make_image(1), ExplicitVRLittleEndian)
    info = read_part10(source)
    data = source.read_bytes()[info.dataset_offset:]
    scp = StorageSCP(tmp_path / "out", on_c_store=handler)  # type: ignore[arg-type]

    async def main() -> bytes:
        async with running_server(providers=[scp], timeouts=Timeouts(operation=0.5)) as server:
            assoc = await RawAssociation.open(
                server.port, [ContextRequest(SECONDARY_CAPTURE, (ExplicitVRLittleEndian,))])
            try:
                await assoc.send_store(assoc.context_id(SECONDARY_CAPTURE), store_command(
                    info.sop_class_uid.encode(), info.sop_instance_uid.encode()), data)
                return await read_until_eof(assoc.reader, 15.0)
            finally:
                RELEASE.set()
                await assoc.close()

    RELEASE.clear()
    try:
        with caplog.at_level(logging.WARNING):
            assert run(main()) == A_ABORT
    finally:
        RELEASE.set()
        scp.close()
    name = handler.__qualname__  # type: ignore[attr-defined]
    [said] = _warnings(caplog)
    assert said.startswith("127.0.0.1:"), said
    assert said.endswith(
        f": the on_c_store handler {name!r} has not returned within the operation timeout "
        f"(0.5s) for the C-STORE-RQ of SOP Instance {info.sop_instance_uid}: association "
        "aborted"), said


def test_a_hung_echo_handler_is_said_at_warning(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> bytes:
        async with running_server(providers=[VerificationSCP(on_c_echo=hung_echo)],
                                  timeouts=Timeouts(operation=0.5)) as server:
            assoc = await RawAssociation.open(
                server.port, [ContextRequest(VERIFICATION, (IMPLICIT_LE,))])
            try:
                await assoc.send(encode_pdata(1, True, True, encode_message(
                    CEchoRQ(message_id=1, affected_sop_class_uid=VERIFICATION))))
                return await read_until_eof(assoc.reader, 15.0)
            finally:
                await assoc.close()

    with caplog.at_level(logging.WARNING):
        assert run(main()) == A_ABORT
    [said] = _warnings(caplog)
    assert said.endswith(": the on_c_echo handler 'hung_echo' has not returned within the "
                         "operation timeout (0.5s) for the C-ECHO-RQ: association aborted"), said
