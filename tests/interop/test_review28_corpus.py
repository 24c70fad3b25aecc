"""Session 28, by use: pydicom's bundled test files (pydicom 3.0.2, its package
folder ``data/test_files``: no meta, truncated, bad VR, UN sequences, Big Endian,
deflated, JPEG/JPEG-LS/JPEG 2000/RLE, RT, SR, a DICOMDIR folder and files that
are no DICOM) through ``dicomnet store --json`` over TLS with client
certificates, one association per path: to ``dicomnet serve``, and to DCMTK's
storescp accepting every syntax, then Implicit VR Little Endian alone (which
forces conversions), both bit-preserving (``+B``).

For each run: every file's outcome equals the table written down here, every
object reported stored is on the peer's disk with every element equal to a
source's (Pixel Data byte for byte when sent as is; values equal after a
conversion), and none reported failed is there.

What the tables show, and storescu's choices beside them (run by hand):

- Files without File Meta Information (no_meta, ExplVR_*NoMeta, rtstruct.dcm)
  or missing its UIDs (empty_charset_LEI, nested_priv_SQ,
  meta_missing_tsyntax) are "not a DICOM Part 10 file" and not sent: storescu
  sends some of them (it guesses the encoding); PS3.10 7.1 requires the meta.
- UN_sequence, priv_SQ and no_meta_group_length hold no SOP Class nor Instance
  UID in their data set: not sent (a C-STORE names the data set's own, PS3.7
  9.3.1.1), as storescu refuses them locally. They went under the meta's UIDs,
  dicomnet serve (and storescp without ``+B``) refused them with C000, and
  storescp ``+B`` kept them.
- The JPEG-LS Secondary Captures lack Study and Series Instance UIDs (Type 1):
  dicomnet serve refuses them ("cannot place the object"), storescp keeps them.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRBigEndian, ImplicitVRLittleEndian

from dicomnet.errors import DicomNetError
from dicomnet.services.store_contexts import storage_sop_classes
from dicomnet.storage import read_part10
from tests.aio.helpers import Pki, PkiFactory, background_process, free_port, run, wait_until
from tests.interop.conftest import Dcmtk
from tests.interop.test_review26_convert import _differences
from tests.storage.dicomfiles import assert_same_dataset

pytestmark = [
    pytest.mark.interop,
    # What pydicom says reading the files' quirks (badVR.dcm, SC_rgb_jpeg.dcm):
    # they are the point here.
    pytest.mark.filterwarnings("ignore:Invalid value for VR:UserWarning"),
    pytest.mark.filterwarnings("ignore:Expected explicit VR, but found implicit VR:UserWarning"),
]

FOLDER = Path(pydicom.__file__).parent / "data" / "test_files"
_VERIFICATION = "1.2.840.10008.1.1"

#: Files that are no DICOM Part 10 file, in every run.
_NOT_PART10 = {name: "not DICOM" for name in (
    "ExplVR_BigEndNoMeta.dcm", "ExplVR_LitEndNoMeta.dcm", "README.txt", "crayons.icc",
    "dicomdirtests/README.txt", "dicomdirtests/TINY_ALPHA/README", "empty_charset_LEI.dcm",
    "meta_missing_tsyntax.dcm", "nested_priv_SQ.dcm", "no_meta.dcm", "rtplan.dump",
    "rtstruct.dcm", "rtstruct.dump", "test1.json", "test_PN.json", "zipMR.gz")}
#: Files not sent for a reason of their own, in every run.
_NOT_SENT = {
    "MR_truncated.dcm": "not sent: cut short",
    "rtplan_truncated.dcm": "not sent: cut short",
    "SC_rgb_jpeg.dcm": "not sent: Implicit VR under an Explicit VR syntax",
    **dict.fromkeys(["UN_sequence.dcm", "priv_SQ.dcm", "no_meta_group_length.dcm"],
                    "not sent: no SOP Class or Instance UID in the data set"),
    # Their Media Storage SOP Class says DICOMDIR (PS3.10 8.6): passed over, not
    # failed, as the two named DICOMDIR are (they were "no context", as if the
    # peer were at fault).
    **{f"dicomdirtests/DICOMDIR-{name}": "passed over: DICOMDIR" for name in (
        "bigEnd", "empty.dcm", "implicit", "nooffset", "nopatient", "reordered")},
}
_NO_STUDY = "refused 0xC000: cannot place the object: no Study or Series Instance UID"
#: dicomnet serve: all stored as they are, but these.
SERVE = {**_NOT_PART10, **_NOT_SENT,
         **dict.fromkeys(["JPEGLSNearLossless_08.dcm", "JPEGLSNearLossless_16.dcm",
                          "SC_rgb_jls_lossy_line.dcm", "SC_rgb_jls_lossy_sample.dcm"],
                         _NO_STUDY)}
#: storescp +xa +B: all stored as they are, but these.
STORESCP_ALL = {**_NOT_PART10, **_NOT_SENT}
_COMPRESSED = [
    "693_J2KI.dcm", "GDCMJ2K_TextGBR.dcm", "J2K_pixelrep_mismatch.dcm", "JPEG-lossy.dcm",
    "JPEG2000-embedded-sequence-delimiter.dcm", "JPEG2000.dcm", "JPEGLSNearLossless_08.dcm",
    "JPEGLSNearLossless_16.dcm", "JPGExtended.dcm", "MR_small_RLE.dcm",
    "MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm",
    "SC_jpeg_no_color_transform.dcm", "SC_jpeg_no_color_transform_2.dcm",
    "SC_rgb_dcmtk_+eb+cr.dcm", "SC_rgb_dcmtk_+eb+cy+n1.dcm", "SC_rgb_dcmtk_+eb+cy+n2.dcm",
    "SC_rgb_dcmtk_+eb+cy+np.dcm", "SC_rgb_dcmtk_+eb+cy+s2.dcm", "SC_rgb_dcmtk_+eb+cy+s4.dcm",
    "SC_rgb_gdcm_KY.dcm", "SC_rgb_jls_lossy_line.dcm", "SC_rgb_jls_lossy_sample.dcm",
    "SC_rgb_jpeg_app14_dcmd.dcm", "SC_rgb_jpeg_dcmtk.dcm", "SC_rgb_jpeg_gdcm.dcm",
    "SC_rgb_jpeg_lossy_gdcm.dcm", "SC_rgb_rle.dcm", "SC_rgb_rle_16bit.dcm",
    "SC_rgb_rle_16bit_2frame.dcm", "SC_rgb_rle_2frame.dcm", "SC_rgb_rle_32bit.dcm",
    "SC_rgb_rle_32bit_2frame.dcm", "SC_rgb_small_odd_jpeg.dcm",
    "examples_jpeg2k.dcm", "examples_ybr_color.dcm", "rtdose_rle.dcm", "rtdose_rle_1frame.dcm"]
#: Sent as they are to an Implicit VR Little Endian only storescp.
_IMPLICIT_ALREADY = ["MR_small_implicit.dcm", "SC_rgb_jpeg_dcmd.dcm", "rtdose.dcm",
                     "rtdose_1frame.dcm", "rtplan.dcm"]
#: storescp, Implicit VR Little Endian alone: the rest converted to it, but these.
STORESCP_IMPLICIT = {
    **_NOT_PART10, **_NOT_SENT,
    # No decoder: a compressed file goes as it is or not at all.
    **dict.fromkeys(_COMPRESSED, "no context: compressed"),
    "SC_rgb_jpeg.dcm": "no context: compressed",
    **dict.fromkeys(_IMPLICIT_ALREADY, "stored"),
}


def _listed() -> list[str]:
    """The folder's files, but those named DICOMDIR (two), which a folder's
    listing passes over (store_listing): they are in no result."""
    return sorted(str(p.relative_to(FOLDER)) for p in FOLDER.rglob("*")
                  if p.is_file() and p.name != "DICOMDIR")


def expected(table: dict[str, str], otherwise: str) -> dict[str, str]:
    """Every file of the folder: its outcome in ``table``, else ``otherwise``."""
    return {name: table.get(name, otherwise) for name in _listed()}


def outcome(result: dict[str, object]) -> str:
    """One result of ``dicomnet store --json`` in the table's words."""
    error = str(result["error"] or "")
    if result["ok"]:
        converted = result["converted_to"]
        return "stored" if converted is None else f"stored as {converted}"
    if result["not_dicom"]:
        return "not DICOM"
    if result["dicomdir"]:
        assert not result["sent"] and result["status"] is None
        return "passed over: DICOMDIR"
    if isinstance(result["status"], int):
        return f"refused 0x{result['status']:04X}: {result['error_comment']}"
    for words, short in (
            ("ends inside element", "not sent: cut short"),
            ("is in Implicit VR, but its transfer syntax", "not sent: Implicit VR under an "
                                                           "Explicit VR syntax"),
            ("(compressed; not converted)", "no context: compressed"),
            ("no SOP Class UID (0008,0016) and no SOP Instance UID (0008,0018) in the data",
             "not sent: no SOP Class or Instance UID in the data set")):
        if words in error:
            return short
    return f"unexpected: {error}"


def store(pki: Pki, port: int, *options: str) -> dict[str, object]:
    """``dicomnet store --json`` of the whole folder, as users run it."""
    done = subprocess.run(
        [sys.executable, "-m", "dicomnet.cli.main", "store", "localhost", str(port),
         str(FOLDER), "--json", "--tls", "--cert", str(pki.client_cert), "--key",
         str(pki.client_key), "--ca", str(pki.ca_file), *options],
        capture_output=True, text=True, timeout=120, check=False)
    assert "Traceback" not in done.stderr, done.stderr
    document: dict[str, object] = json.loads(done.stdout)
    assert (done.returncode, document["exit_code"], document["error"]) == (1, 1, None)
    # The six DICOMDIRs named otherwise: in results, in no count but their own.
    assert document["dicomdirs"] == 6
    assert document["total"] == len(document["results"]) - 6  # type: ignore[arg-type]
    return document


def _name(result: dict[str, object]) -> str:
    return str(Path(str(result["path"])).relative_to(FOLDER))


def _without_group_lengths(dataset: Dataset) -> Dataset:
    """Group Length elements (gggg,0000) left out: a conversion drops them (their
    values change with the encoding; PS3.5 7.2 makes them optional)."""
    for element in list(dataset):
        if element.tag.element == 0 and element.tag.group != 0x0002:
            del dataset[element.tag]
    return dataset


def _converted_problems(source: Path, received: Path, target: str) -> list[str]:
    sent, got = _without_group_lengths(dcmread(source)), dcmread(received)
    if got.file_meta.TransferSyntaxUID != target:
        return [f"stored in {got.file_meta.TransferSyntaxUID}, not {target}"]
    swapped = (sent.file_meta.TransferSyntaxUID == ExplicitVRBigEndian) != (
        target == ExplicitVRBigEndian)
    problems = _differences(sent, got, swapped=swapped, implicit=target == ImplicitVRLittleEndian)
    # An empty private value: b"" in its source, None once read back as UN.
    return [p for p in problems if not p.endswith("b'' != UN None")]


def check_disk(document: dict[str, object], files: dict[str, list[Path]]) -> None:
    """Every object reported stored is in ``files`` (SOP Instance UID -> the
    peer's files) equal to one of its sources; none reported failed is there."""
    results = document["results"]
    assert isinstance(results, list)
    sources: dict[str, list[dict[str, object]]] = {}
    for result in results:
        if result["ok"]:
            sources.setdefault(str(result["sop_instance_uid"]), []).append(result)
    failed = {str(r["sop_instance_uid"]) for r in results if not r["ok"]} - set(sources)
    assert not failed & set(files), sorted(failed & set(files))
    assert set(files) == set(sources)
    for uid, stored in files.items():
        for path in stored:
            problems = []
            for result in sources[uid]:  # the same object in several files
                target, source = result["converted_to"], Path(str(result["path"]))
                if target is not None:
                    problems = _converted_problems(source, path, str(target))
                else:
                    try:
                        assert_same_dataset(source, path)
                        problems = []
                    except AssertionError as exc:
                        problems = [str(exc)]
                if not problems:
                    break
            assert not problems, (path, [_name(r) for r in sources[uid]], problems[:5])


@contextlib.contextmanager
def dicomnet_serve(pki: Pki, folder: Path) -> Iterator[tuple[int, Path]]:
    """``dicomnet serve --tls --json`` (a subprocess) storing into ``folder /
    "store"``: (its port, the file its stdout goes to). Not a pipe: its ~150
    JSON lines would fill one no one reads, and its writes then block the server
    (conftest's dicomnet_serve reads its first line only)."""
    events = folder / "serve.jsonl"
    with events.open("w") as out, (folder / "serve.err").open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dicomnet.cli.main", "serve", "--port", "0", "--json",
             "--output", str(folder / "store"), "--tls", "--cert", str(pki.server_cert),
             "--key", str(pki.server_key), "--ca", str(pki.ca_file)],
            stdout=out, stderr=err)
    try:
        run(wait_until(lambda: events.read_text().endswith("\n"), "dicomnet serve to start"))
        yield int(json.loads(events.read_text().splitlines()[0])["port"]), events
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_the_folder_to_dicomnet_serve(tmp_path: Path, pkis: PkiFactory) -> None:
    pki = pkis("rsa")
    with dicomnet_serve(pki, tmp_path) as (port, events):
        document = store(pki, port)
    assert "Traceback" not in (tmp_path / "serve.err").read_text()
    refused = [json.loads(line) for line in events.read_text().splitlines()
               if '"refused"' in line]
    assert len(refused) == 4  # the refusals of SERVE, each with its reason
    assert document["tls_connections"] == 1  # one association for the 174 files
    got = {_name(r): outcome(r) for r in document["results"]}  # type: ignore[attr-defined]
    assert got == expected(SERVE, "stored")
    files: dict[str, list[Path]] = {}
    for path in (tmp_path / "store").rglob("*.dcm"):
        files.setdefault(str(dcmread(path, stop_before_pixels=True).SOPInstanceUID),
                         []).append(path)
    check_disk(document, files)


@contextlib.contextmanager
def storescp(dcmtk: Dcmtk, pki: Pki, folder: Path, mode: str) -> Iterator[tuple[int, Path]]:
    """storescp over TLS (client certificate required), bit-preserving: every
    syntax it knows (``all``) or Implicit VR Little Endian alone (``implicit``)."""
    options: list[str | Path] = ["+xa"]
    if mode == "implicit":
        classes = storage_sop_classes()
        config = ["[[TransferSyntaxes]]", "[TS]", f"TransferSyntax1 = {ImplicitVRLittleEndian}",
                  "[[PresentationContexts]]", "[PC]", f"PresentationContext1 = {_VERIFICATION}\\TS"]
        # storescp takes 128 contexts at most: the classes the folder has among them.
        wanted = set()
        for path in FOLDER.rglob("*"):
            with contextlib.suppress(DicomNetError):
                wanted.add(read_part10(path).sop_class_uid)
        config += [f"PresentationContext{n} = {uid}\\TS"
                   for n, uid in enumerate([c for c in classes if c in wanted], 2)]
        config += ["[[Profiles]]", "[implicit]", "PresentationContexts = PC"]
        (folder / "storescp.cfg").write_text("\n".join(config) + "\n")
        options = ["-xf", folder / "storescp.cfg", "implicit"]
    out = folder / "received"
    out.mkdir(parents=True)
    port = free_port()
    with background_process(dcmtk.storescp, "-aet", "STORESCP", "+tls", pki.server_key,
                            pki.server_cert, "+cf", pki.ca_file, "-pw", *options, "+B",
                            "-od", out, str(port), log_path=folder / "storescp.log",
                            port=port):
        yield port, out


@pytest.mark.parametrize("mode", ["all", "implicit"])
def test_the_folder_to_storescp(tmp_path: Path, pkis: PkiFactory, dcmtk: Dcmtk,
                                mode: str) -> None:
    pki = pkis("rsa")
    with storescp(dcmtk, pki, tmp_path, mode) as (port, out):
        document = store(pki, port, "--called-aet", "STORESCP")
    log = (tmp_path / "storescp.log").read_text(errors="replace")
    assert "abort" not in log.lower(), log[-2000:]
    assert document["tls_connections"] == 1
    got = {_name(r): outcome(r) for r in document["results"]}  # type: ignore[attr-defined]
    if mode == "all":
        assert got == expected(STORESCP_ALL, "stored")
    else:
        assert got == expected(STORESCP_IMPLICIT, f"stored as {ImplicitVRLittleEndian}")
    # storescp names each file by the C-STORE's SOP Instance UID (after its
    # modality's prefix), whether or not the data set holds one.
    files: dict[str, list[Path]] = {}
    for path in out.iterdir():
        files.setdefault(path.name.split(".", 1)[1], []).append(path)
    check_disk(document, files)
