"""A peer on the wrong transport, as both sides' operators read it. `dicomnet serve`
logged "(try --tls / port 2762)" when a TLS client reached its plain port, advice
meant for a client's user (its own --tls is what set the port's transport): its
line now says what the peer did. The clients' hints stay theirs: `echo --tls` to a
plain port is told to try without --tls, a plain `echo` to a TLS port to try --tls.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from dicomnet.security.certificates import DevPKI

from .helpers import client_tls_args, error_line, read_line, reaped, run_cli, terminated

DATED = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[+-]\d{4} "


def _serve_and_call(tmp_path: Path, serve_args: list[str | Path],
                    echo_args: list[str | Path]) -> tuple[str, str]:
    """serve's log line about the refused connection, and echo's error line."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "dicomnet.cli.main", "serve", "--port", "0", "--json",
         "--output", str(tmp_path / "store"), *map(str, serve_args)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    with reaped(proc):
        port = json.loads(read_line(proc.stdout, 30))["port"]  # type: ignore[arg-type]
        echo = run_cli("echo", "127.0.0.1", port, *echo_args)
        assert echo.exit_code == 3, echo.output
        _, err = terminated(proc, 20)
    assert proc.returncode == 0, err
    refused = [line for line in err.splitlines() if "connection refused" in line]
    assert len(refused) == 1, err
    assert "--tls" not in err.replace("(TLS, profile", "")
    return refused[0], error_line(echo)


def test_tls_client_on_a_plain_port(pki: DevPKI, tmp_path: Path) -> None:
    server, client = _serve_and_call(tmp_path, [], client_tls_args(pki))
    assert re.fullmatch(
        DATED + r"WARNING: connection refused: 127\.0\.0\.1:\d+: received a TLS ClientHello "
        r"on a plain DICOM port: the peer spoke TLS to it \(its TLS is on, or it has the "
        r"wrong port\)", server), server
    assert client.endswith("(a plain DICOM port? try without --tls)")


def test_plain_client_on_a_tls_port(pki: DevPKI, tmp_path: Path) -> None:
    server, client = _serve_and_call(
        tmp_path, ["--tls", "--cert", pki.server_cert, "--key", pki.server_key,
                   "--ca", pki.ca_cert], [])
    assert re.fullmatch(
        DATED + r"WARNING: connection refused: 127\.0\.0\.1:\d+: received a plain DICOM "
        r"A-ASSOCIATE-RQ on a TLS port: the peer spoke plain DICOM to it \(its TLS is off, "
        r"or it has the wrong port\)", server), server
    assert client.endswith("the peer may expect TLS (try --tls / port 2762)")
