"""DimseConnection: reassembly of PDVs into DIMSE events, and its protocol rules (PS3.7 8)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dicomnet.dimse.connection import (
    FREE_FRAGMENTS,
    MAX_COMMAND_SET_LENGTH,
    DatasetFragment,
    DimseConnection,
    DimseEvent,
    MessageReceived,
    fragment_floor,
)
from dicomnet.dimse.fragments import command_pdus, dataset_pdus
from dicomnet.dimse.messages import (
    CEchoRQ,
    CEchoRSP,
    CFindRSP,
    CStoreRQ,
    CStoreRSP,
    encode_message,
)
from dicomnet.errors import LocalProtocolError, RemoteProtocolError
from tests.dimse.pdv import PDV, parse_pdu

STORE = CStoreRQ(
    message_id=3,
    affected_sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
    affected_sop_instance_uid="1.2.3.4.5.6",
)
ECHO = CEchoRQ(message_id=1)


def pdvs(pdus: list[bytes]) -> list[PDV]:
    return [parse_pdu(p)[1] for p in pdus]


def feed(conn: DimseConnection, items: list[PDV]) -> list[DimseEvent]:
    events: list[DimseEvent] = []
    for pdv in items:
        events.extend(conn.receive_pdv(pdv))
    return events


def test_echo_in_one_pdv() -> None:
    conn = DimseConnection()
    events = conn.receive_pdv(PDV(1, True, True, encode_message(ECHO)))
    assert events == [MessageReceived(1, ECHO)]
    assert conn.idle and not conn.expecting_dataset


@pytest.mark.parametrize("max_pdu_length", [20, 16384])
def test_store_with_fragmented_command_and_dataset(max_pdu_length: int) -> None:
    dataset = bytes(i % 256 for i in range(1000))
    sender = DimseConnection()
    receiver = DimseConnection()
    pdus = sender.encode_request(STORE, 5, max_pdu_length, dataset)
    events = feed(receiver, pdvs(pdus))
    assert events[0] == MessageReceived(5, STORE)
    fragments = events[1:]
    assert all(isinstance(e, DatasetFragment) and e.context_id == 5 for e in fragments)
    assert [e.is_last for e in fragments if isinstance(e, DatasetFragment)] == [False] * (
        len(fragments) - 1
    ) + [True]
    assert b"".join(e.data for e in fragments if isinstance(e, DatasetFragment)) == dataset
    assert receiver.idle


def test_partial_command_emits_nothing_until_last() -> None:
    conn = DimseConnection()
    items = pdvs(command_pdus(1, encode_message(ECHO), 20))
    assert len(items) > 2
    for pdv in items[:-1]:
        assert conn.receive_pdv(pdv) == []
        assert not conn.idle
    assert conn.receive_pdv(items[-1]) == [MessageReceived(1, ECHO)]


def test_messages_back_to_back_on_different_contexts() -> None:
    conn = DimseConnection()
    rsp = CStoreRSP(message_id_being_responded_to=3, status=0)
    events = feed(
        conn,
        pdvs(command_pdus(1, encode_message(ECHO), 100))
        + pdvs(command_pdus(3, encode_message(STORE), 100))
        + pdvs(list(dataset_pdus(3, b"DATA", 100)))
        + pdvs(command_pdus(5, encode_message(rsp), 100)),
    )
    assert events == [
        MessageReceived(1, ECHO),
        MessageReceived(3, STORE),
        DatasetFragment(3, b"DATA", True),
        MessageReceived(5, rsp),
    ]


def test_empty_last_data_pdv_ends_the_dataset() -> None:
    conn = DimseConnection()
    feed(conn, [PDV(1, True, True, encode_message(STORE))])
    assert conn.expecting_dataset
    assert conn.receive_pdv(PDV(1, False, False, b"ab")) == [DatasetFragment(1, b"ab", False)]
    assert conn.receive_pdv(PDV(1, False, True, b"")) == [DatasetFragment(1, b"", True)]
    assert conn.idle


def _violation(conn: DimseConnection, items: list[PDV], match: str) -> None:
    """A DIMSE fault: the service-user's A-ABORT, source 0, reason 0 (PS3.8 Table
    9-26; tests/dimse/test_abort_source.py)."""
    with pytest.raises(RemoteProtocolError, match=match) as exc:
        feed(conn, items)
    assert (exc.value.abort_source, exc.value.abort_reason) == (0, 0)


def test_data_pdv_before_any_command() -> None:
    _violation(DimseConnection(), [PDV(1, False, True, b"x")], "no data set is due")


def test_data_pdv_after_message_without_dataset() -> None:
    items = [PDV(1, True, True, encode_message(ECHO)), PDV(1, False, True, b"x")]
    _violation(DimseConnection(), items, "no data set is due")


def test_data_pdv_inside_a_command_set() -> None:
    cmd = encode_message(STORE)
    items = [PDV(1, True, False, cmd[:10]), PDV(1, False, True, b"x")]
    _violation(DimseConnection(), items, "before the command set")


def test_command_pdv_while_dataset_pending() -> None:
    """Also the case of a command fragment after the last command fragment of a C-STORE."""
    cmd = encode_message(STORE)
    items = [PDV(1, True, True, cmd), PDV(1, False, False, b"abc"), PDV(1, True, True, cmd)]
    _violation(DimseConnection(), items, "still due")
    _violation(DimseConnection(), [PDV(1, True, True, cmd), PDV(1, True, False, b"")], "due")


def test_command_fragment_on_another_context() -> None:
    cmd = encode_message(ECHO)
    items = [PDV(1, True, False, cmd[:8]), PDV(3, True, True, cmd[8:])]
    _violation(DimseConnection(), items, "inside a command set on context 1")


def test_data_fragment_on_another_context() -> None:
    items = [PDV(1, True, True, encode_message(STORE)), PDV(3, False, True, b"x")]
    _violation(DimseConnection(), items, "for a message on context 1")


def test_oversized_command_set() -> None:
    chunk = bytes(16384 - 6)
    n = MAX_COMMAND_SET_LENGTH // len(chunk) + 1
    items = [PDV(1, True, False, chunk)] * n
    _violation(DimseConnection(), items, "larger than")


def test_command_set_at_the_cap_is_accepted_then_decoded() -> None:
    cmd = encode_message(ECHO)
    conn = DimseConnection()
    # Pad with an unknown group-0000 element up to exactly the cap.
    pad = MAX_COMMAND_SET_LENGTH - len(cmd) - 8
    from dicomnet.dimse.commands import decode_command, encode_command

    big = encode_command({**decode_command(cmd), 0x0000_0001: bytes(pad - 12)})
    assert len(big) <= MAX_COMMAND_SET_LENGTH
    assert conn.receive_pdv(PDV(1, True, True, big)) == [MessageReceived(1, ECHO)]


def test_undecodable_command_set() -> None:
    _violation(DimseConnection(), [PDV(1, True, True, b"\x08\x00" * 5)], "group 0000")


def test_unknown_command_field() -> None:
    from dicomnet.dimse.commands import COMMAND_DATA_SET_TYPE, COMMAND_FIELD, encode_command

    cmd = encode_command({COMMAND_FIELD: 0x0042, COMMAND_DATA_SET_TYPE: 0x0101})
    _violation(DimseConnection(), [PDV(1, True, True, cmd)], "unknown Command Field")


def test_next_message_id_wraps_and_skips_zero() -> None:
    conn = DimseConnection()
    ids = [conn.next_message_id() for _ in range(65536)]
    assert ids[:3] == [1, 2, 3]
    assert ids[65534] == 65535
    assert ids[65535] == 1
    assert 0 not in ids


def test_next_message_id_skips_those_still_outstanding() -> None:
    """PS3.7 9.1.1.1: unique among the requests outstanding; the requestor says
    which are (this layer sees no responses)."""
    conn = DimseConnection()
    outstanding = {1, 2, 4}
    conn.message_id_in_use = outstanding.__contains__
    assert [conn.next_message_id() for _ in range(3)] == [3, 5, 6]
    conn._last_message_id = 0xFFFE
    assert [conn.next_message_id() for _ in range(2)] == [0xFFFF, 3]
    conn.message_id_in_use = lambda _id: True
    with pytest.raises(LocalProtocolError, match="every Message ID"):
        conn.next_message_id()


def test_encode_request_and_response_check_direction() -> None:
    conn = DimseConnection()
    rsp = CEchoRSP(message_id_being_responded_to=1, status=0)
    with pytest.raises(LocalProtocolError):
        conn.encode_request(rsp, 1, 16384)
    with pytest.raises(LocalProtocolError):
        conn.encode_response(ECHO, 1, 16384)
    assert conn.encode_response(rsp, 1, 16384) == command_pdus(1, encode_message(rsp), 16384)


def test_encode_refuses_dataset_for_message_without_one() -> None:
    with pytest.raises(LocalProtocolError, match="has_dataset=False"):
        DimseConnection().encode_request(ECHO, 1, 16384, b"data")


def test_encode_request_without_dataset_leaves_it_to_the_caller() -> None:
    pdus = DimseConnection().encode_request(STORE, 1, 16384)
    assert [parse_pdu(p)[1].is_command for p in pdus] == [True]


def test_pending_find_response_with_identifier() -> None:
    rsp = CFindRSP(message_id_being_responded_to=2, status=0xFF00, has_dataset=True)
    conn = DimseConnection()
    pdus = DimseConnection().encode_response(rsp, 1, 64, b"identifier")
    assert feed(conn, pdvs(pdus)) == [
        MessageReceived(1, rsp),
        DatasetFragment(1, b"identifier", True),
    ]


_pdv = st.builds(
    PDV,
    st.sampled_from([1, 3]),
    st.booleans(),
    st.booleans(),
    st.one_of(
        st.binary(max_size=40), st.sampled_from([encode_message(ECHO), encode_message(STORE)])
    ),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_pdv, max_size=8))
def test_fuzz_any_pdv_sequence_yields_events_or_remote_protocol_error(items: list[PDV]) -> None:
    conn = DimseConnection()
    try:
        events = feed(conn, items)
    except RemoteProtocolError:
        return
    for event in events:
        assert isinstance(event, MessageReceived | DatasetFragment)


def test_with_the_ul_codec() -> None:
    """Our PDUs decode with ul.pdu, and its PresentationDataValue feeds the connection."""
    from dicomnet.ul.pdu import PDataTF, PresentationDataValue, decode_pdu

    dataset = bytes(range(256)) * 10
    pdus = DimseConnection().encode_request(STORE, 7, 100, dataset)
    received: list[PresentationDataValue] = []
    for raw in pdus:
        pdu = decode_pdu(raw)
        assert isinstance(pdu, PDataTF)
        assert len(raw) - 6 <= 100
        received.extend(pdu.pdvs)
    conn = DimseConnection()
    # Typed use proves PresentationDataValue satisfies the connection's PDV protocol.
    events = [event for pdv in received for event in conn.receive_pdv(pdv)]
    assert events[0] == MessageReceived(7, STORE)
    assert b"".join(e.data for e in events[1:] if isinstance(e, DatasetFragment)) == dataset


def test_takes_data_on_only_the_context_of_the_data_set_due() -> None:
    conn = DimseConnection()
    assert not conn.takes_data_on(1)  # no message yet
    command = encode_message(STORE)
    conn.receive_pdv(PDV(1, True, False, command[:10]))
    assert not conn.takes_data_on(1)  # the command set is not complete
    conn.receive_pdv(PDV(1, True, True, command[10:]))
    assert conn.takes_data_on(1) and not conn.takes_data_on(3)
    conn.receive_pdv(PDV(1, False, True, b"data"))
    assert not conn.takes_data_on(1)  # the data set is complete


def test_take_last_data_completes_the_data_set_due() -> None:
    conn = DimseConnection()
    assert not conn.take_last_data(1)  # no message yet
    conn.receive_pdv(PDV(1, True, True, encode_message(STORE)))
    assert not conn.take_last_data(3)  # not the data set's context
    assert conn.takes_data_on(1) and conn.take_last_data(1)
    assert conn.idle and not conn.takes_data_on(1)
    # The next message is received as usual.
    assert conn.receive_pdv(PDV(1, True, True, encode_message(STORE))) == [
        MessageReceived(1, STORE)]


def test_take_last_data_is_one_python_call() -> None:
    """Once per data set received in place, on the server's event loop: its test
    of the context written out, not a call of takes_data_on."""
    from tests.aio.test_receive_path_calls import python_calls

    conn = DimseConnection()
    conn.receive_pdv(PDV(1, True, True, encode_message(STORE)))
    taken: list[bool] = []
    assert python_calls(lambda: taken.append(conn.take_last_data(1))) == [
        "DimseConnection.take_last_data"]
    assert taken == [True] and conn.idle


def _data_set_due(conn: DimseConnection) -> None:
    assert feed(conn, pdvs(conn.encode_request(STORE, 1, 0))) == [MessageReceived(1, STORE)]


def test_a_flood_of_empty_data_pdvs_is_refused_past_the_free_ones() -> None:
    conn = DimseConnection()
    _data_set_due(conn)
    feed(conn, [PDV(1, False, False, b"")] * FREE_FRAGMENTS)  # free, whatever their size
    with pytest.raises(RemoteProtocolError, match=(
            r"data set cut into 1025 PDVs of 0 bytes on average so far \(past 1024 PDVs, at "
            r"least 256 bytes each on average are expected\): a flood of PDVs")) as caught:
        conn.receive_pdv(PDV(1, False, False, b""))
    assert (caught.value.abort_source, caught.value.abort_reason) == (0, 0)


def test_an_endless_command_set_of_empty_pdvs_is_refused() -> None:
    # Empty fragments never grow the command set past MAX_COMMAND_SET_LENGTH.
    conn = DimseConnection()
    with pytest.raises(RemoteProtocolError, match="command set cut into 1025 PDVs"):
        feed(conn, [PDV(1, True, False, b"")] * (FREE_FRAGMENTS + 1))


def test_many_pdvs_of_a_fair_size_are_taken_and_the_count_starts_again() -> None:
    conn = DimseConnection()
    for _ in range(2):  # two messages: each counts its own PDVs
        _data_set_due(conn)
        events = feed(conn, [PDV(1, False, False, bytes(256))] * 3000
                      + [PDV(1, False, True, b"")])
        assert len(events) == 3001 and conn.idle
    # Hundreds of tiny PDVs among large ones: the running mean is what counts.
    _data_set_due(conn)
    feed(conn, [PDV(1, False, False, b"x")] * 500 + [PDV(1, False, False, bytes(4096))] * 600
         + [PDV(1, False, False, b"x")] * 2000)


def test_a_receiver_announcing_tiny_pdus_takes_tiny_pdvs() -> None:
    assert fragment_floor(0) == 256 and fragment_floor(16384) == 256
    assert fragment_floor(7) == 0 and fragment_floor(1030) == 256 and fragment_floor(406) == 100
    conn = DimseConnection(min_fragment_mean=fragment_floor(7))
    _data_set_due(conn)
    assert len(feed(conn, [PDV(1, False, False, b"x")] * 5000)) == 5000


def _outcome(conn: DimseConnection, pdv: PDV, *, by_data_pdv: bool) -> object:
    """What taking ``pdv`` did: its events (data fragments as (context, data,
    last)), or the error's words and abort reason."""
    try:
        if by_data_pdv and not pdv.is_command:
            conn.receive_data_pdv(pdv.context_id, pdv.is_last, len(pdv.data))
            return [(pdv.context_id, bytes(pdv.data), pdv.is_last)]
        return [(e.context_id, bytes(e.data), e.is_last) if isinstance(e, DatasetFragment)
                else e for e in conn.receive_pdv(pdv)]
    except RemoteProtocolError as exc:
        return (str(exc), exc.abort_source, exc.abort_reason)


_SOME_PDVS = st.lists(st.sampled_from([
    PDV(1, True, True, encode_message(STORE)),
    PDV(1, True, False, encode_message(STORE)[:10]),
    PDV(3, True, True, encode_message(ECHO)),
    PDV(1, False, False, b"abc"),
    PDV(1, False, False, b""),
    PDV(1, False, True, b"z"),
    PDV(3, False, True, b"y"),
]), max_size=12)


@given(_SOME_PDVS)
@settings(max_examples=200, deadline=None)
def test_receive_data_pdv_takes_a_data_pdv_as_receive_pdv_does(sequence: list[PDV]) -> None:
    """The driver's way for a data PDV (no DatasetFragment made: it routes the data
    itself) checks and counts as receive_pdv does: same errors, same state."""
    usual, direct = DimseConnection(min_fragment_mean=2), DimseConnection(min_fragment_mean=2)
    for pdv in sequence:
        assert _outcome(usual, pdv, by_data_pdv=False) == _outcome(direct, pdv, by_data_pdv=True)
        assert (usual.idle, usual.expecting_dataset) == (direct.idle, direct.expecting_dataset)


def test_a_flood_of_data_pdvs_is_refused_by_receive_data_pdv_too() -> None:
    conn = DimseConnection()
    _data_set_due(conn)
    for _ in range(FREE_FRAGMENTS):
        conn.receive_data_pdv(1, False, 0)
    with pytest.raises(RemoteProtocolError, match="data set cut into 1025 PDVs"):
        conn.receive_data_pdv(1, False, 0)


def test_receive_data_pdv_is_one_python_call() -> None:
    """Per data PDV routed on the server's event loop: no DatasetFragment, no call
    to count it."""
    from tests.aio.test_receive_path_calls import python_calls

    conn = DimseConnection()
    _data_set_due(conn)
    assert python_calls(lambda: conn.receive_data_pdv(1, False, 300)) == [
        "DimseConnection.receive_data_pdv"]
    assert python_calls(lambda: conn.receive_data_pdv(1, True, 30)) == [
        "DimseConnection.receive_data_pdv"]
    assert conn.idle
