"""dicomnet serve --json: a line per association accepted and ended, and per
connection refused before it associated, parsed as a script would."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from dicomnet.security.certificates import DevPKI
from tests.storage.helpers import make_dataset, write_part10_file

from .helpers import client_tls_args, read_line, reaped, run_cli, terminated

UID = "1.2.826.0.1.3680043.8.498."


def test_serve_json_says_each_association_and_each_refusal(pki: DevPKI,
                                                           tmp_path: Path) -> None:
    # Two files with one SOP Instance UID: the second is refused (0111H, --duplicates
    # reject), so the association's answers are a success and a failure.
    (tmp_path / "in").mkdir()
    for name in ("a", "b"):
        write_part10_file(tmp_path / "in" / f"{name}.dcm", make_dataset(sop_instance_uid=UID + "7"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "dicomnet.cli.main", "serve", "--port", "0", "--json",
         "--output", str(tmp_path / "store"), "--tls", "--cert", str(pki.server_cert),
         "--key", str(pki.server_key), "--ca", str(pki.ca_cert), "--aet", "ARCHIVE",
         "--allow-aet", "SENDER", "--duplicates", "reject"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    with reaped(proc):
        port = json.loads(read_line(proc.stdout, 30))["port"]  # type: ignore[arg-type]
        sent = run_cli("store", "127.0.0.1", port, tmp_path / "in", "--aet", "SENDER",
                       "--called-aet", "ARCHIVE", *client_tls_args(pki))
        assert sent.exit_code == 1, sent.output  # the duplicate
        other = run_cli("echo", "127.0.0.1", port, "--aet", "OTHER", *client_tls_args(pki))
        no_cert = run_cli("echo", "127.0.0.1", port, "--tls", "--ca", pki.ca_cert)
        plain = run_cli("echo", "127.0.0.1", port)
        assert (other.exit_code, no_cert.exit_code, plain.exit_code) != (0, 0, 0)
        out, err = terminated(proc, 20)
    assert proc.returncode == 0, err
    events: list[dict[str, Any]] = [json.loads(line) for line in out.splitlines()]
    assert [e["event"] for e in events] == [
        "association_accepted", "stored", "refused", "association_ended", "connection_refused",
        "connection_refused", "connection_refused", "stopped"]
    accepted, _, duplicate, ended, rejected, tls_refused, plain_refused, _ = events
    assert (duplicate["status"], duplicate["calling_aet"]) == ("0x0111", "SENDER")
    assert duplicate["tls"] == accepted["tls"]
    link = {"tls": accepted["tls"], "cipher_suite": accepted["cipher_suite"],
            "client_cert": accepted["client_cert"]}
    assert accepted["tls"] in ("TLSv1.2", "TLSv1.3") and accepted["cipher_suite"]
    assert "CN=dicomnet client" in accepted["client_cert"]
    assert accepted["peer"].startswith("127.0.0.1:")
    assert (accepted["calling_aet"], accepted["called_aet"], accepted["contexts"]) == (
        "SENDER", "ARCHIVE", 3)  # the SOP Class: its syntax, Little Endian, the last resort
    # The window granted (PS3.7 D.3.3.3): dicomnet store asks 32, serve grants 32.
    assert accepted["async_window"] == 32
    assert {k: ended[k] for k in link} == link
    assert (ended["peer"], ended["calling_aet"], ended["called_aet"]) == (
        accepted["peer"], "SENDER", "ARCHIVE")
    assert (ended["how"], ended["reason"]) == ("released", None)
    assert (ended["messages"], ended["objects"], ended["unanswered"]) == (2, 2, 0)
    assert ended["answers"] == {"0x0000": 1, "0x0111": 1}
    # Both data sets came in whole (the files less their preamble and meta), and
    # the association's PDUs around them.
    data = sum(p.stat().st_size for p in (tmp_path / "in").iterdir())
    assert data - 1024 < ended["bytes_received"] < data + 4096
    assert ended["seconds"] >= 0
    assert rejected["stage"] == "association"
    assert (rejected["calling_aet"], rejected["called_aet"]) == ("OTHER", "ANY-SCP")
    assert "calling AE title not recognized" in rejected["reason"]
    assert rejected["tls"] == accepted["tls"]  # rejected after the handshake
    assert tls_refused["stage"] == "tls"
    assert "no certificate" in tls_refused["reason"]
    assert tls_refused["reason"].endswith("(--peer-cert required)")  # the CLI's words, as its log
    assert (tls_refused["tls"], tls_refused["calling_aet"]) == (None, None)
    assert plain_refused["stage"] == "tls"
    assert "the peer spoke plain DICOM" in plain_refused["reason"]
