"""store_paths into StorageSCP, dicomnet on both ends over TLS: every transfer syntax
arrives unchanged, duplicates follow the policy, and the SCU's edge cases (not
Part 10, no acceptable syntax, conversion) are reported as documented."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    RLELossless,
)

from dicomnet.security.config import TLSConfig
from dicomnet.services.storage import INDEX_NAME, StorageSCP, StoreResult, store_paths
from dicomnet.services.verification import VerificationSCP
from dicomnet.storage.index import StorageIndex
from dicomnet.storage.part10 import read_part10
from tests.aio.helpers import Pki, PkiFactory, run, running_server
from tests.storage.dicomfiles import (
    SYNTAX_NAMES,
    assert_same_dataset,
    make_image,
    pixel_bytes,
    uid,
    write_part10,
)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return PkiFactory(tmp_path_factory.mktemp("roundtrip-pki"))("ecdsa")


def stored_path(root: Path, number: int) -> Path:
    return root / uid(1, number) / uid(2, number) / f"{uid(9, number)}.dcm"


def send(root: Path, paths: list[Path], pki: Pki | None = None, **scp_options: object
         ) -> list[StoreResult]:
    """store_paths(paths) into a fresh server with StorageSCP(root, **scp_options)."""
    server_tls: TLSConfig | None = pki.server_tls() if pki else None
    client_tls: TLSConfig | None = pki.client_tls() if pki else None

    async def scenario() -> list[StoreResult]:
        scp = StorageSCP(root, **scp_options)  # type: ignore[arg-type]
        try:
            async with running_server(tls=server_tls, providers=[VerificationSCP(), scp]) as srv:
                return await store_paths("127.0.0.1", srv.port, paths, tls=client_tls,
                                         called_ae_title="DICOMNET-SCP")
        finally:
            scp.close()

    return run(scenario())


def test_every_transfer_syntax_round_trips_over_tls(tmp_path: Path, root: Path, pki: Pki) -> None:
    sources = {
        name: write_part10(tmp_path / "in" / f"{name}.dcm", make_image(i), ts)
        for i, (name, ts) in enumerate(SYNTAX_NAMES.items())
    }
    results = send(root, [tmp_path / "in"], pki)
    by_name = {r.path.stem: r for r in results}
    assert set(by_name) == set(SYNTAX_NAMES)
    for i, (name, ts) in enumerate(SYNTAX_NAMES.items()):
        result = by_name[name]
        assert (result.ok, result.status, result.error, result.converted_to) == (
            True, 0, None, None), name
        stored = stored_path(root, i)
        assert str(dcmread(stored).file_meta.TransferSyntaxUID) == ts, name
        assert_same_dataset(sources[name], stored)
        # Not decoded on the way: the data set bytes are the file's, byte for byte.
        src_info, dst_info = read_part10(sources[name]), read_part10(stored)
        assert (stored.read_bytes()[dst_info.dataset_offset:]
                == sources[name].read_bytes()[src_info.dataset_offset:]), name
    with StorageIndex(root / INDEX_NAME) as index:
        assert index.count()["instances"] == len(SYNTAX_NAMES)
        row = index.get_instance(uid(9, 0))
        assert row is not None and row.peer_fingerprint  # the client certificate's


# -- duplicates -----------------------------------------------------------------------------


@pytest.fixture
def twins(tmp_path: Path) -> tuple[Path, Path]:
    """Two files with the same SOP Instance UID and different pixels."""
    first = write_part10(tmp_path / "a" / "first.dcm", make_image(3, seed=1),
                         ExplicitVRLittleEndian)
    second = write_part10(tmp_path / "b" / "second.dcm", make_image(3, seed=2),
                          ExplicitVRLittleEndian)
    assert pixel_bytes(dcmread(first)) != pixel_bytes(dcmread(second))
    return first, second


def test_duplicate_keep_answers_success_and_keeps_the_first(
    root: Path, twins: tuple[Path, Path]
) -> None:
    first, second = twins
    [r1] = send(root, [first], duplicates="keep")
    kept = stored_path(root, 3).read_bytes()
    [r2] = send(root, [second], duplicates="keep")
    assert (r1.ok, r1.status, r2.ok, r2.status) == (True, 0, True, 0)
    assert stored_path(root, 3).read_bytes() == kept
    assert_same_dataset(first, stored_path(root, 3))


def test_duplicate_overwrite_replaces(root: Path, twins: tuple[Path, Path]) -> None:
    first, second = twins
    [r1] = send(root, [first], duplicates="overwrite")
    [r2] = send(root, [second], duplicates="overwrite")
    assert (r1.status, r2.status) == (0, 0)
    assert_same_dataset(second, stored_path(root, 3))


def test_duplicate_reject_answers_0111_and_keeps_the_first(
    root: Path, twins: tuple[Path, Path]
) -> None:
    first, second = twins
    [r1] = send(root, [first], duplicates="reject")
    kept = stored_path(root, 3).read_bytes()
    [r2] = send(root, [second], duplicates="reject")
    assert (r1.ok, r1.status) == (True, 0)
    assert (r2.ok, r2.status) == (False, 0x0111)
    assert r2.error
    assert stored_path(root, 3).read_bytes() == kept
    with StorageIndex(root / INDEX_NAME) as index:
        assert index.count()["instances"] == 1
    assert not list(root.rglob("*.dicomnet-part"))


# -- SCU edge cases -------------------------------------------------------------------------


def test_non_dicom_files_are_reported_and_the_others_still_go(tmp_path: Path, root: Path) -> None:
    folder = tmp_path / "in"
    good = write_part10(folder / "good.dcm", make_image(4), ExplicitVRLittleEndian)
    (folder / "notes.txt").write_text("not DICOM at all\n")
    raw = folder / "raw-dataset.dcm"  # a data set without preamble and DICM: not Part 10
    raw.write_bytes(good.read_bytes()[read_part10(good).dataset_offset:])
    (folder / "empty.dcm").write_bytes(b"")
    results = {r.path.name: r for r in send(root, [folder])}
    assert (results["good.dcm"].ok, results["good.dcm"].status) == (True, 0)
    for name in ("notes.txt", "raw-dataset.dcm", "empty.dcm"):
        result = results[name]
        assert not result.ok and result.status is None, name
        assert result.error is not None and "not a DICOM Part 10 file" in result.error, name
    assert_same_dataset(good, stored_path(root, 4))


def test_compressed_file_the_peer_does_not_accept_is_skipped_with_its_reason(
    tmp_path: Path, root: Path
) -> None:
    rle = write_part10(tmp_path / "in" / "rle.dcm", make_image(5), RLELossless)
    plain = write_part10(tmp_path / "in" / "plain.dcm", make_image(6), ExplicitVRLittleEndian)
    results = {r.path.name: r for r in send(
        root, [rle, plain], transfer_syntaxes=[ExplicitVRLittleEndian, ImplicitVRLittleEndian])}
    skipped = results["rle.dcm"]
    assert (skipped.ok, skipped.status, skipped.converted_to) == (False, None, None)
    assert skipped.error is not None
    assert RLELossless in skipped.error and "compressed; not converted" in skipped.error
    assert not stored_path(root, 5).exists()
    assert (results["plain.dcm"].ok, results["plain.dcm"].status) == (True, 0)


@pytest.mark.parametrize("source_syntax", [ExplicitVRLittleEndian, ExplicitVRBigEndian,
                                           DeflatedExplicitVRLittleEndian])
def test_uncompressed_file_is_converted_to_the_only_accepted_syntax(
    tmp_path: Path, root: Path, source_syntax: str
) -> None:
    source = write_part10(tmp_path / "in" / "x.dcm", make_image(7), source_syntax)
    [result] = send(root, [source], transfer_syntaxes=[ImplicitVRLittleEndian])
    assert (result.ok, result.status, result.converted_to) == (True, 0, ImplicitVRLittleEndian)
    stored = stored_path(root, 7)
    assert dcmread(stored).file_meta.TransferSyntaxUID == ImplicitVRLittleEndian
    assert_same_dataset(source, stored)


def test_each_size_takes_its_path_to_disk_and_arrives_whole(
        tmp_path: Path, root: Path, pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    """Below 64 KiB a data set is written through the page cache; up to 1 MiB it
    is gathered page-aligned and written with O_DIRECT in the store thread's batch;
    past 1 MiB it spills to a direct, streamed file. Each arrives byte for byte."""
    from dicomnet.storage.direct import DirectBatch, DirectSpool

    batched: list[int] = []
    spooled: list[int] = []
    real_add, real_open = DirectBatch.add, DirectSpool.open

    def add(self: DirectBatch, fd: int, buffer: object) -> bool:
        taken = real_add(self, fd, buffer)  # type: ignore[arg-type]
        if taken:
            batched.append(len(buffer))  # type: ignore[arg-type]
        return taken

    def open_spool(fd: int) -> DirectSpool | None:
        spool = real_open(fd)
        if spool is not None:
            spooled.append(fd)
        return spool

    monkeypatch.setattr(DirectBatch, "add", add)
    monkeypatch.setattr(DirectSpool, "open", staticmethod(open_spool))
    shapes = {"small": (50, 100), "over-64k": (300, 300), "images": (800, 750),
              "near-1mib": (1024, 1000), "spills": (1100, 1000)}
    sources = {name: write_part10(tmp_path / "in" / f"{name}.dcm",
                                  make_image(i, rows=rows, columns=columns),
                                  str(ExplicitVRLittleEndian))
               for i, (name, (rows, columns)) in enumerate(shapes.items())}
    results = send(root, [tmp_path / "in"], pki)
    assert all(r.ok for r in results), [r.error for r in results]
    for i, name in enumerate(shapes):
        stored = stored_path(root, i)
        src_info, dst_info = read_part10(sources[name]), read_part10(stored)
        assert (stored.read_bytes()[dst_info.dataset_offset:]
                == sources[name].read_bytes()[src_info.dataset_offset:]), name
    assert len(batched) == 3  # over-64k, images, near-1mib
    assert all(64 << 10 < size <= 1 << 20 for size in batched)
    assert len(spooled) == 1  # spills


def test_more_than_128_contexts_take_as_many_associations_as_needed(
        tmp_path: Path, root: Path) -> None:
    """70 SOP Classes in Explicit VR Little Endian need 140 contexts (each file's
    own, and one per class offering the syntaxes it could be converted to): two
    associations of at most 128 (PS3.8 9.3.2.2, 7-bit odd context IDs), every
    file on the one that proposed its class, every file stored whole. Each
    class has its last resort context too (Deflated, Big Endian:
    store_batch.contexts_for), counted when the files are grouped: 42 classes
    (126 contexts), then 28 (84)."""
    from dicomnet.aio.server import AssociationInfo
    from dicomnet.services.store_contexts import storage_sop_classes

    classes = storage_sop_classes()[:70]
    sources = [write_part10(tmp_path / "in" / f"{n:03d}.dcm",
                            make_image(n, rows=4, columns=4, sop_class_uid=sop_class),
                            str(ExplicitVRLittleEndian))
               for n, sop_class in enumerate(classes)]
    proposed: list[int] = []

    def count(info: AssociationInfo) -> None:
        proposed.append(len(info.rq.presentation_contexts))

    async def scenario() -> list[StoreResult]:
        scp = StorageSCP(root)
        try:
            async with running_server(providers=[VerificationSCP(), scp],
                                      on_association_request=count) as srv:
                return await store_paths("127.0.0.1", srv.port, [tmp_path / "in"],
                                         called_ae_title="DICOMNET-SCP")
        finally:
            scp.close()

    results = run(scenario())
    assert [r.ok for r in results] == [True] * 70, [r.error for r in results if not r.ok]
    assert proposed == [126, 84]
    for n, source in enumerate(sources):
        stored = stored_path(root, n)
        assert stored.read_bytes()[-300:] == source.read_bytes()[-300:]
        assert read_part10(stored).sop_class_uid == classes[n]


@pytest.mark.parametrize("window", [1, 8], ids=["synchronous", "window-8"])
def test_an_abort_mid_way_fails_the_rest_with_its_reason_and_keeps_what_was_answered(
        tmp_path: Path, window: int) -> None:
    """The peer answers two C-STOREs, then aborts: those two are reported stored,
    every other file failed with the abort's reason; nothing hangs."""
    from dicomnet.ul.pdu import AAbort
    from tests.aio.rawscp import RawPeer, Request, raw_scp, store_response
    from tests.storage.dicomfiles import SECONDARY_CAPTURE

    files = [write_part10(tmp_path / "in" / f"{n}.dcm", make_image(n),
                          str(ExplicitVRLittleEndian)) for n in range(6)]

    async def answer(peer: RawPeer, request: Request) -> None:
        if len(peer.requests) <= 2:
            await peer.send(store_response(request, 0))
        else:
            await peer.send(AAbort(source=2, reason=0).encode())

    async def scenario() -> list[StoreResult]:
        async with raw_scp(answer, contexts={SECONDARY_CAPTURE: [str(ExplicitVRLittleEndian)]},
                           max_async_operations=window) as (port, _):
            return await store_paths("127.0.0.1", port, files, max_async_operations=window)

    results = run(scenario(), timeout=20)
    assert [(r.path, r.ok) for r in results] == [(f, n < 2) for n, f in enumerate(files)]
    assert all(r.status is None
               and "aborted by the peer (its A-ABORT: service-provider" in (r.error or "")
               for r in results[2:])
