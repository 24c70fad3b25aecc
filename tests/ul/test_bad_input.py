"""Invalid input: every length field, truncation, reserved bytes, foreign protocols.

The rule (h11's, adopted in STYLE.md): whatever the bytes, the codec returns PDUs
or raises ``RemoteProtocolError`` carrying the A-ABORT reason (PS3.8 Table 9-26),
and nothing else. Where a mutated length happens to give another legal PDU,
the test names the PDU it must give.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Mapping

import pytest

from dicomnet.errors import RemoteProtocolError
from dicomnet.ul.framing import PDUFramer
from dicomnet.ul.items import (
    SOPClassCommonExtendedNegotiationSubItem,
    SOPClassExtendedNegotiationSubItem,
    SubItem,
    UserInformationItem,
)
from dicomnet.ul.pdu import PDU, AssociateRQ, decode_pdu

from . import vectors as v

RQ = v.ASSOCIATE_RQ_FULL_BYTES
AC = v.ASSOCIATE_AC_FULL_BYTES
PDATA = v.P_DATA_TF_TWO_PDVS_BYTES


def _offset(data: bytes, part: bytes) -> int:
    assert data.count(part) >= 1
    return data.index(part)


@dataclasses.dataclass(frozen=True)
class LengthField:
    """A length field inside a vector: where it is, how wide, and what it holds."""

    data: bytes
    offset: int
    width: int
    #: mutations that give a legal PDU, and the PDU they must give
    legal: Mapping[str, PDU] = dataclasses.field(default_factory=dict)

    @property
    def actual(self) -> int:
        fmt = ">H" if self.width == 2 else ">L"
        (value,) = struct.unpack_from(fmt, self.data, self.offset)
        return int(value)

    def value(self, case: str) -> int:
        return {
            "zero": 0,
            "one": 1,
            "actual-1": self.actual - 1,
            "actual+1": self.actual + 1,
            "max": (1 << (8 * self.width)) - 1,
        }[case]

    def mutated(self, case: str) -> bytes:
        data = bytearray(self.data)
        fmt = ">H" if self.width == 2 else ">L"
        struct.pack_into(fmt, data, self.offset, self.value(case))
        return bytes(data)


CASES = ["zero", "one", "actual-1", "actual+1", "max"]
each_case = pytest.mark.parametrize("case", CASES)


def _framer_outcome(data: bytes) -> None:
    """Whole and byte by byte, the framer gives PDUs, None or RemoteProtocolError only."""
    for chunks in ([data], [data[i : i + 1] for i in range(len(data))]):
        framer = PDUFramer()
        try:
            for chunk in chunks:
                framer.feed(chunk)
                while framer.next_pdu() is not None:
                    pass
        except RemoteProtocolError:
            pass


def check(field: LengthField, case: str, *, actual: int) -> None:
    assert field.actual == actual  # the field is where the test thinks it is
    data = field.mutated(case)
    _framer_outcome(data)
    if case in field.legal:
        assert decode_pdu(data) == field.legal[case]
        return
    with pytest.raises(RemoteProtocolError) as err:
        decode_pdu(data)
    assert err.value.abort_source == 2
    assert err.value.abort_reason in (4, 5, 6)


def _in_rq(part: bytes, extra: int = 0, **legal: PDU) -> LengthField:
    """The item length of ``part`` (or a field ``extra`` bytes further) in the full RQ."""
    return LengthField(RQ, _offset(RQ, part) + 2 + extra, 2, legal)


def _rq_with_sub_item(index: int, sub: SubItem) -> AssociateRQ:
    subs = list(v.USER_INFORMATION_RQ_FULL.sub_items)
    subs[index] = sub
    info = UserInformationItem(tuple(subs))
    return dataclasses.replace(v.ASSOCIATE_RQ_FULL, user_information=info)


# ------------------------------------------------------------- PDU length fields


@each_case
def test_associate_rq_pdu_length(case: str) -> None:
    check(LengthField(RQ, 2, 4), case, actual=511)


@each_case
def test_associate_ac_pdu_length(case: str) -> None:
    check(LengthField(AC, 2, 4), case, actual=285)


@each_case
def test_associate_rj_pdu_length(case: str) -> None:
    check(LengthField(v.ASSOCIATE_RJ_BYTES, 2, 4), case, actual=4)


@each_case
def test_p_data_tf_pdu_length(case: str) -> None:
    check(LengthField(PDATA, 2, 4), case, actual=30)


@each_case
def test_release_rq_pdu_length(case: str) -> None:
    check(LengthField(v.RELEASE_RQ_BYTES, 2, 4), case, actual=4)


@each_case
def test_release_rp_pdu_length(case: str) -> None:
    check(LengthField(v.RELEASE_RP_BYTES, 2, 4), case, actual=4)


@each_case
def test_abort_pdu_length(case: str) -> None:
    check(LengthField(v.ABORT_PROVIDER_BYTES, 2, 4), case, actual=4)


# ----------------------------------------------------------- PDV item lengths


@each_case
def test_first_pdv_item_length(case: str) -> None:
    check(LengthField(PDATA, 6, 4), case, actual=10)


@each_case
def test_last_pdv_item_length(case: str) -> None:
    check(LengthField(PDATA, 6 + 4 + 10, 4), case, actual=12)


# -------------------------------------------------- A-ASSOCIATE-RQ item lengths


@each_case
def test_application_context_item_length(case: str) -> None:
    check(_in_rq(v.APPLICATION_CONTEXT_BYTES), case, actual=21)


@each_case
def test_presentation_context_rq_item_length(case: str) -> None:
    check(_in_rq(v.PC_RQ_VERIFICATION_BYTES), case, actual=69)


@each_case
def test_abstract_syntax_sub_item_length(case: str) -> None:
    check(_in_rq(v.ABSTRACT_SYNTAX_BYTES), case, actual=17)


@each_case
def test_transfer_syntax_sub_item_length(case: str) -> None:
    check(_in_rq(v.TRANSFER_SYNTAX_BYTES), case, actual=17)


@each_case
def test_user_information_item_length(case: str) -> None:
    check(_in_rq(v.USER_INFORMATION_RQ_FULL_BYTES), case, actual=281)


@each_case
def test_maximum_length_sub_item_length(case: str) -> None:
    check(_in_rq(v.MAXIMUM_LENGTH_BYTES), case, actual=4)


@each_case
def test_implementation_class_uid_sub_item_length(case: str) -> None:
    check(_in_rq(v.IMPLEMENTATION_CLASS_UID_BYTES), case, actual=27)


@each_case
def test_async_ops_window_sub_item_length(case: str) -> None:
    check(_in_rq(v.ASYNC_OPS_WINDOW_BYTES), case, actual=4)


@each_case
def test_role_selection_sub_item_length(case: str) -> None:
    check(_in_rq(v.ROLE_SELECTION_BYTES), case, actual=29)


@each_case
def test_role_selection_uid_length(case: str) -> None:
    check(_in_rq(v.ROLE_SELECTION_BYTES, 2), case, actual=25)


@each_case
def test_implementation_version_name_sub_item_length(case: str) -> None:
    check(_in_rq(v.IMPLEMENTATION_VERSION_NAME_BYTES), case, actual=15)


@each_case
def test_extended_negotiation_sub_item_length(case: str) -> None:
    check(_in_rq(v.EXTENDED_NEGOTIATION_BYTES), case, actual=32)


def _ext_neg(uid: bytes, info: bytes) -> AssociateRQ:
    return _rq_with_sub_item(5, SOPClassExtendedNegotiationSubItem(uid.decode(), info))


@each_case
def test_extended_negotiation_uid_length(case: str) -> None:
    # The UID length splits the item's value between the UID and the service
    # class application information, so shorter or one longer is still legal.
    uid = v.STUDY_ROOT_FIND.encode()
    info = b"\x01\x01\x00"
    whole = uid + info
    field = _in_rq(
        v.EXTENDED_NEGOTIATION_BYTES,
        2,
        zero=_ext_neg(b"", whole),
        one=_ext_neg(whole[:1], whole[1:]),
        **{
            "actual-1": _ext_neg(whole[: len(uid) - 1], whole[len(uid) - 1 :]),
            "actual+1": _ext_neg(whole[: len(uid) + 1], whole[len(uid) + 1 :]),
        },
    )
    check(field, case, actual=27)


@each_case
def test_common_extended_negotiation_sub_item_length(case: str) -> None:
    check(_in_rq(v.COMMON_EXTENDED_NEGOTIATION_BYTES), case, actual=114)


@each_case
def test_common_extended_negotiation_sop_class_uid_length(case: str) -> None:
    check(_in_rq(v.COMMON_EXTENDED_NEGOTIATION_BYTES, 2), case, actual=29)


@each_case
def test_common_extended_negotiation_service_class_uid_length(case: str) -> None:
    check(_in_rq(v.COMMON_EXTENDED_NEGOTIATION_BYTES, 2 + 2 + 29), case, actual=17)


@each_case
def test_common_extended_negotiation_related_identification_length(case: str) -> None:
    # Zero leaves the related UIDs after the field, where PS3.7 Table D.3-12 has
    # its trailing reserved field, which is not tested: a legal empty list.
    no_related = _rq_with_sub_item(
        6,
        SOPClassCommonExtendedNegotiationSubItem(v.MAMMOGRAPHY_CAD_SR, v.STORAGE_SERVICE_CLASS),
    )
    check(
        _in_rq(v.COMMON_EXTENDED_NEGOTIATION_BYTES, 2 + 2 + 29 + 2 + 17, zero=no_related),
        case,
        actual=62,
    )


@each_case
def test_common_extended_negotiation_related_uid_length(case: str) -> None:
    check(_in_rq(v.COMMON_EXTENDED_NEGOTIATION_BYTES, 2 + 2 + 29 + 2 + 17 + 2), case, actual=29)


@each_case
def test_user_identity_rq_sub_item_length(case: str) -> None:
    check(_in_rq(v.USER_IDENTITY_RQ_BYTES), case, actual=17)


@each_case
def test_user_identity_primary_field_length(case: str) -> None:
    check(_in_rq(v.USER_IDENTITY_RQ_BYTES, 2 + 2), case, actual=5)


@each_case
def test_user_identity_secondary_field_length(case: str) -> None:
    check(_in_rq(v.USER_IDENTITY_RQ_BYTES, 2 + 2 + 2 + 5), case, actual=6)


@each_case
def test_unknown_sub_item_length(case: str) -> None:
    check(_in_rq(v.UNKNOWN_SUB_ITEM_BYTES), case, actual=3)


# -------------------------------------------------- A-ASSOCIATE-AC item lengths


def _in_ac(part: bytes, extra: int = 0, **legal: PDU) -> LengthField:
    return LengthField(AC, _offset(AC, part) + 2 + extra, 2, legal)


@each_case
def test_presentation_context_ac_item_length(case: str) -> None:
    check(_in_ac(v.PC_AC_ACCEPTED_BYTES), case, actual=27)


@each_case
def test_presentation_context_ac_transfer_syntax_sub_item_length(case: str) -> None:
    check(_in_ac(v.PC_AC_ACCEPTED_BYTES, 4 + 4), case, actual=19)


@each_case
def test_rejected_presentation_context_ac_item_length(case: str) -> None:
    check(_in_ac(v.PC_AC_REJECTED_EMPTY_TS_BYTES), case, actual=8)


@each_case
def test_user_identity_ac_sub_item_length(case: str) -> None:
    check(_in_ac(v.USER_IDENTITY_AC_BYTES), case, actual=6)


@each_case
def test_user_identity_ac_server_response_length(case: str) -> None:
    check(_in_ac(v.USER_IDENTITY_AC_BYTES, 2), case, actual=4)


# ----------------------------------------------------- items longer than parents


def test_sub_item_longer_than_its_presentation_context_item() -> None:
    # The abstract syntax claims 2 more bytes than its presentation context holds;
    # the PDU has plenty more, but they belong to the next item.
    data = bytearray(RQ)
    offset = _offset(RQ, v.ABSTRACT_SYNTAX_BYTES)
    data[offset + 3] += 2
    data[offset + 4 + 17 + 3] -= 2  # keep the PC item length right
    with pytest.raises(RemoteProtocolError) as err:
        decode_pdu(data)
    assert err.value.abort_reason == 6


def test_sub_item_longer_than_its_user_information_item() -> None:
    data = bytearray(RQ)
    data[_offset(RQ, v.UNKNOWN_SUB_ITEM_BYTES) + 3] = 0xFF
    with pytest.raises(RemoteProtocolError) as err:
        decode_pdu(data)
    assert err.value.abort_reason == 6


def test_item_longer_than_its_pdu() -> None:
    data = bytearray(RQ)
    offset = _offset(RQ, v.USER_INFORMATION_RQ_FULL_BYTES)
    data[offset + 2 : offset + 4] = b"\xff\xff"
    with pytest.raises(RemoteProtocolError) as err:
        decode_pdu(data)
    assert err.value.abort_reason == 6


def test_pdv_longer_than_its_pdu() -> None:
    data = bytearray(v.P_DATA_TF_BYTES)
    data[9] += 1
    with pytest.raises(RemoteProtocolError) as err:
        decode_pdu(data)
    assert err.value.abort_reason == 6


def test_uid_longer_than_its_role_selection_sub_item() -> None:
    data = bytearray(RQ)
    data[_offset(RQ, v.ROLE_SELECTION_BYTES) + 5] += 3
    with pytest.raises(RemoteProtocolError) as err:
        decode_pdu(data)
    assert err.value.abort_reason == 6


# ---------------------------------------------------------- missing and misplaced


def _rq_items(*items: bytes) -> bytes:
    body = RQ[6:74] + b"".join(items)
    return bytes((1, 0)) + struct.pack(">L", len(body)) + body


@pytest.mark.parametrize(
    ("items", "reason"),
    [
        ((v.PC_RQ_VERIFICATION_BYTES, v.USER_INFORMATION_BYTES), 6),
        ((v.APPLICATION_CONTEXT_BYTES, v.USER_INFORMATION_BYTES), 6),
        ((v.APPLICATION_CONTEXT_BYTES, v.PC_RQ_VERIFICATION_BYTES), 6),
        ((v.APPLICATION_CONTEXT_BYTES * 2, v.PC_RQ_CT_BYTES, v.USER_INFORMATION_BYTES), 5),
        ((v.APPLICATION_CONTEXT_BYTES, v.PC_RQ_CT_BYTES, v.USER_INFORMATION_BYTES * 2), 5),
        ((v.APPLICATION_CONTEXT_BYTES, v.PC_AC_ACCEPTED_BYTES, v.USER_INFORMATION_BYTES), 5),
        ((v.APPLICATION_CONTEXT_BYTES, v.PC_RQ_CT_BYTES, v.MAXIMUM_LENGTH_BYTES), 5),
        (
            (
                v.APPLICATION_CONTEXT_BYTES,
                v.PC_RQ_CT_BYTES,
                v.USER_INFORMATION_BYTES,
                bytes.fromhex("60 00 00 00"),
            ),
            4,
        ),
    ],
    ids=[
        "no-application-context",
        "no-presentation-context",
        "no-user-information",
        "two-application-contexts",
        "two-user-informations",
        "ac-presentation-context-in-rq",
        "sub-item-at-top-level",
        "unknown-item-type",
    ],
)
def test_associate_rq_item_rules(items: tuple[bytes, ...], reason: int) -> None:
    with pytest.raises(RemoteProtocolError) as err:
        decode_pdu(_rq_items(*items))
    assert err.value.abort_reason == reason


def test_associate_rq_items_in_any_order() -> None:
    data = _rq_items(
        v.USER_INFORMATION_RQ_FULL_BYTES,
        v.PC_RQ_VERIFICATION_BYTES,
        v.APPLICATION_CONTEXT_BYTES,
        v.PC_RQ_CT_BYTES,
    )
    assert decode_pdu(data) == v.ASSOCIATE_RQ_FULL


def test_associate_ac_with_rq_presentation_context_is_unexpected() -> None:
    body = AC[6:74] + v.APPLICATION_CONTEXT_BYTES + v.PC_RQ_CT_BYTES + v.USER_INFORMATION_BYTES
    with pytest.raises(RemoteProtocolError) as err:
        decode_pdu(bytes((2, 0)) + struct.pack(">L", len(body)) + body)
    assert err.value.abort_reason == 5


def test_p_data_tf_without_pdv_is_invalid() -> None:
    with pytest.raises(RemoteProtocolError) as err:
        decode_pdu(bytes.fromhex("04 00 00 00 00 00"))
    assert err.value.abort_reason == 6


# ------------------------------------------------------------------- truncation


def test_truncated_associate_rq_fed_to_the_framer_needs_more_data() -> None:
    for cut in range(len(RQ)):
        framer = PDUFramer()
        framer.feed(RQ[:cut])
        assert framer.next_pdu() is None, cut
        assert framer.buffered == cut
        framer.feed(RQ[cut:])
        assert framer.next_pdu() == v.ASSOCIATE_RQ_FULL


def test_truncated_associate_rq_with_patched_pdu_length_is_invalid() -> None:
    for cut in range(len(RQ)):
        data = bytearray(RQ[:cut])
        if cut >= 6:
            struct.pack_into(">L", data, 2, cut - 6)
        with pytest.raises(RemoteProtocolError) as err:
            decode_pdu(data)
        assert err.value.abort_reason == 6, cut


def test_truncated_pdu_without_patching_is_invalid() -> None:
    for vector in v.PDU_VECTORS:
        for cut in range(len(vector.data)):
            with pytest.raises(RemoteProtocolError):
                decode_pdu(vector.data[:cut])


def test_extra_bytes_after_the_pdu_are_invalid_for_decode_pdu() -> None:
    with pytest.raises(RemoteProtocolError) as err:
        decode_pdu(v.RELEASE_RQ_BYTES + b"\x00")
    assert err.value.abort_reason == 6


# --------------------------------------------------------------- reserved bytes


def _set(data: bytearray, offsets: list[int], value: int = 0xA5) -> None:
    for offset in offsets:
        assert data[offset] == 0, offset
        data[offset] = value


def _all(data: bytes, part: bytes) -> list[int]:
    found, start = [], 0
    while (start := data.find(part, start)) != -1:
        found.append(start)
        start += 1
    return found


def test_non_zero_reserved_bytes_in_associate_rq_decode_fine() -> None:
    data = bytearray(RQ)
    reserved = [1, 8, 9, *range(42, 74)]  # PDU header, after version, the 32 bytes
    items = [
        v.APPLICATION_CONTEXT_BYTES,
        v.PC_RQ_VERIFICATION_BYTES,
        v.PC_RQ_CT_BYTES,
        v.ABSTRACT_SYNTAX_BYTES,
        v.TRANSFER_SYNTAX_BYTES,
        v.EXPLICIT_TRANSFER_SYNTAX_BYTES,
        v.USER_INFORMATION_RQ_FULL_BYTES,
        v.MAXIMUM_LENGTH_BYTES,
        v.IMPLEMENTATION_CLASS_UID_BYTES,
        v.ASYNC_OPS_WINDOW_BYTES,
        v.ROLE_SELECTION_BYTES,
        v.IMPLEMENTATION_VERSION_NAME_BYTES,
        v.EXTENDED_NEGOTIATION_BYTES,
        v.COMMON_EXTENDED_NEGOTIATION_BYTES,  # its second byte is the sub-item version
        v.USER_IDENTITY_RQ_BYTES,
        v.UNKNOWN_SUB_ITEM_BYTES,
    ]
    for item in items:
        reserved += [offset + 1 for offset in _all(RQ, item)]
    for pc in (v.PC_RQ_VERIFICATION_BYTES, v.PC_RQ_CT_BYTES):
        offset = _offset(RQ, pc)
        reserved += [offset + 5, offset + 6, offset + 7]  # after the context ID
        reserved.append(offset + 9)  # the abstract syntax sub-item of PC 3 is inline
    _set(data, sorted(set(reserved)))
    assert decode_pdu(data) == v.ASSOCIATE_RQ_FULL


def test_non_zero_reserved_bytes_in_associate_ac_decode_fine() -> None:
    data = bytearray(AC)
    reserved = [1, 8, 9, *range(42, 74)]
    for item in (
        v.APPLICATION_CONTEXT_BYTES,
        v.PC_AC_ACCEPTED_BYTES,
        v.PC_AC_REJECTED_EMPTY_TS_BYTES,
        v.USER_INFORMATION_AC_FULL_BYTES,
        v.USER_IDENTITY_AC_BYTES,
    ):
        offset = _offset(AC, item)
        reserved.append(offset + 1)
    for pc in (v.PC_AC_ACCEPTED_BYTES, v.PC_AC_REJECTED_EMPTY_TS_BYTES):
        offset = _offset(AC, pc)
        reserved += [offset + 5, offset + 7, offset + 9]  # reserved x2, TS sub-item's
    _set(data, reserved)
    assert decode_pdu(data) == v.ASSOCIATE_AC_FULL


@pytest.mark.parametrize(
    ("vector", "reserved"),
    [
        (v.ASSOCIATE_RJ_BYTES, [1, 6]),
        (v.P_DATA_TF_BYTES, [1]),
        (v.RELEASE_RQ_BYTES, [1, 6, 7, 8, 9]),
        (v.RELEASE_RP_BYTES, [1, 6, 7, 8, 9]),
        (v.ABORT_PROVIDER_BYTES, [1, 6, 7]),
    ],
    ids=["A-ASSOCIATE-RJ", "P-DATA-TF", "A-RELEASE-RQ", "A-RELEASE-RP", "A-ABORT"],
)
def test_non_zero_reserved_bytes_in_other_pdus_decode_fine(
    vector: bytes, reserved: list[int]
) -> None:
    data = bytearray(vector)
    _set(data, reserved, 0xFF)
    assert decode_pdu(data) == decode_pdu(vector)


def test_reserved_bytes_are_sent_as_zero() -> None:
    data = v.ASSOCIATE_RQ_FULL.encode()
    assert data[1] == 0 and data[8:10] == b"\0\0" and data[42:74] == bytes(32)


# ------------------------------------------------------------- unknown PDU types


@pytest.mark.parametrize("pdu_type", [0x00, 0x08, 0x09, 0x10, 0x80, 0xFF])
def test_unknown_pdu_type(pdu_type: int) -> None:
    data = bytes((pdu_type, 0, 0, 0, 0, 4, 0, 0, 0, 0))
    with pytest.raises(RemoteProtocolError) as err:
        decode_pdu(data)
    assert (err.value.abort_source, err.value.abort_reason) == (2, 1)
    assert f"0x{pdu_type:02x}" in str(err.value)
    framer = PDUFramer()
    framer.feed(data[:1])
    with pytest.raises(RemoteProtocolError) as err:
        framer.next_pdu()  # known to be bad from its first byte
    assert err.value.abort_reason == 1


# ------------------------------------------------------------- foreign protocols

HTTP_REQUEST = (
    b"GET / HTTP/1.1\r\nHost: pacs.example.org:104\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n"
)

TLS_CLIENT_HELLO = (
    v.h(
        "16",  # TLS record: content type 22, handshake
        "03 01",  # record version TLS 1.0 (as ClientHellos say)
        "02 00",  # record length 512
        "01",  # handshake type 1, ClientHello
        "00 01 fc",  # handshake length 508
        "03 03",  # client version TLS 1.2
    )
    + bytes(range(32))  # random
    + b"\x00" * 474  # the rest: session ID, cipher suites, extensions
)


def _feed_until_error(data: bytes, framer: PDUFramer) -> tuple[RemoteProtocolError, int]:
    for count in range(1, len(data) + 1):
        framer.feed(data[count - 1 : count])
        try:
            assert framer.next_pdu() is None
        except RemoteProtocolError as exc:
            return exc, count
    raise AssertionError("no error")


def test_http_request_is_refused_on_its_first_byte() -> None:
    framer = PDUFramer()
    error, fed = _feed_until_error(HTTP_REQUEST, framer)
    assert fed <= 6
    assert framer.buffered == 0  # the buffer is dropped
    assert (error.abort_source, error.abort_reason) == (2, 1)
    assert "0x47" in str(error) and "text" in str(error)


def test_http_request_fed_whole_is_named() -> None:
    framer = PDUFramer()
    framer.feed(HTTP_REQUEST)
    with pytest.raises(RemoteProtocolError) as err:
        framer.next_pdu()
    assert "HTTP request" in str(err.value)
    assert "GET / HTTP/1.1" in str(err.value)


def test_tls_client_hello_is_refused_on_its_first_bytes() -> None:
    framer = PDUFramer()
    error, fed = _feed_until_error(TLS_CLIENT_HELLO, framer)
    assert fed <= 6
    assert framer.buffered == 0
    assert error.abort_reason == 1
    assert "0x16" in str(error)
    assert "TLS handshake" in str(error)
    assert "peer speaks TLS on a plain DICOM port?" in str(error)


def test_tls_client_hello_fed_whole() -> None:
    framer = PDUFramer()
    framer.feed(TLS_CLIENT_HELLO)
    with pytest.raises(RemoteProtocolError, match="TLS handshake"):
        framer.next_pdu()


def test_tls_client_hello_given_to_decode_pdu() -> None:
    with pytest.raises(RemoteProtocolError, match="plain DICOM port") as err:
        decode_pdu(TLS_CLIENT_HELLO)
    assert err.value.abort_reason == 1


def test_tls_alert_says_the_peer_wants_tls() -> None:
    framer = PDUFramer()
    framer.feed(v.h("15 03 03 00 02 02 28"))  # fatal handshake_failure
    with pytest.raises(RemoteProtocolError, match="expects TLS"):
        framer.next_pdu()


# ---------------------------------------------------------------- other callers


@pytest.mark.parametrize("data", [b"", b"\x01", b"\x04\x00\x00\x00"], ids=["0", "1", "4"])
def test_shorter_than_a_header(data: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        decode_pdu(data)
