"""The store thread's Python calls per received object, counted (not timed): a
round of data sets received in memory (``StoreDisk._start_round`` then
``_finish_round``, as the thread ``dicomnet-store`` runs them), and an index
row's checks on the thread ``dicomnet-index``. Each call is paid once per image
received."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian

from dicomnet.dimse.messages import CStoreRQ
from dicomnet.services.storage import StorageSCP
from dicomnet.services.store_answers import Stored
from dicomnet.services.store_jobs import Job
from dicomnet.storage.direct import AlignedBuffer
from dicomnet.storage.names import UnsafeNameError, _check_part, safe_relative_path
from tests.aio.test_receive_path_calls import python_calls
from tests.storage.helpers import SECONDARY_CAPTURE, make_dataset, received, sender

STUDY, SERIES = "1.2.826.0.1.3680043.8.498.10", "1.2.826.0.1.3680043.8.498.100"
ROUND = 4


def _jobs(first: int, *, aligned: bool = False) -> list[Job]:
    jobs = []
    for k in range(first, first + ROUND):
        ds = make_dataset(sop_instance_uid=f"1.2.826.0.1.3680043.8.498.{k}",
                          study_uid=STUDY, series_uid=SERIES)
        data: bytearray | AlignedBuffer = received(ds, ExplicitVRLittleEndian)
        if aligned:  # a large image's: written with O_DIRECT where the system can
            buffer = AlignedBuffer.take(1 << 20)
            buffer.append(received(ds, ExplicitVRLittleEndian) + bytes(70_000))  # padding
            data = buffer
        message = CStoreRQ(message_id=k, affected_sop_class_uid=SECONDARY_CAPTURE,
                           affected_sop_instance_uid=ds.SOPInstanceUID)
        jobs.append(Job(data, message, ExplicitVRLittleEndian, sender()))
    return jobs


def _round(scp: StorageSCP, jobs: list[Job]) -> list[Stored | BaseException]:
    return scp._finish_round(scp._start_round(jobs))


#: Python's pathlib, by the names its methods' frames carry.
_PATHLIB = ("PurePath.", "Path.", "_Flavour.", "_PosixFlavour.", "_WindowsFlavour.")


@pytest.mark.parametrize("aligned", [False, True])
def test_a_round_names_its_objects_with_strings_and_reads_each_header_once(
        tmp_path: Path, aligned: bool) -> None:
    """Paths stay text on the store thread (a pathlib Path cost ~16 Python calls
    and a dropped AttributeError per image), and no ``StoredInstance`` is made
    there: its ``path`` is made when a handler asks for it (``Stored``). The
    header's four attributes the placing needs are read in one call, and the
    path below the root is worked out once."""
    scp = StorageSCP(tmp_path / "store")
    try:
        assert all(isinstance(a, Stored) for a in _round(scp, _jobs(1)))  # warm
        jobs = _jobs(100, aligned=aligned)
        answers: list[Stored | BaseException] = []
        seen = python_calls(lambda: answers.extend(_round(scp, jobs)))
        scp.flush_index()
    finally:
        scp.close()
    paths = [a.path for a in answers if isinstance(a, Stored)]
    expected = [tmp_path / "store" / STUDY / SERIES / f"{job.message.affected_sop_instance_uid}.dcm"
                for job in jobs]
    assert paths == expected and all(type(p) is type(tmp_path) for p in paths)
    assert all(p.is_file() for p in paths)
    # Not one: the folder's Path / the name was 7 calls per answer (3.11).
    assert not [name for name in seen if name.startswith(_PATHLIB)]
    assert "StoredInstance.__init__" not in seen and "move_originator" not in seen
    assert "HeaderAttributes.text" not in seen
    assert seen.count("StoreDisk._relative") == 0
    assert seen.count("HeaderAttributes.texts") == ROUND
    assert "AlignedBuffer.__len__" not in seen and "_proc_fd_dir" not in seen
    assert seen.count("AtomicWriter.flush") <= (ROUND if aligned else 0)
    assert "CommitResult.stored" not in seen
    assert "_plan" not in seen  # the keywords' plan looked up inline
    assert seen.count("Background.put") == 1  # the round's rows queued together
    # The whole round, per object (the round's own work spread over its four):
    # 52.5 and 44 when written, 44.5 and 36 without a StoredInstance each, 40.25
    # and 33.75 with the writes' and names' helpers inline, 37.25 and 31.75 with
    # one put of the round's rows.
    assert len(seen) <= (38.5 if aligned else 33) * ROUND, len(seen) / ROUND
    with sqlite3.connect(tmp_path / "store" / "index.sqlite") as db:
        rows = db.execute("SELECT relative_path FROM instance WHERE sop_instance_uid LIKE "
                          "'%.498.10_'").fetchall()
    assert sorted(r[0] for r in rows) == sorted(
        f"{STUDY}/{SERIES}/{job.message.affected_sop_instance_uid}.dcm" for job in jobs)


def test_an_index_row_path_is_checked_in_one_python_call() -> None:
    """The index thread checks each row's path: one match for the whole path,
    not a call per component."""
    assert python_calls(lambda: safe_relative_path(f"{STUDY}/{SERIES}/1.2.3.dcm")) == [
        "safe_relative_path"]


@pytest.mark.parametrize("path", [
    "a", "a/b/c.dcm", "1.2/3.4", "é/ü", "a b/c", "a\nb", "a/.b", ".a", "a/./b", "a/../b",
    "..", ".", "", "a//b", "/a", "a/", "a\\b", "a:b", "a\x00b", "C:/x", "a/b:c/d",
])
def test_an_index_row_path_is_refused_as_by_its_components(path: str) -> None:
    """The one match refuses exactly what the checks of each component refuse."""
    def by_parts() -> bool:
        try:
            for part in path.split("/"):
                _check_part(part)
        except UnsafeNameError:
            return False
        return True

    try:
        safe_relative_path(path)
        accepted = True
    except UnsafeNameError:
        accepted = False
    assert accepted == by_parts()
