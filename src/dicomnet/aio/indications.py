"""What an association's task is told besides the Upper Layer's own events, and
what an abort indication means for it: the DIMSE messages routed from P-DATA
indications as they arrived (PS3.8 9.3.5), and the failure an A-ABORT or
A-P-ABORT indication leaves (PS3.8 7.3, 7.4), with who aborted. Shared by
``aio.association`` and the requestor's and acceptor's tasks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import AssociationAborted

if TYPE_CHECKING:
    from ..dimse.messages import DimseMessage
    from ..ul.events import Aborted
    from .sinks import DatasetSink

__all__ = ["MessagesRouted", "aborted_by"]


@dataclass(frozen=True, slots=True)
class MessagesRouted:
    """Inbox entry of an association that routes P-DATA as it arrives
    (``Association._route_now``): the messages completed, then the error that
    ended routing."""

    messages: list[tuple[int, DimseMessage, DatasetSink | None]]
    error: Exception | None


def aborted_by(event: Aborted) -> AssociationAborted:
    """The failure an Upper Layer's abort indication means, with who aborted, as
    the action that issued it says (``Aborted.by``): the peer's A-ABORT (PS3.8
    AA-3), ours when the Upper Layer sent one for a PDU it could not take
    (AA-8), neither for a connection that closed under it (AA-4). Not the state
    when the task takes the event: AA-8's Sta13 is Sta1 by then if the peer's
    A-ABORT came in the same read, as after AA-3."""
    return AssociationAborted(event.source, event.reason, event.detail, by=event.by)
