"""TLS session resumption across the associations of one run (RFC 8446 2.2, RFC 5077):
``store_paths`` opens one association per batch of at most 128 presentation contexts
(PS3.8 9.3.2.2) and one more per retry; every one after the first, made with the
same TLSConfig, resumes the session of an earlier one. Checked from both sides:
``SecurityInfo.session_resumed`` on ours, the server's own log on theirs (DCMTK
storescp with TLS 1.3 and 1.2, ``dicomnet serve``), never by timing."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian

from dicomnet.aio.server import AssociationInfo
from dicomnet.aio.transport import SecureLinkEvent
from dicomnet.services.storage import StorageSCP, store_paths
from tests.aio.helpers import (
    LOOPBACK,
    PkiFactory,
    background_process,
    free_port,
    run,
    running_server,
    wait_output,
)
from tests.interop.conftest import Dcmtk
from tests.storage.dicomfiles import make_image, uid, write_part10

#: 65 SOP Classes, two contexts each: 130 contexts, two associations.
SOP_CLASSES = 65


def _files(folder: Path) -> list[Path]:
    folder.mkdir()
    return [write_part10(folder / f"{n:02d}.dcm", make_image(n, sop_class_uid=uid(7, n)),
                         ExplicitVRLittleEndian) for n in range(SOP_CLASSES)]


def _resumed(links: list[SecureLinkEvent]) -> list[bool]:
    assert all(link.info is not None for link in links), links
    return [link.info.session_resumed for link in links if link.info is not None]


@pytest.mark.parametrize(
    ("protocol", "flags"),
    [pytest.param("TLSv1.3", [], id="tls13"), pytest.param("TLSv1.2", ["+pz"], id="tls12")],
)
def test_store_paths_in_batches_resumes_with_storescp(
    *, dcmtk: Dcmtk, pkis: PkiFactory, tmp_path: Path, protocol: str, flags: list[str]
) -> None:
    """130 contexts, two associations, then a second run with the same TLSConfig:
    the second and third resume (storescp's OpenSSL says "Session resumed" only
    in its TLS debug output, so its view is the count of full handshakes it made:
    its certificate chain is logged once per association that checked ours)."""
    pki = pkis("rsa")
    files = _files(tmp_path / "in")
    port = free_port()
    tls = pki.client_tls()
    links: list[SecureLinkEvent] = []
    (tmp_path / "out").mkdir()
    with background_process(
        dcmtk.storescp, "-v", "-pm", "-aet", "STORESCP", "+tls", pki.server_key,
        pki.server_cert, "+cf", pki.ca_file, *flags, "-od", tmp_path / "out", str(port),
        log_path=tmp_path / "storescp.log", port=port,
    ) as peer:
        results = run(store_paths(LOOPBACK, port, files, tls=tls, called_ae_title="STORESCP",
                                  on_secure_link_ready=links.append))
        again = run(store_paths(LOOPBACK, port, files[:1], tls=tls,
                                called_ae_title="STORESCP", on_secure_link_ready=links.append))
        out = wait_output(peer, "Association Release")
    assert [r.ok for r in results + again] == [True] * (SOP_CLASSES + 1)
    assert out.count("Association Received") == 3, out
    assert [link.info.protocol for link in links if link.info] == [protocol] * 3
    assert _resumed(links) == [False, True, True]


def test_store_paths_in_batches_resumes_with_dicomnet_serve(
        *, pkis: PkiFactory, tmp_path: Path) -> None:
    """The same against ``dicomnet serve --tls``: its association lines say "TLS
    session resumed" for the second batch and for the next run's association."""
    pki = pkis("rsa")
    files = _files(tmp_path / "in")
    port = free_port()
    tls = pki.client_tls()
    links: list[SecureLinkEvent] = []
    with background_process(
        sys.executable, "-m", "dicomnet", "serve", "--port", str(port), "--output",
        tmp_path / "out", "--accept-unknown-sop-classes", "--tls", "--cert", pki.server_cert,
        "--key", pki.server_key, "--ca", pki.ca_file,
        log_path=tmp_path / "serve.log", port=port,
    ) as peer:
        results = run(store_paths(LOOPBACK, port, files, tls=tls,
                                  on_secure_link_ready=links.append))
        run(store_paths(LOOPBACK, port, files[:1], tls=tls, on_secure_link_ready=links.append))
        wait_output(peer, "1 message(s)")
        lines = [line for line in peer.output().splitlines() if ": released, " in line]
    assert all(r.ok for r in results)
    assert _resumed(links) == [False, True, True]
    assert len(lines) == 3, lines
    assert ["TLS session resumed" in line for line in lines] == [False, True, True]


def test_a_retry_after_a_transient_rejection_resumes_the_session(
        *, pkis: PkiFactory, tmp_path: Path) -> None:
    """A busy peer rejects the first association (transient, PS3.8 7.1.1.9) after
    a complete, verified handshake; the retry that --retries makes resumes that
    session instead of a second full handshake. It used to be kept only after an
    A-RELEASE, so a run's retries after a rejection paid the full price each time."""
    pki = pkis("rsa")
    files = [write_part10(tmp_path / f"{n}.dcm", make_image(n), ExplicitVRLittleEndian)
             for n in range(2)]
    seen: list[bool] = []

    def busy_once(info: AssociationInfo) -> tuple[int, int, int] | None:
        assert info.security is not None
        seen.append(info.security.session_resumed)
        return (2, 3, 1) if len(seen) == 1 else None  # transient, local limit exceeded

    links: list[SecureLinkEvent] = []

    async def main() -> list[bool]:
        scp = StorageSCP(tmp_path / "out")
        try:
            async with running_server(providers=[scp], tls=pki.server_tls(),
                                      on_association_request=busy_once) as server:
                results = await store_paths(LOOPBACK, server.port, files, tls=pki.client_tls(),
                                            retries=1, retry_delay=0,
                                            on_secure_link_ready=links.append)
                return [r.ok and r.attempts == 2 for r in results]
        finally:
            scp.close()

    assert run(main()) == [True, True]
    assert seen == [False, True]  # the server's view
    assert _resumed(links) == [False, True]
