"""dicomnet store does not send a file whose data set lacks its SOP Instance UID
(PS3.7 9.3.1.1: a C-STORE names the data set's own; PS3.10 7.1: the File Meta
Information's is a copy of it): it went under its meta's UID, and a dicomnet
server kept it. --json says why; exit 1. A file whose two differ goes as its
data set says, with a note."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pydicom.uid import ExplicitVRLittleEndian

from dicomnet.services.storage import StorageSCP
from tests.services.test_store_own_identity import NO_INSTANCE, without, write_with_meta
from tests.storage.dicomfiles import make_image, write_part10

from .helpers import ServerThread, json_out, run_cli


def test_json_says_why_a_file_without_its_uid_is_not_sent(
        start_server: Callable[..., ServerThread], tmp_path: Path) -> None:
    image = make_image(1)
    lacking = write_with_meta(tmp_path / "in" / "a.dcm", without(make_image(1), "SOPInstanceUID"),
                              ExplicitVRLittleEndian, meta_class=image.SOPClassUID,
                              meta_instance=image.SOPInstanceUID)
    other = make_image(2)
    differs = write_with_meta(tmp_path / "in" / "b.dcm", other, ExplicitVRLittleEndian,
                              meta_class=other.SOPClassUID,
                              meta_instance=other.SOPInstanceUID + ".9")
    plain = write_part10(tmp_path / "in" / "c.dcm", make_image(3), ExplicitVRLittleEndian)
    server = start_server(providers=[StorageSCP(tmp_path / "store")])
    result = run_cli("store", "127.0.0.1", server.port, tmp_path / "in", "--json")
    assert result.exit_code == 1, result.output
    out = json_out(result)
    assert [(r["path"], r["ok"], r["sent"], r["sop_instance_uid"], r["error"], r["note"])
            for r in out["results"]] == [
        (str(lacking), False, False, image.SOPInstanceUID, NO_INSTANCE, None),
        (str(differs), True, True, other.SOPInstanceUID, None,
         f"its File Meta Information names Media Storage SOP Instance UID (0002,0003) "
         f"{other.SOPInstanceUID}.9, its data set {other.SOPInstanceUID}: sent as its data "
         "set says (PS3.10 7.1 makes them the same object's)"),
        (str(plain), True, True, make_image(3).SOPInstanceUID, None, None)]
    assert (out["total"], out["stored"], out["failed"]) == (3, 2, 1)
    assert sorted(p.name for p in (tmp_path / "store").rglob("*.dcm")) == sorted(
        f"{uid}.dcm" for uid in (other.SOPInstanceUID, make_image(3).SOPInstanceUID))


def test_text_output_names_the_reason(start_server: Callable[..., ServerThread],
                                      tmp_path: Path) -> None:
    image = make_image(1)
    write_with_meta(tmp_path / "in" / "a.dcm", without(make_image(1), "SOPInstanceUID"),
                    ExplicitVRLittleEndian, meta_class=image.SOPClassUID,
                    meta_instance=image.SOPInstanceUID)
    server = start_server(providers=[StorageSCP(tmp_path / "store")])
    result = run_cli("store", "127.0.0.1", server.port, tmp_path / "in")
    assert result.exit_code == 1, result.output
    # "not sent": the client's reason, not the peer's (a dicomnet server refuses it too).
    assert "not sent: no SOP Instance UID (0008,0018) in the data set" in " ".join(
        result.output.split())
