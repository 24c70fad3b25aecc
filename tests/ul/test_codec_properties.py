"""Properties of the codec and the framer, with hypothesis.

* ``decode(x.encode()) == x`` for every kind of PDU, item and sub-item;
* any byte string, fed to a ``PDUFramer`` whole or one byte at a time, yields
  PDUs or ``RemoteProtocolError``, and nothing else (h11's fuzz rule);
* the same for valid PDUs with bytes overwritten, which reach deeper than
  random bytes do.
"""

from __future__ import annotations

import contextlib
import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dicomnet.errors import RemoteProtocolError
from dicomnet.ul.framing import PDUFramer
from dicomnet.ul.items import (
    KNOWN_ITEM_TYPES,
    PC_ACCEPTANCE,
    AbstractSyntaxSubItem,
    ApplicationContextItem,
    AsynchronousOperationsWindowSubItem,
    ImplementationClassUIDSubItem,
    ImplementationVersionNameSubItem,
    Item,
    MaximumLengthSubItem,
    PresentationContextACItem,
    PresentationContextRQItem,
    RoleSelectionSubItem,
    SOPClassCommonExtendedNegotiationSubItem,
    SOPClassExtendedNegotiationSubItem,
    SubItem,
    TransferSyntaxSubItem,
    UnknownSubItem,
    UserIdentityACSubItem,
    UserIdentityRQSubItem,
    UserInformationItem,
    decode_item,
)
from dicomnet.ul.pdu import (
    PDU,
    AAbort,
    AssociateAC,
    AssociateRJ,
    AssociateRQ,
    PDataTF,
    PresentationDataValue,
    ReleaseRP,
    ReleaseRQ,
    decode_pdu,
    encode_pdata,
)

from . import vectors as v

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ----------------------------------------------------------------- strategies

byte = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
small_bytes = st.binary(max_size=40)

# UIDs: mostly real-looking, sometimes any ASCII (padding included: the
# constructors strip it the same way the decoder does).
real_uids = st.lists(st.integers(0, 99999), min_size=2, max_size=8).map(
    lambda parts: ".".join(map(str, parts))
)
any_ascii = st.text(st.characters(max_codepoint=0x7F), max_size=30)
uids = st.one_of(real_uids, any_ascii)
ae_titles = st.text(
    st.sampled_from(string.ascii_letters + string.digits + " -_.*"), min_size=1, max_size=16
).filter(lambda title: title.strip(" ") != "")
ac_ae_titles = st.text(st.sampled_from(string.printable[:95]), max_size=16)

sub_items: st.SearchStrategy[SubItem] = st.one_of(
    st.builds(MaximumLengthSubItem, u32),
    st.builds(ImplementationClassUIDSubItem, uids),
    st.builds(AsynchronousOperationsWindowSubItem, u16, u16),
    st.builds(RoleSelectionSubItem, uids, st.booleans(), st.booleans()),
    st.builds(ImplementationVersionNameSubItem, any_ascii),
    st.builds(SOPClassExtendedNegotiationSubItem, uids, small_bytes),
    st.builds(
        SOPClassCommonExtendedNegotiationSubItem,
        uids,
        uids,
        st.lists(uids, max_size=3).map(tuple),
    ),
    st.builds(UserIdentityRQSubItem, byte, st.booleans(), small_bytes, small_bytes),
    st.builds(UserIdentityACSubItem, small_bytes),
    st.builds(
        UnknownSubItem,
        byte.filter(lambda t: not 0x51 <= t <= 0x59),
        small_bytes,
    ),
)
user_information = st.builds(UserInformationItem, st.lists(sub_items, max_size=8).map(tuple))
#: A presentation context ID as an A-ASSOCIATE-RQ/AC allows it: odd (PS3.8 9.3.2.2).
odd_id = st.integers(0, 127).map(lambda n: 2 * n + 1)


def pc_rq(ids: st.SearchStrategy[int] = byte) -> st.SearchStrategy[PresentationContextRQItem]:
    return st.builds(
        PresentationContextRQItem, ids, uids, st.lists(uids, min_size=1, max_size=4).map(tuple)
    )


@st.composite
def pc_ac(draw: st.DrawFn, ids: st.SearchStrategy[int] = byte) -> PresentationContextACItem:
    result = draw(st.integers(0, 4))
    if result == PC_ACCEPTANCE:
        transfer: str | None = draw(uids)
    else:
        transfer = draw(st.none() | uids)
    return PresentationContextACItem(draw(ids), result, transfer)


# On its own an item is read by its type, so a "sub-item" of type 0x10 would read
# as an application context item: leave known types out here (inside a user
# information item, ``sub_items`` above does cover them).
lone_unknown = st.builds(
    UnknownSubItem, byte.filter(lambda t: t not in KNOWN_ITEM_TYPES), small_bytes
)
items: st.SearchStrategy[Item] = st.one_of(
    lone_unknown,
    st.builds(ApplicationContextItem, uids),
    st.builds(AbstractSyntaxSubItem, uids),
    st.builds(TransferSyntaxSubItem, uids),
    pc_rq(),
    pc_ac(),
    user_information,
    sub_items.filter(lambda sub: not isinstance(sub, UnknownSubItem)),
)

pdvs = st.builds(PresentationDataValue, byte, st.booleans(), st.booleans(), st.binary(max_size=300))

pdus: st.SearchStrategy[PDU] = st.one_of(
    st.builds(
        AssociateRQ,
        ae_titles,
        ae_titles,
        uids,
        # Each context its own odd ID (PS3.8 9.3.2.2, 7.1.1.13).
        st.lists(pc_rq(odd_id), min_size=1, max_size=4,
                 unique_by=lambda pc: pc.context_id).map(tuple),
        user_information,
        u16,
    ),
    st.builds(
        AssociateAC,
        ac_ae_titles,
        ac_ae_titles,
        uids,
        st.lists(pc_ac(odd_id), min_size=1, max_size=4,
                 unique_by=lambda pc: pc.context_id).map(tuple),
        user_information,
        u16,
    ),
    st.builds(AssociateRJ, byte, byte, byte),
    st.builds(PDataTF, st.lists(pdvs, min_size=1, max_size=4).map(tuple)),
    st.just(ReleaseRQ()),
    st.just(ReleaseRP()),
    st.builds(AAbort, byte, byte),
)


# ------------------------------------------------------------------- round trips


@SETTINGS
@given(pdus)
def test_every_pdu_round_trips(pdu: PDU) -> None:
    data = pdu.encode()
    assert decode_pdu(data) == pdu
    assert decode_pdu(data).encode() == data


@SETTINGS
@given(items)
def test_every_item_round_trips(item: Item) -> None:
    data = item.encode()
    assert decode_item(data) == item
    assert decode_item(data).encode() == data


@SETTINGS
@given(byte, st.booleans(), st.booleans(), st.binary(max_size=500))
def test_encode_pdata_equals_the_dataclass_encoding(
    context_id: int, is_command: bool, is_last: bool, data: bytes
) -> None:
    pdv = PresentationDataValue(context_id, is_command, is_last, data)
    assert encode_pdata(context_id, is_command, is_last, data) == PDataTF((pdv,)).encode()


@SETTINGS
@given(st.lists(pdus, min_size=1, max_size=3), st.data())
def test_a_stream_split_anywhere_gives_the_same_pdus(
    pdu_list: list[PDU], data: st.DataObject
) -> None:
    stream = b"".join(pdu.encode() for pdu in pdu_list)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    framer = PDUFramer()
    received: list[PDU] = []
    previous = 0
    for cut in [*cuts, len(stream)]:
        framer.feed(stream[previous:cut])
        previous = cut
        while (pdu := framer.next_pdu()) is not None:
            received.append(pdu)
    assert received == pdu_list
    assert framer.buffered == 0


# ------------------------------------------------------------------ fuzz rule


def _feed(chunks: list[bytes]) -> list[PDU]:
    """Feed chunks, collecting PDUs; stop at RemoteProtocolError. Anything else fails."""
    framer = PDUFramer()
    received: list[PDU] = []
    try:
        for chunk in chunks:
            framer.feed(chunk)
            while (pdu := framer.next_pdu()) is not None:
                received.append(pdu)
    except RemoteProtocolError as exc:
        assert exc.abort_source == 2
        assert exc.abort_reason in (1, 4, 5, 6)
    return received


def _whole_and_bytewise(data: bytes) -> None:
    whole = _feed([data])
    bytewise = _feed([data[i : i + 1] for i in range(len(data))])
    assert bytewise == whole
    with contextlib.suppress(RemoteProtocolError):
        decode_pdu(data)


@SETTINGS
@given(st.binary(max_size=300))
def test_any_bytes_give_pdus_or_remote_protocol_error(data: bytes) -> None:
    _whole_and_bytewise(data)


@SETTINGS
@given(st.integers(1, 7), st.binary(max_size=300))
def test_any_body_after_a_valid_header_gives_pdus_or_remote_protocol_error(
    pdu_type: int, body: bytes
) -> None:
    _whole_and_bytewise(bytes((pdu_type, 0)) + len(body).to_bytes(4, "big") + body)


@SETTINGS
@given(
    st.sampled_from([vector.data for vector in v.PDU_VECTORS]),
    st.lists(st.tuples(st.integers(0, 600), byte), min_size=1, max_size=4),
)
def test_valid_pdus_with_bytes_overwritten_give_pdus_or_remote_protocol_error(
    original: bytes, changes: list[tuple[int, int]]
) -> None:
    data = bytearray(original)
    for position, value in changes:
        data[position % len(data)] = value
    _whole_and_bytewise(bytes(data))


@SETTINGS
@given(pdus, st.integers(0, 1000), st.integers(0, 3))
def test_valid_pdus_truncated_or_extended_give_pdus_or_remote_protocol_error(
    pdu: PDU, cut: int, extra: int
) -> None:
    data = pdu.encode()
    _whole_and_bytewise(data[: cut % (len(data) + 1)] + b"\x00" * extra)
