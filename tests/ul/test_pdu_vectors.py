"""Every PDU against its annotated byte vector (PS3.8 9.3), both directions."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from dicomnet.errors import ConfigurationError, RemoteProtocolError
from dicomnet.ul.framing import PDUFramer
from dicomnet.ul.items import UserInformationItem
from dicomnet.ul.pdu import (
    PDU,
    AAbort,
    AssociateAC,
    AssociateRQ,
    PDataTF,
    PresentationDataValue,
    decode_pdu,
    encode_pdata,
    pdata_header,
)

from . import vectors as v

PDU_IDS = [vector.name for vector in v.PDU_VECTORS]


@pytest.mark.parametrize("vector", v.PDU_VECTORS, ids=PDU_IDS)
def test_encode_gives_the_vector_bytes(vector: v.Vector) -> None:
    assert vector.obj.encode() == vector.data


@pytest.mark.parametrize("vector", v.PDU_VECTORS, ids=PDU_IDS)
def test_decode_gives_the_vector_object(vector: v.Vector) -> None:
    assert decode_pdu(vector.data) == vector.obj


@pytest.mark.parametrize("vector", v.PDU_VECTORS, ids=PDU_IDS)
def test_decode_accepts_bytearray_and_memoryview(vector: v.Vector) -> None:
    assert decode_pdu(bytearray(vector.data)) == vector.obj
    assert decode_pdu(memoryview(vector.data)) == vector.obj


@pytest.mark.parametrize("vector", v.PDU_VECTORS, ids=PDU_IDS)
def test_round_trip(vector: v.Vector) -> None:
    pdu = decode_pdu(vector.data)
    assert decode_pdu(pdu.encode()) == pdu
    assert pdu.encode() == vector.data


@pytest.mark.parametrize("vector", v.PDU_VECTORS, ids=PDU_IDS)
def test_framer_reads_the_vector(vector: v.Vector) -> None:
    framer = PDUFramer()
    framer.feed(vector.data)
    assert framer.next_pdu() == vector.obj
    assert framer.next_pdu() is None
    assert framer.buffered == 0


def test_pdu_type_class_attributes() -> None:
    assert [decode_pdu(vector.data).pdu_type for vector in v.PDU_VECTORS] == [
        1,
        1,
        2,
        2,
        3,
        4,
        4,
        5,
        6,
        7,
        7,
    ]


# ------------------------------------------------------------------ decoded values


def test_decoded_associate_rq_fields() -> None:
    pdu = decode_pdu(v.ASSOCIATE_RQ_FULL_BYTES)
    assert isinstance(pdu, AssociateRQ)
    assert pdu.called_ae_title == "ANY-SCP"
    assert pdu.calling_ae_title == "STORESCU"
    assert pdu.protocol_version == 1
    assert pdu.application_context_name == "1.2.840.10008.3.1.1.1"
    assert [pc.context_id for pc in pdu.presentation_contexts] == [1, 3]
    assert pdu.presentation_contexts[0].transfer_syntaxes == (
        "1.2.840.10008.1.2",
        "1.2.840.10008.1.2.1",
    )
    info = pdu.user_information
    assert info.maximum_length == 16384
    assert info.implementation_class_uid == "1.2.276.0.7230010.3.0.3.6.8"
    assert info.implementation_version_name == "OFFIS_DCMTK_368"
    assert info.user_identity_rq == v.USER_IDENTITY_RQ
    assert info.role_selections == (v.ROLE_SELECTION,)


def test_decoded_associate_ac_fields() -> None:
    pdu = decode_pdu(v.ASSOCIATE_AC_BYTES)
    assert isinstance(pdu, AssociateAC)
    accepted, rejected = pdu.presentation_contexts
    assert accepted.accepted and accepted.transfer_syntax == "1.2.840.10008.1.2.1"
    assert not rejected.accepted and rejected.result == 3
    assert rejected.transfer_syntax is None


def test_pdv_item_alone() -> None:
    assert v.PDV_COMMAND.encode() == v.PDV_COMMAND_BYTES


def test_pdv_repr_does_not_print_the_data() -> None:
    pdv = PresentationDataValue(1, False, True, b"\x00" * 100_000)
    assert repr(pdv) == (
        "PresentationDataValue(context_id=1, is_command=False, is_last=True, data=<100000 bytes>)"
    )


@pytest.mark.parametrize("control", range(256), ids=lambda c: f"0x{c:02x}")
def test_message_control_header_bits(control: int) -> None:
    data = bytearray(v.P_DATA_TF_BYTES)
    data[11] = control  # PS3.8 E.2: bits 2-7 are not tested on receipt
    pdu = decode_pdu(data)
    assert isinstance(pdu, PDataTF)
    assert pdu.pdvs[0].is_command == bool(control & 1)
    assert pdu.pdvs[0].is_last == bool(control & 2)


# ------------------------------------------------------------------- fast paths


def test_encode_pdata_equals_the_dataclass_encoding() -> None:
    assert encode_pdata(1, True, True, v.C_ECHO_RQ_COMMAND) == v.P_DATA_TF_BYTES
    assert encode_pdata(1, True, True, memoryview(v.C_ECHO_RQ_COMMAND)) == v.P_DATA_TF_BYTES
    assert encode_pdata(1, True, True, bytearray(v.C_ECHO_RQ_COMMAND)) == v.P_DATA_TF_BYTES


@pytest.mark.parametrize(("is_command", "is_last"), [(a, b) for a in (0, 1) for b in (0, 1)])
def test_encode_pdata_flags(is_command: bool, is_last: bool) -> None:
    pdv = PresentationDataValue(255, bool(is_command), bool(is_last), b"xyz")
    expected = PDataTF((pdv,)).encode()
    assert encode_pdata(255, bool(is_command), bool(is_last), b"xyz") == expected


def test_pdata_header_is_the_first_12_bytes() -> None:
    header = pdata_header(1, True, True, len(v.C_ECHO_RQ_COMMAND))
    assert header == v.P_DATA_TF_BYTES[:12]
    assert header + v.C_ECHO_RQ_COMMAND == v.P_DATA_TF_BYTES


def test_encode_pdata_empty_fragment() -> None:
    data = encode_pdata(1, False, True, b"")
    assert data == bytes.fromhex("04 00 00000006 00000002 01 02")
    assert decode_pdu(data) == PDataTF((PresentationDataValue(1, False, True, b""),))


@pytest.mark.parametrize("context_id", [-1, 256])
def test_pdata_header_rejects_bad_context_id(context_id: int) -> None:
    with pytest.raises(ConfigurationError):
        pdata_header(context_id, False, False, 10)


# -------------------------------------------------------------------- AE titles


def _rq(called: str = "ANY-SCP", calling: str = "STORESCU") -> AssociateRQ:
    return dataclasses.replace(v.ASSOCIATE_RQ, called_ae_title=called, calling_ae_title=calling)


def test_ae_title_is_space_padded_to_16_bytes() -> None:
    data = _rq(called="A", calling="0123456789ABCDEF").encode()
    assert data[10:26] == b"A" + b" " * 15
    assert data[26:42] == b"0123456789ABCDEF"


def test_ae_title_spaces_are_not_significant() -> None:
    assert _rq(called="  ANY-SCP ").called_ae_title == "ANY-SCP"
    data = bytearray(v.ASSOCIATE_RQ_BYTES)
    data[10:26] = b"   ANY-SCP      "
    pdu = decode_pdu(data)
    assert isinstance(pdu, AssociateRQ)
    assert pdu.called_ae_title == "ANY-SCP"


def test_ae_title_nul_padding_is_read_like_c_implementations() -> None:
    data = bytearray(v.ASSOCIATE_RQ_BYTES)
    data[10:26] = b"ANY-SCP".ljust(16, b"\0")
    pdu = decode_pdu(data)
    assert isinstance(pdu, AssociateRQ)
    assert pdu.called_ae_title == "ANY-SCP"


@pytest.mark.parametrize(
    "title",
    ["", "                ", "0123456789ABCDEFG", "ÄNY-SCP", "ANY\tSCP", "ANY\0SCP"],
    ids=["empty", "all-spaces", "17-chars", "non-ascii", "control-char", "nul"],
)
def test_bad_ae_title_is_refused_when_building_a_request(title: str) -> None:
    with pytest.raises(ConfigurationError):
        _rq(called=title)
    with pytest.raises(ValueError):
        _rq(calling=title)


def test_all_space_called_ae_title_received_is_invalid() -> None:
    data = bytearray(v.ASSOCIATE_RQ_BYTES)
    data[10:26] = b" " * 16  # PS3.8 9.3.2: 16 spaces "shall not be used"
    with pytest.raises(RemoteProtocolError) as err:
        decode_pdu(data)
    assert err.value.abort_reason == 6


def test_non_ascii_calling_ae_title_received_is_invalid() -> None:
    data = bytearray(v.ASSOCIATE_RQ_BYTES)
    data[26:42] = "STÖRESCU".encode("latin-1").ljust(16, b" ")
    with pytest.raises(RemoteProtocolError) as err:
        decode_pdu(data)
    assert err.value.abort_reason == 6


def test_associate_ac_ae_fields_are_not_tested() -> None:
    data = bytearray(v.ASSOCIATE_AC_BYTES)
    data[10:26] = b"\xff\x00garbage\x01......"
    data[26:42] = b" " * 16
    pdu = decode_pdu(data)
    assert isinstance(pdu, AssociateAC)
    assert pdu.called_ae_title == "?"  # cut at the NUL; the 0xff byte reads as "?"
    assert pdu.calling_ae_title == ""
    assert dataclasses.replace(pdu, called_ae_title="ANY-SCP", calling_ae_title="STORESCU") == (
        v.ASSOCIATE_AC
    )


def test_associate_ac_may_be_built_with_empty_ae_fields() -> None:
    ac = dataclasses.replace(v.ASSOCIATE_AC, called_ae_title="", calling_ae_title="")
    assert ac.encode()[10:42] == b" " * 32
    assert decode_pdu(ac.encode()) == ac


# ----------------------------------------------------------- construction checks


def test_associate_rq_needs_a_presentation_context() -> None:
    with pytest.raises(ConfigurationError):
        dataclasses.replace(v.ASSOCIATE_RQ, presentation_contexts=())


def test_associate_rq_refuses_ac_items() -> None:
    with pytest.raises(ConfigurationError):
        dataclasses.replace(v.ASSOCIATE_RQ, presentation_contexts=(v.PC_AC_ACCEPTED,))  # type: ignore[arg-type]


def test_associate_rq_takes_a_list_of_contexts_as_a_tuple() -> None:
    rq = dataclasses.replace(v.ASSOCIATE_RQ, presentation_contexts=[v.PC_RQ_CT])  # type: ignore[arg-type]
    assert rq.presentation_contexts == (v.PC_RQ_CT,)
    hash(rq)


def test_protocol_version_is_kept_as_received() -> None:
    data = bytearray(v.ASSOCIATE_RQ_BYTES)
    data[6:8] = b"\x00\x02"  # the negotiation layer answers this with an A-ASSOCIATE-RJ
    pdu = decode_pdu(data)
    assert isinstance(pdu, AssociateRQ)
    assert pdu.protocol_version == 2
    assert pdu.encode() == bytes(data)


def test_user_information_without_maximum_length_is_accepted() -> None:
    rq = dataclasses.replace(v.ASSOCIATE_RQ, user_information=UserInformationItem(()))
    pdu = decode_pdu(rq.encode())
    assert isinstance(pdu, AssociateRQ)
    assert pdu.user_information.maximum_length is None


def test_p_data_tf_needs_a_pdv() -> None:
    with pytest.raises(ConfigurationError):
        PDataTF(())


@pytest.mark.parametrize(
    "make",
    [
        lambda: AAbort(3, 256),
        lambda: AAbort(-1, 0),
        lambda: PresentationDataValue(256, False, False, b""),
        lambda: PresentationDataValue(1, 1, False, b""),  # type: ignore[arg-type]
    ],
    ids=["abort-reason-256", "abort-source-negative", "pdv-context-256", "pdv-flag-not-bool"],
)
def test_out_of_range_fields_are_refused(make: Callable[[], object]) -> None:
    with pytest.raises(ConfigurationError):
        make()


def test_pdv_data_is_stored_as_bytes() -> None:
    pdv = PresentationDataValue(1, False, False, bytearray(b"abc"))  # type: ignore[arg-type]
    assert type(pdv.data) is bytes


# --------------------------------------------------------- independent reader


def _without_unknown_sub_item(pdu: PDU) -> bytes:
    assert isinstance(pdu, AssociateRQ)
    info = UserInformationItem(pdu.user_information.sub_items[:-1])
    return dataclasses.replace(pdu, user_information=info).encode()


def test_pynetdicom_reads_our_associate_rq_the_same_way() -> None:
    pynetdicom_pdu = pytest.importorskip("pynetdicom.pdu")
    # pynetdicom cannot skip unknown sub-items, so leave ours out for it.
    data = _without_unknown_sub_item(v.ASSOCIATE_RQ_FULL)
    theirs = pynetdicom_pdu.A_ASSOCIATE_RQ()
    theirs.decode(data)
    assert theirs.called_ae_title == "ANY-SCP"
    assert theirs.calling_ae_title == "STORESCU"
    assert theirs.application_context_name == "1.2.840.10008.3.1.1.1"
    assert [
        (pc.context_id, pc.abstract_syntax, list(pc.transfer_syntax))
        for pc in theirs.presentation_context
    ] == [
        (1, "1.2.840.10008.1.1", ["1.2.840.10008.1.2", "1.2.840.10008.1.2.1"]),
        (3, "1.2.840.10008.5.1.4.1.1.2", ["1.2.840.10008.1.2.1"]),
    ]
    subs = {type(s).__name__: s for s in theirs.user_information.user_data}
    assert subs["MaximumLengthSubItem"].maximum_length_received == 16384
    assert subs["ImplementationClassUIDSubItem"].implementation_class_uid == (
        "1.2.276.0.7230010.3.0.3.6.8"
    )
    assert subs["ImplementationVersionNameSubItem"].implementation_version_name == (
        "OFFIS_DCMTK_368"
    )
    window = subs["AsynchronousOperationsWindowSubItem"]
    assert window.maximum_number_operations_invoked == 5
    assert window.maximum_number_operations_performed == 3
    role = subs["SCP_SCU_RoleSelectionSubItem"]
    assert (role.sop_class_uid, role.scu_role, role.scp_role) == (
        "1.2.840.10008.5.1.4.1.1.2",
        0,
        1,
    )
    ext = subs["SOPClassExtendedNegotiationSubItem"]
    assert ext.sop_class_uid == "1.2.840.10008.5.1.4.1.2.2.1"
    assert ext.service_class_application_information == b"\x01\x01\x00"
    common = subs["SOPClassCommonExtendedNegotiationSubItem"]
    assert common.sop_class_uid == "1.2.840.10008.5.1.4.1.1.88.50"
    assert common.service_class_uid == "1.2.840.10008.4.2"
    assert list(common.related_general_sop_class_identification) == [
        "1.2.840.10008.5.1.4.1.1.88.22",
        "1.2.840.10008.5.1.4.1.1.88.33",
    ]
    user = subs["UserIdentitySubItemRQ"]
    assert (user.user_identity_type, user.positive_response_requested) == (2, 1)
    assert (user.primary_field, user.secondary_field) == (b"alice", b"s3cret")


def test_pynetdicom_reads_our_associate_ac_the_same_way() -> None:
    pynetdicom_pdu = pytest.importorskip("pynetdicom.pdu")
    theirs = pynetdicom_pdu.A_ASSOCIATE_AC()
    theirs.decode(v.ASSOCIATE_AC_FULL_BYTES)
    assert [
        (pc.context_id, pc.result_reason, pc.transfer_syntax) for pc in theirs.presentation_context
    ] == [(1, 0, "1.2.840.10008.1.2.1"), (3, 3, None)]
    subs = {type(s).__name__: s for s in theirs.user_information.user_data}
    assert subs["UserIdentitySubItemAC"].server_response == b"\xde\xad\xbe\xef"


def test_pynetdicom_reads_our_p_data_tf_the_same_way() -> None:
    pynetdicom_pdu = pytest.importorskip("pynetdicom.pdu")
    theirs = pynetdicom_pdu.P_DATA_TF()
    theirs.decode(v.P_DATA_TF_TWO_PDVS_BYTES)
    # pynetdicom keeps the message control header in front of the fragment.
    assert [
        (item.presentation_context_id, item.presentation_data_value)
        for item in theirs.presentation_data_value_items
    ] == [(3, b"\x00" + bytes.fromhex("08 00 05 00 0a 00 00 00")), (3, b"\x02ISO_IR 100")]


def test_we_read_pynetdicoms_associate_rq_the_same_way() -> None:
    pynetdicom_pdu = pytest.importorskip("pynetdicom.pdu")
    theirs = pynetdicom_pdu.A_ASSOCIATE_RQ()
    theirs.decode(_without_unknown_sub_item(v.ASSOCIATE_RQ_FULL))
    assert decode_pdu(theirs.encode()) == decode_pdu(_without_unknown_sub_item(v.ASSOCIATE_RQ_FULL))
