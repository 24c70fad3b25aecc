"""A hand-driven SCP over a raw asyncio server, for the tests of the client's
response path: the test chooses every byte it answers with (responses out of
order, unsolicited, pending, cut across PDUs, malformed, or none at all).

The association is accepted with dicomnet's own negotiation (``negotiate``); from
there each request is read whole (command and data set) and handed to the
test's ``answer`` coroutine, which writes what it likes through
:meth:`RawPeer.send`. What the client sent at the end (A-RELEASE-RQ, A-ABORT or
nothing) is recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from dicomnet.aio.client import ClientAssociation
from dicomnet.config import Timeouts
from dicomnet.dimse.messages import (
    CFindRQ,
    CStoreRQ,
    CStoreRSP,
    DimseMessage,
    decode_message,
    encode_message,
)
from dicomnet.ul.negotiation import AcceptorPolicy, negotiate
from dicomnet.ul.pdu import (
    AAbort,
    AssociateRQ,
    PDataTF,
    ReleaseRP,
    ReleaseRQ,
    decode_pdu,
    encode_pdata,
)

if TYPE_CHECKING:
    from dicomnet.services.storage import StoreResult

__all__ = ["RawPeer", "Request", "leave_find_after_one", "raw_scp", "response_pdu"]

LOOPBACK = "127.0.0.1"
VERIFICATION = "1.2.840.10008.1.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"


@dataclass(frozen=True)
class Request:
    """One request as the client sent it."""

    context_id: int
    message: DimseMessage
    dataset: bytes | None
    #: Its command set as it came (the bytes of its command PDVs).
    command: bytes = b""


def response_pdu(context_id: int, message: DimseMessage) -> bytes:
    """``message`` as one P-DATA-TF PDU (one command PDV, marked last)."""
    return encode_pdata(context_id, True, True, encode_message(message))


def store_response(request: Request, status: int, error_comment: str | None = None) -> bytes:
    """The C-STORE-RSP PDU answering ``request``, a C-STORE-RQ, with ``status``."""
    message = request.message
    assert isinstance(message, CStoreRQ)
    return response_pdu(request.context_id, CStoreRSP(
        message_id_being_responded_to=message.message_id, status=status,
        affected_sop_class_uid=message.affected_sop_class_uid,
        affected_sop_instance_uid=message.affected_sop_instance_uid,
        error_comment=error_comment))


@dataclass
class RawPeer:
    """The server side of one connection (see the module docstring)."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    requests: list[Request] = field(default_factory=list)
    #: How the client ended: "release", "release-rp" (it answered our A-RELEASE-RQ),
    #: "abort", "closed", or "" while it lasts.
    ending: str = ""
    #: Whether an A-RELEASE-RQ is answered (with A-RELEASE-RP).
    answer_release: bool = True
    #: Whether an A-RELEASE-RQ makes the peer close the connection at once instead.
    close_on_release: bool = False
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    async def send(self, *chunks: bytes) -> None:
        """Write ``chunks`` (PDUs or any bytes), each written and drained on its own."""
        for chunk in chunks:
            self.writer.write(chunk)
            await self.writer.drain()

    async def read_pdu(self) -> bytes:
        head = await self.reader.readexactly(6)
        (length,) = struct.unpack(">I", head[2:])
        return head + await self.reader.readexactly(length)

    async def next_request(self) -> Request | None:
        """The next whole request, or None once the client released, aborted or
        closed (``ending`` says which; a release is answered)."""
        command = bytearray()
        dataset: bytearray | None = None
        context_id = 0
        message: DimseMessage | None = None
        while True:
            try:
                pdu = decode_pdu(await self.read_pdu())
            except (asyncio.IncompleteReadError, ConnectionError):
                self.ending = "closed"
                return None
            if isinstance(pdu, ReleaseRQ):
                self.ending = "release"
                if self.close_on_release:
                    return None  # closed by raw_scp's handler, unanswered
                if self.answer_release:
                    await self.send(ReleaseRP().encode())
                    return None
                continue  # silent: the client must give up on its own
            if isinstance(pdu, ReleaseRP):
                self.ending = "release-rp"
                return None
            if isinstance(pdu, AAbort):
                self.ending = "abort"
                return None
            assert isinstance(pdu, PDataTF), f"unexpected {pdu!r}"
            for pdv in pdu.pdvs:
                context_id = pdv.context_id
                if pdv.is_command:
                    command += pdv.data
                    if pdv.is_last:
                        message = decode_message(bytes(command))
                        if not message.has_dataset:
                            return Request(context_id, message, None, bytes(command))
                        dataset = bytearray()
                else:
                    assert dataset is not None, "data set before its command"
                    dataset += pdv.data
                    if pdv.is_last:
                        assert message is not None
                        return Request(context_id, message, bytes(dataset), bytes(command))


Answer = Callable[[RawPeer, Request], Awaitable[None]]
#: The name of the task serving each connection (it may still be closing when
#: the client is done).
PEER_TASK = "raw_scp peer"


@contextlib.asynccontextmanager
async def raw_scp(answer: Answer, *, max_async_operations: int = 1,
                  contexts: dict[str, list[str]] | None = None,
                  answer_release: bool = True,
                  close_on_release: bool = False) -> AsyncIterator[
                      tuple[int, list[RawPeer]]]:
    """A server on 127.0.0.1 (port 0) accepting associations with ``negotiate``;
    ``answer(peer, request)`` is awaited for each request, in order; with
    ``answer_release=False`` an A-RELEASE-RQ gets no answer, and with
    ``close_on_release`` the connection is closed on it. Yields the
    port and the list of peers (one per connection), and closes everything."""
    policy = AcceptorPolicy(
        contexts=contexts or {VERIFICATION: [EXPLICIT_LE, IMPLICIT_LE]},
        max_async_operations=max_async_operations,
    )
    peers: list[RawPeer] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:  # the test's own peer: not a task the client left
            task.set_name(PEER_TASK)
        peer = RawPeer(reader, writer, answer_release=answer_release,
                       close_on_release=close_on_release)
        peers.append(peer)
        try:
            rq = decode_pdu(await peer.read_pdu())
            assert isinstance(rq, AssociateRQ)
            await peer.send(negotiate(rq, policy).encode())
            while (request := await peer.next_request()) is not None:
                peer.requests.append(request)
                await answer(peer, request)
            if not peer.ending:
                peer.ending = "closed"
        except (asyncio.IncompleteReadError, ConnectionError):
            peer.ending = peer.ending or "closed"
        finally:
            peer.ended.set()
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    server = await asyncio.start_server(handle, LOOPBACK, 0)
    try:
        yield server.sockets[0].getsockname()[1], peers
    finally:
        server.close()
        for peer in peers:
            peer.writer.close()
        await server.wait_closed()


async def leave_find_after_one(assoc: ClientAssociation) -> None:
    """The client's side of the raw SCP's C-FIND tests: a C-FIND (of the
    Verification SOP Class, which the raw SCP accepts, no identifier) whose
    caller reads its first response, then leaves it (the iterator closed)."""
    find = CFindRQ(message_id=assoc.dimse.next_message_id(),
                   affected_sop_class_uid=VERIFICATION)
    replies = assoc.request(find, assoc.context_for(VERIFICATION).context_id, dataset=b"")
    async for _ in replies:
        break
    await replies.aclose()  # type: ignore[attr-defined]


#: Secondary Capture Image Storage, which :func:`store_into` accepts.
_SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"


async def store_into(answer: Answer, files: list[Path], *, window: int = 1,
                     timeouts: Timeouts | None = None) -> tuple[list[StoreResult], str]:
    """``store_paths`` of ``files`` (Secondary Capture, Explicit VR Little Endian)
    into a raw SCP answering each request with ``answer``, granting a window of
    ``window``: the results, and how the peer's connection ended."""
    from dicomnet.services.storage import store_paths
    from tests.aio.helpers import wait_until

    async with raw_scp(answer, max_async_operations=window,
                       contexts={_SECONDARY_CAPTURE: [EXPLICIT_LE]}) as (port, peers):
        results = await store_paths(LOOPBACK, port, files, timeouts=timeouts,
                                    max_async_operations=window)
        await wait_until(peers[0].ended.is_set, "the peer's end")
    return results, peers[0].ending
