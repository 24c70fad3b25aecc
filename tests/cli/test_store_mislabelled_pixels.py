"""``dicomnet store`` of a file labelled RLE Lossless whose Pixel Data is native:
not sent, its reason in the table and in --json, exit 1 (a file not stored),
the other file stored (services/test_store_mislabelled_pixels.py has the cases)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless

from dicomnet.services.verification import VerificationSCP
from dicomnet.storage.part10 import part10_header
from tests.storage.dicomfiles import make_image, write_part10
from tests.storage.helpers import data_set_bytes

from .helpers import ServerThread, json_out, run_cli

storage = pytest.importorskip("dicomnet.services.storage")

WHY = ("not sent: malformed data set: native (7FE0,0010) in an encapsulated syntax: a "
       "defined length (768 bytes), where it must have an undefined length and hold "
       "fragments (PS3.5 A.4)")


def test_native_pixels_labelled_rle_are_not_sent_and_exit_1(
        start_server: Callable[..., ServerThread], tmp_path: Path) -> None:
    ds = make_image(1)  # 32 x 24, 8 bits: 768 bytes of Pixel Data
    (tmp_path / "in").mkdir()
    bad = tmp_path / "in" / "bad.dcm"
    bad.write_bytes(part10_header(
        sop_class_uid=ds.SOPClassUID, sop_instance_uid=ds.SOPInstanceUID,
        transfer_syntax_uid=RLELossless, implementation_class_uid="1.2.3.4",
        implementation_version_name="WRITER", source_ae_title=None)
        + data_set_bytes(ds, ExplicitVRLittleEndian))
    write_part10(tmp_path / "in" / "good.dcm", make_image(2), ExplicitVRLittleEndian)
    scp = storage.StorageSCP(tmp_path / "store", transfer_syntaxes=[
        RLELossless, ExplicitVRLittleEndian, ImplicitVRLittleEndian])
    server = start_server(providers=[VerificationSCP(), scp])
    text = run_cli("store", "127.0.0.1", server.port, tmp_path / "in")
    result = run_cli("store", "127.0.0.1", server.port, tmp_path / "in", "--json")
    scp.close()
    assert text.exit_code == 1, text.output
    assert "bad.dcm" in text.stdout and "native (7FE0,0010) in an encapsulated" in text.stdout
    assert result.exit_code == 1, result.output
    doc = json_out(result)
    assert (doc["stored"], doc["failed"]) == (1, 1)
    failed = next(r for r in doc["results"] if not r["ok"])
    assert (Path(failed["path"]).name, failed["error"], failed["status"], failed["sent"]) == (
        "bad.dcm", WHY, None, False)
