"""A store-and-forward node: receive objects, forward each to another SCP, answer the
sender with what the destination answered.

    python examples/store_and_forward.py --port 11112 --store /var/spool/fwd \
        --allow CT01 --allow MR02 pacs.example 104 PACS

Each object is made durable under ``--store`` first (``StorageSCP``), then the
coroutine handler (``on_c_store``) sends it on with the async client and its
answer becomes the sender's: a destination that is down or refuses the object
gives the sender a failure (0110H, Processing Failure, or the destination's own
status) with an Error Comment that says why, so the sender can try again.
Only the calling AE titles of ``--allow`` may associate (A-ASSOCIATE-RJ,
calling AE title not recognized, for the others). SIGTERM or Ctrl-C stops it
gracefully: no new association, those under way end by themselves (30 s at
most), then it exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from dicomnet import (
    AssociationInfo,
    AssociationRequestHook,
    ContextRequest,
    DicomNetError,
    HookAnswer,
    Rejection,
    StorageSCP,
    StoredInstance,
    associate,
    serve,
)
from dicomnet.dimse.status import PROCESSING_FAILURE


class Forwarder:
    """The ``on_c_store`` handler: one association to the destination per object
    (simple and robust; a busy node keeps one open: see ai_node.py's PacsLink)."""

    def __init__(self, host: str, port: int, called_ae_title: str) -> None:
        self.host, self.port, self.called_ae_title = host, port, called_ae_title
        self.forwarded = 0

    async def __call__(self, stored: StoredInstance) -> HookAnswer:
        dataset = await stored.dataset_async()  # read off the event loop
        contexts = [ContextRequest(stored.sop_class_uid, (stored.transfer_syntax_uid,))]
        try:
            async with associate(self.host, self.port, contexts=contexts,
                                 calling_ae_title="FORWARDER",
                                 called_ae_title=self.called_ae_title) as assoc:
                status = await assoc.store(dataset)
        except DicomNetError as exc:  # down, refused, aborted, no context...
            return PROCESSING_FAILURE, _comment(f"not forwarded: {exc}")
        if not status.is_success:
            return int(status), _comment(f"destination answered {status}")
        self.forwarded += 1
        return None


def _comment(text: str) -> str:
    return text[:64]  # an Error Comment is an LO: 64 characters (PS3.7 C.4.2.1.4)


def allow_only(titles: set[str]) -> AssociationRequestHook:
    def admit(info: AssociationInfo) -> Rejection | None:
        if info.calling_ae_title not in titles:
            return Rejection.CALLING_AE_TITLE_NOT_RECOGNIZED
        return None
    return admit


async def main(args: argparse.Namespace) -> int:
    forwarder = Forwarder(args.host, args.dest_port, args.dest_aet)
    server = await serve(
        ae_title=args.aet, host=args.bind, port=args.port,
        providers=[StorageSCP(args.store, on_c_store=forwarder)],
        on_association_request=allow_only(set(args.allow)),
    )
    print(f"listening on {server.host}:{server.port} as {args.aet}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    outcome = await server.drain(30)
    print(f"stopped: {forwarder.forwarded} forwarded, {outcome.drained} association(s) "
          f"drained, {outcome.aborted} aborted", flush=True)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("host", help="the destination SCP")
    parser.add_argument("dest_port", type=int)
    parser.add_argument("dest_aet", help="its AE title")
    parser.add_argument("--aet", default="FORWARDER", help="our AE title")
    parser.add_argument("--bind", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=11112, help="0: any free port")
    parser.add_argument("--store", required=True, help="where received objects are kept")
    parser.add_argument("--allow", action="append", required=True,
                        help="a calling AE title allowed to send (repeat)")
    raise SystemExit(asyncio.run(main(parser.parse_args())))
