"""Asynchronous operations window (PS3.7 D.3.3.3) between our SCU and SCP: several
C-STOREs in flight at once, every object still stored and answered."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pydicom.uid import ExplicitVRLittleEndian

from dicomnet.aio.client import associate
from dicomnet.services.storage import StorageSCP, StoredInstance, store_paths
from dicomnet.services.verification import VerificationSCP
from tests.aio.helpers import run, running_server
from tests.storage.dicomfiles import make_image, write_part10

CT = "1.2.840.10008.5.1.4.1.1.2"
IN_FLIGHT = 4


def test_window_lets_several_stores_run_at_once(tmp_path: Path) -> None:
    """The hook holds each store until IN_FLIGHT of them run together: with a window
    of 1 this could never happen and the hooks would time out."""
    files = [write_part10(tmp_path / "in" / f"{n}.dcm", make_image(n), ExplicitVRLittleEndian)
             for n in range(12)]
    seen: list[int] = []

    async def scenario() -> tuple[list[bool], int]:
        running = 0
        enough = asyncio.Event()

        async def hold(instance: StoredInstance) -> None:
            nonlocal running
            running += 1
            seen.append(running)
            if running >= IN_FLIGHT:
                enough.set()
            await asyncio.wait_for(enough.wait(), 10)
            running -= 1

        scp = StorageSCP(tmp_path / "out", on_c_store=hold)
        async with running_server(providers=[VerificationSCP(), scp]) as server:
            results = await store_paths("127.0.0.1", server.port, files,
                                        max_async_operations=8)
        return [r.ok for r in results], len(list((tmp_path / "out").rglob("*.dcm")))

    oks, stored = run(scenario())
    assert oks == [True] * 12
    assert stored == 12
    assert max(seen) >= IN_FLIGHT


def test_window_is_what_both_sides_allow(tmp_path: Path) -> None:
    async def scenario() -> tuple[int, int, int]:
        async with running_server(providers=[VerificationSCP()]) as server:
            async with associate("127.0.0.1", server.port) as plain:
                sync = plain.async_window
            async with associate("127.0.0.1", server.port, max_async_operations=5) as five:
                windowed = five.async_window
                status = int(await five.echo())
            return sync, windowed, status

    assert run(scenario()) == (1, 5, 0)


def test_without_a_window_objects_go_one_at_a_time_in_order(tmp_path: Path) -> None:
    """A peer that grants no window (most do not) gets each C-STORE after the last
    one's response, in the files' order, each reported to on_progress once."""
    files = [write_part10(tmp_path / "in" / f"{n}.dcm", make_image(n), ExplicitVRLittleEndian)
             for n in range(6)]
    stored_order: list[str] = []
    progress: list[Path] = []

    async def scenario() -> tuple[list[bool], int]:
        running = 0
        most = 0

        async def hold(instance: StoredInstance) -> None:
            nonlocal running, most
            running += 1
            most = max(most, running)
            stored_order.append(instance.sop_instance_uid)
            await asyncio.sleep(0.01)  # a second request would arrive meanwhile
            running -= 1

        scp = StorageSCP(tmp_path / "out", on_c_store=hold)
        async with running_server(providers=[VerificationSCP(), scp]) as server:
            results = await store_paths("127.0.0.1", server.port, files,
                                        max_async_operations=1,
                                        on_progress=lambda r: progress.append(r.path))
        return [r.ok for r in results], most

    oks, most = run(scenario())
    assert oks == [True] * 6
    assert most == 1
    assert stored_order == [make_image(n).SOPInstanceUID for n in range(6)]
    assert progress == files
