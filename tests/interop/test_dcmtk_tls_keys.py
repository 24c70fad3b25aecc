"""Encrypted private keys across tools: a key ``dicomnet certs init --password-env`` wrote
(PKCS#8, PBES2 with AES-256-CBC, RFC 8018) opened by DCMTK with ``+pw``, and keys that
OpenSSL encrypted (``openssl pkey -aes256``: PKCS#8; ``openssl rsa -aes256
-traditional``: the legacy "Proc-Type: 4,ENCRYPTED" PEM) opened by ``dicomnet serve`` and
``dicomnet echo`` with ``--key-password-env`` and ``--key-password-file``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.aio.helpers import LOOPBACK, background_process, free_port, run, run_process
from tests.interop.conftest import Dcmtk, dicomnet_serve_with

pytestmark = pytest.mark.interop

PASSWORD = "correct horse, battery staple"


def cli(*args: str | Path | int,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dicomnet.cli.main", *map(str, args)],
                          capture_output=True, text=True, timeout=60, check=False,
                          env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def encrypted_pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`dicomnet certs init` with its keys encrypted under PASSWORD."""
    folder = tmp_path_factory.mktemp("encrypted") / "pki"
    result = cli("certs", "init", folder, "--password-env", "PKI_PASSWORD",
                 env={"PKI_PASSWORD": PASSWORD})
    assert result.returncode == 0, result.stderr
    return folder



def test_dcmtk_opens_a_key_dicomnet_certs_encrypted(
    dcmtk: Dcmtk, encrypted_pki: Path, tmp_path: Path
) -> None:
    """storescp (+pw) serves with dicomnet's encrypted server key, echoscu (+pw) connects
    to dicomnet serve with dicomnet's encrypted client key."""
    pki = encrypted_pki
    assert (pki / "client.key").read_text().startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----")
    port = free_port()
    with background_process(dcmtk.storescp, "-v", "+tls", pki / "server.key",
                            pki / "server.pem", "+pw", PASSWORD, "+cf", pki / "ca.pem",
                            "-od", tmp_path, str(port), log_path=tmp_path / "storescp.log",
                            port=port):
        result = cli("echo", LOOPBACK, port, "--json", "--tls", "--cert", pki / "client.pem",
                     "--key", pki / "client.key", "--key-password-env", "KEY_PASSWORD",
                     "--ca", pki / "ca.pem", env={"KEY_PASSWORD": PASSWORD})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["tls"]["local_certificate"]["common_name"] == (
        "dicomnet client")

    password_file = tmp_path / "password.txt"
    password_file.write_text(PASSWORD + "\n")
    with dicomnet_serve_with(pki / "server.pem", pki / "server.key", pki / "ca.pem",
                             tmp_path / "in", "--key-password-file",
                             str(password_file)) as (port, stderr):
        rc, out = run(run_process(dcmtk.echoscu, "-aec", "DICOMNET", "+tls",
                                  pki / "client.key", pki / "client.pem", "+pw", PASSWORD,
                                  "+cf", pki / "ca.pem", LOOPBACK, str(port)))
        rc_wrong, out_wrong = run(run_process(dcmtk.echoscu, "-aec", "DICOMNET", "+tls",
                                              pki / "client.key", pki / "client.pem", "+pw",
                                              "not it", "+cf", pki / "ca.pem", LOOPBACK,
                                              str(port)))
    assert rc == 0, out
    assert rc_wrong != 0
    assert "Unable to load private TLS key" in out_wrong
    assert stderr[0].count(": released, 1 message(s) (1 success)") == 1


@pytest.mark.parametrize(
    ("encrypt", "begins"),
    [
        pytest.param(["pkey", "-aes256"], "-----BEGIN ENCRYPTED PRIVATE KEY-----", id="pkcs8"),
        pytest.param(["rsa", "-aes256", "-traditional"], "-----BEGIN RSA PRIVATE KEY-----",
                     id="traditional"),
    ],
)
def test_dicomnet_opens_keys_openssl_encrypted(
    *, dcmtk: Dcmtk, openssl: Path, encrypted_pki: Path, tmp_path: Path, encrypt: list[str],
    begins: str,
) -> None:
    pki = encrypted_pki
    env = {"KEY_PASSWORD": PASSWORD}
    keys = {}
    for name in ("server", "client"):
        keys[name] = tmp_path / f"{name}-openssl.key"
        done = subprocess.run(
            [openssl, *encrypt, "-in", pki / f"{name}.key", "-passin", "env:KEY_PASSWORD",
             "-passout", "env:KEY_PASSWORD", "-out", keys[name]],
            capture_output=True, text=True, timeout=30, check=False, env={**os.environ, **env},
        )
        assert done.returncode == 0, done.stderr
        assert keys[name].read_text().startswith(begins)
    password_file = tmp_path / "password.txt"
    password_file.write_text(PASSWORD + "\r\n")  # written on Windows: the CR is no part of it
    with dicomnet_serve_with(pki / "server.pem", keys["server"], pki / "ca.pem",
                             tmp_path / "in", "--key-password-file",
                             str(password_file)) as (port, stderr):
        result = cli("echo", LOOPBACK, port, "--called-aet", "DICOMNET", "--tls", "--cert",
                     pki / "client.pem", "--key", keys["client"], "--key-password-env",
                     "KEY_PASSWORD", "--ca", pki / "ca.pem", env=env)
        wrong = cli("echo", LOOPBACK, port, "--tls", "--cert", pki / "client.pem", "--key",
                    keys["client"], "--key-password-env", "KEY_PASSWORD", "--ca",
                    pki / "ca.pem", env={"KEY_PASSWORD": "not it"})
        rc, out = run(run_process(dcmtk.echoscu, "-aec", "DICOMNET", "+tls", keys["client"],
                                  pki / "client.pem", "+pw", PASSWORD, "+cf", pki / "ca.pem",
                                  LOOPBACK, str(port)))
    assert result.returncode == 0, result.stderr
    assert wrong.returncode == 2
    assert wrong.stderr.splitlines() == [
        f"error: wrong password for private key {keys['client']}"]
    assert rc == 0, out
    assert stderr[0].count(": released, 1 message(s) (1 success)") == 2
