"""Under ``duplicates="overwrite"``, the check after an unclean stop finishes the
overwrites the stop interrupted (storage.recovery): a server killed between
answering a copy stored under another path and writing its row leaves both
copies, the row naming the old one. The copy made later wins; under keep or
reject, or when the order is unclear, both are left and said.

The stores are made as a killed server leaves them (the files' times set with
``os.utime``); live stores racing the check are held as in test_recovery_live.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path
from typing import Any

import pytest
from pydicom.uid import ExplicitVRLittleEndian

from dicomnet.services.storage import StorageSCP
from dicomnet.storage.files import Layout
from dicomnet.storage.index_tables import row_values
from dicomnet.storage.recovery import RowRecovery
from dicomnet.storage.rows import row_from_file
from tests.storage.dicomfiles import make_image, uid, write_part10
from tests.storage.test_recovery_live import HeldWrite, instance, serve_beside
from tests.storage.test_recovery_start import (
    END,
    STUDY,
    killed_store,
    rows_by_path,
    said,
    send,
    start_and_wait,
    table,
)

OTHER = uid(3)  # the series the second copy went to
NOW = time.time()


def interrupted_overwrite(root: Path, *, old: float = NOW - 200,
                          new: float = NOW - 100) -> tuple[str, str]:
    """Object 1 indexed at copy A (made at ``old``), and copy B under series
    OTHER (made at ``new``, Instance Number 77), which a server killed before its
    row left without one; (A, B) relative."""
    a = killed_store(root, (1,), indexed=(1,))[1]
    ds = make_image(1, study=STUDY, series=OTHER)
    ds.InstanceNumber = "77"
    path = Layout.HIERARCHICAL.destination(
        root, sop_instance_uid=ds.SOPInstanceUID, study_instance_uid=STUDY,
        series_instance_uid=OTHER)
    path.parent.mkdir(parents=True)
    write_part10(path, ds, ExplicitVRLittleEndian)
    os.utime(root / a, (old, old))
    os.utime(path, (new, new))
    return a, path.relative_to(root).as_posix()


def second_copy(b: str, a: str) -> str:
    return f"{b} holds {uid(9, 1)}, which the index finds at {a}: a second copy"


def test_the_later_copy_replaces_the_indexed_one(
        root: Path, caplog: pytest.LogCaptureFixture) -> None:
    a, b = interrupted_overwrite(root)
    with caplog.at_level(logging.INFO, logger="dicomnet"):
        scp = start_and_wait(root, duplicates="overwrite")
    assert scp.recovery.complete
    assert (scp.recovery.added, scp.recovery.left, scp.recovery.finished) == (0, 0, 1)
    assert rows_by_path(root) == {b: row_values(row_from_file(root, b)).instance}
    assert instance(root) == [(uid(9, 1), b, "", "77")]
    assert table(root, "series") == [(OTHER, STUDY, "OT", "1", None)]  # A's pruned
    assert not (root / a).exists() and (root / b).is_file()
    assert (root / a).parent.is_dir()  # left, empty, for the next start's sweep
    assert (logging.INFO, f"finished the overwrite of {uid(9, 1)} interrupted by the "
                          f"stop: {b} replaces {a}") in said(caplog)
    assert [level for level, _ in said(caplog)].count(logging.WARNING) == 0
    assert said(caplog)[-1] == (logging.INFO, END.format(root, "ended", 0, 0, 0))


@pytest.mark.parametrize(("duplicates", "old", "new"), [
    ("keep", NOW - 200, NOW - 100),
    ("reject", NOW - 200, NOW - 100),
    ("overwrite", NOW - 100, NOW - 100),  # the same time: which came last is unclear
    ("overwrite", NOW - 100, NOW - 200),  # the unindexed copy is the older
])
def test_both_copies_are_left_and_said_otherwise(
        root: Path, caplog: pytest.LogCaptureFixture, duplicates: str, old: float,
        new: float) -> None:
    a, b = interrupted_overwrite(root, old=old, new=new)
    before = rows_by_path(root)
    with caplog.at_level(logging.INFO, logger="dicomnet"):
        scp = start_and_wait(root, duplicates=duplicates)
    assert (scp.recovery.added, scp.recovery.left, scp.recovery.finished) == (0, 1, 0)
    assert rows_by_path(root) == before and list(before) == [a]
    assert (root / a).is_file() and (root / b).is_file()
    warnings = [text for level, text in said(caplog) if level == logging.WARNING]
    assert len(warnings) == 1 and warnings[0].startswith(second_copy(b, a))
    assert not any(text.startswith("finished the overwrite") for _, text in said(caplog))


@pytest.mark.parametrize("series", [OTHER + ".4", None])
def test_a_live_store_of_the_instance_before_the_checks_write_wins(
        root: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        series: str | None) -> None:
    """The check has read copy B; object 1 is sent again (Instance Number 88), to
    a third series (its store removes A) or where A is (over it); then the
    check's transaction finds the row naming the live copy, newer than B: B is
    left and said, the live row and file stand."""
    a, b = interrupted_overwrite(root)
    held = HeldWrite(monkeypatch)
    live_series = series or a.split("/")[1]
    with caplog.at_level(logging.INFO, logger="dicomnet"):
        scp = StorageSCP(root, duplicates="overwrite")

        async def live(port: int) -> None:
            assert await asyncio.to_thread(held.reached.wait, 30)
            assert await send(port, 1, series=live_series, InstanceNumber="88") == 0
            await asyncio.to_thread(scp.flush_index)
            held.go.set()

        serve_beside(scp, live)
    c = f"{STUDY}/{live_series}/{uid(9, 1)}.dcm"
    assert instance(root) == [(uid(9, 1), c, "SENDER", "88")]
    assert (root / c).is_file() and (root / b).is_file()
    assert (root / a).is_file() == (a == c)
    assert (scp.recovery.added, scp.recovery.left, scp.recovery.finished) == (0, 1, 0)
    warnings = [text for level, text in said(caplog) if level == logging.WARNING]
    assert len(warnings) == 1 and warnings[0].startswith(second_copy(b, c))


def test_a_live_store_after_the_checks_write_replaces_its_copy(root: Path) -> None:
    """The check finishes the overwrite (B); object 1 is then sent again to a
    third series: its store finds B through the index and removes it."""
    a, b = interrupted_overwrite(root)
    scp = StorageSCP(root, duplicates="overwrite")
    third = OTHER + ".4"

    async def live(port: int) -> None:
        assert await asyncio.to_thread(scp.recovery.wait, 30)
        assert scp.recovery.finished == 1
        assert await send(port, 1, series=third, InstanceNumber="88") == 0
        await asyncio.to_thread(scp.flush_index)

    serve_beside(scp, live)
    c = f"{STUDY}/{third}/{uid(9, 1)}.dcm"
    assert instance(root) == [(uid(9, 1), c, "SENDER", "88")]
    assert not (root / a).exists() and not (root / b).exists() and (root / c).is_file()


def test_a_copy_stored_at_the_old_path_after_the_checks_write_is_kept(
        root: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Between the check's transaction and its removal of A, another file is named
    at A's path (as a live store's overwrite renames one over it): not removed."""
    a, b = interrupted_overwrite(root)
    remove = RowRecovery._remove

    def renamed_over_first(recovery: RowRecovery, *args: Any) -> None:
        fresh = root / "fresh.tmp"
        fresh.write_bytes((root / a).read_bytes())
        os.replace(fresh, root / a)
        remove(recovery, *args)

    monkeypatch.setattr(RowRecovery, "_remove", renamed_over_first)
    with caplog.at_level(logging.INFO, logger="dicomnet"):
        start_and_wait(root, duplicates="overwrite")
    assert (root / a).is_file() and (root / b).is_file()
    assert list(rows_by_path(root)) == [b]  # a live store's row would follow its file
    assert (logging.INFO, f"{a} was stored again while the check of {root} replaced its "
                          f"row by that of {b}: kept") in said(caplog)
    assert not any(text.startswith("finished the overwrite") for _, text in said(caplog))
