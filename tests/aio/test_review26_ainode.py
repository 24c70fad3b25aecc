"""Found building an AI node on the asyncio library (session 26 review): a TLS
Storage SCP whose slow model runs on each object, forwarding a derived result.

- ``StorageSCP(on_stored=async def ...)``, the natural way to "answer at once
  and run the model after", was never run: its coroutine was created, dropped
  with a RuntimeWarning, and the object went unprocessed with nothing logged.
- An association kept open to the PACS, used from a plain handler's worker
  thread (``asyncio.run(assoc.store(ds))``), failed with asyncio's bare
  RuntimeError ("got Future ... attached to a different loop") after taking
  its window's slot and touching its state from the wrong thread.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian

from dicomnet.aio.client import associate
from dicomnet.errors import ConfigurationError, LocalProtocolError
from dicomnet.services.storage import StorageSCP, StoredInstance, store_paths
from dicomnet.ul.negotiation import ContextRequest
from tests.aio.helpers import run, running_server
from tests.storage.dicomfiles import SECONDARY_CAPTURE, make_image, write_part10


async def _model(stored: StoredInstance) -> None:
    await asyncio.sleep(0)


class _AsyncObserver:
    async def __call__(self, stored: StoredInstance) -> None:
        await asyncio.sleep(0)


@pytest.mark.parametrize("observer", [_model, _AsyncObserver()], ids=["function", "callable"])
def test_a_coroutine_on_stored_is_refused_when_the_scp_is_made(tmp_path: Path,
                                                               observer: object) -> None:
    with pytest.raises(ConfigurationError) as caught:
        StorageSCP(tmp_path / "store", on_stored=observer)  # type: ignore[arg-type]
    assert "on_stored" in str(caught.value)
    assert "on_c_store" in str(caught.value)  # where a coroutine goes instead
    assert not (tmp_path / "store").exists()  # refused before the store is opened


def test_an_observer_that_returns_a_coroutine_is_logged_not_dropped_silently(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A plain function handing back a coroutine (``lambda s: model(s)``) cannot
    be told apart when the SCP is made: its coroutine, never run, is closed
    (no RuntimeWarning) and the error logged; the object is stored and answered."""
    file = write_part10(tmp_path / "1.dcm", make_image(1), ExplicitVRLittleEndian)

    async def scenario() -> list[int | None]:
        def observer(stored: StoredInstance) -> object:
            return _model(stored)

        scp = StorageSCP(tmp_path / "store", on_stored=observer)
        try:
            async with running_server(providers=[scp]) as server:
                results = await store_paths("127.0.0.1", server.port, [file])
        finally:
            scp.close()
        return [result.status for result in results]

    with caplog.at_level(logging.ERROR, logger="dicomnet.services"):
        assert run(scenario()) == [0x0000]
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "on_stored observer returned a coroutine" in errors[0]
    assert len(list((tmp_path / "store").rglob("*.dcm"))) == 1


def test_an_association_used_from_another_event_loop_says_so(tmp_path: Path) -> None:
    """The kept-open association stays usable on its own loop afterwards."""

    async def scenario() -> tuple[BaseException | None, int, int]:
        scp = StorageSCP(tmp_path / "store")
        try:
            async with running_server(providers=[scp]) as server, associate(
                    "127.0.0.1", server.port,
                    contexts=[ContextRequest(SECONDARY_CAPTURE, (ExplicitVRLittleEndian,))],
            ) as assoc:

                def from_a_worker_thread() -> BaseException | None:
                    try:
                        asyncio.run(assoc.store(make_image(1)))
                    except BaseException as exc:  # what the user sees, whatever it is
                        return exc
                    return None

                failure = await asyncio.to_thread(from_a_worker_thread)
                then = await assoc.store(make_image(2))
        finally:
            scp.close()
        return failure, int(then), len(list((tmp_path / "store").rglob("*.dcm")))

    failure, then, stored = run(scenario())
    assert isinstance(failure, LocalProtocolError), repr(failure)
    assert "another event loop" in str(failure)
    assert "run_coroutine_threadsafe" in str(failure)  # what to do instead
    assert (then, stored) == (0x0000, 1)  # nothing of the first went out
