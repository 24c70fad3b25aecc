"""A host-name mismatch against real TLS servers says which names the server's
certificate holds and how to reach it, in `dicomnet echo`'s one error line and in
the library's TLSError: `dicomnet echo 127.0.0.1` to a server whose certificate
names only host names said "not valid for IP address '127.0.0.1'" and no more.

The servers: our own `dicomnet serve`, DCMTK 3.6.7's storescp +tls and openssl
s_server (which speaks no DICOM: past the TLS handshake its association fails). The
fix each message gives is then taken, and the TLS handshake passes.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dicomnet.aio.client import associate
from dicomnet.errors import TLSError
from tests.aio.helpers import LOOPBACK, Pki, PkiFactory, background_process, free_port, run
from tests.interop.conftest import Dcmtk, dicomnet_serve_with

pytestmark = pytest.mark.interop

PREFIX = "error: TLS handshake with {host}:{port} failed: host name mismatch: "


@pytest.fixture
def pki(pkis: PkiFactory) -> Pki:
    return pkis("ecdsa")


def echo(host: str, port: int, pki: Pki, *options: str) -> subprocess.CompletedProcess[str]:
    """`dicomnet echo HOST PORT --tls` with the PKI's client certificate."""
    return subprocess.run(
        [sys.executable, "-m", "dicomnet.cli.main", "echo", host, str(port), "--tls",
         "--cert", str(pki.client_cert), "--key", str(pki.client_key), "--ca",
         str(pki.ca_file), *options], capture_output=True, text=True, timeout=60, check=False)


def error_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, done.stderr
    return lines[0]


async def library_echo(port: int, pki: Pki) -> None:
    async with associate(LOOPBACK, port, calling_ae_title="DICOMNET",
                         called_ae_title="ANY-SCP", tls=pki.client_tls()) as assoc:
        await assoc.echo()


def test_dicomnet_serve_by_an_address_its_certificate_does_not_name(
        pki: Pki, tmp_path: Path) -> None:
    cert, key = pki.issue("pacs", sans=("pacs.example", "localhost"), client=False)
    (tmp_path / "store").mkdir()
    with dicomnet_serve_with(cert, key, pki.ca_file, tmp_path / "store") as (port, _):
        refused = echo(LOOPBACK, port, pki)
        with pytest.raises(TLSError) as raised:
            run(library_echo(port, pki))
        named = echo(LOOPBACK, port, pki, "--server-name", "localhost")
    assert refused.returncode == 3, refused.stderr
    assert error_line(refused) == PREFIX.format(host=LOOPBACK, port=port) + (
        "the certificate of the server is not valid for IP address '127.0.0.1': it names "
        "DNS:pacs.example, DNS:localhost (subjectAltName); connect by one of these names, or "
        "keep this address and check the certificate against one of them (--server-name "
        "pacs.example), or reissue the certificate with IP:127.0.0.1")
    assert str(raised.value) == PREFIX.format(host=LOOPBACK, port=port).removeprefix(
        "error: ") + (
        "the certificate of the server is not valid for IP address '127.0.0.1': it names "
        "DNS:pacs.example, DNS:localhost (subjectAltName); connect by one of these names, or "
        "keep this address and check the certificate against one of them "
        "(server_hostname='pacs.example'), or reissue the certificate with IP:127.0.0.1")
    assert named.returncode == 0, named.stderr


def test_storescp_with_many_names_says_a_few_and_how_many_more(
        dcmtk: Dcmtk, pki: Pki, tmp_path: Path) -> None:
    sans = ("*.site.example", "pacs.site.example", "10.0.0.5", "pacs", "10.0.0.6", "localhost")
    cert, key = pki.issue("storescp pacs", sans=sans, client=False)
    port = free_port()
    (tmp_path / "out").mkdir()
    with background_process(dcmtk.storescp, "+tls", key, cert, "+cf", pki.ca_file, "-od",
                            tmp_path / "out", str(port), log_path=tmp_path / "storescp.log",
                            port=port):
        refused = echo(LOOPBACK, port, pki)
        with pytest.raises(TLSError) as raised:
            run(library_echo(port, pki))
        named = echo(LOOPBACK, port, pki, "--server-name", "pacs.site.example")
    said = ("the certificate of the server is not valid for IP address '127.0.0.1': it names "
            "DNS:*.site.example, DNS:pacs.site.example, IP:10.0.0.5, DNS:pacs and 2 more "
            "(subjectAltName); connect by one of these names, or keep this address and check "
            "the certificate against one of them ({}), or reissue the certificate with "
            "IP:127.0.0.1")
    assert refused.returncode == 3, refused.stderr
    assert error_line(refused) == PREFIX.format(host=LOOPBACK, port=port) + said.format(
        "--server-name pacs.site.example")
    assert raised.value.reason == "host name mismatch: " + said.format(
        "server_hostname='pacs.site.example'")
    assert named.returncode == 0, named.stderr


def test_s_server_whose_certificate_names_its_host_in_its_common_name_alone(
        openssl: Path, pki: Pki, tmp_path: Path) -> None:
    cert, key = pki.issue("localhost", sans=(), client=False)
    port = free_port()
    with background_process(openssl, "s_server", "-accept", f"{LOOPBACK}:{port}",
                            "-cert", cert, "-key", key, "-quiet",
                            log_path=tmp_path / "s_server.log", port=port):
        refused = echo("localhost", port, pki)
        taken = echo("localhost", port, pki, "--hostname-from-cn")
    assert refused.returncode == 3, refused.stderr
    assert error_line(refused) == PREFIX.format(host="localhost", port=port) + (
        "the certificate of the server is not valid for 'localhost': it has no "
        "subjectAltName, only its subject CN 'localhost': hosts are named by the "
        "subjectAltName (RFC 9525 6.3; RFC 6125 6.4.4 let clients fall back to the CN); "
        "reissue the certificate with DNS:localhost, or, for an old device, take its CN: "
        "--hostname-from-cn")
    # Past the TLS handshake: s_server (its stdin closed) speaks no DICOM.
    assert "host name mismatch" not in error_line(taken)
    assert "closed the connection right after the TLS handshake" in error_line(taken)
    assert "names the host only in its subject CN" in taken.stderr
