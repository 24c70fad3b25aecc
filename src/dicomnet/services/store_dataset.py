"""C-STORE of a data set held in memory (a pydicom ``Dataset``): what an AI node
sends back, a result it made, rather than a file (PS3.4 B.2.2, PS3.7 9.1.1).

The data set is encoded by pydicom in a transfer syntax the peer accepted for
its SOP Class: its own, when it has one (``file_meta.TransferSyntaxUID``) and the
peer took it, which is the only choice for compressed (encapsulated) Pixel Data;
otherwise an uncompressed one, Little Endian first. Only the data set goes on
the wire, without File Meta Information (PS3.7 9.3.1.1).
"""

from __future__ import annotations

import array
import asyncio
import copy
import functools
import zlib
from typing import TYPE_CHECKING

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import correct_ambiguous_vr_element, write_dataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from ..dimse.messages import CStoreRQ, CStoreRSP
from ..dimse.status import Status
from ..errors import ConfigurationError, NoAcceptedContext, RemoteProtocolError
from ..uids import named_uid
from ..ul.negotiation import ABSTRACT_SYNTAX_NOT_SUPPORTED, TRANSFER_SYNTAXES_NOT_SUPPORTED

if TYPE_CHECKING:
    from ..aio.client import ClientAssociation

__all__ = ["REFUSALS", "UNCOMPRESSED", "WORD_SIZES", "array_code", "encode_dataset",
           "store_dataset", "swapped_copy"]

#: Why the peer refused every context of a SOP Class (PS3.8 Table 9-18).
REFUSALS = {
    ABSTRACT_SYNTAX_NOT_SUPPORTED: "it does not take that SOP Class (abstract syntax not "
    "supported)",
    TRANSFER_SYNTAXES_NOT_SUPPORTED: "it takes that SOP Class in none of the transfer syntaxes "
    "proposed",
}

IMPLICIT_LE = str(ImplicitVRLittleEndian)
EXPLICIT_LE = str(ExplicitVRLittleEndian)
DEFLATED_LE = str(DeflatedExplicitVRLittleEndian)
EXPLICIT_BE = str(ExplicitVRBigEndian)
#: The syntaxes pydicom encodes by itself, in the order a data set is converted
#: to one: Little Endian first (Explicit VR Big Endian is retired, PS3.5 A.3).
UNCOMPRESSED = (EXPLICIT_LE, IMPLICIT_LE, DEFLATED_LE, EXPLICIT_BE)


#: Bytes per value of the VRs pydicom keeps as bytes, in the byte order they were
#: read in (PS3.5 7.3): a change of byte order must swap each value, which
#: pydicom's writer does not do (16-bit Pixel Data came out scrambled).
WORD_SIZES = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}
_ARRAY_CODES = {size: next(code for code in "HILQ" if array.array(code).itemsize == size)
                for size in (2, 4, 8)}
#: VRs pydicom leaves open until it writes (PS3.5 Table 6.2-1 note: "US or SS" ...).
_AMBIGUOUS = frozenset({"OB or OW", "US or OW", "US or SS", "US or SS or OW"})


def array_code(size: int) -> str:
    """The :mod:`array` type code of unsigned words of ``size`` bytes (2, 4, 8)."""
    return _ARRAY_CODES[size]


def swapped_copy(ds: Dataset, little_endian: bool) -> Dataset:
    """A copy of ``ds`` for the other byte order: each OW, OF, OL, OD and OV value
    with the bytes of its words reversed, in sequences too; every other element
    shared, not copied. ``ds`` itself is not changed (another thread may be
    encoding it at the same time)."""
    out = Dataset()
    for original in ds:
        element = original
        if str(element.VR) in _AMBIGUOUS:
            # Implicit VR leaves Pixel Data "OB or OW" until written: decided on a
            # copy (as the writer would, from Bits Allocated), so OW is seen as OW.
            decided = correct_ambiguous_vr_element(copy.copy(original), ds, little_endian)
            assert isinstance(decided, DataElement)
            element = decided
        vr, value = str(element.VR), element.value
        if vr == "SQ" and value is not None:
            out.add(DataElement(element.tag, vr, Sequence(
                [swapped_copy(item, little_endian) for item in value])))
        elif (size := WORD_SIZES.get(vr)) and isinstance(value, bytes | bytearray) and (
                len(value) % size == 0):
            words = array.array(_ARRAY_CODES[size])
            words.frombytes(value)
            words.byteswap()
            out.add(DataElement(element.tag, vr, words.tobytes()))
        else:
            out.add(element)
    return out


def encode_dataset(ds: Dataset, transfer_syntax: str, *, source: str | None = None) -> bytes:
    """``ds`` as the bytes of a C-STORE data set in ``transfer_syntax``: an
    uncompressed one, or the data set's own (its Pixel Data then stays as it is,
    encapsulated). No preamble and no File Meta Information. ``source`` is the
    syntax ``ds`` was read in (its values' byte order; None: Little Endian); when
    the byte order changes, a copy with the OW/OF/OL/OD/OV values swapped is
    encoded: ``ds`` is never changed."""
    buffer = DicomBytesIO()
    buffer.is_little_endian = transfer_syntax != EXPLICIT_BE
    buffer.is_implicit_VR = transfer_syntax == IMPLICIT_LE
    if (source == EXPLICIT_BE) != (transfer_syntax == EXPLICIT_BE):
        ds = swapped_copy(ds, buffer.is_little_endian)
    write_dataset(buffer, ds)
    raw = bytes(buffer.getvalue())
    if transfer_syntax == DEFLATED_LE:  # PS3.5 A.5: raw deflate, padded to an even length
        compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        raw = compressor.compress(raw) + compressor.flush()
        if len(raw) % 2:
            raw += b"\x00"
    return raw


def _own_syntax(ds: Dataset) -> str | None:
    meta = getattr(ds, "file_meta", None)
    syntax = getattr(meta, "TransferSyntaxUID", None) if meta is not None else None
    return str(syntax) if syntax else None


def _choose(assoc: ClientAssociation, sop_class: str, own: str | None) -> tuple[int, str]:
    """(context ID, transfer syntax) to send a data set of ``sop_class`` in; the
    errors name the UIDs the registry knows ("CT Image Storage (1.2...)")."""
    accepted = {c.transfer_syntax: c.context_id for c in assoc.contexts.values()
                if c.abstract_syntax == sop_class}
    if not accepted:
        raise NoAcceptedContext(_no_context(assoc, sop_class))
    if own is not None and own in accepted:
        return accepted[own], own
    if own is not None and own not in UNCOMPRESSED:
        raise NoAcceptedContext(
            f"the peer accepted no presentation context for {named_uid(sop_class)} in "
            f"{named_uid(own)}, the data set's compressed syntax (it is not converted)")
    for syntax in UNCOMPRESSED:
        if syntax in accepted:
            return accepted[syntax], syntax
    raise NoAcceptedContext(
        f"the peer accepted no presentation context for {named_uid(sop_class)} in an "
        "uncompressed transfer syntax")


def _no_context(assoc: ClientAssociation, sop_class: str) -> str:
    """Why no accepted context carries ``sop_class``: never proposed (the
    caller's contexts lack it: say how to add it), or refused by the peer (its
    reason, PS3.8 Table 9-18)."""
    rq = assoc.ul.associate_rq
    proposed = rq is None or any(pc.abstract_syntax == sop_class
                                 for pc in rq.presentation_contexts)
    if not proposed:
        return (f"no presentation context was proposed for {named_uid(sop_class)} on this "
                f"association: open it with contexts=[ContextRequest({sop_class!r}, "
                "(ExplicitVRLittleEndian, ImplicitVRLittleEndian))] "
                "(dicomnet.ContextRequest, pydicom.uid) to store it")
    why = assoc.refused.get(sop_class)
    return (f"the peer accepted no presentation context for {named_uid(sop_class)}: "
            + REFUSALS.get(why or 0, "it refused them without a reason"))


async def store_dataset(assoc: ClientAssociation, ds: Dataset) -> Status:
    """C-STORE ``ds`` on an established association and return the response's
    status (warnings included: B000, B007, B006 are stores). Raises
    ConfigurationError for a data set without SOP Class or Instance UID, or
    one pydicom cannot encode (nothing is sent: the association goes on),
    NoAcceptedContext when no accepted context can carry it, and what the
    association raises (abort, DIMSE timeout). For the Error Comment, send with
    ``assoc.request_one`` and read the response."""
    sop_class = str(ds.get("SOPClassUID", "") or "")
    sop_instance = str(ds.get("SOPInstanceUID", "") or "")
    if not sop_class or not sop_instance:
        raise ConfigurationError("the data set has no SOP Class UID (0008,0016) or SOP "
                                 "Instance UID (0008,0018): it cannot be stored")
    own = _own_syntax(ds)
    context_id, syntax = _choose(assoc, sop_class, own)
    # Off the event loop: encoding a large data set takes a while.
    try:
        data = await asyncio.get_running_loop().run_in_executor(
            None, functools.partial(encode_dataset, ds, syntax, source=own))
    except Exception as exc:
        # pydicom's own words (an OSError around struct.error for a US value over
        # 65535, a ValueError...): the caller's data set, nothing sent. Their first
        # line only: pydicom appends the whole traceback to the message.
        said = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigurationError(
            f"the data set cannot be encoded in {named_uid(syntax)}: {said}") from exc
    rq = CStoreRQ(message_id=assoc.dimse.next_message_id(), affected_sop_class_uid=sop_class,
                  affected_sop_instance_uid=sop_instance)
    rsp, _ = await assoc.request_one(rq, context_id, dataset=data)
    if not isinstance(rsp, CStoreRSP):
        raise RemoteProtocolError(f"a C-STORE was answered with {type(rsp).__name__}")
    return Status(rsp.status, "storage")
