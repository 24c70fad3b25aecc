"""dimse.messages: what encoding a message costs, counted (not timed): a server
encodes one response per object it receives."""

from __future__ import annotations

import sys
import types
from collections import Counter

from dicomnet.dimse.commands import encode_command
from dicomnet.dimse.fragments import command_pdus
from dicomnet.dimse.messages import CStoreRQ, CStoreRSP, decode_message, encode_message


def test_a_c_store_rsp_costs_a_call_per_element_encoded() -> None:
    """The fields are read in one call (not a ``getattr`` each, the absent ones
    included), and a text element's length is taken once."""
    rsp = CStoreRSP(message_id_being_responded_to=7, status=0,
                    affected_sop_class_uid="1.2.840.10008.5.1.4.1.1.7",
                    affected_sop_instance_uid="1.2.3.4.5")
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
    assert builtins["len"] == 3  # each UID's, and the body's
    # 6 elements present: each one encoder call, and the list comprehension.
    assert sum(python.values()) == 1 + 1 + 6


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


def test_a_command_goes_into_its_pdu_in_two_python_calls() -> None:
    """A command set that fits one PDV: ``command_pdus`` and ``encode_pdata``, the
    checks of the context ID and the maximum length and the header's pack
    written out in them; the PDU's bytes as before."""
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
    assert entered == ["command_pdus", "encode_pdata"]
