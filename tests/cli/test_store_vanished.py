"""dicomnet store when a file it listed is gone before it is sent (deleted by
another program meanwhile, say during the key's password prompt): that file
fails alone with its reason, as any other that cannot be sent; the others are
stored. store_paths listed the files again and refused the whole run for the
one missing ('no such file or folder', exit status 2)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian

from dicomnet.services import storage, store_listing
from dicomnet.services.verification import VerificationSCP
from tests.storage.dicomfiles import make_image, write_part10

from .helpers import ServerThread, json_out, run_cli


@pytest.mark.parametrize("json", [False, True], ids=["text", "json"])
def test_a_file_deleted_once_listed_fails_alone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, json: bool,
        start_server: Callable[..., ServerThread]) -> None:
    folder = tmp_path / "in"
    files = [write_part10(folder / f"{n}.dcm", make_image(n, rows=8, columns=8),
                          ExplicitVRLittleEndian) for n in range(3)]
    listed = store_listing.listed_texts

    def listed_then_deleted(paths: list[Path | str]) -> list[str]:
        found = listed(paths)
        files[1].unlink()
        return found

    monkeypatch.setattr(store_listing, "listed_texts", listed_then_deleted)
    scp = storage.StorageSCP(tmp_path / "store")
    server = start_server(providers=[VerificationSCP(), scp])
    result = run_cli("store", "127.0.0.1", server.port, folder, *(["--json"] if json else []))
    scp.close()
    assert result.exit_code == 1, result.output
    assert len(list((tmp_path / "store").rglob("*.dcm"))) == 2
    why = f"not sent: cannot read {files[1]}: No such file or directory"
    if json:
        doc = json_out(result)
        assert (doc["total"], doc["stored"], doc["failed"]) == (3, 2, 1)
        assert [(r["path"], r["ok"], r["error"], r["sent"]) for r in doc["results"]] == [
            (str(files[0]), True, None, True), (str(files[1]), False, why, False),
            (str(files[2]), True, None, True)]
    else:
        assert "error:" not in result.stderr
        row = next(line for line in result.stdout.splitlines() if str(files[1]) in line)
        assert why in row
        assert "Stored 2 of 3 objects" in result.stdout
