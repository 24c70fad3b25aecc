"""StorageIndex: add, get, remove, counts, C-FIND style matching, reindex."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian

from dicomnet.errors import ConfigurationError
from dicomnet.storage import (
    AtomicWriter,
    IndexedInstance,
    Layout,
    StorageError,
    StorageIndex,
    UnsafeNameError,
    read_part10,
)

from .helpers import CT_IMAGE_STORAGE, make_dataset, write_part10_file

U = "1.2.826.0.1.3680043.8.498."


@pytest.fixture
def index(tmp_path: Path) -> Iterator[StorageIndex]:
    with StorageIndex(tmp_path / "index.sqlite") as idx:
        yield idx


def add(index: StorageIndex, n: int, **kw: str) -> None:
    ds = make_dataset(sop_instance_uid=f"{U}{n}", **kw)
    index.add_instance(
        ds,
        relative_path=f"{ds.StudyInstanceUID}/{ds.SeriesInstanceUID}/{ds.SOPInstanceUID}.dcm",
        transfer_syntax_uid=ExplicitVRLittleEndian,
        size=1000 + n,
        calling_ae="STORESCU",
        peer_fingerprint=None,
    )


@pytest.fixture
def populated(index: StorageIndex) -> StorageIndex:
    # Patient A: one study (CT + MR series); patient B: two studies.
    add(
        index,
        1,
        patient_id="A",
        patient_name="Smith^John",
        study_uid=U + "10",
        series_uid=U + "100",
        modality="CT",
        study_date="20240110",
    )
    add(
        index,
        2,
        patient_id="A",
        patient_name="Smith^John",
        study_uid=U + "10",
        series_uid=U + "100",
        modality="CT",
        study_date="20240110",
    )
    add(
        index,
        3,
        patient_id="A",
        patient_name="Smith^John",
        study_uid=U + "10",
        series_uid=U + "101",
        modality="MR",
        study_date="20240110",
    )
    add(
        index,
        4,
        patient_id="B",
        patient_name="Smythe^Jane",
        study_uid=U + "20",
        series_uid=U + "200",
        modality="CT",
        study_date="20231231",
    )
    add(
        index,
        5,
        patient_id="B",
        patient_name="Smythe^Jane",
        study_uid=U + "21",
        series_uid=U + "210",
        modality="US",
        study_date="20240301",
    )
    return index


def test_schema_and_pragmas(tmp_path: Path) -> None:
    path = tmp_path / "index.sqlite"
    StorageIndex(path).close()
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(1,)]
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"patient", "study", "series", "instance", "schema_version"} <= tables
        db.execute("UPDATE schema_version SET version = 99")
        db.commit()
    finally:
        db.close()
    with pytest.raises(StorageError, match="schema version 99"):
        StorageIndex(path)


def test_add_and_get(index: StorageIndex) -> None:
    ds = make_dataset(sop_class_uid=CT_IMAGE_STORAGE)
    when = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    index.add_instance(
        ds,
        relative_path="a/b/c.dcm",
        transfer_syntax_uid=ExplicitVRLittleEndian,
        size=4242,
        calling_ae="MODALITY1",
        peer_fingerprint="sha256:ab:cd",
        sha256="00" * 32,
        received_at=when,
    )
    assert index.get_instance(ds.SOPInstanceUID) == IndexedInstance(
        sop_instance_uid=ds.SOPInstanceUID,
        sop_class_uid=CT_IMAGE_STORAGE,
        series_instance_uid=ds.SeriesInstanceUID,
        study_instance_uid=ds.StudyInstanceUID,
        patient_id="PID-1",
        instance_number="1",
        transfer_syntax_uid=ExplicitVRLittleEndian,
        relative_path="a/b/c.dcm",
        size=4242,
        sha256="00" * 32,
        received_at="2024-05-06T07:08:09.123456Z",
        calling_ae="MODALITY1",
        peer_fingerprint="sha256:ab:cd",
    )
    assert index.get_instance("1.2.3.4") is None
    assert index.count() == {"patients": 1, "studies": 1, "series": 1, "instances": 1}


@pytest.mark.parametrize("relative", ["../x.dcm", "/etc/passwd", "a/../../b.dcm", "a\\b.dcm"])
def test_add_refuses_unsafe_relative_path(index: StorageIndex, relative: str) -> None:
    with pytest.raises(UnsafeNameError):
        index.add_instance(
            make_dataset(),
            relative_path=relative,
            transfer_syntax_uid=ExplicitVRLittleEndian,
            size=1,
            calling_ae="X",
            peer_fingerprint=None,
        )
    assert index.count()["instances"] == 0


def test_add_needs_the_uids(index: StorageIndex) -> None:
    ds = make_dataset()
    del ds.SeriesInstanceUID
    with pytest.raises(StorageError, match="SeriesInstanceUID"):
        index.add_instance(
            ds,
            relative_path="x.dcm",
            transfer_syntax_uid="1.2",
            size=1,
            calling_ae="",
            peer_fingerprint=None,
        )
    assert index.count() == {"patients": 0, "studies": 0, "series": 0, "instances": 0}


def test_add_is_one_transaction(index: StorageIndex) -> None:
    add(index, 1)
    # Same path, other instance: the UNIQUE path constraint fails on the last
    # INSERT, after patient/study/series rows were written; all must roll back.
    ds = make_dataset(
        sop_instance_uid=U + "2", patient_id="OTHER", study_uid=U + "99", series_uid=U + "999"
    )
    with pytest.raises(StorageError):
        index.add_instance(
            ds,
            relative_path=f"{U}10/{U}100/{U}1.dcm",
            transfer_syntax_uid=ExplicitVRLittleEndian,
            size=1,
            calling_ae="",
            peer_fingerprint=None,
        )
    assert index.count() == {"patients": 1, "studies": 1, "series": 1, "instances": 1}
    assert index.find("PATIENT", {"PatientID": "OTHER"}) == []


def test_readd_moves_and_prunes(index: StorageIndex) -> None:
    add(index, 1, patient_id="A", study_uid=U + "10", series_uid=U + "100")
    add(index, 1, patient_id="B", study_uid=U + "20", series_uid=U + "200")
    assert index.count() == {"patients": 1, "studies": 1, "series": 1, "instances": 1}
    inst = index.get_instance(U + "1")
    assert inst is not None and inst.patient_id == "B"


def test_remove_prunes_empty_parents(populated: StorageIndex) -> None:
    assert populated.remove_instance(U + "3") is True
    assert populated.remove_instance(U + "3") is False
    assert populated.count() == {"patients": 2, "studies": 3, "series": 3, "instances": 4}
    assert populated.remove_instance(U + "4")
    assert populated.count() == {"patients": 2, "studies": 2, "series": 2, "instances": 3}
    assert populated.remove_instance(U + "5")
    assert populated.count() == {"patients": 1, "studies": 1, "series": 1, "instances": 2}


def test_find_exact_and_universal(populated: StorageIndex) -> None:
    assert populated.find("PATIENT", {"PatientID": "A", "PatientName": ""}) == [
        {"PatientID": "A", "PatientName": "Smith^John"}
    ]
    assert [r["PatientID"] for r in populated.find("PATIENT", {"PatientID": "*"})] == ["A", "B"]
    studies = populated.find("STUDY", {"PatientID": "B", "StudyDate": ""})
    assert studies == [
        {"PatientID": "B", "StudyInstanceUID": U + "20", "StudyDate": "20231231"},
        {"PatientID": "B", "StudyInstanceUID": U + "21", "StudyDate": "20240301"},
    ]


def test_find_wildcards(populated: StorageIndex) -> None:
    names = populated.find("PATIENT", {"PatientName": "Sm?th^*"})
    assert [r["PatientID"] for r in names] == ["A"]
    names = populated.find("PATIENT", {"PatientName": "Sm*"})
    assert [r["PatientID"] for r in names] == ["A", "B"]
    assert populated.find("PATIENT", {"PatientName": "smith*"}) == []  # case sensitive
    # GLOB's own [ ] are plain characters in a DICOM value.
    assert populated.find("PATIENT", {"PatientName": "[S]*"}) == []


def test_find_date_ranges(populated: StorageIndex) -> None:
    def dates(value: str) -> list[str]:
        return [r["StudyInstanceUID"] for r in populated.find("STUDY", {"StudyDate": value})]

    assert dates("20240101-20240131") == [U + "10"]
    assert dates("20240101-") == [U + "10", U + "21"]
    assert dates("-20231231") == [U + "20"]
    assert dates("20231231-20240301") == [U + "10", U + "20", U + "21"]
    assert dates("20240110") == [U + "10"]
    assert dates("20250101-") == []


def test_find_series_image_and_uid_lists(populated: StorageIndex) -> None:
    series = populated.find("SERIES", {"StudyInstanceUID": U + "10", "Modality": ""})
    assert series == [
        {
            "PatientID": "A",
            "StudyInstanceUID": U + "10",
            "SeriesInstanceUID": U + "100",
            "Modality": "CT",
        },
        {
            "PatientID": "A",
            "StudyInstanceUID": U + "10",
            "SeriesInstanceUID": U + "101",
            "Modality": "MR",
        },
    ]
    images = populated.find("IMAGE", {"SOPInstanceUID": f"{U}1\\{U}4\\{U}9"})
    assert [r["SOPInstanceUID"] for r in images] == [U + "1", U + "4"]


def test_find_modalities_in_study(populated: StorageIndex) -> None:
    found = populated.find("STUDY", {"ModalitiesInStudy": "MR"})
    assert found == [
        {"PatientID": "A", "StudyInstanceUID": U + "10", "ModalitiesInStudy": "CT\\MR"}
    ]
    found = populated.find("STUDY", {"ModalitiesInStudy": "US\\MR"})
    assert [r["StudyInstanceUID"] for r in found] == [U + "10", U + "21"]


def test_find_refuses_unknown_keys(populated: StorageIndex) -> None:
    with pytest.raises(ConfigurationError):
        populated.find("PATIENT", {"StudyDate": ""})  # below the query level
    with pytest.raises(ConfigurationError):
        populated.find("IMAGE", {"NoSuchKeyword": ""})
    assert "ModalitiesInStudy" in StorageIndex.supported_keys("STUDY")
    assert "Modality" not in StorageIndex.supported_keys("STUDY")


def test_threads_share_one_index(index: StorageIndex) -> None:
    errors: list[BaseException] = []

    def worker(start: int) -> None:
        try:
            for n in range(start, start + 20):
                add(index, n, series_uid=f"{U}{7000 + n % 3}")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k * 100,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert index.count()["instances"] == 80


def _store(root: Path, n: int, ts: str = ExplicitVRLittleEndian) -> tuple[str, Path]:
    """Store one instance durably the way the SCP does; return its relative path."""
    ds = make_dataset(sop_instance_uid=f"{U}{n}")
    staging = write_part10_file(root.parent / f"staging-{n}.dcm", ds, ts)
    relative = Layout.HIERARCHICAL.relative_path(
        sop_instance_uid=ds.SOPInstanceUID,
        study_instance_uid=ds.StudyInstanceUID,
        series_instance_uid=ds.SeriesInstanceUID,
    )
    dest = Layout.HIERARCHICAL.destination(
        root,
        sop_instance_uid=ds.SOPInstanceUID,
        study_instance_uid=ds.StudyInstanceUID,
        series_instance_uid=ds.SeriesInstanceUID,
    )
    with AtomicWriter(dest) as writer:
        writer.write(staging.read_bytes())
        writer.commit()
    staging.unlink()
    return relative, dest


def test_reindex_adds_missing_rows_and_prunes(root: Path, index: StorageIndex) -> None:
    rel1, _ = _store(root, 1)
    rel2, path2 = _store(root, 2, DeflatedExplicitVRLittleEndian)
    rel3, path3 = _store(root, 3)
    (root / "README.txt").write_bytes(b"not dicom")
    (root / ".abc.dicomnet-part").write_bytes(b"partial")
    # Instance 3 was indexed, then its file vanished.
    index.add_instance(
        make_dataset(sop_instance_uid=f"{U}3"),
        relative_path=rel3,
        transfer_syntax_uid=ExplicitVRLittleEndian,
        size=1,
        calling_ae="X",
        peer_fingerprint=None,
    )
    path3.unlink()

    result = index.reindex(root)
    assert (result.added, result.removed, result.skipped) == (2, 1, 1)
    assert index.get_instance(f"{U}3") is None
    inst = index.get_instance(f"{U}2")
    assert inst is not None
    assert inst.relative_path == rel2
    assert inst.transfer_syntax_uid == DeflatedExplicitVRLittleEndian
    assert inst.size == path2.stat().st_size == read_part10(path2).size
    assert inst.calling_ae == ""
    assert index.count() == {"patients": 1, "studies": 1, "series": 1, "instances": 2}
    found = index.find("IMAGE", {"SOPInstanceUID": "", "PatientName": "Doe^Jane"})
    assert [r["SOPInstanceUID"] for r in found] == [f"{U}1", f"{U}2"]
    assert rel1.endswith(f"{U}1.dcm")

    again = index.reindex(root)
    assert (again.added, again.removed, again.skipped) == (0, 0, 1)


def test_reindex_does_not_count_the_index_itself(root: Path) -> None:
    """A C-STORE SCP keeps its index in its root: not a file that was skipped."""
    _store(root, 1)
    with StorageIndex(root / "index.sqlite") as index:
        assert (root / "index.sqlite-wal").exists()
        result = index.reindex(root)
        assert (result.added, result.removed, result.skipped) == (1, 0, 0)


def test_find_time_range_bounds_include_the_bound_itself(populated: StorageIndex) -> None:
    def times(value: str) -> int:
        return len(populated.find("STUDY", {"StudyTime": value}))

    # Every study was at 101500; "-1015" means "up to 10:15 inclusive".
    assert times("-1015") == 3
    assert times("1015-1015") == 3
    assert times("-1014") == 0
    assert times("1016-") == 0
    assert times("101500") == 3
