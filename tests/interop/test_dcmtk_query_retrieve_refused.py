"""DCMTK's findscu -P, movescu and getscu against `dicomnet serve`, which serves no
Query/Retrieve (PS3.4 C): their contexts are refused, and the serve log says so
in words that fit. It told the operator to try --accept-unknown-sop-classes,
which takes unknown SOP classes only, never a known one of another service."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.interop.conftest import Dcmtk, _missing, dicomnet_serve_plain

pytestmark = pytest.mark.interop

#: Each tool with its arguments, and the SOP Class its context proposes.
TOOLS = {
    "findscu": (["-P", "-k", "QueryRetrieveLevel=PATIENT", "-k", "PatientID"],
                "1.2.840.10008.5.1.4.1.2.1.1", "Patient Root Query/Retrieve Information Model "
                "- FIND"),
    "movescu": (["-S", "-aem", "NOWHERE", "-k", "QueryRetrieveLevel=STUDY", "-k",
                 "StudyInstanceUID=1.2.3"],
                "1.2.840.10008.5.1.4.1.2.2.2", "Study Root Query/Retrieve Information Model "
                "- MOVE"),
    "getscu": (["-k", "QueryRetrieveLevel=PATIENT", "-k", "PatientID=1"],
               "1.2.840.10008.5.1.4.1.2.1.3", "Patient Root Query/Retrieve Information Model "
               "- GET"),
}


@pytest.mark.parametrize("tool", list(TOOLS))
def test_serve_says_query_retrieve_is_not_served(dcmtk: Dcmtk, tmp_path: Path,
                                                 tool: str) -> None:
    # DCMTK's own tool, beside its storescp (pynetdicom installs apps of the same names).
    program = dcmtk.storescp.parent / tool
    if not program.exists():
        _missing(f"DCMTK {tool}")
    options, sop_class, name = TOOLS[tool]
    with dicomnet_serve_plain(tmp_path / "store") as (port, _, stderr):
        done = subprocess.run([str(program), *options, "127.0.0.1", str(port)],
                              capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode != 0  # nothing to talk to
    (line,) = [x for x in stderr[0].splitlines() if "refused presentation" in x]
    assert (f"{sop_class} (no service here takes this SOP Class ({name}: Query/Retrieve is "
            "not served by this version))") in line, line
    assert "--accept-unknown-sop-classes" not in line
