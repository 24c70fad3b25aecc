"""``StoredInstance.dataset_async()``: an ``async`` on_c_store handler reads the
stored data set without holding up the event loop (``dataset()`` reads it on the
caller's thread, which in a coroutine is the loop's), and gets what
``dataset()`` gives, errors included."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.errors import InvalidDicomError
from pydicom.uid import ExplicitVRLittleEndian

from dicomnet.services.storage import (
    HookAnswer,
    StorageSCP,
    StoredInstance,
    StoreResult,
    store_paths,
)
from tests.aio.helpers import run, running_server
from tests.storage.dicomfiles import SECONDARY_CAPTURE, make_image, uid, write_part10

WARNING_COERCION = 0xB000


def _instance(path: Path) -> StoredInstance:
    return StoredInstance(path=path, sop_class_uid=SECONDARY_CAPTURE,
                          sop_instance_uid="1.2.3", transfer_syntax_uid=ExplicitVRLittleEndian,
                          calling_ae_title="A", security=None, duplicate=False)


def test_an_async_handler_reads_the_data_set_off_the_loop(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = [write_part10(tmp_path / "in" / f"{n}.dcm", make_image(n), ExplicitVRLittleEndian)
             for n in range(3)]
    loop_thread: list[int] = []
    read_in: list[int] = []
    seen: list[tuple[str, str, bool]] = []
    dcmread = pydicom.dcmread

    def recording_dcmread(*args: Any, **kwargs: Any) -> Any:
        read_in.append(threading.get_ident())
        return dcmread(*args, **kwargs)

    monkeypatch.setattr(pydicom, "dcmread", recording_dcmread)

    async def hook(instance: StoredInstance) -> HookAnswer:
        loop_thread.append(threading.get_ident())
        ds = await instance.dataset_async(stop_before_pixels=True)
        full = await instance.dataset_async()
        seen.append((str(ds.SOPInstanceUID), str(ds.PatientID), "PixelData" in full))
        assert "PixelData" not in ds  # stop_before_pixels is passed on
        return WARNING_COERCION if ds.InstanceNumber == 1 else None

    async def scenario() -> list[StoreResult]:
        scp = StorageSCP(tmp_path / "out", on_c_store=hook)
        try:
            async with running_server(providers=[scp]) as server:
                return await store_paths("127.0.0.1", server.port, files)
        finally:
            scp.close()

    results = run(scenario())
    # What the handler read is what was sent: its answer is the sender's status.
    assert [(r.ok, r.status) for r in results] == [(True, 0), (True, WARNING_COERCION),
                                                   (True, 0)]
    assert sorted(seen) == [(uid(9, n), f"PID{n:04d}", True) for n in range(3)]
    # Each read ran on another thread than the loop the handler ran on.
    assert len(set(loop_thread)) == 1 and len(read_in) == 6
    assert loop_thread[0] not in read_in


def test_it_raises_what_the_blocking_read_raises(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not DICOM\n")
    for path, error in ((tmp_path / "gone.dcm", FileNotFoundError),
                        (tmp_path / "notes.txt", InvalidDicomError)):
        instance = _instance(path)
        with pytest.raises(error):
            instance.dataset()
        with pytest.raises(error):
            run(instance.dataset_async())
