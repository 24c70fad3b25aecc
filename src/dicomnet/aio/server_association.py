"""The acceptor's side of an association (``ServerAssociation``) and what a
service plugged into the server offers (``ServiceProvider``): the requests it
handles, where their data sets go, and its responses. The server
(:mod:`dicomnet.aio.server`) accepts connections and negotiates; this is what
runs for each association once accepted (PS3.7 D.3.3.3 for the operations
performed at once, 9.1.1.1.1 for their Message IDs)."""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from ..dimse.connection import DatasetFragment, MessageReceived
from ..dimse.messages import CStoreRQ, DimseMessage, operation_name
from ..errors import AssociationAborted
from ..ul.connection import ULConnection
from ..ul.events import ULEvent
from .acceptor import AnswerTally
from .association import Association, DatasetSink
from .indications import MessagesRouted
from .operations import DuplicateInvocation, MessageIds, OperationsWindow
from .transport import Stream

if TYPE_CHECKING:
    from .server import Server

__all__ = ["Answer", "Response", "ServerAssociation", "ServiceProvider"]

log = logging.getLogger("dicomnet.aio")

Response = tuple[DimseMessage, bytes | None]


class ServiceProvider(Protocol):
    """A DIMSE service on the server side (an SCP)."""

    #: abstract syntax -> accepted transfer syntaxes (None: any proposed).
    contexts: Mapping[str, Sequence[str] | None]
    #: DIMSE Command Field values of the requests it handles.
    command_fields: frozenset[int]

    def open_sink(self, assoc: ServerAssociation, context_id: int,
                  message: DimseMessage) -> DatasetSink | None:
        """Where the request's data set goes (None: keep it in memory)."""
        ...

    async def handle(self, assoc: ServerAssociation, context_id: int, message: DimseMessage,
                     sink: DatasetSink | None) -> Sequence[Response]:
        """Answer a request: the responses to send, final one last."""
        ...


#: Hands an operation started by ``ServiceProvider.start`` its one response (or
#: the exception that ends it, which aborts the association); call it on the loop.
Answer = Callable[[DimseMessage | BaseException], None]

# A provider may also offer, for requests answered by one response without a
# data set (C-STORE), ``start(assoc, context_id, message, sink, answer) -> bool``:
# True if it took the request and will call ``answer`` exactly once, later (never
# from within ``start``), from the event loop; False to have ``handle`` run in a
# task as usual. No task, no coroutine per request (2 KB objects: a tenth less
# CPU in the event loop).


class ServerAssociation(Association):
    """An association on the acceptor side."""

    def __init__(self, server: Server, stream: Stream, ul: ULConnection) -> None:
        super().__init__(stream, ul, server.timeouts, server.limits)
        # P-DATA is routed to the sinks as it is read, straight from the receive
        # buffer (Association._route_now): no copy of each byte on the way.
        ul.borrow_pdata = True
        # Requests are what an acceptor reads; a Storage SCP, one per object.
        self.dimse.store_requests_first = True
        self.server = server
        #: When its connection was accepted (the loop's clock).
        self.connected_at = self._loop.time()
        self.calling_ae_title = ""
        self.called_ae_title = ""
        #: Its A-ASSOCIATE-RQ was answered A-ASSOCIATE-RJ (logged and told then).
        self.rejected = False
        self.messages = 0
        #: C-STORE requests among ``messages`` (for the end's report).
        self.objects = 0
        self.answers = AnswerTally()
        #: Slots of the asynchronous operations window (resized once negotiated).
        self.operations = OperationsWindow(1)
        #: Message IDs of the requests received and not answered yet.
        self.message_ids = MessageIds()
        #: Operations being performed concurrently (only with a window above 1).
        self.running: set[asyncio.Task[None]] = set()
        #: Operations started without a task (``start``), their answer not yet given.
        self.answering = 0
        self._all_answered: asyncio.Future[None] | None = None
        #: Sinks a provider opened whose data set it has not been handed yet (still
        #: arriving, or received but not started): aborted when the association
        #: ends, so that no temporary file outlives it (abort_unclaimed_sinks).
        self.unclaimed_sinks: set[DatasetSink] = set()
        #: The operation performed before the next request is read (perform_inline).
        self._inline: asyncio.Task[None] | None = None
        #: The protocol error read while the task was busy (_protocol_error): the
        #: association ends with it, no other operation is performed.
        self._cut_short: Exception | None = None
        #: Operations in their provider's ``handle``, oldest first: when each
        #: started, its request and its provider (``Timeouts.operation``), by a
        #: number of its own. Put into words only when the timeout fires.
        self._performing: dict[int, tuple[float, DimseMessage, object]] = {}
        self._performed = 0
        #: Operations started without a task (``answering``), oldest first: when
        #: each was taken, and its request. The operation timeout bounds them too,
        #: lazily: the timer is armed when the first one is taken, only if not due
        #: earlier already, and re-checks the oldest when it fires (no re-arm per
        #: object; see owe_answer).
        self._owed: collections.deque[tuple[float, DimseMessage]] = collections.deque()
        #: Each command's provider's ``start`` (None: it has none), looked up once.
        self._starts: dict[int, Callable[..., bool] | None] = {}

    def _deliver(self, events: list[ULEvent | MessagesRouted]) -> None:
        """Messages completed while the association's task waits for events (its
        inbox empty) are started here, from the read callback, when their
        provider takes them without a task (``ServiceProvider.start``) and the
        window has room: what the task would do, in the same order, without
        waking it. The first message that needs more (no ``start``, a window
        full, an unknown context, a refusal) goes to the task with all that
        follow it."""
        waiting = self._wakeup
        if waiting is None or waiting.done() or self._inbox:
            super()._deliver(events)
            return
        for index, event in enumerate(events):
            if type(event) is not MessagesRouted:  # no isinstance call per event
                super()._deliver(events[index:])
                return
            rest, error = self._start_now(event.messages)
            if rest or error is not None or event.error is not None:
                super()._deliver(
                    [MessagesRouted(rest, error or event.error), *events[index + 1:]])
                return
        self._inbox_bytes = 0  # nothing waits in the inbox

    def _start_now(self, messages: list[tuple[int, DimseMessage, DatasetSink | None]]
                   ) -> tuple[list[tuple[int, DimseMessage, DatasetSink | None]],
                              Exception | None]:
        """Start what can be started at once (see ``_deliver``): the rest, in order,
        and the error a ``start`` raised (the messages after it are then dropped,
        as the task drops them: the association ends)."""
        starts = self._starts
        for index, (context_id, message, sink) in enumerate(messages):
            command = message.command_field
            if command not in starts:  # once per command: getattr and get each time before
                starts[command] = getattr(
                    self.server._providers.get(command), "start", None)
            start = starts[command]
            if (start is None or context_id not in self.contexts
                    or sink.__class__ is DuplicateInvocation
                    or not self.operations.try_take()):
                return messages[index:], None
            try:
                # answer_for's callable, made here: once per object.
                taken = start(self, context_id, message, sink,
                              functools.partial(self._answer, context_id, message))
            except Exception as exc:
                self.operations.release()
                self.messages += 1
                self.objects += isinstance(message, CStoreRQ)
                return [], exc
            if not taken:  # the task asks again, and performs it otherwise
                self.operations.release()
                return messages[index:], None
            self.unclaimed_sinks.discard(sink)
            self.messages += 1
            self.objects += message.__class__ is CStoreRQ
            # Taken in the read that completed it: _last_rx is now, no clock read.
            self.owe_answer(message, self._last_rx)
        return [], None

    def _may_coalesce(self) -> bool:
        # Another operation may answer in this round of the loop; a lone one (a
        # synchronous peer: no window, or one request in flight) answers at once.
        return len(self.running) + self.answering > 1

    def owe_answer(self, request: DimseMessage, since: float) -> None:
        """``request`` was taken by its provider's ``start`` at ``since`` (the loop's
        clock): its answer comes later, through ``answer_for``'s callable, and
        ``Timeouts.operation`` bounds the wait, as it does a handler's (a store
        round that never ends, a hung fsync, must not hold the association and
        its slot for ever while reading is paused). O(1) per request: an append,
        and for the first one owed only, a look at the armed timer."""
        self.answering += 1
        owed = self._owed
        owed.append((since, request))
        operation = self.timeouts.operation
        if len(owed) == 1 and operation is not None and (
                self._timer_at is None or self._timer_at > since + operation):
            self._rearm()

    def _answered(self, request: DimseMessage) -> None:
        """``request``, taken by ``start``, has its answer: it leaves ``_owed``."""
        owed = self._owed
        if owed and owed[0][1] is request:
            owed.popleft()  # answers come in order (the store thread's): O(1)
        else:
            for index, (_, taken) in enumerate(owed):
                if taken is request:
                    del owed[index]
                    break
        if owed or self.failure is not None:
            # The timer, armed at the oldest's deadline or before, re-checks when it
            # fires: a later oldest needs no re-arm now.
            return
        idle = self.timeouts.idle
        if idle is not None and (self._timer_at is None
                                 or self._timer_at > self._last_rx + idle):
            self._rearm()  # the idle deadline, which gave way, may be due earlier

    def answer_for(self, context_id: int, request: DimseMessage) -> Answer:
        """The ``answer`` given to ``ServiceProvider.start`` for ``request`` (its
        window slot is already taken; ``answering`` counts it once taken)."""
        return functools.partial(self._answer, context_id, request)

    def _answer(self, context_id: int, request: DimseMessage,
                response: DimseMessage | BaseException) -> None:
        """Send the final response of an operation started without a task, then free
        its slot and its Message ID; a response that must wait for the wire
        (another message is being sent, or the peer is not reading) is sent by a
        task instead."""
        self.answering -= 1
        owed = self._owed
        if len(owed) > 1 and owed[0][1] is request:
            # _answered's usual case, without its call per object: the oldest
            # answered, others still owed (the timer needs no look).
            owed.popleft()
        else:
            self._answered(request)
        self.message_ids.release(request)
        try:
            if isinstance(response, BaseException):
                self._operation_failed(response)
            elif self.failure is not None:
                pass  # aborted meanwhile: nobody to answer
            elif self._send_lock.locked() or self.stream.receiver.writing_paused:
                self.answers.count(response)
                task = self._loop.create_task(self.send_message(response, context_id))
                self.running.add(task)
                task.add_done_callback(self.operation_done)
                return
            else:
                self.answers.count(response)
                self.send_now(response, context_id)
        except Exception as exc:
            self._operation_failed(exc)
        finally:
            waiter = self._all_answered
            if self.answering == 0 and waiter is not None and not waiter.done():
                waiter.set_result(None)
        self.operations.release()

    async def perform_inline(self, operation: Coroutine[Any, Any, None]) -> None:
        """Perform one operation before the next request is read (no asynchronous
        operations window: PS3.7 D.3.3.3), in a task of its own, so that the
        association's end (the peer's A-ABORT, PS3.8 7.3; its connection lost; a
        timer) cancels it then (``_fail``) rather than when a slow handler
        returns: until then the association held its slot. An operation whose
        association has ended already is not performed (nobody to answer; its
        data set's sink is aborted with the association's). What it raises is
        raised here; cancelled with the association, it returns."""
        if self.failure is not None or self._cut_short is not None:
            operation.close()
            if self._cut_short is not None:
                raise self._cut_short
            return
        task = self._loop.create_task(operation)
        self._inline = task
        try:
            await asyncio.wait((task,))
        finally:
            self._inline = None
            if not task.done():  # the association's task cancelled (the server closing)
                task.cancel()
                self.running.add(task)  # finish_operations waits for it
                task.add_done_callback(self.running.discard)
        if not task.cancelled():
            task.result()
        elif self._cut_short is not None:
            raise self._cut_short

    def _protocol_error(self, error: Exception) -> None:
        """A protocol error was read (a request past the window the peer negotiated,
        PS3.7 D.3.3.3, say): the association ends with it, once the task takes it.
        A task performing an operation meanwhile (``perform_inline``) or waiting
        for a window slot would take it only when that ends, up to
        ``Timeouts.operation`` later: both are cut short now, so that the peer
        hears the A-ABORT at once and nothing more is performed for it."""
        if self._cut_short is None:
            self._cut_short = error
        self.operations.fail(error)
        if self._inline is not None:
            self._inline.cancel()

    def _answers_owed(self) -> bool:
        return bool(self._inline is not None or self.running or self.answering)

    def operation_started(self, request: DimseMessage, provider: object) -> int:
        """``request`` is handed to ``provider``'s ``handle`` now: the operation
        timeout runs for it (``Timeouts.operation``) until ``operation_ended``
        with the number returned."""
        self._performed += 1
        self._performing[self._performed] = (self._loop.time(), request, provider)
        self._rearm()
        return self._performed

    def operation_ended(self, number: int) -> None:
        """The operation ``operation_started`` numbered has its answer (or ended)."""
        del self._performing[number]
        self._rearm()  # the idle deadline may apply again, earlier

    def _oldest_started(self) -> float | None:
        performing = next(iter(self._performing.values()), None)
        if self._owed:
            since = self._owed[0][0]
            return since if performing is None or since < performing[0] else performing[0]
        return None if performing is None else performing[0]

    def _oldest_operation(self) -> tuple[float, str, str] | None:
        performing = next(iter(self._performing.values()), None)
        if self._owed:
            since, request = self._owed[0]
            if performing is None or since < performing[0]:
                # No handler: the provider's own work (the store thread's round).
                return (since, f"{operation_name(request)}-RQ",
                        "its store has not finished (writing it to disk)"
                        if isinstance(request, CStoreRQ) else "its provider has not answered")
        if performing is None:
            return None
        return performing[0], f"{operation_name(performing[1])}-RQ", "its handler has not returned"

    def _operation_timed_out(self) -> None:
        """Say at WARNING what the operation timeout cuts (the abort's own line is at
        INFO, as every association's end): the handler that has not returned (or
        the provider's own work), the request and its SOP Instance, the timeout."""
        performing = next(iter(self._performing.values()), None)
        if self._owed and (performing is None or self._owed[0][0] < performing[0]):
            request: DimseMessage = self._owed[0][1]
            hung = ("the store has not finished" if isinstance(request, CStoreRQ)
                    else "the provider has not answered")
        elif performing is not None:
            request, provider = performing[1], performing[2]
            slot = f"on_{operation_name(request).lower().replace('-', '_')}"
            handler = getattr(provider, slot, None)
            hung = (f"the {slot} handler "
                    f"{getattr(handler, '__qualname__', type(handler).__qualname__)!r}"
                    if handler is not None else f"the {type(provider).__qualname__}")
            hung += " has not returned"
        else:
            return
        uid = request.affected_sop_instance_uid if isinstance(request, CStoreRQ) else None
        log.warning("%s: %s within the operation timeout (%ss) for the %s-RQ%s: association "
                    "aborted", self._name(), hung, self.timeouts.operation,
                    operation_name(request), f" of SOP Instance {uid}" if uid else "")

    def _fail(self, error: AssociationAborted) -> None:
        super()._fail(error)
        assert self.failure is not None
        # A request waiting for a slot is not performed: its wait ends now, not
        # when an operation that may never end (a hung store round) frees one.
        self.operations.fail(self.failure)
        me = asyncio.current_task()
        # Nobody will read their answers: the operations stop now, not when a slow
        # handler returns (the association's task may wait for one's window slot).
        # Not from within the operation itself (its write failed): it raises the failure.
        for task in (self._inline, *self.running):
            if task is not None and task is not me:
                task.cancel()

    def operation_done(self, task: asyncio.Task[None]) -> None:
        """An asynchronous operation ended: free its slot; a failure aborts."""
        self.running.discard(task)
        self.operations.release()
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self._operation_failed(exc)

    def _operation_failed(self, exc: BaseException) -> None:
        if self.failure is None:
            log.error("%s:%s: operation failed: %s", *self.peer, exc)
            self._local_abort(f"an operation failed: {exc}")
            self._queue_out()
            self.stream.close_soon()

    async def finish_operations(self) -> None:
        """Wait for the operations still running, their answers sent (or cancel
        them if the association has failed): nothing may outlive the association.
        Operations started without a task (a store round writing the objects)
        are waited for even once the association failed, their answers then
        dropped: what they stored is told (``on_stored``) before the
        association's end is; a round still unfinished by its operation
        timeout (``Timeouts.operation``, from the oldest taken) is let go."""
        while self.running or self.answering:
            if self.running:
                if self.failure is not None:
                    for task in self.running:
                        task.cancel()
                await asyncio.gather(*self.running, return_exceptions=True)
            elif self.answering:
                self._all_answered = self._loop.create_future()
                try:
                    if not await self._wait_answered(self._all_answered):
                        return
                finally:
                    self._all_answered = None

    async def _wait_answered(self, answered: asyncio.Future[None]) -> bool:
        """Wait for ``answered`` (every answer owed given); once the association
        failed, no longer than the oldest owed answer's operation timeout (the
        timer that enforced it is stopped). False if that passed first."""
        operation = self.timeouts.operation
        if self.failure is None or operation is None or not self._owed:
            await answered
            return True
        left = self._owed[0][0] + operation - self._loop.time()
        if left > 0:
            await asyncio.wait((answered,), timeout=left)
        return answered.done()

    def route(
        self, item: MessageReceived | DatasetFragment
    ) -> tuple[int, DimseMessage, DatasetSink | None] | None:
        """``Association.route``, a command written out here: its Message ID
        claimed, then ``_route_message``'s and ``open_sink``'s work, in one call
        per message received, not four. (A data PDV does not come here: see
        ``Association._route_now``.)"""
        if not isinstance(item, MessageReceived):
            return super().route(item)
        if self.failure is not None:  # as Association.route: nothing after a failure
            return None
        message, context_id = item.message, item.context_id
        sink: DatasetSink | None = None
        if not self.message_ids.claim(message):
            sink = DuplicateInvocation()  # never performed: see _on_messages
        if not message.has_dataset:
            return (context_id, message, sink)
        if sink is None:
            provider = self.server._providers.get(message.command_field)
            if provider is not None:
                sink = provider.open_sink(self, context_id, message)
            if sink is not None:
                self.unclaimed_sinks.add(sink)
            else:
                sink = Association.open_sink(self, context_id, message)
        self._incoming = (context_id, message, sink)
        return None

    def open_sink(self, context_id: int, message: DimseMessage) -> DatasetSink:
        # route() does the same, written out, for a command it routes: change both.
        provider = self.server._providers.get(message.command_field)
        if provider is not None:
            sink = provider.open_sink(self, context_id, message)
            if sink is not None:
                self.unclaimed_sinks.add(sink)
                return sink
        return super().open_sink(context_id, message)

    def abort_unclaimed_sinks(self) -> None:
        """At the association's end: abort the data set still arriving and those
        received but never handed to their provider (the association failed, or
        was released, before their turn; found by fuzzing: a spilled one's
        temporary file stayed until the next start)."""
        self._drop_incoming()
        sinks, self.unclaimed_sinks = self.unclaimed_sinks, set()
        for sink in sinks:
            try:
                sink.abort()
            except Exception:  # the others still go
                log.exception("%s: a sink's abort() failed", self._name())
