"""The edges of a deflated data set (PS3.5 A.5) as the SCP receives it: where
its deflate stream gives its first bytes (group 0002 there is dropped,
storage.stray_meta), and what comes after the stream's end. The outcome must
not depend on how the peer cut the stream into PDVs."""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian

from dicomnet.dimse.messages import CStoreRSP
from dicomnet.services.storage import StorageSCP
from dicomnet.services.store_sink import StoreSink
from dicomnet.ul.negotiation import ContextRequest
from dicomnet.ul.pdu import encode_pdata
from tests.aio.helpers import run, running_server
from tests.storage.dicomfiles import make_image
from tests.storage.helpers import SECONDARY_CAPTURE, data_set_bytes
from tests.storage.rawscu import RawAssociation, store_command
from tests.storage.stray import meta_elements, meta_group_length

#: An empty stored deflate block, not the last (RFC 1951 3.2.4: BFINAL 0, BTYPE 00,
#: LEN 0, NLEN FFFF): it inflates to nothing.
EMPTY_BLOCK = b"\x00\x00\x00\xff\xff"


def raw_deflate(data: bytes) -> bytes:
    deflater = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    return deflater.compress(data) + deflater.flush()


def inflated(data: bytes) -> bytes:
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    out = inflater.decompress(data) + inflater.flush()
    assert inflater.eof and not inflater.unused_data.strip(b"\x00")
    return out


async def _send(root: Path, uid: str, data: bytes, pdv: int) -> tuple[int, str | None]:
    """C-STORE ``data`` (a deflated data set) from a raw SCU in PDVs of ``pdv`` bytes."""
    scp = StorageSCP(root)
    try:
        async with running_server(providers=[scp]) as server:
            assoc = await RawAssociation.open(server.port, [
                ContextRequest(SECONDARY_CAPTURE, (DeflatedExplicitVRLittleEndian,))])
            ctx = assoc.context_id(SECONDARY_CAPTURE)
            await assoc.send(encode_pdata(ctx, True, True, store_command(
                SECONDARY_CAPTURE.encode(), uid.encode())), *[
                encode_pdata(ctx, False, start + pdv >= len(data), data[start:start + pdv])
                for start in range(0, len(data), pdv)])
            rsp = await assoc.outcome()
            await assoc.release()
    finally:
        scp.close()
    assert isinstance(rsp, CStoreRSP), rsp
    return rsp.status, rsp.error_comment


@pytest.mark.parametrize("pdv", [1000, 1 << 16])
@pytest.mark.parametrize("blocks", [1000, 5000])
def test_a_start_of_empty_blocks_is_read_alike_in_any_pdvs(
        root: Path, blocks: int, pdv: int) -> None:
    """A deflate stream that starts with empty stored blocks: in one PDV over
    4096 bytes the check of its first bytes gave up and the data set was stored
    with its group 0002 inside; in small PDVs it was dropped. Now its first
    bytes are inflated from up to 16 KiB of the stream, in any PDVs: within
    them, group 0002 is dropped; past them, the data set is refused (C000)."""
    ds = make_image(1)
    plain = data_set_bytes(ds, ExplicitVRLittleEndian)
    sent = EMPTY_BLOCK * blocks + raw_deflate(meta_elements(ds, ExplicitVRLittleEndian) + plain)
    sent += b"\x00" * (len(sent) % 2)
    status, comment = run(_send(root, ds.SOPInstanceUID, sent, pdv))
    stored = list(root.rglob("*.dcm"))
    if blocks == 1000:  # 5000 bytes
        assert status == 0x0000 and len(stored) == 1
        data = stored[0].read_bytes()
        assert inflated(data[meta_group_length(data):]) == plain
    else:  # 25000 bytes
        assert (status, comment, stored) == (
            0xC000, "deflated data set giving no byte in its first 16 KiB: not stored", [])


def test_a_start_past_the_bound_is_refused_after_it() -> None:
    """Memory and CPU stay flat: 4 MiB of empty blocks in one write are refused
    after inflating 16 KiB of them; what follows is not looked at."""
    sink = StoreSink(b"HEADER", transfer_syntax=DeflatedExplicitVRLittleEndian)
    sink.write(EMPTY_BLOCK * (800 << 10))
    assert sink.status == 0xC000 and sink.buffer is None and sink.error == (
        "deflated data set giving no byte in its first 16 KiB: not stored")
    sink.write(raw_deflate(b"\x08\x00\x05\x00CS\x00\x00"))
    assert not sink.check_complete("1.2.3")
