"""dimse.messages: a C-STORE-RSP received (an SCU reads one per object) in the
layout SCPs send a Success in is decoded without ``decode_command``'s loop, into
the message the general path makes; anything else takes that path, and fails
as it did."""

from __future__ import annotations

import random

import pytest

from dicomnet.dimse import messages
from dicomnet.dimse.commands import encode_command
from dicomnet.dimse.messages import CStoreRQ, CStoreRSP, decode_message, encode_message
from dicomnet.errors import RemoteProtocolError
from tests.aio.test_receive_path_calls import python_calls

CT = "1.2.840.10008.5.1.4.1.1.2"


def _general(data: bytes) -> CStoreRSP | str:
    """What decode_message made of ``data`` before the fast path: the message, or
    the error's words."""
    fast = messages._store_rsp
    messages._store_rsp = lambda data: None
    try:
        return decode_message(data)  # type: ignore[return-value]
    except RemoteProtocolError as exc:
        return str(exc)
    finally:
        messages._store_rsp = fast


def _now(data: bytes | bytearray | memoryview) -> object:
    try:
        return decode_message(data)
    except RemoteProtocolError as exc:
        return str(exc)


def _rsp(instance: str = "1.2.3.4", status: int = 0, message_id: int = 7,
         sop_class: str = CT) -> bytes:
    return encode_command({0x0002: sop_class, 0x0100: 0x8001, 0x0120: message_id,
                           0x0800: 0x0101, 0x0900: status, 0x1000: instance})


def test_a_c_store_rsp_is_decoded_in_one_python_call_more() -> None:
    """Group length, UIDs, Command Field and Data Set Type checked by two struct
    reads; the message built as its ``__init__`` would (two calls before:
    decode_command and the dataclass ``__init__``, whose loop and kwargs made
    ~780 byte code instructions of the SCU's ~9,500 per image). The same
    message, equal and whole (every field set)."""
    data = _rsp("1.2.3.4.5", status=0xB000, message_id=65535)
    decode_message(data)  # the class's UID decoded once
    got: list[object] = []
    calls = python_calls(lambda: got.append(decode_message(data)))
    assert calls == ["decode_message", "_store_rsp"]
    expected = CStoreRSP(message_id_being_responded_to=65535, status=0xB000,
                         affected_sop_class_uid=CT, affected_sop_instance_uid="1.2.3.4.5")
    assert got == [expected] == [_general(data)]
    assert repr(got[0]) == repr(expected) and hash(got[0]) == hash(expected)
    assert decode_message(bytearray(data)) == decode_message(memoryview(data)) == expected


def test_a_c_store_rq_does_not_enter_it() -> None:
    """An SCP reads a C-STORE-RQ per object: its Command Field's high byte (0x00,
    a request) keeps it off the fast path, without a call."""
    rq = CStoreRQ(message_id=3, affected_sop_class_uid=CT, affected_sop_instance_uid="1.2.3")
    data = encode_message(rq)
    assert "_store_rsp" not in python_calls(lambda: decode_message(data))
    assert decode_message(data) == rq


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
    messages._STORE_RSP_CLASSES.clear()
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
            messages._STORE_RSP_CLASSES.clear()
            assert _now(changed) == _general(changed), (index, value)


def test_the_classes_remembered_are_bounded() -> None:
    """A peer naming ever new classes (or junk) fills no memory: past the bound,
    each is decoded as it comes."""
    messages._STORE_RSP_CLASSES.clear()
    for number in range(200):
        data = _rsp(sop_class=f"1.2.{number}")
        assert decode_message(data) == _general(data)
    assert len(messages._STORE_RSP_CLASSES) == 64
    # Decoded each time past the bound, the same message.
    last = decode_message(_rsp(sop_class="1.2.199"))
    assert isinstance(last, CStoreRSP) and last.affected_sop_class_uid == "1.2.199"
