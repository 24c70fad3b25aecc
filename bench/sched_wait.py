"""Who waits for a CPU during one benchmark transfer: each process's run and
run-queue wait, against the machine's idle time.

``/proc/PID/task/*/schedstat`` (time on a CPU, time runnable but waiting for
one) of the SCP's and the SCU's threads and ``/proc/stat`` are sampled every
10 ms while the SCU runs; the averages are taken over the interval where the
server is busy. A process whose threads are runnable while CPUs count as idle
pays for its wake-ups (on this VM, see docs/benchmarks.md, "The nineteenth
session"): a multi-threaded server more than a single-threaded one.
``--threads`` also prints each server thread's seconds on a CPU and waiting
over the same interval (``main`` is dicomnet's event loop; the others by
thread ID, in the order they were made: the store thread, then the index's).

    .venv/bin/python bench/sched_wait.py images --stacks dicomnet,dcmtk --rounds 3
"""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import store_bench as sb  # a sibling script, not a package

_CPU_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


def _schedstat(pid: int) -> dict[str, tuple[int, int]] | None:
    """Thread ID -> (ns on a CPU, ns runnable and waiting), for ``pid``'s threads."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    threads = {}
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                on_cpu, waiting, _ = f.read().split()
        except (OSError, ValueError):
            continue
        threads[tid] = (int(on_cpu), int(waiting))
    return threads


def _delta(before: dict[str, tuple[int, int]],
           after: dict[str, tuple[int, int]]) -> tuple[int, int]:
    """(ns on a CPU, ns waiting) between two samples, thread by thread: a thread
    that ended meanwhile takes its counters out of a plain sum, which then went
    below zero (a negative wait); a new one counts from zero."""
    run = wait = 0
    for tid, (on_cpu, waiting) in after.items():
        was = before.get(tid, (0, 0))
        run += on_cpu - was[0]
        wait += waiting - was[1]
    return run, wait


def _cpu_ticks() -> list[int]:
    with open("/proc/stat") as f:
        return [int(x) for x in f.readline().split()[1:1 + len(_CPU_FIELDS)]]


def measure(variant: str, *, pki: Path, folder: Path, work: Path,
            tag: str, threads: bool = False) -> dict[str, float]:
    """One transfer of ``folder`` by ``variant``'s SCU into its SCP, sampled."""
    out = work / "recv" / tag
    out.mkdir(parents=True)
    os.sync()
    sb.warm(folder)
    server = sb.start_server(variant, pki, out, work / f"{tag}.log")
    server_pid = server.proc.pid
    samples: list[tuple[float, dict[str, tuple[int, int]], dict[str, tuple[int, int]],
                        list[int]]] = []
    try:
        client = subprocess.Popen(sb.client_command(variant, pki, server.port, folder),
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, env=sb._dcmtk_env())
        while client.poll() is None:
            s, c = _schedstat(server.proc.pid), _schedstat(client.pid)
            if s is not None and c is not None:
                samples.append((time.monotonic(), s, c, _cpu_ticks()))
            time.sleep(0.01)
    finally:
        server.stop()
    tick = os.sysconf("SC_CLK_TCK")
    rows = []
    for (t0, s0, c0, g0), (t1, s1, c1, g1) in itertools.pairwise(samples):
        ns = (t1 - t0) * 1e9
        of_server, of_client = _delta(s0, s1), _delta(c0, c1)
        rows.append((t0, of_server[0] / ns, of_server[1] / ns, of_client[0] / ns,
                     of_client[1] / ns,
                     [(b - a) / tick for a, b in zip(g0, g1, strict=True)], t1 - t0))
    busy = [r for r in rows if r[1] > 0.2]  # the server at work: the transfer
    if not busy:
        return {}
    first, last = busy[0][0], busy[-1][0]
    window = [r for r in rows if first <= r[0] <= last]
    if threads:
        # Per server thread, over the same window: seconds on a CPU and waiting.
        start = next(i for i, r in enumerate(rows) if r[0] == first)
        s0, s1 = samples[start][1], samples[start + len(window)][1]
        for tid in sorted(s1, key=int):
            was = s0.get(tid, (0, 0))
            name = "main" if tid == str(server_pid) else f"thread {tid}"
            print(f"    {tag} {name:14s} run {(s1[tid][0] - was[0]) / 1e9:.3f} s "
                  f"wait {(s1[tid][1] - was[1]) / 1e9:.3f} s")
    span = sum(r[6] for r in window)
    n = len(window)
    result = {"seconds": span, "server_run": sum(r[1] for r in window) / n,
              "server_wait": sum(r[2] for r in window) / n,
              "client_run": sum(r[3] for r in window) / n,
              "client_wait": sum(r[4] for r in window) / n}
    for index, name in enumerate(_CPU_FIELDS):
        if name in ("idle", "iowait", "softirq"):
            result[f"cpus_{name}"] = sum(r[5][index] for r in window) / span
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     epilog="Figures are CPUs on average over the transfer "
                                            "(1.0 = one CPU all the time).")
    parser.add_argument("case", choices=["images", "large", "small"])
    parser.add_argument("--stacks", default="dicomnet,dcmtk",
                        help="comma-separated (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=3, help="default: %(default)s")
    parser.add_argument("--threads", action="store_true",
                        help="also print each server thread's run and wait, in seconds")
    parser.add_argument("--no-wait", action="store_true",
                        help="do not wait for the inodes a previous run freed to age (ext4)")
    parser.add_argument("--quick", action="store_true",
                        help="store_bench's --quick sizes (a smoke run)")
    args = parser.parse_args(argv)
    stacks = [s.strip() for s in args.stacks.split(",") if s.strip()]
    unknown = set(stacks) - {"dicomnet", "dicomnet-nosync", "dcmtk", "dcmtk+B"}
    if unknown:
        parser.error(f"--stacks: dicomnet, dicomnet-nosync, dcmtk or dcmtk+B, not {unknown}")
    case = {c.name: c for c in sb.cases(args.quick)}[args.case]
    # As store_bench and pairs do: a server making files among inodes freed in the
    # last minutes spends its store thread in ext4's search for an old one.
    sb.wait_for_freed_inodes(wait=not args.no_wait)
    with sb.workspace(None) as work:
        folder = sb.generate(work / "data", [case])[case.name]
        pki = sb.make_dev_pki(work / "pki").directory
        for number in range(args.rounds):
            for stack in stacks if number % 2 == 0 else stacks[::-1]:
                r = measure(stack, pki=pki, folder=folder, work=work, tag=f"{stack}-{number}",
                            threads=args.threads)
                if not r:
                    print(f"round {number + 1} {stack:16s} no busy interval seen")
                    continue
                print(f"round {number + 1} {stack:16s} {r['seconds']:.3f} s: server run "
                      f"{r['server_run']:.2f} wait {r['server_wait']:.2f}, client run "
                      f"{r['client_run']:.2f} wait {r['client_wait']:.2f}; machine idle "
                      f"{r['cpus_idle']:.2f} iowait {r['cpus_iowait']:.2f} softirq "
                      f"{r['cpus_softirq']:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
