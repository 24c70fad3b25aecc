"""Fuzz targets of certificate reading from bytes (``security/pem.py``,
``x509_load.py``, and what describes a peer's certificate).

The promises judged: PEM text gives certificates or ``ValueError`` (the
documented contract, which every caller catches or turns into
``ConfigurationError``); a peer's DER certificate is described or refused with
``ValueError``; the serial number readers and the trust-file check never raise.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from dicomnet.security.certificates import CertificateInfo, trust_problem
from dicomnet.security.errors_map import _host_names
from dicomnet.security.pem import key_is_encrypted
from dicomnet.security.trust_store import der_certificate
from dicomnet.security.x509_load import (
    _aki_serial,
    der_serial,
    load_der_certificate,
    load_pem_certificates,
)


def pem(data: bytes) -> None:
    """PEM text (a cafile, a chain file): certificates or ``ValueError``; each one
    described; the trust check says something or None."""
    key_is_encrypted(data)
    try:
        certs: list[x509.Certificate] | None = load_pem_certificates(data, "fuzz")
    except ValueError:
        certs = None
    for cert in certs or ():
        with contextlib.suppress(ValueError):
            CertificateInfo.from_x509(cert)
    problem = trust_problem(data, certs)
    assert problem is None or isinstance(problem, str)


def der(data: bytes) -> None:
    """A DER certificate, as a peer sends it: its serial read or None, described
    or ``ValueError``."""
    serial = der_serial(data)
    _aki_serial(data)
    der_certificate(data)
    _host_names(data)
    try:
        cert, read = load_der_certificate(data)
    except ValueError:
        return
    if serial is not None:
        assert read == serial
    with contextlib.suppress(ValueError):
        CertificateInfo.from_der(data)
    del cert


@functools.cache
def _certificate() -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fuzz.example")])
    now = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(0x1234)
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("fuzz.example"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(ski, critical=False)
            .add_extension(x509.AuthorityKeyIdentifier(
                ski.digest, [x509.DirectoryName(name)], 0x1234), critical=False)
            .sign(key, hashes.SHA256()))


def seeds_pem() -> list[bytes]:
    text = _certificate().public_bytes(serialization.Encoding.PEM)
    return [text, text + text, b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n", text[:200]]


def seeds_der() -> list[bytes]:
    raw = _certificate().public_bytes(serialization.Encoding.DER)
    return [raw, raw[:100]]
