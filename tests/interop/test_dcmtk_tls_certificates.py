"""Certificates over TLS with DCMTK 3.6.7 (echoscu, storescp) and dicomnet's CLI and
library: what each side says when a client certificate is missing, untrusted, expired
or not yet valid; chains through an intermediate CA (leaf then intermediate in the
certificate file: DCMTK sends the chain, and takes ours); CA files holding several
CAs; host-name verification of storescp's certificate by name and by address.

storescp's peer-certificate switches, against a dicomnet client that has no certificate
-----------------------------------------------------------------------------------------
=====================  ==========================================================
storescp               dicomnet client without --cert
=====================  ==========================================================
``-rc`` (default)      refused: "the server requires a client certificate"
                       (TLS 1.3: the server's alert comes after our handshake
                       ended, RFC 8446 4.4.2, and its reset fails our first
                       write; the alert is read all the same)
``-vc``                associates; storescp verifies a certificate only if sent
``-ic``                associates
=====================  ==========================================================
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from dicomnet.aio.client import associate
from dicomnet.errors import TLSError
from dicomnet.security.certificates import CertificateAuthority
from dicomnet.security.config import TLSConfig
from dicomnet.security.info import SecurityInfo
from tests.aio.helpers import (
    LOOPBACK,
    Pki,
    PkiFactory,
    background_process,
    free_port,
    run,
    run_process,
    wait_output,
)
from tests.interop.conftest import Dcmtk, dicomnet_serve_with
from tests.storage.helpers import make_dataset, write_part10_file

pytestmark = pytest.mark.interop


def storescp_cmd(dcmtk: Dcmtk, pki: Pki, port: int, out: Path, *flags: str) -> list[str | Path]:
    return [dcmtk.storescp, "-v", "-aet", "STORESCP", "+tls", pki.server_key, pki.server_cert,
            "+cf", pki.ca_file, *flags, "-od", out, str(port)]


def serve_cli(store: Path, cert_key: tuple[Path, Path], ca: Path,
              *options: str) -> contextlib.AbstractContextManager[tuple[int, list[str]]]:
    return dicomnet_serve_with(cert_key[0], cert_key[1], ca, store, *options)


def dcmtk_echoscu(dcmtk: Dcmtk, pki: Pki, port: int) -> list[str | Path]:
    return [dcmtk.echoscu, "-aec", "DICOMNET", "+tls", pki.client_key, pki.client_cert,
            "+cf", pki.ca_file, LOOPBACK, str(port)]


async def echo_security(port: int, tls: TLSConfig) -> tuple[int, SecurityInfo | None]:
    async with associate(LOOPBACK, port, calling_ae_title="DICOMNET", called_ae_title="STORESCP",
                         tls=tls) as assoc:
        return int(await assoc.echo()), assoc.security


async def echo(port: int, tls: TLSConfig) -> int:
    async with associate(LOOPBACK, port, calling_ae_title="DICOMNET", called_ae_title="STORESCP",
                         tls=tls) as assoc:
        return int(await assoc.echo())


async def three_refusals(port: int, tls: TLSConfig) -> list[TLSError]:
    """The TLSError of three echoes. storescp sends its alert and closes with our
    Finished unread: the reset fails our A-ASSOCIATE-RQ, mostly before any read,
    and the alert must still be found behind it, every time."""
    errors = []
    for _ in range(3):
        with pytest.raises(TLSError) as caught:
            await echo(port, tls)
        errors.append(caught.value)
    return errors


def test_dicomnet_without_certificate_is_told_storescp_requires_one(
    dcmtk: Dcmtk, pkis: PkiFactory, tmp_path: Path
) -> None:
    """storescp (TLS 1.3) refuses our client with no certificate after our handshake has
    ended, with an alert (RFC 8446 6.2 certificate_required) and a reset. Before, the
    reset failing our first write hid the alert (17 times in 20, in a raw ssl client
    too), and the close was guessed at: "it most likely requires one"."""
    pki = pkis("rsa")
    tls = pki.client_tls(certfile=None, keyfile=None)
    port = free_port()

    with background_process(*storescp_cmd(dcmtk, pki, port, tmp_path),
                            log_path=tmp_path / "storescp.log", port=port) as peer:
        errors = run(three_refusals(port, tls))
        out = wait_output(peer, "peer did not return a certificate")
    assert out.count("peer did not return a certificate") >= 1
    for error in errors:
        assert error.reason == "the server requires a client certificate (set certfile/keyfile)"
        assert not error.link_failed
        assert str(error) == f"TLS handshake with {LOOPBACK}:{port} failed: {error.reason}"


def test_dicomnet_with_an_untrusted_certificate_is_told_storescp_refused_it(
    dcmtk: Dcmtk, pkis: PkiFactory, tmp_path: Path
) -> None:
    """A client certificate from a CA storescp does not trust (TLS 1.3): refused after
    our handshake ended, with an alert (unknown_ca), found behind the reset."""
    pki = pkis("rsa")
    cert, key = pki.foreign("foreign client", server=False)
    tls = pki.client_tls(certfile=cert, keyfile=key)
    port = free_port()

    with background_process(*storescp_cmd(dcmtk, pki, port, tmp_path),
                            log_path=tmp_path / "storescp.log", port=port) as peer:
        errors = run(three_refusals(port, tls))
        wait_output(peer, "certificate verify failed")
    for error in errors:
        assert error.reason == "the server refused our certificate: it does not trust our CA"
        assert not error.link_failed


@pytest.mark.parametrize("flag", ["-vc", "-ic"])
def test_dicomnet_without_certificate_to_storescp_not_requiring_one(
    dcmtk: Dcmtk, pkis: PkiFactory, tmp_path: Path, flag: str
) -> None:
    """storescp --verify-peer-cert (a certificate is checked if sent) and
    --ignore-peer-cert: our client without a certificate associates."""
    pki = pkis("rsa")
    port = free_port()
    with background_process(*storescp_cmd(dcmtk, pki, port, tmp_path, flag),
                            log_path=tmp_path / "storescp.log", port=port) as peer:
        status = run(echo(port, pki.client_tls(certfile=None, keyfile=None)))
        out = wait_output(peer, "Received Echo Request")
    assert status == 0
    assert "Association Received" in out


def test_cli_store_without_certificate_to_storescp(
    dcmtk: Dcmtk, pkis: PkiFactory, tmp_path: Path
) -> None:
    """dicomnet store to storescp -rc without --cert: exit 3, one line naming the cause
    in the CLI's words, and --retries does not send again what would fail again."""
    pki = pkis("rsa")
    port = free_port()
    source = write_part10_file(tmp_path / "sc.dcm", make_dataset())
    with background_process(*storescp_cmd(dcmtk, pki, port, tmp_path),
                            log_path=tmp_path / "storescp.log", port=port) as peer:
        result = subprocess.run(
            [sys.executable, "-m", "dicomnet.cli.main", "store", LOOPBACK, str(port),
             str(source), "--called-aet", "STORESCP", "--tls", "--ca", str(pki.ca_file),
             "--retries", "2", "--retry-delay", "0", "--json"],
            capture_output=True, text=True, timeout=60, check=False,
        )
    assert result.returncode == 3, result.stderr
    report = json.loads(result.stdout)
    assert "certificate" in report["error"]
    assert "(give --cert and --key)" in report["error"]
    assert [r["error"] for r in report["results"]] == [f"not sent: {report['error']}"]
    lines = result.stderr.strip().splitlines()
    assert lines == [f"error: {report['error']}"], lines
    # One attempt: a refused certificate is not a failure that may pass.
    assert peer.output().count("peer did not return a certificate") == 1


# -- chains, bundles, validity ---------------------------------------------------------------


@dataclass(frozen=True)
class ChainPki:
    """A root CA (the only one either side trusts) and an intermediate CA under it that
    issued the server and client certificates; their files hold leaf then intermediate."""

    root: Path
    server: tuple[Path, Path]
    client: tuple[Path, Path]


@pytest.fixture(scope="module")
def chain_pki(tmp_path_factory: pytest.TempPathFactory) -> ChainPki:
    folder = tmp_path_factory.mktemp("chain-pki")
    root = CertificateAuthority.create("chain root CA", key_type="rsa")
    intermediate = root.intermediate("chain intermediate CA", key_type="rsa")
    server = intermediate.issue("localhost", sans=("localhost", LOOPBACK), server=True,
                                client=False)
    client = intermediate.issue("chain client", server=False, client=True)
    return ChainPki(root.write_cert(folder / "root.pem"), server.write(folder, "server"),
                    client.write(folder, "client"))


def test_client_chains_through_an_intermediate_ca_into_dicomnet_serve(
    dcmtk: Dcmtk, chain_pki: ChainPki, tmp_path: Path
) -> None:
    """echoscu sends its intermediate CA with its certificate (from its certificate
    file): dicomnet serve, trusting only the root, verifies the whole chain."""
    cert, key = chain_pki.client
    with serve_cli(tmp_path, chain_pki.server, chain_pki.root) as (port, stderr):
        rc, out = run(run_process(dcmtk.echoscu, "-aec", "DICOMNET", "+tls", key, cert,
                                  "+cf", chain_pki.root, LOOPBACK, str(port)))
    assert rc == 0, out
    [line] = [line for line in stderr[0].splitlines() if " association " in line]
    assert ": released, 1 message(s) (1 success)" in line
    assert ", client certificate chain client (SHA-256 " in line


def test_dicomnet_chains_through_an_intermediate_ca_into_storescp(
    dcmtk: Dcmtk, chain_pki: ChainPki, tmp_path: Path
) -> None:
    """Both chains the other way: storescp presents leaf + intermediate, our client
    presents leaf + intermediate; each side trusts only the root."""
    port = free_port()
    cert, key = chain_pki.server
    tls = TLSConfig(certfile=chain_pki.client[0], keyfile=chain_pki.client[1],
                    cafile=chain_pki.root)
    with background_process(dcmtk.storescp, "-v", "-aet", "STORESCP", "+tls", key, cert,
                            "+cf", chain_pki.root, "-od", tmp_path, str(port),
                            log_path=tmp_path / "storescp.log", port=port) as peer:
        status, security = run(echo_security(port, tls))
        wait_output(peer, "Received Echo Request")
    assert status == 0
    assert security is not None
    assert security.peer_certificate is not None
    assert security.peer_certificate.common_name == "localhost"
    assert security.peer_certificate.issuer == "O=dicomnet,CN=chain intermediate CA"


def test_ca_bundles_of_several_cas(dcmtk: Dcmtk, pkis: PkiFactory, tmp_path: Path) -> None:
    """A CA file holding several CAs (ours last), on both sides: echoscu +cf into dicomnet
    serve, dicomnet echo --ca into storescp."""
    pki = pkis("rsa")
    bundle = tmp_path / "bundle.pem"
    others = [CertificateAuthority.create("other CA 1", key_type="ecdsa").cert_pem(),
              CertificateAuthority.create("other CA 2", key_type="rsa").cert_pem()]
    bundle.write_bytes(b"".join(others) + pki.ca_file.read_bytes())
    with serve_cli(tmp_path / "in", (pki.server_cert, pki.server_key), bundle) as (port, _):
        rc, out = run(run_process(dcmtk.echoscu, "-aec", "DICOMNET", "+tls", pki.client_key,
                                  pki.client_cert, "+cf", bundle, LOOPBACK, str(port)))
    assert rc == 0, out
    port = free_port()
    with background_process(*storescp_cmd(dcmtk, pki, port, tmp_path, "+cf", str(bundle)),
                            log_path=tmp_path / "storescp.log", port=port):
        result = subprocess.run(
            [sys.executable, "-m", "dicomnet.cli.main", "echo", LOOPBACK, str(port), "--json",
             "--tls", "--cert", str(pki.client_cert), "--key", str(pki.client_key),
             "--ca", str(bundle)],
            capture_output=True, text=True, timeout=60, check=False,
        )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["tls"]["peer_certificates"][0]["subject"] == (
        pki.server_subject)


@pytest.mark.parametrize(
    ("valid", "server_says", "dcmtk_says"),
    [
        pytest.param((-30, -1), "the certificate of the client has expired",
                     "TLS error: sslv3 alert certificate expired", id="expired"),
        pytest.param((2, 30), "the certificate of the client is not yet valid (check both "
                     "clocks)", "TLS error: sslv3 alert bad certificate", id="not-yet-valid"),
    ],
)
def test_out_of_date_client_certificates_are_refused_by_dicomnet_serve(
    *, dcmtk: Dcmtk, pkis: PkiFactory, tmp_path: Path, valid: tuple[float, float],
    server_says: str, dcmtk_says: str,
) -> None:
    """echoscu (TLS 1.2: +pz, so that the refusal is inside its handshake and DCMTK
    prints our alert) with a certificate out of its validity: the server logs one line
    with the reason, sends the alert matching it (RFC 5246 7.2.2), and serves the next."""
    pki = pkis("rsa")
    cert, key = pki.issue(f"dated client {valid[0]}", server=False, valid_from_days=valid[0],
                          valid_to_days=valid[1])
    with serve_cli(tmp_path, (pki.server_cert, pki.server_key), pki.ca_file) as (port, stderr):
        rc, out = run(run_process(dcmtk.echoscu, "-aec", "DICOMNET", "+tls", key, cert,
                                  "+cf", pki.ca_file, "+pz", LOOPBACK, str(port)))
        rc_next, out_next = run(run_process(*dcmtk_echoscu(dcmtk, pki, port)))
    assert rc != 0
    assert dcmtk_says in out
    assert rc_next == 0, out_next
    refused = [line for line in stderr[0].splitlines() if "connection refused" in line]
    assert len(refused) == 1
    assert re.search(r"WARNING: connection refused: TLS handshake with 127\.0\.0\.1:\d+ "
                     rf"failed: {re.escape(server_says)}$", refused[0]), refused[0]
    assert "Traceback" not in stderr[0]


def echo_storescp(dcmtk: Dcmtk, pki: Pki, cert: Path, key: Path, tmp_path: Path, *,
                  host: str = LOOPBACK, extra: Sequence[str] = ()
                  ) -> tuple[subprocess.CompletedProcess[str], int]:
    """``dicomnet echo HOST`` with the PKI's client certificate, to a storescp serving
    ``cert``/``key`` over TLS: the finished process and storescp's port."""
    port = free_port()
    with background_process(dcmtk.storescp, "+tls", key, cert, "+cf", pki.ca_file, "-od",
                            tmp_path, str(port), log_path=tmp_path / "storescp.log",
                            port=port):
        result = subprocess.run(
            [sys.executable, "-m", "dicomnet.cli.main", "echo", host, str(port), "--tls",
             "--cert", str(pki.client_cert), "--key", str(pki.client_key), "--ca",
             str(pki.ca_file), *extra],
            capture_output=True, text=True, timeout=60, check=False,
        )
    return result, port


def test_storescp_with_an_expired_certificate_is_refused_by_dicomnet_echo(
    dcmtk: Dcmtk, pkis: PkiFactory, tmp_path: Path
) -> None:
    pki = pkis("rsa")
    cert, key = pki.issue("expired server", client=False, valid_from_days=-30,
                          valid_to_days=-1)
    result, port = echo_storescp(dcmtk, pki, cert, key, tmp_path)
    assert result.returncode == 3
    assert result.stderr.splitlines() == [
        f"error: TLS handshake with {LOOPBACK}:{port} failed: the certificate of the server "
        "has expired"]


@pytest.mark.parametrize(
    ("sans", "host", "server_name", "refusal"),
    [
        pytest.param(("localhost", LOOPBACK), "localhost", None, None, id="dev-pki-by-name"),
        pytest.param(("localhost", LOOPBACK), LOOPBACK, None, None, id="dev-pki-by-address"),
        pytest.param(("localhost",), LOOPBACK, None,
                     f"host name mismatch: the certificate of the server is not valid for IP "
                     f"address '{LOOPBACK}': it names DNS:localhost (subjectAltName); connect by "
                     "that name, or keep this address and check the certificate against it "
                     f"(--server-name localhost), or reissue the certificate with IP:{LOOPBACK}",
                     id="name-only-by-address"),
        pytest.param(("localhost",), LOOPBACK, "localhost", None,
                     id="name-only-by-address-with-server-name"),
        pytest.param((LOOPBACK,), "localhost", None,
                     "host name mismatch: the certificate of the server is not valid for "
                     f"'localhost': it names IP:{LOOPBACK} (subjectAltName); connect by that "
                     "name, or keep this host and check the certificate against it "
                     f"(--server-name {LOOPBACK}), or reissue the certificate with "
                     "DNS:localhost", id="address-only-by-name"),
    ],
)
def test_host_name_verification_of_storescp(
    *, dcmtk: Dcmtk, pkis: PkiFactory, tmp_path: Path, sans: tuple[str, ...], host: str,
    server_name: str | None, refusal: str | None,
) -> None:
    """dicomnet echo checks storescp's certificate against the host it connects to
    (RFC 6125; an IP address against iPAddress entries only, RFC 5280 4.2.1.6), or
    against --server-name."""
    pki = pkis("rsa")
    cert, key = pki.issue("storescp " + "-".join(sans), sans=sans, client=False)
    named = ["--server-name", server_name] if server_name else []
    result, port = echo_storescp(dcmtk, pki, cert, key, tmp_path, host=host, extra=named)
    if refusal is None:
        assert result.returncode == 0, result.stderr
        return
    assert result.returncode == 3
    assert result.stderr.splitlines() == [
        f"error: TLS handshake with {host}:{port} failed: {refusal}"]
