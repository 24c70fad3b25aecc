"""dicomnet serve stopped by SIGTERM while an association is under way: it stops
accepting, lets the association go on to its release (up to --drain-timeout),
and says in its last --json line how many associations drained and how many it
aborted; a second SIGTERM aborts at once."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from pathlib import Path

import pytest

from dicomnet.aio.client import associate
from dicomnet.errors import AssociationAborted
from dicomnet.storage.part10 import read_part10
from dicomnet.ul.negotiation import ContextRequest
from tests.aio.helpers import LOOPBACK, run
from tests.storage.dicomfiles import SECONDARY_CAPTURE, make_image

from .helpers import ROOT, leftovers

pytest.importorskip("dicomnet.services.storage")
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

CONTEXTS = [ContextRequest(SECONDARY_CAPTURE, ("1.2.840.10008.1.2.1",))]
#: What serve logs as the drain begins (an association is open).
DRAINING = " stopping: no longer accepting; waiting up to "


async def start_serve(output: Path, *args: str) -> tuple[asyncio.subprocess.Process, int]:
    """``dicomnet serve --json`` in a child process, and its port once it listens."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "dicomnet.cli.main", "serve", "--port", "0", "--json",
        "--output", str(output), *args, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    line = await proc.stdout.readline()
    assert line, (await proc.communicate())[1].decode()
    return proc, int(json.loads(line)["port"])


async def wait_line(stream: asyncio.StreamReader | None, text: str) -> list[str]:
    """The lines of ``stream`` up to the first that holds ``text`` (bounded by run())."""
    assert stream is not None
    lines: list[str] = []
    while text not in (lines[-1] if lines else ""):
        line = await stream.readline()
        assert line, f"{text!r} never came: {lines}"
        lines.append(line.decode())
    return lines


def _uids(root: Path) -> set[str]:
    return {read_part10(p).sop_instance_uid for p in root.rglob("*.dcm")}


def test_sigterm_lets_the_association_under_way_finish(tmp_path: Path) -> None:
    """SIGTERM after the first C-STORE: new connections are refused, the second
    C-STORE is stored (Success), the peer releases, serve exits 0 saying 1
    drained, 0 aborted, and its association_ended says released. A SIGHUP
    during the drain does not end it."""
    output = tmp_path / "store"
    first, second = make_image(1), make_image(2)

    async def main() -> tuple[int | None, list[int], bool, bytes, bytes]:
        proc, port = await start_serve(output)
        statuses: list[int] = []
        try:
            async with associate(LOOPBACK, port, contexts=CONTEXTS) as assoc:
                statuses.append(int(await assoc.store(first)))
                proc.send_signal(signal.SIGTERM)
                await wait_line(proc.stderr, DRAINING)
                # A log rotation's SIGHUP meanwhile: still handled (its default
                # action would end the process, its index unwritten).
                proc.send_signal(signal.SIGHUP)
                await wait_line(proc.stderr, "SIGHUP: plain DICOM, no TLS files to load")
                try:
                    _, writer = await asyncio.open_connection(LOOPBACK, port)
                    writer.close()
                    refused = False
                except ConnectionRefusedError:
                    refused = True
                statuses.append(int(await assoc.store(second)))
            out, err = await proc.communicate()
        except BaseException:
            if proc.returncode is None:
                proc.kill()
            with contextlib.suppress(Exception):
                await proc.communicate()
            raise
        return proc.returncode, statuses, refused, out, err

    code, statuses, refused, out, err = run(main(), timeout=60)
    assert code == 0, err.decode()
    assert statuses == [0, 0]
    assert refused
    events = [json.loads(line) for line in out.splitlines()]
    assert events[-1] == {"event": "stopped", "drained": 1, "aborted": 0}
    ended = [e for e in events if e["event"] == "association_ended"]
    assert [(e["how"], e["answers"]) for e in ended] == [("released", {"0x0000": 2})]
    assert _uids(output) == {first.SOPInstanceUID, second.SOPInstanceUID}
    assert leftovers(output) == []


def test_a_second_sigterm_aborts_the_association_at_once(tmp_path: Path) -> None:
    """The peer keeps its association open: a second SIGTERM during the drain
    aborts it (its next request fails), serve exits 0 saying 0 drained, 1
    aborted; the object stored before stays."""
    output = tmp_path / "store"
    image = make_image(1)

    async def main() -> tuple[int | None, bytes, bytes]:
        proc, port = await start_serve(output, "--drain-timeout", "3600")
        try:
            async with associate(LOOPBACK, port, contexts=CONTEXTS) as assoc:
                assert int(await assoc.store(image)) == 0
                proc.send_signal(signal.SIGTERM)
                await wait_line(proc.stderr, DRAINING)
                proc.send_signal(signal.SIGTERM)
                out, err = await proc.communicate()
                with pytest.raises(AssociationAborted):
                    await assoc.store(make_image(2))
        except BaseException:
            if proc.returncode is None:
                proc.kill()
            with contextlib.suppress(Exception):
                await proc.communicate()
            raise
        return proc.returncode, out, err

    code, out, err = run(main(), timeout=60)
    stderr = err.decode()
    assert code == 0, stderr
    assert json.loads(out.splitlines()[-1]) == {"event": "stopped", "drained": 0, "aborted": 1}
    assert "stopping at once: aborting the 1 association(s) still open" in stderr
    assert "aborted (by us: server closing)" in stderr
    assert _uids(output) == {image.SOPInstanceUID}
    assert leftovers(output) == []
