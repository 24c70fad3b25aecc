"""What an accepting association does with the DIMSE requests it received whole
(PS3.7 9.1, 10.1): each goes to the service provider registered for its
command, is refused when none is (0211H) or when its Message ID is held by an
operation in progress (0210H, PS3.7 9.1.1.1.1), and is performed in order, or
concurrently within the asynchronous operations window (PS3.7 D.3.3.3), its
responses sent as they come. ``aio.server.Server`` takes these methods.
"""

from __future__ import annotations

import asyncio
import logging

from ..dimse.messages import CStoreRQ, DimseMessage, operation_name, refusal
from ..errors import RemoteProtocolError
from .association import DatasetSink
from .operations import DUPLICATE_INVOCATION, DuplicateInvocation
from .server_association import ServerAssociation, ServiceProvider

__all__ = ["UNRECOGNIZED_OPERATION", "RequestDispatch"]

log = logging.getLogger("dicomnet.aio")

#: PS3.7 Annex C: the operation is not performed by this SCP for this SOP Class.
UNRECOGNIZED_OPERATION = 0x0211


class RequestDispatch:
    """The server's part that performs requests (see the module docstring)."""

    #: The provider of each DIMSE command (the server's, by command field).
    _providers: dict[int, ServiceProvider]

    async def _on_messages(
        self, assoc: ServerAssociation,
        messages: list[tuple[int, DimseMessage, DatasetSink | None]],
    ) -> None:
        """Perform the messages received whole (command and data set), in order."""
        for context_id, message, sink in messages:
            assoc.messages += 1
            assoc.objects += isinstance(message, CStoreRQ)
            if context_id not in assoc.contexts:
                # A DIMSE fault in a well-formed PDU: the service-user's A-ABORT,
                # source 0, reason 0 (PS3.8 9.3.8, Table 9-26), as _local_abort sends.
                raise RemoteProtocolError(
                    f"message on presentation context {context_id}, which was not accepted",
                    abort_source=0, abort_reason=0,
                )
            if isinstance(sink, DuplicateInvocation):
                # PS3.7 9.1.1.1.1: the ID of an operation still outstanding; not
                # performed (the first one is), answered so that the peer learns why.
                message_id = getattr(message, "message_id", 0)
                log.warning("%s@%s:%s sent a %s-RQ with Message ID %d, which an operation "
                            "in progress holds: not performed, refused (0210H)",
                            assoc.calling_ae_title, *assoc.peer, operation_name(message),
                            message_id)
                await self._refuse(assoc, context_id, message, DUPLICATE_INVOCATION,
                                   f"Message ID {message_id} is in use")
                continue
            provider = self._providers.get(message.command_field)
            if provider is None:
                # Answered, so that the peer does not wait for its DIMSE timeout.
                assoc.message_ids.release(message)  # before the answer, as in _perform
                answered = await self._refuse(assoc, context_id, message, UNRECOGNIZED_OPERATION,
                                              f"{operation_name(message)} is not performed here")
                if not answered:  # a C-CANCEL-RQ, a stray response: owed no answer,
                    assoc.messages -= 1  # so not counted as a request left unanswered
                log.warning("%s:%s sent %s, which no service here handles%s", *assoc.peer,
                            type(message).__name__, ": refused (0211H)" if answered else "")
                continue
            # The window bounds how many operations run at once (PS3.7 D.3.3.3).
            start = getattr(provider, "start", None)
            if start is not None:
                await assoc.operations.take()
                try:
                    taken = start(assoc, context_id, message, sink,
                                  assoc.answer_for(context_id, message))
                except BaseException:
                    assoc.operations.release()
                    raise
                if taken:
                    assoc.unclaimed_sinks.discard(sink)
                    # Its answer comes later, never from start itself.
                    assoc.owe_answer(message, asyncio.get_running_loop().time())
                    continue
                assoc.operations.release()
            if assoc.async_window <= 1:
                # Performed before the next request is read, cancelled should the
                # association end meanwhile (a slow handler must not hold its slot).
                await assoc.perform_inline(
                    self._perform(assoc, provider, context_id, message, sink))
                continue
            # Asynchronous operations: go on reading the next request while this one
            # is performed.
            await assoc.operations.take()
            if assoc.failure is not None:
                # Ended while this one waited for a slot (the others cancelled then):
                # not performed, nobody to answer.
                assoc.operations.release()
                raise assoc.failure
            task = asyncio.get_running_loop().create_task(
                self._perform(assoc, provider, context_id, message, sink))
            assoc.running.add(task)
            task.add_done_callback(assoc.operation_done)

    async def _perform(self, assoc: ServerAssociation, provider: ServiceProvider,
                       context_id: int, message: DimseMessage,
                       sink: DatasetSink | None) -> None:
        """Perform one request and send its responses."""
        # The provider owns the data set from here (a task cancelled before this
        # line leaves it to abort_unclaimed_sinks).
        assoc.unclaimed_sinks.discard(sink)
        held = True
        try:
            performing = assoc.operation_started(message, provider)
            try:
                responses = await provider.handle(assoc, context_id, message, sink)
            finally:
                assoc.operation_ended(performing)
            last = len(responses) - 1
            for index, (response, dataset) in enumerate(responses):
                if index == last:
                    # Free before the final response goes: a peer sending one request
                    # at a time may reuse the ID as soon as it reads it, while this
                    # task still waits for the wire (PS3.7 9.1.1.1.1); the ID is
                    # then that request's, not to be freed again below.
                    assoc.message_ids.release(message)
                    held = False
                assoc.answers.count(response)
                await assoc.send_message(response, context_id, dataset=dataset)
        finally:
            if held:
                assoc.message_ids.release(message)

    @staticmethod
    async def _refuse(assoc: ServerAssociation, context_id: int, message: DimseMessage,
                      status: int, comment: str) -> bool:
        """Answer a request that is not performed with ``status`` (PS3.7 Annex C);
        False, answering nothing, for a message that is no request or a
        C-CANCEL-RQ (never answered)."""
        rsp = refusal(message, status, comment)
        if rsp is not None:
            assoc.answers.count(rsp)
            await assoc.send_message(rsp, context_id)
        return rsp is not None
