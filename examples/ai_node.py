"""An AI node: receive studies over mutually authenticated TLS, run a slow model on
each object, send a derived result to a PACS over TLS of its own.

    python examples/ai_node.py --port 2762 --store /var/spool/ai \
        --cert node.pem --key node.key --ca modalities-ca.pem \
        --pacs-ca pacs-ca.pem pacs.example 2762 PACS

Each object is made durable under ``--store`` first (``StorageSCP``); then the
coroutine handler (``on_c_store``) reads it off the event loop, runs the model
in a worker thread (CPU work must not stall the loop that serves every
sender), and stores the result (a copy with a new SOP Instance UID, in a new
series described "AI RESULT") on the PACS. The sender's answer waits for all
that: this is the back-pressure, as a sender has one C-STORE outstanding at a
time (PS3.7 D.3.3.3), a node holds at most one object per association in
work, however many senders there are and however slow the model, and memory
stays flat. A model slower than the senders' DIMSE timeout would make them
abort: then answer at once and queue the work (your own bounded queue fed by
``on_stored``, a plain function) instead.

The results go on ONE association to the PACS, kept open and shared by the
handlers (their stores take turns on it), opened when the first is sent and
opened again after it ended (the PACS closed it, a network failure): a failed
store answers the sender 0110H (Processing Failure) with why, so that it can
send the object again. The node shows the PACS its own certificate (``--cert``,
which must allow clientAuth, or ``--pacs-cert``) and trusts ``--pacs-ca`` for
the PACS's.

Who sent each object (the certificate's subject, the cipher suite) is in the
log. SIGTERM or Ctrl-C stops it gracefully: no new association, those under
way end by themselves (30 s at most), the PACS association is released, then
it prints one line and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

from dicomnet import (
    ClientAssociation,
    ContextRequest,
    DicomNetError,
    HookAnswer,
    StorageSCP,
    StoredInstance,
    TLSConfig,
    serve,
)
from dicomnet.aio.client import open_association
from dicomnet.dimse.status import PROCESSING_FAILURE

log = logging.getLogger("ai_node")

#: The SOP Classes the PACS association proposes: those of the results
#: (here: of what the node receives, as a result is a copy). CT, MR, Secondary Capture.
RESULT_SOP_CLASSES = ("1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.4",
                      "1.2.840.10008.5.1.4.1.1.7")


def run_model(ds: Dataset) -> Dataset:
    """The model, in a worker thread: here a copy with new identifiers."""
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesDescription = "AI RESULT"
    return ds


class PacsLink:
    """One association to the PACS, kept open across handler calls and shared by
    them: ``ClientAssociation`` lets coroutines of one event loop store on it at
    once (they take turns, one C-STORE outstanding at a time). Opened on first
    use, opened again once it has ended."""

    def __init__(self, host: str, port: int, called_ae_title: str, tls: TLSConfig) -> None:
        self.host, self.port, self.called_ae_title, self.tls = host, port, called_ae_title, tls
        self.opened = 0
        self._assoc: ClientAssociation | None = None
        self._opening = asyncio.Lock()  # two handlers must not both open one

    async def _current(self) -> ClientAssociation:
        async with self._opening:
            if self._assoc is None or not self._assoc.is_established:
                if self._assoc is not None:
                    await self._assoc.abort()  # what is left of the old one: closed
                contexts = [ContextRequest(uid, (ExplicitVRLittleEndian, ImplicitVRLittleEndian))
                            for uid in RESULT_SOP_CLASSES]
                self._assoc = await open_association(
                    self.host, self.port, contexts=contexts, tls=self.tls,
                    calling_ae_title="AI-NODE", called_ae_title=self.called_ae_title)
                self.opened += 1
            return self._assoc

    async def store(self, ds: Dataset) -> int:
        """Store ``ds``; its status code. Raises ``DicomNetError`` (down, refused, aborted)."""
        return int(await (await self._current()).store(ds))

    async def close(self) -> None:
        if self._assoc is not None and self._assoc.is_established:
            await self._assoc.release()


class Node:
    """The ``on_c_store`` handler."""

    def __init__(self, link: PacsLink) -> None:
        self.link = link
        self.forwarded = 0

    async def __call__(self, stored: StoredInstance) -> HookAnswer:
        link = stored.security  # the sender's TLS link: set, as the node takes TLS only
        subject = link.peer_certificate.subject if link and link.peer_certificate else "-"
        log.info("%s from %s (%s, %s)", stored.sop_instance_uid, stored.calling_ae_title,
                 subject, link.cipher_suite if link else "plain")
        dataset = await stored.dataset_async()  # read off the event loop
        result = await asyncio.to_thread(run_model, dataset)
        try:
            status = await self.link.store(result)
        except DicomNetError as exc:
            return PROCESSING_FAILURE, f"result not sent: {exc}"[:64]  # an LO (PS3.7 C.4.2.1.4)
        if status != 0:
            return status, f"PACS answered {status:04X}H"
        self.forwarded += 1
        return None


async def main(args: argparse.Namespace) -> int:
    senders = TLSConfig(certfile=args.cert, keyfile=args.key, cafile=args.ca)  # mutual by default
    pacs_tls = TLSConfig(certfile=args.pacs_cert or args.cert,
                         keyfile=args.pacs_key or args.key, cafile=args.pacs_ca)
    link = PacsLink(args.pacs_host, args.pacs_port, args.pacs_aet, pacs_tls)
    node = Node(link)
    server = await serve(ae_title=args.aet, host=args.bind, port=args.port, tls=senders,
                         providers=[StorageSCP(args.store, on_c_store=node)])
    print(f"listening on {server.host}:{server.port} as {args.aet}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    outcome = await server.drain(30)
    await link.close()
    print(f"stopped: {node.forwarded} result(s) sent on {link.opened} PACS association(s), "
          f"{outcome.drained} association(s) drained, {outcome.aborted} aborted", flush=True)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pacs_host")
    parser.add_argument("pacs_port", type=int)
    parser.add_argument("pacs_aet", help="the PACS's AE title")
    parser.add_argument("--aet", default="AI-NODE", help="our AE title")
    parser.add_argument("--bind", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2762, help="0: any free port")
    parser.add_argument("--store", required=True, help="where received objects are kept")
    parser.add_argument("--cert", required=True, help="the node's certificate (PEM)")
    parser.add_argument("--key", required=True, help="its private key")
    parser.add_argument("--ca", required=True, help="the CA(s) of the senders' certificates")
    parser.add_argument("--pacs-ca", required=True, help="the CA(s) of the PACS's certificate")
    parser.add_argument("--pacs-cert", help="the certificate shown to the PACS (default --cert)")
    parser.add_argument("--pacs-key", help="its private key (default --key)")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
    raise SystemExit(asyncio.run(main(parser.parse_args())))
