"""The check after an unclean stop runs beside live stores: whichever writes an
instance's row first, the index ends with exactly one row for it, the live
store's when there is one (storage.recovery: the check only adds, in one
transaction with its look; a live row is an upsert).

The interleavings are made by holding the check just before its transaction,
its batch read from the files, never by sleeping.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path
from typing import Any

import pytest

from dicomnet.services.storage import StorageSCP
from dicomnet.services.verification import VerificationSCP
from dicomnet.storage.recovery import RowRecovery
from tests.aio.helpers import run, running_server
from tests.storage.dicomfiles import uid
from tests.storage.test_recovery_start import (
    END,
    STUDY,
    killed_store,
    said,
    send,
    table,
)


class HeldWrite:
    """Holds the check's first batch before its transaction (the files read)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.reached, self.go = threading.Event(), threading.Event()
        write = RowRecovery._write

        def held(recovery: RowRecovery) -> None:
            if recovery._batch and not self.reached.is_set():
                self.reached.set()
                assert self.go.wait(30), "the check was never let go on"
            write(recovery)

        monkeypatch.setattr(RowRecovery, "_write", held)


def serve_beside(scp: StorageSCP, live: Any) -> None:
    """``live(port)`` against a server running ``scp``; the check waited for
    before the server closes (its close would stop it)."""
    async def scenario() -> None:
        async with running_server(providers=[VerificationSCP(), scp]) as server:
            await live(server.port)
            assert await asyncio.to_thread(scp.recovery.wait, 30)

    try:
        run(scenario(), timeout=60)
    finally:
        scp.close()


def instance(root: Path) -> list[tuple[Any, ...]]:
    """(SOP Instance UID, path, calling AE, Instance Number) of each row."""
    return [(row[0], row[5], row[9], row[3]) for row in table(root, "instance")]


@pytest.mark.parametrize("duplicates", ["keep", "overwrite"])
def test_a_live_row_written_before_the_checks_wins(
        root: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        duplicates: str) -> None:
    """The check has read object 2's file (no row); the object is sent again and
    its row written; the check then adds nothing for it."""
    paths = killed_store(root, (1, 2), indexed=(1,))
    held = HeldWrite(monkeypatch)
    with caplog.at_level(logging.INFO, logger="dicomnet"):
        scp = StorageSCP(root, duplicates=duplicates)

        async def live(port: int) -> None:
            assert await asyncio.to_thread(held.reached.wait, 30)
            assert await send(port, 2, InstanceNumber="77") == 0
            await asyncio.to_thread(scp.flush_index)
            held.go.set()

        serve_beside(scp, live)
    assert scp.recovery.added == 0 and scp.recovery.left == 0
    # keep: the copy there stays, and the resend restores its row from it (lost_row);
    # overwrite: the resent copy and its row.
    expected = ("SENDER", "77") if duplicates == "overwrite" else ("", "2")
    assert instance(root) == [(uid(9, 1), paths[1], "", "1"),
                              (uid(9, 2), paths[2], *expected)]
    assert said(caplog)[-1] == (logging.INFO, END.format(root, "ended", 0, 0, 0))


@pytest.mark.parametrize("duplicates", ["keep", "overwrite"])
def test_a_live_row_written_after_the_checks_follows_it(
        root: Path, monkeypatch: pytest.MonkeyPatch, duplicates: str) -> None:
    """The check adds object 2's row; the object is then sent again: kept (its row
    the check's) or overwritten (its row the resend's), one row either way."""
    paths = killed_store(root, (1, 2), indexed=(1,))
    scp = StorageSCP(root, duplicates=duplicates)

    async def live(port: int) -> None:
        assert await asyncio.to_thread(scp.recovery.wait, 30)
        assert scp.recovery.added == 1
        assert await send(port, 2, InstanceNumber="77") == 0
        await asyncio.to_thread(scp.flush_index)

    serve_beside(scp, live)
    expected = ("SENDER", "77") if duplicates == "overwrite" else ("", "2")
    assert instance(root) == [(uid(9, 1), paths[1], "", "1"),
                              (uid(9, 2), paths[2], *expected)]


def test_a_live_store_under_another_series_meanwhile_keeps_its_row(
        root: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Object 2 sent again under another series (overwrite) while the check holds
    the row of its first copy, read from the file: the live row stands, the old
    copy is left and said, as a copy an interrupted overwrite leaves is."""
    paths = killed_store(root, (1, 2), indexed=(1,))
    held = HeldWrite(monkeypatch)
    other = uid(3)
    with caplog.at_level(logging.INFO, logger="dicomnet"):
        scp = StorageSCP(root, duplicates="overwrite")

        async def live(port: int) -> None:
            assert await asyncio.to_thread(held.reached.wait, 30)
            assert await send(port, 2, series=other) == 0
            await asyncio.to_thread(scp.flush_index)
            held.go.set()

        serve_beside(scp, live)
    moved = f"{STUDY}/{other}/{uid(9, 2)}.dcm"
    assert instance(root) == [(uid(9, 1), paths[1], "", "1"),
                              (uid(9, 2), moved, "SENDER", "2")]
    assert (root / paths[2]).is_file() and (root / moved).is_file()
    assert (scp.recovery.added, scp.recovery.left) == (0, 1)
    warnings = [text for level, text in said(caplog) if level == logging.WARNING]
    assert len(warnings) == 1 and warnings[0].startswith(
        f"{paths[2]} holds {uid(9, 2)}, which the index finds at {moved}: a second copy")


def test_new_objects_stored_during_the_check_are_indexed_once(
        root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Objects sent while the check is held are indexed by their stores; the
    check, which listed their folder before, adds only the lost rows."""
    paths = killed_store(root, (1, 2, 3), indexed=())
    held = HeldWrite(monkeypatch)
    scp = StorageSCP(root)

    async def live(port: int) -> None:
        assert await asyncio.to_thread(held.reached.wait, 30)
        for number in (4, 5):
            assert await send(port, number) == 0
        await asyncio.to_thread(scp.flush_index)
        held.go.set()

    serve_beside(scp, live)
    assert scp.recovery.added == 3
    rows = instance(root)
    assert [row[0] for row in rows] == [uid(9, n) for n in (1, 2, 3, 4, 5)]
    assert [row[2] for row in rows] == ["", "", "", "SENDER", "SENDER"]
    assert {row[1] for row in rows[:3]} == set(paths.values())
