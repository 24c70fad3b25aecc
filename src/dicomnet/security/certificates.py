"""Certificates: introspection of peer certificates, and the names of a small
development PKI.

:class:`CertificateInfo` describes one X.509 certificate (RFC 5280) in the
terms a user checks: subject, issuer, names, validity, key type and size; the
helpers beside it read PEM files and say why a cafile can vouch for no peer.

:class:`CertificateAuthority`, :func:`make_dev_pki` and the rest of the issuing
of throw-away certificates live in :mod:`dicomnet.security.issuing`, and are
importable from here as well.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from . import x509_load
from .issuing import (
    CertificateAuthority,
    DevPKI,
    IssuedCert,
    KeyType,
    dev_host_name,
    generate_key,
    issue_dev_certificate,
    make_dev_pki,
    self_signed,
)
from .pem import key_is_encrypted
from .x509_load import (
    extension_value,
    load_der_certificate,
    name_text,
    readable_name,
    self_issued,
)

__all__ = [
    "CertificateAuthority",
    "CertificateInfo",
    "DevPKI",
    "IssuedCert",
    "KeyType",
    "describe_key",
    "dev_host_name",
    "first_certificate_der",
    "generate_key",
    "issue_dev_certificate",
    "key_is_encrypted",
    "load_pem_certificates",
    "make_dev_pki",
    "pem_certificates",
    "self_signed",
    "serial_text",
    "signature_hash",
    "trust_file_problem",
    "trust_problem",
]


@dataclass(frozen=True, slots=True)
class CertificateInfo:
    """What one X.509 certificate says (RFC 5280), for display and policy checks."""

    subject: str
    """Subject distinguished name, RFC 4514 string: its RDNs last first, so a
    certificate issued for ``O=dicomnet``, ``CN=localhost`` (the dev PKI's server)
    reads ``O=dicomnet,CN=localhost`` (RFC 4514 2.1). To match on a name, prefer
    ``common_name`` or ``sans``."""
    issuer: str
    """Issuer distinguished name, RFC 4514 string."""
    common_name: str | None
    """The subject's CN, if any (AE-title binding uses it)."""
    sans: tuple[str, ...]
    """Subject alternative names: DNS names and IP addresses, as text."""
    serial: int
    """Serial number given by the issuer; :attr:`serial_hex` is how dicomnet writes
    it (text and JSON alike)."""
    sha256_fingerprint: str
    """SHA-256 of the DER encoding, upper-case hex pairs joined by colons."""
    not_before: dt.datetime
    """Start of validity (aware, UTC)."""
    not_after: dt.datetime
    """End of validity (aware, UTC)."""
    public_key_type: str
    """``RSA``, ``ECDSA``, ``Ed25519``, ``Ed448``, ``DSA`` or ``unknown``."""
    public_key_bits: int
    """Key size in bits (the curve size for EC keys)."""
    signature_hash: str | None
    """Hash of the issuer's signature (``sha256``...), None for Ed25519/Ed448."""
    is_ca: bool
    """True when basicConstraints says this is a CA certificate."""
    extended_key_usage: tuple[str, ...] = ()
    """Extended key usages (RFC 5280 4.2.1.12): ``serverAuth``, ``clientAuth``, or
    other OIDs in dotted form; empty when the extension is absent (any use)."""

    @classmethod
    def from_der(cls, der: bytes) -> CertificateInfo:
        """Describe a DER-encoded certificate (a serial number that is not positive too:
        :mod:`~dicomnet.security.x509_load`)."""
        cert, serial = load_der_certificate(der)
        return cls._describe(cert, serial)

    @classmethod
    def from_pem_file(cls, path: str | Path) -> CertificateInfo:
        """Describe the first certificate of a PEM file."""
        return cls.from_der(first_certificate_der(path))

    @classmethod
    def from_x509(cls, cert: x509.Certificate) -> CertificateInfo:
        """Describe a ``cryptography`` certificate object: read again from its DER,
        quietly, as :meth:`from_der` does (its ``serial_number`` warns for a serial
        that is not positive, as some CA roots have)."""
        return cls.from_der(cert.public_bytes(serialization.Encoding.DER))

    @classmethod
    def _describe(cls, cert: x509.Certificate, serial: int) -> CertificateInfo:
        # Unreadable extensions (x509_load.EXTENSION_ERRORS) read as absent: this only
        # describes a certificate OpenSSL has judged.
        san = extension_value(cert, x509.SubjectAlternativeName)
        sans = [] if san is None else [*san.get_values_for_type(x509.DNSName),
                                       *(str(ip) for ip in san.get_values_for_type(x509.IPAddress))]
        constraints = extension_value(cert, x509.BasicConstraints)
        is_ca = constraints is not None and constraints.ca
        eku = extension_value(cert, x509.ExtendedKeyUsage)
        usages = () if eku is None else tuple(
            _USAGE_NAMES.get(oid, oid.dotted_string) for oid in eku)
        subject = readable_name(cert)
        cns = () if subject is None else subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        common_name = str(cns[0].value) if cns else None
        key_type, bits = describe_key(cert)
        digest = cert.fingerprint(hashes.SHA256())
        return cls(
            subject=name_text(cert),
            issuer=name_text(cert, issuer=True),
            common_name=common_name,
            sans=tuple(sans),
            serial=serial,
            sha256_fingerprint=":".join(f"{b:02X}" for b in digest),
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
            public_key_type=key_type,
            public_key_bits=bits,
            signature_hash=signature_hash(cert),
            is_ca=is_ca,
            extended_key_usage=usages,
        )

    @property
    def serial_hex(self) -> str:
        """The serial number as OpenSSL prints it (:func:`serial_text`)."""
        return serial_text(self.serial)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (datetimes in ISO 8601, the serial as :attr:`serial_hex`)."""
        return {
            "subject": self.subject,
            "issuer": self.issuer,
            "common_name": self.common_name,
            "sans": list(self.sans),
            "serial": self.serial_hex,
            "sha256_fingerprint": self.sha256_fingerprint,
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
            "public_key_type": self.public_key_type,
            "public_key_bits": self.public_key_bits,
            "signature_hash": self.signature_hash,
            "is_ca": self.is_ca,
            "extended_key_usage": list(self.extended_key_usage),
        }


def serial_text(serial: int) -> str:
    """A certificate's serial number (RFC 5280 4.1.2.2) as OpenSSL prints it in
    ``openssl x509 -serial`` and a CRL's entries: upper-case hex in whole bytes
    (``05``, ``0ABC``), no separators. dicomnet writes every serial so, so that
    a certificate is matched to a CRL's entry by plain comparison."""
    digits = f"{abs(serial):X}"
    return ("-" if serial < 0 else "") + ("0" * (len(digits) % 2)) + digits


_USAGE_NAMES = {ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth",
                ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth"}


def _describe_key(key: object) -> tuple[str, int]:
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA", key.key_size
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "ECDSA", key.curve.key_size
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519", 256
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448", 456
    if isinstance(key, dsa.DSAPublicKey):
        return "DSA", key.key_size
    return "unknown", 0


def first_certificate_der(path: str | Path) -> bytes:
    """DER of the first certificate in a PEM file (the leaf of a chain file)."""
    certs = load_pem_certificates(Path(path).read_bytes(), str(path))
    return certs[0].public_bytes(serialization.Encoding.DER)


def signature_hash(cert: x509.Certificate) -> str | None:
    """The hash of the issuer's signature on ``cert`` (``sha256``...): None for
    Ed25519/Ed448, and for a signature algorithm ``cryptography`` does not know
    (SM2 with SM3, which OpenSSL takes), whose ``UnsupportedAlgorithm`` is no
    ValueError."""
    try:
        algorithm = cert.signature_hash_algorithm
    except UnsupportedAlgorithm:
        return None
    return algorithm.name if algorithm is not None else None


def describe_key(cert: x509.Certificate) -> tuple[str, int]:
    """(type, bits) of the certificate's public key, as :class:`CertificateInfo` says them:
    ``("unknown", 0)`` for a key ``cryptography`` cannot load (an SM2 curve, an
    algorithm it does not know), which OpenSSL may well take; its
    ``UnsupportedAlgorithm`` is no ValueError, and was caught by no caller."""
    try:
        key = cert.public_key()
    except UnsupportedAlgorithm:
        return "unknown", 0
    return _describe_key(key)


def load_pem_certificates(data: bytes, source: str | None = None) -> list[x509.Certificate]:
    """The certificates of PEM text (ValueError when one is malformed). One whose serial
    number is not positive (found in system CA bundles), which cryptography parses with
    a warning naming nothing, is said at DEBUG with ``source`` (the file) and its
    subject instead (:mod:`~dicomnet.security.x509_load`)."""
    return x509_load.load_pem_certificates(data, source)


def pem_certificates(path: str | Path) -> str:
    """The certificates of a PEM file, PEM again, anything else it holds (keys, text)
    left out; "" when it holds none. ValueError when one of them is malformed."""
    data = Path(path).read_bytes()
    if b"-----BEGIN CERTIFICATE-----" not in data:
        return ""
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode("ascii")
                   for c in load_pem_certificates(data, str(path)))


def trust_file_problem(path: str | Path) -> str | None:
    """Why a file of trusted certificates (a cafile) can vouch for no peer, or None.

    It can when one of its certificates is a CA (basicConstraints CA:TRUE, RFC 5280
    4.2.1.9) or self-signed (a trust anchor of its own, pinning that one peer).
    When every one is an end-entity certificate (CA:FALSE) issued by someone else
    (a peer's certificate given as the CA, a common slip), OpenSSL loads the file,
    then builds no chain from it and refuses every peer as "unknown CA". Files
    that do not parse, and certificates without basicConstraints, are left to
    OpenSSL, whose own rules decide. A file with no PEM certificate at all (a key
    given for the CA, a copy not yet written) is said as such, OpenSSL's words for
    it being "NO_CERTIFICATE_OR_CRL_FOUND"."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return None
    try:
        certs: list[x509.Certificate] | None = load_pem_certificates(data, f"cafile {path}")
    except ValueError:
        certs = None
    return trust_problem(data, certs)


def trust_problem(data: bytes, certs: list[x509.Certificate] | None) -> str | None:
    """:func:`trust_file_problem` of a file's bytes ``data`` and its certificates
    ``certs``, parsed by the caller (None: they do not parse)."""
    if b"CERTIFICATE-----" not in data and b"-----BEGIN X509 CRL-----" not in data:
        # (OpenSSL also reads its own "BEGIN TRUSTED CERTIFICATE" form.)
        return "holds no PEM certificate (BEGIN CERTIFICATE): give the CA's certificate in PEM"
    if certs is None:
        return None
    for cert in certs:
        constraints = extension_value(cert, x509.BasicConstraints)
        if constraints is None:  # absent, or unreadable
            return None
        if constraints.ca or self_issued(cert):
            return None
    if not certs:
        return None
    leaf = certs[0]
    return (f"holds no CA certificate: {name_text(leaf)} is an end-entity "
            f"certificate (CA:FALSE) issued by {name_text(leaf, issuer=True)}, so it can "
            "vouch for no peer; give the certificate of the CA that issued the peers' "
            "certificates")
