"""dicomnet certs init / issue / show."""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import dicomnet.cli.common
from dicomnet.aio.client import associate
from dicomnet.security.certificates import CertificateInfo, key_is_encrypted
from dicomnet.security.config import TLSConfig
from tests.aio.helpers import LOOPBACK, run, running_server

from .helpers import json_out, run_cli

FIVE = ("ca.pem", "server.pem", "server.key", "client.pem", "client.key")


def test_init_writes_pki_and_suggests_next_commands(tmp_path: Path) -> None:
    result = run_cli("certs", "init", tmp_path / "pki")
    assert result.exit_code == 0, result.output
    for name in FIVE:
        assert (tmp_path / "pki" / name).is_file(), name
    assert (tmp_path / "pki" / "server.key").stat().st_mode & 0o077 == 0
    server = CertificateInfo.from_pem_file(tmp_path / "pki" / "server.pem")
    assert set(server.sans) == {"localhost", "127.0.0.1"}
    assert (server.public_key_type, server.public_key_bits) == ("RSA", 2048)
    assert "dicomnet serve --tls" in result.stdout
    assert "dicomnet echo" in result.stdout


def test_init_suggests_the_command_that_ran(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """As the demo does: a dicomnet on no PATH (a clone's .venv/bin/dicomnet) is
    named by its path; it said "dicomnet serve ...", which the shell did not find."""
    script = tmp_path / "venv" / "bin" / "dicomnet"
    script.parent.mkdir(parents=True)
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    monkeypatch.setattr("sys.argv", [str(script), "certs", "init"])
    pki = tmp_path / "pki"
    result = run_cli("certs", "init", pki)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert f"  {script} serve --tls --cert {pki / 'server.pem'} --key {pki / 'server.key'} " \
        f"--ca {pki / 'ca.pem'}" in lines
    assert f"  {script} echo localhost 2762 --tls --cert {pki / 'client.pem'} --key " \
        f"{pki / 'client.key'} --ca {pki / 'ca.pem'}" in lines


def test_init_refuses_to_overwrite_unless_forced(tmp_path: Path) -> None:
    assert run_cli("certs", "init", tmp_path, "--key-type", "ecdsa").exit_code == 0
    before = (tmp_path / "ca.pem").read_bytes()
    again = run_cli("certs", "init", tmp_path, "--key-type", "ecdsa")
    assert again.exit_code == 2
    assert "refusing to overwrite" in again.stderr
    assert "Traceback" not in again.output
    assert (tmp_path / "ca.pem").read_bytes() == before
    forced = run_cli("certs", "init", tmp_path, "--key-type", "ecdsa", "--force")
    assert forced.exit_code == 0, forced.output
    assert (tmp_path / "ca.pem").read_bytes() != before


def test_init_options_json_names_and_password(tmp_path: Path) -> None:
    result = run_cli("certs", "init", tmp_path, "--key-type", "ecdsa", "--json", "--days", "30",
                     "--server-name", "pacs.local", "--server-name", "10.0.0.5",
                     "--password-env", "PKI_PW", env={"PKI_PW": "pw"})
    assert result.exit_code == 0, result.output
    doc = json_out(result)
    assert doc["encrypted"] is True
    assert Path(doc["server_key"]).is_file()
    assert key_is_encrypted(Path(doc["client_key"]).read_bytes())
    server = CertificateInfo.from_pem_file(doc["server_cert"])
    assert set(server.sans) == {"pacs.local", "10.0.0.5"}
    assert server.public_key_type == "ECDSA"
    assert 29 <= (server.not_after - server.not_before).days <= 31


def test_init_password_env_unset_is_usage_error(tmp_path: Path) -> None:
    result = run_cli("certs", "init", tmp_path, "--password-env", "DICOMNET_TEST_UNSET_VAR")
    assert result.exit_code == 2
    assert "DICOMNET_TEST_UNSET_VAR" in result.output
    assert not (tmp_path / "ca.pem").exists()


def test_show_human_and_json(tmp_path: Path) -> None:
    assert run_cli("certs", "init", tmp_path, "--key-type", "ecdsa").exit_code == 0
    info = CertificateInfo.from_pem_file(tmp_path / "server.pem")
    human = run_cli("certs", "show", tmp_path / "server.pem")
    assert human.exit_code == 0, human.output
    for text in ("CN=localhost", "dicomnet development CA", "127.0.0.1",
                 info.sha256_fingerprint, "expires", "usage       serverAuth"):
        assert text in human.stdout
    doc = json_out(run_cli("certs", "show", tmp_path / "ca.pem", "--json"))
    assert doc["is_ca"] is True
    assert doc["subject"] == doc["issuer"]
    assert doc["extended_key_usage"] == []  # a CA certificate has none here
    assert len(doc["sha256_fingerprint"].split(":")) == 32


def test_show_rejects_a_non_certificate(tmp_path: Path) -> None:
    bogus = tmp_path / "not-a-cert.pem"
    bogus.write_text("hello\n")
    result = run_cli("certs", "show", bogus)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ")
    assert "no PEM certificate" in result.stderr


# -- certs issue ---------------------------------------------------------------------------


def _load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_issue_signs_a_certificate_for_both_roles_with_the_pki_ca(tmp_path: Path) -> None:
    assert run_cli("certs", "init", tmp_path, "--key-type", "ecdsa").exit_code == 0
    result = run_cli("certs", "issue", tmp_path, "orthanc", "--host-name", "orthanc.local",
                     "--host-name", "10.0.0.7", "--json")
    assert result.exit_code == 0, result.output
    doc = json_out(result)
    cert_path, key_path = Path(doc["cert"]), Path(doc["key"])
    assert (cert_path, key_path) == (tmp_path / "orthanc.pem", tmp_path / "orthanc.key")
    assert key_path.stat().st_mode & 0o077 == 0
    issued = _load(cert_path)
    issued.verify_directly_issued_by(_load(tmp_path / "ca.pem"))  # raises if not
    info = CertificateInfo.from_pem_file(cert_path)
    assert info.extended_key_usage == ("serverAuth", "clientAuth")
    assert info.common_name == "orthanc"
    assert set(info.sans) == {"orthanc.local", "10.0.0.7"}
    assert info.public_key_type == "ECDSA"  # the CA's key type
    assert not info.is_ca
    # Serial numbers never repeat one the CA gave before.
    serials = {CertificateInfo.from_pem_file(tmp_path / f"{n}.pem").serial
               for n in ("server", "client", "orthanc")}
    assert len(serials) == 3


@pytest.mark.parametrize(("role", "usages", "sans"), [
    ("server", ("serverAuth",), {"localhost", "127.0.0.1"}),
    ("client", ("clientAuth",), set()),
])
def test_issue_one_role(tmp_path: Path, role: str, usages: tuple[str, ...],
                        sans: set[str]) -> None:
    assert run_cli("certs", "init", tmp_path).exit_code == 0
    result = run_cli("certs", "issue", tmp_path, f"peer-{role}", "--role", role)
    assert result.exit_code == 0, result.output
    info = CertificateInfo.from_pem_file(tmp_path / f"peer-{role}.pem")
    assert info.extended_key_usage == usages
    assert set(info.sans) == sans
    assert ", ".join(usages) in result.stdout


def test_issue_refusals_touch_nothing(tmp_path: Path) -> None:
    no_pki = run_cli("certs", "issue", tmp_path, "peer")
    assert no_pki.exit_code == 2
    assert "certs init" in no_pki.stderr
    assert run_cli("certs", "init", tmp_path).exit_code == 0
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    for name, says in (("ca", "the CA's own"), ("../evil", "letters, digits"),
                       ("/etc/x", "letters, digits"), (".hidden", "letters, digits"),
                       ("server", "refusing to overwrite")):
        refused = run_cli("certs", "issue", tmp_path, name)
        assert refused.exit_code == 2, (name, refused.output)
        assert says in refused.stderr, (name, refused.stderr)
        assert "Traceback" not in refused.output
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    assert not (tmp_path.parent / "evil.pem").exists()
    forced = run_cli("certs", "issue", tmp_path, "server", "--force")
    assert forced.exit_code == 0, forced.output
    assert CertificateInfo.from_pem_file(tmp_path / "server.pem").extended_key_usage == (
        "serverAuth", "clientAuth")


def test_issue_from_an_encrypted_ca_needs_its_password(tmp_path: Path) -> None:
    env = {"PKI_PW": "s3cret", "WRONG_PW": "nope"}
    assert run_cli("certs", "init", tmp_path, "--password-env", "PKI_PW", env=env).exit_code == 0
    missing = run_cli("certs", "issue", tmp_path, "peer", env=env)
    assert missing.exit_code == 2
    assert "ca.key is encrypted" in missing.stderr
    wrong = run_cli("certs", "issue", tmp_path, "peer", "--password-env", "WRONG_PW", env=env)
    assert wrong.exit_code == 2
    assert "wrong password" in wrong.stderr
    assert not (tmp_path / "peer.pem").exists()
    done = run_cli("certs", "issue", tmp_path, "peer", "--password-env", "PKI_PW", env=env)
    assert done.exit_code == 0, done.output
    assert key_is_encrypted((tmp_path / "peer.key").read_bytes())  # as the others


def test_an_issued_certificate_serves_and_connects_over_mutual_tls(tmp_path: Path) -> None:
    """The point of --role both: the same certificate is accepted by a dicomnet
    server from a client, and by a dicomnet client from a server."""
    assert run_cli("certs", "init", tmp_path).exit_code == 0
    assert run_cli("certs", "issue", tmp_path, "peer").exit_code == 0
    peer = TLSConfig(certfile=tmp_path / "peer.pem", keyfile=tmp_path / "peer.key",
                     cafile=tmp_path / "ca.pem", server_hostname="localhost")

    async def echo(server_tls: TLSConfig, client_tls: TLSConfig) -> int:
        async with running_server(tls=server_tls) as server, \
                associate(LOOPBACK, server.port, tls=client_tls) as assoc:
            return int(await assoc.echo())

    ours_server = TLSConfig(certfile=tmp_path / "server.pem", keyfile=tmp_path / "server.key",
                            cafile=tmp_path / "ca.pem")
    ours_client = TLSConfig(certfile=tmp_path / "client.pem", keyfile=tmp_path / "client.key",
                            cafile=tmp_path / "ca.pem", server_hostname="localhost")
    assert run(echo(ours_server, peer)) == 0  # the peer as a client
    assert run(echo(TLSConfig(certfile=tmp_path / "peer.pem", keyfile=tmp_path / "peer.key",
                              cafile=tmp_path / "ca.pem"), ours_client)) == 0  # as a server


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """stdin taken for a terminal: --password asks only there (CliRunner's is none)."""
    monkeypatch.setattr(dicomnet.cli.common, "_stdin_is_tty", lambda: True)


@pytest.mark.usefixtures("terminal")
def test_init_password_asked_twice_until_both_agree(tmp_path: Path) -> None:
    # Empty answers and a mismatch ask again; the keys get the password typed twice.
    result = run_cli("certs", "init", tmp_path, "--key-type", "ecdsa", "--password",
                     input="\none\ntwo\nsecond\nsecond\n")
    assert result.exit_code == 0, result.output
    assert "the two passwords differ" in result.stderr
    key = (tmp_path / "client.key").read_bytes()
    assert key_is_encrypted(key)
    serialization.load_pem_private_key(key, password=b"second")


@pytest.mark.usefixtures("terminal")
def test_init_password_prompt_at_end_of_input_is_usage_error(tmp_path: Path) -> None:
    result = run_cli("certs", "init", tmp_path, "--password", input="only-once\n")
    assert result.exit_code == 2
    assert "no password given" in result.stderr
    assert not (tmp_path / "ca.pem").exists()


def _issue_with_serial(pki: Path, name: str, serial: int) -> Path:
    """A client certificate signed by the PKI's CA (ca.key unencrypted) with a
    chosen serial number, written to ``pki/name.pem``."""
    ca = _load(pki / "ca.pem")
    ca_key = serialization.load_pem_private_key((pki / "ca.key").read_bytes(), None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca.subject).public_key(key.public_key()).serial_number(serial)
            .not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .sign(ca_key, hashes.SHA256()))  # type: ignore[arg-type]
    path = pki / f"{name}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


@pytest.mark.parametrize("serial", [0x0ABC, 0x05, 0x80, 2**159 - 1, None],
                         ids=["odd-digits", "one-digit", "high-bit", "long", "issued"])
def test_a_serial_is_written_one_way_everywhere_as_openssl_prints_it(
        tmp_path: Path, serial: int | None) -> None:
    """certs show --json gave the serial as a decimal integer (as did the TLS JSON),
    certs show text and certs revoke as hex without OpenSSL's leading zero (ABC
    for OpenSSL's 0ABC): a script could not match a certificate to the CRL. Now
    uppercase hex in whole bytes, as `openssl x509 -serial` prints it."""
    assert run_cli("certs", "init", tmp_path, "--key-type", "ecdsa").exit_code == 0
    if serial is None:
        assert run_cli("certs", "issue", tmp_path, "peer", "--role", "client").exit_code == 0
        path = tmp_path / "peer.pem"
    else:
        path = _issue_with_serial(tmp_path, "peer", serial)
    openssl = subprocess.run(["openssl", "x509", "-serial", "-noout", "-in", str(path)],
                             capture_output=True, text=True, check=True).stdout.strip()
    assert openssl.startswith("serial=")
    expected = openssl.removeprefix("serial=")
    if serial is not None:
        assert expected == {0x0ABC: "0ABC", 0x05: "05", 0x80: "80"}.get(serial, "7F" + "F" * 38)
    shown = json_out(run_cli("certs", "show", path, "--json"))["serial"]
    assert shown == expected
    assert CertificateInfo.from_pem_file(path).to_dict()["serial"] == expected
    text = run_cli("certs", "show", path)
    assert f"  serial      {expected}\n" in text.stdout
    said = run_cli("certs", "revoke", tmp_path, "peer")
    assert said.exit_code == 0, said.output
    assert f"1 certificate(s) revoked (added now: {expected})" in said.stdout
    renewed = run_cli("certs", "revoke", tmp_path, "peer", "--json")
    assert (json_out(renewed)["added"], json_out(renewed)["revoked"]) == ([], [expected])
    listed = subprocess.run(["openssl", "crl", "-text", "-noout", "-in", str(tmp_path / "ca.crl")],
                            capture_output=True, text=True, check=True).stdout
    assert f"Serial Number: {expected}\n" in listed
