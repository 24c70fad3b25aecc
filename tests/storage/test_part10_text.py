"""A file named by its text (``read_part10`` of a str, ``store_paths``): kept as
that text, spelled as its ``Path`` spells it, and made a ``Path`` only when
``Part10Info.path`` is asked for, which then says what it said before."""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian

from dicomnet.services.storage import StorageSCP, StoreResult, store_paths
from dicomnet.storage import part10
from dicomnet.storage.part10 import path_text, read_part10
from tests.aio.helpers import LOOPBACK, run, running_server
from tests.storage.dicomfiles import make_image, write_part10

SPELLINGS = ["a/b.dcm", "/abs/b.dcm", "a//b", "./a", "a/.", "a/", "", ".", "/", "//a", "///a",
             "a/./b", "a/../b", ".a/b", "a/.b", "..", "a/b/", "./", "a/..."]


@pytest.mark.parametrize("text", SPELLINGS)
def test_path_text_spells_as_a_path_does(text: str) -> None:
    assert path_text(text) == str(Path(text))
    assert path_text(Path(text)) == str(Path(text))


def test_a_text_spelled_so_is_the_callers_own() -> None:
    text = "".join(["a/", "b.dcm"])  # a str of its own, not an interned constant
    assert path_text(text) is text


def test_a_file_read_by_its_text_is_kept_as_text_until_its_path_is_asked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    image = write_part10(tmp_path / "in" / "a.dcm", make_image(1), ExplicitVRLittleEndian)
    by_path = read_part10(image)
    monkeypatch.chdir(tmp_path)
    info = read_part10("./in//a.dcm")
    assert part10._PATH_SLOT.__get__(info) == "in/a.dcm"  # no Path made
    assert info.path_text == "in/a.dcm"
    assert info.path == Path("in/a.dcm") and isinstance(info.path, Path)
    assert part10._PATH_SLOT.__get__(info) is info.path  # made once, then kept
    again = read_part10(str(image))
    assert again == by_path and hash(again) == hash(by_path)
    assert repr(again) == repr(by_path)
    assert dataclasses.replace(again, size=1).path == image
    assert pickle.loads(pickle.dumps(again)) == by_path
    with pytest.raises(dataclasses.FrozenInstanceError):
        again.path = image  # type: ignore[misc]


def test_store_paths_names_each_file_as_its_path_spells_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Files listed by the caller in other spellings (``listed``): each result's
    path, and its JSON text, as ``Path`` spells them, as before; the caller's own
    str is kept where it is spelled so (a listing held once)."""
    for n in range(3):
        write_part10(tmp_path / "in" / f"{n}.dcm", make_image(n), ExplicitVRLittleEndian)
    monkeypatch.chdir(tmp_path)
    given = ["./in/0.dcm", "in//1.dcm", "".join(["in/", "2.dcm"])]
    scp = StorageSCP(tmp_path / "out")

    async def send() -> list[StoreResult]:
        async with running_server(providers=[scp]) as server:
            return await store_paths(LOOPBACK, server.port, given, listed=True)

    try:
        results = run(send())
    finally:
        scp.close()
    assert [r.ok for r in results] == [True] * 3
    assert [r.path for r in results] == [Path(f"in/{n}.dcm") for n in range(3)]
    assert [r.to_dict()["path"] for r in results] == [f"in/{n}.dcm" for n in range(3)]
    assert results[2].to_dict()["path"] is given[2]
