"""Receiving in place: the Receiver asks where the next bytes go (``attach``'s
``target``), and a server receives large data sets straight into the memory
their sink writes to disk from, over TLS and plain TCP, byte for byte."""

from __future__ import annotations

import asyncio
import ctypes
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from pydicom.uid import ExplicitVRLittleEndian

from dicomnet.aio.transport import READ_SIZE, Receiver
from dicomnet.errors import AssociationAborted
from dicomnet.security.config import TLSConfig
from dicomnet.services import store_sink
from dicomnet.services.storage import StorageSCP, store_paths
from dicomnet.storage.direct import AlignedBuffer
from dicomnet.storage.part10 import read_part10
from tests.aio.helpers import Pki, PkiFactory, run, running_server
from tests.storage.dicomfiles import make_image, uid, write_part10


def test_the_receiver_reads_where_its_target_says() -> None:
    async def main() -> None:
        receiver = Receiver()
        memory = bytearray(64)
        plan: list[memoryview | int | None] = [memoryview(memory)[8:40], 12, None,
                                               memoryview(memory)[40:50]]
        delivered: list[tuple[object, bytes, memoryview]] = []
        receiver.attach(lambda data: delivered.append((data.obj, bytes(data), data)),
                        lambda exc: None, lambda: plan.pop(0) if plan else None)

        lent = receiver.get_buffer(-1)  # a view: the bytes go straight there
        assert lent.obj is memory and len(lent) == 32
        lent[:5] = b"hello"
        receiver.buffer_updated(5)
        assert memory[8:13] == b"hello"
        owner, content, view = delivered.pop()
        assert owner is memory and content == b"hello"
        with pytest.raises(ValueError):  # released once the sink returned
            bytes(view)

        assert len(receiver.get_buffer(-1)) == 12  # a count: read no more than that
        assert len(receiver.get_buffer(-1)) == READ_SIZE  # None: the usual buffer

        stale = receiver.get_buffer(-1)  # lent for a read that brought nothing...
        assert len(receiver.get_buffer(-1)) == READ_SIZE
        with pytest.raises(ValueError):  # ...is let go at the next one
            len(stale)

    asyncio.run(main())


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return PkiFactory(tmp_path_factory.mktemp("in-place-pki"))("ecdsa")


async def store(port: int, path: Path, tls: TLSConfig | None = None) -> bool:
    """store_paths(path) into the server on ``port``: True if every object went."""
    results = await store_paths("127.0.0.1", port, [path], tls=tls,
                                called_ae_title="DICOMNET-SCP")
    return all(r.ok for r in results)


def send_with(scp: StorageSCP, path: Path) -> bool:
    """One association storing ``path`` into a fresh server with ``scp``."""

    async def scenario() -> bool:
        try:
            async with running_server(providers=[scp]) as srv:
                return await store(srv.port, path)
        finally:
            scp.close()

    return run(scenario())


def store_folder(root: Path, folder: Path, pki: Pki, secure: bool) -> bool:
    """One association storing ``folder`` into a fresh server writing under
    ``root``, over TLS or plain TCP: True if every object went."""

    async def scenario() -> bool:
        scp = StorageSCP(root)
        try:
            async with running_server(tls=pki.server_tls() if secure else None,
                                      providers=[scp]) as srv:
                return await store(srv.port, folder, pki.client_tls() if secure else None)
        finally:
            scp.close()

    return run(scenario())


def assert_stored_whole(root: Path, number: int, source: Path) -> None:
    stored = root / uid(1, number) / uid(2, number) / f"{uid(9, number)}.dcm"
    sent, got = read_part10(source), read_part10(stored)
    assert stored.read_bytes()[got.dataset_offset:] == source.read_bytes()[sent.dataset_offset:]


@pytest.mark.parametrize("secure", [True, False], ids=["tls", "plain"])
def test_large_data_sets_are_received_in_place_and_arrive_whole(
        tmp_path: Path, pki: Pki, secure: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 600 KB image (held in memory, page-aligned) and a 3 MB one (streamed to a
    direct file): most of their bytes are appended where the network put them,
    and each stored file holds exactly the data set sent."""
    in_place: list[int] = []
    real_append = AlignedBuffer.append

    def append(self: AlignedBuffer, data: Any) -> None:
        source = memoryview(data).cast("B")
        if (source.obj is self._map and len(source) and not source.readonly
                and ctypes.addressof(ctypes.c_char.from_buffer(source))
                == self.address + self.size):
            in_place.append(len(source))
        real_append(self, data)

    monkeypatch.setattr(AlignedBuffer, "append", append)
    sources = [write_part10(tmp_path / "in" / f"{n}.dcm", make_image(n, rows=r, columns=c),
                            str(ExplicitVRLittleEndian))
               for n, (r, c) in enumerate([(600, 500), (1500, 1000)])]
    root = tmp_path / "store"
    assert store_folder(root, tmp_path / "in", pki, secure)
    for n, source in enumerate(sources):
        assert_stored_whole(root, n, source)
    total = sum(read_part10(s).dataset_length for s in sources)
    assert sum(in_place) > total // 2, (sum(in_place), total)


def test_a_server_without_fsync_receives_images_in_place_too(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``StorageSCP(durable=False)`` (``serve --no-fsync``) gathers a data set
    over 64 KiB in the same page-aligned buffer as a durable one, so that TLS
    decrypts it where it is kept: before, it grew a bytearray, every byte read
    through the transport's buffer and copied once or twice more (callgrind:
    ~0.5 MB of memcpy per 512 KB image, docs/benchmarks.md, session 29). The
    files are written byte for byte (with O_DIRECT, as a durable server writes
    them: tests/storage/test_nosync_direct.py), and not fsynced."""
    in_place: list[int] = []
    real_append = AlignedBuffer.append

    def append(self: AlignedBuffer, data: Any) -> None:
        source = memoryview(data).cast("B")
        if (source.obj is self._map and len(source)
                and ctypes.addressof(ctypes.c_char.from_buffer(source))
                == self.address + self.size):
            in_place.append(len(source))
        real_append(self, data)

    monkeypatch.setattr(AlignedBuffer, "append", append)
    synced: list[int] = []
    monkeypatch.setattr(os, "fsync", synced.append)
    # 700 KB images: held in memory (under SPILL_THRESHOLD), as 512 KB ones are.
    sources = [write_part10(tmp_path / "in" / f"{n}.dcm", make_image(n, rows=1000, columns=700),
                            str(ExplicitVRLittleEndian)) for n in range(3)]
    root = tmp_path / "store"
    scp = StorageSCP(root, durable=False)
    assert send_with(scp, tmp_path / "in")
    for n, source in enumerate(sources):
        assert_stored_whole(root, n, source)
    total = sum(read_part10(s).dataset_length for s in sources)
    assert sum(in_place) > total // 2, (sum(in_place), total)
    assert not synced


class Keeping:
    """A sink that keeps every object its ``write`` is given, as a careless sink
    would, and passes everything on to StorageSCP's own sink."""

    def __init__(self, inner: Any, kept: list[object]) -> None:
        self.inner, self.kept = inner, kept

    def write(self, data: bytes | memoryview) -> None:
        self.kept.append(data)
        self.inner.write(data)

    def reserve(self, most: int) -> memoryview | int | None:
        target: memoryview | int | None = self.inner.reserve(most)
        return target

    def abort(self) -> None:
        self.inner.abort()


class KeepingSCP(StorageSCP):
    def __init__(self, root: Path) -> None:
        super().__init__(root, index=False)
        self.kept: list[object] = []

    def open_sink(self, assoc: Any, context_id: int, message: Any) -> Any:
        return Keeping(super().open_sink(assoc, context_id, message), self.kept)

    async def handle(self, assoc: Any, context_id: int, message: Any, sink: object) -> Any:
        assert isinstance(sink, Keeping)
        return await super().handle(assoc, context_id, message, sink.inner)


def assert_kept_views_fail(tmp_path: Path) -> None:
    """Store a 600 KB image through a sink that keeps what ``write`` is given:
    every kept object must be a view, released once its call returned."""
    source = write_part10(tmp_path / "in" / "0.dcm", make_image(0, rows=600, columns=500),
                          str(ExplicitVRLittleEndian))
    scp = KeepingSCP(tmp_path / "store")
    assert send_with(scp, source)
    views = [kept for kept in scp.kept if isinstance(kept, memoryview)]
    assert views and len(views) == len(scp.kept)
    for view in views:
        with pytest.raises(ValueError):
            bytes(view)


def test_a_sink_that_keeps_what_it_was_lent_fails_loudly(tmp_path: Path) -> None:
    """The server lends views of its receive buffer (and of sinks' memory) to
    ``write``; after the call they are released, so a sink that kept one gets a
    ValueError instead of bytes that have since been overwritten."""
    assert_kept_views_fail(tmp_path)


def test_the_tail_of_a_pdv_read_through_the_transports_buffer_is_not_kept_either(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """When the sink lends at most 90 KiB at a time, a 600 KB PDV goes in place
    in pieces until less than 64 KiB of it is left; that tail comes through the
    transport's own buffer straight to the sink (``_take_in_place``). That view
    too is released after the call: the buffer is read into again at once, so a
    view kept past the call would show other bytes later."""
    lend = store_sink.StoreSink.reserve
    monkeypatch.setattr(store_sink.StoreSink, "reserve",
                        lambda self, most: lend(self, min(most, 90 << 10)))
    assert_kept_views_fail(tmp_path)


class Faulty(Keeping):
    """A sink whose ``reserve`` or ``write`` raises where told."""

    def __init__(self, inner: Any, kept: list[object], fail: str) -> None:
        super().__init__(inner, kept)
        self.fail = fail

    def reserve(self, most: int) -> memoryview | int | None:
        if self.fail == "reserve":
            raise RuntimeError("reserve broke")
        return super().reserve(most)

    def write(self, data: bytes | memoryview) -> None:
        if self.fail == "write" and len(self.kept) >= 1:
            raise RuntimeError("write broke")
        super().write(data)


class FaultySCP(KeepingSCP):
    def __init__(self, root: Path, fail: str) -> None:
        super().__init__(root)
        self.fail = fail

    def open_sink(self, assoc: Any, context_id: int, message: Any) -> Any:
        inner = StorageSCP.open_sink(self, assoc, context_id, message)
        return Faulty(inner, self.kept, self.fail)


def test_a_reserve_that_raises_only_costs_the_copy(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The transport must read on whatever a sink's reserve() does: the bytes
    then go through the usual buffer and arrive whole."""
    source = write_part10(tmp_path / "in" / "0.dcm", make_image(0, rows=1500, columns=1000),
                          str(ExplicitVRLittleEndian))
    root = tmp_path / "store"
    assert send_with(FaultySCP(root, "reserve"), source)
    assert_stored_whole(root, 0, source)
    assert "reserve() failed" in caplog.text


def test_a_write_that_raises_aborts_that_association_only(tmp_path: Path) -> None:
    """An exception from a sink while P-DATA is routed in the read callback ends
    the association as it did in the association's task (A-ABORT, nothing
    stored), and the server goes on serving."""
    source = write_part10(tmp_path / "in" / "0.dcm", make_image(0, rows=1500, columns=1000),
                          str(ExplicitVRLittleEndian))
    root = tmp_path / "store"
    scp = FaultySCP(root, "write")

    async def scenario() -> bool:
        try:
            async with running_server(providers=[scp]) as srv:
                with pytest.raises(AssociationAborted):
                    await store(srv.port, source)
                assert not [p for p in root.rglob("*") if p.is_file()]
                scp.fail = ""
                return await store(srv.port, source)
        finally:
            scp.close()

    assert run(scenario())
    assert_stored_whole(root, 0, source)
    assert [p.name for p in root.rglob("*") if p.is_file() and p.name.startswith(".")] == []


def test_the_middle_of_a_long_pdv_goes_straight_to_the_sink(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Reads that fall inside a long data PDV, short of its end, skip the Upper
    Layer's PDU views and events (``Association._take_in_place``); the data set
    still arrives byte for byte, and the reads that end a PDV take the usual way."""
    from dicomnet.aio.association import Association

    outcomes: list[bool] = []
    real = Association._take_in_place

    def spy(self: Association, *args: Any) -> bool:
        taken = real(self, *args)
        outcomes.append(taken)
        return taken

    monkeypatch.setattr(Association, "_take_in_place", spy)
    source = write_part10(tmp_path / "in" / "0.dcm", make_image(0, rows=3000, columns=1000),
                          str(ExplicitVRLittleEndian))
    root = tmp_path / "store"
    assert send_with(StorageSCP(root), source)
    assert_stored_whole(root, 0, source)
    assert True in outcomes and False in outcomes


def raw_session(root: Path, rows: int, columns: int,
                session: Callable[[Any, int, int, bytes, bytes], Awaitable[object]],
                tmp_path: Path) -> tuple[object, Path]:
    """An image of ``rows`` x ``columns`` written under ``tmp_path/in``, and a fresh
    server storing under ``root`` with a raw peer on its Secondary Capture
    context: ``session(raw association, context ID, server port, SOP Instance
    UID, data set bytes)``'s result, and the image's file."""
    from dicomnet.ul.negotiation import ContextRequest
    from tests.storage.dicomfiles import SECONDARY_CAPTURE
    from tests.storage.rawscu import RawAssociation

    image = make_image(0, rows=rows, columns=columns)
    source = write_part10(tmp_path / "in" / "0.dcm", image, str(ExplicitVRLittleEndian))
    data = source.read_bytes()[read_part10(source).dataset_offset:]
    scp = StorageSCP(root)

    async def scenario() -> object:
        try:
            async with running_server(providers=[scp], ae_title="DICOMNET") as srv:
                assoc = await RawAssociation.open(srv.port, [
                    ContextRequest(SECONDARY_CAPTURE, (str(ExplicitVRLittleEndian),))])
                return await session(assoc, assoc.context_id(SECONDARY_CAPTURE), srv.port,
                                     image.SOPInstanceUID.encode(), data)
        finally:
            scp.close()

    return run(scenario()), source


def test_a_command_pdv_inside_a_data_set_aborts_and_stores_nothing(tmp_path: Path) -> None:
    """A hostile peer: after the first megabyte of a data set, a long PDV marked
    as a command, received in place like data. DIMSE refuses it (PS3.8 9.3.5: a
    message's PDVs are consecutive), nothing reaches a file, and the server goes
    on serving."""
    from dicomnet.ul.pdu import encode_pdata
    from tests.storage.dicomfiles import SECONDARY_CAPTURE
    from tests.storage.rawscu import store_command

    root = tmp_path / "store"

    async def session(assoc: Any, ctx: int, port: int, sop: bytes, data: bytes) -> object:
        size = assoc.fragment_size
        await assoc.send(
            encode_pdata(ctx, True, True, store_command(SECONDARY_CAPTURE.encode(), sop)),
            encode_pdata(ctx, False, False, data[:size]),
            encode_pdata(ctx, True, False, data[size:2 * size]))
        outcome = await assoc.outcome()
        await assoc.close()
        assert await store(port, tmp_path / "in" / "0.dcm")  # the next one is served
        return outcome

    outcome, source = raw_session(root, 3000, 1000, session, tmp_path)
    assert outcome in ("aborted", "closed")
    stored = [p for p in root.rglob("*.dcm") if p.is_file()]
    assert len(stored) == 1  # only the good association's
    assert_stored_whole(root, 0, source)


@pytest.mark.parametrize("secure", [True, False], ids=["tls", "plain"])
def test_the_read_that_ends_a_data_set_completes_it_the_short_way(
        tmp_path: Path, pki: Pki, secure: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Images of 600 KB: the read that ends each data set in place completes its
    message without the Upper Layer's PDU events (DimseConnection.take_last_data),
    and every image is stored byte for byte and answered."""
    from dicomnet.dimse.connection import DimseConnection

    ended: list[int] = []
    real = DimseConnection.take_last_data

    def spy(self: DimseConnection, context_id: int) -> bool:
        done = real(self, context_id)
        ended.append(done)
        return done

    monkeypatch.setattr(DimseConnection, "take_last_data", spy)
    for n in range(6):
        write_part10(tmp_path / "in" / f"{n}.dcm", make_image(n, rows=600, columns=500),
                     str(ExplicitVRLittleEndian))
    root = tmp_path / "store"
    assert store_folder(root, tmp_path / "in", pki, secure)
    for n in range(6):
        assert_stored_whole(root, n, tmp_path / "in" / f"{n}.dcm")
    assert ended and all(ended)


def test_pdvs_that_end_in_place_are_taken_the_short_way(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A peer sending a 900 KB data set (held in memory) as two PDVs of 450 KB, one
    PDU at a time: the reads that end each PDV in place (its first 256 KiB came
    through the receive buffer), last or not, are taken without the Upper
    Layer's events (ULConnection.consume_pdv_data); the file holds exactly the
    data set sent."""
    from dicomnet.ul.connection import ULConnection
    from dicomnet.ul.framing import PDU_ENDED, PDV_ENDED
    from dicomnet.ul.pdu import encode_pdata
    from tests.storage.dicomfiles import SECONDARY_CAPTURE
    from tests.storage.rawscu import store_command

    ended: list[bool] = []  # the is-last flag of each PDV ended the short way
    real_consume = ULConnection.consume_pdv_data

    def consume_spy(self: ULConnection, count: int, now: float) -> int:
        pdv = self.current_pdv
        done = real_consume(self, count, now)
        if done in (PDV_ENDED, PDU_ENDED) and pdv is not None:
            ended.append(pdv[2])
        return done

    monkeypatch.setattr(ULConnection, "consume_pdv_data", consume_spy)
    root = tmp_path / "store"

    async def session(assoc: Any, ctx: int, port: int, sop: bytes, data: bytes) -> object:
        half = -(-len(data) // 2)
        pieces = [data[:half], data[half:]]
        await assoc.send(encode_pdata(ctx, True, True, store_command(
            SECONDARY_CAPTURE.encode(), sop)))
        for number, piece in enumerate(pieces):
            await assoc.send(encode_pdata(ctx, False, number == len(pieces) - 1, piece))
            await asyncio.sleep(0.05)  # pacing: one PDU on the wire at a time
        outcome = await assoc.outcome()
        await assoc.release()
        return outcome

    outcome, source = raw_session(root, 600, 750, session, tmp_path)
    assert getattr(outcome, "status", None) == 0
    assert_stored_whole(root, 0, source)
    assert ended == [False, True]
