"""Every item and sub-item against its annotated byte vector, and their own rules.

PS3.8 9.3.2-9.3.3 and Annex D.1; PS3.7 Annex D.3.3.
"""

from __future__ import annotations

import dataclasses

import pytest

from dicomnet.errors import ConfigurationError, RemoteProtocolError
from dicomnet.ul.items import (
    PC_ABSTRACT_SYNTAX_NOT_SUPPORTED,
    PC_ACCEPTANCE,
    PC_NO_REASON,
    PC_TRANSFER_SYNTAXES_NOT_SUPPORTED,
    PC_USER_REJECTION,
    AbstractSyntaxSubItem,
    ApplicationContextItem,
    AsynchronousOperationsWindowSubItem,
    Item,
    MaximumLengthSubItem,
    PresentationContextACItem,
    PresentationContextRQItem,
    RoleSelectionSubItem,
    SOPClassCommonExtendedNegotiationSubItem,
    SOPClassExtendedNegotiationSubItem,
    TransferSyntaxSubItem,
    UnknownSubItem,
    UserIdentityACSubItem,
    UserIdentityRQSubItem,
    UserInformationItem,
    decode_item,
)

from . import vectors as v

ITEM_IDS = [vector.name for vector in v.ITEM_VECTORS]


@pytest.mark.parametrize("vector", v.ITEM_VECTORS, ids=ITEM_IDS)
def test_encode_gives_the_vector_bytes(vector: v.Vector) -> None:
    assert vector.obj.encode() == vector.data


@pytest.mark.parametrize("vector", v.ITEM_VECTORS, ids=ITEM_IDS)
def test_decode_gives_the_vector_object(vector: v.Vector) -> None:
    assert decode_item(vector.data) == vector.obj


@pytest.mark.parametrize("vector", v.ITEM_VECTORS, ids=ITEM_IDS)
def test_round_trip(vector: v.Vector) -> None:
    item = decode_item(vector.data)
    assert decode_item(item.encode()) == item


@pytest.mark.parametrize("vector", v.ITEM_VECTORS, ids=ITEM_IDS)
def test_decode_item_refuses_trailing_bytes(vector: v.Vector) -> None:
    with pytest.raises(RemoteProtocolError):
        decode_item(vector.data + b"\x00")


def test_presentation_context_result_constants() -> None:
    assert (
        PC_ACCEPTANCE,
        PC_USER_REJECTION,
        PC_NO_REASON,
        PC_ABSTRACT_SYNTAX_NOT_SUPPORTED,
        PC_TRANSFER_SYNTAXES_NOT_SUPPORTED,
    ) == (0, 1, 2, 3, 4)


# ------------------------------------------------------ user information properties


def test_user_information_properties() -> None:
    info = v.USER_INFORMATION_RQ_FULL
    assert info.maximum_length == 16384
    assert info.implementation_class_uid == "1.2.276.0.7230010.3.0.3.6.8"
    assert info.implementation_version_name == "OFFIS_DCMTK_368"
    assert info.async_ops_window == AsynchronousOperationsWindowSubItem(5, 3)
    assert info.role_selections == (v.ROLE_SELECTION,)
    assert info.extended_negotiations == (v.EXTENDED_NEGOTIATION,)
    assert info.common_extended_negotiations == (v.COMMON_EXTENDED_NEGOTIATION,)
    assert info.user_identity_rq == v.USER_IDENTITY_RQ
    assert info.user_identity_ac is None
    assert info.unknown_sub_items == (v.UNKNOWN_SUB_ITEM,)
    assert v.USER_INFORMATION_AC_FULL.user_identity_ac == v.USER_IDENTITY_AC


def test_user_information_properties_when_absent() -> None:
    info = UserInformationItem()
    assert info.maximum_length is None
    assert info.implementation_class_uid is None
    assert info.implementation_version_name is None
    assert info.async_ops_window is None
    assert info.role_selections == ()
    assert info.extended_negotiations == ()
    assert info.common_extended_negotiations == ()
    assert info.user_identity_rq is None
    assert info.user_identity_ac is None
    assert info.encode() == bytes.fromhex("50 00 00 00")


def test_user_information_keeps_order_and_repeats() -> None:
    subs = (
        v.ROLE_SELECTION,
        MaximumLengthSubItem(0),
        RoleSelectionSubItem("1.2.3", True, False),
        MaximumLengthSubItem(4096),
    )
    item = decode_item(UserInformationItem(subs).encode())
    assert isinstance(item, UserInformationItem)
    assert item.sub_items == subs
    assert item.maximum_length == 0  # the first one
    assert len(item.role_selections) == 2


def test_unknown_sub_items_are_kept_so_callers_can_skip_them() -> None:
    data = (
        bytes.fromhex("50 00 00 17")  # user information, length 23
        + bytes.fromhex("7f 00 00 03 aa bb cc")  # type 0x7f, unknown
        + v.MAXIMUM_LENGTH_BYTES
        + bytes.fromhex("20 00 00 04 01 00 00 00")  # a 0x20 item has no meaning here
    )
    item = decode_item(data)
    assert isinstance(item, UserInformationItem)
    assert item.sub_items == (
        UnknownSubItem(0x7F, b"\xaa\xbb\xcc"),
        v.MAXIMUM_LENGTH,
        UnknownSubItem(0x20, b"\x01\x00\x00\x00"),
    )
    assert item.maximum_length == 16384
    assert item.encode() == data


def test_user_information_takes_a_list() -> None:
    info = UserInformationItem([v.MAXIMUM_LENGTH])  # type: ignore[arg-type]
    assert info.sub_items == (v.MAXIMUM_LENGTH,)


def test_user_information_refuses_other_objects() -> None:
    with pytest.raises(ConfigurationError):
        UserInformationItem((v.APPLICATION_CONTEXT,))  # type: ignore[arg-type]


# ---------------------------------------------------------------- text handling


@pytest.mark.parametrize("padding", ["\0", " ", "\0\0", " \0"])
def test_uid_padding_is_removed_on_receipt(padding: str) -> None:
    raw = ("1.2.840.10008.1.2" + padding).encode()
    data = bytes((0x40, 0, 0, len(raw))) + raw
    assert decode_item(data) == TransferSyntaxSubItem("1.2.840.10008.1.2")


def test_uid_padding_is_removed_on_construction_so_round_trips_hold() -> None:
    item = TransferSyntaxSubItem("1.2.840.10008.1.2\0")
    assert item.uid == "1.2.840.10008.1.2"
    assert item == decode_item(item.encode())
    pc = PresentationContextRQItem(1, "1.2.840.10008.1.1 ", ["1.2.840.10008.1.2\0"])  # type: ignore[arg-type]
    assert pc.abstract_syntax == "1.2.840.10008.1.1"
    assert pc.transfer_syntaxes == ("1.2.840.10008.1.2",)


def test_uid_is_written_without_padding() -> None:
    # 17 characters: odd, and still no NUL added (PS3.8 9.3.2.2.1).
    assert AbstractSyntaxSubItem("1.2.840.10008.1.1").encode()[2:4] == b"\x00\x11"


def test_uid_str_subclass_is_stored_as_plain_str() -> None:
    class UID(str):
        pass

    item = AbstractSyntaxSubItem(UID("1.2.840.10008.1.1"))
    assert type(item.uid) is str


def test_non_ascii_uid_is_refused() -> None:
    with pytest.raises(ConfigurationError):
        AbstractSyntaxSubItem("1.2.840.10008.1.1é")


def test_non_ascii_uid_received_is_invalid() -> None:
    with pytest.raises(RemoteProtocolError) as err:
        decode_item(bytes.fromhex("30 00 00 03 31 2e ff"))
    assert err.value.abort_reason == 6


def test_empty_uid_is_allowed_for_negotiation_to_judge() -> None:
    assert decode_item(bytes.fromhex("30 00 00 00")) == AbstractSyntaxSubItem("")


def test_application_context_item_name() -> None:
    assert ApplicationContextItem("1.2.840.10008.3.1.1.1").name == "1.2.840.10008.3.1.1.1"


# ------------------------------------------------------- presentation context items


def test_presentation_context_rq_needs_a_transfer_syntax() -> None:
    with pytest.raises(ConfigurationError):
        PresentationContextRQItem(1, "1.2.840.10008.1.1", ())


def test_presentation_context_rq_refuses_a_bare_string_as_transfer_syntaxes() -> None:
    with pytest.raises(ConfigurationError):
        PresentationContextRQItem(1, "1.2.840.10008.1.1", "1.2.840.10008.1.2")  # type: ignore[arg-type]


def test_presentation_context_rq_sub_items_in_any_order() -> None:
    data = (
        bytes.fromhex("20 00 00 45 01 00 00 00")
        + v.TRANSFER_SYNTAX_BYTES
        + v.ABSTRACT_SYNTAX_BYTES
        + v.EXPLICIT_TRANSFER_SYNTAX_BYTES
    )
    assert decode_item(data) == v.PC_RQ_VERIFICATION


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (v.TRANSFER_SYNTAX_BYTES, 6),  # no abstract syntax
        (v.ABSTRACT_SYNTAX_BYTES, 6),  # no transfer syntax
        (v.ABSTRACT_SYNTAX_BYTES * 2 + v.TRANSFER_SYNTAX_BYTES, 5),  # two abstract syntaxes
        (v.ABSTRACT_SYNTAX_BYTES + v.TRANSFER_SYNTAX_BYTES + v.MAXIMUM_LENGTH_BYTES, 5),
        (v.ABSTRACT_SYNTAX_BYTES + v.TRANSFER_SYNTAX_BYTES + v.UNKNOWN_SUB_ITEM_BYTES, 4),
    ],
    ids=["no-abstract", "no-transfer", "two-abstract", "known-misplaced", "unknown"],
)
def test_presentation_context_rq_sub_item_rules(body: bytes, reason: int) -> None:
    data = bytes((0x20, 0, 0, len(body) + 4, 1, 0, 0, 0)) + body
    with pytest.raises(RemoteProtocolError) as err:
        decode_item(data)
    assert err.value.abort_reason == reason


def test_presentation_context_ac_acceptance_needs_a_transfer_syntax() -> None:
    with pytest.raises(ConfigurationError):
        PresentationContextACItem(1, PC_ACCEPTANCE, None)
    with pytest.raises(RemoteProtocolError) as err:
        decode_item(bytes.fromhex("21 00 00 04 01 00 00 00"))
    assert err.value.abort_reason == 6


@pytest.mark.parametrize("result", [5, 255])
def test_presentation_context_ac_result_out_of_range(result: int) -> None:
    with pytest.raises(ConfigurationError):
        PresentationContextACItem(1, result, None)
    with pytest.raises(RemoteProtocolError) as err:
        decode_item(bytes((0x21, 0, 0, 4, 1, 0, result, 0)))
    assert err.value.abort_reason == 6


def test_presentation_context_ac_with_two_transfer_syntaxes_is_unexpected() -> None:
    body = bytes.fromhex("01 00 00 00") + v.TRANSFER_SYNTAX_BYTES * 2
    with pytest.raises(RemoteProtocolError) as err:
        decode_item(bytes((0x21, 0, 0, len(body))) + body)
    assert err.value.abort_reason == 5


def test_presentation_context_ac_rejected_transfer_syntax_is_not_tested() -> None:
    body = bytes.fromhex("05 00 01 00 40 00 00 03 78 79 7a")
    item = decode_item(bytes((0x21, 0, 0, len(body))) + body)
    assert item == PresentationContextACItem(5, PC_USER_REJECTION, "xyz")


def test_presentation_context_ids_are_not_judged_here() -> None:
    # Even IDs break PS3.8 9.3.2.2, but the answer is per context (negotiation's job).
    item = decode_item(
        bytes.fromhex("20 00 00 1c 02 00 00 00 30 00 00 03 31 2e 32 40 00 00 0d") + b"1.2.840.10008"
    )
    assert isinstance(item, PresentationContextRQItem)
    assert item.context_id == 2


@pytest.mark.parametrize("context_id", [-1, 256, 1.0, True])
def test_presentation_context_id_must_be_a_byte(context_id: object) -> None:
    with pytest.raises(ConfigurationError):
        PresentationContextRQItem(context_id, "1.2", ("1.2",))  # type: ignore[arg-type]


# ------------------------------------------------------------------- sub-items


@pytest.mark.parametrize("value", [-1, 1 << 32])
def test_maximum_length_range(value: int) -> None:
    with pytest.raises(ConfigurationError):
        MaximumLengthSubItem(value)


def test_maximum_length_zero_means_unlimited_and_round_trips() -> None:
    assert decode_item(MaximumLengthSubItem(0).encode()) == MaximumLengthSubItem(0)
    assert decode_item(MaximumLengthSubItem(0xFFFFFFFF).encode()) == MaximumLengthSubItem(
        0xFFFFFFFF
    )


@pytest.mark.parametrize("value", [-1, 1 << 16])
def test_async_ops_window_range(value: int) -> None:
    with pytest.raises(ConfigurationError):
        AsynchronousOperationsWindowSubItem(value, 1)
    with pytest.raises(ConfigurationError):
        AsynchronousOperationsWindowSubItem(1, value)


@pytest.mark.parametrize(("scu", "scp"), [(0, 2), (2, 0), (0xFF, 0xFF)])
def test_role_selection_non_zero_role_byte_reads_as_set(scu: int, scp: int) -> None:
    data = bytearray(v.ROLE_SELECTION_BYTES)
    data[-2:] = bytes((scu, scp))
    assert decode_item(data) == RoleSelectionSubItem(
        v.CT_IMAGE_STORAGE, scu_role=bool(scu), scp_role=bool(scp)
    )


def test_role_selection_roles_must_be_bools() -> None:
    with pytest.raises(ConfigurationError):
        RoleSelectionSubItem("1.2", 1, 0)  # type: ignore[arg-type]


def test_extended_negotiation_with_empty_application_information() -> None:
    item = SOPClassExtendedNegotiationSubItem("1.2.3", b"")
    assert item.encode() == bytes.fromhex("56 00 00 07 00 05 31 2e 32 2e 33")
    assert decode_item(item.encode()) == item


def test_extended_negotiation_information_is_stored_as_bytes() -> None:
    item = SOPClassExtendedNegotiationSubItem("1.2", memoryview(b"\x01"))  # type: ignore[arg-type]
    assert type(item.service_class_application_information) is bytes


def test_common_extended_negotiation_without_related_classes() -> None:
    item = SOPClassCommonExtendedNegotiationSubItem("1.2", "1.3")
    assert item.encode() == bytes.fromhex("57 00 00 0c 00 03 31 2e 32 00 03 31 2e 33 00 00")
    assert decode_item(item.encode()) == item


def test_common_extended_negotiation_version_byte_and_trailing_reserved_are_not_tested() -> None:
    data = bytearray(v.COMMON_EXTENDED_NEGOTIATION_BYTES + b"\x00\x00")
    data[1] = 0x01  # sub-item version
    data[3] += 2  # two trailing reserved bytes (PS3.7 Table D.3-12)
    assert decode_item(data) == v.COMMON_EXTENDED_NEGOTIATION


def test_user_identity_repr_hides_the_secrets() -> None:
    assert "s3cret" not in repr(v.USER_IDENTITY_RQ)
    assert "alice" not in repr(v.USER_IDENTITY_RQ)
    assert "dead" not in repr(v.USER_IDENTITY_AC) and "\\xde" not in repr(v.USER_IDENTITY_AC)


@pytest.mark.parametrize("identity_type", [0, 6, 255])
def test_user_identity_unknown_types_are_kept(identity_type: int) -> None:
    item = dataclasses.replace(v.USER_IDENTITY_RQ, identity_type=identity_type)
    assert decode_item(item.encode()) == item


def test_user_identity_positive_response_non_zero_reads_as_set() -> None:
    data = bytearray(v.USER_IDENTITY_RQ_USERNAME_BYTES)
    data[5] = 0x02
    item = decode_item(data)
    assert isinstance(item, UserIdentityRQSubItem)
    assert item.positive_response_requested is True


def test_user_identity_fields_are_stored_as_bytes() -> None:
    item = UserIdentityRQSubItem(1, False, bytearray(b"bob"))  # type: ignore[arg-type]
    assert type(item.primary_field) is bytes
    assert type(UserIdentityACSubItem(bytearray(b"x")).server_response) is bytes  # type: ignore[arg-type]


def test_user_identity_refuses_text() -> None:
    with pytest.raises(ConfigurationError):
        UserIdentityRQSubItem(1, False, "alice")  # type: ignore[arg-type]


def test_unknown_sub_item_cannot_hold_a_known_type() -> None:
    with pytest.raises(ConfigurationError):
        UnknownSubItem(0x51, b"\x00\x00\x40\x00")


# ------------------------------------------------------------- too long to encode


@pytest.mark.parametrize(
    "item",
    [
        AbstractSyntaxSubItem("1" * 65536),
        SOPClassExtendedNegotiationSubItem("1.2", b"\x00" * 65533),
        RoleSelectionSubItem("1" * 65532, True, True),
        UserIdentityRQSubItem(1, False, b"x" * 65536),
        UserIdentityACSubItem(b"x" * 65534),
        UnknownSubItem(0x60, b"x" * 65536),
        UserInformationItem((UnknownSubItem(0x60, b"x" * 65532),)),
    ],
    ids=[
        "abstract-syntax",
        "extended-negotiation",
        "role-selection",
        "user-identity-primary",
        "user-identity-ac",
        "unknown",
        "user-information",
    ],
)
def test_encode_refuses_content_longer_than_its_length_field(item: Item) -> None:
    with pytest.raises(ConfigurationError):
        item.encode()


def test_longest_content_that_fits_encodes() -> None:
    item = UnknownSubItem(0x60, b"x" * 65535)
    assert decode_item(item.encode()) == item
