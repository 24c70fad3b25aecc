"""--key-password-file holding bytes that are not UTF-8 (a password file written by a
Windows tool in UTF-16, or a key given by mistake): `dicomnet serve` and `echo`
ended in a UnicodeDecodeError traceback, exit 1; now the usage error every other
unreadable --key-password-file gets, exit 2 (an ``error:`` line since session 30)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dicomnet.security.certificates import CertificateAuthority

from .helpers import run_cli


@pytest.mark.parametrize("command", ["serve", "echo"])
def test_a_password_file_that_is_not_utf8(tmp_path: Path, command: str) -> None:
    ca = CertificateAuthority.create("password CA", key_type="ecdsa")
    cert, key = ca.issue("localhost", sans=("localhost", "127.0.0.1"), key_type="ecdsa").write(
        tmp_path, "server", password="s3cret")
    password_file = tmp_path / "password.txt"
    password_file.write_bytes("s3cret\n".encode("utf-16"))  # a BOM, then UTF-16LE
    serve: list[str | Path] = ["serve", "--port", "0", "--output", tmp_path / "store",
                               "--peer-cert", "none"]
    echo: list[str | Path] = ["echo", "127.0.0.1", "9", "--ca", cert]
    args = serve if command == "serve" else echo
    result = run_cli(*args, "--tls", "--cert", cert, "--key", key,
                     "--key-password-file", password_file)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert (f"cannot read --key-password-file {password_file}: it is not UTF-8 text"
            in result.stderr), result.stderr
    assert not (tmp_path / "store").exists()
