"""A peer whose own certificate is a CA's (basicConstraints CA:TRUE, RFC 5280 4.2.1.9)
is refused after the handshake, whichever side presents it, unless that very
certificate is one of our trust anchors: a peer's self-signed certificate pinned
in cafile or capath (``openssl req -x509`` sets CA:TRUE) keeps working.
``allow_ca_peer_certificate=True`` takes one all the same, with a SecurityWarning.
Handshakes in memory (``tlspair``)."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from dicomnet.errors import TLSError
from dicomnet.security.certificates import CertificateAuthority, IssuedCert, generate_key
from dicomnet.security.config import TLSConfig
from dicomnet.security.profiles import SecurityWarning
from tests.security.tlspair import HandshakeResult, handshake


def _ca_true(common_name: str, issuer: CertificateAuthority | None) -> IssuedCert:
    """A CA:TRUE certificate for ``common_name`` (a DNS subjectAltName of the same), signed
    by ``issuer``, or self-signed as ``openssl req -x509`` makes one (CA:TRUE, no key
    usage) when None."""
    key = generate_key("ecdsa")
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.certificate.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(common_name)]), critical=False)
    )
    return IssuedCert(builder.sign(issuer.key if issuer else key, hashes.SHA256()), key)


def _pair(server: TLSConfig, client: TLSConfig) -> HandshakeResult:
    result = handshake(client.client_context_sync(), server.server_context_sync())
    assert result.ok, result.errors  # OpenSSL takes it: the refusal is ours
    return result


def test_a_server_presenting_a_ca_certificate_is_refused(
        ca: CertificateAuthority, ca_file: Path, tmp_path: Path) -> None:
    cert, key = _ca_true("localhost", ca).write(tmp_path, "server-ca")
    client = TLSConfig(cafile=ca_file)
    result = _pair(TLSConfig(certfile=cert, keyfile=key, peer_certificate="none"), client)
    with pytest.raises(TLSError) as raised:
        client.check_established(result.client, side="client", peer="127.0.0.1:2762")
    assert raised.value.reason == (
        "the certificate of the server (CN=localhost) is a CA certificate (basicConstraints "
        "CA:TRUE), not a node's own, and is not one of our trust anchors: a CA's key signs "
        "certificates (RFC 5280 4.2.1.9) and could sign more identities; give that node a "
        "certificate of its own (CA:FALSE), or take this one with "
        "allow_ca_peer_certificate=True")
    assert str(raised.value).startswith("TLS handshake with 127.0.0.1:2762 failed: ")


def test_a_client_presenting_a_ca_certificate_is_refused(
        ca: CertificateAuthority, ca_file: Path, tmp_path: Path) -> None:
    server_cert, server_key = ca.issue("localhost", sans=("localhost",), key_type="ecdsa").write(
        tmp_path, "server")
    cert, key = _ca_true("modality", ca).write(tmp_path, "client-ca")
    server = TLSConfig(certfile=server_cert, keyfile=server_key, cafile=ca_file)
    result = _pair(server, TLSConfig(certfile=cert, keyfile=key, cafile=ca_file))
    with pytest.raises(TLSError) as raised:
        server.check_established(result.server, side="server")
    assert raised.value.reason.startswith(
        "the certificate of the client (CN=modality) is a CA certificate (basicConstraints "
        "CA:TRUE), not a node's own, and is not one of our trust anchors")


def test_an_ordinary_leaf_is_not_refused(
        ca: CertificateAuthority, ca_file: Path, tmp_path: Path) -> None:
    cert, key = ca.issue("localhost", sans=("localhost",), key_type="ecdsa").write(tmp_path, "s")
    client = TLSConfig(cafile=ca_file)
    result = _pair(TLSConfig(certfile=cert, keyfile=key, peer_certificate="none"), client)
    info = client.check_established(result.client, side="client")
    assert info.peer_certificate is not None and not info.peer_certificate.is_ca


def test_a_pinned_self_signed_ca_certificate_is_taken_from_cafile(tmp_path: Path) -> None:
    """The DICOM habit: each node's self-signed certificate, made with `openssl req
    -x509` (CA:TRUE), is the other's trust anchor."""
    server_cert, server_key = _ca_true("localhost", None).write(tmp_path, "server")
    client_cert, client_key = _ca_true("modality", None).write(tmp_path, "client")
    server = TLSConfig(certfile=server_cert, keyfile=server_key, cafile=client_cert)
    client = TLSConfig(certfile=client_cert, keyfile=client_key, cafile=server_cert)
    result = _pair(server, client)
    assert client.check_established(result.client, side="client").peer_certificate.is_ca  # type: ignore[union-attr]
    assert server.check_established(result.server, side="server").peer_certificate.is_ca  # type: ignore[union-attr]


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_a_pinned_self_signed_ca_certificate_is_taken_from_a_hashed_capath(
        tmp_path: Path) -> None:
    """A capath's certificates reach the context's store only when a handshake looks
    them up: the check must see the one just used."""
    cert, key = _ca_true("localhost", None).write(tmp_path, "server")
    capath = tmp_path / "capath"
    capath.mkdir()
    shutil.copy(cert, capath / "server.pem")
    subprocess.run(["openssl", "rehash", str(capath)], check=True, capture_output=True)
    client = TLSConfig(capath=capath)
    result = _pair(TLSConfig(certfile=cert, keyfile=key, peer_certificate="none"), client)
    assert client.check_established(result.client, side="client").peer_certificate is not None


def test_allow_ca_peer_certificate_takes_one_with_a_warning(
        ca: CertificateAuthority, ca_file: Path, tmp_path: Path) -> None:
    cert, key = _ca_true("localhost", ca).write(tmp_path, "server-ca")
    client = TLSConfig(cafile=ca_file, allow_ca_peer_certificate=True)
    with pytest.warns(SecurityWarning, match=r"allow_ca_peer_certificate=True"):
        context = client.client_context_sync()
    result = handshake(context, TLSConfig(certfile=cert, keyfile=key,
                                          peer_certificate="none").server_context_sync())
    assert result.ok, result.errors
    info = client.check_established(result.client, side="client")
    assert info.peer_certificate is not None and info.peer_certificate.subject == "CN=localhost"
