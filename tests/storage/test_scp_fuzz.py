"""The storage SCP against mutated association streams (a seeded fuzz run).

Each case takes a valid stream (an A-ASSOCIATE-RQ proposing an asynchronous
operations window of 8, or none; three C-STORE-RQs with their data sets in
P-DATA-TF PDUs of 4 KiB, 64 KiB or 512 KiB; a C-ECHO-RQ; a C-FIND-RQ that no
service here performs; an A-RELEASE-RQ), damages it (flipped bits, any of a
PDU's header bytes, length fields, command-set bytes, PDUs cut, repeated,
swapped, dropped, bytes inserted) and sends it, over plain TCP or TLS 1.3: all
at once, or (half the time, if the request is intact) after the
A-ASSOCIATE-AC; it then ends its side at once, or (half the time, if the
stream still ends with its A-RELEASE-RQ) once that is answered. Whatever the
damage: every association ends on its own, nothing is logged as an internal
error, no temporary file is left, every stored file is a readable Part 10 file
with its index row, and the server still serves a clean stream. The bugs this
guards against were found by this run with more seeds and cases (see
tests/aio/test_ended_before_answered.py, tests/storage/test_store_hooks.py,
the 'release' ending of test_scp_robustness).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import ssl
from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from dicomnet.config import Limits
from dicomnet.dimse.messages import CEchoRQ, CFindRQ, decode_message, encode_message
from dicomnet.services.storage import INDEX_NAME, StorageSCP
from dicomnet.services.verification import VerificationSCP
from dicomnet.storage.part10 import read_part10
from dicomnet.ul.negotiation import ContextRequest, build_associate_rq
from dicomnet.ul.pdu import PDataTF, ReleaseRQ, decode_pdu, encode_pdata
from dicomnet.ul.user_information import AsynchronousOperationsWindowSubItem
from tests.aio.helpers import LOOPBACK, Pki, run, running_server, wait_until
from tests.storage.dicomfiles import SECONDARY_CAPTURE, make_image, write_part10
from tests.storage.rawscu import store_command
from tests.storage.test_scp_robustness import indexed_instances, wait_idle

VERIFICATION = "1.2.840.10008.1.1"
#: (0010,0020) Patient ID, empty: an identifier in Explicit VR Little Endian.
FIND_IDENTIFIER = b"\x10\x00\x20\x00LO\x00\x00"
#: DICOMNET_FUZZ_SEED=N in the environment runs another seed: other damage (README).
SEED = int(os.environ.get("DICOMNET_FUZZ_SEED", "20261129"))
CASES = 400
MUTATIONS = ["flip", "header", "length", "command", "cut", "repeat", "swap", "drop", "insert"]


def objects(folder: Path) -> list[tuple[str, bytes]]:
    """(SOP Instance UID, data set bytes) of three images: 1 KB, 100 KB, 1.3 MB
    (received in place and spilled to disk)."""
    found = []
    for number, (rows, columns) in enumerate([(24, 24), (320, 320), (1024, 1280)]):
        path = write_part10(folder / f"{number}.dcm", make_image(number, rows=rows,
                                                                 columns=columns),
                            ExplicitVRLittleEndian)
        info = read_part10(path)
        found.append((info.sop_instance_uid, path.read_bytes()[info.dataset_offset:]))
    return found


def clean_stream(items: list[tuple[str, bytes]], fragment: int,
                 window: int = 1) -> list[bytearray]:
    """The valid stream; with a ``window`` above 1 it is proposed (PS3.7 D.3.3.3),
    so that the server performs its C-STOREs as concurrent operations."""
    rq = build_associate_rq(calling_ae_title="FUZZ", called_ae_title="DICOMNET-SCP",
                            contexts=[ContextRequest(SECONDARY_CAPTURE,
                                                     (ExplicitVRLittleEndian,)),
                                      ContextRequest(VERIFICATION, (ImplicitVRLittleEndian,))],
                            max_pdu_length=1 << 20,
                            async_ops=AsynchronousOperationsWindowSubItem(window, window)
                            if window > 1 else None)
    pdus = [bytearray(rq.encode())]
    for message_id, (sop, data) in enumerate(items, 1):
        command = store_command(SECONDARY_CAPTURE.encode(), sop.encode(), message_id)
        pdus.append(bytearray(encode_pdata(1, True, True, command)))
        pdus += [bytearray(encode_pdata(1, False, start + fragment >= len(data),
                                        data[start:start + fragment]))
                 for start in range(0, len(data), fragment)]
    # A C-ECHO (answered), and a C-FIND with its identifier, which no service here
    # performs (refused, 0211H): the other ways through the server.
    pdus.append(bytearray(encode_pdata(3, True, True, encode_message(CEchoRQ(message_id=4)))))
    pdus.append(bytearray(encode_pdata(1, True, True, encode_message(
        CFindRQ(message_id=5, affected_sop_class_uid=SECONDARY_CAPTURE)))))
    pdus.append(bytearray(encode_pdata(1, False, True, FIND_IDENTIFIER)))
    pdus.append(bytearray(ReleaseRQ().encode()))
    return pdus


def damage(rng: random.Random, pdus: list[bytearray]) -> list[bytearray]:
    kind = rng.choice(MUTATIONS)
    index = rng.randrange(len(pdus))
    pdu = pdus[index]
    if kind == "flip":
        for _ in range(rng.randint(1, 6)):
            pdu[rng.randrange(len(pdu))] ^= 1 << rng.randrange(8)
    elif kind == "header":
        pdu[rng.randrange(min(12, len(pdu)))] = rng.choice([0, 1, 2, 0xFF, rng.randrange(256)])
    elif kind == "length" and len(pdu) >= 10:
        at = rng.choice([2, 6])  # the PDU's length, or a P-DATA-TF's first PDV's
        value = int.from_bytes(pdu[at:at + 4], "big") + rng.choice([-2, -1, 1, 2, 100, 1 << 20])
        pdu[at:at + 4] = (value % (1 << 32)).to_bytes(4, "big")
    elif kind == "command":
        commands = [p for p in pdus if len(p) > 12 and p[0] == 4 and p[11] & 1]
        if commands:
            target = rng.choice(commands)
            for _ in range(rng.randint(1, 3)):
                target[rng.randrange(12, len(target))] = rng.randrange(256)
    elif kind == "cut":
        return [*pdus[:index], pdu[:rng.randrange(len(pdu))]]
    elif kind == "repeat":
        pdus.insert(index, bytearray(pdu))
    elif kind == "swap":
        other = rng.randrange(len(pdus))
        pdus[index], pdus[other] = pdus[other], pdus[index]
    elif kind == "drop":
        del pdus[index]
    elif kind == "insert":
        at = rng.randrange(len(pdu) + 1)
        pdu[at:at] = rng.randbytes(rng.randint(1, 30))
    return pdus


def pdu_types(data: bytes) -> list[int]:
    """The types of the whole PDUs at the start of ``data``."""
    types, at = [], 0
    while at + 6 <= len(data):
        length = int.from_bytes(data[at + 2:at + 6], "big")
        if at + 6 + length > len(data):
            break
        types.append(data[at])
        at += 6 + length
    return types


async def send(port: int, pdus: list[bytearray], *, wait_for_answer: bool,
               linger: bool, tls: ssl.SSLContext | None = None) -> bytes:
    """Send the stream and return what the server sent until it closed. The
    stream then ends at once, or (``linger``) once the server answered its last
    PDU, an A-RELEASE-RQ (or aborted): half-closed, or over TLS (which has no
    half-close) closed."""
    reader, writer = await asyncio.open_connection(
        LOOPBACK, port, ssl=tls, server_hostname="localhost" if tls else None)
    received = bytearray()

    async def read_all() -> None:
        try:
            while chunk := await reader.read(65536):
                received.extend(chunk)
        except OSError:  # a reset after the server's abort (TLS: its error): the end
            pass

    def answered(*types: int) -> bool:
        return reading.done() or any(t in types for t in pdu_types(bytes(received)))

    reading = asyncio.ensure_future(read_all())
    try:
        chunks = ([bytes(pdus[0]), b"".join(pdus[1:])] if wait_for_answer
                  else [b"".join(pdus)])
        for n, chunk in enumerate(chunks):
            writer.write(chunk)
            await writer.drain()
            if n == 0 and wait_for_answer:
                await wait_until(lambda: answered(0x02, 0x03, 0x07), "the answer to the request")
        if linger:
            await wait_until(lambda: answered(0x06, 0x07), "the answer to the release", 30)
        if tls is None:
            writer.write_eof()
        else:
            writer.close()
    except OSError:  # ConnectionError, ENOTCONN: the server aborted and closed meanwhile
        pass
    await asyncio.wait_for(reading, 20)  # every association ends on its own
    writer.close()
    return bytes(received)


@pytest.mark.parametrize("transport", ["plain", "tls"])
def test_damaged_streams_leave_the_server_consistent_and_serving(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, transport: str) -> None:
    """Over TLS 1.3 with mutual authentication the data sets are received by
    another transport (OpenSSL reading the socket into the sinks' memory)."""
    items = objects(tmp_path)
    pki = Pki.create(tmp_path / "pki") if transport == "tls" else None
    client_tls = ssl.create_default_context(cafile=pki.ca_file) if pki else None
    if pki is not None and client_tls is not None:
        client_tls.load_cert_chain(pki.client_cert, pki.client_key)
    root = tmp_path / "out"
    rng = random.Random(SEED)
    loop_errors: list[str] = []

    def stored_files() -> list[Path]:
        return sorted(root.rglob("*.dcm"))

    def consistent() -> bool:
        others = [p for p in root.rglob("*") if p.is_file() and p.suffix != ".dcm"
                  and not p.name.startswith(INDEX_NAME)]
        return not others and indexed_instances(root) == len(stored_files())

    async def scenario() -> bytes:
        asyncio.get_running_loop().set_exception_handler(
            lambda _loop, context: loop_errors.append(repr(context)))
        scp = StorageSCP(root)
        try:
            async with running_server(providers=[VerificationSCP(), scp],
                                      limits=Limits(max_pdu_length=1 << 20),
                                      tls=pki.server_tls() if pki else None) as server:
                for case in range(CASES):
                    clean = clean_stream(items, rng.choice([4090, 65530, 1 << 19]),
                                         rng.choice([1, 8]))
                    request, release = bytes(clean[0]), bytes(clean[-1])
                    pdus = damage(rng, clean)
                    if rng.random() < 0.3:
                        pdus = damage(rng, pdus)
                    # Waiting for the answer only makes sense to an intact request.
                    intact = pdus[0] == request
                    await send(server.port, pdus, wait_for_answer=intact and rng.random() < 0.5,
                               linger=intact and pdus[-1] == release and rng.random() < 0.5,
                               tls=client_tls)
                    await wait_idle(server)
                    await wait_until(consistent, f"no temporary file and an index row per "
                                                 f"file after case {case}")
                return await send(server.port, clean_stream(items, 65530),
                                  wait_for_answer=True, linger=True, tls=client_tls)
        finally:
            scp.close()

    with caplog.at_level(logging.WARNING, logger="dicomnet"):
        answer = run(scenario(), timeout=300)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert loop_errors == []
    for path in stored_files():
        read_part10(path)  # a readable Part 10 file (raises otherwise)
    # The clean stream at the end: accepted, three successes, released.
    pdus, rest = [], memoryview(answer)
    while rest:
        length = int.from_bytes(rest[2:6], "big")
        pdus.append(decode_pdu(bytes(rest[:6 + length])))
        rest = rest[6 + length:]
    responses = [decode_message(pdv.data) for pdu in pdus if isinstance(pdu, PDataTF)
                 for pdv in pdu.pdvs]
    assert [type(p).__name__ for p in pdus] == ["AssociateAC", *["PDataTF"] * 5, "ReleaseRP"]
    assert [(type(r).__name__, getattr(r, "status", None)) for r in responses] == [
        ("CStoreRSP", 0), ("CStoreRSP", 0), ("CStoreRSP", 0), ("CEchoRSP", 0),
        ("CFindRSP", 0x0211)]
    assert len(stored_files()) == 3
