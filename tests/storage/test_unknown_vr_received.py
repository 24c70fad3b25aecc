"""A received data set whose elements carry VR bytes that name no VR (a writer's
mistake, or bytes damaged on the way; found by the server_receive fuzz target):
the server stores it as it came, places it by its Study and Series Instance
UIDs and indexes it, each value read by its dictionary VR as for UN (DCMTK
reads an unknown VR as UN too). Before, pydicom's NotImplementedError ("Unknown
Value Representation") refused it (C000) when a placing UID had such a VR, and
when only another attribute had, stored it and failed the index thread's batch,
every row in it lost."""

from __future__ import annotations

from pathlib import Path

from dicomnet.dimse.messages import CStoreRSP
from dicomnet.storage.index import StorageIndex
from dicomnet.storage.part10 import read_part10
from tests.fuzz_harness.server import data_set
from tests.storage.rawstore import raw_store


def test_elements_of_unknown_vrs_are_stored_placed_and_indexed(tmp_path: Path) -> None:
    sop, body = data_set(7, 0, 5_000)
    damaged = bytearray(body)
    for tag, vr, wrong in ((b"\x10\x00\x20\x00", b"LO", b"LN"),   # Patient ID
                           (b"\x20\x00\x0d\x00", b"UI", b"UJ"),   # Study Instance UID
                           (b"\x20\x00\x0e\x00", b"UI", b"QQ")):  # Series Instance UID
        at = damaged.index(tag + vr)
        damaged[at + 4:at + 6] = wrong
    root = tmp_path / "store"

    outcome = raw_store(root, sop, bytes(damaged))
    assert isinstance(outcome, CStoreRSP) and outcome.status == 0, outcome
    study, series = "1.2.826.0.1.3680043.8.498.77.7.1", "1.2.826.0.1.3680043.8.498.77.7.2"
    stored = root / study / series / f"{sop}.dcm"
    assert stored.read_bytes()[read_part10(stored).dataset_offset:] == bytes(damaged)
    with StorageIndex(root / "index.sqlite") as index:
        row = index.get_instance(sop)
    assert row is not None
    assert (row.patient_id, row.study_instance_uid, row.series_instance_uid) == (
        "FUZZ", study, series)
