"""Receiving a data set in place: the data of a long PDV read by the transport
straight into its sink's memory (``DatasetSink.reserve``), and taken the short
way, without the Upper Layer's PDU views and events, nor DIMSE's routing
(PS3.8 9.3.5, E.2: only counted, after the checks they would make). A base of
``aio.association.Association``, which feeds it: its ``_incoming`` message (the
one whose data set is arriving), its Upper Layer and DIMSE cores, its inbox
(``_deliver``) and its deadlines (``aio.deadlines.Deadlines``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..dimse.connection import DimseConnection
from ..dimse.messages import DimseMessage
from ..errors import AssociationAborted
from ..ul.connection import ULConnection
from ..ul.events import ULEvent
from ..ul.framing import NOT_TAKEN, PDU_ENDED, TAKEN
from .indications import MessagesRouted
from .sinks import DatasetSink

__all__ = ["InPlaceReceiving"]

log = logging.getLogger("dicomnet.aio")

#: PDV data due from which it is received in place, into its sink's memory.
_IN_PLACE_FROM = 64 << 10
#: The headers that may follow a PDV's data before the next PDV's: a PDU's and a
#: PDV item's (PS3.8 9.3.5); a PDV item's alone, inside a P-DATA-TF.
_HEADERS = 12
_PDV_HEADER = 6


class InPlaceReceiving:
    """Where the transport puts the next bytes, and their short way in (see the
    module docstring)."""

    # The association's own, read and written here.
    ul: ULConnection
    dimse: DimseConnection
    failure: AssociationAborted | None
    _incoming: tuple[int, DimseMessage, DatasetSink] | None
    _unrouted: list[ULEvent]
    _routed_bytes: int
    _inbox_bytes: int
    _pdus_seen: int
    _pdu_started: float | None
    _timer_at: float | None

    if TYPE_CHECKING:
        def _deliver(self, events: list[ULEvent | MessagesRouted]) -> None: ...

        def _rearm(self) -> None: ...

        def _name(self) -> str: ...

    def _start_in_place(self) -> None:
        """The state of receiving in place: called once, by the association's
        ``__init__``."""
        # The sink that last took bytes in place (see _receive_target).
        self._in_place_sink: DatasetSink | None = None
        # The sink whose reserve method _receive_target last looked up, and that.
        self._reserve_of: DatasetSink | None = None
        self._reserve: Callable[[int], memoryview | int | None] | None = None
        # Set once a data set of the association went in place: reads are then
        # bounded between its messages too (see _receive_target).
        self._reads_bounded = False

    def _receive_target(self) -> memoryview | int | None:
        """Where the transport should put the next bytes (``Receiver.attach``).

        While a data set arrives into a sink that can take bytes in place (its
        ``reserve``), the data of a long PDV is received straight into that
        sink's memory. Once one data set of the association went in place, no
        read goes past the start of the next long PDV's data: between PDVs only
        the headers up to the next PDV's data are read, and a short PDV (a
        command, a data set's last) is read with the headers after it and no
        further, so that the next data set's data is received in place from its
        first long PDV, not copied from the transport's buffer (the data of a
        whole read, up to 256 KiB, per object; docs/benchmarks.md, session 37).
        A data set that took no bytes in place (a small one) lifts those bounds
        until the next that does (``Association._route_now``): a run of small
        messages is read as before, many per read. A sink's ``reserve`` may
        also answer a count: read that many bytes at most through its
        ``write``, then ask again. Otherwise None: the transport's own buffer,
        copied by the sink."""
        if self.failure is not None or self._unrouted:
            return None  # with events unrouted, DIMSE is behind the Upper Layer
        incoming = self._incoming
        due = self.ul.pdv_data_due
        if due >= _IN_PLACE_FROM and incoming is not None:
            sink = incoming[2]
            if sink is not self._reserve_of:  # looked up once per data set, not per read
                self._reserve_of, self._reserve = sink, getattr(sink, "reserve", None)
            reserve = self._reserve
            if reserve is None:
                return None
            try:
                target = reserve(due)
            except Exception:  # the transport must read on: the sink's write reports
                log.exception("%s: a sink's reserve() failed", self._name())
                return None
            if type(target) is memoryview:  # once per read: no isinstance call
                self._in_place_sink = sink
                self._reads_bounded = True
            return target
        if not self._reads_bounded:
            return None
        if due == 0:
            return self.ul.header_bytes_due or None
        if due < _IN_PLACE_FROM:
            pdv = self.ul.current_pdv
            if pdv is None:
                return None
            if pdv[2]:  # a message's last PDV: a command, a data set's tail
                return due + _HEADERS
            if (incoming is not None and incoming[2] is self._in_place_sink
                    and not pdv[1]):
                # The rest of a long PDV partly received in place, up to the next
                # PDV's item header: never into its data, whose start would then
                # come through the transport's buffer, copied.
                return due + _PDV_HEADER
            # Short PDVs inside a message (an odd sender's split): read as usual,
            # many at a time, rather than a read each.
            return None
        return None  # a long PDV no sink takes in place

    def _take_in_place(self, sink: DatasetSink, data: memoryview, now: float) -> bool:
        """Data set bytes received into ``sink``'s memory, taken the short way: the
        sink gets them at once; the Upper Layer and DIMSE only count them, after
        the checks DIMSE would make (no PDU view, no event, no routing): bytes in
        or at the end of a data PDV of the data set due; those that end its last
        PDV complete the message, as ``_route_now`` would. False when the bytes
        must take the usual way (they are not the data set's, or not all of one
        PDV's data)."""
        incoming = self._incoming
        pdv = self.ul.current_pdv
        if (incoming is None or incoming[2] is not sink or self.failure is not None
                or pdv is None or pdv[1] or not self.dimse.takes_data_on(pdv[0])):
            return False
        ul = self.ul
        count = len(data)
        consumed = ul.consume_pdv_data(count, now)
        if consumed == NOT_TAKEN:
            return False
        ending = False
        if consumed != TAKEN:  # the PDV's last bytes
            # PS3.8 E.2: a data PDV marked last ends the data set, hence the message;
            # another one only its stretch (the data set goes on in the next PDV).
            ending = pdv[2]
            if ending:
                taken = self.dimse.take_last_data(pdv[0])
                assert taken  # takes_data_on held just above
            self._pdus_seen = ul.pdus_received
            if consumed == PDU_ENDED:  # no partial PDU held (has_partial_pdu)
                # The data set goes on unless this PDV ended it: its next PDU is
                # then due within the PDU deadline (as in _on_bytes).
                self._pdu_started = None if ending else now
                if not ending:
                    self._pdus_seen = -1
        self._routed_bytes += count
        try:
            sink.write(data)
        except Exception as exc:  # as in _route_now: raised in the association's task
            self._deliver([MessagesRouted([], exc)])
            return True
        if ending:
            self._incoming = self._in_place_sink = None
            self._inbox_bytes += self._routed_bytes
            self._routed_bytes = 0
            self._deliver([MessagesRouted([incoming], None)])
        if self._timer_at is None:
            self._rearm()
        return True
