"""What a requestor says of the acceptor's answer to its A-ASSOCIATE-RQ
(``aio.client``): contexts it left unanswered (PS3.8 7.1.1.14), a Maximum
Length too small to carry much (PS3.8 D.1), and a TLS 1.3 server that closed
the connection right after its handshake, saying nothing (RFC 8446 4.4.2).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..errors import TLSError
from ..ul.events import Aborted
from ..ul.items import PresentationContextRQItem

if TYPE_CHECKING:
    from .client import ClientAssociation

__all__ = ["closed_after_tls13_handshake", "warn_tiny_max_length", "warn_unanswered"]

log = logging.getLogger("dicomnet.aio")

#: A peer's Maximum Length below this is honoured with a warning (``warn_tiny_max_length``).
_SMALL_MAX_LENGTH = 1024


def warn_unanswered(assoc: ClientAssociation, unanswered: Sequence[PresentationContextRQItem]
                    ) -> None:
    """One WARNING for the proposed contexts an A-ASSOCIATE-AC left unanswered."""
    if unanswered:
        log.warning(
            "%s: the A-ASSOCIATE-AC leaves presentation context%s %s unanswered (PS3.8 "
            "7.1.1.14 wants a result for each proposed): taken as not accepted",
            assoc._name(), "s" if len(unanswered) > 1 else "",
            ", ".join(f"{pc.context_id} ({pc.abstract_syntax})" for pc in unanswered))


def warn_tiny_max_length(assoc: ClientAssociation) -> None:
    """One WARNING when the acceptor's Maximum Length (PS3.8 D.1) is below
    ``_SMALL_MAX_LENGTH``. Any non-zero value is legal, so it is honoured, not
    refused; but every P-DATA-TF then carries a few bytes (7: one byte of
    data), and a large object becomes millions of PDUs. DCMTK and Orthanc take
    no less than 4096 for their own; only an odd or misconfigured peer asks
    for so little, and a slow transfer should say why."""
    length = assoc.ul.peer_max_pdu_length
    if 0 < length < _SMALL_MAX_LENGTH:
        data = length - 6  # PDV item length, context ID, control header (PS3.8 9.3.5.1)
        log.warning(
            "%s: the peer accepts P-DATA-TF PDUs of at most %d bytes (its Maximum Length, "
            "PS3.8 D.1): honoured, but each carries at most %d byte(s) of data, %s PDUs per "
            "MiB sent: large objects will go slowly", assoc._name(), length, data,
            f"{-(-(1 << 20) // data):,}")


def closed_after_tls13_handshake(
    assoc: ClientAssociation, event: Aborted, sent_certificate: bool
) -> TLSError | None:
    """The TLS 1.3 server closed the connection, without an alert, before any PDU
    came back.

    RFC 8446 4.4.2: our certificate follows the server's Finished, so a server
    that refuses it does so after our handshake ended. The servers we know (DCMTK
    and Orthanc, pynetdicom, dicomnet) say why in an alert (RFC 8446 6.2), read as
    such even behind the reset that fails our first write (``tls_socket``), and
    raised as it is. A close without one says nothing more: the server may refuse
    our certificate, or be busy or shutting down (at its connection limit, say).
    So it is ``link_failed``: trying again later may pass.
    """
    security = assoc.security
    if (event.source is not None or assoc.ul.pdus_received or security is None
            or security.protocol != "TLSv1.3"):
        return None
    if assoc.tls_error is not None and not assoc.tls_error.link_failed:
        return None  # the alert was read: its own reason says more
    refusal = ("refuse our certificate" if sent_certificate
               else "require a client certificate (we sent none: set certfile/keyfile)")
    reason = ("the server closed the connection right after the TLS handshake, before "
              f"associating: it may {refusal}, or be busy or shutting down")
    return TLSError(f"TLS handshake with {assoc.peer[0]}:{assoc.peer[1]} failed: {reason}",
                    reason=reason, link_failed=True)
