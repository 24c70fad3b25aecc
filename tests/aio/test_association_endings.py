"""How the server's one line per association names its end when the end is odd: a
release completed whose peer keeps the connection when the server stops (PS3.8
AR-4: Sta13, waiting for the peer to close), and an A-ABORT whose source is none
of PS3.8 Table 9-26's (0, 2; 1 reserved)."""

from __future__ import annotations

import asyncio
import logging

import pytest
from pydicom.uid import ImplicitVRLittleEndian

from dicomnet.aio.server_events import AssociationEnded, ConnectionEvent
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


@pytest.mark.parametrize(("source", "reason", "words"), [
    (0, 0, "service-user"),
    (0, 2, "service-user"),  # source 0: its reason is not significant
    (2, 0, "service-provider, reason not specified"),
    (2, 2, "service-provider, unexpected PDU"),
    (2, 6, "service-provider, invalid PDU parameter value"),
    (2, 3, "service-provider, reason 3"),
    (1, 0, "source 1 (reserved in PS3.8 Table 9-26)"),
    (255, 0, "source 255 (not in PS3.8 Table 9-26)"),
])
def test_an_abort_from_the_peer_is_logged_with_its_source(
        caplog: pytest.LogCaptureFixture, source: int, reason: int, words: str) -> None:
    """The line and the ``association_ended`` event's reason name the peer's A-ABORT
    source and, for its service provider's, the reason (PS3.8 Table 9-26), in the
    words of the client's AssociationAborted for it ("by the peer (its A-ABORT:
    ...)"). They had the Upper Layer's own ("the peer's service provider aborted:
    unexpected PDU") where the client said "by the peer (its A-ABORT:
    service-provider, unexpected PDU)"."""
    events: list[ConnectionEvent] = []

    async def scenario() -> None:
        async with running_server(providers=[VerificationSCP()],
                                  on_connection_event=events.append) as server:
            peer = await RawAssociation.open(server.port, [VERIFICATION])
            await peer.send(AAbort(source=source, reason=reason).encode())
            await peer.close()
            await wait_idle(server)

    with caplog.at_level(logging.INFO, logger="dicomnet"):
        run(scenario())
    [line] = association_lines(caplog)
    assert f": aborted (by the peer, its A-ABORT: {words}), " in line, line
    [ended] = [e for e in events if isinstance(e, AssociationEnded)]
    assert ended.to_dict()["reason"] == f"its A-ABORT: {words}"
    assert (ended.how, ended.to_dict()["by"]) == ("aborted", "peer")
