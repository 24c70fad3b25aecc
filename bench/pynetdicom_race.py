"""Count the C-STOREs pynetdicom 3.0.4 loses to its own race (docs/security.md).

usage: PKI=pki python bench/pynetdicom_race.py PEER MODE N
  PEER dicomnet (dicomnet serve) or storescp; MODE tls or plain; N C-STOREs of a
  small data set, 100 per association (PER_ASSOC), DIMSE timeout 2 s (DIMSE_TIMEOUT).
Environment: NODELAY=1 TCP_NODELAY on pynetdicom's socket (else Nagle holds its
data set PDU ~40 ms behind the command); SWITCH=1e-5 sys.setswitchinterval (more
thread switches, as a busy machine); PREEMPT=0.003 the reactor sleeps after each
pass of its checkpoint (forces the race); NOFSYNC=1 dicomnet serve --no-fsync;
GUARD=1 the tests' guard (tests/interop/pynetdicom_race.py). Prints one JSON line:
stalls (answers lost) and stolen_by_reactor (answers the reactor thread took).
"""
from __future__ import annotations

import json
import logging
import os
import selectors
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

import pynetdicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom import association as pyn_assoc

HERE = os.path.dirname(os.path.abspath(__file__))
PKI = os.environ.get("PKI", "pki")  # made by: dicomnet certs init pki
SC = "1.2.840.10008.5.1.4.1.1.7"
PY = sys.executable
ROOT = os.path.dirname(HERE)
SRC = os.path.join(ROOT, "src")

stolen: list[tuple[float, str]] = []
lost_logs: list[str] = []
_t_send = [0.0]
_guards: list[object] = []
rtts: list[float] = []


class _Catch(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        if "unexpected" in msg or "DIMSE timeout" in msg or "no response" in msg.lower():
            lost_logs.append(f"{record.name}: {msg}")


def instrument() -> None:
    """Record which thread takes each DIMSE message off the queue (no change of behaviour)."""
    orig_get = pynetdicom.dimse.DIMSEServiceProvider.get_msg
    orig_send = pynetdicom.dimse.DIMSEServiceProvider.send_msg

    def get_msg(self, block=False):  # type: ignore[no-untyped-def]
        item = orig_get(self, block)
        msg = item[1]
        if msg is not None and not block and not msg.is_valid_request:
            # the association's reactor thread (get_msg(block=False) in _run_reactor)
            # took a response that send_c_store is waiting for with get_msg(block=True)
            stolen.append((time.perf_counter() - _t_send[0],
                           f"{threading.current_thread().name} took {msg.msg_type} "
                           f"paused={self.assoc._is_paused} "
                           f"checkpoint={self.assoc._reactor_checkpoint.is_set()}"))
        return item

    def send_msg(self, primitive, context_id):  # type: ignore[no-untyped-def]
        _t_send[0] = time.perf_counter()
        return orig_send(self, primitive, context_id)

    orig_recv = pynetdicom.dimse.DIMSEServiceProvider.receive_primitive

    def receive_primitive(self, primitive):  # type: ignore[no-untyped-def]
        rtts.append(time.perf_counter() - _t_send[0])
        return orig_recv(self, primitive)

    pynetdicom.dimse.DIMSEServiceProvider.receive_primitive = receive_primitive  # type: ignore[method-assign]
    pynetdicom.dimse.DIMSEServiceProvider.get_msg = get_msg  # type: ignore[method-assign]
    pynetdicom.dimse.DIMSEServiceProvider.send_msg = send_msg  # type: ignore[method-assign]


def preempt_after_checkpoint(seconds: float) -> None:
    """Force the interleaving: the reactor thread is descheduled right after its
    checkpoint wait() returned (the moment _is_paused is still True), as the OS or
    the GIL may do to it at any time."""
    orig_init = pyn_assoc.Association.__init__

    def init(self, *a, **k):  # type: ignore[no-untyped-def]
        orig_init(self, *a, **k)
        event = self._reactor_checkpoint
        plain_wait = event.wait

        def wait(timeout=None):  # type: ignore[no-untyped-def]
            got = plain_wait(timeout)
            if threading.current_thread() is not threading.main_thread():
                time.sleep(seconds)
            return got

        event.wait = wait
    pyn_assoc.Association.__init__ = init  # type: ignore[method-assign]


def dataset() -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = SC
    ds.SOPInstanceUID = generate_uid()
    ds.PatientName = "Stall^Test"
    ds.PatientID = "P1"
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "OT"
    size = int(os.environ.get("SIZE", "0"))
    if size:
        ds.Rows, ds.Columns, ds.BitsAllocated, ds.BitsStored, ds.HighBit = 1, size, 8, 8, 7
        ds.SamplesPerPixel, ds.PixelRepresentation = 1, 0
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.PixelData = bytes(size)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_peer(peer: str, tls: bool, out: str) -> tuple[subprocess.Popen[bytes], int]:
    if peer == "dicomnet":
        cmd = [PY, "-m", "dicomnet.cli.main", "serve", "--port", "0", "--json", "--output", out]
        cmd += ["--no-fsync"] if os.environ.get("NOFSYNC") else []
        if tls:
            cmd += ["--tls", "--cert", f"{PKI}/server.pem", "--key", f"{PKI}/server.key",
                    "--ca", f"{PKI}/ca.pem"]
        env = {**os.environ, "PYTHONPATH": SRC}
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)  # type: ignore[arg-type]
            assert sel.select(30)
        return proc, int(json.loads(proc.stdout.readline())["port"])  # type: ignore[union-attr]
    port = free_port()
    cmd = ["storescp", "-od", out]
    if tls:
        cmd += ["+tls", f"{PKI}/server.key", f"{PKI}/server.pem", "+cf", f"{PKI}/ca.pem"]
    cmd += [str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "TCP_NODELAY": "1"})
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    return proc, port


def main() -> None:
    peer, mode, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    per_assoc = int(os.environ.get("PER_ASSOC", "100"))
    timeout = float(os.environ.get("DIMSE_TIMEOUT", "2"))
    guard = bool(os.environ.get("GUARD"))
    if guard:
        sys.path.insert(0, ROOT)
        from tests.interop import pynetdicom_race
        _guards.append(pynetdicom_race.guarded(pynetdicom))
        _guards[-1].__enter__()  # type: ignore[attr-defined]  # kept: else undone
    instrument()
    if os.environ.get("SWITCH"):
        sys.setswitchinterval(float(os.environ["SWITCH"]))
    if os.environ.get("NODELAY"):
        from pynetdicom import transport
        orig_connect = transport.AssociationSocket.connect

        def connect(self, primitive):  # type: ignore[no-untyped-def]
            self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return orig_connect(self, primitive)
        transport.AssociationSocket.connect = connect  # type: ignore[method-assign]
    if os.environ.get("PREEMPT"):
        preempt_after_checkpoint(float(os.environ["PREEMPT"]))
    logging.getLogger("pynetdicom").addHandler(_Catch())
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)
    tls = mode == "tls"
    out = tempfile.mkdtemp(prefix="pyndloss-")
    proc, port = start_peer(peer, tls, out)
    ae = pynetdicom.AE(ae_title="PYN")
    ae.acse_timeout = ae.network_timeout = 15
    ae.dimse_timeout = timeout
    ae.add_requested_context(SC, ExplicitVRLittleEndian)
    tls_args = None
    if tls:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=f"{PKI}/ca.pem")
        ctx.load_cert_chain(f"{PKI}/client.pem", f"{PKI}/client.key")
        ctx.check_hostname = False
        tls_args = (ctx, None)
    stalls = answered = 0
    slow: list[float] = []
    t0 = time.perf_counter()
    try:
        done = 0
        while done < n:
            assoc = ae.associate("127.0.0.1", port, ae_title="ANY", tls_args=tls_args)
            assert assoc.is_established
            for _ in range(min(per_assoc, n - done)):
                t = time.perf_counter()
                status = assoc.send_c_store(dataset())
                dt = time.perf_counter() - t
                done += 1
                if status.get("Status") is None:
                    stalls += 1
                    slow.append(dt)
                    break  # pynetdicom aborted the association after the timeout
                answered += 1
            if assoc.is_established:
                assoc.release()
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(out, ignore_errors=True)
    took = time.perf_counter() - t0
    print(json.dumps({"peer": peer, "mode": mode, "stores": done, "answered": answered,
                      "stalls": stalls, "stolen_by_reactor": len(stolen),
                      "seconds": round(took, 1), "stall_waits": [round(s, 2) for s in slow],
                      "stolen": stolen[:5], "logs": lost_logs[:6],
                      "rtt_ms_median": round(sorted(rtts)[len(rtts) // 2] * 1000, 2)
                      if rtts else None,
                      "guard_kept": pynetdicom_race.RACES.count if guard else None}))


if __name__ == "__main__":
    main()
