"""Certificates whose extensions ``cryptography`` will not parse, beyond its
ValueError: a duplicate extension (``x509.DuplicateExtension``) and a
directoryName attribute of a type its Name refuses (``TypeError``). OpenSSL
loads both (a cafile), and a peer may send either: describing them, checking a
cafile and explaining a failed handshake must not raise.

Found by atheris (tests/fuzz_harness, targets ``der`` and ``pem``). Each
certificate is made here with ``cryptography``, then one OID replaced in its DER
(no signature is checked to parse one).
"""

from __future__ import annotations

import base64
import datetime as dt
import warnings
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import NameOID

from dicomnet.errors import ConfigurationError
from dicomnet.security.certificates import CertificateInfo, trust_problem
from dicomnet.security.errors_map import _address_as_dns_name, _host_names
from dicomnet.security.trust_store import cafile_problem
from dicomnet.security.x509_load import load_pem_certificates

#: subjectKeyIdentifier (2.5.29.14) made a second basicConstraints (2.5.29.19).
DUPLICATE = (bytes.fromhex("0603551d0e"), bytes.fromhex("0603551d13"))
#: x500UniqueIdentifier (2.5.4.45), a BIT STRING, made organizationName (2.5.4.10).
BIT_STRING_NAME = (bytes.fromhex("060355042d"), bytes.fromhex("060355040a"))


def _certificate_der() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "peer")])
    unique = x509.Name([x509.NameAttribute(NameOID.X500_UNIQUE_IDENTIFIER, b"\x00\x01",
                                           _ASN1Type.BitString)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(7)
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("10.0.0.5"), x509.DirectoryName(unique)]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.DER)


@pytest.fixture(params=[DUPLICATE, BIT_STRING_NAME], ids=["duplicate", "bit string name"])
def der(request: pytest.FixtureRequest) -> bytes:
    old, new = request.param
    raw = _certificate_der()
    assert raw.count(old) == 1
    return raw.replace(old, new)


def test_such_a_certificate_is_described_without_its_extensions(der: bytes) -> None:
    info = CertificateInfo.from_der(der)
    assert info.common_name == "peer"
    assert (info.sans, info.is_ca, info.extended_key_usage) == ((), False, ())


def test_a_failed_handshake_with_such_a_peer_is_explained_without_them(der: bytes) -> None:
    """errors_map reads the peer's names for a hostname mismatch: none readable."""
    assert _host_names(der) is None
    assert _address_as_dns_name(der, "10.0.0.5") == ""


def test_a_cafile_holding_one_is_left_to_openssl(der: bytes, tmp_path: Path) -> None:
    pem = x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)
    assert trust_problem(pem, [x509.load_pem_x509_certificate(pem)]) is None
    cafile = tmp_path / "ca.pem"
    cafile.write_bytes(pem)
    assert cafile_problem(cafile, "bcp195") is None


def test_a_certificate_of_an_unknown_version_is_malformed(tmp_path: Path) -> None:
    """Found by atheris (der): version 122 ([0] INTEGER 7A). cryptography raises
    InvalidVersion, no ValueError: it escaped load_pem_certificates' contract
    (ValueError when malformed) and der_certificate, which a capath's and a
    cafile's checks call for any file."""
    from dicomnet.security.trust_store import der_certificate, read_unhashed_capath
    from dicomnet.security.x509_load import load_der_certificate, load_pem_certificates

    good = _certificate_der()
    version = bytes.fromhex("a003020102")  # [0] EXPLICIT INTEGER 2 (v3)
    assert good.count(version) == 1
    der = good.replace(version, bytes.fromhex("a00302017a"))
    pem = (b"-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(der)
           + b"-----END CERTIFICATE-----\n")
    with pytest.raises(ValueError, match="version"):
        load_der_certificate(der)
    with pytest.raises(ValueError, match="version"):
        load_pem_certificates(pem)
    with pytest.raises(ValueError, match="version"):
        CertificateInfo.from_der(der)
    assert _host_names(der) is None
    assert _address_as_dns_name(der, "10.0.0.5") == ""
    assert der_certificate(der) is None
    (tmp_path / "odd.cer").write_bytes(der)
    with pytest.raises(ConfigurationError, match="holds no CA certificates"):
        read_unhashed_capath(tmp_path)  # the file passed over, as a key or a text is
    cafile = tmp_path / "ca.pem"
    cafile.write_bytes(pem)
    assert cafile_problem(cafile, "bcp195") is None


def _unreadable_subject_der() -> bytes:
    """A self-signed certificate whose subject holds a BIT STRING attribute
    under organizationName: cryptography raises TypeError reading the subject
    (found by atheris, target ``der``); OpenSSL reads it."""
    key = ec.generate_private_key(ec.SECP256R1())
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "issuer")])
    subject = x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, "peer"),
        x509.NameAttribute(NameOID.X500_UNIQUE_IDENTIFIER, b"\x00\x01", _ASN1Type.BitString)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
            .public_key(key.public_key()).serial_number(9)
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .sign(key, hashes.SHA256()))
    raw = cert.public_bytes(serialization.Encoding.DER)
    old, new = BIT_STRING_NAME
    assert raw.count(old) == 1
    return raw.replace(old, new)


def test_a_certificate_whose_subject_cannot_be_read_is_described() -> None:
    """It raised TypeError out of CertificateInfo (a peer's, at every handshake)."""
    der = _unreadable_subject_der()
    with pytest.raises(TypeError):
        _ = x509.load_der_x509_certificate(der).subject
    info = CertificateInfo.from_der(der)
    assert (info.subject, info.issuer, info.common_name) == (
        "(a name cryptography cannot read)", "CN=issuer", None)
    assert _host_names(der) is None


def test_a_cafile_holding_one_whose_subject_cannot_be_read(tmp_path: Path) -> None:
    pem = x509.load_der_x509_certificate(_unreadable_subject_der()).public_bytes(
        serialization.Encoding.PEM)
    cafile = tmp_path / "ca.pem"
    cafile.write_bytes(pem)
    cafile_problem(cafile, "bcp195")  # a problem or none, but no exception
    trust_problem(pem, [x509.load_pem_x509_certificate(pem)])


def test_unreadable_extensions_beside_a_non_positive_key_identifier_serial_are_quiet() -> None:
    """Extensions cryptography will not parse, one of them an Authority Key
    Identifier whose serial is 0: each new parse (cryptography keeps none that
    failed) warned CryptographyDeprecationWarning, an exception under -W error,
    out of CertificateInfo at every handshake with such a peer (atheris, ``pem``)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "peer")])
    now = dt.datetime.now(dt.UTC)
    issuer = x509.DirectoryName(name)
    unique = x509.Name([x509.NameAttribute(NameOID.X500_UNIQUE_IDENTIFIER, b"\x00\x01",
                                           _ASN1Type.BitString)])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(11)
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.AuthorityKeyIdentifier(b"\x01\x02", [issuer], 0),
                           critical=False)
            .add_extension(x509.SubjectAlternativeName([x509.DirectoryName(unique)]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    old, new = BIT_STRING_NAME
    der = cert.public_bytes(serialization.Encoding.DER).replace(old, new)
    pem = x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)
    (loaded,) = load_pem_certificates(pem)
    for _ in range(2):  # the second read parses again
        info = CertificateInfo.from_x509(loaded)
        assert (info.common_name, info.sans, info.is_ca) == ("peer", (), False)


def _odd_lengths_der() -> bytes:
    """A self-signed certificate whose subject has a countryName of 11 letters
    (RFC 5280 A.1 asks 2) and a commonName of 70 (ub-common-name is 64): OpenSSL
    takes it, cryptography warns at each read of the subject, and of the
    extensions (the same name, as a directoryName of its subjectAltName)."""
    key = ec.generate_private_key(ec.SECP256R1())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        subject = x509.Name([
            x509.NameAttribute(NameOID.COUNTRY_NAME, "Switzerland", _validate=False),
            x509.NameAttribute(NameOID.COMMON_NAME, "p" * 70, _validate=False)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(11)
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("peer.local"),
                                                        x509.DirectoryName(subject)]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.DER)


def test_a_subject_of_odd_attribute_lengths_is_read_quietly() -> None:
    """Found by atheris (der, twice): describing such a peer certificate (for a host
    name mismatch) said cryptography's bare UserWarning, an exception under -W
    error: reading its subject, then its extensions."""
    der = _odd_lengths_der()
    with pytest.warns(UserWarning, match="Attribute's length"):
        _ = x509.load_der_x509_certificate(der).subject
    info = CertificateInfo.from_der(der)  # pytest runs with -W error
    assert info.subject == f"CN={'p' * 70},C=Switzerland"
    assert _host_names(der) == (["DNS:peer.local"], "p" * 70)
