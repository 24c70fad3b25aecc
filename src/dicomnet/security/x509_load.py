"""Certificates parsed with ``cryptography``, quietly when a serial number is not positive.

RFC 5280 4.1.2.2 asks a positive serial number, yet CAs trusted everywhere have 0
(nine roots of Debian's ca-certificates bundle: Go Daddy, Starfield, SECOM...), and
OpenSSL, which verifies our peers, takes them. cryptography (42 and later) parses
them with a CryptographyDeprecationWarning that names neither the file nor the
certificate, at each load and each read of the serial: a user giving the system
bundle as ``--ca`` saw that line and could do nothing about it, and under ``-W
error`` the context could not be built. Such a certificate is said here at DEBUG,
with its file and subject, and used: it is harmless to us (OpenSSL takes it, the
operator cannot change a root's serial), and a WARNING at each start of every
server trusting the system bundle would teach operators to skip warnings.

An Authority Key Identifier naming its issuer's serial number, 0 (those roots name
their own: RFC 5280 4.2.1.1), has cryptography warn when the extensions are first read,
after the load: such a certificate's are read here too, quietly (cryptography keeps
them), whatever its own serial.

The serials are read from the DER first, so that the warning filters, which are
process-wide state (a server rebuilds its context in a thread), are touched only
for the rare file that needs it, by one thread at a time.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import re
import threading
import warnings
from collections.abc import Iterator
from typing import TypeVar

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.utils import CryptographyDeprecationWarning

__all__ = ["EXTENSION_ERRORS", "der_serial", "extension_value", "load_der_certificate",
           "load_pem_certificates", "name_text", "read_extensions", "readable_name",
           "self_issued", "UNREADABLE_NAME"]

logger = logging.getLogger("dicomnet.security")

#: id-ce-authorityKeyIdentifier (2.5.29.35), as a DER OBJECT IDENTIFIER.
_AKI_OID = bytes.fromhex("0603551d23")
#: What reading a certificate's extensions raises when cryptography will not parse
#: them (it parses them lazily, at the first read): ValueError mostly, but also
#: DuplicateExtension, UnsupportedGeneralNameType and, for a directoryName
#: attribute of a string type its Name refuses, TypeError. None is a ValueError;
#: OpenSSL loads such certificates (a cafile), and a peer may send one.
EXTENSION_ERRORS: tuple[type[Exception], ...] = (
    ValueError, TypeError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType)
_Extension = TypeVar("_Extension", bound=x509.ExtensionType)
#: A certificate's PEM block; of BEGIN lines before one END, the last (as
#: cryptography reads them: the others are text to it).
_PEM_BLOCK = re.compile(
    rb"-----BEGIN CERTIFICATE-----((?:(?!-----BEGIN ).)*?)-----END CERTIFICATE-----", re.S)


def _header(der: bytes, at: int) -> tuple[int, int, int]:
    """(tag, where the content starts, its length) of the DER element at ``at``
    (X.690 8.1.2, 8.1.3: a one-byte tag, a short or long definite length)."""
    tag, first = der[at], der[at + 1]
    if first < 0x80:
        return tag, at + 2, first
    count = first & 0x7F
    if not 0 < count <= 4:
        raise IndexError("not a DER length")
    return tag, at + 2 + count, int.from_bytes(der[at + 2:at + 2 + count], "big")


def der_serial(der: bytes) -> int | None:
    """The serialNumber of a DER certificate (RFC 5280 4.1: Certificate, then
    tbsCertificate, SEQUENCEs; its optional [0] version, then the INTEGER), or None
    when the bytes are not laid out so (cryptography then says what is wrong)."""
    try:
        tag, at, _ = _header(der, 0)
        if tag != 0x30:
            return None
        tag, at, _ = _header(der, at)
        if tag != 0x30:
            return None
        tag, at, length = _header(der, at)
        if tag == 0xA0:  # version, EXPLICIT [0]
            tag, at, length = _header(der, at + length)
    except IndexError:
        return None
    if tag != 0x02 or length == 0 or at + length > len(der):
        return None
    return int.from_bytes(der[at:at + length], "big", signed=True)


#: Held by each :func:`_quiet`: catch_warnings sets the process's filters aside and
#: back, so two at once (a context rebuilt in a thread during a handshake) put them
#: back under each other, the other's warning out (raised under -W error) and an
#: ignore filter left for good. Reentrant: a name is read quietly inside a quiet
#: load too (the DEBUG line of load_pem_certificates).
_QUIET = threading.RLock()


def _aki_serial(der: bytes) -> int | None:
    """The authorityCertSerialNumber of a DER certificate's Authority Key Identifier
    (RFC 5280 4.2.1.1: an Extension's OID, its optional critical flag, its OCTET
    STRING holding a SEQUENCE whose [2] IMPLICIT INTEGER it is), or None. Found by
    the extension's OID; bytes that merely look so give a serial read for nothing."""
    at = der.find(_AKI_OID)
    if at < 0:
        return None
    try:
        tag, at, length = _header(der, at + len(_AKI_OID))
        if tag == 0x01:  # critical
            tag, at, length = _header(der, at + length)
        if tag != 0x04:
            return None
        tag, at, length = _header(der, at)
        if tag != 0x30:
            return None
        end = at + length
        while at < end:
            tag, at, length = _header(der, at)
            if tag == 0x82:
                if length == 0 or at + length > len(der):
                    return None
                return int.from_bytes(der[at:at + length], "big", signed=True)
            at += length
    except IndexError:
        return None
    return None


def _warns(der: bytes) -> bool:
    """Whether cryptography may warn reading this certificate: about a serial, its
    own (at the load) or its Authority Key Identifier's (when the extensions are
    read), or about a name attribute's length, in its subject, its issuer or a
    name in its extensions (at each read of them: :func:`_odd_names`)."""
    return any(serial is not None and serial <= 0
               for serial in (der_serial(der), _aki_serial(der))) or _odd_names(der)


#: Name attributes cryptography warns about (UserWarning) outside these lengths in
#: UTF-8 bytes, by their OID's DER encoding: countryName and jurisdictionCountryName
#: (2 letters, RFC 5280 A.1; CA/B Forum), commonName (ub-common-name, 64).
_LIMITED_NAMES = ((bytes.fromhex("0603550406"), 2, 2), (bytes.fromhex("0603550403"), 1, 64),
                  (bytes.fromhex("060b2b0601040182373c020103"), 2, 2))
#: String types whose length in bytes is the value's length in UTF-8: UTF8String,
#: PrintableString, IA5String.
_BYTE_STRINGS = frozenset({0x0C, 0x13, 0x16})


def _odd_names(der: bytes) -> bool:
    """Whether ``der`` may hold a name attribute of a length cryptography warns
    about (:data:`_LIMITED_NAMES`): an over-estimate (the OID's bytes elsewhere, a
    string type of another width) costs only a quiet read."""
    for oid, low, high in _LIMITED_NAMES:
        at = der.find(oid)
        while at >= 0:
            pos = at + len(oid)
            if pos + 2 > len(der):
                return True
            tag, length = der[pos], der[pos + 1]
            if tag not in _BYTE_STRINGS or length & 0x80 or not low <= length <= high:
                return True
            at = der.find(oid, pos)
    return False


def _extensions_read(cert: x509.Certificate) -> None:
    """Have cryptography parse and keep ``cert``'s extensions (inside :func:`_quiet`)."""
    with contextlib.suppress(*EXTENSION_ERRORS):  # malformed: said where they are used
        _ = cert.extensions


def read_extensions(cert: x509.Certificate) -> x509.Extensions:
    """``cert``'s extensions, read quietly where cryptography would warn (:func:`_warns`:
    rare, and warnings' state is process-wide). Raises :data:`EXTENSION_ERRORS`."""
    if _warns(cert.public_bytes(Encoding.DER)):
        with _quiet():
            return cert.extensions
    return cert.extensions


def extension_value(cert: x509.Certificate, kind: type[_Extension]) -> _Extension | None:
    """The value of ``cert``'s extension of class ``kind`` (RFC 5280 4.2), or None when
    it has none or its extensions cannot be read (:data:`EXTENSION_ERRORS`). Read
    quietly: cryptography keeps no parse that failed, and warns at each new one
    about an Authority Key Identifier serial that is not positive (a peer's,
    at every handshake)."""
    try:
        return read_extensions(cert).get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None
    except EXTENSION_ERRORS:
        return None


#: What a subject or issuer that cryptography will not read is described as.
UNREADABLE_NAME = "(a name cryptography cannot read)"


def readable_name(cert: x509.Certificate, *, issuer: bool = False) -> x509.Name | None:
    """``cert``'s subject (or issuer), or None when cryptography will not read it:
    it reads names lazily, and one attribute of a type it does not expect for its
    OID (a BIT STRING other than x500UniqueIdentifier, say) raises TypeError
    there, which OpenSSL itself accepts (RFC 5280 4.1.2.4 leaves attributes open).
    Read quietly where cryptography would warn, at each read, of an attribute whose
    length it does not allow (:func:`_odd_names`), as a peer's certificate may have."""
    try:
        if _odd_names(cert.public_bytes(Encoding.DER)):  # rare: as extension_value
            with _quiet():
                return cert.issuer if issuer else cert.subject
        return cert.issuer if issuer else cert.subject
    except EXTENSION_ERRORS:
        return None


def name_text(cert: x509.Certificate, *, issuer: bool = False) -> str:
    """``cert``'s subject (or issuer) as RFC 4514 text, or :data:`UNREADABLE_NAME`."""
    name = readable_name(cert, issuer=issuer)
    return UNREADABLE_NAME if name is None else name.rfc4514_string()


def self_issued(cert: x509.Certificate) -> bool:
    """Whether ``cert``'s issuer is its subject (RFC 5280 3.2); False when either
    cannot be read."""
    subject = readable_name(cert)
    return subject is not None and readable_name(cert, issuer=True) == subject


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    with _QUIET, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Parsed a serial number which wasn't positive",
                                category=CryptographyDeprecationWarning)
        warnings.filterwarnings("ignore", message="Attribute's length must be",
                                category=UserWarning)
        yield


def _pem_ders(data: bytes) -> Iterator[bytes | None]:
    for block in _PEM_BLOCK.finditer(data):
        try:
            yield base64.b64decode(b"".join(block.group(1).split()), validate=True)
        except (binascii.Error, ValueError):
            # Malformed, or read otherwise by cryptography: not known to be quiet.
            yield None


def _pem_certificates(data: bytes) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(data)
    except x509.InvalidVersion as exc:  # no ValueError, unlike every other malformation
        raise ValueError(f"malformed certificate: {exc}") from exc


def _der_certificate(der: bytes) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(der)
    except x509.InvalidVersion as exc:  # no ValueError, unlike every other malformation
        raise ValueError(f"malformed certificate: {exc}") from exc


def load_pem_certificates(data: bytes, source: str | None = None) -> list[x509.Certificate]:
    """The certificates of PEM text (ValueError when one is malformed); each whose serial
    is not positive is said at DEBUG, naming ``source`` ("cafile /etc/...") and its
    subject."""
    warning = {der for der in _pem_ders(data) if der is None or _warns(der)}
    if not warning:
        return _pem_certificates(data)
    with _quiet():
        certs = _pem_certificates(data)
        for cert in certs:
            der = cert.public_bytes(Encoding.DER)
            if der not in warning and not _warns(der):  # (a block not decoded here)
                continue
            _extensions_read(cert)
            serial = der_serial(der)
            if serial is not None and serial <= 0:
                logger.debug("%s: certificate %s has serial number %s, not positive as RFC "
                             "5280 4.1.2.2 asks: OpenSSL takes it, cryptography warns it will "
                             "refuse it one day", source or "PEM data",
                             name_text(cert), _serial_text(serial))
    return certs


def load_der_certificate(der: bytes) -> tuple[x509.Certificate, int]:
    """A DER certificate and its serial number (a peer's, at each handshake: said nowhere,
    OpenSSL having taken it)."""
    if not _warns(der):
        cert = _der_certificate(der)
        return cert, cert.serial_number
    serial = der_serial(der)
    with _quiet():
        cert = _der_certificate(der)
        _extensions_read(cert)
        return cert, cert.serial_number if serial is None else serial


def _serial_text(serial: int) -> str:
    from dicomnet.security.certificates import serial_text

    return serial_text(serial)
