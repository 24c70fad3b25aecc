"""Real senders meet the free-space reserve (`dicomnet serve --min-free`): DCMTK's
storescu and pynetdicom, over TLS with mutual authentication, are answered
0xA700 "Refused: Out of Resources" (PS3.4 B.2.3) with the Error Comment that
says why, read by each peer in its own words; nothing is stored. The same
server with the reserve at 0 stores what they send."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path
from types import ModuleType

import pytest

from tests.aio.helpers import LOOPBACK, PkiFactory, peer_env
from tests.interop.conftest import Dcmtk, _missing, dicomnet_serve
from tests.interop.test_dcmtk_cli import _tls_args
from tests.storage.dicomfiles import SECONDARY_CAPTURE, make_image, uid, write_part10

pytestmark = pytest.mark.interop

COMMENT = "cannot store: disk space down to the store's reserve"


def test_storescu_is_refused_out_of_resources_under_the_reserve(
        dcmtk: Dcmtk, pkis: PkiFactory, tmp_path: Path) -> None:
    storescu = shutil.which("storescu")
    if storescu is None:
        _missing("DCMTK storescu")
    pki = pkis("rsa")
    source = write_part10(tmp_path / "in" / "a.dcm", make_image(120, rows=512, columns=600),
                          "1.2.840.10008.1.2.1")
    results = {}
    for reserve in ("100%", "0"):
        store = tmp_path / f"store-{reserve.rstrip('%')}"
        with dicomnet_serve(pki, store, "--min-free", reserve) as (port, stderr):
            done = subprocess.run([str(storescu), *_tls_args(pki.directory), "-d", "-R",
                                   "127.0.0.1", str(port), str(source)],
                                  capture_output=True, text=True, timeout=60, env=peer_env(),
                                  check=False)
        results[reserve] = (done, stderr[0], sorted(store.rglob("*.dcm")))
    refused, log, files = results["100%"]
    said = refused.stdout + refused.stderr
    # storescu (-d) names the status and prints the Error Comment it was sent.
    assert "DIMSE Status                  : 0xa700: Refused: Out of resources" in said, said
    assert f"(0000,0902) LO [{COMMENT}]" in said, said
    assert files == []
    assert "refused, status 0xA700: no room for" in log, log
    stored, _, files = results["0"]
    assert stored.returncode == 0, stored.stdout + stored.stderr
    assert [p.name for p in files] == [f"{uid(9, 120)}.dcm"]


def test_pynetdicom_is_refused_out_of_resources_under_the_reserve(
        pynetdicom: ModuleType, pkis: PkiFactory, tmp_path: Path) -> None:
    pki = pkis("ecdsa")
    source = write_part10(tmp_path / "in" / "a.dcm", make_image(121, rows=300, columns=400),
                          "1.2.840.10008.1.2.1")
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(pki.ca_file))
    context.load_cert_chain(str(pki.client_cert), str(pki.client_key))
    answers = {}
    for reserve in ("100%", "0"):
        store = tmp_path / f"store-{reserve.rstrip('%')}"
        with dicomnet_serve(pki, store, "--min-free", reserve) as (port, _):
            ae = pynetdicom.AE(ae_title="PYNETDICOM-SCU")
            ae.add_requested_context(SECONDARY_CAPTURE, ["1.2.840.10008.1.2.1"])
            assoc = ae.associate(LOOPBACK, port, tls_args=(context, LOOPBACK))
            try:
                assert assoc.is_established
                status = assoc.send_c_store(source)
            finally:
                if assoc.is_established:
                    assoc.release()
                ae.shutdown()
        answers[reserve] = (int(status.Status), status.get("ErrorComment"),
                            sorted(p.name for p in store.rglob("*.dcm")))
    assert answers["100%"] == (0xA700, COMMENT, [])
    assert answers["0"] == (0x0000, None, [f"{uid(9, 121)}.dcm"])
