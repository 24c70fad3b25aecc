"""Tell TLS from plain DICOM by the first bytes a peer sends.

A TLS client starts with a handshake record: content type 22 (0x16), then the
record version 0x03 0x00..0x04 (RFC 8446 5.1, RFC 5246 6.2.1). A DICOM
requestor starts with an A-ASSOCIATE-RQ PDU: type 0x01, a reserved 0x00 byte,
a 4-byte big-endian length, then protocol version 0x0001 (PS3.8 9.3.2).

Without this check a plain DICOM peer on a TLS port sees a handshake failure
it cannot read, and a TLS peer on a plain port produces "PDU too large:
369295616"-style errors (0x16030100... read as a PDU type and length).
"""

from __future__ import annotations

from typing import Literal

__all__ = ["explain_first_bytes", "looks_like_dicom_associate", "looks_like_tls"]

# An A-ASSOCIATE-RQ carries a 68-byte fixed part plus at least an application
# context item, one presentation context and user information (PS3.8 9.3.2);
# anything much larger than a few megabytes is not a real one.
_MIN_ASSOCIATE_LENGTH = 68
_MAX_ASSOCIATE_LENGTH = 1 << 24


def looks_like_tls(head: bytes) -> bool:
    """True when ``head`` starts like a TLS handshake record (0x16 0x03 0x00-0x04)."""
    if len(head) < 3:
        return False
    return head[0] == 0x16 and head[1] == 0x03 and head[2] <= 0x04


def looks_like_dicom_associate(head: bytes) -> bool:
    """True when ``head`` starts like an A-ASSOCIATE-RQ PDU (PS3.8 9.3.2).

    Checks the type (0x01), the reserved byte (0x00) and a plausible PDU length;
    with 8 bytes or more, also the protocol version 0x0001.
    """
    if len(head) < 6 or head[0] != 0x01 or head[1] != 0x00:
        return False
    length = int.from_bytes(head[2:6], "big")
    if not _MIN_ASSOCIATE_LENGTH <= length <= _MAX_ASSOCIATE_LENGTH:
        return False
    return len(head) < 8 or head[6:8] == b"\x00\x01"


def explain_first_bytes(head: bytes, *, expecting: Literal["tls", "dicom"]) -> str | None:
    """One line explaining why ``head`` is not what this port expects, or None if it fits.

    Said by the server that received it, to its operator: what the peer did, not
    what to try (that advice is the client's, in its own error).
    Also None when ``head`` is neither (too short, or some other protocol):
    the normal parser then reports its own error.
    """
    if expecting == "tls" and looks_like_dicom_associate(head):
        return (
            "received a plain DICOM A-ASSOCIATE-RQ on a TLS port: the peer spoke plain DICOM "
            "to it (its TLS is off, or it has the wrong port)"
        )
    if expecting == "dicom" and looks_like_tls(head):
        return (
            "received a TLS ClientHello on a plain DICOM port: the peer spoke TLS to it "
            "(its TLS is on, or it has the wrong port)"
        )
    return None
