"""Storage servers under one sender: the same SCU sends to each server in turn.

``store_bench.py`` pairs each stack's SCU with its own SCP, where dicomnet
pipelines. Most real senders do not: DCMTK's ``storescu``, pynetdicom's
``send_c_store`` in a loop and most modalities wait for each response before
the next C-STORE. Here one sender (DCMTK ``storescu`` by default) sends a case
to each server, in interleaved rounds, every run after ``os.sync()``, on
127.0.0.1 over TLS 1.3 with mutual authentication (``--plain``: TCP):

* ``dicomnet``: ``bench/dicomnet_scp.py``, as ``dicomnet serve`` runs: each
  object durable (fsync, name, folder fsync) before its answer, SQLite index;
* ``orthanc``: Orthanc (Debian's package), its storage defaults: SQLite index,
  an fsync of each file (``SyncStorageArea``), no compression, no transcoding;
* ``dcmtk`` / ``dcmtk+B``: DCMTK's ``storescp`` (no fsync, no index; with
  ``--fork`` when there are several senders, its way to serve them at once);
* ``tree``: dicomnet's server from another checkout (``--tree DIR``), for A/B
  comparisons of the one-at-a-time path.

``--senders N`` runs N senders at once, each with its share of the files (a
server receiving from several modalities): the time is then until the last
one is done, and the server's CPU includes its reaped children (storescp's
forks).

Every DCMTK-based process (storescu, storescp, Orthanc) runs with
``TCP_NODELAY=1``: with Nagle on, Orthanc took 89.7 s instead of 3.7 s for
2,000 x 2 KB objects here. A run counts when every object arrived (files
counted; Orthanc's own count of instances). Rates are medians over the rounds;
the time is the sender's process wall time (``--client dicomnet``: the time our
SCU measures around its send, as in store_bench). Each run is then followed by
a timed ``os.sync()``, and the rounds and medians are also given until the data
is on disk (the run plus that sync): Orthanc and dicomnet flush before they
answer, ``storescp`` leaves what it received in the page cache.

Run: ``.venv/bin/python bench/senders.py {small,images,large} [--servers
dicomnet,orthanc,dcmtk] [--client dcmtk|dicomnet] [--senders N] [--rounds N]
[--tree DIR] [--plain] [--quick] [--no-wait]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import interleaved
import store_bench as sb

ORTHANC = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
SERVERS = ("dicomnet", "orthanc", "dcmtk", "dcmtk+B", "dicomnet-nosync", "tree")


class Orthanc(sb.Server):
    """An Orthanc process: its DICOM port, and its REST port for counting."""

    __slots__ = ("http_port",)

    def __init__(self, proc: subprocess.Popen[bytes], port: int, log: Path,
                 http_port: int) -> None:
        super().__init__(proc, port, log)
        self.http_port = http_port

    def statistics(self) -> dict[str, object]:
        url = f"http://127.0.0.1:{self.http_port}/statistics"
        with urllib.request.urlopen(url, timeout=30) as answer:
            result: dict[str, object] = json.load(answer)
        return result


def start_orthanc(pki: Path | None, out: Path, log: Path) -> Orthanc:
    """Orthanc storing under ``out`` with its defaults for storage; DICOM TLS with
    the development PKI's server certificate (it only receives here)."""
    dicom_port, http_port = sb._free_port(), sb._free_port()
    config: dict[str, object] = {
        "Name": "dicomnet bench", "StorageDirectory": str(out / "storage"),
        "IndexDirectory": str(out / "index"), "Plugins": [],
        "HttpPort": http_port, "RemoteAccessAllowed": False, "AuthenticationEnabled": False,
        "SaveJobs": False, "DicomAet": "ORTHANC", "DicomPort": dicom_port,
        "DicomCheckCalledAet": False,
    }
    if pki is not None:
        config |= {"DicomTlsEnabled": True, "DicomTlsCertificate": str(pki / "server.pem"),
                   "DicomTlsPrivateKey": str(pki / "server.key"),
                   "DicomTlsTrustedCertificates": str(pki / "ca.pem"),
                   "DicomTlsRemoteCertificateRequired": True}
    path = out / "orthanc.json"
    path.write_text(json.dumps(config, indent=2))
    proc = sb._spawn([ORTHANC, str(path)], log, env=sb._dcmtk_env())
    deadline = time.monotonic() + 30
    while not (sb._listening(dicom_port) and sb._listening(http_port)):
        if proc.poll() is not None or time.monotonic() > deadline:
            sb._stop(proc)
            raise RuntimeError(f"Orthanc did not start, see {log}")
        time.sleep(0.02)
    return Orthanc(proc, dicom_port, log, http_port)


def split(folder: Path, target: Path, parts: int) -> list[Path]:
    """``folder``'s files dealt round-robin into ``parts`` folders (hard links)."""
    if parts == 1:
        return [folder]
    shares = [target / str(n) for n in range(parts)]
    for share in shares:
        share.mkdir(parents=True, exist_ok=True)
    for n, path in enumerate(sorted(folder.iterdir())):
        os.link(path, shares[n % parts] / path.name)
    return shares


def cpu_with_children(pid: int) -> float:
    """The process's CPU and its reaped children's (utime, stime, cutime, cstime)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def run_once(server_name: str, client: str, pki: Path | None, case: sb.Case,
             shares: list[Path], *, payload: int, work: Path, tag: str, timeout: float,
             m: sb.Measurement, tree: Path | None = None) -> None:
    out = work / "recv" / tag
    out.mkdir(parents=True)
    log = work / "logs" / f"{tag}.log"
    log.parent.mkdir(exist_ok=True)
    os.sync()  # nothing left to write back from the previous run (see store_bench)
    fork = ["--fork"] if len(shares) > 1 else []
    try:
        if server_name == "orthanc":
            server: sb.Server = start_orthanc(pki, out, log)
        elif server_name == "tree":  # dicomnet's server from the other checkout
            assert tree is not None
            with interleaved.checkout_first(tree):  # the sender runs from this one
                server = sb.start_server("dicomnet", pki, out, log)
        else:
            server = sb.start_server(server_name, pki, out, log, storescp_options=fork)
    except RuntimeError as exc:
        m.errors.append(f"{tag}: {exc}")
        return
    try:
        start = time.perf_counter()
        senders = [subprocess.Popen(sb.client_command(client, pki, server.port, share),
                                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, env=sb._dcmtk_env())
                   for share in shares]
        outputs: list[bytes] = []
        try:
            for sender in senders:
                left = max(0.1, timeout - (time.perf_counter() - start))
                outputs.append(sender.communicate(timeout=left)[0])
        except subprocess.TimeoutExpired:
            for sender in senders:
                sender.kill()
                sender.communicate()
            m.errors.append(f"{tag}: a sender timed out after {timeout:.0f}s")
            return
        wall = time.perf_counter() - start
        flush = sb.timed_sync()  # the rounds' "on disk" figures, as in store_bench
        seconds = wall
        if client == "dicomnet" and len(shares) == 1:
            lines = outputs[0].decode(errors="replace").strip().splitlines()
            with contextlib.suppress(IndexError, ValueError, KeyError):
                seconds = float(json.loads(lines[-1])["seconds"])
        failed = [s.returncode for s in senders if s.returncode != 0]
        if isinstance(server, Orthanc):
            stats = server.statistics()
            files, size = int(str(stats["CountInstances"])), int(str(stats["TotalDiskSize"]))
        else:
            files, size = sb.received(out)
        if failed or files != m.count or size < payload:
            m.errors.append(
                f"{tag}: sender exits {failed or 0}, {files}/{m.count} objects, {size} "
                "bytes: " + b"".join(outputs).decode(errors="replace").strip()[-400:])
            return
        m.seconds.append(seconds)
        m.sync_seconds.append(flush)
        m.client_wall.append(wall)
        m.server_cpu.append(cpu_with_children(server.proc.pid))
    finally:
        server.stop()
        if case.name == "large":  # few inodes, much space (see store_bench.run_once)
            shutil.rmtree(out, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="One sender, several storage servers, interleaved rounds.",
        epilog="Servers: " + ", ".join(SERVERS) + ". Rates are medians over the rounds.")
    parser.add_argument("case", choices=["images", "large", "small"])
    parser.add_argument("--servers", default="dicomnet,orthanc,dcmtk",
                        help="comma-separated; the first is the reference "
                             "(default: dicomnet,orthanc,dcmtk)")
    parser.add_argument("--client", choices=["dcmtk", "dicomnet"], default="dcmtk",
                        help="the sender: DCMTK storescu (one C-STORE at a time) or "
                             "dicomnet's SCU (pipelined where the server allows)")
    parser.add_argument("--tree", type=Path,
                        help="another dicomnet checkout, whose server 'tree' runs (A/B)")
    parser.add_argument("--senders", type=int, default=1,
                        help="how many senders at once, each with its share of the files")
    parser.add_argument("--rounds", type=int, default=3)
    interleaved.add_round_options(parser)
    args = parser.parse_args(argv)
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    unknown = set(servers) - set(SERVERS)
    if unknown or not servers:
        parser.error(f"--servers: one or more of {', '.join(SERVERS)}")
    if "tree" in servers and (args.tree is None or not (args.tree / "src").is_dir()):
        parser.error("'tree' needs --tree pointing at a checkout with a src/ folder")
    if "orthanc" in servers and not Path(ORTHANC).exists():
        parser.error("Orthanc is not installed (apt-get install orthanc)")
    case = {c.name: c for c in sb.cases(args.quick)}[args.case]
    if not 1 <= args.senders <= case.count:
        parser.error(f"--senders: 1 to {case.count}")
    sb.wait_for_freed_inodes(wait=not args.no_wait)
    with sb.workspace(None) as work:
        rounds = interleaved.prepare_rounds(work, case, servers, plain=args.plain)
        shares = split(rounds.folder, work / "data" / "shares", args.senders)
        transport, results = rounds.transport, rounds.results
        who = "DCMTK storescu" if args.client == "dcmtk" else "dicomnet SCU"
        if args.senders > 1:
            who = f"{args.senders} x {who} at once"
        print(f"{case.label}, {transport}, sender: {who}", flush=True)
        for number in range(args.rounds):
            order = servers if number % 2 == 0 else servers[::-1]
            for name in order:
                m = results[name]
                before = len(m.seconds)
                run_once(name, args.client, rounds.pki, case, shares, payload=rounds.payload,
                         work=work, tag=f"{name}-{number}", timeout=args.timeout, m=m,
                         tree=args.tree)
                interleaved.print_round(number, name, case, m, before)
    interleaved.print_medians(case, results, servers)
    return 0 if all(m.ok for m in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
