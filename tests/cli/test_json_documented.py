"""Every key of every --json document a command prints is named in its --help:
scripts are written from the help, and echo's and store's keys were not there."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from .helpers import json_out, read_line, reaped, run_cli, serve_that_must_refuse, terminated
from .test_help import _help


def _closed_port() -> int:
    """A loopback port nothing listens on (the OS's pick, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _undocumented(keys: Any, help_text: str) -> list[str]:
    """The keys not named as words in ``help_text`` (``count`` in ``--count`` is not)."""
    return [k for k in keys if not re.search(rf"(?<![\w-]){re.escape(k)}(?![\w-])", help_text)]


def test_echo_json_keys_are_in_its_help() -> None:
    result = run_cli("echo", "127.0.0.1", _closed_port(), "--json")
    assert result.exit_code == 3, result.output
    document = json_out(result)
    assert _undocumented(document, _help("echo")) == []


def test_store_json_keys_and_each_result_keys_are_in_its_help(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not DICOM\n")
    result = run_cli("store", "127.0.0.1", _closed_port(), tmp_path / "notes.txt", "--json")
    assert result.exit_code == 1, result.output
    document = json_out(result)
    text = _help("store")
    assert _undocumented(document, text) == []
    assert _undocumented(document["results"][0], text) == []


def test_serve_json_listening_and_error_keys_are_in_its_help(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "dicomnet.cli.main", "serve", "--port", "0", "--json",
         "--output", str(tmp_path / "store")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    with reaped(proc):
        listening = json.loads(read_line(proc.stdout, 30))  # type: ignore[arg-type]
        out, err = terminated(proc, 20)
    assert proc.returncode == 0, err
    stopped = json.loads(out.splitlines()[-1])
    assert stopped == {"event": "stopped", "drained": 0, "aborted": 0}
    assert listening["event"] == "listening"
    text = _help("serve")
    assert _undocumented(listening, text) == []
    assert _undocumented(stopped, text) == []

    (tmp_path / "a-file").write_text("")
    refused = serve_that_must_refuse(tmp_path, "--json", "--output", tmp_path / "a-file")
    assert refused.returncode == 2, refused.stderr
    error = json.loads(refused.stdout.splitlines()[-1])
    assert error["event"] == "error"
    assert _undocumented(error, text) == []
