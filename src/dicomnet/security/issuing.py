"""Issuing certificates: a small development PKI, for tests and ``dicomnet certs``.

:class:`CertificateAuthority` and :func:`make_dev_pki` make throw-away
certificates: a CA, server certificates (extended key usage serverAuth, RFC 5280
4.2.1.12) and client certificates (clientAuth), with DNS and IP subject
alternative names (RFC 5280 4.2.1.6; host names are checked against those, RFC
9525). They also make the broken ones tests need: expired, not yet valid, wrong
host, self-signed, revoked (CRLs, RFC 5280 5). Keys are written as PKCS#8 PEM,
encrypted when a password is given, mode 0600.

Every name here is importable from :mod:`dicomnet.security.certificates` too,
where it was first; reading certificates (:class:`CertificateInfo`) lives there.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..errors import ConfigurationError
from . import x509_load
from .pem import key_is_encrypted

if TYPE_CHECKING:
    from .certificates import CertificateInfo

__all__ = [
    "CertificateAuthority",
    "DevPKI",
    "IssuedCert",
    "KeyType",
    "PrivateKey",
    "dev_host_name",
    "generate_key",
    "issue_dev_certificate",
    "make_dev_pki",
    "self_signed",
]

KeyType = Literal["rsa", "ecdsa", "ecdsa-p384"]
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def generate_key(key_type: KeyType = "rsa", *, rsa_bits: int = 2048) -> PrivateKey:
    """A new private key: RSA of ``rsa_bits``, or ECDSA on P-256 / P-384."""
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)
    if key_type == "ecdsa":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "ecdsa-p384":
        return ec.generate_private_key(ec.SECP384R1())
    raise ValueError(f"unknown key type {key_type!r}")


def _write_key(key: PrivateKey, path: Path, password: str | bytes | None) -> None:
    if password is None:
        enc: serialization.KeySerializationEncryption = serialization.NoEncryption()
    else:
        pw = password.encode() if isinstance(password, str) else password
        enc = serialization.BestAvailableEncryption(pw)
    data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)
    # Create with 0600 from the start: a key must never be readable by others,
    # not even between a write and a chmod.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(path, 0o600)


#: A CA's key usage (RFC 5280 4.2.1.3): it signs certificates and CRLs (and, with
#: digitalSignature, OCSP responses), nothing else.
_CA_KEY_USAGE = x509.KeyUsage(
    digital_signature=True, content_commitment=False, key_encipherment=False,
    data_encipherment=False, key_agreement=False, key_cert_sign=True,
    crl_sign=True, encipher_only=False, decipher_only=False,
)
#: Certificates start this long before they are made: a peer's clock a little
#: behind ours must not find them not yet valid. Their length in days counts
#: from then, so that "825 days" is not 825 days and an hour.
_BACKDATE = dt.timedelta(hours=1)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _san_entries(sans: tuple[str, ...]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for name in sans:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            out.append(x509.DNSName(name))
    return out


#: A host name as a certificate names it (RFC 1123 2.1 labels; "_" too, which many
#: internal names hold), a "*." wildcard first at most (RFC 6125 6.4.3).
_HOST_NAME = re.compile(r"(\*\.)?([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.)*"
                        r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")


def dev_host_name(text: str) -> str:
    """``text`` as a development certificate names its peer: an IP address (an IPv6
    one in brackets too, as URLs write it: ``[::1]``), else a host name, which an
    iPAddress or dNSName entry of its subjectAltName then holds (RFC 5280 4.2.1.6).

    Raises ``ConfigurationError`` for what no host name check could match: spaces,
    an empty label, a dotted number that is no address (``300.1.1.1``)."""
    inner = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    try:
        return str(ipaddress.ip_address(inner))
    except ValueError:
        pass
    last = text.rsplit(".", 1)[-1]
    if (inner is not text or len(text) > 253 or not _HOST_NAME.fullmatch(text)
            or last.isdigit()):
        raise ConfigurationError(
            f"{text!r} is neither an IP address nor a host name (letters, digits, '-' "
            "between dots; an IPv6 address as ::1 or [::1])")
    return text


def _name(common_name: str, organization: str | None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attrs)


@dataclass(frozen=True, slots=True)
class IssuedCert:
    """A certificate with its private key (and the chain above it, leaf excluded)."""

    certificate: x509.Certificate
    """The certificate."""
    key: PrivateKey
    """Its private key."""
    chain: tuple[x509.Certificate, ...] = ()
    """Intermediate CA certificates to send with it (not the root)."""

    @property
    def info(self) -> CertificateInfo:
        """The certificate described."""
        # Not at the top: certificates re-exports this module's names.
        from .certificates import CertificateInfo

        return CertificateInfo.from_x509(self.certificate)

    def cert_pem(self) -> bytes:
        """The certificate then its chain, PEM."""
        return b"".join(
            c.public_bytes(serialization.Encoding.PEM) for c in (self.certificate, *self.chain)
        )

    def write(
        self, directory: str | Path, name: str, *, password: str | bytes | None = None
    ) -> tuple[Path, Path]:
        """Write ``NAME.pem`` (certificate + chain) and ``NAME.key`` (0600) in ``directory``.

        Returns (cert_path, key_path). The key is encrypted when ``password`` is given.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        cert_path = directory / f"{name}.pem"
        key_path = directory / f"{name}.key"
        cert_path.write_bytes(self.cert_pem())
        _write_key(self.key, key_path, password)
        return cert_path, key_path


class CertificateAuthority:
    """A CA that issues server and client certificates (for tests and development).

    Use :meth:`create` for a root CA; :meth:`issue` for leaf certificates,
    :meth:`intermediate` for a sub-CA, :meth:`write_crl` for a CRL (RFC 5280 5).
    """

    def __init__(self, issued: IssuedCert, *, parent: CertificateAuthority | None = None) -> None:
        self.issued = issued
        self.parent = parent
        # 64 random bits to start from: every dev CA has the same name, and issuer and
        # serial must name one certificate (RFC 5280 4.1.2.2), across PKIs too.
        self._next_serial = x509.random_serial_number() >> 96
        self._crl_number = 0

    @classmethod
    def create(
        cls,
        common_name: str = "dicomnet test CA",
        *,
        key_type: KeyType = "rsa",
        rsa_bits: int = 2048,
        organization: str | None = "dicomnet",
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
    ) -> CertificateAuthority:
        """A new self-signed root CA (valid from one day ago for ten years by default)."""
        key = generate_key(key_type, rsa_bits=rsa_bits)
        name = _name(common_name, organization)
        now = _now()
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or now - dt.timedelta(days=1))
            .not_valid_after(not_after or now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_CA_KEY_USAGE, critical=True)
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(IssuedCert(cert, key))

    @classmethod
    def load(cls, cert_path: str | Path, key_path: str | Path, *,
             password: str | bytes | None = None) -> CertificateAuthority:
        """A CA from its certificate and private key (PEM files, the key possibly
        encrypted with ``password``), to issue more certificates. Their serial
        numbers start from a random 64-bit value, so that they never repeat one
        this CA gave before (RFC 5280 4.1.2.2).

        Raises ``ConfigurationError`` naming the file and what is wrong."""
        try:
            # Through x509_load: a CA of serial 0 (OpenSSL makes them) is read quietly.
            certs = x509_load.load_pem_certificates(Path(cert_path).read_bytes(),
                                                    f"CA {cert_path}")
            pem = Path(key_path).read_bytes()
        except OSError as exc:
            raise ConfigurationError(f"cannot read the CA: {exc.strerror or exc}") from exc
        except ValueError:
            certs = []
        if not certs:
            raise ConfigurationError(f"{cert_path} holds no PEM certificate")
        cert = certs[0]
        if key_is_encrypted(pem) and password is None:
            raise ConfigurationError(f"{key_path} is encrypted: a password is needed")
        pw = password.encode() if isinstance(password, str) else password
        try:
            key = serialization.load_pem_private_key(
                pem, password=pw if key_is_encrypted(pem) else None)
        except ValueError as exc:
            raise ConfigurationError(
                f"cannot load {key_path}: wrong password, or not a PEM private key") from exc
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise ConfigurationError(f"{key_path}: only RSA and ECDSA CA keys are supported")
        spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        if key.public_key().public_bytes(*spki) != cert.public_key().public_bytes(*spki):
            raise ConfigurationError(f"{key_path} is not the key of {cert_path}")
        try:
            is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except x509.ExtensionNotFound:
            is_ca = False
        if not is_ca:
            raise ConfigurationError(f"{cert_path} is not a CA certificate")
        return cls(IssuedCert(cert, key))

    @property
    def certificate(self) -> x509.Certificate:
        """The CA's own certificate."""
        return self.issued.certificate

    @property
    def key(self) -> PrivateKey:
        """The CA's private key."""
        return self.issued.key

    def cert_pem(self) -> bytes:
        """The CA certificate, PEM (what a peer puts in its cafile)."""
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def write_cert(self, path: str | Path) -> Path:
        """Write the CA certificate (PEM) to ``path``."""
        path = Path(path)
        path.write_bytes(self.cert_pem())
        return path

    def _serial(self) -> int:
        self._next_serial += 1
        return self._next_serial

    def issue(
        self,
        common_name: str,
        *,
        sans: tuple[str, ...] = (),
        server: bool = True,
        client: bool = True,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
        key_type: KeyType = "rsa",
        rsa_bits: int = 2048,
        hash_algorithm: hashes.SHA256 | hashes.SHA384 | hashes.SHA512 | None = None,
        organization: str | None = "dicomnet",
    ) -> IssuedCert:
        """Issue a leaf certificate.

        ``sans`` are DNS names or IP addresses (IP text becomes an iPAddress
        entry, RFC 5280 4.2.1.6). ``server``/``client`` set the extended key
        usages serverAuth/clientAuth. Validity defaults to 825 days (the longest
        the CA/Browser Forum once allowed, and what scanners still check), from
        one hour ago (a peer's clock a little behind ours); pass dates in the
        past or future for expired or not-yet-valid certificates.
        """
        key = generate_key(key_type, rsa_bits=rsa_bits)
        now = _now()
        usages = []
        if server:
            usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
        if client:
            usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name, organization))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(self._serial())
            .not_valid_before(not_before or now - _BACKDATE)
            .not_valid_after(not_after or now - _BACKDATE + dt.timedelta(days=825))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
        )
        if usages:
            builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        if sans:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(_san_entries(sans)), critical=False
            )
        cert = builder.sign(self.key, hash_algorithm or hashes.SHA256())
        chain = self._chain_above()
        return IssuedCert(cert, key, chain)

    def _chain_above(self) -> tuple[x509.Certificate, ...]:
        # A leaf is sent with every intermediate up to (not including) the root.
        chain: list[x509.Certificate] = []
        ca: CertificateAuthority | None = self
        while ca is not None and ca.parent is not None:
            chain.append(ca.certificate)
            ca = ca.parent
        return tuple(chain)

    def intermediate(self, common_name: str, *, key_type: KeyType = "rsa") -> CertificateAuthority:
        """A sub-CA signed by this one."""
        key = generate_key(key_type)
        now = _now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name, "dicomnet"))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(self._serial())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1825))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_CA_KEY_USAGE, critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(self.key, hashes.SHA256())
        )
        return CertificateAuthority(IssuedCert(cert, key, self._chain_above()), parent=self)

    def crl_pem(self, revoked: tuple[IssuedCert | x509.Certificate, ...] = ()) -> bytes:
        """A CRL (RFC 5280 5) signed by this CA listing ``revoked``, PEM, valid 7 days;
        each call's CRL number is the previous one's plus one."""
        now = _now()
        self._crl_number += 1
        crl = self.sign_crl(
            {(c.certificate if isinstance(c, IssuedCert) else c).serial_number:
             now - dt.timedelta(minutes=1) for c in revoked},
            number=self._crl_number, next_update=now + dt.timedelta(days=7))
        return crl.public_bytes(serialization.Encoding.PEM)

    def sign_crl(self, revoked: Mapping[int, dt.datetime], *, number: int,
                 next_update: dt.datetime) -> x509.CertificateRevocationList:
        """A CRL of this CA listing ``revoked`` (serial number -> revocation date),
        issued five minutes ago (a peer's clock a little behind still takes it) and
        valid until ``next_update`` (RFC 5280 5.1.2.5). It carries the two
        extensions RFC 5280 says every CRL MUST: the authority key identifier (5.2.1,
        this CA's subject key identifier, which peers match it with) and the CRL
        number, ``number`` (5.2.3: monotonically increasing, so that the newer of two
        CRLs is known)."""
        try:
            aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
                self.certificate.extensions.get_extension_for_class(
                    x509.SubjectKeyIdentifier).value)
        except x509.ExtensionNotFound:
            aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key())
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.certificate.subject)
            .last_update(_now() - dt.timedelta(minutes=5))
            .next_update(next_update)
            .add_extension(aki, critical=False)
            .add_extension(x509.CRLNumber(number), critical=False)
        )
        for serial, date in sorted(revoked.items()):
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial)
                .revocation_date(date).build())
        return builder.sign(self.key, hashes.SHA256())

    def write_crl(
        self, path: str | Path, revoked: tuple[IssuedCert | x509.Certificate, ...] = ()
    ) -> Path:
        """Write :meth:`crl_pem` to ``path``."""
        path = Path(path)
        path.write_bytes(self.crl_pem(revoked))
        return path


def self_signed(
    common_name: str = "localhost",
    *,
    sans: tuple[str, ...] = ("localhost", "127.0.0.1"),
    key_type: KeyType = "rsa",
    rsa_bits: int = 2048,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
) -> IssuedCert:
    """A self-signed end-entity certificate (not a CA) for ``common_name``."""
    key = generate_key(key_type, rsa_bits=rsa_bits)
    name = _name(common_name, "dicomnet")
    now = _now()
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - _BACKDATE)
        .not_valid_after(not_after or now - _BACKDATE + dt.timedelta(days=825))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(_san_entries(sans)),
                                        critical=False)
    return IssuedCert(builder.sign(key, hashes.SHA256()), key)


@dataclass(frozen=True, slots=True)
class DevPKI:
    """Paths of a development PKI written by :func:`make_dev_pki`."""

    directory: Path
    """Where the files are."""
    ca_cert: Path
    """``ca.pem``: the CA certificate both peers trust (their cafile)."""
    ca_key: Path
    """``ca.key``: the CA's private key."""
    server_cert: Path
    """``server.pem``: the server certificate."""
    server_key: Path
    """``server.key``: its private key."""
    client_cert: Path
    """``client.pem``: the client certificate."""
    client_key: Path
    """``client.key``: its private key."""
    password: str | None = None
    """The password protecting the keys, if any."""


def issue_dev_certificate(
    directory: str | Path,
    name: str,
    *,
    names: tuple[str, ...] = ("localhost", "127.0.0.1"),
    server: bool = True,
    client: bool = True,
    days: int = 825,
    password: str | None = None,
) -> tuple[Path, Path]:
    """Issue one more certificate from the CA of a :func:`make_dev_pki` folder
    (its ``ca.pem`` and ``ca.key``, the key decrypted with ``password``) and write
    ``NAME.pem`` and ``NAME.key`` beside them, the key encrypted with the same
    password. By default the certificate allows both uses, serverAuth and
    clientAuth (RFC 5280 4.2.1.12), for a peer that presents one certificate when
    it listens and when it connects (Orthanc does). ``name`` is also its CN;
    ``names`` are the DNS names or IP addresses it is valid for (subject
    alternative names, which host-name checks use). The key is of the CA's type."""
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise ConfigurationError(f"days must be a whole number of days, 1 or more; got {days!r}")
    names = tuple(dev_host_name(n) for n in names)
    directory = Path(directory)
    ca = CertificateAuthority.load(directory / "ca.pem", directory / "ca.key", password=password)
    key = ca.key
    key_type: KeyType = "rsa"
    rsa_bits = 2048
    if isinstance(key, ec.EllipticCurvePrivateKey):
        key_type = "ecdsa-p384" if key.curve.key_size == 384 else "ecdsa"
    else:
        rsa_bits = max(2048, key.key_size)
    issued = ca.issue(name, sans=names, server=server, client=client,
                      key_type=key_type, rsa_bits=rsa_bits,
                      not_before=(start := _now() - _BACKDATE),
                      not_after=start + dt.timedelta(days=days))
    return issued.write(directory, name, password=password)


def make_dev_pki(
    directory: str | Path,
    *,
    key_type: KeyType = "rsa",
    rsa_bits: int = 2048,
    password: str | None = None,
    server_names: tuple[str, ...] = ("localhost", "127.0.0.1"),
    days: int = 825,
    client_name: str = "dicomnet client",
) -> DevPKI:
    """Write a CA, a server and a client certificate with their keys into ``directory``.

    Files: ca.pem, ca.key, server.pem, server.key, client.pem, client.key. Keys
    are PKCS#8, encrypted with ``password`` when given, mode 0600. The server
    certificate names ``server_names`` (DNS or IP); its CN is the first one.
    Meant for development and tests: a real deployment uses the site's PKI.
    """
    server_names = tuple(dev_host_name(n) for n in server_names)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    ca = CertificateAuthority.create(
        "dicomnet development CA", key_type=key_type, rsa_bits=rsa_bits
    )
    now = _now()
    # One start for both: X.509 times are whole seconds, and two clock reads may
    # fall either side of one.
    start = now - _BACKDATE
    not_after = start + dt.timedelta(days=days)
    server = ca.issue(server_names[0] if server_names else "dicomnet server", sans=server_names,
                      server=True, client=False, key_type=key_type, rsa_bits=rsa_bits,
                      not_before=start, not_after=not_after)
    client = ca.issue(client_name, server=False, client=True, key_type=key_type,
                      rsa_bits=rsa_bits, not_before=start, not_after=not_after)
    ca_cert, ca_key = ca.issued.write(directory, "ca", password=password)
    server_cert, server_key = server.write(directory, "server", password=password)
    client_cert, client_key = client.write(directory, "client", password=password)
    return DevPKI(directory, ca_cert, ca_key, server_cert, server_key, client_cert, client_key,
                  password)
