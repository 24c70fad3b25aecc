"""Session 27, by use: conversions to a DCMTK storescp told to accept Explicit VR
Big Endian alone (a ``-xf`` configuration), bit-preserving (``+B``), so that
each file it writes holds the data set as it came.

- More (SOP class, syntax) pairs than one association can propose: every
  batch offers each of its classes the last resort context (store_batch).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from dicomnet.services.storage import StoreResult, store_paths
from dicomnet.services.store_contexts import storage_sop_classes
from tests.aio.helpers import LOOPBACK, background_process, free_port, run, wait_until
from tests.interop.conftest import Dcmtk
from tests.interop.test_review26_convert import _assert_converted
from tests.storage.dicomfiles import make_image, write_part10

pytestmark = pytest.mark.interop

_VERIFICATION = "1.2.840.10008.1.1"


@contextlib.contextmanager
def storescp_big_endian(dcmtk: Dcmtk, folder: Path, classes: list[str]
                        ) -> Iterator[tuple[int, Path]]:
    """storescp accepting ``classes`` in Explicit VR Big Endian alone,
    bit-preserving: (its port, the folder it writes to)."""
    lines = ["[[TransferSyntaxes]]", "[TS-verification]",
             f"TransferSyntax1 = {ImplicitVRLittleEndian}", "[TS-be]",
             f"TransferSyntax1 = {ExplicitVRBigEndian}", "[[PresentationContexts]]", "[PC-be]",
             f"PresentationContext1 = {_VERIFICATION}\\TS-verification"]
    lines += [f"PresentationContext{n} = {uid}\\TS-be" for n, uid in enumerate(classes, 2)]
    lines += ["[[Profiles]]", "[be]", "PresentationContexts = PC-be"]
    config = folder / "storescp.cfg"
    config.write_text("\n".join(lines) + "\n")
    out = folder / "received"
    out.mkdir(parents=True)
    port = free_port()
    with background_process(dcmtk.storescp, "-xf", config, "be", "+B", "-od", out, str(port),
                            log_path=folder / "storescp.log", port=port):
        yield port, out


def _send(port: int, paths: list[Path]) -> list[StoreResult]:
    return run(store_paths(LOOPBACK, port, paths, called_ae_title="STORESCP"), timeout=120)


def _received(out: Path, count: int) -> dict[str, Path]:
    """SOP Instance UID -> the file storescp wrote, once it wrote ``count``."""
    run(wait_until(lambda: len(list(out.iterdir())) >= count, f"storescp to write {count}"))
    return {str(dcmread(p, stop_before_pixels=True).SOPInstanceUID): p for p in out.iterdir()}


def test_more_pairs_than_one_association_all_reach_a_big_endian_only_peer(
        tmp_path: Path, dcmtk: Dcmtk) -> None:
    """65 SOP classes, each with a file in Implicit VR and one in Explicit VR
    Little Endian: 130 (class, syntax) pairs, 195 contexts before the last
    resort ones. Each class costs 4 contexts with its last resort one: three
    associations of 32, 32 and 1 classes, each offering every one of its
    classes Big Endian; all 130 files go, converted, and storescp holds them in
    Big Endian. Before, the first association (43 classes, 128 contexts)
    offered it to none: 85 files went nowhere ("it takes that SOP Class in
    none of the transfer syntaxes proposed")."""
    classes = storage_sop_classes()[:65]
    sources: list[Path] = []
    for n, sop_class in enumerate(classes):
        for m, syntax in enumerate((ImplicitVRLittleEndian, ExplicitVRLittleEndian)):
            number = 2700 + 2 * n + m
            sources.append(write_part10(tmp_path / "in" / f"{number}.dcm",
                                        make_image(number, rows=4, columns=4,
                                                   sop_class_uid=sop_class), syntax))
    with storescp_big_endian(dcmtk, tmp_path, classes) as (port, out):
        results = _send(port, sources)
        failed = [(r.path, r.error) for r in results if not r.ok]
        assert not failed, (len(failed), failed[:3])
        received = _received(out, len(sources))
    assert [(r.status, r.converted_to) for r in results] == [(0, str(ExplicitVRBigEndian))] * 130
    assert len(received) == 130
    for source in sources[::13]:  # a few of them, element by element
        uid = str(dcmread(source, stop_before_pixels=True).SOPInstanceUID)
        _assert_converted(source, received[uid], ExplicitVRBigEndian)
