"""Review of ``dicomnet serve`` by use (session 26): what an operator stopping,
starting and watching the server sees, pinned down where it was wrong."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from dicomnet.aio.client import associate
from dicomnet.aio.server import serve
from dicomnet.aio.server_events import AssociationEnded, ConnectionEvent
from dicomnet.errors import AssociationRejected, DicomNetError
from dicomnet.services.storage import StorageSCP
from dicomnet.storage import files
from dicomnet.ul.negotiation import ContextRequest
from tests.aio.helpers import LOOPBACK, association_lines, run
from tests.storage.dicomfiles import SECONDARY_CAPTURE, make_image

from .helpers import ROOT, leftovers
from .test_serve_drain import start_serve

CONTEXTS = [ContextRequest(SECONDARY_CAPTURE, ("1.2.840.10008.1.2.1",))]


def test_closing_again_while_a_store_finishes_still_logs_the_associations_end(
        tmp_path: Path, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``close()`` again while an aborted association waits for its store to
    finish (what a second SIGTERM does to ``dicomnet serve``: drain_server,
    drain and stop_server each close the server) cut that wait short: the
    association had no end line in the log nor event in --json, and its slot
    and connection were never given back."""
    caplog.set_level(logging.INFO, logger="dicomnet.aio")
    output = tmp_path / "store"
    events: list[ConnectionEvent] = []
    # The store's last step, in its worker thread, held until the server closed:
    # a disk slow to sync, which the association's end waits for.
    entered, release = threading.Event(), threading.Event()
    sync_folder = files._fsync_dir

    def slow_sync(path: Path) -> None:
        entered.set()
        release.wait(20)
        sync_folder(path)

    monkeypatch.setattr(files, "_fsync_dir", slow_sync)

    async def main() -> None:
        scp = StorageSCP(output)
        server = await serve(host=LOOPBACK, port=0, ae_title="DICOMNET", providers=[scp],
                             on_connection_event=events.append)
        try:
            with contextlib.suppress(DicomNetError):
                async with associate(LOOPBACK, server.port, contexts=CONTEXTS) as assoc:
                    storing = asyncio.ensure_future(assoc.store(make_image(1)))
                    await asyncio.get_running_loop().run_in_executor(None, entered.wait, 20)
                    server.close()
                    for _ in range(5):  # turns later, as drain() and stop_server() do
                        await asyncio.sleep(0.01)
                        server.close()
                    release.set()
                    await server.wait_closed()
                    with contextlib.suppress(DicomNetError):
                        await storing
            assert server.active_associations == 0
        finally:
            release.set()
            server.close()
            await server.wait_closed()

    run(main(), timeout=30)
    ended = [e for e in events if isinstance(e, AssociationEnded)]
    assert [(e.how, e.reason) for e in ended] == [("aborted", "server closing")]
    lines = association_lines(caplog)
    assert len(lines) == 1 and "aborted (by us: server closing)" in lines[0], lines
    assert leftovers(output) == []


def test_serve_timeout_also_bounds_the_wait_for_the_association_request(
        tmp_path: Path) -> None:
    """``serve --timeout`` says it bounds the association's wait; the server's wait
    is ARTIM, for the A-ASSOCIATE-RQ (PS3.8 9.1.5), which stayed at 30 s: a
    peer that connected and sent nothing held its connection for 30 s whatever
    --timeout said. Now it is closed after --timeout seconds, as the event says."""

    async def main() -> tuple[bytes, list[dict[str, object]]]:
        proc, port = await start_serve(tmp_path / "store", "--timeout", "1")
        try:
            reader, writer = await asyncio.open_connection(LOOPBACK, port)
            writer.write(b"\x01")  # an A-ASSOCIATE-RQ's first byte, and no more
            # Well under the 30 s of ARTIM's default: closed by then, or not at all.
            got = await asyncio.wait_for(reader.read(), 10)
            writer.close()
            proc.send_signal(signal.SIGTERM)
            out, _ = await proc.communicate()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.communicate()
        return got, [json.loads(line) for line in out.splitlines()]

    got, events = run(main(), timeout=60)
    assert got == b""
    refused = [e for e in events if e["event"] == "connection_refused"]
    assert [(e["stage"], e["reason"]) for e in refused] == [("protocol", "ARTIM timer expired")]


@pytest.mark.parametrize(("flags", "words"), [
    (("--max-associations", "1"), ": 1 associations at once (--max-associations)"),
    (("--max-per-host", "1"), ": 1 associations at once from 127.0.0.1 (--max-per-host)"),
])
def test_a_rejection_at_the_limit_names_the_flag_that_sets_it(
        tmp_path: Path, flags: tuple[str, str], words: str) -> None:
    """serve's log named the library's field (max_associations_per_host) of the
    limit a rejected association met, where its operator set --max-per-host."""

    async def main() -> bytes:
        proc, port = await start_serve(tmp_path / "store", *flags)
        try:
            async with associate(LOOPBACK, port, contexts=CONTEXTS):
                with pytest.raises(AssociationRejected):
                    async with associate(LOOPBACK, port, contexts=CONTEXTS):
                        pass
            proc.send_signal(signal.SIGTERM)
            _, err = await proc.communicate()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.communicate()
        return err

    lines = [line for line in run(main(), timeout=60).decode().splitlines()
             if " rejected (rejected-transient) " in line]
    assert len(lines) == 1, lines
    assert lines[0].split(" (2, 3, 2)")[1].startswith(words + ", "), lines


def test_serve_json_whose_reader_went_away_goes_on_storing_and_stops_with_0(
        tmp_path: Path) -> None:
    """``dicomnet serve --json | head -1`` (the port, then no reader): each event
    after that logged an ERROR with a BrokenPipeError traceback (one per object
    stored, two per association), and SIGTERM then ended it with exit 3, "error:
    Broken pipe". Now one WARNING says the events stop; the server stores on and
    stops as it should: exit 0."""
    output = tmp_path / "store"
    proc = subprocess.Popen(
        [sys.executable, "-m", "dicomnet.cli.main", "serve", "--port", "0", "--json",
         "--output", str(output)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stderr is not None
        port = int(json.loads(proc.stdout.readline())["port"])
        proc.stdout.close()  # head -1 exits
        images = [make_image(n) for n in (1, 2)]

        async def send() -> list[int]:
            async with associate(LOOPBACK, port, contexts=CONTEXTS) as assoc:
                return [int(await assoc.store(image)) for image in images]

        assert run(send(), timeout=30) == [0, 0]
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
        err = proc.stderr.read().decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
    assert code == 0, err
    assert "Traceback" not in err and "error:" not in err, err
    warnings = [line for line in err.splitlines() if "WARNING" in line]
    assert len(warnings) == 1, err
    assert warnings[0].endswith("WARNING: stdout is closed (its reader went away): nothing "
                                "more is written to it; the server goes on"), err
    assert len(list(output.rglob("*.dcm"))) == 2
    assert leftovers(output) == []
