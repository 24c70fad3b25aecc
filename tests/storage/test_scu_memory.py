"""What ``store_paths`` keeps per file: a run holds one ``StoreResult`` per file
until it ends, and an archive migration sends hundreds of thousands of files.

Measured with tracemalloc (bytes, not time): 2,000 small files sent to a test
peer, the memory still allocated once the run returned and its peer is gone,
per result. On CPython 3.11 a result of a file stored keeps about 420 bytes (its
object, its path as a str, its SOP Instance UID, its size); it kept 810 when its
path was a ``Path``, its empty tag lists lists of their own and its transfer
syntax a string of its own. The results' fields and ``to_dict()`` are the same."""

from __future__ import annotations

import copy
import dataclasses
import gc
import pickle
import tracemalloc
from pathlib import Path

from pydicom.uid import ExplicitVRLittleEndian

from dicomnet.services.storage import store_paths
from dicomnet.services.store_scu import StoreResult
from tests.aio.helpers import run
from tests.aio.rawscp import RawPeer, Request, raw_scp, store_response
from tests.storage.dicomfiles import SECONDARY_CAPTURE, make_image, uid, write_part10

#: Files sent in the measured run.
COUNT = 2000
#: 1.5 times the bytes per result measured (~420 on CPython 3.11; 810 before):
#: a field back to a Path, or to a list per result, or a run keeping its headers
#: (Part10Info) past its end, is above.
BOUND = 640
#: The template's SOP Instance UID, patched into each copy at the same length.
_TEMPLATE_UID = uid(77, 9_000_000_000)


def _files(folder: Path, count: int) -> list[Path]:
    """``count`` Part 10 files (~1 kB) in ``folder``: one written by pydicom, the
    others its bytes with another SOP Instance UID of the same length."""
    folder.mkdir()
    template = write_part10(folder / "template",
                            make_image(0, rows=16, columns=16,
                                       sop_instance_uid=_TEMPLATE_UID),
                            ExplicitVRLittleEndian).read_bytes()
    (folder / "template").unlink()
    assert template.count(_TEMPLATE_UID.encode()) == 2
    paths = []
    for n in range(count):
        path = folder / f"{n:05d}.dcm"
        path.write_bytes(template.replace(_TEMPLATE_UID.encode(),
                                          uid(77, 1_000_000_000 + n).encode()))
        paths.append(path)
    return paths


async def _send(folder: Path) -> list[StoreResult]:
    async def answer(peer: RawPeer, request: Request) -> None:
        await peer.send(store_response(request, 0))

    async with raw_scp(answer, contexts={SECONDARY_CAPTURE: [ExplicitVRLittleEndian]}
                       ) as (port, _):
        return await store_paths("127.0.0.1", port, folder)


def test_a_result_keeps_a_few_hundred_bytes(tmp_path: Path) -> None:
    files = _files(tmp_path / "run", COUNT)
    _files(tmp_path / "warm", 3)
    run(_send(tmp_path / "warm"))  # the modules a run imports, imported
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        results = run(_send(tmp_path / "run"))
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    kept = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    size = results[0].size
    assert [r.to_dict() for r in results] == [
        {"path": str(path), "sop_instance_uid": uid(77, 1_000_000_000 + n), "status": 0,
         "ok": True, "error": None, "error_comment": None, "size": size,
         "transfer_syntax_uid": ExplicitVRLittleEndian, "converted_to": None, "sent": True,
         "attempts": 1, "retryable": False, "not_dicom": False, "dicomdir": False,
         "association_failed": False,
         "dropped_meta": [], "offending_elements": [], "note": None}
        for n, path in enumerate(files)]
    assert kept / COUNT < BOUND, f"{kept / COUNT:.0f} bytes kept per result"


def test_result_fields_read_and_written_as_declared() -> None:
    """The fields kept compactly read back as their types say, in every way a
    dataclass is used: constructor, attributes, lists appended to, ==, repr,
    replace, copy and pickle."""
    result = StoreResult(path=Path("/data/a.dcm"), dropped_meta=["(0002,0001)"])
    assert result.path == Path("/data/a.dcm") and isinstance(result.path, Path)
    assert result.dropped_meta == ["(0002,0001)"] and result.offending_elements == []
    result.offending_elements.append("(0028,0010)")
    assert result.offending_elements == ["(0028,0010)"]
    assert result.to_dict()["offending_elements"] == ["(0028,0010)"]
    result.path = Path("b.dcm")
    assert result.to_dict()["path"] == "b.dcm"
    assert repr(result).startswith("StoreResult(path=PosixPath('b.dcm'), ")
    assert "dropped_meta=['(0002,0001)'], offending_elements=['(0028,0010)']" in repr(result)
    for again in (dataclasses.replace(result), copy.copy(result), copy.deepcopy(result),
                  pickle.loads(pickle.dumps(result))):
        assert again == result and again.to_dict() == result.to_dict()
    assert dataclasses.replace(result, dropped_meta=[]) != result
    empty = StoreResult(path=Path("c.dcm"))
    assert empty.to_dict()["dropped_meta"] == [] == empty.dropped_meta
    assert [f.name for f in dataclasses.fields(StoreResult)] == list(result.to_dict())
