"""A Ctrl-C or SIGTERM that lands while --json's document is being written: the
document was cut where the write was, and the fallback one ({"error":
"interrupted", ...}) followed it, so stdout no longer parsed. The document is
written whole; the run's outcome, which it tells, stands."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import ROOT


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_the_json_write_leaves_one_whole_document(
        tmp_path: Path, signum: signal.Signals) -> None:
    # 400 files not DICOM: no peer needed, and a document (about 200 kB) larger
    # than a pipe holds, so that the writer waits in its write for us to read on.
    folder = tmp_path / "in"
    folder.mkdir()
    for n in range(400):
        (folder / f"note{n:03d}.txt").write_text("not DICOM")
    proc = subprocess.Popen(
        [sys.executable, "-m", "dicomnet.cli.main", "store", "127.0.0.1", str(_closed_port()),
         str(folder), "--json"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        first = os.read(proc.stdout.fileno(), 1)  # the document has begun
        assert first == b"{"
        proc.send_signal(signum)
        rest, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    doc = json.loads(first + rest)  # one document, whole
    assert (doc["total"], doc["failed"], doc["skipped"]) == (400, 400, 400)
    assert len(doc["results"]) == 400
    assert (doc["exit_code"], doc["interrupted"]) == (1, False)
    assert proc.returncode == 1, err.decode()
    assert b"Traceback" not in err
