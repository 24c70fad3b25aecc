"""DCMTK's storescu sending a folder to ``dicomnet serve``, slowly (a relay holds
its bytes back part way), when SIGTERM comes: the server stops accepting, lets
storescu send the rest and release, then exits 0, every file stored."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from pathlib import Path

from pydicom.uid import ExplicitVRLittleEndian

from dicomnet.storage.part10 import read_part10
from tests.aio.helpers import LOOPBACK, run
from tests.cli.helpers import leftovers
from tests.cli.test_serve_drain import DRAINING, start_serve, wait_line
from tests.storage.dicomfiles import make_image, write_part10

from .test_dcmtk_storage import storescu  # noqa: F401  (the fixture)


class GatedRelay:
    """A loopback TCP relay that passes the client's first ``hold_after`` bytes,
    then holds the rest until ``gate`` is set (the server's answers always pass)."""

    def __init__(self, target: int, hold_after: int) -> None:
        self.target, self.hold_after = target, hold_after
        self.gate = asyncio.Event()
        self.held = asyncio.Event()  # the client has sent past hold_after
        self.port = 0

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter,
                    gated: bool) -> None:
        passed = 0
        with contextlib.suppress(ConnectionError):
            while data := await src.read(1 << 16):
                if gated and passed + len(data) > self.hold_after and not self.gate.is_set():
                    dst.write(data[:max(0, self.hold_after - passed)])
                    data = data[max(0, self.hold_after - passed):]
                    self.held.set()
                    await self.gate.wait()
                passed += len(data)
                dst.write(data)
                await dst.drain()
        with contextlib.suppress(OSError):
            dst.write_eof()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(LOOPBACK, self.target)
        try:
            await asyncio.gather(self._pump(reader, up_writer, True),
                                 self._pump(up_reader, writer, False))
        finally:
            writer.close()
            up_writer.close()

    async def start(self) -> asyncio.Server:
        server = await asyncio.start_server(self._relay, LOOPBACK, 0)
        self.port = server.sockets[0].getsockname()[1]
        return server


def test_storescu_sending_a_folder_finishes_during_the_drain(
        tmp_path: Path, storescu: Path) -> None:  # noqa: F811
    folder = tmp_path / "in"
    uids: set[str] = set()
    for number in range(4):
        ds = make_image(number, rows=256, columns=256)
        write_part10(folder / f"{number}.dcm", ds, ExplicitVRLittleEndian)
        uids.add(str(ds.SOPInstanceUID))
    size = (folder / "0.dcm").stat().st_size
    output = tmp_path / "store"

    async def main() -> tuple[int | None, int, str, bytes, bytes]:
        proc, port = await start_serve(output)
        relay = GatedRelay(port, hold_after=size * 3 // 2)  # 1 file and a half
        relay_server = await relay.start()
        sender = await asyncio.create_subprocess_exec(
            str(storescu), "-aet", "MODALITY", "-aec", "DICOMNET", "+sd", "-xe",
            LOOPBACK, str(relay.port), str(folder),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        try:
            await relay.held.wait()
            await wait_line(proc.stdout, '"event": "stored"')  # the first file
            proc.send_signal(signal.SIGTERM)
            await wait_line(proc.stderr, DRAINING)
            refused = ""
            try:
                _, writer = await asyncio.open_connection(LOOPBACK, port)
                writer.close()
            except ConnectionRefusedError:
                refused = "refused"
            relay.gate.set()
            said, _ = await sender.communicate()
            out, err = await proc.communicate()
        except BaseException:
            for child in (sender, proc):
                if child.returncode is None:
                    child.kill()
                with contextlib.suppress(Exception):
                    await child.communicate()
            raise
        finally:
            relay_server.close()
        assert sender.returncode is not None
        return proc.returncode, sender.returncode, refused + said.decode(), out, err

    code, sent, said, out, err = run(main(), timeout=90)
    assert code == 0, err.decode()
    assert sent == 0, said
    assert said.startswith("refused"), said
    events = [json.loads(line) for line in out.splitlines()]
    assert events[-1] == {"event": "stopped", "drained": 1, "aborted": 0}
    ended = [e for e in events if e["event"] == "association_ended"]
    assert [(e["how"], e["answers"]) for e in ended] == [("released", {"0x0000": 4})]
    assert {read_part10(p).sop_instance_uid for p in output.rglob("*.dcm")} == uids
    assert leftovers(output) == []
