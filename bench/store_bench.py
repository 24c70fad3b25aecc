"""C-STORE benchmark: dicomnet against DCMTK (storescu/storescp) and pynetdicom, in one run.

Everything runs on 127.0.0.1, over TLS 1.3 with mutual authentication and over
plain TCP. Each stack's SCU sends to the same stack's SCP; DCMTK's storescp
runs both normally and with ``+B`` (bit-preserving: the data set is streamed
to disk as received instead of being parsed into memory first).

Cases (full run; ``--quick`` uses smaller counts and sizes):

* images: 200 x 512 KiB objects on one association (MB/s),
* large:  4 x 256 MiB objects on one association (MB/s, and the receiving
  server's peak resident memory, VmHWM),
* small:  2,000 x 2 KiB objects on one association (objects/s).

Every (stack, transport, case, run) gets a fresh server process and a fresh
output folder; a run only counts when every object arrived (files counted).
Runs are interleaved: for each case, run 1 of every stack, then run 2 in the
reverse order, and so on.
The SCU time is measured inside the Python SCUs around the send (association
to release, reading the files included; interpreter start-up excluded) and,
for DCMTK's storescu, as the wall time of the process. MB are 10^6 bytes of
file size. The figure reported is the median over ``--runs`` runs.

Run: ``.venv/bin/python bench/store_bench.py [--quick] [--only dicomnet,dcmtk,pynetdicom]
[--tls-only | --plain-only] [--runs N] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import select
import shutil
import signal
import socket
import ssl
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pydicom
import report  # a sibling script's module
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

from dicomnet.security.certificates import make_dev_pki

BENCH = Path(__file__).resolve().parent
PY = sys.executable
STORESCP = shutil.which("storescp") or "/usr/bin/storescp"
STORESCU = shutil.which("storescu") or "/usr/bin/storescu"
#: Multi-frame Grayscale Word Secondary Capture Image Storage.
SOP_CLASS = "1.2.840.10008.5.1.4.1.1.7.3"
#: DCMTK's largest maximum PDU (4096..131072); dicomnet and pynetdicom here use 1 MiB.
DCMTK_PDU = "131072"
KIB = 1024
MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    count: int
    pixel_bytes: int
    rows: int
    columns: int
    frames: int
    unit: str  # "MB/s" or "obj/s"

    @property
    def label(self) -> str:
        size = (f"{self.pixel_bytes // MIB} MB" if self.pixel_bytes >= MIB
                else f"{self.pixel_bytes // KIB} KB")
        return f"{self.count} x {size}"


def cases(quick: bool) -> list[Case]:
    if quick:
        return [
            Case("images", 20, 512 * KIB, 512, 512, 1, "MB/s"),
            Case("large", 2, 32 * MIB, 512, 512, 64, "MB/s"),
            Case("small", 200, 2 * KIB, 32, 32, 1, "obj/s"),
        ]
    return [
        Case("images", 200, 512 * KIB, 512, 512, 1, "MB/s"),
        Case("large", 4, 256 * MIB, 512, 512, 512, "MB/s"),
        Case("small", 2000, 2 * KIB, 32, 32, 1, "obj/s"),
    ]


@dataclass(frozen=True, slots=True)
class Variant:
    key: str  # dicomnet, dcmtk, dcmtk+B, pynetdicom
    label: str
    stack: str  # what --only names


VARIANTS = (
    Variant("dicomnet", "dicomnet", "dicomnet"),
    Variant("dicomnet-nosync", "dicomnet, no fsync", "dicomnet"),
    Variant("dcmtk", "DCMTK 3.6.7", "dcmtk"),
    Variant("dcmtk+B", "DCMTK 3.6.7 storescp +B", "dcmtk"),
    Variant("pynetdicom", "pynetdicom", "pynetdicom"),
    Variant("pynetdicom-nodelay", "pynetdicom, TCP_NODELAY", "pynetdicom"),
)


@dataclass(slots=True)
class Measurement:
    transport: str
    variant: str
    case: str
    count: int
    payload_bytes: int
    seconds: list[float] = field(default_factory=list)
    client_wall: list[float] = field(default_factory=list)
    server_peak_kib: list[int] = field(default_factory=list)
    #: CPU seconds of each run, start-up excluded: the server's while the client ran,
    #: the client's over the span its ``seconds`` cover (DCMTK's storescu: its whole
    #: process, start-up of a few ms included).
    server_cpu: list[float] = field(default_factory=list)
    client_cpu: list[float] = field(default_factory=list)
    #: Seconds of the ``sync`` run as soon as the SCU is done: what the server left
    #: in the page cache, written back. dicomnet answers Success once its files
    #: are durable, and leaves little (its index); DCMTK and pynetdicom never
    #: flush, and leave every byte they received.
    sync_seconds: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.seconds) and not self.errors

    @property
    def on_disk_seconds(self) -> list[float] | None:
        """Each run's seconds plus the ``sync`` after it: the time until what the
        server received is on its disk (a store that flushes before Success has
        it when its SCU is done). None where a run has no sync timed."""
        if len(self.sync_seconds) != len(self.seconds):
            return None
        return [a + b for a, b in zip(self.seconds, self.sync_seconds, strict=True)]

    def rate(self, unit: str, *, best: bool = False, on_disk: bool = False) -> float | None:
        """The rate of the median run, or with ``best`` of the fastest one; with
        ``on_disk``, over :attr:`on_disk_seconds`."""
        runs = self.on_disk_seconds if on_disk else self.seconds
        if not self.ok or runs is None:
            return None
        seconds = min(runs) if best else statistics.median(runs)
        if unit == "obj/s":
            return self.count / seconds
        return self.payload_bytes / 1e6 / seconds

    @property
    def peak_mb(self) -> float | None:
        return max(self.server_peak_kib) * 1024 / 1e6 if self.server_peak_kib else None


# -- test data ---------------------------------------------------------------------------


def write_object(path: Path, case: Case, study: str, series: str, block: bytes) -> None:
    """A Part 10 file: pydicom writes the header, the pixel data is appended in blocks."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(SOP_CLASS)
    uid = generate_uid()
    meta.MediaStorageSOPInstanceUID = uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = UID(SOP_CLASS)
    ds.SOPInstanceUID = uid
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = series
    ds.PatientID = "BENCH"
    ds.PatientName = "Bench^Mark"
    ds.Modality = "OT"
    ds.InstanceNumber = int(path.stem)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.NumberOfFrames = case.frames
    ds.Rows = case.rows
    ds.Columns = case.columns
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    assert case.rows * case.columns * 2 * case.frames == case.pixel_bytes
    with open(path, "wb") as f:
        pydicom.dcmwrite(f, ds, enforce_file_format=True)
        # (7FE0,0010) OW, explicit VR: tag, VR, 2 reserved bytes, 32-bit length.
        f.write(struct.pack("<HH2s2xI", 0x7FE0, 0x0010, b"OW", case.pixel_bytes))
        left = case.pixel_bytes
        while left:
            n = min(left, len(block))
            f.write(block[:n])
            left -= n


def generate(root: Path, all_cases: Sequence[Case]) -> dict[str, Path]:
    block = os.urandom(4 * MIB)
    folders: dict[str, Path] = {}
    for case in all_cases:
        folder = root / case.name
        folder.mkdir(parents=True)
        study, series = generate_uid(), generate_uid()
        for i in range(case.count):
            write_object(folder / f"{i + 1:05d}.dcm", case, study, series, block)
        folders[case.name] = folder
    return folders


def subset(folder: Path, target: Path, count: int) -> Path:
    """The first ``count`` files of ``folder``, hard-linked into ``target`` (made once)."""
    if not target.exists():
        target.mkdir()
        for path in sorted(folder.iterdir())[:count]:
            os.link(path, target / path.name)
    return target


# -- processes ---------------------------------------------------------------------------

_LIVE: list[subprocess.Popen[bytes]] = []


def _dcmtk_env() -> dict[str, str]:
    # Without TCP_NODELAY, Nagle's algorithm makes DCMTK look ~30x slower on small objects.
    return {**os.environ, "TCP_NODELAY": "1"}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> bool:
    """Whether something listens on ``port`` (from /proc/net/tcp: no connection made)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    return True
    return False


@dataclass(slots=True)
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    def peak_kib(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        return 0

    def cpu_seconds(self) -> float:
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        _stop(self.proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    if proc in _LIVE:
        _LIVE.remove(proc)


def _spawn(cmd: list[str], log: Path, env: dict[str, str] | None = None,
           stdout_pipe: bool = False) -> subprocess.Popen[bytes]:
    with open(log, "ab") as err:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if stdout_pipe else err, stderr=err, env=env,
        )
    _LIVE.append(proc)
    return proc


def _read_port(proc: subprocess.Popen[bytes], timeout: float) -> int:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    buffer = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.1)
        if ready:
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                break
            buffer += chunk
            for line in buffer.splitlines():
                if line.startswith(b"PORT "):
                    return int(line.split()[1])
        elif proc.poll() is not None:
            break
    raise RuntimeError(f"server did not report its port: {proc.args!r}")


def start_server(variant: str, pki: Path | None, out: Path, log: Path,
                 profile: Path | None = None, *,
                 storescp_options: Sequence[str] = ()) -> Server:
    if variant in ("dicomnet", "dicomnet-nosync"):
        cmd = [PY, str(BENCH / "dicomnet_scp.py"), str(out)]
        if variant == "dicomnet-nosync":
            cmd.append("--no-fsync")
        if pki is not None:
            cmd += ["--pki", str(pki)]
        if profile is not None:
            cmd += ["--profile", str(profile)]
        proc = _spawn(cmd, log, stdout_pipe=True)
        return Server(proc, _read_port(proc, 60), log)
    if variant in ("pynetdicom", "pynetdicom-nodelay"):
        cmd = [PY, str(BENCH / "pynetdicom_peer.py"), "scp", str(out)]
        if variant == "pynetdicom-nodelay":
            cmd.append("--nodelay")
        if pki is not None:
            cmd += ["--pki", str(pki)]
        proc = _spawn(cmd, log, stdout_pipe=True)
        return Server(proc, _read_port(proc, 60), log)
    port = _free_port()
    cmd = [STORESCP, "-pdu", DCMTK_PDU, "-od", str(out), *storescp_options]
    if variant == "dcmtk+B":
        cmd.append("+B")
    if pki is not None:
        cmd += ["+tls", str(pki / "server.key"), str(pki / "server.pem"),
                "+cf", str(pki / "ca.pem")]
    cmd.append(str(port))
    proc = _spawn(cmd, log, env=_dcmtk_env())
    deadline = time.monotonic() + 30
    while not _listening(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            _stop(proc)
            raise RuntimeError(f"storescp did not start, see {log}")
        time.sleep(0.02)
    return Server(proc, port, log)


def client_command(variant: str, pki: Path | None, port: int, folder: Path,
                   profile: Path | None = None) -> list[str]:
    if variant in ("dicomnet", "dicomnet-nosync"):
        cmd = [PY, str(BENCH / "dicomnet_scu.py"), "127.0.0.1", str(port), str(folder)]
        if profile is not None:
            cmd += ["--profile", str(profile)]
    elif variant in ("pynetdicom", "pynetdicom-nodelay"):
        cmd = [PY, str(BENCH / "pynetdicom_peer.py"), "scu", "127.0.0.1", str(port), str(folder)]
        if variant == "pynetdicom-nodelay":
            cmd.append("--nodelay")
    else:
        cmd = [STORESCU, "-aet", "STORESCU", "-aec", "ANY-SCP", "-pdu", DCMTK_PDU, "+sd"]
        if pki is not None:
            cmd += ["+tls", str(pki / "client.key"), str(pki / "client.pem"),
                    "+cf", str(pki / "ca.pem")]
        return [*cmd, "127.0.0.1", str(port), str(folder)]
    if pki is not None:
        cmd += ["--pki", str(pki)]
    return cmd


def received(out: Path) -> tuple[int, int]:
    """(files, bytes) stored under ``out``, without temporary files and the index."""
    files = size = 0
    for dirpath, _, names in os.walk(out):
        for name in names:
            if name.startswith(".") or name.startswith("index.sqlite"):
                continue
            files += 1
            size += os.path.getsize(os.path.join(dirpath, name))
    return files, size


def warm(folder: Path) -> None:
    """Read every file under ``folder`` once, so that every SCU reads its files from
    the page cache. This VM pages out what was not touched for about a minute
    (DAMON, ``pageout`` of cold regions): the 1 GB of the large case, written
    at the start, was cold again by the time its first run came, and that run's
    SCU read it from the disk its server was writing to (4.1 s against 1.4 s
    for the same run warm)."""
    buffer = bytearray(1 << 20)
    for dirpath, _, names in os.walk(folder):
        for name in names:
            with open(os.path.join(dirpath, name), "rb", buffering=0) as fp:
                while fp.readinto(buffer):
                    pass


def timed_sync() -> float:
    """Seconds of an ``os.sync()`` run as an SCU is done: the write-back of what
    its server left in the page cache (``Measurement.sync_seconds``)."""
    start = time.perf_counter()
    os.sync()
    return time.perf_counter() - start


def run_once(variant: str, pki: Path | None, case: Case, folder: Path, *, payload: int,
             work: Path, tag: str, timeout: float, m: Measurement,
             profile_dir: Path | None = None) -> None:
    out = work / "recv" / tag
    out.mkdir(parents=True)
    log = work / "logs" / f"{tag}.log"
    log.parent.mkdir(exist_ok=True)
    # Every run starts with nothing waiting to be written back. DCMTK and pynetdicom
    # leave what they received in the page cache (up to 1 GB, never fsynced); the
    # kernel would write it back during the next stack's run, on its clock, and a
    # dicomnet server seeing that much dirty memory fsyncs file by file instead of
    # once per round (storage.syncfs.SYNCFS_DIRTY_LIMIT).
    os.sync()
    warm(folder)
    scp_profile = scu_profile = None
    if profile_dir is not None and variant == "dicomnet":
        scp_profile = profile_dir / f"{tag}.scp.prof"
        scu_profile = profile_dir / f"{tag}.scu.prof"
    try:
        server = start_server(variant, pki, out, log, scp_profile)
    except RuntimeError as exc:
        tail = log.read_text(errors="replace").strip()[-400:] if log.exists() else ""
        m.errors.append(f"{tag}: {exc}: {tail}")
        shutil.rmtree(out, ignore_errors=True)
        return
    try:
        cmd = client_command(variant, pki, server.port, folder, scu_profile)
        server_cpu = server.cpu_seconds()  # its start-up is not the transfer's
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        try:
            done = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                                  timeout=timeout, env=_dcmtk_env(), check=False)
        except subprocess.TimeoutExpired:
            m.errors.append(f"{tag}: SCU timed out after {timeout:.0f}s")
            return
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        flush = timed_sync()  # its own figure: the rate stays the SCU's time alone
        time.sleep(0.2)  # what a server does after its last answer (index rows) counts too
        server_cpu = server.cpu_seconds() - server_cpu
        seconds = wall
        client_cpu = (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)
        if variant in ("dicomnet", "dicomnet-nosync", "pynetdicom", "pynetdicom-nodelay"):
            lines = done.stdout.decode(errors="replace").strip().splitlines()
            with contextlib.suppress(IndexError, ValueError, KeyError):
                report = json.loads(lines[-1])
                seconds = float(report["seconds"])
                client_cpu = float(report["cpu"])
        files, size = received(out)
        if done.returncode != 0 or files != m.count or size < payload:
            m.errors.append(
                f"{tag}: SCU exit {done.returncode}, {files}/{m.count} files, {size} bytes: "
                + (done.stdout + done.stderr).decode(errors="replace").strip()[-400:]
            )
            return
        m.seconds.append(seconds)
        m.sync_seconds.append(flush)
        m.client_wall.append(wall)
        m.server_peak_kib.append(server.peak_kib())
        m.server_cpu.append(server_cpu)
        m.client_cpu.append(client_cpu)
    finally:
        server.stop()
        # Received files are deleted at the end of the run, not here: ext4 without a
        # journal (this machine's disk) skips inodes freed in the last 1-5 minutes
        # when it allocates new ones (fs/ext4/ialloc.c, recently_deleted), so the
        # next stack would pay, per file it creates, for the thousands just deleted
        # (measured: a third of the server's CPU on 2 KB objects). The four 256 MB
        # objects are few inodes and much space: they go at once.
        if case.name == "large":
            shutil.rmtree(out, ignore_errors=True)


# -- the machine (report.py writes the tables) -------------------------------------------


def machine() -> dict[str, str]:
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    dcmtk = subprocess.run([STORESCU, "--version"], capture_output=True, timeout=10,
                           check=False).stdout.decode(errors="replace").splitlines()
    import pynetdicom

    return {
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "python": platform.python_version(),
        "openssl": ssl.OPENSSL_VERSION,
        "pydicom": pydicom.__version__,
        "pynetdicom": pynetdicom.__version__,
        "dcmtk": dcmtk[0].strip("$ ") if dcmtk else "?",
        "kernel": platform.release(),
        "page_reporting_order": _read_text(PAGE_REPORTING) or "absent",
    }


#: The order of free blocks a VM's kernel reports to its host (virtio-balloon free
#: page reporting), which takes their memory back: touching such memory again
#: costs a page fault on the host. On the benchmark machine (Firecracker),
#: writing 1 GiB through the page cache ran at 0.6-0.7 GB/s when the memory had
#: been free for 3 s or more, 3.9-6.3 GB/s within half a second, and 4.2-5.4
#: GB/s after 10 s with reporting off (dd, session 31). A stack writing what it
#: receives into the page cache (storescp, pynetdicom, ``serve --no-fsync``)
#: pays that; one writing with O_DIRECT (``serve``) does not.
PAGE_REPORTING = Path("/sys/module/page_reporting/parameters/page_reporting_order")
#: Above the largest order a free block has (10 on x86-64): nothing is reported.
PAGE_REPORTING_OFF = "11"


def _read_text(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


@contextlib.contextmanager
def page_reporting_off(wanted: bool) -> Iterator[None]:
    """Free page reporting off for the run (``--no-page-reporting``), and as it
    was after: what the machine does to memory freed between runs is then not
    in any stack's figures. Needs root; without the knob, says so and goes on."""
    before = _read_text(PAGE_REPORTING) if wanted else ""
    if before and before != PAGE_REPORTING_OFF:
        try:
            PAGE_REPORTING.write_text(PAGE_REPORTING_OFF)
        except OSError as exc:
            print(f"warning: cannot turn free page reporting off ({exc})", file=sys.stderr)
            before = ""
    elif wanted and not before:
        print("warning: no free page reporting to turn off here", file=sys.stderr)
    try:
        yield
    finally:
        if before and before != PAGE_REPORTING_OFF:
            with contextlib.suppress(OSError):
                PAGE_REPORTING.write_text(before)


# -- main --------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="C-STORE throughput: dicomnet vs DCMTK vs pynetdicom on loopback.")
    parser.add_argument("--quick", action="store_true",
                        help="small counts and sizes, one run (a smoke test)")
    parser.add_argument("--only", default="dicomnet,dcmtk,pynetdicom",
                        help="comma-separated stacks among dicomnet, dcmtk, pynetdicom")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--tls-only", action="store_true")
    mode.add_argument("--plain-only", action="store_true")
    parser.add_argument("--runs", type=int, help="runs per figure (median); 2, or 1 with --quick")
    parser.add_argument("--cases", default="images,large,small",
                        help="comma-separated subset of images, large, small")
    parser.add_argument("--json", type=Path, help="write every measurement here")
    parser.add_argument("--workdir", type=Path,
                        help="where test files and received objects go (default: a temp dir)")
    parser.add_argument("--profile-dir", type=Path,
                        help="write cProfile dumps of dicomnet's SCP and SCU here")
    parser.add_argument("--pynetdicom-small", type=int, default=500,
                        help="objects pynetdicom sends in the small case (it manages ~20/s "
                             "with Nagle on; its objects/s is measured on this many; 0: all)")
    parser.add_argument("--no-wait", action="store_true",
                        help="do not wait for the inodes a previous run freed to age (ext4)")
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="seconds allowed to one SCU run")
    parser.add_argument("--no-page-reporting", action="store_true",
                        help="turn a VM's free page reporting off during the run (root; "
                             "see PAGE_REPORTING), and back on after")
    args = parser.parse_args(argv)
    stacks = {s.strip() for s in args.only.split(",") if s.strip()}
    unknown = stacks - {"dicomnet", "dcmtk", "pynetdicom"}
    if unknown or not stacks:
        parser.error(f"--only: unknown stack(s) {sorted(unknown)}")
    args.stacks = stacks
    args.case_names = {c.strip() for c in args.cases.split(",") if c.strip()}
    if args.case_names - {"images", "large", "small"}:
        parser.error("--cases: choose among images, large, small")
    if args.runs is None:
        args.runs = 1 if args.quick else 2
    return args


#: Touched when a run deletes its files; the next run waits until ext4 stops
#: skipping the inodes they freed (see run_once), or its small-object figures,
#: DCMTK's and ours, come out at half their speed.
DELETED_STAMP = Path(tempfile.gettempdir()) / "dicomnet-store-bench.deleted"
#: fs/ext4/ialloc.c: RECENTCY_MIN 60 s, RECENTCY_DIRTY 300 s.
INODE_RECENCY = 300.0


def wait_for_freed_inodes(*, wait: bool) -> None:
    """Sleep until the inodes the previous run freed are no longer 'recent'."""
    try:
        age = time.time() - DELETED_STAMP.stat().st_mtime
    except OSError:
        return
    left = INODE_RECENCY - age
    if left <= 0:
        return
    if not wait:
        print(f"warning: the previous run deleted its files {age:.0f}s ago; small-object "
              "figures may be low (ext4 skips recently freed inodes)", file=sys.stderr)
        return
    print(f"waiting {left:.0f}s: the previous run deleted its files {age:.0f}s ago, and ext4 "
          "skips recently freed inodes when it makes new files (--no-wait to skip)",
          flush=True)
    time.sleep(left)


@contextlib.contextmanager
def workspace(given: Path | None) -> Iterator[Path]:
    if given is not None:
        given.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix="store-bench-", dir=given))
    else:
        work = Path(tempfile.mkdtemp(prefix="store-bench-"))
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)
        DELETED_STAMP.touch()


def _measurement(results: dict[tuple[str, str, str], Measurement], transport: str,
                 v: Variant, case: Case, folder: Path, *, work: Path,
                 pynetdicom_small: int) -> tuple[Measurement, Path]:
    """A new Measurement of one stack for one case (in ``results``), and the folder
    its SCU sends: pynetdicom's small-object runs send only the first
    ``pynetdicom_small`` files (0: all)."""
    if v.key == "pynetdicom" and case.name == "small" and 0 < pynetdicom_small < case.count:
        folder = subset(folder, work / "data" / "small-pynetdicom", pynetdicom_small)
    count = sum(1 for _ in folder.iterdir())
    payload = sum(p.stat().st_size for p in folder.iterdir())
    m = Measurement(transport, v.key, case.name, count, payload)
    results[(transport, v.key, case.name)] = m
    return m, folder


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    all_cases = cases(args.quick)
    selected = [c for c in all_cases if c.name in args.case_names]
    variants = [v for v in VARIANTS if v.stack in args.stacks]
    transports = ["tls"] if args.tls_only else ["plain"] if args.plain_only else ["tls", "plain"]
    if "dcmtk" in args.stacks and not (os.access(STORESCP, os.X_OK)
                                       and os.access(STORESCU, os.X_OK)):
        print("DCMTK storescp/storescu not found", file=sys.stderr)
        return 2
    if args.profile_dir is not None:
        args.profile_dir.mkdir(parents=True, exist_ok=True)
    info = machine()
    results: dict[tuple[str, str, str], Measurement] = {}
    wait_for_freed_inodes(wait=not args.no_wait and not args.quick)
    began = time.perf_counter()
    try:
        with page_reporting_off(args.no_page_reporting), workspace(args.workdir) as work:
            info["page_reporting_order"] = _read_text(PAGE_REPORTING) or "absent"
            t = time.perf_counter()
            folders = generate(work / "data", selected)
            # On disk before anything is timed: the kernel would otherwise write
            # these GB back some 30 s later, in the middle of the first stack's
            # runs, and slow exactly the stacks that fsync (dicomnet runs first).
            os.sync()
            pki = make_dev_pki(work / "pki").directory
            print(f"generated test files in {time.perf_counter() - t:.1f}s under {work}",
                  flush=True)
            for transport in transports:
                for case in selected:
                    measured = [_measurement(results, transport, v, case, folders[case.name],
                                             work=work, pynetdicom_small=args.pynetdicom_small)
                                for v in variants]
                    # Interleaved: run r of every stack, then run r + 1 in the
                    # reverse order. A slow spell of this VM (it lasts minutes)
                    # then falls on several stacks instead of on both runs of one,
                    # and no stack always comes first after the test files are
                    # written.
                    for run in range(args.runs):
                        order = measured if run % 2 == 0 else measured[::-1]
                        for m, folder in order:
                            tag = f"{transport}-{m.variant}-{case.name}-{run + 1}"
                            run_once(m.variant, pki if transport == "tls" else None, case,
                                     folder, payload=m.payload_bytes, work=work, tag=tag,
                                     timeout=args.timeout, m=m,
                                     profile_dir=args.profile_dir)
                    for m, _ in measured:
                        rate = m.rate(case.unit)
                        print(f"{transport:5} {m.variant:10} {case.name:6} "
                              f"{report.fmt(rate, case.unit):>6} {case.unit}"
                              + (f", SCP peak {m.peak_mb:.0f} MB" if m.peak_mb else "")
                              + (f"  ERRORS: {m.errors}" if m.errors else ""), flush=True)
    finally:
        for proc in list(_LIVE):
            _stop(proc)
    elapsed = time.perf_counter() - began
    print()
    print(f"Machine: {info['nproc']} x {info['cpu']}; Python {info['python']}; "
          f"{info['openssl']}; {info['dcmtk']}; pynetdicom {info['pynetdicom']}; "
          f"pydicom {info['pydicom']}; free page reporting order "
          f"{info['page_reporting_order']}")
    print(f"Median of {args.runs} run(s); total {elapsed:.0f}s.")
    print()
    if {c.name for c in selected} == {"images", "large", "small"}:
        print(report.table(results, transports, variants, all_cases))
    else:
        for m in results.values():
            case = next(c for c in all_cases if c.name == m.case)
            print(f"{m.transport:5} {m.variant:10} {m.case:6} "
                  f"{report.fmt(m.rate(case.unit), case.unit)} {case.unit}")
    if args.json is not None:
        args.json.write_text(json.dumps({
            "machine": info, "runs": args.runs, "quick": args.quick, "elapsed": elapsed,
            "cases": [asdict(c) for c in all_cases],
            "measurements": [asdict(m) for m in results.values()],
        }, indent=2))
    failed = [m for m in results.values() if not m.ok]
    for m in failed:
        print(f"FAILED {m.transport} {m.variant} {m.case}: {m.errors}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
