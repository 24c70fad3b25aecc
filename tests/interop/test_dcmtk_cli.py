"""The `dicomnet serve` command itself (a subprocess, as users run it) answering
DCMTK's echoscu and storescu over mutually authenticated TLS."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian

from tests.aio.helpers import PkiFactory, peer_env
from tests.interop.conftest import Dcmtk, _missing, dicomnet_serve
from tests.storage.dicomfiles import assert_same_dataset, make_image, write_part10


@pytest.fixture
def served(tmp_path: Path, pkis: PkiFactory) -> Iterator[tuple[int, Path, Path]]:
    """`dicomnet serve --tls` on a free port: (port, store folder, pki folder)."""
    pki = pkis("rsa")
    store = tmp_path / "store"
    with dicomnet_serve(pki, store) as (port, _):
        yield port, store, pki.directory


def _tls_args(pki_dir: Path) -> list[str]:
    return ["+tls", str(pki_dir / "client.key"), str(pki_dir / "client.pem"),
            "+cf", str(pki_dir / "ca.pem")]


def test_echoscu_tls_against_dicomnet_serve(dcmtk: Dcmtk,
                                             served: tuple[int, Path, Path]) -> None:
    port, _, pki_dir = served
    done = subprocess.run([str(dcmtk.echoscu), "-v", *_tls_args(pki_dir), "127.0.0.1",
                           str(port)], capture_output=True, text=True, timeout=30,
                          env=peer_env(), check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Received Echo Response (Success)" in done.stdout + done.stderr


def test_storescu_tls_into_dicomnet_serve(dcmtk: Dcmtk, served: tuple[int, Path, Path],
                                          tmp_path: Path) -> None:
    storescu = shutil.which("storescu")
    if storescu is None:
        _missing("DCMTK storescu")
    port, store, pki_dir = served
    source = write_part10(tmp_path / "in" / "ct.dcm", make_image(77), ExplicitVRLittleEndian)
    done = subprocess.run([str(storescu), *_tls_args(pki_dir), "127.0.0.1", str(port),
                           str(source)], capture_output=True, text=True, timeout=30,
                          env=peer_env(), check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    stored = list(store.rglob("*.dcm"))
    assert len(stored) == 1
    assert_same_dataset(source, stored[0])
