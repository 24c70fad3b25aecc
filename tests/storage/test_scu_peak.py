"""What ``store_paths`` holds at its peak per file: every file is listed and its
header read before the first association (its contexts are proposed from them),
so a run of an archive's hundreds of thousands of files holds them all at once.

Measured with tracemalloc (bytes, not time), in a process of its own, when the
first association starts sending, 2,000 small files (paths of ~85 characters) to
``dicomnet serve`` in another, per file. On CPython 3.11 about 730 bytes (770 when
traced in the pytest process): the result (~560 here) and its plan (the SOP class
and transfer syntax shared, the data set's offset, the file's size and identity
packed in 81 bytes); 1,270 when each file's ``Part10Info``, with its ``Path``, was
kept until its turn."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from dicomnet.cli.jsontext import path_fields
from dicomnet.cli.output import in_cli_words
from dicomnet.cli.store import _report, _status_text
from dicomnet.services.store_listing import listed_texts
from dicomnet.services.store_scu import StoreResult, collect_files
from tests.cli.test_store_output import _network_options
from tests.storage.test_scu_memory import COUNT, _files

#: About 1.3 times what is held per file (~770 on CPython 3.11; 1,270 when every
#: header was kept whole).
BOUND = 1000


@contextlib.contextmanager
def _serve(store: Path) -> Iterator[int]:
    """``dicomnet serve --no-fsync`` in a subprocess (a peer in the traced process
    would count in the peak), its --json lines read away as they come: its port."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "dicomnet.cli.main", "serve", "--port", "0", "--json",
         "--no-fsync", "--output", str(store)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    try:
        port = int(json.loads(proc.stdout.readline())["port"])
        drain = threading.Thread(target=proc.stdout.read, daemon=True)
        drain.start()
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        proc.stdout.close()


#: Run in a process of its own, as reindex's peak is (test_reindex_memory):
#: tracemalloc counts every thread's allocations, and a thread another test left
#: behind in this process would count in the figure.
_TRACED = """
import asyncio, gc, json, sys, tracemalloc
from pathlib import Path
from dicomnet.services import store_batch, store_scu
port, folder, warm = int(sys.argv[1]), Path(sys.argv[2]), [Path(p) for p in sys.argv[3:]]
held = []
send = store_batch.send_batch

async def first(*args):
    if not held:
        gc.collect()
        held.append(tracemalloc.get_traced_memory()[0])
    await send(*args)

store_scu.send_batch = first

def run(paths):
    async def bounded():
        async with asyncio.timeout(120):
            return await store_scu.store_paths("127.0.0.1", port, paths)
    return asyncio.run(bounded())

run(warm)  # imports done
held.clear()
gc.collect()
tracemalloc.start()
try:
    start = tracemalloc.get_traced_memory()[0]
    results = run(folder)
finally:
    tracemalloc.stop()
print(json.dumps({"held": held[0] - start,
                  "results": [[str(r.path), r.ok, r.sent] for r in results]}))
"""


def test_a_run_peaks_at_a_few_hundred_bytes_per_file(tmp_path: Path) -> None:
    """What the run holds when its first association starts sending: every
    file's result and plan, at once (its peak, less what any run allocates
    whatever its size: its PDUs, the table of interned strings that CPython
    resizes now and then). Traced in a process of its own (``_TRACED``)."""
    files = _files(tmp_path / "run", COUNT)
    with _serve(tmp_path / "store") as port:
        done = subprocess.run(
            [sys.executable, "-W", "error", "-c", _TRACED, str(port), str(tmp_path / "run"),
             *map(str, files[:3])],
            check=False, capture_output=True, text=True, timeout=300,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.returncode == 0, done.stderr
    traced = json.loads(done.stdout)
    assert traced["results"] == [[str(f), True, True] for f in files]
    per_file = traced["held"] / COUNT
    assert per_file < BOUND, f"{per_file:.0f} bytes per file held"


def test_json_results_are_written_one_at_a_time_as_before(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--json's "results", made as the document is written: each as it was
    (a path with a byte that is not UTF-8 given as valid text and its bytes)."""
    odd = Path(tmp_path / "caf\udce9.dcm")
    results = [StoreResult(path=tmp_path / "a.dcm", sop_instance_uid="1.2", status=0, ok=True,
                           sent=True, size=10),
               StoreResult(path=odd, status=0xA700, error="Out of resources", retryable=True),
               StoreResult(path=tmp_path / "b.dcm", error="not a DICOM Part 10 file: x",
                           not_dicom=True)]
    net = replace(_network_options(tls=False, called_aet="P"), json=True)
    _report(results, host="pacs", port=104, net=net,
            sizes=[100, 200, 300], links=[], seconds=1.0, exit_code=1)
    doc = json.loads(capsys.readouterr().out)
    assert doc["results"] == [
        r.to_dict() | path_fields("path", r.path)
        | {"status_text": _status_text(r), "error": r.error and in_cli_words(r.error)}
        for r in results]
    assert doc["results"][1]["path"] == str(tmp_path / "caf\\xe9.dcm")
    assert (doc["total"], doc["stored"], doc["bytes"]) == (3, 1, 100)


def test_the_listing_as_text_is_collect_files_spelled_as_text(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``listed_texts`` (what a run keeps of its listing) spells each path as
    ``str()`` of ``collect_files``' Path, from "." and "./" too."""
    (tmp_path / "a" / ".b").mkdir(parents=True)
    for name in ("a/x.dcm", "a/.b/y.dcm", "z.dcm"):
        (tmp_path / name).write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    for given in (".", "./", "a/", "./a//x.dcm", str(tmp_path), ["z.dcm", "."]):
        assert listed_texts(given) == [str(p) for p in collect_files(given)]
    assert listed_texts(".") == ["a/.b/y.dcm", "a/x.dcm", "z.dcm"]
