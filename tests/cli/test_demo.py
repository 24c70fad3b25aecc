"""dicomnet demo, end to end, in a temporary folder."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import (
    ENDS,
    assert_ended,
    interrupted_at,
    json_out,
    leftovers,
    reaped,
    run_cli,
    terminated,
)

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


def _demo_in_child(directory: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "dicomnet.cli.main", "demo", "--dir", str(directory)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_demo_sigterm_stops_it_as_ctrl_c_does(tmp_path: Path) -> None:
    """SIGTERM (timeout(1), a CI job cancelled) killed the demo at once: exit -15,
    no word, its store's index left open (index.sqlite-wal). Now its server
    closes, the index with it, and it exits 143 with one line."""
    proc = _demo_in_child(tmp_path)
    with reaped(proc):
        assert proc.stdout is not None
        line = proc.stdout.readline()  # bounded by the demo itself, which never waits
        while line and not line.startswith("C-ECHO"):  # the server up, the echo done
            line = proc.stdout.readline()
        assert line, proc.stderr.read() if proc.stderr else ""
        _, err = terminated(proc, 60)
    assert proc.returncode == 143, err
    assert err.splitlines()[-1] == "error: terminated (SIGTERM)"
    assert "Traceback" not in err
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_demo_interrupted_while_it_checks_what_was_stored(signum: signal.Signals,
                                                          tmp_path: Path) -> None:
    """The signal's cancel reached the demo only as its server closed, and cut
    that short: the index stayed open. And --json printed nothing."""
    done = interrupted_at(signum, "dicomnet.cli.demo:_pixels_by_uid", "demo", "--dir",
                          tmp_path, "--count", "2", "--json")
    assert_ended(done, signum)
    message, code = ENDS[signum]
    doc = json.loads(done.stdout)
    assert (doc["ok"], doc["interrupted"], doc["error"], doc["exit_code"]) == (
        False, True, message, code)
    assert doc["echo_status"] == 0 and doc["tls_client_view"] is not None
    assert leftovers(tmp_path) == []


_FAKE_PYTHON = """#!/usr/bin/env bash
# Stands in for python3 and the venv's python: records how it was called; `-m venv
# DIR` makes DIR/bin/{python,dicomnet}, and that dicomnet records its folder.
echo "python $PWD $*" >> "$CALLS"
if [ "$1 $2" = "-m venv" ]; then
  mkdir -p "$3/bin"
  cp "$0" "$3/bin/python"
  printf '#!/usr/bin/env bash\\necho "dicomnet $PWD $*" >> "$CALLS"\\n' > "$3/bin/dicomnet"
  chmod +x "$3/bin/dicomnet"
fi
"""


def test_scripts_demo_writes_under_the_folder_it_is_run_from(tmp_path: Path) -> None:
    """scripts/demo changed into the repository before running the demo, so its
    ./dicomnet-demo/ (and a relative --dir) landed in the clone, not where the
    user ran it, and the commands it printed to do it by hand, relative to that
    folder, did not work from the user's. The venv and the install stay in the
    clone; the demo runs in the user's folder. A fresh clone (no .venv) first."""
    repo = Path(__file__).resolve().parents[2]
    clone = tmp_path / "clone"
    (clone / "scripts").mkdir(parents=True)
    shutil.copy2(repo / "scripts" / "demo", clone / "scripts" / "demo")
    fake = tmp_path / "python3"
    fake.write_text(_FAKE_PYTHON)
    fake.chmod(0o755)
    here = tmp_path / "work"
    here.mkdir()
    calls = tmp_path / "calls"
    env = {**os.environ, "PYTHON": str(fake), "CALLS": str(calls)}
    for _ in range(2):  # a fresh clone, then its venv reused
        done = subprocess.run([str(clone / "scripts" / "demo"), "--dir", "out", "--count", "1"],
                              cwd=here, env=env, capture_output=True, text=True, timeout=60,
                              check=False)
        assert done.returncode == 0, done.stderr
    venv = clone / ".venv"
    install = f"python {here} -m pip install -q --disable-pip-version-check -e {clone}"
    assert calls.read_text().splitlines() == [
        f"python {here} -m venv {venv}", install, f"dicomnet {here} demo --dir out --count 1",
        install, f"dicomnet {here} demo --dir out --count 1",
    ]
    assert not (here / ".venv").exists()


def test_the_commands_to_try_by_hand_name_a_dicomnet_that_runs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """scripts/demo runs the clone's .venv/bin/dicomnet, on no PATH: the commands
    it printed ("dicomnet serve ...") said "command not found" (found by the
    storage and certificates review)."""
    from dicomnet.cli.common import command_name

    bin_dir = tmp_path / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    script = bin_dir / "dicomnet"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert command_name(str(script)) == str(script)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    assert command_name(str(script)) == "dicomnet"
    assert command_name("-c").endswith(" -m dicomnet")


def test_demo_shows_the_server_name_sent_and_received(tmp_path: Path) -> None:
    """The demo prints what the handshake negotiated, on both sides, but its SNI
    line was missing: it connected to 127.0.0.1, for which no SNI is sent (RFC 6066
    3), and a link without SNI had no line at all. It now names the server as its
    certificate does (localhost), and both views say what was sent and received."""
    result = run_cli("demo", "--dir", tmp_path, "--count", "1")
    assert result.exit_code == 0, result.output
    client, server = result.stdout.split("Secure link, as the server saw it")
    client = client.split("Secure link, as the client saw it")[1]
    for view in (client, server):
        assert re.search(r"^  SNI +localhost$", view, re.MULTILINE), view
    doc = json_out(run_cli("demo", "--dir", tmp_path, "--count", "1", "--json"))
    assert doc["tls_client_view"]["sni"] == "localhost"
    assert {view["sni"] for view in doc["tls_server_views"]} == {"localhost"}
