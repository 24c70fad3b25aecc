"""How the Storage SCU makes each file ready to go (PS3.4 B.2.1, PS3.7 9.3.1): the
context it goes on, as is or converted (``store_convert``), its data set checked
whole first (``storage.completeness``), and its bytes read from disk straight
into P-DATA-TF PDUs (PS3.8 9.3.5), in memory used again. Used by
:mod:`dicomnet.services.store_scu`."""

from __future__ import annotations

import asyncio
import functools
import io
import itertools
import logging
import os
import stat
import struct
import sys
import zlib
from collections.abc import Callable, Generator, Iterator
from typing import TYPE_CHECKING, Protocol

from ..dimse.fragments import max_pdv_data_length
from ..dimse.messages import CStoreRQ
from ..storage.completeness import file_dataset_problem, walker_for
from ..storage.files import StorageError
from ..storage.part10 import DEFLATED_DATA_SETS, IMPLICIT_LE, Part10Info, read_part10
from ..storage.scan import implicit_vr_at
from ..storage.stray_meta import StrayMeta
from ..uids import named_uid, uid_type
from ..ul.connection import JOIN_LIMIT
from ..ul.negotiation import TRANSFER_SYNTAXES_NOT_SUPPORTED
from ..ul.pdu import P_DATA_TF
from .store_convert import (
    conversion_error,
    convert_in_memory,
    convert_to_file,
    converts_through_file,
    redeflated,
)
from .store_dataset import REFUSALS, UNCOMPRESSED
from .store_identity import own_identity

if TYPE_CHECKING:
    from ..aio.client import ClientAssociation
    from .store_scu import StoreResult

__all__ = ["DataSetPdus", "PduBuffers", "Prepared", "as_it_is_now", "file_pdus", "no_context",
           "prepare_file", "refused", "Syntaxes", "tag_texts"]

log = logging.getLogger("dicomnet.services")


#: PDV data per PDU when the peer sets no maximum (0): as our own default maximum.
_UNLIMITED_PDV = (1 << 20) - 6
#: A one-PDV P-DATA-TF's PDU and PDV headers (``ul.pdata.pdata_header``'s).
_PDATA_HEADER = struct.Struct(">BBIIBB")


class PduBuffers:
    """Memory for the data PDUs an association sends from files, used again once
    nothing holds it any more.

    A fresh ``bytearray`` is zeroed before the file is read over it, and a
    megabyte-sized one may come from fresh pages: reusing them cut the
    sender's CPU on 256 MB objects over TLS by 7% (``bench/store_bench.py``
    sizes, 6 interleaved runs). A buffer is handed out again only when its
    reference count (CPython's; elsewhere nothing is reused) shows that the
    pool alone holds it: a PDU still queued in the transport, or viewed by
    anything, keeps its buffer. Used from one event loop, by one message at a
    time (the association's send lock); it lives as long as the association.
    """

    #: References to an idle buffer while it is looked at: the pool's list, the
    #: loop variable and getrefcount's argument.
    _IDLE_REFS = 3
    #: Memory kept for reuse, beyond two buffers (a peer may ask for huge PDUs).
    _KEEP_BYTES = 16 << 20

    def __init__(self, keep: int = 4) -> None:
        self._keep = keep
        self._buffers: list[bytearray] = []
        self._counts = getattr(sys, "getrefcount", None)

    def get(self, capacity: int) -> bytearray:
        """A buffer of ``capacity`` bytes (contents undefined), reused if one is idle."""
        counts = self._counts
        if counts is not None:
            for buffer in self._buffers:
                if len(buffer) == capacity and counts(buffer) <= self._IDLE_REFS:
                    return buffer
        buffer = bytearray(capacity)
        if counts is not None:
            keep = max(2, min(self._keep, self._KEEP_BYTES // max(1, capacity)))
            while len(self._buffers) >= keep:
                self._buffers.pop(0)
            self._buffers.append(buffer)
        return buffer


#: PDUs at least this long are built in pooled memory; smaller ones are joined
#: with others before they are written anyway (ULConnection.chunks_to_send).
_POOLED_FROM = JOIN_LIMIT

#: Bytes left free before a pooled PDU, for the PDU of its message's command set
#: (``DataSetPdus.lead``): a C-STORE-RQ's is at most ~240 (two 64-character UIDs,
#: a move originator).
_HEADROOM = 256


def file_pdus(info: Part10Info, context_id: int, max_pdu: int,
               buffers: PduBuffers | None = None
               ) -> Generator[bytearray | memoryview, None, None]:
    """The data set of ``info``'s file as P-DATA-TF PDUs (PS3.7 8.2, PS3.8 9.3.5),
    each read from disk straight into its PDU after the 12-byte header: no other
    copy of the bytes is made on their way to the transport. Long PDUs are built
    in ``buffers``' memory.

    The file is looked at twice (one ``fstat`` each): when opened, and once the
    last PDU is read, before it is yielded. Raises :class:`StorageError` if it
    is not then as ``info`` read it (``changed``): when opened, the object fails
    alone (the caller takes the first PDU before it sends anything); before the
    last PDU, its message is left unfinished, which only an A-ABORT ends (PS3.8
    7.3, 9.3.5): the bytes sent may mix two states of the file, and the peer
    must not keep them as an object."""
    name = info.path_text  # no Path made (Part10Info.path)
    try:
        with open(name, "rb", buffering=0) as fp:
            fd = fp.fileno()
            if (why := changed(info, os.fstat(fd))) is not None:
                # Found before anything is sent: the object fails alone, the
                # association goes on.
                raise StorageError(why)

            def unchanged(sent: bool) -> None:
                if (why := changed(info, os.fstat(fd))) is None:
                    return
                if sent:
                    raise StorageError(f"{info.path} changed while it was sent: association "
                                       "aborted so that the peer does not keep a partial object")
                raise StorageError(f"{info.path} changed while it was read to be sent ({why})")

            yield from _pdus_from(fp, info.dataset_offset, info.size - info.dataset_offset,
                                  name=name, context_id=context_id,
                                  max_pdu=max_pdu, buffers=buffers, before_last=unchanged)
    except OSError as exc:
        raise StorageError.from_os_error("cannot read", info.path, exc) from exc


def changed(info: Part10Info, now: os.stat_result) -> str | None:
    """How the file ``now`` describes differs from the one ``read_part10`` read
    for ``info``, in words naming it, or None: its size, or its modification
    time, inode or device (``Part10Info.identity``; the size alone without
    one). A file rewritten within the clock's tick, at its size, goes unseen."""
    identity = info.identity
    if identity is not None and (now.st_ino != identity[1] or now.st_dev != identity[0]):
        return f"{info.path} changed since it was listed (another file in its place)"
    if now.st_size < info.size:
        return f"{info.path} is shorter than when it was read"
    if now.st_size != info.size or (identity is not None and now.st_mtime_ns != identity[2]):
        return f"{info.path} changed since it was listed"
    return None


def as_it_is_now(info: Part10Info) -> tuple[Part10Info, str | None]:
    """``info``, or its file's header read again if the file changed since
    (``changed``: a file still being written when listed, rewritten, or another
    put in its place), with the words saying so (None when unchanged). One
    ``stat`` when unchanged. A file grown since its listing would otherwise go
    as the prefix its listing saw, which a peer stores as whole when it ends
    between two elements. Raises StorageError for a file gone, no regular file
    any more (open() would wait on a FIFO until a writer came), or no Part 10
    file now."""
    try:
        now = os.stat(info.path_text)
    except OSError as exc:
        raise StorageError.from_os_error("cannot read", info.path, exc) from exc
    if not stat.S_ISREG(now.st_mode):
        raise StorageError(f"{info.path} is no regular file any more")
    if (why := changed(info, now)) is None:
        return info, None
    try:
        return own_identity(read_part10(info.path_text))[0], why
    except StorageError as exc:
        raise StorageError(f"{why}, and cannot be read as it is now: {exc}") from exc


def _converted_pdus(fp: io.BufferedRandom, length: int, *, info: Part10Info,
                    context_id: int, max_pdu: int, buffers: PduBuffers | None
                    ) -> Generator[bytearray | memoryview, None, None]:
    """The PDUs of ``info``'s data set converted into the temporary file ``fp``
    (``store_convert``), from its position, which is closed at the end (or when
    the generator is closed or collected)."""
    with fp:
        try:
            yield from _pdus_from(fp, fp.tell(), length, name=f"the conversion of {info.path}",
                                  context_id=context_id, max_pdu=max_pdu, buffers=buffers)
        except OSError as exc:
            raise StorageError.from_os_error("cannot read the conversion of", info.path,
                                             exc) from exc


def _pdus_from(fp: io.FileIO | io.BufferedRandom, offset: int, total: int, *, name: str,
               context_id: int, max_pdu: int, buffers: PduBuffers | None,
               before_last: Callable[[bool], None] | None = None
               ) -> Generator[bytearray | memoryview, None, None]:
    """``total`` bytes of ``fp`` from ``offset`` as P-DATA-TF PDUs (see
    ``file_pdus``); ``before_last``, told whether a PDU went before, is called
    once the last one is read, before it is yielded. Raises StorageError if the
    file ends before them, and OSError as reading raises it."""
    # max_pdv_data_length's answer, worked out here for a peer's usual maximum.
    size = (max_pdu - 6 if 6 < max_pdu <= 0xFFFFFFFF else
            max_pdv_data_length(max_pdu) if max_pdu else _UNLIMITED_PDV)
    remaining = total
    fp.seek(offset)
    while True:
        length = min(size, remaining)
        pdu: bytearray | memoryview
        if buffers is not None and 12 + length >= _POOLED_FROM:
            pdu = memoryview(buffers.get(_HEADROOM + 12 + size))[_HEADROOM:_HEADROOM + 12 + length]
        else:
            pdu = bytearray(12 + length)
        view = memoryview(pdu)
        filled = 12
        while filled < len(pdu):
            got = fp.readinto(view[filled:])
            if not got:
                raise StorageError(f"{name} is shorter than when it was read")
            filled += got
        view.release()
        remaining -= length
        if remaining == 0 and before_last is not None:
            before_last(total > length)
        # pdata_header's bytes (PS3.8 9.3.5, E.2), packed here: the values are valid.
        pdu[:12] = _PDATA_HEADER.pack(P_DATA_TF, 0, length + 6, length + 2, context_id,
                                      2 if remaining == 0 else 0)
        yield pdu
        if remaining == 0:
            return


class DataSetPdus:
    """A C-STORE's data set PDUs: the first, read already, then the rest from
    their generator, and ``close()``, which closes the file they are read from
    (the source, or a conversion's temporary file) whether or not they all went.
    Call it once the C-STORE is sent or has failed: left to the collector, the
    generator, held in a cycle by the error's traceback, may come after its
    file, which then says "ResourceWarning: unclosed file"."""

    __slots__ = ("_first", "_rest")

    def __init__(self, first: bytearray | memoryview,
                 rest: Generator[bytearray | memoryview, None, None]) -> None:
        self._first: bytearray | memoryview | None = first
        self._rest = rest

    def __iter__(self) -> Iterator[bytearray | memoryview]:
        # The first one is let go of once read: its buffer is then free for
        # reuse (PduBuffers).
        first, self._first = self._first, None
        return itertools.chain(() if first is None else (first,), self._rest)

    def lead(self, command: bytes) -> memoryview | None:
        """The first PDU with ``command`` (a whole P-DATA-TF PDU: its message's
        command set) in front of it, in its own buffer, or None (it is not pooled,
        or was taken, or ``command`` is too long): the two go in one write, one
        TLS record fewer per object. Iterating then yields the PDUs after it."""
        first = self._first
        if first is None or first.__class__ is not memoryview or len(command) > _HEADROOM:
            return None
        self._first = None
        start = _HEADROOM - len(command)
        whole = memoryview(first.obj)
        whole[start:_HEADROOM] = command
        return whole[start:_HEADROOM + len(first)]

    def close(self) -> None:
        self._first = None
        self._rest.close()


#: What a C-STORE needs to go: its request, its context, and its data set (as
#: PDUs read from the file, or converted bytes).
Prepared = tuple[CStoreRQ, int, DataSetPdus | None, "bytes | None"]


async def prepare_file(assoc: ClientAssociation, info: Part10Info, result: StoreResult,
                       buffers: PduBuffers | None) -> Prepared | None:
    """The C-STORE of ``info``'s file, or None when it cannot be sent (``result``
    then says why). The file is opened and its first PDU read here: a file gone
    or shortened since its header was read fails alone (StorageError), before
    any byte of its message is sent; so does one replaced by no regular file,
    which open() would wait on (a FIFO, until a writer comes): the caller looks
    first (``as_it_is_now``), and gives the file's header as it is now."""
    dataset_length = info.size - info.dataset_offset  # dataset_length, without the call
    if ((dataset_length == 0 or info.dataset_unseen)
            and (empty := await _empty_dataset(info)) is not None):  # no await for the rest
        result.error = f"not sent: {empty}"
        return None
    rq = CStoreRQ(message_id=assoc.dimse.next_message_id(),
                  affected_sop_class_uid=info.sop_class_uid,
                  affected_sop_instance_uid=info.sop_instance_uid)
    as_is = None
    sop_class, syntax = info.sop_class_uid, info.transfer_syntax_uid
    for context in assoc.contexts.values():  # no generator: two calls fewer per object
        if context.abstract_syntax == sop_class and context.transfer_syntax == syntax:
            as_is = context
            break
    if as_is is not None and info.transfer_syntax_uid in DEFLATED_DATA_SETS and (
            info.stray_meta or dataset_length % 2):
        if not info.stray_meta:
            log.warning("%s: its deflated data set's stream has an odd length (%d bytes), "
                        "without the NUL byte that pads it (PS3.5 A.5): deflated again, "
                        "padded", info.path, info.dataset_length)
        return await _redeflate(assoc, info, result, buffers, rq=rq, context_id=as_is.context_id)
    if as_is is not None:
        pdus = file_pdus(info, as_is.context_id, assoc.ul.peer_max_pdu_length, buffers)
        first = next(pdus)
        # The bytes go as they are: a file cut short would go out whole as far as the
        # peer can tell, and be stored so (storage.completeness), and one whose Pixel
        # Data its syntax does not allow be refused (PS3.5 A.4). Walked in its one
        # PDU, or, for a longer data set or a deflated one (inflated whole: our own
        # file, without the bound a peer's data set has; CPU only, in a thread),
        # in the file (seeking over long values).
        with memoryview(first)[12:] as head:  # released: ``first`` is a buffer reused
            problem = _implicit_under_explicit(info, head)
            walked = problem is None and (len(head) >= dataset_length
                                          and syntax not in DEFLATED_DATA_SETS)
            if walked:
                # Its first element header just found explicit (or the syntax is
                # Implicit VR): the walk need not look at it again.
                walker = walker_for(syntax, pixel_data=True, explicit_start=len(head) >= 8)
                walker.feed(head)
                problem = walker.problem()
        if problem is None and not walked:
            problem = await _file_problem(info)
        if problem is None and dataset_length % 2:
            # Every value has an even length (PS3.5 7.1.1), so a data set does too:
            # DCMTK and Orthanc abort the association on its odd last fragment,
            # taking the objects after it down as well.
            problem = (f"the data set has an odd length ({dataset_length} bytes), "
                       "which no DICOM encoding gives (PS3.5 7.1.1)")
        if problem is not None:
            pdus.close()
            result.error = f"not sent: {problem}"
            return None
        return rq, as_is.context_id, DataSetPdus(first, pdus), None
    # Little Endian first (UNCOMPRESSED's order), whatever order the contexts were
    # accepted in: a file went to Big Endian when the batch also held one in it.
    accepted = {c.transfer_syntax: c for c in assoc.contexts.values()
                if c.abstract_syntax == info.sop_class_uid}
    other = next((accepted[s] for s in UNCOMPRESSED if s in accepted), None)
    if other is None or info.transfer_syntax_uid not in UNCOMPRESSED:
        result.error = no_context(assoc, info)
        return None
    # pydicom re-encodes what it reads (even lengths), but reads a cut file as if
    # whole (a short Pixel Data): walked first.
    if (problem := await _file_problem(info)) is not None:
        result.error = f"not sent: {problem}"
        return None
    loop = asyncio.get_running_loop()
    target = other.transfer_syntax
    try:
        if converts_through_file(info, target):
            conversion = loop.run_in_executor(None, convert_to_file, info, target)
            try:
                # Shielded: cancelled meanwhile (a Ctrl-C, a timeout), the temporary
                # file the worker is making is closed once made, not dropped open.
                converted, length = await asyncio.shield(conversion)
            except asyncio.CancelledError:
                conversion.add_done_callback(_close_conversion)
                raise
            if (moved := _converted_meanwhile(info)) is not None:
                converted.close()
                result.error = moved
                return None
            pdus = _converted_pdus(converted, length, info=info, context_id=other.context_id,
                                   max_pdu=assoc.ul.peer_max_pdu_length, buffers=buffers)
            # Started, so that closing it closes its file: a generator never started
            # is closed with its body unrun.
            first = next(pdus)
            result.converted_to = target
            return rq, other.context_id, DataSetPdus(first, pdus), None
        data = await loop.run_in_executor(None, convert_in_memory, info, target)
    except Exception as exc:  # pydicom: a file that cannot be decoded or re-encoded
        result.error = f"cannot convert to {named_uid(target)}: {conversion_error(exc)}"
        return None
    if (moved := _converted_meanwhile(info)) is not None:
        result.error = moved
        return None
    result.converted_to = target
    return rq, other.context_id, None, data


async def _redeflate(assoc: ClientAssociation, info: Part10Info, result: StoreResult,
                     buffers: PduBuffers | None, *, rq: CStoreRQ, context_id: int
                     ) -> Prepared | None:
    """The C-STORE of a deflated file whose data set starts with group 0002
    elements (``info.stray_meta``), in its own syntax: its stream made again
    without them (``store_convert.redeflated``), in a temporary file, as the
    bytes as they are would put them in the peer's data set (PS3.5 7.1; DCMTK
    stores a file with two meta groups). So is one whose stream has an odd
    length and lacks the NUL byte that pads it (PS3.5 A.5; pydicom's
    image_dfl.dcm): the stream made again comes padded, where the bytes as they
    are end in an odd PDV that DCMTK aborts on. Its data set is walked whole first
    (storage.completeness), as one sent as it is: a cut or damaged one fails
    alone with why."""
    if (problem := await _file_problem(info)) is not None:
        result.error = f"not sent: {problem}"
        return None
    conversion = asyncio.get_running_loop().run_in_executor(None, redeflated, info)
    try:
        converted, length = await asyncio.shield(conversion)
    except asyncio.CancelledError:
        conversion.add_done_callback(_close_conversion)
        raise
    except (StorageError, OSError) as exc:
        result.error = f"not sent: {exc}".removesuffix("; not sent")
        return None
    if (moved := _converted_meanwhile(info)) is not None:
        converted.close()
        result.error = moved
        return None
    pdus = _converted_pdus(converted, length, info=info, context_id=context_id,
                           max_pdu=assoc.ul.peer_max_pdu_length, buffers=buffers)
    first = next(pdus)  # started, so that closing it closes its file
    return rq, context_id, DataSetPdus(first, pdus), None


def _converted_meanwhile(info: Part10Info) -> str | None:
    """Why a conversion of ``info``'s file, read whole by then, is not to be sent
    (the file changed while it was read: ``changed``), or None. One ``stat``."""
    try:
        now = os.stat(info.path_text)
    except OSError as exc:
        return f"not sent: {StorageError.from_os_error('cannot read', info.path, exc)}"
    if changed(info, now) is None:
        return None
    return f"not sent: {info.path} changed while it was converted"


def _close_conversion(conversion: asyncio.Future[tuple[io.BufferedRandom, int]]) -> None:
    """Close the temporary file of a conversion no one waits for any more."""
    if not conversion.cancelled() and conversion.exception() is None:
        conversion.result()[0].close()


class Syntaxes(Protocol):
    """What :func:`refused` reads of a file: a ``Part10Info``, or the plan
    ``store_batch`` keeps of it."""

    @property
    def sop_class_uid(self) -> str: ...
    @property
    def transfer_syntax_uid(self) -> str: ...


def refused(assoc: ClientAssociation, info: Syntaxes) -> str | None:
    """Why ``assoc`` cannot take ``info``'s file, in :func:`prepare_file`'s words,
    or None: no context accepted for it as it is, nor an uncompressed one for an
    uncompressed file to be converted to (PS3.8 9.3.3.2). The rule
    :func:`prepare_file` follows, for the files an association's failure left
    unsent (store_scu): told so, not "association aborted"."""
    accepted = {c.transfer_syntax for c in assoc.contexts.values()
                if c.abstract_syntax == info.sop_class_uid}
    if info.transfer_syntax_uid in accepted or (
            info.transfer_syntax_uid in UNCOMPRESSED and not accepted.isdisjoint(UNCOMPRESSED)):
        return None
    return no_context(assoc, info)


def no_context(assoc: ClientAssociation, info: Syntaxes) -> str:
    """Why ``info``'s file cannot go: the SOP Class refused, or the syntax. A file
    that is never converted (compressed, or in a syntax dicomnet does not know)
    is told so whether the peer refused every context of its SOP Class (one
    file alone proposes its own syntax alone) or took the class in another
    syntax (for other files): its own was not taken either way. Both UIDs are
    named ("RLE Lossless (1.2.840.10008.1.2.5)") where the registry knows them."""
    sop_class, syntax = info.sop_class_uid, info.transfer_syntax_uid
    why = assoc.refused.get(sop_class)
    if syntax not in UNCOMPRESSED and why in (None, TRANSFER_SYNTAXES_NOT_SUPPORTED):
        return (f"the peer accepted no context for {named_uid(sop_class)} in "
                f"{named_uid(syntax)} ({_never_converted(syntax)})")
    if why is not None:
        return (f"the peer accepted no context for {named_uid(sop_class)}: "
                + REFUSALS.get(why, "it refused them without a reason"))
    return f"the peer accepted no context for {named_uid(sop_class)} in {named_uid(syntax)}"


def _never_converted(syntax: str) -> str:
    """Why a file in ``syntax`` (no uncompressed one) goes only as it is: its data
    set is compressed (dicomnet does not decompress), or encoded in a way
    dicomnet cannot read (a private or unknown transfer syntax, PS3.5 10). Looked
    up without ``pydicom.uid.UID``, which warns of a junk value."""
    if uid_type(syntax) == "Transfer Syntax":
        return "compressed; not converted"
    return ("a transfer syntax dicomnet does not know, so not converted: sent only to a "
            "peer that accepts it as is")


async def _empty_dataset(info: Part10Info) -> str | None:
    """Why ``info``'s data set would go empty, or None: it has no bytes, or holds
    nothing but group 0002 elements, which the SCU leaves out (PS3.5 7.1;
    ``info.stray_meta``). An empty data set is no object a peer can take (a
    dicomnet server answers C000H: no study to file it under), and sending it
    tells nothing. A deflated one (PS3.5 A.5) whose start ``read_part10`` saw
    no other element in (``info.dataset_unseen``) is inflated, off the event
    loop, up to its first other element. Raises StorageError."""
    if info.dataset_length == 0:
        tags: tuple[int, ...] | None = info.stray_meta
    elif info.dataset_unseen:
        try:
            tags = await asyncio.get_running_loop().run_in_executor(
                None, _deflated_meta_only, info)
        except OSError as exc:
            raise StorageError.from_os_error("cannot read", info.path, exc) from exc
    else:
        tags = None
    if tags is None:
        return None
    if not tags:
        return "its data set is empty"
    names = ", ".join(tag_texts(tags))
    return (f"its data set holds only File Meta Information elements ({names}), which "
            "are left out of what is sent (PS3.5 7.1)")


def tag_texts(tags: tuple[int, ...]) -> list[str]:
    """Tags as "(gggg,eeee)", as PS3.5 writes them (``StoreResult.dropped_meta``)."""
    return [f"({tag >> 16:04X},{tag & 0xFFFF:04X})" for tag in tags]


#: Bytes of a deflated stream read, and inflated, at a time.
_INFLATE_PIECE = 64 << 10


def _deflated_meta_only(info: Part10Info) -> tuple[int, ...] | None:
    """The group 0002 elements a deflated data set holds if it holds nothing else
    (none for a stream that inflates to nothing), or None: something else, or a
    stream that does not inflate (its walk before sending says why). Raises
    OSError."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    stray = StrayMeta(implicit=False)
    with open(info.path, "rb") as fp:
        fp.seek(info.dataset_offset)
        remaining = info.dataset_length
        pending = b""
        try:
            while not inflater.eof:
                if not pending and remaining > 0:
                    pending = fp.read(min(_INFLATE_PIECE, remaining))
                    remaining = remaining - len(pending) if pending else 0
                # At most a piece out at a time: deflate inflates up to a thousandfold.
                out = inflater.decompress(pending, _INFLATE_PIECE)
                pending = inflater.unconsumed_tail
                if stray.feed(out):
                    return None
                if not out and not pending and remaining <= 0:
                    break  # the stream is cut short: nothing more comes out
        except zlib.error:
            return None
    return tuple(stray.tags)


def _implicit_under_explicit(info: Part10Info, head: bytes | bytearray | memoryview
                             ) -> str | None:
    """Why a data set in Implicit VR cannot go as it is in its file's Explicit VR
    syntax, or None; ``head``: its first bytes (those of its first PDU). Any
    syntax but Implicit VR Little Endian and a deflated one (whose first bytes
    are no element header): Explicit VR Little Endian too, which
    ``read_part10`` relabels as it reads the header (``dataset_syntax``), looked
    at again here in the bytes that go (a data set too short for that look then,
    a file rewritten since). None also says that its first element header is
    explicit, or says nothing (``implicit_vr_at``). PS3.10 7.1 makes the
    Transfer Syntax UID the data set's encoding; a peer reading it so fails
    (DCMTK's storescp aborts the association, and the objects after it are lost
    with it), so it fails alone, unsent."""
    syntax = info.transfer_syntax_uid
    if syntax == IMPLICIT_LE or syntax in DEFLATED_DATA_SETS or not implicit_vr_at(head):
        return None
    return (f"its data set is in Implicit VR, but its transfer syntax, {named_uid(syntax)}, "
            "is Explicit VR (PS3.5 A.4, PS3.10 7.1): a peer cannot read it (DCMTK's "
            "storescp aborts the association)")


async def _file_problem(info: Part10Info) -> str | None:
    """Why the file's data set is not whole (storage.completeness), or its top-level
    Pixel Data is not as its syntax has it (PS3.5 A.4), or None; off the event loop
    (a file of small fragments is read whole). Raises StorageError."""
    try:
        return await asyncio.get_running_loop().run_in_executor(
            None, functools.partial(file_dataset_problem, info.path_text, info.dataset_offset,
                                    info.transfer_syntax_uid, limited=False, pixel_data=True))
    except OSError as exc:
        raise StorageError.from_os_error("cannot read", info.path, exc) from exc

