"""The store thread's paths as text (``Layout.place_in``, ``CommitResult.filename``,
``AtomicWriter.destination_name``) say what the Path API says."""

from __future__ import annotations

from pathlib import Path

import pytest

from dicomnet.storage import AtomicWriter, CommitOutcome, CommitResult, Layout, UnsafeNameError

STUDY, SERIES, SOP = "1.2.3.10", "1.2.3.100", "1.2.3.1000"


@pytest.mark.parametrize("layout", [Layout.HIERARCHICAL, Layout.FLAT])
def test_place_in_names_what_place_names(tmp_path: Path, layout: Layout) -> None:
    uids = {"sop_instance_uid": SOP, "study_instance_uid": STUDY,
            "series_instance_uid": SERIES}
    folder, path = layout.place(tmp_path, **uids)
    placed, name = layout.place_in(str(tmp_path), **uids)
    assert (placed.path, placed.text, placed.prefix + name) == (folder, str(folder), str(path))
    assert placed.relative + name == layout.relative_path(**uids)
    # One object per folder: the store thread gathers a round's folders by identity.
    assert layout.place_in(str(tmp_path), **{**uids, "sop_instance_uid": "1.2.3.1001"})[0] \
        is placed


def test_place_in_checks_as_place_does(tmp_path: Path) -> None:
    for uids in ({"sop_instance_uid": "1.2.x", "study_instance_uid": STUDY,
                  "series_instance_uid": SERIES},
                 {"sop_instance_uid": SOP, "study_instance_uid": "../1",
                  "series_instance_uid": SERIES}):
        with pytest.raises(UnsafeNameError):
            Layout.HIERARCHICAL.place(tmp_path, **uids)
        with pytest.raises(UnsafeNameError):
            Layout.HIERARCHICAL.place_in(str(tmp_path), **uids)


def test_a_commit_result_keeps_its_path_as_text(tmp_path: Path) -> None:
    dest = tmp_path / "a" / "b.dcm"
    with AtomicWriter(dest) as writer:
        writer.write(b"data")
        result = writer.commit()
    assert (writer.destination, writer.destination_name) == (dest, str(dest))
    assert result.filename == str(dest)
    assert isinstance(result.path, Path) and result.path == dest
    assert result.stored and result.size == 4
    assert CommitResult(CommitOutcome.STORED, dest, 4) == result
    assert CommitResult(outcome=CommitOutcome.STORED, path=str(dest), size=4) == result


def test_a_commit_result_can_be_replaced_as_a_dataclass(tmp_path: Path) -> None:
    # dataclasses.replace() makes the new one with the fields' names (filename=).
    import dataclasses
    dest = tmp_path / "b.dcm"
    result = CommitResult(CommitOutcome.STORED, dest, 4)
    again = dataclasses.replace(result, size=9)
    assert (again.outcome, again.path, again.size) == (CommitOutcome.STORED, dest, 9)
    assert CommitResult(CommitOutcome.STORED, filename=str(dest), size=4) == result
    with pytest.raises(TypeError):
        CommitResult(CommitOutcome.STORED, size=4)
    with pytest.raises(TypeError):
        CommitResult(CommitOutcome.STORED, dest, 4, filename=str(dest))
