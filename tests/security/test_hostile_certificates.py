"""Certificates a hostile or misconfigured peer shows, and the reason each side gives.

Each certificate is made here, at run time, with ``cryptography``; the handshakes
run in memory (``tlspair``), so nothing waits on a clock.
"""

from __future__ import annotations

import datetime as dt
import warnings
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from dicomnet.security.certificates import CertificateAuthority, IssuedCert, generate_key
from dicomnet.security.config import TLSConfig
from dicomnet.security.errors_map import translate_ssl_error
from tests.security.tlspair import handshake

NOW = dt.datetime.now(dt.UTC)


def _leaf(ca: CertificateAuthority, *, key_usage: x509.KeyUsage | None = None,
          extra: tuple[x509.ExtensionType, ...] = ()) -> IssuedCert:
    """A localhost leaf for both uses (serverAuth, clientAuth), with this key usage
    (critical) and these extra (non-critical) extensions."""
    key = generate_key("ecdsa")
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(hours=1))
        .not_valid_after(NOW + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                              ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
    )
    if key_usage is not None:
        builder = builder.add_extension(key_usage, critical=True)
    for extension in extra:
        builder = builder.add_extension(extension, critical=False)
    return IssuedCert(builder.sign(ca.key, hashes.SHA256()), key)


def _crl_sign_only() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=False, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=True,
        encipher_only=False, decipher_only=False)


def test_a_server_certificate_whose_key_usage_forbids_tls(
        ca: CertificateAuthority, ca_file: Path, tmp_path: Path) -> None:
    """OpenSSL says "unsupported certificate purpose" (X509_V_ERR_INVALID_PURPOSE) for
    a key usage that does not allow TLS as for an extended key usage without
    serverAuth: the reason blamed the extended key usage alone, which here is right
    (serverAuth is in it), sending the user to look at the wrong field."""
    cert, key = _leaf(ca, key_usage=_crl_sign_only()).write(tmp_path, "server")
    server = TLSConfig(certfile=cert, keyfile=key, peer_certificate="none",
                       check_own_certificate=False)
    client = TLSConfig(cafile=ca_file)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # check_own_certificate=False warns
        server_ctx = server.server_context_sync()
    result = handshake(client.client_context_sync(), server_ctx)
    assert result.client_error is not None
    reason = translate_ssl_error(result.client_error, side="client", peer="p").reason
    assert reason == (
        "the certificate of the server is not meant for this use (its extended key usage "
        "lacks serverAuth, or its key usage lacks digitalSignature (keyEncipherment for RSA key "
        "exchange))")


def _huge(ca: CertificateAuthority) -> IssuedCert:
    """A certificate of some 120 KB: an unknown extension holding an OCTET STRING
    (tag 04, long length form on three bytes) of 120,000 bytes."""
    payload = b"A" * 120_000
    value = b"\x04\x83" + len(payload).to_bytes(3, "big") + payload
    oid = x509.ObjectIdentifier("1.3.6.1.4.1.99999.1")
    return _leaf(ca, extra=(x509.UnrecognizedExtension(oid, value),))


def test_a_certificate_message_over_openssl_s_limit(
        ca: CertificateAuthority, ca_file: Path, tmp_path: Path) -> None:
    """A peer whose certificate message exceeds OpenSSL's 100 KiB bound
    (SSL_CTX_set_max_cert_list) was said in OpenSSL's words, 'TLS error:
    EXCESSIVE_MESSAGE_SIZE', on both sides: the server with the huge certificate
    (a client refusing it, the reason of the client's alert), and a client with one."""
    cert, key = _huge(ca).write(tmp_path, "huge")
    server = TLSConfig(certfile=cert, keyfile=key, peer_certificate="none")
    result = handshake(TLSConfig(cafile=ca_file).client_context_sync(),
                       server.server_context_sync())
    assert result.client_error is not None and result.server_error is not None
    assert translate_ssl_error(result.client_error, side="client", peer="p").reason == (
        "the server sent a handshake message larger than OpenSSL accepts (a certificate "
        "chain of more than 100 KiB: too many or too large certificates)")
    assert translate_ssl_error(result.server_error, side="server", peer="p").reason == (
        "the client ended the handshake with a TLS alert: illegal parameter")

    good, good_key = _leaf(ca).write(tmp_path, "server")
    server = TLSConfig(certfile=good, keyfile=good_key, cafile=ca_file)
    client = TLSConfig(certfile=cert, keyfile=key, cafile=ca_file)
    result = handshake(client.client_context_sync(), server.server_context_sync())
    assert result.server_error is not None
    assert translate_ssl_error(result.server_error, side="server", peer="p").reason == (
        "the client sent a handshake message larger than OpenSSL accepts (a certificate "
        "chain of more than 100 KiB: too many or too large certificates)")
