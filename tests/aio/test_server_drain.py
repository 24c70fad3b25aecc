"""``Server.drain(timeout)``: a server stopped for maintenance stops accepting,
lets the associations under way end by themselves (their peers release them),
then aborts what is still open at the deadline. ``close()`` aborts at once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from dicomnet.aio.client import associate
from dicomnet.aio.server import DrainOutcome
from dicomnet.errors import AssociationAborted, ConnectError
from dicomnet.services.storage import StorageSCP
from dicomnet.storage.part10 import read_part10
from dicomnet.ul.negotiation import ContextRequest, build_associate_rq
from dicomnet.ul.pdu import AssociateRJ, decode_pdu
from tests.aio.helpers import LOOPBACK, run, running_server, wait_until
from tests.storage.dicomfiles import SECONDARY_CAPTURE, make_image
from tests.storage.rawscu import read_pdu

EXPLICIT_LE = "1.2.840.10008.1.2.1"
CONTEXTS = [ContextRequest(SECONDARY_CAPTURE, (EXPLICIT_LE,))]


def _uids(root: Path) -> set[str]:
    return {read_part10(p).sop_instance_uid for p in root.rglob("*.dcm")}


def test_an_association_under_way_finishes_while_new_ones_are_refused(tmp_path: Path) -> None:
    """One C-STORE done, the drain begins: a new connection is refused, the
    association under way stores a second object (Success) and releases; the
    drain then reports it drained, none aborted, and both objects are stored."""
    first, second = make_image(1), make_image(2)

    async def main() -> tuple[DrainOutcome, list[int]]:
        scp = StorageSCP(tmp_path / "out")
        async with running_server(providers=[scp]) as server:
            statuses: list[int] = []
            async with associate(LOOPBACK, server.port, contexts=CONTEXTS) as assoc:
                statuses.append(int(await assoc.store(first)))
                draining = asyncio.ensure_future(server.drain(60))
                await wait_until(lambda: server._sock is None, "the listening socket closed")
                with pytest.raises(ConnectError):
                    async with associate(LOOPBACK, server.port, contexts=CONTEXTS):
                        pass
                assert not draining.done()  # it waits for this association
                statuses.append(int(await assoc.store(second)))
            outcome = await draining
            await server.wait_closed()
        return outcome, statuses

    outcome, statuses = run(main())
    assert statuses == [0, 0]
    assert (outcome.drained, outcome.aborted) == (1, 0)
    assert _uids(tmp_path / "out") == {first.SOPInstanceUID, second.SOPInstanceUID}


def test_an_association_still_open_at_the_deadline_is_aborted(tmp_path: Path) -> None:
    """A peer that keeps its association open (idle) past the deadline: aborted,
    and told so on its next request; the object it stored before stays."""
    image = make_image(1)

    async def main() -> DrainOutcome:
        async with (running_server(providers=[StorageSCP(tmp_path / "out")]) as server,
                    associate(LOOPBACK, server.port, contexts=CONTEXTS) as assoc):
            assert int(await assoc.store(image)) == 0
            outcome = await server.drain(0.2)
            await server.wait_closed()
            with pytest.raises(AssociationAborted):
                await assoc.store(make_image(2))
        return outcome

    outcome = run(main())
    assert (outcome.drained, outcome.aborted) == (0, 1)
    assert _uids(tmp_path / "out") == {image.SOPInstanceUID}


def test_a_request_on_a_connection_accepted_before_is_rejected_transient(
        tmp_path: Path) -> None:
    """A connection accepted before the drain, its A-ASSOCIATE-RQ sent during it:
    A-ASSOCIATE-RJ rejected-transient, service-provider (presentation), temporary
    congestion (PS3.8 Table 9-21: 2, 3, 1), so that the peer tries again later."""

    async def main() -> tuple[AssociateRJ, DrainOutcome]:
        async with running_server(providers=[StorageSCP(tmp_path / "out")]) as server:
            async with associate(LOOPBACK, server.port, contexts=CONTEXTS) as _holder:
                reader, writer = await asyncio.open_connection(LOOPBACK, server.port)
                try:
                    await wait_until(lambda: server.pending_connections == 1,
                                     "the connection accepted")
                    draining = asyncio.ensure_future(server.drain(60))
                    await wait_until(lambda: server._sock is None, "the drain to begin")
                    writer.write(build_associate_rq(
                        calling_ae_title="LATE", called_ae_title="DICOMNET-SCP",
                        contexts=CONTEXTS, max_pdu_length=16384).encode())
                    answer = decode_pdu(await read_pdu(reader))
                finally:
                    writer.close()
                assert isinstance(answer, AssociateRJ)
            outcome = await draining
        return answer, outcome

    answer, outcome = run(main())
    assert (answer.result, answer.source, answer.reason) == (2, 3, 1)
    assert (outcome.drained, outcome.aborted) == (1, 0)


def test_close_during_a_drain_aborts_at_once(tmp_path: Path) -> None:
    """close() while drain() waits (a second SIGTERM to dicomnet serve): the
    drain returns, the association counted aborted."""

    async def main() -> DrainOutcome:
        async with (running_server(providers=[StorageSCP(tmp_path / "out")]) as server,
                    associate(LOOPBACK, server.port, contexts=CONTEXTS) as assoc):
            draining = asyncio.ensure_future(server.drain(None))
            await wait_until(lambda: server._sock is None, "the drain to begin")
            server.close()
            outcome = await draining
            await server.wait_closed()
            with pytest.raises(AssociationAborted):
                await assoc.store(make_image(1))
        return outcome

    outcome = run(main())
    assert (outcome.drained, outcome.aborted) == (0, 1)
