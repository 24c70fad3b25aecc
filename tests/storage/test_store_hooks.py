"""``on_c_store``, the user's handler: what it receives (the durable file, the data
set read lazily, the calling AE title, the TLS link), the status it may answer
instead of Success, and what a handler that fails costs the peer: that one
object's status, never the association."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian

from dicomnet.dimse.status import Status
from dicomnet.services.storage import (
    HookAnswer,
    StorageSCP,
    StoredInstance,
    StoreResult,
    store_paths,
)
from dicomnet.services.verification import VerificationSCP
from dicomnet.storage.part10 import read_part10
from dicomnet.ul.negotiation import ContextRequest
from dicomnet.ul.pdu import AAbort, ReleaseRQ
from tests.aio.helpers import Pki, PkiFactory, read_until_eof, run, running_server, wait_until
from tests.storage.dicomfiles import SECONDARY_CAPTURE, make_image, uid, write_part10
from tests.storage.rawscu import RawAssociation, store_command

PROCESSING_FAILURE, WARNING_COERCION = 0x0110, 0xB000
CONTEXT = [ContextRequest(SECONDARY_CAPTURE, (ExplicitVRLittleEndian,))]


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


def test_a_handler_may_answer_a_status_object_and_an_error_comment(tmp_path: Path) -> None:
    """The library's own Status is a status (it was refused as "not a status"), and
    (status, comment) gives the sender the reason, cut to LO's 64 characters."""
    files = _files(tmp_path / "in", 3)

    def hook(instance: StoredInstance) -> HookAnswer:
        number = int(instance.dataset(stop_before_pixels=True).InstanceNumber)
        if number == 0:
            return Status(WARNING_COERCION)
        if number == 1:
            return 0xC001, "not a CT: this node analyses CT only"
        return Status(0xC002), "x" * 70

    results = _send(tmp_path / "out", files, hook)
    assert [(r.ok, r.status, r.error) for r in results] == [
        (True, WARNING_COERCION, None),
        (False, 0xC001, "not a CT: this node analyses CT only"),
        (False, 0xC002, "x" * 64)]


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


@pytest.mark.parametrize("ending", ["abort", "release-then-abort"])
def test_a_peer_gone_while_the_handler_runs_is_an_outcome_not_an_error(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, ending: str) -> None:
    """The response has no one to go to: the association ends as aborted, the object
    stays stored, and nothing is logged as an internal error. It was, both ways (found
    by fuzzing): the failed send of the response reached the server's catch-all, and
    an A-RELEASE-RQ waiting for the operation was answered after the A-ABORT."""
    path, = _files(tmp_path / "in", 1)
    info = read_part10(path)
    data = path.read_bytes()[info.dataset_offset:]
    root = tmp_path / "out"
    running = asyncio.Event()
    release = asyncio.Event()

    async def hook(instance: StoredInstance) -> None:
        running.set()
        await release.wait()

    async def scenario() -> bytes:
        scp = StorageSCP(root, on_c_store=hook)
        try:
            async with running_server(providers=[VerificationSCP(), scp]) as server:
                assoc = await RawAssociation.open(server.port, CONTEXT)
                await assoc.send_store(assoc.context_id(SECONDARY_CAPTURE),
                                       store_command(info.sop_class_uid.encode(),
                                                     info.sop_instance_uid.encode()), data)
                await asyncio.wait_for(running.wait(), 20)
                if ending == "release-then-abort":
                    await assoc.send(ReleaseRQ().encode())  # answered once all are done
                await assoc.send(AAbort(source=0, reason=0).encode())
                # The server has read the A-ABORT once it closes (AA-3); then the
                # handler returns, and the response finds the association gone.
                rest = await read_until_eof(assoc.reader, 20)
                release.set()
                await assoc.close()
                await wait_until(lambda: server.active_associations == 0 and not server._tasks,
                                 "the server to end the association", timeout=20)
                return rest
        finally:
            scp.close()

    with caplog.at_level(logging.INFO, logger="dicomnet"):
        rest = run(scenario())
    assert rest == b""  # no response went out
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert any("RAWSCU@" in r.getMessage() and ": aborted (" in r.getMessage()
               for r in caplog.records)
    (stored,) = root.rglob("*.dcm")
    assert stored.read_bytes()[read_part10(stored).dataset_offset:] == data


def test_an_observer_is_told_of_each_object_stored_on_the_fast_path_too(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """``on_stored`` sees each durable file, with a window of 8 (the store thread
    answers, no task per object) and one at a time alike; one that raises is
    logged and the object is still answered Success."""
    files = _files(tmp_path / "in", 4)
    seen: list[tuple[str, bool, bool]] = []

    def observe(instance: StoredInstance) -> None:
        seen.append((instance.sop_instance_uid, instance.path.is_file(), instance.duplicate))
        if instance.sop_instance_uid == uid(9, 2):
            raise RuntimeError("the observer's own bug")

    async def scenario(root: Path, window: int) -> list[StoreResult]:
        scp = StorageSCP(root, on_stored=observe)
        try:
            async with running_server(providers=[VerificationSCP(), scp]) as server:
                return await store_paths("127.0.0.1", server.port, files,
                                         max_async_operations=window)
        finally:
            scp.close()

    for window, root in ((8, tmp_path / "a"), (1, tmp_path / "b")):
        seen.clear()
        with caplog.at_level(logging.ERROR, logger="dicomnet"):
            results = run(scenario(root, window))
        assert [(r.ok, r.status) for r in results] == [(True, 0)] * 4
        assert sorted(seen) == sorted((uid(9, n), True, False) for n in range(4))
        assert any("on_stored observer failed" in r.getMessage() for r in caplog.records)
        caplog.clear()


def test_a_handler_and_an_observer_see_the_called_ae_title_and_the_peer_address(
        tmp_path: Path) -> None:
    """A node serving several AE titles routes by the called one, and logs who sent
    what: ``StoredInstance`` had neither. Every path fills both: the store thread's
    (in memory) and a spilled object's, a duplicate kept, with a handler (which
    leaves the fast path) and with an observer only (which keeps it)."""
    files = _files(tmp_path / "in", 2)
    # Over the spill threshold (1 MiB): a temporary file, committed in a worker thread.
    files.append(write_part10(tmp_path / "in" / "big.dcm", make_image(7, rows=1024,
                                                                       columns=1100),
                              ExplicitVRLittleEndian))
    # A second copy of the first: a duplicate, kept (and answered Success).
    files.append(tmp_path / "in" / "again.dcm")
    files[-1].write_bytes(files[0].read_bytes())
    seen: list[tuple[str, tuple[str, int], bool]] = []

    def note(instance: StoredInstance) -> None:
        seen.append((instance.called_ae_title, instance.peer, instance.duplicate))

    async def scenario(root: Path, window: int, **handlers: object) -> list[StoreResult]:
        scp = StorageSCP(root, **handlers)  # type: ignore[arg-type]
        try:
            async with running_server(providers=[VerificationSCP(), scp]) as server:
                return await store_paths("127.0.0.1", server.port, files,
                                         called_ae_title="AI-NODE-CT",
                                         max_async_operations=window)
        finally:
            scp.close()

    runs = [(name, window) for name in ("on_stored", "on_c_store") for window in (1, 8)]
    for number, (name, window) in enumerate(runs):
        seen.clear()
        results = run(scenario(tmp_path / f"out{number}", window, **{name: note}))
        assert [(r.ok, r.status) for r in results] == [(True, 0)] * 4
        assert [called for called, _, _ in seen] == ["AI-NODE-CT"] * 4
        assert sorted(duplicate for _, _, duplicate in seen) == [False] * 3 + [True]
        peers = {peer for _, peer, _ in seen}
        assert len(peers) == 1, peers  # one association
        ((host, port),) = peers
        assert host == "127.0.0.1" and isinstance(port, int) and port > 0


def test_a_handler_and_an_observer_see_one_instance_made_for_them(tmp_path: Path) -> None:
    """The store thread answers without a ``StoredInstance`` (store_answers.Stored);
    one is made when first asked for, and the observer and the handler of an
    object get that same one, whole: its file as a Path, who sent it, to whom."""
    files = _files(tmp_path / "in", 2)
    observed: list[StoredInstance] = []
    handled: list[StoredInstance] = []

    async def scenario(root: Path) -> list[StoreResult]:
        scp = StorageSCP(root, on_stored=observed.append, on_c_store=handled.append)
        try:
            async with running_server(providers=[VerificationSCP(), scp]) as server:
                return await store_paths("127.0.0.1", server.port, files,
                                         calling_ae_title="MODALITY-7",
                                         called_ae_title="AI-NODE-CT")
        finally:
            scp.close()

    results = run(scenario(tmp_path / "out"))
    assert [r.status for r in results] == [0, 0]
    assert len(observed) == 2 and all(o is h for o, h in zip(observed, handled, strict=True))
    for number, instance in enumerate(observed):
        assert type(instance.path) is type(tmp_path) and instance.path.is_file()
        assert instance.path.name == f"{uid(9, number)}.dcm"
        assert instance.path.is_relative_to(tmp_path / "out")
        assert (instance.sop_instance_uid, instance.sop_class_uid) == (
            uid(9, number), SECONDARY_CAPTURE)
        assert instance.transfer_syntax_uid == ExplicitVRLittleEndian
        assert (instance.calling_ae_title, instance.called_ae_title) == (
            "MODALITY-7", "AI-NODE-CT")
        assert instance.peer[0] == "127.0.0.1" and instance.security is None
        assert not instance.duplicate and not instance.replaced
        assert instance.move_originator is None


def test_a_store_result_gives_its_status_as_the_status_assoc_store_returns(
        tmp_path: Path) -> None:
    """``assoc.store`` returns a ``Status`` (words, category); ``StoreResult.status``
    is the bare code (42753 for A701H), kept an int for JSON and formatting
    (``f"{status:04X}"``); ``dimse_status`` is the same code as a ``Status``."""
    files = _files(tmp_path / "in", 3)

    def hook(instance: StoredInstance) -> HookAnswer:
        number = int(instance.dataset(stop_before_pixels=True).InstanceNumber)
        return (None, WARNING_COERCION, (0xA701, "queue full"))[number]

    results = _send(tmp_path / "out", files, hook)
    assert [r.status for r in results] == [0, WARNING_COERCION, 0xA701]
    assert all(type(r.status) is int for r in results)
    assert [r.to_dict()["status"] for r in results] == [0, 0xB000, 0xA701]
    statuses = [r.dimse_status for r in results]
    assert statuses == [Status(0), Status(WARNING_COERCION), Status(0xA701)]
    assert [str(s) for s in statuses] == [
        "0x0000 (success: Success)",
        "0xB000 (warning: coercion of data elements)",
        "0xA701 (failure: Refused: out of resources)"]
    assert [s.category for s in statuses if s is not None] == ["success", "warning", "failure"]
    assert StoreResult(Path("never-sent.dcm")).dimse_status is None


@pytest.mark.parametrize(("policy", "flags"), [("keep", [False, True]),
                                               ("overwrite", [False, False])])
def test_duplicate_means_the_copy_held_was_kept(tmp_path: Path, policy: str,
                                                flags: list[bool]) -> None:
    """``StoredInstance.duplicate`` (and serve's "duplicate" event field): the second
    copy of a SOP Instance UID kept the first (keep); one that replaced it
    (overwrite) is stored, not a duplicate, and its path is its own file."""
    files = _files(tmp_path / "in", 1)
    seen: list[tuple[bool, bytes]] = []

    async def scenario(root: Path) -> None:
        scp = StorageSCP(root, duplicates=policy,
                         on_stored=lambda i: seen.append((i.duplicate, i.path.read_bytes())))
        try:
            async with running_server(providers=[scp]) as server:
                for _ in range(2):
                    results = await store_paths("127.0.0.1", server.port, files)
                    assert [r.status for r in results] == [0x0000]
        finally:
            scp.close()

    run(scenario(tmp_path / "out"))
    assert [flag for flag, _ in seen] == flags
    assert len({data for _, data in seen}) == 1  # the same object's file either way
