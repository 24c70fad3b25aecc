"""dimse.store_codec.decode_store_rsp: a C-STORE-RSP received (a Storage SCU reads
one per object) in the layout SCPs send a Success in is decoded without
``decode_command``'s loop, into the message ``decode_message`` makes; anything
else is left to ``decode_message`` (None), which fails as it did. Only a
requestor's connection tries it first."""

from __future__ import annotations

import random

import pytest

from dicomnet.dimse import store_codec
from dicomnet.dimse.commands import encode_command
from dicomnet.dimse.connection import DimseConnection
from dicomnet.dimse.messages import (
    CStoreRQ,
    CStoreRSP,
    decode_store_rsp,
    encode_message,
)
from dicomnet.ul.pdata import PresentationDataValue
from tests.aio.test_receive_path_calls import python_calls
from tests.dimse.decoding import decoded

CT = "1.2.840.10008.5.1.4.1.1.2"


def _general(data: bytes | bytearray | memoryview) -> object:
    """What a connection made of ``data`` before (decode_message)."""
    return decoded(data)


def _now(data: bytes | bytearray | memoryview) -> object:
    """What a requestor's connection makes of it now (DimseConnection._receive_command)."""
    return decoded(data, decode_store_rsp)


def _rsp(instance: str = "1.2.3.4", status: int = 0, message_id: int = 7,
         sop_class: str = CT) -> bytes:
    return encode_command({0x0002: sop_class, 0x0100: 0x8001, 0x0120: message_id,
                           0x0800: 0x0101, 0x0900: status, 0x1000: instance})


def test_a_c_store_rsp_is_decoded_in_one_python_call() -> None:
    """Group length, UIDs, Command Field and Data Set Type checked by two struct
    reads; the message built as its ``__init__`` would (decode_message makes
    three calls: itself, decode_command and the dataclass ``__init__``, whose
    loop and kwargs made ~780 byte code instructions of the SCU's ~9,500 per
    image). The same message, equal and whole (every field set)."""
    data = _rsp("1.2.3.4.5", status=0xB000, message_id=65535)
    decode_store_rsp(data)  # the class's UID decoded once
    got: list[object] = []
    assert python_calls(lambda: got.append(decode_store_rsp(data))) == ["decode_store_rsp"]
    expected = CStoreRSP(message_id_being_responded_to=65535, status=0xB000,
                         affected_sop_class_uid=CT, affected_sop_instance_uid="1.2.3.4.5")
    assert got == [expected] == [_general(data)]
    assert repr(got[0]) == repr(expected) and hash(got[0]) == hash(expected)
    assert decode_store_rsp(bytearray(data)) == decode_store_rsp(memoryview(data)) == expected


def test_only_a_requestor_s_connection_tries_it() -> None:
    """A requestor (``ClientAssociation`` sets ``store_responses_first``) tries
    each command set as a C-STORE-RSP first; an SCP's connection, reading a
    C-STORE-RQ per object, never does: not one call more there."""
    rq = CStoreRQ(message_id=3, affected_sop_class_uid=CT, affected_sop_instance_uid="1.2.3")
    wire = encode_message(rq)
    acceptor = DimseConnection()
    calls = python_calls(lambda: acceptor.receive_pdv(PresentationDataValue(1, True, True, wire)))
    assert "decode_store_rsp" not in calls and "decode_message" in calls
    requestor = DimseConnection()
    requestor.store_responses_first = True
    events: list[object] = []
    calls = python_calls(lambda: events.extend(
        requestor.receive_pdv(PresentationDataValue(1, True, True, _rsp()))))
    assert "decode_store_rsp" in calls and "decode_message" not in calls
    assert [getattr(e, "message", None) for e in events] == [_general(_rsp())]
    # A request (a C-GET's C-STORE sub-operation): decoded as before.
    got = requestor.receive_pdv(PresentationDataValue(1, True, True, wire))
    assert [getattr(e, "message", None) for e in got] == [rq]


@pytest.mark.parametrize("data", [
    _rsp(),
    _rsp(instance=""),  # an empty UID: kept empty, as the general path keeps it
    _rsp(instance="1.2.3 "),  # padded with a space by some peers
    _rsp(sop_class="1.2.3.4.5", instance="1.2"),  # an odd UID, NUL padded
    _rsp(sop_class=""),
    encode_command({0x0002: CT, 0x0100: 0x8001, 0x0120: 1, 0x0800: 0x0101, 0x0900: 0xC000,
                    0x0902: "no room", 0x1000: "1.2"}),  # an Error Comment: general path
    encode_command({0x0002: CT, 0x0100: 0x8001, 0x0120: 1, 0x0800: 0x0001, 0x0900: 0,
                    0x1000: "1.2"}),  # a data set said to follow: refused
    encode_command({0x0100: 0x8001, 0x0120: 1, 0x0800: 0x0101, 0x0900: 0,
                    0x1000: "1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16.17.18.19.20"}),  # no class
    encode_command({0x0002: CT, 0x0100: 0x8030, 0x0120: 1, 0x0800: 0x0101, 0x0900: 0,
                    0x1000: "1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16.17.18.19.20"}),  # C-ECHO
    _rsp()[:-2],  # cut short
    _rsp() + b"\x00\x00",  # a stray tail
    _rsp().replace(b"1.2.3.4", b"1.2.\xe9.4"),  # not ASCII
    _rsp(instance="1.2\x00\x00"),  # NULs within the value: stripped at its end only
])
def test_each_layout_decodes_as_the_general_path_does(data: bytes) -> None:
    store_codec._STORE_RSP_CLASSES.clear()
    first, again = _now(data), _now(data)  # the class looked up, then remembered
    assert first == again == _general(data)


def test_any_byte_changed_decodes_as_the_general_path_does() -> None:
    """Each byte of a Success changed in turn, to values that break or keep each
    check: the same message, or the same error."""
    data = _rsp("1.2.840.113619.2.55.3.604688119.969.1268071029.320")
    rng = random.Random(4)
    for index in range(len(data)):
        for value in {0, 1, 2, 0x80, 0x30, 0xFF, rng.randrange(256), data[index] ^ 1}:
            changed = data[:index] + bytes([value]) + data[index + 1:]
            store_codec._STORE_RSP_CLASSES.clear()
            assert _now(changed) == _general(changed), (index, value)


def test_the_classes_remembered_are_bounded() -> None:
    """A peer naming ever new classes (or junk) fills no memory: past the bound,
    each is decoded as it comes."""
    store_codec._STORE_RSP_CLASSES.clear()
    for number in range(200):
        data = _rsp(sop_class=f"1.2.{number}")
        assert decode_store_rsp(data) == _general(data)
    assert len(store_codec._STORE_RSP_CLASSES) == 64
    # Decoded each time past the bound, the same message.
    last = decode_store_rsp(_rsp(sop_class="1.2.199"))
    assert isinstance(last, CStoreRSP) and last.affected_sop_class_uid == "1.2.199"
