"""Every one of the 13 x 19 = 247 cells of PS3.8 Table 9-10, without sockets.

``EXPECTED`` below is Table 9-10 transcribed on its own (not derived from the
code), and ``NEXT_STATE``/``EFFECTS`` are the action definitions of Tables 9-6
to 9-9. Each cell is checked three ways: the table in ``ul/fsm.py`` names the
same action, running it reaches the standard's next state, and it produces the
standard's effects (PDU sent, primitive issued, ARTIM started/stopped,
transport opened/closed); an abort indication also says whose A-ABORT it was
(``Aborted.by``: the peer's for AA-3, ours for AA-8, none for AA-4). Blank
cells must raise LocalProtocolError.
"""

from __future__ import annotations

import pytest

from dicomnet.errors import LocalProtocolError, RemoteProtocolError
from dicomnet.ul.events import (
    Aborted,
    AssociateAccepted,
    AssociateRejected,
    AssociateRequested,
    DataReceived,
    ReleaseConfirmed,
    ReleaseRequested,
)
from dicomnet.ul.fsm import (
    TRANSITIONS,
    CloseTransport,
    Event,
    Indicate,
    Machine,
    OpenTransport,
    SendPDU,
    StartArtim,
    State,
    StopArtim,
)
from dicomnet.ul.items import (
    PresentationContextACItem,
    PresentationContextRQItem,
    UserInformationItem,
)
from dicomnet.ul.pdu import (
    AAbort,
    AssociateAC,
    AssociateRJ,
    AssociateRQ,
    PDataTF,
    PresentationDataValue,
    ReleaseRP,
    ReleaseRQ,
)

# PS3.8 Table 9-10. Columns Sta1..Sta13; "." is a blank cell.
_TABLE = """
Evt1   AE-1 .    .    .    .    .    .    .    .    .     .    .    .
Evt2   .    .    .    AE-2 .    .    .    .    .    .     .    .    .
Evt3   .    AA-1 AA-8 .    AE-3 AA-8 AA-8 AA-8 AA-8 AA-8  AA-8 AA-8 AA-6
Evt4   .    AA-1 AA-8 .    AE-4 AA-8 AA-8 AA-8 AA-8 AA-8  AA-8 AA-8 AA-6
Evt5   AE-5 .    .    .    .    .    .    .    .    .     .    .    .
Evt6   .    AE-6 AA-8 .    AA-8 AA-8 AA-8 AA-8 AA-8 AA-8  AA-8 AA-8 AA-7
Evt7   .    .    AE-7 .    .    .    .    .    .    .     .    .    .
Evt8   .    .    AE-8 .    .    .    .    .    .    .     .    .    .
Evt9   .    .    .    .    .    DT-1 .    AR-7 .    .     .    .    .
Evt10  .    AA-1 AA-8 .    AA-8 DT-2 AR-6 AA-8 AA-8 AA-8  AA-8 AA-8 AA-6
Evt11  .    .    .    .    .    AR-1 .    .    .    .     .    .    .
Evt12  .    AA-1 AA-8 .    AA-8 AR-2 AR-8 AA-8 AA-8 AA-8  AA-8 AA-8 AA-6
Evt13  .    AA-1 AA-8 .    AA-8 AA-8 AR-3 AA-8 AA-8 AR-10 AR-3 AA-8 AA-6
Evt14  .    .    .    .    .    .    .    AR-4 AR-9 .     .    AR-4 .
Evt15  .    .    AA-1 AA-2 AA-1 AA-1 AA-1 AA-1 AA-1 AA-1  AA-1 AA-1 .
Evt16  .    AA-2 AA-3 .    AA-3 AA-3 AA-3 AA-3 AA-3 AA-3  AA-3 AA-3 AA-2
Evt17  .    AA-5 AA-4 AA-4 AA-4 AA-4 AA-4 AA-4 AA-4 AA-4  AA-4 AA-4 AR-5
Evt18  .    AA-2 .    .    .    .    .    .    .    .     .    .    AR-5
Evt19  .    AA-1 AA-8 .    AA-8 AA-8 AA-8 AA-8 AA-8 AA-8  AA-8 AA-8 AA-7
"""

EXPECTED: dict[tuple[State, Event], str | None] = {}
for _line in _TABLE.strip().splitlines():
    _name, *_cells = _line.split()
    assert len(_cells) == 13
    for _i, _cell in enumerate(_cells, start=1):
        EXPECTED[(State(_i), Event[_name])] = None if _cell == "." else _cell

# Next state of each action (PS3.8 Tables 9-6 to 9-9); AE-6 and AR-8 have two.
NEXT_STATE: dict[str, State] = {
    "AE-1": State.Sta4,
    "AE-2": State.Sta5,
    "AE-3": State.Sta6,
    "AE-4": State.Sta1,
    "AE-5": State.Sta2,
    "AE-7": State.Sta6,
    "AE-8": State.Sta13,
    "DT-1": State.Sta6,
    "DT-2": State.Sta6,
    "AR-1": State.Sta7,
    "AR-2": State.Sta8,
    "AR-3": State.Sta1,
    "AR-4": State.Sta13,
    "AR-5": State.Sta1,
    "AR-6": State.Sta7,
    "AR-7": State.Sta8,
    "AR-9": State.Sta11,
    "AR-10": State.Sta12,
    "AA-1": State.Sta13,
    "AA-2": State.Sta1,
    "AA-3": State.Sta1,
    "AA-4": State.Sta1,
    "AA-5": State.Sta1,
    "AA-6": State.Sta13,
    "AA-7": State.Sta13,
    "AA-8": State.Sta13,
}

# What each action must do, as (effect type, detail) pairs in order.
EFFECTS: dict[str, list[tuple[type, object]]] = {
    "AE-1": [(OpenTransport, None)],
    "AE-2": [(SendPDU, AssociateRQ)],
    "AE-3": [(Indicate, AssociateAccepted)],
    "AE-4": [(Indicate, AssociateRejected), (CloseTransport, None)],
    "AE-5": [(StartArtim, None)],
    "AE-6": [(StopArtim, None), (Indicate, AssociateRequested)],
    "AE-7": [(SendPDU, AssociateAC)],
    "AE-8": [(SendPDU, AssociateRJ), (StartArtim, None)],
    "DT-1": [(SendPDU, PDataTF)],
    "DT-2": [(Indicate, DataReceived)],
    "AR-1": [(SendPDU, ReleaseRQ)],
    "AR-2": [(Indicate, ReleaseRequested)],
    "AR-3": [(Indicate, ReleaseConfirmed), (CloseTransport, None)],
    "AR-4": [(SendPDU, ReleaseRP), (StartArtim, None)],
    "AR-5": [(StopArtim, None), (CloseTransport, None)],
    "AR-6": [(Indicate, DataReceived)],
    "AR-7": [(SendPDU, PDataTF)],
    "AR-8": [(Indicate, ReleaseRequested)],
    "AR-9": [(SendPDU, ReleaseRP)],
    "AR-10": [(Indicate, ReleaseConfirmed)],
    "AA-1": [(SendPDU, AAbort), (StartArtim, None)],
    "AA-2": [(StopArtim, None), (CloseTransport, None)],
    "AA-3": [(Indicate, (Aborted, "peer")), (CloseTransport, None)],  # it was received
    "AA-4": [(Indicate, (Aborted, None)), (CloseTransport, None)],  # no A-ABORT at all
    "AA-5": [(StopArtim, None), (CloseTransport, None)],
    "AA-6": [],
    "AA-7": [(SendPDU, AAbort)],
    "AA-8": [(SendPDU, AAbort), (Indicate, (Aborted, "us")), (StartArtim, None)],  # ours
}

RQ = AssociateRQ(
    called_ae_title="ACCEPTOR",
    calling_ae_title="REQUESTOR",
    application_context_name="1.2.840.10008.3.1.1.1",
    presentation_contexts=(
        PresentationContextRQItem(1, "1.2.840.10008.1.1", ("1.2.840.10008.1.2",)),
    ),
    user_information=UserInformationItem(sub_items=()),
)
AC = AssociateAC(
    called_ae_title="ACCEPTOR",
    calling_ae_title="REQUESTOR",
    application_context_name="1.2.840.10008.3.1.1.1",
    presentation_contexts=(PresentationContextACItem(1, 0, "1.2.840.10008.1.2"),),
    user_information=UserInformationItem(sub_items=()),
)
RJ = AssociateRJ(result=1, source=1, reason=1)
PDATA = PDataTF(pdvs=(PresentationDataValue(1, True, True, b"\x00\x00"),))

ARGS: dict[Event, object] = {
    Event.Evt1: RQ,
    Event.Evt2: RQ,
    Event.Evt3: AC,
    Event.Evt4: RJ,
    Event.Evt5: None,
    Event.Evt6: RQ,
    Event.Evt7: AC,
    Event.Evt8: RJ,
    Event.Evt9: PDATA,
    Event.Evt10: PDATA,
    Event.Evt11: None,
    Event.Evt12: ReleaseRQ(),
    Event.Evt13: ReleaseRP(),
    Event.Evt14: None,
    Event.Evt15: AAbort(source=0, reason=0),
    Event.Evt16: AAbort(source=2, reason=1),
    Event.Evt17: None,
    Event.Evt18: None,
    Event.Evt19: RemoteProtocolError("bad PDU", abort_source=2, abort_reason=6),
}

CELLS = [(s, e) for s in State for e in Event]


def test_the_grid_has_247_cells() -> None:
    assert len(CELLS) == 247 == len(EXPECTED)


def test_table_names_no_cell_outside_the_standard() -> None:
    assert set(TRANSITIONS) == {k for k, v in EXPECTED.items() if v is not None}


@pytest.mark.parametrize(("state", "event"), CELLS, ids=[f"{s.name}-{e.name}" for s, e in CELLS])
@pytest.mark.parametrize("requestor", [True, False], ids=["requestor", "acceptor"])
def test_cell(state: State, event: Event, requestor: bool) -> None:
    expected = EXPECTED[(state, event)]
    machine = Machine(is_requestor=requestor)
    machine.state = state
    if expected is None:
        with pytest.raises(LocalProtocolError):
            machine.fire(event, ARGS[event])
        assert machine.state is state
        assert machine.effects == []
        return
    assert TRANSITIONS[(state, event)] == expected
    action = machine.fire(event, ARGS[event])
    assert action == expected
    if expected == "AE-6":
        assert machine.state is State.Sta3  # an acceptable RQ (protocol version 1)
    elif expected == "AR-8":
        assert machine.state is (State.Sta9 if requestor else State.Sta10)
    else:
        assert machine.state is NEXT_STATE[expected]
    got = [(type(e), _detail(e)) for e in machine.effects]
    assert got == EFFECTS[expected]


def _detail(effect: object) -> object:
    if isinstance(effect, SendPDU):
        return PDataTF if type(effect.pdu).__name__ == "_RawPData" else type(effect.pdu)
    if isinstance(effect, Indicate):
        # Whose A-ABORT an abort indication is, as the action says (not the state after).
        return (Aborted, effect.event.by) if isinstance(effect.event, Aborted) else type(
            effect.event)
    return None


def test_ae6_unacceptable_rq_is_rejected_and_arms_artim() -> None:
    rj = AssociateRJ(result=1, source=2, reason=2)
    machine = Machine(is_requestor=False, acceptable=lambda rq: rj)
    machine.state = State.Sta2
    assert machine.fire(Event.Evt6, RQ) == "AE-6"
    assert machine.state is State.Sta13
    assert machine.effects == [StopArtim(), SendPDU(rj), StartArtim()]


def test_aa8_abort_reason_comes_from_the_error() -> None:
    machine = Machine(is_requestor=True)
    machine.state = State.Sta6
    machine.fire(Event.Evt19, RemoteProtocolError("x", abort_reason=4))
    assert machine.effects[0] == SendPDU(AAbort(source=2, reason=4))
    machine = Machine(is_requestor=True)
    machine.state = State.Sta6
    machine.fire(Event.Evt3, AC)  # unexpected PDU: reason 2
    assert machine.effects[0] == SendPDU(AAbort(source=2, reason=2))


def test_aa3_tells_user_abort_from_provider_abort() -> None:
    for source, by_provider in ((0, False), (2, True)):
        machine = Machine(is_requestor=True)
        machine.state = State.Sta6
        machine.fire(Event.Evt16, AAbort(source=source, reason=0))
        indication = machine.effects[0]
        assert isinstance(indication, Indicate)
        assert isinstance(indication.event, Aborted)
        assert indication.event.by_provider is by_provider
        assert indication.event.source == source
        assert indication.event.by == "peer"  # either source: the peer's A-ABORT


def test_an_aborted_event_built_without_by_says_nobody() -> None:
    """``by`` defaults to None: events built as before still construct."""
    assert Aborted(source=None, reason=None, by_provider=True).by is None
