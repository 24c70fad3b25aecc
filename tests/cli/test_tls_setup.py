"""A TLS set-up that cannot work is an `error:` line and exit 2 before any connection:
our own certificate out of its dates or not meant for our role. A --ca folder that
`openssl rehash` never saw works all the same."""

from __future__ import annotations

import datetime as dt
import shutil
import socket
from collections.abc import Callable
from pathlib import Path

from pydicom.uid import generate_uid

from dicomnet.cli.demo import write_synthetic_ct
from dicomnet.security.certificates import CertificateAuthority, DevPKI
from dicomnet.security.config import TLSConfig

from .helpers import ServerThread, error_line, json_out, run_cli, serve_that_must_refuse

PAST = dt.datetime(2020, 1, 2, 3, 4, tzinfo=dt.UTC)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _issue(pki: DevPKI, tmp_path: Path, name: str, *, not_after: dt.datetime) -> Path:
    ca = CertificateAuthority.load(pki.ca_cert, pki.ca_key)
    issued = ca.issue(name, server=False, key_type="ecdsa",
                      not_before=not_after - dt.timedelta(days=30), not_after=not_after)
    cert, key = issued.write(tmp_path, name)
    # The key after the certificate in one file: --cert alone is enough.
    both = tmp_path / f"{name}-with-key.pem"
    both.write_bytes(cert.read_bytes() + key.read_bytes())
    return both


def test_serve_with_a_client_certificate_exits_2_before_listening(
        pki: DevPKI, tmp_path: Path) -> None:
    """`dicomnet serve --cert pki/client.pem` started, then every client refused it."""
    proc = serve_that_must_refuse(tmp_path, "--cert", pki.client_cert, "--key",
                                  pki.client_key, "--ca", pki.ca_cert)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [
        f"error: our certificate {pki.client_cert} is not meant for a server: its extended "
        "key usage is clientAuth, without serverAuth (RFC 5280 4.2.1.12), so clients refuse "
        "it; use a server certificate (server.pem of 'dicomnet certs init', or 'dicomnet "
        "certs issue DIR NAME --role server')"]


def test_echo_with_a_server_certificate_exits_2_before_connecting(pki: DevPKI) -> None:
    result = run_cli("echo", "127.0.0.1", _closed_port(), "--cert", pki.server_cert,
                     "--key", pki.server_key, "--ca", pki.ca_cert)
    assert result.exit_code == 2, result.output
    assert error_line(result) == (
        f"error: our certificate {pki.server_cert} is not meant for a client: its extended "
        "key usage is serverAuth, without clientAuth (RFC 5280 4.2.1.12), so servers that "
        "ask for a client certificate refuse it; use a client certificate (client.pem of "
        "'dicomnet certs init', or 'dicomnet certs issue DIR NAME --role client')")


def test_store_with_an_expired_certificate_exits_2_before_connecting(
        pki: DevPKI, tmp_path: Path) -> None:
    cert = _issue(pki, tmp_path, "expired", not_after=PAST)
    image = tmp_path / "ct.dcm"
    write_synthetic_ct(image, number=1, study_uid=generate_uid(), series_uid=generate_uid(),
                       size=16)
    result = run_cli("store", "127.0.0.1", _closed_port(), image, "--cert", cert,
                     "--ca", pki.ca_cert)
    assert result.exit_code == 2, result.output
    assert error_line(result) == (
        f"error: our certificate {cert} expired on 2020-01-02 03:04 UTC; renew it (for a "
        "development PKI: 'dicomnet certs issue')")


def test_echo_warns_of_a_certificate_about_to_expire(pki: DevPKI, tmp_path: Path) -> None:
    not_after = (dt.datetime.now(dt.UTC) + dt.timedelta(days=3, hours=12)).replace(
        second=0, microsecond=0)
    cert = _issue(pki, tmp_path, "soon", not_after=not_after)
    result = run_cli("echo", "127.0.0.1", _closed_port(), "--cert", cert, "--ca", pki.ca_cert)
    assert result.exit_code == 3, result.output  # nobody listens: the warning came first
    warning = [line for line in result.stderr.splitlines() if "expires on" in line]
    assert [line.split(" ", 1)[1] for line in warning] == [
        f"WARNING: our certificate {cert} expires on {not_after:%Y-%m-%d %H:%M} UTC, "
        "in 3 days: renew it before then"]  # labelled: it must not read like INFO lines


def test_echo_and_server_trust_an_unhashed_ca_folder(
        pki: DevPKI, tmp_path: Path, start_server: Callable[..., ServerThread]) -> None:
    """`cp pki/ca.pem cadir/` and `--ca cadir`, no `openssl rehash`: every peer was an
    "unknown CA" to both sides."""
    cadir = tmp_path / "cadir"
    cadir.mkdir()
    shutil.copy(pki.ca_cert, cadir / "ca.pem")
    server = start_server(tls=TLSConfig(certfile=pki.server_cert, keyfile=pki.server_key,
                                        capath=cadir))
    result = run_cli("echo", "127.0.0.1", server.port, "--json", "--cert", pki.client_cert,
                     "--key", pki.client_key, "--ca", cadir)
    assert result.exit_code == 0, result.output
    assert json_out(result)["status"] == 0
