"""What making received objects durable costs, without the network: the SCP's
store-thread rounds alone, against plain files written as ``storescp`` writes them.

The network benchmarks (``store_bench.py``, ``pairs.py``) time a whole transfer on
two shared cores, where every process's CPU counts and a run moves by 10-30 %.
This script times the store's side alone, in one process, on objects already in
memory (page-aligned buffers, as the SCP holds every received data set of 64 KiB
to 1 MiB), in rounds of 32 as its store thread takes them (pipelined: round *n*
is started, then round *n-1* finished):

* ``durable``: ``StorageSCP``, serve's default (unnamed file, direct write,
  one ``syncfs`` per round, names, folder fsync; index rows on the index thread);
* ``nosync``: ``StorageSCP(durable=False)`` (``serve --no-fsync``);
* ``plain``: ``open``, ``write``, ``close`` under the final name, no fsync, no
  index: what ``storescp`` does for each object (its bytes reach the disk later,
  in the kernel's write-back, outside any run).

Per run it prints, summed over the timed spans (each round's buffers are filled
off the clock, as the event loop fills them in a server): the wall time, the
process's CPU (every thread: the index thread's too, while the clock runs) and
the machine's, from ``/proc/stat`` (the kernel's own threads included: journal
commits, block I/O completions), and the time the host stole from this virtual
machine's CPUs; then the medians. Loopback is not used; the
files go to a temporary folder under ``--folder`` (default: the current one, so
that they land on the disk the SCP would use, not on a tmpfs).

    .venv/bin/python bench/store_rounds.py [--count 200] [--size 512K] [--runs 5]
    .venv/bin/python bench/store_rounds.py --modes durable,plain --json out.json

Run it a few minutes after a test suite or a mass deletion (see store_bench.py:
ext4 searches recently freed inodes first).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import call_count  # sibling scripts, not a package

from dicomnet.dimse.messages import CStoreRQ
from dicomnet.services.storage import StorageSCP
from dicomnet.services.store_jobs import Job
from dicomnet.services.workers import MAX_BATCH
from dicomnet.storage.direct import AlignedBuffer
from dicomnet.storage.part10 import read_part10

MODES = ("durable", "nosync", "plain")
EXPLICIT_LE = "1.2.840.10008.1.2.1"
#: The store thread's round for page-aligned data sets (services.store_jobs.round_size).
ROUND = MAX_BATCH


class _Peer:
    """The association fields a store round reads (calling AE, peer, TLS link)."""

    calling_ae_title = "BENCH"
    peer = ("127.0.0.1", 11112)
    security = None

    @property
    def stream(self) -> _Peer:
        return self


@dataclass(frozen=True, slots=True)
class Run:
    mode: str
    wall: float
    cpu: float
    machine: float
    steal: float


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _machine() -> tuple[float, float]:
    """Seconds the machine's CPUs ran since boot (user, nice, system, irq and
    softirq; not idle or iowait), and seconds stolen from them: a virtual
    machine's vCPU kept off its physical CPU by the host (proc(5))."""
    with open("/proc/stat") as f:
        user, nice, system, _idle, _iowait, irq, softirq, steal = (
            int(v) for v in f.readline().split()[1:9])
    tick = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq) / tick, steal / tick


def _objects(folder: Path) -> list[tuple[str, str, bytes]]:
    """(SOP Class UID, SOP Instance UID, Part 10 bytes) of each file of ``folder``."""
    found = []
    for path in sorted(folder.iterdir()):
        data = path.read_bytes()
        info = read_part10(path)  # the UIDs its C-STORE-RQ would carry
        found.append((info.sop_class_uid, info.sop_instance_uid, data))
    return found


class _Clock:
    """Wall, process CPU, machine and stolen seconds, summed over the timed spans."""

    def __init__(self, profiler: cProfile.Profile | None) -> None:
        self.profiler = profiler
        self.spans = [0.0, 0.0, 0.0, 0.0]
        self._at = (0.0, 0.0, 0.0, 0.0)

    def __enter__(self) -> None:
        self._at = (time.perf_counter(), _cpu(), *_machine())
        if self.profiler is not None:
            self.profiler.enable()

    def __exit__(self, *_: object) -> None:
        if self.profiler is not None:
            self.profiler.disable()
        now = (time.perf_counter(), _cpu(), *_machine())
        self.spans = [total + end - begin
                      for total, end, begin in zip(self.spans, now, self._at, strict=True)]

    def run(self, mode: str) -> Run:
        return Run(mode, *self.spans)


def _time(mode: str, root: Path, objects: list[tuple[str, str, bytes]],
          profiler: cProfile.Profile | None = None) -> Run:
    os.sync()  # nothing of an earlier run left to write back (store_bench.run_once)
    clock = _Clock(profiler if mode != "plain" else None)
    if mode == "plain":
        with clock:
            folder = root / "study" / "series"
            for _, uid, data in objects:
                folder.mkdir(parents=True, exist_ok=True)
                with open(folder / f"{uid}.dcm", "wb") as f:
                    f.write(data)
        return clock.run(mode)
    scp = StorageSCP(root, durable=mode == "durable", min_free=None)
    peer = _Peer()
    try:
        # The store thread's pipelined rounds (workers.BatchWorker.pipelined), called
        # in order without the thread: round n started, then round n-1 finished.
        # Each round's buffers are taken from the pool and filled off the clock (the
        # event loop's work in a server), so that buffers are reused and unmapped
        # as in a server, not 200 live at once.
        held = None
        for first in range(0, len(objects), ROUND):
            jobs = [_job(peer, first + n, *entry)
                    for n, entry in enumerate(objects[first:first + ROUND])]
            with clock:
                started = scp._start_round(jobs)
                if held is not None:
                    _check(scp._finish_round(held))
            held = started
        with clock:
            if held is not None:
                _check(scp._finish_round(held))
            scp.flush_index()
        return clock.run(mode)
    finally:
        scp.close()


def _job(peer: _Peer, number: int, sop_class: str, uid: str, data: bytes) -> Job:
    """A data set received in memory, as ``StorageSCP.start`` hands it over."""
    buffer = AlignedBuffer.take(len(data))
    buffer.append(data)
    message = CStoreRQ(message_id=number + 1, affected_sop_class_uid=sop_class,
                       affected_sop_instance_uid=uid)
    return Job(buffer, message, EXPLICIT_LE, peer)  # type: ignore[arg-type]


def _check(outcomes: Sequence[object]) -> None:
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise SystemExit(f"store_rounds: an object was not stored: {outcome}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200, help="objects (default: 200)")
    parser.add_argument("--size", default="512K", help="pixel bytes each (default: 512K)")
    parser.add_argument("--runs", type=int, default=5, help="runs per mode (default: 5)")
    parser.add_argument("--modes", default=",".join(MODES),
                        help="comma-separated, of " + ", ".join(MODES))
    parser.add_argument("--folder", type=Path, default=Path.cwd(),
                        help="where the temporary folder goes (default: here)")
    parser.add_argument("--json", type=Path, help="also write every run here")
    parser.add_argument("--profile", type=Path,
                        help="write a cProfile dump of the store's rounds here (durable "
                             "and nosync runs; the index thread is not in it)")
    args = parser.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or set(modes) - set(MODES):
        parser.error(f"--modes: one or more of {', '.join(MODES)}")
    size = call_count.size_of(args.size)
    if not 64 * 1024 <= size <= 1024 * 1024 - 4096:
        # Smaller data sets are held in a bytearray and written through the page
        # cache in rounds of 16; larger ones are spilled to disk as they arrive.
        parser.error("--size: 64K to 1020K (the data sets the SCP holds in page-aligned "
                     "memory)")
    work = Path(tempfile.mkdtemp(prefix="store-rounds-", dir=args.folder))
    runs: list[Run] = []
    profiler = cProfile.Profile() if args.profile is not None else None
    try:
        objects = _objects(call_count.objects(work, args.count, size))
        for number in range(args.runs):
            for mode in modes if number % 2 == 0 else modes[::-1]:
                root = work / f"{mode}-{number}"
                run = _time(mode, root, objects, profiler)
                runs.append(run)
                print(f"run {number + 1}  {mode:8} wall {run.wall * 1000:7.1f} ms  "
                      f"process CPU {run.cpu * 1000:7.1f} ms  machine {run.machine * 1000:6.0f} "
                      f"ms, stolen {run.steal * 1000:6.0f} ms", flush=True)
                shutil.rmtree(root)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print()
    per = args.count
    for mode in modes:
        mine = [r for r in runs if r.mode == mode]
        wall = statistics.median(r.wall for r in mine)
        cpu = statistics.median(r.cpu for r in mine)
        busy = statistics.median(r.machine for r in mine)
        steal = statistics.median(r.steal for r in mine)
        print(f"{mode:8} median: wall {wall * 1000:7.1f} ms, process CPU {cpu * 1000:7.1f} ms "
              f"({cpu / per * 1e6:.0f} us per object), machine {busy * 1000:.0f} ms, "
              f"stolen {steal * 1000:.0f} ms")
    if profiler is not None:
        profiler.dump_stats(args.profile)
    if args.json is not None:
        args.json.write_text(json.dumps({"count": args.count, "size": size,
                                         "runs": [asdict(r) for r in runs]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
