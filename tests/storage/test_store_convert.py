"""A large data set converted for a peer that did not take its syntax goes
through a temporary file, its bulk values copied from the source file in pieces,
never whole in memory (services/store_convert.py): the same bytes as the
in-memory conversion, the same data set stored, a cut source refused."""

from __future__ import annotations

import array
import asyncio
import io
import logging
import os
import subprocess
import sys
import tempfile
import textwrap
import threading
import zlib
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.dataelem import DataElement
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from dicomnet.errors import AssociationAborted
from dicomnet.services import store_batch, store_convert, store_prepare
from dicomnet.services.storage import StorageSCP, store_paths
from dicomnet.services.store_convert import (
    FileSlice,
    convert_in_memory,
    convert_to_file,
    converts_through_file,
)
from dicomnet.services.verification import VerificationSCP
from dicomnet.storage.files import StorageError
from dicomnet.storage.part10 import read_part10
from tests.aio.helpers import run, running_server, wait_until

from .dicomfiles import assert_same_dataset, make_image, pixel_bytes, uid, write_part10
from .helpers import send_files


def _large(path: Path, number: int, syntax: str, *, rows: int = 512, frames: int = 1,
           private: bool = True) -> Path:
    """An image with 16-bit pixels past pydicom's deferring size, and (``private``)
    a private OW value past it too and a small OB one."""
    ds = make_image(number, rows=rows, columns=512, frames=frames)
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelData = os.urandom(rows * 512 * 2 * frames)
    ds["PixelData"].VR = "OW"
    if private:
        ds.add(DataElement(0x00090010, "LO", "DICOMNET TEST"))
        ds.add(DataElement(0x00091001, "OW", os.urandom(200_000)))
        ds.add(DataElement(0x00091002, "OB", b"\x01\x02\x03\x04"))
    return write_part10(path, ds, syntax)


SYNTAXES = {"explicit": ExplicitVRLittleEndian, "implicit": ImplicitVRLittleEndian,
            "big": ExplicitVRBigEndian, "deflated": DeflatedExplicitVRLittleEndian}
PAIRS = [(a, b) for a in SYNTAXES for b in SYNTAXES if a != b]


def _plain(data: bytes, syntax: str) -> bytes:
    """A converted data set's bytes, inflated when deflated (PS3.5 A.5): the
    compressed bytes may differ with how the input was fed to zlib."""
    if syntax == DeflatedExplicitVRLittleEndian:
        return zlib.decompress(data, wbits=-zlib.MAX_WBITS)
    return data


@pytest.mark.parametrize(("source", "target"), PAIRS, ids=[f"{a}-to-{b}" for a, b in PAIRS])
def test_the_file_holds_what_the_conversion_in_memory_gives(
        tmp_path: Path, source: str, target: str) -> None:
    """Every pair of uncompressed syntaxes: Big Endian's words swapped as they are
    copied, Deflated inflated and compressed in pieces."""
    info = read_part10(_large(tmp_path / "in.dcm", 1, SYNTAXES[source]))
    target_uid = SYNTAXES[target]
    expected = convert_in_memory(info, target_uid)
    converted, length = convert_to_file(info, target_uid)
    with converted:
        data = converted.read()
    assert length == len(data)
    assert _plain(data, target_uid) == _plain(expected, target_uid)


def _folder_of(fd: int) -> str:
    """The folder of an open file, anonymous (O_TMPFILE) or not."""
    return os.path.dirname(os.readlink(f"/proc/self/fd/{fd}"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd") or not os.path.isdir("/var/tmp"),
                    reason="Linux with /var/tmp")
def test_the_temporary_file_is_in_var_tmp_unless_the_user_names_a_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """/tmp is a tmpfs on many systems: a converted gigabyte would sit in RAM."""
    info = read_part10(_large(tmp_path / "in.dcm", 4, ExplicitVRLittleEndian, rows=64))
    for name in ("TMPDIR", "TEMP", "TMP"):
        monkeypatch.delenv(name, raising=False)
    converted, _ = convert_to_file(info, ImplicitVRLittleEndian)
    with converted:
        assert _folder_of(converted.fileno()) == "/var/tmp"
    mine = tmp_path / "mine"
    mine.mkdir()
    monkeypatch.setenv("TMPDIR", str(mine))
    monkeypatch.setattr(tempfile, "tempdir", None)  # tempfile caches its choice
    converted, _ = convert_to_file(info, ImplicitVRLittleEndian)
    with converted:
        assert _folder_of(converted.fileno()) == str(mine)
    assert list(mine.iterdir()) == []  # anonymous: nothing to clean up


def test_a_source_cut_inside_a_bulk_value_is_refused(tmp_path: Path) -> None:
    """Checked whole before (storage.completeness), then cut: the length of the
    value is written by then, so the short read must raise, not pass."""
    path = _large(tmp_path / "in.dcm", 2, ExplicitVRLittleEndian)
    info = read_part10(path)
    os.truncate(path, path.stat().st_size - 1000)
    with pytest.raises(StorageError, match="shorter than when it was read"):
        convert_to_file(info, ImplicitVRLittleEndian)


def test_which_conversions_go_through_a_file(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    info = read_part10(_large(tmp_path / "in.dcm", 3, ExplicitVRLittleEndian, rows=64))
    monkeypatch.setattr(store_convert, "IN_MEMORY_MOST", info.dataset_length - 1)
    for target in (ImplicitVRLittleEndian, ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian):
        assert converts_through_file(info, target)
    assert not converts_through_file(info, "1.2.840.10008.1.2.4.50")  # JPEG: not converted
    monkeypatch.setattr(store_convert, "IN_MEMORY_MOST", info.dataset_length)
    assert not converts_through_file(info, ImplicitVRLittleEndian)
    # How large a deflated data set inflates is known only once inflated.
    deflated = read_part10(_large(tmp_path / "d.dcm", 3, DeflatedExplicitVRLittleEndian, rows=64))
    assert converts_through_file(deflated, ImplicitVRLittleEndian)


def test_a_file_slice_reads_seeks_and_tells_as_a_buffer(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(bytes(range(100)))
    fd = os.open(path, os.O_RDONLY)
    try:
        piece = FileSlice(fd, 10, 20, "f")
        assert (piece.readable(), piece.seekable(), piece.tell()) == (True, True, 0)
        assert piece.read(5) == bytes(range(10, 15))
        assert piece.seek(0, io.SEEK_END) == 20
        assert piece.read() == b""
        piece.seek(-3, io.SEEK_CUR)
        target = bytearray(10)
        assert piece.readinto(target) == 3
        assert target[:3] == bytes(range(27, 30))
        piece.seek(0)
        assert piece.read(-1) == bytes(range(10, 30))
        with pytest.raises(ValueError, match="negative"):
            piece.seek(-1)
        beyond = FileSlice(fd, 90, 20, "f")
        with pytest.raises(StorageError, match="f is shorter than when it was read"):
            beyond.read()
    finally:
        os.close(fd)



@pytest.mark.parametrize(("source", "target"), [
    (ExplicitVRLittleEndian, ImplicitVRLittleEndian),
    (ImplicitVRLittleEndian, ExplicitVRLittleEndian),
    (ExplicitVRBigEndian, ExplicitVRLittleEndian),
    (DeflatedExplicitVRLittleEndian, ImplicitVRLittleEndian),
], ids=["explicit-to-implicit", "implicit-to-explicit", "big-to-explicit",
        "deflated-to-implicit"])
def test_a_large_data_set_is_stored_converted_element_by_element(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str, target: str) -> None:
    # Private values would be read back as UN from Implicit VR: compared above.
    path = _large(tmp_path / "in" / "big.dcm", 4, source, private=False)
    small = write_part10(tmp_path / "in" / "small.dcm", make_image(5), source)
    monkeypatch.setattr(store_convert, "IN_MEMORY_MOST", 64 << 10)
    assert converts_through_file(read_part10(path), target)
    results = {r.path.name: r for r in send_files(tmp_path / "root", [path, small], [target])}
    for name, number, original in (("big.dcm", 4, path), ("small.dcm", 5, small)):
        result = results[name]
        assert (result.ok, result.status, result.converted_to) == (True, 0, target), result
        stored = tmp_path / "root" / uid(1, number) / uid(2, number) / f"{uid(9, number)}.dcm"
        assert read_part10(stored).transfer_syntax_uid == target
        if (source == ExplicitVRBigEndian) == (target == ExplicitVRBigEndian):
            assert_same_dataset(original, stored)
            continue
        # pydicom holds OW as bytes in the file's order: the same 16-bit pixels
        # are the words of one swapped (8-bit ones, OB, are the same bytes).
        sent, received = dcmread(original), dcmread(stored)
        words = array.array("H", pixel_bytes(sent))
        if sent["PixelData"].VR == "OW":
            words.byteswap()
        assert words.tobytes() == pixel_bytes(received)
        del sent.PixelData, received.PixelData
        assert_same_dataset(sent, received)


def _converted_in_a_process(path: Path, target: str) -> tuple[int, int, int]:
    """Convert ``path`` to ``target`` with ``convert_to_file`` in a process of its
    own: its peak resident memory (VmHWM, MiB) before and after, and the length."""
    script = textwrap.dedent(f"""
        import re
        from dicomnet.services.store_convert import convert_to_file
        from dicomnet.storage.part10 import read_part10
        def peak():
            text = open("/proc/self/status").read()
            return int(re.search(r"VmHWM:\\s+(\\d+) kB", text).group(1)) // 1024
        info = read_part10({str(path)!r})
        before = peak()
        converted, length = convert_to_file(info, {str(target)!r})
        converted.close()
        print(before, peak(), length)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, timeout=120)
    before, after, length = map(int, out.stdout.split())
    return before, after, length


@pytest.mark.parametrize(("source", "target"), [
    (ExplicitVRLittleEndian, ImplicitVRLittleEndian),
    (ExplicitVRBigEndian, ImplicitVRLittleEndian),
    (DeflatedExplicitVRLittleEndian, ImplicitVRLittleEndian),
    (ExplicitVRLittleEndian, DeflatedExplicitVRLittleEndian),
], ids=["explicit-to-implicit", "big-to-implicit", "deflated-to-implicit",
        "explicit-to-deflated"])
def test_converting_a_large_file_takes_less_memory_than_the_file(
        tmp_path: Path, source: str, target: str) -> None:
    """In a process of its own, the peak resident memory (VmHWM) of converting a
    96 MiB data set: below its size, where the in-memory conversion needs about
    three times it. Big Endian (words swapped) and Deflated (inflated or
    compressed) too: they were converted in memory whatever their size."""
    path = _large(tmp_path / "big.dcm", 6, source, rows=1024, frames=96)
    assert converts_through_file(read_part10(path), target)
    before, after, length = _converted_in_a_process(path, target)
    # Random pixels do not compress: the deflated data set is as long.
    assert length > 96 << 20
    assert after - before < 32, (before, after)


def test_a_file_slice_swaps_words_whatever_the_reads(tmp_path: Path) -> None:
    """pydicom reads a buffered value in pieces of its own size: a read that starts
    or ends inside a word still gives the swapped bytes at its place."""
    path = tmp_path / "f"
    path.write_bytes(bytes(range(64)))
    fd = os.open(path, os.O_RDONLY)
    try:
        for width in (2, 4, 8):
            whole = b"".join(bytes(range(64))[i:i + width][::-1] for i in range(8, 56, width))
            piece = FileSlice(fd, 8, 48, "f", swap=width)
            assert piece.read() == whole
            piece.seek(0)
            parts = [piece.read(size) for size in (3, 1, 5, 7, 32, 10)]
            assert b"".join(parts) == whole, width
            piece.seek(5)
            target = bytearray(6)
            assert piece.readinto(target) == 6 and bytes(target) == whole[5:11]
        with pytest.raises(StorageError, match="shorter"):
            FileSlice(fd, 60, 8, "f", swap=2).read()
    finally:
        os.close(fd)


@pytest.mark.parametrize("damage", ["cut", "garbled"])
def test_a_damaged_deflated_data_set_is_refused(tmp_path: Path, damage: str) -> None:
    """A deflate stream that ends early or does not decode: refused with the
    file's name, never sent as a shorter data set."""
    path = _large(tmp_path / "in.dcm", 7, DeflatedExplicitVRLittleEndian, rows=64)
    info = read_part10(path)
    data = bytearray(path.read_bytes())
    if damage == "cut":
        del data[info.dataset_offset + info.dataset_length // 2:]
        path.write_bytes(bytes(data))
        info = read_part10(path)
    else:
        data[info.dataset_offset:info.dataset_offset + 64] = b"\xff" * 64
        path.write_bytes(bytes(data))
    with pytest.raises(StorageError, match=f"{path.name}.*(cut short|damaged)"):
        convert_to_file(info, ExplicitVRLittleEndian)


def test_a_data_set_that_inflates_a_thousandfold_is_inflated_in_pieces(tmp_path: Path) -> None:
    """Deflate turns a megabyte of zeros into a gigabyte: the inflation is capped
    at a piece at a time (it gave each megabyte read all its output at once).
    256 MiB of zero Pixel Data, 256 KB deflated, converted in a process of its
    own: the peak stays far below the data set."""
    size = 256 << 20
    uid_value = uid(9, 11).encode()
    uid_value += b"\x00" * (len(uid_value) % 2)
    head = b"".join([
        b"\x08\x00\x16\x00UI" + len(SC_CLASS).to_bytes(2, "little") + SC_CLASS,
        b"\x08\x00\x18\x00UI" + len(uid_value).to_bytes(2, "little") + uid_value,
        b"\xe0\x7f\x10\x00OB\x00\x00" + size.to_bytes(4, "little"),
    ])
    deflater = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    body = bytearray(deflater.compress(head))
    zeros = bytes(1 << 20)
    for _ in range(size >> 20):
        body += deflater.compress(zeros)
    body += deflater.flush()
    body += b"\x00" * (len(body) % 2)
    template = write_part10(tmp_path / "meta.dcm", make_image(11),
                            DeflatedExplicitVRLittleEndian)
    meta_end = read_part10(template).dataset_offset
    path = tmp_path / "zeros.dcm"
    path.write_bytes(template.read_bytes()[:meta_end] + bytes(body))
    assert len(body) < 1 << 20
    before, after, length = _converted_in_a_process(path, ImplicitVRLittleEndian)
    assert length > size
    assert after - before < 32, (before, after)


SC_CLASS = b"1.2.840.10008.5.1.4.1.1.7\x00"


def _recording_temporaries(monkeypatch: pytest.MonkeyPatch) -> list[io.BufferedRandom]:
    """Every temporary file a conversion makes, kept to be checked closed."""
    made: list[io.BufferedRandom] = []
    real = store_convert._temporary

    def temporary() -> io.BufferedRandom:
        made.append(real())
        return made[-1]

    monkeypatch.setattr(store_convert, "_temporary", temporary)
    return made


def test_a_conversion_whose_association_ends_before_it_goes_is_closed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The association ended between the conversion and its C-STORE (the peer
    aborted meanwhile: here, the test aborts it): the temporary file is closed
    by store_paths, not left to the collector ("ResourceWarning: unclosed
    file"; the never started generator of its PDUs held it)."""
    path = write_part10(tmp_path / "in" / "one.dcm", make_image(1),
                        DeflatedExplicitVRLittleEndian)
    made = _recording_temporaries(monkeypatch)
    real_prepare = store_prepare.prepare_file

    async def prepare_then_abort(assoc: Any, *args: Any) -> Any:
        prepared = await real_prepare(assoc, *args)
        await assoc.abort()
        return prepared

    monkeypatch.setattr(store_batch, "prepare_file", prepare_then_abort)
    with pytest.raises(AssociationAborted):  # no file stored: raised, as any failure
        send_files(tmp_path / "root", [path], [ImplicitVRLittleEndian])
    assert made and all(fp.closed for fp in made)


def test_a_conversion_cancelled_while_it_runs_is_closed_once_made(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """store_paths cancelled (a Ctrl-C, a timeout) while a worker converts a
    file: the temporary file the worker then returns is closed, not dropped
    open with the cancelled wait."""
    path = write_part10(tmp_path / "in" / "one.dcm", make_image(1),
                        DeflatedExplicitVRLittleEndian)
    made = _recording_temporaries(monkeypatch)
    converting, go, converted = threading.Event(), threading.Event(), threading.Event()
    real_convert = store_convert.convert_to_file

    def held_convert(*args: Any) -> Any:
        converting.set()
        go.wait(30)
        try:
            return real_convert(*args)
        finally:
            converted.set()

    monkeypatch.setattr(store_prepare, "convert_to_file", held_convert)

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        scp = StorageSCP(tmp_path / "root", transfer_syntaxes=[ImplicitVRLittleEndian])
        try:
            async with running_server(providers=[VerificationSCP(), scp]) as server:
                task = asyncio.create_task(store_paths("127.0.0.1", server.port, [path]))
                assert await loop.run_in_executor(None, converting.wait, 30)
                task.cancel()
                go.set()
                with pytest.raises(asyncio.CancelledError):
                    await task
                assert await loop.run_in_executor(None, converted.wait, 30)
                await wait_until(lambda: bool(made) and all(fp.closed for fp in made),
                                 "the conversion's temporary file closed")
        finally:
            go.set()
            scp.close()

    run(scenario(), timeout=60)


def test_a_deflated_data_set_past_the_walks_bound_is_sent_and_refused_as_such(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    """The completeness walk inflates a deflated data set at most to MAX_INFLATED
    (1 GiB; 1 MiB here). Past it the file is not malformed: the SCU, walking its
    own file in a worker thread (CPU only, constant memory), no longer bounds it
    and sends it as it is; the SCP, walking a peer's bytes on its event loop,
    answers Out of Resources (A700) saying why, not Cannot Understand (C000)
    'malformed data set: it inflates past 1048576 bytes'; before, the SCU did not
    send it ('not sent: malformed data set: ...')."""
    from dicomnet.storage import completeness

    monkeypatch.setattr(completeness, "MAX_INFLATED", 1 << 20)
    large = make_image(14, rows=1024, columns=2048)
    large.PixelData = bytes(1024 * 2048 * 2)
    path = write_part10(tmp_path / "in" / "large.dcm", large, DeflatedExplicitVRLittleEndian)
    assert path.stat().st_size < 64 << 10
    info = read_part10(path)
    assert completeness.file_dataset_problem(str(path), info.dataset_offset,
                                             DeflatedExplicitVRLittleEndian) == (
        "its deflated data set would inflate past 1 MiB, the most dicomnet inflates to check "
        "a deflated data set: its element (7FE0,0010) ends 4194980 bytes in")
    assert completeness.file_dataset_problem(str(path), info.dataset_offset,
                                             DeflatedExplicitVRLittleEndian,
                                             limited=False) is None
    caplog.set_level(logging.WARNING, logger="dicomnet")
    [result] = send_files(tmp_path / "root", [path], [DeflatedExplicitVRLittleEndian])
    assert (result.status, result.error_comment) == (
        0xA700, "deflated data set would inflate past 1 MiB, our limit")
    assert list((tmp_path / "root").rglob("*.dcm")) == []
    [line] = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert line.endswith("refused, status 0xA700: its deflated data set would inflate past "
                         "1 MiB, the most dicomnet inflates to check a deflated data set: its "
                         "element (7FE0,0010) ends 4194980 bytes in; not stored")


def test_a_deflated_data_set_inflating_past_the_bound_is_not_sent(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The conversion reads the file again after the completeness walk allowed it
    (storage.completeness.MAX_INFLATED): it bounds what it inflates itself, the
    file failing alone with its temporary file closed, the next file sent. Here
    the bound is 1 MiB (the walk keeps its own) and the bomb 8 MiB of zeros in a
    file of a few KB."""
    monkeypatch.setattr(store_convert, "INFLATED_MOST", 1 << 20, raising=False)
    bomb = make_image(12, rows=2048, columns=4096)
    bomb.PixelData = bytes(2048 * 4096)
    bomb_path = write_part10(tmp_path / "in" / "bomb.dcm", bomb, DeflatedExplicitVRLittleEndian)
    assert bomb_path.stat().st_size < 64 << 10
    fine = write_part10(tmp_path / "in" / "fine.dcm", make_image(13),
                        DeflatedExplicitVRLittleEndian)
    made = _recording_temporaries(monkeypatch)
    results = send_files(tmp_path / "root", [bomb_path, fine], [ExplicitVRLittleEndian])
    assert results[0].status is None
    assert results[0].error is not None
    assert (f"{bomb_path}: its deflated data set inflates past 1 MiB, the most dicomnet "
            "inflates to convert a deflated data set; not sent") in results[0].error
    assert results[1].status == 0x0000
    assert made and all(f.closed for f in made)
    assert list((tmp_path / "root").rglob("*.dcm")) == [
        tmp_path / "root" / uid(1, 13) / uid(2, 13) / f"{uid(9, 13)}.dcm"]
