"""Handshake failures a TLS scanner provokes, in words rather than OpenSSL codes:
no key exchange group in common, no signature algorithm, a downgrade retry."""

from __future__ import annotations

import datetime as dt
import ssl
from pathlib import Path

import pytest

from dicomnet.security.certificates import make_dev_pki
from dicomnet.security.errors_map import translate_ssl_error
from tests.security.tlspair import handshake


def _ssl_error(code: str) -> ssl.SSLError:
    """An SSLError as _ssl raises it for ``code`` (reason and library set)."""
    exc = ssl.SSLError(1, f"[SSL: {code}] {code.lower().replace('_', ' ')} (_ssl.c:1006)")
    exc.reason = code
    exc.library = "SSL"
    return exc


def test_no_key_share_in_common_names_the_groups(tmp_path: Path) -> None:
    pki = make_dev_pki(tmp_path / "pki").directory
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(pki / "server.pem", pki / "server.key")
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.load_verify_locations(pki / "ca.pem")
    for ctx, curve in ((server, "secp384r1"), (client, "prime256v1")):
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.set_ecdh_curve(curve)  # one group each, not the same
    result = handshake(client, server, server_hostname="localhost")
    assert getattr(result.server_error, "reason", None) == "NO_SUITABLE_KEY_SHARE"
    assert result.server_error is not None
    error = translate_ssl_error(result.server_error, side="server", peer="127.0.0.1:5000",
                                profile="bcp195-rfc9325")
    assert error.reason == (
        "no key exchange group in common with the client under profile 'bcp195-rfc9325' "
        "(its supported_groups and key_share, RFC 8446 4.2.7-4.2.8)")


@pytest.mark.parametrize("code", ["NO_SHARED_SIGNATURE_ALGORITHMS",
                                  "NO_SUITABLE_SIGNATURE_ALGORITHM"])
def test_no_signature_algorithm_in_common(code: str) -> None:
    error = translate_ssl_error(_ssl_error(code), side="server", peer="127.0.0.1:5000")
    assert error.reason == (
        "no signature algorithm in common with the client under our TLS profile for the "
        "certificate in use (signature_algorithms, RFC 8446 4.2.3)")


def test_a_fallback_retry_is_called_a_possible_downgrade() -> None:
    error = translate_ssl_error(_ssl_error("INAPPROPRIATE_FALLBACK"), side="server",
                                peer="127.0.0.1:5000")
    assert error.reason == (
        "the client retried the handshake at a lower TLS version than it supports "
        "(TLS_FALLBACK_SCSV, RFC 7507): refused as a possible downgrade")
    assert "INAPPROPRIATE_FALLBACK" not in str(error)


def test_dev_certificates_last_exactly_their_days(tmp_path: Path) -> None:
    """testssl.sh flags a leaf valid for more than 825 days: 825 days plus the
    hour they are backdated was one."""
    from cryptography import x509

    from dicomnet.security.issuing import issue_dev_certificate

    pki = make_dev_pki(tmp_path / "pki").directory
    cert_path, _ = issue_dev_certificate(pki, "orthanc", days=30)
    for path, days in ((pki / "server.pem", 825), (pki / "client.pem", 825), (cert_path, 30)):
        cert = x509.load_pem_x509_certificate(path.read_bytes())
        assert cert.not_valid_after_utc - cert.not_valid_before_utc == dt.timedelta(days=days)


@pytest.mark.parametrize(("sent", "said"), [
    # An SSL 2.0 ClientHello (version 0002), as testssl.sh probes with.
    (bytes.fromhex("801f01000200060000001000002f00003511111111111111111111111111111111"),
     "peer sent an SSL 2.0 ClientHello (prohibited, RFC 6176) or another protocol, not TLS"),
    (b"GET / HTTP/1.1\r\nHost: pacs\r\n\r\n",
     "peer sent an HTTP request, not TLS (a web browser or HTTP client on this port?)"),
    (bytes.fromhex("0100000000cd0001") + bytes(200),  # an A-ASSOCIATE-RQ
     "peer does not speak TLS (plain DICOM on this port?)"),
])
def test_what_a_server_got_instead_of_tls_is_said(tmp_path: Path, sent: bytes, said: str) -> None:
    pki = make_dev_pki(tmp_path / "pki").directory
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(pki / "server.pem", pki / "server.key")
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = server.wrap_bio(incoming, outgoing, server_side=True)
    incoming.write(sent)
    with pytest.raises(ssl.SSLError) as caught:
        obj.do_handshake()
    error = translate_ssl_error(caught.value, side="server", peer="127.0.0.1:5000")
    assert error.reason == said
