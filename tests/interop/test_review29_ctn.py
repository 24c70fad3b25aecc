"""Review 29: the MIR Central Test Node (Debian ctn 3.2.0, C, 2003; no TLS)
judges dicomnet by use, both ways, over plain TCP: its send_image and
dicom_echo into ``dicomnet serve``, ``dicomnet store`` and the Python API into
its simple_storage. What arrives is compared element by element and Pixel Data
byte for byte with what was sent. It found no defect of ours.

CTN's quirks, not ours (each seen on this machine, and told apart with DCMTK):

- send_image cannot read a deflated file ("Unrecognized VR code"), nor can
  simple_storage take RLE Lossless (no context accepted: dicomnet store says so);
- send_image garbles FL values of a Big Endian file, on a Little Endian
  context (FD too) and on a Big Endian one (``-X``) alike; DCMTK's storescp
  gets the same wrong floats: its Big Endian files are not sent here;
- simple_storage keeps an Implicit VR Little Endian object as a bare data set
  (no File Meta Information);
- its ``-a`` (abort after one object) and dicom_echo's ``-x`` (no release)
  close the TCP connection without an A-ABORT: the association ends with
  "the transport connection closed" (DCMTK's storescu: "Broken pipe").

Under CI=true a missing CTN fails (scripts/test installs it).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    RLELossless,
)

from dicomnet.aio.client import associate
from dicomnet.errors import AssociationRejected
from dicomnet.services.store_scu import store_paths
from tests.aio.helpers import free_port, run
from tests.interop.conftest import _missing, dicomnet_serve_plain
from tests.interop.test_review29_odil import wait_listening
from tests.storage.dicomfiles import assert_same_dataset, make_image, write_part10

pytestmark = pytest.mark.interop
PEER_TIMEOUT = 60


@pytest.fixture(scope="session")
def ctn() -> dict[str, str]:
    """CTN's send_image, dicom_echo and simple_storage; skip or, under CI, fail if absent."""
    tools = {name: shutil.which(name) for name in ("send_image", "dicom_echo",
                                                   "simple_storage")}
    if None in tools.values():
        _missing("CTN (apt-get install ctn)")
    return {name: str(path) for name, path in tools.items()}


def _ctn(*command: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(c) for c in command], capture_output=True, text=True,
                          timeout=PEER_TIMEOUT, check=False, cwd=cwd)


def _stored(store: Path) -> dict[str, Path]:
    return {str(pydicom.dcmread(p, stop_before_pixels=True, force=True).SOPInstanceUID): p
            for p in store.rglob("*") if p.is_file() and p.name != "index.sqlite"}


# -- CTN's SCUs into dicomnet serve ----------------------------------------------------------


def test_ctn_echo_and_send_image_into_dicomnet_serve(ctn: dict[str, str], tmp_path: Path) -> None:
    """dicom_echo; send_image of Implicit, Explicit LE, RLE, and a 2 MB image
    with a 4 KiB maximum PDU (CTN's proposal)."""
    files: dict[str, tuple[Path, tuple[str, ...]]] = {
        "im.dcm": (write_part10(tmp_path / "im.dcm", make_image(1), ImplicitVRLittleEndian), ()),
        "ex.dcm": (write_part10(tmp_path / "ex.dcm", make_image(2), ExplicitVRLittleEndian), ()),
        "rle.dcm": (write_part10(tmp_path / "rle.dcm", make_image(4), RLELossless), ()),
        "big.dcm": (write_part10(tmp_path / "big.dcm",
                                 make_image(5, rows=1024, columns=1024, frames=2),
                                 ExplicitVRLittleEndian), ("-m", "4096")),
    }
    with dicomnet_serve_plain(tmp_path / "store") as (port, events, _):
        echo = _ctn(ctn["dicom_echo"], "-c", "DICOMNET", "127.0.0.1", str(port))
        assert echo.returncode == 0 and "Successful operation" in echo.stdout, echo
        for path, options in files.values():
            sent = _ctn(ctn["send_image"], "-q", "-c", "DICOMNET", *options, "127.0.0.1",
                        str(port), path)
            assert sent.returncode == 0 and "Status:         0000" in sent.stdout, sent
    stored = _stored(tmp_path / "store")
    assert len(stored) == len(files)
    for path, _ in files.values():
        assert_same_dataset(path, stored[str(pydicom.dcmread(path).SOPInstanceUID)])
    syntaxes = {str(e["sop_instance_uid"]): e["transfer_syntax_uid"] for e in events
                if e["event"] == "stored"}
    assert syntaxes[make_image(1).SOPInstanceUID] == ExplicitVRLittleEndian  # CTN's choice
    assert syntaxes[make_image(4).SOPInstanceUID] == RLELossless
    ended = [e for e in events if e["event"] == "association_ended"]
    assert [e["how"] for e in ended] == ["released"] * 5
    assert {e["calling_aet"] for e in ended} == {"DICOM_ECHO", "DICOM_TEST"}


def test_ctn_rejected_and_leaving_without_release(ctn: dict[str, str], tmp_path: Path) -> None:
    """A wrong called AE title is rejected (--check-called-aet); dicom_echo -x
    leaves without A-RELEASE nor A-ABORT: its association ends as the
    connection closed, its echo answered."""
    with dicomnet_serve_plain(tmp_path / "store", "--check-called-aet") as (port, events, _):
        rejected = _ctn(ctn["dicom_echo"], "-c", "WRONG", "127.0.0.1", str(port))
        assert rejected.returncode != 0 and "Association Rejected" in rejected.stderr, rejected
        left = _ctn(ctn["dicom_echo"], "-x", "-c", "DICOMNET", "127.0.0.1", str(port))
        assert left.returncode == 0 and "Successful operation" in left.stdout, left
    refused = [e for e in events if e["event"] == "connection_refused"]
    assert len(refused) == 1 and "called AE title not recognized" in str(refused[0]["reason"])
    ended = [e for e in events if e["event"] == "association_ended"]
    assert [(e["how"], e["by"], e["reason"], e["answers"]) for e in ended] == [
        ("aborted", None, "the transport connection closed", {"0x0000": 1})]


# -- dicomnet into CTN's simple_storage ------------------------------------------------------


@contextlib.contextmanager
def _simple_storage(tool: str, folder: Path, *options: str) -> Iterator[int]:
    """simple_storage (AE title CTN) storing under ``folder``, listening: its port."""
    port = free_port()
    folder.mkdir(parents=True)
    with subprocess.Popen([tool, "-s", "-c", "CTN", *options, str(port)], cwd=folder,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) as proc:
        try:
            wait_listening(port, proc)
            yield port
        finally:
            proc.terminate()
            proc.wait(timeout=20)


def test_dicomnet_store_and_echo_into_ctn(ctn: dict[str, str], tmp_path: Path) -> None:
    """dicomnet store (the CLI) of five syntaxes and a 2 MB image into a 4 KiB
    maximum PDU; the deflated one converted (CTN proposes no deflate), the RLE
    one refused for want of a context; a C-ECHO; a wrong called AE rejected."""
    inputs = {
        "im": write_part10(tmp_path / "in" / "im.dcm", make_image(11), ImplicitVRLittleEndian),
        "ex": write_part10(tmp_path / "in" / "ex.dcm", make_image(12), ExplicitVRLittleEndian),
        "be": write_part10(tmp_path / "in" / "be.dcm", make_image(13), ExplicitVRBigEndian),
        "df": write_part10(tmp_path / "in" / "df.dcm", make_image(14),
                           DeflatedExplicitVRLittleEndian),
        "rle": write_part10(tmp_path / "in" / "rle.dcm", make_image(15), RLELossless),
        "big": write_part10(tmp_path / "in" / "big.dcm",
                            make_image(16, rows=1024, columns=1024, frames=2),
                            ExplicitVRLittleEndian),
    }

    async def echo_and_wrong(port: int) -> tuple[int, str]:
        async with associate("127.0.0.1", port, called_ae_title="CTN") as assoc:
            status = int(await assoc.echo())
        try:
            async with associate("127.0.0.1", port, called_ae_title="WRONG"):
                pass
        except AssociationRejected as exc:
            return status, str(exc)
        return status, "accepted"

    with _simple_storage(ctn["simple_storage"], tmp_path / "ctn", "-m", "4096") as port:
        done = subprocess.run(
            [sys.executable, "-m", "dicomnet.cli.main", "store", "127.0.0.1", str(port),
             "--called-aet", "CTN", "--json", str(tmp_path / "in")],
            capture_output=True, text=True, timeout=PEER_TIMEOUT, check=False)
        status, rejected = run(echo_and_wrong(port), timeout=PEER_TIMEOUT)
    assert status == 0
    assert "rejected" in rejected and "called AE title not recognized" in rejected, rejected
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    results = {Path(r["path"]).stem: r for r in report["results"]}
    assert {k: r["status"] for k, r in results.items()} == {
        "im": 0, "ex": 0, "be": 0, "df": 0, "big": 0, "rle": None}
    assert "accepted no context" in str(results["rle"]["error"])
    stored = _stored(tmp_path / "ctn")
    assert len(stored) == 5
    for key, path in inputs.items():
        if key != "rle":  # a bare data set for the Implicit VR one: read with force
            received = stored[str(pydicom.dcmread(path).SOPInstanceUID)]
            assert_same_dataset(path, pydicom.dcmread(received, force=True))


def test_ctn_closing_after_one_object(ctn: dict[str, str], tmp_path: Path) -> None:
    """simple_storage -a closes the connection after one object, no A-ABORT: the
    next object is not stored, said so; the last is not sent."""
    inputs = [write_part10(tmp_path / "in" / f"{n}.dcm", make_image(20 + n),
                           ExplicitVRLittleEndian) for n in (1, 2, 3)]
    with _simple_storage(ctn["simple_storage"], tmp_path / "ctn", "-a") as port:
        results = run(store_paths("127.0.0.1", port, inputs, called_ae_title="CTN",
                                  max_async_operations=1), timeout=PEER_TIMEOUT)
    assert [r.status for r in results] == [0, None, None]
    assert results[1].error == "association aborted - the transport connection closed"
    assert results[2].error == "not sent: association aborted - the transport connection closed"
    assert list(_stored(tmp_path / "ctn")) == [make_image(21).SOPInstanceUID]
