"""ULConnection: what the server's read path costs in Python calls, counted (not
timed): these run per read, or per PDU, on the event loop of every association."""

from __future__ import annotations

from dicomnet.testing import associated_pair
from dicomnet.ul.events import DataReceived
from dicomnet.ul.framing import PDU_ENDED
from dicomnet.ul.pdata import PresentationDataValue
from dicomnet.ul.pdu import encode_pdata
from tests.aio.test_receive_path_calls import python_calls


def test_p_data_in_sta6_goes_from_the_framer_to_the_events_without_a_call_per_pdu() -> None:
    """DT-2 (PS3.8 Table 9-10: Evt10 in Sta6) is taken in ``receive_data`` itself:
    per streamed stretch of PDV data the framer's PDU and the event, no
    ``_on_pdu``; the events and their data as before."""
    pair = associated_pair()
    acceptor = pair.acceptor
    acceptor.borrow_pdata = True
    before = acceptor.pdus_received
    wire = (encode_pdata(1, True, True, b"\x01\x02") + encode_pdata(1, False, False, b"abcd")
            + encode_pdata(1, False, True, b"ef"))
    calls = python_calls(lambda: acceptor.receive_data(wire, pair.now))
    # receive, entered once and resumed after each of the three PDUs it yields;
    # each event made without its dataclass __init__ (the framer's PDU is checked).
    assert calls == ["ULConnection.receive_data",
                     "PDUFramer.receive", "borrowed_pdata",
                     "PDUFramer.receive", "borrowed_pdata",
                     "PDUFramer.receive", "borrowed_pdata",
                     "PDUFramer.receive"]
    events = acceptor.take_events()
    assert [type(e) for e in events] == [DataReceived] * 3
    first = events[0]
    assert isinstance(first, DataReceived) and first == DataReceived(first.pdu)
    assert [(p.context_id, p.is_command, p.is_last, bytes(p.data))
            for e in events if isinstance(e, DataReceived) for p in e.pdu.pdvs] == [
        (1, True, True, b"\x01\x02"), (1, False, False, b"abcd"), (1, False, True, b"ef")]
    assert acceptor.pdus_received == before + 3


def test_the_state_a_driver_reads_per_read_costs_one_call_each() -> None:
    """``pdv_data_due``, ``current_pdv``, ``has_partial_pdu``: the framer's state read
    where it is kept, not through a second property each."""
    pair = associated_pair()
    acceptor = pair.acceptor
    acceptor.borrow_pdata = True
    wire = encode_pdata(3, False, True, bytes(300))
    acceptor.receive_data(wire[:12 + 100], pair.now)
    acceptor.take_events()
    due: list[object] = []
    assert python_calls(lambda: due.append(acceptor.pdv_data_due)) == [
        "ULConnection.pdv_data_due"]
    assert python_calls(lambda: due.append(acceptor.current_pdv)) == [
        "ULConnection.current_pdv"]
    assert python_calls(lambda: due.append(acceptor.has_partial_pdu)) == [
        "ULConnection.has_partial_pdu"]
    assert due == [200, (3, False, True), True]
    assert acceptor.consume_pdv_data(200, pair.now) == PDU_ENDED
    assert (acceptor.pdv_data_due, acceptor.current_pdv, acceptor.has_partial_pdu) == (
        0, None, False)


def test_a_requestor_s_p_data_is_copied_without_the_pdv_s_constructor() -> None:
    """A requestor (an SCU reading its responses) takes each PDV's data as bytes,
    not a view: the framer makes the PDV and its PDU as ``borrowed_pdata`` does,
    its fields checked already (the PDV's ``__init__``, ``__post_init__`` and
    the PDV and PDU constructors before: three calls per PDV). The same events."""
    pair = associated_pair()
    requestor = pair.requestor
    assert not requestor.borrow_pdata
    wire = encode_pdata(1, True, True, b"\x01\x02") + encode_pdata(1, False, True, b"ef")
    calls = python_calls(lambda: requestor.receive_data(wire, pair.now))
    assert calls == ["ULConnection.receive_data",
                     "PDUFramer.receive", "borrowed_pdata",
                     "PDUFramer.receive", "borrowed_pdata",
                     "PDUFramer.receive"]
    events = requestor.take_events()
    assert all(isinstance(e, DataReceived) for e in events)
    pdvs = [p for e in events if isinstance(e, DataReceived) for p in e.pdu.pdvs]
    assert [(p.context_id, p.is_command, p.is_last, p.data) for p in pdvs] == [
        (1, True, True, b"\x01\x02"), (1, False, True, b"ef")]
    assert all(type(p.data) is bytes for p in pdvs)
    assert pdvs[0] == PresentationDataValue(1, True, True, b"\x01\x02")
