"""The peer answers while our request's data set is still being sent, and reads
no further: the send waits for a peer that takes nothing.

* An invalid response there aborts the association; the send waiting must end
  with that, not wait for ever (the abort stopped the timer that bounds such a
  wait, and nothing closed the connection under it).
* A response (PS3.7 9.1: it answers the whole request, command set and data
  set, which the peer cannot have read yet) answers nothing: a broken or hostile
  SCP that says Success as soon as a C-STORE-RQ's command set arrives had our
  SCU hand that Success to the request's caller (``send_request``, the path
  ``store_paths`` takes), an object the peer never read reported as stored.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from dicomnet.aio.client import open_association
from dicomnet.config import Timeouts
from dicomnet.dimse.messages import CStoreRQ, CStoreRSP, decode_message
from dicomnet.errors import AssociationAborted, DicomNetError
from dicomnet.ul.negotiation import AcceptorPolicy, ContextRequest, negotiate
from dicomnet.ul.pdu import AssociateRQ, PDataTF, decode_pdu, encode_pdata
from tests.aio.helpers import LOOPBACK, run, wait_until
from tests.aio.rawscp import EXPLICIT_LE, PEER_TASK, RawPeer, response_pdu

SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
#: Far more than the loopback socket buffers hold: the send cannot finish while
#: the peer reads nothing.
DATA_SET = bytes(32 << 20)

Answer = Callable[[int, CStoreRQ], bytes]


@contextlib.asynccontextmanager
async def answering_on_the_command(answer: Answer) -> AsyncIterator[int]:
    """A server on 127.0.0.1 that accepts, writes ``answer(context_id, request)``
    as soon as the first command set has come, then reads nothing until the
    test is done (then it reads to the end)."""
    handlers: list[asyncio.Task[object]] = []
    done = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            task.set_name(PEER_TASK)
            handlers.append(task)
        peer = RawPeer(reader, writer)
        try:
            rq = decode_pdu(await peer.read_pdu())
            assert isinstance(rq, AssociateRQ)
            await peer.send(negotiate(rq, AcceptorPolicy(
                contexts={SECONDARY_CAPTURE: [EXPLICIT_LE]})).encode())
            command = decode_pdu(await peer.read_pdu())
            assert isinstance(command, PDataTF) and command.pdvs[0].is_command
            request = decode_message(command.pdvs[0].data)
            assert isinstance(request, CStoreRQ)
            await peer.send(answer(command.pdvs[0].context_id, request))
            await done.wait()
            while await reader.read(1 << 20):
                pass
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, LOOPBACK, 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        done.set()
        server.close()
        await asyncio.gather(*handlers)  # each reads to the end the client's close makes
        await server.wait_closed()


async def store_while_answered(answer: Answer) -> tuple[list[object], BaseException | None]:
    """``send_request`` of a C-STORE-RQ with :data:`DATA_SET` to that server:
    what its callback got, and what it raised."""
    got: list[object] = []
    raised: BaseException | None = None
    async with answering_on_the_command(answer) as port:
        assoc = await open_association(
            LOOPBACK, port, contexts=[ContextRequest(SECONDARY_CAPTURE, (EXPLICIT_LE,))],
            timeouts=Timeouts(dimse=2))
        try:
            rq = CStoreRQ(message_id=assoc.dimse.next_message_id(),
                          affected_sop_class_uid=SECONDARY_CAPTURE,
                          affected_sop_instance_uid="1.2.3.4")
            try:
                await assoc.send_request(rq, assoc.context_for(SECONDARY_CAPTURE).context_id,
                                         got.append, dataset=DATA_SET)
            except DicomNetError as exc:
                raised = exc
            await wait_until(lambda: bool(got) or raised is not None, "the outcome")
        finally:
            await assoc.abort()
    return got, raised


def failures(got: list[object], raised: BaseException | None) -> list[str]:
    """What the request heard, its callback or the send itself (the association's
    end can reach both): only errors, all ``AssociationAborted``, their details."""
    heard = [*got, *([raised] if raised is not None else [])]
    assert heard and all(isinstance(item, AssociationAborted) for item in heard), heard
    return sorted({item.detail for item in heard if isinstance(item, AssociationAborted)})


def test_an_invalid_answer_while_the_send_waits_ends_the_send() -> None:
    def garbage(context_id: int, request: CStoreRQ) -> bytes:
        return encode_pdata(context_id, True, True, b"\x00" * 10)

    assert failures(*run(store_while_answered(garbage))) == [
        "invalid DIMSE data from peer: Command Group Length has length 0, not 4"]


def test_a_success_before_the_data_set_was_sent_is_no_answer() -> None:
    def success(context_id: int, request: CStoreRQ) -> bytes:
        return response_pdu(context_id, CStoreRSP(
            message_id_being_responded_to=request.message_id, status=0,
            affected_sop_class_uid=request.affected_sop_class_uid,
            affected_sop_instance_uid=request.affected_sop_instance_uid))

    # Never the peer's Success: the request hears of the abort, and why.
    assert failures(*run(store_while_answered(success))) == [
        "invalid DIMSE data from peer: CStoreRSP to message 1 came before that request was "
        "sent whole: no answer to it (PS3.7 9.1)"]
