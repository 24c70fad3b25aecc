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
