"""A peer cutting a message into a flood of empty PDVs is aborted (dimse.connection
FREE_FRAGMENTS): each PDV costs the server the same few microseconds whatever it
holds, so 20 MB of empty ones kept its event loop busy for 14 s (a review by use
with raw sockets). Nothing is stored, and the server goes on serving others."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian

from dicomnet.services.storage import StorageSCP
from dicomnet.services.verification import VerificationSCP
from dicomnet.ul.negotiation import ContextRequest
from dicomnet.ul.pdu import AAbort, decode_pdu, encode_pdata
from tests.aio.helpers import run, running_server
from tests.storage.dicomfiles import SECONDARY_CAPTURE, uid
from tests.storage.rawscu import RawAssociation, read_pdu, store_command

STORE_CONTEXT = [ContextRequest(SECONDARY_CAPTURE, (ExplicitVRLittleEndian,))]


def empty_pdvs(context_id: int, count: int, *, command: bool = False) -> bytes:
    """One P-DATA-TF PDU holding ``count`` empty, non-last PDVs (PS3.8 9.3.5.1)."""
    item = struct.pack(">IBB", 2, context_id, 0x01 if command else 0x00)
    body = item * count
    return struct.pack(">BBI", 0x04, 0, len(body)) + body


@pytest.mark.parametrize("where", ["data set", "command set"])
def test_a_flood_of_empty_pdvs_is_aborted_and_nothing_stored(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, where: str) -> None:
    caplog.set_level(logging.INFO, logger="dicomnet")

    async def scenario() -> AAbort:
        scp = StorageSCP(tmp_path / "store")
        try:
            async with running_server(providers=[VerificationSCP(), scp]) as server:
                assoc = await RawAssociation.open(server.port, STORE_CONTEXT)
                ctx = assoc.context_id(SECONDARY_CAPTURE)
                if where == "data set":
                    command = store_command(SECONDARY_CAPTURE.encode(), uid().encode())
                    await assoc.send(encode_pdata(ctx, True, True, command))
                flood = empty_pdvs(ctx, 1000, command=where == "command set")
                # 100,000 PDVs in all; the server stops reading long before.
                with contextlib.suppress(ConnectionError):
                    await assoc.send(*[flood] * 100)
                answer = decode_pdu(await asyncio.wait_for(read_pdu(assoc.reader), 20))
                await assoc.close()
                # Others are still served.
                other = await RawAssociation.open(server.port, STORE_CONTEXT)
                await other.release()
                assert isinstance(answer, AAbort)
                return answer
        finally:
            scp.close()

    answer = run(scenario())
    # As for every DIMSE-level fault the server aborts as the service user (PS3.8 9.3.8).
    assert (answer.source, answer.reason) == (0, 0)
    said = [r.getMessage() for r in caplog.records]
    assert any(f"{where} cut into 1025 PDVs of 0 bytes on average" in line for line in said), said
    assert not [p for p in (tmp_path / "store").rglob("*") if p.is_file()
                and not p.name.startswith("index.sqlite") and not p.name.startswith(".")]
