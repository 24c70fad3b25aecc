"""dicomnet certs init / show."""

from __future__ import annotations

from pathlib import Path

from dicomnet.security.certificates import CertificateInfo, key_is_encrypted

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
                 info.sha256_fingerprint, "expires"):
        assert text in human.stdout
    doc = json_out(run_cli("certs", "show", tmp_path / "ca.pem", "--json"))
    assert doc["is_ca"] is True
    assert doc["subject"] == doc["issuer"]
    assert len(doc["sha256_fingerprint"].split(":")) == 32


def test_show_rejects_a_non_certificate(tmp_path: Path) -> None:
    bogus = tmp_path / "not-a-cert.pem"
    bogus.write_text("hello\n")
    result = run_cli("certs", "show", bogus)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ")
    assert "no PEM certificate" in result.stderr
