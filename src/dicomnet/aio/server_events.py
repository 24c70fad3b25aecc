"""What a server tells an observer of its connections (``serve(on_connection_event=...)``):
an association accepted (PS3.8 9.3.3), an association ended (released, 9.3.6;
or aborted, 9.3.8), and a connection refused before an association existed
(a failed TLS handshake, an A-ASSOCIATE-RJ, 9.3.4, a request the server could
not read, a limit reached). The log says the same in words (``aio.acceptor``);
these are for programs: ``dicomnet serve --json`` prints each as a line.

An observer cannot change what the server does; one that raises is logged,
and the server goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import peer_abort_words
from ..security.info import SecurityInfo
from .server_hooks import contained

if TYPE_CHECKING:
    from ..errors import AssociationAborted
    from .server_association import ServerAssociation

__all__ = ["AssociationAccepted", "AssociationEnded", "ConnectionEvent",
           "ConnectionObserver", "ConnectionRefused", "ending_event", "tell"]

log = logging.getLogger("dicomnet.aio")


def _link(security: SecurityInfo | None) -> dict[str, Any]:
    """The TLS fields every event has: null for plain DICOM."""
    cert = security.peer_certificate if security is not None else None
    return {"tls": security.protocol if security is not None else None,
            "cipher_suite": security.cipher_suite if security is not None else None,
            "client_cert": cert.subject if cert is not None else None}


@dataclass(frozen=True, slots=True)
class AssociationAccepted:
    """An A-ASSOCIATE-AC was sent (PS3.8 9.3.3)."""

    peer: tuple[str, int]
    calling_ae_title: str
    called_ae_title: str
    #: Presentation contexts accepted (PS3.8 9.3.3.2, result 0).
    contexts: int
    security: SecurityInfo | None
    #: The asynchronous operations window granted (PS3.7 D.3.3.3): requests the
    #: peer may have outstanding; 1 when it asked for none (one at a time).
    async_window: int = 1

    def to_dict(self) -> dict[str, Any]:
        """The fields of ``dicomnet serve --json``'s line (JSON types)."""
        return {"peer": f"{self.peer[0]}:{self.peer[1]}", "calling_aet": self.calling_ae_title,
                "called_aet": self.called_ae_title, **_link(self.security),
                "contexts": self.contexts, "async_window": self.async_window}


@dataclass(frozen=True, slots=True)
class AssociationEnded:
    """An accepted association is over: ``how`` is "released" (PS3.8 9.3.6) or
    "aborted" (9.3.8, or the connection lost), with ``reason``; ``by`` says who
    aborted it: "us" (this server sent the A-ABORT: a deadline, a fault in what
    the peer sent, the server closing), "peer" (its A-ABORT), or None (released,
    or the connection closed with no A-ABORT either way)."""

    peer: tuple[str, int]
    calling_ae_title: str
    called_ae_title: str
    how: str
    reason: str | None
    seconds: float
    #: DIMSE requests received whole, those owed an answer (not a C-CANCEL-RQ,
    #: PS3.7 9.3.2.3); C-STORE requests among them.
    messages: int
    objects: int
    #: Bytes read from the connection (after TLS), PDU headers included.
    bytes_received: int
    #: Final statuses sent (PS3.7 Annex C), by code, and requests never answered.
    answers: Mapping[int, int] = field(default_factory=dict)
    unanswered: int = 0
    security: SecurityInfo | None = None
    by: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The fields of ``dicomnet serve --json``'s line (JSON types)."""
        return {"peer": f"{self.peer[0]}:{self.peer[1]}", "calling_aet": self.calling_ae_title,
                "called_aet": self.called_ae_title, **_link(self.security), "how": self.how,
                "by": self.by, "reason": self.reason, "seconds": round(self.seconds, 3),
                "messages": self.messages, "objects": self.objects,
                "bytes_received": self.bytes_received,
                "answers": {f"0x{code:04X}": n for code, n in sorted(self.answers.items())},
                "unanswered": self.unanswered}


@dataclass(frozen=True, slots=True)
class ConnectionRefused:
    """A connection closed before any association existed, and why. ``stage``:
    "tls" (the handshake failed, or plain DICOM reached a TLS port and the
    reverse, or the link failed before the association was answered: a bad
    record, an alert), "association" (A-ASSOCIATE-RJ sent: the AE titles say who asked),
    "protocol" (a request the server could not read, another PDU first, a
    timeout: A-ABORT sent) or "limit" (too many connections waiting to
    associate: the oldest closed)."""

    peer: tuple[str, int]
    stage: str
    reason: str
    seconds: float
    calling_ae_title: str | None = None
    called_ae_title: str | None = None
    security: SecurityInfo | None = None

    def to_dict(self) -> dict[str, Any]:
        """The fields of ``dicomnet serve --json``'s line (JSON types)."""
        return {"peer": f"{self.peer[0]}:{self.peer[1]}", "stage": self.stage,
                "reason": self.reason, "seconds": round(self.seconds, 3),
                "calling_aet": self.calling_ae_title, "called_aet": self.called_ae_title,
                **_link(self.security)}


ConnectionEvent = AssociationAccepted | AssociationEnded | ConnectionRefused
#: Told of each ConnectionEvent, on the server's loop; what it returns is ignored.
ConnectionObserver = Callable[[ConnectionEvent], object]


def tell(observer: ConnectionObserver | None, event: ConnectionEvent | None) -> None:
    """Hand ``event`` to ``observer``; its exception is logged, not raised (an
    observer's bug must not cost the association, nor the line logged for it);
    None tells nothing."""
    if observer is None or event is None:
        return
    try:
        with contained("on_connection_event observer"):  # its SystemExit too
            observer(event)
    except Exception:
        log.exception("the on_connection_event observer failed on %s", type(event).__name__)


def with_abort_reason(outcome: str, failure: AssociationAborted | None) -> str:
    """``outcome`` ("aborted (the peer aborted)", the Upper Layer's words for the
    peer's A-ABORT, PS3.8 AA-3) in the words the client's ``AssociationAborted``
    uses for it: "aborted (its A-ABORT: service-provider, unexpected PDU)", its
    source and, for the service provider's, its reason (PS3.8 Table 9-26; a
    service-user's reason is not significant). ``AssociationEnded.by`` says
    who, and the log line "by the peer" (``log_end``). Other outcomes are left
    as they are."""
    if (failure is None or failure.by != "peer" or failure.source is None
            or outcome != f"aborted ({failure.detail})"):
        return outcome
    return f"aborted ({peer_abort_words(failure.source, failure.reason)})"


def aborted_by(assoc: ServerAssociation) -> str | None:
    """Who aborted ``assoc``: "us", "peer", or None (the connection closed under
    it), as its failure says (``AssociationAborted.by``)."""
    return assoc.failure.by if assoc.failure is not None else None


def ending_event(assoc: ServerAssociation, outcome: str, seconds: float, *, accepted: bool,
                 evicted: bool) -> ConnectionEvent | None:
    """The event a server connection's end tells, from what ``aio.server`` knows of
    it (a ``ServerAssociation``; ``outcome`` as the log words it: "released",
    "aborted (why)", "closed"): an association accepted ended, or a connection
    refused before it associated (a request then aborted before its answer
    among them). None when there is nothing to tell: a rejected request (told
    when rejected), a connection closed by its peer before it was answered, or
    with the server."""
    security = assoc.stream.security
    how, _, why = outcome.partition(" (")
    reason = why.removesuffix(")") or None
    if accepted:
        if how == "closed":
            how, reason = "aborted", reason or "the connection closed"
        tally = assoc.answers.by_status()
        return AssociationEnded(
            assoc.stream.peer, assoc.calling_ae_title, assoc.called_ae_title, how, reason,
            seconds, assoc.messages, assoc.objects, assoc.bytes_received, tally,
            max(0, assoc.messages - sum(tally.values())), security,
            aborted_by(assoc) if how == "aborted" else None)
    if assoc.rejected:
        return None  # told when rejected, even if it then lingered and was evicted
    if evicted:
        return ConnectionRefused(assoc.stream.peer, "limit", "too many connections waiting "
                                 "to associate: the oldest closed", seconds, security=security)
    if assoc.ul.refusal is not None:
        reason = assoc.ul.refusal
    elif how != "aborted" or reason == "server closing":
        return None
    # A request that asked (its AE titles known) but ended before its answer, the
    # peer's next PDU out of turn or its A-ABORT (PS3.8 AA-8, AA-3 in Sta3), is
    # refused as much as one that could not be read.
    # A request refused as it was read (its parameters invalid) still names its AEs.
    rq = assoc.ul.associate_rq
    calling = assoc.calling_ae_title or (rq.calling_ae_title if rq is not None else "")
    called = assoc.called_ae_title or (rq.called_ae_title if rq is not None else "")
    stage = "tls" if assoc.tls_error is not None else "protocol"
    return ConnectionRefused(assoc.stream.peer, stage, reason or "aborted", seconds,
                             calling or None, called or None, security)
