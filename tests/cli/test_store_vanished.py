"""dicomnet store when a file it listed is gone before it is sized (deleted by
another program meanwhile): an error line and exit status 2, as for a file
named that does not exist, not a traceback (a FileNotFoundError from the stat
of the sizes the progress bar and the totals use)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian

from dicomnet.services import storage
from tests.storage.dicomfiles import make_image, write_part10

from .helpers import error_line, json_out, run_cli


@pytest.mark.parametrize("json", [False, True], ids=["text", "json"])
def test_a_file_deleted_once_listed_is_an_error_not_a_traceback(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, json: bool) -> None:
    folder = tmp_path / "in"
    files = [write_part10(folder / f"{n}.dcm", make_image(n, rows=8, columns=8),
                          ExplicitVRLittleEndian) for n in range(2)]
    listed = storage.collect_files

    def listed_then_deleted(paths: list[Path | str]) -> list[Path]:
        found = listed(paths)
        files[1].unlink()
        return found

    monkeypatch.setattr(storage, "collect_files", listed_then_deleted)
    # Port 9: nothing is sent (the listing fails first) and nothing listens there.
    result = run_cli("store", "127.0.0.1", 9, folder, *(["--json"] if json else []))
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    message = f"no such file or folder: {files[1]}"
    if json:
        assert json_out(result)["error"] == message
    else:
        assert error_line(result) == f"error: {message}"
