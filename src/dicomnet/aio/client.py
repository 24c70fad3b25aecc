"""The asyncio client: ``async with associate(...) as assoc`` (the association requestor).

PS3.8 7.1 (A-ASSOCIATE) and 7.2 (A-RELEASE) from the requestor's side; the
DIMSE-C operations themselves live in ``dicomnet.services`` and call
``ClientAssociation.request``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import warnings
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from ..config import Limits, Timeouts, check_ae_title
from ..dimse.connection import DatasetFragment, MessageReceived
from ..dimse.messages import MESSAGE_CLASSES, CEchoRQ, CFindRQ, CGetRQ, CMoveRQ, DimseMessage
from ..dimse.status import Status
from ..errors import (
    AssociationAborted,
    AssociationRejected,
    ConfigurationError,
    ConnectError,
    DicomNetError,
    DimseTimeout,
    LocalProtocolError,
    NoAcceptedContext,
    RemoteProtocolError,
)
from ..security.config import TLSConfig
from ..services.verification import VERIFICATION_SOP_CLASS
from ..uids import named_uid
from ..ul.connection import ULConnection
from ..ul.events import (
    Aborted,
    AssociateAccepted,
    AssociateRejected,
    DataReceived,
    ReleaseConfirmed,
    ReleaseRequested,
    ULEvent,
)
from ..ul.items import (
    AsynchronousOperationsWindowSubItem,
    UserIdentityRQSubItem,
)
from ..ul.negotiation import (
    AcceptedContext,
    ContextRequest,
    accepted_contexts,
    async_window,
    build_associate_rq,
    refused_abstract_syntaxes,
    unanswered_contexts,
)
from .association import Association, DatasetSink
from .client_remarks import closed_after_tls13_handshake, warn_tiny_max_length, warn_unanswered
from .indications import MessagesRouted
from .operations import OperationsWindow
from .replies import Abandoned, OneReply, OneReplyDeadlines, Replies, Reply
from .response_context import ResponseContexts
from .transport import SecureLinkHook, Stream, open_stream

__all__ = ["ClientAssociation", "Reply", "associate", "open_association"]

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

log = logging.getLogger("dicomnet.aio")

VERIFICATION = VERIFICATION_SOP_CLASS
#: Explicit and Implicit VR Little Endian (PS3.5 A.2, A.1), as literals: importing
#: pydicom for two UIDs cost every ``dicomnet echo`` ~0.1 s of start-up.
DEFAULT_TRANSFER_SYNTAXES = ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2")
#: The requests answered by pending responses before the last (PS3.7 9.1.2-9.1.4).
_SEVERAL_RESPONSES = frozenset(m.command_field for m in (CFindRQ, CGetRQ, CMoveRQ))
#: The responses that may be Pending, more coming for the same request (PS3.7 9.1.2-9.1.4).
_PENDING_RESPONSES = frozenset(field | 0x8000 for field in _SEVERAL_RESPONSES)
#: Why requests outstanding, or made later, fail once the acceptor has released.
PEER_RELEASED = "the peer released the association (A-RELEASE-RQ)"

def _dimse_fault(message: str) -> RemoteProtocolError:
    """A response that answers nothing of ours: a DIMSE fault in a well-formed PDU,
    aborted by the service-user, source 0, reason 0 (PS3.8 9.3.8, Table 9-26), as
    ``_local_abort`` sends it."""
    return RemoteProtocolError(message, abort_source=0, abort_reason=0)


class ClientAssociation(Association):
    """An established association, requestor side.

    End it with ``release()`` (or ``abort()``), or let ``async with associate()``
    do so. One left open stays open while its event loop runs (its connection
    keeps it alive) until the peer ends it or the idle timeout aborts it
    (``Timeouts.idle``). When its loop ends with it open (``asyncio.run``
    returning cancels its reader task) it is aborted there (A-ABORT, PS3.8 7.3,
    written without waiting) and its connection closed, with a ResourceWarning
    naming the peer, as an unclosed file has. One garbage-collected open (its
    loop closed without cancelling its tasks, which asyncio reports as "Task was
    destroyed but it is pending!") has its connection closed, nothing sent,
    and the same warning."""

    def __init__(self, stream: Stream, ul: ULConnection, timeouts: Timeouts,
                 limits: Limits | None = None) -> None:
        super().__init__(stream, ul, timeouts, limits)
        self._replies: dict[int, Replies | OneReply] = {}
        #: Message IDs of the requests outstanding whose last PDU is not queued yet:
        #: a response to one cannot answer it (``_on_data``).
        self._unsent: set[int] = set()
        #: Requests sent whole whose callers left before the last response: a
        #: response to one is ours, and is dropped.
        self._abandoned_requests = Abandoned(self)
        # A fresh Message ID skips those still ours after the count wraps.
        self.dimse.message_id_in_use = (
            lambda i: i in self._replies or i in self._abandoned_requests.ids)
        # Responses are what a requestor reads; a Storage SCU, one per object.
        self.dimse.store_responses_first = True
        self._released: asyncio.Future[None] = self._loop.create_future()
        self._reader: asyncio.Task[None] | None = None
        #: release() or abort() is stopping the reader task: its cancel is ours.
        self._stopping = False
        #: Requests outstanding at once, whichever sent them (``request``,
        #: ``send_request``): the asynchronous window the peer granted (PS3.7
        #: D.3.3.3.1, 1 without one); made on the first request (``_window``).
        self._invoked: OperationsWindow | None = None
        #: send_request's DIMSE timeouts: one timer.
        self._one_reply_deadlines = OneReplyDeadlines(self)
        #: Abstract syntaxes none of whose proposed contexts the peer accepted, with
        #: its reason (PS3.8 Table 9-18, see ``refused_abstract_syntaxes``).
        self.refused: dict[str, int] = {}
        #: Whether a response on another context than its request's answers it.
        self._response_contexts = ResponseContexts(self)

    # -- contexts ---------------------------------------------------------------

    def context_for(
        self, abstract_syntax: str, transfer_syntax: str | None = None
    ) -> AcceptedContext:
        """An accepted context for this abstract syntax (and transfer syntax, if given)."""
        for ctx in self.contexts.values():
            if ctx.abstract_syntax == abstract_syntax and (
                transfer_syntax is None or ctx.transfer_syntax == transfer_syntax
            ):
                return ctx
        wanted = named_uid(abstract_syntax) + (
            f" in {named_uid(transfer_syntax)}" if transfer_syntax else "")
        raise NoAcceptedContext(f"the peer accepted no presentation context for {wanted}")

    # -- DIMSE ------------------------------------------------------------------

    async def request(
        self,
        message: DimseMessage,
        context_id: int,
        *,
        dataset: bytes | memoryview | None = None,
        chunks: Iterable[bytes] | AsyncIterator[bytes] | None = None,
        pdus: Iterable[bytes | bytearray | memoryview] | None = None,
    ) -> AsyncIterator[Reply]:
        """Send a request and yield its responses (pending ones first) with their
        data sets, ending after the final one (PS3.7 9.1 and 10.1). No more
        requests are outstanding than the peer's window allows (PS3.7 D.3.3.3;
        one without a window): callers beyond it wait their turn. A request whose
        caller leaves before its final response keeps its place until that
        response comes (see ``replies.Abandoned``); a C-FIND, C-GET or C-MOVE
        is cancelled then (C-CANCEL-RQ, PS3.7 9.1.2.1), so that it comes soon."""
        self._check_loop()
        message_id = message.message_id  # type: ignore[union-attr]
        # Any other request's first response is its last, whatever its status says
        # (a Pending from a faulty peer: waiting on would end in the DIMSE timeout).
        several = message.command_field in _SEVERAL_RESPONSES
        window = self._window()
        # Concurrent callers beyond the window wait here, before anything is sent.
        await window.take()
        queue = Replies(context_id, several, message.command_field)
        try:
            self._check_unused(message_id)  # PS3.7 9.1.1.1: unique among those outstanding
        except LocalProtocolError:
            window.release()
            raise
        self._replies[message_id] = queue
        self._unsent.add(message_id)
        answered = False
        try:
            await self.send_message(message, context_id, dataset=dataset, chunks=chunks,
                                    pdus=pdus)
            while True:
                try:
                    item = await queue.get(self._loop, self.timeouts.dimse)
                except TimeoutError as exc:
                    timed_out = self._timed_out(message_id)
                    await self.stream.close()
                    raise timed_out from exc
                if isinstance(item, BaseException):
                    raise item
                status = getattr(item[0], "status", 0)
                answered = not (several and Status(status).is_pending)
                yield item
                if answered:
                    return
        finally:
            if self._replies.get(message_id) is queue:
                del self._replies[message_id]
            # Its caller left before the last response came: the peer may still
            # be performing it, so it keeps its slot (``Abandoned``).
            held = not queue.answered and self._abandon(message_id, queue)
            self._unsent.discard(message_id)
            if not held:
                window.release()

    async def send_request(
        self,
        message: DimseMessage,
        context_id: int,
        on_reply: Callable[[Reply | BaseException], None],
        *,
        dataset: bytes | memoryview | None = None,
        pdus: Iterable[bytes | bytearray | memoryview] | None = None,
    ) -> None:
        """Send a request answered by one response (C-STORE, C-ECHO, the N-services)
        and return once it is sent; ``on_reply`` gets that response with its data
        set, or the error that ended the wait (the association failed, or no
        response came within the DIMSE timeout), once, on the event loop. No task
        waits for it. It takes a slot of the same window as ``request`` (PS3.7
        D.3.3.3), without waiting while one is free, until its response; with
        none free it waits for one. Cancelled once its request went out whole,
        it keeps its slot until the peer answers (``replies.Abandoned``)."""
        # The two checks' usual answers looked at here: a call each fewer per request.
        if asyncio.get_running_loop() is not self._loop:
            self._check_loop()
        message_id = message.message_id  # type: ignore[union-attr]
        if message_id in self._replies or message_id in self._abandoned_requests.ids:
            self._check_unused(message_id)
        window = self._invoked or self._window()
        if not window.try_take():
            await window.take()
            try:
                self._check_unused(message_id)  # taken by another meanwhile?
            except LocalProtocolError:
                window.release()
                raise
        reply = OneReply(self, message_id, context_id, on_reply, message.command_field)
        self._replies[message_id] = reply
        self._unsent.add(message_id)
        try:
            await self.send_message(message, context_id, dataset=dataset, pdus=pdus)
        except BaseException:
            if self._replies.get(message_id) is reply:
                del self._replies[message_id]
            if reply.callback is not None:  # the caller hears of it from this exception
                reply.callback = None
                if not self._abandon(message_id, reply):
                    window.release()
            self._unsent.discard(message_id)
            raise
        if reply.callback is not None and (dimse := self.timeouts.dimse) is not None:
            # Sent as its last flush ended (_flush_data): the time taken then.
            self._one_reply_deadlines.start(reply, dimse, self._last_tx)

    def _roles_known(self) -> None:
        """After the A-ASSOCIATE-AC (``contexts`` set): a C-GET SCU, the SCP of a
        context by role selection (PS3.7 D.3.3.4), is sent C-STORE-RQs on it, one
        per object it gets (PS3.7 9.1.3: C-STORE sub-operations), so each command set
        it reads is tried as one first (``decode_store_rq``), after a response."""
        self.dimse.store_requests_first = any(
            c.requestor_is_scp for c in self.contexts.values())

    def _check_loop(self) -> None:
        """Refuse a call from another event loop than the association's (a plain
        server handler's worker thread running ``asyncio.run``): asyncio would
        fail it midway with a bare RuntimeError, its state touched from the wrong
        thread."""
        if asyncio.get_running_loop() is not self._loop:
            raise LocalProtocolError(
                f"the association with {self._name()} runs on another event loop "
                "(another thread's): from a worker thread, submit the call to its "
                "loop (asyncio.run_coroutine_threadsafe(assoc.store(ds), loop).result()), "
                "or open a dicomnet.blocking association, which threads may share")

    def _window(self) -> OperationsWindow:
        window = self._invoked
        if window is None:
            window = self._invoked = OperationsWindow(max(1, self.async_window))
        return window

    def _check_unused(self, message_id: int) -> None:
        """Refuse ``message_id`` while a request of ours holds it (PS3.7 9.1.1.1)."""
        if message_id in self._replies:
            raise LocalProtocolError(f"message ID {message_id} is already outstanding")
        if message_id in self._abandoned_requests.ids:
            self._abandoned_requests.reuse(message_id)

    def _sent_whole(self, message: DimseMessage) -> None:
        self._unsent.discard(message.message_id)  # type: ignore[union-attr]

    def _abandon(self, message_id: int, held: Replies | OneReply | None = None) -> bool:
        """Our caller left before the last response to ``message_id``. Sent whole,
        the request is the peer's to answer still: its responses will be dropped
        (``_on_data``), and ``held`` (its ``Replies`` or ``OneReply``) keeps its
        slot of the window meanwhile; True then. Cut short, it cannot be answered
        (the association is aborted: ``send_message``); nor once the association
        is over."""
        if message_id in self._unsent or self.failure is not None or self._closed.is_set():
            return False
        self._abandoned_requests.add(message_id, held)
        return held is not None

    def _timed_out(self, message_id: int) -> DimseTimeout | AssociationAborted:
        """No response to ``message_id`` within the DIMSE timeout: A-ABORT the
        association (PS3.8 7.3, source service-user) and start closing, as DCMTK's
        SCUs and pynetdicom do. The peer's state is unknown, and its late
        response would otherwise be taken for the answer to a later request
        reusing the Message ID (PS3.7 9.1.1.1 needs it unique among those
        outstanding only). Returns the error for the request; later ones hear
        ``AssociationAborted``, and so do the other requests outstanding (or
        this one, when the association had failed already)."""
        if self.failure is not None:
            return self.failure  # its reader task has not told the requests yet
        detail = (f"no response to message {message_id} within {self.timeouts.dimse}s "
                  "(DIMSE timeout)")
        log.info("%s: aborting: %s", self._name(), detail)
        with contextlib.suppress(LocalProtocolError):
            self.ul.abort(self._loop.time())
        self._fail(AssociationAborted(0, 0, detail, by="us"))
        with contextlib.suppress(ConnectionError, OSError):
            self._queue_out()
        self.stream.close_soon()
        self._wake()  # the reader task ends the association
        return DimseTimeout(f"{detail}; aborted by us (A-ABORT sent)")

    async def request_one(
        self,
        message: DimseMessage,
        context_id: int,
        *,
        dataset: bytes | memoryview | None = None,
        chunks: Iterable[bytes] | AsyncIterator[bytes] | None = None,
        pdus: Iterable[bytes | bytearray | memoryview] | None = None,
    ) -> Reply:
        """Send a request and return its single (final) response (for ``dataset``,
        ``chunks`` and ``pdus`` see :meth:`Association.send_message`)."""
        last: Reply | None = None
        async for reply in self.request(message, context_id, dataset=dataset, chunks=chunks,
                                        pdus=pdus):
            last = reply
        assert last is not None
        return last

    async def echo(self) -> Status:
        """C-ECHO (PS3.7 9.1.5): the Verification service's status."""
        ctx = self.context_for(VERIFICATION)
        rq = CEchoRQ(message_id=self.dimse.next_message_id())
        rsp, _ = await self.request_one(rq, ctx.context_id)
        return Status(getattr(rsp, "status", 0), "echo")

    async def store(self, dataset: Dataset) -> Status:
        """C-STORE (PS3.4 B.2.2) of a pydicom ``Dataset`` held in memory, encoded in
        a transfer syntax the peer accepted for its SOP Class (its own when it has
        one, which compressed Pixel Data needs); the response's status, warnings
        included. Propose a context for the SOP Class when associating. Files go
        with ``dicomnet.store_paths``, which sends them as they are on disk. See
        ``dicomnet.services.store_dataset``."""
        from ..services.store_dataset import store_dataset  # pydicom only when used

        return await store_dataset(self, dataset)

    # -- the reader task ----------------------------------------------------------

    def _start(self) -> None:
        self._reader = asyncio.get_running_loop().create_task(self._reader_loop())
        # Destroyed while pending, it was left to a loop closed without cancelling
        # it: __del__ warns then (ResourceWarning, naming the peer), so asyncio's
        # "Task was destroyed but it is pending!" error log, which even scripts
        # with warnings off print, would only repeat it. Set now: that task may be
        # collected before this object (no order among a cycle's finalizers). No
        # public way to say so; both Task implementations have the flag.
        with contextlib.suppress(AttributeError):
            self._reader._log_destroy_pending = False  # type: ignore[attr-defined]

    async def _reader_loop(self) -> None:
        try:
            while self.failure is None and not self._released.done():
                events = await self._read_events()
                for event in events:
                    if isinstance(event, DataReceived):
                        self._on_data(event)
                    elif isinstance(event, ReleaseConfirmed):
                        if not self._released.done():
                            self._released.set_result(None)
                    elif isinstance(event, ReleaseRequested):
                        if not event.collision:
                            # The acceptor released (PS3.8 7.2.2 lets either side).
                            # Having asked, it sends no more P-DATA: no request
                            # outstanding will be answered, none more may be sent;
                            # each says so, and may be tried again elsewhere.
                            self._fail(AssociationAborted(None, None, PEER_RELEASED, by="peer"))
                        self.ul.release_response(self._loop.time())
                        await self._flush()
                if self.failure is not None or self.ul.state.name == "Sta1":
                    break
        except RemoteProtocolError as exc:
            self._local_abort(f"invalid DIMSE data from peer: {exc}", exc)
            if not self.stream.receiver.writing_paused:  # else its drain would never end
                with contextlib.suppress(Exception):
                    await self._flush()
        except asyncio.CancelledError:
            if not self._stopping:
                self._abandoned()
            raise
        except Exception as exc:  # a bug must not hang the user's awaits
            log.exception("reader of %s failed", self._name())
            # Ours, not the peer's: A-ABORT (PS3.8 7.3) rather than a bare close.
            self._local_abort(f"internal error: {exc}")  # (its traceback: logged above)
            if not self.stream.receiver.writing_paused:  # else its drain would never end
                with contextlib.suppress(Exception):
                    await self._flush()
        finally:
            error: BaseException = self.failure or AssociationAborted(
                None, None, "the connection closed"
            )
            for queue in list(self._replies.values()):
                queue.put(error)
            self._abandoned_requests.end()  # those waiting for a slot then hear the error
            self._one_reply_deadlines.stop()
            if not self._released.done():
                self._released.set_exception(error)
                self._released.exception()  # retrieved here; release() re-raises it
            self.stop_timers()
            if self.failure is not None and self.stream.receiver.writing_paused:
                # A send waits for a peer that reads nothing (it wrote instead: an
                # invalid message, say), and its timer just stopped: cut the
                # connection under it, which ends that wait with the failure. The
                # A-ABORT could not pass what is queued before it anyway.
                with contextlib.suppress(ConnectionError, OSError):
                    self._queue_out()
                self.stream.close_soon(grace=0)
            self._closed.set()

    def _may_coalesce(self) -> bool:
        # With one request outstanding (a synchronous peer, or one caller) nothing
        # else will be sent before its response: write it now, a loop turn sooner.
        return len(self._replies) > 1

    def _handle_now(self, events: list[ULEvent]) -> list[ULEvent | MessagesRouted]:
        """Responses go to their requests from the read callback itself, not
        through the reader task: a synchronous sender's next request then leaves
        one turn of the event loop sooner. Only the data received before any
        other event is taken here (the rest keeps its order in the inbox), so
        the responses that came before an A-ABORT still reach their requests;
        an invalid message aborts the association as the reader task would."""
        for index, event in enumerate(events):
            if not isinstance(event, DataReceived):
                if self.failure is not None:
                    self._wake()  # the reader task ends the association
                return list(events[index:])
            try:
                self._on_data(event)
            except RemoteProtocolError as exc:
                self._local_abort(f"invalid DIMSE data from peer: {exc}", exc)
                self._wake()
                return []
            except Exception as exc:  # a bug must not hang the user's awaits
                log.exception("reader of %s failed", self._name())
                self._local_abort(f"internal error: {exc}")  # ours: A-ABORT
                self._wake()
                return []
        if self.failure is not None:
            self._wake()
        return []

    def route(
        self, item: MessageReceived | DatasetFragment
    ) -> tuple[int, DimseMessage, DatasetSink | None] | None:
        if (self.failure is not None and isinstance(item, MessageReceived)
                and not item.message.has_dataset):
            # Read before the association failed (an A-ABORT in the same read, or
            # behind it): the peer did answer, and the request hears so.
            return (item.context_id, item.message, None)
        return super().route(item)

    def _on_data(self, event: DataReceived) -> None:
        # dimse_events' loops, written out: no generator's two calls per PDV.
        receive_pdv = self.dimse.receive_pdv
        for pdv in event.pdu.pdvs:
            for item in receive_pdv(pdv, pdv.continues):
                done = self.route(item)
                if done is None:
                    continue
                context_id, message, sink = done
                responded = getattr(message, "message_id_being_responded_to", None)
                if responded in self._unsent:
                    # PS3.7 9.1: a response answers the whole request, which the peer
                    # cannot have read yet; taken, a Success said that an object the
                    # peer never read was stored.
                    raise _dimse_fault(
                        f"{type(message).__name__} to message {responded} came before that "
                        "request was sent whole: no answer to it (PS3.7 9.1)")
                if responded is None:  # a request from the peer: we offer no SCP role here
                    log.warning("%s: unsolicited %s ignored", self._name(), type(message).__name__)
                    continue
                queue = self._replies.get(responded)
                if queue is None:
                    self._unanswerable(message, responded)
                    continue
                data = bytes(sink.data) if sink is not None and hasattr(sink, "data") else None
                if context_id != queue.context_id and (why := self._response_contexts.fault(
                        context_id, queue.context_id, message, responded)) is not None:
                    raise _dimse_fault(why)  # not a twin of its request's context
                if message.command_field != queue.request_field | 0x8000:
                    # Its status is another operation's: taken, a C-ECHO-RSP's Success
                    # said that an object was stored.
                    raise _dimse_fault(
                        f"{type(message).__name__} to message {responded}, a "
                        f"{MESSAGE_CLASSES[queue.request_field].__name__}: a response is its "
                        "request's operation (PS3.7 9.1, 9.3)")
                if isinstance(queue, Replies):
                    if queue.answered:
                        self._unanswerable(message, responded)
                        continue
                    queue.answered = not (queue.several and Status(
                        getattr(message, "status", 0)).is_pending)
                queue.put((message, data))

    def _unanswerable(self, message: DimseMessage, responded: int) -> None:
        """A response to ``responded``, which is not outstanding. One to a request
        our caller abandoned is dropped (the last one ends that record). Any
        other answers nothing of ours, never sent or answered already (a
        duplicate): a response names the request it answers (PS3.7 9.1), so the
        peer is in error, and what it meant to answer cannot be told. Raised
        (the association is aborted, PS3.8 7.3, and every request outstanding
        fails at once) rather than left for the DIMSE timeout, as DCMTK does."""
        name = type(message).__name__
        if responded in self._abandoned_requests.ids:
            self._abandoned_requests.answered(responded, not (
                message.command_field in _PENDING_RESPONSES
                and Status(getattr(message, "status", 0)).is_pending))
            log.debug("%s: %s to message %d, whose caller abandoned it, ignored",
                      self._name(), name, responded)
            return
        if self.failure is not None:
            return  # read with the A-ABORT or behind our own: nothing more to say
        outstanding = ", ".join(str(i) for i, q in sorted(self._replies.items())
                                if not getattr(q, "answered", False)) or "none"
        raise _dimse_fault(
            f"{name} to message {responded}, which is not outstanding (outstanding: "
            f"{outstanding}): never sent, or answered already (PS3.7 9.1)")

    # -- release -------------------------------------------------------------------

    async def release(self) -> None:
        """A-RELEASE (PS3.8 7.2): ends the association in order and closes the connection."""
        if self.failure is not None or not self.ul.is_established:
            await self.stream.close()
            return
        self.ul.release()
        await self._flush()
        try:
            async with asyncio.timeout(self.timeouts.acse):
                await asyncio.shield(self._released)
        except TimeoutError:
            log.info("%s: no A-RELEASE-RP within %ss; aborting", self._name(), self.timeouts.acse)
            await self.abort()
        except AssociationAborted as exc:
            # The peer ended it instead of answering (a closed connection is Evt17
            # in Sta7, AA-4; or an A-ABORT): what it answered before stands.
            log.info("%s: no A-RELEASE-RP, %s", self._name(), exc)
        else:
            # Released in order: its TLS session may be resumed by the next association.
            self.stream.keep_session()
        finally:
            try:
                await self._stop_reader()
            finally:  # a cancel of ours goes on up from _stop_reader: close all the same
                await self.stream.close()

    def _abandoned(self) -> None:
        """The reader task cancelled by another than ``release``/``abort``: its
        event loop ending (``asyncio.run`` cancels what is left) with the
        association open. Nothing can read it any more: A-ABORT it (PS3.8 7.3)
        without waiting for the write, close the connection, and warn."""
        if self.stream.writer.is_closing():
            return
        if self.ul.state.name not in ("Sta1", "Sta13"):
            self._local_abort("not released, its event loop ending (its reader task "
                              "was cancelled)")
            with contextlib.suppress(DicomNetError, OSError):
                self._queue_out()
        self.stream.close_soon(grace=0)
        warnings.warn(f"association with {self.peer[0]}:{self.peer[1]} was not released: "
                      "aborted", ResourceWarning, stacklevel=1)

    def __del__(self) -> None:
        # Open as it is collected: its loop closed without cancelling its reader.
        # A close only (no I/O from a finalizer), said as an unclosed file says it.
        stream: Stream | None = getattr(self, "stream", None)
        if stream is None or stream.writer.transport.is_closing():
            return
        transport = stream.writer.transport
        try:
            transport.abort()
        except RuntimeError:  # asyncio's, its loop closed: the descriptor goes with it
            with contextlib.suppress(OSError, AttributeError):
                transport.get_extra_info("socket").shutdown(socket.SHUT_RDWR)
        warnings.warn(f"association with {self.peer[0]}:{self.peer[1]} was not released: "
                      "closed", ResourceWarning, stacklevel=1, source=self)

    async def _stop_reader(self) -> None:
        self._stopping = True
        task = self._reader
        if task is not None and not task.done():
            # asyncio.timeout, not wait_for: in 3.11 wait_for can drop a cancel of
            # ours that comes as the reader ends (a Ctrl-C ignored).
            try:
                async with asyncio.timeout(1.0):
                    await asyncio.shield(task)
            except (TimeoutError, asyncio.CancelledError):
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    # Our caller is being cancelled (before or while the reader was
                    # stopped), not only the reader: the cancel goes on up.
                    raise asyncio.CancelledError from None

    async def abort(self) -> None:
        await super().abort()
        await self._stop_reader()


@contextlib.asynccontextmanager
async def associate(
    host: str,
    port: int,
    *,
    contexts: Sequence[ContextRequest] | None = None,
    calling_ae_title: str = "DICOMNET",
    called_ae_title: str = "ANY-SCP",
    tls: TLSConfig | None = None,
    timeouts: Timeouts | None = None,
    limits: Limits | None = None,
    user_identity: UserIdentityRQSubItem | None = None,
    on_secure_link_ready: SecureLinkHook | None = None,
    max_async_operations: int = 1,
) -> AsyncIterator[ClientAssociation]:
    """Open an association; release it when the block ends (abort it on an exception).

    ``tls=None`` is plain DICOM; a ``TLSConfig`` makes every byte go over TLS
    (PS3.15 Annex B, the profile ``tls.profile`` names: BCP 195 RFC 8996/9325,
    B.12, by default), verifying the server's certificate and host name by default.
    ``contexts`` defaults to Verification in Explicit and Implicit VR Little Endian.
    ``max_async_operations`` > 1 proposes an asynchronous operations window
    (PS3.7 D.3.3.3); ``assoc.async_window`` says what the peer granted (1 when it
    did not answer: most peers are synchronous).
    ``on_secure_link_ready`` (sync or async) is shown the secure link once its
    handshake is done, before any DICOM byte goes (the brief's OnSecureLinkReady);
    what it raises closes the connection, nothing sent, and reaches the caller as
    it is: a veto (a certificate it does not want, say).

    Raises ConnectError, TLSError, TimeoutError, AssociationRejected or
    AssociationAborted when the association cannot be set up.
    """
    assoc = await open_association(
        host, port, contexts=contexts, calling_ae_title=calling_ae_title,
        called_ae_title=called_ae_title, tls=tls, timeouts=timeouts, limits=limits,
        user_identity=user_identity, on_secure_link_ready=on_secure_link_ready,
        max_async_operations=max_async_operations,
    )
    try:
        yield assoc
    except BaseException:
        await assoc.abort()
        raise
    else:
        await assoc.release()


async def open_association(
    host: str,
    port: int,
    *,
    contexts: Sequence[ContextRequest] | None = None,
    calling_ae_title: str = "DICOMNET",
    called_ae_title: str = "ANY-SCP",
    tls: TLSConfig | None = None,
    timeouts: Timeouts | None = None,
    limits: Limits | None = None,
    user_identity: UserIdentityRQSubItem | None = None,
    on_secure_link_ready: SecureLinkHook | None = None,
    max_async_operations: int = 1,
) -> ClientAssociation:
    """Like ``associate`` but returns the open association; the caller releases it
    (one left open: see ``ClientAssociation``)."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ConfigurationError(f"port must be 1 to 65535, got {port!r}")
    timeouts = timeouts or Timeouts()
    limits = limits or Limits()
    calling = check_ae_title(calling_ae_title, "calling AE title")
    called = check_ae_title(called_ae_title, "called AE title")
    if contexts is None:
        contexts = [ContextRequest(VERIFICATION, DEFAULT_TRANSFER_SYNTAXES)]
    rq = build_associate_rq(
        calling_ae_title=calling, called_ae_title=called, contexts=contexts,
        max_pdu_length=limits.max_pdu_length, user_identity=user_identity,
        async_ops=AsynchronousOperationsWindowSubItem(max_async_operations, 1)
        if max_async_operations != 1 else None,
    )
    # One context per TLSConfig: its files read (and the key's password asked) once,
    # and its sessions resumable by the next association.
    context = await tls.shared_client_context() if tls is not None else None
    stream = await open_stream(
        host, port, tls=tls, context=context, connect_timeout=timeouts.connect,
        handshake_timeout=timeouts.tls_handshake, on_secure_link_ready=on_secure_link_ready,
    )
    ul = ULConnection("requestor", artim_timeout=timeouts.artim,
                      max_associate_length=limits.max_associate_length)
    assoc = ClientAssociation(stream, ul, timeouts, limits)
    try:
        await _establish(assoc, rq, tls_used=tls is not None,
                         sent_certificate=tls is not None and tls.certfile is not None)
    except BaseException:
        await stream.close()
        raise
    assoc._start()
    return assoc


async def _establish(assoc: ClientAssociation, rq: object, *, tls_used: bool,
                     sent_certificate: bool = False) -> None:
    loop = asyncio.get_running_loop()
    ul = assoc.ul
    ul.associate(rq)  # type: ignore[arg-type]
    ul.transport_connected(loop.time())
    assoc.start_receiving()
    await assoc._flush()
    deadline = loop.time() + assoc.timeouts.acse
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise AssociationAborted(
                None, None, f"no A-ASSOCIATE-AC/RJ within {assoc.timeouts.acse}s (ACSE timeout)",
                by="us")
        try:
            async with asyncio.timeout(remaining):
                events = await assoc._read_events()
        except TimeoutError:
            continue
        for event in events:
            if isinstance(event, AssociateAccepted):
                assert ul.associate_rq is not None
                assoc.contexts = accepted_contexts(ul.associate_rq, event.pdu)
                assoc.refused = refused_abstract_syntaxes(ul.associate_rq, event.pdu)
                assoc.async_window = async_window(ul.associate_rq, event.pdu)
                assoc._roles_known()
                warn_unanswered(assoc, unanswered_contexts(ul.associate_rq, event.pdu))
                warn_tiny_max_length(assoc)
                log.info(
                    "associated with %s:%s (%d of %d contexts accepted%s)",
                    *assoc.peer, len(assoc.contexts), len(ul.associate_rq.presentation_contexts),
                    f", {assoc.security.protocol} {assoc.security.cipher_suite}"
                    + (", TLS session resumed" if assoc.security.session_resumed else "")
                    if assoc.security else "",
                )
                return
            if isinstance(event, AssociateRejected):
                # An orderly answer after a verified handshake (a TLS 1.3 ticket comes
                # before it): a busy peer's retry (``retries``) resumes the session.
                assoc.stream.keep_session()
                raise AssociationRejected(event.pdu.result, event.pdu.source, event.pdu.reason)
            if isinstance(event, Aborted):
                refused = closed_after_tls13_handshake(assoc, event, sent_certificate)
                if refused is not None:
                    raise refused
                if assoc.tls_error is not None:
                    raise assoc.tls_error
                detail = event.detail
                if event.source is None and not tls_used:
                    detail += (" before answering the A-ASSOCIATE-RQ: the peer may expect TLS"
                               " (use TLS, port 2762)")
                elif event.source is None:
                    detail += " before answering the A-ASSOCIATE-RQ"
                raise AssociationAborted(event.source, event.reason, detail,
                                         by=event.by)
        if ul.state.name == "Sta1":
            raise ConnectError("the connection closed during association set-up")
