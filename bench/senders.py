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
* ``dcmtk`` / ``dcmtk+B``: DCMTK's ``storescp`` (no fsync, no index).

Every DCMTK-based process (storescu, storescp, Orthanc) runs with
``TCP_NODELAY=1``: with Nagle on, Orthanc took 89.7 s instead of 3.7 s for
2,000 x 2 KB objects here. A run counts when every object arrived (files
counted; Orthanc's own count of instances). Rates are medians over the rounds;
the time is the sender's process wall time (``--client dicomnet``: the time our
SCU measures around its send, as in store_bench).

Run: ``.venv/bin/python bench/senders.py {small,images,large} [--servers
dicomnet,orthanc,dcmtk] [--client dcmtk|dicomnet] [--rounds N] [--plain]
[--quick] [--no-wait]``.
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

import store_bench as sb

from dicomnet.security.certificates import make_dev_pki

ORTHANC = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
SERVERS = ("dicomnet", "orthanc", "dcmtk", "dcmtk+B", "dicomnet-nosync")


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


def run_once(server_name: str, client: str, pki: Path | None, case: sb.Case, folder: Path,
             *, payload: int, work: Path, tag: str, timeout: float,
             m: sb.Measurement) -> None:
    out = work / "recv" / tag
    out.mkdir(parents=True)
    log = work / "logs" / f"{tag}.log"
    log.parent.mkdir(exist_ok=True)
    os.sync()  # nothing left to write back from the previous run (see store_bench)
    try:
        server = (start_orthanc(pki, out, log) if server_name == "orthanc"
                  else sb.start_server(server_name, pki, out, log))
    except RuntimeError as exc:
        m.errors.append(f"{tag}: {exc}")
        return
    try:
        cmd = sb.client_command(client, pki, server.port, folder)
        start = time.perf_counter()
        try:
            done = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                                  timeout=timeout, env=sb._dcmtk_env(), check=False)
        except subprocess.TimeoutExpired:
            m.errors.append(f"{tag}: the sender timed out after {timeout:.0f}s")
            return
        wall = time.perf_counter() - start
        seconds = wall
        if client == "dicomnet":
            lines = done.stdout.decode(errors="replace").strip().splitlines()
            with contextlib.suppress(IndexError, ValueError, KeyError):
                seconds = float(json.loads(lines[-1])["seconds"])
        if isinstance(server, Orthanc):
            stats = server.statistics()
            files, size = int(str(stats["CountInstances"])), int(str(stats["TotalDiskSize"]))
        else:
            files, size = sb.received(out)
        if done.returncode != 0 or files != m.count or size < payload:
            m.errors.append(
                f"{tag}: sender exit {done.returncode}, {files}/{m.count} objects, {size} "
                "bytes: " + (done.stdout + done.stderr).decode(errors="replace").strip()[-400:])
            return
        m.seconds.append(seconds)
        m.client_wall.append(wall)
        m.server_cpu.append(server.cpu_seconds())
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
    parser.add_argument("--rounds", type=int, default=3)
    sb.add_round_options(parser)
    args = parser.parse_args(argv)
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    unknown = set(servers) - set(SERVERS)
    if unknown or not servers:
        parser.error(f"--servers: one or more of {', '.join(SERVERS)}")
    if "orthanc" in servers and not Path(ORTHANC).exists():
        parser.error("Orthanc is not installed (apt-get install orthanc)")
    case = {c.name: c for c in sb.cases(args.quick)}[args.case]
    sb.wait_for_freed_inodes(wait=not args.no_wait)
    with sb.workspace(None) as work:
        folder = sb.generate(work / "data", [case])[case.name]
        os.sync()
        pki = None if args.plain else make_dev_pki(work / "pki").directory
        files = list(folder.iterdir())
        payload = sum(p.stat().st_size for p in files)
        transport = "plain" if args.plain else "tls"
        results = {s: sb.Measurement(transport, s, case.name, len(files), payload)
                   for s in servers}
        print(f"{case.label}, {transport}, sender: "
              f"{'DCMTK storescu' if args.client == 'dcmtk' else 'dicomnet SCU'}", flush=True)
        for number in range(args.rounds):
            order = servers if number % 2 == 0 else servers[::-1]
            for name in order:
                m = results[name]
                before = len(m.seconds)
                run_once(name, args.client, pki, case, folder, payload=payload, work=work,
                         tag=f"{name}-{number}", timeout=args.timeout, m=m)
                sb.print_round(number, name, case, m, before)
    sb.print_medians(case, results, servers)
    return 0 if all(m.ok for m in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
