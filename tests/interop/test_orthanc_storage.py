"""Storage over TLS with mutual authentication against Orthanc 1.10.1 (Debian's
package; DICOM TLS since Orthanc 1.9.0), both ways.

Orthanc runs as its own process, started here with a configuration of our own
(DICOM TLS with a certificate from the test CA, REST API for local clients only,
no plugins). Orthanc 1.10 has no option for the address it listens on: its two
free ports are open on every interface while a test runs, and only 127.0.0.1
is ever connected to. What it received is read back through its REST API (the file it
keeps for an instance), and what it sends is asked of it the same way
(``/modalities/{name}/store``), never by looking into its folders.

For every transfer syntax (implicit LE, explicit LE, explicit BE, deflated, RLE
Lossless) the data set arriving at the other end equals the sent one element by
element, pixel bytes included, in the syntax it was sent in.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread

from dicomnet.aio.client import associate
from dicomnet.errors import TLSError
from dicomnet.security.certificates import CertificateInfo
from dicomnet.security.info import SecurityInfo
from dicomnet.services.storage import INDEX_NAME, StorageSCP, store_paths
from dicomnet.services.verification import VerificationSCP
from dicomnet.storage.index import StorageIndex
from tests.aio.helpers import (
    LOOPBACK,
    BackgroundProcess,
    HookRecorder,
    Pki,
    PkiFactory,
    background_process,
    free_port,
    run,
    running_server,
    wait_port,
)
from tests.interop.conftest import dicomnet_serve
from tests.storage.dicomfiles import (
    SYNTAX_NAMES,
    assert_same_dataset,
    make_image,
    uid,
    write_part10,
)

pytestmark = pytest.mark.interop

ORTHANC_AE = "ORTHANC"
SERVER_AE = "DICOMNET-SCP"
CALLING_AE = "DICOMNET-SCU"
#: Bound on one REST call (a synchronous store job included).
REST_TIMEOUT = 60.0


@dataclass
class Orthanc:
    """A running Orthanc: its ports, its certificate, and its REST API."""

    process: BackgroundProcess
    dicom_port: int
    http_port: int
    certificate: Path

    def call(self, method: str, path: str, body: bytes | dict[str, Any] | None = None) -> Any:
        """One REST call; the decoded JSON answer (None when empty). An HTTP error
        becomes an AssertionError carrying Orthanc's explanation and its log."""
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        request = urllib.request.Request(f"http://{LOOPBACK}:{self.http_port}{path}",
                                         data=data, method=method)
        try:
            with urllib.request.urlopen(request, timeout=REST_TIMEOUT) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raise AssertionError(
                f"Orthanc answered {method} {path} with HTTP {exc.code}: "
                f"{exc.read().decode(errors='replace')}\nOrthanc's log:\n"
                f"{self.process.output()[-3000:]}") from None
        return json.loads(raw) if raw.strip() else None

    def instance(self, sop_instance_uid: str) -> str:
        """Orthanc's ID for the instance with this SOP Instance UID (it must have it)."""
        found = [hit for hit in self.call("POST", "/tools/lookup", sop_instance_uid.encode())
                 if hit["Type"] == "Instance"]
        assert len(found) == 1, f"Orthanc holds no instance {sop_instance_uid}: {found}"
        return str(found[0]["ID"])

    def file(self, instance_id: str) -> bytes:
        request = urllib.request.Request(
            f"http://{LOOPBACK}:{self.http_port}/instances/{instance_id}/file")
        with urllib.request.urlopen(request, timeout=REST_TIMEOUT) as response:
            return bytes(response.read())

    def upload(self, path: Path) -> str:
        """Give Orthanc a Part 10 file through its REST API (no DICOM involved)."""
        answer = self.call("POST", "/instances", path.read_bytes())
        assert answer["Status"] in ("Success", "AlreadyStored"), answer
        return str(answer["ID"])

    def register(self, name: str, port: int) -> None:
        """Make the dicomnet server on 127.0.0.1:``port`` one of Orthanc's modalities,
        reached over DICOM TLS."""
        self.call("PUT", f"/modalities/{name}", {
            "AET": SERVER_AE, "Host": LOOPBACK, "Port": port, "UseDicomTls": True})

    async def store_into_scp(self, pki: Pki, root: Path, ids: list[str],
                             links: HookRecorder) -> Any:
        """Orthanc's synchronous store job of ``ids`` into a dicomnet StorageSCP
        over TLS (storing under ``root``): Orthanc's answer, or the AssertionError
        of :meth:`call` when Orthanc reports a failure."""
        scp = StorageSCP(root)
        try:
            async with running_server(ae_title=SERVER_AE, tls=pki.server_tls(),
                                      providers=[VerificationSCP(), scp],
                                      on_secure_link_ready=links) as server:
                self.register("dicomnet", server.port)
                return await asyncio.to_thread(self.call, "POST", "/modalities/dicomnet/store",
                                               {"Resources": ids, "Synchronous": True})
        finally:
            scp.close()


def orthanc_config(folder: Path, pki: Pki, cert: Path, key: Path, *, dicom_port: int,
                   http_port: int) -> Path:
    """A configuration file for one Orthanc under ``folder``: DICOM TLS with ``cert``
    (Orthanc presents one certificate as server and as client) and our CA as the
    only one it trusts, remote certificates required."""
    config = {
        "Name": "dicomnet interop",
        "StorageDirectory": str(folder / "storage"),
        "IndexDirectory": str(folder / "index"),
        "StorageCompression": False,  # keeps each file as received
        "Plugins": [],
        "HttpServerEnabled": True,
        "HttpPort": http_port,
        "RemoteAccessAllowed": False,  # REST API for 127.0.0.1 only
        "AuthenticationEnabled": False,
        "SaveJobs": False,
        "DicomServerEnabled": True,
        "DicomAet": ORTHANC_AE,
        "DicomPort": dicom_port,
        "DicomCheckCalledAet": True,
        "DicomTlsEnabled": True,
        "DicomTlsCertificate": str(cert),
        "DicomTlsPrivateKey": str(key),
        "DicomTlsTrustedCertificates": str(pki.ca_file),
        "DicomTlsRemoteCertificateRequired": True,
        "DicomModalities": {},
    }
    path = folder / "orthanc.json"
    path.write_text(json.dumps(config, indent=2))
    return path


@contextlib.contextmanager
def start_orthanc(binary: Path, folder: Path, pki: Pki, cert: Path, key: Path
                  ) -> Iterator[Orthanc]:
    folder.mkdir(parents=True, exist_ok=True)
    dicom_port, http_port = free_port(), free_port()
    config = orthanc_config(folder, pki, cert, key, dicom_port=dicom_port,
                            http_port=http_port)
    with background_process(binary, config, log_path=folder / "orthanc.log",
                            port=http_port, timeout=30) as process:
        wait_port(dicom_port, process.proc, timeout=30)
        yield Orthanc(process, dicom_port, http_port, cert)


@pytest.fixture(scope="module")
def pki(pkis: PkiFactory) -> Pki:
    return pkis("rsa")


@pytest.fixture(scope="module")
def orthanc(orthanc_binary: Path, pki: Pki, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[Orthanc]:
    """Orthanc with a certificate from our CA, for both of its roles."""
    cert, key = pki.issue("orthanc", server=True, client=True)
    with start_orthanc(orthanc_binary, tmp_path_factory.mktemp("orthanc"), pki, cert,
                       key) as running:
        yield running


def sources(folder: Path, first: int) -> dict[str, Path]:
    """One 256 x 300 image per transfer syntax (several PDUs each), numbered from ``first``."""
    folder.mkdir(parents=True, exist_ok=True)
    return {
        name: write_part10(folder / f"{name}.dcm",
                           make_image(first + n, rows=256, columns=300), syntax)
        for n, (name, syntax) in enumerate(SYNTAX_NAMES.items())
    }


def assert_orthanc_holds(orthanc: Orthanc, sent: dict[str, Path]) -> None:
    """Orthanc keeps each file as it came: same syntax, same data set, same pixels."""
    for name, source in sent.items():
        sop_uid = str(dcmread(source, stop_before_pixels=True).SOPInstanceUID)
        instance = orthanc.instance(sop_uid)
        received = dcmread(io.BytesIO(orthanc.file(instance)))
        assert received.file_meta.TransferSyntaxUID == SYNTAX_NAMES[name], name
        assert_same_dataset(source, received)
        metadata = orthanc.call("GET", f"/instances/{instance}/metadata?expand")
        assert metadata["RemoteAET"] == CALLING_AE
        assert metadata["CalledAET"] == ORTHANC_AE


# -- dicomnet -> Orthanc --------------------------------------------------------------------


def test_store_paths_over_tls_into_orthanc(orthanc: Orthanc, pki: Pki,
                                           tmp_path: Path) -> None:
    sent = sources(tmp_path / "sent", 600)
    links = HookRecorder()
    results = run(store_paths(LOOPBACK, orthanc.dicom_port, list(sent.values()),
                              tls=pki.client_tls(), calling_ae_title=CALLING_AE,
                              called_ae_title=ORTHANC_AE, on_secure_link_ready=links),
                  timeout=120)
    assert [(r.ok, r.status, r.converted_to) for r in results] == [(True, 0, None)] * len(sent)
    assert len(links.events) == 1  # one association for all five syntaxes
    info = links.events[0].info
    assert info is not None
    assert info.protocol == "TLSv1.3"
    assert info.peer_certificates[0].sha256_fingerprint == \
        CertificateInfo.from_pem_file(orthanc.certificate).sha256_fingerprint
    assert_orthanc_holds(orthanc, sent)


def test_dicomnet_store_command_over_tls_into_orthanc(orthanc: Orthanc, pki: Pki,
                                                      tmp_path: Path) -> None:
    """The `dicomnet store` command, as users run it, with --json."""
    sent = sources(tmp_path / "sent", 610)
    done = subprocess.run(
        [sys.executable, "-m", "dicomnet.cli.main", "store", LOOPBACK,
         str(orthanc.dicom_port), str(tmp_path / "sent"), "--aet", CALLING_AE,
         "--called-aet", ORTHANC_AE, "--tls", "--cert", str(pki.client_cert),
         "--key", str(pki.client_key), "--ca", str(pki.ca_file), "--json"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert (report["total"], report["stored"], report["failed"]) == (len(sent), len(sent), 0)
    assert report["tls"]["protocol"] == "TLSv1.3"
    assert_orthanc_holds(orthanc, sent)


# -- Orthanc -> dicomnet --------------------------------------------------------------------


def test_orthanc_stores_over_tls_into_storage_scp(orthanc: Orthanc, pki: Pki,
                                                  tmp_path: Path) -> None:
    sent = sources(tmp_path / "sent", 620)
    ids = [orthanc.upload(path) for path in sent.values()]
    root = tmp_path / "root"
    links = HookRecorder()
    job = run(orthanc.store_into_scp(pki, root, ids, links), timeout=120)
    assert (job["InstancesCount"], job["FailedInstancesCount"]) == (len(sent), 0), job
    orthanc_fingerprint = CertificateInfo.from_pem_file(orthanc.certificate).sha256_fingerprint
    assert links.events, "no TLS connection reached the server"
    for event in links.events:
        assert event.error is None, event.error
        assert event.info is not None and event.info.protocol == "TLSv1.3"
        assert event.info.peer_certificates[0].sha256_fingerprint == orthanc_fingerprint
    with StorageIndex(root / INDEX_NAME) as index:
        for n, (name, source) in enumerate(sent.items()):
            number = 620 + n
            stored = root / uid(1, number) / uid(2, number) / f"{uid(9, number)}.dcm"
            meta = dcmread(stored, stop_before_pixels=True).file_meta
            assert meta.TransferSyntaxUID == SYNTAX_NAMES[name]  # RLE passed through
            assert meta.SourceApplicationEntityTitle == ORTHANC_AE
            assert_same_dataset(source, stored)
            row = index.get_instance(uid(9, number))
            assert row is not None
            assert (row.calling_ae, row.peer_fingerprint) == (ORTHANC_AE, orthanc_fingerprint)
    assert not list(root.rglob("*.dicomnet-part"))


def test_echo_both_ways_over_tls(orthanc: Orthanc, pki: Pki) -> None:
    async def scenario() -> tuple[int, Any]:
        async with associate(LOOPBACK, orthanc.dicom_port, tls=pki.client_tls(),
                             calling_ae_title=CALLING_AE,
                             called_ae_title=ORTHANC_AE) as assoc:
            ours = int(await assoc.echo())
        async with running_server(ae_title=SERVER_AE, tls=pki.server_tls()) as server:
            orthanc.register("dicomnet-echo", server.port)
            theirs = await asyncio.to_thread(orthanc.call, "POST",
                                             "/modalities/dicomnet-echo/echo", {})
        return ours, theirs

    ours, theirs = run(scenario(), timeout=60)
    assert ours == 0  # Success from Orthanc's Verification SCP
    assert theirs == {}  # Orthanc's answer when its C-ECHO succeeded (an error is HTTP 500)


def test_orthanc_refusing_our_certificate_says_why(orthanc: Orthanc, pki: Pki) -> None:
    """Orthanc (DicomTlsRemoteCertificateRequired, TLS 1.3) refuses a client with no
    certificate, or one from a CA it does not trust, after our handshake ended: its
    alert is read (behind the reset that fails our A-ASSOCIATE-RQ), not guessed at."""
    cert, key = pki.foreign("foreign client", server=False)

    async def refusals() -> list[tuple[str, bool]]:
        seen = []
        for tls in [pki.client_tls(certfile=None, keyfile=None),
                    pki.client_tls(certfile=cert, keyfile=key)]:
            with pytest.raises(TLSError) as caught:
                async with associate(LOOPBACK, orthanc.dicom_port, tls=tls,
                                     calling_ae_title=CALLING_AE, called_ae_title=ORTHANC_AE):
                    pass
            seen.append((caught.value.reason, caught.value.link_failed))
        return seen

    assert run(refusals(), timeout=60) == [
        ("the server requires a client certificate (set certfile/keyfile)", False),
        ("the server refused our certificate: it does not trust our CA", False),
    ]


def test_orthanc_stores_into_the_dicomnet_serve_command(orthanc: Orthanc, pki: Pki,
                                                        tmp_path: Path) -> None:
    sent = sources(tmp_path / "sent", 640)
    ids = [orthanc.upload(path) for path in sent.values()]
    store = tmp_path / "store"
    with dicomnet_serve(pki, store, "--aet", SERVER_AE) as (port, stderr):
        orthanc.register("dicomnet-serve", port)
        job = orthanc.call("POST", "/modalities/dicomnet-serve/store",
                           {"Resources": ids, "Synchronous": True})
    log = "".join(stderr)
    assert (job["InstancesCount"], job["FailedInstancesCount"]) == (len(sent), 0), job
    for n, (name, source) in enumerate(sent.items()):
        number = 640 + n
        stored = store / uid(1, number) / uid(2, number) / f"{uid(9, number)}.dcm"
        assert dcmread(stored, stop_before_pixels=True).file_meta.TransferSyntaxUID == \
            SYNTAX_NAMES[name]
        assert_same_dataset(source, stored)
    assert f"association {ORTHANC_AE}@127.0.0.1:" in log
    assert "TLSv1.3" in log


# -- certificates nobody vouched for ----------------------------------------------------------


def test_an_orthanc_whose_certificate_we_do_not_trust_is_refused_both_ways(
        orthanc_binary: Path, pki: Pki, tmp_path: Path) -> None:
    """Orthanc trusts our CA but presents a certificate from another CA: our client
    refuses it as a server, and our server refuses it as a client; nothing is
    stored on either side."""
    cert, key = pki.foreign("orthanc-foreign", server=True, client=True)
    sent = sources(tmp_path / "sent", 630)
    root = tmp_path / "root"
    with start_orthanc(orthanc_binary, tmp_path / "orthanc", pki, cert, key) as impostor:
        with pytest.raises(TLSError) as refused:
            run(store_paths(LOOPBACK, impostor.dicom_port, [sent["explicit-le"]],
                            tls=pki.client_tls(), calling_ae_title=CALLING_AE,
                            called_ae_title=ORTHANC_AE), timeout=60)
        assert "certificate" in str(refused.value)
        assert impostor.call("GET", "/instances") == []

        instance = impostor.upload(sent["implicit-le"])
        links = HookRecorder()
        with pytest.raises(AssertionError) as failed:
            run(impostor.store_into_scp(pki, root, [instance], links), timeout=120)
    assert "HTTP 500" in str(failed.value)
    assert links.events and all(e.info is None and e.error is not None for e in links.events)
    assert "certificate" in str(links.events[0].error)
    assert not list(root.rglob("*.dcm"))



def test_tls_session_resumption_with_orthanc(orthanc: Orthanc, pki: Pki) -> None:
    """Orthanc's SCP (DCMTK's TLS layer) resumes our sessions: the associations after
    the first made with one TLSConfig resume it. Orthanc as a requestor never offers
    one, so each of its associations with our server is a full handshake."""
    hook = HookRecorder()
    tls = pki.client_tls()

    async def scenario() -> list[SecurityInfo]:
        ours = []
        for _ in range(3):
            async with associate(LOOPBACK, orthanc.dicom_port, tls=tls,
                                 calling_ae_title=CALLING_AE,
                                 called_ae_title=ORTHANC_AE) as assoc:
                assert int(await assoc.echo()) == 0
                assert assoc.security is not None
                ours.append(assoc.security)
        async with running_server(ae_title=SERVER_AE, tls=pki.server_tls(),
                                  on_secure_link_ready=hook) as server:
            orthanc.register("dicomnet-resume", server.port)
            for _ in range(2):
                assert await asyncio.to_thread(
                    orthanc.call, "POST", "/modalities/dicomnet-resume/echo", {}) == {}
        return ours

    ours = run(scenario(), timeout=60)
    assert [info.session_resumed for info in ours] == [False, True, True]
    fingerprint = CertificateInfo.from_pem_file(orthanc.certificate).sha256_fingerprint
    assert {info.peer_certificates[0].sha256_fingerprint for info in ours} == {fingerprint}
    theirs = [event.info for event in hook.events]
    assert [info.session_resumed if info else None for info in theirs] == [False, False]
