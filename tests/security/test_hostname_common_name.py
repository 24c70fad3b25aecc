"""A server certificate that names its host only in its subject CN, with no
subjectAltName: RFC 6125 6.4.4 let a client fall back to the CN, RFC 9525 6.3
(which obsoletes it) does not. Python's ``ssl`` still falls back by default, so
a CN-only certificate passed the host-name check; it is now refused unless
``TLSConfig(hostname_from_common_name=True)`` says so, with a SecurityWarning.
Handshakes in memory (``tlspair``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dicomnet.security.certificates import CertificateAuthority
from dicomnet.security.config import TLSConfig
from dicomnet.security.errors_map import translate_ssl_error
from dicomnet.security.profiles import SecurityWarning
from tests.security.tlspair import handshake


def _cn_only_server(ca: CertificateAuthority, tmp_path: Path) -> TLSConfig:
    cert, key = ca.issue("localhost", sans=(), client=False).write(tmp_path, "cn-only")
    return TLSConfig(certfile=cert, keyfile=key, peer_certificate="none")


def test_a_server_named_only_in_its_common_name_is_refused(
        ca: CertificateAuthority, ca_file: Path, tmp_path: Path) -> None:
    server = _cn_only_server(ca, tmp_path).server_context_sync()
    result = handshake(TLSConfig(cafile=ca_file).client_context_sync(), server)
    assert result.client_error is not None
    reason = translate_ssl_error(result.client_error, side="client", peer="p",
                                 host="localhost").reason
    assert reason == (
        "host name mismatch: the certificate of the server is not valid for 'localhost' "
        "(hosts are named by its subjectAltName, RFC 9525 6.3; an old device's certificate "
        "naming it in its subject CN alone: hostname_from_common_name=True)")


def test_a_common_name_is_taken_when_asked_with_a_warning(
        ca: CertificateAuthority, ca_file: Path, tmp_path: Path) -> None:
    server = _cn_only_server(ca, tmp_path).server_context_sync()
    client = TLSConfig(cafile=ca_file, hostname_from_common_name=True)
    with pytest.warns(SecurityWarning, match=r"names the host only in its subject CN"):
        context = client.client_context_sync()
    result = handshake(context, server)
    assert (result.client_error, result.server_error) == (None, None)
    # A certificate with a subjectAltName is still checked against it alone.
    cert, key = ca.issue("localhost", sans=("other.example",), client=False).write(
        tmp_path, "san-other")
    other = TLSConfig(certfile=cert, keyfile=key, peer_certificate="none")
    result = handshake(context, other.server_context_sync())
    assert result.client_error is not None
