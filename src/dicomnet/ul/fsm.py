"""The DICOM Upper Layer state machine as data (PS3.8 9.2, Tables 9-6 to 9-10).

``TRANSITIONS`` is PS3.8 Table 9-10: for each (state, event) cell the action to
run. Actions are the small functions below, named and documented after PS3.8
Tables 9-6 (association establishment), 9-7 (data transfer), 9-8 (release) and
9-9 (abort). An action never performs I/O: it appends *effects* (send this PDU,
tell the user this, arm or stop ARTIM, open or close the transport) to the
machine and returns the next state; the ULConnection turns effects into bytes,
events and deadlines.

A (state, event) pair that is not in the table is a blank cell of Table 9-10:
it cannot happen on a correct transport (a PDU before any connection) or is a
user primitive that is illegal in that state; ``Machine.fire`` raises
``LocalProtocolError`` for both.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import LocalProtocolError
from .events import (
    Aborted,
    AssociateAccepted,
    AssociateRejected,
    AssociateRequested,
    DataReceived,
    ReleaseConfirmed,
    ReleaseRequested,
    ULEvent,
)
from .pdata import PDataTF
from .pdu import PDU, AAbort, AssociateAC, AssociateRJ, AssociateRQ, ReleaseRP, ReleaseRQ

__all__ = [
    "ACTIONS",
    "TRANSITIONS",
    "CloseTransport",
    "Effect",
    "Event",
    "Indicate",
    "Machine",
    "OpenTransport",
    "SendPDU",
    "StartArtim",
    "State",
    "StopArtim",
]


class State(enum.IntEnum):
    """PS3.8 Table 9-1: the states of the association state machine."""

    Sta1 = 1  # Idle
    Sta2 = 2  # Transport connection open (awaiting A-ASSOCIATE-RQ PDU)
    Sta3 = 3  # Awaiting local A-ASSOCIATE response primitive
    Sta4 = 4  # Awaiting transport connection opening to complete
    Sta5 = 5  # Awaiting A-ASSOCIATE-AC or A-ASSOCIATE-RJ PDU
    Sta6 = 6  # Association established and ready for data transfer
    Sta7 = 7  # Awaiting A-RELEASE-RP PDU
    Sta8 = 8  # Awaiting local A-RELEASE response primitive
    Sta9 = 9  # Release collision requestor side; awaiting A-RELEASE response
    Sta10 = 10  # Release collision acceptor side; awaiting A-RELEASE-RP PDU
    Sta11 = 11  # Release collision requestor side; awaiting A-RELEASE-RP PDU
    Sta12 = 12  # Release collision acceptor side; awaiting A-RELEASE response primitive
    Sta13 = 13  # Awaiting transport connection close indication


class Event(enum.IntEnum):
    """PS3.8 Table 9-2: the events of the association state machine."""

    Evt1 = 1  # A-ASSOCIATE request (local user)
    Evt2 = 2  # Transport connect confirmation (local transport service)
    Evt3 = 3  # A-ASSOCIATE-AC PDU received
    Evt4 = 4  # A-ASSOCIATE-RJ PDU received
    Evt5 = 5  # Transport connection indication (local transport service)
    Evt6 = 6  # A-ASSOCIATE-RQ PDU received
    Evt7 = 7  # A-ASSOCIATE response primitive (accept)
    Evt8 = 8  # A-ASSOCIATE response primitive (reject)
    Evt9 = 9  # P-DATA request primitive
    Evt10 = 10  # P-DATA-TF PDU received
    Evt11 = 11  # A-RELEASE request primitive
    Evt12 = 12  # A-RELEASE-RQ PDU received
    Evt13 = 13  # A-RELEASE-RP PDU received
    Evt14 = 14  # A-RELEASE response primitive
    Evt15 = 15  # A-ABORT request primitive
    Evt16 = 16  # A-ABORT PDU received
    Evt17 = 17  # Transport connection closed indication
    Evt18 = 18  # ARTIM timer expired
    Evt19 = 19  # Unrecognized or invalid PDU received


# -- effects -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _RawPData:
    """An already encoded P-DATA-TF PDU (see ``ul.pdu.encode_pdata``)."""

    data: bytes

    def encode(self) -> bytes:
        return self.data


@dataclass(frozen=True, slots=True)
class SendPDU:
    """Queue this PDU for the transport."""

    pdu: PDU | _RawPData


@dataclass(frozen=True, slots=True)
class Indicate:
    """Hand this event to the local user (an indication or confirmation primitive)."""

    event: ULEvent


@dataclass(frozen=True, slots=True)
class StartArtim:
    """Start, or restart, the ARTIM timer (PS3.8 9.1.5)."""


@dataclass(frozen=True, slots=True)
class StopArtim:
    """Stop the ARTIM timer if it runs."""


@dataclass(frozen=True, slots=True)
class OpenTransport:
    """Ask the transport service for a connection (TRANSPORT CONNECT request)."""


@dataclass(frozen=True, slots=True)
class CloseTransport:
    """Close the transport connection."""


Effect = SendPDU | Indicate | StartArtim | StopArtim | OpenTransport | CloseTransport


# -- the machine ---------------------------------------------------------------


class Machine:
    """Holds the current state and collects the effects of the actions it runs.

    ``is_requestor`` decides the branch of AR-8 (release collision). ``acceptable``
    is the service provider's check of AE-6 (an A-ASSOCIATE-RQ it can take at all,
    e.g. a protocol version it supports); it returns None or the A-ASSOCIATE-RJ to
    answer with.
    """

    __slots__ = ("acceptable", "effects", "is_requestor", "state")

    def __init__(
        self,
        *,
        is_requestor: bool,
        acceptable: Callable[[AssociateRQ], AssociateRJ | None] = lambda rq: None,
    ) -> None:
        self.state = State.Sta1
        self.is_requestor = is_requestor
        self.acceptable = acceptable
        self.effects: list[Effect] = []

    def fire(self, event: Event, arg: object = None) -> str:
        """Run the action of Table 9-10 for ``event`` in the current state.

        Returns the action's name. Raises LocalProtocolError for a blank cell.
        """
        action = TRANSITIONS.get((self.state, event))
        if action is None:
            raise LocalProtocolError(
                f"{event.name} is not valid in {self.state.name} (PS3.8 Table 9-10)"
            )
        self.state = ACTIONS[action](self, arg)
        return action


Action = Callable[[Machine, object], State]


# -- association establishment, PS3.8 Table 9-6 --------------------------------


def AE_1(m: Machine, arg: object) -> State:
    """Issue TRANSPORT CONNECT request primitive to local transport service; next Sta4."""
    m.effects.append(OpenTransport())
    return State.Sta4


def AE_2(m: Machine, arg: object) -> State:
    """Send A-ASSOCIATE-RQ-PDU; next Sta5."""
    assert isinstance(arg, AssociateRQ)
    m.effects.append(SendPDU(arg))
    return State.Sta5


def AE_3(m: Machine, arg: object) -> State:
    """Issue A-ASSOCIATE confirmation (accept) primitive; next Sta6."""
    assert isinstance(arg, AssociateAC)
    m.effects.append(Indicate(AssociateAccepted(arg)))
    return State.Sta6


def AE_4(m: Machine, arg: object) -> State:
    """Issue A-ASSOCIATE confirmation (reject) primitive and close transport; next Sta1."""
    assert isinstance(arg, AssociateRJ)
    m.effects += [Indicate(AssociateRejected(arg)), CloseTransport()]
    return State.Sta1


def AE_5(m: Machine, arg: object) -> State:
    """Issue transport connection response primitive; start ARTIM; next Sta2."""
    m.effects.append(StartArtim())
    return State.Sta2


def AE_6(m: Machine, arg: object) -> State:
    """Stop ARTIM; if the A-ASSOCIATE-RQ is acceptable issue an A-ASSOCIATE indication
    (next Sta3), otherwise send A-ASSOCIATE-RJ-PDU and start ARTIM (next Sta13)."""
    assert isinstance(arg, AssociateRQ)
    m.effects.append(StopArtim())
    rejection = m.acceptable(arg)
    if rejection is None:
        m.effects.append(Indicate(AssociateRequested(arg)))
        return State.Sta3
    m.effects += [SendPDU(rejection), StartArtim()]
    return State.Sta13


def AE_7(m: Machine, arg: object) -> State:
    """Send A-ASSOCIATE-AC PDU; next Sta6."""
    assert isinstance(arg, AssociateAC)
    m.effects.append(SendPDU(arg))
    return State.Sta6


def AE_8(m: Machine, arg: object) -> State:
    """Send A-ASSOCIATE-RJ PDU and start ARTIM; next Sta13."""
    assert isinstance(arg, AssociateRJ)
    m.effects += [SendPDU(arg), StartArtim()]
    return State.Sta13


# -- data transfer, PS3.8 Table 9-7 ---------------------------------------------


def DT_1(m: Machine, arg: object) -> State:
    """Send P-DATA-TF PDU; next Sta6."""
    assert isinstance(arg, PDataTF | bytes)
    _send_pdata(m, arg)
    return State.Sta6


def DT_2(m: Machine, arg: object) -> State:
    """Send P-DATA indication primitive; next Sta6."""
    assert isinstance(arg, PDataTF)
    m.effects.append(Indicate(DataReceived(arg)))
    return State.Sta6


def _send_pdata(m: Machine, arg: PDataTF | bytes) -> None:
    # Pre-encoded P-DATA-TF bytes are the hot path for bulk data: they go out as they are.
    m.effects.append(SendPDU(arg) if isinstance(arg, PDataTF) else SendPDU(_RawPData(arg)))


# -- release, PS3.8 Table 9-8 ----------------------------------------------------


def AR_1(m: Machine, arg: object) -> State:
    """Send A-RELEASE-RQ PDU; next Sta7."""
    m.effects.append(SendPDU(ReleaseRQ()))
    return State.Sta7


def AR_2(m: Machine, arg: object) -> State:
    """Issue A-RELEASE indication primitive; next Sta8."""
    m.effects.append(Indicate(ReleaseRequested(collision=False)))
    return State.Sta8


def AR_3(m: Machine, arg: object) -> State:
    """Issue A-RELEASE confirmation primitive, and close transport connection; next Sta1."""
    m.effects += [Indicate(ReleaseConfirmed()), CloseTransport()]
    return State.Sta1


def AR_4(m: Machine, arg: object) -> State:
    """Issue A-RELEASE-RP PDU and start ARTIM; next Sta13."""
    m.effects += [SendPDU(ReleaseRP()), StartArtim()]
    return State.Sta13


def AR_5(m: Machine, arg: object) -> State:
    """Stop ARTIM; next Sta1."""
    m.effects += [StopArtim(), CloseTransport()]
    return State.Sta1


def AR_6(m: Machine, arg: object) -> State:
    """Issue P-DATA indication; next Sta7."""
    assert isinstance(arg, PDataTF)
    m.effects.append(Indicate(DataReceived(arg)))
    return State.Sta7


def AR_7(m: Machine, arg: object) -> State:
    """Issue P-DATA-TF PDU; next Sta8."""
    assert isinstance(arg, PDataTF | bytes)
    _send_pdata(m, arg)
    return State.Sta8


def AR_8(m: Machine, arg: object) -> State:
    """Issue A-RELEASE indication (release collision); next Sta9 if association-requestor,
    otherwise Sta10."""
    m.effects.append(Indicate(ReleaseRequested(collision=True)))
    return State.Sta9 if m.is_requestor else State.Sta10


def AR_9(m: Machine, arg: object) -> State:
    """Send A-RELEASE-RP PDU; next Sta11."""
    m.effects.append(SendPDU(ReleaseRP()))
    return State.Sta11


def AR_10(m: Machine, arg: object) -> State:
    """Issue A-RELEASE confirmation primitive; next Sta12."""
    m.effects.append(Indicate(ReleaseConfirmed()))
    return State.Sta12


# -- abort, PS3.8 Table 9-9 -------------------------------------------------------


def AA_1(m: Machine, arg: object) -> State:
    """Send A-ABORT PDU (service-user source) and start (or restart) ARTIM; next Sta13.

    ``arg`` may be the AAbort to send (a user abort carries source 0); when this
    action answers an unexpected PDU in Sta2 there is no argument and reason 0 is used.
    """
    pdu = arg if isinstance(arg, AAbort) else AAbort(source=0, reason=0)
    m.effects += [SendPDU(pdu), StartArtim()]
    return State.Sta13


def AA_2(m: Machine, arg: object) -> State:
    """Stop ARTIM if running. Close transport; next Sta1."""
    m.effects += [StopArtim(), CloseTransport()]
    return State.Sta1


def AA_3(m: Machine, arg: object) -> State:
    """Issue A-ABORT (service-user initiated) or A-P-ABORT (service-provider initiated)
    indication and close transport; next Sta1.

    PS3.8 Table 9-26 defines source 0 (service-user) and 2 (service-provider); an
    A-ABORT with another (1 is reserved) still ends the association, as an A-ABORT
    of the peer, with the source named in its detail. Either way it is the peer's
    (``by="peer"``)."""
    assert isinstance(arg, AAbort)
    by_provider = arg.source == 2
    if by_provider:
        detail = "the peer's service provider aborted"
    elif arg.source == 0:
        detail = "the peer aborted"
    else:
        detail = (f"the peer aborted, with A-ABORT source {arg.source}, which PS3.8 "
                  "Table 9-26 does not define")
    m.effects += [
        Indicate(Aborted(source=arg.source, reason=arg.reason, by_provider=by_provider,
                         detail=detail, by="peer")),
        CloseTransport(),
    ]
    return State.Sta1


def AA_4(m: Machine, arg: object) -> State:
    """Issue A-P-ABORT indication primitive; next Sta1. No A-ABORT was sent or
    received (the transport closed or broke): ``by`` is None."""
    detail = arg if isinstance(arg, str) else "the transport connection closed"
    m.effects += [
        Indicate(Aborted(source=None, reason=None, by_provider=True, detail=detail)),
        CloseTransport(),
    ]
    return State.Sta1


def AA_5(m: Machine, arg: object) -> State:
    """Stop ARTIM timer; next Sta1."""
    m.effects += [StopArtim(), CloseTransport()]
    return State.Sta1


def AA_6(m: Machine, arg: object) -> State:
    """Ignore PDU; next Sta13."""
    return State.Sta13


def AA_7(m: Machine, arg: object) -> State:
    """Send A-ABORT PDU; next Sta13."""
    m.effects.append(SendPDU(_provider_abort(arg)))
    return State.Sta13


def AA_8(m: Machine, arg: object) -> State:
    """Send A-ABORT PDU (service-provider source), issue an A-P-ABORT indication, and
    start ARTIM; next Sta13.

    ``arg`` is the RemoteProtocolError (for Evt19) or the unexpected PDU; the
    abort reason is taken from the former, 2 (unexpected PDU) otherwise. The
    A-ABORT is ours (``by="us"``), whatever state follows before the user hears.
    """
    pdu = _provider_abort(arg)
    detail = str(arg) if isinstance(arg, Exception) else f"unexpected {type(arg).__name__} PDU"
    m.effects += [
        SendPDU(pdu),
        Indicate(Aborted(source=2, reason=pdu.reason, by_provider=True, detail=detail,
                         by="us")),
        StartArtim(),
    ]
    return State.Sta13


def _provider_abort(arg: object) -> AAbort:
    reason = getattr(arg, "abort_reason", None)
    return AAbort(source=2, reason=reason if isinstance(reason, int) else 2)


ACTIONS: dict[str, Action] = {
    f.__name__.replace("_", "-"): f
    for f in (
        AE_1, AE_2, AE_3, AE_4, AE_5, AE_6, AE_7, AE_8,
        DT_1, DT_2,
        AR_1, AR_2, AR_3, AR_4, AR_5, AR_6, AR_7, AR_8, AR_9, AR_10,
        AA_1, AA_2, AA_3, AA_4, AA_5, AA_6, AA_7, AA_8,
    )
}


def _row(event: Event, cells: dict[int, str]) -> dict[tuple[State, Event], str]:
    return {(State(s), event): action for s, action in cells.items()}


def _span(action: str, states: list[int]) -> dict[int, str]:
    return dict.fromkeys(states, action)


TRANSITIONS: dict[tuple[State, Event], str] = {
    # PS3.8 Table 9-10, row by row. Missing cells are blank in the standard.
    **_row(Event.Evt1, {1: "AE-1"}),
    **_row(Event.Evt2, {4: "AE-2"}),
    **_row(Event.Evt3, {2: "AA-1", 3: "AA-8", 5: "AE-3", **_span("AA-8", list(range(6, 13))),
                        13: "AA-6"}),
    **_row(Event.Evt4, {2: "AA-1", 3: "AA-8", 5: "AE-4", **_span("AA-8", list(range(6, 13))),
                        13: "AA-6"}),
    **_row(Event.Evt5, {1: "AE-5"}),
    **_row(Event.Evt6, {2: "AE-6", 3: "AA-8", **_span("AA-8", list(range(5, 13))),
                        13: "AA-7"}),
    **_row(Event.Evt7, {3: "AE-7"}),
    **_row(Event.Evt8, {3: "AE-8"}),
    **_row(Event.Evt9, {6: "DT-1", 8: "AR-7"}),
    **_row(Event.Evt10, {2: "AA-1", 3: "AA-8", 5: "AA-8", 6: "DT-2", 7: "AR-6",
                         **_span("AA-8", list(range(8, 13))), 13: "AA-6"}),
    **_row(Event.Evt11, {6: "AR-1"}),
    **_row(Event.Evt12, {2: "AA-1", 3: "AA-8", 5: "AA-8", 6: "AR-2", 7: "AR-8",
                         **_span("AA-8", list(range(8, 13))), 13: "AA-6"}),
    **_row(Event.Evt13, {2: "AA-1", 3: "AA-8", 5: "AA-8", 6: "AA-8", 7: "AR-3", 8: "AA-8",
                         9: "AA-8", 10: "AR-10", 11: "AR-3", 12: "AA-8", 13: "AA-6"}),
    **_row(Event.Evt14, {8: "AR-4", 9: "AR-9", 12: "AR-4"}),
    **_row(Event.Evt15, {3: "AA-1", 4: "AA-2", **_span("AA-1", list(range(5, 13)))}),
    **_row(Event.Evt16, {2: "AA-2", 3: "AA-3", **_span("AA-3", list(range(5, 13))),
                         13: "AA-2"}),
    **_row(Event.Evt17, {2: "AA-5", 3: "AA-4", 4: "AA-4", **_span("AA-4", list(range(5, 13))),
                         13: "AR-5"}),
    **_row(Event.Evt18, {2: "AA-2", 13: "AR-5"}),
    **_row(Event.Evt19, {2: "AA-1", 3: "AA-8", **_span("AA-8", list(range(5, 13))),
                         13: "AA-7"}),
}
