"""Fuzz target of a running server's receive path, end to end: a ``StorageSCP``
behind ``aio.server.serve`` on loopback, fed one association per input by a
hand-driven SCU (tests/storage/rawscu.py) over plain TCP or TLS.

The fuzzed bytes choose the C-STOREs (how many, each data set's size, from a
few bytes to past the spill threshold), how each data set is cut into PDVs and
the PDVs packed into P-DATA-TF PDUs (PS3.8 9.3.5), how the stream is written
(whole, a PDU at a time, or in pieces with the loop turning between them), up
to three bytes changed anywhere after the association's negotiation, and its
end: A-RELEASE-RQ, A-ABORT, or the connection closed, whole or cut short.
That drives the paths no sans-I/O target reaches: the transports' reads
(``aio.transport.Receiver``, ``aio.tls_socket``), data sets received in place
(``aio.in_place``, ``StoreSink.reserve``), the short ways around the Upper
Layer's and DIMSE's events, the store thread and the index.

What must hold, for every input:

* the server ends each association by itself once the peer has gone (no
  hang), logs nothing at ERROR (but what it logs there by design:
  ``_ERRORS_BY_DESIGN``), and its loop reports no exception;
* once it has ended, and its index rows are written, the server holds no more
  files open than before, and the store holds no file but whole objects under
  their final names and the index's own (a temporary file left, or a
  descriptor, fails);
* each stored object's data set is one a sans-I/O reading of the same bytes
  (``PDUFramer``, ``DimseConnection``) completes: the server never stores bytes
  that were not a whole data set of one message;
* unchanged and released, every object is answered Success and stored byte
  for byte, whatever the PDVs, PDUs and writes.

The server (its store in a temporary folder, removed at exit) and the event
loop are made at the first input and kept (:func:`close` ends them).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import shutil
import struct
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from dicomnet.aio.server import Server, serve
from dicomnet.dimse.connection import DatasetFragment, DimseConnection, MessageReceived
from dicomnet.errors import RemoteProtocolError
from dicomnet.services.storage import StorageSCP
from dicomnet.services.store_sink import SPILL_THRESHOLD
from dicomnet.storage.part10 import read_part10
from dicomnet.ul.framing import PDUFramer
from dicomnet.ul.negotiation import ContextRequest
from dicomnet.ul.pdu import PDataTF
from tests.storage.rawscu import RawAssociation, store_command

from .reader import Reader
from .shared import LoopWatch, Shared, open_files

__all__ = ["Harness", "Plan", "close", "receive", "reference", "seeds_receive"]

SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
DEFLATED = "1.2.840.10008.1.2.1.99"
#: The transfer syntax of an input's context, by two bits of its first byte.
SYNTAXES = (EXPLICIT_LE, IMPLICIT_LE, DEFLATED, EXPLICIT_LE)
#: Data set sizes (pixel data's bytes): around the in-place threshold (64 KiB
#: of PDV data) and past the spill threshold (data sets then go to a file).
SIZES = (0, 9, 3_000, 65_000, 65_600, 70_000, 300_000, 600_000, SPILL_THRESHOLD + 3_000)
#: PDV data sizes (a PDV's data; the largest the server takes is its limit).
FRAGMENTS = (None, 1, 200, 4_000, 16_372, 65_530, 65_536, 70_000, 262_144)
#: Pieces of a write, in bytes per unit of the input's byte.
UNITS = (1, 7, 509, 4_096)
#: Bounds: writes per input, and how long the server may take to end.
MOST_WRITES = 3_000
ENDED_WITHIN = 20.0
_RELEASE_RQ = bytes.fromhex("05000000000400000000")
_ABORT = bytes.fromhex("07000000000400000000")


def _element(tag: int, vr: bytes, value: bytes, implicit: bool = False) -> bytes:
    """An element in Explicit (PS3.5 7.1.2) or Implicit VR Little Endian (7.1.3),
    padded to even length."""
    if len(value) % 2:
        value += b"\x00" if vr in {b"UI", b"OB"} else b" "
    head = struct.pack("<HH", tag >> 16, tag & 0xFFFF)
    if implicit:
        return head + struct.pack("<I", len(value)) + value
    if vr in (b"OB", b"OW", b"UN"):
        return head + vr + b"\x00\x00" + struct.pack("<I", len(value)) + value
    return head + vr + struct.pack("<H", len(value)) + value


_PATTERN = bytes(range(256)) * 4


def data_set(serial: int, number: int, pixels: int,
             syntax: str = EXPLICIT_LE) -> tuple[str, bytes]:
    """The SOP Instance UID and the data set of object ``number`` of input
    ``serial``, in ``syntax`` (deflated: Explicit VR Little Endian, then raw
    deflate, PS3.5 A.5)."""
    root = f"1.2.826.0.1.3680043.8.498.77.{serial}"
    sop = f"{root}.3.{number}"
    implicit = syntax == IMPLICIT_LE
    pattern = _PATTERN[number % 256:]
    pixel = (pattern * (pixels // len(pattern) + 1))[:pixels]
    body = b"".join(_element(tag, vr, value, implicit) for tag, vr, value in (
        (0x00080016, b"UI", SECONDARY_CAPTURE.encode()),
        (0x00080018, b"UI", sop.encode()),
        (0x00100020, b"LO", b"FUZZ"),
        (0x0020000D, b"UI", f"{root}.1".encode()),
        (0x0020000E, b"UI", f"{root}.2".encode()),
        (0x7FE00010, b"OB", pixel)))
    if syntax == DEFLATED:
        deflate = zlib.compressobj(1, zlib.DEFLATED, -15)
        body = deflate.compress(body) + deflate.flush()
        body += b"\x00" * (len(body) % 2)  # an even length, as any value's (PS3.5 A.5)
    return sop, body


def _pdata(pdvs: list[tuple[int, int, bytes]]) -> bytes:
    """One P-DATA-TF PDU of the PDVs (context, control header, data): PS3.8 9.3.5."""
    items = b"".join(struct.pack(">IBB", len(data) + 2, ctx, control) + data
                     for ctx, control, data in pdvs)
    return b"\x04\x00" + struct.pack(">I", len(items)) + items


@dataclass
class Plan:
    """What one input asks for (module docstring)."""

    sizes: list[int]
    fragment: int | None
    per_pdu: int
    split_command: bool
    write_mode: int
    unit: int
    changes: list[tuple[int, int]]
    end: int
    cut: int
    tls: bool
    syntax: str = EXPLICIT_LE

    @classmethod
    def read(cls, data: bytes) -> tuple[Plan, Reader]:
        reader = Reader(data)
        head = reader.byte()
        count = 1 + head % 3
        sizes = [SIZES[reader.byte() % len(SIZES)] for _ in range(count)]
        fragment = FRAGMENTS[reader.byte() % len(FRAGMENTS)]
        per_pdu = 1 + reader.byte() % 3
        mode = reader.byte()
        unit = UNITS[reader.byte() % len(UNITS)]
        changes = []
        if reader.byte() >= 160:  # most inputs change nothing: the clean paths too
            for _ in range(1 + reader.byte() % 3):
                position = reader.byte() | reader.byte() << 8 | reader.byte() << 16
                changes.append((position, reader.byte() | 1))
        end = reader.byte() % 4
        cut = reader.byte() | reader.byte() << 8 | reader.byte() << 16
        return cls(sizes, fragment, per_pdu, bool(head & 0x10), mode % 3, unit, changes,
                   end, cut, bool(head & 0x80), SYNTAXES[head >> 5 & 3]), reader


def build(plan: Plan, serial: int, context_id: int, limit: int
          ) -> tuple[bytes, dict[str, bytes]]:
    """The bytes after the negotiation (the end's PDU included, no cut) and each
    object's data set by SOP Instance UID."""
    sent: dict[str, bytes] = {}
    pdus: list[bytes] = []
    largest = limit - 6 if limit else 1 << 20
    for number, pixels in enumerate(plan.sizes):
        sop, body = data_set(serial, number, pixels, plan.syntax)
        sent[sop] = body
        command = store_command(SECONDARY_CAPTURE.encode(), sop.encode(), message_id=number + 1)
        if plan.split_command:
            half = len(command) // 2
            pdus.append(_pdata([(context_id, 1, command[:half])]))
            pdus.append(_pdata([(context_id, 3, command[half:])]))
        else:
            pdus.append(_pdata([(context_id, 3, command)]))
        size = min(plan.fragment or largest, largest)
        if size < 1_000 and len(body) > 80_000:
            size = 4_000  # bounded work per input; small PDVs of small data sets only
        pieces = [body[i:i + size] for i in range(0, len(body), size)]
        pdvs = [(context_id, 2 if i == len(pieces) - 1 else 0, piece)
                for i, piece in enumerate(pieces)]
        group: list[tuple[int, int, bytes]] = []
        used = 0
        for pdv in pdvs:
            if group and (len(group) == plan.per_pdu or used + len(pdv[2]) + 6 > largest + 6):
                pdus.append(_pdata(group))
                group, used = [], 0
            group.append(pdv)
            used += len(pdv[2]) + 6
        pdus.append(_pdata(group))
    pdus.append(_RELEASE_RQ if plan.end == 0 else _ABORT if plan.end == 1 else b"")
    return b"".join(pdus), sent


def reference(stream: bytes) -> tuple[list[bytes], bool]:
    """The data sets of the messages a sans-I/O reading of ``stream`` completes,
    up to its first protocol error (PS3.8 9.3.5, PS3.7 6.3.1); and whether it
    met one."""
    framer = PDUFramer(max_associate_length=1 << 16)
    dimse = DimseConnection()
    done: list[bytes] = []
    current = bytearray()
    try:
        for pdu in framer.receive(stream):
            if not isinstance(pdu, PDataTF):
                break
            for pdv in pdu.pdvs:
                for event in dimse.receive_pdv(pdv):
                    if isinstance(event, DatasetFragment):
                        current += event.data
                        if event.is_last:
                            done.append(bytes(current))
                            current.clear()
                    else:
                        assert isinstance(event, MessageReceived)
    except RemoteProtocolError:
        return done, True
    return done, False


def _writes(plan: Plan, stream: bytes) -> list[bytes]:
    """``stream`` as the plan writes it: whole, a PDU at a time, or in pieces."""
    if plan.write_mode == 0 or not stream:
        return [stream] if stream else []
    if plan.write_mode == 1:
        out, pos = [], 0
        while pos + 6 <= len(stream):
            end = pos + 6 + int.from_bytes(stream[pos + 2:pos + 6], "big")
            out.append(stream[pos:end])
            pos = end
        if pos < len(stream):
            out.append(stream[pos:])
        return [*out[:MOST_WRITES - 1], b"".join(out[MOST_WRITES - 1:])]
    sizes = Reader(stream[::-1] or b"\x00")
    out, pos = [], 0
    while pos < len(stream):
        size = (sizes.byte() + 1) * plan.unit
        if len(out) == MOST_WRITES - 1:
            size = len(stream)
        out.append(stream[pos:pos + size])
        pos += size
    return out


#: ERROR lines the server writes by design for a peer's data: a deflated data set
#: refused past the bound on inflating (an element's length may be all it takes),
#: said at ERROR as the server's own limit (tests/storage/test_stray_meta.py).
_ERRORS_BY_DESIGN = ("refused, status 0xA700: its deflated data set",)


class Harness:
    """The server and loop the inputs share (module docstring)."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="dicomnet-fuzz-server-"))
        self.root = self.folder / "store"
        self.watch = LoopWatch(_ERRORS_BY_DESIGN)
        self.loop = self.watch.loop
        from tests.aio.helpers import Pki

        self.pki = Pki.create(self.folder / "pki")
        # Overwrite: an input run twice (its UIDs come from its bytes) stores again.
        self.scp = StorageSCP(self.root, durable=False, duplicates="overwrite")
        self.plain: Server = self.loop.run_until_complete(self._serve(False))
        self.secure: Server = self.loop.run_until_complete(self._serve(True))
        self.client_ssl = self.loop.run_until_complete(self.pki.client_tls().client_context())
        self.serial = 0  # the warm-up's
        # Warm-up: the first associations make what a server keeps (its store
        # and index threads, the index's files); the count of files open after.
        self.fds = 1 << 30
        for tls in (False, True):
            warm = Plan([70_000, SPILL_THRESHOLD + 3_000], None, 1, False, 0, 1, [], 0, 0, tls)
            self.serial += 1
            self.loop.run_until_complete(self._session(warm, self.serial))
        self.fds = open_files()

    async def _serve(self, secure: bool) -> Server:
        return await serve(host="127.0.0.1", port=0, ae_title="DICOMNET",
                           providers=[self.scp],
                           tls=self.pki.server_tls() if secure else None)

    def close(self) -> None:
        async def end() -> None:
            for server in (self.plain, self.secure):
                server.close()
                await server.wait_closed()

        self.loop.run_until_complete(end())
        self.scp.close()
        self.watch.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    def run(self, data: bytes) -> None:
        plan, _ = Plan.read(data)
        # UIDs from the input's bytes, not from a count: a failing input fails the
        # same way run alone (a deflated data set's bytes depend on its UIDs).
        serial = 100 + int.from_bytes(hashlib.sha256(data).digest()[:6], "big")
        self.loop.run_until_complete(self._session(plan, serial))
        self.watch.check()

    async def _session(self, plan: Plan, serial: int) -> None:
        server = self.secure if plan.tls else self.plain
        self._empty()  # what an input that failed left
        assoc = await RawAssociation.open(
            server.port, [ContextRequest(SECONDARY_CAPTURE, (plan.syntax,))],
            window=3, ssl_context=self.client_ssl if plan.tls else None)
        context_id = assoc.context_id(SECONDARY_CAPTURE)
        stream, sent = build(plan, serial, context_id, assoc.peer_max_pdu)
        changed = bytearray(stream)
        for position, xor in plan.changes:
            changed[position % len(changed)] ^= xor
        cut = plan.end == 3 and bool(stream)
        if cut:
            changed = changed[:plan.cut % len(changed)]
        # Clean: nothing changed, released, and no rule broken (a flood of small
        # PDVs is one: DimseConnection's FREE_FRAGMENTS).
        clean = not plan.changes and plan.end == 0 and not reference(stream)[1]
        received = bytearray()
        answers = asyncio.ensure_future(_read_all(assoc.reader, received))
        try:
            try:
                for piece in _writes(plan, bytes(changed)):
                    assoc.writer.write(piece)
                    await asyncio.sleep(0)
                await asyncio.wait_for(assoc.writer.drain(), ENDED_WITHIN)
                # Released cleanly, the server answers every object, then the release.
                await asyncio.wait_for(asyncio.shield(answers), ENDED_WITHIN if clean else 0.05)
            except (ConnectionError, TimeoutError) as exc:
                if clean:  # else the server may well have aborted, or wait for more
                    raise AssertionError(f"a clean association failed: {exc!r}") from exc
        finally:
            assoc.writer.close()
            with contextlib.suppress(Exception):
                await assoc.writer.wait_closed()
            answers.cancel()
            with contextlib.suppress(BaseException):
                await answers
        await self._ended(server)
        stored = self._stored()
        statuses, pdus = answered(bytes(received))
        if clean:
            assert statuses == dict.fromkeys(sent, 0), statuses
            assert pdus.endswith(b"\x06"), pdus  # A-RELEASE-RP
            assert stored == sent, sorted(stored)
        else:
            possible = set(reference(bytes(changed))[0])
            if plan.syntax == DEFLATED:
                possible |= {_stored_deflated(body) for body in possible}
            for sop, body in stored.items():
                assert body in possible, f"{sop}: a data set no message completed"
        for sop, status in statuses.items():
            # Answered as stored only once durable: its file is there, whole.
            assert status not in STORED or sop in stored, f"{sop}: {status:04X}, no file"
        self._empty()

    async def _ended(self, server: Server) -> None:
        """Wait for the server to end the association, let go of its files and
        write its index rows."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + ENDED_WITHIN
        while server.active_associations or open_files() > self.fds or self._temporary():
            if loop.time() > deadline:
                raise AssertionError(
                    f"not ended within {ENDED_WITHIN} s: {server.active_associations} "
                    f"association(s), {open_files() - self.fds} more file(s) open, "
                    f"temporary files {self._temporary()}")
            await asyncio.sleep(0.002)
        # Its index rows too: what goes wrong there is this input's doing.
        await loop.run_in_executor(None, self.scp.flush_index)

    def _temporary(self) -> list[str]:
        """Files in the store that are neither objects nor the index's."""
        out = []
        for path in self.root.rglob("*"):
            if path.is_dir() or path.name.endswith(".dcm") or path.parent == self.root:
                continue
            out.append(str(path.relative_to(self.root)))
        out += [p.name for p in self.root.glob(".*") if not p.is_dir()]
        return out

    def _stored(self) -> dict[str, bytes]:
        out = {}
        for path in self.root.rglob("*.dcm"):
            info = read_part10(path)
            out[path.stem] = path.read_bytes()[info.dataset_offset:]
        return out

    def _empty(self) -> None:
        for child in self.root.iterdir():
            if child.is_dir() and not child.name.startswith("."):
                shutil.rmtree(child)


def _stored_deflated(body: bytes) -> bytes:
    """A deflated data set as the server stores it: cut after the end of its
    deflate stream, padded to an even length (store_sink, PS3.5 A.5)."""
    inflater = zlib.decompressobj(-15)
    try:
        inflater.decompress(body)
    except zlib.error:
        return body
    end = len(body) - len(inflater.unused_data) if inflater.eof else len(body)
    return body[:end] + b"\x00" * (end % 2)


async def _read_all(reader: asyncio.StreamReader, out: bytearray) -> None:
    """What the server sends, into ``out``, until its A-RELEASE-RP or A-ABORT
    (whole), or EOF."""
    pos = 0
    while chunk := await reader.read(1 << 16):
        out += chunk
        while pos + 6 <= len(out):
            end = pos + 6 + int.from_bytes(out[pos + 2:pos + 6], "big")
            if end > len(out):
                break
            if out[pos] in (0x06, 0x07):
                return
            pos = end


def answered(received: bytes) -> tuple[dict[str, int], bytes]:
    """The C-STORE-RSPs among the whole PDUs of ``received`` (status by Affected
    SOP Instance UID), and the type byte of each PDU, in order."""
    framer = PDUFramer()
    dimse = DimseConnection()
    statuses: dict[str, int] = {}
    types = bytearray()
    try:
        for pdu in framer.receive(received):
            types += pdu.encode()[:1]
            if isinstance(pdu, PDataTF):
                for pdv in pdu.pdvs:
                    for event in dimse.receive_pdv(pdv):
                        if isinstance(event, MessageReceived):
                            message = event.message
                            statuses[str(getattr(message, "affected_sop_instance_uid", ""))] = (
                                int(getattr(message, "status", -1)))
    except RemoteProtocolError as exc:
        raise AssertionError(f"the server sent what does not decode: {exc}") from exc
    return statuses, bytes(types)


#: Statuses that say an object was stored: Success and the warnings (PS3.4 B.2.3).
STORED = {0x0000, 0x0107, 0x0116, 0xB000, 0xB006, 0xB007}


_shared = Shared(Harness)


def close() -> None:
    """End the shared server and loop, if made."""
    _shared.close()


def receive(data: bytes) -> None:
    """The target (module docstring)."""
    _shared.get().run(data)


def seeds_receive() -> list[bytes]:
    """Clean inputs over both transports, each size, syntax, PDV cut and write mode."""
    out = []
    for index in range(len(SIZES)):
        for tls in (0, 0x80):
            syntax = (index + (tls >> 7)) % 3 << 5
            head = tls | syntax | (index % 3) | (0x10 if index % 2 else 0)
            out.append(bytes([head, index, (index + 3) % len(SIZES), index % len(FRAGMENTS),
                              index, index % 3, index, 0, 0, 0, 0, 0]))
    # Changed bytes, an abort, a cut.
    out.append(bytes([1, 6, 6, 6, 1, 2, 2, 200, 2, 9, 0, 0, 0x41, 1, 7, 0, 0]))
    out.append(bytes([0x81, 7, 3, 5, 1, 0, 1, 0, 1]))
    out.append(bytes([2, 8, 2, 7, 2, 1, 3, 0, 3, 0x10, 0x80, 0x01]))
    return out


