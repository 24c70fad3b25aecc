"""Review 26, by use: a first-time user's `dicomnet certs` and `demo` runs, checked
with what openssl and x509 readers say of the files they write."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

import dicomnet.cli.common

from .helpers import error_line, run_cli


def _crl(path: Path) -> x509.CertificateRevocationList:
    return x509.load_pem_x509_crl(path.read_bytes())


def test_the_crl_carries_its_number_and_its_authority_key_identifier(tmp_path: Path) -> None:
    """RFC 5280 5.2.1 and 5.2.3: a CRL issuer MUST include the authority key
    identifier and the CRL number in every CRL. `certs revoke` wrote neither
    (`openssl crl -text` showed no "CRL extensions"), and a renewal could not be
    told from the CRL it replaced but by its dates."""
    assert run_cli("certs", "init", tmp_path).exit_code == 0
    assert run_cli("certs", "revoke", tmp_path, "client").exit_code == 0
    first = _crl(tmp_path / "ca.crl")
    ca = x509.load_pem_x509_certificate((tmp_path / "ca.pem").read_bytes())
    ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    aki = first.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    assert first.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 1
    assert run_cli("certs", "revoke", tmp_path).exit_code == 0  # renewed: the next number
    renewed = _crl(tmp_path / "ca.crl")
    assert renewed.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 2
    assert [e.serial_number for e in renewed] == [e.serial_number for e in first]


def _serial(path: Path) -> int:
    return x509.load_pem_x509_certificate(path.read_bytes()).serial_number


def test_two_development_pkis_never_give_one_issuer_and_serial_twice(tmp_path: Path) -> None:
    """Every `certs init` names its CA "dicomnet development CA" and numbered its
    server and client certificates 1001 and 1002 (03E9, 03EA): two PKIs, or one made
    again with --force, gave two certificates the same issuer and serial number,
    which RFC 5280 4.1.2.2 says identify one certificate (a CRL entry of one PKI
    names the other's too; NSS refuses the second, SEC_ERROR_REUSED_ISSUER_AND_SERIAL)."""
    for name in ("one", "two"):
        assert run_cli("certs", "init", tmp_path / name, "--key-type", "ecdsa").exit_code == 0
    serials = [_serial(tmp_path / d / f"{leaf}.pem") for d in ("one", "two")
               for leaf in ("server", "client")]
    assert len(set(serials)) == 4, [f"{s:X}" for s in serials]
    assert all(s.bit_length() > 32 for s in serials)  # not counted up from a fixed start


def test_init_force_leaves_no_crl_of_the_ca_it_replaced(tmp_path: Path) -> None:
    """`certs init --force` made a new CA but kept the old one's ca.crl: a peer given
    `--crl pki/ca.crl` then refused every certificate ("CRL signature failure"), and
    `certs revoke` refused to run ("not a CRL of this folder's CA: move it away").
    Now the folder's CRL is the new CA's, empty; and the certificates `certs issue`
    made from the old CA are named, as they are no longer trusted."""
    assert run_cli("certs", "init", tmp_path, "--key-type", "ecdsa").exit_code == 0
    assert run_cli("certs", "issue", tmp_path, "orthanc").exit_code == 0
    assert run_cli("certs", "revoke", tmp_path, "client").exit_code == 0
    again = run_cli("certs", "init", tmp_path, "--key-type", "ecdsa", "--force")
    assert again.exit_code == 0, again.output
    crl = _crl(tmp_path / "ca.crl")
    ca = x509.load_pem_x509_certificate((tmp_path / "ca.pem").read_bytes())
    assert crl.is_signature_valid(ca.public_key())  # type: ignore[arg-type]
    assert list(crl) == []
    assert f"{tmp_path / 'ca.crl'}" in again.stdout
    assert f"{tmp_path / 'orthanc.pem'} was issued by the CA this replaced" in again.stdout
    revoked = run_cli("certs", "revoke", tmp_path, "client")
    assert revoked.exit_code == 0, revoked.output
    assert [e.serial_number for e in _crl(tmp_path / "ca.crl")] == [
        _serial(tmp_path / "client.pem")]


def _pasted(line: str, command: str) -> list[str]:
    """The words a shell makes of ``line``, from the dicomnet ``command`` on."""
    words = shlex.split(line)
    return words[words.index(command):]


def test_commands_printed_to_paste_quote_a_folder_with_a_space(tmp_path: Path) -> None:
    """`certs init "my pki"` printed `--cert my pki/server.pem`, and the demo's "Try it
    by hand" the same with `--dir "my demo"`: pasted, the shell split each path in
    two ("No such option" or a missing file). Paths are quoted now."""
    folder = tmp_path / "my pki"
    init = run_cli("certs", "init", folder, "--key-type", "ecdsa")
    assert init.exit_code == 0, init.output
    [serve] = [line for line in init.stdout.splitlines() if " serve --tls" in line]
    assert _pasted(serve, "serve") == [
        "serve", "--tls", "--cert", str(folder / "server.pem"), "--key",
        str(folder / "server.key"), "--ca", str(folder / "ca.pem")]
    revoke = run_cli("certs", "revoke", folder, "client")
    assert revoke.exit_code == 0, revoke.output
    assert shlex.split(revoke.stdout.splitlines()[-1])[-2:] == ["--crl", str(folder / "ca.crl")]
    demo_dir = tmp_path / "my demo"
    demo = run_cli("demo", "--dir", demo_dir, "--count", "1")
    assert demo.exit_code == 0, demo.output
    [store] = [line for line in demo.stdout.splitlines() if " store localhost" in line]
    assert _pasted(store, "store")[:4] == ["store", "localhost", "2762", str(demo_dir / "input")]


def test_certs_take_the_key_password_from_a_file_as_the_network_commands_do(
        tmp_path: Path) -> None:
    """serve, echo and store read an encrypted key's password from --key-password-file;
    certs init, issue and revoke had only --password-env and the prompt, so the
    password a server reads from a file had to be put in the environment too."""
    secret = tmp_path / "pki-password"
    secret.write_text("s3cret\nnot the password\n")
    pki = tmp_path / "pki"
    init = run_cli("certs", "init", pki, "--key-type", "ecdsa", "--password-file", secret)
    assert init.exit_code == 0, init.output
    for key in ("ca.key", "server.key", "client.key"):
        serialization.load_pem_private_key((pki / key).read_bytes(), password=b"s3cret")
    [serve] = [line for line in init.stdout.splitlines() if " serve --tls" in line]
    assert _pasted(serve, "serve")[-2:] == ["--key-password-file", str(secret)]
    issue = run_cli("certs", "issue", pki, "peer", "--password-file", secret)
    assert issue.exit_code == 0, issue.output
    serialization.load_pem_private_key((pki / "peer.key").read_bytes(), password=b"s3cret")
    assert run_cli("certs", "revoke", pki, "peer", "--password-file", secret).exit_code == 0
    both = run_cli("certs", "revoke", pki, "--password-file", secret, "--password-env", "X")
    assert both.exit_code == 2
    assert "--password-env" in both.stderr and "--password-file" in both.stderr


def test_certs_password_prompt_without_a_terminal_says_what_to_give_instead(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`echo pw | dicomnet certs init pki --password` printed Python's GetPassWarning
    and "Password input may be echoed"; the network commands refuse to prompt
    without a terminal and name the flags that give the password. So do these."""
    monkeypatch.setattr(dicomnet.cli.common, "_stdin_is_tty", lambda: False)
    result = run_cli("certs", "init", tmp_path / "pki", "--password", input="pw\npw\n")
    assert result.exit_code == 2
    assert error_line(result) == (
        "error: --password asks on a terminal, and there is none: give --password-env VAR "
        "or --password-file FILE")
    assert not (tmp_path / "pki").exists()


@pytest.mark.parametrize(("given", "why"), [
    ("a b", "'a b' is neither an IP address nor a host name"),
    ("300.1.1.1", "'300.1.1.1' is neither an IP address nor a host name"),
    ("", "'' is neither an IP address nor a host name"),
    ("pacs..local", "'pacs..local' is neither an IP address nor a host name"),
])
def test_a_name_no_peer_could_match_is_refused_before_any_file(
        tmp_path: Path, given: str, why: str) -> None:
    """`certs init --server-name "a b"` (or `300.1.1.1`, a mistyped address) wrote a
    certificate naming DNS:a b, which no host name check ever matches, and an empty
    name failed with cryptography's "Attribute's length must be >= 1 and <= 64"."""
    result = run_cli("certs", "init", tmp_path / "pki", "--server-name", given)
    assert result.exit_code == 2
    assert error_line(result).startswith(f"error: --server-name {why}")
    assert not (tmp_path / "pki" / "ca.pem").exists()
    assert run_cli("certs", "init", tmp_path / "ok", "--key-type", "ecdsa").exit_code == 0
    issued = run_cli("certs", "issue", tmp_path / "ok", "peer", "--host-name", given)
    assert issued.exit_code == 2
    assert error_line(issued).startswith(f"error: --host-name {why}")
    assert not (tmp_path / "ok" / "peer.pem").exists()


def test_an_ipv6_address_in_brackets_is_an_address(tmp_path: Path) -> None:
    """`--host-name [::1]`, as a URL writes it, became the DNS name "[::1]", which
    no connection to ::1 matches; it is the IP address ::1 now, as is `::1`."""
    assert run_cli("certs", "init", tmp_path, "--key-type", "ecdsa",
                   "--server-name", "[::1]", "--server-name", "pacs-1.example.org",
                   "--server-name", "*.example.org").exit_code == 0
    cert = x509.load_pem_x509_certificate((tmp_path / "server.pem").read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["::1"]
    assert sans.get_values_for_type(x509.DNSName) == ["pacs-1.example.org", "*.example.org"]


def test_init_next_echo_reaches_the_local_server_whatever_the_certificate_names(
        tmp_path: Path) -> None:
    """With `--server-name pacs.local`, `certs init` told to run `echo pacs.local 2762
    ...` beside the `serve` it printed, which listens on 127.0.0.1: pasted, "cannot
    connect to pacs.local:2762: name or service not known". It connects to 127.0.0.1
    and checks the certificate for that name (--server-name) now."""
    result = run_cli("certs", "init", tmp_path, "--key-type", "ecdsa",
                     "--server-name", "pacs.local", "--server-name", "10.0.0.5")
    assert result.exit_code == 0, result.output
    [echo] = [line for line in result.stdout.splitlines() if " echo " in line]
    assert _pasted(echo, "echo")[:5] == ["echo", "127.0.0.1", "2762", "--server-name",
                                         "pacs.local"]
    local = run_cli("certs", "init", tmp_path / "local", "--key-type", "ecdsa",
                    "--server-name", "pacs.local", "--server-name", "localhost")
    [echo] = [line for line in local.stdout.splitlines() if " echo " in line]
    assert _pasted(echo, "echo")[:4] == ["echo", "localhost", "2762", "--tls"]
