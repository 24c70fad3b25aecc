"""``dicomnet serve`` killed (SIGKILL) after answering objects whose rows it had
not written: the next ``dicomnet serve`` on the store adds those rows itself,
while it listens, and says so on stderr (storage.recovery).

The window is made certain, not waited for: the killed server's index thread
never writes (its ``_write_index_rows`` waits forever), so every object it
answered Success for is a durable file without a row when it dies.
"""

from __future__ import annotations

import json
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

from pydicom.uid import ExplicitVRLittleEndian

from dicomnet.blocking import store
from dicomnet.services.storage import INDEX_NAME
from dicomnet.storage.recovery import CLOSED, NOT_CLOSED
from tests.cli.helpers import read_line
from tests.storage.dicomfiles import make_image, uid, write_part10
from tests.storage.test_recovery_start import record

#: ``dicomnet serve`` whose index rows are never written.
HELD = ("import sys, threading\n"
        "from dicomnet.services.storage import StorageSCP\n"
        "StorageSCP._write_index_rows = lambda self, rows: threading.Event().wait()\n"
        "from dicomnet.cli.main import main\n"
        "main(sys.argv[1:])\n")


def serve(store_folder: Path, *python: str) -> tuple[subprocess.Popen[str], int]:
    """``dicomnet serve --json`` on ``store_folder`` (``python``: how to run it),
    listening; its port."""
    proc = subprocess.Popen(
        [sys.executable, *python, "serve", "--port", "0", "--json", "--output",
         str(store_folder)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = read_line(proc.stdout, 30)  # type: ignore[arg-type]
    assert line, proc.communicate(timeout=10)
    started = json.loads(line)
    assert started["event"] == "listening"
    return proc, int(started["port"])


def rows(store_folder: Path) -> list[str]:
    with sqlite3.connect(store_folder / INDEX_NAME) as db:
        return [path for (path,) in db.execute(
            "SELECT relative_path FROM instance ORDER BY relative_path")]


def test_objects_answered_before_a_kill_get_their_rows_at_the_next_start(
        tmp_path: Path) -> None:
    sent = []
    for n in range(1, 5):
        sent.append(write_part10(tmp_path / "sent" / f"{n}.dcm",
                                 make_image(n, study=uid(1), series=uid(2)),
                                 str(ExplicitVRLittleEndian)))
    store_folder = tmp_path / "store"
    killed, port = serve(store_folder, "-c", HELD)
    try:
        results = store("127.0.0.1", port, sent)
        assert [result.status for result in results] == [0] * 4
    finally:
        killed.send_signal(signal.SIGKILL)
        killed.communicate(timeout=20)
    expected = sorted(f"{uid(1)}/{uid(2)}/{uid(9, n)}.dcm" for n in range(1, 5))
    assert all((store_folder / path).is_file() for path in expected)
    assert rows(store_folder) == []  # answered, durable, and without rows
    assert record(store_folder) == NOT_CLOSED

    proc, _ = serve(store_folder, "-m", "dicomnet.cli.main")
    lines: queue.SimpleQueue[str] = queue.SimpleQueue()  # stderr, read by a thread
    stderr = proc.stderr
    assert stderr is not None

    def read() -> None:
        for line in stderr:
            lines.put(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        said: list[str] = []
        while not said or "for objects without index rows ended" not in said[-1]:
            said.append(lines.get(timeout=60).rstrip("\n"))
        assert rows(store_folder) == expected  # while the server still runs
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
        reader.join(timeout=20)
        for pipe in (proc.stdout, proc.stderr):
            pipe.close()  # type: ignore[union-attr]
    assert proc.returncode == 0
    checks = [line for line in said if "objects without index rows" in line]
    assert len(checks) == 2
    assert checks[0].endswith(f"the previous server of {store_folder} stopped without "
                              "closing: checking 3 folder(s) for objects without index rows")
    assert checks[1].endswith(f"the check of {store_folder} for objects without index rows "
                              "ended: 4 row(s) added, 0 copy(ies) left without a row, 0 "
                              "file(s) unreadable")
    assert record(store_folder) == CLOSED
    assert rows(store_folder) == expected
