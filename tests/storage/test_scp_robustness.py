"""The storage SCP under stress: a 1 GiB data set with flat memory, and associations
aborted at any point of a multi-PDU transfer, which must leave nothing behind."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import random
import re
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmwrite
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian

from dicomnet.aio.client import open_association
from dicomnet.aio.server import Server
from dicomnet.config import Limits
from dicomnet.dimse.messages import CStoreRQ, CStoreRSP
from dicomnet.errors import DicomNetError
from dicomnet.services.storage import INDEX_NAME, StorageSCP, store_paths
from dicomnet.services.verification import VerificationSCP
from dicomnet.storage.index import StorageIndex
from dicomnet.storage.part10 import read_part10
from dicomnet.ul.negotiation import ContextRequest
from dicomnet.ul.pdu import ReleaseRP, ReleaseRQ
from tests.aio.helpers import run, running_server, wait_until
from tests.storage.dicomfiles import SECONDARY_CAPTURE, make_image, uid, write_part10
from tests.storage.rawscu import RawAssociation, store_command

INDEX_FILES = {INDEX_NAME, INDEX_NAME + "-wal", INDEX_NAME + "-shm"}
SMALL_PDU = 16 * 1024

# -- helpers --------------------------------------------------------------------------


def leftovers(root: Path) -> set[str]:
    """Everything under ``root`` except the index: must be empty after a failed store."""
    return {p.relative_to(root).as_posix() for p in root.rglob("*")} - INDEX_FILES


def indexed_instances(root: Path) -> int:
    with StorageIndex(root / INDEX_NAME) as index:
        return index.count()["instances"]


async def wait_idle(server: Server) -> None:
    """Until every connection task of the server has ended (it noticed the abort)."""
    await wait_until(lambda: server.active_associations == 0 and not server._tasks,
                     "the server to end the association", timeout=20.0)


# -- 1 GiB through a server in its own process -------------------------------------------

GIB = 1 << 30
FRAME = 16384  # 16384 x 16384 x 8 bits = 256 MiB a frame; 4 frames = 1 GiB
MEMORY_LIMIT_KIB = 150 * 1024


def _big_header(sop_instance_uid: str) -> bytes:
    """Part 10 meta and every element before Pixel Data, then Pixel Data's header (OB,
    explicit length 1 GiB): the pixel bytes themselves follow, written in chunks."""
    ds = Dataset()
    ds.SOPClassUID = SECONDARY_CAPTURE
    ds.SOPInstanceUID = sop_instance_uid
    ds.StudyInstanceUID = uid(1, 1024)
    ds.SeriesInstanceUID = uid(2, 1024)
    ds.PatientID = "BIG"
    ds.Modality = "OT"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.NumberOfFrames = GIB // (FRAME * FRAME)
    ds.Rows = FRAME
    ds.Columns = FRAME
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(SECONDARY_CAPTURE)
    meta.MediaStorageSOPInstanceUID = UID(sop_instance_uid)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    buffer = io.BytesIO()
    dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue() + b"\xe0\x7f\x10\x00OB\x00\x00" + GIB.to_bytes(4, "little")


def write_big_file(path: Path, sop_instance_uid: str) -> str:
    """Write the 1 GiB object; return the SHA-256 of its data set bytes (after the meta)."""
    header = _big_header(sop_instance_uid)
    path.write_bytes(header)
    offset = read_part10(path).dataset_offset  # reads the meta only
    digest = hashlib.sha256(header[offset:])
    block = bytearray(random.Random(1024).randbytes(4 << 20))
    with path.open("ab") as fp:
        for i in range(GIB // len(block)):
            block[:8] = i.to_bytes(8, "little")  # no two chunks alike
            fp.write(block)
            digest.update(block)
    return digest.hexdigest()


def file_dataset_sha256(path: Path) -> str:
    info = read_part10(path)
    digest = hashlib.sha256()
    with path.open("rb") as fp:
        fp.seek(info.dataset_offset)
        while chunk := fp.read(8 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def vm_hwm_kib(pid: int) -> int:
    """Peak resident set size of process ``pid`` (VmHWM, Linux), in KiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    assert match is not None, status
    return int(match.group(1))


@contextlib.contextmanager
def server_process(root: Path, max_pdu: int = 1 << 20) -> Iterator[tuple[subprocess.Popen[str],
                                                                          int]]:
    """The dicomnet storage server of scp_process.py; yields (process, port); always killed."""
    script = Path(__file__).with_name("scp_process.py")
    proc = subprocess.Popen(
        [sys.executable, str(script), str(root), str(max_pdu)], stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        watchdog = threading.Timer(60.0, proc.kill)  # bounds the wait for the port line
        watchdog.start()
        try:
            line = proc.stdout.readline()
        finally:
            watchdog.cancel()
        match = re.fullmatch(r"PORT (\d+)\n", line)
        if match is None:
            proc.kill()
            proc.wait(timeout=10)
            assert proc.stderr is not None
            raise AssertionError(f"server process did not start: {line!r}\n{proc.stderr.read()}")
        yield proc, int(match.group(1))
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


@pytest.mark.slow
def test_one_gib_dataset_streams_to_disk_with_flat_server_memory(
    tmp_path: Path,
    record_property: Callable[[str, object], None],
    capsys: pytest.CaptureFixture[str],
) -> None:
    sop = uid(9, 1024)
    source = tmp_path / "big.dcm"
    sent_digest = write_big_file(source, sop)
    root = tmp_path / "root"
    with server_process(root) as (proc, port):
        baseline = vm_hwm_kib(proc.pid)
        started = time.monotonic()
        results = run(store_paths("127.0.0.1", port, [source]), timeout=300)
        elapsed = time.monotonic() - started
        peak = vm_hwm_kib(proc.pid)
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=30)
    assert [(r.ok, r.status, r.error) for r in results] == [(True, 0, None)]
    stored = root / uid(1, 1024) / uid(2, 1024) / f"{sop}.dcm"
    assert stored.stat().st_size > GIB
    assert file_dataset_sha256(stored) == sent_digest
    assert leftovers(root) == {uid(1, 1024), f"{uid(1, 1024)}/{uid(2, 1024)}",
                               f"{uid(1, 1024)}/{uid(2, 1024)}/{sop}.dcm"}
    record_property("server_vmhwm_kib", peak)
    record_property("server_vmhwm_baseline_kib", baseline)
    with capsys.disabled():
        print(f"\n1 GiB C-STORE: server VmHWM {peak / 1024:.1f} MiB "
              f"(at start {baseline / 1024:.1f} MiB), transfer {elapsed:.1f}s")
    assert peak < MEMORY_LIMIT_KIB, f"server peak RSS {peak} KiB"


# -- aborts at any point of a multi-PDU transfer ------------------------------------------

#: A 5 MiB image: with a 16 KiB maximum PDU it takes about 320 data PDUs.
BIG_ROWS, BIG_COLUMNS = 2048, 2560


@pytest.fixture(scope="module")
def five_mib(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, bytes]:
    """(SOP Instance UID, data set bytes) of a 5 MiB Explicit VR Little Endian object."""
    path = tmp_path_factory.mktemp("abort") / "five.dcm"
    ds = make_image(5, rows=BIG_ROWS, columns=BIG_COLUMNS)
    write_part10(path, ds, ExplicitVRLittleEndian)
    info = read_part10(path)
    data = path.read_bytes()[info.dataset_offset:]
    assert len(data) > 5 * 1024 * 1024
    return str(ds.SOPInstanceUID), data


STORE_CONTEXT = [ContextRequest(SECONDARY_CAPTURE, (ExplicitVRLittleEndian,))]
_TOTAL = -(-(BIG_ROWS * BIG_COLUMNS + 2048) // (SMALL_PDU - 6))  # about the PDU count
#: After how many data PDUs to stop: none, one, random points, all but the last.
ABORT_POINTS = [0, 1, *sorted(random.Random(20240115).sample(range(2, _TOTAL - 2), 3)), -1]
ENDINGS = ["a-abort", "close", "reset", "cut-pdu", "release"]


@pytest.mark.parametrize("ending", ENDINGS)
def test_aborted_transfer_leaves_no_file_no_part_and_no_index_row(
    root: Path, five_mib: tuple[str, bytes], ending: str
) -> None:
    sop, data = five_mib
    command = store_command(SECONDARY_CAPTURE.encode(), sop.encode())

    async def scenario() -> list[str]:
        scp = StorageSCP(root)
        seen: list[str] = []
        try:
            async with running_server(providers=[VerificationSCP(), scp],
                                      limits=Limits(max_pdu_length=SMALL_PDU)) as server:
                for point in ABORT_POINTS:
                    assoc = await RawAssociation.open(server.port, STORE_CONTEXT)
                    ctx = assoc.context_id(SECONDARY_CAPTURE)
                    pdus = assoc.data_pdus(ctx, data)
                    assert assoc.peer_max_pdu == SMALL_PDU and len(pdus) > 300
                    sent = pdus[: point if point >= 0 else len(pdus) - 1]
                    await assoc.send(encode_command(ctx, command), *sent)
                    # The server has the command and `point` fragments in flight:
                    # a part file may exist now; how the association ends must remove it.
                    if ending == "a-abort":
                        await assoc.abort()
                    elif ending == "close":
                        await assoc.close()
                    elif ending == "reset":
                        await assoc.reset()
                    elif ending == "release":
                        # A-RELEASE-RQ with the data set unfinished: released (the
                        # A-RELEASE-RP), the half-received data set dropped. Its spill
                        # file was left behind until the next start (found by fuzzing).
                        await assoc.send(ReleaseRQ().encode())
                        assert await asyncio.wait_for(assoc.reader.readexactly(10), 20) == \
                            ReleaseRP().encode()
                        await assoc.close()
                    else:  # half of the next PDU, then close
                        await assoc.send(pdus[len(sent)][: len(pdus[len(sent)]) // 2])
                        await assoc.close()
                    await wait_idle(server)
                    seen.append(f"{point}: {sorted(leftovers(root))}")
                    assert leftovers(root) == set(), f"after {len(sent)} PDUs ({ending})"
                # The server is intact: a whole transfer still succeeds.
                assoc = await RawAssociation.open(server.port, STORE_CONTEXT)
                await assoc.send_store(assoc.context_id(SECONDARY_CAPTURE), command, data)
                rsp = await assoc.read_message()
                await assoc.release()
                assert isinstance(rsp, CStoreRSP) and rsp.status == 0
        finally:
            scp.close()
        return seen

    run(scenario(), timeout=60)
    assert indexed_instances(root) == 1
    stored = root / uid(1, 5) / uid(2, 5) / f"{sop}.dcm"
    assert stored.read_bytes()[read_part10(stored).dataset_offset:] == data


def test_client_abort_mid_stream_leaves_nothing(root: Path, five_mib: tuple[str, bytes]) -> None:
    """dicomnet's own ClientAssociation.abort() while its data set is streaming."""
    sop, data = five_mib

    async def scenario() -> None:
        scp = StorageSCP(root)
        try:
            async with running_server(providers=[VerificationSCP(), scp],
                                      limits=Limits(max_pdu_length=SMALL_PDU)) as server:
                for stop_after in (3, 100, 250):
                    assoc = await open_association("127.0.0.1", server.port,
                                                   contexts=STORE_CONTEXT)
                    reached = asyncio.Event()

                    async def chunks(limit: int = stop_after,
                                     reached: asyncio.Event = reached) -> AsyncIterator[bytes]:
                        size = SMALL_PDU - 6
                        for n, start in enumerate(range(0, len(data), size)):
                            if n == limit:
                                reached.set()
                                await asyncio.Event().wait()  # stalls until cancelled
                            yield data[start:start + size]

                    ctx = assoc.context_for(SECONDARY_CAPTURE).context_id
                    rq = CStoreRQ(message_id=assoc.dimse.next_message_id(),
                                  affected_sop_class_uid=SECONDARY_CAPTURE,
                                  affected_sop_instance_uid=sop)
                    sending = asyncio.ensure_future(assoc.send_message(rq, ctx, chunks=chunks()))
                    await asyncio.wait({sending, asyncio.ensure_future(reached.wait())},
                                       return_when=asyncio.FIRST_COMPLETED)
                    assert reached.is_set(), sending
                    await assoc.abort()
                    sending.cancel()
                    with contextlib.suppress(asyncio.CancelledError, DicomNetError):
                        await sending
                    await wait_idle(server)
                    assert leftovers(root) == set(), f"after {stop_after} chunks"
        finally:
            scp.close()

    run(scenario(), timeout=60)
    assert indexed_instances(root) == 0


def encode_command(context_id: int, command: bytes) -> bytes:
    from dicomnet.ul.pdu import encode_pdata

    return encode_pdata(context_id, True, True, command)


def test_a_commit_still_queued_when_its_association_aborts_runs_all_the_same(
        root: Path, five_mib: tuple[str, bytes]) -> None:
    """With an operations window, a spilled data set's commit (fsync, name) waits in
    the loop's executor; an A-ABORT then cancels its operation. The commit must run
    anyway: cancelled while queued, it never ran and its temporary file stayed with
    no one to remove it (found by fuzzing). Here the executor's only worker is held
    until the abort has been handled."""
    sop, data = five_mib
    submitted: list[object] = []

    class Recording(ThreadPoolExecutor):
        def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
            submitted.append(fn)
            return super().submit(fn, *args, **kwargs)

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        loop.set_default_executor(Recording(max_workers=1))
        gate = threading.Event()
        held = loop.run_in_executor(None, gate.wait)
        scp = StorageSCP(root)
        try:
            async with running_server(providers=[VerificationSCP(), scp],
                                      limits=Limits(max_pdu_length=SMALL_PDU)) as server:
                assoc = await RawAssociation.open(server.port, STORE_CONTEXT, window=8)
                assert assoc.window == 8
                await assoc.send_store(assoc.context_id(SECONDARY_CAPTURE),
                                       store_command(SECONDARY_CAPTURE.encode(), sop.encode()),
                                       data)
                await wait_until(lambda: len(submitted) >= 2, "the commit to be queued")
                await assoc.abort()
                await wait_idle(server)  # the operation was cancelled with its association
                gate.set()
                await held
                await wait_until(lambda: not any(p.name.endswith(".dicomnet-part")
                                                 for p in root.rglob("*")),
                                 "the queued commit to run")
        finally:
            scp.close()

    run(scenario(), timeout=60)
    # Stored, though never answered: as the store thread's jobs are.
    stored = root / uid(1, 5) / uid(2, 5) / f"{sop}.dcm"
    assert stored.read_bytes()[read_part10(stored).dataset_offset:] == data
    assert leftovers(root) == {stored.relative_to(root).as_posix(),
                               *(p.relative_to(root).as_posix() for p in stored.parents
                                 if root in p.parents)}
