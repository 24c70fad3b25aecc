"""Command set codec (PS3.7 6.3.1, Annex E): annotated byte vectors and strictness."""

from __future__ import annotations

import contextlib
import struct
from io import BytesIO

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.filereader import read_dataset

from dicomnet.dimse import commands as c
from dicomnet.dimse.messages import (
    CEchoRQ,
    CEchoRSP,
    CStoreRQ,
    CStoreRSP,
    decode_message,
    encode_message,
)
from dicomnet.errors import LocalProtocolError, RemoteProtocolError


def h(text: str) -> bytes:
    """Hex with '#' comments, one field per line."""
    return bytes.fromhex("".join(line.split("#")[0] for line in text.splitlines()))


# C-ECHO-RQ, Message ID 1 (PS3.7 9.3.5.1). Implicit VR LE: tag group, tag element, 4-byte length.
C_ECHO_RQ = h("""
00 00 00 00  04 00 00 00  38 00 00 00                # (0000,0000) Command Group Length = 56
00 00 02 00  12 00 00 00                             # (0000,0002) Affected SOP Class UID, 18 bytes
31 2e 32 2e 38 34 30 2e 31 30 30 30 38 2e 31 2e 31   #   "1.2.840.10008.1.1" (Verification)
00                                                   #   NUL pad to even length
00 00 00 01  02 00 00 00  30 00                      # (0000,0100) Command Field = 0030H C-ECHO-RQ
00 00 10 01  02 00 00 00  01 00                      # (0000,0110) Message ID = 1
00 00 00 08  02 00 00 00  01 01                      # (0000,0800) Command Data Set Type = 0101H
""")

# C-ECHO-RSP to Message ID 1, Success (PS3.7 9.3.5.2).
C_ECHO_RSP = h("""
00 00 00 00  04 00 00 00  42 00 00 00                # (0000,0000) Command Group Length = 66
00 00 02 00  12 00 00 00                             # (0000,0002) Affected SOP Class UID, 18 bytes
31 2e 32 2e 38 34 30 2e 31 30 30 30 38 2e 31 2e 31   #   "1.2.840.10008.1.1"
00                                                   #   NUL pad
00 00 00 01  02 00 00 00  30 80                      # (0000,0100) Command Field = 8030H C-ECHO-RSP
00 00 20 01  02 00 00 00  01 00                      # (0000,0120) Message ID Being Responded To = 1
00 00 00 08  02 00 00 00  01 01                      # (0000,0800) Command Data Set Type = 0101H
00 00 00 09  02 00 00 00  00 00                      # (0000,0900) Status = 0000H Success
""")

# C-STORE-RQ, Message ID 7, CT Image Storage, issued for a C-MOVE (PS3.7 9.3.1.1).
C_STORE_RQ = h("""
00 00 00 00  04 00 00 00  74 00 00 00                # (0000,0000) Command Group Length = 116
00 00 02 00  1a 00 00 00                             # (0000,0002) Affected SOP Class UID, 26 bytes
31 2e 32 2e 38 34 30 2e 31 30 30 30 38 2e            #   "1.2.840.10008."
35 2e 31 2e 34 2e 31 2e 31 2e 32  00                 #   "5.1.4.1.1.2" + NUL pad
00 00 00 01  02 00 00 00  01 00                      # (0000,0100) Command Field = 0001H C-STORE-RQ
00 00 10 01  02 00 00 00  07 00                      # (0000,0110) Message ID = 7
00 00 00 07  02 00 00 00  00 00                      # (0000,0700) Priority = 0 MEDIUM
00 00 00 08  02 00 00 00  01 00                      # (0000,0800) Command Data Set Type = 0001H
00 00 00 10  08 00 00 00  31 2e 32 2e 33 2e 34 00    # (0000,1000) Affected SOP Instance UID
                                                     #   "1.2.3.4" + NUL pad
00 00 30 10  08 00 00 00  4d 4f 56 45 53 43 55 20    # (0000,1030) Move Originator AE Title
                                                     #   "MOVESCU" + space pad
00 00 31 10  02 00 00 00  03 00                      # (0000,1031) Move Originator Message ID = 3
""")

# C-STORE-RSP to Message ID 7: B000H coercion warning with the status detail elements.
C_STORE_RSP = h("""
00 00 00 00  04 00 00 00  76 00 00 00                # (0000,0000) Command Group Length = 118
00 00 02 00  1a 00 00 00                             # (0000,0002) Affected SOP Class UID, 26 bytes
31 2e 32 2e 38 34 30 2e 31 30 30 30 38 2e            #   "1.2.840.10008."
35 2e 31 2e 34 2e 31 2e 31 2e 32  00                 #   "5.1.4.1.1.2" + NUL pad
00 00 00 01  02 00 00 00  01 80                      # (0000,0100) Command Field = 8001H C-STORE-RSP
00 00 20 01  02 00 00 00  07 00                      # (0000,0120) Message ID Being Responded To = 7
00 00 00 08  02 00 00 00  01 01                      # (0000,0800) Command Data Set Type = 0101H
00 00 00 09  02 00 00 00  00 b0                      # (0000,0900) Status = B000H
00 00 01 09  04 00 00 00  10 00 10 00                # (0000,0901) Offending Element AT (0010,0010)
00 00 02 09  08 00 00 00  43 6f 65 72 63 65 64 20    # (0000,0902) Error Comment "Coerced" + space
00 00 00 10  08 00 00 00  31 2e 32 2e 33 2e 34 00    # (0000,1000) Affected SOP Instance UID
""")

CT = "1.2.840.10008.5.1.4.1.1.2"

VECTORS = [
    (C_ECHO_RQ, CEchoRQ(message_id=1)),
    (
        C_ECHO_RSP,
        CEchoRSP(
            message_id_being_responded_to=1, status=0, affected_sop_class_uid="1.2.840.10008.1.1"
        ),
    ),
    (
        C_STORE_RQ,
        CStoreRQ(
            message_id=7,
            affected_sop_class_uid=CT,
            affected_sop_instance_uid="1.2.3.4",
            move_originator_ae_title="MOVESCU",
            move_originator_message_id=3,
        ),
    ),
    (
        C_STORE_RSP,
        CStoreRSP(
            message_id_being_responded_to=7,
            status=0xB000,
            affected_sop_class_uid=CT,
            affected_sop_instance_uid="1.2.3.4",
            offending_element=(0x00100010,),
            error_comment="Coerced",
        ),
    ),
]


@pytest.mark.parametrize(("wire", "message"), VECTORS)
def test_vector_encodes_byte_exact(wire: bytes, message: object) -> None:
    assert encode_message(message) == wire  # type: ignore[arg-type]


@pytest.mark.parametrize(("wire", "message"), VECTORS)
def test_vector_decodes_to_message(wire: bytes, message: object) -> None:
    assert decode_message(wire) == message


@pytest.mark.parametrize(("wire", "message"), VECTORS)
def test_pydicom_reads_our_command_sets(wire: bytes, message: object) -> None:
    """An independent reader agrees on every element (pydicom, Implicit VR LE)."""
    ds = read_dataset(BytesIO(wire), is_implicit_VR=True, is_little_endian=True)
    assert ds.CommandGroupLength == len(wire) - 12
    ours = c.decode_command(wire)
    assert {int(elem.tag) for elem in ds} == set(ours) | {0}


def test_decode_command_values_by_vr() -> None:
    assert c.decode_command(C_STORE_RSP) == {
        c.AFFECTED_SOP_CLASS_UID: CT,
        c.COMMAND_FIELD: 0x8001,
        c.MESSAGE_ID_BEING_RESPONDED_TO: 7,
        c.COMMAND_DATA_SET_TYPE: 0x0101,
        c.STATUS: 0xB000,
        c.OFFENDING_ELEMENT: (0x00100010,),
        c.ERROR_COMMENT: "Coerced",
        c.AFFECTED_SOP_INSTANCE_UID: "1.2.3.4",
    }


def test_encode_sorts_ignores_given_group_length_and_skips_none() -> None:
    out = c.encode_command({c.MESSAGE_ID: 1, c.COMMAND_FIELD: 0x30, 0: 999, c.PRIORITY: None})
    assert out == h("""
        00 00 00 00  04 00 00 00  14 00 00 00   # group length 20, not 999
        00 00 00 01  02 00 00 00  30 00         # (0000,0100) first: tags ascend
        00 00 10 01  02 00 00 00  01 00         # (0000,0110)
    """)


def test_at_with_several_tags() -> None:
    out = c.encode_command({c.ATTRIBUTE_IDENTIFIER_LIST: (0x00100010, 0x7FE00010)})
    assert out[12:] == h("00 00 05 10  08 00 00 00  10 00 10 00  e0 7f 10 00")
    assert c.decode_command(out) == {c.ATTRIBUTE_IDENTIFIER_LIST: (0x00100010, 0x7FE00010)}


def test_unknown_group_0000_element_kept_raw_and_round_trips() -> None:
    # (0000,0001) Command Length to End: retired, not in our table.
    wire = c.encode_command({0x00000001: b"\x02\x00\x00\x00", c.COMMAND_FIELD: 0x30})
    decoded = c.decode_command(wire)
    assert decoded == {0x00000001: b"\x02\x00\x00\x00", c.COMMAND_FIELD: 0x30}
    assert c.encode_command(decoded) == wire


def test_missing_group_length_is_tolerated() -> None:
    assert c.decode_command(C_ECHO_RQ[12:])[c.MESSAGE_ID] == 1


def test_uid_with_space_padding_from_a_sloppy_peer() -> None:
    wire = h("00 00 02 00  04 00 00 00  31 2e 32 20")
    assert c.decode_command(wire) == {c.AFFECTED_SOP_CLASS_UID: "1.2"}


def _reason(exc: pytest.ExceptionInfo[RemoteProtocolError]) -> tuple[int, int]:
    return exc.value.abort_source, exc.value.abort_reason


@pytest.mark.parametrize(
    ("wire", "why"),
    [
        (h("08 00 16 00  02 00 00 00  30 00"), "group"),  # (0008,0016) in a command set
        (h("00 00 00 01  02 00 00 00  30"), "length"),  # 2 announced, 1 left
        (h("00 00 00 01  ff ff ff ff"), "length"),  # undefined length
        (h("00 00 00 01  02 00"), "truncated"),  # header cut short
        (h("00 00 00 00  04 00 00 00  0b 00 00 00  00 00 00 01  02 00 00 00  30 00"), "Group"),
        (h("00 00 00 00  02 00 00 00  0a 00"), "Group Length has length"),
        (h("00 00 10 01 02 00 00 00 01 00  00 00 00 01 02 00 00 00 30 00"), "order"),
        (h("00 00 00 01 02 00 00 00 30 00  00 00 00 01 02 00 00 00 30 00"), "repeated"),
        (h("00 00 00 01  04 00 00 00  30 00 00 00"), "US has length"),
        (h("00 00 01 09  02 00 00 00  10 00"), "multiple of 4"),
        (h("00 00 02 00  02 00 00 00  31 ff"), "ASCII"),
    ],
)
def test_decode_rejects_malformed(wire: bytes, why: str) -> None:
    with pytest.raises(RemoteProtocolError, match=why) as exc:
        c.decode_command(wire)
    assert _reason(exc) == (0, 0)  # the service-user's A-ABORT (PS3.8 Table 9-26)


def test_error_comment_with_non_ascii_is_replaced_not_fatal() -> None:
    wire = h("00 00 02 09  02 00 00 00  41 e9")
    assert c.decode_command(wire) == {c.ERROR_COMMENT: "A\ufffd"}


@pytest.mark.parametrize(
    "elements",
    [
        {0x00080016: "1.2"},  # not group 0000
        {c.MESSAGE_ID: 0x10000},  # US out of range
        {c.MESSAGE_ID: -1},
        {c.MESSAGE_ID: True},  # a bool is not a number here
        {c.MESSAGE_ID: "1"},
        {c.AFFECTED_SOP_CLASS_UID: 1},
        {c.AFFECTED_SOP_CLASS_UID: "1." * 33},  # 66 > 64 characters
        {c.MOVE_DESTINATION: "ÄE"},  # not ASCII
        {c.MOVE_DESTINATION: "A" * 17},  # AE is at most 16
        {c.OFFENDING_ELEMENT: 0x00100010},  # AT wants a sequence
        {c.OFFENDING_ELEMENT: (0x1_0000_0000,)},
        {0x00000001: 5},  # unknown tag needs raw bytes
    ],
)
def test_encode_rejects_what_its_vr_cannot_hold(elements: dict[int, object]) -> None:
    with pytest.raises(LocalProtocolError):
        c.encode_command(elements)


def test_group_length_is_first_and_counts_the_rest() -> None:
    wire = c.encode_command({c.ERROR_COMMENT: "odd"})
    assert struct.unpack("<HHII", wire[:12]) == (0, 0, 4, len(wire) - 12)
    assert wire[12:] == h("00 00 02 09  04 00 00 00  6f 64 64 20")  # "odd" + space pad


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_decode_yields_dict_or_remote_protocol_error(data: bytes) -> None:
    with contextlib.suppress(RemoteProtocolError):
        c.decode_command(data)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 8), st.binary(min_size=0, max_size=12)), min_size=0, max_size=6
    )
)
def test_fuzz_structured_elements(parts: list[tuple[int, bytes]]) -> None:
    """Well-framed elements with arbitrary values also never escape as other errors."""
    wire = b"".join(
        struct.pack("<HHI", 0, element << 8, len(value)) + value for element, value in parts
    )
    with contextlib.suppress(RemoteProtocolError):
        c.decode_command(wire)
