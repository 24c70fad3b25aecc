"""What an acceptor decides and says about an association request, apart from the
server's loop: its providers' contexts as one policy, an association hook's
answer checked, a link hook's bug kept to its connection, and the words its
log uses for refused contexts, TLS links and the answers an association got."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from typing import Protocol

from ..dimse.messages import DimseMessage
from ..dimse.status import PENDING, PENDING_WARNING, category_of
from ..errors import AssociationAborted
from ..security.info import SecurityInfo
from ..uids import named_uid
from ..ul.connection import ULConnection
from ..ul.negotiation import (
    ABSTRACT_SYNTAX_NOT_SUPPORTED,
    ACCEPTANCE,
    TRANSFER_SYNTAXES_NOT_SUPPORTED,
)
from ..ul.pdu import AssociateAC, AssociateRQ
from ..ul.pdu_codes import Rejection
from .server_hooks import contained
from .transport import SecureLinkEvent, SecureLinkHook, Stream, call_hook

__all__ = ["HOOK_FAILED", "AnswerTally", "GuardedLinkHook", "MergedContexts",
           "checked_rejection", "link_words", "log_end", "refused_contexts",
           "unanswered_identity"]

log = logging.getLogger("dicomnet.aio")


#: Why a proposed presentation context was refused (PS3.8 Table 9-18), for the log.
_REFUSALS = {
    ABSTRACT_SYNTAX_NOT_SUPPORTED: "no service here takes this SOP Class",
    TRANSFER_SYNTAXES_NOT_SUPPORTED: "none of its transfer syntaxes is taken here",
}
#: What a SOP Class unknown to pydicom (a private or newer one) may be: an object
#: to store, which a storage server takes if told to.
_UNKNOWN_HINT = "a storage server takes unknown ones with accept_unknown_sop_classes"


def _abstract_syntax_hint(uid: str) -> str:
    """What to do about a refused SOP Class, by what it is: an unknown one may be
    stored (``_UNKNOWN_HINT``); accept_unknown_sop_classes takes no known one, and
    Query/Retrieve (PS3.4 C: findscu -P, movescu, getscu) and the other known
    services have no provider in this version."""
    from pydicom.uid import UID_dictionary  # type: ignore[attr-defined]

    entry = UID_dictionary.get(uid)
    if entry is None:
        return _UNKNOWN_HINT
    name = str(entry[0])
    if "Retrieve" in name:  # Patient/Study Root, Composite Instance Root, Without Bulk Data
        return f"{name}: Query/Retrieve is not served by this version"
    return f"{name}: not served here"


def refused_contexts(rq: AssociateRQ, ac: AssociateAC) -> str:
    """The presentation contexts ``ac`` refuses, with why, in a line (the operator
    of an acceptor otherwise never learns why a peer says "no acceptable
    presentation context"); "" when all were accepted."""
    proposed = {pc.context_id: pc for pc in rq.presentation_contexts}
    refused: dict[str, list[str]] = {}
    for answer in ac.presentation_contexts:
        pc = proposed.get(answer.context_id)
        if pc is None or answer.result == ACCEPTANCE:
            continue
        why = _REFUSALS.get(answer.result, "refused")
        if answer.result == TRANSFER_SYNTAXES_NOT_SUPPORTED:
            why += f": {', '.join(named_uid(ts) for ts in pc.transfer_syntaxes)}"
        elif answer.result == ABSTRACT_SYNTAX_NOT_SUPPORTED:
            why += f" ({_abstract_syntax_hint(pc.abstract_syntax)})"
        refused.setdefault(pc.abstract_syntax, []).append(why)
    if not refused:
        return ""
    return "refused presentation context(s) for " + "; ".join(
        f"{uid} ({', '.join(dict.fromkeys(whys))})" for uid, whys in refused.items())


#: User Identity types (PS3.7 Table D.3-14), in the log's words.
_IDENTITY_TYPES = {1: "username", 2: "username and passcode", 3: "Kerberos ticket",
                   4: "SAML assertion", 5: "JSON Web Token"}


def unanswered_identity(rq: AssociateRQ, ac: AssociateAC) -> str:
    """Words for the log when the requestor asked for a positive User Identity
    response and ``ac`` has none (PS3.7 D.3.3.7.2: an acceptor that verifies no
    identity ignores the sub-item). DCMTK's tools then close the association at
    once, which the log otherwise calls only "the transport connection closed";
    "" otherwise."""
    identity = rq.user_information.user_identity_rq
    if (identity is None or not identity.positive_response_requested
            or ac.user_information.user_identity_ac is not None):
        return ""
    kind = _IDENTITY_TYPES.get(identity.identity_type, f"type {identity.identity_type}")
    return (f"asked for a positive User Identity response ({kind}), which this server "
            "gives to none (it verifies no identity): the peer may close the association")


#: The A-ASSOCIATE-RJ answering a request when a user hook raised (PS3.8 9.3.4,
#: Table 9-21): rejected-transient (the hook may work next time: its database
#: back up), service-user, no reason given.
HOOK_FAILED = Rejection.TRANSIENT_NO_REASON  # (2, 1, 1)


class GuardedLinkHook:
    """The server's ``on_secure_link_ready`` for one connection. Its exception is
    logged with its traceback, not raised: ``failed`` (after a handshake that
    succeeded) makes the server reject the association request with
    ``HOOK_FAILED``. Raised, it aborted the transport, which the client read as
    "the server most likely refused our client certificate"."""

    def __init__(self, hook: SecureLinkHook | None) -> None:
        self.hook = hook
        self.failed = False

    async def __call__(self, event: SecureLinkEvent) -> None:
        try:
            with contained("on_secure_link_ready hook"):  # its SystemExit too
                await call_hook(self.hook, event)
        except Exception:
            self.failed = event.info is not None
            log.exception("the on_secure_link_ready hook raised for the connection from "
                          "%s:%s%s", *event.peer,
                          ": its association request will be rejected (transient)"
                          if self.failed else "")


def checked_rejection(result: object) -> tuple[int, int, int] | None:
    """What an ``on_association_request`` hook answered, as A-ASSOCIATE-RJ fields
    (PS3.8 9.3.4: result 1 or 2, source 1 to 3, a reason byte), or None to accept.
    Anything else is the hook's bug: logged, and the request rejected without a
    reason (1, 1, 1) rather than sent to the peer as it is (permanent: the same
    code answers the same way next time, unlike a hook that raised)."""
    if result is None:
        return None
    if (isinstance(result, tuple) and len(result) == 3
            and all(isinstance(v, int) and not isinstance(v, bool) for v in result)
            and result[0] in (1, 2) and result[1] in (1, 2, 3) and 0 <= result[2] <= 255):
        return (result[0], result[1], result[2])
    log.error("the association request hook answered %r, not None nor (result 1-2, "
              "source 1-3, reason): rejected without a reason", result)
    return Rejection.PERMANENT_NO_REASON


def link_words(security: SecurityInfo | None) -> str:
    """The TLS part of an association's log line: protocol, suite, whether the
    client resumed a TLS session, and whose certificate it showed (with
    ``peer_certificate="optional"``, whether it showed one), as an audit trail
    wants it."""
    if security is None:
        return ""
    words = f", {security.protocol} {security.cipher_suite}"
    if security.session_resumed:
        words += ", TLS session resumed"
    cert = security.peer_certificate
    if cert is None:
        return words + ", no client certificate"
    name = cert.common_name or cert.subject
    return words + f", client certificate {name} (SHA-256 {cert.sha256_fingerprint})"


class _Ended(Protocol):
    """What ``log_end`` reads of a server's association (aio.server)."""

    calling_ae_title: str
    called_ae_title: str
    messages: int
    answers: AnswerTally
    stream: Stream
    ul: ULConnection
    dropped: str | None
    failure: AssociationAborted | None


def log_end(assoc: _Ended, outcome: str, seconds: float, *, evicted: bool = False,
            accepted: bool = True, rejected: bool = False) -> None:
    """The line a connection's end logs: an association's (INFO: who, how it ended,
    its answers by status, how long, its TLS link), or, for a connection refused
    or aborted before it associated (an A-ASSOCIATE-RQ the server could not read,
    a PDU out of turn, a timeout), why, as a WARNING; one closed by its peer
    before it asked (after a TLS handshake), at INFO. One evicted (logged per
    flood) or closed with the server says nothing, and so does one whose
    request was rejected (not ``accepted``) and that then closed, or that
    lingered and was evicted (``rejected``): the rejection was its line."""
    peer = assoc.stream.peer
    link = link_words(assoc.stream.security)
    if not assoc.calling_ae_title and assoc.ul.refusal is not None:
        # Refused before an association existed (PS3.8 AA-1, AE-6: no indication).
        log.warning("connection refused: %s:%s: %s, %.2f s%s", *peer[:2], assoc.ul.refusal,
                    seconds, link)
        return
    if assoc.dropped and outcome.startswith("aborted (") and outcome.endswith(")"):
        outcome = f"{outcome[:-1]}; {assoc.dropped} left unfinished, not stored)"
    if assoc.calling_ae_title and not accepted and (outcome == "closed" or rejected):
        return  # rejected, then closed (or evicted): the rejection's line said it
    if assoc.calling_ae_title:
        if (assoc.failure is not None and assoc.failure.by == "us"
                and outcome.startswith("aborted (")):
            # A deadline of ours, a fault we found, would read as the peer's else; the
            # peer's A-ABORT (PS3.8 AA-3) says who as the client's AssociationAborted does.
            outcome = f"aborted (by us: {outcome[9:]}"
        elif (assoc.failure is not None and assoc.failure.by == "peer"
              and outcome.startswith("aborted (its A-ABORT: ")):
            outcome = f"aborted (by the peer, {outcome[9:]}"  # the client's words
        log.info("association %s@%s:%s -> %s: %s, %d message(s)%s, %.2f s%s",
                 assoc.calling_ae_title, *peer[:2], assoc.called_ae_title, outcome,
                 assoc.messages, assoc.answers.words(assoc.messages), seconds, link)
    elif (outcome.startswith("aborted (") and not evicted
          and outcome != "aborted (server closing)"):
        log.warning("connection from %s:%s aborted before it associated: %s, %.2f s%s",
                    *peer[:2], outcome.removeprefix("aborted (").removesuffix(")"), seconds,
                    link)
    elif outcome == "closed":
        # The peer closed before its A-ASSOCIATE-RQ, after the TLS handshake (a
        # plain one that sent nothing is said by wrap_accepted): a probe or a
        # health check, no fault; INFO, as the line of one that sent nothing.
        log.info("connection from %s:%s closed before it associated, %.2f s%s",
                 *peer[:2], seconds, link)


class AnswerTally:
    """The final statuses an association's requests were answered with (PS3.7
    Annex C), for the line logged when it ends: whether everything the peer
    sent was stored, and what was not, by status."""

    __slots__ = ("_codes",)

    def __init__(self) -> None:
        self._codes: Counter[int] = Counter()

    def count(self, response: DimseMessage) -> None:
        """Count a response about to be sent; pending ones (C-FIND's matches) are
        not answers yet."""
        status = getattr(response, "status", None)
        if isinstance(status, int) and status not in (PENDING, PENDING_WARNING):
            self._codes[status] += 1

    def by_status(self) -> dict[int, int]:
        """The final statuses sent, by code."""
        return dict(self._codes)

    def words(self, messages: int) -> str:
        """" (9 success, 1 failure 0xA700)" for ``messages`` requests; those
        never answered (the association ended first) are said too."""
        parts = []
        successes = self._codes.get(0, 0)
        if successes:
            parts.append(f"{successes} success")
        for code in sorted(self._codes):
            if code:
                parts.append(f"{self._codes[code]} {category_of(code)} 0x{code:04X}")
        unanswered = messages - sum(self._codes.values())
        if unanswered > 0:
            parts.append(f"{unanswered} unanswered")
        return f" ({', '.join(parts)})" if parts else ""


class MergedContexts(Mapping[str, "Sequence[str] | None"]):
    """Several providers' contexts as one mapping, the first that has a key answering."""

    def __init__(self, maps: list[Mapping[str, Sequence[str] | None]]) -> None:
        self._maps = maps

    def __getitem__(self, key: str) -> Sequence[str] | None:
        for contexts in self._maps:
            if key in contexts:
                return contexts[key]
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        return any(key in contexts for contexts in self._maps)

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(key for contexts in self._maps for key in contexts))

    def __len__(self) -> int:
        return sum(1 for _ in self)
