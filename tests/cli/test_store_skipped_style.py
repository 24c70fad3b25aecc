"""dicomnet store on a terminal: a file that is not DICOM is skipped, not failed
(--json counts it in "skipped", exit status 1 as for any object not stored), and
its row of the summary table, and its line above the progress bar, say so in
yellow; they were red and "failed", as for an object the peer refused."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pydicom.uid import ExplicitVRLittleEndian

from dicomnet.services.storage import StorageSCP
from tests.services.test_store_own_identity import without, write_with_meta
from tests.storage.dicomfiles import make_image, write_part10

from .helpers import ServerThread, run_cli

RED, YELLOW = "\x1b[31m", "\x1b[33m"


def test_a_skipped_row_is_yellow_and_a_failed_one_red(
        start_server: Callable[..., ServerThread], tmp_path: Path) -> None:
    folder = tmp_path / "in"
    write_part10(folder / "a.dcm", make_image(1), ExplicitVRLittleEndian)
    (folder / "notes.txt").write_text("no DICOM here\n")
    image = make_image(2)
    write_with_meta(folder / "c.dcm", without(make_image(2), "SOPInstanceUID"),
                    ExplicitVRLittleEndian, meta_class=image.SOPClassUID,
                    meta_instance=image.SOPInstanceUID)
    server = start_server(providers=[StorageSCP(tmp_path / "store")])
    result = run_cli("store", "127.0.0.1", server.port, folder,
                     env={"FORCE_COLOR": "1", "COLUMNS": "400", "NO_COLOR": ""})
    assert result.exit_code == 1, result.output
    rows = {name: next(line for line in result.stdout.splitlines() if name in line)
            for name in ("a.dcm", "notes.txt", "c.dcm")}
    skipped = rows["notes.txt"]
    assert "not a DICOM Part 10 file" in skipped
    assert f"{YELLOW}not a DICOM Part 10 file" in skipped, repr(skipped)
    assert RED not in skipped, repr(skipped)
    assert f"{RED}not sent: no SOP Instance UID" in rows["c.dcm"], repr(rows["c.dcm"])
    assert RED not in rows["a.dcm"] and YELLOW not in rows["a.dcm"]
    assert "1 skipped (not DICOM)" in result.stdout
    # Above the progress bar: "skipped" in yellow for it, "failed" in red for c.dcm.
    lines = result.stderr.splitlines()
    told = next(line for line in lines if "notes.txt" in line)
    assert f"{YELLOW}skipped" in told and "failed" not in told, repr(told)
    assert any(f"{RED}failed" in line and "c.dcm" in line for line in lines), repr(lines)
