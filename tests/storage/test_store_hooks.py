"""``on_c_store``, the user's handler: what it receives (the durable file, the data
set read lazily, the calling AE title, the TLS link), the status it may answer
instead of Success, and what a handler that fails costs the peer: that one
object's status, never the association."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian

from dicomnet.services.storage import StorageSCP, StoredInstance, StoreResult, store_paths
from dicomnet.services.verification import VerificationSCP
from tests.aio.helpers import Pki, PkiFactory, run, running_server
from tests.storage.dicomfiles import make_image, uid, write_part10

PROCESSING_FAILURE, WARNING_COERCION = 0x0110, 0xB000


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return PkiFactory(tmp_path_factory.mktemp("hooks-pki"))("ecdsa")


def _files(folder: Path, count: int) -> list[Path]:
    return [write_part10(folder / f"{n}.dcm", make_image(n), ExplicitVRLittleEndian)
            for n in range(count)]


def _send(root: Path, files: list[Path], hook: object, pki: Pki | None = None,
          window: int = 1) -> list[StoreResult]:
    async def scenario() -> list[StoreResult]:
        scp = StorageSCP(root, on_c_store=hook)  # type: ignore[arg-type]
        try:
            async with running_server(providers=[VerificationSCP(), scp],
                                      tls=pki.server_tls() if pki else None) as server:
                return await store_paths("127.0.0.1", server.port, files,
                                         tls=pki.client_tls() if pki else None,
                                         calling_ae_title="MODALITY-7",
                                         max_async_operations=window)
        finally:
            scp.close()

    return run(scenario())


def test_a_sync_handler_sees_the_durable_file_the_data_set_and_the_secure_link(
        tmp_path: Path, pki: Pki) -> None:
    files = _files(tmp_path / "in", 3)
    seen: list[tuple[str, str, str | None, bool, str]] = []

    def hook(instance: StoredInstance) -> int | None:
        ds = instance.dataset(stop_before_pixels=True)
        assert instance.path.is_file()  # durable and named before the hook runs
        seen.append((instance.sop_instance_uid, instance.calling_ae_title,
                     instance.security.protocol if instance.security else None,
                     instance.duplicate, str(ds.PatientID)))
        return WARNING_COERCION if ds.InstanceNumber == 1 else None

    results = _send(tmp_path / "out", files, hook, pki)
    assert [(r.ok, r.status) for r in results] == [(True, 0), (True, WARNING_COERCION),
                                                   (True, 0)]
    assert seen == [(uid(9, n), "MODALITY-7", "TLSv1.3", False, f"PID{n:04d}")
                    for n in range(3)]


@pytest.mark.parametrize("window", [1, 8], ids=["synchronous", "window-8"])
def test_a_failing_handler_costs_that_object_a_failure_status_not_the_association(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, window: int) -> None:
    files = _files(tmp_path / "in", 4)

    async def hook(instance: StoredInstance) -> int | None:
        number = int(instance.dataset(stop_before_pixels=True).InstanceNumber)
        if number == 1:
            raise RuntimeError("the downstream queue is gone")
        if number == 2:
            return 0x1_0000  # not a status: cannot be encoded
        return None

    with caplog.at_level(logging.ERROR, logger="dicomnet.services"):
        results = _send(tmp_path / "out", files, hook, window=window)
    assert [r.status for r in results] == [0, PROCESSING_FAILURE, PROCESSING_FAILURE, 0]
    assert results[1].error == "the server's C-STORE handler failed"
    assert results[2].error == "the server's C-STORE handler failed"
    # The objects are on disk all the same: the handler runs once they are durable.
    assert len(list((tmp_path / "out").rglob("*.dcm"))) == 4
    failed = [r for r in caplog.records if "on_c_store handler" in r.getMessage()]
    assert len(failed) == 2
    (raised,) = [r for r in failed if r.exc_info is not None]  # with its traceback
    assert raised.exc_info is not None
    assert "the downstream queue is gone" in str(raised.exc_info[1])
    assert any("0x10000" in r.getMessage() for r in failed)
