"""A TCP relay on loopback that drops chosen connections part way: the dropped
link of the retry tests (``store_paths(retries=...)``, ``dicomnet store --retries``)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator

__all__ = ["CuttingRelay", "RelayThread"]

LOOPBACK = "127.0.0.1"


class CuttingRelay:
    """A TCP relay on loopback to ``target``. Connection ``n`` (counted from 0) is
    reset on both sides once ``cuts[n]`` bytes went from the client to the
    server (0: at once, before anything reaches the server), or, with
    ``answer_cuts[n] = k``, as the server's ``k``-th PDU (counted from 1) begins:
    with k = 2, the A-ASSOCIATE-AC goes through and the first answer after it
    does not (plain DICOM only: the relay reads the PDU headers, PS3.8 9.3.1).
    Others are relayed whole."""

    def __init__(self, target: int, cuts: dict[int, int],
                 answer_cuts: dict[int, int] | None = None) -> None:
        self.target, self.cuts, self.answer_cuts = target, cuts, answer_cuts or {}
        self.connections = 0
        self.port = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        index, self.connections = self.connections, self.connections + 1
        limit = self.cuts.get(index)
        if limit == 0:
            writer.transport.abort()
            return
        up_reader, up_writer = await asyncio.open_connection(LOOPBACK, self.target)

        def cut() -> None:
            writer.transport.abort()
            up_writer.transport.abort()

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter,
                       limit: int | None) -> None:
            moved = 0
            with contextlib.suppress(ConnectionError, OSError):
                while data := await src.read(1 << 16):
                    if limit is not None and moved + len(data) >= limit:
                        dst.write(data[:limit - moved])
                        cut()
                        return
                    moved += len(data)
                    dst.write(data)
                    await dst.drain()
            if not dst.transport.is_closing():
                dst.close()

        async def answers(src: asyncio.StreamReader, dst: asyncio.StreamWriter,
                          cut_at: int) -> None:
            """Whole PDUs from the server, until the ``cut_at``-th begins."""
            with contextlib.suppress(ConnectionError, OSError, asyncio.IncompleteReadError):
                for _ in range(cut_at - 1):
                    head = await src.readexactly(6)
                    dst.write(head + await src.readexactly(int.from_bytes(head[2:], "big")))
                    await dst.drain()
                await src.readexactly(1)
                cut()
                return
            if not dst.transport.is_closing():
                dst.close()

        cut_at = self.answer_cuts.get(index)
        await asyncio.gather(
            pump(reader, up_writer, limit),
            answers(up_reader, writer, cut_at) if cut_at else pump(up_reader, writer, None))

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[CuttingRelay]:
        self._server = await asyncio.start_server(self._relay, LOOPBACK, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        try:
            yield self
        finally:
            self._server.close()
            # Each relay ends when both of its ends closed; one that does not is a bug.
            if self._tasks:
                _, stuck = await asyncio.wait(self._tasks, timeout=5)
                assert not stuck, "a relayed connection did not end"
            await self._server.wait_closed()


class RelayThread:
    """A :class:`CuttingRelay` on its own event loop in a thread, for tests whose
    client runs in the test's thread (the command-line tests)."""

    def __init__(self, target: int, cuts: dict[int, int]) -> None:
        self.relay = CuttingRelay(target, cuts)
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), daemon=True)

    @property
    def port(self) -> int:
        return self.relay.port

    @property
    def connections(self) -> int:
        return self.relay.connections

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        async with self.relay.running():
            self._ready.set()
            await self._stop.wait()

    def __enter__(self) -> RelayThread:
        self._thread.start()
        assert self._ready.wait(20), "relay did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(20)
        assert not self._thread.is_alive(), "relay thread did not stop"
