"""Data sets that break PS3.5's encoding rules as real writers do (tests/storage/
oddities.py) travel whole: DCMTK reads them (dcmdump, with the option each needs),
storescu sends those it reads by default into a dicomnet StorageSCP, and
`dicomnet store` sends all of them, each stored byte for byte (storage.completeness
refused several: the SCU said "not sent", the SCP answered C000; then the SCP
could not place the two only DCMTK reads, whose attributes pydicom misreads:
storage.toplevel reads them as DCMTK does)."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dicomnet.services.storage import StorageSCP
from dicomnet.services.verification import VerificationSCP
from dicomnet.storage.part10 import read_part10
from tests.aio.helpers import LOOPBACK, run, run_process, running_server
from tests.interop.conftest import Dcmtk, _missing
from tests.storage.oddities import ODDITIES, Oddity, write_oddity

pytestmark = pytest.mark.interop

SERVER_AE = "DICOMNET-SCP"
#: What DCMTK reads without any option: storescu has no parser options, so it
#: sends only these.
DCMTK_BY_DEFAULT = [o for o in ODDITIES if o.dcmdump == ()]
#: The SCP places every one by the attributes it reads raw (storage.toplevel),
#: the two only DCMTK reads included.
PLACED = list(ODDITIES)


def _data_set(path: Path) -> bytes:
    return path.read_bytes()[read_part10(path).dataset_offset:]


def _stored(root: Path, oddity: Oddity) -> Path:
    found = list(root.rglob(f"{oddity.sop_instance_uid}.dcm"))
    assert len(found) == 1, f"{oddity.name}: {found}"
    return found[0]


@pytest.mark.parametrize("oddity", [o for o in ODDITIES if o.dcmdump is not None],
                         ids=[o.name for o in ODDITIES if o.dcmdump is not None])
def test_dcmdump_reads_each_oddity(dcmtk: Dcmtk, tmp_path: Path, oddity: Oddity) -> None:
    dcmdump = shutil.which("dcmdump")
    if dcmdump is None:
        _missing("DCMTK dcmdump")
    path = write_oddity(tmp_path / f"{oddity.name}.dcm", oddity)
    assert oddity.dcmdump is not None
    done = subprocess.run([str(dcmdump), *oddity.dcmdump, "+L", str(path)],
                          capture_output=True, text=True, errors="replace", timeout=30,
                          check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert not [line for line in output.splitlines() if line.startswith(("E:", "F:"))], output
    # Read to its last element, with the private one after the odd one in place.
    assert "(0009,10f0) LO [AFTER ODD]" in output, output
    assert "(7fe0,0010) OB 01\\02\\03\\04\\05\\06\\07\\08" in output, output


@pytest.mark.parametrize("oddity", DCMTK_BY_DEFAULT, ids=[o.name for o in DCMTK_BY_DEFAULT])
def test_storescu_sends_it_into_a_storage_scp(dcmtk: Dcmtk, tmp_path: Path,
                                              oddity: Oddity) -> None:
    """storescu sends DCMTK's own encoding of what it read (an unlisted VR becomes
    UN, odd values are padded, trailing padding is dropped): the data set dcmconv
    writes without padding. Stored as sent."""
    tools = {name: shutil.which(name) for name in ("storescu", "dcmconv")}
    if None in tools.values():
        _missing("DCMTK storescu and dcmconv")
    root = tmp_path / "root"
    source = write_oddity(tmp_path / f"{oddity.name}.dcm", oddity)
    dcmtk_encoding = tmp_path / "dcmconv.dcm"
    converted = subprocess.run([str(tools["dcmconv"]), "-p", str(source), str(dcmtk_encoding)],
                               capture_output=True, text=True, timeout=30, check=False)
    assert converted.returncode == 0, converted.stderr

    async def scenario() -> tuple[int, str]:
        scp = StorageSCP(root)
        try:
            async with running_server(ae_title=SERVER_AE,
                                      providers=[VerificationSCP(), scp]) as server:
                return await run_process(
                    str(tools["storescu"]), "-v", "-aet", "DCMTK-SCU", "-aec", SERVER_AE, "-xe",
                    "-R", LOOPBACK, str(server.port), source, timeout=30)
        finally:
            scp.close()

    code, output = run(scenario(), timeout=60)
    assert code == 0, output
    assert "Received Store Response (Success)" in output, output
    assert _data_set(_stored(root, oddity)) == _data_set(dcmtk_encoding)


def test_dicomnet_store_sends_each_oddity_as_it_is(tmp_path: Path) -> None:
    """As users run it (a subprocess), all files in one association: each answered
    0000 and stored as its bytes were."""
    root = tmp_path / "root"
    sources = [write_oddity(tmp_path / "in" / f"{o.name}.dcm", o) for o in PLACED]

    async def scenario() -> tuple[int | None, bytes, bytes]:
        scp = StorageSCP(root)
        try:
            async with running_server(ae_title=SERVER_AE,
                                      providers=[VerificationSCP(), scp]) as server:
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "dicomnet.cli.main", "store", LOOPBACK,
                    str(server.port), "--called-aet", SERVER_AE, "--json", str(tmp_path / "in"),
                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
                out, err = await proc.communicate()
                return proc.returncode, out, err
        finally:
            scp.close()

    code, out, err = run(scenario(), timeout=90)
    assert code == 0, out.decode() + err.decode()
    doc = json.loads(out)
    assert (doc["total"], doc["stored"], doc["failed"]) == (len(PLACED), len(PLACED), 0)
    assert {r["status"] for r in doc["results"]} == {0}
    for oddity, source in zip(PLACED, sources, strict=True):
        assert _data_set(_stored(root, oddity)) == _data_set(source) == oddity.data, oddity.name

