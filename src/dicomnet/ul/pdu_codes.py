"""The codes of the Upper Layer PDUs (PS3.8 9.3): the PDU types (9.3.1), the
DICOM application context name (PS3.7 A.2.1), the A-ABORT sources and reasons
(PS3.8 Table 9-26), and the A-ASSOCIATE-RJ results, sources and reasons (Table
9-21) with the answers they make up (``Rejection``). ``dicomnet.ul.pdu``
re-exports every name here.
"""

from __future__ import annotations

from typing import ClassVar, NamedTuple

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
    "Rejection",
]

# PDU types (PS3.8 9.3.1).
A_ASSOCIATE_RQ = 0x01
A_ASSOCIATE_AC = 0x02
A_ASSOCIATE_RJ = 0x03
P_DATA_TF = 0x04
A_RELEASE_RQ = 0x05
A_RELEASE_RP = 0x06
A_ABORT = 0x07
PDU_TYPES = {
    A_ASSOCIATE_RQ: "A-ASSOCIATE-RQ",
    A_ASSOCIATE_AC: "A-ASSOCIATE-AC",
    A_ASSOCIATE_RJ: "A-ASSOCIATE-RJ",
    P_DATA_TF: "P-DATA-TF",
    A_RELEASE_RQ: "A-RELEASE-RQ",
    A_RELEASE_RP: "A-RELEASE-RP",
    A_ABORT: "A-ABORT",
}

#: The DICOM application context name (PS3.7 A.2.1).
DICOM_APPLICATION_CONTEXT = "1.2.840.10008.3.1.1.1"

# A-ABORT source and reason/diag. (PS3.8 Table 9-26).
ABORT_SOURCE_SERVICE_USER = 0
ABORT_SOURCE_SERVICE_PROVIDER = 2
ABORT_REASON_NOT_SPECIFIED = 0
ABORT_REASON_UNRECOGNIZED_PDU = 1
ABORT_REASON_UNEXPECTED_PDU = 2
ABORT_REASON_UNRECOGNIZED_PARAMETER = 4
ABORT_REASON_UNEXPECTED_PARAMETER = 5
ABORT_REASON_INVALID_PARAMETER_VALUE = 6

# A-ASSOCIATE-RJ result, source and reason/diag. (PS3.8 Table 9-21).
RJ_RESULT_PERMANENT = 1
RJ_RESULT_TRANSIENT = 2
RJ_SOURCE_SERVICE_USER = 1
RJ_SOURCE_ACSE = 2  # service-provider (ACSE related function)
RJ_SOURCE_PRESENTATION = 3  # service-provider (presentation related function)
RJ_REASON_USER_NO_REASON = 1  # source 1
RJ_REASON_APPLICATION_CONTEXT_NOT_SUPPORTED = 2  # source 1
RJ_REASON_CALLING_AE_NOT_RECOGNIZED = 3  # source 1
RJ_REASON_CALLED_AE_NOT_RECOGNIZED = 7  # source 1
RJ_REASON_ACSE_NO_REASON = 1  # source 2
RJ_REASON_PROTOCOL_VERSION_NOT_SUPPORTED = 2  # source 2
RJ_REASON_TEMPORARY_CONGESTION = 1  # source 3
RJ_REASON_LOCAL_LIMIT_EXCEEDED = 2  # source 3


class _RejectionFields(NamedTuple):
    result: int
    source: int
    reason: int


class Rejection(_RejectionFields):
    """An A-ASSOCIATE-RJ's result, source and reason (PS3.8 9.3.4, Table 9-21), as a
    server's ``on_association_request`` hook answers it: by name
    (``Rejection.CALLING_AE_TITLE_NOT_RECOGNIZED``) or by its codes
    (``Rejection(RJ_RESULT_TRANSIENT, RJ_SOURCE_SERVICE_USER, RJ_REASON_USER_NO_REASON)``).
    A tuple, so a plain ``(1, 1, 3)`` answers the same."""

    __slots__ = ()

    #: Permanent, service-user, no reason given (1, 1, 1).
    PERMANENT_NO_REASON: ClassVar[Rejection]
    #: Transient, service-user, no reason given (2, 1, 1): try again later.
    TRANSIENT_NO_REASON: ClassVar[Rejection]
    #: Permanent, service-user, calling AE title not recognized (1, 1, 3).
    CALLING_AE_TITLE_NOT_RECOGNIZED: ClassVar[Rejection]
    #: Permanent, service-user, called AE title not recognized (1, 1, 7).
    CALLED_AE_TITLE_NOT_RECOGNIZED: ClassVar[Rejection]
    #: Transient, service-provider (presentation), temporary congestion (2, 3, 1).
    TEMPORARY_CONGESTION: ClassVar[Rejection]
    #: Transient, service-provider (presentation), local limit exceeded (2, 3, 2).
    LOCAL_LIMIT_EXCEEDED: ClassVar[Rejection]


Rejection.PERMANENT_NO_REASON = Rejection(
    RJ_RESULT_PERMANENT, RJ_SOURCE_SERVICE_USER, RJ_REASON_USER_NO_REASON)
Rejection.TRANSIENT_NO_REASON = Rejection(
    RJ_RESULT_TRANSIENT, RJ_SOURCE_SERVICE_USER, RJ_REASON_USER_NO_REASON)
Rejection.CALLING_AE_TITLE_NOT_RECOGNIZED = Rejection(
    RJ_RESULT_PERMANENT, RJ_SOURCE_SERVICE_USER, RJ_REASON_CALLING_AE_NOT_RECOGNIZED)
Rejection.CALLED_AE_TITLE_NOT_RECOGNIZED = Rejection(
    RJ_RESULT_PERMANENT, RJ_SOURCE_SERVICE_USER, RJ_REASON_CALLED_AE_NOT_RECOGNIZED)
Rejection.TEMPORARY_CONGESTION = Rejection(
    RJ_RESULT_TRANSIENT, RJ_SOURCE_PRESENTATION, RJ_REASON_TEMPORARY_CONGESTION)
Rejection.LOCAL_LIMIT_EXCEEDED = Rejection(
    RJ_RESULT_TRANSIENT, RJ_SOURCE_PRESENTATION, RJ_REASON_LOCAL_LIMIT_EXCEEDED)
