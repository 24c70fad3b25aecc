"""An encrypted --key with no password given and no terminal to ask on: one
``error:`` line saying how to give it, exit 2, in every command that takes --key.

It was a click usage error: the command's whole usage block, then "Error: ...",
where a wrong password gives an ``error:`` line (the key is a file the flags
named correctly; what is missing is its password). With --json, the document
says the error too, as for a wrong password."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dicomnet.security.certificates import DevPKI

from .helpers import run_cli


def _args(command: str, pki: DevPKI, tmp_path: Path) -> list[str | Path]:
    # Port 9: nothing is meant to answer, and nothing is reached before the password.
    if command == "serve":
        return ["serve", "--port", "0", "--output", tmp_path / "store", "--tls",
                "--ca", pki.ca_cert, "--cert", pki.server_cert, "--key", pki.server_key]
    client: list[str | Path] = ["127.0.0.1", "9", "--tls", "--ca", pki.ca_cert,
                                "--cert", pki.client_cert, "--key", pki.client_key]
    if command == "store":
        (tmp_path / "a.dcm").write_bytes(b"not even DICOM")
        return ["store", *client, tmp_path / "a.dcm"]
    return ["echo", *client]


@pytest.mark.parametrize("command", ["echo", "store", "serve"])
def test_no_password_and_no_terminal_is_one_error_line(
        encrypted_pki: DevPKI, tmp_path: Path, command: str) -> None:
    key = encrypted_pki.server_key if command == "serve" else encrypted_pki.client_key
    result = run_cli(*_args(command, encrypted_pki, tmp_path))  # CliRunner: stdin no tty
    assert result.exit_code == 2, result.output
    assert result.stderr == (
        f"error: private key {key} is encrypted and no terminal is there to ask its "
        "password: give --key-password-env VAR or --key-password-file FILE\n")
    assert result.stdout == ""
    assert not (tmp_path / "store").exists()


@pytest.mark.parametrize("command", ["echo", "store"])
def test_with_json_the_document_says_it(encrypted_pki: DevPKI, tmp_path: Path,
                                        command: str) -> None:
    result = run_cli(*_args(command, encrypted_pki, tmp_path), "--json")
    assert result.exit_code == 2, result.output
    doc = json.loads(result.stdout)
    assert (doc["exit_code"], doc["error"]) == (2, result.stderr.removeprefix("error: ")[:-1])
    assert "is encrypted and no terminal" in doc["error"]


@pytest.mark.parametrize("command", ["echo", "store", "serve"])
def test_an_unset_password_variable_is_one_error_line(
        encrypted_pki: DevPKI, tmp_path: Path, command: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """So is a --key-password-env naming no variable (as an unreadable
    --key-password-file already was: test_key_password_file25)."""
    monkeypatch.delenv("DICOMNET_NO_SUCH_VARIABLE", raising=False)
    result = run_cli(*_args(command, encrypted_pki, tmp_path),
                     "--key-password-env", "DICOMNET_NO_SUCH_VARIABLE")
    assert result.exit_code == 2, result.output
    assert result.stderr == ("error: --key-password-env DICOMNET_NO_SUCH_VARIABLE: that "
                             "environment variable is not set\n")
