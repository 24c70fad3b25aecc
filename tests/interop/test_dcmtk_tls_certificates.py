"""Certificates over TLS with DCMTK 3.6.7 (storescu, storescp) and dicomnet: what a
client certificate must be, what each side says when it is missing or refused, chains
through an intermediate CA, CA bundles holding several CAs, and host names.

storescp's peer-certificate switches, against a dicomnet client that has no certificate
-----------------------------------------------------------------------------------------
=====================  ==========================================================
storescp               dicomnet client without --cert
=====================  ==========================================================
``-rc`` (default)      refused: "we sent no certificate, and it most likely
                       requires one" (TLS 1.3: the server's refusal comes after
                       our handshake ended, RFC 8446 4.4.2)
``-vc``                associates; storescp verifies a certificate only if sent
``-ic``                associates
=====================  ==========================================================
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dicomnet.aio.client import associate
from dicomnet.errors import TLSError
from dicomnet.security.config import TLSConfig
from tests.aio.helpers import (
    LOOPBACK,
    Pki,
    PkiFactory,
    background_process,
    free_port,
    run,
    wait_output,
)
from tests.interop.conftest import Dcmtk
from tests.storage.helpers import make_dataset, write_part10_file

pytestmark = pytest.mark.interop


def storescp_cmd(dcmtk: Dcmtk, pki: Pki, port: int, out: Path, *flags: str) -> list[str | Path]:
    return [dcmtk.storescp, "-v", "-aet", "STORESCP", "+tls", pki.server_key, pki.server_cert,
            "+cf", pki.ca_file, *flags, "-od", out, str(port)]


async def echo(port: int, tls: TLSConfig) -> int:
    async with associate(LOOPBACK, port, calling_ae_title="DICOMNET", called_ae_title="STORESCP",
                         tls=tls) as assoc:
        return int(await assoc.echo())


def test_dicomnet_without_certificate_is_told_storescp_requires_one(
    dcmtk: Dcmtk, pkis: PkiFactory, tmp_path: Path
) -> None:
    """storescp (TLS 1.3) refuses our client with no certificate after our handshake has
    ended: its alert or its close, whichever our first read meets (a race, so three
    attempts). Before, the close read "peer closed the connection during the TLS
    handshake (it may not speak TLS, or refused our certificate)": neither true, and
    marked link_failed, so that store --retries tried again in vain."""
    pki = pkis("rsa")
    tls = pki.client_tls(certfile=None, keyfile=None)
    port = free_port()

    async def attempts() -> list[TLSError]:
        errors = []
        for _ in range(3):
            with pytest.raises(TLSError) as caught:
                await echo(port, tls)
            errors.append(caught.value)
        return errors

    with background_process(*storescp_cmd(dcmtk, pki, port, tmp_path),
                            log_path=tmp_path / "storescp.log", port=port) as peer:
        errors = run(attempts())
        out = wait_output(peer, "peer did not return a certificate")
    assert out.count("peer did not return a certificate") >= 1
    for error in errors:
        assert error.reason in (
            # the close
            "the server closed the connection right after the TLS 1.3 handshake: we sent no "
            "certificate, and it most likely requires one (set certfile/keyfile)",
            # the alert (RFC 8446 6.2 certificate_required)
            "the server requires a client certificate (set certfile/keyfile)",
        ), error.reason
        assert not error.link_failed
        assert str(error) == f"TLS handshake with {LOOPBACK}:{port} failed: {error.reason}"


def test_dicomnet_with_an_untrusted_certificate_is_told_storescp_refused_it(
    dcmtk: Dcmtk, pkis: PkiFactory, tmp_path: Path
) -> None:
    """A client certificate from a CA storescp does not trust (TLS 1.3): refused after
    our handshake ended; the close is explained as such, not as a handshake cut short."""
    pki = pkis("rsa")
    cert, key = pki.foreign("foreign client", server=False)
    tls = pki.client_tls(certfile=cert, keyfile=key)
    port = free_port()

    async def attempts() -> list[TLSError]:
        errors = []
        for _ in range(3):
            with pytest.raises(TLSError) as caught:
                await echo(port, tls)
            errors.append(caught.value)
        return errors

    with background_process(*storescp_cmd(dcmtk, pki, port, tmp_path),
                            log_path=tmp_path / "storescp.log", port=port) as peer:
        errors = run(attempts())
        wait_output(peer, "certificate verify failed")
    for error in errors:
        assert error.reason in (
            "the server closed the connection right after the TLS 1.3 handshake: it most "
            "likely refused our certificate (its CA untrusted by the server, expired or "
            "revoked)",
            "the server refused our certificate: it does not trust our CA",
        ), error.reason
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
    lines = result.stderr.strip().splitlines()
    assert lines == [f"error: {report['error']}"], lines
    # One attempt: a refused certificate is not a failure that may pass.
    assert peer.output().count("peer did not return a certificate") == 1
