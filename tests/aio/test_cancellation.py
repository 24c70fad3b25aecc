"""A cancel of the caller (Ctrl-C in the CLI: asyncio.run cancels the main task)
goes on up through the client's clean-up, and is not taken for the reader's own."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from dicomnet.aio.client import ClientAssociation


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
