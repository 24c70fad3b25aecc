"""Association negotiation as pure functions (PS3.8 9.3.2-9.3.3, PS3.7 D.3.3)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from dicomnet.errors import ConfigurationError
from dicomnet.ul.items import (
    AsynchronousOperationsWindowSubItem,
    PresentationContextACItem,
    PresentationContextRQItem,
    RoleSelectionSubItem,
    SOPClassExtendedNegotiationSubItem,
    UserIdentityACSubItem,
    UserIdentityRQSubItem,
)
from dicomnet.ul.negotiation import (
    APPLICATION_CONTEXT_NAME,
    AcceptorPolicy,
    ContextRequest,
    accepted_contexts,
    async_window,
    build_associate_rq,
    negotiate,
    negotiate_contexts,
    negotiate_roles,
    refused_abstract_syntaxes,
    unanswered_contexts,
)

CT = "1.2.840.10008.5.1.4.1.1.2"
MR = "1.2.840.10008.5.1.4.1.1.4"
VERIFICATION = "1.2.840.10008.1.1"
IMPLICIT = "1.2.840.10008.1.2"
EXPLICIT = "1.2.840.10008.1.2.1"
RLE = "1.2.840.10008.1.2.5"


def test_rq_numbers_contexts_odd_and_carries_user_information() -> None:
    rq = build_associate_rq(
        calling_ae_title="SCU", called_ae_title="SCP", max_pdu_length=32768,
        contexts=[ContextRequest(CT, (EXPLICIT, IMPLICIT)), ContextRequest(MR, (IMPLICIT,)),
                  ContextRequest(CT, (RLE,), scu_role=True, scp_role=True)],
    )
    assert [pc.context_id for pc in rq.presentation_contexts] == [1, 3, 5]
    assert rq.application_context_name == APPLICATION_CONTEXT_NAME
    ui = rq.user_information
    assert ui.maximum_length == 32768
    assert ui.implementation_class_uid and ui.implementation_version_name
    assert ui.role_selections == (RoleSelectionSubItem(CT, True, True),)


def test_rq_refuses_more_than_128_contexts_and_none() -> None:
    with pytest.raises(ConfigurationError, match="128"):
        build_associate_rq(calling_ae_title="A", called_ae_title="B",
                           contexts=[ContextRequest(CT, (IMPLICIT,))] * 129)
    with pytest.raises(ConfigurationError):
        build_associate_rq(calling_ae_title="A", called_ae_title="B", contexts=[])


def test_contexts_results_per_table_9_18() -> None:
    proposed = [
        PresentationContextRQItem(1, CT, (RLE, EXPLICIT)),
        PresentationContextRQItem(3, MR, (IMPLICIT,)),
        PresentationContextRQItem(5, VERIFICATION, (RLE,)),
        PresentationContextRQItem(6, CT, (IMPLICIT,)),  # even ID: PS3.8 9.3.2.2 says odd
        PresentationContextRQItem(1, CT, (IMPLICIT,)),  # repeated ID
    ]
    answers = negotiate_contexts(proposed, {CT: (EXPLICIT, IMPLICIT), VERIFICATION: (IMPLICIT,)})
    assert answers == (
        PresentationContextACItem(1, 0, EXPLICIT),  # first proposed that we support
        PresentationContextACItem(3, 3, IMPLICIT),  # abstract syntax not supported
        PresentationContextACItem(5, 4, RLE),  # transfer syntaxes not supported
        PresentationContextACItem(6, 2, IMPLICIT),  # provider rejection, no reason
        PresentationContextACItem(1, 2, IMPLICIT),
    )


def test_contexts_none_accepts_any_transfer_syntax_in_requestor_order() -> None:
    answers = negotiate_contexts([PresentationContextRQItem(1, CT, (RLE, EXPLICIT))], {CT: None})
    assert answers == (PresentationContextACItem(1, 0, RLE),)


def test_roles_never_grant_what_was_not_proposed() -> None:
    proposed = [RoleSelectionSubItem(CT, False, True), RoleSelectionSubItem(MR, True, True)]
    answers = negotiate_roles(proposed, {CT: (True, True), MR: (True, False)})
    assert answers == (RoleSelectionSubItem(CT, False, True), RoleSelectionSubItem(MR, True, False))
    # A SOP class we say nothing about keeps the defaults: requestor SCU only.
    assert negotiate_roles([RoleSelectionSubItem(CT, True, True)], {}) == (
        RoleSelectionSubItem(CT, True, False),
    )


def test_negotiate_answers_async_window_identity_and_extended() -> None:
    identity = UserIdentityRQSubItem(2, True, b"alice", b"secret")
    rq = build_associate_rq(
        calling_ae_title="SCU", called_ae_title="SCP",
        contexts=[ContextRequest(CT, (EXPLICIT,))],
        async_ops=AsynchronousOperationsWindowSubItem(5, 5),
        user_identity=identity,
        extended=[SOPClassExtendedNegotiationSubItem(CT, b"\x01"),
                  SOPClassExtendedNegotiationSubItem(MR, b"\x01")],
    )
    seen: list[UserIdentityRQSubItem] = []

    def check_identity(item: UserIdentityRQSubItem) -> bytes:
        seen.append(item)
        return b"token"

    policy = AcceptorPolicy(
        contexts={CT: None}, max_pdu_length=65536, user_identity=check_identity,
        extended_negotiation=lambda ext: b"\x01" if ext.sop_class_uid == CT else None,
    )
    ac = negotiate(rq, policy)
    ui = ac.user_information
    assert ac.called_ae_title == "SCP" and ac.calling_ae_title == "SCU"
    assert ui.maximum_length == 65536
    # The AC's fields keep the RQ's point of view (PS3.7 D.3.3.3, Table D.3-8):
    # it may invoke 5 (up to our 16), and perform 1 (we invoke nothing towards it).
    assert ui.async_ops_window == AsynchronousOperationsWindowSubItem(5, 1)
    assert async_window(rq, ac) == 5
    assert ui.user_identity_ac == UserIdentityACSubItem(b"token")
    assert seen == [identity]
    assert ui.extended_negotiations == (SOPClassExtendedNegotiationSubItem(CT, b"\x01"),)


def test_accepted_contexts_and_roles_seen_by_both_sides() -> None:
    rq = build_associate_rq(
        calling_ae_title="SCU", called_ae_title="SCP",
        contexts=[ContextRequest(CT, (EXPLICIT,), scu_role=False, scp_role=True),
                  ContextRequest(MR, (RLE,)), ContextRequest(VERIFICATION, (IMPLICIT,))],
    )
    ac = negotiate(rq, AcceptorPolicy(contexts={CT: None, VERIFICATION: (IMPLICIT,)},
                                      roles={CT: (True, True)}))
    got = accepted_contexts(rq, ac)
    assert sorted(got) == [1, 5]
    assert got[1].transfer_syntax == EXPLICIT
    assert (got[1].requestor_is_scu, got[1].requestor_is_scp) == (False, True)
    assert (got[5].requestor_is_scu, got[5].requestor_is_scp) == (True, False)


def test_a_role_the_ac_grants_that_was_not_proposed_is_ignored() -> None:
    """PS3.7 D.3.3.4: the acceptor may only accept (1) or turn down (0) a proposed
    role, and the requestor ignores a 1 for a role it did not propose (sent 0):
    CT proposed as SCU only and MR as SCP only, an acceptor answering 1 for
    both roles of both leaves CT's requestor SCU only and MR's SCP only. What
    was proposed and granted stands; a role turned down stays down."""
    rq = build_associate_rq(
        calling_ae_title="SCU", called_ae_title="SCP",
        contexts=[ContextRequest(CT, (EXPLICIT,), scu_role=True, scp_role=False),
                  ContextRequest(MR, (EXPLICIT,), scu_role=False, scp_role=True),
                  ContextRequest(VERIFICATION, (IMPLICIT,), scu_role=True, scp_role=True)],
    )
    assert rq.user_information.role_selections == (
        RoleSelectionSubItem(CT, True, False), RoleSelectionSubItem(MR, False, True),
        RoleSelectionSubItem(VERIFICATION, True, True))
    ac = negotiate(rq, AcceptorPolicy(contexts={CT: None, MR: None, VERIFICATION: None},
                                      roles={VERIFICATION: (True, False)}))
    others = tuple(s for s in ac.user_information.sub_items
                   if not isinstance(s, RoleSelectionSubItem))
    hostile = replace(ac, user_information=replace(ac.user_information, sub_items=(
        *others, RoleSelectionSubItem(CT, True, True), RoleSelectionSubItem(MR, True, True),
        RoleSelectionSubItem(VERIFICATION, True, False))))
    got = accepted_contexts(rq, hostile)
    roles = {got[cid].abstract_syntax: (got[cid].requestor_is_scu, got[cid].requestor_is_scp)
             for cid in got}
    assert roles == {CT: (True, False), MR: (False, True), VERIFICATION: (True, False)}


def test_refused_abstract_syntaxes_with_the_most_telling_reason() -> None:
    """MR refused outright (3), CT taken in none of the syntaxes of one context (4)
    and not at all in the other (3: the 4 tells more), Verification accepted."""
    rq = build_associate_rq(
        calling_ae_title="SCU", called_ae_title="SCP",
        contexts=[ContextRequest(MR, (EXPLICIT,)), ContextRequest(CT, (RLE,)),
                  ContextRequest(CT, (IMPLICIT,)), ContextRequest(VERIFICATION, (IMPLICIT,))],
    )
    ac = negotiate(rq, AcceptorPolicy(contexts={CT: (EXPLICIT,), VERIFICATION: None}))
    assert refused_abstract_syntaxes(rq, ac) == {MR: 3, CT: 4}


def test_unanswered_contexts_are_the_proposed_ones_the_ac_left_out() -> None:
    """PS3.8 7.1.1.14: one result per proposed context. An AC answering 1 and 5
    only (refusing 5) leaves 3 unanswered, in the order proposed; a complete AC
    leaves none."""
    rq = build_associate_rq(
        calling_ae_title="SCU", called_ae_title="SCP",
        contexts=[ContextRequest(VERIFICATION, (IMPLICIT,)), ContextRequest(CT, (EXPLICIT,)),
                  ContextRequest(MR, (EXPLICIT,))],
    )
    ac = negotiate(rq, AcceptorPolicy(contexts={VERIFICATION: None, CT: None}))
    assert unanswered_contexts(rq, ac) == ()
    partial = replace(ac, presentation_contexts=tuple(
        pc for pc in ac.presentation_contexts if pc.context_id != 3))
    assert [pc.context_id for pc in partial.presentation_contexts] == [1, 5]
    assert unanswered_contexts(rq, partial) == (rq.presentation_contexts[1],)
    assert (rq.presentation_contexts[1].context_id,
            rq.presentation_contexts[1].abstract_syntax) == (3, CT)


def test_async_window_defaults_to_synchronous_and_honours_limits() -> None:
    plain = build_associate_rq(calling_ae_title="A", called_ae_title="B",
                               contexts=[ContextRequest(CT, (EXPLICIT,))])
    assert async_window(plain, negotiate(plain, AcceptorPolicy(contexts={CT: None}))) == 1
    big = build_associate_rq(calling_ae_title="A", called_ae_title="B",
                             contexts=[ContextRequest(CT, (EXPLICIT,))],
                             async_ops=AsynchronousOperationsWindowSubItem(64, 1))
    ac = negotiate(big, AcceptorPolicy(contexts={CT: None}, max_async_operations=8))
    assert ac.user_information.async_ops_window == AsynchronousOperationsWindowSubItem(8, 1)
    assert async_window(big, ac) == 8
    sync = negotiate(big, AcceptorPolicy(contexts={CT: None}, max_async_operations=1))
    assert async_window(big, sync) == 1
    unlimited = build_associate_rq(calling_ae_title="A", called_ae_title="B",
                                   contexts=[ContextRequest(CT, (EXPLICIT,))],
                                   async_ops=AsynchronousOperationsWindowSubItem(0, 0))
    ac = negotiate(unlimited, AcceptorPolicy(contexts={CT: None}, max_async_operations=4))
    assert async_window(unlimited, ac) == 4
    assert ac.user_information.async_ops_window == AsynchronousOperationsWindowSubItem(4, 1)


def test_async_window_sub_item_of_the_ac_on_the_wire() -> None:
    """The acceptor's answer says how many the requestor may invoke first, how many
    it may perform second (PS3.7 D.3.3.3.2, Table D.3-8: each "as defined for the
    Association-acceptor" in D.3.3.3, the number it allows the requestor, no more
    than the requestor offered). Wireshark, dcm4che and the standard's own
    figures read it so; until session 28 dicomnet answered (1, granted), which a
    standard requestor reads as "one at a time", and read the grant from the
    second field."""
    rq = build_associate_rq(calling_ae_title="A", called_ae_title="B",
                            contexts=[ContextRequest(CT, (EXPLICIT,))],
                            async_ops=AsynchronousOperationsWindowSubItem(32, 1))
    ac = negotiate(rq, AcceptorPolicy(contexts={CT: None}, max_async_operations=16))
    window = ac.user_information.async_ops_window
    assert window is not None
    assert window.encode() == bytes.fromhex(
        "53"    # item type: Asynchronous Operations Window
        "00"    # reserved
        "0004"  # item length
        "0010"  # maximum number of operations invoked (by the requestor): 16
        "0001"  # maximum number of operations performed (by the requestor): 1
    )
    assert async_window(rq, ac) == 16
    # A standard acceptor (dcm4che's: min of what was offered and what it performs)
    # granting 4 of the 32 offered: the requestor keeps 4 in flight, not 1.
    granted = replace(ac, user_information=replace(
        ac.user_information,
        sub_items=tuple(AsynchronousOperationsWindowSubItem(4, 1)
                        if isinstance(item, AsynchronousOperationsWindowSubItem) else item
                        for item in ac.user_information.sub_items)))
    assert async_window(rq, granted) == 4
    # One that declines with (1, 1), the default: one at a time.
    declined = replace(ac, user_information=replace(
        ac.user_information,
        sub_items=tuple(AsynchronousOperationsWindowSubItem(1, 1)
                        if isinstance(item, AsynchronousOperationsWindowSubItem) else item
                        for item in ac.user_information.sub_items)))
    assert async_window(rq, declined) == 1
