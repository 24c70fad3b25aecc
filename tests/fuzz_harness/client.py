"""Fuzz target of the storage SCU end to end: ``store_paths``
(services.store_scu) against a hostile SCP on loopback, over plain TCP or TLS,
one association per input, every answer of the SCP chosen by the input.

The fuzzed bytes choose which of the harness's files are sent (Explicit and
Implicit VR Little Endian, deflated, RLE Lossless, a file that is no DICOM),
then everything the SCP does: how it answers the A-ASSOCIATE-RQ (accepted
with the files' syntaxes, with one other only, with none; rejected; aborted;
closed), the window and the largest PDU it grants, then for each C-STORE-RQ
when it answers (after the data set, after the command only, never) and with
what: a status of any category (a Pending one too, which no C-STORE
has: PS3.4 B.2.3), another message ID, an Error Comment, the response
cut across two PDUs, given twice, followed by junk; when it stops (aborting,
closing, or releasing itself), how it answers the release; and up to three
bytes changed anywhere in what it writes.

What must hold, for every input:

* ``store_paths`` ends within its timeouts, with one result per file or a
  ``DicomNetError`` (nothing else reaches the caller), logs nothing at
  ERROR, its loop reports no exception, and it leaves no task running and
  no more files open than before;
* an object is reported stored (``ok``) only when the SCP's bytes, as a
  sans-I/O reading of them decodes them (``PDUFramer``, ``DimseConnection``),
  hold a C-STORE-RSP to that object's message ID with a Success or Warning
  status, and a status reported is one the SCP gave that message ID;
* with nothing changed, every object accepted and answered Success and the
  release answered, every DICOM file is stored, and each one accepted in its
  own syntax reached the SCP byte for byte as its data set on disk.

The SCP, its PKI and files (in a temporary folder, removed at exit) and the
event loop are made at the first input and kept (:func:`close` ends them).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import ssl
import struct
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    RLELossless,
)

from dicomnet.config import Timeouts
from dicomnet.dimse.connection import DimseConnection, MessageReceived
from dicomnet.dimse.messages import CStoreRQ, CStoreRSP, decode_message, encode_message
from dicomnet.errors import DicomNetError, RemoteProtocolError
from dicomnet.services.storage import StoreResult, store_paths
from dicomnet.storage.part10 import read_part10
from dicomnet.ul.framing import PDUFramer
from dicomnet.ul.negotiation import AcceptorPolicy, negotiate
from dicomnet.ul.pdu import (
    AAbort,
    AssociateRJ,
    AssociateRQ,
    PDataTF,
    ReleaseRP,
    ReleaseRQ,
    decode_pdu,
    encode_pdata,
)

from .reader import Reader
from .shared import LoopWatch, Shared, open_files

__all__ = ["ClientHarness", "Plan", "close", "seeds_store", "store"]

SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
#: What the SCP accepts for Secondary Capture, by the input's choice (the last
#: accepts nothing: every context refused, PS3.8 9.3.3.2 result 3).
POLICIES: tuple[list[str], ...] = (
    [ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian,
     RLELossless],
    [ImplicitVRLittleEndian],
    [ExplicitVRLittleEndian],
    [],
)
#: Largest PDU the SCP grants (0: no limit, PS3.8 D.1).
MAX_PDUS = (0, 4_096, 16_384, 1 << 20)
#: Statuses the SCP may answer (PS3.4 B.2.3, PS3.7 C): Success, Warnings,
#: Failures, Pending and Cancel (no C-STORE may have those) and unknown codes.
STATUSES = (0x0000, 0x0000, 0x0000, 0xB000, 0xB007, 0x0107, 0x0116, 0xA700, 0xA900,
            0xC000, 0x0110, 0x0122, 0x0211, 0xFF00, 0xFE00, 0x1234, 0xFFFF)
#: Statuses that say an object was stored (PS3.4 B.2.3, PS3.7 C.1, C.3).
STORED = frozenset(s for s in STATUSES if s == 0 or s & 0xF000 == 0xB000
                   or s in (0x0001, 0x0107, 0x0116))
TIMEOUTS = Timeouts(connect=2, acse=0.3, artim=0.3, dimse=0.3, pdu=0.3)
#: How long one input may take, far beyond its timeouts.
ENDED_WITHIN = 20.0
_ABORT = AAbort(source=2, reason=0).encode()


@dataclass
class Answer:
    """How the SCP answers one C-STORE-RQ."""

    status: int
    when: int  # 0 after its data set, 1 after its command only, 2 never
    id_offset: int  # added to the message ID responded to
    comment: bool
    split: bool  # the response's command set in two PDVs, in two PDUs
    twice: bool
    junk: int  # bytes of junk written after it


@dataclass
class Plan:
    """What one input asks for (module docstring)."""

    files: list[int]
    tls: bool
    opening: int  # 0-3 accepted, 4 rejected permanently, 5 transiently, 6 aborted, 7 closed
    policy: int
    window: int
    max_pdu: int
    answers: list[Answer]
    stop_after: int | None  # requests answered before it stops, or None
    stop: int  # 0 abort, 1 close, 2 A-RELEASE-RQ of its own
    release: int  # 0 answered, 1 silent, 2 aborted, 3 closed
    changes: list[tuple[int, int]] = field(default_factory=list)

    @classmethod
    def read(cls, data: bytes, file_count: int) -> Plan:
        reader = Reader(data)
        head = reader.byte()
        # Each file once: one named twice is sent once (collect_files), one result.
        files = list(dict.fromkeys(reader.byte() % file_count for _ in range(1 + head % 4)))
        opening = reader.byte() % 12
        opening = 0 if opening >= 8 else opening  # mostly accepted
        window = 1 + reader.byte() % 4
        max_pdu = MAX_PDUS[reader.byte() % len(MAX_PDUS)]
        answers = []
        for _ in files:
            kind, status = reader.byte(), reader.byte()
            answers.append(Answer(
                status=0 if kind < 96 else STATUSES[status % len(STATUSES)],
                when=0 if kind < 200 else (1 if kind < 235 else 2),
                id_offset=1 if kind % 31 == 30 else 0,
                comment=bool(status & 0x80), split=bool(kind & 0x40) and kind >= 96,
                twice=kind % 29 == 28, junk=(kind % 23 == 22) * (1 + status % 40)))
        stop_byte = reader.byte()
        stop_after = None if stop_byte < 160 else stop_byte % (len(files) + 1)
        release = reader.byte()
        changes = []
        if reader.byte() >= 200:  # most inputs change nothing: the clean paths too
            for _ in range(1 + reader.byte() % 3):
                position = reader.byte() | reader.byte() << 8 | reader.byte() << 16
                changes.append((position, reader.byte() | 1))
        return cls(files, bool(head & 0x80), opening, head >> 4 & 3, window, max_pdu,
                   answers, stop_after, stop_byte % 3, 0 if release < 160 else release % 4,
                   changes)

    @property
    def clean(self) -> bool:
        """Nothing changed, every object accepted as it is and answered Success at
        its end, the release answered."""
        return (not self.changes and self.opening < 4 and self.policy == 0
                and self.stop_after is None and self.release == 0
                and all(a.status == 0 and a.when == 0 and not a.id_offset and not a.twice
                        and not a.junk for a in self.answers))


@dataclass
class Seen:
    """What the SCP read and wrote on one connection."""

    written: bytearray = field(default_factory=bytearray)
    #: Each C-STORE-RQ read: its message ID, SOP Instance UID and data set (None
    #: until, or unless, it came whole), in order.
    requests: list[tuple[int, str, bytes | None]] = field(default_factory=list)


class _Scp:
    """The SCP's side of one connection, driven by the plan."""

    def __init__(self, plan: Plan, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, seen: Seen) -> None:
        self.plan, self.reader, self.writer, self.seen = plan, reader, writer, seen
        self.answered = 0
        self.stopped = False

    def send(self, data: bytes) -> None:
        """Write ``data``, with the plan's bytes changed at their positions in
        everything this SCP writes."""
        start = len(self.seen.written)
        out = bytearray(data)
        for position, xor in self.plan.changes:
            if start <= position < start + len(out):
                out[position - start] ^= xor
        self.seen.written += out
        self.writer.write(bytes(out))

    async def read_pdu(self) -> bytes:
        head = await self.reader.readexactly(6)
        return head + await self.reader.readexactly(struct.unpack(">I", head[2:])[0])

    async def run(self) -> None:
        plan = self.plan
        rq = decode_pdu(await self.read_pdu())
        assert isinstance(rq, AssociateRQ), rq
        if plan.opening in (4, 5):
            self.send(AssociateRJ(result=plan.opening - 3, source=1, reason=1).encode())
            return
        if plan.opening == 6:
            self.send(_ABORT)
            return
        if plan.opening == 7:
            return
        policy = AcceptorPolicy(contexts={SECONDARY_CAPTURE: POLICIES[plan.policy]},
                                max_pdu_length=plan.max_pdu,
                                max_async_operations=plan.window)
        self.send(negotiate(rq, policy).encode())
        await self.writer.drain()
        command = bytearray()
        dataset: bytearray | None = None
        request: CStoreRQ | None = None
        while True:
            pdu = decode_pdu(await self.read_pdu())
            if isinstance(pdu, ReleaseRQ):
                if plan.release == 0:
                    self.send(ReleaseRP().encode())
                elif plan.release == 1:
                    with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
                        await self.reader.read()  # until the client gives up
                elif plan.release == 2:
                    self.send(_ABORT)
                return
            if not isinstance(pdu, PDataTF):
                return  # an abort, or a release answer to our own request
            for pdv in pdu.pdvs:
                if pdv.is_command:
                    command += pdv.data
                    if not pdv.is_last:
                        continue
                    message = decode_message(bytes(command))
                    command.clear()
                    assert isinstance(message, CStoreRQ), message
                    request, dataset = message, bytearray()
                    self.seen.requests.append(
                        (message.message_id, message.affected_sop_instance_uid, None))
                    if not await self._answer(pdv.context_id, request, early=True):
                        return
                    continue
                assert dataset is not None and request is not None
                dataset += pdv.data
                if pdv.is_last:
                    self.seen.requests[-1] = (*self.seen.requests[-1][:2], bytes(dataset))
                    if not await self._answer(pdv.context_id, request, early=False):
                        return
                    dataset = None

    async def _answer(self, context_id: int, request: CStoreRQ, *, early: bool) -> bool:
        """Answer ``request`` if the plan answers it now; False once the SCP stops."""
        plan = self.plan
        number = len(self.seen.requests) - 1
        answer = plan.answers[min(number, len(plan.answers) - 1)]
        if (answer.when == 1) != early or self.stopped:
            return True
        if plan.stop_after is not None and self.answered >= plan.stop_after:
            self.stopped = True
            if plan.stop == 0:
                self.send(_ABORT)
            elif plan.stop == 2:
                self.send(ReleaseRQ().encode())
                await self.writer.drain()
                return True  # the client's answer (or abort) ends the loop
            return False
        self.answered += 1
        if answer.when == 2:
            return True
        response = encode_message(CStoreRSP(
            message_id_being_responded_to=(request.message_id + answer.id_offset) & 0xFFFF,
            status=answer.status, affected_sop_class_uid=request.affected_sop_class_uid,
            affected_sop_instance_uid=request.affected_sop_instance_uid,
            error_comment="fuzz: its own words" if answer.comment and answer.status else None))
        for _ in range(2 if answer.twice else 1):
            if answer.split:
                half = len(response) // 2
                self.send(encode_pdata(context_id, True, False, response[:half]))
                self.send(encode_pdata(context_id, True, True, response[half:]))
            else:
                self.send(encode_pdata(context_id, True, True, response))
        if answer.junk:
            self.send(bytes(range(7, 7 + answer.junk)))
        await self.writer.drain()
        return True


def responses(written: bytes) -> dict[int, set[int]]:
    """The statuses of the C-STORE-RSPs a sans-I/O reading of the SCP's bytes
    decodes, by the message ID they answer, up to the first protocol error or
    the stream's end (PS3.8 9.3, PS3.7 6.3.1). P-DATA is streamed, as the
    client reads it: a whole PDV counts even when its PDU's length (changed)
    runs past the end."""
    framer = PDUFramer()
    dimse = DimseConnection()
    out: dict[int, set[int]] = {}
    with contextlib.suppress(RemoteProtocolError):
        for pdu in framer.receive(written, stream_pdata=True):
            if not isinstance(pdu, PDataTF):
                continue
            for pdv in pdu.pdvs:
                for event in dimse.receive_pdv(pdv, getattr(pdv, "continues", False)):
                    if isinstance(event, MessageReceived) and isinstance(event.message,
                                                                         CStoreRSP):
                        message = event.message
                        out.setdefault(message.message_id_being_responded_to, set()).add(
                            message.status)
    return out


class ClientHarness:
    """The SCP, files and loop the inputs share (module docstring)."""

    def __init__(self) -> None:
        from tests.aio.helpers import Pki
        from tests.storage.dicomfiles import make_image, write_part10

        self.folder = Path(tempfile.mkdtemp(prefix="dicomnet-fuzz-client-"))
        self.watch = LoopWatch()
        self.loop = self.watch.loop
        self.pki = Pki.create(self.folder / "pki")
        files = self.folder / "files"
        self.files: list[Path] = [
            write_part10(files / "small.dcm", make_image(1, rows=16, columns=16),
                         ExplicitVRLittleEndian),
            write_part10(files / "inplace.dcm", make_image(2, rows=128, columns=256),
                         ExplicitVRLittleEndian),
            write_part10(files / "implicit.dcm", make_image(3, rows=512, columns=512),
                         ImplicitVRLittleEndian),
            write_part10(files / "deflated.dcm", make_image(4, rows=64, columns=64),
                         DeflatedExplicitVRLittleEndian),
            write_part10(files / "rle.dcm", make_image(5, rows=64, columns=64), RLELossless),
        ]
        text = files / "notes.txt"
        text.write_text("not DICOM\n")
        self.files.append(text)
        self.datasets = {}
        for path in self.files[:-1]:
            info = read_part10(path)
            self.datasets[path] = (info.transfer_syntax_uid,
                                   path.read_bytes()[info.dataset_offset:])
        self.server_ssl: ssl.SSLContext = self.loop.run_until_complete(
            self.pki.server_tls().server_context())
        self.client_tls = self.pki.client_tls()
        self.fds = 1 << 30
        # Warm-up: the first runs make what a process keeps (threads, pools,
        # contexts); the count of files open after.
        for tls in (0, 0x80):
            self.run(bytes([tls | 3, 0, 1, 2, 3, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]))
        self.fds = open_files()

    def close(self) -> None:
        self.watch.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    def run(self, data: bytes) -> None:
        plan = Plan.read(data, len(self.files))
        self.loop.run_until_complete(self._session(plan))
        self.watch.check()

    async def _session(self, plan: Plan) -> None:
        seen: list[Seen] = []
        peers: set[asyncio.Task[None]] = set()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            peers.add(task)
            record = Seen()
            seen.append(record)
            try:
                await _Scp(plan, reader, writer, record).run()
                await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
                pass
            finally:
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()

        server = await asyncio.start_server(handle, "127.0.0.1", 0,
                                            ssl=self.server_ssl if plan.tls else None)
        port = server.sockets[0].getsockname()[1]
        paths = [self.files[n] for n in plan.files]
        results: list[StoreResult] = []
        raised = False
        try:
            async with asyncio.timeout(ENDED_WITHIN):
                await store_paths(
                    "127.0.0.1", port, paths, called_ae_title="FUZZ", timeouts=TIMEOUTS,
                    tls=self.client_tls if plan.tls else None,
                    max_async_operations=plan.window, results=results)
        except DicomNetError:
            raised = True  # the association failed and no object was stored
        finally:
            server.close()
            # The SCP ends at the client's end of the connection (it reads to EOF).
            if peers:
                await asyncio.wait(peers, timeout=ENDED_WITHIN)
            await server.wait_closed()
        assert all(task.done() for task in peers), "the SCP still reading: the client hangs"
        me = asyncio.current_task()
        left = [t for t in asyncio.all_tasks() if t is not me and not t.done()]
        assert not left, left
        self._judge(plan, paths, results, seen, raised=raised)
        # Let the transports' last callbacks run before their descriptors are counted.
        for _ in range(3):
            await asyncio.sleep(0)
        assert open_files() <= self.fds, "a descriptor left open"

    def _judge(self, plan: Plan, paths: list[Path], results: list[StoreResult],
               seen: list[Seen], *, raised: bool) -> None:
        # Raised or returned, every file has its result (store_paths' ``results``).
        assert len(results) == len(paths), (len(results), len(paths))
        if raised:
            assert not plan.clean, "a clean association failed"
            assert not any(r.ok for r in results), "raised, with objects stored"
        assert len(seen) <= 1, f"{len(seen)} associations for {len(paths)} files"
        written = bytes(seen[0].written) if seen else b""
        requests = seen[0].requests if seen else []
        answered = responses(written)
        by_uid: dict[str, list[tuple[int, bytes | None]]] = {}
        for message_id, uid, dataset in requests:
            by_uid.setdefault(uid, []).append((message_id, dataset))
        for path, result in zip(paths, results, strict=True):
            # Stored, or said why not (PS3.4 B.2.3: a warning is stored).
            assert result.ok == (result.error is None), (path.name, result)
            # A data set the SCP read whole went out whole: never said "not sent"
            # (the peer may hold it: PS3.7 8.1).
            whole = any(d is not None for _, d in by_uid.get(result.sop_instance_uid or "", []))
            assert result.sent or not whole, (path.name, result)
            if result.status is not None or result.ok:
                ids = [m for m, _ in by_uid.get(result.sop_instance_uid or "", [])]
                given = set().union(*(answered.get(m, set()) for m in ids))
                assert result.status in given, (path.name, result, given)
                assert not result.ok or result.status in STORED, (path.name, result)
            if not plan.clean:
                continue
            if path == self.files[-1]:
                assert not result.ok and result.sop_instance_uid is None, result
                continue
            assert result.ok and result.status == 0, (path.name, result)
            syntax, body = self.datasets[path]
            if result.converted_to is None:
                assert result.transfer_syntax_uid == syntax
                received = [d for _, d in by_uid[result.sop_instance_uid or ""]]
                assert received and all(d == body for d in received), path.name


_shared = Shared(ClientHarness)


def close() -> None:
    """End the shared loop and remove the files, if made."""
    _shared.close()


def store(data: bytes) -> None:
    """The target (module docstring)."""
    _shared.get().run(data)


def _seed(head: int, files: list[int], *, opening: int = 0, window: int = 0,
          pdu: int = 3, answers: list[tuple[int, int]] | None = None, stop: int = 0,
          release: int = 0, changes: list[tuple[int, int]] | None = None) -> bytes:
    """An input that :meth:`Plan.read` reads as these choices (its bytes in order)."""
    assert len(files) == 1 + head % 4
    out = [head, *files, opening, window, pdu]
    for kind, status in answers or [(0, 0)] * len(files):
        out += [kind, status]
    out += [stop, release]
    if changes:
        out += [200, len(changes) - 1]
        for position, xor in changes:
            out += [position & 0xFF, position >> 8 & 0xFF, position >> 16, xor]
    else:
        out.append(0)
    return bytes(out)


def seeds_store() -> list[bytes]:
    """Clean inputs over both transports, each file, window and PDU size; then
    each way of opening, each policy, the answers' every kind, each way of
    stopping and of answering the release, and changed bytes."""
    out = []
    for index in range(8):
        tls = 0x80 if index % 2 else 0
        out.append(_seed(tls | 3, [index % 6, (index + 1) % 6, (index + 2) % 6, 5],
                         window=index % 4, pdu=index % 4))
    for opening in range(8):
        out.append(_seed(1, [0, 2], opening=opening))
    for policy in range(4):
        out.append(_seed(3 | policy << 4, [0, 2, 3, 4], window=1))
    # Statuses, early and missing answers, a wrong ID, twice, junk, split.
    out.append(_seed(3, [0, 1, 2, 3], window=2,
                     answers=[(120, 9), (210, 3), (240, 0), (61 + 96, 1)]))
    out.append(_seed(0x83, [0, 1, 2, 3], window=3,
                     answers=[(126 + 92, 13), (215, 0x83), (57 + 99, 0), (200, 7)]))
    # Stops after one answer: abort, close, its own release.
    for stop in (0, 1, 2):
        out.append(_seed(2, [0, 1, 2], window=1, stop=162 + stop - 162 % 3 + 3 * (stop == 0)))
    # The release: silent, aborted, closed.
    for release in (1, 2, 3):
        out.append(_seed(2, [0, 1, 2], release=160 + (release - 160 % 4) % 4))
    # Changed bytes: in the AC, then in a response.
    out.append(_seed(1, [0, 2], changes=[(12, 0x10)]))
    out.append(_seed(1, [0, 2], changes=[(300, 0x40), (310, 2)]))
    return out
