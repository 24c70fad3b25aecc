"""A deflated file (PS3.5 A.5) whose deflate stream starts with group 0002
elements, sent by dicomnet's SCU to DCMTK's storescp: it sent the stream as it
was, and storescp +xd stored a file with two meta groups (dcmdump: "Invalid
Element (0002,0000) found in data set"). Now the stream is deflated again
without them (a deflated context), or inflated without them (Explicit VR Little
Endian): the stored file has one meta group, and its data set is the source's
without group 0002 (PS3.5 7.1, PS3.10 7.1)."""

from __future__ import annotations

import logging
import subprocess
import zlib
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian

from dicomnet.services.storage import store_paths
from tests.aio.helpers import LOOPBACK, background_process, free_port, run
from tests.interop.conftest import Dcmtk, dcmtk_tool
from tests.storage.dicomfiles import assert_same_dataset, make_image
from tests.storage.helpers import data_set_bytes
from tests.storage.stray import meta_group_length, write_deflated_with_stray_meta

pytestmark = pytest.mark.interop


@pytest.mark.parametrize(("option", "syntax"), [("+xd", DeflatedExplicitVRLittleEndian),
                                                ("+xe", ExplicitVRLittleEndian)],
                         ids=["deflated", "explicit"])
def test_storescp_stores_one_meta_group(dcmtk: Dcmtk, tmp_path: Path, option: str, syntax: str,
                                        caplog: pytest.LogCaptureFixture) -> None:
    dcmdump = dcmtk_tool("dcmdump")
    ds = make_image(8)
    plain = data_set_bytes(ds, ExplicitVRLittleEndian)
    source = write_deflated_with_stray_meta(tmp_path / "in" / "stray.dcm", ds, plain)
    out = tmp_path / "out"
    out.mkdir()
    port = free_port()
    # +xd: storescp prefers Deflated (then the other uncompressed ones); +xe: Explicit
    # VR Little Endian only of those, so the deflated file is converted.
    with background_process(dcmtk.storescp, "-aet", "STORESCP", option, "+B", "-od", out,
                            str(port), log_path=tmp_path / "storescp.log", port=port), \
            caplog.at_level(logging.WARNING, logger="dicomnet.storage"):
        [result] = run(store_paths(LOOPBACK, port, [source], called_ae_title="STORESCP"),
                       timeout=60)
    assert (result.status, result.error) == (0x0000, None)
    (stored,) = out.iterdir()
    data = stored.read_bytes()
    dataset = data[meta_group_length(data):]
    if syntax == DeflatedExplicitVRLittleEndian:
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        dataset = inflater.decompress(dataset) + inflater.flush()
        assert inflater.eof
    assert dataset == plain
    read = dcmread(stored)
    assert read.file_meta.TransferSyntaxUID == syntax
    assert all(element.tag.group != 0x0002 for element in read)
    assert_same_dataset(ds, stored)
    dump = subprocess.run([dcmdump, str(stored)], capture_output=True, text=True, timeout=30,
                          check=True)
    assert "Invalid Element" not in dump.stdout + dump.stderr, dump.stderr
    assert dump.stdout.count("# Dicom-Meta-Information-Header") == 1, dump.stdout
    assert "(0002," not in dump.stdout.split("# Dicom-Data-Set")[1], dump.stdout
    assert any("passed over, not sent" in r.getMessage() for r in caplog.records)
