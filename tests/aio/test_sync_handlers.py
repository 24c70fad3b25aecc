"""A plain (synchronous) ``on_c_echo`` or ``on_c_store`` handler runs in a worker
thread, so that blocking work in it (a database, a request to another node,
reading the data set) holds its own association only: it ran on the event loop,
and one slow handler stalled every association of the server. Async handlers
still run on the loop (tests/aio/test_hooks.py, tests/storage/test_store_hooks.py)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from pathlib import Path

from pydicom import dcmread
from pydicom.uid import ExplicitVRLittleEndian

from dicomnet.aio.client import associate
from dicomnet.aio.server import ServerAssociation
from dicomnet.services.storage import StorageSCP, StoredInstance
from dicomnet.services.verification import VerificationSCP
from dicomnet.ul.negotiation import ContextRequest
from tests.aio.helpers import LOOPBACK, run, running_server
from tests.storage.dicomfiles import SECONDARY_CAPTURE, make_image

VERIFICATION = "1.2.840.10008.1.1"


def test_a_blocking_echo_handler_holds_its_association_only() -> None:
    entered, go_on = threading.Event(), threading.Event()
    threads: list[str] = []

    def on_c_echo(assoc: ServerAssociation) -> int:
        threads.append(threading.current_thread().name)
        if len(threads) == 1:  # the first association's C-ECHO blocks
            entered.set()
            assert go_on.wait(30)
            return 0xC000 + 1  # shows the answer is the handler's
        return 0

    async def main() -> tuple[int, int]:
        async with running_server(providers=[VerificationSCP(on_c_echo=on_c_echo)]) as server, \
                associate(LOOPBACK, server.port) as first, \
                associate(LOOPBACK, server.port) as second:
            blocked = asyncio.create_task(first.echo())
            assert await asyncio.to_thread(entered.wait, 30)
            # The loop serves the other association while the handler blocks.
            other = int(await asyncio.wait_for(second.echo(), 10))
            assert not blocked.done()
            go_on.set()
            return int(await asyncio.wait_for(blocked, 10)), other

    assert run(main()) == (0xC001, 0)
    assert all(name != threading.main_thread().name for name in threads), threads


def test_a_blocking_store_handler_holds_its_association_only(tmp_path: Path) -> None:
    entered, go_on = threading.Event(), threading.Event()
    seen: list[str] = []

    def on_c_store(instance: StoredInstance) -> int | None:
        # Blocking work is allowed here: the data set read from disk, a wait.
        seen.append(str(instance.dataset(stop_before_pixels=True).PatientID))
        entered.set()
        assert go_on.wait(30)
        return None

    async def main() -> tuple[int, int]:
        scp = StorageSCP(tmp_path / "out", on_c_store=on_c_store)
        try:
            async with running_server(providers=[VerificationSCP(), scp]) as server, \
                    associate(LOOPBACK, server.port, contexts=[
                        ContextRequest(SECONDARY_CAPTURE, (ExplicitVRLittleEndian,))]) as sender, \
                    associate(LOOPBACK, server.port) as checker:
                stored = asyncio.create_task(sender.store(make_image(7)))
                assert await asyncio.to_thread(entered.wait, 30)
                echo = int(await asyncio.wait_for(checker.echo(), 10))
                assert not stored.done()
                go_on.set()
                return int(await asyncio.wait_for(stored, 10)), echo
        finally:
            scp.close()

    assert run(main()) == (0, 0)
    assert seen == ["PID0007"]
    [path] = (tmp_path / "out").rglob("*.dcm")
    assert dcmread(path).PatientID == "PID0007"


def test_blocking_handlers_on_more_associations_than_asyncios_threads_hold_none_else(
        tmp_path: Path) -> None:
    """More plain handlers blocked at once than asyncio's default executor has
    threads (min(32, CPUs + 4)): another association is still answered (found by
    the docs review: with six blocked on two CPUs, a seventh got no answer)."""
    blocked_at_once = min(32, (os.cpu_count() or 1) + 4) + 1
    entered = threading.Semaphore(0)
    go_on = threading.Event()

    def on_c_store(instance: StoredInstance) -> None:
        if instance.sop_instance_uid != make_image(999).SOPInstanceUID:
            entered.release()
            assert go_on.wait(60)

    async def main() -> tuple[list[int], int]:
        scp = StorageSCP(tmp_path / "out", on_c_store=on_c_store)
        context = [ContextRequest(SECONDARY_CAPTURE, (ExplicitVRLittleEndian,))]
        try:
            async with running_server(providers=[scp]) as server, \
                    contextlib.AsyncExitStack() as stack:
                senders = [await stack.enter_async_context(
                    associate(LOOPBACK, server.port, contexts=context))
                    for _ in range(blocked_at_once + 1)]
                held = [asyncio.create_task(sender.store(make_image(n + 1)))
                        for n, sender in enumerate(senders[:-1])]
                for _ in held:
                    assert await asyncio.to_thread(entered.acquire, True, 30)
                free = int(await asyncio.wait_for(senders[-1].store(make_image(999)), 20))
                assert not any(task.done() for task in held)
                go_on.set()
                return [int(status) for status in await asyncio.gather(*held)], free
        finally:
            go_on.set()
            scp.close()

    statuses, free = run(main())
    assert (statuses, free) == ([0] * blocked_at_once, 0)
    assert len(list((tmp_path / "out").rglob("*.dcm"))) == blocked_at_once + 1
