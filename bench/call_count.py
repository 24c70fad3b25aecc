"""Python calls per received object on the C-STORE SCP, counted rather than timed.

The machine the benchmarks run on is shared and noisy; the number of function
calls the server makes per object is not. This runs a ``StorageSCP`` (as
``dicomnet serve`` does: durable, SQLite index) in this process and
``bench/dicomnet_scu.py`` as the sender in another, then counts, per thread, the
profile events of the transfer (``sys.setprofile`` on the event loop's thread,
``threading.setprofile`` for the threads started during it: the store thread
``dicomnet-store``, the index thread ``dicomnet-index``):

* ``py``: Python function calls (the ``'call'`` event: a generator's or a
  coroutine's resumption counts as one, as in cProfile);
* ``c``: calls of built-in functions and methods (``'c_call'``).

Each count is divided by the objects sent. A warm-up association (``--warmup``
objects, not counted) comes first, so that lazy imports and first-use set-up
stay out. The association's own set-up and release are inside the count,
spread over its objects. Counts vary a little from run to run where the kernel
hands over the bytes in different pieces (reads per object, objects per store
round); ``--runs`` repeats the transfer and prints each.

    PYTHONPATH=src .venv/bin/python bench/call_count.py --objects 200 --size 512K
    PYTHONPATH=src .venv/bin/python bench/call_count.py --objects 2000 --size 2K --top 25
    PYTHONPATH=src .venv/bin/python bench/call_count.py --plain --runs 3

``--callers`` names each built-in call after the Python function that made it.
``--size`` is the pixel data's size (the files are ~1.3 KB larger: their header
and meta information); ``--work DIR`` keeps the generated files there for the
next run. The server keeps ``dicomnet serve``'s free-space reserve (1%) unless
``--min-free`` says otherwise (0: none).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import store_bench as sb

from dicomnet.aio.server import serve
from dicomnet.config import DEFAULT_MIN_FREE
from dicomnet.security.certificates import make_dev_pki
from dicomnet.security.config import TLSConfig
from dicomnet.services.storage import StorageSCP
from dicomnet.services.verification import VerificationSCP

BENCH = Path(__file__).resolve().parent
SRC = BENCH.parent / "src"
THREADS = ("loop", "dicomnet-store", "dicomnet-index")

Key = tuple[str, str]  # (kind "py"/"c", label)


class Counter:
    """Profile events of each thread while ``active``."""

    def __init__(self, *, callers: bool = False) -> None:
        self.active = False
        #: Name each built-in call after the Python function that made it, too.
        self.callers = callers
        self.by_thread: dict[int, collections.Counter[Any]] = collections.defaultdict(
            collections.Counter)
        #: Thread ident -> the group it is reported in (unnamed: "other").
        self.names: dict[int, str] = {}
        #: The finished runs' counts, by group.
        self.groups: dict[str, collections.Counter[Any]] = collections.defaultdict(
            collections.Counter)

    def end_run(self) -> dict[str, int]:
        """Fold this run's counts into :attr:`groups` (by thread group: its name, or
        "other") and start afresh (a thread's ident may be reused by the next
        run's threads); the run's total events by group."""
        run: collections.Counter[str] = collections.Counter()
        for ident, counts in self.by_thread.items():
            group = self.names.get(ident, "other")
            run[group] += sum(counts.values())
            self.groups[group].update(counts)
        self.by_thread.clear()
        return dict(run)

    def profile(self, frame: types.FrameType, event: str, arg: object) -> None:
        if not self.active:
            return
        if event == "call":
            key: object = frame.f_code
            if key.co_filename == "<string>" and "self" in key.co_varnames:
                # A dataclass's generated __init__: which class.
                key = ("", f"{type(frame.f_locals['self']).__qualname__}.__init__", "")
        elif event == "c_call":
            # Named now: a bound method kept as a key would keep its object alive
            # (a memoryview kept would forbid resizing the buffer it views).
            owner = getattr(arg, "__self__", None)
            where = (getattr(arg, "__module__", None) or "" if owner is None
                     or isinstance(owner, types.ModuleType) else type(owner).__name__)
            key = (where, getattr(arg, "__name__", "?"),
                   frame.f_code.co_qualname if self.callers else "")
        else:
            return
        self.by_thread[threading.get_ident()][key] += 1


def _label(key: object) -> Key:
    if isinstance(key, types.CodeType):
        path = key.co_filename
        for root in (str(SRC) + os.sep, sys.prefix + os.sep):
            if path.startswith(root):
                path = path[len(root):]
        return "py", f"{key.co_qualname} ({path}:{key.co_firstlineno})"
    where, name, caller = key  # type: ignore[misc]
    if not where and not caller:
        return "py", f"{name} (generated)"
    return "c", f"{where + '.' if where else ''}{name}{' in ' + caller if caller else ''}"


def size_of(text: str) -> int:
    units = {"K": 1024, "M": 1024 * 1024}
    text = text.strip().upper()
    if text[-1:] in units:
        return int(text[:-1]) * units[text[-1]]
    return int(text)


def make_case(count: int, size: int) -> sb.Case:
    """A case of ``count`` single-frame 16-bit images of ``size`` pixel bytes."""
    pixels = size // 2
    if size % 2 or pixels < 1:
        raise SystemExit("--size must be a positive even number of bytes")
    columns = 1
    while columns * 2 <= 512 and pixels % (columns * 2) == 0 and (columns * 2) ** 2 <= pixels:
        columns *= 2
    return sb.Case(f"{count}x{size}", count, size, pixels // columns, columns, 1, "-")


def objects(work: Path, count: int, size: int) -> Path:
    """A folder of ``count`` objects of ``size`` pixel bytes (generated once per work dir)."""
    case = make_case(count, size)
    folder = work / case.name
    if not folder.exists():
        tmp = work / (case.name + ".tmp")
        tmp.mkdir(parents=True)
        sb.generate(tmp, [case])
        (tmp / case.name).rename(folder)
        tmp.rmdir()
    return folder


def sender(port: int, folder: Path, pki: Path | None) -> Callable[[], int]:
    """A function that runs the SCU over ``folder`` and returns its exit status."""
    cmd = [sys.executable, str(BENCH / "dicomnet_scu.py"), "127.0.0.1", str(port), str(folder)]
    if pki is not None:
        cmd += ["--pki", str(pki)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(SRC), *filter(None, [os.environ.get("PYTHONPATH")])]))

    def run() -> int:
        done = subprocess.run(cmd, env=env, capture_output=True,
                              check=False)
        if done.returncode:
            print(done.stdout.decode(), done.stderr.decode()[-2000:], file=sys.stderr)
        return done.returncode

    return run


async def transfer(run: Callable[[], int], storage: StorageSCP,
                   counter: Counter | None) -> None:
    """Run the sender from a thread of ours (started before counting begins, so not
    counted); count from its start to the last index row written."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[int] = loop.create_future()
    go = threading.Event()

    def in_thread() -> None:
        sys.setprofile(None)  # started under threading.setprofile: not counted
        go.wait()
        status = run()
        storage.flush_index()
        loop.call_soon_threadsafe(done.set_result, status)

    thread = threading.Thread(target=in_thread, daemon=True)
    thread.start()
    if counter is not None:
        counter.active = True
    go.set()
    try:
        status = await done
    finally:
        if counter is not None:
            counter.active = False
    thread.join()
    if status:
        raise SystemExit(f"the sender failed (exit status {status})")


async def measure(args: argparse.Namespace, work: Path) -> tuple[Counter, list[dict[str, int]]]:
    folder = objects(work, args.objects, args.size)
    warm = objects(work, args.warmup, args.size) if args.warmup else None
    pki = None if args.plain else make_dev_pki(work / "pki").directory
    tls = None if pki is None else TLSConfig(
        certfile=pki / "server.pem", keyfile=pki / "server.key", cafile=pki / "ca.pem")
    counter = Counter(callers=args.callers)
    counter.names[threading.get_ident()] = "loop"
    # Threads started from here on (a server's store and index threads start with
    # its first object) call the counter; it counts only while active.
    threading.setprofile(counter.profile)
    sys.setprofile(counter.profile)
    totals: list[dict[str, int]] = []
    try:
        for _ in range(args.runs):
            # A fresh server and folder each run: the same objects again would be
            # duplicates, which take another path.
            out = Path(tempfile.mkdtemp(prefix="received-", dir=work))
            storage = StorageSCP(out, min_free=args.min_free)  # serve's default
            server = await serve(port=0, tls=tls, providers=[VerificationSCP(), storage])
            try:
                if warm is not None:
                    await transfer(sender(server.port, warm, pki), storage, None)
                await transfer(sender(server.port, folder, pki), storage, counter)
                for thread in threading.enumerate():
                    if thread.ident is not None and thread.name in THREADS:
                        counter.names[thread.ident] = thread.name
                totals.append(counter.end_run())
            finally:
                server.close()
                await server.wait_closed()
                storage.close()
                shutil.rmtree(out, ignore_errors=True)
    finally:
        sys.setprofile(None)
        threading.setprofile(None)  # type: ignore[arg-type]
    return counter, totals


def report(counter: Counter, totals: list[dict[str, int]], args: argparse.Namespace) -> None:
    per = args.objects * args.runs
    groups: dict[str, collections.Counter[Key]] = collections.defaultdict(collections.Counter)
    for group, counts in counter.groups.items():
        for key, n in counts.items():
            groups[group][_label(key)] += n
    transport = "TCP" if args.plain else "TLS"
    print(f"{args.objects} x {args.size} bytes over {transport}, {args.runs} run(s); "
          f"profile events per object (py: Python calls, c: built-in calls)")
    print("each run, py + c per object: " + "; ".join(
        ", ".join(f"{group} {run.get(group, 0) / args.objects:.1f}" for group in THREADS)
        for run in totals))
    for group in (*THREADS, "other"):
        counts = groups.get(group)
        if not counts:
            continue
        py = sum(n for (kind, _), n in counts.items() if kind == "py")
        c = sum(n for (kind, _), n in counts.items() if kind == "c")
        print(f"\n{group}: py {py / per:.1f}, c {c / per:.1f} per object")
        if args.top:
            for (kind, label), n in counts.most_common(args.top):
                print(f"  {n / per:8.2f}  {kind:2}  {label}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=200)
    parser.add_argument("--size", type=size_of, default=512 * 1024,
                        help="pixel bytes per object: 512K, 2K, 2048...")
    parser.add_argument("--tls", dest="plain", action="store_false", default=False,
                        help="over TLS 1.3 with mutual authentication (the default)")
    parser.add_argument("--plain", action="store_true", help="over plain TCP")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=5, help="objects sent first, uncounted")
    parser.add_argument("--top", type=int, default=25, help="functions listed per thread")
    parser.add_argument("--callers", action="store_true",
                        help="count built-in calls by the Python function making them")
    parser.add_argument("--work", type=Path, help="keep generated files here")
    parser.add_argument("--min-free", default=DEFAULT_MIN_FREE,
                        help="the server's free-space reserve, as serve's --min-free "
                             f"(default {DEFAULT_MIN_FREE}, serve's; 0: none)")
    args = parser.parse_args(argv)
    if args.work is not None:
        args.work.mkdir(parents=True, exist_ok=True)
        counter, totals = asyncio.run(measure(args, args.work))
    else:
        with tempfile.TemporaryDirectory(prefix="call-count-") as tmp:
            counter, totals = asyncio.run(measure(args, Path(tmp)))
    report(counter, totals, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
