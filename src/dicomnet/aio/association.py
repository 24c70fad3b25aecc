"""The asyncio engine of one association: bytes between a Stream and the sans-I/O
Upper Layer and DIMSE cores, timers, and DIMSE message transfer.

Both sides share this class; ``aio.client`` and ``aio.server`` add what only a
requestor or an acceptor does. One association is driven by one task reading
the socket (``_reader_loop``); its deadlines (ARTIM, idle, whole-PDU, DIMSE
sends) are those of its base class ``aio.deadlines.Deadlines``, and receiving a
long PDV's data in place, into its sink's memory, that of ``aio.in_place``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import AsyncIterator, Callable, Iterable

from ..config import Limits, Timeouts
from ..dimse.connection import (
    DatasetFragment,
    DimseConnection,
    MessageReceived,
    fragment_floor,
)
from ..dimse.fragments import command_pdus, dataset_pdus
from ..dimse.messages import DimseMessage, encode_message, operation_name
from ..errors import (
    AssociationAborted,
    DicomNetError,
    LocalProtocolError,
    RemoteProtocolError,
    TLSError,
)
from ..security.errors_map import translate_ssl_error
from ..security.info import SecurityInfo
from ..ul.connection import ULConnection
from ..ul.events import Aborted, DataReceived, ULEvent
from ..ul.negotiation import AcceptedContext
from .deadlines import Deadlines
from .in_place import InPlaceReceiving
from .indications import MessagesRouted, aborted_by
from .sinks import BufferSink, DatasetSink
from .transport import Stream, describe_os_error

__all__ = ["Association", "BufferSink", "DatasetSink"]

log = logging.getLogger("dicomnet.aio")

#: Flush queued PDUs to the socket once this many bytes are waiting.
_FLUSH_BYTES = 1 << 20
#: A message ending with fewer data bytes than this since the last flush (a
#: command, a response, a small data set) is written at the end of the loop's
#: current round, with whatever other tasks queued meanwhile: one TLS record and
#: one system call for a window of responses instead of one each.
_COALESCE_BYTES = 1 << 16
#: Received data the association's task has not taken yet, beyond which reading
#: pauses (a slow handler or disk must not make us buffer a whole transfer). With
#: P-DATA streamed as it arrives, 8 MiB here raised a server's peak by 6 MiB
#: receiving 256 MB objects, for no measurable speed.
_INBOX_LIMIT = 2 << 20
#: Messages (P-DATA-TF PDUs, on a side that does not route them as they arrive)
#: waiting in the inbox, from which reading pauses too. Bytes alone let 2 MiB of
#: 80-byte C-ECHO-RQs queue (34,000 messages, 15 MB of objects) from a requestor
#: that ignores the one operation outstanding PS3.7 D.3.3.3 allows by default.
#: Above the window a server grants by default (32), so that a requestor keeping
#: to its window is not paused for it. Routing stops there too, in the middle of
#: a read if need be (``_route_now``): one read (``transport.READ_SIZE``) holds
#: 3,276 C-ECHO-RQs, which were all decoded and queued before reading paused.
_INBOX_MESSAGES = 64


class Association(InPlaceReceiving, Deadlines):
    """One association over one Stream, as requestor or acceptor."""

    def __init__(self, stream: Stream, ul: ULConnection, timeouts: Timeouts,
                 limits: Limits | None = None) -> None:
        self.stream = stream
        self.ul = ul
        self.timeouts = timeouts
        #: The largest data set a ``BufferSink`` keeps (Limits.max_dataset_in_memory).
        limits = limits or Limits()
        self.max_dataset_in_memory = limits.max_dataset_in_memory
        self.dimse = DimseConnection(min_fragment_mean=fragment_floor(limits.max_pdu_length))
        self.contexts: dict[int, AcceptedContext] = {}
        self._loop = asyncio.get_running_loop()
        # The loop's clock, read per read event (_on_bytes): time.monotonic itself
        # when the loop's time() is asyncio's (which returns it), not a Python call
        # around it; any other loop's time() as it is.
        loop_time = self._loop.time
        self._clock: Callable[[], float] = (
            time.monotonic
            if getattr(loop_time, "__func__", None) is asyncio.BaseEventLoop.time
            else loop_time)
        self._start_deadlines()
        #: Bytes read from the connection (after TLS), for the end's report.
        self.bytes_received = 0
        self._closed = asyncio.Event()
        self._pending_out = 0
        self._write_soon: asyncio.Handle | None = None
        #: Why the association ended abnormally, once it did.
        self.failure: AssociationAborted | None = None
        #: A TLS failure seen after the handshake (TLS 1.3 reports a refused client
        #: certificate on the first read).
        self.tls_error: TLSError | None = None
        # Incoming message whose data set is still arriving.
        self._incoming: tuple[int, DimseMessage, DatasetSink] | None = None
        #: The message whose data set was dropped half received (its sink aborted),
        #: in words, for the log line of the association's end.
        self.dropped: str | None = None
        self._start_in_place()
        self._send_lock = asyncio.Lock()
        #: The last message sent whole: its last PDV queued for the transport,
        #: ahead of anything queued after it (an A-ABORT too). From then on the
        #: peer may hold it; before, it cannot (PS3.8 9.3.5, PS3.7 8.1).
        self.sent_whole: DimseMessage | None = None
        self._last_queued = False  # the last PDU queued ends its message
        self._inbox: list[ULEvent | MessagesRouted] = []
        self._inbox_bytes = 0
        self._inbox_messages = 0
        self._routed_bytes = 0  # routed to a sink, its message not yet complete
        self._paused = False
        # What a read brought past the inbox's message limit (its P-DATA views
        # kept): routed once the task has taken the inbox, before reading resumes.
        self._unrouted: list[ULEvent] = []
        # A protocol error waits in the inbox: the association ends with it, so
        # reading stays paused (see _deliver).
        self._stopped = False
        self._ended = False
        self._wakeup: asyncio.Future[None] | None = None
        # P-DATA routed to the sinks as it is read (ULConnection.borrow_pdata, as
        # start_receiving found it).
        self._route_pdata = False
        #: Operations the requestor may have outstanding at once (PS3.7 D.3.3.3);
        #: 1 unless both sides negotiated an asynchronous operations window.
        self.async_window = 1

    def start_receiving(self) -> None:
        """Take the connection's bytes from now on (and what already arrived). Call
        once the Upper Layer knows its transport is up (Evt2 or Evt5)."""
        self._route_pdata = self.ul.borrow_pdata
        self.stream.receiver.attach(
            self._on_bytes, self._on_end,
            self._receive_target if self._route_pdata else None)

    # -- properties ------------------------------------------------------------

    @property
    def security(self) -> SecurityInfo | None:
        """What TLS negotiated, or None on a plain connection."""
        return self.stream.security

    @property
    def peer(self) -> tuple[str, int]:
        return self.stream.peer

    @property
    def is_established(self) -> bool:
        """Whether the association is established (PS3.8 Sta6): requests may be
        sent. False once it was released or aborted, or its connection failed
        (``failure`` then says why): a caller keeping one open opens another."""
        return self.ul.is_established

    # -- output ----------------------------------------------------------------

    def _queue_out(self) -> None:
        if self._write_soon is not None:
            self._write_soon.cancel()
            self._write_soon = None
        for chunk in self.ul.chunks_to_send():
            self.stream.writer.write(chunk)

    def _queue_out_soon(self) -> None:
        """Write what is queued once the tasks ready in this round have run."""
        if self._write_soon is None:
            self._write_soon = self._loop.call_soon(self._write_queued)

    def _write_queued(self) -> None:
        self._write_soon = None
        if self.stream.writer.is_closing():
            return
        try:
            self._queue_out()
        except (ConnectionError, OSError) as exc:
            self._transport_broke(f"write failed: {describe_os_error(exc)}")

    async def _flush(self) -> None:
        """Write what the UL queued; close the transport if an action asked for it."""
        self._queue_out()
        writer = self.stream.writer
        if not writer.is_closing():
            try:
                await writer.drain()
            except (ConnectionError, OSError) as exc:
                self._transport_broke(f"write failed: {describe_os_error(exc)}")
        if self.ul.should_close:
            await self.stream.close()
        self._rearm_if_earlier()

    def _local_abort(self, detail: str, cause: BaseException | None = None) -> None:
        """A-ABORT by us (PS3.8 7.3, source 0); ``cause``, the peer's protocol error
        that made us abort, is chained to the failure the requests get (a retry
        would meet it again: ``services.store_scu.transient_failure``)."""
        log.info("%s: aborting: %s", self._name(), detail)
        with contextlib.suppress(LocalProtocolError):
            self.ul.abort(self._loop.time())
        failure = AssociationAborted(0, 0, detail, by="us")
        failure.__cause__ = cause
        self._fail(failure)

    # -- input -------------------------------------------------------------------

    def _on_bytes(self, data: memoryview) -> None:
        """Received bytes, straight from the transport (``Receiver``): the Upper Layer
        takes them now; its events wait in the inbox for the association's task."""
        now = self._clock()
        self._last_rx = now
        self.bytes_received += len(data)
        sink = self._in_place_sink
        # Unrouted events first (_take_events): bytes read while paused, a reset's.
        if sink is not None and not self._unrouted and self._take_in_place(sink, data, now):
            return
        self.ul.receive_data(data, now)
        self._take_events()  # first: DIMSE then knows whether a message is in progress
        completed = self.ul.pdus_received
        if not self.ul.has_partial_pdu:
            if self.dimse.idle or self.failure is not None:
                self._pdu_started = None
            else:  # a message in progress: its next PDU is due (Timeouts.pdu)
                self._pdu_started = now
                completed = -1  # the next PDU, once it starts, restarts the clock
        elif self._pdu_started is None or completed != self._pdus_seen:
            # The clock runs from a PDU's first read: more drips of the same PDU do
            # not reset it; a PDU completed since means a new one has started.
            self._pdu_started = now
        self._pdus_seen = completed
        if self.ul.has_data_to_send:  # e.g. an A-ABORT answering an invalid PDU
            self._queue_out()
        self._rearm_if_earlier()

    def _on_end(self, exc: BaseException | None) -> bool:
        """The transport closed (Evt17), cleanly or with ``exc``. True when only the
        peer's side did, and ours stays open: the Upper Layer holds that end
        until our A-RELEASE-RP is written (``ULConnection.half_closed``)."""
        log.debug("%s: connection ended%s", self._name(), f": {exc!r}" if exc else "")
        self._ended = True
        if isinstance(exc, ssl.SSLError):
            # Under TLS 1.3 a peer that refuses our certificate says so only now, on
            # the first read after a handshake that looked fine.
            self.tls_error = translate_ssl_error(
                exc, side="client" if self.ul.role == "requestor" else "server",
                peer=self._name(), established=True,
            )
            self._transport_broke(self.tls_error.reason)
        elif exc is not None:
            self._transport_broke(describe_os_error(exc))
        else:
            self.ul.receive_data(b"", self._loop.time())
        self._take_events()
        if not self.ul.half_closed:
            # A data set still half received has no more bytes to come (the peer
            # released, say, before its last PDV: no abort did it): its sink goes.
            # Half closed, the release it asked for drops it (drop_unfinished).
            self._drop_incoming()
        self._wake()  # even with no event: the stream is over
        return self.ul.half_closed

    def _take_events(self) -> None:
        # _drain_events, written out: once per read.
        drained = self.ul.take_events()
        if not drained:
            return
        for event in drained:
            if event.__class__ is Aborted:
                self._fail(aborted_by(event))
        if self.ul.should_close and self.failure is not None:
            # The peer aborted (PS3.8 AA-3: close the transport connection). Now,
            # not when the task is next free: it may be running an operation
            # whose response no one will read (a user's handler, say). Nor after
            # a grace: what is still queued (the rest of a data set) is for a
            # peer that will read no more, and only held the connection.
            self._write_queued()
            self.stream.close_soon(grace=0)
        events: list[ULEvent | MessagesRouted]
        if self._route_pdata:
            if self._unrouted:  # after those still waiting, in order
                drained, self._unrouted = self._unrouted + drained, []
            # Data went to the sinks already: the inbox holds only the messages it
            # completed, and the task is woken for those (not for every read).
            events = self._route_now(drained)
        else:
            events = self._handle_now(drained) if not self._inbox else list(drained)
            self._inbox_bytes += sum(
                len(pdv.data) for e in events if isinstance(e, DataReceived)
                for pdv in e.pdu.pdvs)
        if events:
            self._deliver(events)
        if self._unrouted:
            self._wake()  # to route them: the task may have nothing else to take

    def _route_unrouted(self) -> None:
        """Route what ``_route_now`` left unrouted, up to the inbox's limit again."""
        events, self._unrouted = self._unrouted, []
        routed = self._route_now(events, read=False)
        if routed:
            self._deliver(routed)

    def _deliver(self, events: list[ULEvent | MessagesRouted]) -> None:
        """Queue ``events`` for the association's task, and wake it. Reading pauses
        until the task takes them when they hold over ``_INBOX_LIMIT`` bytes or
        ``_INBOX_MESSAGES`` messages; for good once they end in a protocol error
        (the association ends there: nothing read after it would be used, and a
        peer past its window, PS3.7 D.3.3.3, is not read on while the requests
        before it are performed)."""
        self._inbox += events
        count = self._inbox_messages
        stop = False
        for event in events:  # a few per read
            if type(event) is MessagesRouted:
                count += len(event.messages)
                if event.error is not None:
                    stop = True
                    self._protocol_error(event.error)
            else:
                count += 1
        self._inbox_messages = count
        self._stopped = self._stopped or stop
        if (stop or count >= _INBOX_MESSAGES or self._inbox_bytes > _INBOX_LIMIT
                ) and not self._paused:
            self._paused = True  # the task is behind: stop reading until it catches up
            self.stream.receiver.pause()
        self._wake()

    def _protocol_error(self, error: Exception) -> None:
        """``error``, which ends the association, was queued for the task (after
        the messages before it): a subclass whose task may be busy meanwhile
        (an operation in progress) cuts that short."""

    def _handle_now(self, events: list[ULEvent]) -> list[ULEvent | MessagesRouted]:
        """Called from the read callback with the events just received while the
        inbox is empty: a subclass may handle some of them at once; the rest
        (returned, in order) go to the inbox for the association's task."""
        return list(events)

    def _wake(self) -> None:
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    async def _read_events(self) -> list[ULEvent | MessagesRouted]:
        """The UL events received since the last call, waiting for some if there are
        none yet; an empty list once the connection has ended."""
        if not self._inbox and not self._ended and not self._unrouted:
            self._wakeup = self._loop.create_future()
            try:
                await self._wakeup
            finally:
                self._wakeup = None
        if self._unrouted and not self._inbox and not self._stopped:
            # The task is done with what it took: the next ones (and no more
            # before then: it holds the Message IDs of those it has).
            self._route_unrouted()
        events, self._inbox, self._inbox_bytes = self._inbox, [], 0
        self._inbox_messages = 0
        if self._paused and not (self._stopped or self._unrouted):
            self._paused = False
            # The peer's deadlines start again now: none ran while we did not read.
            self._last_rx = self._loop.time()
            if self._pdu_started is not None:
                self._pdu_started = self._last_rx
            self.stream.receiver.resume()
        self._queue_out()
        if self.ul.should_close:
            await self.stream.close()
        self._rearm_if_earlier()
        return events

    def _route_now(self, events: list[ULEvent], *, read: bool = True
                   ) -> list[ULEvent | MessagesRouted]:
        """Feed received PDVs to DIMSE and their data to the sinks now, while the
        views the Upper Layer lent (``ULConnection.borrow_pdata``) are valid; the
        inbox gets the messages they complete, in order, or the protocol error
        that stopped them. Each lent view is released after use, so that a sink
        that kept one fails loudly instead of reading reused memory.

        Once the inbox holds ``_INBOX_MESSAGES``, the events left wait in
        ``_unrouted``, reading paused: a read of tiny messages is not decoded
        whole into the inbox at once (``read``: some of ``events`` are the
        last read's, their views of the transport's memory)."""
        out: list[ULEvent | MessagesRouted] = []
        failed = False
        dimse = self.dimse
        receive_pdv, receive_data_pdv, route = dimse.receive_pdv, dimse.receive_data_pdv, self.route
        room = _INBOX_MESSAGES - self._inbox_messages  # routed before the rest waits
        for index, event in enumerate(events):
            # Class tests by identity here and below, not isinstance: a call each,
            # per PDV received (the Upper Layer makes exactly these classes).
            if event.__class__ is not DataReceived:
                out.append(event)
                continue
            if failed:
                continue
            pdvs = event.pdu.pdvs
            done: list[tuple[int, DimseMessage, DatasetSink | None]] = []
            try:
                for pdv in pdvs:
                    # The bytes of a message count against the inbox limit once it
                    # is complete and waits there for the task (before, its sink
                    # holds them).
                    data = pdv.data
                    self._routed_bytes += len(data)
                    if not pdv.is_command:
                        # route()'s work for the DatasetFragment DIMSE would make,
                        # done here: no event, no call, per data PDV.
                        receive_data_pdv(pdv.context_id, pdv.is_last, len(data), pdv.continues)
                        incoming = self._incoming
                        if self.failure is None and incoming is not None:
                            incoming[2].write(data)
                            if pdv.is_last:
                                if incoming[2] is not self._in_place_sink:
                                    self._reads_bounded = False  # see _receive_target
                                self._incoming = self._in_place_sink = None
                                done.append(incoming)
                        elif self.failure is None:  # as route: belt and braces
                            raise RemoteProtocolError("data set fragment without a command",
                                                      abort_source=0, abort_reason=0)
                        continue
                    for item in receive_pdv(pdv, pdv.continues):
                        routed = route(item)
                        if routed is not None:
                            done.append(routed)
            except Exception as exc:  # raised in the association's task, as it was
                failed = True
                out.append(MessagesRouted(done, exc))
                continue
            finally:
                for pdv in pdvs:
                    data = pdv.data
                    if data.__class__ is memoryview:
                        # Not contextlib.suppress: three calls per PDV on the hot path.
                        try:  # noqa: SIM105
                            data.release()
                        except BufferError:  # a sink exported it
                            pass
            if done:
                out.append(MessagesRouted(done, None))
                self._inbox_bytes += self._routed_bytes
                self._routed_bytes = 0
                room -= len(done)
                if room <= 0 and index + 1 < len(events):
                    self._keep_unrouted(events[index + 1:], renew=read)
                    break
        return out

    def _keep_unrouted(self, events: list[ULEvent], *, renew: bool) -> None:
        """Keep ``events`` for later (``_unrouted``) and pause reading until the task
        has taken the inbox (``_read_events``). Their P-DATA views stay valid: the
        transport reads into new memory from now on (``Receiver.renew_buffer``),
        the old one kept by these views only, and let go with the last."""
        self._unrouted = events
        if renew:  # (else no read since the last renewal: nothing to keep it for)
            self.stream.receiver.renew_buffer()
        if not self._paused:
            self._paused = True
            self.stream.receiver.pause()

    def _drain_events(self) -> list[ULEvent]:
        events = self.ul.take_events()
        for event in events:
            if event.__class__ is Aborted:  # not isinstance: a call per event
                self._fail(aborted_by(event))
        return events

    def _transport_broke(self, detail: str) -> None:
        self.ul.transport_failed(self._loop.time(), detail)

    def _fail(self, error: AssociationAborted) -> None:
        if self.failure is None:
            self.failure = error
        self._drop_incoming()

    def drop_unfinished(self) -> str | None:
        """At an A-RELEASE-RQ: the message still partly received, if any, in words,
        its data set's sink aborted (nothing of it stays on disk). It cannot be
        completed, nor answered once released (PS3.8 7.2.2), so it is not
        performed; the release is answered all the same, as the acceptor must
        (7.2.2), and as DCMTK's storescp does."""
        if self.dimse.idle:
            return None
        if self._incoming is None:
            return "a command set"
        self._drop_incoming()
        return self.dropped

    def _drop_incoming(self) -> None:
        """Abort the sink of a data set being received, if any: nothing completes it."""
        if self._incoming is not None:
            message = self._incoming[1]
            uid = getattr(message, "affected_sop_instance_uid", None)
            self.dropped = (f"the data set of a {operation_name(message)}-RQ"
                            + (f" for {uid}" if uid else ""))
            self._incoming[2].abort()
            self._incoming = self._in_place_sink = None

    def _name(self) -> str:
        return f"{self.peer[0]}:{self.peer[1]}"

    # -- DIMSE -------------------------------------------------------------------

    async def send_message(
        self,
        message: DimseMessage,
        context_id: int,
        dataset: bytes | memoryview | None = None,
        chunks: AsyncIterator[bytes] | Iterable[bytes] | None = None,
        pdus: Iterable[bytes | bytearray | memoryview] | None = None,
    ) -> None:
        """Send one DIMSE message, its data set from ``dataset`` or streamed from
        ``chunks`` (PS3.7 8.1, fragmented to the peer's maximum PDU length), or
        as ``pdus``: data set P-DATA-TF PDUs the caller built (one PDV each, within
        the peer's maximum length, only the last one marked last), as a sender that
        reads a file straight into its PDUs does; with a ``lead`` method
        (``DataSetPdus.lead``), its first one goes behind the command's PDU.

        Messages never interleave on the wire (PS3.8 9.3.5: a message's PDVs are
        consecutive), even when several tasks send at once under an asynchronous
        operations window: each message holds the send lock until it is out."""
        lock = self._send_lock  # async with: two Python calls more per message
        await lock.acquire()
        try:
            await self._send_message(message, context_id, dataset, chunks, pdus)
        finally:
            lock.release()

    async def _send_message(
        self,
        message: DimseMessage,
        context_id: int,
        dataset: bytes | memoryview | None,
        chunks: AsyncIterator[bytes] | Iterable[bytes] | None,
        pdus: Iterable[bytes | bytearray | memoryview] | None = None,
    ) -> None:
        if not self.ul.is_established and self.ul.state.name not in ("Sta8",):
            raise self.failure or LocalProtocolError("the association is not established")
        max_pdu = self.ul.peer_max_pdu_length
        command = command_pdus(context_id, encode_message(message), max_pdu)
        lead = getattr(pdus, "lead", None) if len(command) == 1 else None
        if (joined := None if lead is None else lead(command[0])) is None:
            for pdu in command:
                self.ul.send_pdata(pdu)
        self._last_queued = not message.has_dataset
        try:
            if dataset is not None:
                await self._send_data(context_id, dataset, max_pdu, last=True)
            elif chunks is not None:
                await self._send_chunks(context_id, chunks, max_pdu)
            elif pdus is not None:
                if joined is not None:  # its command's PDU, then its first data PDU
                    await self._send_pdu(joined, len(command[0]))
                for data_pdu in pdus:
                    await self._send_pdu(data_pdu)
            self._whole(message)
        except BaseException as exc:
            if self._last_queued:  # cut while its last PDU was written: out whole
                self._whole(message)
            if self.failure is None:  # a cancel, say: the rest cannot follow, nor
                # another message come in between (PS3.8 9.3.5): A-ABORT (7.3).
                self._local_abort(f"a {operation_name(message)} message cut short "
                                  f"in its data set ({type(exc).__name__})")
                with contextlib.suppress(Exception):
                    self._queue_out()
                self._wake()
            raise
        await self._flush_data(soon=self._pending_out < _COALESCE_BYTES and self._may_coalesce())

    def _whole(self, message: DimseMessage) -> None:
        self.sent_whole = message
        self._sent_whole(message)

    def _sent_whole(self, message: DimseMessage) -> None:
        """The last PDU of ``message`` was queued (the peer may have read it all
        from here on); for a requestor, which takes no response before it."""

    def send_now(self, message: DimseMessage, context_id: int) -> None:
        """Queue a message without a data set (a response, say) at once, from a
        callback rather than a task. The caller makes sure that no other message is
        being sent (``send_message`` holds the wire until its last PDV is out:
        PS3.8 9.3.5) and that the peer is reading (no write pressure to wait for)."""
        if not self.ul.is_established and self.ul.state.name not in ("Sta8",):
            raise self.failure or LocalProtocolError("the association is not established")
        for pdu in command_pdus(context_id, encode_message(message), self.ul.peer_max_pdu_length):
            self.ul.send_pdata(pdu)
        if self._may_coalesce():
            self._queue_out_soon()
        else:
            self._queue_out()

    def _may_coalesce(self) -> bool:
        """Whether other messages may be queued in this round of the loop, so that
        a small one is worth holding until its end (``_queue_out_soon``)."""
        return True

    async def _send_chunks(
        self, context_id: int, chunks: AsyncIterator[bytes] | Iterable[bytes], max_pdu: int
    ) -> None:
        # One chunk of look-ahead so that only the very last PDV is marked last.
        previous: bytes | None = None
        async for chunk in _aiter(chunks):
            if not chunk:
                continue
            if previous is not None:
                await self._send_data(context_id, previous, max_pdu, last=False)
            previous = chunk
        await self._send_data(context_id, previous or b"", max_pdu, last=True)

    async def _send_data(self, context_id: int, data: bytes | memoryview, max_pdu: int, *,
                         last: bool) -> None:
        for pdu in dataset_pdus(context_id, data, max_pdu, last=last):
            await self._send_pdu(pdu)

    async def _send_pdu(self, pdu: bytes | bytearray | memoryview, at: int = 0) -> None:
        # ``at``: where the data PDU starts (after its command's PDU, joined).
        if self.failure is not None:
            # Ended while its sender awaited the next chunk (a peer's A-ABORT read
            # meanwhile, a local abort): say why, not that Sta1 takes no P-DATA.
            raise self.failure
        self.ul.send_pdata(pdu)
        # One PDV per PDU: its Message Control Header's last-fragment bit (PS3.8 E.2).
        self._last_queued = bool(pdu[at + 11] & 2)
        self._pending_out += len(pdu)
        if self._pending_out >= _FLUSH_BYTES:
            await self._flush_data()

    async def _flush_data(self, *, soon: bool = False) -> None:
        self._pending_out = 0
        if self.failure is not None:
            raise self.failure
        if soon:
            self._queue_out_soon()
        else:
            self._queue_out()
        writer = self.stream.writer
        try:
            if self.stream.receiver.writing_paused and self.timeouts.dimse is not None:
                # The peer must take some of it within the DIMSE timeout.
                self._send_waiting = True
                self._tx_backlog = writer.transport.get_write_buffer_size()
                self._rearm()
                try:
                    await writer.drain()
                finally:
                    self._send_waiting = False
            else:
                await writer.drain()
        except (ConnectionError, OSError) as exc:
            self._transport_broke(f"write failed: {describe_os_error(exc)}")
            self._drain_events()
            raise self.failure or AssociationAborted(None, None, str(exc)) from exc
        self._last_tx = self._loop.time()
        if self.failure is not None:
            # Aborted while the write waited (a timer, the transport then cut under
            # it): the next PDU would meet the Upper Layer in Sta1.
            raise self.failure

    def open_sink(self, context_id: int, message: DimseMessage) -> DatasetSink:
        """The sink for an incoming data set; subclasses route C-STORE data to disk."""
        kind = "RSP" if type(message).__name__.endswith("RSP") else "RQ"
        return BufferSink(self.max_dataset_in_memory,
                          f"the data set of a {operation_name(message)}-{kind}")

    def route(
        self, item: MessageReceived | DatasetFragment
    ) -> tuple[int, DimseMessage, DatasetSink | None] | None:
        """Feed one DIMSE event; return (context, message, sink) once a whole message,
        data set included, has arrived.

        Once the association has failed (an abort read in the same chunk as these
        PDVs, say), nothing more is delivered and no sink is opened: its file would
        have no one left to remove it."""
        if self.failure is not None:
            return None
        if isinstance(item, MessageReceived):
            return self._route_message(item, None)
        incoming = self._incoming
        if incoming is None:  # DimseConnection already refuses this; belt and braces
            # A DIMSE fault, aborted by the service-user (PS3.8 Table 9-26: 0, 0).
            raise RemoteProtocolError("data set fragment without a command",
                                      abort_source=0, abort_reason=0)
        incoming[2].write(item.data)
        if item.is_last:
            if incoming[2] is not self._in_place_sink:
                self._reads_bounded = False  # see _receive_target
            self._incoming = self._in_place_sink = None
            return incoming
        return None

    def _route_message(self, item: MessageReceived, sink: DatasetSink | None
                       ) -> tuple[int, DimseMessage, DatasetSink | None] | None:
        """A command set received whole: the message, when it has no data set;
        otherwise None, its data set due into ``sink`` (None: ``open_sink``'s)."""
        if item.message.has_dataset:
            self._incoming = (item.context_id, item.message,
                              sink or self.open_sink(item.context_id, item.message))
            return None
        return (item.context_id, item.message, sink)

    # -- release and abort ---------------------------------------------------------

    async def abort(self) -> None:
        """A-ABORT the association (PS3.8 7.3) and close the connection."""
        if self.ul.state.name in ("Sta1", "Sta13"):
            await self.stream.close()
            return
        self.ul.abort(self._loop.time())
        self._fail(AssociationAborted(0, 0, by="us"))
        with contextlib.suppress(DicomNetError, OSError):
            self._queue_out()
            async with asyncio.timeout(2.0):
                await self.stream.writer.drain()
        await self.stream.close()

    async def wait_closed(self) -> None:
        await self._closed.wait()


async def _aiter(chunks: AsyncIterator[bytes] | Iterable[bytes]) -> AsyncIterator[bytes]:
    if hasattr(chunks, "__aiter__"):
        async for chunk in chunks:
            yield chunk
    else:
        for chunk in chunks:
            yield chunk

