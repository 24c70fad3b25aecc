"""A DICOMDIR (Media Storage Directory, SOP class 1.2.840.10008.1.3.10: PS3.10
8.6, PS3.3 Annex F) is the index of a medium, not an object to send: one named
otherwise (pydicom's ``dicomdirtests/DICOMDIR-implicit``) is passed over by its
Media Storage SOP Class as a folder's file named DICOMDIR is by its name. It
was proposed, then failed "the peer accepted no context for Media Storage
Directory Storage", as if the peer were at fault, and made the run exit 1."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid

from dicomnet.cli.demo import write_synthetic_ct
from dicomnet.services.verification import VerificationSCP
from tests.aio.helpers import run

from .helpers import ServerThread, json_out, run_cli

storage = pytest.importorskip("dicomnet.services.storage")

#: pydicom's DICOMDIRs named otherwise (a folder's "DICOMDIR" is not listed).
DICOMDIRS = sorted((Path(pydicom.__file__).parent / "data" / "test_files" / "dicomdirtests")
                   .glob("DICOMDIR-*"))


def _image(folder: Path) -> Path:
    folder.mkdir()
    path = folder / "ct.dcm"
    write_synthetic_ct(path, number=1, study_uid=generate_uid(), series_uid=generate_uid(),
                       size=16)
    return path


def test_dicomdirs_named_otherwise_are_passed_over_not_failed(
        start_server: Callable[..., ServerThread], tmp_path: Path) -> None:
    assert len(DICOMDIRS) == 6
    scp = storage.StorageSCP(tmp_path / "store")
    server = start_server(providers=[VerificationSCP(), scp])
    image = _image(tmp_path / "in")
    result = run_cli("store", "127.0.0.1", server.port, image, *DICOMDIRS, "--json")
    text = run_cli("store", "127.0.0.1", server.port, image, *DICOMDIRS)
    scp.close()
    assert result.exit_code == 0, result.output  # as for a folder's DICOMDIR
    doc = json_out(result)
    assert (doc["total"], doc["stored"], doc["failed"], doc["dicomdirs"]) == (1, 1, 0, 6)
    first, *passed = doc["results"]
    assert first["ok"] and not first["dicomdir"]
    assert [r["path"] for r in passed] == list(map(str, DICOMDIRS))
    for r in passed:
        assert (r["ok"], r["dicomdir"], r["sent"], r["status"]) == (False, True, False, None)
        assert r["error"] == ("passed over: a DICOMDIR (Media Storage Directory, "
                              "1.2.840.10008.1.3.10), the index of a medium, not an object "
                              "to send")
    assert text.exit_code == 0, text.output
    assert "Stored 1 of 1 objects" in text.stdout
    assert "6 DICOMDIR(s) passed over" in text.stdout
    assert "no context" not in text.stdout


def test_only_dicomdirs_open_no_association(tmp_path: Path) -> None:
    """Nothing to send: no connection tried (the port is closed), exit 0."""
    from dicomnet.services.store_scu import store_paths

    results = run(store_paths("127.0.0.1", 9, DICOMDIRS[:2]), timeout=30)
    assert [(r.dicomdir, r.ok, r.association_failed) for r in results] == [
        (True, False, False)] * 2


def test_a_dicomdirs_row_and_progress_are_not_red_as_a_failure(
        start_server: Callable[..., ServerThread], tmp_path: Path) -> None:
    """On a terminal (FORCE_COLOR), a DICOMDIR passed over is no failure: its row
    of the table is not red, and no "failed" line names it above the bar (both
    were, as for a file the peer refused)."""
    import shutil

    scp = storage.StorageSCP(tmp_path / "store")
    server = start_server(providers=[VerificationSCP(), scp])
    image = _image(tmp_path / "in")
    dicomdir = shutil.copy(DICOMDIRS[0], tmp_path / "index.dcm")
    result = run_cli("store", "127.0.0.1", server.port, image, dicomdir,
                     env={"FORCE_COLOR": "1", "COLUMNS": "400", "NO_COLOR": ""})
    scp.close()
    assert result.exit_code == 0, result.output
    red = "\x1b[31m"
    row = next(line for line in result.stdout.splitlines() if "index.dcm" in line)
    assert "passed over: a DICOMDIR" in row
    assert red not in row, repr(row)
    assert "DICOMDIR(s) passed over" in result.stdout
    # The progress bar ran (stderr a "terminal"), and said no failure.
    assert "C-STORE" in result.stderr
    assert "failed" not in result.stderr, repr(result.stderr)
