"""Association negotiation as pure functions (PS3.8 9.3.2-9.3.3, Annex D;
PS3.7 Annex D.3.3).

Requestor side: ``build_associate_rq`` turns what the user wants into an
A-ASSOCIATE-RQ. Acceptor side: ``negotiate`` turns an A-ASSOCIATE-RQ and the
acceptor's policy into an A-ASSOCIATE-AC. Both sides then call
``accepted_contexts`` on the pair to learn which presentation contexts can be
used, with which transfer syntax and in which roles.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from ..errors import ConfigurationError
from .items import (
    PC_ABSTRACT_SYNTAX_NOT_SUPPORTED,
    PC_ACCEPTANCE,
    PC_NO_REASON,
    PC_TRANSFER_SYNTAXES_NOT_SUPPORTED,
    AsynchronousOperationsWindowSubItem,
    ImplementationClassUIDSubItem,
    ImplementationVersionNameSubItem,
    MaximumLengthSubItem,
    PresentationContextACItem,
    PresentationContextRQItem,
    RoleSelectionSubItem,
    SOPClassCommonExtendedNegotiationSubItem,
    SOPClassExtendedNegotiationSubItem,
    SubItem,
    UserIdentityACSubItem,
    UserIdentityRQSubItem,
    UserInformationItem,
)
from .pdu import AssociateAC, AssociateRQ

__all__ = [
    "APPLICATION_CONTEXT_NAME",
    "IMPLEMENTATION_CLASS_UID",
    "IMPLEMENTATION_VERSION_NAME",
    "AcceptedContext",
    "AcceptorPolicy",
    "ContextRequest",
    "accepted_contexts",
    "async_window",
    "build_associate_rq",
    "negotiate",
    "negotiate_contexts",
    "negotiate_roles",
    "unanswered_contexts",
]

#: The DICOM Application Context Name (PS3.7 A.2.1).
APPLICATION_CONTEXT_NAME = "1.2.840.10008.3.1.1.1"
#: dicomnet's Implementation Class UID (PS3.7 D.3.3.2), under the 2.25 UUID root.
IMPLEMENTATION_CLASS_UID = "2.25.240385195712339458133016549016346180547"
IMPLEMENTATION_VERSION_NAME = "DICOMNET_010"

# Presentation context results, PS3.8 Table 9-18.
ACCEPTANCE = PC_ACCEPTANCE
NO_REASON = PC_NO_REASON
ABSTRACT_SYNTAX_NOT_SUPPORTED = PC_ABSTRACT_SYNTAX_NOT_SUPPORTED
TRANSFER_SYNTAXES_NOT_SUPPORTED = PC_TRANSFER_SYNTAXES_NOT_SUPPORTED


@dataclass(frozen=True, slots=True)
class ContextRequest:
    """One presentation context a requestor proposes.

    ``scu_role``/``scp_role``: when either is set, an SCP/SCU Role Selection
    sub-item is proposed for the abstract syntax (PS3.7 D.3.3.4); e.g. a C-GET
    SCU proposes ``scp_role=True`` for the storage SOP classes it will receive.
    """

    abstract_syntax: str
    transfer_syntaxes: tuple[str, ...]
    scu_role: bool | None = None
    scp_role: bool | None = None

    def __post_init__(self) -> None:
        syntaxes = self.transfer_syntaxes
        if isinstance(syntaxes, str):
            # A string is a sequence too: each character would be proposed as a UID.
            raise ConfigurationError(
                f"transfer_syntaxes must be a sequence of UIDs, not one string: ({syntaxes!r},)")
        if not isinstance(syntaxes, tuple):  # a list, say: hashable and fixed, as typed
            object.__setattr__(self, "transfer_syntaxes", tuple(syntaxes))


@dataclass(frozen=True, slots=True)
class AcceptedContext:
    """A presentation context both sides agreed on.

    ``requestor_is_scu``/``requestor_is_scp`` are the roles of the association
    requestor for this context after role negotiation (PS3.7 D.3.3.4); by
    default the requestor is SCU and the acceptor SCP.
    """

    context_id: int
    abstract_syntax: str
    transfer_syntax: str
    requestor_is_scu: bool = True
    requestor_is_scp: bool = False


@dataclass(frozen=True, slots=True)
class AcceptorPolicy:
    """What an acceptor supports.

    ``contexts`` maps an abstract syntax to its transfer syntaxes; ``None`` as
    the whole mapping's value for a key means any transfer syntax is accepted.
    ``roles`` maps an abstract syntax to the (SCU, SCP) roles the acceptor lets
    the requestor take when it asks by role selection.
    """

    contexts: Mapping[str, Sequence[str] | None]
    max_pdu_length: int = 1 << 20
    roles: Mapping[str, tuple[bool, bool]] = field(default_factory=dict)
    #: Answers a User Identity request: returns the server response bytes (for a
    #: positive response), None to accept silently, or raises to reject.
    user_identity: Callable[[UserIdentityRQSubItem], bytes | None] | None = None
    extended_negotiation: Callable[[SOPClassExtendedNegotiationSubItem], bytes | None] | None = (
        None
    )
    implementation_class_uid: str = IMPLEMENTATION_CLASS_UID
    implementation_version_name: str | None = IMPLEMENTATION_VERSION_NAME
    #: Operations the acceptor performs at once for a requestor that asks for an
    #: asynchronous operations window (PS3.7 D.3.3.3); 1 keeps it synchronous.
    max_async_operations: int = 32


def build_associate_rq(
    *,
    calling_ae_title: str,
    called_ae_title: str,
    contexts: Sequence[ContextRequest],
    max_pdu_length: int = 1 << 20,
    user_identity: UserIdentityRQSubItem | None = None,
    extended: Sequence[SOPClassExtendedNegotiationSubItem] = (),
    common_extended: Sequence[SOPClassCommonExtendedNegotiationSubItem] = (),
    async_ops: AsynchronousOperationsWindowSubItem | None = None,
    implementation_class_uid: str = IMPLEMENTATION_CLASS_UID,
    implementation_version_name: str | None = IMPLEMENTATION_VERSION_NAME,
) -> AssociateRQ:
    """The A-ASSOCIATE-RQ for these contexts (PS3.8 9.3.2). Context IDs are the odd
    numbers 1, 3, ... 255 in order (PS3.8 9.3.2.2), so at most 128 contexts."""
    if not contexts:
        raise ConfigurationError("an association needs at least one presentation context")
    if len(contexts) > 128:
        raise ConfigurationError(
            f"{len(contexts)} presentation contexts asked; PS3.8 allows 128 per association"
        )
    pcs = tuple(
        PresentationContextRQItem(
            context_id=2 * i + 1,
            abstract_syntax=c.abstract_syntax,
            transfer_syntaxes=tuple(c.transfer_syntaxes),
        )
        for i, c in enumerate(contexts)
    )
    sub_items: list[SubItem] = [
        MaximumLengthSubItem(maximum_length=max_pdu_length),
        ImplementationClassUIDSubItem(uid=implementation_class_uid),
    ]
    if async_ops is not None:
        sub_items.append(async_ops)
    seen_roles: set[str] = set()
    for c in contexts:
        if (c.scu_role is not None or c.scp_role is not None) and (
            c.abstract_syntax not in seen_roles
        ):
            seen_roles.add(c.abstract_syntax)
            sub_items.append(
                RoleSelectionSubItem(
                    sop_class_uid=c.abstract_syntax,
                    scu_role=bool(c.scu_role) if c.scu_role is not None else True,
                    scp_role=bool(c.scp_role),
                )
            )
    if implementation_version_name:
        sub_items.append(ImplementationVersionNameSubItem(name=implementation_version_name))
    sub_items += extended
    sub_items += common_extended
    if user_identity is not None:
        sub_items.append(user_identity)
    return AssociateRQ(
        called_ae_title=called_ae_title,
        calling_ae_title=calling_ae_title,
        application_context_name=APPLICATION_CONTEXT_NAME,
        presentation_contexts=pcs,
        user_information=UserInformationItem(sub_items=tuple(sub_items)),
    )


def negotiate_contexts(
    proposed: Sequence[PresentationContextRQItem],
    supported: Mapping[str, Sequence[str] | None],
) -> tuple[PresentationContextACItem, ...]:
    """Answer each proposed presentation context (PS3.8 9.3.3.2, Table 9-18).

    The transfer syntax chosen is the first one the requestor proposed that the
    acceptor supports, honouring the requestor's order of preference. A context
    with an even or repeated ID (PS3.8 9.3.2.2, 7.1.1.13), which no decoded
    ``AssociateRQ`` holds (the whole request is invalid), is answered result 2
    (no reason) when ``proposed`` was built by hand.
    """
    answers: list[PresentationContextACItem] = []
    seen: set[int] = set()
    for pc in proposed:
        cid = pc.context_id
        # A rejection still carries a Transfer Syntax sub-item (PS3.8 Table 9-18 lists
        # it; its value is not significant): strict peers expect one.
        filler = pc.transfer_syntaxes[0] if pc.transfer_syntaxes else ""
        if cid % 2 == 0 or cid in seen:
            answers.append(PresentationContextACItem(cid, NO_REASON, filler))
            continue
        seen.add(cid)
        if pc.abstract_syntax not in supported:
            answers.append(PresentationContextACItem(cid, ABSTRACT_SYNTAX_NOT_SUPPORTED, filler))
            continue
        ours = supported[pc.abstract_syntax]
        chosen = next(
            (ts for ts in pc.transfer_syntaxes if ours is None or ts in ours), None
        )
        if chosen is None:
            answers.append(
                PresentationContextACItem(cid, TRANSFER_SYNTAXES_NOT_SUPPORTED, filler)
            )
        else:
            answers.append(PresentationContextACItem(cid, ACCEPTANCE, chosen))
    return tuple(answers)


def negotiate_roles(
    proposed: Sequence[RoleSelectionSubItem],
    allowed: Mapping[str, tuple[bool, bool]],
) -> tuple[RoleSelectionSubItem, ...]:
    """Answer SCP/SCU Role Selection sub-items (PS3.7 D.3.3.4).

    An acceptor may refuse a proposed role (answer 0) but never grant one that
    was not proposed. A SOP class absent from ``allowed`` keeps the default
    roles: the requestor may be SCU, not SCP.
    """
    answers = []
    for item in proposed:
        scu_ok, scp_ok = allowed.get(item.sop_class_uid, (True, False))
        answers.append(
            RoleSelectionSubItem(
                sop_class_uid=item.sop_class_uid,
                scu_role=item.scu_role and scu_ok,
                scp_role=item.scp_role and scp_ok,
            )
        )
    return tuple(answers)


def negotiate(rq: AssociateRQ, policy: AcceptorPolicy) -> AssociateAC:
    """The A-ASSOCIATE-AC answering ``rq`` under ``policy`` (PS3.8 9.3.3).

    An asynchronous operations window, when proposed, is answered as PS3.7
    D.3.3.3.2 (Table D.3-8) has it, from the requestor's side as the request is:
    it may invoke up to ``policy.max_async_operations``, never more than it
    offered (0 there: unlimited), and perform 1 (we invoke nothing towards
    it); extended negotiation items are
    answered only for what ``policy.extended_negotiation`` accepts; a user
    identity asking for a positive response gets the server response.
    """
    ui = rq.user_information
    sub_items: list[SubItem] = [
        MaximumLengthSubItem(maximum_length=policy.max_pdu_length),
        ImplementationClassUIDSubItem(uid=policy.implementation_class_uid),
    ]
    asked = ui.async_ops_window
    if asked is not None:
        # What it may invoke: our limit, never more than it offered (0: unlimited).
        # What it may perform: 1, as we invoke nothing towards it.
        ours = max(1, policy.max_async_operations)
        invoked = asked.max_operations_invoked
        sub_items.append(AsynchronousOperationsWindowSubItem(
            ours if invoked == 0 else min(invoked, ours), 1))
    sub_items += negotiate_roles(ui.role_selections, policy.roles)
    if policy.implementation_version_name:
        sub_items.append(ImplementationVersionNameSubItem(name=policy.implementation_version_name))
    if policy.extended_negotiation is not None:
        for ext in ui.extended_negotiations:
            info = policy.extended_negotiation(ext)
            if info is not None:
                sub_items.append(SOPClassExtendedNegotiationSubItem(ext.sop_class_uid, info))
    identity = ui.user_identity_rq
    if identity is not None and policy.user_identity is not None:
        response = policy.user_identity(identity)
        if identity.positive_response_requested and response is not None:
            sub_items.append(UserIdentityACSubItem(server_response=response))
    return AssociateAC(
        called_ae_title=rq.called_ae_title,
        calling_ae_title=rq.calling_ae_title,
        application_context_name=APPLICATION_CONTEXT_NAME,
        presentation_contexts=negotiate_contexts(rq.presentation_contexts, policy.contexts),
        user_information=UserInformationItem(sub_items=tuple(sub_items)),
    )


def async_window(rq: AssociateRQ, ac: AssociateAC) -> int:
    """How many operations the requestor may have outstanding (PS3.7 D.3.3.3): the
    smaller of what it asked to invoke and what the acceptor allows it to invoke,
    the AC's first field (D.3.3.3.2, Table D.3-8); 1 (the default, synchronous)
    when either side left the sub-item out. 0 (unlimited) on both sides is capped
    at 65535."""
    asked, granted = rq.user_information.async_ops_window, ac.user_information.async_ops_window
    if asked is None or granted is None:
        return 1
    limits = [n for n in (asked.max_operations_invoked, granted.max_operations_invoked) if n]
    return min(limits) if limits else 0xFFFF


def refused_abstract_syntaxes(rq: AssociateRQ, ac: AssociateAC) -> dict[str, int]:
    """The abstract syntaxes for which no proposed context was accepted, each with
    the acceptor's reason (PS3.8 Table 9-18: 1 user rejection, 2 no reason, 3
    abstract syntax not supported, 4 transfer syntaxes not supported); when its
    contexts were refused for different reasons, the most telling one (4 before
    3: the SOP Class itself is taken)."""
    proposed = {pc.context_id: pc.abstract_syntax for pc in rq.presentation_contexts}
    accepted: set[str] = set()
    refused: dict[str, int] = {}
    for pc in ac.presentation_contexts:
        abstract = proposed.get(pc.context_id)
        if abstract is None:
            continue
        if pc.result == ACCEPTANCE:
            accepted.add(abstract)
        elif pc.result == TRANSFER_SYNTAXES_NOT_SUPPORTED or abstract not in refused:
            refused[abstract] = pc.result
    return {abstract: why for abstract, why in refused.items() if abstract not in accepted}


def unanswered_contexts(rq: AssociateRQ, ac: AssociateAC) -> tuple[PresentationContextRQItem, ...]:
    """The proposed presentation contexts the A-ASSOCIATE-AC gives no result for, in
    the order proposed. PS3.8 7.1.1.14 wants one result per proposed context; a peer
    that leaves some out is taken all the same (they are not accepted), but the
    requestor should say so: nothing else tells why they are missing."""
    answered = {pc.context_id for pc in ac.presentation_contexts}
    return tuple(pc for pc in rq.presentation_contexts if pc.context_id not in answered)


def accepted_contexts(rq: AssociateRQ, ac: AssociateAC) -> dict[int, AcceptedContext]:
    """The usable presentation contexts of an established association, by ID.

    An AC context whose ID the RQ did not propose is ignored (PS3.8 7.1.1.14
    says the acceptor answers only proposed IDs; ``ULConnection`` aborts an
    association on such an AC before it gets here). A role the AC grants
    (1) that the RQ did not propose (0) is ignored, as PS3.7 D.3.3.4 has the
    requestor do: the acceptor may only accept or turn down a proposed role.
    """
    proposed = {pc.context_id: pc for pc in rq.presentation_contexts}
    roles = {r.sop_class_uid: r for r in ac.user_information.role_selections}
    asked_roles = {r.sop_class_uid: r for r in rq.user_information.role_selections}
    result: dict[int, AcceptedContext] = {}
    for pc in ac.presentation_contexts:
        if pc.result != ACCEPTANCE or pc.transfer_syntax is None:
            continue
        req = proposed.get(pc.context_id)
        if req is None:
            continue
        role = roles.get(req.abstract_syntax)
        asked = asked_roles.get(req.abstract_syntax)
        if role is not None and asked is not None:
            scu = role.scu_role and asked.scu_role
            scp = role.scp_role and asked.scp_role
        else:
            scu, scp = True, False
        result[pc.context_id] = AcceptedContext(
            context_id=pc.context_id,
            abstract_syntax=req.abstract_syntax,
            transfer_syntax=pc.transfer_syntax,
            requestor_is_scu=scu,
            requestor_is_scp=scp,
        )
    return result
