"""Storage over TLS with mutual authentication against DCMTK 3.6.7 (storescu, storescp).

For every transfer syntax (implicit LE, explicit LE, explicit BE, deflated, RLE
Lossless) the received data set equals the sent one element by element, pixel
bytes included, and RLE arrives compressed (passed through, not converted).
"""

from __future__ import annotations

import array
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    RLELossless,
)

from dicomnet.errors import TLSError
from dicomnet.services import store_convert
from dicomnet.services.storage import INDEX_NAME, StorageSCP, StoreResult, store_paths
from dicomnet.services.verification import VerificationSCP
from dicomnet.storage.index import StorageIndex
from dicomnet.storage.part10 import read_part10
from tests.aio.helpers import (
    LOOPBACK,
    BackgroundProcess,
    Pki,
    PkiFactory,
    background_process,
    free_port,
    run,
    run_process,
    running_server,
    wait_until,
)
from tests.interop.conftest import Dcmtk
from tests.storage.dicomfiles import (
    SYNTAX_NAMES,
    assert_same_dataset,
    make_image,
    uid,
    write_part10,
)

pytestmark = pytest.mark.interop

#: storescu option proposing the file's syntax (with -R: only what the files need).
PROPOSE = {"implicit-le": "-xi", "explicit-le": "-xe", "explicit-be": "-xb",
           "deflated": "-xd", "rle": "-xr"}
SERVER_AE = "DICOMNET-SCP"


@pytest.fixture(scope="module")
def storescu(dcmtk: Dcmtk) -> Path:
    path = shutil.which("storescu")
    if path is None:
        message = "DCMTK storescu is not on PATH"
        if os.environ.get("CI", "").strip().lower() == "true":
            pytest.fail(f"{message}: under CI=true every interop peer must be installed")
        pytest.skip(message)
    return Path(path)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "root"


@pytest.fixture(scope="module")
def pki(pkis: PkiFactory) -> Pki:
    return pkis("rsa")


def dcmtk_tls(pki: Pki, *, server: bool) -> list[str]:
    cert, key = (pki.server_cert, pki.server_key) if server else (pki.client_cert, pki.client_key)
    return ["+tls", str(key), str(cert), "+cf", str(pki.ca_file), "-pw"]


def stored_path(root: Path, number: int) -> Path:
    return root / uid(1, number) / uid(2, number) / f"{uid(9, number)}.dcm"


# -- DCMTK storescu -> dicomnet StorageSCP -------------------------------------------------


@pytest.mark.parametrize("name", list(SYNTAX_NAMES))
def test_storescu_over_tls_into_storage_scp(
    tmp_path: Path, root: Path, storescu: Path, pki: Pki, name: str
) -> None:
    number = 100 + list(SYNTAX_NAMES).index(name)
    syntax = SYNTAX_NAMES[name]
    # 512 x 600 pixels: well over storescu's 16 KiB PDUs, so many fragments.
    source = write_part10(tmp_path / f"{name}.dcm", make_image(number, rows=512, columns=600),
                          syntax)

    async def scenario() -> tuple[int, str]:
        scp = StorageSCP(root)
        try:
            async with running_server(ae_title=SERVER_AE, tls=pki.server_tls(),
                                      providers=[VerificationSCP(), scp]) as server:
                return await run_process(
                    storescu, *dcmtk_tls(pki, server=False), "-aet", "DCMTK-SCU",
                    "-aec", SERVER_AE, PROPOSE[name], "-R", LOOPBACK, str(server.port),
                    source, timeout=30,
                )
        finally:
            scp.close()

    code, output = run(scenario(), timeout=60)
    assert code == 0, output
    stored = stored_path(root, number)
    meta = dcmread(stored).file_meta
    assert meta.TransferSyntaxUID == syntax  # RLE passed through, compressed
    assert meta.SourceApplicationEntityTitle == "DCMTK-SCU"
    assert_same_dataset(source, stored)
    with StorageIndex(root / INDEX_NAME) as index:
        row = index.get_instance(uid(9, number))
        assert row is not None
        assert (row.transfer_syntax_uid, row.calling_ae) == (syntax, "DCMTK-SCU")
        assert row.peer_fingerprint  # the TLS client certificate's
    assert not list(root.rglob("*.dicomnet-part"))


# -- dicomnet store_paths -> DCMTK storescp -------------------------------------------------


@pytest.fixture
def storescp(dcmtk: Dcmtk, pki: Pki, tmp_path: Path, request: pytest.FixtureRequest
             ) -> Iterator[tuple[BackgroundProcess, int, Path]]:
    """storescp over TLS accepting every syntax it supports (``+xa``) unless the test
    parametrizes it indirectly with other options; bit-preserving (``+B``), so each
    file holds the data set as received."""
    options: list[str] = getattr(request, "param", ["+xa"])
    out = tmp_path / "dcmtk-out"
    out.mkdir()
    port = free_port()
    with background_process(
        dcmtk.storescp, *dcmtk_tls(pki, server=True), "-aet", "STORESCP", *options, "+B",
        "-od", out, str(port), log_path=tmp_path / "storescp.log", port=port,
    ) as peer:
        yield peer, port, out


def send_to(port: int, pki: Pki, paths: list[Path]) -> list[StoreResult]:
    return run(store_paths(LOOPBACK, port, paths, tls=pki.client_tls(),
                           calling_ae_title="DICOMNET-SCU", called_ae_title="STORESCP"),
               timeout=60)


async def _wait_files(paths: list[Path]) -> None:
    await wait_until(lambda: all(p.exists() for p in paths), "storescp to write its files")


def wait_files(paths: list[Path]) -> None:
    run(_wait_files(paths))


def test_store_paths_over_tls_into_storescp_every_syntax(
    tmp_path: Path, pki: Pki, storescp: tuple[BackgroundProcess, int, Path]
) -> None:
    peer, port, out = storescp
    sources = {
        name: write_part10(tmp_path / "in" / f"{name}.dcm",
                           make_image(200 + i, rows=400, columns=300), ts)
        for i, (name, ts) in enumerate(SYNTAX_NAMES.items())
    }
    results = {r.path.stem: r for r in send_to(port, pki, [tmp_path / "in"])}
    for name in SYNTAX_NAMES:
        r = results[name]
        assert (r.ok, r.status, r.error, r.converted_to) == (True, 0, None, None), (
            name, peer.output())
    received = {name: out / f"SC.{uid(9, 200 + i)}" for i, name in enumerate(SYNTAX_NAMES)}
    wait_files(list(received.values()))
    for name, syntax in SYNTAX_NAMES.items():
        assert dcmread(received[name]).file_meta.TransferSyntaxUID == syntax, name
        assert_same_dataset(sources[name], received[name])


@pytest.mark.parametrize("storescp", [["+xi"]], indirect=True, ids=["implicit-only"])
def test_store_paths_converts_or_skips_for_an_implicit_only_storescp(
    tmp_path: Path, pki: Pki, storescp: tuple[BackgroundProcess, int, Path]
) -> None:
    _, port, out = storescp
    sources = {
        "explicit-le": write_part10(tmp_path / "in" / "le.dcm", make_image(300),
                                    ExplicitVRLittleEndian),
        "explicit-be": write_part10(tmp_path / "in" / "be.dcm", make_image(301),
                                    ExplicitVRBigEndian),
        "rle": write_part10(tmp_path / "in" / "rle.dcm", make_image(302), RLELossless),
    }
    results = {r.path.name: r for r in send_to(port, pki, [tmp_path / "in"])}
    for name in ("le.dcm", "be.dcm"):
        r = results[name]
        assert (r.ok, r.status, r.converted_to) == (True, 0, ImplicitVRLittleEndian), r
    rle = results["rle.dcm"]
    assert (rle.ok, rle.status) == (False, None)
    assert rle.error is not None and "compressed; not converted" in rle.error
    received = [out / f"SC.{uid(9, n)}" for n in (300, 301)]
    wait_files(received)
    for path, source in zip(received, (sources["explicit-le"], sources["explicit-be"]),
                            strict=True):
        assert dcmread(path).file_meta.TransferSyntaxUID == ImplicitVRLittleEndian
        assert_same_dataset(source, path)
    assert not (out / f"SC.{uid(9, 302)}").exists()


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ExplicitVRBigEndian,
                                    DeflatedExplicitVRLittleEndian],
                         ids=["explicit-le", "explicit-be", "deflated"])
@pytest.mark.parametrize("storescp", [["+xi"]], indirect=True, ids=["implicit-only"])
def test_a_large_file_is_converted_through_a_temporary_file_for_storescp(
    tmp_path: Path, pki: Pki, storescp: tuple[BackgroundProcess, int, Path],
    monkeypatch: pytest.MonkeyPatch, syntax: str,
) -> None:
    """Past ``store_convert.IN_MEMORY_MOST`` (lowered here) the converted data set is
    written to a temporary file, its Pixel Data copied in pieces (its 16-bit
    words swapped from Big Endian; inflated from Deflated): DCMTK stores the
    same data set, and the same pixel values."""
    _, port, out = storescp
    monkeypatch.setattr(store_convert, "IN_MEMORY_MOST", 64 << 10)
    image = make_image(310, rows=256, columns=256, frames=4)
    image.BitsAllocated, image.BitsStored, image.HighBit = 16, 16, 15
    words = array.array("H", os.urandom(256 * 256 * 4 * 2))
    stored_words = array.array("H", words)
    if syntax == ExplicitVRBigEndian:
        words.byteswap()  # pydicom writes OW bytes as given: Big Endian words
    image.PixelData = words.tobytes()
    image["PixelData"].VR = "OW"
    source = write_part10(tmp_path / "in" / "big.dcm", image, syntax)
    assert store_convert.converts_through_file(read_part10(source), ImplicitVRLittleEndian)
    [result] = send_to(port, pki, [source])
    assert (result.ok, result.status, result.converted_to) == (
        True, 0, ImplicitVRLittleEndian), result
    received = out / f"SC.{uid(9, 310)}"
    wait_files([received])
    stored = dcmread(received)
    assert stored.file_meta.TransferSyntaxUID == ImplicitVRLittleEndian
    assert stored.PixelData == stored_words.tobytes()
    sent = dcmread(source)
    del sent.PixelData, stored.PixelData
    assert_same_dataset(sent, stored)


def test_storescp_refuses_a_client_certificate_from_another_ca(
    tmp_path: Path, pki: Pki, pkis: PkiFactory, storescp: tuple[BackgroundProcess, int, Path]
) -> None:
    """Mutual authentication is real: a client certificate from another CA is refused,
    and store_paths says so with a TLSError."""
    _, port, out = storescp
    other = pkis("ecdsa")  # a different CA, which storescp does not trust
    source = write_part10(tmp_path / "in" / "x.dcm", make_image(400), ExplicitVRLittleEndian)
    with pytest.raises(TLSError, match="certificate"):
        run(store_paths(LOOPBACK, port, [source], tls=other.client_tls(cafile=pki.ca_file),
                        called_ae_title="STORESCP"))
    assert not (out / f"SC.{uid(9, 400)}").exists()
