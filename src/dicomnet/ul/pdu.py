"""The seven Upper Layer PDUs (PS3.8 9.3) and their codec.

``decode_pdu`` turns one complete PDU (6-byte header included) into one of the
frozen dataclasses below; each dataclass's ``encode()`` gives the bytes back.
``encode_pdata`` and ``pdata_header`` build a one-PDV P-DATA-TF without making
dataclasses, for the bulk-data path. P-DATA-TF lives in ``ul.pdata`` and the
PDU codes (types, A-ABORT and A-ASSOCIATE-RJ codes, ``Rejection``) in
``ul.pdu_codes``; this module re-exports them, its names unchanged.

What the decoder enforces (anything else raises ``RemoteProtocolError`` with
abort source 2 and the reason of PS3.8 Table 9-26):

* the PDU length equals the bytes given; every item and sub-item length fits
  what is left of its parent (reason 6);
* an unknown PDU type is reason 1; an unknown item type in the variable field
  of an A-ASSOCIATE-RQ/AC is reason 4, and a known one in the wrong place (a
  0x21 in a request, a sub-item at top level...) or repeated where only one is
  allowed is reason 5. Unknown *sub-items* of the user information item are
  kept as ``UnknownSubItem`` (PS3.7 D.3.3);
* PS3.8 9.3.2 and 9.3.3 make three items mandatory in both A-ASSOCIATE-RQ and
  A-ASSOCIATE-AC: exactly one application context item, one or more
  presentation context items and exactly one user information item; a missing
  one is reason 6. The sub-items of the user information item are *not*
  required here (not even Maximum Length, PS3.8 D.1): the negotiation layer
  decides what their absence means;
* the fixed-length PDUs (A-ASSOCIATE-RJ, A-RELEASE-RQ/RP, A-ABORT) have a PDU
  length of 4; a P-DATA-TF holds one or more PDV items of length 2 or more
  (PS3.8 9.3.5);
* the called and calling AE titles of a request are 1 to 16 printable ASCII
  characters once their spaces are stripped (a title of 16 spaces "shall not
  be used", PS3.8 9.3.2); the same fields of an A-ASSOCIATE-AC are not tested
  (PS3.8 9.3.3): undecodable bytes there read as ``?``;
* presentation context IDs are odd and each used once in an A-ASSOCIATE-RQ
  or -AC (PS3.8 9.3.2.2, 9.3.3.2, 7.1.1.13): a request that breaks this has no
  valid answer (reason 6; see ``_check_context_ids``).

Other values are decoded, not judged: the protocol version, A-ASSOCIATE-RJ and
A-ABORT codes and user identity types are kept as received, for the state
machine and negotiation layer to answer (an unsupported protocol version, for
one, is answered with an A-ASSOCIATE-RJ, not an abort). Reserved fields are
written as zero and never tested (PS3.8 9.3.1).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, TypeAlias

from dicomnet.errors import ConfigurationError, RemoteProtocolError
from dicomnet.ul.codec import (
    _PDU_HEADER,
    _check_int,
    _invalid,
    _norm_text,
    _pdu,
    _to_tuple,
    _unexpected,
    _unrecognized,
    iter_items,
)
from dicomnet.ul.items import (
    APPLICATION_CONTEXT_ITEM,
    KNOWN_ITEM_TYPES,
    PRESENTATION_CONTEXT_AC_ITEM,
    PRESENTATION_CONTEXT_RQ_ITEM,
    USER_INFORMATION_ITEM,
    ApplicationContextItem,
    PresentationContextACItem,
    PresentationContextRQItem,
    UserInformationItem,
    decode_application_context_item,
    decode_presentation_context_ac_item,
    decode_presentation_context_rq_item,
    decode_user_information_item,
)
from dicomnet.ul.pdata import (
    ContinuedPDV,
    PDataTF,
    PresentationDataValue,
    _decode_pdata,
    encode_pdata,
    pdata_header,
)
from dicomnet.ul.pdu_codes import (
    A_ABORT,
    A_ASSOCIATE_AC,
    A_ASSOCIATE_RJ,
    A_ASSOCIATE_RQ,
    A_RELEASE_RP,
    A_RELEASE_RQ,
    ABORT_REASON_INVALID_PARAMETER_VALUE,
    ABORT_REASON_NOT_SPECIFIED,
    ABORT_REASON_UNEXPECTED_PARAMETER,
    ABORT_REASON_UNEXPECTED_PDU,
    ABORT_REASON_UNRECOGNIZED_PARAMETER,
    ABORT_REASON_UNRECOGNIZED_PDU,
    ABORT_SOURCE_SERVICE_PROVIDER,
    ABORT_SOURCE_SERVICE_USER,
    DICOM_APPLICATION_CONTEXT,
    P_DATA_TF,
    PDU_TYPES,
    RJ_REASON_ACSE_NO_REASON,
    RJ_REASON_APPLICATION_CONTEXT_NOT_SUPPORTED,
    RJ_REASON_CALLED_AE_NOT_RECOGNIZED,
    RJ_REASON_CALLING_AE_NOT_RECOGNIZED,
    RJ_REASON_LOCAL_LIMIT_EXCEEDED,
    RJ_REASON_PROTOCOL_VERSION_NOT_SUPPORTED,
    RJ_REASON_TEMPORARY_CONGESTION,
    RJ_REASON_USER_NO_REASON,
    RJ_RESULT_PERMANENT,
    RJ_RESULT_TRANSIENT,
    RJ_SOURCE_ACSE,
    RJ_SOURCE_PRESENTATION,
    RJ_SOURCE_SERVICE_USER,
    Rejection,
)

__all__ = [
    "ABORT_REASON_INVALID_PARAMETER_VALUE",
    "ABORT_REASON_NOT_SPECIFIED",
    "ABORT_REASON_UNEXPECTED_PARAMETER",
    "ABORT_REASON_UNEXPECTED_PDU",
    "ABORT_REASON_UNRECOGNIZED_PARAMETER",
    "ABORT_REASON_UNRECOGNIZED_PDU",
    "ABORT_SOURCE_SERVICE_PROVIDER",
    "ABORT_SOURCE_SERVICE_USER",
    "A_ABORT",
    "A_ASSOCIATE_AC",
    "A_ASSOCIATE_RJ",
    "A_ASSOCIATE_RQ",
    "A_RELEASE_RP",
    "A_RELEASE_RQ",
    "DICOM_APPLICATION_CONTEXT",
    "PDU_TYPES",
    "P_DATA_TF",
    "RJ_REASON_ACSE_NO_REASON",
    "RJ_REASON_APPLICATION_CONTEXT_NOT_SUPPORTED",
    "RJ_REASON_CALLED_AE_NOT_RECOGNIZED",
    "RJ_REASON_CALLING_AE_NOT_RECOGNIZED",
    "RJ_REASON_LOCAL_LIMIT_EXCEEDED",
    "RJ_REASON_PROTOCOL_VERSION_NOT_SUPPORTED",
    "RJ_REASON_TEMPORARY_CONGESTION",
    "RJ_REASON_USER_NO_REASON",
    "RJ_RESULT_PERMANENT",
    "RJ_RESULT_TRANSIENT",
    "RJ_SOURCE_ACSE",
    "RJ_SOURCE_PRESENTATION",
    "RJ_SOURCE_SERVICE_USER",
    "PDU",
    "AAbort",
    "AssociateAC",
    "AssociateRJ",
    "AssociateRQ",
    "ContinuedPDV",
    "PDataTF",
    "PresentationDataValue",
    "Rejection",
    "ReleaseRP",
    "ReleaseRQ",
    "decode_pdu",
    "describe_foreign_bytes",
    "encode_pdata",
    "pdata_header",
]

_FIXED4 = struct.Struct(">BBLBBBB")  # header + 4 one-byte fields (RJ, release, abort)
_ASSOCIATE_FIXED = struct.Struct(">HH16s16s32x")  # version, reserved, called, calling, reserved
_ASSOCIATE_FIXED_LENGTH = _ASSOCIATE_FIXED.size  # 68


# ------------------------------------------------------------------------ AE titles


def _norm_ae(obj: object, field: str, *, allow_empty: bool) -> None:
    """Check an AE title (PS3.8 9.3.2, PS3.5 AE) and store it without its spaces."""
    value = getattr(obj, field)
    if not isinstance(value, str):
        raise ConfigurationError(f"{field} must be a str, got {type(value).__name__}")
    title = value.strip(" ")
    if not (title.isascii() and title.isprintable()):
        raise ConfigurationError(f"{field} must be printable ASCII, got {value!r}")
    if len(title) > 16:
        raise ConfigurationError(f"{field} must be at most 16 characters, got {value!r}")
    if not title and not allow_empty:
        raise ConfigurationError(f"{field} must not be empty or all spaces")
    if type(value) is not str or title != value:
        object.__setattr__(obj, field, str(title))


def _encode_ae(title: str) -> bytes:
    return title.encode("ascii").ljust(16, b" ")


def _decode_ae(raw: bytes, what: str, *, tested: bool) -> str:
    # Stop at a NUL as C implementations do (some pad with NULs, not spaces).
    raw = raw.split(b"\0", 1)[0]
    if not tested:
        # A-ASSOCIATE-AC: the field "shall not be tested when received" (PS3.8 9.3.3).
        return "".join(chr(b) if 0x20 <= b < 0x7F else "?" for b in raw).strip(" ")
    try:
        title = raw.decode("ascii").strip(" ")
    except UnicodeDecodeError:
        raise _invalid(f"{what} is not ASCII: {raw!r}") from None
    if not title:
        raise _invalid(f"{what} is empty or all spaces (PS3.8 9.3.2)")
    if not title.isprintable():
        raise _invalid(f"{what} holds control characters: {raw!r}")
    return title


# ------------------------------------------------------------------- A-ASSOCIATE


def _check_associate(
    pdu: AssociateRQ | AssociateAC, item_class: type, *, allow_empty_ae: bool
) -> None:
    _norm_ae(pdu, "called_ae_title", allow_empty=allow_empty_ae)
    _norm_ae(pdu, "calling_ae_title", allow_empty=allow_empty_ae)
    _norm_text(pdu, "application_context_name", "application context name")
    contexts = _to_tuple(pdu, "presentation_contexts")
    if not contexts:
        raise ConfigurationError(
            f"{pdu.__class__.__name__} needs one or more presentation contexts (PS3.8 9.3.2)"
        )
    for pc in contexts:
        if not isinstance(pc, item_class):
            raise ConfigurationError(f"not a {item_class.__name__}: {pc!r}")
    _check_context_ids(contexts)  # type: ignore[arg-type]  # items checked just above
    if not isinstance(pdu.user_information, UserInformationItem):
        raise ConfigurationError(f"not a UserInformationItem: {pdu.user_information!r}")
    _check_int(pdu.protocol_version, "protocol version", 0xFFFF)


def _check_context_ids(
        contexts: tuple[PresentationContextRQItem | PresentationContextACItem, ...]) -> None:
    """Presentation context IDs are odd integers from 1 to 255 (PS3.8 9.3.2.2,
    9.3.3.2), each used once: a request gives every context its own (7.1.1.13),
    and an AC answers each proposed one once (7.1.1.14). A request that breaks
    this has no valid answer (which proposal would an AC item answer? an even ID
    is not allowed in an AC either), and A-ASSOCIATE-RJ has no reason for it
    (9.3.4): decoded, it is an invalid PDU parameter value (A-ABORT reason 6)."""
    seen: set[int] = set()
    for pc in contexts:
        cid = pc.context_id
        if cid % 2 == 0:
            raise ConfigurationError(
                f"presentation context ID {cid} is not an odd number from 1 to 255 "
                "(PS3.8 9.3.2.2)")
        if cid in seen:
            raise ConfigurationError(
                f"presentation context ID {cid} is used twice (PS3.8 7.1.1.13)")
        seen.add(cid)


def _encode_associate(pdu: AssociateRQ | AssociateAC) -> bytes:
    parts = [
        _ASSOCIATE_FIXED.pack(
            pdu.protocol_version,
            0,
            _encode_ae(pdu.called_ae_title),
            _encode_ae(pdu.calling_ae_title),
        ),
        ApplicationContextItem(pdu.application_context_name).encode(),
    ]
    parts += [pc.encode() for pc in pdu.presentation_contexts]
    parts.append(pdu.user_information.encode())
    return _pdu(pdu.pdu_type, b"".join(parts), PDU_TYPES[pdu.pdu_type])


@dataclass(frozen=True, slots=True)
class AssociateRQ:
    """A-ASSOCIATE-RQ PDU, type 0x01 (PS3.8 9.3.2, Table 9-11).

    AE titles are stored without their non-significant spaces. ``protocol_version``
    is the raw 16-bit field (bit 0 set: version 1).
    """

    pdu_type: ClassVar[int] = A_ASSOCIATE_RQ

    called_ae_title: str
    calling_ae_title: str
    application_context_name: str
    presentation_contexts: tuple[PresentationContextRQItem, ...]
    user_information: UserInformationItem
    protocol_version: int = 1

    def __post_init__(self) -> None:
        _check_associate(self, PresentationContextRQItem, allow_empty_ae=False)

    def encode(self) -> bytes:
        return _encode_associate(self)


@dataclass(frozen=True, slots=True)
class AssociateAC:
    """A-ASSOCIATE-AC PDU, type 0x02 (PS3.8 9.3.3, Table 9-17).

    ``called_ae_title`` and ``calling_ae_title`` are the reserved fields that
    echo the request; they are not tested on receipt, so may be empty here.
    """

    pdu_type: ClassVar[int] = A_ASSOCIATE_AC

    called_ae_title: str
    calling_ae_title: str
    application_context_name: str
    presentation_contexts: tuple[PresentationContextACItem, ...]
    user_information: UserInformationItem
    protocol_version: int = 1

    def __post_init__(self) -> None:
        _check_associate(self, PresentationContextACItem, allow_empty_ae=True)

    def encode(self) -> bytes:
        return _encode_associate(self)


def _decode_associate(body: memoryview, pdu_type: int) -> AssociateRQ | AssociateAC:
    name = PDU_TYPES[pdu_type]
    is_rq = pdu_type == A_ASSOCIATE_RQ
    if len(body) < _ASSOCIATE_FIXED_LENGTH:
        raise _invalid(
            f"{name} PDU length {len(body)} is less than its "
            f"{_ASSOCIATE_FIXED_LENGTH}-byte fixed part"
        )
    version, _, called, calling = _ASSOCIATE_FIXED.unpack_from(body)
    pc_type = PRESENTATION_CONTEXT_RQ_ITEM if is_rq else PRESENTATION_CONTEXT_AC_ITEM
    app: ApplicationContextItem | None = None
    user: UserInformationItem | None = None
    rq_contexts: list[PresentationContextRQItem] = []
    ac_contexts: list[PresentationContextACItem] = []
    for item_type, value in iter_items(body[_ASSOCIATE_FIXED_LENGTH:], name):
        if item_type == pc_type:
            if is_rq:
                rq_contexts.append(decode_presentation_context_rq_item(value))
            else:
                ac_contexts.append(decode_presentation_context_ac_item(value))
        elif item_type == APPLICATION_CONTEXT_ITEM:
            if app is not None:
                raise _unexpected(f"{name}: more than one application context item")
            app = decode_application_context_item(value)
        elif item_type == USER_INFORMATION_ITEM:
            if user is not None:
                raise _unexpected(f"{name}: more than one user information item")
            user = decode_user_information_item(value)
        elif item_type in KNOWN_ITEM_TYPES:
            raise _unexpected(f"{name}: item type 0x{item_type:02x} does not belong here")
        else:
            raise _unrecognized(f"{name}: unrecognized item type 0x{item_type:02x}")
    if app is None:
        raise _invalid(f"{name} has no application context item (PS3.8 9.3.2)")
    if not (rq_contexts or ac_contexts):
        raise _invalid(f"{name} has no presentation context item (PS3.8 9.3.2)")
    if user is None:
        raise _invalid(f"{name} has no user information item (PS3.8 9.3.2)")
    called_title = _decode_ae(called, "called AE title", tested=is_rq)
    calling_title = _decode_ae(calling, "calling AE title", tested=is_rq)
    if is_rq:
        return AssociateRQ(called_title, calling_title, app.name, tuple(rq_contexts), user, version)
    return AssociateAC(called_title, calling_title, app.name, tuple(ac_contexts), user, version)


# ---------------------------------------------------------- fixed-length PDUs


@dataclass(frozen=True, slots=True)
class AssociateRJ:
    """A-ASSOCIATE-RJ PDU, type 0x03 (PS3.8 9.3.4, Table 9-21).

    ``result`` 1 permanent, 2 transient; ``source`` 1 service user, 2 ACSE,
    3 presentation; ``reason`` depends on the source (``RJ_REASON_*``). Codes are
    kept as received.
    """

    pdu_type: ClassVar[int] = A_ASSOCIATE_RJ

    result: int
    source: int
    reason: int

    def __post_init__(self) -> None:
        _check_int(self.result, "A-ASSOCIATE-RJ result", 0xFF)
        _check_int(self.source, "A-ASSOCIATE-RJ source", 0xFF)
        _check_int(self.reason, "A-ASSOCIATE-RJ reason", 0xFF)

    def encode(self) -> bytes:
        return _FIXED4.pack(A_ASSOCIATE_RJ, 0, 4, 0, self.result, self.source, self.reason)


@dataclass(frozen=True, slots=True)
class ReleaseRQ:
    """A-RELEASE-RQ PDU, type 0x05 (PS3.8 9.3.6, Table 9-24)."""

    pdu_type: ClassVar[int] = A_RELEASE_RQ

    def encode(self) -> bytes:
        return _RELEASE_RQ_BYTES


@dataclass(frozen=True, slots=True)
class ReleaseRP:
    """A-RELEASE-RP PDU, type 0x06 (PS3.8 9.3.7, Table 9-25)."""

    pdu_type: ClassVar[int] = A_RELEASE_RP

    def encode(self) -> bytes:
        return _RELEASE_RP_BYTES


_RELEASE_RQ_BYTES = _FIXED4.pack(A_RELEASE_RQ, 0, 4, 0, 0, 0, 0)
_RELEASE_RP_BYTES = _FIXED4.pack(A_RELEASE_RP, 0, 4, 0, 0, 0, 0)


@dataclass(frozen=True, slots=True)
class AAbort:
    """A-ABORT PDU, type 0x07 (PS3.8 9.3.8, Table 9-26).

    ``source`` 0 service user, 2 service provider; ``reason`` is significant only
    for source 2 (``ABORT_REASON_*``). Codes are kept as received.
    """

    pdu_type: ClassVar[int] = A_ABORT

    source: int
    reason: int = 0

    def __post_init__(self) -> None:
        _check_int(self.source, "A-ABORT source", 0xFF)
        _check_int(self.reason, "A-ABORT reason", 0xFF)

    def encode(self) -> bytes:
        return _FIXED4.pack(A_ABORT, 0, 4, 0, 0, self.source, self.reason)


def _fixed4(body: memoryview, name: str) -> tuple[int, int, int, int]:
    if len(body) != 4:
        raise _invalid(f"{name} PDU length is {len(body)}, must be 4")
    return body[0], body[1], body[2], body[3]


def _decode_rj(body: memoryview, pdu_type: int) -> AssociateRJ:
    _, result, source, reason = _fixed4(body, "A-ASSOCIATE-RJ")
    return AssociateRJ(result, source, reason)


def _decode_release_rq(body: memoryview, pdu_type: int) -> ReleaseRQ:
    _fixed4(body, "A-RELEASE-RQ")
    return ReleaseRQ()


def _decode_release_rp(body: memoryview, pdu_type: int) -> ReleaseRP:
    _fixed4(body, "A-RELEASE-RP")
    return ReleaseRP()


def _decode_abort(body: memoryview, pdu_type: int) -> AAbort:
    _, _, source, reason = _fixed4(body, "A-ABORT")
    return AAbort(source, reason)


# ---------------------------------------------------------------------- decoding

PDU: TypeAlias = AssociateRQ | AssociateAC | AssociateRJ | PDataTF | ReleaseRQ | ReleaseRP | AAbort

_DECODERS: dict[int, Callable[[memoryview, int], PDU]] = {
    A_ASSOCIATE_RQ: _decode_associate,
    A_ASSOCIATE_AC: _decode_associate,
    A_ASSOCIATE_RJ: _decode_rj,
    P_DATA_TF: _decode_pdata,
    A_RELEASE_RQ: _decode_release_rq,
    A_RELEASE_RP: _decode_release_rp,
    A_ABORT: _decode_abort,
}

_HTTP_METHODS = (
    b"GET ",
    b"POST ",
    b"HEAD ",
    b"PUT ",
    b"DELETE ",
    b"OPTIONS ",
    b"CONNECT ",
    b"PATCH ",
    b"TRACE ",
    b"PRI * HTTP",
)
_TLS_RECORDS = {
    0x14: "a TLS change-cipher-spec record",
    0x15: "a TLS alert (the peer expects TLS: plain DICOM sent to a TLS port?)",
    0x16: "a TLS handshake (peer speaks TLS on a plain DICOM port?)",
    0x17: "TLS application data (peer speaks TLS on a plain DICOM port?)",
}


def describe_foreign_bytes(head: bytes | bytearray | memoryview) -> str | None:
    """Say what protocol the first bytes of a would-be PDU look like, or ``None``.

    For error messages when a peer speaks something other than DICOM: a TLS
    record (type 0x14-0x17, version major 0x03), an HTTP request or response,
    an SSH banner, or other text.
    """
    head = bytes(head[:32])
    if not head:
        return None
    first = head[0]
    if first in _TLS_RECORDS and (len(head) < 2 or head[1] == 0x03):
        return f"looks like {_TLS_RECORDS[first]}"
    # Text: a letter, then printable ASCII (PDU types are 0x01-0x07, never letters).
    if not (0x41 <= first <= 0x5A or 0x61 <= first <= 0x7A):
        return None
    if not all(0x20 <= b < 0x7F or b in b"\r\n\t" for b in head[:4]):
        return None
    text = head.split(b"\r", 1)[0].split(b"\n", 1)[0]
    shown = "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in text)
    if head.startswith(_HTTP_METHODS):
        return f'looks like an HTTP request ("{shown}"): an HTTP client on the DICOM port?'
    if head.startswith(b"HTTP/"):
        return f'looks like an HTTP response ("{shown}"): is the peer a web server?'
    if head.startswith(b"SSH-"):
        return f'looks like an SSH banner ("{shown}"): is the peer an SSH server?'
    return f'looks like text ("{shown}"), not DICOM: HTTP or another text protocol?'


def _unrecognized_pdu_type(
    pdu_type: int, head: bytes | bytearray | memoryview
) -> RemoteProtocolError:
    """The error for a PDU type outside 0x01-0x07 (A-ABORT reason 1)."""
    message = f"unrecognized PDU type 0x{pdu_type:02x}"
    description = describe_foreign_bytes(head)
    if description:
        message = f"{message}; {description}"
    return RemoteProtocolError(message, abort_source=2, abort_reason=1)


def decode_pdu(data: bytes | bytearray | memoryview) -> PDU:
    """Decode one complete PDU, header included (PS3.8 9.3).

    Raises ``RemoteProtocolError`` (abort source 2, reason per PS3.8 Table 9-26)
    for anything invalid, and nothing else. P-DATA-TF is decoded with memoryview
    slicing and one copy per PDV.
    """
    view = memoryview(data)
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    if len(view) < 6:
        raise _invalid(f"{len(view)} bytes are too short for a PDU header")
    pdu_type, _, length = _PDU_HEADER.unpack_from(view)
    decoder = _DECODERS.get(pdu_type)
    if decoder is None:
        raise _unrecognized_pdu_type(pdu_type, view)
    if length != len(view) - 6:
        raise _invalid(
            f"{PDU_TYPES[pdu_type]} PDU length {length} does not match the "
            f"{len(view) - 6} bytes that follow its header"
        )
    try:
        return decoder(view[6:], pdu_type)
    except ConfigurationError as exc:
        # A value the decoder let through but the dataclass refuses.
        raise _invalid(f"{PDU_TYPES[pdu_type]}: {exc}") from None
