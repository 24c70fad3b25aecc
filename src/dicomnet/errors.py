"""The one exception tree of dicomnet.

Users only ever see these types: backend exceptions (``ssl.SSLError``,
``OSError``, ``struct.error``...) are translated where they arise.

::

    DicomNetError
    ├── ProtocolError
    │   ├── LocalProtocolError      we (the API user) asked for something illegal now
    │   └── RemoteProtocolError     the peer sent something illegal; carries the
    │                               A-ABORT source and reason to answer with
    ├── AssociationError
    │   ├── AssociationRejected     A-ASSOCIATE-RJ: result, source, reason
    │   ├── AssociationAborted      A-ABORT or A-P-ABORT: source, reason
    │   └── NoAcceptedContext       no presentation context fits what we send
    ├── TransportError
    │   ├── ConnectError            could not open the TCP connection
    │   ├── TimeoutError            a network deadline passed (also builtins.TimeoutError)
    │   └── TLSError                handshake or verification failed: says which and why
    ├── DimseError
    │   ├── DimseTimeout            no DIMSE response in time
    │   └── StatusError             raised by ``raise_for_status()`` on a failure status
    ├── StorageError                a store's folder, file or index on disk: cannot be
    │                               made, read or written, in use by another server
    └── ConfigurationError          bad settings (also a ValueError)
"""

from __future__ import annotations

import builtins
import errno
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from .services.store_scu import StoreResult

__all__ = [
    "AssociationAborted",
    "AssociationError",
    "AssociationRejected",
    "ConfigurationError",
    "ConnectError",
    "DicomNetError",
    "DimseError",
    "DimseTimeout",
    "LocalProtocolError",
    "NoAcceptedContext",
    "ProtocolError",
    "RemoteProtocolError",
    "StatusError",
    "StorageError",
    "TLSError",
    "TimeoutError",
    "TransportError",
]


class DicomNetError(Exception):
    """Base of every error dicomnet raises.

    ``results`` is set when ``store_paths`` (or ``blocking.store``) raises: the
    result of every file all the same (those not DICOM, those not sent and
    why), which the caller would otherwise lose; None elsewhere.
    """

    results: list[StoreResult] | None = None


class ProtocolError(DicomNetError):
    """A rule of PS3.7 or PS3.8 was broken."""


class LocalProtocolError(ProtocolError):
    """The local user asked for something the protocol forbids in this state."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something invalid.

    ``abort_source`` and ``abort_reason`` are what to put in the A-ABORT PDU that
    answers it (PS3.8 9.3.8, Table 9-26). Source 0 is the service-user: what
    dicomnet sends for a fault found above the Upper Layer (invalid DIMSE data,
    a message out of turn, a peer past its operations window: the Upper Layer
    itself had no fault to find), its reason 0 (not significant for that
    source). Source 2 is the service provider, for a fault in a PDU: reasons 0
    not specified, 1 unrecognized PDU, 2 unexpected PDU, 4 unrecognized PDU
    parameter, 5 unexpected PDU parameter, 6 invalid PDU parameter value.
    Source 1 is reserved.
    """

    def __init__(self, message: str, *, abort_source: int = 2, abort_reason: int = 0) -> None:
        super().__init__(message)
        self.abort_source = abort_source
        self.abort_reason = abort_reason


class AssociationError(DicomNetError):
    """The association could not be set up, or ended abnormally."""


_RJ_RESULTS = {1: "rejected-permanent", 2: "rejected-transient"}
_RJ_SOURCES = {
    1: "service-user",
    2: "service-provider (ACSE)",
    3: "service-provider (presentation)",
}
_RJ_REASONS = {
    (1, 1): "no reason given",
    (1, 2): "application context name not supported",
    (1, 3): "calling AE title not recognized",
    (1, 7): "called AE title not recognized",
    (2, 1): "no reason given",
    (2, 2): "protocol version not supported",
    (3, 1): "temporary congestion",
    (3, 2): "local limit exceeded",
}


class AssociationRejected(AssociationError):
    """The acceptor answered A-ASSOCIATE-RJ (PS3.8 9.3.4, Table 9-21)."""

    def __init__(self, result: int, source: int, reason: int) -> None:
        self.result = result
        self.source = source
        self.reason = reason
        super().__init__(
            f"association rejected ({_RJ_RESULTS.get(result, f'result {result}')}) by "
            f"{_RJ_SOURCES.get(source, f'source {source}')}: "
            f"{_RJ_REASONS.get((source, reason), f'reason {reason}')}"
        )


_ABORT_SOURCES = {0: "service-user", 2: "service-provider"}
_ABORT_REASONS = {
    0: "reason not specified",
    1: "unrecognized PDU",
    2: "unexpected PDU",
    4: "unrecognized PDU parameter",
    5: "unexpected PDU parameter",
    6: "invalid PDU parameter value",
}


class AssociationAborted(AssociationError):
    """The association ended by A-ABORT or A-P-ABORT (PS3.8 7.3, 7.4), or, for the
    requests it leaves unanswered or unsent, by the acceptor's own A-RELEASE-RQ
    (PS3.8 7.2.2: after it the peer sends no more P-DATA; ``detail`` says so).

    ``source`` and ``reason`` are those of the A-ABORT PDU when there was one;
    ``detail`` says what happened in words (a closed transport, a timeout...).
    ``by`` says who ended it: "us" (this side sent the A-ABORT, or closed the
    connection: a deadline, a fault found in what the peer sent), "peer" (the
    peer's A-ABORT, or its release), or None (neither said: the connection
    closed or failed under the association). The message names it first, then
    the A-ABORT's source and reason in the words of PS3.8 Table 9-26; the
    peer's release reads "association ended by the peer", as it is no abort.
    """

    def __init__(self, source: int | None, reason: int | None, detail: str = "", *,
                 by: str | None = None) -> None:
        self.source = source
        self.reason = reason
        self.detail = detail
        self.by = by
        parts = []
        if by is None and source is not None:  # who is not known: the source alone
            words = _source_words(source)
            if reason is not None and source == 2:
                words += f" ({abort_reason(reason)})"
            parts.append(f"by {words}")
        elif by is not None:
            parts.append("by us" if by == "us" else "by the peer")
            if source is not None:
                parts.append(f"(A-ABORT sent: {abort_words(source, reason)})" if by == "us"
                             else f"({peer_abort_words(source, reason)})")
        # The Upper Layer's words for an A-ABORT received (PS3.8 AA-3) say only what
        # ``by`` and its source do.
        if detail and not (by == "peer" and source is not None):
            parts.append(f"- {detail}")
        # The acceptor's own A-RELEASE-RQ (no A-ABORT either way) ended it, not an abort.
        head = "association ended" if by == "peer" and source is None else "association aborted"
        super().__init__(" ".join([head, *parts]))


def abort_words(source: int, reason: int | None) -> str:
    """An A-ABORT's source, and its reason when the source gives it a meaning (the
    service provider's), in the words of PS3.8 Table 9-26: "service-user",
    "service-provider, unexpected PDU", "source 1 (reserved, PS3.8 Table 9-26)"."""
    words = _source_words(source)
    if source == 2 and reason is not None:
        words += f", {abort_reason(reason)}"
    return words


def peer_abort_words(source: int, reason: int | None) -> str:
    """The peer's A-ABORT (PS3.8 AA-3) in the words both sides use: the client's
    ``AssociationAborted`` ("association aborted by the peer (its A-ABORT:
    service-provider, unexpected PDU)") and the server's line and
    ``AssociationEnded.reason`` ("its A-ABORT: service-provider, unexpected PDU")."""
    return f"its A-ABORT: {abort_words(source, reason)}"


def _source_words(source: int) -> str:
    if source in (0, 2):
        return _ABORT_SOURCES[source]
    # An A-ABORT of another source still ends the association (PS3.8 AA-3).
    return f"source {source} ({'reserved' if source == 1 else 'not'} in PS3.8 Table 9-26)"


def abort_reason(reason: int) -> str:
    """A service provider's A-ABORT reason (source 2) in the words of PS3.8 Table
    9-26: "unexpected PDU", "reason 3" for one it does not define."""
    return _ABORT_REASONS.get(reason, f"reason {reason}")


class NoAcceptedContext(AssociationError):
    """No accepted presentation context can carry what was asked to be sent."""


class TransportError(DicomNetError):
    """The connection under the association failed."""


class ConnectError(TransportError):
    """The TCP connection could not be opened."""


class TimeoutError(TransportError, builtins.TimeoutError):
    """The TCP connection (or a raw read) did not complete within its deadline.

    The deadlines of the later steps say so in the error of that step: the TLS
    handshake's in a :class:`TLSError` (``link_failed``), ACSE's, ARTIM's and the
    idle timeout's in an :class:`AssociationAborted`, a DIMSE response's in a
    :class:`DimseTimeout`; each message names the deadline."""


class TLSError(TransportError):
    """The TLS handshake or the peer's certificate verification failed.

    ``reason`` names the check that failed in words a user can act on
    ("certificate has expired", "host name mismatch"...). ``link_failed`` is
    True when no check failed that we know of: the connection closed, was reset
    or timed out during the handshake (a flaky link, or a peer refusing us
    without saying so), where trying again may pass.
    """

    def __init__(self, message: str, *, reason: str = "", link_failed: bool = False) -> None:
        super().__init__(message)
        self.reason = reason or message
        self.link_failed = link_failed


class DimseError(DicomNetError):
    """A DIMSE exchange failed."""


class DimseTimeout(DimseError, builtins.TimeoutError):
    """No DIMSE response arrived within the DIMSE timeout; the client aborted the
    association (A-ABORT, PS3.8 7.3): later calls on it raise AssociationAborted."""


class StatusError(DimseError):
    """A DIMSE response carried a failure status (raised by ``raise_for_status()``)."""

    def __init__(self, status: int, message: str = "") -> None:
        self.status = status
        super().__init__(message or f"DIMSE status 0x{status:04X}")


class ConfigurationError(DicomNetError, ValueError):
    """A setting is invalid or inconsistent."""


#: errno values that mean "no room": the peer may retry later or elsewhere.
_OUT_OF_RESOURCES = frozenset(
    code
    for code in (
        errno.ENOSPC,
        getattr(errno, "EDQUOT", None),
        errno.EFBIG,
        errno.EMFILE,
        errno.ENFILE,
        errno.ENOMEM,
    )
    if code is not None
)


class StorageError(DicomNetError):
    """Storing or reading an object on disk failed.

    ``errno`` is the OS error number when the cause was an ``OSError`` (else
    ``None``); ``out_of_resources`` is true for a full disk, an exceeded
    quota, or exhausted descriptors/memory, which a C-STORE SCP answers with
    0xA700 "Refused: Out of Resources" (PS3.4 B.2.3).
    """

    def __init__(self, message: str, *, errno: int | None = None,
                 reason: str | None = None) -> None:
        super().__init__(message)
        self.errno = errno
        # What to tell the peer when the OS's words for ``errno`` would mislead
        # (a free-space reserve reached is ENOSPC, yet the disk is not full).
        self._reason = reason

    @property
    def out_of_resources(self) -> bool:
        """True when the cause was a lack of space, quota or descriptors."""
        return self.errno in _OUT_OF_RESOURCES

    @property
    def reason(self) -> str:
        """The cause without local paths, fit to tell a peer (e.g. "No space left on
        device"); the message itself names files and folders, for the server's log."""
        if self._reason is not None:
            return self._reason
        if self.errno is not None:
            return os.strerror(self.errno)
        return "the object could not be stored"

    @classmethod
    def from_os_error(cls, action: str, path: Path, exc: OSError) -> StorageError:
        """Translate ``exc``; the message names what we were doing and where."""
        reason = exc.strerror or str(exc)
        err = cls(f"{action} {path}: {reason}", errno=exc.errno)
        err.__cause__ = exc
        return err
