"""serve(on_connection_event=...): the events a server tells of its connections
(aio.server_events), as a program watching it sees them."""

from __future__ import annotations

import asyncio
import logging

import pytest

from dicomnet.aio.client import associate
from dicomnet.aio.server_events import (
    AssociationAccepted,
    AssociationEnded,
    ConnectionEvent,
    ConnectionRefused,
)
from dicomnet.config import Limits
from dicomnet.ul.negotiation import ContextRequest, build_associate_rq
from dicomnet.ul.pdu import encode_pdata
from tests.storage.rawscu import read_pdu

from .helpers import LOOPBACK, log_lines, run, running_server


def test_an_association_accepted_then_aborted_is_told_with_its_answers() -> None:
    events: list[ConnectionEvent] = []

    async def main() -> None:
        async with running_server(on_connection_event=events.append) as server:
            async with associate(LOOPBACK, server.port, called_ae_title="DICOMNET-SCP",
                                 calling_ae_title="WATCHED") as assoc:
                assert (await assoc.echo()).code == 0
                assert (await assoc.echo()).code == 0
                await assoc.abort()
            while len(events) < 2:
                await asyncio.sleep(0.01)

    run(main())
    accepted, ended = events
    assert isinstance(accepted, AssociationAccepted)
    assert (accepted.calling_ae_title, accepted.called_ae_title, accepted.contexts,
            accepted.security) == ("WATCHED", "DICOMNET-SCP", 1, None)
    assert isinstance(ended, AssociationEnded)
    assert (ended.peer, ended.how, ended.reason) == (accepted.peer, "aborted",
                                                  "its A-ABORT: service-user")
    assert (ended.messages, ended.objects, dict(ended.answers), ended.unanswered) == (
        2, 0, {0: 2}, 0)
    assert ended.bytes_received > 0
    assert ended.to_dict()["answers"] == {"0x0000": 2}
    assert ended.to_dict()["tls"] is None


def test_an_observer_that_raises_is_logged_and_costs_nothing(
        aio_log: pytest.LogCaptureFixture) -> None:
    def broken(event: ConnectionEvent) -> None:
        raise RuntimeError("observer bug")

    async def main() -> int:
        async with running_server(on_connection_event=broken) as server, associate(
                LOOPBACK, server.port, called_ae_title="DICOMNET-SCP") as assoc:
            return (await assoc.echo()).code

    assert run(main()) == 0
    failed = log_lines(aio_log, level=logging.ERROR,
                       contains="the on_connection_event observer failed")
    assert failed == [f"the on_connection_event observer failed on {name}"
                      for name in ("AssociationAccepted", "AssociationEnded")]


def test_a_connection_closed_to_make_room_is_told_as_refused_by_the_limit() -> None:
    events: list[ConnectionEvent] = []

    async def main() -> None:
        async with running_server(on_connection_event=events.append,
                                  limits=Limits(max_pending_connections=1)) as server:
            first = await asyncio.open_connection(LOOPBACK, server.port)
            await asyncio.sleep(0.2)  # accepted, waiting for its first byte
            second = await asyncio.open_connection(LOOPBACK, server.port)
            try:
                assert await asyncio.wait_for(first[0].read(), 10) == b""  # closed
            finally:
                for _, writer in (first, second):
                    writer.close()

    run(main())
    refused = [e for e in events if isinstance(e, ConnectionRefused)]
    assert [(e.stage, e.reason) for e in refused] == [
        ("limit", "too many connections waiting to associate: the oldest closed")]


def _associate_rq(called_ae_title: str) -> bytes:
    return build_associate_rq(
        calling_ae_title="RAW", called_ae_title=called_ae_title,
        contexts=[ContextRequest("1.2.840.10008.1.1", ("1.2.840.10008.1.2",))]).encode()


def test_a_rejected_connection_then_closed_to_make_room_is_told_and_logged_once(
        aio_log: pytest.LogCaptureFixture) -> None:
    """Rejected (A-ASSOCIATE-RJ), the peer keeps the connection (it lingers for
    ARTIM among those waiting to associate); a new one closes it to make room.
    Its rejection was its event and its line: not a second event ('limit'), nor
    a line saying the association was aborted with the server closing."""
    events: list[ConnectionEvent] = []

    async def main() -> None:
        async with running_server(on_connection_event=events.append,
                                  require_called_ae_title=True,
                                  limits=Limits(max_pending_connections=1)) as server:
            reader, writer = await asyncio.open_connection(LOOPBACK, server.port)
            writer.write(_associate_rq("ELSEWHERE"))
            assert (await asyncio.wait_for(read_pdu(reader), 10))[0] == 0x03  # A-ASSOCIATE-RJ
            second = await asyncio.open_connection(LOOPBACK, server.port)
            try:
                assert await asyncio.wait_for(reader.read(), 10) == b""  # closed
            finally:
                writer.close()
                second[1].close()

    run(main())
    assert [(type(e).__name__, getattr(e, "stage", None)) for e in events] == [
        ("ConnectionRefused", "association")]
    assert log_lines(aio_log, contains="server closing") == []


def test_a_request_aborted_before_it_was_answered_is_told_as_refused(
        aio_log: pytest.LogCaptureFixture) -> None:
    """An A-ASSOCIATE-RQ followed at once by a P-DATA-TF (out of turn in Sta3:
    PS3.8 AA-8, A-ABORT sent): the log has its line, and the observer a
    connection_refused, stage "protocol", with the AE titles that asked."""
    events: list[ConnectionEvent] = []

    async def main() -> None:
        async with running_server(on_connection_event=events.append) as server:
            reader, writer = await asyncio.open_connection(LOOPBACK, server.port)
            writer.write(_associate_rq("DICOMNET-SCP") + encode_pdata(1, True, True, b"\0" * 8))
            try:
                assert (await asyncio.wait_for(read_pdu(reader), 10))[0] == 0x07  # A-ABORT
            finally:
                writer.close()
            while not log_lines(aio_log, contains="-> DICOMNET-SCP: aborted"):  # then told
                await asyncio.sleep(0.01)

    run(main())
    assert len(events) == 1
    refused = events[0]
    assert isinstance(refused, ConnectionRefused)
    assert (refused.stage, refused.reason, refused.calling_ae_title,
            refused.called_ae_title) == ("protocol", "unexpected PDataTF PDU", "RAW",
                                         "DICOMNET-SCP")
