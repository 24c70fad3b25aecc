"""What Python itself can move over TLS on this machine: the ceiling for any
Python DICOM stack, to read next to ``store_bench.py``'s large-object figures.

Two processes on 127.0.0.1, TLS 1.3 with mutual authentication (the same dev
PKI as the benchmark), plain blocking ``ssl.SSLSocket`` with no DICOM, no
asyncio and no framing: the client sends a file's bytes with ``sendall`` in
``--chunk`` pieces, the server ``recv_into``s a buffer and, with ``--write``,
writes it to a file (no fsync, like ``storescp``). Prints MB/s (10^6 bytes) and
each side's CPU time; ``--runs`` repeats and reports the median.

    .venv/bin/python bench/ssl_ceiling.py --write --runs 3
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import socket
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path

from dicomnet.security.certificates import make_dev_pki

TOTAL = 1 << 30


def _server(pki: Path, out: Path | None, chunk: int, port_q: mp.Queue[int],
            result_q: mp.Queue[tuple[float, float]], *, total: int) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(pki / "server.pem", pki / "server.key")
    ctx.load_verify_locations(pki / "ca.pem")
    ctx.verify_mode = ssl.CERT_REQUIRED
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port_q.put(listener.getsockname()[1])
        conn, _ = listener.accept()
    with ctx.wrap_socket(conn, server_side=True) as tls:
        view = memoryview(bytearray(chunk))
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600) if out else -1
        before = resource.getrusage(resource.RUSAGE_SELF)
        got = 0
        while got < total:
            n = tls.recv_into(view, min(chunk, total - got))
            if not n:
                break
            if fd >= 0:
                os.write(fd, view[:n])
            got += n
        after = resource.getrusage(resource.RUSAGE_SELF)
        tls.sendall(b"k")
        if fd >= 0:
            os.close(fd)
    result_q.put((after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime))


def run_once(pki: Path, source: Path, out: Path | None, chunk: int,
             total: int = TOTAL) -> tuple[float, float, float]:
    """One transfer of ``total`` bytes (``source`` read again as often as needed):
    (MB/s, client CPU s, server CPU s)."""
    port_q: mp.Queue[int] = mp.Queue()
    result_q: mp.Queue[tuple[float, float]] = mp.Queue()
    server = mp.Process(target=_server, args=(pki, out, chunk, port_q, result_q),
                        kwargs={"total": total})
    server.start()
    port = port_q.get(timeout=30)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_verify_locations(pki / "ca.pem")
    ctx.load_cert_chain(pki / "client.pem", pki / "client.key")
    with socket.create_connection(("127.0.0.1", port)) as raw:
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls, open(source, "rb") as src:
            view = memoryview(bytearray(chunk))
            before = resource.getrusage(resource.RUSAGE_SELF)
            start = time.perf_counter()
            sent = 0
            while sent < total:
                n = src.readinto(view)
                if not n:
                    src.seek(0)
                    continue
                n = min(n, total - sent)
                tls.sendall(view[:n])
                sent += n
            tls.recv(1)
            seconds = time.perf_counter() - start
            after = resource.getrusage(resource.RUSAGE_SELF)
    server_user, server_sys = result_q.get(timeout=60)
    server.join(30)
    client_cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return total / 1e6 / seconds, client_cpu, server_user + server_sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help="the server writes to a file")
    parser.add_argument("--chunk", type=int, default=256 << 10, help="bytes per call")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ssl-ceiling-") as tmp:
        work = Path(tmp)
        make_dev_pki(work / "pki")
        source = work / "source.bin"
        with open(source, "wb") as f:
            block = os.urandom(4 << 20)
            for _ in range(64):  # 256 MiB, read four times
                f.write(block)
        results = [run_once(work / "pki", source, work / "out.bin" if args.write else None,
                            args.chunk) for _ in range(args.runs)]
    rate = statistics.median(r[0] for r in results)
    print(f"Python ssl ceiling, TLS 1.3 mutual auth, {args.chunk >> 10} KiB calls, "
          f"{'writing to a file' if args.write else 'no file'}: median {rate:.0f} MB/s "
          f"(runs: {', '.join(f'{r[0]:.0f}' for r in results)}); CPU s/GB client "
          f"{statistics.median(r[1] for r in results):.2f}, server "
          f"{statistics.median(r[2] for r in results):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
