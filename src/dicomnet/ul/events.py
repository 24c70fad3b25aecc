"""Events the Upper Layer hands to its user: the indication and confirmation
primitives of PS3.8 section 7, as small frozen dataclasses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .pdata import PDataTF
from .pdu import AssociateAC, AssociateRJ, AssociateRQ

__all__ = [
    "Aborted",
    "AssociateAccepted",
    "AssociateRejected",
    "AssociateRequested",
    "DataReceived",
    "ReleaseConfirmed",
    "ReleaseRequested",
    "ULEvent",
]


@dataclass(frozen=True, slots=True)
class AssociateRequested:
    """A-ASSOCIATE indication (acceptor side): the peer asks for an association."""

    pdu: AssociateRQ


@dataclass(frozen=True, slots=True)
class AssociateAccepted:
    """A-ASSOCIATE confirmation, accepted (requestor side)."""

    pdu: AssociateAC


@dataclass(frozen=True, slots=True)
class AssociateRejected:
    """A-ASSOCIATE confirmation, rejected (requestor side)."""

    pdu: AssociateRJ


@dataclass(frozen=True, slots=True)
class DataReceived:
    """P-DATA indication: one P-DATA-TF PDU's presentation data values."""

    pdu: PDataTF


@dataclass(frozen=True, slots=True)
class ReleaseRequested:
    """A-RELEASE indication. ``collision`` is True when both sides asked at once
    (PS3.8 7.2.2, Sta9/Sta10): the user still answers with ``release_response()``."""

    collision: bool


@dataclass(frozen=True, slots=True)
class ReleaseConfirmed:
    """A-RELEASE confirmation: the association is released."""


@dataclass(frozen=True, slots=True)
class Aborted:
    """A-ABORT (``by_provider`` False: the peer's user aborted) or A-P-ABORT indication.

    ``source``/``reason`` are those of the A-ABORT PDU, when one was received or
    sent; None for a closed transport or a timeout. ``detail`` says what happened.
    ``by`` says whose A-ABORT it was, as the action that issued the indication
    knows (PS3.8 Table 9-9): "peer" for one received (AA-3), "us" for the one
    our Upper Layer sent (AA-8), None when there was none (AA-4: the transport
    closed). Set by the state machine, not read from the state afterwards: by
    the time the user takes the event the state may have moved on (our AA-8's
    Sta13 ends in Sta1 when the peer's A-ABORT or close follows at once).
    """

    source: int | None
    reason: int | None
    by_provider: bool
    detail: str = ""
    by: Literal["us", "peer"] | None = None


ULEvent = (
    AssociateRequested
    | AssociateAccepted
    | AssociateRejected
    | DataReceived
    | ReleaseRequested
    | ReleaseConfirmed
    | Aborted
)
