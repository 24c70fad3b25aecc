"""dicomnet demo, end to end, in a temporary folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import json_out, run_cli

pytest.importorskip("dicomnet.services.storage")


def test_demo_json_end_to_end_then_reuses_pki(tmp_path: Path) -> None:
    result = run_cli("demo", "--dir", tmp_path, "--json", "--count", "2")
    assert result.exit_code == 0, result.output
    doc = json_out(result)
    assert doc["ok"] is True
    assert doc["problems"] == []
    assert doc["echo_status"] == 0
    client = doc["tls_client_view"]
    assert client["protocol"] in ("TLSv1.2", "TLSv1.3")
    assert client["cipher_suite"]
    assert "CN=localhost" in client["peer_certificates"][0]["subject"]
    # The server saw the client's certificate: mutual authentication happened.
    assert doc["tls_server_views"]
    assert "dicomnet client" in doc["tls_server_views"][0]["peer_certificates"][0]["subject"]
    assert len(doc["stored"]) == 2
    for item in doc["stored"]:
        assert item["pixel_data_identical"] is True
        assert Path(item["received"]).is_file()
    assert doc["pki_reused"] is False
    again = run_cli("demo", "--dir", tmp_path, "--json", "--count", "1")
    assert again.exit_code == 0, again.output
    assert json_out(again)["pki_reused"] is True


def test_demo_human_summary(tmp_path: Path) -> None:
    result = run_cli("demo", "--dir", tmp_path, "--count", "1")
    assert result.exit_code == 0, result.output
    for text in ("cipher suite", "encryption", "integrity", "as the server saw it",
                 "identical", "Demo passed"):
        assert text in result.stdout, text
