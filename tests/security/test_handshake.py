"""In-memory handshakes: what SecurityInfo reports after a successful negotiation."""

from __future__ import annotations

import json
import ssl

import pytest

from dicomnet.security.certificates import CertificateInfo, DevPKI
from dicomnet.security.config import TLSConfig, dev_pki_configs
from dicomnet.security.info import SecurityInfo
from dicomnet.security.profiles import get_profile, suite_by_iana
from tests.security.tlspair import HandshakeResult, handshake

TLS13_DEFAULTS = {
    "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256", "TLS_AES_128_GCM_SHA256"
}


def _run(
    server: TLSConfig, client: TLSConfig, *, hostname: str | None = "localhost"
) -> tuple[HandshakeResult, SecurityInfo, SecurityInfo]:
    result = handshake(client.client_context_sync(), server.server_context_sync(),
                       server_hostname=hostname)
    assert result.ok, result.errors
    assert result.echoed == b"ping/pong"
    c_info = client.check_established(result.client, side="client")
    s_info = server.check_established(result.server, side="server")
    return result, c_info, s_info


def _assert_consistent(info: SecurityInfo) -> None:
    assert info.cipher_suite is not None
    suite = suite_by_iana(info.cipher_suite)
    assert suite is not None
    assert info.openssl_cipher_name == suite.openssl
    assert info.encryption == suite.encryption
    assert info.encryption_key_bits == suite.encryption_bits
    assert info.integrity == suite.integrity


@pytest.mark.parametrize(
    ("pki_name", "key_type", "bits"), [("rsa_pki", "RSA", 2048), ("ec_pki", "ECDSA", 256)]
)
def test_default_profile_negotiates_tls13(
    pki_name: str, key_type: str, bits: int, request: pytest.FixtureRequest
) -> None:
    pki: DevPKI = request.getfixturevalue(pki_name)
    server, client = dev_pki_configs(pki)
    _, c_info, s_info = _run(server, client)
    server_cert = CertificateInfo.from_pem_file(pki.server_cert)
    client_cert = CertificateInfo.from_pem_file(pki.client_cert)
    for info in (c_info, s_info):
        assert info.protocol == "TLSv1.3"
        assert info.cipher_suite in TLS13_DEFAULTS
        _assert_consistent(info)
        assert info.integrity in ("AEAD (GCM)", "AEAD (Poly1305)")
        assert info.key_exchange is None  # TLS 1.3: Python cannot tell the group
        assert (info.authentication, info.authentication_key_bits) == (key_type, bits)
        assert info.alpn == "dicom"
        assert info.sni == "localhost"
        assert info.session_resumed is False
        assert len(info.peer_certificates) == 1
    assert c_info.cipher_suite == s_info.cipher_suite
    assert c_info.side == "client" and s_info.side == "server"
    assert c_info.peer_certificates[0] == server_cert
    assert c_info.peer_certificates[0].sha256_fingerprint == server_cert.sha256_fingerprint
    assert c_info.peer_certificates[0].subject == "O=dicomnet,CN=localhost"
    assert s_info.peer_certificates[0] == client_cert
    assert c_info.local_certificate == client_cert
    assert s_info.local_certificate == server_cert


def test_forced_tls12_uses_ecdhe_aead(rsa_pki: DevPKI) -> None:
    server, client = dev_pki_configs(rsa_pki)
    server_ctx = server.server_context_sync()
    client_ctx = client.client_context_sync()
    client_ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    result = handshake(client_ctx, server_ctx)
    assert result.ok, result.errors
    info = client.check_established(result.client, side="client")
    assert info.protocol == "TLSv1.2"
    # Server preference, strongest first (profile order): AES-256-GCM with the RSA key.
    assert info.cipher_suite == "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"
    assert info.openssl_cipher_name == "ECDHE-RSA-AES256-GCM-SHA384"
    assert info.key_exchange == "ECDHE"
    assert (info.encryption, info.encryption_key_bits) == ("AES-256-GCM", 256)
    assert info.integrity == "AEAD (GCM)"
    assert info.cipher_suite in get_profile("bcp195-rfc9325").tls12_suites


def test_forced_tls12_ecdsa(ec_pki: DevPKI) -> None:
    server, client = dev_pki_configs(ec_pki)
    client_ctx = client.client_context_sync()
    client_ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    result = handshake(client_ctx, server.server_context_sync())
    assert result.ok, result.errors
    info = server.check_established(result.server, side="server")
    assert info.cipher_suite == "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"
    assert (info.key_exchange, info.authentication, info.authentication_key_bits) == (
        "ECDHE", "ECDSA", 256,
    )


@pytest.mark.parametrize(
    ("server_order", "expected"),
    [
        (("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"),
         "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"),
        (("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"),
         "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"),
    ],
)
def test_cipher_override_server_preference(
    rsa_pki: DevPKI, server_order: tuple[str, ...], expected: str
) -> None:
    """TLS 1.2: the server's order decides, whatever the client's order."""
    server, _ = dev_pki_configs(rsa_pki, ciphers=server_order)
    _, client = dev_pki_configs(rsa_pki, ciphers=tuple(reversed(server_order)))
    client_ctx = client.client_context_sync()
    client_ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    result = handshake(client_ctx, server.server_context_sync())
    assert result.ok, result.errors
    info = client.check_established(result.client, side="client")
    assert info.cipher_suite == expected
    suite = suite_by_iana(expected)
    assert suite is not None and info.encryption == suite.encryption


def test_cipher_override_intersection(rsa_pki: DevPKI) -> None:
    """The suite chosen is one both lists contain."""
    server, _ = dev_pki_configs(rsa_pki, ciphers=(
        "ECDHE-RSA-AES256-GCM-SHA384", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"))
    _, client = dev_pki_configs(rsa_pki, ciphers=("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",))
    client_ctx = client.client_context_sync()
    client_ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    result = handshake(client_ctx, server.server_context_sync())
    assert result.ok, result.errors
    info = server.check_established(result.server, side="server")
    assert (info.cipher_suite, info.encryption, info.encryption_key_bits) == (
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "AES-128-GCM", 128,
    )


def test_ip_address_host_sends_no_sni(rsa_pki: DevPKI) -> None:
    server, client = dev_pki_configs(rsa_pki)
    _, c_info, s_info = _run(server, client, hostname="127.0.0.1")
    assert c_info.sni is None and s_info.sni is None
    assert "127.0.0.1" in c_info.peer_certificates[0].sans


def test_session_resumption_reported(rsa_pki: DevPKI) -> None:
    server, client = dev_pki_configs(rsa_pki)
    server_ctx, client_ctx = server.server_context_sync(), client.client_context_sync()
    first = handshake(client_ctx, server_ctx)
    assert first.ok, first.errors
    session = first.client.session
    assert session is not None
    second = handshake(client_ctx, server_ctx, session=session)
    assert second.ok, second.errors
    assert client.check_established(second.client, side="client").session_resumed is True


def test_to_dict_is_json_ready(rsa_pki: DevPKI) -> None:
    server, client = dev_pki_configs(rsa_pki)
    _, c_info, _ = _run(server, client)
    data = json.loads(json.dumps(c_info.to_dict()))
    assert data["protocol"] == "TLSv1.3"
    assert data["alpn"] == "dicom"
    peer = data["peer_certificates"][0]
    assert peer["not_after"] == c_info.peer_certificates[0].not_after.isoformat()
    assert peer["public_key_type"] == "RSA"
    assert c_info.summary().startswith("TLSv1.3 TLS_")


def test_optional_client_certificate(rsa_pki: DevPKI) -> None:
    server, _ = dev_pki_configs(rsa_pki, peer_certificate="optional")
    client = TLSConfig(cafile=rsa_pki.ca_cert)
    _, c_info, s_info = _run(server, client)
    assert s_info.peer_certificates == ()
    assert c_info.local_certificate is None
    assert c_info.authentication == "RSA"


def test_server_without_client_verification(rsa_pki: DevPKI) -> None:
    server = TLSConfig(certfile=rsa_pki.server_cert, keyfile=rsa_pki.server_key,
                       peer_certificate="none")
    client = TLSConfig(cafile=rsa_pki.ca_cert)
    _, _, s_info = _run(server, client)
    assert s_info.peer_certificate is None
