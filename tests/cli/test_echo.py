"""dicomnet echo against library servers: plain, mutual TLS, and each way it fails."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from dicomnet.security.certificates import DevPKI
from dicomnet.security.config import TLSConfig
from dicomnet.services.verification import VerificationSCP
from tests.aio.helpers import run
from tests.aio.rawscp import RawPeer, Request, raw_scp

from .helpers import ServerThread, client_tls_args, error_line, json_out, run_cli, signalled

StartServer = Callable[..., ServerThread]


def tls_server(start_server: StartServer, pki: DevPKI, **kwargs: object) -> ServerThread:
    tls = TLSConfig(certfile=pki.server_cert, keyfile=pki.server_key, cafile=pki.ca_cert,
                    key_password=pki.password)
    return start_server(tls=tls, **kwargs)


def test_plain_echo_json(start_server: StartServer) -> None:
    server = start_server()
    result = run_cli("echo", "127.0.0.1", server.port, "--json", "--called-aet", "SCP")
    assert result.exit_code == 0, result.output
    doc = json_out(result)
    assert doc["status"] == 0
    assert doc["status_text"] == "Success"
    assert doc["tls"] is None
    assert doc["peer"] == f"127.0.0.1:{server.port}"
    assert doc["called_aet"] == "SCP"
    assert doc["rtt_ms"] >= 0


def test_plain_echo_human_says_not_encrypted(start_server: StartServer) -> None:
    server = start_server()
    result = run_cli("echo", "127.0.0.1", server.port, "--count", "2")
    assert result.exit_code == 0, result.output
    assert "C-ECHO 2/2" in result.stdout
    assert "Success (0x0000)" in result.stdout
    assert "not encrypted" in result.stdout


def test_mutual_tls_echo_json(start_server: StartServer, pki: DevPKI) -> None:
    server = tls_server(start_server, pki)
    result = run_cli("echo", "127.0.0.1", server.port, "--json", *client_tls_args(pki))
    assert result.exit_code == 0, result.output
    doc = json_out(result)
    assert doc["status"] == 0
    tls = doc["tls"]
    assert tls["protocol"] in ("TLSv1.2", "TLSv1.3")
    assert tls["cipher_suite"]
    assert tls["encryption"]
    assert tls["integrity"]
    assert tls["alpn"] == "dicom"
    assert "CN=localhost" in tls["peer_certificates"][0]["subject"]


def test_mutual_tls_echo_human_describes_the_link(start_server: StartServer, pki: DevPKI) -> None:
    server = tls_server(start_server, pki)
    result = run_cli("echo", "localhost", server.port, *client_tls_args(pki))
    assert result.exit_code == 0, result.output
    for label in ("protocol", "cipher suite", "key exchange", "authentication", "encryption",
                  "integrity", "ALPN", "SHA-256", "CN=localhost", "expires"):
        assert label in result.stdout, label


def test_tls_1_2_only_suite(start_server: StartServer, pki: DevPKI) -> None:
    server = tls_server(start_server, pki)
    result = run_cli("echo", "127.0.0.1", server.port, "--json", "--profile", "bcp195",
                     "--ciphers", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
                     *client_tls_args(pki))
    assert result.exit_code == 0, result.output
    tls = json_out(result)["tls"]
    # The client offers TLS 1.2 suites only in 1.2: a 1.3 link is still allowed.
    assert tls["protocol"] in ("TLSv1.2", "TLSv1.3")


def test_plain_client_on_tls_server_exits_3_mentioning_tls(
    start_server: StartServer, pki: DevPKI
) -> None:
    server = tls_server(start_server, pki)
    result = run_cli("echo", "127.0.0.1", server.port)
    assert result.exit_code == 3
    # The library's "(use TLS, port 2762)" in the flag the CLI's user knows.
    assert error_line(result).endswith("the peer may expect TLS (try --tls / port 2762)")
    assert "Traceback" not in result.output


def test_tls_client_on_plain_server_says_nothing_came_back(
    start_server: StartServer, pki: DevPKI
) -> None:
    """A plain server closes on our ClientHello without a byte: the port has no TLS;
    it said 'we sent no certificate: the server most likely requires one'."""
    server = start_server()
    with_cert: list[str | Path] = ["--cert", pki.client_cert, "--key", pki.client_key]
    for certificate in ([], with_cert):
        result = run_cli("echo", "127.0.0.1", server.port, "--tls", "--ca", pki.ca_cert,
                         *certificate)
        assert result.exit_code == 3
        assert error_line(result) == (
            f"error: TLS handshake with 127.0.0.1:{server.port} failed: the server closed the "
            "connection without answering our ClientHello (no TLS record came back): it most "
            "likely does not speak TLS here (a plain DICOM port? try without --tls)")


def test_tls_client_answered_with_a_dicom_pdu_says_it_is_not_tls(pki: DevPKI) -> None:
    """A plain DICOM server that answers our ClientHello (read as a PDU of unknown type)
    with an A-ABORT, as pynetdicom does."""

    async def main() -> tuple[int, str]:
        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read(6)
            # A-ABORT (PS3.8 9.3.8): type 07, reserved, length 4, reserved x2,
            # source 2 (service provider), reason 2 (unrecognized PDU).
            writer.write(bytes.fromhex("07 00 00000004 00 00 02 02"))
            await writer.drain()
            await reader.read()  # until the client closes
            writer.close()

        listener = await asyncio.start_server(answer, "127.0.0.1", 0)
        port = listener.sockets[0].getsockname()[1]
        async with listener:
            result = await asyncio.to_thread(
                run_cli, "echo", "127.0.0.1", port, "--tls", "--ca", pki.ca_cert)
        return result.exit_code, error_line(result)

    exit_code, line = run(main())
    assert exit_code == 3
    assert line.endswith(
        "failed: the server answered our ClientHello with bytes that are not a TLS record: it "
        "does not speak TLS here (a plain DICOM port? try without --tls)")


def test_wrong_ca_exits_3_with_verification_reason(
    start_server: StartServer, pki: DevPKI, other_pki: DevPKI
) -> None:
    server = tls_server(start_server, pki)
    result = run_cli("echo", "127.0.0.1", server.port, "--tls", "--ca", other_pki.ca_cert,
                     "--cert", pki.client_cert, "--key", pki.client_key)
    assert result.exit_code == 3
    assert "TLS handshake" in error_line(result)
    assert "unknown CA" in error_line(result)


def test_wrong_host_name_exits_3(start_server: StartServer, pki: DevPKI) -> None:
    server = tls_server(start_server, pki)
    result = run_cli("echo", "127.0.0.1", server.port, "--server-name", "pacs.example.org",
                     *client_tls_args(pki))
    assert result.exit_code == 3
    assert "host name mismatch" in error_line(result)


def test_missing_client_certificate_hints_at_cert(start_server: StartServer, pki: DevPKI) -> None:
    server = tls_server(start_server, pki)
    result = run_cli("echo", "127.0.0.1", server.port, "--tls", "--ca", pki.ca_cert)
    assert result.exit_code == 3
    # The library says "(set certfile/keyfile)": the CLI names its own flags.
    assert error_line(result) == (
        f"error: TLS handshake with 127.0.0.1:{server.port} failed: the server requires a "
        "client certificate (give --cert and --key)")


def test_cert_without_its_key_says_to_give_key(pki: DevPKI) -> None:
    """Was "cannot load certificate pki/client.pem / key pki/client.pem: [SSL] PEM lib"."""
    result = run_cli("echo", "127.0.0.1", "104", "--tls", "--ca", pki.ca_cert,
                     "--cert", pki.client_cert)
    assert result.exit_code == 2
    assert error_line(result) == (
        f"error: certificate file {pki.client_cert} holds no private key: give --key (its "
        "key is in another file)")


def test_no_verify_works_and_warns_loudly(start_server: StartServer, pki: DevPKI) -> None:
    server = tls_server(start_server, pki)
    result = run_cli("echo", "127.0.0.1", server.port, "--tls", "--no-verify",
                     "--cert", pki.client_cert, "--key", pki.client_key, "--json")
    assert result.exit_code == 0, result.output
    assert "WARNING" in result.stderr
    assert "verification is OFF" in result.stderr
    assert json_out(result)["status"] == 0


def test_failure_status_exits_1(start_server: StartServer) -> None:
    server = start_server(providers=[VerificationSCP(on_c_echo=lambda assoc: 0x0110)])
    result = run_cli("echo", "127.0.0.1", server.port, "--json")
    assert result.exit_code == 1
    doc = json_out(result)
    assert doc["status"] == 0x0110
    assert doc["status_category"] == "failure"


def test_connection_refused_exits_3() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = run_cli("echo", "127.0.0.1", port, "--timeout", "5")
    assert result.exit_code == 3
    assert error_line(result).startswith("error: cannot connect to 127.0.0.1:")


def test_sigterm_aborts_the_association_and_exits_143() -> None:
    """SIGTERM (timeout(1), systemd, CI) is handled as Ctrl-C: the association is
    aborted, exit 143, and --json still prints its document. Its default action
    killed the client at once (-15), the peer left waiting."""
    asked = asyncio.Event()

    async def answer(peer: RawPeer, request: Request) -> None:
        asked.set()  # no answer: the client waits for it

    async def main() -> tuple[int | None, bytes, bytes, str]:
        async with raw_scp(answer) as (port, peers):
            code, out, err = await signalled(asked, signal.SIGTERM, "echo", "127.0.0.1", port,
                                             "--json", "--count", "2")
            await asyncio.wait_for(peers[0].ended.wait(), 10)
            return code, out, err, peers[0].ending

    code, out, err, ending = run(main(), timeout=90)
    assert code == 143, err.decode()
    assert err.decode().splitlines()[-1] == "error: terminated (SIGTERM)"
    assert ending == "abort"
    doc = json.loads(out)
    assert (doc["status"], doc["rtts_ms"], doc["count"], doc["associate_ms"] is None) == (
        None, [], 2, False)
    assert (doc["interrupted"], doc["error"], doc["exit_code"]) == (
        True, "terminated (SIGTERM)", 143)


@pytest.mark.parametrize("args", [
    ["echo", "127.0.0.1", "70000"],
    ["echo", "127.0.0.1", "104", "--no-tls", "--ca", "{ca}"],
    ["echo", "127.0.0.1", "104", "--key", "{key}"],
    ["echo", "127.0.0.1", "104", "--ciphers", "TLS_RSA_WITH_NULL_SHA", "--tls"],
    ["echo", "127.0.0.1", "104", "--aet", "THIS-AE-TITLE-IS-TOO-LONG"],
])
def test_usage_errors_exit_2(args: list[str], pki: DevPKI) -> None:
    args = [a.format(ca=pki.ca_cert, key=pki.client_key) for a in args]
    result = run_cli(*args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output


class TestEncryptedKey:
    def test_password_from_env(self, start_server: StartServer, encrypted_pki: DevPKI) -> None:
        server = tls_server(start_server, encrypted_pki)
        result = run_cli("echo", "127.0.0.1", server.port, "--json",
                         *client_tls_args(encrypted_pki), "--key-password-env", "KEY_PW",
                         env={"KEY_PW": "s3cret"})
        assert result.exit_code == 0, result.output
        assert json_out(result)["tls"]["cipher_suite"]

    def test_password_from_file(self, start_server: StartServer, encrypted_pki: DevPKI,
                                tmp_path: Path) -> None:
        server = tls_server(start_server, encrypted_pki)
        pw = tmp_path / "pw.txt"
        pw.write_text("s3cret\n")
        result = run_cli("echo", "127.0.0.1", server.port, *client_tls_args(encrypted_pki),
                         "--key-password-file", pw)
        assert result.exit_code == 0, result.output

    def test_wrong_password_fails_clearly(self, encrypted_pki: DevPKI) -> None:
        # Fails while loading the key: no server needed, nothing is sent.
        result = run_cli("echo", "127.0.0.1", "104", *client_tls_args(encrypted_pki),
                         "--key-password-env", "KEY_PW", env={"KEY_PW": "wrong"})
        assert result.exit_code == 2
        assert "wrong password" in error_line(result)
        assert str(encrypted_pki.client_key) in error_line(result)

    def test_no_password_and_no_terminal_says_which_flags(self, encrypted_pki: DevPKI) -> None:
        result = run_cli("echo", "127.0.0.1", "104", *client_tls_args(encrypted_pki))
        assert result.exit_code == 2
        assert "--key-password-env" in result.output


def test_encrypted_key_prompts_on_a_terminal(
    start_server: StartServer, encrypted_pki: DevPKI, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dicomnet.cli.common

    monkeypatch.setattr(dicomnet.cli.common, "_stdin_is_tty", lambda: True)
    server = tls_server(start_server, encrypted_pki)
    result = run_cli("echo", "127.0.0.1", server.port, "--json",
                     *client_tls_args(encrypted_pki), input="s3cret\n")
    assert result.exit_code == 0, result.output
    assert "Password for" in result.stderr
    assert "s3cret" not in result.output  # hidden input is not echoed


def test_a_link_without_sni_says_so(start_server: StartServer, pki: DevPKI) -> None:
    """SNI is a field of the link like the others: by IP address none is sent (RFC
    6066 3), and the description says so rather than leaving the line out."""
    server = tls_server(start_server, pki)
    result = run_cli("echo", "127.0.0.1", server.port, *client_tls_args(pki))
    assert result.exit_code == 0, result.output
    assert re.search(r"^  SNI +none sent \(the server is named by its IP address\)$",
                     result.stdout, re.MULTILINE), result.stdout


def test_a_server_named_only_in_its_common_name(start_server: StartServer, pki: DevPKI,
                                                 tmp_path: Path) -> None:
    """RFC 9525 6.3: a certificate without subjectAltName does not name its host by
    its CN; --hostname-from-cn takes it, for an old device, with a warning."""
    from dicomnet.security.certificates import CertificateAuthority

    ca = CertificateAuthority.load(pki.ca_cert, pki.ca_key, password=pki.password)
    cert, key = ca.issue("localhost", sans=(), client=False).write(tmp_path, "cn-only")
    server = start_server(tls=TLSConfig(certfile=cert, keyfile=key, cafile=pki.ca_cert))
    refused = run_cli("echo", "localhost", server.port, *client_tls_args(pki))
    assert refused.exit_code == 3
    assert error_line(refused) == (
        f"error: TLS handshake with localhost:{server.port} failed: host name mismatch: the "
        "certificate of the server is not valid for 'localhost': it has no subjectAltName, "
        "only its subject CN 'localhost': hosts are named by the subjectAltName (RFC 9525 "
        "6.3; RFC 6125 6.4.4 let clients fall back to the CN); reissue the certificate with "
        "DNS:localhost, or, for an old device, take its CN: --hostname-from-cn")
    taken = run_cli("echo", "localhost", server.port, *client_tls_args(pki),
                    "--hostname-from-cn", "--json")
    assert taken.exit_code == 0, taken.output
    assert json_out(taken)["status"] == 0
    assert "WARNING: a server certificate that names the host only in its subject CN" in (
        taken.stderr)
