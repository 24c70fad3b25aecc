"""The deadlines of one association: ARTIM (PS3.8 9.1.5) and those of
``Timeouts`` (idle, whole PDU, the DIMSE timeout of a send the peer does not
read, a server's operation timeout), as one ``loop.call_at`` handle re-armed as
they move, never a polling loop. A base of ``aio.association.Association``,
which feeds it: reads move ``_last_rx`` and ``_pdu_started``, writes
``_last_tx``, a server's operations ``_oldest_started``; a deadline that
passes aborts the association (A-ABORT, PS3.8 7.3), or ends it (ARTIM).
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import TYPE_CHECKING

from ..config import Timeouts
from ..errors import AssociationAborted
from ..ul.connection import ULConnection
from .transport import CLOSE_GRACE, Stream

if TYPE_CHECKING:
    from ..dimse.connection import DimseConnection

__all__ = ["Deadlines"]

log = logging.getLogger("dicomnet.aio")


class Deadlines:
    """The timer of an association (see the module docstring)."""

    # The association's own, read here.
    ul: ULConnection
    stream: Stream
    timeouts: Timeouts
    _loop: asyncio.AbstractEventLoop
    _paused: bool
    _closed: asyncio.Event

    if TYPE_CHECKING:
        dimse: DimseConnection

        def _fail(self, error: AssociationAborted) -> None: ...

        def _name(self) -> str: ...

        def _queue_out(self) -> None: ...

        def _local_abort(self, detail: str) -> None: ...

    def _start_deadlines(self) -> None:
        """The deadlines' state, from now: called once, by the association's
        ``__init__`` (its ``_loop`` and ``timeouts`` set)."""
        timeouts = self.timeouts
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._last_rx = self._loop.time()
        #: When the transport last took what we wrote down to its low-water mark:
        #: the peer reads. A long data set sent counts as activity for the idle
        #: deadline as much as bytes received (a requestor receives nothing while
        #: it sends one).
        self._last_tx = self._last_rx
        #: The transport's unsent bytes when last looked at (by a timer firing, or a
        #: write done): fewer since is the peer reading too.
        self._tx_backlog = 0
        #: A message's bytes wait for the peer to read some (the transport paused
        #: writing): ``Timeouts.dimse`` bounds that wait.
        self._send_waiting = False
        self._pdu_started: float | None = None
        self._pdus_seen = 0
        # The nearest a read can put the idle or PDU deadline (_rearm_if_earlier).
        self._nearest_timeout = min(
            (t for t in (timeouts.idle, timeouts.pdu) if t is not None), default=math.inf)

    def _next_deadline(self) -> float | None:
        candidates = []
        artim = self.ul.get_timer()
        if artim is not None:
            candidates.append(artim)
        if self._send_waiting and self.timeouts.dimse is not None:
            candidates.append(self._last_tx + self.timeouts.dimse)
        operation = self._operation_deadline()
        if operation is not None:
            candidates.append(operation)  # ours to keep: paused reading or not
        if self._paused:
            # We stopped reading (our task behind): the peer cannot be slow or idle
            # then. Its deadlines start again when we read again (_read_events).
            return min(candidates) if candidates else None
        idle = self._idle_deadline()
        if idle is not None:
            candidates.append(idle)
        if self._pdu_started is not None and self.timeouts.pdu is not None:
            candidates.append(self._pdu_started + self.timeouts.pdu)
        return min(candidates) if candidates else None

    def _rearm(self) -> None:
        deadline = self._next_deadline()
        if deadline is None:
            return  # a timer still armed only re-checks when it fires
        if self._timer_at is not None and self._timer_at <= deadline:
            # Deadlines mostly move later (each read pushes the idle one): keep the
            # armed timer, which re-arms itself when it fires early, instead of
            # replacing a handle on every read.
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = deadline
        if deadline is not None:
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def _rearm_if_earlier(self) -> None:
        """``_rearm`` when a deadline may now be due before the armed timer. A read
        only moves the idle and PDU deadlines to the time of the last read plus
        their timeouts, and an armed timer due before that stays right (it
        re-arms itself when it fires early): only a timer later than that (the
        idle deadline just started, say, once established), or ARTIM running,
        needs the full work."""
        timer_at = self._timer_at
        if (timer_at is None or timer_at > self._last_rx + self._nearest_timeout
                or self.ul.get_timer() is not None):
            self._rearm()

    def stop_timers(self) -> None:
        """The association is over: drop its timer (it would keep it alive until
        the idle deadline, minutes away)."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._timer_at = None

    def _idle_deadline(self) -> float | None:
        """When the idle deadline falls (reading). None when there is none, or
        when the operation timeout bounds an answer we owe: the peer, waiting
        for it, is not idle (a handler allowed ten minutes must not be cut at
        the idle timeout's five)."""
        if not self.ul.is_established or self.timeouts.idle is None or (
                self.timeouts.operation is not None
                and self._oldest_started() is not None):
            return None
        return max(self._last_rx, self._last_tx) + self.timeouts.idle

    def _operation_deadline(self) -> float | None:
        """When the oldest operation being performed must have its answer ready
        (``Timeouts.operation``), or None."""
        oldest = self._oldest_started()
        if oldest is None or self.timeouts.operation is None:
            return None
        return oldest + self.timeouts.operation

    def _oldest_started(self) -> float | None:
        """When the oldest operation still being performed started (the loop's
        clock): a server's (``ServerAssociation``); None here. Cheap: every
        re-arm asks."""
        return None

    def _oldest_operation(self) -> tuple[float, str, str] | None:
        """When the oldest operation still being performed started, what it is
        ("C-STORE-RQ") and what its answer waits for ("its handler has not
        returned"), for the abort's words: a server's; None here."""
        return None

    def _operation_timed_out(self) -> None:
        """The operation timeout fired, the association about to be aborted: a
        server says at WARNING which handler hung; nothing here."""

    def _idle_reason(self) -> str:
        """Why the idle deadline ends the association: nothing came or went; or,
        with an answer of ours owed, our side was the slow one (a handler that has
        not returned: the peer waits for it)."""
        if self._answers_owed():
            return (f"no answer from this side for {self.timeouts.idle}s: its handler has "
                    "not returned, the peer waits for it (idle timeout)")
        return f"nothing received or sent for {self.timeouts.idle}s (idle timeout)"

    def _answers_owed(self) -> bool:
        """Whether we owe the peer an answer (a server performing its request)."""
        return False

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        now = self._loop.time()
        backlog = self.stream.writer.transport.get_write_buffer_size()
        if backlog < self._tx_backlog:
            self._last_tx = now  # the peer read some of what waits: not stalled
        self._tx_backlog = backlog
        reading = not self._paused  # paused by us: no PDU or idle deadline (_next_deadline)
        # Unsent bytes left when a deadline of the peer's fired: it reads nothing (the
        # idle one: it took nothing for that long), so the A-ABORT cannot reach it
        # behind them; waiting out the close's grace would only hold a caller.
        grace = 0.0
        artim = self.ul.get_timer()
        operation = self._operation_deadline()
        idle = self._idle_deadline()
        if artim is not None and now >= artim:
            # In Sta2 the connection's end line says it (a WARNING, per connection of a
            # flood): this one would double it. In Sta13 it tells the peer kept the
            # connection after the A-ABORT or release, which the end line does not.
            log.log(logging.DEBUG if self.ul.state.name == "Sta2" else logging.INFO,
                    "%s: ARTIM expired in %s", self._name(), self.ul.state.name)
            self.ul.handle_timer(now)
            self._fail(AssociationAborted(None, None, "ARTIM timer expired", by="us"))
        elif operation is not None and now >= operation:
            oldest = self._oldest_operation()
            assert oldest is not None
            self._operation_timed_out()
            self._local_abort(
                f"a {oldest[1]} was not answered within {self.timeouts.operation}s: "
                f"{oldest[2]}, the slow side is this one (operation timeout)")
            grace = CLOSE_GRACE  # the peer reads: its A-ABORT goes out first
        elif reading and self._pdu_started is not None and self.timeouts.pdu is not None and (
            now >= self._pdu_started + self.timeouts.pdu
        ):
            if self.ul.has_partial_pdu:
                self._local_abort(f"a PDU took longer than {self.timeouts.pdu}s to arrive")
            elif self.dimse.idle:
                # The message completed since the clock started (a requestor's task
                # took what was queued, behind the read): no message is due.
                self._pdu_started = None
                self._rearm()
                return
            else:
                self._local_abort(f"a message in progress stopped between its PDUs: "
                                  f"nothing more of it for {self.timeouts.pdu}s")
        elif self._send_waiting and self.timeouts.dimse is not None and (
            now >= self._last_tx + self.timeouts.dimse
        ):
            self._local_abort(f"the peer read nothing of what was sent for "
                              f"{self.timeouts.dimse}s")
        elif reading and idle is not None and now >= idle:
            self._local_abort(self._idle_reason())
        else:
            self._rearm()
            return
        self._queue_out()
        self.stream.close_soon(grace=grace)
        self._closed.set()
