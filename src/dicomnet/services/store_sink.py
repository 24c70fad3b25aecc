"""One incoming C-STORE data set on its way to disk (PS3.4 B.2.2): held in memory
while small, spilled to a temporary file beside the store once large, and checked
to end where its elements say (storage.completeness) before it is committed.
Also the C-STORE statuses the SCP answers with."""

from __future__ import annotations

import asyncio
import zlib
from pathlib import Path

from ..dimse.status import CANNOT_UNDERSTAND, OUT_OF_RESOURCES, PROCESSING_FAILURE
from ..storage import completeness, stray_meta
from ..storage.completeness import DatasetWalker, inflated_past, size_text, walker_for
from ..storage.deflate_end import StreamEnd
from ..storage.direct import AlignedBuffer
from ..storage.files import AtomicWriter, StorageError
from ..storage.part10 import (
    BIG_ENDIAN,
    DEFLATED_DATA_SETS,
    EXPLICIT_LE,
    IMPLICIT_LE,
    with_transfer_syntax,
)
from ..storage.scan import LONG_VRS, SHORT_VRS, implicit_vr_at
from ..storage.space import CHECK_EVERY, SpaceReserve
from ..storage.stray_meta import DeflatedStrayMeta, StrayMeta

__all__ = ["ALIGNED_FROM", "SPILL_THRESHOLD", "SYNC_EVERY", "StoreSink", "contents"]


#: Data sets up to this size are received in memory and written in one go by a
#: worker thread, so no file-system call blocks the event loop for them; larger
#: ones spill to a temporary file as they arrive: memory stays bounded. 1 MiB
#: keeps a 512x512 16-bit image in memory, and bounds what a window of 32
#: operations holds to 32 MiB (with 4 MiB, a server receiving 256 MB objects
#: peaked 6 MiB higher, growing that buffer before spilling it).
SPILL_THRESHOLD = 1 << 20
#: In-memory data sets larger than this are gathered in a page-aligned buffer,
#: received into in place, which the store thread writes with O_DIRECT (when
#: durable); smaller ones go through the page cache, where the copy is cheap and
#: the last, unaligned block is most of the object.
ALIGNED_FROM = 64 << 10
#: Once spilled, where the file system has no O_DIRECT (see AtomicWriter's
#: ``direct``), bytes are pushed to disk every this many in a worker thread, so
#: the fsync before the answer has little left to wait for.
SYNC_EVERY = 32 << 20
#: Bytes of the data set's first element header that tell Explicit VR from
#: Implicit VR (``storage.scan.implicit_vr_at``).
_VR_BYTES = 6
#: What an Explicit VR header holds where an Implicit VR one has its length's low
#: two bytes (PS3.5 7.1.2, 7.1.3): a length of 16705 bytes or more could pass.
_EXPLICIT_VRS = SHORT_VRS | LONG_VRS
#: Compressed bytes of a deflated data set inflated for them, at most, in
#: whatever PDVs they come: a deflate stream gives its first bytes after its
#: first block's header, a few hundred bytes; one giving none by then (empty
#: blocks, RFC 1951 3.2.4) is refused, lest group 0002 behind them be missed.
#: Under ALIGNED_FROM: the bytes held meanwhile stay in a bytearray.
_INFLATE_MOST = 16 << 10
#: Bytes read at most through ``write`` while a data set's start is looked at,
#: before ``reserve`` lends memory: its first element header (or the group 0002
#: elements some data sets start with, or a deflated start) fits, usually.
_START_READ = 1 << 10


class StoreSink:
    """Receives one C-STORE data set after its Part 10 header: in memory while
    small, then into an AtomicWriter's temporary file.

    File Meta Information elements (group 0002) at the start of the data set are
    dropped (storage.stray_meta): the file gets one meta group, ours. ``stray``
    then says which were dropped. In a deflated data set (PS3.5 A.5) they are
    inside the deflate stream: found in its first inflated bytes, the stream
    is inflated, cleaned and deflated again as it arrives (DeflatedStrayMeta:
    memory stays flat; zlib level 1, and a deflate bomb's ratio refused past
    256 MiB), and the file holds that stream, still deflated as its
    header says; a deflated data set without them is stored as it came, its
    stream padded to an even length where the peer left that out (PS3.5 A.5).

    A data set in Implicit VR on an Explicit VR context (PS3.5 A.2 says every
    element is explicit there; pydicom and pynetdicom send such data sets when
    told to) is known by its first element header, before anything is written:
    on an Explicit VR Little Endian context the header is relabelled Implicit VR
    Little Endian (PS3.5 A.1, the data set's encoding: PS3.10 7.1), which
    ``transfer_syntax`` then says and ``relabelled`` notes; on any other
    (Big Endian, deflated, or encapsulated pixel data, which Implicit VR cannot
    carry) it is refused, Cannot Understand. Likewise the other way: a data
    set in Explicit VR Little Endian on an Implicit VR Little Endian context
    (a known VR where an implicit length would be) is relabelled Explicit VR
    Little Endian, and its walker made for that once it is known."""

    __slots__ = ("_first", "_header_length", "_inflate", "_inflate_fed", "_marker",
                 "_redeflate", "_space_due", "_starting", "_syncing", "_unsynced", "_walker",
                 "buffer", "detail", "durable", "error", "provisional", "relabelled", "space",
                 "status", "stray", "trailing", "transfer_syntax", "writer")

    def __init__(self, header: bytes = b"", provisional: tuple[Path, str] | None = None,
                 error: str | None = None, *, durable: bool = True,
                 status: int = CANNOT_UNDERSTAND, transfer_syntax: str | None = None,
                 space: SpaceReserve | None = None) -> None:
        self.durable = durable
        #: The store's free-space reserve, checked as a spilled data set grows
        #: (every CHECK_EVERY bytes, from the spill on); None: none kept.
        self.space = space
        self._space_due: int | None = None  # bytes to write before the next check
        # Follows the data set's elements as they arrive (storage.completeness), so
        # that one cut short is refused rather than stored as if whole. A deflated
        # one's is made once its start is known not to be group 0002 (_walk_held).
        # An Implicit VR one's once its first element header tells its VR mode.
        self._walker = None if transfer_syntax is None or error is not None or (
            transfer_syntax in DEFLATED_DATA_SETS or transfer_syntax == IMPLICIT_LE
        ) else walker_for(transfer_syntax, pixel_data=True)
        self.buffer: bytearray | AlignedBuffer | None = (
            bytearray(header) if error is None else None)
        self.provisional = provisional
        self.writer: AtomicWriter | None = None
        self.error = error
        #: For the server's log, logged once with the refusal: the storage error
        #: with its paths (``error`` is what the peer is told: no local path).
        self.detail: str | None = None
        self.status = status
        self._unsynced = 0
        self._syncing: asyncio.Future[None] | None = None
        # The first two bytes of a group 0002 element in the syntax's byte order,
        # until the data set's first bytes are known not to be one. A deflated data
        # set's are looked for in its first inflated bytes (_start).
        #: The syntax the data set is stored in: the context's, unless relabelled.
        #: An attribute, not a property: read once per object on the event loop.
        self.transfer_syntax = transfer_syntax
        self._marker: bytes | None = None
        if error is None and transfer_syntax is not None and (
                transfer_syntax not in DEFLATED_DATA_SETS):
            self._marker = b"\x00\x02" if transfer_syntax == BIG_ENDIAN else b"\x02\x00"
        self.stray: StrayMeta | None = None
        # A deflated data set that starts with group 0002: re-deflated without it.
        self._redeflate: DeflatedStrayMeta | None = None
        # A data set's first bytes (inflated, for a deflated one), gathered up to
        # its first element header's VR; None: not looked for.
        self._first: bytes | None = None if (
            error is not None or transfer_syntax is None) else b""
        self._inflate = zlib.decompressobj(-zlib.MAX_WBITS) if (
            self._first is not None and self._marker is None) else None
        self._inflate_fed = 0  # compressed bytes given to _inflate
        self._header_length = len(header)
        #: Bytes that followed a deflated data set's stream, other than its
        #: padding, dropped (PS3.5 A.5: the data set is that stream, padded).
        self.trailing = 0
        #: The context's transfer syntax when the data set was found to be in
        #: another, which ``transfer_syntax`` names (and the file's header).
        self.relabelled: str | None = None
        # Whether the data set's first bytes are still to come: one test per write.
        self._starting = self._marker is not None or self._first is not None

    def write(self, data: bytes | memoryview) -> None:
        if self.error is not None:
            return
        if self._starting:  # the data set's first bytes only
            data = self._start(data)
            if not data or self.error is not None:
                return
        if self._walker is not None:
            self._walker.feed(data)
        try:
            if self.writer is None:
                buffer = self.buffer
                assert buffer is not None
                if isinstance(buffer, AlignedBuffer):
                    # Its size as an attribute, not len(): the bytes received in
                    # place into it come here once or twice per object.
                    if (buffer.size + len(data) > SPILL_THRESHOLD
                            and self.provisional is not None):
                        self._spill(buffer, data)
                    else:
                        buffer.append(data)
                    return
                size = len(buffer) + len(data)
                if size > SPILL_THRESHOLD and self.provisional is not None:
                    self._spill(buffer, data)
                elif size > ALIGNED_FROM and self.provisional is not None:
                    # Page-aligned from here: the rest is received in place (reserve),
                    # and the store thread writes it to disk as it is, with O_DIRECT
                    # (storage.direct.DirectBatch), durable or not. A bytearray here
                    # cost a non-durable sink ~1.5 copies of every byte (callgrind,
                    # docs/benchmarks.md, session 29).
                    aligned = AlignedBuffer.take(SPILL_THRESHOLD)
                    aligned.append(buffer)
                    aligned.append(data)
                    self.buffer = aligned
                else:
                    buffer += data
            else:
                self.writer.write(data)
                size = len(data)
                self._unsynced += size
                if self._space_due is not None:
                    self._space_due -= size
                    if self._space_due <= 0:
                        self._check_space()
                if self._unsynced >= SYNC_EVERY and self.durable and not self.writer.direct:
                    self._background_sync(self.writer)
        except StorageError as exc:
            self._failed(exc)

    def _failed(self, exc: StorageError) -> None:
        """Refuse the data set for a storage error (out of resources or not)."""
        self.detail = str(exc)
        self.error = f"cannot store: {exc.reason}"
        self.status = OUT_OF_RESOURCES if exc.out_of_resources else PROCESSING_FAILURE
        self.abort()

    def _spill(self, buffer: bytearray | AlignedBuffer, data: bytes | memoryview) -> None:
        """Go on in a temporary file: ``buffer`` (what came so far), then ``data``."""
        assert self.provisional is not None
        if self.space is not None:
            # Before its first byte: a disk under the reserve is told as that (a
            # full one would refuse the spill's own write first).
            self.space.check(len(contents(buffer)) + len(data))
            self._space_due = CHECK_EVERY
        # Built only now: most data sets never spill, and a Path per
        # object was a measurable part of receiving a small one.
        folder, name = self.provisional
        # Straight to disk (O_DIRECT), durable or not: the page-cache copy cost
        # more CPU than the disk's wait, and without fsync too (docs/benchmarks.md,
        # forty-first session: 256 MB objects at 356 against 847 MB/s).
        self.writer = AtomicWriter(folder / name, durable=self.durable, direct=True)
        self.writer.write(contents(buffer))
        self.buffer = None
        if isinstance(buffer, AlignedBuffer):
            buffer.release()
        self.writer.write(data)

    def _check_space(self) -> None:
        """Raise ``StorageError`` (out of resources) when the spilled data set took
        the store's file system under its reserve; else check again CHECK_EVERY
        bytes on."""
        assert self.space is not None
        self._space_due = CHECK_EVERY
        self.space.check()

    def _start(self, data: bytes | memoryview) -> bytes | memoryview:
        """The data set's first bytes: without the group 0002 elements it starts
        with, its first element header read for its VR mode."""
        if self._redeflate is not None:
            return self._redeflated(data)
        marker = self._marker
        if marker is not None:
            if self.stray is None and len(data) >= 2 and data[:2] != marker:
                # The usual case, decided at the first write: no group 0002.
                self._marker = None
            else:
                data = self._drop_meta(data)
                if self._marker is not None:
                    return data  # still inside group 0002
        first = self._first
        if first is not None:
            need = _VR_BYTES - len(first)
            if self._inflate is None:
                first += bytes(data[:need])
            else:
                first = self._inflated(first, data, need)
            if first is not None and len(first) < _VR_BYTES:
                self._first = first
                return data  # decided with the next bytes
            deflated = self._inflate is not None
            self._first = self._inflate = None
            if self.transfer_syntax == IMPLICIT_LE:
                assert first is not None
                if first[4:6] in _EXPLICIT_VRS and first[:2] != b"\xfe\xff":
                    self._explicit_found()
                self._walk_held()
                self._starting = False
                return data
            if deflated and first is not None and first[:2] == b"\x02\x00":
                return self._start_redeflating(data)
            if deflated:
                self._walk_held()
            if first is not None and implicit_vr_at(first):
                self._implicit_found()
        self._starting = False
        return data

    def _start_redeflating(self, data: bytes | memoryview) -> bytes:
        """A deflated data set whose first element is of group 0002: from its start
        (the bytes held so far, and ``data``), inflated without them and deflated
        again (storage.stray_meta.DeflatedStrayMeta), which walks what it inflates
        (no walker of the stream as sent is made)."""
        buffer = self.buffer
        assert self.transfer_syntax is not None
        if not isinstance(buffer, bytearray):  # its start took over 64 KiB to give 6 bytes
            self.error = ("deflated data set starting with File Meta Information elements, "
                          "its first bytes deflated past 64 KiB: not stored")
            self.status = CANNOT_UNDERSTAND
            self.abort()
            return b""
        held = bytes(buffer[self._header_length:])
        del buffer[self._header_length:]
        self._redeflate = DeflatedStrayMeta(completeness.MAX_INFLATED,
                                            DatasetWalker(implicit=False))
        self.stray = self._redeflate.stray
        return self._redeflated(held + bytes(data))

    def _walk_held(self) -> None:
        """A deflated data set not starting with group 0002 (or whose start could
        not be inflated), or an Implicit VR context's whose VR mode is known: its
        walker (storage.completeness), made now, fed what the sink holds of it
        (under ``_INFLATE_MOST`` bytes; none, usually)."""
        assert self.transfer_syntax is not None
        walker = self._walker = walker_for(self.transfer_syntax, pixel_data=True)
        buffer = self.buffer
        if isinstance(buffer, bytearray) and len(buffer) > self._header_length:
            walker.feed(bytes(buffer[self._header_length:]))

    def _redeflated(self, data: bytes | memoryview) -> bytes:
        redeflate = self._redeflate
        assert redeflate is not None
        out = redeflate.feed(data)
        if redeflate.implicit:
            self._implicit_found()  # refused: Implicit VR is never deflated
            return b""
        return out

    def _end_redeflating(self) -> bool:
        """After the last fragment: the re-deflated stream's end written, or the
        data set refused (cut, corrupt, malformed, or inflating past our bound,
        or at a deflate bomb's ratio past a smaller one: Out of Resources, as
        storage.stray_meta.DeflatedStrayMeta says why)."""
        redeflate, self._redeflate = self._redeflate, None
        assert redeflate is not None
        self._starting = False
        if redeflate.bomb:
            floor, ratio = size_text(stray_meta.BOMB_FLOOR), stray_meta.BOMB_RATIO
            # The Error Comment's 64 characters name the bound, the log the reason.
            self.error = f"deflated data set inflates over {ratio}:1 past {floor}; not stored"
            self.detail = (f"its deflated data set, deflated again without the File Meta "
                           f"Information elements it starts with, inflates past {floor} at "
                           f"over {ratio} times the {redeflate.stream_end.fed} compressed "
                           f"bytes received by then: a deflate bomb's ratio, which dicomnet "
                           f"does not deflate again; not stored")
            self.status = OUT_OF_RESOURCES
            self.abort()
            return False
        problem = redeflate.problem()
        if redeflate.too_large or problem is not None:
            self.error = (_past_our_bound(redeflate.declared)
                          if redeflate.too_large else _refusal(problem))
            if redeflate.too_large:  # logged as the walker's: our bound, its reason whole
                self.detail = inflated_past(completeness.MAX_INFLATED,
                                            declared=redeflate.declared) + "; not stored"
            self.status = OUT_OF_RESOURCES if redeflate.too_large else CANNOT_UNDERSTAND
            self.abort()
            return False
        self.trailing = redeflate.stream_end.extra
        self.write(redeflate.finish())
        return self.error is None

    def _inflated(self, first: bytes, data: bytes | memoryview, need: int) -> bytes | None:
        """``first`` and the next ``need`` bytes inflated from ``data``, the start
        of a deflated data set (PS3.5 A.5); None where that cannot tell (not
        deflate: the walker says so), or refused (no byte from the first
        ``_INFLATE_MOST`` bytes of the stream, in whatever PDVs)."""
        inflate = self._inflate
        assert inflate is not None
        # A few bytes of input give them; their rest is the walker's to inflate.
        piece = data[:_INFLATE_MOST - self._inflate_fed]
        self._inflate_fed += len(piece)
        try:
            first += inflate.decompress(piece, need)
        except zlib.error:
            return None
        if len(first) < _VR_BYTES and not inflate.eof and self._inflate_fed >= _INFLATE_MOST:
            # Refused, not stored unlooked at: group 0002 may come next.
            self.error = (f"deflated data set giving no byte in its first "
                          f"{size_text(_INFLATE_MOST)}: not stored")
            self.status = CANNOT_UNDERSTAND
            self.abort()
            return None
        return first

    def _implicit_found(self) -> None:
        """Relabel (Explicit VR Little Endian) or refuse an Implicit VR data set."""
        syntax, buffer = self.transfer_syntax, self.buffer
        assert syntax is not None
        if syntax != EXPLICIT_LE:
            from dicomnet.uids import named_uid  # only here: a refusal is rare

            named = named_uid(syntax)
            self.error = (f"data set in Implicit VR, not in the context's {named}, which is "
                          "Explicit VR (PS3.5 10, A.2-A.5): not stored; an Implicit VR Little "
                          "Endian context takes it")
            self.status = CANNOT_UNDERSTAND
            self.abort()
            return
        # Still a bytearray: it holds the header and under _VR_BYTES bytes more.
        assert isinstance(buffer, bytearray)
        header = with_transfer_syntax(buffer[:self._header_length], IMPLICIT_LE)
        buffer[:self._header_length] = header
        self._header_length = len(header)
        self.relabelled, self.transfer_syntax = syntax, IMPLICIT_LE

    def _explicit_found(self) -> None:
        """Relabel Explicit VR Little Endian a data set that is so on an Implicit VR
        Little Endian context (PS3.5 A.2; the header says the data set's
        encoding: PS3.10 7.1), as :meth:`_implicit_found` does the reverse."""
        buffer = self.buffer
        # Still a bytearray: it holds the header and under _VR_BYTES bytes more.
        assert isinstance(buffer, bytearray)
        header = with_transfer_syntax(buffer[:self._header_length], EXPLICIT_LE)
        buffer[:self._header_length] = header
        self._header_length = len(header)
        self.relabelled, self.transfer_syntax = IMPLICIT_LE, EXPLICIT_LE

    def _drop_meta(self, data: bytes | memoryview) -> bytes | memoryview:
        """``data`` without the group 0002 elements the data set starts with. Ends
        before ``reserve`` can give memory: the buffer grows only once they end."""
        stray = self.stray
        if stray is None:  # (the usual case, no group 0002, is told in _start)
            stray = self.stray = StrayMeta(implicit=self.transfer_syntax == IMPLICIT_LE,
                                           big_endian=self.transfer_syntax == BIG_ENDIAN)
        kept = stray.feed(data)
        if stray.done:
            self._marker = None
            if not stray.tags:  # decided only now (a first write under 2 bytes): none
                self.stray = None
        return kept

    def reserve(self, most: int) -> memoryview | int | None:
        """Memory to receive the next bytes of the data set in place (see
        ``DatasetSink``): the free end of the page-aligned buffer or of the direct
        writer's current chunk, so that TLS decrypts straight into what goes to
        disk. While the data set's first bytes are looked at, a count instead:
        they come through :meth:`write`, a few at a time, and memory follows
        (``most`` tells that the data set passes ALIGNED_FROM). None when the
        data set is held otherwise."""
        if self.error is not None:
            return None
        if self._starting:
            # Re-deflated, every byte goes through write; otherwise only its start.
            return _START_READ if self._redeflate is None else None
        if self.writer is not None:
            try:
                return self.writer.reserve(most)
            except (OSError, StorageError):
                return None  # the next write meets the same error and reports it
        buffer = self.buffer
        if type(buffer) is AlignedBuffer:  # once per read: no isinstance call
            if buffer.size + most <= SPILL_THRESHOLD or self.provisional is None:
                return buffer.tail(most)  # up to its capacity (the spill threshold)
            # The data set goes past the threshold with this PDV: spilled now, so
            # that the PDV's rest is received into the writer's chunk rather
            # than cut at the threshold, which sent that rest (when under the
            # association's 64 KiB) and the next PDU's data, up to 256 KiB,
            # through the transport's buffer: one copy per large object.
            try:
                self._spill(buffer, b"")
            except StorageError as exc:
                self._failed(exc)
                return None
            return self.reserve(most)
        if type(buffer) is bytearray and self.provisional is not None:
            # The data set's start, under ALIGNED_FROM (write's bytearray): ``most``
            # bytes of one PDV follow, so it passes that; page-aligned now, or
            # spilled, and the PDV received in place.
            try:
                if len(buffer) + most > SPILL_THRESHOLD:
                    self._spill(buffer, b"")
                else:
                    aligned = AlignedBuffer.take(SPILL_THRESHOLD)
                    aligned.append(buffer)
                    self.buffer = aligned
            except StorageError as exc:
                self._failed(exc)
                return None
            return self.reserve(most)
        return None

    def check_complete(self, uid: str) -> bool:
        """After the last fragment: whether the data set ended where its elements
        say. If not, the sink is refused (Cannot Understand, PS3.4 B.2.3) and what
        it held is dropped."""
        if (self._redeflate is not None and self.error is None
                and not self._end_redeflating()):
            return False
        if self._first is not None and self.transfer_syntax == IMPLICIT_LE and self.error is None:
            self._first = None
            self._walk_held()  # ended before its first element header's VR could come
        if self._inflate is not None and self.error is None:
            self._walk_held()  # a deflated data set that ended before its start was known
        stray = self.stray
        if (stray is not None and not stray.done and self.error is None
                and (stray.tags or stray.cut)):
            # Nothing but group 0002 elements, or cut inside one: no data set. No
            # tag yet: a first element's header cut short (of any group).
            self.error = (
                "incomplete data set: it ends inside its first element" if not stray.tags
                else "incomplete data set: it ends inside File Meta Information "
                f"element {stray.names.rpartition(', ')[2]}" if stray.cut
                else "no data set: File Meta Information elements (group 0002) only")
            self.status = CANNOT_UNDERSTAND
            self.abort()
            return False
        walker = self._walker
        if walker is None or self.error is not None:
            return self.error is None
        problem = walker.problem()
        self._walker = None
        if problem is None:
            end = walker.stream_end
            if end is None or not (end.extra or end.unpadded):
                return True
            return self._end_stream(end)
        if walker.too_large:
            # Our bound, not the data set's fault: the Error Comment's 64 characters
            # say so, the log the whole reason.
            self.error = _past_our_bound(walker.declared)
            self.detail = f"{problem}; not stored"
            self.status = OUT_OF_RESOURCES
            self.abort()
            return False
        self.error = _refusal(problem)  # logged with the refusal
        self.status = CANNOT_UNDERSTAND
        self.abort()
        return False

    def _end_stream(self, end: StreamEnd) -> bool:
        """A deflated data set stored as it came, followed by bytes other than its
        padding, or of odd length without it: cut after its stream, padded to an
        even length (PS3.5 A.5), as a re-deflated one is; ``trailing`` says how
        many were dropped. Its elements are those sent (the padding is after the
        stream's end, which no reader inflates), where an odd length would make
        it the only kind of data set stored so with all its values even, one
        that dicomnet's SCU refuses to send (PS3.5 7.1.1)."""
        assert end.end is not None
        if not end.extra:
            self.write(b"\x00")  # spills, as any byte may, from a full buffer
            return self.error is None
        self.trailing = end.extra
        keep, pad = self._header_length + end.end, b"\x00" * (end.end % 2)
        buffer = self.buffer
        try:
            if self.writer is not None:
                self.writer.truncate(keep)
                self.writer.write(pad)
            elif isinstance(buffer, AlignedBuffer):
                buffer.size = keep
                buffer.append(pad)
            else:
                assert buffer is not None
                del buffer[keep:]
                buffer += pad
        except StorageError as exc:
            self._failed(exc)
            return False
        return True

    def _background_sync(self, writer: AtomicWriter) -> None:
        if self._syncing is not None and not self._syncing.done():
            return
        self._unsynced = 0
        self._syncing = asyncio.get_running_loop().run_in_executor(None, writer.sync_data)

    def abort(self) -> None:
        buffer, self.buffer = self.buffer, None
        if isinstance(buffer, AlignedBuffer):
            buffer.release()
        if self.writer is not None:
            self.writer.abort()
            self.writer = None


def contents(buffer: bytearray | AlignedBuffer) -> bytearray | memoryview:
    """The bytes a sink gathered in memory."""
    return buffer.view() if isinstance(buffer, AlignedBuffer) else buffer


def _past_our_bound(declared: tuple[int, int] | None) -> str:
    """The Error Comment (64 characters, PS3.7 C.4) of a deflated data set refused
    at our bound on inflating: past it inflated, or a value's length claiming so
    (``declared``, see completeness.inflated_past)."""
    most = size_text(completeness.MAX_INFLATED)
    if declared is not None:
        return f"deflated data set would inflate past {most}, our limit"
    return f"deflated data set inflates past {most}, our limit; not stored"


def _refusal(problem: str | None) -> str:
    """Why a data set is refused: one that ends too soon is incomplete, one that
    breaks the encoding's rules is malformed (the walker says so itself)."""
    problem = problem or "it ends too soon"
    return problem if problem.startswith("malformed") else f"incomplete data set: {problem}"
