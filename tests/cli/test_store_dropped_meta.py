"""dicomnet store --json names, for each object, the group 0002 elements left out
of the data set it sent (PS3.5 7.1): said only in the log before."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pydicom.uid import ExplicitVRLittleEndian

from dicomnet.services.storage import StorageSCP
from tests.storage.dicomfiles import make_image, write_part10
from tests.storage.helpers import data_set_bytes
from tests.storage.stray import write_with_stray_meta

from .helpers import ServerThread, json_out, run_cli
from .test_help import _help


def test_json_names_the_meta_elements_left_out(start_server: Callable[..., ServerThread],
                                               tmp_path: Path) -> None:
    plain = write_part10(tmp_path / "in" / "a.dcm", make_image(1), ExplicitVRLittleEndian)
    stray = write_with_stray_meta(tmp_path / "in" / "b.dcm", make_image(2),
                                  ExplicitVRLittleEndian,
                                  data_set_bytes(make_image(2), ExplicitVRLittleEndian))
    server = start_server(providers=[StorageSCP(tmp_path / "store")])
    result = run_cli("store", "127.0.0.1", server.port, tmp_path / "in", "--json")
    assert result.exit_code == 0, result.output
    assert [(r["path"], r["ok"], r["dropped_meta"]) for r in json_out(result)["results"]] == [
        (str(plain), True, []),
        (str(stray), True, ["(0002,0000)", "(0002,0001)", "(0002,0002)", "(0002,0003)",
                            "(0002,0010)", "(0002,0013)"])]
    assert "dropped_meta" in _help("store")
