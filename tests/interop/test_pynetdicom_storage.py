"""Storage over TLS with mutual authentication against pynetdicom, both ways.

pynetdicom's AE as storage SCU (``tls_args``) into dicomnet's StorageSCP, and
dicomnet's ``store_paths`` into a pynetdicom storage SCP started with an
``ssl_context`` whose handler keeps the encoded data sets. Every data set must
arrive equal element by element, pixel bytes included, in every transfer
syntax, RLE Lossless passed through compressed.
"""

from __future__ import annotations

import asyncio
import io
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, RLELossless

from dicomnet.services.storage import INDEX_NAME, StorageSCP, store_paths
from dicomnet.services.store_prepare import PduBuffers
from dicomnet.services.verification import VerificationSCP
from dicomnet.storage.index import StorageIndex
from tests.aio.helpers import LOOPBACK, Pki, PkiFactory, run, running_server
from tests.storage.dicomfiles import (
    ALL_SYNTAXES,
    SECONDARY_CAPTURE,
    SYNTAX_NAMES,
    assert_same_dataset,
    make_image,
    uid,
    write_part10,
)

pytestmark = pytest.mark.interop
SERVER_AE = "DICOMNET-SCP"


@pytest.fixture(scope="module")
def pki(pkis: PkiFactory) -> Pki:
    return pkis("ecdsa")


@pytest.fixture
def sources(tmp_path: Path) -> dict[str, Path]:
    """One file per transfer syntax, 300 x 400 pixels (several PDUs each)."""
    return {
        name: write_part10(tmp_path / "in" / f"{name}.dcm",
                           make_image(500 + i, rows=300, columns=400), ts)
        for i, (name, ts) in enumerate(SYNTAX_NAMES.items())
    }


# -- pynetdicom SCU -> dicomnet StorageSCP --------------------------------------------------


def pynetdicom_send(pynetdicom: ModuleType, pki: Pki, port: int, paths: list[Path]) -> list[int]:
    """pynetdicom's AE sends each file (as is, from its path) over TLS; the statuses."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(pki.ca_file))
    context.load_cert_chain(str(pki.client_cert), str(pki.client_key))
    ae = pynetdicom.AE(ae_title="PYNETDICOM-SCU")
    for ts in ALL_SYNTAXES:  # one context per syntax: each file goes in its own
        ae.add_requested_context(SECONDARY_CAPTURE, [ts])
    assoc = ae.associate(LOOPBACK, port, ae_title=SERVER_AE, tls_args=(context, LOOPBACK))
    try:
        assert assoc.is_established, "pynetdicom could not associate"
        statuses = []
        for path in paths:
            status = assoc.send_c_store(path)
            statuses.append(int(status.Status) if "Status" in status else -1)
        return statuses
    finally:
        if assoc.is_established:
            assoc.release()
        ae.shutdown()


def test_pynetdicom_scu_over_tls_into_storage_scp(
    tmp_path: Path, pynetdicom: ModuleType, pki: Pki, sources: dict[str, Path]
) -> None:
    root = tmp_path / "root"
    paths = list(sources.values())

    async def scenario() -> list[int]:
        scp = StorageSCP(root)
        try:
            async with running_server(ae_title=SERVER_AE, tls=pki.server_tls(),
                                      providers=[VerificationSCP(), scp]) as server:
                return await asyncio.to_thread(pynetdicom_send, pynetdicom, pki, server.port,
                                               paths)
        finally:
            scp.close()

    assert run(scenario(), timeout=60) == [0] * len(paths)
    with StorageIndex(root / INDEX_NAME) as index:
        for i, (name, syntax) in enumerate(SYNTAX_NAMES.items()):
            stored = root / uid(1, 500 + i) / uid(2, 500 + i) / f"{uid(9, 500 + i)}.dcm"
            meta = dcmread(stored).file_meta
            assert meta.TransferSyntaxUID == syntax, name  # RLE not converted
            assert meta.SourceApplicationEntityTitle == "PYNETDICOM-SCU"
            assert_same_dataset(sources[name], stored)
            row = index.get_instance(uid(9, 500 + i))
            assert row is not None and row.peer_fingerprint, name
    assert not list(root.rglob("*.dicomnet-part"))


# -- dicomnet store_paths -> pynetdicom storage SCP ----------------------------------------


@dataclass
class Received:
    transfer_syntax: str
    encoded: bytes  # Part 10 bytes from pynetdicom's event.encoded_dataset()
    calling_ae: str
    peer_subject: Any


@dataclass
class PynetdicomSCP:
    port: int
    max_pdu: int | None = None  # None: pynetdicom's default
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def dataset(self, index: int) -> Dataset:
        return dcmread(io.BytesIO(self.received[index].encoded))


@pytest.fixture
def pynetdicom_scp(pynetdicom: ModuleType, pki: Pki, request: pytest.FixtureRequest
                   ) -> Iterator[PynetdicomSCP]:
    """A pynetdicom storage SCP on TLS (client certificate required) accepting the
    syntaxes in ``request.param["syntaxes"]`` (default: all five), one context
    each, with the maximum PDU length ``request.param["max_pdu"]`` (default:
    pynetdicom's, 16,382 bytes)."""
    param: dict[str, Any] = getattr(request, "param", {})
    accepted: tuple[str, ...] = param.get("syntaxes", ALL_SYNTAXES)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki.ca_file))
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_cert_chain(str(pki.server_cert), str(pki.server_key))
    ae = pynetdicom.AE(ae_title="PYNETDICOM-SCP")
    if "max_pdu" in param:
        ae.maximum_pdu_size = param["max_pdu"]
    for ts in accepted:
        ae.add_supported_context(SECONDARY_CAPTURE, [ts])
    ae.add_supported_context(SECONDARY_CAPTURE, list(accepted))
    scp = PynetdicomSCP(port=0, max_pdu=param.get("max_pdu"))

    def on_store(event: Any) -> int:
        peer = event.assoc.requestor
        cert = None
        sock = getattr(event.assoc.dul.socket, "socket", None)
        if isinstance(sock, ssl.SSLSocket):
            cert = sock.getpeercert()
        with scp.lock:
            scp.received.append(Received(str(event.context.transfer_syntax),
                                         bytes(event.encoded_dataset()), str(peer.ae_title),
                                         cert))
        return 0x0000

    server = ae.start_server((LOOPBACK, 0), block=False, ssl_context=context,
                             evt_handlers=[(pynetdicom.evt.EVT_C_STORE, on_store)])
    scp.port = server.server_address[1]
    try:
        yield scp
    finally:
        server.shutdown()
        ae.shutdown()


@pytest.mark.parametrize("pynetdicom_scp", [{}, {"max_pdu": 1 << 20}], indirect=True,
                         ids=["16k-pdus", "1mib-pdus"])
def test_store_paths_over_tls_into_pynetdicom_scp(
    tmp_path: Path, pki: Pki, sources: dict[str, Path], pynetdicom_scp: PynetdicomSCP,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every file as it is; with 1 MiB PDUs each goes in one PDU built in the SCU's
    pooled buffers (over 64 KiB), with 16 KiB ones in many small PDUs."""
    pooled: list[int] = []
    get = PduBuffers.get

    def counting_get(self: PduBuffers, capacity: int) -> bytearray:
        pooled.append(capacity)
        return get(self, capacity)

    monkeypatch.setattr(PduBuffers, "get", counting_get)
    results = run(store_paths(LOOPBACK, pynetdicom_scp.port, [tmp_path / "in"],
                              tls=pki.client_tls(), calling_ae_title="DICOMNET-SCU",
                              called_ae_title="PYNETDICOM-SCP"), timeout=60)
    assert [(r.ok, r.status, r.converted_to) for r in results] == [(True, 0, None)] * 5
    assert len(pooled) == (0 if pynetdicom_scp.max_pdu is None else 5)
    assert len(pynetdicom_scp.received) == 5
    by_sop = {str(pynetdicom_scp.dataset(i).SOPInstanceUID): i
              for i in range(len(pynetdicom_scp.received))}
    for i, (name, syntax) in enumerate(SYNTAX_NAMES.items()):
        index = by_sop[uid(9, 500 + i)]
        got = pynetdicom_scp.received[index]
        assert got.transfer_syntax == syntax, name  # as the file was: nothing converted
        assert got.calling_ae == "DICOMNET-SCU"
        assert got.peer_subject, "pynetdicom saw no client certificate"
        assert_same_dataset(sources[name], pynetdicom_scp.dataset(index))


@pytest.mark.parametrize("pynetdicom_scp", [{"syntaxes": (ExplicitVRLittleEndian,)}], indirect=True,
                         ids=["explicit-le-only"])
def test_store_paths_converts_or_skips_for_a_restricted_pynetdicom_scp(
    tmp_path: Path, pki: Pki, sources: dict[str, Path], pynetdicom_scp: PynetdicomSCP
) -> None:
    results = {r.path.stem: r for r in run(store_paths(
        LOOPBACK, pynetdicom_scp.port, [tmp_path / "in"], tls=pki.client_tls(),
        called_ae_title="PYNETDICOM-SCP"), timeout=60)}
    expected_conversion = {"implicit-le": ExplicitVRLittleEndian,
                           "explicit-le": None,
                           "explicit-be": ExplicitVRLittleEndian,
                           "deflated": ExplicitVRLittleEndian}
    for name, target in expected_conversion.items():
        r = results[name]
        assert (r.ok, r.status, r.converted_to) == (True, 0, target), r
    rle = results["rle"]
    assert (rle.ok, rle.status) == (False, None)
    assert rle.error is not None and RLELossless in rle.error
    received = {str(pynetdicom_scp.dataset(i).SOPInstanceUID): i
                for i in range(len(pynetdicom_scp.received))}
    assert uid(9, 504) not in received  # the RLE file was not sent
    for i, name in enumerate(expected_conversion):
        index = received[uid(9, 500 + i)]
        assert pynetdicom_scp.received[index].transfer_syntax == ExplicitVRLittleEndian
        assert_same_dataset(sources[name], pynetdicom_scp.dataset(index))


def test_pynetdicom_sends_a_private_sop_class_to_a_server_accepting_unknown_ones(
    tmp_path: Path, pynetdicom: ModuleType, pki: Pki
) -> None:
    """A vendor's private SOP class (here under pydicom's test root), which only a
    StorageSCP with accept_unknown_sop_classes takes (serve --accept-unknown-sop-classes)."""
    private = "1.2.826.0.1.3680043.8.498.999.2"
    path = write_part10(tmp_path / "private.dcm", make_image(620, sop_class_uid=private),
                        ExplicitVRLittleEndian)
    root = tmp_path / "root"

    def send(port: int) -> tuple[bool, int]:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(pki.ca_file))
        context.load_cert_chain(str(pki.client_cert), str(pki.client_key))
        ae = pynetdicom.AE(ae_title="PYNETDICOM-SCU")
        ae.add_requested_context(private, [ExplicitVRLittleEndian])
        assoc = ae.associate(LOOPBACK, port, ae_title=SERVER_AE, tls_args=(context, LOOPBACK))
        try:
            if not assoc.is_established:
                return False, -1
            accepted = bool(assoc.accepted_contexts)
            status = assoc.send_c_store(path) if accepted else None
            return accepted, int(status.Status) if status and "Status" in status else -1
        finally:
            if assoc.is_established:
                assoc.release()
            ae.shutdown()

    async def scenario(unknown: bool) -> tuple[bool, int]:
        scp = StorageSCP(root, accept_unknown_sop_classes=unknown)
        try:
            async with running_server(ae_title=SERVER_AE, tls=pki.server_tls(),
                                      providers=[VerificationSCP(), scp]) as server:
                return await asyncio.to_thread(send, server.port)
        finally:
            scp.close()

    assert run(scenario(False), timeout=60) == (False, -1)
    assert run(scenario(True), timeout=60) == (True, 0)
    stored = root / uid(1, 620) / uid(2, 620) / f"{uid(9, 620)}.dcm"
    assert_same_dataset(path, stored)
