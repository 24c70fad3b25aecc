"""A server certificate built to order for a test (a key of any type, any
subjectAltNames), where ``CertificateAuthority.issue`` makes only the usual
ones: an EdDSA key, an address written as a DNS name."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from dicomnet.security.certificates import CertificateAuthority


def server_leaf(issuer: CertificateAuthority, key: CertificateIssuerPrivateKeyTypes,
                names: list[x509.GeneralName], *, common_name: str = "pacs"
                ) -> x509.Certificate:
    """A serverAuth end-entity certificate of ``key``, valid for 30 days, naming
    exactly ``names``, signed by ``issuer`` (RFC 5280 4.2.1.6, 4.2.1.12)."""
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(issuer.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(issuer.key, hashes.SHA256())
    )


def write_leaf(cert: x509.Certificate, key: CertificateIssuerPrivateKeyTypes,
               folder: Path, name: str) -> tuple[Path, Path]:
    """``NAME.pem`` and ``NAME.key`` (PKCS#8, unencrypted) in ``folder``."""
    certfile, keyfile = folder / f"{name}.pem", folder / f"{name}.key"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return certfile, keyfile
