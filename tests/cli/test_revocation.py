"""dicomnet certs revoke, and --crl on both sides: a revoked client is refused by
`dicomnet serve --crl`, a revoked server by `dicomnet echo --crl` (RFC 5280 5;
OpenSSL's X509_V_FLAG_CRL_CHECK on the peer's certificate)."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path
from typing import Any

from cryptography import x509

from dicomnet.security.certificates import serial_text
from dicomnet.security.config import TLSConfig
from tests.security.test_weak_keys import needs_openssl

from .helpers import ServerThread, error_line, json_out, run_cli


def _serial(path: Path) -> str:
    return serial_text(x509.load_pem_x509_certificate(path.read_bytes()).serial_number)


def _revoked(crl: Path) -> set[str]:
    return {serial_text(entry.serial_number)
            for entry in x509.load_pem_x509_crl(crl.read_bytes())}


def test_revoke_adds_to_the_crl_and_keeps_what_it_held(tmp_path: Path) -> None:
    assert run_cli("certs", "init", tmp_path).exit_code == 0
    assert run_cli("certs", "issue", tmp_path, "peer.local").exit_code == 0
    first = run_cli("certs", "revoke", tmp_path, "client", "--json")
    assert first.exit_code == 0, first.output
    client = _serial(tmp_path / "client.pem")
    assert json_out(first)["added"] == [client]
    assert _revoked(tmp_path / "ca.crl") == {client}
    # A name with a dot is still a name in the folder; the earlier entry stays.
    second = run_cli("certs", "revoke", tmp_path, "peer.local", "--json")
    assert second.exit_code == 0, second.output
    peer = _serial(tmp_path / "peer.local.pem")
    assert (json_out(second)["added"], sorted(json_out(second)["revoked"])) == (
        [peer], sorted([client, peer]))
    assert _revoked(tmp_path / "ca.crl") == {client, peer}
    renewed = run_cli("certs", "revoke", tmp_path, str(tmp_path / "client.pem"))
    assert renewed.exit_code == 0, renewed.output
    assert "added now: none" in renewed.output
    assert _revoked(tmp_path / "ca.crl") == {client, peer}


def test_revoke_refuses_what_its_ca_did_not_issue(tmp_path: Path) -> None:
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    assert run_cli("certs", "init", ours).exit_code == 0
    assert run_cli("certs", "init", theirs).exit_code == 0
    foreign = run_cli("certs", "revoke", ours, str(theirs / "client.pem"))
    assert foreign.exit_code == 2
    assert "not by this folder's CA" in error_line(foreign)
    assert run_cli("certs", "revoke", ours, "ca").exit_code == 2
    assert not (ours / "ca.crl").exists()


@needs_openssl
def test_revoke_of_a_certificate_with_serial_zero_says_why_it_cannot(tmp_path: Path) -> None:
    """RFC 5280 5.1.2.6 lists revoked certificates by their serial number, which 4.1.2.2
    asks to be positive; cryptography refuses to write 0 in a CRL (and warns as it reads
    it). The folder's CA can still have issued one (openssl x509 -set_serial 0)."""
    assert run_cli("certs", "init", tmp_path).exit_code == 0
    subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(tmp_path / "z.key"),
                    "-subj", "/CN=zero", "-out", str(tmp_path / "z.csr")],
                   check=True, capture_output=True)
    subprocess.run(["openssl", "x509", "-req", "-in", str(tmp_path / "z.csr"), "-CA",
                    str(tmp_path / "ca.pem"), "-CAkey", str(tmp_path / "ca.key"),
                    "-set_serial", "0", "-days", "2", "-out", str(tmp_path / "zero.pem")],
                   check=True, capture_output=True)
    refused = run_cli("certs", "revoke", tmp_path, "zero")
    assert refused.exit_code == 2, refused.output
    assert error_line(refused) == (
        f"error: {tmp_path / 'zero.pem'} (CN=zero) has serial number 00, which a CRL cannot "
        "list (RFC 5280 4.1.2.2 asks a positive one); renew the certificate instead")
    assert not (tmp_path / "ca.crl").exists()
    # The client's certificate, named with it, is not revoked alone either.
    both = run_cli("certs", "revoke", tmp_path, "client", "zero")
    assert both.exit_code == 2 and not (tmp_path / "ca.crl").exists()
    key = run_cli("certs", "revoke", tmp_path, str(tmp_path / "z.key"))
    assert key.exit_code == 2
    assert error_line(key) == f"error: {tmp_path / 'z.key'} holds no PEM certificate"


def test_revoke_of_an_unknown_name_says_where_it_looked_and_what_is_there(
        tmp_path: Path) -> None:
    """It said only 'no certificate nobody'."""
    assert run_cli("certs", "init", tmp_path).exit_code == 0
    assert run_cli("certs", "issue", tmp_path, "peer.local").exit_code == 0
    missing = run_cli("certs", "revoke", tmp_path, "nobody")
    assert (missing.exit_code, error_line(missing)) == (
        2, f"error: no certificate nobody: no file {tmp_path / 'nobody.pem'} (NAME) nor "
        f"nobody (FILE); the names in {tmp_path}: client, peer.local, server")
    gone = tmp_path / "gone" / "client.pem"
    missing = run_cli("certs", "revoke", tmp_path, "client", str(gone))
    assert (missing.exit_code, error_line(missing)) == (
        2, f"error: no certificate {gone}: no such file; the names in {tmp_path}: client, "
        "peer.local, server")
    for name in ("client", "server", "peer.local"):
        (tmp_path / f"{name}.pem").unlink()
    missing = run_cli("certs", "revoke", tmp_path, "nobody")
    assert error_line(missing).endswith(
        f"(FILE); {tmp_path} holds no certificate but the CA's (certs issue makes one)")
    assert not (tmp_path / "ca.crl").exists()


def test_serve_with_crl_refuses_a_revoked_client_and_admits_the_others(
        tmp_path: Path, serve_process: Any) -> None:
    pki = tmp_path / "pki"
    assert run_cli("certs", "init", pki).exit_code == 0
    assert run_cli("certs", "issue", pki, "other", "--role", "client").exit_code == 0
    assert run_cli("certs", "revoke", pki, "client").exit_code == 0
    proc, started = serve_process("--cert", pki / "server.pem", "--key", pki / "server.key",
                                  "--ca", pki / "ca.pem", "--crl", pki / "ca.crl")
    assert started["tls"] is True  # --crl implies --tls, as the other TLS options

    def echo(name: str) -> Any:
        return run_cli("echo", "localhost", started["port"], "--ca", pki / "ca.pem",
                       "--cert", pki / f"{name}.pem", "--key", pki / f"{name}.key", "--json")

    refused = echo("client")
    assert refused.exit_code == 3, refused.output
    assert "revoked" in json_out(refused)["error"]
    admitted = echo("other")
    assert admitted.exit_code == 0, admitted.output
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    assert "the certificate of the client has been revoked" in err, err


def test_echo_with_crl_refuses_a_revoked_server(tmp_path: Path) -> None:
    assert run_cli("certs", "init", tmp_path).exit_code == 0
    server = ServerThread({"tls": TLSConfig(
        certfile=tmp_path / "server.pem", keyfile=tmp_path / "server.key",
        cafile=tmp_path / "ca.pem")}).start()
    try:
        flags: list[str | Path] = ["--ca", tmp_path / "ca.pem", "--cert",
                                   tmp_path / "client.pem", "--key", tmp_path / "client.key"]
        assert run_cli("echo", "localhost", server.port, *flags).exit_code == 0
        assert run_cli("certs", "revoke", tmp_path, "server").exit_code == 0
        assert run_cli("echo", "localhost", server.port, *flags).exit_code == 0  # no --crl
        refused = run_cli("echo", "localhost", server.port, *flags,
                          "--crl", tmp_path / "ca.crl")
    finally:
        server.stop()
    assert refused.exit_code == 3, refused.output
    assert "revoked" in error_line(refused), refused.output


def test_a_connection_cut_after_associating_is_not_blamed_on_a_missing_certificate(
        tmp_path: Path) -> None:
    """A TLS client without a certificate whose association the server cuts (no
    A-ABORT) once established: the error said "(the server may require a client
    certificate: give --cert and --key)", which cannot be, the server having
    accepted it. A server refusing a missing certificate fails the handshake
    (TLS 1.2) or closes before any PDU (TLS 1.3), each said by its own error."""
    from dicomnet.services.verification import VerificationSCP

    def cut(assoc: Any) -> None:
        assoc.stream.writer.transport.abort()

    assert run_cli("certs", "init", tmp_path).exit_code == 0
    server = ServerThread({"tls": TLSConfig(
        certfile=tmp_path / "server.pem", keyfile=tmp_path / "server.key",
        peer_certificate="none"), "providers": [VerificationSCP(on_c_echo=cut)]}).start()
    try:
        result = run_cli("echo", "localhost", server.port, "--ca", tmp_path / "ca.pem")
    finally:
        server.stop()
    assert result.exit_code == 3, result.output
    assert "client certificate" not in error_line(result), error_line(result)
