"""What Python itself can move over TLS on this machine: the ceiling for any
Python DICOM stack, to read next to ``store_bench.py``'s large-object figures.

Two processes on 127.0.0.1, TLS 1.3 with mutual authentication (the same dev
PKI as the benchmark), plain blocking ``ssl.SSLSocket`` with no DICOM, no
asyncio and no framing: the client sends a file's bytes with ``sendall`` in
``--chunk`` pieces, the server ``recv_into``s a buffer and, with ``--write``,
writes it to a file (no fsync, like ``storescp``). Prints MB/s (10^6 bytes) and
each side's CPU time; ``--runs`` repeats and reports the median.

``--objects N`` is the same ceiling for the images case (200 x 512 KB): the
server receives each object whole, writes it to a file of its own (a temporary
name, then a rename, as a store would; ``--fsync`` makes each durable before
its answer, one after another), and answers each with 8 bytes; the client keeps
``--window`` objects unanswered at most, as a C-STORE SCU with an asynchronous
operations window would (PS3.7 D.3.3.3). No DICOM, no asyncio, no index.

    .venv/bin/python bench/ssl_ceiling.py --write --runs 3
    .venv/bin/python bench/ssl_ceiling.py --objects 200 --runs 3 [--fsync]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import selectors
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


def _contexts(pki: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """TLS 1.3 server and client contexts, each verifying the other (the dev PKI)."""
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    for ctx, name in ((server, "server"), (client, "client")):
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.load_cert_chain(pki / f"{name}.pem", pki / f"{name}.key")
        ctx.load_verify_locations(pki / "ca.pem")
    server.verify_mode = ssl.CERT_REQUIRED
    return server, client


def _object_server(pki: Path, folder: Path, shape: tuple[int, int, bool],
                   port_q: mp.Queue[int], result_q: mp.Queue[tuple[float, float]]) -> None:
    count, size, fsync = shape
    ctx, _ = _contexts(pki)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port_q.put(listener.getsockname()[1])
        conn, _ = listener.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    with ctx.wrap_socket(conn, server_side=True) as tls:
        view = memoryview(bytearray(size))
        before = resource.getrusage(resource.RUSAGE_SELF)
        for number in range(count):
            got = 0
            while got < size:
                n = tls.recv_into(view[got:], size - got)
                if not n:
                    raise SystemExit(f"the client left after {number} objects")
                got += n
            temporary, final = folder / f"{number}.tmp", folder / f"{number}.bin"
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, view)
                if fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(temporary, final)
            tls.sendall(number.to_bytes(8, "little"))
        after = resource.getrusage(resource.RUSAGE_SELF)
    result_q.put((after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime))


def _send_windowed(tls: ssl.SSLSocket, objects: list[bytes], window: int) -> None:
    """Send ``objects`` with at most ``window`` unanswered, reading the 8-byte
    answers as they come, until all are answered. One thread, the socket
    non-blocking: OpenSSL allows no read and write of one connection at once,
    and two threads doing so (the first version of this script) crashed it
    now and then (SIGSEGV, in a CI run)."""
    tls.setblocking(False)
    count, sent, answered, got = len(objects), 0, 0, 0
    pending = memoryview(b"")
    both = selectors.EVENT_READ | selectors.EVENT_WRITE
    events = both
    with selectors.DefaultSelector() as selector:
        selector.register(tls, events)
        while answered < count:
            # Writable matters only with bytes to send: else select would spin.
            wanted = both if pending or (sent < count and sent - answered < window) else (
                selectors.EVENT_READ)
            if wanted != events:  # an epoll_ctl only when it changes
                events = wanted
                selector.modify(tls, events)
            if not tls.pending() and not selector.select(60):
                raise SystemExit(f"no answer within 60 s after {answered} objects")
            try:
                while answered < count:  # every answer decrypted so far
                    data = tls.recv(65536)
                    if not data:
                        raise SystemExit(f"the server left after {answered} answers")
                    got += len(data)
                    answered = got // 8
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                pass
            try:
                while pending or (sent < count and sent - answered < window):
                    if not pending:
                        pending, sent = memoryview(objects[sent]), sent + 1
                    pending = pending[tls.send(pending):]
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                pass


def run_objects(pki: Path, folder: Path, count: int, size: int, *, window: int,
                fsync: bool) -> tuple[float, float, float]:
    """``count`` objects of ``size`` random bytes, each answered: (MB/s, client
    CPU s, server CPU s)."""
    port_q: mp.Queue[int] = mp.Queue()
    result_q: mp.Queue[tuple[float, float]] = mp.Queue()
    server = mp.Process(target=_object_server,
                        args=(pki, folder, (count, size, fsync), port_q, result_q))
    server.start()
    objects = [os.urandom(size) for _ in range(count)]
    _, ctx = _contexts(pki)
    with socket.create_connection(("127.0.0.1", port_q.get(timeout=30))) as raw:
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            before = resource.getrusage(resource.RUSAGE_SELF)
            start = time.perf_counter()
            _send_windowed(tls, objects, window)
            seconds = time.perf_counter() - start
            after = resource.getrusage(resource.RUSAGE_SELF)
    server_user, server_sys = result_q.get(timeout=60)
    server.join(30)
    stored = sorted(folder.glob("*.bin"))
    if len(stored) != count or any(p.stat().st_size != size for p in stored):
        raise SystemExit(f"the server stored {len(stored)} of {count} objects")
    for path in stored:
        path.unlink()
    client_cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return count * size / 1e6 / seconds, client_cpu, server_user + server_sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help="the server writes to a file")
    parser.add_argument("--chunk", type=int, default=256 << 10, help="bytes per call")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--objects", type=int, default=0,
                        help="objects of --size bytes, each to its own file and answered")
    parser.add_argument("--size", type=int, default=512 << 10, help="bytes per object")
    parser.add_argument("--window", type=int, default=32, help="objects unanswered at most")
    parser.add_argument("--fsync", action="store_true",
                        help="each object made durable before its answer")
    args = parser.parse_args(argv)
    if args.objects:
        with tempfile.TemporaryDirectory(prefix="ssl-ceiling-") as tmp:
            work = Path(tmp)
            make_dev_pki(work / "pki")
            (work / "out").mkdir()
            results = [run_objects(work / "pki", work / "out", args.objects, args.size,
                                   window=args.window, fsync=args.fsync)
                       for _ in range(args.runs)]
        print(f"Python ssl ceiling, TLS 1.3 mutual auth, {args.objects} x "
              f"{args.size >> 10} KiB objects, a file each{', fsynced' if args.fsync else ''}, "
              f"window {args.window}: median "
              f"{statistics.median(r[0] for r in results):.0f} MB/s "
              f"(runs: {', '.join(f'{r[0]:.0f}' for r in results)}); CPU s per run client "
              f"{statistics.median(r[1] for r in results):.3f}, server "
              f"{statistics.median(r[2] for r in results):.3f}")
        return 0
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
