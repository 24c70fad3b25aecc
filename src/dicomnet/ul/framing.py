"""Cutting a byte stream into PDUs, sans I/O (PS3.8 9.3.1).

``PDUFramer`` takes bytes as they arrive (split anywhere) and hands back whole,
decoded PDUs. It judges each PDU from its 6-byte header before waiting for, or
buffering, its body: an unknown PDU type, an A-ASSOCIATE PDU over
``max_associate_length``, a P-DATA-TF over ``max_pdata_length`` or a fixed-size
PDU of the wrong size raises ``RemoteProtocolError`` at once. So a TLS
ClientHello or an HTTP request on a DICOM port fails on its first byte, with a
message saying what it looks like, and a peer cannot make us hold more than the
limits allow.

Cost is linear in the bytes fed: the buffer is a ``bytearray`` with a read
offset, compacted only when the consumed part is at least half of it, and a
P-DATA-TF is decoded from a memoryview of that buffer, so each PDV's data is
copied once on its way out.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import NoReturn

from dicomnet.errors import RemoteProtocolError
from dicomnet.ul.codec import _invalid
from dicomnet.ul.pdata import (
    _PDV_HEADER,
    borrowed_pdata,
)
from dicomnet.ul.pdu import (
    PDU,
    _unrecognized_pdu_type,
    decode_pdu,
    describe_foreign_bytes,
)
from dicomnet.ul.pdu_codes import A_ASSOCIATE_AC, A_ASSOCIATE_RQ, P_DATA_TF, PDU_TYPES

__all__ = ["NOT_TAKEN", "PDU_ENDED", "PDV_ENDED", "TAKEN", "PDUFramer", "describe_foreign_bytes"]

_LENGTH = struct.Struct(">L")
#: A P-DATA-TF's PDU header and its first PDV item header (PS3.8 9.3.5): type,
#: reserved byte, PDU length, PDV item length, presentation context ID, control.
_PDATA_HEADERS = struct.Struct(">BxLLBB")
_ASSOCIATE_MIN_LENGTH = 68  # the fixed part of A-ASSOCIATE-RQ/AC (PS3.8 Table 9-11)
_PDATA_MIN_LENGTH = 6  # one PDV item: 4-byte length, context ID, control header
_COMPACT_MIN = 1 << 16  # below this many consumed bytes, moving them is not worth it
#: What PDUFramer.consume_pdv_data did with the bytes it was given.
NOT_TAKEN, TAKEN, PDV_ENDED, PDU_ENDED = range(4)


class PDUFramer:
    """Incremental PDU framing: ``feed()`` bytes, then call ``next_pdu()`` until ``None``.

    ``max_associate_length`` caps the PDU length of A-ASSOCIATE-RQ/AC PDUs.
    ``max_pdata_length`` caps the PDU length of P-DATA-TF PDUs, 0 meaning no
    limit; the connection sets it, after negotiation, to the Maximum Length it
    advertised (PS3.8 D.1.1: the limit is on the variable field, i.e. the PDU
    length). Exceeding either is A-ABORT reason 6, "invalid PDU parameter
    value".

    A PDV's message control header is read for bits 0 (command) and 1 (last)
    only: PS3.8 Annex E.2 has bits 2 to 7 "always set to 0 by the sender and
    never checked by the receiver", as Table 9-22 has the PDU's reserved byte
    "not tested" (tests/ul/test_pdv_reserved_bits.py).

    After a ``RemoteProtocolError`` the framer is dead: every later call raises
    that same error again, and its buffer is dropped.
    """

    __slots__ = ("_buffer", "_error", "_pdata_left", "_pdv", "_pdv_left", "_pdv_size", "_start",
                 "borrow", "completed", "max_associate_length", "max_pdata_length")

    def __init__(self, *, max_associate_length: int = 1 << 20, max_pdata_length: int = 0) -> None:
        self.max_associate_length = max_associate_length
        self.max_pdata_length = max_pdata_length
        self._buffer = bytearray()
        self._start = 0  # read offset into _buffer
        self._error: RemoteProtocolError | None = None
        #: PDUs received whole so far (by next_pdu or receive, streamed ones included).
        self.completed = 0
        #: Streamed PDV data as views of the bytes given to receive() rather than
        #: copies (pdata.borrowed_pdata): for a caller that handles every PDU yielded
        #: before it reuses the memory it passed. One copy fewer per byte.
        self.borrow = False
        # A P-DATA-TF being streamed by receive(): body bytes still due (None when
        # none is), and of the current PDV its data bytes still due (None between
        # PDVs), its context ID and its control header, and its data's length (a
        # stretch that starts later continues it: pdata.ContinuedPDV).
        self._pdata_left: int | None = None
        self._pdv_left: int | None = None
        self._pdv = (0, 0)
        self._pdv_size = 0

    @property
    def buffered(self) -> int:
        """Bytes received and not yet returned as a PDU."""
        return len(self._buffer) - self._start

    @property
    def pdv_data_due(self) -> int:
        """Data bytes of the streamed PDV being received still due (0 outside one)."""
        return self._pdv_left or 0

    @property
    def current_pdv(self) -> tuple[int, bool, bool] | None:
        """(context ID, is command, is last) of the streamed PDV whose data is being
        received (its message control header, PS3.8 E.2), or None outside PDV
        data."""
        if self._pdv_left is None:
            return None
        context_id, control = self._pdv
        return context_id, bool(control & 1), bool(control & 2)

    def take_pdv_data(self, count: int) -> bool:
        """Count ``count`` bytes of the streamed PDV's data as received when they
        end before the PDV does: the caller has consumed them itself (a driver
        that received them in place, straight into a data set's memory), and no
        PDU is yielded for them. Returns False, changing nothing, when they would
        complete the PDV (or no PDV data is due): give them to :meth:`receive`,
        which marks the PDV's last stretch."""
        left = self._pdv_left
        if left is None or not 0 < count < left or self._error is not None:
            return False
        assert self._pdata_left is not None
        self._pdv_left = left - count
        self._pdata_left -= count
        return True

    def end_pdv_data(self, count: int) -> bool:
        """Like :meth:`take_pdv_data`, for the ``count`` bytes that complete the
        streamed PDV's data (its P-DATA-TF too, if it is that PDU's last PDV):
        consumed by the caller, who has acted on the PDV's end itself. Returns
        False, changing nothing, unless ``count`` is exactly the data still due."""
        left = self._pdv_left
        if left is None or count != left or self._error is not None:
            return False
        assert self._pdata_left is not None
        self._pdv_left = None
        self._pdata_left -= count
        if self._pdata_left == 0:
            self._pdata_left = None
            self.completed += 1
        return True

    def consume_pdv_data(self, count: int) -> int:
        """:meth:`take_pdv_data` and :meth:`end_pdv_data` in one call, for a caller
        that does not know which its bytes do: :data:`NOT_TAKEN` (nothing
        changed), :data:`TAKEN` (short of the PDV's end), :data:`PDV_ENDED` (they
        end the PDV; its P-DATA-TF goes on, or bytes of another PDU are held) or
        :data:`PDU_ENDED` (they end the PDV and its P-DATA-TF, and nothing else is
        held: ``in_pdu`` is False)."""
        left = self._pdv_left
        if left is None or not 0 < count <= left or self._error is not None:
            return NOT_TAKEN
        assert self._pdata_left is not None
        self._pdata_left -= count
        if count < left:
            self._pdv_left = left - count
            return TAKEN
        self._pdv_left = None
        if self._pdata_left:
            return PDV_ENDED
        self._pdata_left = None
        self.completed += 1
        return PDU_ENDED if len(self._buffer) == self._start else PDV_ENDED

    @property
    def header_bytes_due(self) -> int:
        """Header bytes still due before the next PDV's data, if what comes next is
        a PDV of the P-DATA-TF being streamed or, between PDUs, the first PDV of
        a P-DATA-TF (6-byte PDU header, then 6-byte PDV item header, PS3.8
        9.3.5). 0 inside PDV data or inside another PDU's body."""
        if self._pdv_left is not None:
            return 0
        have = len(self._buffer) - self._start
        if self._pdata_left is not None:
            return 6 - have
        return 12 - have if have < 6 else 0

    @property
    def in_pdu(self) -> bool:
        """True while part of a PDU has arrived and the rest is awaited."""
        return self._pdata_left is not None or len(self._buffer) > self._start

    def receive(self, data: bytes | bytearray | memoryview, *,
                stream_pdata: bool = False) -> Iterator[PDU]:
        """Take ``data`` and yield each PDU it completes, as ``next_pdu`` would.

        With ``stream_pdata``, a P-DATA-TF PDU is not held until its last byte:
        each stretch of PDV data is yielded as soon as it is in, as a one-PDV
        ``PDataTF`` whose PDV has the sender's context and command flag and is
        marked last only on the PDV's final stretch. A message is the same bytes
        in the same order whatever its PDVs' sizes (PS3.7 8.1, PS3.8 9.3.5), so a
        receiver sees the same data sets, with one copy of each byte instead of
        two and no whole PDU buffered. Every length is still checked, at the PDU
        and PDV headers, before the bytes they announce are taken; an error
        found inside a P-DATA-TF comes after the PDVs before it were yielded.
        """
        if self._error is not None:
            raise self._error
        if self._start:
            del self._buffer[:self._start]
            self._start = 0
        view = memoryview(data).cast("B")
        pos, end = 0, len(view)
        buffer = self._buffer
        while True:
            left = self._pdv_left
            if left is not None:  # inside a streamed PDV's data
                take = min(left, end - pos)
                if take == 0 and left:
                    return
                pos += take
                left -= take
                assert self._pdata_left is not None
                self._pdata_left -= take
                context_id, control = self._pdv
                # Bits 2-7 of the control header are never checked (PS3.8 E.2). The
                # fields are checked: the PDV is made without its constructor's.
                yield borrowed_pdata(context_id, bool(control & 1),
                                     bool(control & 2) and left == 0,
                                     view[pos - take:pos] if self.borrow
                                     else bytes(view[pos - take:pos]),
                                     left + take != self._pdv_size)
                if left:
                    self._pdv_left = left
                    return
                self._pdv_left = None
                if self._pdata_left == 0:
                    self._pdata_left = None
                    self.completed += 1
                continue
            if self._pdata_left is not None:  # a streamed P-DATA-TF, before a PDV header
                if self._pdata_left < 6:
                    self._fail(_invalid(f"P-DATA-TF: {self._pdata_left} trailing byte(s) are "
                                        "too short for a PDV item"))
                if not buffer and end - pos >= 6:  # the header whole in the view
                    length, context_id, control = _PDV_HEADER.unpack_from(view, pos)
                    pos += 6
                else:
                    take = min(6 - len(buffer), end - pos)
                    buffer += view[pos:pos + take]
                    pos += take
                    if len(buffer) < 6:
                        return
                    length, context_id, control = _PDV_HEADER.unpack_from(buffer, 0)
                    buffer.clear()
                if length < 2:
                    self._fail(_invalid(f"P-DATA-TF: PDV item length {length}, must be at "
                                        "least 2"))
                if 4 + length > self._pdata_left:
                    self._fail(_invalid(
                        f"P-DATA-TF: PDV item length {length} runs past the end of the PDU "
                        f"({self._pdata_left - 4} bytes left)"))
                self._pdata_left -= 6
                self._pdv = (context_id, control)
                self._pdv_left = self._pdv_size = length - 2
                continue
            # Between PDUs, or inside one held whole: first its 6-byte header.
            if pos == end:
                return  # nothing new to take (a PDU held whole completes on its own)
            if stream_pdata and not buffer and end - pos >= 12 and view[pos] == P_DATA_TF:
                # The usual case: a P-DATA-TF whose PDU and first PDV headers are both
                # in the view, taken from it directly when they pass the checks below
                # (otherwise the general path finds and reports what is wrong).
                _, length, pdv_length, context_id, control = _PDATA_HEADERS.unpack_from(
                    view, pos)
                limit = self.max_pdata_length
                if ((not limit or length <= limit) and length >= _PDATA_MIN_LENGTH
                        and 2 <= pdv_length <= length - 4):
                    pos += 12
                    self._pdata_left = length - 6
                    self._pdv = (context_id, control)
                    self._pdv_left = self._pdv_size = pdv_length - 2
                    continue
            if len(buffer) < 6:
                take = min(6 - len(buffer), end - pos)
                buffer += view[pos:pos + take]
                pos += take
            header = self.peek_header()
            if header is None:
                return
            pdu_type, length = header
            if pdu_type == P_DATA_TF and stream_pdata:
                buffer.clear()
                self._pdata_left = length
                continue
            take = min(6 + length - len(buffer), end - pos)
            buffer += view[pos:pos + take]
            pos += take
            pdu = self.next_pdu()
            if pdu is None:
                return
            yield pdu

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Add bytes received from the peer. Nothing is parsed until ``next_pdu()``."""
        if self._error is not None:
            raise self._error
        self._buffer += data

    def peek_header(self) -> tuple[int, int] | None:
        """``(PDU type, PDU length)`` of the PDU being received, once its header is in.

        Lets a state machine refuse an unexpected PDU type before its body has
        arrived. Raises what ``next_pdu()`` would raise for a bad header.
        """
        if self._error is not None:
            raise self._error
        buffer = self._buffer
        start = self._start
        available = len(buffer) - start
        if available == 0:
            return None
        pdu_type = buffer[start]
        if pdu_type not in PDU_TYPES:
            self._fail(_unrecognized_pdu_type(pdu_type, buffer[start : start + 32]))
        if available < 6:
            return None
        (length,) = _LENGTH.unpack_from(buffer, start + 2)
        self._check_length(pdu_type, length)
        return pdu_type, length

    def next_pdu(self) -> PDU | None:
        """The next complete PDU, or ``None`` if more bytes are needed.

        Raises ``RemoteProtocolError`` as soon as the bytes received are known
        to be invalid, which for a bad header is before its body arrives.
        """
        header = self.peek_header()
        if header is None:
            return None
        start = self._start
        end = start + 6 + header[1]
        buffer = self._buffer
        if len(buffer) < end:
            return None
        try:
            with memoryview(buffer) as view:
                pdu = decode_pdu(view[start:end])
        except RemoteProtocolError as exc:
            self._fail(exc)
        self._consume(end)
        self.completed += 1
        return pdu

    def _check_length(self, pdu_type: int, length: int) -> None:
        name = PDU_TYPES[pdu_type]
        if pdu_type == P_DATA_TF:
            limit = self.max_pdata_length
            if limit and length > limit:
                self._fail(
                    _invalid(
                        f"P-DATA-TF PDU length {length} exceeds the maximum length {limit} "
                        "we advertised (PS3.8 D.1.1)"
                    )
                )
            if length < _PDATA_MIN_LENGTH:
                self._fail(_invalid(f"P-DATA-TF PDU length {length} cannot hold a PDV item"))
        elif pdu_type in (A_ASSOCIATE_RQ, A_ASSOCIATE_AC):
            if length > self.max_associate_length:
                self._fail(
                    _invalid(
                        f"{name} PDU length {length} exceeds the limit of "
                        f"{self.max_associate_length} bytes"
                    )
                )
            if length < _ASSOCIATE_MIN_LENGTH:
                self._fail(_invalid(f"{name} PDU length {length} is shorter than its fixed fields"))
        elif length != 4:
            # A-ASSOCIATE-RJ, A-RELEASE-RQ/RP and A-ABORT are 4 bytes (PS3.8 9.3.4, 9.3.6-9.3.8).
            self._fail(_invalid(f"{name} PDU length is {length}, must be 4"))

    def _consume(self, end: int) -> None:
        buffer = self._buffer
        if end == len(buffer):
            buffer.clear()
            self._start = 0
        elif end >= _COMPACT_MIN and end * 2 >= len(buffer):
            # Moves at most as many bytes as were just consumed: linear overall.
            del buffer[:end]
            self._start = 0
        else:
            self._start = end

    def _fail(self, error: RemoteProtocolError) -> NoReturn:
        self._error = error
        # A fresh buffer: the old one may still be pinned by views in the traceback.
        self._buffer = bytearray()
        self._start = 0
        self._pdata_left = self._pdv_left = None
        raise error
