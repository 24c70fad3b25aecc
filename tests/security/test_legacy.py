"""The retired AES (PS3.15 B.3), Basic (B.1) and BCP195 (B.9) profiles."""

from __future__ import annotations

import ssl
import warnings

import pytest

from dicomnet.errors import ConfigurationError
from dicomnet.security.certificates import DevPKI
from dicomnet.security.config import TLSConfig, dev_pki_configs
from dicomnet.security.errors_map import translate_ssl_error
from dicomnet.security.profiles import SecurityWarning, openssl_has_3des, openssl_supports
from tests.security.tlspair import handshake


def _build_legacy(cfg: TLSConfig, side: str) -> ssl.SSLContext:
    with pytest.warns(SecurityWarning, match="is retired and weak"):
        return cfg.server_context_sync() if side == "server" else cfg.client_context_sync()


def test_aes_profile_warns_and_negotiates(rsa_pki: DevPKI) -> None:
    server, client = dev_pki_configs(rsa_pki, profile="aes")
    s_ctx = _build_legacy(server, "server")
    c_ctx = _build_legacy(client, "client")
    assert s_ctx.maximum_version == ssl.TLSVersion.TLSv1_2
    if not openssl_supports("AES128-SHA"):  # pragma: no cover - depends on the build
        pytest.skip("this OpenSSL lacks TLS_RSA_WITH_AES_128_CBC_SHA")
    result = handshake(c_ctx, s_ctx)
    assert result.ok, result.errors
    info = client.check_established(result.client, side="client")
    assert info.protocol == "TLSv1.2"
    assert info.cipher_suite == "TLS_RSA_WITH_AES_128_CBC_SHA"
    assert info.openssl_cipher_name == "AES128-SHA"
    assert (info.key_exchange, info.authentication) == ("RSA", "RSA")
    assert (info.encryption, info.encryption_key_bits) == ("AES-128-CBC", 128)
    assert info.integrity == "HMAC-SHA1"


def test_aes_client_meets_modern_server(rsa_pki: DevPKI) -> None:
    """An AES-profile peer and a default-profile peer share nothing: a clear reason."""
    server, _ = dev_pki_configs(rsa_pki)
    _, client = dev_pki_configs(rsa_pki, profile="aes")
    c_ctx = _build_legacy(client, "client")
    result = handshake(c_ctx, server.server_context_sync())
    assert result.server_error is not None
    err = translate_ssl_error(result.server_error, side="server", peer="old-modality:104",
                              profile="bcp195-rfc9325")
    assert err.reason == "peer offers no cipher suite allowed by profile 'bcp195-rfc9325'"
    assert result.client_error is not None
    c_err = translate_ssl_error(result.client_error, side="client", peer="pacs", profile="aes")
    assert c_err.reason == "peer offers no cipher suite allowed by profile 'aes'"


def test_basic_profile(rsa_pki: DevPKI) -> None:
    server, client = dev_pki_configs(rsa_pki, profile="basic")
    if openssl_has_3des():  # pragma: no cover - OpenSSL built with enable-weak-ssl-ciphers
        s_ctx = _build_legacy(server, "server")
        result = handshake(_build_legacy(client, "client"), s_ctx)
        assert result.ok, result.errors
        info = client.check_established(result.client, side="client")
        assert info.cipher_suite == "TLS_RSA_WITH_3DES_EDE_CBC_SHA"
        assert (info.encryption, info.integrity) == ("3DES-EDE-CBC", "HMAC-SHA1")
        return
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # refused before any warning is due
        with pytest.raises(ConfigurationError) as refused:
            server.server_context_sync()
    text = str(refused.value)
    assert text.startswith(
        "TLS profile 'basic' (Basic TLS Secure Transport Connection Profile, PS3.15 B.1 "
        "(retired)) needs TLS_RSA_WITH_3DES_EDE_CBC_SHA, which this OpenSSL build"
    )
    assert "enable-weak-ssl-ciphers" in text


def test_bcp195_retired_profile_allows_tls10_and_warns(rsa_pki: DevPKI) -> None:
    server, client = dev_pki_configs(rsa_pki, profile="bcp195")
    s_ctx = _build_legacy(server, "server")
    assert s_ctx.minimum_version == ssl.TLSVersion.TLSv1
    result = handshake(_build_legacy(client, "client"), s_ctx)
    assert result.ok, result.errors
    info = client.check_established(result.client, side="client")
    assert info.protocol == "TLSv1.3"


@pytest.mark.parametrize("name", ["bcp195-non-downgrading", "bcp195-extended",
                                  "bcp195-rfc9325-modified"])
def test_other_profiles_interoperate(rsa_pki: DevPKI, name: str) -> None:
    server, client = dev_pki_configs(rsa_pki, profile=name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not legacy: no warning
        s_ctx, c_ctx = server.server_context_sync(), client.client_context_sync()
    result = handshake(c_ctx, s_ctx)
    assert result.ok, result.errors
    info = client.check_established(result.client, side="client")
    if name == "bcp195-extended":
        assert info.protocol == "TLSv1.2"
        assert info.cipher_suite == "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"
        assert info.key_exchange == "ECDHE"
    else:
        assert info.protocol == "TLSv1.3"


def test_tls13_client_vs_extended_server(rsa_pki: DevPKI) -> None:
    """A TLS 1.3-only peer against a TLS 1.2-only profile: version reason."""
    server, _ = dev_pki_configs(rsa_pki, profile="bcp195-extended")
    _, modern = dev_pki_configs(rsa_pki)
    c_ctx = modern.client_context_sync()
    c_ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    result = handshake(c_ctx, server.server_context_sync())
    assert result.server_error is not None
    err = translate_ssl_error(result.server_error, side="server", peer="x",
                              profile="bcp195-extended")
    assert err.reason == "peer offers no protocol version allowed by profile 'bcp195-extended'"


def test_aes_server_with_an_ec_certificate_is_refused(ec_pki: DevPKI) -> None:
    """The AES profile's suites (PS3.15 B.3) all need an RSA certificate and it has no
    TLS 1.3: a server with an EC key could serve no client. Before, it started and
    refused every client with "peer offers no cipher suite allowed by profile 'aes'",
    blaming peers (found with storescu +pa and +px against dicomnet serve)."""
    server, client = dev_pki_configs(ec_pki, profile="aes")
    with pytest.warns(SecurityWarning), pytest.raises(ConfigurationError) as caught:
        server.server_context_sync()
    assert str(caught.value) == (
        f"our certificate {ec_pki.server_cert} has an EC key, and every TLS 1.2 cipher "
        "suite of profile 'aes' (PS3.15 B.3 (retired)), TLS_RSA_WITH_AES_128_CBC_SHA and "
        "TLS_RSA_WITH_3DES_EDE_CBC_SHA, needs an RSA one: no client could connect; use an "
        "RSA certificate (dicomnet certs init --key-type rsa)")
    # A client's certificate signs for itself (RFC 5246 7.4.8), whatever the suite.
    _build_legacy(client, "client")


def test_extended_server_with_an_ec_certificate_and_only_dhe_suites_is_refused(
    ec_pki: DevPKI,
) -> None:
    server, _ = dev_pki_configs(ec_pki, profile="bcp195-extended",
                                ciphers=("TLS_DHE_RSA_WITH_AES_256_GCM_SHA384",))
    with pytest.raises(ConfigurationError, match=(
            r"has an EC key, and every TLS 1.2 cipher suite of the ciphers chosen, "
            r"TLS_DHE_RSA_WITH_AES_256_GCM_SHA384, needs an RSA one: no client could connect")):
        server.server_context_sync()


def test_server_whose_certificate_serves_only_tls13_says_so(
    ec_pki: DevPKI, caplog: pytest.LogCaptureFixture,
) -> None:
    """B.10's TLS 1.2 suites are all RSA ones: with an EC key, TLS 1.3 clients connect
    and TLS 1.2 ones cannot, which the server logs once at each build."""
    server, client = dev_pki_configs(ec_pki, profile="bcp195-non-downgrading")
    with caplog.at_level("WARNING", logger="dicomnet.security"):
        s_ctx = server.server_context_sync()
    said = [r.getMessage() for r in caplog.records if "TLS 1.2" in r.getMessage()]
    assert said == [
        f"our certificate {ec_pki.server_cert} has an EC key, and every TLS 1.2 cipher "
        "suite of profile 'bcp195-non-downgrading' (PS3.15 B.10 (retired)) needs an RSA "
        "one: only TLS 1.3 clients can connect"]
    result = handshake(client.client_context_sync(), s_ctx)
    assert result.ok, result.errors


def test_a_legacy_profile_warns_once_per_configuration(rsa_pki: DevPKI) -> None:
    """A server rebuilds its context at each certificate rotation (and a client its
    shared one when a file changes): the retired profile warned again each time,
    though nothing about the choice had changed. Once per TLSConfig object."""
    server, client = dev_pki_configs(rsa_pki, profile="aes")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # as dicomnet's commands show them
        for _ in range(3):
            server.server_context_sync()
            client.client_context_sync()
    retired = [str(w.message) for w in caught if "is retired and weak" in str(w.message)]
    assert len(retired) == 2, retired  # the server's configuration, the client's
    again, _ = dev_pki_configs(rsa_pki, profile="aes")  # another configuration: its own
    with pytest.warns(SecurityWarning, match="is retired and weak"):
        again.server_context_sync()
    # Verification turned off is a choice of the configuration too.
    unverified = TLSConfig(verify_peer=False, check_hostname=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            unverified.client_context_sync()
    assert [str(w.message) for w in caught if "verification is OFF" in str(w.message)] == [
        "TLS server certificate verification is OFF (verify_peer=False): anyone can "
        "impersonate the server"]


def test_a_legacy_profile_refused_as_an_error_warning_is_refused_each_time(
        rsa_pki: DevPKI) -> None:
    """A program that turns SecurityWarning into an error (-W error::SecurityWarning,
    a policy against retired profiles) is refused at every context, not only the
    first: the warning raised was counted as given, and the next try went
    through silently."""
    server, client = dev_pki_configs(rsa_pki, profile="aes")
    with warnings.catch_warnings():
        warnings.simplefilter("error", SecurityWarning)
        for _ in range(2):
            with pytest.raises(SecurityWarning, match="is retired and weak"):
                server.server_context_sync()
            with pytest.raises(SecurityWarning, match="is retired and weak"):
                client.client_context_sync()
    unverified = TLSConfig(verify_peer=False, check_hostname=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SecurityWarning)
        for _ in range(2):
            with pytest.raises(SecurityWarning, match="verification is OFF"):
                unverified.client_context_sync()
