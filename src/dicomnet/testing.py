"""In-memory helpers for tests, ours and users': a requestor and an acceptor
ULConnection joined without sockets, moving bytes on demand."""

from __future__ import annotations

from collections.abc import Sequence

from .ul.connection import ULConnection
from .ul.events import AssociateAccepted, AssociateRequested, ULEvent
from .ul.negotiation import AcceptorPolicy, ContextRequest, build_associate_rq, negotiate

__all__ = ["ULPair", "associated_pair"]

VERIFICATION = "1.2.840.10008.1.1"
IMPLICIT_LE = "1.2.840.10008.1.2"


class ULPair:
    """A requestor and an acceptor whose transports are each other."""

    def __init__(self, *, artim_timeout: float = 30.0) -> None:
        self.requestor = ULConnection("requestor", artim_timeout=artim_timeout)
        self.acceptor = ULConnection("acceptor", artim_timeout=artim_timeout)
        self.now = 0.0

    def connect(self) -> None:
        """Both transports come up (Evt2 after the requestor's AE-1, Evt5 for the acceptor)."""
        self.acceptor.transport_connected(self.now)
        self.requestor.transport_connected(self.now)

    def pump(self) -> tuple[list[ULEvent], list[ULEvent]]:
        """Move bytes both ways until neither side has any; return the events each side
        produced (requestor's, acceptor's). Closing one side's transport delivers EOF
        to the other."""
        req_events: list[ULEvent] = []
        acc_events: list[ULEvent] = []
        moved = True
        while moved:
            moved = False
            for src, dst in ((self.requestor, self.acceptor), (self.acceptor, self.requestor)):
                data = src.data_to_send()
                if data:
                    moved = True
                    dst.receive_data(data, self.now)
                if src.should_close and dst.state.name != "Sta1" and not getattr(
                    src, "_eof_sent", False
                ):
                    src._eof_sent = True  # type: ignore[attr-defined]
                    dst.receive_data(b"", self.now)
                    moved = True
            for conn, sink in ((self.requestor, req_events), (self.acceptor, acc_events)):
                while (event := conn.next_event()) is not None:
                    sink.append(event)
        return req_events, acc_events


def associated_pair(
    contexts: Sequence[ContextRequest] = (ContextRequest(VERIFICATION, (IMPLICIT_LE,)),),
    policy: AcceptorPolicy | None = None,
    *,
    max_pdu_length: int = 16384,
) -> ULPair:
    """A ULPair already in Sta6 on both sides, for these contexts."""
    pair = ULPair()
    rq = build_associate_rq(calling_ae_title="REQUESTOR", called_ae_title="ACCEPTOR",
                            contexts=contexts, max_pdu_length=max_pdu_length)
    pair.requestor.associate(rq)
    pair.connect()
    _, acc_events = pair.pump()
    request = next(e for e in acc_events if isinstance(e, AssociateRequested))
    policy = policy or AcceptorPolicy(
        contexts={c.abstract_syntax: None for c in contexts}, max_pdu_length=max_pdu_length
    )
    pair.acceptor.accept(negotiate(request.pdu, policy))
    req_events, _ = pair.pump()
    assert any(isinstance(e, AssociateAccepted) for e in req_events)
    return pair
