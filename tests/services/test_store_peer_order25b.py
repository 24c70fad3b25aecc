"""store_paths against a hand-driven SCP (tests/aio/rawscp.py) that answers out
of order under a window, releases while C-STOREs are outstanding, or collides
with our A-RELEASE-RQ (review by use, second pass)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pydicom.uid import ExplicitVRLittleEndian

from dicomnet.services.storage import StoreResult, store_paths
from dicomnet.ul.negotiation import AcceptorPolicy, negotiate
from dicomnet.ul.pdu import AssociateRQ, ReleaseRP, ReleaseRQ, decode_pdu
from tests.aio.helpers import run
from tests.aio.rawscp import EXPLICIT_LE, LOOPBACK, RawPeer, Request, raw_scp, store_response
from tests.storage.dicomfiles import make_image, write_part10

SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"


def images(folder: Path, count: int) -> list[Path]:
    return [write_part10(folder / f"{n}.dcm", make_image(5000 + n, rows=8, columns=8),
                         ExplicitVRLittleEndian) for n in range(count)]


def test_answers_out_of_order_reach_their_files_as_they_come(tmp_path: Path) -> None:
    """A window of 3 granted; each group of three answered last first, with
    Warning B000H, Refused A700H and Success: each file gets its own status,
    and on_progress hears of each when its answer comes, not in file order."""
    files = images(tmp_path, 6)
    held: list[Request] = []

    async def answer(peer: RawPeer, request: Request) -> None:
        held.append(request)
        if len(held) == 3:
            for r, status in zip(reversed(held), (0x0000, 0xA700, 0xB000), strict=True):
                await peer.send(store_response(r, status))
            held.clear()

    heard: list[tuple[str, int | None]] = []

    async def main() -> tuple[list[StoreResult], str]:
        async with raw_scp(answer, max_async_operations=3,
                           contexts={SECONDARY_CAPTURE: [EXPLICIT_LE]}) as (port, peers):
            results = await store_paths(LOOPBACK, port, files, max_async_operations=3,
                                        on_progress=lambda r: heard.append(
                                            (r.path.name, r.status)))
            await peers[0].ended.wait()
            return results, peers[0].ending

    results, ending = run(main())
    assert ending == "release"
    assert [(r.path.name, r.status, r.ok, r.warning) for r in results] == [
        ("0.dcm", 0xB000, True, True), ("1.dcm", 0xA700, False, False),
        ("2.dcm", 0x0000, True, False), ("3.dcm", 0xB000, True, True),
        ("4.dcm", 0xA700, False, False), ("5.dcm", 0x0000, True, False)]
    assert heard == [("2.dcm", 0), ("1.dcm", 0xA700), ("0.dcm", 0xB000),
                     ("5.dcm", 0), ("4.dcm", 0xA700), ("3.dcm", 0xB000)]


def test_a_peer_releasing_with_stores_outstanding(tmp_path: Path) -> None:
    """The SCP answers the first of two outstanding C-STOREs, then sends
    A-RELEASE-RQ: we answer it (PS3.8 9.2, AR-2/AR-4), the first is stored,
    the unanswered ones and the rest fail as a failed association would, to be
    retried."""
    files = images(tmp_path, 5)
    held: list[Request] = []

    async def answer(peer: RawPeer, request: Request) -> None:
        held.append(request)
        if len(held) == 2:
            await peer.send(store_response(held[0], 0), ReleaseRQ().encode())

    async def main() -> tuple[list[StoreResult], str]:
        async with raw_scp(answer, max_async_operations=2,
                           contexts={SECONDARY_CAPTURE: [EXPLICIT_LE]}) as (port, peers):
            results = await store_paths(LOOPBACK, port, files, max_async_operations=2)
            await peers[0].ended.wait()
            return results, peers[0].ending

    results, ending = run(main())
    assert ending == "release-rp"
    assert (results[0].status, results[0].ok) == (0, True)
    why = "association ended by the peer - the peer released the association (A-RELEASE-RQ)"
    for result in results[1:]:
        assert (result.status, result.ok, result.retryable, result.association_failed) == (
            None, False, True, True), result
        assert result.error in (why, f"not sent: {why}"), result.error
    assert results[1].sent  # its C-STORE was out when the release came


def test_release_collision_is_answered_as_ps3_8_table_9_10_says(tmp_path: Path) -> None:
    """Our A-RELEASE-RQ crosses the SCP's own (PS3.8 7.2.2): we, the requestor,
    answer A-RELEASE-RP first (AR-8, AR-9), then take the SCP's (AR-3); every
    object stays stored, nothing aborted."""
    files = images(tmp_path, 2)
    seen: list[str] = []
    policy = AcceptorPolicy(contexts={SECONDARY_CAPTURE: [EXPLICIT_LE]})
    done = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = RawPeer(reader, writer, answer_release=False, close_on_release=True)
        try:
            rq = decode_pdu(await peer.read_pdu())
            assert isinstance(rq, AssociateRQ)
            await peer.send(negotiate(rq, policy).encode())
            while (request := await peer.next_request()) is not None:
                await peer.send(store_response(request, 0))
            seen.append(peer.ending)
            await peer.send(ReleaseRQ().encode())  # ours, as if sent at the same time
            seen.append(type(decode_pdu(await peer.read_pdu())).__name__)
            await peer.send(ReleaseRP().encode())  # AR-10, then AR-4 (PS3.8 Table 9-10)
            seen.append(repr(await reader.read()))  # the requestor closes (AR-3)
        finally:
            writer.close()
            done.set()

    async def main() -> list[StoreResult]:
        server = await asyncio.start_server(handle, LOOPBACK, 0)
        try:
            results = await store_paths(LOOPBACK, server.sockets[0].getsockname()[1], files)
            await done.wait()  # the SCP's side ended too
            return results
        finally:
            server.close()
            await server.wait_closed()

    results = run(main())
    assert [(r.status, r.ok, r.error) for r in results] == [(0, True, None)] * 2
    assert seen == ["release", "ReleaseRP", "b''"]
