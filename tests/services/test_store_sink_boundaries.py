"""A large data set received in place through StoreSink, as the association
lends its memory (``reserve`` for a PDV's data from 64 KiB on, the transport's
buffer otherwise), with PDVs that end exactly on a direct writer's chunk
boundary, 1 byte past it, a few hundred, or SLACK: the file holds exactly the
header and the bytes sent, and no rest of a PDV goes through the transport's
buffer for being cut short by a chunk's end."""

from __future__ import annotations

import os
import random
import struct
from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian

from dicomnet.services.store_sink import SPILL_THRESHOLD, StoreSink
from dicomnet.storage.direct import CHUNK, SLACK
from dicomnet.storage.part10 import part10_header
from tests.storage.test_direct import _supports_direct

#: As the association: PDV data due from which it is received in place.
IN_PLACE_FROM = 64 << 10
#: As the transport: bytes read into its own buffer at once.
READ_SIZE = 256 << 10

HEADER = part10_header(sop_class_uid="1.2.840.10008.5.1.4.1.1.7",
                       sop_instance_uid="1.2.826.0.1.3680043.8.498.9.7",
                       transfer_syntax_uid=ExplicitVRLittleEndian,
                       implementation_class_uid="1.2.3.4",
                       implementation_version_name="V1", source_ae_title="PEER")


class Receiving:
    """Feeds a sink PDV by PDV the way the association and its transport do, and
    counts the reads of a PDV's rest through the transport's buffer."""

    def __init__(self, sink: StoreSink) -> None:
        self.sink = sink
        self.copied_rests: list[int] = []

    def pdv(self, data: bytes) -> None:
        at = 0
        while at < len(data):
            due = len(data) - at
            target = self.sink.reserve(due) if due >= IN_PLACE_FROM else None
            if target is None or isinstance(target, int):
                if target is None and at:
                    self.copied_rests.append(due)
                count = min(due, READ_SIZE if target is None else target)
                self.sink.write(memoryview(data)[at:at + count])
            else:
                count = len(target)
                target[:] = data[at:at + count]
                with target[:count] as filled:
                    self.sink.write(filled)
                target.release()
            at += count

    @property
    def position(self) -> int:
        """Bytes of the file written so far (header included)."""
        writer = self.sink.writer
        assert writer is not None
        return writer.size


def pixel_data(length: int) -> bytes:
    # (7FE0,0010) OW, explicit VR: tag, VR, 2 reserved bytes, 32-bit length.
    return struct.pack("<HH2s2xI", 0x7FE0, 0x0010, b"OW", length)


@pytest.mark.parametrize("overs", [(0, 1, 376), (SLACK, 358, SLACK - 1, 0)])
def test_pdvs_straddling_chunk_boundaries_land_byte_for_byte(tmp_path: Path,
                                                             overs: tuple[int, ...]) -> None:
    if not _supports_direct(tmp_path):  # pragma: no cover - tmpfs, some FUSE
        pytest.skip("this file system has no O_DIRECT")
    rng = random.Random(len(overs))
    total = (len(overs) + 2) * CHUNK  # the pixel data's length, planned ahead
    sink = StoreSink(HEADER, (tmp_path, "in-progress"), durable=True,
                     transfer_syntax=ExplicitVRLittleEndian)
    receiving = Receiving(sink)
    sent = [pixel_data(total)]
    left = total
    first = (256 << 10) - 6 - len(sent[0])  # a first PDV as a 256 KiB PDU carries
    sent.append(rng.randbytes(first))
    receiving.pdv(sent[0] + sent[1])
    left -= first
    while sink.writer is None:  # in memory up to the spill threshold
        piece = rng.randbytes(min((256 << 10) - 6, left))
        receiving.pdv(piece)
        sent.append(piece)
        left -= len(piece)
    assert receiving.position > SPILL_THRESHOLD
    for over in overs:
        # One PDV up to 200,000 bytes before the next boundary, then one
        # reaching ``over`` bytes past it.
        boundary = (receiving.position // CHUNK + 1) * CHUNK
        if boundary - receiving.position < 200_000 + IN_PLACE_FROM:
            boundary += CHUNK
        for length in (boundary - 200_000 - receiving.position, 200_000 + over):
            piece = rng.randbytes(length)
            receiving.pdv(piece)
            sent.append(piece)
            left -= length
        assert receiving.position == boundary + over
    sent.append(rng.randbytes(left))
    receiving.pdv(sent[-1])
    assert sink.check_complete("1.2.826.0.1.3680043.8.498.9.7") and sink.error is None
    assert receiving.copied_rests == []  # every PDV's rest was lent in place
    writer = sink.writer
    assert writer is not None
    writer.flush()
    with open(writer.temp_filename, "rb") as stored:
        assert stored.read() == HEADER + b"".join(sent)
    writer.abort()
    assert not os.listdir(tmp_path) or all(not name.endswith(".dcm")
                                           for name in os.listdir(tmp_path))


def test_a_spill_that_fails_when_reserving_refuses_the_data_set(tmp_path: Path) -> None:
    """A PDV that takes the data set past the spill threshold spills it from
    reserve; a storage error there refuses the data set as a write's would,
    and nothing is lent."""
    blocked = tmp_path / "not-a-folder"
    blocked.write_bytes(b"")
    sink = StoreSink(HEADER, (blocked / "sub", "in-progress"), durable=True,
                     transfer_syntax=ExplicitVRLittleEndian)
    sink.write(pixel_data(4 << 20) + bytes(100_000))  # held page-aligned from 64 KiB
    assert sink.reserve(SPILL_THRESHOLD) is None
    assert sink.error is not None and sink.error.startswith("cannot store")
    assert sink.buffer is None and sink.writer is None
    sink.write(bytes(10))  # ignored once refused
    assert not sink.check_complete("1.2.826.0.1.3680043.8.498.9.7")
