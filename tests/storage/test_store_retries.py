"""``store_paths(retries=...)``: objects lost to a dropped link, a busy peer or a
peer out of room are sent again on a new association; failures that would only
repeat (a refused certificate, a permanent rejection, a data set the peer
refuses) are not. Real dicomnet servers throughout; the dropped link is a relay
on loopback that resets both sides after a given number of bytes
(``tests.relay``)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import ExplicitVRLittleEndian

from dicomnet.config import Limits
from dicomnet.errors import (
    AssociationAborted,
    AssociationRejected,
    ConfigurationError,
    ConnectError,
    DicomNetError,
    DimseTimeout,
    LocalProtocolError,
    NoAcceptedContext,
    RemoteProtocolError,
    TimeoutError,
    TLSError,
)
from dicomnet.services.storage import (
    RetryEvent,
    StorageSCP,
    StoredInstance,
    StoreResult,
    store_paths,
)
from dicomnet.services.store_scu import transient_failure
from dicomnet.services.verification import VerificationSCP
from tests.aio.helpers import Pki, PkiFactory, run, running_server
from tests.relay import CuttingRelay
from tests.storage.dicomfiles import make_image, pixel_bytes, uid, write_part10

LOOPBACK = "127.0.0.1"
OUT_OF_RESOURCES, CANNOT_UNDERSTAND = 0xA700, 0xC000


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return PkiFactory(tmp_path_factory.mktemp("retry-pki"))("ecdsa")


@pytest.fixture(scope="module")
def other_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return PkiFactory(tmp_path_factory.mktemp("retry-other-pki"))("ecdsa")


def _files(folder: Path, count: int, rows: int = 256) -> list[Path]:
    # 256 x 256 bytes of pixels: a relay's cut lands inside an object, not between.
    return [write_part10(folder / f"{n:02d}.dcm", make_image(n, rows=rows, columns=256),
                         ExplicitVRLittleEndian) for n in range(count)]


def _store_through_relay(root: Path, files: list[Path], cuts: dict[int, int], *,
                         pki: Pki | None = None, window: int = 1, **options: object
                         ) -> tuple[list[StoreResult] | DicomNetError, list[StoreResult],
                                    list[RetryEvent], int]:
    """Send ``files`` to a StorageSCP(root) through a CuttingRelay; returns the
    results (or what store_paths raised), what on_progress heard, the retry
    events and the relay's count of connections."""
    heard: list[StoreResult] = []
    retried: list[RetryEvent] = []

    async def scenario() -> tuple[list[StoreResult] | DicomNetError, int]:
        scp = StorageSCP(root)
        try:
            async with running_server(providers=[VerificationSCP(), scp],
                                      tls=pki.server_tls() if pki else None) as server, \
                    CuttingRelay(server.port, cuts).running() as relay:
                try:
                    options.setdefault("tls", pki.client_tls() if pki else None)
                    results: list[StoreResult] | DicomNetError = await store_paths(
                        LOOPBACK, relay.port, files, max_async_operations=window,
                        on_progress=heard.append, on_retry=retried.append,
                        **options)  # type: ignore[arg-type]
                except DicomNetError as exc:
                    results = exc
                return results, relay.connections
        finally:
            scp.close()

    results, connections = run(scenario())
    return results, heard, retried, connections


def _stored(root: Path) -> dict[str, bytes]:
    return {str(ds.SOPInstanceUID): pixel_bytes(ds)
            for ds in map(dcmread, root.rglob("*.dcm"))}


@pytest.mark.parametrize("window", [1, 8], ids=["synchronous", "window-8"])
def test_objects_lost_to_a_dropped_link_are_sent_again(tmp_path: Path, pki: Pki,
                                                        window: int) -> None:
    files = _files(tmp_path / "in", 8)
    # The first connection is reset about half way through the transfer.
    cut = sum(f.stat().st_size for f in files) // 2
    results, heard, retried, connections = _store_through_relay(
        tmp_path / "out", files, {0: cut}, pki=pki, window=window,
        retries=2, retry_delay=0)
    assert connections == 2
    assert isinstance(results, list)
    assert all(r.ok and r.status == 0 and r.error is None for r in results), results
    attempts = [r.attempts for r in results]
    # In order: those answered on the first association once, the rest twice
    # (with a window, the cut may come before any answer: all twice; an object
    # stored whose answer was lost is then kept once and answered Success).
    assert attempts == sorted(attempts) and attempts[-1] == 2, attempts
    assert attempts[0] == 1 or window > 1
    assert len(retried) == 1
    event = retried[0]
    assert (event.attempt, event.max_attempts, event.delay) == (2, 3, 0)
    assert event.count == attempts.count(2)
    assert "abort" in event.reason or "closed" in event.reason or "reset" in event.reason
    # on_progress heard of each object once, with its final outcome.
    assert sorted(r.path for r in heard) == sorted(files)
    assert all(r.ok for r in heard)
    # Every object is on the server whole, each once.
    stored = _stored(tmp_path / "out")
    assert stored == {uid(9, n): pixel_bytes(dcmread(f)) for n, f in enumerate(files)}


def test_a_tls_handshake_cut_short_is_retried_a_refused_certificate_is_not(
        tmp_path: Path, pki: Pki, other_pki: Pki) -> None:
    files = _files(tmp_path / "in", 2, rows=8)
    results, _, retried, connections = _store_through_relay(
        tmp_path / "out", files, {0: 0}, pki=pki, retries=1, retry_delay=0)
    assert isinstance(results, list)
    assert [(r.ok, r.attempts) for r in results] == [(True, 2)] * 2
    assert connections == 2 and len(retried) == 1
    assert "closed the connection without answering our ClientHello" in retried[0].reason
    # The same relay, a server whose certificate our CA did not sign: one attempt.
    results, _, retried, connections = _store_through_relay(
        tmp_path / "out2", files, {}, pki=pki, retries=3, retry_delay=0,
        tls=other_pki.client_tls())
    assert isinstance(results, TLSError) and not results.link_failed
    assert (connections, retried) == (1, [])


@pytest.mark.parametrize("policy", ["keep", "reject"])
def test_objects_stored_whose_answers_were_lost_are_sent_again(tmp_path: Path,
                                                               policy: str) -> None:
    """The link drops as the first answer comes back: the server stored objects
    the client never heard of. Sent again, a server keeping the first copy
    answers Success; one rejecting duplicates answers 0111H, and the error says
    that the earlier attempt most likely stored them. Either way each object is
    on the server once, whole."""
    files = _files(tmp_path / "in", 8)
    heard: list[StoreResult] = []

    async def scenario() -> tuple[list[StoreResult], int]:
        scp = StorageSCP(tmp_path / "out", duplicates=policy)
        try:
            async with running_server(providers=[VerificationSCP(), scp]) as server, \
                    CuttingRelay(server.port, {}, answer_cuts={0: 2}).running() as relay:
                results = await store_paths(LOOPBACK, relay.port, files, retries=1,
                                            retry_delay=0, max_async_operations=8,
                                            on_progress=heard.append)
                return results, relay.connections
        finally:
            scp.close()

    results, connections = run(scenario())
    assert connections == 2
    assert [r.attempts for r in results] == [2] * 8  # no answer came back on the first
    stored = _stored(tmp_path / "out")
    assert stored == {uid(9, n): pixel_bytes(dcmread(f)) for n, f in enumerate(files)}
    duplicates = [r for r in results if r.status == 0x0111]
    if policy == "keep":
        assert duplicates == [] and all(r.ok for r in results)
    else:
        # At least the object whose answer was cut was stored by the first attempt.
        assert duplicates
        assert all("most likely stored by the earlier attempt" in (r.error or "")
                   for r in duplicates)
        assert all(r.ok for r in results if r not in duplicates)
    assert len(heard) == 8


def test_without_retries_the_lost_objects_are_reported_retryable(tmp_path: Path) -> None:
    files = _files(tmp_path / "in", 8)
    cut = sum(f.stat().st_size for f in files) // 2
    results, heard, retried, connections = _store_through_relay(
        tmp_path / "out", files, {0: cut})
    assert (connections, retried) == (1, [])
    assert isinstance(results, list)
    ok = [r for r in results if r.ok]
    lost = [r for r in results if not r.ok]
    assert ok and lost
    assert all(r.retryable and r.status is None and r.attempts == 1 and r.error
               for r in lost)
    assert not any(r.retryable for r in ok)
    assert sorted(r.path for r in heard) == sorted(files)
    assert set(_stored(tmp_path / "out")) == {r.sop_instance_uid for r in ok}
    assert {r.to_dict()["retryable"] for r in lost} == {True}


def test_retries_end_when_the_link_keeps_dropping(tmp_path: Path) -> None:
    files = _files(tmp_path / "in", 3)
    # Every connection is reset before the server sees a byte.
    results, heard, retried, connections = _store_through_relay(
        tmp_path / "out", files, dict.fromkeys(range(10), 0), retries=2, retry_delay=0)
    assert connections == 3  # the first attempt and two retries
    assert [e.attempt for e in retried] == [2, 3]
    # Nothing could be sent at all: the last link failure is raised, as without retries.
    assert isinstance(results, AssociationAborted)
    assert len(heard) == 3
    assert all(not r.ok and r.retryable and r.attempts == 3 for r in heard)
    assert list((tmp_path / "out").rglob("*.dcm")) == []


def test_the_wait_doubles_from_retry_delay(tmp_path: Path) -> None:
    files = _files(tmp_path / "in", 1, rows=8)
    slept: list[float] = []
    real_sleep = asyncio.sleep

    async def no_sleep(delay: float) -> None:
        slept.append(delay)
        await real_sleep(0)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("dicomnet.services.store_scu.asyncio.sleep", no_sleep)
        results, heard, retried, _ = _store_through_relay(
            tmp_path / "out", files, dict.fromkeys(range(10), 0), retries=4,
            retry_delay=20)
    assert slept == [20, 40, 60, 60]  # doubled, at most MAX_RETRY_DELAY
    assert [e.delay for e in retried] == slept
    assert isinstance(results, AssociationAborted)
    assert [r.attempts for r in heard] == [5]


def test_a_transient_rejection_is_retried(tmp_path: Path, pki: Pki) -> None:
    """A server at its association limit rejects (transient, local limit exceeded);
    once the association holding it ends, the retry goes through."""
    from dicomnet.aio.client import associate

    files = _files(tmp_path / "in", 3, rows=8)
    events: list[RetryEvent] = []

    async def scenario() -> list[StoreResult]:
        scp = StorageSCP(tmp_path / "out")
        try:
            async with running_server(providers=[VerificationSCP(), scp],
                                      tls=pki.server_tls(),
                                      limits=Limits(max_associations=1)) as server:
                holder = associate(LOOPBACK, server.port, tls=pki.client_tls())
                await holder.__aenter__()
                released = asyncio.Event()

                def on_retry(event: RetryEvent) -> None:
                    events.append(event)
                    asyncio.get_running_loop().create_task(release())

                async def release() -> None:
                    await holder.__aexit__(None, None, None)
                    released.set()

                results = await store_paths(LOOPBACK, server.port, files,
                                            tls=pki.client_tls(), retries=3,
                                            retry_delay=0.05, on_retry=on_retry)
                await released.wait()
                return results
        finally:
            scp.close()

    results = run(scenario())
    assert [(r.ok, r.attempts) for r in results] == [(True, 2)] * 3
    assert len(events) == 1 and "transient" in events[0].reason
    assert len(_stored(tmp_path / "out")) == 3


def test_failures_that_would_repeat_are_not_retried(tmp_path: Path, pki: Pki,
                                                    other_pki: Pki) -> None:
    files = _files(tmp_path / "in", 2, rows=8)
    events: list[RetryEvent] = []

    async def scenario(client_tls: object, **server_options: object) -> None:
        scp = StorageSCP(tmp_path / "out")
        try:
            async with running_server(providers=[VerificationSCP(), scp],
                                      tls=pki.server_tls(), **server_options) as server:
                await store_paths(LOOPBACK, server.port, files, tls=client_tls,  # type: ignore[arg-type]
                                  called_ae_title="SOMEONE-ELSE", retries=3, retry_delay=0,
                                  on_retry=events.append)
        finally:
            scp.close()

    # A server certificate our CA did not sign: the same failure every time.
    with pytest.raises(TLSError):
        run(scenario(other_pki.client_tls()))
    # A permanent rejection (the called AE title is not the server's).
    with pytest.raises(AssociationRejected) as rejected:
        run(scenario(pki.client_tls(), require_called_ae_title=True))
    assert rejected.value.result == 1
    assert events == []


def test_out_of_resources_is_retried_and_other_refusals_are_not(tmp_path: Path) -> None:
    """The peer's answer decides: A700H (out of resources) may pass later, C000H
    (cannot understand) will not."""
    files = _files(tmp_path / "in", 4, rows=8)
    answers: dict[str, list[int | None]] = {
        uid(9, 0): [OUT_OF_RESOURCES, None],           # full, then room again
        uid(9, 1): [CANNOT_UNDERSTAND],                # refused for good
        uid(9, 2): [None],
        uid(9, 3): [OUT_OF_RESOURCES, OUT_OF_RESOURCES, OUT_OF_RESOURCES],  # never room
    }
    calls: dict[str, int] = {}

    def hook(instance: StoredInstance) -> int | None:
        n = calls.get(instance.sop_instance_uid, 0)
        calls[instance.sop_instance_uid] = n + 1
        return answers[instance.sop_instance_uid][n]

    async def scenario() -> list[StoreResult]:
        scp = StorageSCP(tmp_path / "out", on_c_store=hook)
        try:
            async with running_server(providers=[VerificationSCP(), scp]) as server:
                return await store_paths(LOOPBACK, server.port, files, retries=2,
                                         retry_delay=0)
        finally:
            scp.close()

    results = run(scenario())
    assert [(r.ok, r.status, r.attempts, r.retryable) for r in results] == [
        (True, 0, 2, False),
        (False, CANNOT_UNDERSTAND, 1, False),
        (True, 0, 1, False),
        (False, OUT_OF_RESOURCES, 3, True),
    ]
    assert calls == {uid(9, 0): 2, uid(9, 1): 1, uid(9, 2): 1, uid(9, 3): 3}


def test_a_peer_that_stops_answering_is_left_and_the_objects_sent_to_another_association(
        tmp_path: Path) -> None:
    """A peer that takes a C-STORE and never answers: the DIMSE timeout ends that
    association with an A-ABORT (PS3.7 10.1, 7.4.x), and the retry sends every
    object again on a new one, where each is answered. The peer is hand-driven
    (tests/aio/rawscp.py): it sees the very bytes of each data set."""
    from dicomnet.config import Timeouts
    from dicomnet.dimse.messages import CStoreRQ, CStoreRSP
    from dicomnet.storage.part10 import read_part10
    from tests.aio.rawscp import RawPeer, Request, raw_scp, response_pdu
    from tests.storage.dicomfiles import SECONDARY_CAPTURE

    files = _files(tmp_path / "in", 3, rows=8)
    connections: list[RawPeer] = []  # raw_scp's own list, one peer per connection

    async def answer(peer: RawPeer, request: Request) -> None:
        if peer is connections[0]:
            return  # the first association: silence
        assert isinstance(request.message, CStoreRQ)
        await peer.send(response_pdu(request.context_id, CStoreRSP(
            message_id_being_responded_to=request.message.message_id, status=0,
            affected_sop_class_uid=request.message.affected_sop_class_uid,
            affected_sop_instance_uid=request.message.affected_sop_instance_uid)))

    async def scenario() -> list[StoreResult]:
        nonlocal connections
        async with raw_scp(answer, contexts={SECONDARY_CAPTURE: [str(ExplicitVRLittleEndian)]}
                           ) as (port, peers):
            connections = peers
            results = await store_paths(LOOPBACK, port, files, retries=1, retry_delay=0,
                                        timeouts=Timeouts(dimse=0.3))
            await asyncio.wait_for(peers[-1].ended.wait(), 5)
            return results

    results = run(scenario())
    assert [(r.ok, r.status, r.attempts) for r in results] == [(True, 0, 2)] * 3
    first, second = connections
    assert first.ending == "abort" and len(first.requests) == 1
    assert second.ending == "release"
    # The one out when the link failed goes last: were it what the peer cannot
    # take, the others would get through before it.
    for request, path in zip(second.requests, [*files[1:], files[0]], strict=True):
        info = read_part10(path)
        with path.open("rb") as f:
            f.seek(info.dataset_offset)
            assert request.dataset == f.read()


@pytest.mark.parametrize(("error", "transient"), [
    (AssociationAborted(2, 0, "connection reset"), True),
    (AssociationRejected(2, 3, 2), True),    # transient, local limit exceeded
    (AssociationRejected(1, 1, 7), False),   # permanent, called AE not recognised
    (ConnectError("connection refused"), True),
    (TimeoutError("ACSE timeout"), True),
    (DimseTimeout("no response"), True),
    (TLSError("certificate verify failed"), False),
    (TLSError("closed during the handshake", link_failed=True), True),
    (ConfigurationError("bad option"), False),
    (RemoteProtocolError("garbage"), False),
    (LocalProtocolError("misuse"), False),
    (NoAcceptedContext("nothing accepted"), False),
])
def test_which_failures_are_transient(error: Exception, transient: bool) -> None:
    assert transient_failure(error) is transient


@pytest.mark.parametrize("options", [{"retries": -1}, {"retry_delay": -1},
                                     {"retry_delay": 61}])
def test_bad_retry_options_are_refused(tmp_path: Path, options: dict[str, object]) -> None:
    files = _files(tmp_path / "in", 1, rows=8)
    with pytest.raises(ConfigurationError):
        run(store_paths(LOOPBACK, 9, files, **options))  # type: ignore[arg-type]


def test_an_object_the_peer_aborts_on_does_not_take_the_others_down_at_every_retry(
        tmp_path: Path) -> None:
    """A peer that aborts on one object (as DCMTK does on a data set it cannot
    take): on the retry the objects never sent go first and are stored; only that
    one fails. They say "not sent" until then, not "the peer aborted"."""
    from dicomnet.dimse.messages import CStoreRQ, CStoreRSP
    from dicomnet.ul.pdu import AAbort
    from tests.aio.rawscp import RawPeer, Request, raw_scp, response_pdu
    from tests.storage.dicomfiles import SECONDARY_CAPTURE

    files = _files(tmp_path / "in", 4, rows=8)
    poison = uid(9, 1)
    stored: list[str] = []

    async def answer(peer: RawPeer, request: Request) -> None:
        assert isinstance(request.message, CStoreRQ)
        uid_sent = request.message.affected_sop_instance_uid
        if uid_sent == poison:
            await peer.send(AAbort(source=0, reason=0).encode())
            peer.writer.close()
            return
        stored.append(uid_sent)
        await peer.send(response_pdu(request.context_id, CStoreRSP(
            message_id_being_responded_to=request.message.message_id, status=0,
            affected_sop_class_uid=request.message.affected_sop_class_uid,
            affected_sop_instance_uid=uid_sent)))

    async def scenario(retries: int) -> list[StoreResult]:
        async with raw_scp(answer, contexts={SECONDARY_CAPTURE: [str(ExplicitVRLittleEndian)]}
                           ) as (port, _):
            return await store_paths(LOOPBACK, port, files, retries=retries, retry_delay=0)

    once = run(scenario(0))
    assert [(r.ok, r.retryable) for r in once] == [(True, False)] + [(False, True)] * 3
    errors = [r.error or "" for r in once[1:]]
    assert "abort" in errors[0] and not errors[0].startswith("not sent")
    assert all(e.startswith("not sent: ") for e in errors[1:]), errors
    assert stored == [uid(9, 0)]
    stored.clear()
    results = run(scenario(2))
    assert [(r.ok, r.status) for r in results] == [
        (True, 0), (False, None), (True, 0), (True, 0)]
    assert stored == [uid(9, 0), uid(9, 2), uid(9, 3)]
    assert "abort" in (results[1].error or "")
    assert results[1].attempts == 3
