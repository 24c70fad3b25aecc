"""Every command's --help teaches its key flags and the exit codes."""

from __future__ import annotations

import pytest

from .helpers import run_cli


@pytest.mark.parametrize(("command", "flags"), [
    ([], ["certs", "echo", "store", "serve", "demo", "Exit codes"]),
    (["echo"], ["--tls", "--cert", "--key", "--ca", "--profile", "--no-verify", "--server-name",
                "--ciphers", "--key-password-env", "--key-password-file", "--json",
                "--timeout", "--called-aet", "--count", "2762", "Exit codes"]),
    (["store"], ["--tls", "--cert", "--ca", "--json", "--called-aet", "Exit codes", "SIGTERM",
                "143 terminated"]),
    (["serve"], ["--tls", "--cert", "--key", "--ca", "--peer-cert", "--output", "--port",
                 "--host", "--max-associations", "bcp195-rfc9325", "Exit codes"]),
    (["certs", "init"], ["--key-type", "--password-env", "--days", "--server-name", "--force"]),
    (["certs", "show"], ["--json", "fingerprint"]),
    (["demo"], ["--dir", "mutual authentication"]),
])
def test_help_mentions_key_flags(command: list[str], flags: list[str]) -> None:
    result = run_cli(*command, "--help")
    assert result.exit_code == 0
    for flag in flags:
        assert flag in result.stdout, flag


def test_server_only_and_client_only_flags_are_separate() -> None:
    assert "--peer-cert" not in run_cli("echo", "--help").stdout
    assert "--no-verify" not in run_cli("serve", "--help").stdout
