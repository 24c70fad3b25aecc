"""DIMSE messages (PS3.7 9.3, 10.3): round trips, command fields, mandatory elements."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dicomnet.dimse import commands as c
from dicomnet.dimse import messages as m
from dicomnet.dimse.status import Status
from dicomnet.errors import LocalProtocolError, RemoteProtocolError

ALL = list(m.MESSAGE_CLASSES.values())

# PS3.7 Annex E, Table E.1-1, Command Field values.
EXPECTED_FIELDS = {
    m.CStoreRQ: 0x0001,
    m.CStoreRSP: 0x8001,
    m.CGetRQ: 0x0010,
    m.CGetRSP: 0x8010,
    m.CFindRQ: 0x0020,
    m.CFindRSP: 0x8020,
    m.CMoveRQ: 0x0021,
    m.CMoveRSP: 0x8021,
    m.CEchoRQ: 0x0030,
    m.CEchoRSP: 0x8030,
    m.NEventReportRQ: 0x0100,
    m.NEventReportRSP: 0x8100,
    m.NGetRQ: 0x0110,
    m.NGetRSP: 0x8110,
    m.NSetRQ: 0x0120,
    m.NSetRSP: 0x8120,
    m.NActionRQ: 0x0130,
    m.NActionRSP: 0x8130,
    m.NCreateRQ: 0x0140,
    m.NCreateRSP: 0x8140,
    m.NDeleteRQ: 0x0150,
    m.NDeleteRSP: 0x8150,
    m.CCancelRQ: 0x0FFF,
}


def test_command_fields_match_annex_e() -> None:
    assert {cls: cls.command_field for cls in ALL} == EXPECTED_FIELDS


def test_messages_are_frozen_and_slotted() -> None:
    msg = m.CEchoRQ(message_id=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        msg.message_id = 2  # type: ignore[misc]
    assert not hasattr(msg, "__dict__")


_UID = st.text("0123456789.", min_size=1, max_size=64)
_AE = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_", min_size=1, max_size=16)
_LO = st.text("abcdefghijklmnopqrstuvwxyz -.:", min_size=1, max_size=64).map(str.strip).filter(bool)
_US = st.integers(0, 0xFFFF)
_AT = st.lists(st.integers(0, 0xFFFFFFFF), min_size=1, max_size=4).map(tuple)


def _strategy(name: str) -> st.SearchStrategy[Any]:
    if name.endswith("_uid"):
        return _UID
    if name in ("move_destination", "move_originator_ae_title"):
        return _AE
    if name == "error_comment":
        return _LO
    if name in ("offending_element", "attribute_identifier_list"):
        return _AT
    if name == "priority":
        return st.sampled_from([m.PRIORITY_MEDIUM, m.PRIORITY_HIGH, m.PRIORITY_LOW])
    if name == "has_dataset":
        return st.booleans()
    return _US


@st.composite
def messages(draw: st.DrawFn) -> m.DimseMessage:
    cls = draw(st.sampled_from(ALL))
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        mandatory = f.default is dataclasses.MISSING
        if mandatory or draw(st.booleans()) or (f.default is not None and f.name != "has_dataset"):
            kwargs[f.name] = draw(_strategy(f.name))
    if cls.has_no_dataset:  # any other value is refused (PS3.7 9.3, 10.3)
        kwargs["has_dataset"] = False
    return cls(**kwargs)


@settings(max_examples=400, deadline=None)
@given(messages())
def test_every_message_round_trips(msg: m.DimseMessage) -> None:
    wire = m.encode_message(msg)
    assert m.decode_message(wire) == msg
    assert c.decode_command(wire)[c.COMMAND_FIELD] == type(msg).command_field


def _elements(msg: m.DimseMessage) -> dict[int, object]:
    """The elements of ``msg`` as encode_command takes them (the reference path)."""
    out: dict[int, object] = {
        c.COMMAND_FIELD: msg.command_field,
        c.COMMAND_DATA_SET_TYPE: m.DATA_SET_PRESENT if msg.has_dataset else m.DATA_SET_ABSENT,
    }
    for f in dataclasses.fields(msg):
        if f.name != "has_dataset":
            out[m._FIELD_TAGS[f.name]] = getattr(msg, f.name)
    return out


@settings(max_examples=300, deadline=None)
@given(messages())
def test_encode_message_writes_what_encode_command_writes(msg: m.DimseMessage) -> None:
    """The per-message encoders (commands.element_encoder) are a faster route to
    the very same bytes."""
    assert m.encode_message(msg) == c.encode_command(_elements(msg))


class _Code(int):
    """An int subclass, as an IntEnum status would be: the general path."""


@pytest.mark.parametrize("status", [0, 0xFFFF, _Code(0xB000)])
def test_integer_subclasses_encode_as_their_value(status: int) -> None:
    msg = m.CStoreRSP(message_id_being_responded_to=3, status=status,
                      affected_sop_instance_uid="1.2.3")
    assert m.encode_message(msg) == c.encode_command(_elements(msg))
    decoded = m.decode_message(m.encode_message(msg))
    assert isinstance(decoded, m.CStoreRSP) and decoded.status == int(status)


@pytest.mark.parametrize(("field", "value", "why"), [
    ("status", True, "needs an int"),
    ("status", -1, "out of range"),
    ("status", 0x10000, "out of range"),
    ("status", "0", "needs an int"),
    ("affected_sop_instance_uid", "1.2.\u00e9", "must be ASCII"),
    ("affected_sop_instance_uid", "1." * 33, "longer than 64"),
    ("affected_sop_instance_uid", 123, "needs a str"),
    ("error_comment", "x" * 65, "longer than 64"),
], ids=["bool", "negative", "too-large", "text-for-US", "non-ascii-UID", "long-UID",
        "int-for-UI", "long-LO"])
def test_the_fast_encoders_refuse_what_encode_command_refuses(field: str, value: object,
                                                              why: str) -> None:
    kwargs: dict[str, Any] = {"message_id_being_responded_to": 1, "status": 0, field: value}
    msg = m.CStoreRSP(**kwargs)
    with pytest.raises(LocalProtocolError, match=why):
        m.encode_message(msg)
    with pytest.raises(LocalProtocolError, match=why):
        c.encode_command(_elements(msg))


@pytest.mark.parametrize("cls", ALL)
def test_minimal_message_of_each_class_round_trips(cls: type[m.DimseMessage]) -> None:
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.default is dataclasses.MISSING:
            kwargs[f.name] = (
                "1.2.3" if f.name.endswith("uid") else "DEST" if "dest" in f.name else 5
            )
    msg = cls(**kwargs)
    assert m.decode_message(m.encode_message(msg)) == msg
    assert msg.is_request == (not cls.command_field & 0x8000)


def test_data_set_type_values() -> None:
    """We write 0001H / 0101H; anything but 0101H means a data set follows (PS3.7 E.1)."""
    with_ds = c.decode_command(
        m.encode_message(
            m.CFindRSP(message_id_being_responded_to=1, status=0xFF00, has_dataset=True)
        )
    )
    without = c.decode_command(
        m.encode_message(m.CFindRSP(message_id_being_responded_to=1, status=0))
    )
    assert with_ds[c.COMMAND_DATA_SET_TYPE] == 0x0001
    assert without[c.COMMAND_DATA_SET_TYPE] == 0x0101
    for value in (0x0000, 0x0001, 0x0102, 0xFEFE):
        wire = c.encode_command(
            {
                c.COMMAND_FIELD: 0x0020,  # a C-FIND-RQ (C-ECHO's is fixed at 0101H)
                c.MESSAGE_ID: 1,
                c.AFFECTED_SOP_CLASS_UID: "1.2.840.10008.1.1",
                c.COMMAND_DATA_SET_TYPE: value,
            }
        )
        assert m.decode_message(wire).has_dataset is True


def test_defaults() -> None:
    assert (
        m.CStoreRQ(
            message_id=1, affected_sop_class_uid="1", affected_sop_instance_uid="2"
        ).has_dataset
        is True
    )
    assert m.CFindRQ(message_id=1, affected_sop_class_uid="1").priority == m.PRIORITY_MEDIUM
    assert m.CEchoRQ(message_id=1).affected_sop_class_uid == "1.2.840.10008.1.1"


_ECHO = {
    c.COMMAND_FIELD: 0x0030,
    c.MESSAGE_ID: 1,
    c.AFFECTED_SOP_CLASS_UID: "1.2",
    c.COMMAND_DATA_SET_TYPE: 0x0101,
}


@pytest.mark.parametrize(
    ("elements", "why"),
    [
        ({**_ECHO, c.COMMAND_FIELD: None}, "no Command Field"),
        ({**_ECHO, c.COMMAND_FIELD: 0x0031}, "unknown Command Field"),
        ({**_ECHO, c.COMMAND_DATA_SET_TYPE: None}, "Command Data Set Type"),
        ({**_ECHO, c.MESSAGE_ID: None}, "lacks mandatory MessageID"),
        ({**_ECHO, c.AFFECTED_SOP_CLASS_UID: ""}, "empty AffectedSOPClassUID"),
        ({**_ECHO, c.COMMAND_FIELD: 0x0020, c.PRIORITY: 3}, "invalid Priority"),
        ({**_ECHO, c.COMMAND_FIELD: 0x0021, c.PRIORITY: 0}, "MoveDestination"),
        (
            {
                **_ECHO,
                c.COMMAND_FIELD: 0x8001,
                c.MESSAGE_ID: None,
                c.MESSAGE_ID_BEING_RESPONDED_TO: 1,
            },
            "lacks mandatory Status",
        ),
    ],
)
def test_decode_rejects_bad_messages(elements: dict[int, object], why: str) -> None:
    wire = c.encode_command(elements)
    with pytest.raises(RemoteProtocolError, match=why) as exc:
        m.decode_message(wire)
    # The service-user's A-ABORT (PS3.8 Table 9-26): a DIMSE fault, not a PDU's.
    assert (exc.value.abort_source, exc.value.abort_reason) == (0, 0)


def test_decode_drops_elements_the_message_does_not_have() -> None:
    wire = c.encode_command({**_ECHO, c.STATUS: 0, 0x00000001: b"\0\0\0\0"})
    assert m.decode_message(wire) == m.CEchoRQ(message_id=1, affected_sop_class_uid="1.2")


def test_encode_rejects_out_of_range_field() -> None:
    with pytest.raises(LocalProtocolError):
        m.encode_message(m.CEchoRQ(message_id=70000))


def test_encode_rejects_non_message() -> None:
    with pytest.raises(LocalProtocolError):
        m.encode_message(object())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("msg", "service"),
    [
        (m.CStoreRSP(message_id_being_responded_to=1, status=0xA700), "storage"),
        (m.CFindRSP(message_id_being_responded_to=1, status=0xA700), "find"),
        (m.CGetRSP(message_id_being_responded_to=1, status=0xA700), "get"),
        (m.CMoveRSP(message_id_being_responded_to=1, status=0xA700), "move"),
        (m.CEchoRSP(message_id_being_responded_to=1, status=0xA700), None),
        (m.NSetRSP(message_id_being_responded_to=1, status=0xA700), None),
    ],
)
def test_status_info(msg: m.DimseResponse, service: str | None) -> None:
    assert msg.status_info == Status(0xA700, service)  # type: ignore[arg-type]
    assert msg.status_info.is_failure


# -- refusal: the response that refuses a request -----------------------------------

_UID_CLASS, _UID_INSTANCE = "1.2.840.10008.5.1.4.1.1.7", "1.2.3.4.5"
_REQUESTS: list[Any] = [
    m.CEchoRQ(message_id=3),
    m.CStoreRQ(message_id=3, affected_sop_class_uid=_UID_CLASS,
               affected_sop_instance_uid=_UID_INSTANCE),
    m.CFindRQ(message_id=3, affected_sop_class_uid=_UID_CLASS),
    m.CGetRQ(message_id=3, affected_sop_class_uid=_UID_CLASS),
    m.CMoveRQ(message_id=3, affected_sop_class_uid=_UID_CLASS, move_destination="DEST"),
    m.NEventReportRQ(message_id=3, affected_sop_class_uid=_UID_CLASS,
                     affected_sop_instance_uid=_UID_INSTANCE, event_type_id=1),
    m.NGetRQ(message_id=3, requested_sop_class_uid=_UID_CLASS,
             requested_sop_instance_uid=_UID_INSTANCE),
    m.NSetRQ(message_id=3, requested_sop_class_uid=_UID_CLASS,
             requested_sop_instance_uid=_UID_INSTANCE),
    m.NActionRQ(message_id=3, requested_sop_class_uid=_UID_CLASS,
                requested_sop_instance_uid=_UID_INSTANCE, action_type_id=1),
    m.NCreateRQ(message_id=3, affected_sop_class_uid=_UID_CLASS),
    m.NDeleteRQ(message_id=3, requested_sop_class_uid=_UID_CLASS,
                requested_sop_instance_uid=_UID_INSTANCE),
]


@pytest.mark.parametrize("request_", _REQUESTS, ids=lambda r: type(r).__name__)
def test_every_request_has_its_refusal(request_: Any) -> None:
    rsp = m.refusal(request_, 0x0211, "not performed here " * 5)
    assert rsp is not None
    assert rsp.command_field == request_.command_field | 0x8000
    assert rsp.message_id_being_responded_to == 3 and rsp.status == 0x0211
    assert not rsp.has_dataset
    sop_class = getattr(request_, "affected_sop_class_uid", None) or getattr(
        request_, "requested_sop_class_uid", None)
    assert rsp.affected_sop_class_uid == sop_class
    instance = getattr(request_, "affected_sop_instance_uid", None) or getattr(
        request_, "requested_sop_instance_uid", None)
    if hasattr(rsp, "affected_sop_instance_uid"):
        assert rsp.affected_sop_instance_uid == instance
    comment = getattr(rsp, "error_comment", None)
    assert comment is None or (comment.startswith("not performed here") and len(comment) == 64)
    assert m.decode_message(m.encode_message(rsp)) == rsp  # on the wire as it is


def test_no_refusal_for_a_cancel_or_a_response() -> None:
    assert m.refusal(m.CCancelRQ(message_id_being_responded_to=3), 0x0211) is None
    assert m.refusal(m.CEchoRSP(message_id_being_responded_to=3, status=0), 0x0211) is None
