"""dicomnet serve whose stdout (--json) or stderr (the log) is a pipe nobody reads
for a while: it goes on serving. Its lines wait in memory (up to a bound) and
go out when the reader comes back, in their order; a reader that never comes
back does not hold the server's stop."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.storage.helpers import make_dataset, write_part10_file

from .helpers import read_line, reaped, terminated

#: UIDs of 64 characters: each object's lines name them (the log's three times).
UID = "1.2.826.0.1.3680043.8.498.77." + "1" * 31
STUDY, SERIES = UID[:-4] + "8888", UID[:-4] + "9999"
#: Objects sent: their "stored" lines (~700 bytes each) are several times what a
#: pipe holds (64 KiB on Linux), their log lines as duplicates (~350) more than it.
OBJECTS = 300


def _files(folder: Path) -> Path:
    folder.mkdir()
    for n in range(OBJECTS):
        write_part10_file(folder / f"{n:03}.dcm", make_dataset(
            sop_instance_uid=f"{UID[:-3]}{n:03}", study_uid=STUDY, series_uid=SERIES))
    return folder


def _serve(tmp_path: Path, *options: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "dicomnet.cli.main", "serve", "--port", "0", "--json",
         "--no-fsync", "--output", str(tmp_path / "store"), *options],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _store(folder: Path, port: int) -> tuple[dict[str, Any], float]:
    """``dicomnet store --json`` of ``folder``; its document and how long it took.
    --timeout 20: a server stuck writing its output would answer none."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "dicomnet.cli.main", "store", "127.0.0.1", str(port),
         str(folder), "--json", "--timeout", "20"],
        capture_output=True, text=True, timeout=90, check=False)
    document: dict[str, Any] = json.loads(done.stdout)
    return document, time.monotonic() - started


def _stop(proc: subprocess.Popen[str]) -> tuple[str, str, float]:
    started = time.monotonic()
    out, err = terminated(proc, 30)
    return out, err, time.monotonic() - started


def test_serve_stdout_not_read_still_serves_and_keeps_every_event(tmp_path: Path) -> None:
    folder = _files(tmp_path / "in")
    proc = _serve(tmp_path)
    with reaped(proc):
        port = json.loads(read_line(proc.stdout, 30))["port"]  # type: ignore[arg-type]
        # stdout is read no more until the store has ended.
        document, seconds = _store(folder, port)
        assert (document["exit_code"], document["stored"]) == (0, OBJECTS), document["error"]
        assert seconds < 15  # far below the 20 s a stuck server would take
        out, err, stopping = _stop(proc)
    assert proc.returncode == 0, err
    assert stopping < 10
    events = [json.loads(line)["event"] for line in out.splitlines()]
    # Under the bound: none dropped, every one in its order, the stop last.
    assert events == ["association_accepted", *["stored"] * OBJECTS, "association_ended",
                      "stopped"]
    assert "Traceback" not in err


def test_serve_stderr_not_read_still_serves(tmp_path: Path) -> None:
    folder = _files(tmp_path / "in")
    proc = _serve(tmp_path, "-v")
    out: list[str] = []
    try:
        with reaped(proc):
            assert proc.stdout is not None
            port = json.loads(read_line(proc.stdout, 30))["port"]
            # stdout is read all along (its own test is above); stderr not until the end.
            reader = threading.Thread(target=lambda: out.extend(proc.stdout or ()), daemon=True)
            reader.start()
            _store(folder, port)
            # Sent again: each a duplicate kept, answered Success, with a log line of its own.
            document, seconds = _store(folder, port)
            assert (document["exit_code"], document["stored"]) == (0, OBJECTS), document["error"]
            assert seconds < 15
            # Not communicate(): it would read stdout too, racing the reader for the
            # last line; stderr alone is read here, in a thread, from the signal on.
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            errs: list[str] = []
            assert proc.stderr is not None
            stderr = proc.stderr
            drain = threading.Thread(target=lambda: errs.append(stderr.read()), daemon=True)
            drain.start()
            proc.wait(timeout=30)
            stopping = time.monotonic() - started
            drain.join(10)
            reader.join(10)
            err = "".join(errs)
    finally:
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
    assert proc.returncode == 0, err
    assert stopping < 10
    assert out[-1] == '{"event": "stopped", "drained": 0, "aborted": 0}\n'
    assert err.count("(duplicates policy keep)") == OBJECTS  # the log's lines, all there
    assert "Traceback" not in err


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_serve_whose_reader_never_comes_back_stops_promptly(tmp_path: Path,
                                                            stream: str) -> None:
    """The reader is there but never reads: the stop waits a few seconds for it,
    then exits all the same."""
    folder = _files(tmp_path / "in")
    proc = _serve(tmp_path)
    try:
        port = json.loads(read_line(proc.stdout, 30))["port"]  # type: ignore[arg-type]
        for _ in range(2 if stream == "stderr" else 1):  # the duplicates' log lines
            document, _ = _store(folder, port)
            assert document["stored"] == OBJECTS, document["error"]
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)  # neither pipe read
        assert time.monotonic() - started < 15
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)
    assert proc.returncode == 0
