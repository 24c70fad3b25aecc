"""pynetdicom peers of the benchmark, as configured in its documentation's examples.

``scp ROOT [--pki DIR]``: a Storage SCP (AllStoragePresentationContexts) whose
C-STORE handler writes the preamble, the File Meta Information and the raw
received data set (``event.request.DataSet``) to ``ROOT/<uid>.dcm``; prints
``PORT <n>`` and serves until SIGTERM.

``scu HOST PORT FOLDER [--pki DIR]``: sends every file of FOLDER on one
association with ``send_c_store(path)`` and ``STORE_SEND_CHUNKED_DATASET`` (the
raw data set, not decoded and re-encoded: what dicomnet's SCU does too); prints
one JSON line: seconds (around association, sends and release), sent, ok.

Both announce a 1 MiB maximum PDU (dicomnet's default; pynetdicom's is 16 KiB).
TLS (``--pki``, a ``make_dev_pki`` folder): TLS 1.3 with mutual authentication,
contexts built with the ssl module. ``--nodelay`` sets TCP_NODELAY on every
socket (pynetdicom 3.0 has no option for it and leaves Nagle's algorithm on,
which holds each small C-STORE's last segment back until the previous one is
acknowledged): the best pynetdicom can do here, beside the documented setup.
"""

from __future__ import annotations

import argparse
import json
import resource
import signal
import socket
import ssl
import sys
import threading
import time
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_file_meta_info
from pynetdicom import AE, AllStoragePresentationContexts, _config, evt
from pynetdicom.transport import AssociationServer, AssociationSocket

MAX_PDU = 1 << 20
VERIFICATION = "1.2.840.10008.1.1"


def server_context(pki: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki / "ca.pem"))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_cert_chain(str(pki / "server.pem"), str(pki / "server.key"))
    return ctx


def client_context(pki: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(pki / "ca.pem"))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(str(pki / "client.pem"), str(pki / "client.key"))
    return ctx


def disable_nagle() -> None:
    """TCP_NODELAY on the sockets pynetdicom makes (connecting) and accepts."""
    create, accept = AssociationSocket._create_socket, AssociationServer.get_request

    def create_socket(self: AssociationSocket, address: Any) -> socket.socket:
        sock = create(self, address)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def get_request(self: AssociationServer) -> tuple[socket.socket, tuple[str, int]]:
        sock, address = accept(self)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock, address

    AssociationSocket._create_socket = create_socket  # type: ignore[method-assign]
    AssociationServer.get_request = get_request  # type: ignore[method-assign]


def handle_store(event: Any, root: Path) -> int:
    """Write the received data set as is, after a Part 10 header (pynetdicom docs)."""
    uid = event.request.AffectedSOPInstanceUID
    meta = DicomBytesIO()
    write_file_meta_info(meta, event.file_meta, enforce_standard=True)
    with open(root / f"{uid}.dcm", "wb") as f:
        f.write(b"\x00" * 128 + b"DICM")
        f.write(meta.getvalue())
        f.write(event.request.DataSet.getvalue())
    return 0x0000


def run_scp(root: Path, pki: Path | None) -> int:
    ae = AE(ae_title="PYNETDICOM")
    ae.maximum_pdu_size = MAX_PDU
    ae.supported_contexts = AllStoragePresentationContexts
    ae.add_supported_context(VERIFICATION)
    server = ae.start_server(
        ("127.0.0.1", 0), block=False,
        evt_handlers=[(evt.EVT_C_STORE, handle_store, [root])],
        ssl_context=server_context(pki) if pki is not None else None,
    )
    assert server is not None
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print(f"PORT {server.server_address[1]}", flush=True)
    stop.wait()
    server.shutdown()
    return 0


def run_scu(host: str, port: int, folder: Path, pki: Path | None) -> int:
    _config.STORE_SEND_CHUNKED_DATASET = True
    paths = sorted(p for p in folder.rglob("*") if p.is_file())
    start = time.perf_counter()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu_start = usage.ru_utime + usage.ru_stime
    ae = AE(ae_title="PYNETDICOM")
    ae.maximum_pdu_size = MAX_PDU
    wanted: dict[tuple[str, str], None] = {}
    for path in paths[:1]:  # the benchmark's folders hold one SOP class and syntax each
        meta = dcmread(path, stop_before_pixels=True).file_meta
        wanted[(meta.MediaStorageSOPClassUID, meta.TransferSyntaxUID)] = None
    for sop_class, syntax in wanted:
        ae.add_requested_context(sop_class, syntax)
    tls_args = (client_context(pki), "localhost") if pki is not None else None
    assoc = ae.associate(host, port, ae_title="ANY-SCP", tls_args=tls_args)
    ok = 0
    errors: list[str] = []
    if assoc.is_established:
        for path in paths:
            status = assoc.send_c_store(path)
            if status and status.Status == 0x0000:
                ok += 1
            elif len(errors) < 3:
                errors.append(f"{path.name}: {status!r}")
        assoc.release()
    else:
        errors.append("association not established")
    seconds = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime - cpu_start
    print(json.dumps({"seconds": seconds, "cpu": cpu, "sent": len(paths), "ok": ok,
                      "errors": errors}))
    return 0 if ok == len(paths) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="role", required=True)
    scp = sub.add_parser("scp")
    scp.add_argument("root", type=Path)
    scp.add_argument("--pki", type=Path)
    scp.add_argument("--nodelay", action="store_true", help="TCP_NODELAY on every socket")
    scu = sub.add_parser("scu")
    scu.add_argument("host")
    scu.add_argument("port", type=int)
    scu.add_argument("folder", type=Path)
    scu.add_argument("--pki", type=Path)
    scu.add_argument("--nodelay", action="store_true", help="TCP_NODELAY on every socket")
    args = parser.parse_args(argv)
    if args.nodelay:
        disable_nagle()
    if args.role == "scp":
        return run_scp(args.root, args.pki)
    return run_scu(args.host, args.port, args.folder, args.pki)


if __name__ == "__main__":
    sys.exit(main())
