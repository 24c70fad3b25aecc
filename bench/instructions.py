"""Instructions per received object, counted by valgrind's callgrind, dicomnet against DCMTK.

Time on this shared 2-core VM is noisy; the instructions a process executes for
a fixed workload are not. This runs one side of a C-STORE transfer (TLS 1.3,
mutual authentication, 127.0.0.1) under ``valgrind --tool=callgrind`` and its
peer natively, for three workloads on one association each:

* ``one``:    1 x 512 KiB image (the baseline: start-up, handshake, association,
  release and shutdown, plus one object),
* ``images``: ``--images`` (21) x 512 KiB images,
* ``large``:  1 x 64 MiB object.

Per image = (images - one) / (images - 1); per MiB = (large - one) / 63.5 (the
large object's pixel data less the baseline's). A server's counters are zeroed
(``callgrind_control -z``) once it listens, so its imports are not in the
totals; the subtraction takes out the rest of the fixed costs either way.
Instructions are the process's own, every thread, in user space: the kernel's
work for a system call is not counted (``--syscalls`` counts the calls instead,
with ``strace -f -c`` on native runs of the one and images workloads, the same
subtraction).

Stacks (``--stacks``): ``dicomnet`` (``python -m dicomnet serve``, durable),
``dicomnet-nosync`` (``serve --no-fsync``), ``dcmtk`` (``storescp +tls``) and
``dcmtk+B`` (``storescp +B``); client side (``--side client``): ``dicomnet``
(``python -m dicomnet store --json`` into a native ``dicomnet serve --no-fsync``) and
``dcmtk`` (``storescu +tls`` into a native ``storescp``). DCMTK runs with
``-pdu 131072`` (its largest) and TCP_NODELAY=1, as in ``store_bench.py``.

Valgrind counts each iteration of ``rep movsb`` (glibc's memcpy from 2 KiB up to
about 1 MiB) as an instruction: memcpy's count is about the bytes it copied.
Valgrind hides AVX-512 from the program; OpenSSL 3.0's AES-GCM does not use it.

    PYTHONPATH=src .venv/bin/python bench/instructions.py --work /tmp/cg
    PYTHONPATH=src .venv/bin/python bench/instructions.py --work /tmp/cg --side client
    PYTHONPATH=src .venv/bin/python bench/instructions.py --work /tmp/cg --syscalls
    PYTHONPATH=src .venv/bin/python bench/instructions.py \
        --report /tmp/cg/cg/server-dicomnet-images/cg.out.*

``--work DIR`` keeps the files, PKI and callgrind outputs there (made once);
``--report FILE...`` prints the tables of existing callgrind outputs (summed).
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import store_bench as sb
from pydicom.uid import generate_uid

from dicomnet.security.certificates import make_dev_pki

BENCH = Path(__file__).resolve().parent
SRC = BENCH.parent / "src"
PY = sys.executable
KIB, MIB = 1024, 1024 * 1024
TIMEOUT = 600  # seconds: every peer's bound on a wait, for a peer ~50x slower
WORKLOADS = ("one", "images", "large")
SERVER_STACKS = ("dicomnet", "dicomnet-nosync", "dcmtk", "dcmtk+B")
CLIENT_STACKS = ("dicomnet", "dcmtk")

#: (function or object name) -> instructions, self cost.
Costs = collections.Counter[tuple[str, str]]


# -- callgrind output ---------------------------------------------------------------------

_NAME = re.compile(r"^\((\d+)\)(?: (.*))?$")
#: callgrind's suffix for a recursion level ("f'2"): the same function.
_RECURSION = re.compile(r"'\d+$")


def parse_callgrind(path: Path) -> Costs:
    """Self (exclusive) Ir per (object file, function) of one callgrind output file.

    The format (callgrind's "Callgrind Format Specification"): ``ob=``/``fn=``
    set the current object and function, with ``(id) name`` compression (one
    numbering for objects, one for functions, one for files);
    a cost line (position, then events) after ``calls=`` is the call's
    inclusive cost and belongs to the callee, so it is skipped here."""
    names: dict[str, dict[str, str]] = {"ob": {}, "fn": {}, "fl": {}}
    table_of = {"ob": "ob", "cob": "ob", "fn": "fn", "cfn": "fn",
                "fl": "fl", "fi": "fl", "fe": "fl", "cfi": "fl", "cfl": "fl"}
    ob = fn = "???"
    after_calls = False
    costs: Costs = collections.Counter()
    with open(path, errors="replace") as f:
        for line in f:
            head = line[:1]
            if head.isdigit() or head in "+-*":
                if after_calls:
                    after_calls = False
                    continue
                parts = line.split()
                if len(parts) > 1:
                    costs[(ob, fn)] += int(parts[1])
                continue
            key, _, value = line.rstrip("\n").partition("=")
            if key in table_of:  # files too: their ids are theirs, not functions'
                table = names[table_of[key]]
                m = _NAME.match(value)
                if m is not None:
                    if m.group(2) is not None:
                        table[m.group(1)] = m.group(2)
                    value = table.get(m.group(1), value)
                if key == "ob":
                    ob = value
                elif key == "fn":
                    fn = _RECURSION.sub("", value)
            elif key == "calls":
                after_calls = True
    return costs


def group(obj: str) -> str:
    """The row of the by-object table an object file counts in."""
    base = os.path.basename(obj)
    for prefix, name in (("libcrypto", "libcrypto"), ("libssl", "libssl"),
                         ("libpython", "libpython"), ("libc.so", "libc"),
                         ("ld-linux", "ld.so"), ("libstdc++", "libstdc++"),
                         ("libsqlite", "libsqlite3"), ("libz", "libz")):
        if base.startswith(prefix):
            return name
    if base.startswith(("libdcm", "libofstd", "liboflog", "libi2d", "libcmr")):
        return "DCMTK libs"
    if base.startswith(("storescp", "storescu")):
        return "DCMTK binary"
    if base.startswith("python"):
        return "python binary"
    if base.endswith(".so") and ("lib-dynload" in obj or "site-packages" in obj):
        return "Python C extensions"
    if base.startswith("vgpreload"):
        return "valgrind preload"
    return "other"


def load(paths: Iterable[Path]) -> Costs:
    total: Costs = collections.Counter()
    for path in paths:
        total.update(parse_callgrind(path))
    return total


# CPython 3.11 "quickens" a code object once it has run a few times: a one-off
# cost that a 21-image run pays and a 1-image run does not, so the subtraction
# would charge it to every image. It gets a row of its own, out of the total.
WARM_UP = "warm-up (_PyCode_Quicken)"


def row(obj: str, fn: str) -> str:
    """The row a function's instructions count in: its object's, or WARM_UP."""
    return WARM_UP if fn.startswith("_PyCode_Quicken") else group(obj)


def by_group(costs: Costs) -> collections.Counter[str]:
    out: collections.Counter[str] = collections.Counter()
    for (obj, fn), ir in costs.items():
        out[row(obj, fn)] += ir
    return out


def per_unit(big: Costs, base: Costs, units: float) -> dict[tuple[str, str], float]:
    keys = set(big) | set(base)
    return {k: (big[k] - base[k]) / units for k in keys}


# -- processes ---------------------------------------------------------------------------


def _env() -> dict[str, str]:
    # Same hashes every run, the tree's sources, and DCMTK without Nagle's delay.
    return {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": str(SRC), "TCP_NODELAY": "1"}


def valgrind(out: Path) -> list[str]:
    return ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}.%p", "--quiet"]


def server_command(stack: str, pki: Path, out: Path, port: int) -> list[str]:
    if stack.startswith("dicomnet"):
        cmd = [PY, "-m", "dicomnet", "serve", "--tls", "--cert", str(pki / "server.pem"),
               "--key", str(pki / "server.key"), "--ca", str(pki / "ca.pem"),
               "--port", str(port), "-o", str(out), "--timeout", str(TIMEOUT),
               "--idle-timeout", str(TIMEOUT), "--operation-timeout", str(TIMEOUT)]
        return cmd + (["--no-fsync"] if stack == "dicomnet-nosync" else [])
    cmd = [sb.STORESCP, "-pdu", sb.DCMTK_PDU, "-od", str(out), "-ta", str(TIMEOUT),
           "-td", str(TIMEOUT), "+tls", str(pki / "server.key"), str(pki / "server.pem"),
           "+cf", str(pki / "ca.pem")]
    return cmd + (["+B"] if stack == "dcmtk+B" else []) + [str(port)]


def client_command(stack: str, pki: Path, port: int, folder: Path) -> list[str]:
    if stack.startswith("dicomnet"):
        return [PY, "-m", "dicomnet", "store", "127.0.0.1", str(port), str(folder), "--tls",
                "--cert", str(pki / "client.pem"), "--key", str(pki / "client.key"),
                "--ca", str(pki / "ca.pem"), "--server-name", "localhost",
                # --json: without it the summary table's rich rendering (~1.2 M
                # instructions a row, up to 50 rows) would count as per image.
                "--timeout", str(TIMEOUT), "--json"]
    return [sb.STORESCU, "-aet", "STORESCU", "-aec", "ANY-SCP", "-pdu", sb.DCMTK_PDU, "+sd",
            "-to", str(TIMEOUT), "-ta", str(TIMEOUT), "-td", str(TIMEOUT),
            "+tls", str(pki / "client.key"), str(pki / "client.pem"), "+cf", str(pki / "ca.pem"),
            "127.0.0.1", str(port), str(folder)]


def start_server(cmd: list[str], stack: str, log: Path, port: int) -> tuple[
        subprocess.Popen[bytes], int]:
    with open(log, "ab") as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=err, env=_env())
    # Polled, as for storescp: serve's --json would add a JSON line per object.
    deadline = time.monotonic() + TIMEOUT
    while not sb._listening(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            raise RuntimeError(f"server did not start, see {log}")
        time.sleep(0.05)
    return proc, port


def stop(proc: subprocess.Popen[bytes], traced: bool = False) -> None:
    """SIGTERM to the server (under strace: to strace's child, the server, as
    strace itself would hold on to it), then wait for its end and its output."""
    if proc.poll() is None:
        if traced:
            with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as f:
                for child in f.read().split():
                    os.kill(int(child), signal.SIGTERM)
        else:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(60)


def zero_counters(pid: int) -> None:
    """``callgrind_control -z``: the server's start-up (imports) leaves the totals."""
    subprocess.run(["callgrind_control", "-z", str(pid)], capture_output=True, check=True,
                   timeout=TIMEOUT)


def run(side: str, stack: str, workload: str, folder: Path, *, pki: Path, work: Path,
        prefix: list[str] | None = None) -> Path:
    """One transfer, ``side`` under ``prefix`` (valgrind by default); the folder of
    its outputs (``cg.out.<pid>`` files)."""
    tag = f"{side}-{stack}-{workload}"
    outdir = work / ("cg" if prefix is None else "other") / tag
    shutil.rmtree(outdir, ignore_errors=True)
    outdir.mkdir(parents=True)
    recv = work / "recv" / tag
    shutil.rmtree(recv, ignore_errors=True)
    recv.mkdir(parents=True)
    log = outdir / "log.txt"
    wrap = valgrind(outdir / "cg.out") if prefix is None else prefix
    server_stack = stack if side == "server" else (
        "dicomnet-nosync" if stack.startswith("dicomnet") else "dcmtk")
    port = sb._free_port()
    scmd = server_command(server_stack, pki, recv, port)
    proc, port = start_server((wrap if side == "server" else []) + scmd, server_stack, log,
                              port)
    try:
        if side == "server" and prefix is None:
            zero_counters(proc.pid)
        ccmd = client_command(stack, pki, port, folder)
        done = subprocess.run((wrap if side == "client" else []) + ccmd,
                              stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=TIMEOUT * 4, env=_env(), check=False)
        with open(log, "ab") as f:
            f.write(done.stdout[-4000:] + done.stderr[-4000:])
        if done.returncode != 0:
            raise RuntimeError(f"{tag}: client exit {done.returncode}, see {log}")
        time.sleep(2)  # what the server does after the last answer (index rows)
    finally:
        stop(proc, traced=side == "server" and prefix is not None)
    files, _ = sb.received(recv)
    expected = len(list(folder.iterdir()))
    if files != expected:
        raise RuntimeError(f"{tag}: {files} of {expected} files received, see {log}")
    shutil.rmtree(recv, ignore_errors=True)
    return outdir


# -- data --------------------------------------------------------------------------------


def prepare(work: Path, images: int) -> tuple[dict[str, Path], Path]:
    data = work / "data"
    folders = {"one": data / "one", "images": data / f"images{images}",
               "large": data / "large"}
    if not folders["images"].exists():
        block = os.urandom(4 * MIB)
        case = sb.Case("images", images, 512 * KIB, 512, 512, 1, "MB/s")
        folders["images"].mkdir(parents=True)
        study, series = generate_uid(), generate_uid()
        for i in range(images):
            sb.write_object(folders["images"] / f"{i + 1:05d}.dcm", case, study, series, block)
    sb.subset(folders["images"], folders["one"], 1)
    if not folders["large"].exists():
        folders["large"].mkdir()
        case = sb.Case("large", 1, 64 * MIB, 512, 512, 128, "MB/s")
        sb.write_object(folders["large"] / "00001.dcm", case, generate_uid(),
                        generate_uid(), os.urandom(4 * MIB))
    pki = work / "pki"
    if not (pki / "ca.pem").exists():
        make_dev_pki(pki)
    return folders, pki


# -- report ------------------------------------------------------------------------------


def _fmt(value: float) -> str:
    return f"{value:,.0f}"


def report(costs: dict[str, dict[str, Costs]], stacks: Sequence[str], images: int,
           top: int) -> str:
    """Per image and per MiB, by object group, then the top functions of each stack."""
    lines: list[str] = []
    unit = {"images": ("per 512 KiB image", images - 1),
            "large": ("per MiB (64 MiB object)", (64 * MIB - 512 * KIB) / MIB)}
    for workload, (label, units) in unit.items():
        diffs = {s: per_unit(costs[s][workload], costs[s]["one"], units) for s in stacks}
        groups: dict[str, collections.Counter[str]] = {}
        for s in stacks:
            g: collections.Counter[str] = collections.Counter()
            for (obj, fn), ir in diffs[s].items():
                g[row(obj, fn)] += round(ir)
            groups[s] = g
        names = sorted({n for g in groups.values() for n in g if abs(g[n]) >= 1},
                       key=lambda n: -max(abs(groups[s][n]) for s in stacks))
        lines += [f"Instructions {label}:", "",
                  "| object | " + " | ".join(stacks) + " |",
                  "|---|" + "---:|" * len(stacks)]
        for n in names:
            lines.append(f"| {n} | " + " | ".join(_fmt(groups[s][n]) for s in stacks) + " |")
        lines.append("| **total** (less warm-up) | " + " | ".join(
            f"**{_fmt(sum(groups[s].values()) - groups[s][WARM_UP])}**"
            for s in stacks) + " |")
        lines.append("")
        for s in stacks:
            lines += [f"Top {top} functions {label}, {s} (self instructions):", ""]
            ranked = sorted(diffs[s].items(), key=lambda kv: -abs(kv[1]))[:top]
            for (obj, fn), ir in ranked:
                lines.append(f"  {_fmt(ir):>14}  {fn}  [{os.path.basename(obj)}]")
            lines.append("")
    return "\n".join(lines)


def strace_calls(path: Path) -> collections.Counter[str]:
    """Calls per system call from an ``strace -c`` summary."""
    counts: collections.Counter[str] = collections.Counter()
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[0][:1].isdigit() and parts[-1] != "total":
            counts[parts[-1]] += int(parts[3])
    return counts


def syscalls(side: str, stacks: Sequence[str], folders: dict[str, Path], *, pki: Path,
             work: Path, images: int) -> str:
    lines = [f"System calls per 512 KiB image ({side}, strace -f -c, native):", ""]
    for s in stacks:
        counts = {}
        for w in ("one", "images"):
            out = work / "strace" / f"{side}-{s}-{w}.txt"
            out.parent.mkdir(parents=True, exist_ok=True)
            run(side, s, w, folders[w], pki=pki, work=work,
                prefix=["strace", "-f", "-c", "-o", str(out)])
            counts[w] = strace_calls(out)
        diff = {k: (counts["images"][k] - counts["one"][k]) / (images - 1)
                for k in set(counts["images"]) | set(counts["one"])}
        ranked = sorted(diff.items(), key=lambda kv: -kv[1])
        lines.append(f"{s}: {sum(diff.values()):.1f} in all; " + ", ".join(
            f"{k} {v:.1f}" for k, v in ranked if v >= 0.5))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, help="keep data, PKI and outputs here")
    parser.add_argument("--side", choices=("server", "client"), default="server")
    parser.add_argument("--stacks", help="comma separated; default: every stack of the side")
    parser.add_argument("--images", type=int, default=21, help="images of the images workload")
    parser.add_argument("--top", type=int, default=30, help="functions listed per stack")
    parser.add_argument("--syscalls", action="store_true",
                        help="count system calls with strace instead (native runs)")
    parser.add_argument("--reuse", action="store_true",
                        help="report the outputs already in --work, run nothing")
    parser.add_argument("--report", type=Path, nargs="+",
                        help="print the by-object totals and top functions of these files")
    args = parser.parse_args(argv)
    if args.report:
        summed = load(args.report)
        for name, ir in by_group(summed).most_common():
            print(f"{_fmt(ir):>16}  {name}")
        for (obj, fn), ir in summed.most_common(args.top):
            print(f"{_fmt(ir):>16}  {fn}  [{os.path.basename(obj)}]")
        return 0
    stacks = (args.stacks.split(",") if args.stacks
              else list(SERVER_STACKS if args.side == "server" else CLIENT_STACKS))
    work = args.work or Path(tempfile.mkdtemp(prefix="instructions-"))
    folders, pki = prepare(work, args.images)
    # Byte code up to date first: a module compiled during one run of a pair (a
    # source edited since) would count its compilation in that run only.
    subprocess.run([PY, "-m", "compileall", "-q", str(SRC)], check=True)
    if args.syscalls:
        print(syscalls(args.side, stacks, folders, pki=pki, work=work, images=args.images))
        return 0
    costs: dict[str, dict[str, Costs]] = {}
    for s in stacks:
        costs[s] = {}
        for w in WORKLOADS:
            outdir = work / "cg" / f"{args.side}-{s}-{w}"
            if not args.reuse:
                start = time.monotonic()
                outdir = run(args.side, s, w, folders[w], pki=pki, work=work)
                print(f"ran {args.side} {s} {w} in {time.monotonic() - start:.0f} s",
                      file=sys.stderr)
            costs[s][w] = load(sorted(outdir.glob("cg.out.*")))
    print(f"{args.side} side, TLS 1.3 with mutual authentication, 127.0.0.1\n")
    print(report(costs, stacks, args.images, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
