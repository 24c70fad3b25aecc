"""The edges of a deflated data set (PS3.5 A.5) as the SCP receives it: where
its deflate stream gives its first bytes (group 0002 there is dropped,
storage.stray_meta), and what comes after the stream's end. The outcome must
not depend on how the peer cut the stream into PDVs."""

from __future__ import annotations

import logging
import shutil
import subprocess
import zlib
from pathlib import Path

import pytest
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian

from dicomnet.dimse.messages import CStoreRSP
from dicomnet.services.storage import StorageSCP
from dicomnet.services.store_sink import ALIGNED_FROM, SPILL_THRESHOLD, StoreSink
from dicomnet.storage.part10 import read_part10
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


def inflated(data: bytes, *, padded: bool = True) -> bytes:
    """The data set a stored deflated one inflates to; it must end with its
    stream, padded to an even length with one NUL byte (PS3.5 A.5)."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    out = inflater.decompress(data) + inflater.flush()
    stream = len(data) - len(inflater.unused_data)
    assert inflater.eof and inflater.unused_data == b"\x00" * (stream % 2 if padded else 0)
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


def _image(size: str) -> tuple[str, bytes]:
    """A data set held in a bytearray, an aligned buffer, or spilled to a file."""
    ds = make_image(3, rows={"small": 32, "aligned": 256, "spilled": 1024}[size],
                    columns={"small": 24, "aligned": 512, "spilled": 1280}[size])
    plain = data_set_bytes(ds, ExplicitVRLittleEndian)
    length = len(raw_deflate(plain))
    assert {"small": length < ALIGNED_FROM, "aligned": ALIGNED_FROM < length < SPILL_THRESHOLD,
            "spilled": length > SPILL_THRESHOLD}[size]
    return ds.SOPInstanceUID, plain


@pytest.mark.parametrize("size", ["small", "aligned", "spilled"])
@pytest.mark.parametrize("meta", [False, True], ids=["plain", "meta"])
def test_bytes_after_the_deflated_stream_are_dropped_on_both_paths(
        root: Path, size: str, meta: bool, caplog: pytest.LogCaptureFixture) -> None:
    """A deflated data set is its deflate stream, padded to an even length
    (PS3.5 A.5): bytes after its end are none of it (pydicom's and DCMTK's
    inflate stop there). A data set with group 0002 dropped (re-deflated) lost
    them; one without was stored with them, as they came. Both now end with
    the stream, padded, and the drop is said at WARNING."""
    uid, plain = _image(size)
    stream = raw_deflate((meta_elements(make_image(3), ExplicitVRLittleEndian) if meta
                          else b"") + plain)
    junk = b"JUNK!\x00\x01"
    with caplog.at_level(logging.WARNING, logger="dicomnet.services"):
        assert run(_send(root, uid, stream + junk, 1 << 16)) == (0x0000, None)
    data = next(root.rglob("*.dcm")).read_bytes()
    kept = data[meta_group_length(data):]
    assert inflated(kept) == plain
    if not meta:
        assert kept == stream + b"\x00" * (len(stream) % 2)
    lines = [r.getMessage() for r in caplog.records if "deflated stream" in r.getMessage()]
    assert len(lines) == 1 and lines[0].endswith(
        "its data set had 7 byte(s) after the end of its deflated stream, which are no part "
        "of it (PS3.5 A.5): dropped"), lines
    assert all(r.levelno == logging.WARNING for r in caplog.records if r.getMessage() in lines)


@pytest.mark.parametrize("meta", [False, True], ids=["plain", "meta"])
@pytest.mark.parametrize("after", [b"", b"\x00", b"\x00\x00", b"\x01"])
def test_only_the_padding_may_follow_the_stream(meta: bool, after: bytes) -> None:
    """One NUL byte after a stream of odd length is its padding (PS3.5 A.5):
    kept, nothing said; missing, it is added. Anything else after it is
    dropped, the stream padded."""
    ds = make_image(4)
    plain = data_set_bytes(ds, ExplicitVRLittleEndian)
    start = meta_elements(ds, ExplicitVRLittleEndian) if meta else b""
    # Zero bytes after the last element (padding some writers leave) make it odd.
    stream = next(s for n in range(64) if len(s := raw_deflate(start + plain + bytes(n))) % 2)
    dropped = 0 if after == b"\x00" else len(after)
    for step in (1, 5, 1 << 20):
        sink = StoreSink(b"HEADER", transfer_syntax=DeflatedExplicitVRLittleEndian)
        sent = stream + after
        for pos in range(0, len(sent), step):
            sink.write(sent[pos:pos + step])
        assert sink.check_complete("1.2.3"), sink.error
        assert isinstance(sink.buffer, bytearray) and sink.buffer[:6] == b"HEADER"
        kept = bytes(sink.buffer[6:])
        assert inflated(kept).startswith(plain)
        if not meta:
            assert kept == stream + b"\x00"
        assert sink.trailing == dropped


def _odd(stream: bytes) -> bytes:
    """``stream``, or the same data behind an empty stored block (5 bytes): a
    deflate stream of odd length."""
    return stream if len(stream) % 2 else EMPTY_BLOCK + stream


@pytest.mark.skipif(shutil.which("dcmdump") is None, reason="DCMTK's dcmdump not installed")
@pytest.mark.parametrize("size", ["small", "aligned", "spilled"])
@pytest.mark.parametrize("meta", [False, True], ids=["plain", "meta"])
def test_a_stream_of_odd_length_sent_unpadded_is_stored_padded(
        root: Path, size: str, meta: bool) -> None:
    """A deflated stream of odd length, sent without the NUL byte PS3.5 A.5
    adds after it: re-deflated (group 0002 dropped) it was stored padded, but
    without group 0002 as it came, of odd length, which no other data set the
    SCP stores has unless one of its elements has (PS3.5 7.1.1), and which
    dicomnet's own SCU then refused to send on ("odd length"). It is padded
    on both paths; the data set it inflates to is the one sent, byte for
    byte, and DCMTK reads the file."""
    uid, plain = _image(size)
    stream = _odd(raw_deflate((meta_elements(make_image(3), ExplicitVRLittleEndian) if meta
                               else b"") + plain))
    assert run(_send(root, uid, stream, 1 << 16)) == (0x0000, None)
    (path,) = root.rglob("*.dcm")
    data = path.read_bytes()
    kept = data[meta_group_length(data):]
    assert len(kept) % 2 == 0 and read_part10(path).dataset_length == len(kept)
    assert inflated(kept) == plain
    if not meta:
        assert kept == stream + b"\x00"
    dump = subprocess.run(["dcmdump", "-q", str(path)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert (dump.returncode, dump.stderr) == (0, "")
    assert "(7fe0,0010)" in dump.stdout
