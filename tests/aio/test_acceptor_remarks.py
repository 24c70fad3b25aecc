"""The acceptor's remarks on a negotiation, in memory: when a requestor that asked
for a positive User Identity response (PS3.7 D.3.3.7) gets none, the log says so."""

from __future__ import annotations

import pytest

from dicomnet.aio.acceptor import unanswered_identity
from dicomnet.ul.items import UserIdentityRQSubItem
from dicomnet.ul.negotiation import (
    AcceptorPolicy,
    ContextRequest,
    build_associate_rq,
    negotiate,
)

VERIFICATION = "1.2.840.10008.1.1"
EXPLICIT_LE = "1.2.840.10008.1.2.1"


def _remark(identity: UserIdentityRQSubItem | None, policy: AcceptorPolicy) -> str:
    rq = build_associate_rq(calling_ae_title="SCU", called_ae_title="SCP",
                            contexts=[ContextRequest(VERIFICATION, (EXPLICIT_LE,))],
                            user_identity=identity)
    return unanswered_identity(rq, negotiate(rq, policy))


@pytest.mark.parametrize(("kind", "words"), [(1, "username"), (5, "JSON Web Token"),
                                             (9, "type 9")])
def test_a_requested_response_that_none_answers_is_remarked(kind: int, words: str) -> None:
    policy = AcceptorPolicy(contexts={VERIFICATION: None})
    identity = UserIdentityRQSubItem(kind, True, b"alice")
    assert _remark(identity, policy) == (
        f"asked for a positive User Identity response ({words}), which this server gives "
        "to none (it verifies no identity): the peer may close the association")


def test_no_remark_when_none_was_asked_for_or_it_was_given() -> None:
    silent = AcceptorPolicy(contexts={VERIFICATION: None})
    answering = AcceptorPolicy(contexts={VERIFICATION: None},
                               user_identity=lambda identity: b"")
    assert _remark(None, silent) == ""
    assert _remark(UserIdentityRQSubItem(2, False, b"alice", b"pw"), silent) == ""
    assert _remark(UserIdentityRQSubItem(2, True, b"alice", b"pw"), answering) == ""
