"""OpenSSL's security level refuses a chain with a key too small (X509_V_ERR 66, the
peer's own certificate; 67, a CA's) or signed with a hash too weak (68): each is
said as such, with the minimum the level and the profile ask. Handshakes in memory
(``tlspair``); the weak peer is a bare ``ssl`` context at security level 0, since
a TLSConfig refuses to present such a certificate."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path

import pytest

from dicomnet.security.certificates import CertificateAuthority, first_certificate_der
from dicomnet.security.config import TLSConfig
from dicomnet.security.errors_map import translate_ssl_error
from tests.security.tlspair import handshake


def _weak_server(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    context.load_cert_chain(cert, key)
    return context


def _client_reason(client: TLSConfig, server: ssl.SSLContext, code: int,
                   profile: str | None = None) -> str:
    result = handshake(client.client_context_sync(), server)
    error = result.client_error
    assert isinstance(error, ssl.SSLCertVerificationError), result.errors
    assert error.verify_code == code, error
    return translate_ssl_error(error, side="client", peer="p", profile=profile).reason


def test_a_peer_key_too_small(ca: CertificateAuthority, ca_file: Path, tmp_path: Path) -> None:
    cert, key = ca.issue("localhost", sans=("localhost",), rsa_bits=1024).write(tmp_path, "s")
    reason = _client_reason(TLSConfig(cafile=ca_file), _weak_server(cert, key), 66)
    assert reason == (
        "the certificate of the server has a key too small for our security level: OpenSSL's "
        "security level 2 asks RSA and DSA keys of 2048 bits at least, EC keys of 224")


def test_a_ca_key_too_small(tmp_path: Path) -> None:
    """67 was said as a hash too weak (67 and 68 were swapped)."""
    weak = CertificateAuthority.create("weak CA", rsa_bits=1024)
    cert, key = weak.issue("localhost", sans=("localhost",), key_type="ecdsa").write(tmp_path, "s")
    client = TLSConfig(cafile=weak.write_cert(tmp_path / "weak-ca.pem"),
                       profile="bcp195-rfc9325-modified")
    reason = _client_reason(client, _weak_server(cert, key), 67,
                            profile="bcp195-rfc9325-modified")
    assert reason == (
        "a CA certificate of the server's chain (sent by it, or in our cafile/capath) has a key "
        "too small for our security level: OpenSSL's security level 2 asks RSA and DSA keys "
        "of 2048 bits at least, EC keys of 224; profile 'bcp195-rfc9325-modified' "
        "(PS3.15 B.13) asks EC keys of 256")


def sha1_signed(ca: CertificateAuthority, ca_file: Path, tmp_path: Path) -> tuple[Path, Path]:
    """(certificate, key) for localhost signed by ``ca`` with SHA-1, by the openssl
    command (cryptography signs no certificate with SHA-1 any more)."""
    _, key = ca.issue("localhost", key_type="ecdsa").write(tmp_path, "server")
    ca_key = ca.issued.write(tmp_path, "ca")[1]
    request, extensions, sha1 = (tmp_path / name for name in ("req.csr", "ext.cnf", "sha1.pem"))
    extensions.write_text("subjectAltName = DNS:localhost\n")
    subprocess.run(["openssl", "req", "-new", "-key", str(key), "-subj", "/CN=localhost",
                    "-out", str(request)], check=True, capture_output=True)
    subprocess.run(["openssl", "x509", "-req", "-in", str(request), "-sha1", "-CA", str(ca_file),
                    "-CAkey", str(ca_key), "-set_serial", "7", "-extfile", str(extensions),
                    "-out", str(sha1)], check=True, capture_output=True)
    return sha1, key


needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None,
                                   reason="needs the openssl command")


@needs_openssl
def test_a_signature_hash_too_weak(ca: CertificateAuthority, ca_file: Path,
                                   tmp_path: Path) -> None:
    sha1, key = sha1_signed(ca, ca_file, tmp_path)
    reason = _client_reason(TLSConfig(cafile=ca_file), _weak_server(sha1, key), 68)
    assert reason == (
        "the certificate of the server, or a CA certificate of its chain, is signed with a "
        "hash too weak for our security level (SHA-1 or MD5: OpenSSL's security level 2 asks "
        "SHA-224 or stronger)")


def test_the_presented_certificate_names_the_key(ca: CertificateAuthority, ca_file: Path,
                                                 tmp_path: Path) -> None:
    """With the DER the client received (aio.tls_socket.presented_certificate), the
    reason names the certificate and its key; one that does not parse changes nothing."""
    cert, key = ca.issue("localhost", sans=("localhost",), rsa_bits=1024).write(tmp_path, "s")
    result = handshake(TLSConfig(cafile=ca_file).client_context_sync(), _weak_server(cert, key))
    error = result.client_error
    assert isinstance(error, ssl.SSLCertVerificationError), result.errors
    minimum = ("OpenSSL's security level 2 asks RSA and DSA keys of 2048 bits at least, EC "
               "keys of 224")

    def reason(der: bytes) -> str:
        return translate_ssl_error(error, side="client", peer="p", peer_certificate=der).reason

    assert reason(first_certificate_der(cert)) == (
        "the certificate of the server (O=dicomnet,CN=localhost) has an RSA key of 1024 bits, "
        f"too small for our security level: {minimum}")
    assert reason(b"not a certificate") == (
        f"the certificate of the server has a key too small for our security level: {minimum}")
