"""Certificates whose public key or signature algorithm ``cryptography`` cannot
load (SM2, an unknown algorithm), which OpenSSL parses: described as an
``unknown`` key, or no signature hash, never with
``cryptography.exceptions.UnsupportedAlgorithm`` (no ValueError, caught nowhere).

Found by atheris (tests/fuzz_harness, target ``pem``): a bit flipped in a key's
algorithm OID. The certificates are made here with ``cryptography``, their curve
or algorithm OID then replaced in the DER (no signature is checked to parse one).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from dicomnet.security.certificates import CertificateInfo, describe_key
from dicomnet.security.trust_store import cafile_problem

#: OBJECT IDENTIFIER prime256v1 (1.2.840.10045.3.1.7), as DER.
P256 = bytes.fromhex("06082a8648ce3d030107")
#: The SM2 curve (1.2.156.10197.1.301, GM/T 0006), which OpenSSL 3 knows.
SM2 = bytes.fromhex("06082a811ccf5501822d")
#: id-ecPublicKey (1.2.840.10045.2.1), and an algorithm no one knows (...2.99).
EC_PUBLIC_KEY = bytes.fromhex("06072a8648ce3d0201")
UNKNOWN_ALGORITHM = bytes.fromhex("06072a8648ce3d0263")
#: ecdsa-with-SHA256 (1.2.840.10045.4.3.2), and SM2 with SM3 (1.2.156.10197.1.501).
ECDSA_SHA256 = bytes.fromhex("06082a8648ce3d040302")
SM2_SM3 = bytes.fromhex("06082a811ccf55018375")


def _ca_der(issuer: str = "Odd Key CA") -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Odd Key CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name)
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key()).serial_number(7)
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.DER)


@pytest.fixture(params=[(P256, SM2), (EC_PUBLIC_KEY, UNKNOWN_ALGORITHM)],
                ids=["sm2 curve", "unknown algorithm"])
def odd_key_der(request: pytest.FixtureRequest) -> bytes:
    old, new = request.param
    der = _ca_der()
    assert der.count(old) == 1
    return der.replace(old, new)


@pytest.fixture
def sm2_signed_der() -> bytes:
    """An intermediate CA signed with SM2/SM3 (the algorithm in the certificate and
    in its signature: two OIDs)."""
    der = _ca_der(issuer="SM2 Root")
    assert der.count(ECDSA_SHA256) == 2
    return der.replace(ECDSA_SHA256, SM2_SM3)


def test_a_certificate_with_a_key_cryptography_cannot_load_is_described(
        odd_key_der: bytes) -> None:
    """What a peer's certificate goes through at each handshake (SecurityInfo) and
    in the words of a failed one (errors_map)."""
    info = CertificateInfo.from_der(odd_key_der)
    assert (info.public_key_type, info.public_key_bits) == ("unknown", 0)
    assert info.subject == "CN=Odd Key CA"
    assert describe_key(x509.load_der_x509_certificate(odd_key_der)) == ("unknown", 0)


def test_a_cafile_holding_such_a_ca_is_checked_without_an_exception(
        odd_key_der: bytes, tmp_path: Path) -> None:
    """Its weak-anchor check (run when a context is built with that cafile) passes
    over a key it cannot size: OpenSSL judges it."""
    cafile = tmp_path / "ca.pem"
    cafile.write_bytes(x509.load_der_x509_certificate(odd_key_der).public_bytes(
        serialization.Encoding.PEM))
    assert cafile_problem(cafile, "bcp195") is None


def test_a_certificate_signed_with_an_algorithm_cryptography_does_not_know(
        sm2_signed_der: bytes, tmp_path: Path) -> None:
    info = CertificateInfo.from_der(sm2_signed_der)
    assert info.signature_hash is None
    assert (info.public_key_type, info.public_key_bits) == ("ECDSA", 256)
    cafile = tmp_path / "ca.pem"
    cafile.write_bytes(x509.load_der_x509_certificate(sm2_signed_der).public_bytes(
        serialization.Encoding.PEM))
    assert cafile_problem(cafile, "bcp195") is None
