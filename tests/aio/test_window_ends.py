"""An association that ends while the operations of its asynchronous operations
window (PS3.7 D.3.3.3) hang: they are cancelled then, not when their handlers
return, and a request waiting for a slot is not performed."""

from __future__ import annotations

import asyncio

from dicomnet.aio.server_association import ServerAssociation
from dicomnet.dimse.messages import CEchoRQ, encode_message
from dicomnet.services.verification import VerificationSCP
from dicomnet.ul.negotiation import ContextRequest
from dicomnet.ul.pdu import AAbort, encode_pdata
from tests.aio.helpers import read_until_eof, run, running_server, wait_until
from tests.storage.rawscu import RawAssociation

VERIFICATION = "1.2.840.10008.1.1"
IMPLICIT_LE = "1.2.840.10008.1.2"


def _echo(message_id: int) -> bytes:
    return encode_pdata(1, True, True, encode_message(
        CEchoRQ(message_id=message_id, affected_sop_class_uid=VERIFICATION)))


def test_a_peer_abort_with_the_window_full_of_hung_handlers_frees_the_slot() -> None:
    """The peer's A-ABORT (PS3.8 7.3) while both operations of its window hang:
    the association's task waited for a handler to return, holding the
    association's slot (max_associations) meanwhile; now the operations are
    cancelled at the abort. (A third request sent then, beyond the window,
    aborts the association itself: test_review26_window.)"""
    never = asyncio.Event()  # set at the end: nothing left waiting
    calls: list[int] = []

    async def hook(assoc: ServerAssociation) -> int:
        calls.append(1)
        await never.wait()
        return 0

    async def main() -> None:
        async with running_server(providers=[VerificationSCP(on_c_echo=hook)]) as server:
            assoc = await RawAssociation.open(
                server.port, [ContextRequest(VERIFICATION, (IMPLICIT_LE,))], window=2)
            assert assoc.window == 2
            try:
                await assoc.send(_echo(1), _echo(2))
                await wait_until(lambda: len(calls) == 2, "both handlers to run")
                await assoc.send(AAbort(source=0, reason=0).encode())
                assert await read_until_eof(assoc.reader, 15.0) == b""
                await wait_until(lambda: server.active_associations == 0 and not server._tasks,
                                 "the association's slot to be freed")
            finally:
                never.set()
                await assoc.close()

    run(main())
    assert calls == [1, 1]
