"""Who aborted: an association this side aborted (a deadline, a fault found in
what the peer sent) says "by us", one the peer aborted "by the peer", with the
A-ABORT's source and reason in the words of PS3.8 Table 9-26; a server's end
(its log line, ``AssociationEnded.by``) says the same. Before, a deadline of
ours read "association aborted by service-user - ...", as the peer's A-ABORT
did."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from types import SimpleNamespace

import pytest

from dicomnet.aio.association import Association
from dicomnet.aio.client import ClientAssociation, associate
from dicomnet.aio.indications import aborted_by
from dicomnet.aio.server_dispatch import RequestDispatch
from dicomnet.aio.server_events import AssociationEnded, ConnectionEvent, with_abort_reason
from dicomnet.config import Timeouts
from dicomnet.dimse.connection import DatasetFragment
from dicomnet.dimse.messages import CEchoRQ, CEchoRSP, encode_message
from dicomnet.errors import AssociationAborted, RemoteProtocolError
from dicomnet.testing import associated_pair
from dicomnet.ul.events import Aborted
from dicomnet.ul.fsm import Event, Indicate, Machine, State
from dicomnet.ul.negotiation import ContextRequest, build_associate_rq
from dicomnet.ul.pdu import AAbort, encode_pdata
from tests.storage.rawscu import read_pdu

from .helpers import LOOPBACK, association_lines, run, running_server
from .rawscp import VERIFICATION, RawPeer, Request, raw_scp, response_pdu

#: A-ABORT (PS3.8 9.3.8): source 0 (service-user), reason 0 (not significant).
A_ABORT_BY_USER = bytes.fromhex("07 00 00000004 00 00 00 00")


def _echo_rsp(request: Request) -> bytes:
    assert isinstance(request.message, CEchoRQ)
    return response_pdu(request.context_id, CEchoRSP(
        message_id_being_responded_to=request.message.message_id, status=0,
        affected_sop_class_uid=VERIFICATION))


async def _half_response(peer: RawPeer, request: Request) -> None:
    whole = _echo_rsp(request)
    await peer.send(whole[:len(whole) // 2])  # and nothing more


async def _peer_aborts(peer: RawPeer, request: Request) -> None:
    await peer.send(AAbort(source=2, reason=1).encode())


async def _unexpected_pdu(peer: RawPeer, request: Request) -> None:
    # An A-RELEASE-RP in Sta6 (nothing asked for it): PS3.8 AA-8, our Upper Layer
    # sends the A-ABORT (source 2, unexpected PDU).
    await peer.send(bytes.fromhex("06 00 00000004 00000000"))


def _failure(answer: object, timeouts: Timeouts | None = None) -> AssociationAborted:
    async def main() -> AssociationAborted:
        async with raw_scp(answer) as (port, _), associate(  # type: ignore[arg-type]
                LOOPBACK, port, timeouts=timeouts) as assoc:
            with pytest.raises(AssociationAborted) as caught:
                await assoc.echo()
            return caught.value

    return run(main())


def test_a_deadline_of_ours_says_we_aborted() -> None:
    error = _failure(_half_response, Timeouts(pdu=0.5, dimse=20))
    assert error.by == "us"
    assert str(error) == ("association aborted by us (A-ABORT sent: service-user) - "
                          "a PDU took longer than 0.5s to arrive")


def test_an_a_abort_of_the_peer_says_the_peer_aborted_and_its_words() -> None:
    error = _failure(_peer_aborts)
    assert (error.by, error.source, error.reason) == ("peer", 2, 1)
    assert str(error) == ("association aborted by the peer (its A-ABORT: "
                          "service-provider, unrecognized PDU)")


def test_a_pdu_our_upper_layer_refused_says_we_aborted() -> None:
    error = _failure(_unexpected_pdu)
    assert (error.by, error.source, error.reason) == ("us", 2, 2)
    assert str(error).startswith(
        "association aborted by us (A-ABORT sent: service-provider, unexpected PDU) - ")


def _rq() -> bytes:
    return build_associate_rq(
        calling_ae_title="RAW", called_ae_title="DICOMNET-SCP",
        contexts=[ContextRequest(VERIFICATION, ("1.2.840.10008.1.2",))]).encode()


@pytest.mark.parametrize("who", ["us", "peer"])
def test_a_server_says_who_aborted(who: str, aio_log: pytest.LogCaptureFixture) -> None:
    """A client that sends half a PDU and stalls is aborted by the server's PDU
    deadline ("by us"); one that sends an A-ABORT aborted it ("peer")."""
    events: list[ConnectionEvent] = []
    echo = encode_pdata(1, True, True, encode_message(
        CEchoRQ(message_id=1, affected_sop_class_uid=VERIFICATION)))

    async def main() -> bytes:
        async with running_server(on_connection_event=events.append,
                                  timeouts=Timeouts(pdu=0.5)) as server:
            reader, writer = await asyncio.open_connection(LOOPBACK, server.port)
            try:
                writer.write(_rq())
                assert (await asyncio.wait_for(read_pdu(reader), 10))[0] == 0x02
                writer.write(echo[:len(echo) // 2] if who == "us" else A_ABORT_BY_USER)
                got = await asyncio.wait_for(reader.read(), 20)
            finally:
                writer.close()
            while not any(isinstance(e, AssociationEnded) for e in events):
                await asyncio.sleep(0.01)
            return got

    with aio_log.at_level(logging.INFO, logger="dicomnet"):
        got = run(main())
    (ended,) = [e for e in events if isinstance(e, AssociationEnded)]
    assert (ended.how, ended.by, ended.to_dict()["by"]) == ("aborted", who, who)
    (line,) = association_lines(aio_log)
    if who == "us":
        assert got == A_ABORT_BY_USER
        assert ended.reason == "a PDU took longer than 0.5s to arrive"
        assert ": aborted (by us: a PDU took longer than 0.5s to arrive), " in line, line
    else:
        assert got == b""
        assert ended.reason == "its A-ABORT: service-user"
        assert ": aborted (by the peer, its A-ABORT: service-user), " in line, line


# -- the hint a RemoteProtocolError carries is what is sent ------------------------------
# A fault found above the Upper Layer (DIMSE: a message on a context not accepted, a
# response to nothing outstanding) is aborted by the service-user, source 0, reason 0
# (PS3.8 9.3.8, Table 9-26; dimse.connection's docstring): the error's abort_source
# and abort_reason say so, as the A-ABORT sent does.


def test_a_data_set_fragment_without_a_command_asks_for_source_0() -> None:
    assoc = Association.__new__(Association)  # route() reads only these two
    assoc.failure, assoc._incoming = None, None
    with pytest.raises(RemoteProtocolError) as caught:
        assoc.route(DatasetFragment(1, b"\0\0", True))
    assert (caught.value.abort_source, caught.value.abort_reason) == (0, 0)


def test_a_message_on_a_context_not_accepted_asks_for_source_0() -> None:
    assoc = SimpleNamespace(messages=0, objects=0, contexts={})
    echo = CEchoRQ(message_id=1, affected_sop_class_uid=VERIFICATION)
    with pytest.raises(RemoteProtocolError) as caught:
        run(RequestDispatch._on_messages(None, assoc, [(3, echo, None)]))  # type: ignore[arg-type]
    assert (caught.value.abort_source, caught.value.abort_reason) == (0, 0)


async def _answers_another(peer: RawPeer, request: Request) -> None:
    await peer.send(response_pdu(request.context_id, CEchoRSP(
        message_id_being_responded_to=99, status=0, affected_sop_class_uid=VERIFICATION)))


def test_a_response_to_nothing_outstanding_asks_for_source_0() -> None:
    error = _failure(_answers_another)
    assert (error.by, error.source, error.reason) == ("us", 0, 0)
    cause = error.__cause__
    assert isinstance(cause, RemoteProtocolError)
    assert (cause.abort_source, cause.abort_reason) == (0, 0)


def test_no_association_answer_in_time_is_our_abort() -> None:
    """A peer that takes the connection and never answers the A-ASSOCIATE-RQ: the
    ACSE timeout is ours ("by us"), not an abort of unknown origin."""
    async def main() -> AssociationAborted:
        silent: list[asyncio.StreamWriter] = []

        async def accept(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            silent.append(writer)  # held open, never answered

        server = await asyncio.start_server(accept, LOOPBACK, 0)
        port = server.sockets[0].getsockname()[1]
        try:
            with pytest.raises(AssociationAborted) as caught:
                async with associate(LOOPBACK, port, timeouts=Timeouts(acse=0.3)):
                    pass
            return caught.value
        finally:
            for writer in silent:
                writer.close()
            server.close()
            await server.wait_closed()

    failure = run(main())
    assert failure.by == "us"
    assert str(failure) == ("association aborted by us - no A-ASSOCIATE-AC/RJ within 0.3s "
                            "(ACSE timeout)")


def test_our_abort_is_ours_though_the_peer_aborts_in_the_same_read() -> None:
    """A PDU our Upper Layer refuses (AA-8: our A-ABORT, Sta13) and, in the same
    read, the peer's own A-ABORT (AA-2, Sta1): the failure says "us", with our
    A-ABORT's words. Read from the state when the task took the event (Sta1, as
    after the peer's A-ABORT), it said the peer had sent ours."""
    pair = associated_pair()
    ul = pair.requestor
    ul.receive_data(bytes.fromhex("06 00 00000004 00000000") + A_ABORT_BY_USER, 0)
    [event] = ul.take_events()
    assert isinstance(event, Aborted)
    failure = aborted_by(event)
    assert (failure.by, failure.source, failure.reason) == ("us", 2, 2)
    assert str(failure) == ("association aborted by us (A-ABORT sent: service-provider, "
                            "unexpected PDU) - unexpected ReleaseRP PDU")


def _two_pdus(peer: RawPeer, request: Request) -> Awaitable[None]:
    # An A-RELEASE-RP in Sta6 and an A-ABORT behind it, one write (as it goes).
    return peer.send(bytes.fromhex("06 00 00000004 00000000") + A_ABORT_BY_USER)


def test_a_client_says_we_aborted_when_the_peer_aborts_right_behind_its_fault() -> None:
    error = _failure(_two_pdus)
    assert (error.by, error.source, error.reason) == ("us", 2, 2)


def _break_read_callback(monkeypatch: pytest.MonkeyPatch, assoc: ClientAssociation) -> None:
    def broken(self: object, event: object) -> None:
        raise RuntimeError("our own bug")

    monkeypatch.setattr(ClientAssociation, "_on_data", broken)


def _break_reader_task(monkeypatch: pytest.MonkeyPatch, assoc: ClientAssociation) -> None:
    async def broken() -> list[object]:
        raise RuntimeError("our own bug")

    monkeypatch.setattr(assoc, "_read_events", broken)
    assoc._wake()  # the reader task goes round once more, into the bug


@pytest.mark.parametrize("break_it", [_break_read_callback, _break_reader_task],
                         ids=["read callback", "reader task"])
def test_an_internal_error_of_ours_is_our_abort(
        monkeypatch: pytest.MonkeyPatch,
        break_it: Callable[[pytest.MonkeyPatch, ClientAssociation], None]) -> None:
    """A bug in our own code reading a response, met by the read callback or by
    the reader task (an event it cannot take, say): the association is
    A-ABORTed by us (PS3.7 7.3, source service-user) and the failure says so.
    It had no ``by`` ("association aborted - internal error: ..."), and the
    connection was closed with no A-ABORT (the peer saw its transport close,
    PS3.8 AA-4)."""
    async def main() -> tuple[AssociationAborted, str]:
        async with raw_scp(_echo) as (port, peers):
            async with associate(LOOPBACK, port) as assoc:
                break_it(monkeypatch, assoc)
                with pytest.raises(AssociationAborted) as caught:
                    await assoc.echo()
            await asyncio.wait_for(peers[0].ended.wait(), 10)
            return caught.value, peers[0].ending

    error, ending = run(main())
    assert (error.by, error.source, error.reason) == ("us", 0, 0)
    assert str(error) == ("association aborted by us (A-ABORT sent: service-user) - "
                          "internal error: our own bug")
    assert ending == "abort"


async def _echo(peer: RawPeer, request: Request) -> None:
    await peer.send(_echo_rsp(request))


@pytest.mark.parametrize(("source", "reason"), [(0, 0), (2, 2), (255, 0)])
def test_both_sides_word_the_peers_abort_alike(source: int, reason: int) -> None:
    """The client's AssociationAborted and the server's end (line, reason) say the
    peer's A-ABORT in the same words, from the Upper Layer's event (PS3.8 AA-3)."""
    machine = Machine(is_requestor=False)
    machine.state = State.Sta6
    machine.fire(Event.Evt16, AAbort(source=source, reason=reason))
    event = next(e.event for e in machine.effects if isinstance(e, Indicate))
    assert isinstance(event, Aborted)
    failure = aborted_by(event)
    server = with_abort_reason(f"aborted ({event.detail})", failure)
    assert server.startswith("aborted (its A-ABORT: "), server
    assert str(failure) == f"association aborted by the peer ({server[9:-1]})"
