"""DHE suites as a server (PS3.15 B.9-B.11 list TLS_DHE_RSA_WITH_AES_*_GCM_*):
the ffdhe2048 group of RFC 7919 is loaded whenever a server's suites include one."""

from __future__ import annotations

import base64
import ssl
import warnings
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dh

from dicomnet.security.certificates import DevPKI
from dicomnet.security.config import dev_pki_configs
from dicomnet.security.dhgroups import FFDHE2048_PEM, offers_dhe
from dicomnet.security.errors_map import translate_ssl_error
from tests.security.tlspair import handshake

DHE_ONLY = ("TLS_DHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384")


def _rfc7919_ffdhe2048() -> int:
    """p = 2^2048 - 2^1984 + (floor(2^1918 * e) + 560316) * 2^64 - 1 (RFC 7919 A.1),
    with e summed as 1/k! in integers, 64 guard bits."""
    scale = 1918 + 64
    total, term, k = 0, 1 << scale, 0
    while term:
        total += term
        k += 1
        term //= k
    floor_e = total >> 64
    return 2**2048 - 2**1984 + (floor_e + 560316) * 2**64 - 1


def _der_integers(der: bytes) -> list[int]:
    """The INTEGERs of PKCS #3's DHParameter, SEQUENCE { prime, base } (DER)."""
    def length(at: int) -> tuple[int, int]:
        first = der[at]
        if first < 0x80:
            return first, at + 1
        count = first & 0x7F
        return int.from_bytes(der[at + 1:at + 1 + count], "big"), at + 1 + count

    assert der[0] == 0x30
    size, at = length(1)
    assert at + size == len(der)
    values = []
    while at < len(der):
        assert der[at] == 0x02
        size, at = length(at + 1)
        values.append(int.from_bytes(der[at:at + size], "big"))
        at += size
    return values


def test_embedded_group_is_rfc7919_ffdhe2048() -> None:
    body = "".join(line for line in FFDHE2048_PEM.splitlines() if not line.startswith("-----"))
    prime, generator = _der_integers(base64.b64decode(body))
    assert generator == 2
    assert prime == _rfc7919_ffdhe2048()
    assert prime.bit_length() == 2048


def test_offers_dhe() -> None:
    assert offers_dhe(["ECDHE-RSA-AES128-GCM-SHA256", "DHE-RSA-AES128-GCM-SHA256"])
    assert not offers_dhe(["ECDHE-RSA-AES128-GCM-SHA256", "no-such-suite"])


def _dhe_only_client(pki: DevPKI) -> ssl.SSLContext:
    """An older peer that offers only DHE suites over TLS 1.2, as B.9-B.11 allow."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers("DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384")
    ctx.load_verify_locations(str(pki.ca_cert))
    ctx.load_cert_chain(str(pki.client_cert), str(pki.client_key))
    return ctx


@pytest.mark.parametrize("profile", ["bcp195-non-downgrading", "bcp195-extended"])
def test_server_negotiates_dhe_with_a_dhe_only_client(rsa_pki: DevPKI, profile: str) -> None:
    server, _ = dev_pki_configs(rsa_pki, profile=profile)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s_ctx = server.server_context_sync()
    result = handshake(_dhe_only_client(rsa_pki), s_ctx, server_hostname="localhost")
    assert result.ok, result.errors
    info = server.check_established(result.server, side="server")
    assert info.protocol == "TLSv1.2"
    assert info.cipher_suite in DHE_ONLY
    assert info.key_exchange == "DHE"


def test_dicomnet_client_restricted_to_dhe_meets_dicomnet_server(rsa_pki: DevPKI) -> None:
    server, client = dev_pki_configs(rsa_pki, profile="bcp195-extended", ciphers=DHE_ONLY)
    result = handshake(client.client_context_sync(), server.server_context_sync())
    assert result.ok, result.errors
    info = client.check_established(result.client, side="client")
    assert info.cipher_suite == "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256"
    assert info.key_exchange == "DHE"


def test_default_profile_loads_no_group(rsa_pki: DevPKI) -> None:
    """B.12 lists ECDHE suites only (RFC 9325 4.2): a DHE-only peer still meets no suite."""
    server, _ = dev_pki_configs(rsa_pki)
    result = handshake(_dhe_only_client(rsa_pki), server.server_context_sync(),
                       server_hostname="localhost")
    assert result.server_error is not None
    assert "NO_SHARED_CIPHER" in str(result.server_error)


def test_a_server_dhe_group_too_small_is_named(rsa_pki: DevPKI, tmp_path: Path) -> None:
    """A peer server offering a 1024-bit DHE group (a pynetdicom or other Python/OpenSSL
    acceptor with load_dh_params): our client at OpenSSL's default security level
    refuses it (RFC 9325 4.1, PS3.15 B.10-B.13: 2048 bits at least), and says so. It
    said "TLS error: DH_KEY_TOO_SMALL"."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # cryptography deprecates finite-field DH
        group = dh.generate_parameters(2, 1024).parameter_bytes(
            serialization.Encoding.PEM, serialization.ParameterFormat.PKCS3)
    (tmp_path / "dh1024.pem").write_bytes(group)
    server, client = dev_pki_configs(rsa_pki, profile="bcp195-extended", ciphers=DHE_ONLY)
    weak = server.server_context_sync()
    weak.set_ciphers("DHE-RSA-AES256-GCM-SHA384:@SECLEVEL=0")
    weak.load_dh_params(str(tmp_path / "dh1024.pem"))
    result = handshake(client.client_context_sync(), weak)
    assert result.client_error is not None
    error = translate_ssl_error(result.client_error, side="client", peer="pacs:2762",
                                profile="bcp195-extended")
    assert error.reason == (
        "the server's Diffie-Hellman group (DHE) is smaller than profile 'bcp195-extended' "
        "allows (2048 bits at least, RFC 9325 4.1)")
