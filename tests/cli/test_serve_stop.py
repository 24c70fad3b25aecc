"""dicomnet serve stopped by SIGTERM or Ctrl-C: what it does with an association in
the middle of a C-STORE, and with the signals that follow the first."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dicomnet.aio.client import associate
from dicomnet.cli.demo import write_synthetic_ct
from dicomnet.dimse.messages import CStoreRQ
from dicomnet.storage.part10 import read_part10
from dicomnet.ul.negotiation import ContextRequest
from tests.aio.helpers import run, wait_until

from .helpers import ROOT, leftovers

storage = pytest.importorskip("dicomnet.services.storage")
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"


async def _serve(output: Path, *launcher: str, options: tuple[str, ...] = ()
                 ) -> tuple[asyncio.subprocess.Process, int]:
    """``dicomnet serve --json`` in a child process (through ``launcher``, e.g.
    tests.cli.interrupt_at, if given), and its port once it listens."""
    command = ["-m", *launcher] if launcher else ["-m", "dicomnet.cli.main"]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, *command, "serve", "--port", "0", "--json", "--output", str(output),
        *options, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    line = await proc.stdout.readline()
    assert line, (await proc.communicate())[1].decode()
    started = json.loads(line)
    assert started["event"] == "listening"
    return proc, int(started["port"])


async def _stalled_store(port: int, path: Path, first: asyncio.Event) -> None:
    """C-STORE the data set of ``path``, of which only the first 2 MiB come: the
    server holds it in a temporary file, waiting for the rest."""
    info = read_part10(path)
    data = path.read_bytes()[info.dataset_offset:]

    async def chunks() -> AsyncIterator[bytes]:
        # The sender holds one chunk back (only the last PDV is marked last).
        for start in range(0, 2 << 20, 1 << 16):
            yield data[start:start + (1 << 16)]
        first.set()
        await asyncio.Event().wait()  # the rest never comes

    async with associate("127.0.0.1", port, contexts=[
            ContextRequest(CT_IMAGE_STORAGE, (EXPLICIT_LE,))]) as assoc:
        context = assoc.context_for(CT_IMAGE_STORAGE)
        await assoc.request_one(
            CStoreRQ(message_id=1, affected_sop_class_uid=CT_IMAGE_STORAGE,
                     affected_sop_instance_uid=info.sop_instance_uid),
            context.context_id, chunks=chunks())


def _instances(output: Path) -> int:
    with contextlib.closing(sqlite3.connect(output / "index.sqlite")) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        return int(db.execute("SELECT count(*) FROM instance").fetchone()[0])


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_stop_in_the_middle_of_a_store(signum: signal.Signals, tmp_path: Path) -> None:
    """With --drain-timeout 0, the association is aborted at once, the
    half-received object's temporary file removed, the index closed (no -wal or
    -shm left), and serve exits 0: it was asked to stop and did."""
    big = tmp_path / "big.dcm"
    write_synthetic_ct(big, number=1, study_uid="1.2.3", series_uid="1.2.3.4", size=1200)
    output = tmp_path / "store"

    async def main() -> tuple[int | None, bytes, bytes]:
        proc, port = await _serve(output, options=("--drain-timeout", "0"))
        first = asyncio.Event()
        client = asyncio.ensure_future(_stalled_store(port, big, first))
        try:
            await first.wait()
            await wait_until(lambda: any(p.name.endswith(".dicomnet-part")
                                         for p in output.rglob("*")),
                             "the server's temporary file", timeout=30)
            proc.send_signal(signum)
            out, err = await proc.communicate()  # bounded by run()'s timeout
        finally:
            client.cancel()
            with contextlib.suppress(BaseException):
                await client
        return proc.returncode, out, err

    code, out, err = run(main(), timeout=60)
    stderr = err.decode()
    assert code == 0, stderr
    assert json.loads(out.splitlines()[-1]) == {"event": "stopped", "drained": 0, "aborted": 1}
    assert "-> ANY-SCP: aborted (by us: server closing; the data set of a C-STORE-RQ for " in stderr
    assert " left unfinished, not stored), " in stderr
    assert "Traceback" not in stderr and "error:" not in stderr
    assert leftovers(output) == []
    assert _instances(output) == 0


@pytest.mark.parametrize(("points", "code", "said"), [
    # A second signal, during the stop: it goes on to its end, and says so.
    ("dicomnet.cli.serve:stop_server", 0, "stopping: the associations are being aborted"),
    # A third quits at once (a stop that would not end): 143, as a SIGTERM came.
    ("dicomnet.cli.serve:stop_server,dicomnet.cli.serve:_stopping", 143,
     "error: terminated (SIGTERM)"),
    # One once the stop is done, while asyncio closes its loop: still a clean stop
    # (it raised KeyboardInterrupt in the loop's clean-up: exit 130).
    ("asyncio.runners:Runner.close", 0, None),
], ids=["second", "third", "after"])
def test_signals_after_the_first(points: str, code: int, said: str | None,
                                 tmp_path: Path) -> None:
    """SIGTERM stops serve; Ctrl-C is sent at ``points`` of the stop after it."""
    output = tmp_path / "store"

    async def main() -> tuple[int | None, bytes, bytes]:
        proc, _ = await _serve(output, "tests.cli.interrupt_at", "SIGINT", points)
        proc.send_signal(signal.SIGTERM)
        out, err = await proc.communicate()
        return proc.returncode, out, err

    returncode, out, err = run(main(), timeout=60)
    stderr = err.decode()
    assert returncode == code, stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr
    last = json.loads(out.splitlines()[-1])
    if code == 0:
        assert last == {"event": "stopped", "drained": 0, "aborted": 0}
        assert leftovers(output) == []
        assert "error:" not in stderr
    else:
        assert last == {"event": "error", "error": "terminated (SIGTERM)", "exit_code": 143,
                        "interrupted": True}
        assert stderr.rstrip().splitlines()[-1] == said
    if said is not None:
        assert said in stderr
