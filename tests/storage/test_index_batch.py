"""StorageIndex.add_instances: many rows in one transaction, as add_instance would
record them one by one; a row that cannot be indexed is skipped, not fatal."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from dicomnet.storage import (
    HeaderAttributes,
    IndexedInstance,
    NewInstance,
    StorageIndex,
    read_header,
)

from .helpers import make_dataset, received

U = "1.2.826.0.1.3680043.8.498."
WHEN = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)


@pytest.fixture
def index(tmp_path: Path) -> Iterator[StorageIndex]:
    with StorageIndex(tmp_path / "batch.sqlite") as idx:
        yield idx


@pytest.fixture
def reference(tmp_path: Path) -> Iterator[StorageIndex]:
    """An index filled one instance at a time with add_instance."""
    with StorageIndex(tmp_path / "single.sqlite") as idx:
        yield idx


def header_of(ds: Dataset, syntax: str) -> HeaderAttributes:
    """What the SCP reads from a received data set (its Part 10 header, then the data set)."""
    return read_header(received(ds, syntax), None, syntax)


def row(ds: Dataset | HeaderAttributes, sop_uid: str, *, size: int = 100,
        fingerprint: str | None = None) -> NewInstance:
    return NewInstance(ds, relative_path=f"files/{sop_uid}.dcm",
                       transfer_syntax_uid=ExplicitVRLittleEndian, size=size,
                       calling_ae="STORESCU", peer_fingerprint=fingerprint,
                       sha256="ab" * 32, received_at=WHEN)


def add_one(index: StorageIndex, new: NewInstance) -> None:
    index.add_instance(new.ds, relative_path=new.relative_path,
                       transfer_syntax_uid=new.transfer_syntax_uid, size=new.size,
                       calling_ae=new.calling_ae, peer_fingerprint=new.peer_fingerprint,
                       sha256=new.sha256, received_at=new.received_at)


def everything(index: StorageIndex) -> list[dict[str, str]]:
    """Every key of every instance, as a C-FIND at IMAGE level returns them."""
    keys = {k: "" for k in StorageIndex.supported_keys("IMAGE")}
    return index.find("IMAGE", keys)


def instances(index: StorageIndex, sop_uids: Sequence[str]) -> list[IndexedInstance | None]:
    return [index.get_instance(uid) for uid in sop_uids]


def three_datasets() -> list[Dataset]:
    """Two instances of one series (patient A) and one of another patient's study."""
    first = make_dataset(sop_instance_uid=U + "1", patient_id="A", patient_name="Doe^Jane",
                         study_uid=U + "10", series_uid=U + "100", study_date="20240115")
    second = make_dataset(sop_instance_uid=U + "2", patient_id="A", patient_name="Doe^Jane",
                          study_uid=U + "10", series_uid=U + "100", study_date="20240115",
                          InstanceNumber="2")
    third = make_dataset(sop_instance_uid=U + "3", patient_id="B", patient_name="Ærø^Zoë",
                         study_uid=U + "20", series_uid=U + "200", study_date="20231231",
                         modality="MR", SpecificCharacterSet="ISO_IR 192")
    return [first, second, third]


def test_three_rows_in_one_call_match_add_instance(index: StorageIndex,
                                                   reference: StorageIndex) -> None:
    datasets = three_datasets()
    rows = [
        row(datasets[0], U + "1"),  # a Dataset
        row(header_of(datasets[1], ImplicitVRLittleEndian), U + "2", fingerprint="f" * 64),
        row(header_of(datasets[2], ExplicitVRBigEndian), U + "3", size=300),
    ]
    assert index.add_instances(rows) == 3
    for ds, new in zip(datasets, rows, strict=True):
        add_one(reference, row(ds, ds.SOPInstanceUID, size=new.size,
                               fingerprint=new.peer_fingerprint))

    counts = {"patients": 2, "studies": 2, "series": 2, "instances": 3}
    assert index.count() == reference.count() == counts
    sop_uids = [U + "1", U + "2", U + "3"]
    assert instances(index, sop_uids) == instances(reference, sop_uids)
    assert everything(index) == everything(reference)

    second = index.get_instance(U + "2")
    assert second == IndexedInstance(
        sop_instance_uid=U + "2", sop_class_uid="1.2.840.10008.5.1.4.1.1.7",
        series_instance_uid=U + "100", study_instance_uid=U + "10", patient_id="A",
        instance_number="2", transfer_syntax_uid=ExplicitVRLittleEndian,
        relative_path=f"files/{U}2.dcm", size=100, sha256="ab" * 32,
        received_at="2024-05-06T07:08:09.123456Z", calling_ae="STORESCU",
        peer_fingerprint="f" * 64,
    )
    patients = index.find("PATIENT", {"PatientName": "", "PatientBirthDate": "",
                                      "PatientSex": ""})
    assert patients == [
        {"PatientID": "A", "PatientName": "Doe^Jane", "PatientBirthDate": "19700101",
         "PatientSex": "F"},
        {"PatientID": "B", "PatientName": "Ærø^Zoë", "PatientBirthDate": "19700101",
         "PatientSex": "F"},
    ]
    studies = index.find("STUDY", {"StudyDate": "", "AccessionNumber": "",
                                   "ModalitiesInStudy": ""})
    assert [(s["StudyInstanceUID"], s["StudyDate"], s["AccessionNumber"],
             s["ModalitiesInStudy"]) for s in studies] == [
        (U + "10", "20240115", "ACC.10", "OT"),
        (U + "20", "20231231", "ACC.20", "MR"),
    ]


@pytest.mark.parametrize("kind", ["dataset", "header"])
def test_a_row_without_study_uid_is_skipped(index: StorageIndex, kind: str,
                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="dicomnet.storage")
    datasets = three_datasets()
    del datasets[1].StudyInstanceUID
    bad: Dataset | HeaderAttributes = datasets[1]
    if kind == "header":
        bad = header_of(datasets[1], ExplicitVRLittleEndian)
        assert bad.text("StudyInstanceUID") is None
    rows = [row(datasets[0], U + "1"), row(bad, U + "2"), row(datasets[2], U + "3")]

    assert index.add_instances(rows) == 2

    assert index.count() == {"patients": 2, "studies": 2, "series": 2, "instances": 2}
    assert index.get_instance(U + "2") is None
    first, third = index.get_instance(U + "1"), index.get_instance(U + "3")
    assert first is not None and first.study_instance_uid == U + "10"
    assert third is not None and third.study_instance_uid == U + "20"
    warnings = [r for r in caplog.records if r.name == "dicomnet.storage"]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    assert f"files/{U}2.dcm" in warnings[0].getMessage()
    assert "StudyInstanceUID" in warnings[0].getMessage()


def test_only_rows_without_uids_records_nothing(index: StorageIndex) -> None:
    ds = make_dataset(sop_instance_uid=U + "1")
    del ds.SeriesInstanceUID
    assert index.add_instances([row(ds, U + "1")]) == 0
    assert index.count() == {"patients": 0, "studies": 0, "series": 0, "instances": 0}


def test_an_empty_batch_returns_zero(index: StorageIndex) -> None:
    assert index.add_instances([]) == 0
    assert index.add_instances(iter(())) == 0
    assert index.count() == {"patients": 0, "studies": 0, "series": 0, "instances": 0}


def test_any_iterable_of_rows(index: StorageIndex) -> None:
    datasets = three_datasets()
    assert index.add_instances(row(ds, ds.SOPInstanceUID) for ds in datasets) == 3
    assert index.count()["instances"] == 3


def test_a_series_in_one_batch_then_moved_matches_add_instance(
        index: StorageIndex, reference: StorageIndex) -> None:
    """Rows of one series share their parents; a re-sent instance that moves to
    another series in a later batch leaves no empty parents behind."""
    series = [make_dataset(sop_instance_uid=f"{U}{n}", patient_id="A", study_uid=U + "10",
                           series_uid=U + "100", InstanceNumber=str(n)) for n in range(1, 6)]
    moved = [make_dataset(sop_instance_uid=f"{U}{n}", patient_id="C", study_uid=U + "30",
                          series_uid=U + "300", patient_name="New^Name",
                          InstanceNumber=str(n)) for n in (1, 2, 3, 4, 5)]
    for batch in (series, moved[:2], moved[2:]):
        rows = [row(header_of(ds, ExplicitVRLittleEndian), ds.SOPInstanceUID) for ds in batch]
        assert index.add_instances(rows) == len(batch)
        for ds in batch:
            add_one(reference, row(ds, ds.SOPInstanceUID))
        assert index.count() == reference.count()
        assert everything(index) == everything(reference)

    assert index.count() == {"patients": 1, "studies": 1, "series": 1, "instances": 5}
    assert [r["PatientName"] for r in everything(index)] == ["New^Name"] * 5


def test_an_sql_failure_loses_only_the_faulty_row(index: StorageIndex,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    """An SQL failure on one row (a relative path already used by another
    instance) rolls the batch back, then the rows are written one by one: only
    the faulty one is missing, and the failure is logged."""
    datasets = three_datasets()
    rows = [row(datasets[0], U + "1"), row(datasets[1], U + "2")]
    clash = NewInstance(datasets[2], relative_path=f"files/{U}1.dcm",
                        transfer_syntax_uid=ExplicitVRLittleEndian, size=1,
                        calling_ae="STORESCU", peer_fingerprint=None)
    with caplog.at_level(logging.WARNING, logger="dicomnet.storage"):
        assert index.add_instances([*rows, clash]) == 2
    assert "UNIQUE" in caplog.text
    assert index.count()["instances"] == 2
    assert index.get_instance(str(datasets[2].SOPInstanceUID)) is None
    assert index.add_instances([row(datasets[2], U + "3")]) == 1  # still usable
    assert index.count()["instances"] == 3


def test_an_unsafe_relative_path_skips_only_that_row(index: StorageIndex) -> None:
    datasets = three_datasets()
    bad = NewInstance(datasets[2], relative_path="../escape.dcm",
                      transfer_syntax_uid=ExplicitVRLittleEndian, size=1,
                      calling_ae="STORESCU", peer_fingerprint=None)
    assert index.add_instances([row(datasets[0], U + "1"), bad]) == 1
    assert index.count()["instances"] == 1



@pytest.mark.parametrize("changes", [
    # Each row of one series changes one more parent value: the last row's win.
    [{}, {"SeriesDescription": "Coronal"},
     {"SeriesDescription": "Coronal", "study_date": "20240116"},
     {"SeriesDescription": "Coronal", "study_date": "20240116", "patient_name": "Doe^Janet"}],
    # A change, then back: the row after the change must restore the values.
    [{}, {"patient_name": "Doe^Janet", "study_date": "20240116"}, {}],
    [{}, {}, {"SeriesDescription": "Coronal"}, {}, {}],
], ids=["accumulating", "back-and-forth", "series-only"])
def test_later_rows_of_a_series_update_its_parents(
        index: StorageIndex, reference: StorageIndex, changes: list[dict[str, str]]) -> None:
    """Parents end with the last row's values, as with add_instance one by one."""
    batch = [make_dataset(sop_instance_uid=f"{U}{n}", patient_id="A", study_uid=U + "10",
                          series_uid=U + "100", **change)
             for n, change in enumerate(changes, start=1)]
    assert index.add_instances([row(ds, ds.SOPInstanceUID) for ds in batch]) == len(batch)
    for ds in batch:
        add_one(reference, row(ds, ds.SOPInstanceUID))
    assert everything(index) == everything(reference)
    last = batch[-1]
    found = index.find("SERIES", {"PatientName": "", "StudyDate": "", "SeriesDescription": ""})
    assert found == [{"PatientID": "A", "StudyInstanceUID": U + "10",
                      "SeriesInstanceUID": U + "100", "PatientName": str(last.PatientName),
                      "StudyDate": last.StudyDate,
                      "SeriesDescription": last.SeriesDescription}]


def test_a_row_with_an_unknown_vr_is_indexed_with_the_others(index: StorageIndex) -> None:
    """A received data set whose Patient ID (0010,0020) came with the VR bytes "LN"
    (no such VR; found by the server_receive fuzz target): pydicom will not convert
    it (NotImplementedError), which failed the index thread's whole batch, every
    object's row in it lost. The value is read by its dictionary VR, as for UN,
    and the three rows are written."""
    datasets = three_datasets()
    raw = bytearray(received(datasets[1], ExplicitVRLittleEndian))
    at = raw.index(b"\x10\x00\x20\x00LO")
    raw[at + 4:at + 6] = b"LN"
    bad = read_header(bytes(raw), None, ExplicitVRLittleEndian)
    assert bad.text("PatientID") == "A"
    rows = [row(datasets[0], U + "1"), row(bad, U + "2"), row(datasets[2], U + "3")]

    assert index.add_instances(rows) == 3

    second = index.get_instance(U + "2")
    assert second is not None and second.patient_id == "A"
    assert index.count()["instances"] == 3


def test_a_row_that_fails_unexpectedly_costs_only_its_own(
        index: StorageIndex, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever reading one object's attributes raises (pydicom raises many kinds
    on damaged values), that object is said and skipped, the batch written."""
    from dicomnet.storage import index as index_module
    from dicomnet.storage import index_tables

    real = index_tables.row_values

    def row_values(new: NewInstance) -> object:
        if new.relative_path.endswith("2.dcm"):
            raise NotImplementedError("Unknown Value Representation 'QQ'")
        return real(new)

    monkeypatch.setattr(index_module, "row_values", row_values)
    caplog.set_level(logging.WARNING, logger="dicomnet.storage")
    datasets = three_datasets()
    rows = [row(ds, U + str(n)) for n, ds in enumerate(datasets, 1)]

    assert index.add_instances(rows) == 2

    assert index.get_instance(U + "2") is None
    assert [r.getMessage() for r in caplog.records] == [
        f"not indexed: files/{U}2.dcm: cannot read its attributes "
        "(NotImplementedError: Unknown Value Representation 'QQ')"]
