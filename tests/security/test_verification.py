"""Certificate checks that must fail, each with its own translated reason."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from dicomnet.errors import TLSError
from dicomnet.security.certificates import (
    CertificateAuthority,
    CertificateInfo,
    DevPKI,
    IssuedCert,
    self_signed,
)
from dicomnet.security.config import TLSConfig, dev_pki_configs
from dicomnet.security.errors_map import translate_ssl_error
from dicomnet.security.profiles import SecurityWarning
from tests.security.tlspair import HandshakeResult, handshake

NOW = dt.datetime.now(dt.UTC)


def _server_with(
    ca: CertificateAuthority,
    ca_file: Path,
    tmp_path: Path,
    *,
    sans: tuple[str, ...] = ("localhost",),
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
) -> TLSConfig:
    cert = ca.issue("localhost", sans=sans, key_type="ecdsa", not_before=not_before,
                    not_after=not_after)
    cert_path, key_path = cert.write(tmp_path, "server")
    # Out of its dates, our server would refuse to start: to see what a client says of
    # such a server, the start-up check is off.
    dated = not_before is not None or not_after is not None
    return TLSConfig(certfile=cert_path, keyfile=key_path, peer_certificate="none",
                     cafile=ca_file, check_own_certificate=not dated)


def _client_errors(server: TLSConfig, client: TLSConfig, hostname: str = "localhost"
                   ) -> tuple[TLSError, HandshakeResult]:
    result = handshake(client.client_context_sync(), server.server_context_sync(),
                       server_hostname=hostname)
    assert result.client_error is not None, "the client should have refused"
    return translate_ssl_error(result.client_error, side="client", peer="localhost:2762",
                               host=hostname), result


def test_expired_server_certificate(ca: CertificateAuthority, ca_file: Path,
                                    tmp_path: Path) -> None:
    server = _server_with(ca, ca_file, tmp_path, not_before=NOW - dt.timedelta(days=30),
                          not_after=NOW - dt.timedelta(days=1))
    with pytest.warns(SecurityWarning, match="expired on .*check_own_certificate=False"):
        err, result = _client_errors(server, TLSConfig(cafile=ca_file))
    assert err.reason == "the certificate of the server has expired"
    assert "localhost:2762" in str(err)
    # The server hears about it as an alert: our certificate was refused.
    assert result.server_error is not None
    s_err = translate_ssl_error(result.server_error, side="server", peer="client")
    assert s_err.reason.startswith("the client refused our certificate")


def test_not_yet_valid_server_certificate(ca: CertificateAuthority, ca_file: Path,
                                          tmp_path: Path) -> None:
    server = _server_with(ca, ca_file, tmp_path, not_before=NOW + dt.timedelta(days=2),
                          not_after=NOW + dt.timedelta(days=30))
    with pytest.warns(SecurityWarning, match="is not valid before .*check_own_certificate"):
        err, _ = _client_errors(server, TLSConfig(cafile=ca_file))
    assert err.reason == "the certificate of the server is not yet valid (check both clocks)"


def test_wrong_hostname(ca: CertificateAuthority, ca_file: Path, tmp_path: Path) -> None:
    server = _server_with(ca, ca_file, tmp_path, sans=("pacs.example",))
    err, _ = _client_errors(server, TLSConfig(cafile=ca_file))
    assert err.reason == (
        "host name mismatch: the certificate of the server is not valid for 'localhost' "
        "(hosts are named by its subjectAltName, RFC 9525 6.3; an old device's certificate "
        "naming it in its subject CN alone: hostname_from_common_name=True)"
    )


def test_wrong_ip_address(ca: CertificateAuthority, ca_file: Path, tmp_path: Path) -> None:
    server = _server_with(ca, ca_file, tmp_path, sans=("localhost", "10.0.0.1"))
    err, _ = _client_errors(server, TLSConfig(cafile=ca_file), hostname="127.0.0.1")
    assert err.reason == (
        "host name mismatch: the certificate of the server is not valid for IP address "
        "'127.0.0.1'"
    )


def test_hostname_check_can_be_turned_off(ca: CertificateAuthority, ca_file: Path,
                                          tmp_path: Path) -> None:
    server = _server_with(ca, ca_file, tmp_path, sans=("pacs.example",))
    with pytest.warns(SecurityWarning, match="host name verification is OFF"):
        client = TLSConfig(cafile=ca_file, check_hostname=False).client_context_sync()
    result = handshake(client, server.server_context_sync())
    assert result.ok, result.errors


def test_unknown_ca(rsa_pki: DevPKI, ca_file: Path) -> None:
    server, _ = dev_pki_configs(rsa_pki, peer_certificate="none")
    err, _ = _client_errors(server, TLSConfig(cafile=ca_file))
    # OpenSSL servers send their root along (auto chain): verify code 19 or 20.
    assert err.reason.startswith("the certificate of the server is signed by an unknown CA (")
    assert "cafile/capath" in err.reason


def test_self_signed_server(tmp_path: Path, ca_file: Path) -> None:
    cert_path, key_path = self_signed("localhost", key_type="ecdsa").write(tmp_path, "self")
    server = TLSConfig(certfile=cert_path, keyfile=key_path, peer_certificate="none")
    err, _ = _client_errors(server, TLSConfig(cafile=ca_file))
    assert err.reason.startswith("the certificate of the server is self-signed and not trusted")


def test_chain_ending_in_untrusted_root(ca: CertificateAuthority, tmp_path: Path,
                                        rsa_pki: DevPKI) -> None:
    # The server sends its intermediate; the root is unknown to the client.
    sub = ca.intermediate("dicomnet sub CA", key_type="ecdsa")
    cert_path, key_path = sub.issue("localhost", sans=("localhost",), key_type="ecdsa").write(
        tmp_path, "server")
    (tmp_path / "chain.pem").write_bytes(cert_path.read_bytes() + ca.cert_pem())
    server = TLSConfig(certfile=tmp_path / "chain.pem", keyfile=key_path, peer_certificate="none")
    err, _ = _client_errors(server, TLSConfig(cafile=rsa_pki.ca_cert))
    assert err.reason == (
        "the certificate of the server is signed by an unknown CA (its chain ends in a "
        "self-signed root that is not in our cafile/capath)"
    )


def test_intermediate_chain_accepted(ca: CertificateAuthority, ca_file: Path,
                                     tmp_path: Path) -> None:
    sub = ca.intermediate("dicomnet sub CA 2", key_type="ecdsa")
    cert_path, key_path = sub.issue("localhost", sans=("localhost",), key_type="ecdsa").write(
        tmp_path, "server")
    server = TLSConfig(certfile=cert_path, keyfile=key_path, peer_certificate="none")
    client = TLSConfig(cafile=ca_file)
    result = handshake(client.client_context_sync(), server.server_context_sync())
    assert result.ok, result.errors
    info = client.check_established(result.client, side="client")
    assert info.peer_certificates[0].issuer == "O=dicomnet,CN=dicomnet sub CA 2"


def test_client_without_certificate_refused(rsa_pki: DevPKI) -> None:
    server, _ = dev_pki_configs(rsa_pki)  # peer_certificate="required" by default
    client = TLSConfig(cafile=rsa_pki.ca_cert)
    result = handshake(client.client_context_sync(), server.server_context_sync())
    assert result.server_error is not None and result.client_error is not None
    s_err = translate_ssl_error(result.server_error, side="server", peer="10.0.0.9:50000")
    c_err = translate_ssl_error(result.client_error, side="client", peer="localhost:2762")
    assert s_err.reason == (
        "the client presented no certificate, but this server requires one "
        "(peer_certificate='required')"
    )
    assert c_err.reason == "the server requires a client certificate (set certfile/keyfile)"


def test_client_certificate_from_unknown_ca(rsa_pki: DevPKI, ec_pki: DevPKI) -> None:
    server, _ = dev_pki_configs(rsa_pki)
    client = TLSConfig(certfile=ec_pki.client_cert, keyfile=ec_pki.client_key,
                       cafile=rsa_pki.ca_cert)
    result = handshake(client.client_context_sync(), server.server_context_sync())
    assert result.server_error is not None and result.client_error is not None
    s_err = translate_ssl_error(result.server_error, side="server", peer="client")
    c_err = translate_ssl_error(result.client_error, side="client", peer="server")
    assert s_err.reason.startswith("the certificate of the client is signed by an unknown CA")
    assert c_err.reason == "the server refused our certificate: it does not trust our CA"


def test_revoked_client_certificate_refused_with_crl(
    ca: CertificateAuthority, ca_file: Path, tmp_path: Path, rsa_pki: DevPKI
) -> None:
    good = ca.issue("good client", server=False, key_type="ecdsa")
    bad = ca.issue("revoked client", server=False, key_type="ecdsa")
    crl = ca.write_crl(tmp_path / "ca.crl", revoked=(bad,))
    server = TLSConfig(certfile=rsa_pki.server_cert, keyfile=rsa_pki.server_key,
                       cafile=ca_file, crlfiles=(crl,))

    def client_for(name: str, issued: IssuedCert) -> TLSConfig:
        cert_path, key_path = issued.write(tmp_path, name)
        return TLSConfig(certfile=cert_path, keyfile=key_path, cafile=rsa_pki.ca_cert)

    ok = handshake(client_for("good", good).client_context_sync(), server.server_context_sync())
    assert ok.ok, ok.errors
    refused = handshake(client_for("bad", bad).client_context_sync(),
                        server.server_context_sync())
    assert refused.server_error is not None
    s_err = translate_ssl_error(refused.server_error, side="server", peer="client")
    assert s_err.reason == "the certificate of the client has been revoked"
    assert refused.client_error is not None
    c_err = translate_ssl_error(refused.client_error, side="client", peer="server")
    assert c_err.reason == "the server refused our certificate: it is revoked"


def test_revoked_certificate_accepted_without_crl(
    ca: CertificateAuthority, ca_file: Path, tmp_path: Path, rsa_pki: DevPKI
) -> None:
    bad = ca.issue("revoked client 2", server=False, key_type="ecdsa")
    cert_path, key_path = bad.write(tmp_path, "bad")
    server = TLSConfig(certfile=rsa_pki.server_cert, keyfile=rsa_pki.server_key, cafile=ca_file)
    client = TLSConfig(certfile=cert_path, keyfile=key_path, cafile=rsa_pki.ca_cert)
    assert handshake(client.client_context_sync(), server.server_context_sync()).ok


def test_verify_callback_refuses(rsa_pki: DevPKI) -> None:
    seen: list[tuple[CertificateInfo, int]] = []

    def refuse_clients(info: CertificateInfo, depth: int) -> bool:
        seen.append((info, depth))
        return info.common_name == "someone else"

    server, client = dev_pki_configs(rsa_pki)
    server = TLSConfig(certfile=server.certfile, keyfile=server.keyfile, cafile=server.cafile,
                       verify_callback=refuse_clients)
    result = handshake(client.client_context_sync(), server.server_context_sync())
    assert result.ok, result.errors
    with pytest.raises(TLSError) as info:
        server.check_established(result.server, side="server", peer="10.1.1.1:4000")
    assert info.value.reason == (
        "verify_callback refused the peer's certificate (O=dicomnet,CN=dicomnet client)"
    )
    assert "10.1.1.1:4000" in str(info.value)
    assert [(i.common_name, d) for i, d in seen] == [("dicomnet client", 0)]


def test_verify_callback_accepts(rsa_pki: DevPKI) -> None:
    calls: list[str] = []

    def accept(info: CertificateInfo, depth: int) -> bool:
        calls.append(info.subject)
        return True

    server, client = dev_pki_configs(rsa_pki, verify_callback=accept)
    result = handshake(client.client_context_sync(), server.server_context_sync())
    assert result.ok, result.errors
    client.check_established(result.client, side="client")
    assert calls == ["O=dicomnet,CN=localhost"]


def test_modified_profile_key_size_rule(rsa_pki: DevPKI) -> None:
    """PS3.15 B.13: EC keys under 256 bits and RSA keys under 2048 bits are refused."""
    from dataclasses import replace

    from dicomnet.security.peer_checks import key_size_problem as _key_size_problem
    from dicomnet.security.profiles import get_profile

    modified = get_profile("bcp195-rfc9325-modified")
    default = get_profile("bcp195-rfc9325")
    rsa_cert = CertificateInfo.from_pem_file(rsa_pki.client_cert)
    assert _key_size_problem(rsa_cert, modified) is None
    ec224 = replace(rsa_cert, public_key_type="ECDSA", public_key_bits=224)
    assert _key_size_problem(ec224, modified) == (
        "has an EC key of 224 bits; profile 'bcp195-rfc9325-modified' (PS3.15 B.13) requires "
        "at least 256"
    )
    assert _key_size_problem(ec224, default) is None
    rsa1536 = replace(rsa_cert, public_key_bits=1536)
    problem = _key_size_problem(rsa1536, modified)
    assert problem is not None and "RSA key of 1536 bits" in problem
