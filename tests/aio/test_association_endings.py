"""How the server's one line per association names its end when the end is odd: a
release completed whose peer keeps the connection when the server stops (PS3.8
AR-4: Sta13, waiting for the peer to close)."""

from __future__ import annotations

import asyncio
import logging

import pytest
from pydicom.uid import ImplicitVRLittleEndian

from dicomnet.services.verification import VerificationSCP
from dicomnet.ul.negotiation import ContextRequest
from dicomnet.ul.pdu import ReleaseRP, ReleaseRQ
from tests.aio.helpers import association_lines, run, running_server
from tests.storage.rawscu import RawAssociation, read_pdu

VERIFICATION = ContextRequest("1.2.840.10008.1.1", (ImplicitVRLittleEndian,))


def test_a_release_the_peer_has_not_closed_yet_is_released_when_the_server_stops(
        caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> bytes:
        async with running_server(providers=[VerificationSCP()]) as server:
            peer = await RawAssociation.open(server.port, [VERIFICATION])
            await peer.send(ReleaseRQ().encode())
            async with asyncio.timeout(20):
                answer = await read_pdu(peer.reader)
            # The peer keeps the connection: the server waits in Sta13 (ARTIM)...
            # ...and is stopped now, at the end of this block.
        await peer.close()
        return answer

    with caplog.at_level(logging.INFO, logger="dicomnet"):
        assert run(scenario()) == ReleaseRP().encode()
    [line] = association_lines(caplog)
    assert ": released, " in line, line
