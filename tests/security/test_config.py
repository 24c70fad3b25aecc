"""Building contexts from TLSConfig: certificates, passwords, policies, warnings."""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
import warnings
from pathlib import Path

import pytest

from dicomnet.errors import ConfigurationError, TLSError
from dicomnet.security import config as config_module
from dicomnet.security.certificates import (
    CertificateAuthority,
    DevPKI,
    issue_dev_certificate,
    key_is_encrypted,
    make_dev_pki,
)
from dicomnet.security.config import TLSConfig, dev_pki_configs
from dicomnet.security.profiles import SecurityWarning
from tests.security.tlspair import handshake

PASSWORD = "correct horse"


@pytest.fixture(scope="module")
def encrypted_pki(tmp_path_factory: pytest.TempPathFactory) -> DevPKI:
    return make_dev_pki(tmp_path_factory.mktemp("enc-pki"), key_type="ecdsa", password=PASSWORD)


def test_dev_pki_files(encrypted_pki: DevPKI, rsa_pki: DevPKI) -> None:
    for pki in (encrypted_pki, rsa_pki):
        for key in (pki.ca_key, pki.server_key, pki.client_key):
            assert key.stat().st_mode & 0o777 == 0o600
    assert key_is_encrypted(encrypted_pki.server_key.read_bytes())
    assert not key_is_encrypted(rsa_pki.server_key.read_bytes())
    assert key_is_encrypted(b"-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n")


class Counter:
    def __init__(self, answer: str | bytes) -> None:
        self.answer = answer
        self.calls = 0

    def __call__(self) -> str | bytes:
        self.calls += 1
        return self.answer


def test_password_callback_called_once(encrypted_pki: DevPKI) -> None:
    ask = Counter(PASSWORD)
    server = TLSConfig(certfile=encrypted_pki.server_cert, keyfile=encrypted_pki.server_key,
                       cafile=encrypted_pki.ca_cert, on_private_key_password=ask)
    server_ctx = server.server_context_sync()
    assert ask.calls == 1
    client = TLSConfig(cafile=encrypted_pki.ca_cert, certfile=encrypted_pki.client_cert,
                       keyfile=encrypted_pki.client_key, key_password=PASSWORD.encode())
    result = handshake(client.client_context_sync(), server_ctx)
    assert result.ok, result.errors
    assert ask.calls == 1  # not asked again during handshakes


def test_password_callback_not_called_for_plain_key(rsa_pki: DevPKI) -> None:
    ask = Counter("unused")
    server, _ = dev_pki_configs(rsa_pki, on_private_key_password=ask)
    server.server_context_sync()
    asyncio.run(server.server_context())
    assert ask.calls == 0


def test_key_password_wins_over_callback(encrypted_pki: DevPKI) -> None:
    ask = Counter("wrong")
    cfg = TLSConfig(certfile=encrypted_pki.client_cert, keyfile=encrypted_pki.client_key,
                    cafile=encrypted_pki.ca_cert, key_password=PASSWORD,
                    on_private_key_password=ask)
    cfg.client_context_sync()
    assert ask.calls == 0


def test_wrong_password(encrypted_pki: DevPKI) -> None:
    cfg = TLSConfig(certfile=encrypted_pki.server_cert, keyfile=encrypted_pki.server_key,
                    cafile=encrypted_pki.ca_cert, on_private_key_password=lambda: "nope")
    with pytest.raises(ConfigurationError) as info:
        cfg.server_context_sync()
    assert str(info.value) == f"wrong password for private key {encrypted_pki.server_key}"


@pytest.mark.parametrize(("answer", "message"), [
    (None, "got NoneType (on_private_key_password gave no password)"), (1234, "got int")])
def test_a_callback_that_gives_no_password_is_a_configuration_error(
        encrypted_pki: DevPKI, answer: object, message: str) -> None:
    """None made OpenSSL ask on the terminal itself ("Enter PEM pass phrase:"),
    blocking the event loop; an int raised a bare TypeError."""
    cfg = TLSConfig(certfile=encrypted_pki.server_cert, keyfile=encrypted_pki.server_key,
                    cafile=encrypted_pki.ca_cert,
                    on_private_key_password=lambda: answer)  # type: ignore[arg-type,return-value]
    with pytest.raises(ConfigurationError) as info:
        cfg.server_context_sync()
    assert str(info.value) == f"the private key's password must be a str or bytes, {message}"
    with pytest.raises(ConfigurationError):
        asyncio.run(cfg.server_context())


def test_encrypted_key_without_password(encrypted_pki: DevPKI) -> None:
    cfg = TLSConfig(certfile=encrypted_pki.server_cert, keyfile=encrypted_pki.server_key,
                    cafile=encrypted_pki.ca_cert)
    with pytest.raises(ConfigurationError, match="is encrypted: set key_password or"):
        cfg.server_context_sync()


def test_async_password_callback(encrypted_pki: DevPKI) -> None:
    calls: list[int] = []

    async def ask() -> str:
        calls.append(1)
        await asyncio.sleep(0)
        return PASSWORD

    cfg = TLSConfig(certfile=encrypted_pki.server_cert, keyfile=encrypted_pki.server_key,
                    cafile=encrypted_pki.ca_cert, on_private_key_password=ask)
    ctx = asyncio.run(cfg.server_context())
    assert isinstance(ctx, ssl.SSLContext)
    assert calls == [1]
    with pytest.raises(ConfigurationError, match="on_private_key_password is async"):
        cfg.server_context_sync()


def test_async_builder_accepts_sync_callback(encrypted_pki: DevPKI) -> None:
    ask = Counter(PASSWORD.encode())
    cfg = TLSConfig(certfile=encrypted_pki.client_cert, keyfile=encrypted_pki.client_key,
                    cafile=encrypted_pki.ca_cert, on_private_key_password=ask)
    asyncio.run(cfg.client_context())
    assert ask.calls == 1


def test_key_in_certfile(tmp_path: Path, ca: CertificateAuthority) -> None:
    cert_path, key_path = ca.issue("localhost", sans=("localhost",), key_type="ecdsa").write(
        tmp_path, "both", password=PASSWORD)
    combined = tmp_path / "combined.pem"
    combined.write_bytes(cert_path.read_bytes() + key_path.read_bytes())
    ask = Counter(PASSWORD)
    TLSConfig(certfile=combined, peer_certificate="none",
              on_private_key_password=ask).server_context_sync()
    assert ask.calls == 1


def test_certfile_without_its_key_says_so(rsa_pki: DevPKI) -> None:
    """Was "cannot load certificate X / key X: [SSL] PEM lib (_ssl.c:3926)"."""
    with pytest.raises(ConfigurationError) as caught:
        TLSConfig(certfile=rsa_pki.client_cert, cafile=rsa_pki.ca_cert).client_context_sync()
    assert str(caught.value) == (
        f"certificate file {rsa_pki.client_cert} holds no private key: set keyfile (its key "
        "is in another file)")


def test_files_swapped_or_mistaken_say_so(rsa_pki: DevPKI) -> None:
    with pytest.raises(ConfigurationError) as caught:
        TLSConfig(certfile=rsa_pki.client_cert, keyfile=rsa_pki.client_cert,
                  cafile=rsa_pki.ca_cert).client_context_sync()
    assert str(caught.value) == f"key file {rsa_pki.client_cert} holds no PEM private key"
    with pytest.raises(ConfigurationError) as caught:
        TLSConfig(certfile=rsa_pki.client_key, keyfile=rsa_pki.client_cert,
                  cafile=rsa_pki.ca_cert).client_context_sync()
    assert str(caught.value) == f"certificate file {rsa_pki.client_key} holds no PEM certificate"


def test_server_needs_certificate() -> None:
    with pytest.raises(ConfigurationError, match="a TLS server must have a certificate"):
        TLSConfig(peer_certificate="none").server_context_sync()


def test_missing_files_are_named(tmp_path: Path, rsa_pki: DevPKI) -> None:
    missing = tmp_path / "nope.pem"
    with pytest.raises(ConfigurationError, match=re.escape(str(missing))):
        TLSConfig(certfile=missing, keyfile=rsa_pki.server_key,
                  peer_certificate="none").server_context_sync()
    with pytest.raises(ConfigurationError, match=re.escape(str(missing))):
        TLSConfig(certfile=rsa_pki.server_cert, keyfile=missing,
                  peer_certificate="none").server_context_sync()
    with pytest.raises(ConfigurationError, match=re.escape(f"cafile not found: {missing}")):
        TLSConfig(cafile=missing).client_context_sync()
    with pytest.raises(ConfigurationError, match=re.escape(f"CRL file not found: {missing}")):
        TLSConfig(cafile=rsa_pki.ca_cert, crlfiles=(missing,)).client_context_sync()


def test_key_mismatch(rsa_pki: DevPKI) -> None:
    cfg = TLSConfig(certfile=rsa_pki.server_cert, keyfile=rsa_pki.client_key,
                    peer_certificate="none")
    with pytest.raises(ConfigurationError, match="does not match certificate"):
        cfg.server_context_sync()


def test_an_encrypted_key_that_does_not_fit_is_no_wrong_password(
        encrypted_pki: DevPKI, tmp_path: Path) -> None:
    """With an encrypted key, every failure to load read "wrong password" (OpenSSL says
    "PEM lib" for a wrong password and for a file cut short alike): a key of another
    certificate, or a file half copied (as a certificate rotation can meet), cannot
    be fixed by a password."""
    def load(cert: Path, key: Path) -> str:
        with pytest.raises(ConfigurationError) as caught:
            TLSConfig(certfile=cert, keyfile=key, peer_certificate="none",
                      key_password=PASSWORD).server_context_sync()
        return str(caught.value)

    server_cert, server_key = encrypted_pki.server_cert, encrypted_pki.server_key
    assert load(encrypted_pki.client_cert, server_key) == (
        f"private key {server_key} does not match certificate {encrypted_pki.client_cert}")
    half_cert = tmp_path / "half.pem"
    pem = server_cert.read_bytes()
    half_cert.write_bytes(pem[:len(pem) // 2])
    assert load(half_cert, server_key) == (
        f"certificate file {half_cert} holds an incomplete or malformed PEM certificate (a "
        "copy still in progress?)")
    # A chain cut in its second certificate: cryptography skips a block with no END
    # line, so the leaf alone parsed and the failure read "wrong password".
    half_chain = tmp_path / "half-chain.pem"
    ca_pem = encrypted_pki.ca_cert.read_bytes()
    half_chain.write_bytes(server_cert.read_bytes() + ca_pem[:len(ca_pem) // 2])
    assert load(half_chain, server_key) == (
        f"certificate file {half_chain} holds an incomplete or malformed PEM certificate (a "
        "copy still in progress?)")
    half_key = tmp_path / "half.key"
    pem = server_key.read_bytes()
    half_key.write_bytes(pem[:len(pem) // 2])
    assert load(server_cert, half_key) == (
        f"key file {half_key} holds an incomplete PEM private key (no END line: a copy "
        "still in progress?)")


def test_weak_own_key_refused(tmp_path: Path, ca: CertificateAuthority) -> None:
    cert_path, key_path = ca.issue("localhost", key_type="rsa", rsa_bits=1024).write(
        tmp_path, "weak")
    with pytest.raises(ConfigurationError, match="has an RSA key of 1024 bits, too small"):
        TLSConfig(certfile=cert_path, keyfile=key_path,
                  peer_certificate="none").server_context_sync()


def test_server_verifying_clients_needs_ca(rsa_pki: DevPKI) -> None:
    with pytest.raises(ConfigurationError, match="needs cafile or capath"):
        TLSConfig(certfile=rsa_pki.server_cert, keyfile=rsa_pki.server_key).server_context_sync()


def test_server_context_settings(rsa_pki: DevPKI) -> None:
    server, client = dev_pki_configs(rsa_pki)
    s_ctx = server.server_context_sync()
    assert s_ctx.verify_mode == ssl.CERT_REQUIRED
    assert s_ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert s_ctx.maximum_version == ssl.TLSVersion.TLSv1_3
    assert s_ctx.sni_callback is not None
    assert s_ctx.options & ssl.OP_NO_COMPRESSION
    assert s_ctx.options & ssl.OP_CIPHER_SERVER_PREFERENCE
    tls12 = {c["name"] for c in s_ctx.get_ciphers() if c["protocol"] == "TLSv1.2"}
    assert tls12 == {"ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
                     "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256"}
    c_ctx = client.client_context_sync()
    assert c_ctx.verify_mode == ssl.CERT_REQUIRED and c_ctx.check_hostname
    optional, _ = dev_pki_configs(rsa_pki, peer_certificate="optional")
    assert optional.server_context_sync().verify_mode == ssl.CERT_OPTIONAL


def test_verify_peer_off_warns(rsa_pki: DevPKI, ca_file: Path) -> None:
    server, _ = dev_pki_configs(rsa_pki, peer_certificate="none")
    client = TLSConfig(cafile=ca_file, verify_peer=False)
    with pytest.warns(SecurityWarning, match="verification is OFF"):
        ctx = client.client_context_sync()
    assert ctx.verify_mode == ssl.CERT_NONE and not ctx.check_hostname
    result = handshake(ctx, server.server_context_sync())
    assert result.ok, result.errors  # CA unknown, yet accepted: that is what OFF means


def test_invalid_settings() -> None:
    with pytest.raises(ConfigurationError, match="unknown TLS profile 'nope'"):
        TLSConfig(profile="nope")
    with pytest.raises(ConfigurationError, match="peer_certificate must be"):
        TLSConfig(peer_certificate="maybe")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="unknown TLS cipher suite"):
        TLSConfig(ciphers=("TLS_NOPE",))
    with pytest.raises(ConfigurationError, match="permits no cipher suite beyond its own"):
        TLSConfig(profile="bcp195-rfc9325-modified", ciphers=("TLS_RSA_WITH_AES_128_CBC_SHA",))
    with pytest.raises(ConfigurationError, match="ALPN"):
        TLSConfig(alpn=("",))


def test_keylog_file(rsa_pki: DevPKI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSLKEYLOGFILE", raising=False)
    server, client = dev_pki_configs(rsa_pki)
    assert client.client_context_sync().keylog_filename is None
    log = tmp_path / "keys.log"
    keyed = TLSConfig(cafile=rsa_pki.ca_cert, certfile=rsa_pki.client_cert,
                      keyfile=rsa_pki.client_key, keylog_file=log)
    assert handshake(keyed.client_context_sync(), server.server_context_sync()).ok
    assert b"CLIENT_HANDSHAKE_TRAFFIC_SECRET" in log.read_bytes()
    env_log = tmp_path / "env.log"
    monkeypatch.setenv("SSLKEYLOGFILE", str(env_log))
    assert client.client_context_sync().keylog_filename == str(env_log)


def test_negotiated_suite_outside_profile_refused(rsa_pki: DevPKI) -> None:
    """A TLS 1.2 suite the profile does not list (forced on the raw context) is caught."""
    server, client = dev_pki_configs(rsa_pki)
    s_ctx = server.server_context_sync()
    c_ctx = client.client_context_sync()
    for ctx in (s_ctx, c_ctx):
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers("ECDHE-RSA-CHACHA20-POLY1305")
    result = handshake(c_ctx, s_ctx)
    assert result.ok, result.errors
    with pytest.raises(TLSError, match="TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, which "
                       "profile 'bcp195-rfc9325' does not allow"):
        client.check_established(result.client, side="client")


@pytest.mark.parametrize(("profile", "bits", "least"), [
    ("bcp195-rfc9325", 1024, 2048), ("bcp195", 1024, 2048)])
def test_small_rsa_server_key_refused(
    tmp_path: Path, ca: CertificateAuthority, profile: str, bits: int, least: int
) -> None:
    """RFC 9325 4.5 (BCP 195, PS3.15 B.12): "When using RSA, servers MUST authenticate
    using certificates with at least a 2048-bit modulus" (RFC 7525 4.3, B.9: SHOULD).
    Checked even with verification off, as B.11 and B.13 already are, and under the
    retired B.9, whose OpenSSL security level 0 checks no key size at all."""
    cert_path, key_path = ca.issue("localhost", sans=("localhost",), rsa_bits=bits).write(
        tmp_path, "weak")
    weak_server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    weak_server.set_ciphers("DEFAULT:AES128-SHA:@SECLEVEL=0")  # an old peer's own setting
    weak_server.load_cert_chain(cert_path, key_path)
    client = TLSConfig(verify_peer=False, profile=profile)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SecurityWarning)  # verification off; retired profiles
        ctx = client.client_context_sync()
    result = handshake(ctx, weak_server)
    assert result.ok, result.errors
    with pytest.raises(TLSError, match=rf"RSA key of {bits} bits.*requires at least {least}"):
        client.check_established(result.client, side="client")


@pytest.mark.parametrize("profile", ["bcp195-rfc9325", "bcp195-rfc9325-modified", "bcp195",
                                     "bcp195-non-downgrading", "bcp195-extended"])
def test_client_proposes_ecdhe_rsa_aes128_gcm_first(rsa_pki: DevPKI, profile: str) -> None:
    """RFC 9325 4.2.1 and RFC 7525 4.2.1: "Clients SHOULD include
    TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 as the first proposal to any server"; the server
    keeps the profile's strongest-first order (server preference)."""
    server, client = dev_pki_configs(rsa_pki, profile=profile)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SecurityWarning)  # the retired bcp195 profile warns
        c_ctx, s_ctx = client.client_context_sync(), server.server_context_sync()

    def tls12(ctx: ssl.SSLContext) -> list[str]:
        return [c["name"] for c in ctx.get_ciphers() if c["protocol"] != "TLSv1.3"]

    assert tls12(c_ctx)[0] == "ECDHE-RSA-AES128-GCM-SHA256"
    # B.9's client offers no DHE: at its security level 0 no group size is checked
    # (tests/security/test_dhe_client.py).
    offered = [n for n in tls12(s_ctx) if profile != "bcp195" or not n.startswith("DHE-")]
    assert sorted(tls12(c_ctx)) == sorted(offered)
    assert tls12(s_ctx)[0].endswith("AES256-GCM-SHA384")


def test_ciphers_with_tls13_allowed_warn_once(
        rsa_pki: DevPKI, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """ciphers cannot restrict TLS 1.3 (Python 3.11): said once per list and profile."""
    monkeypatch.setattr(config_module, "_TLS13_WARNED", set())
    suites = ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",)
    server, client = dev_pki_configs(rsa_pki, ciphers=suites)
    with caplog.at_level(logging.WARNING, logger="dicomnet.security"):
        server.server_context_sync()
        client.client_context_sync()
        server.server_context_sync()
    warned = [r.getMessage() for r in caplog.records if "TLS 1.2 suites only" in r.getMessage()]
    assert len(warned) == 1, warned
    assert "profile 'bcp195-rfc9325' allows TLS 1.3" in warned[0]
    assert "TLS_AES_256_GCM_SHA384" in warned[0]


def test_ciphers_on_a_tls12_only_profile_do_not_warn(
        rsa_pki: DevPKI, caplog: pytest.LogCaptureFixture) -> None:
    server, _ = dev_pki_configs(rsa_pki, profile="bcp195-extended",
                                ciphers=("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",))
    with caplog.at_level(logging.WARNING, logger="dicomnet.security"):
        server.server_context_sync()
    assert not [r for r in caplog.records if "TLS 1.2 suites only" in r.getMessage()]


def test_a_modern_context_is_built_without_touching_the_warning_filters(
        rsa_pki: DevPKI, monkeypatch: pytest.MonkeyPatch) -> None:
    """``warnings.catch_warnings`` swaps process-wide state, and a server rebuilds
    its context in a thread (certificate rotation) while its event loop runs:
    only the retired profiles, which need it, may use it."""
    entered: list[int] = []
    real = warnings.catch_warnings

    def spy() -> warnings.catch_warnings[None]:
        entered.append(1)
        return real()

    monkeypatch.setattr(warnings, "catch_warnings", spy)
    server, client = dev_pki_configs(rsa_pki)
    server.server_context_sync()
    client.client_context_sync()
    assert entered == []


def test_a_key_without_its_certificate_is_refused(tmp_path: Path) -> None:
    """TLSConfig(keyfile=...) without certfile: the key was ignored without a word,
    and a client meant to authenticate connected without a certificate."""
    with pytest.raises(ConfigurationError, match=r"keyfile .*client\.key given without certfile"):
        TLSConfig(keyfile=tmp_path / "client.key")


@pytest.mark.parametrize("days", [0, -1, 1.5, True])
def test_a_certificate_of_no_whole_day_is_refused(encrypted_pki: DevPKI, days: object) -> None:
    """issue_dev_certificate(days=-1) raised cryptography's bare ValueError (its
    validity ending before it began); nothing is written."""
    folder = encrypted_pki.ca_cert.parent
    with pytest.raises(ConfigurationError, match="days must be a whole number of days"):
        issue_dev_certificate(folder, "short", days=days, password=PASSWORD)  # type: ignore[arg-type]
    assert not (folder / "short.pem").exists()
