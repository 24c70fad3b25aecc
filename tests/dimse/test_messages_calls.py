"""dimse.messages: what encoding a message costs, counted (not timed): a server
encodes one response per object it receives."""

from __future__ import annotations

import sys
import types
from collections import Counter

import pytest

from dicomnet.dimse.commands import encode_command
from dicomnet.dimse.fragments import command_pdus
from dicomnet.dimse.messages import (
    DATA_SET_PRESENT,
    CStoreRQ,
    CStoreRSP,
    decode_message,
    encode_message,
)
from dicomnet.errors import LocalProtocolError


def test_a_c_store_rsp_of_a_class_answered_before_costs_two_python_calls() -> None:
    """A server encodes one C-STORE-RSP per object it receives, most of a class it
    answered before: its SOP Class and Command Field elements are kept encoded by
    SOP Class, the three US elements (Message ID Being Responded To, Data Set
    Type, Status) packed at once, only the SOP Instance UID encoded each time
    (8 Python calls before: the comprehension, 6 encoders and the data set
    type's). No ``getattr``; each UID's length and the body's taken once."""
    rsp = CStoreRSP(message_id_being_responded_to=7, status=0,
                    affected_sop_class_uid="1.2.840.10008.5.1.4.1.1.7",
                    affected_sop_instance_uid="1.2.3.4.5")
    encode_message(rsp)  # the class's elements kept encoded
    builtins: Counter[str] = Counter()
    python: Counter[str] = Counter()

    def profile(frame: types.FrameType, event: str, arg: object) -> None:
        if event == "c_call":
            builtins[getattr(arg, "__name__", "?")] += 1
        elif event == "call":
            python[frame.f_code.co_name] += 1

    sys.setprofile(profile)
    try:
        encoded = encode_message(rsp)
    finally:
        sys.setprofile(None)
    assert encoded == encode_command({0x0002: rsp.affected_sop_class_uid, 0x0100: 0x8001,
                                      0x0120: 7, 0x0800: 0x0101, 0x0900: 0,
                                      0x1000: rsp.affected_sop_instance_uid})
    assert builtins["getattr"] == 0
    assert builtins["len"] <= 2  # the instance UID's, and the body's
    assert sum(python.values()) <= 2, python


def test_c_store_rsp_variants_encode_as_encode_command_does() -> None:
    """The fast path and the general one give encode_command's bytes: a Warning with
    its comment, an Error ID, offending elements, no SOP Class or Instance, the
    largest Message ID; a value out of range is refused, as before."""
    sop_class = "1.2.840.10008.5.1.4.1.1.2"
    variants = [
        CStoreRSP(message_id_being_responded_to=1, status=0, affected_sop_class_uid=sop_class,
                  affected_sop_instance_uid="1.2.3"),
        CStoreRSP(message_id_being_responded_to=65535, status=0xB000,
                  affected_sop_class_uid=sop_class, affected_sop_instance_uid="1.2.34",
                  error_comment="coerced"),
        CStoreRSP(message_id_being_responded_to=2, status=0xA700, error_id=3,
                  affected_sop_class_uid=sop_class, affected_sop_instance_uid="1.2.3"),
        CStoreRSP(message_id_being_responded_to=2, status=0xC000,
                  offending_element=(0x00100010,), affected_sop_class_uid=sop_class,
                  affected_sop_instance_uid="1.2.3"),
        CStoreRSP(message_id_being_responded_to=2, status=0x0211),
        CStoreRSP(message_id_being_responded_to=2, status=0x0112,
                  affected_sop_class_uid=sop_class),
    ]
    for rsp in variants:
        assert encode_message(rsp) == encode_command({
            0x0002: rsp.affected_sop_class_uid, 0x0100: 0x8001,
            0x0120: rsp.message_id_being_responded_to, 0x0800: 0x0101,
            0x0900: rsp.status, 0x0901: rsp.offending_element,
            0x0902: rsp.error_comment, 0x0903: rsp.error_id,
            0x1000: rsp.affected_sop_instance_uid}), rsp
    for bad in (CStoreRSP(message_id_being_responded_to=65536, status=0,
                          affected_sop_class_uid=sop_class, affected_sop_instance_uid="1.2"),
                CStoreRSP(message_id_being_responded_to=1, status=-1,
                          affected_sop_class_uid=sop_class, affected_sop_instance_uid="1.2"),
                CStoreRSP(message_id_being_responded_to=1, status=0,
                          affected_sop_class_uid=sop_class, affected_sop_instance_uid="1.\xe9")):
        with pytest.raises(LocalProtocolError):
            encode_message(bad)


def test_decoding_a_c_store_rq_calls_little_but_the_header_unpacks() -> None:
    """Per element of a received command set: its header's unpack, and for a text
    value its decode and strip; no dictionary ``get`` nor a second unpack for a
    US value. Same message as before."""
    rq = CStoreRQ(message_id=3, affected_sop_class_uid="1.2.840.10008.5.1.4.1.1.7",
                  affected_sop_instance_uid="1.2.3.4.5", priority=2)
    data = encode_message(rq)
    builtins: Counter[str] = Counter()

    def profile(frame: types.FrameType, event: str, arg: object) -> None:
        if event == "c_call":
            builtins[getattr(arg, "__name__", "?")] += 1

    sys.setprofile(profile)
    try:
        decoded = decode_message(data)
    finally:
        sys.setprofile(None)
    assert decoded == rq
    del builtins["setprofile"]
    # Group length, class UID, command field, message ID, priority, data set
    # type, instance UID: 7 headers; 2 UIDs decoded and stripped; the length.
    assert builtins == Counter({"unpack_from": 8, "decode": 2, "rstrip": 2, "len": 1})


def test_a_command_goes_into_its_pdu_in_one_python_call() -> None:
    """A command set that fits one PDV: ``command_pdus`` alone, the checks of the
    context ID and the maximum length and the header's pack (``encode_pdata``'s,
    a call each before) written out in it; the PDU's bytes as before."""
    entered: list[str] = []

    def profile(frame: types.FrameType, event: str, arg: object) -> None:
        if event == "call":
            entered.append(frame.f_code.co_name)

    sys.setprofile(profile)
    try:
        pdus = command_pdus(3, b"\x01\x02\x03\x04", 16384)
    finally:
        sys.setprofile(None)
    assert pdus == [b"\x04\x00\x00\x00\x00\x0a\x00\x00\x00\x06\x03\x03\x01\x02\x03\x04"]
    assert entered == ["command_pdus"]


def test_a_c_store_rq_of_a_sop_class_sent_before_costs_three_encoder_calls() -> None:
    """An SCU encodes one C-STORE-RQ per object, most of a class it sent before:
    its SOP Class, Command Field, Priority and Data Set Type elements are kept
    encoded by SOP Class, only the Message ID and SOP Instance UID are encoded
    each time (9 Python calls before: the comprehension and 7 encoders). Same
    bytes as encode_command's; another priority, a data set absent or a move
    originator take the general path."""
    sop_class = "1.2.840.10008.5.1.4.1.1.7.9"
    variants = [
        CStoreRQ(message_id=1, affected_sop_class_uid=sop_class,
                 affected_sop_instance_uid="1.2.3.4"),
        CStoreRQ(message_id=65535, affected_sop_class_uid=sop_class,
                 affected_sop_instance_uid="1.2.3.45", priority=2),
        CStoreRQ(message_id=9, affected_sop_class_uid=sop_class,
                 affected_sop_instance_uid="1.2.3", has_dataset=False),
        CStoreRQ(message_id=9, affected_sop_class_uid=sop_class,
                 affected_sop_instance_uid="1.2.3", move_originator_ae_title="MOVER",
                 move_originator_message_id=4),
        CStoreRQ(message_id=9, affected_sop_class_uid=sop_class,
                 affected_sop_instance_uid=None),  # type: ignore[arg-type]
        CStoreRQ(message_id=None, affected_sop_class_uid=sop_class,  # type: ignore[arg-type]
                 affected_sop_instance_uid="1.2.3"),
    ]
    for rq in variants:
        assert encode_message(rq) == encode_command({
            0x0002: sop_class, 0x0100: 0x0001, 0x0110: rq.message_id,
            0x0700: rq.priority, 0x0800: DATA_SET_PRESENT if rq.has_dataset else 0x0101,
            0x1000: rq.affected_sop_instance_uid, 0x1030: rq.move_originator_ae_title,
            0x1031: rq.move_originator_message_id})
    python: Counter[str] = Counter()

    def profile(frame: types.FrameType, event: str, arg: object) -> None:
        if event == "call":
            python[frame.f_code.co_name] += 1

    rq = CStoreRQ(message_id=7, affected_sop_class_uid=sop_class,
                  affected_sop_instance_uid="1.2.3.4.5.6")
    sys.setprofile(profile)
    try:
        encoded = encode_message(rq)
    finally:
        sys.setprofile(None)
    assert encoded == encode_command({0x0002: sop_class, 0x0100: 1, 0x0110: 7, 0x0700: 0,
                                      0x0800: DATA_SET_PRESENT, 0x1000: "1.2.3.4.5.6"})
    assert sum(python.values()) <= 4, python


def test_is_request_is_read_without_a_call() -> None:
    """Read once per message received (its Message ID claimed): a class attribute
    (bit 15 of the Command Field clear, PS3.7 E.1), not a property call."""
    from dicomnet.dimse.messages import MESSAGE_CLASSES
    from tests.aio.test_receive_path_calls import python_calls

    rq = CStoreRQ(message_id=3, affected_sop_class_uid="1.2.840.10008.5.1.4.1.1.7",
                  affected_sop_instance_uid="1.2.3")
    rsp = CStoreRSP(message_id_being_responded_to=3, status=0)
    seen: list[bool] = []
    assert python_calls(lambda: seen.extend((rq.is_request, rsp.is_request))) == []
    assert seen == [True, False]
    for field, cls in MESSAGE_CLASSES.items():
        assert cls.is_request is (not field & 0x8000), cls
