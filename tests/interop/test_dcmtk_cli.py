"""The `dicomnet serve` command itself (a subprocess, as users run it) answering
DCMTK's echoscu and storescu over mutually authenticated TLS."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian

from tests.aio.helpers import (
    PkiFactory,
    background_process,
    free_port,
    peer_env,
    wait_output,
)
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


def test_storescu_with_a_user_identity_into_dicomnet_serve(
        dcmtk: Dcmtk, pkis: PkiFactory, tmp_path: Path) -> None:
    """User Identity Negotiation (PS3.7 D.3.3.7) toward a server that verifies none:
    the sub-item is ignored, as D.3.3.7.2 says, and the objects are stored. When
    the requestor asked for a positive response, storescu closes the association
    on not getting one (its choice): serve's log says why the peer left, where it
    said only "the transport connection closed"."""
    storescu = shutil.which("storescu")
    if storescu is None:
        _missing("DCMTK storescu")
    pki = pkis("rsa")
    sources = [write_part10(tmp_path / "in" / f"{n}.dcm", make_image(n, rows=300, columns=200),
                            ExplicitVRLittleEndian) for n in (80, 81)]
    store = tmp_path / "store"
    with dicomnet_serve(pki, store) as (port, stderr):
        for source, identity in zip(sources, (["-usr", "alice", "-pwd", "s3cret"],
                                              ["-usr", "alice", "-pwd", "s3cret", "-rsp"]),
                                    strict=True):
            done = subprocess.run(
                [str(storescu), *_tls_args(pki.directory), *identity, "127.0.0.1", str(port),
                 str(source)], capture_output=True, text=True, timeout=30, env=peer_env(),
                check=False)
            if "-rsp" in identity:
                assert "Positive response requested but none received" in done.stdout + \
                    done.stderr
            else:
                assert done.returncode == 0, done.stdout + done.stderr
    stored = list(store.rglob("*.dcm"))
    assert len(stored) == 1
    assert_same_dataset(sources[0], stored[0])
    log = stderr[0]
    assert log.count("STORESCU@127.0.0.1") == 3, log  # two associations, one remark
    assert ("asked for a positive User Identity response (username and passcode), "
            "which this server gives to none") in log, log


def _dicomnet_echo_tls(port: int, pki_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dicomnet.cli.main", "echo", "127.0.0.1", str(port), "--tls",
         "--ca", str(pki_dir / "ca.pem")], capture_output=True, text=True, timeout=60,
        check=False)


def test_dicomnet_echo_tls_against_a_plain_storescp(dcmtk: Dcmtk, pkis: PkiFactory,
                                                    tmp_path: Path) -> None:
    """storescp without TLS reads our ClientHello as a PDU of type 0x16 and closes
    without a byte: said as a port without TLS, where it said 'we sent no
    certificate: the server most likely requires one'."""
    pki = pkis("rsa")
    port = free_port()
    with background_process(dcmtk.storescp, "-od", tmp_path, str(port),
                            log_path=tmp_path / "storescp.log", port=port) as peer:
        done = _dicomnet_echo_tls(port, pki.directory)
        wait_output(peer, "Unrecognized PDU type: 16")
    assert done.returncode == 3, done.stderr
    assert done.stderr.splitlines()[-1] == (
        f"error: TLS handshake with 127.0.0.1:{port} failed: the server closed the "
        "connection without answering our ClientHello (no TLS record came back): it most "
        "likely does not speak TLS here (a plain DICOM port? try without --tls)")
