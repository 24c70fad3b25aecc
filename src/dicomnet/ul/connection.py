"""``ULConnection``: the sans-I/O DICOM Upper Layer (PS3.8 sections 7 and 9).

Bytes go in with ``receive_data(data, now)`` (``b""`` means the transport
closed), events come out of ``next_event()``, bytes to write come out of
``data_to_send()``. Time is passed in; ``get_timer()`` is the ARTIM deadline
(PS3.8 9.1.5) and ``handle_timer(now)`` fires it. The driver also watches two
flags: ``wants_transport`` (AE-1 asked for a TRANSPORT CONNECT) and
``should_close`` (an action closed the transport: flush ``data_to_send()``,
then close).

The end of the peer's byte stream is the transport-closed indication (Evt17),
except where the peer has nothing left to send but we still owe it our
A-RELEASE-RP (Sta8, Sta12; PS3.8 7.2.2: after its A-RELEASE-RQ a requestor
issues no primitive but A-ABORT). A TCP half-close there (a peer that shut its
write side once its request was out, and reads on) only says that no more
bytes come: it is held (``half_closed``) until our A-RELEASE response is sent
(AR-4, Sta13), and then taken as Evt17 (AR-5). Taken at once it was Evt17 in
Sta8 (AA-4, an A-P-ABORT): an association its requestor released in order was
reported as aborted, and the responses still due (PS3.7 D.3.3.3) and the
A-RELEASE-RP were never sent. Table 9-10 itself is unchanged.

User primitives (``associate``, ``accept``, ``reject``, ``send_pdata``,
``release``, ``release_response``, ``abort``) raise ``LocalProtocolError`` when
PS3.8 Table 9-10 does not allow them in the current state.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Literal

from ..errors import RemoteProtocolError
from .events import DataReceived, ULEvent
from .framing import NOT_TAKEN, PDUFramer
from .fsm import (
    CloseTransport,
    Event,
    Indicate,
    Machine,
    OpenTransport,
    SendPDU,
    StartArtim,
    State,
    StopArtim,
)
from .items import PC_ACCEPTANCE
from .pdata import PDataTF
from .pdu import (
    PDU,
    AAbort,
    AssociateAC,
    AssociateRJ,
    AssociateRQ,
    ReleaseRP,
    ReleaseRQ,
)
from .pdu_codes import PDU_TYPES

__all__ = ["DEFAULT_ARTIM_TIMEOUT", "JOIN_LIMIT", "ULConnection"]

log = logging.getLogger("dicomnet.ul")

DEFAULT_ARTIM_TIMEOUT = 30.0
#: PDUs this long or longer are handed to the transport as they are, not joined
#: with their neighbours (``chunks_to_send``): joining copies every byte.
JOIN_LIMIT = 1 << 16

#: States in which the peer sends nothing more but its user still owes it an
#: A-RELEASE response (PS3.8 Table 9-1, 7.2.2).
_OWING_RELEASE_RP = (State.Sta8, State.Sta12)

_new = object.__new__
_set = object.__setattr__

_PDU_EVENTS: dict[type, Event] = {
    AssociateAC: Event.Evt3,
    AssociateRJ: Event.Evt4,
    AssociateRQ: Event.Evt6,
    PDataTF: Event.Evt10,
    ReleaseRQ: Event.Evt12,
    ReleaseRP: Event.Evt13,
    AAbort: Event.Evt16,
}


def _version_check(rq: AssociateRQ) -> AssociateRJ | None:
    """AE-6's provider check: protocol version bit 0 must be set (PS3.8 9.3.2)."""
    if rq.protocol_version & 1:
        return None
    # rejected-permanent, service-provider (ACSE), protocol version not supported
    return AssociateRJ(result=1, source=2, reason=2)


class ULConnection:
    """One association's Upper Layer, requestor or acceptor side."""

    def __init__(
        self,
        role: Literal["requestor", "acceptor"],
        *,
        artim_timeout: float = DEFAULT_ARTIM_TIMEOUT,
        max_associate_length: int = 1 << 20,
    ) -> None:
        self.role = role
        self.artim_timeout = artim_timeout
        self._machine = Machine(is_requestor=role == "requestor", acceptable=_version_check)
        self._framer = PDUFramer(max_associate_length=max_associate_length)
        self._events: deque[ULEvent] = deque()
        self._out: list[bytes | bytearray | memoryview] = []
        self._artim_deadline: float | None = None
        self._now = 0.0
        self.wants_transport = False
        self.should_close = False
        #: Complete PDUs received so far (lets a driver time each PDU's arrival).
        self.pdus_received = 0
        #: Maximum P-DATA-TF PDU length the peer accepts from us (0: no limit).
        self.peer_max_pdu_length = 0
        #: Maximum P-DATA-TF PDU length we announced (0: no limit).
        self.local_max_pdu_length = 0
        #: The A-ASSOCIATE-RQ and -AC of this association, once known.
        self.associate_rq: AssociateRQ | None = None
        self.associate_ac: AssociateAC | None = None
        #: Acceptor: why the connection was refused before an association existed,
        #: in words (an invalid first PDU, answered with A-ABORT, AA-1; a protocol
        #: version we do not support, A-ASSOCIATE-RJ, AE-6). PS3.8 indicates
        #: neither to the user; a server logs this instead.
        self.refusal: str | None = None
        self._half_closed = False

    # -- state ---------------------------------------------------------------

    @property
    def state(self) -> State:
        return self._machine.state

    @property
    def is_established(self) -> bool:
        return self._machine.state is State.Sta6

    @property
    def borrow_pdata(self) -> bool:
        """When True, the data of each ``DataReceived`` PDV is a view of the bytes
        given to :meth:`receive_data`, not a copy: take (and use or copy) every
        event before reusing that memory. False by default."""
        return self._framer.borrow

    @borrow_pdata.setter
    def borrow_pdata(self, value: bool) -> None:
        self._framer.borrow = value

    @property
    def pdv_data_due(self) -> int:
        """Data bytes of the PDV being received still due (0 outside one): what a
        driver may receive straight into the data set's final memory."""
        # The framer's slot read here (``PDUFramer.pdv_data_due``): once per read.
        return self._framer._pdv_left or 0

    @property
    def header_bytes_due(self) -> int:
        """Header bytes due before the next PDV's data (``PDUFramer``)."""
        return self._framer.header_bytes_due

    @property
    def current_pdv(self) -> tuple[int, bool, bool] | None:
        """(context ID, is command, is last) of the PDV whose data is arriving, or
        None."""
        framer = self._framer  # as PDUFramer.current_pdv, one call fewer per read
        if framer._pdv_left is None:
            return None
        context_id, control = framer._pdv
        return context_id, bool(control & 1), bool(control & 2)

    def take_pdv_data(self, count: int, now: float) -> bool:
        """``count`` bytes from the transport that lie inside the data of the PDV
        being received, short of its end, and that the driver consumed itself
        (received in place): the Upper Layer only counts them (PS3.8 9.3.5: PDV
        data carries nothing it reads), no event. False, changing nothing, when
        they must go through :meth:`receive_data` (they end the PDV, or no
        P-DATA is being streamed)."""
        if self._machine.state is not State.Sta6 or not self._framer.take_pdv_data(count):
            return False
        self._now = now
        return True

    def end_pdv_data(self, count: int, now: float) -> bool:
        """Like :meth:`take_pdv_data`, for the bytes that complete the PDV's data:
        the driver consumed them and acts on the PDV's end itself (no
        ``DataReceived``). False, changing nothing, unless ``count`` is exactly
        the data still due and the association is established."""
        framer = self._framer
        if self._machine.state is not State.Sta6 or not framer.end_pdv_data(count):
            return False
        self._now = now
        self.pdus_received = framer.completed
        return True

    def consume_pdv_data(self, count: int, now: float) -> int:
        """:meth:`take_pdv_data` and :meth:`end_pdv_data` in one call, for a driver
        that does not know which its bytes do: ``PDUFramer.consume_pdv_data``'s
        answer (``ul.framing.NOT_TAKEN``, ``TAKEN``, ``PDV_ENDED``, ``PDU_ENDED``:
        the PDV and its PDU ended, no partial PDU held). NOT_TAKEN, changing
        nothing, unless the association is established."""
        if self._machine.state is not State.Sta6:
            return NOT_TAKEN
        framer = self._framer
        taken = framer.consume_pdv_data(count)
        if taken:
            self._now = now
            self.pdus_received = framer.completed
        return taken

    @property
    def half_closed(self) -> bool:
        """True while the peer's stream has ended (``receive_data(b"")``) in Sta8 or
        Sta12, its A-RELEASE-RP not yet sent: the driver keeps its own side of
        the transport open to write what is still due, and Evt17 follows the
        A-RELEASE response (see the module docstring)."""
        return self._half_closed

    @property
    def has_partial_pdu(self) -> bool:
        """True while part of a PDU has arrived and the rest is awaited."""
        framer = self._framer  # as PDUFramer.in_pdu, one call fewer per read
        return framer._pdata_left is not None or len(framer._buffer) > framer._start

    # -- user primitives -------------------------------------------------------

    def associate(self, rq: AssociateRQ) -> None:
        """A-ASSOCIATE request (Evt1). The driver then opens the transport and calls
        ``transport_connected``, which sends ``rq`` (AE-2)."""
        self.associate_rq = rq
        self._fire(Event.Evt1, rq)

    def transport_connected(self, now: float) -> None:
        """The transport is up: Evt2 for a requestor (sends the A-ASSOCIATE-RQ),
        Evt5 for an acceptor (starts ARTIM while awaiting the A-ASSOCIATE-RQ)."""
        self._now = now
        if self.role == "requestor":
            self.wants_transport = False
            self._fire(Event.Evt2, self.associate_rq)
        else:
            self._fire(Event.Evt5)

    def accept(self, ac: AssociateAC) -> None:
        """A-ASSOCIATE response, accept (Evt7): sends ``ac``."""
        self.associate_ac = ac
        self._fire(Event.Evt7, ac)
        self.peer_max_pdu_length = _max_length(self.associate_rq)
        self._set_local_max(_max_length(ac))

    def reject(self, rj: AssociateRJ, now: float) -> None:
        """A-ASSOCIATE response, reject (Evt8): sends ``rj`` and awaits the close."""
        self._now = now
        self._fire(Event.Evt8, rj)

    def send_pdata(self, pdata: PDataTF | bytes | bytearray | memoryview) -> None:
        """P-DATA request (Evt9). ``pdata`` may be a pre-encoded P-DATA-TF PDU
        (``ul.pdu.encode_pdata``), the fast path for bulk data; a ``bytearray`` or
        ``memoryview`` is queued as is, so its bytes must not change until written."""
        state = self._machine.state
        if state is State.Sta6 and isinstance(pdata, bytes | bytearray | memoryview):
            # The hot path for bulk data: DT-1 is only "send P-DATA-TF; next Sta6",
            # so skip building an effect per PDU.
            self._out.append(pdata)
            return
        self._fire(Event.Evt9, bytes(pdata) if isinstance(pdata, bytearray | memoryview) else pdata)

    def release(self) -> None:
        """A-RELEASE request (Evt11)."""
        self._fire(Event.Evt11)

    def release_response(self, now: float) -> None:
        """A-RELEASE response (Evt14), after a ``ReleaseRequested`` event."""
        self._now = now
        self._fire(Event.Evt14)

    def abort(self, now: float, *, reason: int = 0) -> None:
        """A-ABORT request (Evt15). Outside Table 9-10 (Sta1, Sta2, Sta13 — no
        association to abort) this just closes the transport, or does nothing."""
        self._now = now
        state = self._machine.state
        if state in (State.Sta1, State.Sta13):
            return
        if state is State.Sta2:
            self._artim_deadline = None
            self._machine.state = State.Sta1
            self.should_close = True
            return
        self._fire(Event.Evt15, AAbort(source=0, reason=reason))

    # -- transport side ----------------------------------------------------------

    def receive_data(self, data: bytes | bytearray | memoryview, now: float) -> None:
        """Bytes from the transport; ``b""`` is the transport-closed indication (Evt17)."""
        self._now = now
        if not data:
            state = self._machine.state
            if state in _OWING_RELEASE_RP and not self._framer.in_pdu:
                self._half_closed = True
                log.debug("the peer closed its side in %s: Evt17 waits for our A-RELEASE-RP",
                          state.name)
            elif state is not State.Sta1:
                self._fire(Event.Evt17)
            return
        if self._half_closed:
            return  # nothing comes after the end of the stream
        if self._machine.state in (State.Sta1, State.Sta4):
            return  # no association on this transport any more: drop late bytes
        framer = self._framer
        try:
            # Once associated, P-DATA-TF PDUs are streamed: their PDV data reaches
            # the user as it arrives (see PDUFramer.receive).
            machine = self._machine
            events = self._events
            for pdu in framer.receive(data, stream_pdata=machine.state is State.Sta6):
                self.pdus_received = framer.completed
                if pdu.__class__ is PDataTF and machine.state is State.Sta6:
                    # DT-2 (Evt10 in Sta6: indicate P-DATA, stay in Sta6), the
                    # table's answer taken here: no call per PDU (see _on_pdu),
                    # and the event made as DataReceived(pdu) would, without its
                    # __init__'s Python frame (its one field, the framer's PDU).
                    event = _new(DataReceived)
                    _set(event, "pdu", pdu)
                    events.append(event)
                    continue
                self._on_pdu(pdu)
                if machine.state is State.Sta1:
                    return
            self.pdus_received = framer.completed
        except RemoteProtocolError as exc:
            if self._machine.state is State.Sta13 and self._artim_deadline is not None:
                # Already aborting: AA-7 would send yet another A-ABORT; one is enough.
                return
            log.debug("invalid PDU from peer: %s", exc)
            if self._machine.state is State.Sta2:
                self.refusal = f"{exc}; A-ABORT sent"
            self._fire(Event.Evt19, exc)

    def _on_pdu(self, pdu: PDU) -> None:
        if type(pdu) is PDataTF and self._machine.state is State.Sta6:
            # DT-2 without the table walk: the bulk-data hot path.
            self._events.append(DataReceived(pdu))
            return
        event = _PDU_EVENTS[type(pdu)]
        if event is Event.Evt3 and isinstance(pdu, AssociateAC):
            _check_answers(self.associate_rq, pdu)
            _check_max_length(pdu)
            self.associate_ac = pdu
            self.peer_max_pdu_length = _max_length(pdu)
            self._set_local_max(_max_length(self.associate_rq))
        elif event is Event.Evt6 and isinstance(pdu, AssociateRQ):
            self.associate_rq = pdu  # kept: the refusal names its AE titles
            _check_max_length(pdu)
        before = self._machine.state
        self._fire(event, pdu)
        if before is State.Sta2 and self._machine.state is State.Sta13:
            self.refusal = (
                f"protocol version {pdu.protocol_version:#06x} not supported "
                f"(PS3.8 9.3.2); A-ASSOCIATE-RJ sent" if isinstance(pdu, AssociateRQ)
                else f"{PDU_TYPES[pdu.pdu_type]} PDU before any A-ASSOCIATE-RQ; A-ABORT sent")

    def transport_failed(self, now: float, detail: str) -> None:
        """The transport could not be opened, or broke (Evt17 with a reason)."""
        self._now = now
        if self._machine.state is not State.Sta1:
            self._fire(Event.Evt17, detail)

    def get_timer(self) -> float | None:
        """The ARTIM deadline, or None when ARTIM is not running."""
        return self._artim_deadline

    def handle_timer(self, now: float) -> None:
        """Fire ARTIM (Evt18) if its deadline has passed."""
        self._now = now
        if self._artim_deadline is not None and now >= self._artim_deadline:
            self._artim_deadline = None
            self._fire(Event.Evt18)

    def next_event(self) -> ULEvent | None:
        """The next indication or confirmation for the user, or None."""
        return self._events.popleft() if self._events else None

    def take_events(self) -> list[ULEvent]:
        """Every indication and confirmation pending, in order (empty if none): what
        calling :meth:`next_event` until None returns, in one call (a driver that
        takes them after each read saves a call per event)."""
        events = self._events
        if not events:
            return []
        taken = list(events)
        events.clear()
        return taken

    @property
    def has_data_to_send(self) -> bool:
        """Whether :meth:`chunks_to_send` (or :meth:`data_to_send`) has anything."""
        return bool(self._out)

    def data_to_send(self) -> bytes | bytearray | memoryview:
        """Everything queued for the transport since the last call, as one buffer."""
        chunks = self.chunks_to_send()
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def chunks_to_send(self) -> list[bytes | bytearray | memoryview]:
        """What :meth:`data_to_send` would return, as chunks to write in order,
        without copying a large PDU: each PDU of ``JOIN_LIMIT`` bytes or more is a
        chunk of its own (a sender's data PDU, built in place), and each run of
        smaller ones is joined into one (a command, a window of responses: one
        write, one TLS record)."""
        out = self._out
        if len(out) <= 1:
            self._out = []
            return out
        self._out = []
        chunks: list[bytes | bytearray | memoryview] = []
        start = 0
        for index, pdu in enumerate(out):
            if len(pdu) >= JOIN_LIMIT:
                if index > start:
                    chunks.append(out[start] if index - start == 1 else b"".join(out[start:index]))
                chunks.append(pdu)
                start = index + 1
        if start < len(out):
            chunks.append(out[start] if len(out) - start == 1 else b"".join(out[start:]))
        return chunks

    # -- internals -----------------------------------------------------------------

    def _set_local_max(self, value: int) -> None:
        self.local_max_pdu_length = value
        self._framer.max_pdata_length = value

    def _fire(self, event: Event, arg: object = None) -> None:
        machine = self._machine
        before = machine.state
        action = machine.fire(event, arg)
        log.debug("%s + %s -> %s -> %s", before.name, event.name, action, machine.state.name)
        effects = machine.effects
        machine.effects = []
        for effect in effects:
            if isinstance(effect, SendPDU):
                self._out.append(effect.pdu.encode())
            elif isinstance(effect, Indicate):
                self._events.append(effect.event)
            elif isinstance(effect, StartArtim):
                self._artim_deadline = self._now + self.artim_timeout
            elif isinstance(effect, StopArtim):
                self._artim_deadline = None
            elif isinstance(effect, OpenTransport):
                self.wants_transport = True
            elif isinstance(effect, CloseTransport):
                self.should_close = True
                self._artim_deadline = None
        if self._half_closed and machine.state not in _OWING_RELEASE_RP:
            # The held end of the peer's stream, now that our answer is out (AR-4:
            # Sta13, then AR-5) or the association ended otherwise (an abort).
            self._half_closed = False
            if machine.state is not State.Sta1:
                self._fire(Event.Evt17)


def _max_length(pdu: AssociateRQ | AssociateAC | None) -> int:
    if pdu is None:
        return 0
    value = pdu.user_information.maximum_length
    return value or 0


#: The PDU length of a P-DATA-TF whose one PDV carries one byte of data: PDV item
#: length (4), presentation context ID, message control header (PS3.8 9.3.5).
_SMALLEST_USABLE_MAX_LENGTH = 7


def _check_max_length(pdu: AssociateRQ | AssociateAC) -> None:
    """A Maximum Length (PS3.8 D.1.1) from 1 to 6 leaves no room in a P-DATA-TF
    for one byte of PDV data: nothing could ever be sent to that peer, so the
    A-ASSOCIATE-RQ/AC is an invalid PDU parameter value (Evt19, A-ABORT reason
    6) rather than an association that fails at its first message. 0 is no
    limit."""
    value = pdu.user_information.maximum_length
    if value and value < _SMALLEST_USABLE_MAX_LENGTH:
        raise RemoteProtocolError(
            f"{PDU_TYPES[pdu.pdu_type]}: Maximum Length {value} leaves no room for PDV "
            "data (PS3.8 D.1.1, 9.3.5)", abort_source=2, abort_reason=6)


def _check_answers(rq: AssociateRQ | None, ac: AssociateAC) -> None:
    """An A-ASSOCIATE-AC answers only the presentation contexts proposed, and
    accepts each in one of the transfer syntaxes proposed for it (PS3.8 7.1.1.14);
    anything else is an invalid PDU parameter value (Evt19: A-ABORT reason 6, PS3.8
    Table 9-26). Taken, an unproposed syntax had an SCU convert its objects to it.
    A rejected context's transfer syntax is not significant (Table 9-18)."""
    if rq is None:
        return
    proposed = {pc.context_id: pc.transfer_syntaxes for pc in rq.presentation_contexts}
    for pc in ac.presentation_contexts:
        syntaxes = proposed.get(pc.context_id)
        if syntaxes is None:
            raise RemoteProtocolError(
                f"A-ASSOCIATE-AC answers presentation context {pc.context_id}, which was not "
                "proposed (PS3.8 7.1.1.14)", abort_source=2, abort_reason=6)
        if pc.result == PC_ACCEPTANCE and pc.transfer_syntax not in syntaxes:
            raise RemoteProtocolError(
                f"A-ASSOCIATE-AC accepts presentation context {pc.context_id} in transfer "
                f"syntax {pc.transfer_syntax}, which was not proposed for it (PS3.8 7.1.1.14)",
                abort_source=2, abort_reason=6)
