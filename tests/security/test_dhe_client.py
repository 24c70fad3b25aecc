"""A client at OpenSSL security level 0 checks no Diffie-Hellman group size.

The retired ``bcp195`` profile (PS3.15 B.9) reaches TLS 1.0, which OpenSSL 3 allows
only at security level 0; that level also takes a server's 1024-bit DHE group,
which RFC 7525 4.3 and RFC 9325 4.1 forbid (2048 bits at least), and Python's
``ssl`` (3.11) does not say which group a handshake used. So such a client offers
no DHE suite: ECDHE (and TLS 1.3, whose groups are all large enough) remain.

The servers are ``openssl s_server`` with a group generated here. Its size is
proven by a client at security level 2 (``bcp195-non-downgrading``), which
refuses it. (``openssl dhparam -dsaparam`` writes X9.42 parameters, which
``s_server -dhparam`` ignores without a word, using its own 2048-bit group.)
"""

from __future__ import annotations

import socket
import ssl
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dh

from dicomnet.errors import ConfigurationError
from dicomnet.security.certificates import DevPKI
from dicomnet.security.config import TLSConfig
from dicomnet.security.dhgroups import FFDHE2048_PEM
from dicomnet.security.profiles import SecurityWarning
from tests.aio.helpers import LOOPBACK, background_process, free_port

DHE = "DHE-RSA-AES256-GCM-SHA384:DHE-RSA-AES128-GCM-SHA256"
ECDHE = "ECDHE-RSA-AES256-GCM-SHA384"


@pytest.fixture(scope="module")
def group_1024(tmp_path_factory: pytest.TempPathFactory) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # cryptography deprecates finite-field DH
        pem = dh.generate_parameters(2, 1024).parameter_bytes(
            serialization.Encoding.PEM, serialization.ParameterFormat.PKCS3)
    path = tmp_path_factory.mktemp("dh") / "dh1024.pem"
    path.write_bytes(pem)
    return path


@pytest.fixture(scope="module")
def group_2048(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dh") / "ffdhe2048.pem"
    path.write_text(FFDHE2048_PEM)
    return path


@contextmanager
def s_server(pki: DevPKI, group: Path, ciphers: str, tmp_path: Path) -> Iterator[int]:
    """``openssl s_server``, TLS 1.2, these suites in its own order; yields its port."""
    port = free_port()
    with background_process(
            "openssl", "s_server", "-accept", str(port), "-cert", pki.server_cert,
            "-key", pki.server_key, "-dhparam", group, "-tls1_2", "-serverpref",
            "-cipher", f"{ciphers}:@SECLEVEL=0", "-quiet",
            log_path=tmp_path / "s_server.log", port=port):
        yield port


def client(pki: DevPKI, profile: str, ciphers: tuple[str, ...] | None = None
           ) -> ssl.SSLContext:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SecurityWarning)
        return TLSConfig(cafile=pki.ca_cert, profile=profile,
                         ciphers=ciphers).client_context_sync()


def negotiate(context: ssl.SSLContext, port: int) -> str:
    """The suite negotiated, or the OpenSSL reason of the failure."""
    with socket.create_connection((LOOPBACK, port), timeout=10) as sock:
        try:
            with context.wrap_socket(sock, server_hostname="localhost") as tls:
                cipher = tls.cipher()
                assert cipher is not None
                return cipher[0]
        except ssl.SSLError as exc:
            return str(exc.reason)


def test_a_bcp195_client_meets_no_suite_with_a_1024_bit_dhe_server(
        rsa_pki: DevPKI, group_1024: Path, tmp_path: Path) -> None:
    """Before, it negotiated DHE-RSA-AES256-GCM-SHA384 over the 1024-bit group."""
    with s_server(rsa_pki, group_1024, DHE, tmp_path) as port:
        assert negotiate(client(rsa_pki, "bcp195-non-downgrading"), port) == "DH_KEY_TOO_SMALL"
        assert negotiate(client(rsa_pki, "bcp195"), port) == "SSLV3_ALERT_HANDSHAKE_FAILURE"


def test_a_bcp195_client_takes_ecdhe_from_a_server_preferring_dhe(
        rsa_pki: DevPKI, group_1024: Path, tmp_path: Path) -> None:
    """A server that would choose DHE first (its 1024-bit group) gets ECDHE instead."""
    with s_server(rsa_pki, group_1024, f"{DHE}:{ECDHE}", tmp_path) as port:
        assert negotiate(client(rsa_pki, "bcp195"), port) == ECDHE


def test_a_2048_bit_dhe_group_still_serves_the_profiles_that_check_it(
        rsa_pki: DevPKI, group_2048: Path, tmp_path: Path) -> None:
    """At security level 2 (B.10, B.11) OpenSSL checks the group: DHE is offered and
    taken. B.9's client goes without it, DHE-only servers included (it had no way
    to tell their 2048-bit groups from 1024-bit ones)."""
    with s_server(rsa_pki, group_2048, DHE, tmp_path) as port:
        assert negotiate(client(rsa_pki, "bcp195-non-downgrading"), port) == (
            "DHE-RSA-AES256-GCM-SHA384")
        assert negotiate(client(rsa_pki, "bcp195-extended"), port) == (
            "DHE-RSA-AES256-GCM-SHA384")
        assert negotiate(client(rsa_pki, "bcp195"), port) == "SSLV3_ALERT_HANDSHAKE_FAILURE"


def test_dhe_suites_chosen_for_a_bcp195_client_are_refused(rsa_pki: DevPKI) -> None:
    with pytest.raises(ConfigurationError) as caught:
        client(rsa_pki, "bcp195", ciphers=("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
                                           "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384"))
    assert str(caught.value) == (
        "profile 'bcp195' runs at OpenSSL security level 0 (to reach TLS 1.0), which checks "
        "no Diffie-Hellman group size: a client cannot offer TLS_DHE_RSA_WITH_AES_256_GCM_SHA384 "
        "(a server's group may be under the 2048 bits of RFC 9325 4.1); use "
        "bcp195-non-downgrading or ECDHE suites")
