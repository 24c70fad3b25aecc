"""Annotated byte vectors for every Upper Layer PDU, item and sub-item.

Each vector is written field by field from PS3.8 9.3 / Annex D and PS3.7 Annex
D.3.3, with a comment naming each field, next to the object it encodes. Length
fields were counted by hand; the tests check the codec against these bytes in
both directions, and ``test_pdu_vectors`` also has pynetdicom read them.

Bigger vectors are built from the smaller ones (an A-ASSOCIATE-RQ is its fixed
fields followed by the item vectors), so each item is annotated once.
"""

from __future__ import annotations

from typing import NamedTuple

from dicomnet.ul.items import (
    AbstractSyntaxSubItem,
    ApplicationContextItem,
    AsynchronousOperationsWindowSubItem,
    ImplementationClassUIDSubItem,
    ImplementationVersionNameSubItem,
    Item,
    MaximumLengthSubItem,
    PresentationContextACItem,
    PresentationContextRQItem,
    RoleSelectionSubItem,
    SOPClassCommonExtendedNegotiationSubItem,
    SOPClassExtendedNegotiationSubItem,
    TransferSyntaxSubItem,
    UnknownSubItem,
    UserIdentityACSubItem,
    UserIdentityRQSubItem,
    UserInformationItem,
)
from dicomnet.ul.pdu import (
    PDU,
    AAbort,
    AssociateAC,
    AssociateRJ,
    AssociateRQ,
    PDataTF,
    PresentationDataValue,
    ReleaseRP,
    ReleaseRQ,
)


def h(*fields: str) -> bytes:
    """Bytes from hex strings, one string per field."""
    return bytes.fromhex(" ".join(fields))


# UIDs used below.
DICOM_APPLICATION_CONTEXT = "1.2.840.10008.3.1.1.1"
VERIFICATION = "1.2.840.10008.1.1"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
MAMMOGRAPHY_CAD_SR = "1.2.840.10008.5.1.4.1.1.88.50"
ENHANCED_SR = "1.2.840.10008.5.1.4.1.1.88.22"
COMPREHENSIVE_SR = "1.2.840.10008.5.1.4.1.1.88.33"
STORAGE_SERVICE_CLASS = "1.2.840.10008.4.2"
IMPLICIT_VR_LE = "1.2.840.10008.1.2"
EXPLICIT_VR_LE = "1.2.840.10008.1.2.1"
DCMTK_CLASS_UID = "1.2.276.0.7230010.3.0.3.6.8"
DCMTK_VERSION = "OFFIS_DCMTK_368"


# ------------------------------------------------------------------------------ items

APPLICATION_CONTEXT = ApplicationContextItem(DICOM_APPLICATION_CONTEXT)
APPLICATION_CONTEXT_BYTES = h(
    "10 00",  # item type 0x10 application context, reserved
    "00 15",  # item length 21
    "31 2e 32 2e 38 34 30 2e 31 30 30 30 38 2e 33 2e",  # "1.2.840.10008.3."
    "31 2e 31 2e 31",  # "1.1.1"
)

ABSTRACT_SYNTAX = AbstractSyntaxSubItem(VERIFICATION)
ABSTRACT_SYNTAX_BYTES = h(
    "30 00",  # item type 0x30 abstract syntax, reserved
    "00 11",  # item length 17
    "31 2e 32 2e 38 34 30 2e 31 30 30 30 38 2e 31 2e",  # "1.2.840.10008.1."
    "31",  # "1"
)

TRANSFER_SYNTAX = TransferSyntaxSubItem(IMPLICIT_VR_LE)
TRANSFER_SYNTAX_BYTES = h(
    "40 00",  # item type 0x40 transfer syntax, reserved
    "00 11",  # item length 17
    "31 2e 32 2e 38 34 30 2e 31 30 30 30 38 2e 31 2e",  # "1.2.840.10008.1."
    "32",  # "2"  (Implicit VR Little Endian)
)

EXPLICIT_TRANSFER_SYNTAX_BYTES = h(
    "40 00",  # item type 0x40 transfer syntax, reserved
    "00 13",  # item length 19
    "31 2e 32 2e 38 34 30 2e 31 30 30 30 38 2e 31 2e",  # "1.2.840.10008.1."
    "32 2e 31",  # "2.1"  (Explicit VR Little Endian)
)

PC_RQ_VERIFICATION = PresentationContextRQItem(1, VERIFICATION, (IMPLICIT_VR_LE, EXPLICIT_VR_LE))
PC_RQ_VERIFICATION_BYTES = (
    h(
        "20 00",  # item type 0x20 presentation context (RQ), reserved
        "00 45",  # item length 69
        "01",  # presentation context ID 1
        "00 00 00",  # reserved x3
    )
    + ABSTRACT_SYNTAX_BYTES  # 21 bytes: Verification SOP Class
    + TRANSFER_SYNTAX_BYTES  # 21 bytes: Implicit VR Little Endian
    + EXPLICIT_TRANSFER_SYNTAX_BYTES  # 23 bytes: Explicit VR Little Endian
)

PC_RQ_CT = PresentationContextRQItem(3, CT_IMAGE_STORAGE, (EXPLICIT_VR_LE,))
PC_RQ_CT_BYTES = h(
    "20 00",  # item type 0x20 presentation context (RQ), reserved
    "00 38",  # item length 56
    "03",  # presentation context ID 3
    "00 00 00",  # reserved x3
    "30 00",  # sub-item type 0x30 abstract syntax, reserved
    "00 19",  # sub-item length 25
    "31 2e 32 2e 38 34 30 2e 31 30 30 30 38 2e 35 2e",  # "1.2.840.10008.5."
    "31 2e 34 2e 31 2e 31 2e 32",  # "1.4.1.1.2"  (CT Image Storage)
    "40 00",  # sub-item type 0x40 transfer syntax, reserved
    "00 13",  # sub-item length 19
    "31 2e 32 2e 38 34 30 2e 31 30 30 30 38 2e 31 2e",  # "1.2.840.10008.1."
    "32 2e 31",  # "2.1"  (Explicit VR Little Endian)
)

PC_AC_ACCEPTED = PresentationContextACItem(1, 0, EXPLICIT_VR_LE)
PC_AC_ACCEPTED_BYTES = (
    h(
        "21 00",  # item type 0x21 presentation context (AC), reserved
        "00 1b",  # item length 27
        "01",  # presentation context ID 1
        "00",  # reserved
        "00",  # result/reason 0: acceptance
        "00",  # reserved
    )
    + EXPLICIT_TRANSFER_SYNTAX_BYTES  # 23 bytes: Explicit VR Little Endian
)

PC_AC_REJECTED_NO_TS = PresentationContextACItem(3, 3, None)
PC_AC_REJECTED_NO_TS_BYTES = h(
    "21 00",  # item type 0x21 presentation context (AC), reserved
    "00 04",  # item length 4: no transfer syntax sub-item at all
    "03",  # presentation context ID 3
    "00",  # reserved
    "03",  # result/reason 3: abstract-syntax-not-supported (provider rejection)
    "00",  # reserved
)

PC_AC_REJECTED_EMPTY_TS = PresentationContextACItem(3, 3, "")
PC_AC_REJECTED_EMPTY_TS_BYTES = h(
    "21 00",  # item type 0x21 presentation context (AC), reserved
    "00 08",  # item length 8
    "03",  # presentation context ID 3
    "00",  # reserved
    "03",  # result/reason 3: abstract-syntax-not-supported (provider rejection)
    "00",  # reserved
    "40 00",  # sub-item type 0x40 transfer syntax, reserved
    "00 00",  # sub-item length 0 (not significant when rejected)
)

MAXIMUM_LENGTH = MaximumLengthSubItem(16384)
MAXIMUM_LENGTH_BYTES = h(
    "51 00",  # sub-item type 0x51 maximum length, reserved
    "00 04",  # sub-item length 4
    "00 00 40 00",  # maximum-length-received 16384
)

IMPLEMENTATION_CLASS_UID = ImplementationClassUIDSubItem(DCMTK_CLASS_UID)
IMPLEMENTATION_CLASS_UID_BYTES = h(
    "52 00",  # sub-item type 0x52 implementation class UID, reserved
    "00 1b",  # sub-item length 27
    "31 2e 32 2e 32 37 36 2e 30 2e 37 32 33 30 30 31",  # "1.2.276.0.723001"
    "30 2e 33 2e 30 2e 33 2e 36 2e 38",  # "0.3.0.3.6.8"
)

ASYNC_OPS_WINDOW = AsynchronousOperationsWindowSubItem(5, 3)
ASYNC_OPS_WINDOW_BYTES = h(
    "53 00",  # sub-item type 0x53 asynchronous operations window, reserved
    "00 04",  # sub-item length 4
    "00 05",  # maximum-number-operations-invoked 5
    "00 03",  # maximum-number-operations-performed 3
)

ROLE_SELECTION = RoleSelectionSubItem(CT_IMAGE_STORAGE, scu_role=False, scp_role=True)
ROLE_SELECTION_BYTES = h(
    "54 00",  # sub-item type 0x54 SCP/SCU role selection, reserved
    "00 1d",  # sub-item length 29
    "00 19",  # UID length 25
    "31 2e 32 2e 38 34 30 2e 31 30 30 30 38 2e 35 2e",  # "1.2.840.10008.5."
    "31 2e 34 2e 31 2e 31 2e 32",  # "1.4.1.1.2"  (CT Image Storage)
    "00",  # SCU role 0: not supported
    "01",  # SCP role 1: supported
)

IMPLEMENTATION_VERSION_NAME = ImplementationVersionNameSubItem(DCMTK_VERSION)
IMPLEMENTATION_VERSION_NAME_BYTES = h(
    "55 00",  # sub-item type 0x55 implementation version name, reserved
    "00 0f",  # sub-item length 15
    "4f 46 46 49 53 5f 44 43 4d 54 4b 5f 33 36 38",  # "OFFIS_DCMTK_368"
)

EXTENDED_NEGOTIATION = SOPClassExtendedNegotiationSubItem(STUDY_ROOT_FIND, b"\x01\x01\x00")
EXTENDED_NEGOTIATION_BYTES = h(
    "56 00",  # sub-item type 0x56 SOP class extended negotiation, reserved
    "00 20",  # sub-item length 32
    "00 1b",  # SOP class UID length 27
    "31 2e 32 2e 38 34 30 2e 31 30 30 30 38 2e 35 2e",  # "1.2.840.10008.5."
    "31 2e 34 2e 31 2e 32 2e 32 2e 31",  # "1.4.1.2.2.1"  (Study Root Q/R FIND)
    "01 01 00",  # service class application information (PS3.4 C.5.1.1): relational
    #              queries, combined date-time matching, no fuzzy person-name matching
)

COMMON_EXTENDED_NEGOTIATION = SOPClassCommonExtendedNegotiationSubItem(
    MAMMOGRAPHY_CAD_SR, STORAGE_SERVICE_CLASS, (ENHANCED_SR, COMPREHENSIVE_SR)
)
COMMON_EXTENDED_NEGOTIATION_BYTES = h(
    "57",  # sub-item type 0x57 SOP class common extended negotiation
    "00",  # sub-item version 0
    "00 72",  # sub-item length 114
    "00 1d",  # SOP class UID length 29
    "31 2e 32 2e 38 34 30 2e 31 30 30 30 38 2e 35 2e",  # "1.2.840.10008.5."
    "31 2e 34 2e 31 2e 31 2e 38 38 2e 35 30",  # "1.4.1.1.88.50"  (Mammography CAD SR)
    "00 11",  # service class UID length 17
    "31 2e 32 2e 38 34 30 2e 31 30 30 30 38 2e 34 2e",  # "1.2.840.10008.4."
    "32",  # "2"  (Storage Service Class)
    "00 3e",  # related general SOP class identification length 62
    "00 1d",  #   related general SOP class UID length 29
    "31 2e 32 2e 38 34 30 2e 31 30 30 30 38 2e 35 2e",  #   "1.2.840.10008.5."
    "31 2e 34 2e 31 2e 31 2e 38 38 2e 32 32",  #   "1.4.1.1.88.22"  (Enhanced SR)
    "00 1d",  #   related general SOP class UID length 29
    "31 2e 32 2e 38 34 30 2e 31 30 30 30 38 2e 35 2e",  #   "1.2.840.10008.5."
    "31 2e 34 2e 31 2e 31 2e 38 38 2e 33 33",  #   "1.4.1.1.88.33"  (Comprehensive SR)
)

USER_IDENTITY_RQ = UserIdentityRQSubItem(2, True, b"alice", b"s3cret")
USER_IDENTITY_RQ_BYTES = h(
    "58 00",  # sub-item type 0x58 user identity (RQ), reserved
    "00 11",  # sub-item length 17
    "02",  # user-identity-type 2: username and passcode
    "01",  # positive-response-requested 1
    "00 05",  # primary-field length 5
    "61 6c 69 63 65",  # primary field "alice"
    "00 06",  # secondary-field length 6
    "73 33 63 72 65 74",  # secondary field "s3cret"
)

USER_IDENTITY_RQ_USERNAME = UserIdentityRQSubItem(1, False, b"alice")
USER_IDENTITY_RQ_USERNAME_BYTES = h(
    "58 00",  # sub-item type 0x58 user identity (RQ), reserved
    "00 0b",  # sub-item length 11
    "01",  # user-identity-type 1: username
    "00",  # positive-response-requested 0
    "00 05",  # primary-field length 5
    "61 6c 69 63 65",  # primary field "alice"
    "00 00",  # secondary-field length 0 (no secondary field)
)

USER_IDENTITY_AC = UserIdentityACSubItem(b"\xde\xad\xbe\xef")
USER_IDENTITY_AC_BYTES = h(
    "59 00",  # sub-item type 0x59 user identity (AC), reserved
    "00 06",  # sub-item length 6
    "00 04",  # server-response length 4
    "de ad be ef",  # server response (opaque, e.g. a Kerberos server ticket)
)

USER_IDENTITY_AC_EMPTY = UserIdentityACSubItem(b"")
USER_IDENTITY_AC_EMPTY_BYTES = h(
    "59 00",  # sub-item type 0x59 user identity (AC), reserved
    "00 02",  # sub-item length 2
    "00 00",  # server-response length 0 (positive response to types 1 and 2)
)

UNKNOWN_SUB_ITEM = UnknownSubItem(0x5A, b"\x01\x02\x03")
UNKNOWN_SUB_ITEM_BYTES = h(
    "5a 00",  # sub-item type 0x5a (not defined by PS3.7), reserved
    "00 03",  # sub-item length 3
    "01 02 03",  # contents, kept as is
)

USER_INFORMATION = UserInformationItem(
    (MAXIMUM_LENGTH, IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME)
)
USER_INFORMATION_BYTES = (
    h(
        "50 00",  # item type 0x50 user information, reserved
        "00 3a",  # item length 58
    )
    + MAXIMUM_LENGTH_BYTES  # 8 bytes
    + IMPLEMENTATION_CLASS_UID_BYTES  # 31 bytes
    + IMPLEMENTATION_VERSION_NAME_BYTES  # 19 bytes
)

USER_INFORMATION_RQ_FULL = UserInformationItem(
    (
        MAXIMUM_LENGTH,
        IMPLEMENTATION_CLASS_UID,
        ASYNC_OPS_WINDOW,
        ROLE_SELECTION,
        IMPLEMENTATION_VERSION_NAME,
        EXTENDED_NEGOTIATION,
        COMMON_EXTENDED_NEGOTIATION,
        USER_IDENTITY_RQ,
        UNKNOWN_SUB_ITEM,
    )
)
USER_INFORMATION_RQ_FULL_BYTES = (
    h(
        "50 00",  # item type 0x50 user information, reserved
        "01 19",  # item length 281
    )
    + MAXIMUM_LENGTH_BYTES  # 8 bytes
    + IMPLEMENTATION_CLASS_UID_BYTES  # 31 bytes
    + ASYNC_OPS_WINDOW_BYTES  # 8 bytes
    + ROLE_SELECTION_BYTES  # 33 bytes
    + IMPLEMENTATION_VERSION_NAME_BYTES  # 19 bytes
    + EXTENDED_NEGOTIATION_BYTES  # 36 bytes
    + COMMON_EXTENDED_NEGOTIATION_BYTES  # 118 bytes
    + USER_IDENTITY_RQ_BYTES  # 21 bytes
    + UNKNOWN_SUB_ITEM_BYTES  # 7 bytes
)

USER_INFORMATION_AC_FULL = UserInformationItem(
    (
        MAXIMUM_LENGTH,
        IMPLEMENTATION_CLASS_UID,
        ASYNC_OPS_WINDOW,
        ROLE_SELECTION,
        IMPLEMENTATION_VERSION_NAME,
        EXTENDED_NEGOTIATION,
        USER_IDENTITY_AC,
    )
)
USER_INFORMATION_AC_FULL_BYTES = (
    h(
        "50 00",  # item type 0x50 user information, reserved
        "00 91",  # item length 145
    )
    + MAXIMUM_LENGTH_BYTES  # 8 bytes
    + IMPLEMENTATION_CLASS_UID_BYTES  # 31 bytes
    + ASYNC_OPS_WINDOW_BYTES  # 8 bytes
    + ROLE_SELECTION_BYTES  # 33 bytes
    + IMPLEMENTATION_VERSION_NAME_BYTES  # 19 bytes
    + EXTENDED_NEGOTIATION_BYTES  # 36 bytes
    + USER_IDENTITY_AC_BYTES  # 10 bytes
)


class Vector(NamedTuple):
    name: str
    obj: Item | PDU | PresentationDataValue
    data: bytes


ITEM_VECTORS = [
    Vector("application context item", APPLICATION_CONTEXT, APPLICATION_CONTEXT_BYTES),
    Vector("abstract syntax sub-item", ABSTRACT_SYNTAX, ABSTRACT_SYNTAX_BYTES),
    Vector("transfer syntax sub-item", TRANSFER_SYNTAX, TRANSFER_SYNTAX_BYTES),
    Vector("presentation context RQ item", PC_RQ_VERIFICATION, PC_RQ_VERIFICATION_BYTES),
    Vector("presentation context RQ item, one TS", PC_RQ_CT, PC_RQ_CT_BYTES),
    Vector("presentation context AC item, accepted", PC_AC_ACCEPTED, PC_AC_ACCEPTED_BYTES),
    Vector(
        "presentation context AC item, rejected, no TS",
        PC_AC_REJECTED_NO_TS,
        PC_AC_REJECTED_NO_TS_BYTES,
    ),
    Vector(
        "presentation context AC item, rejected, empty TS",
        PC_AC_REJECTED_EMPTY_TS,
        PC_AC_REJECTED_EMPTY_TS_BYTES,
    ),
    Vector("maximum length sub-item", MAXIMUM_LENGTH, MAXIMUM_LENGTH_BYTES),
    Vector(
        "implementation class UID sub-item",
        IMPLEMENTATION_CLASS_UID,
        IMPLEMENTATION_CLASS_UID_BYTES,
    ),
    Vector("asynchronous operations window", ASYNC_OPS_WINDOW, ASYNC_OPS_WINDOW_BYTES),
    Vector("role selection sub-item", ROLE_SELECTION, ROLE_SELECTION_BYTES),
    Vector(
        "implementation version name sub-item",
        IMPLEMENTATION_VERSION_NAME,
        IMPLEMENTATION_VERSION_NAME_BYTES,
    ),
    Vector("SOP class extended negotiation", EXTENDED_NEGOTIATION, EXTENDED_NEGOTIATION_BYTES),
    Vector(
        "SOP class common extended negotiation",
        COMMON_EXTENDED_NEGOTIATION,
        COMMON_EXTENDED_NEGOTIATION_BYTES,
    ),
    Vector("user identity RQ, username+passcode", USER_IDENTITY_RQ, USER_IDENTITY_RQ_BYTES),
    Vector(
        "user identity RQ, username",
        USER_IDENTITY_RQ_USERNAME,
        USER_IDENTITY_RQ_USERNAME_BYTES,
    ),
    Vector("user identity AC", USER_IDENTITY_AC, USER_IDENTITY_AC_BYTES),
    Vector("user identity AC, empty", USER_IDENTITY_AC_EMPTY, USER_IDENTITY_AC_EMPTY_BYTES),
    Vector("unknown sub-item", UNKNOWN_SUB_ITEM, UNKNOWN_SUB_ITEM_BYTES),
    Vector("user information item", USER_INFORMATION, USER_INFORMATION_BYTES),
    Vector(
        "user information item, every RQ sub-item",
        USER_INFORMATION_RQ_FULL,
        USER_INFORMATION_RQ_FULL_BYTES,
    ),
    Vector(
        "user information item, every AC sub-item",
        USER_INFORMATION_AC_FULL,
        USER_INFORMATION_AC_FULL_BYTES,
    ),
]


# ------------------------------------------------------------------------------- PDUs

_RQ_FIXED_FIELDS = h(
    "00 01",  # protocol version: bit 0 set, version 1
    "00 00",  # reserved
    "41 4e 59 2d 53 43 50 20 20 20 20 20 20 20 20 20",  # called AE title "ANY-SCP", padded
    "53 54 4f 52 45 53 43 55 20 20 20 20 20 20 20 20",  # calling AE title "STORESCU", padded
    "00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00",  # reserved, bytes 43-58
    "00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00",  # reserved, bytes 59-74
)

ASSOCIATE_RQ = AssociateRQ(
    called_ae_title="ANY-SCP",
    calling_ae_title="STORESCU",
    application_context_name=DICOM_APPLICATION_CONTEXT,
    presentation_contexts=(PC_RQ_VERIFICATION, PC_RQ_CT),
    user_information=USER_INFORMATION,
)
ASSOCIATE_RQ_BYTES = (
    h(
        "01 00",  # PDU type 0x01 A-ASSOCIATE-RQ, reserved
        "00 00 01 20",  # PDU length 288 = 68 + 25 + 73 + 60 + 62
    )
    + _RQ_FIXED_FIELDS  # 68 bytes: version, reserved, AE titles, reserved
    + APPLICATION_CONTEXT_BYTES  # 25 bytes
    + PC_RQ_VERIFICATION_BYTES  # 73 bytes: context 1, Verification
    + PC_RQ_CT_BYTES  # 60 bytes: context 3, CT Image Storage
    + USER_INFORMATION_BYTES  # 62 bytes: max length, implementation UID and name
)

ASSOCIATE_RQ_FULL = AssociateRQ(
    called_ae_title="ANY-SCP",
    calling_ae_title="STORESCU",
    application_context_name=DICOM_APPLICATION_CONTEXT,
    presentation_contexts=(PC_RQ_VERIFICATION, PC_RQ_CT),
    user_information=USER_INFORMATION_RQ_FULL,
)
ASSOCIATE_RQ_FULL_BYTES = (
    h(
        "01 00",  # PDU type 0x01 A-ASSOCIATE-RQ, reserved
        "00 00 01 ff",  # PDU length 511 = 68 + 25 + 73 + 60 + 285
    )
    + _RQ_FIXED_FIELDS  # 68 bytes
    + APPLICATION_CONTEXT_BYTES  # 25 bytes
    + PC_RQ_VERIFICATION_BYTES  # 73 bytes
    + PC_RQ_CT_BYTES  # 60 bytes
    + USER_INFORMATION_RQ_FULL_BYTES  # 285 bytes: every RQ sub-item and an unknown one
)

ASSOCIATE_AC = AssociateAC(
    called_ae_title="ANY-SCP",
    calling_ae_title="STORESCU",
    application_context_name=DICOM_APPLICATION_CONTEXT,
    presentation_contexts=(PC_AC_ACCEPTED, PC_AC_REJECTED_NO_TS),
    user_information=USER_INFORMATION,
)
ASSOCIATE_AC_BYTES = (
    h(
        "02 00",  # PDU type 0x02 A-ASSOCIATE-AC, reserved
        "00 00 00 c2",  # PDU length 194 = 68 + 25 + 31 + 8 + 62
        "00 01",  # protocol version: bit 0 set, version 1
        "00 00",  # reserved
        "41 4e 59 2d 53 43 50 20 20 20 20 20 20 20 20 20",  # reserved: called AE title echoed
        "53 54 4f 52 45 53 43 55 20 20 20 20 20 20 20 20",  # reserved: calling AE title echoed
        "00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00",  # reserved, bytes 43-58
        "00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00",  # reserved, bytes 59-74
    )
    + APPLICATION_CONTEXT_BYTES  # 25 bytes
    + PC_AC_ACCEPTED_BYTES  # 31 bytes: context 1 accepted, Explicit VR LE
    + PC_AC_REJECTED_NO_TS_BYTES  # 8 bytes: context 3 rejected, no TS sub-item
    + USER_INFORMATION_BYTES  # 62 bytes
)

ASSOCIATE_AC_FULL = AssociateAC(
    called_ae_title="ANY-SCP",
    calling_ae_title="STORESCU",
    application_context_name=DICOM_APPLICATION_CONTEXT,
    presentation_contexts=(PC_AC_ACCEPTED, PC_AC_REJECTED_EMPTY_TS),
    user_information=USER_INFORMATION_AC_FULL,
)
ASSOCIATE_AC_FULL_BYTES = (
    h(
        "02 00",  # PDU type 0x02 A-ASSOCIATE-AC, reserved
        "00 00 01 1d",  # PDU length 285 = 68 + 25 + 31 + 12 + 149
    )
    + _RQ_FIXED_FIELDS  # 68 bytes: the same fixed fields, AE titles echoed
    + APPLICATION_CONTEXT_BYTES  # 25 bytes
    + PC_AC_ACCEPTED_BYTES  # 31 bytes
    + PC_AC_REJECTED_EMPTY_TS_BYTES  # 12 bytes
    + USER_INFORMATION_AC_FULL_BYTES  # 149 bytes
)

ASSOCIATE_RJ = AssociateRJ(result=1, source=1, reason=7)
ASSOCIATE_RJ_BYTES = h(
    "03 00",  # PDU type 0x03 A-ASSOCIATE-RJ, reserved
    "00 00 00 04",  # PDU length 4
    "00",  # reserved
    "01",  # result 1: rejected-permanent
    "01",  # source 1: DICOM UL service-user
    "07",  # reason 7: called-AE-title-not-recognized
)

# A C-ECHO-RQ command set (PS3.7 9.3.5.1) in Implicit VR Little Endian.
C_ECHO_RQ_COMMAND = h(
    "00 00 00 00",  # (0000,0000) Command Group Length
    "04 00 00 00",  #   value length 4
    "38 00 00 00",  #   56
    "00 00 02 00",  # (0000,0002) Affected SOP Class UID
    "12 00 00 00",  #   value length 18
    "31 2e 32 2e 38 34 30 2e 31 30 30 30 38 2e 31 2e",  #   "1.2.840.10008.1."
    "31 00",  #   "1" + NUL padding to even length
    "00 00 00 01",  # (0000,0100) Command Field
    "02 00 00 00",  #   value length 2
    "30 00",  #   0x0030 C-ECHO-RQ
    "00 00 10 01",  # (0000,0110) Message ID
    "02 00 00 00",  #   value length 2
    "01 00",  #   1
    "00 00 00 08",  # (0000,0800) Command Data Set Type
    "02 00 00 00",  #   value length 2
    "01 01",  #   0x0101: no data set
)

PDV_COMMAND = PresentationDataValue(1, is_command=True, is_last=True, data=C_ECHO_RQ_COMMAND)
PDV_COMMAND_BYTES = (
    h(
        "00 00 00 46",  # PDV item length 70 = 2 + 68
        "01",  # presentation context ID 1
        "03",  # message control header: bit 0 command, bit 1 last fragment
    )
    + C_ECHO_RQ_COMMAND  # 68 bytes
)

P_DATA_TF = PDataTF((PDV_COMMAND,))
P_DATA_TF_BYTES = (
    h(
        "04 00",  # PDU type 0x04 P-DATA-TF, reserved
        "00 00 00 4a",  # PDU length 74 = 4 + 70
    )
    + PDV_COMMAND_BYTES  # 74 bytes
)

P_DATA_TF_TWO_PDVS = PDataTF(
    (
        PresentationDataValue(3, False, False, bytes.fromhex("08 00 05 00 0a 00 00 00")),
        PresentationDataValue(3, False, True, b"ISO_IR 100"),
    )
)
P_DATA_TF_TWO_PDVS_BYTES = h(
    "04 00",  # PDU type 0x04 P-DATA-TF, reserved
    "00 00 00 1e",  # PDU length 30 = (4 + 10) + (4 + 12)
    "00 00 00 0a",  # PDV item length 10
    "03",  # presentation context ID 3
    "00",  # message control header: data set, not last
    "08 00 05 00 0a 00 00 00",  # fragment: (0008,0005) Specific Character Set, length 10
    "00 00 00 0c",  # PDV item length 12
    "03",  # presentation context ID 3
    "02",  # message control header: data set, last fragment
    "49 53 4f 5f 49 52 20 31 30 30",  # fragment: "ISO_IR 100"
)

RELEASE_RQ = ReleaseRQ()
RELEASE_RQ_BYTES = h(
    "05 00",  # PDU type 0x05 A-RELEASE-RQ, reserved
    "00 00 00 04",  # PDU length 4
    "00 00 00 00",  # reserved
)

RELEASE_RP = ReleaseRP()
RELEASE_RP_BYTES = h(
    "06 00",  # PDU type 0x06 A-RELEASE-RP, reserved
    "00 00 00 04",  # PDU length 4
    "00 00 00 00",  # reserved
)

ABORT_PROVIDER = AAbort(source=2, reason=6)
ABORT_PROVIDER_BYTES = h(
    "07 00",  # PDU type 0x07 A-ABORT, reserved
    "00 00 00 04",  # PDU length 4
    "00 00",  # reserved x2
    "02",  # source 2: DICOM UL service-provider
    "06",  # reason 6: invalid-PDU-parameter value
)

ABORT_USER = AAbort(source=0, reason=0)
ABORT_USER_BYTES = h(
    "07 00",  # PDU type 0x07 A-ABORT, reserved
    "00 00 00 04",  # PDU length 4
    "00 00",  # reserved x2
    "00",  # source 0: DICOM UL service-user
    "00",  # reason 0: not significant for source 0
)

PDU_VECTORS = [
    Vector("A-ASSOCIATE-RQ", ASSOCIATE_RQ, ASSOCIATE_RQ_BYTES),
    Vector("A-ASSOCIATE-RQ, every sub-item", ASSOCIATE_RQ_FULL, ASSOCIATE_RQ_FULL_BYTES),
    Vector("A-ASSOCIATE-AC", ASSOCIATE_AC, ASSOCIATE_AC_BYTES),
    Vector("A-ASSOCIATE-AC, every sub-item", ASSOCIATE_AC_FULL, ASSOCIATE_AC_FULL_BYTES),
    Vector("A-ASSOCIATE-RJ", ASSOCIATE_RJ, ASSOCIATE_RJ_BYTES),
    Vector("P-DATA-TF, command", P_DATA_TF, P_DATA_TF_BYTES),
    Vector("P-DATA-TF, two PDVs", P_DATA_TF_TWO_PDVS, P_DATA_TF_TWO_PDVS_BYTES),
    Vector("A-RELEASE-RQ", RELEASE_RQ, RELEASE_RQ_BYTES),
    Vector("A-RELEASE-RP", RELEASE_RP, RELEASE_RP_BYTES),
    Vector("A-ABORT, provider", ABORT_PROVIDER, ABORT_PROVIDER_BYTES),
    Vector("A-ABORT, user", ABORT_USER, ABORT_USER_BYTES),
]
