"""`dicomnet store` against a pynetdicom storage SCP whose failures name the
element at fault: Offending Element (0000,0901), which PS3.4 B.2.3 gives a
C-STORE-RSP of Error: Data Set does not match SOP Class (A9xxH) and Error:
Cannot understand (Cxxx) beside the Error Comment (PS3.7 C.4). It was read
and dropped: neither the table nor --json said which element the peer refused,
only its comment (if it sent one)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian

from tests.aio.helpers import LOOPBACK
from tests.storage.dicomfiles import SECONDARY_CAPTURE, make_image, write_part10

pytestmark = pytest.mark.interop

#: Image n is answered (status, Error Comment, Offending Element).
ANSWERS: dict[int, tuple[int, str | None, list[int] | None]] = {
    1: (0xA900, "Rows is not in this IOD", [0x00280010]),
    2: (0xC123, None, [0x00100010, 0x00100020]),
    3: (0x0000, None, None),
}


@pytest.fixture
def scp_port(pynetdicom: ModuleType) -> Iterator[int]:
    ae = pynetdicom.AE(ae_title="PYNETDICOM-SCP")
    ae.add_supported_context(SECONDARY_CAPTURE, [ExplicitVRLittleEndian])

    def on_store(event: Any) -> Dataset:
        number = int(event.dataset.InstanceNumber)
        status, comment, offending = ANSWERS[number]
        rsp = Dataset()
        rsp.Status = status
        if comment is not None:
            rsp.ErrorComment = comment
        if offending is not None:
            rsp.OffendingElement = offending
        return rsp

    server = ae.start_server((LOOPBACK, 0), block=False,
                             evt_handlers=[(pynetdicom.evt.EVT_C_STORE, on_store)])
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        ae.shutdown()


def _store(port: int, folder: Path, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dicomnet.cli.main", "store", LOOPBACK, str(port), str(folder),
         "--called-aet", "PYNETDICOM-SCP", *options],
        capture_output=True, text=True, timeout=90, check=False,
        env={**os.environ, "COLUMNS": "200"})


def test_the_offending_elements_are_reported(scp_port: int, tmp_path: Path) -> None:
    for n in ANSWERS:
        write_part10(tmp_path / "in" / f"{n}.dcm", make_image(n), ExplicitVRLittleEndian)
    done = _store(scp_port, tmp_path / "in", "--json")
    assert done.returncode == 1, done.stdout + done.stderr
    got = {Path(r["path"]).name: (r["status"], r["error_comment"], r["offending_elements"],
                                  r["error"], r["status_text"])
           for r in json.loads(done.stdout)["results"]}
    assert got == {
        "1.dcm": (0xA900, "Rows is not in this IOD", ["(0028,0010)"],
                  "Rows is not in this IOD; offending element (0028,0010)",
                  "0xA900 Error: data set does not match SOP Class (Rows is not in this IOD; "
                  "offending element (0028,0010))"),
        "2.dcm": (0xC123, None, ["(0010,0010)", "(0010,0020)"],
                  "0xC123 (failure: Error: cannot understand); offending elements "
                  "(0010,0010), (0010,0020)",
                  "0xC123 Error: cannot understand (offending elements (0010,0010), "
                  "(0010,0020))"),
        "3.dcm": (0, None, [], None, "0x0000 Success"),
    }
    table = _store(scp_port, tmp_path / "in")
    assert table.returncode == 1
    rows = {line.split("│")[1].strip().rsplit("/", 1)[-1]: line.split("│")[2].strip()
            for line in table.stdout.splitlines() if line.startswith("│")}
    assert rows == {
        "1.dcm": "0xA900 Error: data set does not match SOP Class (Rows is not in this IOD; "
                 "offending element (0028,0010))",
        "2.dcm": "0xC123 Error: cannot understand (offending elements (0010,0010), "
                 "(0010,0020))",
        "3.dcm": "0x0000 Success",
    }
