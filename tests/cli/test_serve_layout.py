"""dicomnet serve --layout: hierarchical (the default, STUDY/SERIES/SOP.dcm) or
flat (SOP.dcm in --output itself). Flat also stores objects without a Study or
Series Instance UID, which hierarchical refuses with C000, and says they are
not indexed. Sent through the real CLI (dicomnet store) to a real server
process; the files, their bytes, the index and the JSON events are checked."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from pydicom import dcmread

from tests.storage.helpers import make_dataset, write_part10_file

from .helpers import run_cli, terminated
from .test_help import _help
from .test_json_documented import _undocumented

FULL = "1.2.826.0.1.3680043.8.498.39.1"
NO_STUDY = "1.2.826.0.1.3680043.8.498.39.2"
NO_SERIES = "1.2.826.0.1.3680043.8.498.39.3"
#: Larger than what the server holds in memory (1 MiB): it spills to a temporary
#: file as it arrives, and is placed by another path of the store.
LARGE_NO_STUDY = "1.2.826.0.1.3680043.8.498.39.4"
UIDS = (FULL, NO_STUDY, NO_SERIES, LARGE_NO_STUDY)


def _files(tmp_path: Path) -> dict[str, Path]:
    """Four objects: one whole, one without its Study Instance UID, one without
    its Series Instance UID, and a large one without its Study Instance UID."""
    folder = tmp_path / "in"
    folder.mkdir()
    paths = {}
    for uid, missing in ((FULL, None), (NO_STUDY, "StudyInstanceUID"),
                         (NO_SERIES, "SeriesInstanceUID"),
                         (LARGE_NO_STUDY, "StudyInstanceUID")):
        ds = make_dataset(sop_instance_uid=uid)
        if uid == LARGE_NO_STUDY:
            ds.Rows, ds.Columns = 1200, 1500  # 1.8 MB of pixels
            ds.PixelData = bytes(range(256)) * (1200 * 1500 // 256)
        if missing is not None:
            delattr(ds, missing)
        paths[uid] = folder / f"{uid}.dcm"
        write_part10_file(paths[uid], ds)
    return paths


def _serve_and_send(serve_process: Any, tmp_path: Path, *args: str
                    ) -> tuple[dict[str, Any], list[dict[str, Any]], str, int]:
    paths = _files(tmp_path)
    proc, listening = serve_process(*args)
    code = run_cli("store", "127.0.0.1", listening["port"], *paths.values()).exit_code
    out, err = terminated(proc, 20)
    assert proc.returncode == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    return listening, [e for e in events if e["event"] in ("stored", "refused")], err, code


def _indexed(store: Path) -> set[str]:
    with sqlite3.connect(store / "index.sqlite") as db:
        return {row[0] for row in db.execute("SELECT sop_instance_uid FROM instance")}


def test_flat_stores_every_object_in_the_folder_itself(
        serve_process: Any, tmp_path: Path) -> None:
    listening, events, err, code = _serve_and_send(serve_process, tmp_path, "--layout", "flat")
    store = tmp_path / "store"
    assert listening["layout"] == "flat"
    assert code == 0
    assert sorted((e["event"], e["sop_instance_uid"]) for e in events) == [
        ("stored", uid) for uid in UIDS]
    # Each one SOP_UID.dcm right in --output, its path the event's.
    for event in events:
        uid = event["sop_instance_uid"]
        assert Path(event["path"]) == store / f"{uid}.dcm"
    on_disk = sorted(p.name for p in store.iterdir() if p.is_file()
                     and not p.name.startswith("index.sqlite"))
    assert on_disk == sorted(f"{uid}.dcm" for uid in UIDS)
    assert not [p for p in store.iterdir() if p.is_dir()]  # no study folder
    # The data sets arrived whole, element by element, pixel bytes included.
    for uid in UIDS:
        sent = dcmread(tmp_path / "in" / f"{uid}.dcm")
        received = dcmread(store / f"{uid}.dcm")
        assert received == sent
        assert received.PixelData == sent.PixelData
        assert received.file_meta.MediaStorageSOPInstanceUID == uid
    # The whole object indexed; those without a study or series not, and said so.
    assert _indexed(store) == {FULL}
    for uid in (NO_STUDY, NO_SERIES, LARGE_NO_STUDY):
        assert f"not indexed: {uid}.dcm" in err, err


def test_hierarchical_is_the_default_and_refuses_what_it_cannot_place(
        serve_process: Any, tmp_path: Path) -> None:
    listening, events, err, code = _serve_and_send(serve_process, tmp_path)
    store = tmp_path / "store"
    assert listening["layout"] == "hierarchical"
    assert code == 1  # three objects failed
    assert sorted((e["event"], e["sop_instance_uid"], e.get("status")) for e in events) == [
        ("refused", NO_STUDY, "0xC000"), ("refused", NO_SERIES, "0xC000"),
        ("refused", LARGE_NO_STUDY, "0xC000"), ("stored", FULL, None)]
    stored = next(e for e in events if e["event"] == "stored")
    ds = make_dataset()
    assert Path(stored["path"]) == (store / ds.StudyInstanceUID / ds.SeriesInstanceUID
                                    / f"{FULL}.dcm")
    assert _indexed(store) == {FULL}
    # Nothing left of the refused ones, the spilled one's temporary file included.
    assert sorted(p.relative_to(store).as_posix() for p in store.rglob("*") if p.is_file()
                  and not p.name.startswith("index.sqlite")) == [
        Path(stored["path"]).relative_to(store).as_posix()]
    assert "cannot place the object: no Study Instance UID (0020,000D)" in err
    assert "cannot place the object: no Series Instance UID (0020,000E)" in err


def test_flat_and_the_layout_key_are_in_help(serve_process: Any, tmp_path: Path) -> None:
    text = " ".join(_help("serve").split())
    assert "--layout [hierarchical|flat]" in text
    assert "SOP_UID.dcm in --output itself" in text
    proc, listening = serve_process("--layout", "flat")
    terminated(proc, 20)
    assert _undocumented(listening, text) == []
