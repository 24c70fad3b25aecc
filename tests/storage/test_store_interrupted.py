"""An object whose C-STORE was cut part-way is "not sent", not "unconfirmed".

A peer keeps a data set only once the PDV with the last-fragment bit came
(PS3.8 9.3.5, E.2); a message left partial dies with the association (PS3.7
8.1, PS3.8 7.3). So only an object whose last fragment was handed to the
transport may be held by the peer without an answer (``StoreResult.sent``);
one cut before says so, and is safe to send again. The peer here is a raw one
that reads PDU by PDU and, in the large object's data set, aborts or stops
reading before its end."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import struct
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Literal

import pytest
from pydicom.uid import ExplicitVRLittleEndian

from dicomnet.dimse.messages import CStoreRQ, decode_message
from dicomnet.errors import AssociationAborted
from dicomnet.services.storage import StoreResult, store_paths
from dicomnet.services.store_scu import PART_WAY
from dicomnet.ul.negotiation import AcceptorPolicy, negotiate
from dicomnet.ul.pdu import AAbort, AssociateRQ, PDataTF, ReleaseRP, ReleaseRQ, decode_pdu
from tests.aio.helpers import run
from tests.aio.rawscp import RawPeer, Request, raw_scp, store_response
from tests.cli.helpers import run_cli, signalled
from tests.storage.dicomfiles import SECONDARY_CAPTURE, make_image, write_part10

LOOPBACK = "127.0.0.1"
EXPLICIT_LE = str(ExplicitVRLittleEndian)
CONTEXTS = {SECONDARY_CAPTURE: [EXPLICIT_LE]}
#: What the peer does once the large object's data set has begun.
Cut = Literal["abort", "stall"]
NOT_SENT_PART_WAY = f"not sent ({PART_WAY})"
DUPLICATE = 0x0111


def _small(folder: Path, name: str, number: int) -> Path:
    return write_part10(folder / name, make_image(number, rows=8, columns=8), EXPLICIT_LE)


def _large(folder: Path, name: str = "big.dcm") -> Path:
    """32 MB of data set: more than the loopback socket buffers and our write
    buffer together, so that a peer that stops reading stops the send inside it."""
    return write_part10(folder / name, make_image(99, rows=4096, columns=8192), EXPLICIT_LE)


class _Peer:
    """A Storage SCP reading PDU by PDU: it answers each request whole with
    ``status``; in the data set of the ``cut_at``-th request (1-based), once its
    first data PDV came, it sends an A-ABORT and closes (``abort``), or reads no
    more (``stall``: ``cut`` is set then)."""

    def __init__(self, cut: Cut | None, cut_at: int = 1, status: int = 0) -> None:
        self.how, self.cut_at, self.status = cut, cut_at, status
        self.cut = asyncio.Event()
        self.done = asyncio.Event()  # set at the end: a stalled peer then returns
        self.tasks: list[asyncio.Task[None]] = []
        self.connections = 0
        self.requests: list[Request] = []
        self.ending = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self.tasks.append(task)
        first_connection = self.connections == 1
        try:
            await self._serve(reader, writer, cutting=first_connection)
        except (asyncio.IncompleteReadError, ConnectionError):
            self.ending = self.ending or "closed"
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
                     cutting: bool) -> None:
        async def read_pdu() -> PDataTF | AAbort | ReleaseRQ | AssociateRQ:
            head = await reader.readexactly(6)
            (length,) = struct.unpack(">I", head[2:])
            pdu = decode_pdu(head + await reader.readexactly(length))
            assert isinstance(pdu, PDataTF | AAbort | ReleaseRQ | AssociateRQ), pdu
            return pdu

        rq = await read_pdu()
        assert isinstance(rq, AssociateRQ)
        policy = AcceptorPolicy(contexts=CONTEXTS, max_async_operations=1)
        writer.write(negotiate(rq, policy).encode())
        command, dataset, count = bytearray(), bytearray(), 0
        while True:
            pdu = await read_pdu()
            if isinstance(pdu, ReleaseRQ):
                writer.write(ReleaseRP().encode())
                await writer.drain()
                self.ending = "release"
                return
            if isinstance(pdu, AAbort):
                self.ending = "abort"
                return
            assert isinstance(pdu, PDataTF)
            for pdv in pdu.pdvs:
                if pdv.is_command:
                    command += pdv.data
                    if pdv.is_last:
                        count += 1
                    continue
                dataset += pdv.data
                if cutting and count == self.cut_at and not pdv.is_last:
                    if self.how == "abort":
                        writer.write(AAbort(source=2, reason=0).encode())
                        await writer.drain()
                        self.ending = "aborted"
                        return
                    self.cut.set()
                    await self.done.wait()  # reads no more
                    self.ending = "stalled"
                    return
                if pdv.is_last:
                    message = decode_message(bytes(command))
                    assert isinstance(message, CStoreRQ)
                    request = Request(pdv.context_id, message, bytes(dataset))
                    self.requests.append(request)
                    writer.write(store_response(request, self.status))
                    command, dataset = bytearray(), bytearray()


@contextlib.asynccontextmanager
async def _serving(peer: _Peer) -> AsyncIterator[int]:
    server = await asyncio.start_server(peer.handle, LOOPBACK, 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        peer.done.set()
        server.close()
        await server.wait_closed()
        await asyncio.gather(*peer.tasks)


def _row(result: StoreResult) -> tuple[object, ...]:
    return (result.path.name, result.ok, result.status, result.sent, result.attempts)


def test_an_object_the_peer_aborts_part_way_is_not_sent(tmp_path: Path) -> None:
    """a.dcm stored, big.dcm aborted by the peer inside its data set, c.dcm never
    reached: big.dcm was said "sent" (the peer may hold it) though no peer keeps
    half a data set; it is "not sent", part-way, and retryable."""
    files = [_small(tmp_path, "a.dcm", 1), _large(tmp_path), _small(tmp_path, "c.dcm", 3)]
    peer = _Peer("abort", cut_at=2)

    async def main() -> list[StoreResult]:
        async with _serving(peer) as port:
            return await store_paths(LOOPBACK, port, files)

    a, big, c = run(main(), timeout=60)
    assert peer.ending == "aborted"
    assert [_row(r) for r in (a, big, c)] == [
        ("a.dcm", True, 0, True, 1), ("big.dcm", False, None, False, 1),
        ("c.dcm", False, None, False, 1)]
    assert big.error is not None and big.error.startswith(f"{NOT_SENT_PART_WAY}: ")
    assert "aborted" in big.error
    assert (big.retryable, big.association_failed) == (True, True)
    assert c.error is not None and c.error.startswith("not sent: ")
    assert PART_WAY not in c.error


def test_an_object_aborted_after_its_last_fragment_is_unconfirmed(tmp_path: Path) -> None:
    """The peer read the whole data set, then aborted without an answer: the peer
    may hold it, so ``sent`` and no "not sent" in its error."""
    big = _large(tmp_path)

    async def answer(peer: RawPeer, request: Request) -> None:
        peer.writer.write(AAbort(source=2, reason=0).encode())
        await peer.writer.drain()
        peer.writer.close()

    async def main() -> list[StoreResult]:
        results: list[StoreResult] = []
        async with raw_scp(answer, contexts=CONTEXTS) as (port, peers):
            with pytest.raises(AssociationAborted):
                await store_paths(LOOPBACK, port, [big], results=results)
            assert len(peers[0].requests) == 1
        return results

    (result,) = run(main(), timeout=60)
    assert _row(result) == ("big.dcm", False, None, True, 1)
    assert result.error is not None and "not sent" not in result.error
    assert "aborted" in result.error


def test_a_cancel_inside_the_data_set_leaves_it_not_sent(tmp_path: Path) -> None:
    """The peer stops reading inside big.dcm's data set and the caller cancels:
    big.dcm was "cancelled before an answer", sent; it is "not sent", part-way."""
    files = [_small(tmp_path, "a.dcm", 1), _large(tmp_path), _small(tmp_path, "c.dcm", 3)]
    peer = _Peer("stall", cut_at=2)
    results: list[StoreResult] = []

    async def main() -> None:
        async with _serving(peer) as port:
            task = asyncio.create_task(store_paths(LOOPBACK, port, files, results=results))
            await asyncio.wait_for(peer.cut.wait(), 30)
            await asyncio.sleep(0.2)  # the client blocked in its write
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    run(main(), timeout=60)
    _, big, c = results
    assert [_row(r) for r in results] == [
        ("a.dcm", True, 0, True, 1), ("big.dcm", False, None, False, 1),
        ("c.dcm", False, None, False, 1)]
    assert big.error == f"{NOT_SENT_PART_WAY}: cancelled"
    assert c.error == "not sent: cancelled"


def test_a_cancel_after_the_last_fragment_leaves_it_unconfirmed(tmp_path: Path) -> None:
    """The peer read big.dcm whole and does not answer: cancelled then, it may
    hold it (sent, "cancelled before an answer")."""
    big = _large(tmp_path)
    held = asyncio.Event()
    results: list[StoreResult] = []

    async def answer(peer: RawPeer, request: Request) -> None:
        held.set()

    async def main() -> None:
        async with raw_scp(answer, contexts=CONTEXTS) as (port, _):
            task = asyncio.create_task(store_paths(LOOPBACK, port, [big], results=results))
            await asyncio.wait_for(held.wait(), 30)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    run(main(), timeout=60)
    (result,) = results
    assert _row(result) == ("big.dcm", False, None, True, 1)
    assert result.error == "cancelled before an answer"


def test_a_duplicate_after_a_part_way_attempt_is_not_called_stored_before(
        tmp_path: Path) -> None:
    """Retried after an abort inside its data set, an object the peer answers
    Duplicate (0111H) was said "most likely stored by the earlier attempt": that
    attempt never got its data set whole to the peer."""
    big = _large(tmp_path)
    peer = _Peer("abort", status=DUPLICATE)

    async def main() -> list[StoreResult]:
        async with _serving(peer) as port:
            return await store_paths(LOOPBACK, port, [big], retries=1, retry_delay=0)

    (result,) = run(main(), timeout=90)
    assert peer.connections == 2
    assert _row(result) == ("big.dcm", False, DUPLICATE, True, 2)
    assert result.error is not None and "earlier attempt" not in result.error


def test_the_cli_json_says_not_sent_for_a_part_way_abort(tmp_path: Path) -> None:
    """``dicomnet store --json``: the object the peer aborted inside its data set
    has "sent": false and status_text "not sent"; exit 3 (nothing stored)."""
    big = _large(tmp_path)
    peer = _Peer("abort")

    async def main() -> tuple[int, str]:
        async with _serving(peer) as port:
            result = await asyncio.to_thread(run_cli, "store", LOOPBACK, port, big, "--json")
        return result.exit_code, result.stdout

    code, out = run(main(), timeout=90)
    assert code == 3
    doc = json.loads(out)
    (r,) = doc["results"]
    assert (r["sent"], r["status"], r["status_text"], r["association_failed"]) == (
        False, None, "not sent", True)
    assert r["error"].startswith(f"{NOT_SENT_PART_WAY}: ")


def test_the_cli_json_after_a_ctrl_c_inside_a_data_set(tmp_path: Path) -> None:
    """Ctrl-C while big.dcm's data set goes out: --json said it "unconfirmed"
    ("interrupted before an answer", the peer may hold it); it is not sent,
    part-way. a.dcm stayed stored; c.dcm is not sent."""
    files = [_small(tmp_path, "a.dcm", 1), _large(tmp_path), _small(tmp_path, "c.dcm", 3)]
    peer = _Peer("stall", cut_at=2)

    async def main() -> tuple[int | None, bytes, bytes]:
        async with _serving(peer) as port:
            return await signalled(peer.cut, signal.SIGINT, "store", LOOPBACK, port,
                                   *files, "--json")

    code, out, err = run(main(), timeout=90)
    assert code == 130, err.decode()
    doc = json.loads(out)
    assert doc["interrupted"] is True
    rows = [(Path(r["path"]).name, r["ok"], r["sent"], r["status_text"], r["error"])
            for r in doc["results"]]
    assert rows == [
        ("a.dcm", True, True, "0x0000 Success", None),
        ("big.dcm", False, False, "not sent",
         "not sent (interrupted part-way: the peer cannot hold a partial object)"),
        ("c.dcm", False, False, "not sent", "interrupted before it was sent")]
