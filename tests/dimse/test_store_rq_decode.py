"""dimse.store_codec.decode_store_rq: a C-STORE-RQ received (a Storage SCP reads
one per object) in the layout of PS3.7 9.3.1.1's table, with or without the
Move Originator elements, is decoded without ``decode_command``'s loop, into
the message ``decode_message`` makes; anything else is left to
``decode_message`` (None), which decodes it or fails as it did. Only an
acceptor's connection (``store_requests_first``) tries it first."""

from __future__ import annotations

import asyncio
import random
from types import SimpleNamespace

import pytest

from dicomnet.dimse import store_codec
from dicomnet.dimse.commands import encode_command
from dicomnet.dimse.connection import DimseConnection, MessageReceived
from dicomnet.dimse.messages import (
    CStoreRQ,
    CStoreRSP,
    decode_store_rq,
    encode_message,
)
from dicomnet.errors import RemoteProtocolError
from dicomnet.ul.pdata import PresentationDataValue
from tests.aio.test_receive_path_calls import python_calls
from tests.dimse.decoding import decoded

CT = "1.2.840.10008.5.1.4.1.1.2"
LONG_UID = "1.2.840.113619.2.55.3.604688119.969.1268071029.320"


def _general(data: bytes | bytearray | memoryview) -> object:
    """What a connection made of ``data`` before (decode_message)."""
    return decoded(data)


def _now(data: bytes | bytearray | memoryview) -> object:
    """What an acceptor's connection makes of it now (DimseConnection._receive_command)."""
    return decoded(data, decode_store_rq)


def _rq(instance: object = "1.2.3.4", *, sop_class: object = CT, message_id: int = 7,
        priority: int = 0, data_set_type: int = 0x0001, originator: object = None,
        originator_id: int | None = None) -> bytes:
    """A C-STORE-RQ's command set, its values as given (``bytes`` are written as
    they are: padding of one's own)."""
    return encode_command({0x0002: sop_class, 0x0100: 0x0001, 0x0110: message_id,
                           0x0700: priority, 0x0800: data_set_type, 0x1000: instance,
                           0x1030: originator, 0x1031: originator_id})


def test_a_c_store_rq_is_decoded_in_one_python_call() -> None:
    """Group length, UIDs, Command Field, Message ID, Priority and Data Set Type
    checked by two struct reads; the message built as its ``__init__`` would
    (``decode_message`` makes three calls: itself, ``decode_command`` and the
    dataclass ``__init__``, ~840 byte code instructions per image on a
    server's loop). The same message, equal and whole (every field set)."""
    data = _rq("1.2.3.4.5", message_id=65535, priority=2)
    decode_store_rq(data)  # the class's UID decoded once
    got: list[object] = []
    assert python_calls(lambda: got.append(decode_store_rq(data))) == ["decode_store_rq"]
    expected = CStoreRQ(message_id=65535, affected_sop_class_uid=CT,
                        affected_sop_instance_uid="1.2.3.4.5", priority=2)
    assert got == [expected] == [_general(data)]
    assert repr(got[0]) == repr(expected) and hash(got[0]) == hash(expected)
    assert decode_store_rq(bytearray(data)) == decode_store_rq(memoryview(data)) == expected
    # What encode_message sends, read back.
    sent = CStoreRQ(message_id=9, affected_sop_class_uid=CT, affected_sop_instance_uid=LONG_UID)
    assert decode_store_rq(encode_message(sent)) == sent


def test_a_c_move_s_sub_operation_is_decoded_with_its_originator() -> None:
    """A C-STORE-RQ a C-MOVE SCP sends (PS3.4 C.4.2.3.1): Move Originator AE Title
    and Message ID (PS3.7 9.3.1.1) read by a third struct read and a decode; the
    AE title stripped of spaces at both ends, as the general path strips it."""
    data = _rq(LONG_UID, originator=" MOVESCU ", originator_id=12)
    got: list[object] = []
    decode_store_rq(data)
    assert python_calls(lambda: got.append(decode_store_rq(data))) == ["decode_store_rq"]
    expected = CStoreRQ(message_id=7, affected_sop_class_uid=CT,
                        affected_sop_instance_uid=LONG_UID,
                        move_originator_ae_title="MOVESCU", move_originator_message_id=12)
    assert got == [expected] == [_general(data)]
    sent = CStoreRQ(message_id=3, affected_sop_class_uid=CT, affected_sop_instance_uid="1.2",
                    priority=1, move_originator_ae_title="A", move_originator_message_id=0)
    assert decode_store_rq(encode_message(sent)) == sent


CASES = [
    _rq(),
    _rq("1.2.3"),  # odd, NUL padded
    _rq(sop_class="1.2.3.4.5", instance="1.2"),  # an odd class, an even instance
    _rq(b"1.2.3 "),  # padded with a space by some peers
    _rq(b"1.2\x00\x00"),  # NULs: stripped at the end only
    _rq(b"1.2 \x00 "),
    _rq(b"1.\x002"),  # a NUL within: kept, as the general path keeps it
    _rq(" 1.2"),  # a leading space: kept
    _rq(""),  # an empty UID: the general path's error
    _rq(b"  "),
    _rq(b"\x00\x00"),
    _rq(sop_class=""),
    _rq(sop_class=b" \x00"),
    _rq(sop_class=b"1.2.\xe9.4"),  # not ASCII
    _rq(b"1.2.\xe9.4"),
    *[_rq(priority=priority) for priority in (0, 1, 2, 3, 0x0100, 0xFFFF)],
    *[_rq(data_set_type=value) for value in (0x0101, 0x0001, 0x0000, 0x0102, 0xFEFE, 0xFFFF)],
    _rq(message_id=0),
    _rq(message_id=65535),
    _rq(originator="STORESCU", originator_id=1),
    _rq(originator="ODD", originator_id=0xFFFF),  # an odd AE title, space padded
    _rq(originator=b"\x00ODD\x00 ", originator_id=1),
    _rq(originator="", originator_id=1),  # empty: kept empty (optional)
    _rq(originator=b"  ", originator_id=1),
    _rq(originator=b"\xe9A", originator_id=1),  # not ASCII: refused
    _rq(originator="ONLYAE"),  # one of the pair: the general path's
    _rq(originator_id=5),
    _rq(LONG_UID, originator="A" * 16, originator_id=2),
    encode_command({0x0002: CT, 0x0100: 0x0001, 0x0110: 1, 0x0800: 0x0001,
                    0x1000: "1.2"}),  # no Priority: MEDIUM, by the general path
    encode_command({0x0002: CT, 0x0100: 0x0001, 0x0110: 1, 0x0700: 0, 0x0800: 0x0001,
                    0x1000: "1.2", 0x1031: 3, 0x2000: b"x"}),  # an unknown element
    encode_command({0x0002: CT, 0x0100: 0x0001, 0x0110: 1, 0x0700: 0, 0x0800: 0x0001,
                    0x1000: "1.2", 0x1030: "A", 0x1031: 3, 0x1032: b"xx"}),
    encode_command({0x0002: CT, 0x0100: 0x0001, 0x0110: 1, 0x0700: 0, 0x0800: 0x0001,
                    0x1000: "1.2", 0x1001: "1.3"}),  # another element after the instance
    encode_command({0x0002: CT, 0x0100: 0x8001, 0x0120: 1, 0x0800: 0x0101, 0x0900: 0,
                    0x1000: "1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16.17.18.19.20"}),  # an RSP
    encode_command({0x0002: CT, 0x0100: 0x0020, 0x0110: 1, 0x0700: 0, 0x0800: 0x0001,
                    0x1000: "1.2.3.4.5.6.7.8.9.10.11.12.13.14.15"}),  # C-FIND's field
    encode_command({0x0100: 0x0001, 0x0110: 1, 0x0700: 0, 0x0800: 0x0001,
                    0x1000: "1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16.17.18.19.20"}),  # no class
    _rq()[12:],  # no group length (tolerated by the general path)
    _rq()[:-2],  # cut short
    _rq() + b"\x00\x00",  # a stray tail
    _rq(originator="AB", originator_id=1)[:-1],
    _rq(originator="AB", originator_id=1) + b"\x00",
]


@pytest.mark.parametrize("data", CASES)
def test_each_layout_decodes_as_the_general_path_does(data: bytes) -> None:
    store_codec._STORE_RQ_CLASSES.clear()
    first, again = _now(data), _now(data)  # the class looked up, then remembered
    assert first == again == _general(data)


def test_the_usual_layouts_take_the_fast_path() -> None:
    """Not None for the layouts this is for: both priorities an SCU sets, a data
    set or none, odd and even UIDs padded either way, with a Move Originator."""
    for data in (_rq(), _rq("1.2.3"), _rq(b"1.2.3 "), _rq(priority=1), _rq(priority=2),
                 _rq(data_set_type=0x0101), _rq(data_set_type=0xFEFE),
                 _rq(originator="ODD", originator_id=2), _rq(originator="", originator_id=2)):
        assert decode_store_rq(data) == _general(data)
        assert decode_store_rq(data) is not None


def test_any_byte_changed_decodes_as_the_general_path_does() -> None:
    """Each byte of a C-STORE-RQ, with and without its Move Originator, changed in
    turn to values that break or keep each check: the same message, or the same
    error; every truncation too."""
    rng = random.Random(31)
    for data in (_rq(LONG_UID, sop_class="1.2.840.10008.5.1.4.1.1.7"),
                 _rq("1.2.3", priority=1, originator="ODD", originator_id=513)):
        assert decode_store_rq(data) is not None
        for index in range(len(data)):
            for value in {0, 1, 2, 3, 0x20, 0x80, 0x30, 0xFF, rng.randrange(256),
                          data[index] ^ 1}:
                changed = data[:index] + bytes([value]) + data[index + 1:]
                store_codec._STORE_RQ_CLASSES.clear()
                assert _now(changed) == _general(changed), (index, value)
        for size in range(len(data)):
            assert _now(data[:size]) == _general(data[:size]), size


def test_the_classes_remembered_are_bounded() -> None:
    """A peer naming ever new classes (or junk) fills no memory: past the bound,
    each is decoded as it comes."""
    store_codec._STORE_RQ_CLASSES.clear()
    for number in range(200):
        data = _rq(sop_class=f"1.2.{number}")
        assert decode_store_rq(data) == _general(data)
    assert len(store_codec._STORE_RQ_CLASSES) == store_codec.HEADS_KEPT
    last = decode_store_rq(_rq(sop_class="1.2.199"))
    assert isinstance(last, CStoreRQ) and last.affected_sop_class_uid == "1.2.199"


def test_only_a_connection_told_to_tries_it() -> None:
    """``store_requests_first`` (an acceptor's): each command set tried as a
    C-STORE-RQ first, no ``decode_message`` call for one; a connection without
    it never calls ``decode_store_rq``. Anything else still decoded as before,
    a C-STORE-RSP by a requestor that also takes requests first among them."""
    wire = _rq(LONG_UID)
    plain = DimseConnection()
    calls = python_calls(lambda: plain.receive_pdv(PresentationDataValue(1, True, True, wire)))
    assert "decode_store_rq" not in calls and "decode_message" in calls
    acceptor = DimseConnection()
    acceptor.store_requests_first = True
    events: list[object] = []
    calls = python_calls(lambda: events.extend(
        acceptor.receive_pdv(PresentationDataValue(1, True, True, wire))))
    assert "decode_store_rq" in calls and "decode_message" not in calls
    assert events == [MessageReceived(1, _general(wire))]  # type: ignore[arg-type]
    assert acceptor.expecting_dataset
    acceptor.receive_pdv(PresentationDataValue(1, False, True, b""))
    rsp = encode_message(CStoreRSP(message_id_being_responded_to=1, status=0,
                                   affected_sop_class_uid=CT, affected_sop_instance_uid="1.2"))
    both = DimseConnection()
    both.store_requests_first = both.store_responses_first = True
    for data in (rsp, wire, _rq(priority=5)):
        try:
            got: object = [e.message for e in both.receive_pdv(  # type: ignore[union-attr]
                PresentationDataValue(1, True, True, data))]
        except RemoteProtocolError as exc:
            got = [str(exc)]
        assert got == [_general(data)]
        if both.expecting_dataset:
            both.receive_pdv(PresentationDataValue(1, False, True, b""))


def test_a_server_s_association_decodes_through_it() -> None:
    """``ServerAssociation`` sets ``store_requests_first``: a C-STORE-RQ read on a
    server's loop is decoded by ``decode_store_rq``, not ``decode_message``, and
    routed as before (its Message ID claimed, its sink opened)."""
    from dicomnet.aio.server_association import ServerAssociation
    from dicomnet.config import Limits, Timeouts
    from dicomnet.testing import associated_pair
    from dicomnet.ul.pdu import encode_pdata

    store = CStoreRQ(message_id=3, affected_sop_class_uid=CT,
                     affected_sop_instance_uid="1.2.3.4.5.6",
                     move_originator_ae_title="MOVER", move_originator_message_id=4)

    async def main() -> None:
        pair = associated_pair()
        server = SimpleNamespace(timeouts=Timeouts(), limits=Limits(), _providers={})
        association = ServerAssociation(server, SimpleNamespace(), pair.acceptor)  # type: ignore[arg-type]
        assert association.dimse.store_requests_first
        assert not association.dimse.store_responses_first
        association._route_pdata = True  # as start_receiving finds it on a server
        association.ul.receive_data(encode_pdata(1, True, True, encode_message(store)), 0.0)
        calls = python_calls(lambda: association._take_events())  # noqa: PLW0108 (its first call is dropped)
        assert "decode_store_rq" in calls and "decode_message" not in calls
        incoming = association._incoming
        assert incoming is not None and incoming[:2] == (1, store)

    asyncio.run(main())


def test_a_c_get_scu_s_association_decodes_through_it() -> None:
    """``ClientAssociation`` sets ``store_requests_first`` once its contexts are
    known when it is the SCP of one by role selection (a C-GET SCU, sent a
    C-STORE-RQ per object it gets: PS3.7 9.1.3, D.3.3.4): such a request is
    decoded by ``decode_store_rq``, not ``decode_message``, after the C-STORE-RSP
    tried first. A Storage SCU's association (no SCP role) leaves it unset."""
    from dicomnet.aio.client import ClientAssociation
    from dicomnet.config import Timeouts
    from dicomnet.testing import associated_pair
    from dicomnet.ul.negotiation import (
        AcceptorPolicy,
        ContextRequest,
        accepted_contexts,
        build_associate_rq,
        negotiate,
    )
    from dicomnet.ul.pdu import encode_pdata

    explicit = "1.2.840.10008.1.2.1"
    get = ContextRequest(CT, (explicit,), scp_role=True)
    store = ContextRequest(CT, (explicit,))
    rq_message = CStoreRQ(message_id=5, affected_sop_class_uid=CT,
                          affected_sop_instance_uid="1.2.3.4.5.6")

    async def association(context: ContextRequest) -> ClientAssociation:
        policy = AcceptorPolicy(contexts={CT: None}, roles={CT: (True, True)})
        pair = associated_pair((context,), policy)
        closed = SimpleNamespace(writer=SimpleNamespace(transport=SimpleNamespace(
            is_closing=lambda: True)))  # nothing to close when collected
        assoc = ClientAssociation(closed, pair.requestor, Timeouts())  # type: ignore[arg-type]
        rq = build_associate_rq(calling_ae_title="REQUESTOR", called_ae_title="ACCEPTOR",
                                contexts=(context,))
        assoc.contexts = accepted_contexts(rq, negotiate(rq, policy))
        assoc._roles_known()
        return assoc

    async def main() -> None:
        plain = await association(store)
        assert not plain.dimse.store_requests_first and plain.dimse.store_responses_first
        assoc = await association(get)
        assert assoc.contexts[1].requestor_is_scp
        assert assoc.dimse.store_requests_first and assoc.dimse.store_responses_first
        assoc.ul.receive_data(encode_pdata(1, True, True, encode_message(rq_message)), 0.0)
        calls = python_calls(lambda: assoc._take_events())  # noqa: PLW0108 (its first call is dropped)
        assert "decode_store_rq" in calls and "decode_message" not in calls
        # Decoded as decode_message would: the same message reached the router.
        assert decode_store_rq(encode_message(rq_message)) == rq_message

    asyncio.run(main())
