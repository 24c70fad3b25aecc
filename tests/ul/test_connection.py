"""ULConnection driven in memory: association, data, release (with collisions), abort,
ARTIM on a fake clock, and hostile bytes. No sockets, no sleeps."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from dicomnet.testing import ULPair, associated_pair
from dicomnet.ul.connection import JOIN_LIMIT, ULConnection
from dicomnet.ul.events import (
    Aborted,
    AssociateAccepted,
    AssociateRejected,
    AssociateRequested,
    DataReceived,
    ReleaseConfirmed,
    ReleaseRequested,
    ULEvent,
)
from dicomnet.ul.fsm import State
from dicomnet.ul.items import PresentationContextACItem
from dicomnet.ul.negotiation import AcceptorPolicy, ContextRequest, build_associate_rq, negotiate
from dicomnet.ul.pdu import AAbort, AssociateRJ, PDataTF, PresentationDataValue, encode_pdata

VERIFICATION = "1.2.840.10008.1.1"


def state(conn: ULConnection) -> State:
    """The state read afresh (a call, so the type checker does not narrow it between
    steps that change it)."""
    return conn.state

IMPLICIT_LE = "1.2.840.10008.1.2"


def test_association_data_and_release() -> None:
    pair = associated_pair()
    assert state(pair.requestor) is State.Sta6 and pair.acceptor.state is State.Sta6
    pair.requestor.send_pdata(encode_pdata(1, True, True, b"\x01\x02"))
    pair.requestor.send_pdata(PDataTF((PresentationDataValue(1, False, True, b"abc"),)))
    _, acc = pair.pump()
    assert [e.pdu.pdvs[0].data for e in acc if isinstance(e, DataReceived)] == [b"\x01\x02", b"abc"]
    pair.requestor.release()
    _, acc = pair.pump()
    assert acc == [ReleaseRequested(collision=False)]
    pair.acceptor.release_response(pair.now)
    req, _ = pair.pump()
    assert req == [ReleaseConfirmed()]
    assert state(pair.requestor) is State.Sta1
    assert state(pair.acceptor) is State.Sta1  # got EOF after the requestor closed (AR-5)


def test_take_events_gives_every_pending_event_at_once() -> None:
    """``take_events`` returns what ``next_event`` would, one by one, until None:
    the same events in the same order, and then nothing more."""
    pair = associated_pair()
    pair.requestor.send_pdata(encode_pdata(1, True, True, b"\x01\x02"))
    pair.requestor.send_pdata(encode_pdata(1, False, True, b"abc"))
    pair.requestor.release()
    pair.acceptor.receive_data(pair.requestor.data_to_send(), pair.now)
    events = pair.acceptor.take_events()
    assert [type(e) for e in events] == [DataReceived, DataReceived, ReleaseRequested]
    assert [e.pdu.pdvs[0].data for e in events if isinstance(e, DataReceived)] == [
        b"\x01\x02", b"abc"]
    assert pair.acceptor.take_events() == []
    assert pair.acceptor.next_event() is None


def test_large_pdus_are_handed_on_uncopied_and_small_ones_joined() -> None:
    """chunks_to_send: a data PDU of JOIN_LIMIT bytes or more is its own chunk, the
    very object queued (joining would copy every byte of it); runs of small PDUs
    (commands, responses) are joined into one write. Together, the same bytes in
    the same order as data_to_send, and the peer reads the same PDUs. A large PDU
    may be a memoryview (PduBuffers): queued as it is too."""
    pair = associated_pair(max_pdu_length=0)
    small = [encode_pdata(1, True, True, bytes([n]) * 40) for n in range(3)]
    encoded = [encode_pdata(1, False, n == 1, bytes([n]) * JOIN_LIMIT) for n in range(2)]
    # The second as an SCU's pooled buffer holds it: a view of the front of a larger one.
    pooled = bytearray(encoded[1]) + bytearray(100)
    large: list[bytearray | memoryview] = [bytearray(encoded[0]),
                                           memoryview(pooled)[:len(encoded[1])]]
    queued: list[bytes | bytearray | memoryview] = [small[0], large[0], small[1], small[2],
                                                    large[1]]
    for pdu in queued:
        pair.requestor.send_pdata(pdu)
    chunks = pair.requestor.chunks_to_send()
    assert [len(c) for c in chunks] == [len(small[0]), len(large[0]),
                                        len(small[1]) + len(small[2]), len(large[1])]
    assert chunks[1] is large[0] and chunks[3] is large[1]
    assert b"".join(chunks) == b"".join(queued)
    assert pair.requestor.chunks_to_send() == []
    for chunk in chunks:
        pair.acceptor.receive_data(chunk, 0)
    received = [pair.acceptor.next_event() for _ in queued]
    assert [e.pdu.encode() for e in received if isinstance(e, DataReceived)] == [
        bytes(pdu) for pdu in queued]


def test_max_pdu_lengths_are_learned_both_ways() -> None:
    pair = associated_pair(max_pdu_length=32768)
    assert pair.requestor.peer_max_pdu_length == 32768
    assert pair.acceptor.peer_max_pdu_length == 32768
    assert pair.requestor.local_max_pdu_length == 32768


def test_release_collision_both_sides() -> None:
    """PS3.8 7.2.2: both users ask at once; requestor goes Sta9->Sta11, acceptor Sta10->Sta12."""
    pair = associated_pair()
    pair.requestor.release()
    pair.acceptor.release()
    req_rq = pair.requestor.data_to_send()
    acc_rq = pair.acceptor.data_to_send()
    pair.requestor.receive_data(acc_rq, 0)
    pair.acceptor.receive_data(req_rq, 0)
    assert state(pair.requestor) is State.Sta9
    assert state(pair.acceptor) is State.Sta10
    assert pair.requestor.next_event() == ReleaseRequested(collision=True)
    assert pair.acceptor.next_event() == ReleaseRequested(collision=True)
    pair.requestor.release_response(0)  # AR-9 -> Sta11
    assert state(pair.requestor) is State.Sta11
    pair.acceptor.receive_data(pair.requestor.data_to_send(), 0)  # AR-10 -> Sta12
    assert state(pair.acceptor) is State.Sta12
    assert pair.acceptor.next_event() == ReleaseConfirmed()
    pair.acceptor.release_response(0)  # AR-4 -> Sta13
    pair.requestor.receive_data(pair.acceptor.data_to_send(), 0)  # AR-3 -> Sta1
    assert state(pair.requestor) is State.Sta1
    assert pair.requestor.next_event() == ReleaseConfirmed()
    assert pair.requestor.should_close


def test_reject_then_artim_closes() -> None:
    pair = ULPair(artim_timeout=5.0)
    rq = build_associate_rq(
        calling_ae_title="A",
        called_ae_title="B",
        contexts=[ContextRequest(VERIFICATION, (IMPLICIT_LE,))],
    )
    pair.requestor.associate(rq)
    pair.connect()
    _, acc = pair.pump()
    assert isinstance(acc[0], AssociateRequested)
    pair.acceptor.reject(AssociateRJ(1, 1, 7), now=10.0)
    assert state(pair.acceptor) is State.Sta13
    assert pair.acceptor.get_timer() == 15.0
    pair.requestor.receive_data(pair.acceptor.data_to_send(), 10.0)
    assert isinstance(pair.requestor.next_event(), AssociateRejected)
    assert pair.requestor.should_close
    # The requestor's close would end it; if it never comes, ARTIM does (AR-5).
    pair.acceptor.handle_timer(14.9)
    assert state(pair.acceptor) is State.Sta13
    pair.acceptor.handle_timer(15.0)
    assert state(pair.acceptor) is State.Sta1
    assert pair.acceptor.should_close


def test_artim_while_awaiting_associate_rq() -> None:
    acceptor = ULConnection("acceptor", artim_timeout=30.0)
    acceptor.transport_connected(100.0)
    assert state(acceptor) is State.Sta2 and acceptor.get_timer() == 130.0
    acceptor.handle_timer(130.0)  # Evt18 in Sta2: AA-2
    assert state(acceptor) is State.Sta1 and acceptor.should_close
    assert acceptor.get_timer() is None


def test_protocol_version_without_bit_0_is_rejected_by_the_provider() -> None:
    acceptor = ULConnection("acceptor")
    acceptor.transport_connected(0)
    rq = build_associate_rq(
        calling_ae_title="A",
        called_ae_title="B",
        contexts=[ContextRequest(VERIFICATION, (IMPLICIT_LE,))],
    )
    raw = bytearray(rq.encode())
    raw[6:8] = b"\x00\x02"  # protocol version 2: bit 0 clear
    acceptor.receive_data(bytes(raw), 0)
    assert state(acceptor) is State.Sta13
    assert acceptor.next_event() is None
    sent = acceptor.data_to_send()
    assert sent == AssociateRJ(result=1, source=2, reason=2).encode()
    assert acceptor.refusal == (
        "protocol version 0x0002 not supported (PS3.8 9.3.2); A-ASSOCIATE-RJ sent")


def test_a_refused_connection_says_why() -> None:
    """AA-1 in Sta2 indicates nothing to the user (PS3.8 Table 9-10): ``refusal``
    says why the A-ABORT went, for the server's log; an association that exists
    has none."""
    rq = build_associate_rq(calling_ae_title="A", called_ae_title="B",
                            contexts=[ContextRequest(VERIFICATION, (IMPLICIT_LE,))]).encode()
    cases = {
        # The A-ASSOCIATE-RQ cut before its user information item (its length fixed).
        b"\x01\x00" + (len(rq) - 6 - (len(rq) - rq.index(b"\x50\x00"))).to_bytes(4, "big")
        + rq[6:rq.index(b"\x50\x00")]:
            "A-ASSOCIATE-RQ has no user information item (PS3.8 9.3.2); A-ABORT sent",
        encode_pdata(1, True, True, b"\x00\x00"):
            "P-DATA-TF PDU before any A-ASSOCIATE-RQ; A-ABORT sent",
    }
    for data, refusal in cases.items():
        acceptor = ULConnection("acceptor")
        acceptor.transport_connected(0)
        acceptor.receive_data(data, 0)
        assert state(acceptor) is State.Sta13
        assert acceptor.next_event() is None
        assert acceptor.data_to_send() == AAbort(source=0, reason=0).encode()
        assert acceptor.refusal == refusal
    pair = associated_pair()
    pair.acceptor.receive_data(b"\xff" * 10, pair.now)
    assert pair.acceptor.refusal is None and pair.requestor.refusal is None


def test_user_abort_reaches_the_peer_as_user_abort() -> None:
    pair = associated_pair()
    pair.requestor.abort(now=0)
    assert state(pair.requestor) is State.Sta13
    pair.acceptor.receive_data(pair.requestor.data_to_send(), 0)
    event = pair.acceptor.next_event()
    assert isinstance(event, Aborted) and event.source == 0 and not event.by_provider
    assert event.by == "peer"  # AA-3: an A-ABORT received
    assert state(pair.acceptor) is State.Sta1


def test_invalid_pdu_in_sta6_sends_provider_abort() -> None:
    pair = associated_pair()
    pair.acceptor.receive_data(b"\x55\x00\x00\x00\x00\x04abcd", 0)
    event = pair.acceptor.next_event()
    assert isinstance(event, Aborted) and event.by_provider and event.source == 2
    assert event.by == "us"  # AA-8: the A-ABORT is ours
    assert pair.acceptor.data_to_send() == AAbort(source=2, reason=1).encode()
    assert state(pair.acceptor) is State.Sta13
    # More garbage while awaiting the close: one A-ABORT was enough, nothing more.
    pair.acceptor.receive_data(b"\x55" * 20, 0)
    assert pair.acceptor.data_to_send() == b""


def test_pdata_over_our_max_length_aborts_with_reason_6() -> None:
    pair = associated_pair(max_pdu_length=16384)
    oversized = encode_pdata(1, False, True, b"\x00" * 16384)  # PDU length 16390 > 16384
    pair.acceptor.receive_data(oversized[:6], 0)  # the header alone is enough
    assert pair.acceptor.data_to_send() == AAbort(source=2, reason=6).encode()


def _requested(max_pdu_length: int) -> tuple[ULPair, list[ULEvent]]:
    pair = ULPair()
    pair.requestor.associate(build_associate_rq(
        calling_ae_title="REQUESTOR", called_ae_title="ACCEPTOR",
        contexts=(ContextRequest(VERIFICATION, (IMPLICIT_LE,)),), max_pdu_length=max_pdu_length))
    pair.connect()
    pair.acceptor.receive_data(pair.requestor.data_to_send(), 0)
    return pair, list(iter(pair.acceptor.next_event, None))


def test_a_maximum_length_leaving_no_room_for_data_is_an_invalid_parameter() -> None:
    """PS3.8 D.1, 9.3.5.1: a P-DATA-TF of at most 6 bytes holds no PDV data. An RQ or
    AC announcing 1 to 6 is aborted as it is read (Evt19: A-ABORT reason 6); 7 and 0
    (no limit) are taken. It had been taken, to fail at the first message sent."""
    pair, events = _requested(6)
    assert not any(isinstance(e, AssociateRequested) for e in events)
    # In Sta2 Evt19 is AA-1: A-ABORT, service-user source (PS3.8 Table 9-10).
    assert pair.acceptor.data_to_send() == AAbort(source=0, reason=0).encode()
    assert pair.acceptor.refusal is not None
    assert "Maximum Length 6 leaves no room for PDV data" in pair.acceptor.refusal
    assert pair.acceptor.associate_rq is not None  # its AE titles, for the log
    for usable in (7, 0):
        pair, events = _requested(usable)
        assert any(isinstance(e, AssociateRequested) for e in events), usable

    pair, events = _requested(16384)
    request = next(e for e in events if isinstance(e, AssociateRequested))
    pair.acceptor.accept(negotiate(request.pdu, AcceptorPolicy(
        contexts={VERIFICATION: None}, max_pdu_length=1)))
    acceptor_ac = pair.acceptor.data_to_send()
    pair.requestor.receive_data(acceptor_ac, 0)
    [event] = list(iter(pair.requestor.next_event, None))
    assert isinstance(event, Aborted) and event.by == "us"
    assert pair.requestor.data_to_send() == AAbort(source=2, reason=6).encode()  # AA-8


def test_transport_closed_in_sta6_is_a_provider_abort() -> None:
    pair = associated_pair()
    pair.requestor.receive_data(b"", 0)
    event = pair.requestor.next_event()
    assert isinstance(event, Aborted) and event.by_provider and event.source is None
    assert event.by is None  # AA-4: no A-ABORT either way
    assert state(pair.requestor) is State.Sta1


def test_our_abort_stays_ours_when_the_peer_aborts_or_closes_right_after() -> None:
    """An unexpected PDU is answered with our A-ABORT (AA-8, Sta13); the peer's own
    A-ABORT (AA-2) or close (AR-5) in the same read ends in Sta1 before the user
    takes the event. The event still says the A-ABORT was ours: the state after
    it (Sta1, as after the peer's A-ABORT, AA-3) had the aio layer say "peer"."""
    release_rp = bytes.fromhex("06 00 00000004 00000000")
    for then in (AAbort(source=0, reason=0).encode(), b""):
        pair = associated_pair()
        pair.requestor.receive_data(release_rp + then, 0)
        if not then:
            pair.requestor.receive_data(b"", 0)
        assert state(pair.requestor) is State.Sta1
        [event] = pair.requestor.take_events()
        assert isinstance(event, Aborted) and (event.source, event.reason) == (2, 2)
        assert event.by == "us", then


def test_accepted_event_carries_the_ac() -> None:
    pair = ULPair()
    rq = build_associate_rq(
        calling_ae_title="A",
        called_ae_title="B",
        contexts=[ContextRequest(VERIFICATION, (IMPLICIT_LE,))],
    )
    pair.requestor.associate(rq)
    assert pair.requestor.wants_transport
    pair.connect()
    _, acc = pair.pump()
    request = acc[0]
    assert isinstance(request, AssociateRequested)
    ac = negotiate(request.pdu, AcceptorPolicy(contexts={VERIFICATION: None}))
    pair.acceptor.accept(ac)
    req, _ = pair.pump()
    assert req == [AssociateAccepted(ac)]


@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=300), one_by_one=st.booleans())
def test_any_bytes_to_an_acceptor_never_raise(data: bytes, one_by_one: bool) -> None:
    """Hostile bytes are events (an abort at worst), never an exception escaping."""
    acceptor = ULConnection("acceptor")
    acceptor.transport_connected(0)
    chunks = [data[i : i + 1] for i in range(len(data))] if one_by_one else [data]
    for chunk in chunks:
        acceptor.receive_data(chunk, 0)
    while acceptor.next_event() is not None:
        pass
    assert acceptor.state in (State.Sta2, State.Sta3, State.Sta13, State.Sta1)


@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=300))
def test_any_bytes_to_an_established_association_never_raise(data: bytes) -> None:
    pair = associated_pair()
    pair.requestor.receive_data(data, 0)
    while pair.requestor.next_event() is not None:
        pass


def test_a_half_close_after_the_release_request_waits_for_the_release_response() -> None:
    """PS3.8 7.2.2: after its A-RELEASE-RQ a requestor sends nothing but, at most, an
    A-ABORT. One that shuts its side (TCP FIN) before reading our answer has
    released in order: the end of its stream is held in Sta8 (no A-P-ABORT), our
    last P-DATA and the A-RELEASE-RP still go out, then Evt17 ends the
    association (AR-4, Sta13, AR-5). Before, Evt17 came at once (AA-4)."""
    pair = associated_pair()
    acceptor = pair.acceptor
    pair.requestor.release()
    acceptor.receive_data(pair.requestor.data_to_send(), 0)
    acceptor.receive_data(b"", 0)  # the requestor's FIN
    assert acceptor.next_event() == ReleaseRequested(collision=False)
    assert acceptor.next_event() is None  # no Aborted
    assert state(acceptor) is State.Sta8
    assert acceptor.half_closed and not acceptor.should_close
    acceptor.send_pdata(PDataTF((PresentationDataValue(1, True, True, b"rsp"),)))  # AR-7
    acceptor.release_response(0)
    # PDV: item length 5, context 1, command + last (0x03), "rsp"; then A-RELEASE-RP.
    assert bytes(acceptor.data_to_send()) == (
        bytes.fromhex("04 00 00000009 00000005 01 03") + b"rsp"
        + bytes.fromhex("06 00 00000004 00000000"))
    assert state(acceptor) is State.Sta1
    assert acceptor.should_close and not acceptor.half_closed
    assert acceptor.get_timer() is None  # AR-5 stopped the ARTIM that AR-4 started
    assert acceptor.next_event() is None


def test_a_half_close_in_a_release_collision_waits_for_the_release_response() -> None:
    """Sta12 (collision, acceptor side): the requestor's A-RELEASE-RP is in, ours
    is due; its FIN there is held as in Sta8."""
    pair = associated_pair()
    pair.requestor.release()
    pair.acceptor.release()
    req_rq, acc_rq = pair.requestor.data_to_send(), pair.acceptor.data_to_send()
    pair.requestor.receive_data(acc_rq, 0)
    pair.acceptor.receive_data(req_rq, 0)
    pair.requestor.release_response(0)  # AR-9 -> Sta11
    pair.acceptor.receive_data(pair.requestor.data_to_send(), 0)  # AR-10 -> Sta12
    pair.acceptor.receive_data(b"", 0)
    assert state(pair.acceptor) is State.Sta12 and pair.acceptor.half_closed
    assert pair.acceptor.next_event() == ReleaseRequested(collision=True)
    assert pair.acceptor.next_event() == ReleaseConfirmed()
    assert pair.acceptor.next_event() is None
    pair.acceptor.release_response(0)
    assert bytes(pair.acceptor.data_to_send()) == bytes.fromhex("06 00 00000004 00000000")
    assert state(pair.acceptor) is State.Sta1 and pair.acceptor.should_close


def test_a_held_half_close_ends_with_an_abort_instead() -> None:
    """Our user may abort rather than answer (AA-1: A-ABORT, Sta13): the held end
    of the stream then closes it (AR-5), no A-RELEASE-RP."""
    pair = associated_pair()
    pair.requestor.release()
    pair.acceptor.receive_data(pair.requestor.data_to_send(), 0)
    pair.acceptor.receive_data(b"", 0)
    pair.acceptor.abort(0)
    assert bytes(pair.acceptor.data_to_send()) == AAbort(source=0, reason=0).encode()
    assert state(pair.acceptor) is State.Sta1 and pair.acceptor.should_close
    assert not pair.acceptor.half_closed


def test_a_broken_transport_or_a_cut_pdu_after_the_release_request_still_aborts() -> None:
    """Only a clean end of stream between PDUs is held: a transport error in Sta8
    is Evt17 at once (AA-4), as is an end inside a PDU; so is a FIN in Sta6 or
    Sta7 (the peer still had to send: data, or its A-RELEASE-RP)."""
    for ending in ("error", "cut"):
        pair = associated_pair()
        pair.requestor.release()
        pair.acceptor.receive_data(pair.requestor.data_to_send(), 0)
        if ending == "error":
            pair.acceptor.transport_failed(0, "the peer reset the connection")
        else:
            pair.acceptor.receive_data(AAbort(source=0, reason=0).encode()[:4], 0)
            pair.acceptor.receive_data(b"", 0)
        assert pair.acceptor.next_event() == ReleaseRequested(collision=False)
        event = pair.acceptor.next_event()
        assert isinstance(event, Aborted) and event.by_provider and event.by is None, ending
        assert state(pair.acceptor) is State.Sta1 and not pair.acceptor.half_closed
    pair = associated_pair()
    pair.requestor.release()  # Sta7: the acceptor closes instead of answering
    pair.requestor.receive_data(b"", 0)
    event = pair.requestor.next_event()
    assert isinstance(event, Aborted) and event.detail == "the transport connection closed"
    assert event.by is None
    assert state(pair.requestor) is State.Sta1


def test_an_associate_rq_whose_maximum_length_leaves_no_room_for_data_is_refused() -> None:
    """A Maximum Length of 1 to 6 (PS3.8 D.1.1) leaves no room in a P-DATA-TF for
    one byte of PDV data (its item length, context ID and control header take 6):
    no response could ever be sent. Refused on receipt as an invalid PDU parameter
    value (A-ABORT, AA-1 in Sta2), not accepted to fail at the first response."""
    for maximum in (1, 6):
        acceptor = ULConnection("acceptor")
        acceptor.transport_connected(0)
        rq = build_associate_rq(calling_ae_title="A", called_ae_title="B",
                                contexts=[ContextRequest(VERIFICATION, (IMPLICIT_LE,))],
                                max_pdu_length=maximum)
        acceptor.receive_data(rq.encode(), 0)
        assert acceptor.next_event() is None
        assert state(acceptor) is State.Sta13
        assert acceptor.data_to_send() == AAbort(source=0, reason=0).encode()
        assert acceptor.refusal == (
            f"A-ASSOCIATE-RQ: Maximum Length {maximum} leaves no room for PDV data "
            "(PS3.8 D.1.1, 9.3.5); A-ABORT sent")
    # 7 carries one byte per PDV: legal, if slow; 0 is no limit.
    for maximum in (0, 7):
        pair = associated_pair(max_pdu_length=maximum)
        assert pair.requestor.peer_max_pdu_length == maximum


def test_an_associate_ac_whose_maximum_length_leaves_no_room_for_data_is_aborted() -> None:
    """The same on the requestor's side: the A-ASSOCIATE-AC is an invalid PDU
    (Evt19 in Sta5: AA-8, A-ABORT source 2 reason 6), the association is never
    established, and the user hears it as a provider abort."""
    pair = ULPair()
    pair.requestor.associate(build_associate_rq(
        calling_ae_title="A", called_ae_title="B",
        contexts=[ContextRequest(VERIFICATION, (IMPLICIT_LE,))]))
    pair.connect()
    _, acc = pair.pump()
    request = acc[0]
    assert isinstance(request, AssociateRequested)
    pair.acceptor.accept(negotiate(request.pdu, AcceptorPolicy(
        contexts={VERIFICATION: None}, max_pdu_length=3)))
    pair.requestor.receive_data(pair.acceptor.data_to_send(), 0)
    event = pair.requestor.next_event()
    assert isinstance(event, Aborted) and event.by_provider and event.source == 2
    assert event.by == "us"
    assert "Maximum Length 3 leaves no room for PDV data" in event.detail
    assert pair.requestor.data_to_send() == AAbort(source=2, reason=6).encode()
    assert state(pair.requestor) is State.Sta13


def test_an_associate_ac_accepting_a_transfer_syntax_not_proposed_is_aborted() -> None:
    """PS3.8 7.1.1.14: an accepted context names one of the transfer syntaxes
    proposed for it. A peer that accepts Explicit VR Little Endian in Explicit VR
    Big Endian, never offered, had our SCU convert the object and send it so: the
    AC is an invalid PDU parameter value instead (AA-8, A-ABORT reason 6). A
    rejected context's transfer syntax is not significant (PS3.8 Table 9-18) and
    still not looked at."""
    explicit_be = "1.2.840.10008.1.2.2"
    explicit_le = "1.2.840.10008.1.2.1"
    for result, accepted in ((0, False), (3, True)):
        pair = ULPair()
        pair.requestor.associate(build_associate_rq(
            calling_ae_title="A", called_ae_title="B",
            contexts=[ContextRequest(VERIFICATION, (IMPLICIT_LE,)),
                      ContextRequest(VERIFICATION, (explicit_le,))]))
        pair.connect()
        _, acc = pair.pump()
        request = acc[0]
        assert isinstance(request, AssociateRequested)
        ac = negotiate(request.pdu, AcceptorPolicy(contexts={VERIFICATION: None}))
        wrong = tuple(PresentationContextACItem(pc.context_id, result, explicit_be)
                      if pc.context_id == 3 else pc for pc in ac.presentation_contexts)
        pair.requestor.receive_data(replace(ac, presentation_contexts=wrong).encode(), 0)
        event = pair.requestor.next_event()
        if accepted:
            assert isinstance(event, AssociateAccepted) and state(pair.requestor) is State.Sta6
            continue
        assert isinstance(event, Aborted) and event.by_provider and event.source == 2
        assert event.by == "us"
        assert event.detail.endswith(
            f"A-ASSOCIATE-AC accepts presentation context 3 in transfer syntax {explicit_be}, "
            "which was not proposed for it (PS3.8 7.1.1.14)")
        assert pair.requestor.data_to_send() == AAbort(source=2, reason=6).encode()
        assert state(pair.requestor) is State.Sta13


def test_consume_pdv_data_counts_the_bytes_a_driver_took_itself() -> None:
    """An established association's PDV data taken by the driver (received in
    place): the PDU counted once its last byte is in; before association, nothing."""
    from dicomnet.ul.framing import NOT_TAKEN, PDU_ENDED, TAKEN

    pair = associated_pair()
    pair.requestor.send_pdata(encode_pdata(1, False, True, bytes(300)))
    wire = bytes(pair.requestor.data_to_send())
    acceptor = pair.acceptor
    before = acceptor.pdus_received
    acceptor.receive_data(wire[:12 + 100], pair.now)
    assert [type(e) for e in acceptor.take_events()] == [DataReceived]
    assert acceptor.consume_pdv_data(150, pair.now) == TAKEN
    assert acceptor.pdus_received == before
    assert acceptor.consume_pdv_data(50, pair.now) == PDU_ENDED
    assert acceptor.pdus_received == before + 1 and not acceptor.has_partial_pdu
    assert ULConnection("acceptor").consume_pdv_data(10, pair.now) == NOT_TAKEN


def test_has_data_to_send_says_whether_chunks_to_send_has_any() -> None:
    pair = associated_pair()
    assert not pair.requestor.has_data_to_send
    pair.requestor.send_pdata(encode_pdata(1, True, True, b"\x01"))
    assert pair.requestor.has_data_to_send
    assert pair.requestor.chunks_to_send()
    assert not pair.requestor.has_data_to_send
