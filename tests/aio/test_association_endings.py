"""How the server's one line per association names its end when the end is odd: a
release completed whose peer keeps the connection when the server stops (PS3.8
AR-4: Sta13, waiting for the peer to close), and an A-ABORT whose source is none
of PS3.8 Table 9-26's (0, 2; 1 reserved)."""

from __future__ import annotations

import asyncio
import logging

import pytest
from pydicom.uid import ImplicitVRLittleEndian

from dicomnet.services.verification import VerificationSCP
from dicomnet.ul.negotiation import ContextRequest
from dicomnet.ul.pdu import AAbort, ReleaseRP, ReleaseRQ
from tests.aio.helpers import association_lines, run, running_server
from tests.storage.rawscu import RawAssociation, read_pdu
from tests.storage.test_scp_robustness import wait_idle

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


@pytest.mark.parametrize(("source", "words"), [
    (0, "aborted (the peer aborted)"),
    (2, "aborted (the peer's service provider aborted)"),
    (1, "aborted (the peer aborted, with A-ABORT source 1, which PS3.8 Table 9-26 does "
        "not define)"),
    (255, "aborted (the peer aborted, with A-ABORT source 255, which PS3.8 Table 9-26 does "
          "not define)"),
])
def test_an_abort_from_the_peer_is_logged_with_its_source(
        caplog: pytest.LogCaptureFixture, source: int, words: str) -> None:
    async def scenario() -> None:
        async with running_server(providers=[VerificationSCP()]) as server:
            peer = await RawAssociation.open(server.port, [VERIFICATION])
            await peer.send(AAbort(source=source, reason=0).encode())
            await peer.close()
            await wait_idle(server)

    with caplog.at_level(logging.INFO, logger="dicomnet"):
        run(scenario())
    [line] = association_lines(caplog)
    assert words in line, line
