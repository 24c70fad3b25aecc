"""A C-STORE-RQ's command set goes in one write with the start of its data set:
its PDU is put in the room left before the first data PDU, in that PDU's pooled
buffer (``DataSetPdus.lead``), where it was a write, an SSL_write and a TLS
record of its own per object (~250 byte code instructions and ~8,000 of
OpenSSL's per 512 KiB image). The bytes on the wire are the same."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian

from dicomnet.services import store_prepare
from dicomnet.services.storage import store_paths
from dicomnet.services.store_prepare import DataSetPdus, PduBuffers, file_pdus
from dicomnet.storage.part10 import read_part10
from dicomnet.ul.connection import ULConnection
from tests.aio.helpers import run
from tests.aio.rawscp import RawPeer, Request, raw_scp, store_response
from tests.storage.dicomfiles import SECONDARY_CAPTURE, make_image, write_part10

_PDU = struct.Struct(">BxI")


def _pdus(chunk: bytes) -> list[tuple[bool, bool, bytes]]:
    """The P-DATA-TF PDUs of ``chunk``: (command?, last?, PDV data) each."""
    out, pos = [], 0
    while pos < len(chunk):
        kind, length = _PDU.unpack_from(chunk, pos)
        assert kind == 0x04
        control = chunk[pos + 11]
        out.append((bool(control & 1), bool(control & 2), chunk[pos + 12:pos + 6 + length]))
        pos += 6 + length
    return out


def test_each_command_goes_out_with_its_first_data_pdu(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = [write_part10(tmp_path / f"{n}.dcm", make_image(n, rows=512, columns=512),
                          ExplicitVRLittleEndian) for n in range(3)]
    written: list[bytes] = []
    original = ULConnection.chunks_to_send

    def spy(self: ULConnection) -> list[bytes | bytearray | memoryview]:
        chunks = original(self)
        if self.is_established:
            written.extend(bytes(c) for c in chunks)
        return chunks

    monkeypatch.setattr(ULConnection, "chunks_to_send", spy)

    async def answer(peer: RawPeer, request: Request) -> None:
        await peer.send(store_response(request, 0))

    async def scenario() -> tuple[list[bool], list[RawPeer]]:
        async with raw_scp(answer, contexts={SECONDARY_CAPTURE: [ExplicitVRLittleEndian]},
                           max_async_operations=4) as (port, peers):
            results = await store_paths("127.0.0.1", port, files)
            return [r.ok for r in results], peers

    oks, peers = run(scenario())
    assert oks == [True] * 3
    [peer] = peers
    assert len(peer.requests) == 3
    sent = [_pdus(chunk) for chunk in written]
    # Every write holding a command holds its data set's first PDU behind it.
    with_command = [pdus for pdus in sent if any(command for command, _, _ in pdus)]
    assert len(with_command) == 3
    for pdus in with_command:
        assert [(command, last) for command, last, _ in pdus[:2]] == [(True, True), (False, True)]
    data = b"".join(d for pdus in sent for command, _, d in pdus if not command)
    assert data == b"".join(
        Path(f).read_bytes()[read_part10(f).dataset_offset:] for f in files)


def test_lead_puts_the_command_in_front_of_the_first_pdu_in_its_buffer(tmp_path: Path) -> None:
    image = write_part10(tmp_path / "a.dcm", make_image(1, rows=512, columns=512),
                         ExplicitVRLittleEndian)
    info = read_part10(image)
    pool = PduBuffers()
    pdus = file_pdus(info, 1, 128 << 10, pool)
    first = next(pdus)
    expected_first = bytes(first)
    dataset = DataSetPdus(first, pdus)
    command = b"\x04\x00\x00\x00\x00\x0a\x00\x00\x00\x06\x01\x03\x01\x02\x03\x04"
    joined = dataset.lead(command)
    assert joined is not None and joined.obj is first.obj  # type: ignore[union-attr]
    assert bytes(joined) == command + expected_first
    rest = list(dataset)  # the first one is not yielded again
    assert b"".join(bytes(p)[12:] for p in [expected_first, *rest]) == (
        image.read_bytes()[info.dataset_offset:])
    assert dataset.lead(command) is None  # taken already
    dataset.close()


def test_no_lead_for_a_small_pdu_or_a_long_command(tmp_path: Path) -> None:
    image = write_part10(tmp_path / "a.dcm", make_image(1, rows=512, columns=512),
                         ExplicitVRLittleEndian)
    info = read_part10(image)
    small = file_pdus(info, 1, 16 << 10, PduBuffers())  # not pooled: a bytearray
    dataset = DataSetPdus(next(small), small)
    assert dataset.lead(b"\x04" * 16) is None
    dataset.close()
    pdus = file_pdus(info, 1, 128 << 10, PduBuffers())
    dataset = DataSetPdus(next(pdus), pdus)
    assert dataset.lead(b"\x04" * (store_prepare._HEADROOM + 1)) is None
    assert dataset.lead(b"\x04" * store_prepare._HEADROOM) is not None
    dataset.close()
