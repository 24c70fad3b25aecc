"""A cancel of the caller (Ctrl-C in the CLI: asyncio.run cancels the main task)
goes on up through the client's clean-up, and is not taken for the reader's own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from dicomnet.aio.client import ClientAssociation
from dicomnet.errors import AssociationAborted


def test_a_cancel_while_the_reader_is_stopped_goes_on_up() -> None:
    """The caller is cancelled while _stop_reader waits for the reader task: the
    reader is stopped and the cancel is raised (it used to be swallowed, and a
    Ctrl-C during a release was then ignored)."""

    async def main() -> tuple[bool, bool]:
        reader = asyncio.create_task(asyncio.sleep(30))  # a reader that does not end
        stopping = asyncio.create_task(
            ClientAssociation._stop_reader(SimpleNamespace(_reader=reader)))  # type: ignore[arg-type]
        for _ in range(3):  # the task runs up to its wait for the reader
            await asyncio.sleep(0)
        stopping.cancel()
        with pytest.raises(asyncio.CancelledError):
            await stopping
        return stopping.cancelled(), reader.cancelled()

    assert asyncio.run(main()) == (True, True)


def test_a_reader_cancelled_by_an_abort_ends_the_wait_quietly() -> None:
    """The reader itself is cancelled (an abort elsewhere): _stop_reader returns."""

    async def main() -> bool:
        reader = asyncio.create_task(asyncio.sleep(30))
        stopping = asyncio.create_task(
            ClientAssociation._stop_reader(SimpleNamespace(_reader=reader)))  # type: ignore[arg-type]
        for _ in range(3):  # the task runs up to its wait for the reader
            await asyncio.sleep(0)
        reader.cancel()
        await stopping  # no exception
        return reader.cancelled()

    assert asyncio.run(main())


def test_a_cancelled_wait_closed_still_closes_the_providers_once() -> None:
    """A waiter cancelled while the server's tasks end (an application shutting
    down) must not skip the providers' close(): a storage SCP writes its last
    index rows there. Two waiters close them once."""
    from dicomnet.aio.server import serve
    from dicomnet.services.verification import VerificationSCP

    closed: list[str] = []

    class Closing(VerificationSCP):
        def close(self) -> None:
            closed.append("closed")

    async def main() -> None:
        server = await serve(ae_title="SCP", host="127.0.0.1", port=0, providers=[Closing()])

        async def slow_to_end() -> None:  # an association finishing its clean-up
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                await asyncio.sleep(0.05)

        lingering = asyncio.create_task(slow_to_end())
        await asyncio.sleep(0)
        server._tasks.add(lingering)
        server.close()
        waiter = asyncio.create_task(server.wait_closed())
        for _ in range(5):
            await asyncio.sleep(0)  # the waiter is in its gather now
        assert not waiter.done()
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert closed == ["closed"]
        await server.wait_closed()
        assert closed == ["closed"]

    asyncio.run(main())


def test_a_request_cancelled_while_its_data_set_is_sent_aborts_the_association(
        tmp_path: Path, aio_log: pytest.LogCaptureFixture) -> None:
    """``asyncio.wait_for(assoc.store(ds), ...)`` timing out part-way through the
    data set: the association went on with half a message on the wire, and the
    next request's command broke it (the peer aborted: 'command PDV on context 1
    while the data set of the message on context 1 is still due', PS3.8 9.3.5).
    It is now aborted at once, and the next request says why."""
    from dicomnet.aio.client import associate
    from dicomnet.dimse.messages import CStoreRQ
    from dicomnet.services.storage import StorageSCP
    from dicomnet.services.verification import VerificationSCP
    from dicomnet.ul.negotiation import ContextRequest

    from .helpers import association_lines, run, running_server, wait_until

    ct = "1.2.840.10008.5.1.4.1.1.2"
    contexts = [ContextRequest(ct, ("1.2.840.10008.1.2.1",)),
                ContextRequest("1.2.840.10008.1.1", ("1.2.840.10008.1.2.1",))]
    scp = StorageSCP(tmp_path / "store")

    async def main() -> str:
        halfway = asyncio.Event()

        async def data_set() -> AsyncIterator[bytes]:
            yield b"\x08\x00\x16\x00UI\x1a\x00" + ct.encode() + b"\x00" * 1
            yield b"\x10\x00\x10\x00PN\x04\x00ABCD"
            halfway.set()  # the first part is queued, the rest never comes
            await asyncio.Event().wait()
            yield b""

        async with running_server(providers=[VerificationSCP(), scp]) as server:
            try:
                async with associate("127.0.0.1", server.port, contexts=contexts) as assoc:
                    rq = CStoreRQ(message_id=assoc.dimse.next_message_id(),
                                  affected_sop_class_uid=ct, affected_sop_instance_uid="1.2.3")
                    sending = asyncio.create_task(
                        assoc.request_one(rq, assoc.context_for(ct).context_id,
                                          chunks=data_set()))
                    await halfway.wait()
                    sending.cancel()
                    with pytest.raises(asyncio.CancelledError):
                        await sending
                    with pytest.raises(AssociationAborted) as aborted:
                        await assoc.echo()
            finally:
                scp.close()
            await wait_until(lambda: bool(association_lines(aio_log)), "the server's line")
        return str(aborted.value)

    error = run(main())
    assert "a C-STORE message cut short in its data set (CancelledError)" in error, error
    ended = association_lines(aio_log)
    assert len(ended) == 1 and "aborted (by the peer, its A-ABORT: service-user)" in ended[0], ended


def test_a_data_set_whose_association_ends_between_two_chunks_says_aborted(
        tmp_path: Path) -> None:
    """The association aborted while its sender awaited the next chunk of a data
    set (here a local abort from another task; a peer's A-ABORT read meanwhile
    alike): the request raises AssociationAborted with why. Before, the next PDU
    met the Upper Layer in Sta1 and the caller got LocalProtocolError ('Evt9 is
    not valid in Sta1'), which retries took for a lasting failure."""
    from dicomnet.aio.client import associate
    from dicomnet.dimse.messages import CStoreRQ
    from dicomnet.services.storage import StorageSCP
    from dicomnet.ul.negotiation import ContextRequest

    from .helpers import run, running_server

    ct = "1.2.840.10008.5.1.4.1.1.2"
    scp = StorageSCP(tmp_path / "store")

    async def main() -> BaseException | None:
        first_out = asyncio.Event()
        go_on = asyncio.Event()

        async def data_set() -> AsyncIterator[bytes]:
            yield b"\x08\x00\x16\x00UI\x1a\x00" + ct.encode() + b"\x00" * 1
            first_out.set()
            await go_on.wait()
            yield b"\x10\x00\x10\x00PN\x04\x00ABCD"
            yield b"\x10\x00\x20\x00LO\x04\x00ABCD"

        async with running_server(providers=[scp]) as server:
            try:
                async with associate("127.0.0.1", server.port,
                                     contexts=[ContextRequest(ct, ("1.2.840.10008.1.2.1",))]
                                     ) as assoc:
                    rq = CStoreRQ(message_id=assoc.dimse.next_message_id(),
                                  affected_sop_class_uid=ct, affected_sop_instance_uid="1.2.3")
                    sending = asyncio.create_task(
                        assoc.request_one(rq, assoc.context_for(ct).context_id,
                                          chunks=data_set()))
                    await first_out.wait()
                    await assoc.abort()
                    go_on.set()
                    try:
                        await sending
                    except Exception as exc:  # what it raises is the point
                        return exc
            finally:
                scp.close()
        return None

    error = run(main())
    assert isinstance(error, AssociationAborted), repr(error)
    assert str(error) == "association aborted by us (A-ABORT sent: service-user)", str(error)
