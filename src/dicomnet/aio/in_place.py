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
        self._reserve: Callable[[int], memoryview | None] | None = None

    def _receive_target(self) -> memoryview | int | None:
        """Where the transport should put the next bytes (``Receiver.attach``).

        While a data set arrives into a sink that can take bytes in place (its
        ``reserve``), the data of a long PDV is received straight into that
        sink's memory, and between PDVs only the headers up to the next PDV's
        data are read (once a PDV of this data set went in place: small messages
        are read whole), so that the data after them can be received in place
        too. Otherwise None: the transport's own buffer, copied by the sink."""
        incoming = self._incoming
        if incoming is None or self.failure is not None or self._unrouted:
            return None  # with events unrouted, DIMSE is behind the Upper Layer
        sink = incoming[2]
        if sink is not self._reserve_of:  # looked up once per data set, not per read
            self._reserve_of, self._reserve = sink, getattr(sink, "reserve", None)
        reserve = self._reserve
        if reserve is None:
            return None
        due = self.ul.pdv_data_due
        if due >= _IN_PLACE_FROM:
            try:
                view: memoryview | None = reserve(due)
            except Exception:  # the transport must read on: the sink's write reports
                log.exception("%s: a sink's reserve() failed", self._name())
                return None
            if view is not None:
                self._in_place_sink = sink
            return view
        if due == 0 and sink is self._in_place_sink:
            return self.ul.header_bytes_due or None
        return None  # a short remainder: through the transport's buffer

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
