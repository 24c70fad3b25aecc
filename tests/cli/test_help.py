"""Every command's --help teaches its key flags and the exit codes."""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from .helpers import ServerThread, run_cli


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


def _help(*command: str) -> str:
    """The --help text with its line breaks and indents as single spaces (none
    where click broke a line after a hyphen)."""
    result = run_cli(*command, "--help")
    assert result.exit_code == 0
    return " ".join(re.sub(r"-\n\s+", "-", result.stdout).split())


def test_exit_codes_say_what_1_and_3_mean_for_store() -> None:
    text = _help("store")
    assert ("1 echo: the peer answered with a non-success status; store: one or more objects "
            "were not stored (a failure status from the peer, a file that is not DICOM or in "
            "a transfer syntax the peer refused, the link lost once some were stored)") in text
    assert "3 association, TLS or network failure (store: before any object was stored)" in text


def test_serve_says_ctrl_c_and_sigterm_are_a_clean_stop() -> None:
    """serve exits 0 when stopped; the clients' "130 interrupted" did not apply."""
    text = _help("serve")
    assert ("Ctrl-C or SIGTERM stops it: it stops accepting (new connections are refused), "
            "lets the associations under way end by themselves") in text
    assert "Exit codes: 0 stopped by Ctrl-C or SIGTERM" in text
    assert ("130 interrupted before it listened (Ctrl-C at the key's password prompt, or "
            "while it loaded its certificates) 143 terminated (SIGTERM) before it "
            "listened") in text
    assert "130 interrupted (Ctrl-C)" not in text
    assert "serve exits 0 when Ctrl-C or SIGTERM stops it" in _help()


@pytest.mark.parametrize(("command", "text"), [
    ("store", "DICOM over TLS is registered on port 2762."),  # PORT is required
    ("echo", "Default port becomes 2762."),
    ("serve", "Default port becomes 2762."),
])
def test_tls_help_says_no_default_port_where_port_is_required(command: str,
                                                               text: str) -> None:
    assert text in _help(command)


def test_timeout_help_states_the_defaults() -> None:
    assert ("Default: 30 s to connect, 30 s for the TLS handshake, 30 s for the association "
            "or its release, 60 s for each DIMSE response or for the server to read, 120 s "
            "for the rest of a PDU once it has started (or the next one of a message in "
            "progress).") in _help("echo")
    assert ("Default: 30 s for the TLS handshake, 30 s for the association request or the "
            "close, 120 s for the rest of a PDU once it has started (or the next one of a "
            "message in progress), 60 s for the client to read.") in _help("serve")


def test_profile_help_explains_each_name() -> None:
    from dicomnet.security.profiles import PROFILES

    text = _help("store")
    assert ("bcp195-rfc9325 (PS3.15 B.12): TLS 1.3 preferred, TLS 1.2 with ECDHE AES-GCM "
            "only;") in text
    assert "bcp195-extended (PS3.15 B.11, retired): TLS 1.2 only, AEAD suites only;" in text
    for name, profile in PROFILES.items():
        section = profile.section.replace(" (retired)", ", retired")
        assert f"{name} ({section}): " in text, name


@pytest.mark.parametrize("group", [[], ["certs"]], ids=["dicomnet", "certs"])
def test_command_lists_are_not_cut_short(group: list[str]) -> None:
    """Each command's line in the list is whole: reindex, certs issue and certs
    show ended in "..."."""
    text = run_cli(*group, "--help").stdout
    listed = text[text.index("Commands:"):].split("\n\n")[0]
    assert "..." not in listed, listed


@pytest.mark.parametrize("command", [
    ["echo"], ["store"], ["serve"], ["reindex"], ["demo"], ["certs"], ["certs", "init"],
    ["certs", "issue"], ["certs", "show"],
])
def test_every_command_shows_an_example(command: list[str]) -> None:
    assert "Example" in run_cli(*command, "--help").stdout


def test_json_help_promises_a_document_whatever_happens() -> None:
    for command in ("echo", "store"):
        assert ("One document whatever happens (a usage error, a failure, Ctrl-C): its "
                "\"error\" and \"exit_code\" say how the run ended.") in _help(command)
    assert ("One line per event; the last is \"stopped\", or an \"error\" event with "
            "\"error\" and \"exit_code\".") in _help("serve")
    assert "one document whatever happens" in _help("demo")


def test_serve_help_says_what_a_tls_server_needs_and_how_it_stops() -> None:
    text = _help("serve")
    assert "Required with --tls, unless --peer-cert none." in text  # --ca
    assert ("lets the associations under way end by themselves for up to --drain-timeout "
            "seconds, aborts those still open then (their partial objects removed), writes "
            "its index and exits 0 (success). A second Ctrl-C or SIGTERM aborts them at once "
            "and says what the stop waits for; a third quits at once.") in " ".join(text.split())
    assert "--drain-timeout SECONDS" in text
    assert "Ctrl-C or SIGTERM stops it, its server closed (exit 130, 143)." in _help("demo")


def test_serve_help_documents_each_json_line() -> None:
    """--json's lines are a schema for scripts: each event and its keys are named."""
    text = " ".join(_help("serve").split())
    for event in ("listening", "association_accepted", "stored", "refused", "association_ended",
                  "connection_refused", "stopped"):
        assert f" {event} " in text, event
    for key in ("contexts", "how (released or aborted)", "bytes_received", "answers",
                "unanswered", "stage (tls,", "cipher_suite", "client_cert", "drained (the",
                "aborted (those"):
        assert key in text, key


@pytest.mark.parametrize("command", ["echo", "store", "serve"])
def test_tls_help_cites_annex_b_not_the_retired_basic_profile(command: str) -> None:
    """--tls is any profile of PS3.15 Annex B (B.12 by default); it cited B.1,
    the retired 3DES profile that OpenSSL 3 refuses."""
    text = _help(command)
    assert "--tls / --no-tls Secure transport: TLS, as --profile says (PS3.15 Annex B)." in text
    assert "(PS3.15 B.1)." not in text


def test_profile_help_says_a_bcp195_client_offers_no_dhe() -> None:
    assert ("bcp195 (PS3.15 B.9, retired): RFC 7525, falling back to TLS 1.0 and AES-CBC for "
            "old peers (a client offers no DHE suite: at that level no group size is "
            "checked);") in _help("echo")


_LEAF_COMMANDS = [["echo"], ["store"], ["serve"], ["reindex"], ["demo"], ["certs", "init"],
                  ["certs", "issue"], ["certs", "revoke"], ["certs", "show"]]


@pytest.mark.parametrize("command", _LEAF_COMMANDS, ids=" ".join)
def test_every_command_lists_its_exit_codes(command: list[str]) -> None:
    """The certs commands listed none."""
    text = run_cli(*command, "--help").stdout
    assert "Exit codes:" in text
    codes = text[text.index("Exit codes:"):]
    for code in ("0", "2", "130", "143"):
        assert f"\n    {code} " in codes, code


@pytest.mark.parametrize("command", [["reindex"], ["certs", "init"], ["certs", "show"]],
                         ids=" ".join)
def test_local_commands_list_no_network_exit_codes(command: list[str]) -> None:
    """reindex and certs touch only files: reindex listed echo's and store's
    meanings of 1 and 3, which it never exits with. Its own 1 is --repair's."""
    text = _help(*command)
    codes = text[text.index("Exit codes:"):]
    assert "echo:" not in codes and " 3 " not in codes
    if command == ["reindex"]:
        assert " 1 --repair: one or more files could not be relabelled " in codes
    else:
        assert " 1 " not in codes


def test_reindex_exit_2_is_explained(tmp_path: Path) -> None:
    result = run_cli("reindex", str(tmp_path))  # a folder, but not a store
    assert result.exit_code == 2
    assert "not a folder or not a store" in _help("reindex")


_LOADED = """
import json, sys
from dicomnet.cli.main import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""

#: What each run must not load: the cost of a command that does not use it.
_HEAVY = {
    "--help": ("asyncio", "ssl", "cryptography", "pydicom", "sqlite3", "rich", "numpy",
               "dicomnet.aio", "dicomnet.storage", "dicomnet.services", "dicomnet.security"),
    "certs": ("asyncio", "pydicom", "sqlite3", "rich", "numpy", "dicomnet.aio",
              "dicomnet.storage", "dicomnet.services", "dicomnet.security.config"),
    "serve": ("asyncio", "cryptography", "pydicom", "sqlite3", "rich", "numpy",
              "dicomnet.aio", "dicomnet.storage", "dicomnet.services", "dicomnet.dimse",
              "dicomnet.security.config"),
    # Plain DICOM: no certificate is read or made.
    "echo": ("cryptography", "dicomnet.security.certificates"),
}


def _loaded(*args: str) -> list[str]:
    """The modules ``dicomnet ARGS`` loaded, run in a fresh interpreter."""
    run = subprocess.run([sys.executable, "-c", _LOADED, *args],
                         capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stderr
    loaded: list[str] = json.loads(run.stderr.splitlines()[-1])
    return loaded


def _heavy(loaded: list[str], command: str) -> list[str]:
    heavy = _HEAVY[command]
    return [m for m in loaded if m.split(".")[0] in heavy or m.startswith(heavy)]


@pytest.mark.parametrize("args", [["--help"], ["certs", "show", "CA"], ["serve", "--help"]])
def test_a_run_loads_only_what_it_uses(args: list[str], tmp_path: Path) -> None:
    """``dicomnet --help`` imported every command to list its short help (the
    server's pydicom and SQLite, the client's asyncio and cryptography: 0.34 s,
    0.08 s without), ``certs show`` the echo command's network stack, and
    ``serve --help`` the server and its storage (0.31 s)."""
    from dicomnet.security.certificates import make_dev_pki

    ca = str(make_dev_pki(tmp_path).ca_cert)
    loaded = _loaded(*[ca if a == "CA" else a for a in args])
    assert _heavy(loaded, args[0]) == []


def test_a_plain_echo_loads_no_certificate_code(start_server: Callable[..., ServerThread]) -> None:
    """It loaded ``cryptography`` (~30 ms) for type hints only."""
    server = start_server()
    loaded = _loaded("echo", "127.0.0.1", str(server.port))
    assert "dicomnet.aio.client" in loaded  # it did echo
    assert _heavy(loaded, "echo") == []


def test_the_listed_short_helps_are_the_commands_own() -> None:
    """``dicomnet --help`` lists the commands from a table, without importing them:
    it says what each command says of itself."""
    from dicomnet.cli import group

    for name, (module, short) in group._COMMANDS.items():
        command = getattr(importlib.import_module(module), name)
        assert command.get_short_help_str(limit=200) == short, name
    listed = run_cli("--help").stdout.split("Commands:\n")[1]
    for name, (_, short) in group._COMMANDS.items():
        assert re.search(rf"^  {name} +{re.escape(short)}$", listed, re.MULTILINE), listed
