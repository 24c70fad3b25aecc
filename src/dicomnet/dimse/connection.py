"""Sans-I/O DIMSE connection: PDVs in, DIMSE events out (PS3.7 8, 9, 10; PS3.8 Annex E).

:class:`DimseConnection` sits on top of the Upper Layer the way an HTTP/3
layer sits on QUIC: the association driver hands it each presentation data
value of each P-DATA-TF it receives, and it answers with events:

* :class:`MessageReceived` when a command set is complete; if
  ``message.has_dataset``, the data set follows as
* :class:`DatasetFragment` events, one per data PDV, the last with
  ``is_last=True``. Fragments are passed on, not buffered, so a data set of
  any size can go straight to a file.

It knows nothing of the UL state machine, sockets or time.

Rules enforced on what the peer sends (PS3.7 8.1-8.2; PS3.8 E.2), each a
:class:`~dicomnet.errors.RemoteProtocolError`:

* a PDV in the wrong place: a data PDV before any command that announced a
  data set or while a command set is still incomplete, a command PDV while a
  data set is pending (this covers a command fragment after the last command
  fragment of a message with a data set), a PDV whose presentation context
  differs from its message's;
* a command set that cannot be decoded (a C-STORE-RSP or C-ECHO-RQ/RSP whose
  Command Data Set Type claims a data set among them:
  ``messages.decode_message``), or that grows beyond
  :data:`MAX_COMMAND_SET_LENGTH` (command sets are a few hundred bytes: a
  hostile peer must not make us buffer megabytes);
* a message cut into more than :data:`FREE_FRAGMENTS` PDVs that average under
  ``min_fragment_mean`` bytes (each PDV costs the same few microseconds
  whatever it holds: empty or one-byte PDVs would let a peer keep a core busy
  with a trickle of bytes, or send an endless command set of empty ones). A
  PDV the Upper Layer streams in stretches (``continues``: small reads, small
  TLS records) counts once: how the bytes were read does not make PDVs.

Who aborts, and with what (PS3.8 9.3.8, Table 9-26): each of these errors asks
for an A-ABORT of the service-user, source 0, reason 0 (``abort_source``,
``abort_reason``). The PDUs carrying them were well formed: the Upper Layer
provider took them, and the fault is found above it, in the DIMSE layer, a
user of the UL service. Its abort is an A-ABORT request (PS3.8 7.3), not the
provider's A-P-ABORT (7.4: "problems in services at the Presentation Layer and
below"): Table 9-26's reasons 0-6 (not specified; unrecognized or unexpected
PDU; unrecognized, unexpected or invalid PDU parameter) are for source 2, a
fault in a PDU itself (``ul.framing``, ``ul.fsm`` AA-8); for source 0 the
reason "shall not be significant" and is sent as 00H. The association
drivers (``aio``) abort so, as they abort for any other reason of their own,
and the log line says what was wrong.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol

from dicomnet.dimse.fragments import command_pdus, dataset_pdus
from dicomnet.dimse.messages import (
    DimseMessage,
    decode_message,
    decode_store_rq,
    decode_store_rsp,
    encode_message,
)
from dicomnet.errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "FREE_FRAGMENTS",
    "MAX_COMMAND_SET_LENGTH",
    "DatasetFragment",
    "DimseConnection",
    "DimseEvent",
    "MessageReceived",
    "PDV",
    "fragment_floor",
]

#: Largest command set we reassemble, in bytes.
MAX_COMMAND_SET_LENGTH: Final = 64 * 1024

#: PDVs a message (its command set, then its data set) may come in whatever their
#: size; past these, they must average ``min_fragment_mean`` bytes.
FREE_FRAGMENTS: Final = 1024


def fragment_floor(max_pdu_length: int) -> int:
    """The ``min_fragment_mean`` for a receiver announcing ``max_pdu_length`` (0:
    unlimited, PS3.8 D.1): 256 bytes, or a quarter of a PDU's data when our own
    maximum leaves less room (a peer must then cut its messages small)."""
    if max_pdu_length == 0:
        return 256
    return min(256, max(0, (max_pdu_length - 6) // 4))




class PDV(Protocol):
    """What we need of a presentation data value (``ul.pdu.PresentationDataValue``).

    A protocol rather than an import keeps this layer independent of the UL codec.
    """

    @property
    def context_id(self) -> int: ...
    @property
    def is_command(self) -> bool: ...
    @property
    def is_last(self) -> bool: ...
    @property
    def data(self) -> bytes | memoryview: ...


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """A complete command set arrived on ``context_id`` (PS3.7 8.1).

    If ``message.has_dataset`` its data set follows as :class:`DatasetFragment` events.
    """

    context_id: int
    message: DimseMessage


@dataclass(frozen=True, slots=True)
class DatasetFragment:
    """One data PDV of the data set of the last :class:`MessageReceived` (PS3.7 8.2).

    ``data`` is a view of the receive buffer when the Upper Layer lends its
    P-DATA (``ULConnection.borrow_pdata``): valid only while the event is handled.
    """

    context_id: int
    data: bytes | memoryview
    is_last: bool


DimseEvent = MessageReceived | DatasetFragment


def _fault(message: str) -> RemoteProtocolError:
    """A DIMSE fault: A-ABORT by the service-user, source 0, reason 0 (PS3.8 Table
    9-26; the module docstring says why)."""
    return RemoteProtocolError(message, abort_source=0, abort_reason=0)


class DimseConnection:
    """DIMSE message reassembly and message IDs for one association (PS3.7 8-10).

    Receiving: feed every PDV of every received P-DATA-TF, in order, to
    :meth:`receive_pdv`. Sending: :meth:`next_message_id`, then
    :meth:`encode_request` / :meth:`encode_response` for the PDUs to write.
    """

    __slots__ = ("_command", "_command_context", "_dataset_context", "_fragment_bytes",
                 "_fragments", "_last_message_id", "message_id_in_use", "min_fragment_mean",
                 "store_requests_first", "store_responses_first")

    def __init__(self, *, min_fragment_mean: int = 256) -> None:
        #: Least mean PDV size (bytes) of a message past FREE_FRAGMENTS PDVs
        #: (:func:`fragment_floor` of the maximum PDU length we announce).
        self.min_fragment_mean = min_fragment_mean
        # PDVs, and their bytes, of the message being received (reset at its end).
        self._fragments = 0
        self._fragment_bytes = 0
        self._command = bytearray()
        # Context of the command set being reassembled, or None between messages.
        self._command_context: int | None = None
        # Context whose data set we are receiving, or None if no data set is due.
        self._dataset_context: int | None = None
        self._last_message_id = 0
        #: Whether a Message ID is still outstanding (the requestor's own record:
        #: this layer sees no responses): :meth:`next_message_id` skips those.
        self.message_id_in_use: Callable[[int], bool] | None = None
        #: Whether a command set received is tried as a C-STORE-RSP first
        #: (``decode_store_rsp``): a requestor's, which reads one per object sent.
        self.store_responses_first = False
        #: Whether a command set received is tried as a C-STORE-RQ first
        #: (``decode_store_rq``): an acceptor's, which reads one per object stored.
        self.store_requests_first = False

    # ------------------------------------------------------------------ receiving

    @property
    def expecting_dataset(self) -> bool:
        """True between a command that announced a data set and its last data PDV."""
        return self._dataset_context is not None

    @property
    def idle(self) -> bool:
        """True when no message is partly received (a clean point to release)."""
        return self._command_context is None and self._dataset_context is None

    def takes_data_on(self, context_id: int) -> bool:
        """Whether a data PDV on ``context_id`` would be taken as a fragment of the
        data set due (the checks of :meth:`receive_pdv` for a non-last one), for a
        driver that hands the middle of a long PDV to its sink directly."""
        return self._command_context is None and self._dataset_context == context_id

    def take_last_data(self, context_id: int) -> bool:
        """The last data PDV of the data set due on ``context_id`` was taken by the
        driver itself (as :meth:`takes_data_on` allowed): the message is complete,
        as :meth:`receive_pdv` would have found. False, changing nothing, when
        that PDV would not be the data set's."""
        # takes_data_on's test, written out: once per data set received in place.
        if self._command_context is not None or self._dataset_context != context_id:
            return False
        self._dataset_context = None
        self._fragments = self._fragment_bytes = 0
        return True

    def receive_pdv(self, pdv: PDV, continues: bool = False) -> list[DimseEvent]:
        """Take one received PDV; return the events it completes (PS3.7 8, PS3.8 E.2).
        ``continues``: the PDV is a later stretch of one whose data the Upper Layer
        streams (``ul.pdata.ContinuedPDV``), not counted as a PDV of its own.

        Raises :class:`~dicomnet.errors.RemoteProtocolError` on any violation
        listed in the module docstring; the association should then be aborted
        with the error's ``abort_source`` and ``abort_reason``: 0 and 0, an
        A-ABORT of the service-user (PS3.8 9.3.8).
        """
        context_id = pdv.context_id
        if pdv.is_command:
            return self._receive_command(context_id, pdv.is_last, pdv.data, continues)
        data = pdv.data
        self.receive_data_pdv(context_id, pdv.is_last, len(data), continues)
        return [DatasetFragment(context_id, data, pdv.is_last)]

    def receive_data_pdv(self, context_id: int, is_last: bool, size: int,
                         continues: bool = False) -> None:
        """Take a data PDV (not a command's) of ``size`` data bytes as
        :meth:`receive_pdv` does, its checks and errors included, without making
        its event: a driver that routes the data itself, once per data PDV (or
        stretch of one: ``continues``), takes it as the
        ``DatasetFragment(context_id, data, is_last)`` it would be (PS3.7 8.1,
        PS3.8 E.2)."""
        if self._command_context is not None:
            raise _fault(
                f"data PDV on context {context_id} before the command set on context "
                f"{self._command_context} was complete"
            )
        expected = self._dataset_context
        if expected is None:
            raise _fault(f"data PDV on context {context_id} but no data set is due")
        if context_id != expected:
            raise _fault(
                f"data PDV on context {context_id} for a message on context {expected}"
            )
        if is_last:
            self._dataset_context = None
            self._fragments = self._fragment_bytes = 0
            return
        # _count_fragment's, written out: once per data PDV on a server's loop.
        fragments = self._fragments = self._fragments + (not continues)
        total = self._fragment_bytes = self._fragment_bytes + size
        if fragments > FREE_FRAGMENTS and total < fragments * self.min_fragment_mean:
            raise self._flood(fragments, total, "data set")

    def _count_fragment(self, size: int, what: str, continues: bool) -> None:
        fragments = self._fragments = self._fragments + (not continues)
        total = self._fragment_bytes = self._fragment_bytes + size
        if fragments > FREE_FRAGMENTS and total < fragments * self.min_fragment_mean:
            raise self._flood(fragments, total, what)

    def _flood(self, fragments: int, total: int, what: str) -> RemoteProtocolError:
        return _fault(
            f"{what} cut into {fragments} PDVs of {total // fragments} bytes on average "
            f"so far (past {FREE_FRAGMENTS} PDVs, at least {self.min_fragment_mean} "
            "bytes each on average are expected): a flood of PDVs, aborted")

    def _receive_command(self, context_id: int, is_last: bool,
                         data: bytes | memoryview, continues: bool) -> list[DimseEvent]:
        if self._dataset_context is not None:
            raise _fault(
                f"command PDV on context {context_id} while the data set of the message on "
                f"context {self._dataset_context} is still due"
            )
        if self._command_context is None:
            self._command_context = context_id
        elif context_id != self._command_context:
            raise _fault(
                f"command PDV on context {context_id} inside a command set on context "
                f"{self._command_context}"
            )
        if len(self._command) + len(data) > MAX_COMMAND_SET_LENGTH:
            raise _fault(f"command set larger than {MAX_COMMAND_SET_LENGTH} bytes")
        self._command += data
        if not is_last:
            self._count_fragment(len(data), "command set", continues)
            return []
        raw = bytes(self._command)
        self._command.clear()
        self._command_context = None
        self._fragments = self._fragment_bytes = 0
        message = ((self.store_responses_first and decode_store_rsp(raw))
                   or (self.store_requests_first and decode_store_rq(raw))
                   or decode_message(raw))
        if message.has_dataset:
            self._dataset_context = context_id
        return [MessageReceived(context_id, message)]

    # ------------------------------------------------------------------ sending

    def next_message_id(self) -> int:
        """A fresh Message ID (PS3.7 E.1): 1, 2, ... 65535, then 1 again (0 is skipped).

        IDs need only be unique among the requests outstanding on the
        association (PS3.7 9.1.1.1): after 65535 the count starts again, past
        any ID ``message_id_in_use`` says is still outstanding (a C-FIND left
        running, say, 65,535 requests ago). Raises ``LocalProtocolError`` if
        every ID is.
        """
        in_use = self.message_id_in_use
        for _ in range(0xFFFF):
            self._last_message_id = self._last_message_id % 0xFFFF + 1
            if in_use is None or not in_use(self._last_message_id):
                return self._last_message_id
        raise LocalProtocolError("every Message ID (1-65535) is outstanding")

    def encode_request(
        self,
        msg: DimseMessage,
        context_id: int,
        max_pdu_length: int,
        dataset: bytes | memoryview | None = None,
    ) -> list[bytes]:
        """The P-DATA-TF PDUs for request ``msg`` and, optionally, its data set (PS3.7 8).

        Pass ``dataset=None`` with ``msg.has_dataset`` true to stream the data
        set separately (``fragments.stream_dataset_pdus``). Raises
        :class:`~dicomnet.errors.LocalProtocolError` if ``msg`` is a response or
        a data set is given for a message that announces none.
        """
        if not msg.is_request:
            raise LocalProtocolError(f"{type(msg).__name__} is not a request")
        return _encode(msg, context_id, max_pdu_length, dataset)

    def encode_response(
        self,
        msg: DimseMessage,
        context_id: int,
        max_pdu_length: int,
        dataset: bytes | memoryview | None = None,
    ) -> list[bytes]:
        """Like :meth:`encode_request`, for a response."""
        if msg.is_request:
            raise LocalProtocolError(f"{type(msg).__name__} is not a response")
        return _encode(msg, context_id, max_pdu_length, dataset)


def _encode(
    msg: DimseMessage,
    context_id: int,
    max_pdu_length: int,
    dataset: bytes | memoryview | None,
) -> list[bytes]:
    if dataset is not None and not msg.has_dataset:
        raise LocalProtocolError(
            f"{type(msg).__name__} has has_dataset=False but a data set was given"
        )
    pdus = command_pdus(context_id, encode_message(msg), max_pdu_length)
    if dataset is not None:
        pdus.extend(dataset_pdus(context_id, dataset, max_pdu_length))
    return pdus
