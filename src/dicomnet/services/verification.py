"""The Verification service (PS3.4 Annex A): C-ECHO SCP."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from ..dimse.messages import CEchoRQ, CEchoRSP, DimseMessage, refusal
from ..dimse.status import CANCEL, PENDING, PENDING_WARNING, SUCCESS, Status
from .workers import call_handler

if TYPE_CHECKING:
    from ..aio.association import DatasetSink
    from ..aio.server_association import Response, ServerAssociation

__all__ = ["VERIFICATION_SOP_CLASS", "VerificationSCP"]

log = logging.getLogger("dicomnet.services")

VERIFICATION_SOP_CLASS = "1.2.840.10008.1.1"
_UNCOMPRESSED = ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2")
#: Processing failure (PS3.7 C.5): what a C-ECHO gets when ``on_c_echo`` raised.
PROCESSING_FAILURE = 0x0110
#: Refused: SOP Class not supported (PS3.7 9.1.5.1.4): a C-ECHO that is no verification.
SOP_CLASS_NOT_SUPPORTED = 0x0122

EchoHook = Callable[["ServerAssociation"], int | None | Awaitable[int | None]]


class VerificationSCP:
    """Answers C-ECHO-RQ with Success, or with what ``on_c_echo`` returns (PS3.7 9.1.5).

    ``on_c_echo`` may be a coroutine function (run on the event loop: it must
    not block) or a plain one (run in a worker thread: it may block, holding its
    own association only). An ``on_c_echo`` that raises is logged with its
    traceback and the C-ECHO answered 0110H (Processing failure); the
    association goes on (it was aborted). So is one that returns what is not a
    status (0 to FFFFH, a ``Status``, or None for Success) or one no
    C-ECHO-RSP carries (Pending, Cancel). A C-ECHO-RQ that is no verification
    (sent on a context negotiated for another SOP Class, or naming one) is
    answered 0122H and logged: see :meth:`handle`."""

    command_fields = frozenset({CEchoRQ.command_field})

    def __init__(self, on_c_echo: EchoHook | None = None) -> None:
        self.on_c_echo = on_c_echo
        self.contexts: Mapping[str, Sequence[str] | None] = {
            VERIFICATION_SOP_CLASS: _UNCOMPRESSED
        }

    def open_sink(self, assoc: ServerAssociation, context_id: int,
                  message: DimseMessage) -> DatasetSink | None:
        """None: a C-ECHO has no data set."""
        return None

    async def handle(self, assoc: ServerAssociation, context_id: int, message: DimseMessage,
                     sink: DatasetSink | None) -> Sequence[Response]:
        """Answer a C-ECHO-RQ (PS3.7 9.1.5): Success, or the status ``on_c_echo``
        returned. The Verification SOP Class is negotiated on a presentation
        context of its own (PS3.4 A.4, A.5) and a C-ECHO-RQ names it (PS3.7
        9.1.5.1.2): one that names another, or comes on another SOP Class's
        context, verifies nothing and is refused 0122H, SOP Class not supported
        (PS3.7 9.1.5.1.4), ``on_c_echo`` not called."""
        assert isinstance(message, CEchoRQ)
        ctx = assoc.contexts.get(context_id)
        context_syntax = ctx.abstract_syntax if ctx is not None else "?"
        uid = message.affected_sop_class_uid
        if uid != VERIFICATION_SOP_CLASS or context_syntax != VERIFICATION_SOP_CLASS:
            # The peer's bytes: quoted unless plain text, so that a line break in
            # them cannot forge a log line.
            log.warning("C-ECHO from %s@%s:%s for SOP Class %s on presentation context %d "
                        "(%s): refused (0122H), not a verification", assoc.calling_ae_title,
                        *assoc.peer[:2], uid if uid.isprintable() else repr(uid), context_id,
                        context_syntax)
            rsp = refusal(message, SOP_CLASS_NOT_SUPPORTED,
                          "C-ECHO is for the Verification SOP Class on its own context")
            assert rsp is not None
            return [(rsp, None)]
        status = 0x0000
        if self.on_c_echo is not None:
            status = await _run_echo_hook(self.on_c_echo, assoc)
        rsp = CEchoRSP(message_id_being_responded_to=message.message_id, status=status,
                       affected_sop_class_uid=VERIFICATION_SOP_CLASS)
        return [(rsp, None)]


#: Statuses of PS3.7 Annex C that no C-ECHO-RSP carries: a C-ECHO has one
#: response and no C-CANCEL (PS3.7 9.1.5, 9.3.5.2).
_NOT_AN_ECHO_STATUS = {PENDING: "Pending", PENDING_WARNING: "Pending", CANCEL: "Cancel"}


async def _run_echo_hook(hook: EchoHook, assoc: ServerAssociation) -> int:
    """What ``on_c_echo`` answers: its status (Success for None), or Processing
    Failure (0110H), logged, when it raises or returns what a C-ECHO-RSP cannot
    carry. Its answer was sent as it came: a status out of 0 to FFFFH (or True)
    failed to encode, and the association was aborted as an internal error; a
    Pending went out as the final response; anything else that is no int (a
    ``(status, comment)`` pair, as ``on_c_store`` may return) became Success."""
    try:
        result = await call_handler(hook, assoc)
    except Exception:
        log.exception("C-ECHO: the on_c_echo handler failed")
        return PROCESSING_FAILURE
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is None or task.cancelling():
            raise  # the operation's own: its association ended, nobody to answer
        # The handler's own (raised, or from a future another task cancelled).
        log.exception("C-ECHO: the on_c_echo handler failed")
        return PROCESSING_FAILURE
    if result is None:
        return SUCCESS
    if isinstance(result, Status):
        result = result.code
    if isinstance(result, int) and not isinstance(result, bool) and 0 <= result <= 0xFFFF:
        if result not in _NOT_AN_ECHO_STATUS:
            return int(result)
        log.error("C-ECHO: the on_c_echo handler returned %s (0x%04X), which a C-ECHO-RSP "
                  "cannot carry (PS3.7 9.1.5: one response, no C-CANCEL)",
                  _NOT_AN_ECHO_STATUS[result], result)
        return PROCESSING_FAILURE
    log.error("C-ECHO: the on_c_echo handler returned %r, not a status (0 to 0xFFFF)",
              result)
    return PROCESSING_FAILURE
