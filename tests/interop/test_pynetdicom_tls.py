"""Interop over TLS with pynetdicom (a real pynetdicom AE in this process, its own threads),
both ways, with mutual authentication, RSA and ECDSA certificates, TLS 1.2 and 1.3.

pynetdicom takes a plain ``ssl.SSLContext``: as a requestor through
``AE.associate(..., tls_args=(context, server_hostname))``, as an acceptor through
``AE.start_server(..., ssl_context=context, block=False)``. The TLS version is pinned on
pynetdicom's context (minimum = maximum), while dicomnet keeps its default profile
(TLS 1.2 and 1.3), so each case also shows that dicomnet follows the peer's choice.
All four combinations work both ways.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import re
import ssl
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import pytest

from dicomnet.aio.client import associate
from dicomnet.security.info import SecurityInfo
from tests.aio.helpers import (
    LOOPBACK,
    HookRecorder,
    Pki,
    PkiFactory,
    association_lines,
    log_lines,
    run,
    running_server,
    wait_until,
)

pytestmark = pytest.mark.interop

AUTH = {"rsa": "RSA", "ecdsa": "ECDSA"}
VERSIONS = {"TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}
SCP_TITLE = "DICOMNET-SCP"

key_types = pytest.mark.parametrize("key_type", ["rsa", "ecdsa"])
protocols = pytest.mark.parametrize("protocol", ["TLSv1.2", "TLSv1.3"])


def pinned(context: ssl.SSLContext, protocol: str) -> ssl.SSLContext:
    context.minimum_version = context.maximum_version = VERSIONS[protocol]
    return context


def pynetdicom_client_context(pki: Pki, protocol: str, *, with_cert: bool = True) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(pki.ca_file))
    if with_cert:
        context.load_cert_chain(pki.client_cert, pki.client_key)
    return pinned(context, protocol)


def pynetdicom_server_context(pki: Pki, protocol: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki.ca_file))
    context.load_cert_chain(pki.server_cert, pki.server_key)
    context.verify_mode = ssl.CERT_REQUIRED  # mutual authentication
    return pinned(context, protocol)


def verification(pynetdicom: ModuleType) -> Any:
    return importlib.import_module(f"{pynetdicom.__name__}.sop_class").Verification


@dataclass
class PynetdicomEcho:
    """What pynetdicom reported for its C-ECHO as a requestor."""

    established: bool
    status: int | None = None
    aborted: bool = False


def pynetdicom_echo(pynetdicom: ModuleType, port: int, context: ssl.SSLContext) -> PynetdicomEcho:
    """Blocking: associate with our server over TLS and send a C-ECHO."""
    ae = pynetdicom.AE(ae_title="PYNETDICOM")
    ae.add_requested_context(verification(pynetdicom))
    try:
        assoc = ae.associate(LOOPBACK, port, ae_title=SCP_TITLE, tls_args=(context, "localhost"))
        if not assoc.is_established:
            return PynetdicomEcho(False, aborted=bool(assoc.is_aborted))
        status = assoc.send_c_echo()
        assoc.release()
        return PynetdicomEcho(True, int(status.Status) if status else None)
    finally:
        ae.shutdown()


@key_types
@protocols
def test_pynetdicom_to_dicomnet(pynetdicom: ModuleType, pkis: PkiFactory,
                                aio_log: pytest.LogCaptureFixture, key_type: str,
                                protocol: str) -> None:
    pki = pkis(key_type)  # type: ignore[arg-type]
    hook = HookRecorder()
    context = pynetdicom_client_context(pki, protocol)

    async def main() -> PynetdicomEcho:
        async with running_server(ae_title=SCP_TITLE, tls=pki.server_tls(),
                                  on_secure_link_ready=hook) as server:
            result = await asyncio.to_thread(pynetdicom_echo, pynetdicom, server.port, context)
            await wait_until(lambda: bool(association_lines(aio_log)),
                             "the server's association log line")
            return result

    result = run(main())
    assert result.established
    assert result.status == 0x0000
    assert len(hook.events) == 1
    info = hook.events[0].info
    assert info is not None
    assert info.side == "server"
    assert info.protocol == protocol
    assert info.peer_certificate is not None
    assert info.peer_certificate.subject == pki.client_subject
    assert info.authentication == AUTH[key_type]
    if protocol == "TLSv1.2":
        assert info.cipher_suite == f"TLS_ECDHE_{AUTH[key_type]}_WITH_AES_256_GCM_SHA384"
    lines = association_lines(aio_log)
    assert len(lines) == 1
    assert lines[0].startswith("association PYNETDICOM@127.0.0.1:")
    assert re.search(rf"-> {SCP_TITLE}: released, 1 message\(s\) \(1 success\), \d+\.\d\d s, "
                     rf"{protocol} {info.cipher_suite}", lines[0]), lines[0]


# pynetdicom 3.0 leaks its SSLSocket when the handshake fails: AssociationSocket.
# _shutdown_socket() calls shutdown() then close() in one try block, and shutdown()
# raises ENOTCONN on the dead socket, so close() is skipped. Only that warning is ignored.
@pytest.mark.filterwarnings("ignore:unclosed <ssl.SSLSocket:ResourceWarning")
def test_pynetdicom_without_client_certificate_is_refused(
    pynetdicom: ModuleType, pkis: PkiFactory, aio_log: pytest.LogCaptureFixture
) -> None:
    """Our server requires a client certificate; pynetdicom sends none (TLS 1.2, so the
    refusal happens inside the handshake)."""
    pki = pkis("ecdsa")
    hook = HookRecorder()
    context = pynetdicom_client_context(pki, "TLSv1.2", with_cert=False)

    async def main() -> tuple[PynetdicomEcho, int]:
        async with running_server(ae_title=SCP_TITLE, tls=pki.server_tls(),
                                  on_secure_link_ready=hook) as server:
            result = await asyncio.to_thread(pynetdicom_echo, pynetdicom, server.port, context)
            await wait_until(lambda: bool(log_lines(aio_log, contains="connection refused")),
                             "the server's refusal")
            return result, server.active_associations

    result, active = run(main())
    assert not result.established
    assert active == 0
    assert association_lines(aio_log) == []
    refused = log_lines(aio_log, level=logging.WARNING, contains="connection refused")
    assert len(refused) == 1
    assert "the client presented no certificate" in refused[0]
    assert len(hook.events) == 1
    assert hook.events[0].info is None


@dataclass
class SeenByPynetdicom:
    """What pynetdicom's acceptor saw of our client, recorded in its C-ECHO handler."""

    calling_ae_titles: list[str] = field(default_factory=list)
    tls_versions: list[str | None] = field(default_factory=list)
    peer_subjects: list[str] = field(default_factory=list)

    def on_echo(self, event: Any) -> int:
        self.calling_ae_titles.append(str(event.assoc.requestor.ae_title).strip())
        sock = event.assoc.dul.socket.socket
        if isinstance(sock, ssl.SSLSocket):
            self.tls_versions.append(sock.version())
            cert: dict[str, Any] = dict(sock.getpeercert() or {})
            rdns: tuple[tuple[tuple[str, str], ...], ...] = cert.get("subject", ())
            self.peer_subjects.append(",".join(f"{k}={v}" for rdn in rdns for k, v in rdn))
        return 0x0000


@key_types
@protocols
def test_dicomnet_to_pynetdicom(pynetdicom: ModuleType, pkis: PkiFactory, key_type: str,
                                protocol: str) -> None:
    pki = pkis(key_type)  # type: ignore[arg-type]
    seen = SeenByPynetdicom()
    ae = pynetdicom.AE(ae_title="PYNETDICOM-SCP")
    ae.add_supported_context(verification(pynetdicom))
    server = ae.start_server(
        (LOOPBACK, 0), block=False, ssl_context=pynetdicom_server_context(pki, protocol),
        evt_handlers=[(pynetdicom.evt.EVT_C_ECHO, seen.on_echo)],
    )
    hook = HookRecorder()

    async def main() -> tuple[int, SecurityInfo | None]:
        async with associate(LOOPBACK, server.server_address[1], calling_ae_title="DICOMNET",
                             called_ae_title="PYNETDICOM-SCP", tls=pki.client_tls(),
                             on_secure_link_ready=hook) as assoc:
            return int(await assoc.echo()), assoc.security

    try:
        status, security = run(main())
    finally:
        server.shutdown()
        ae.shutdown()
    assert status == 0
    assert security is not None
    assert security.protocol == protocol
    assert security.peer_certificate is not None
    assert security.peer_certificate.subject == pki.server_subject
    assert security.authentication == AUTH[key_type]
    assert security.cipher_suite is not None
    if protocol == "TLSv1.2":
        assert security.cipher_suite.startswith(f"TLS_ECDHE_{AUTH[key_type]}_WITH_")
    assert [e.info for e in hook.events] == [security]
    assert seen.calling_ae_titles == ["DICOMNET"]
    assert seen.tls_versions == [protocol]
    assert seen.peer_subjects == ["commonName=dicomnet test client,organizationName=dicomnet"]


def test_dicomnet_resumes_its_tls_session_with_pynetdicom(pynetdicom: ModuleType,
                                                          pkis: PkiFactory) -> None:
    """pynetdicom's acceptor is Python's ssl with its defaults (two TLS 1.3 tickets per
    handshake): the associations after the first made with one TLSConfig resume, and
    pynetdicom still sees our certificate on them."""
    pki = pkis("ecdsa")
    seen = SeenByPynetdicom()
    ae = pynetdicom.AE(ae_title="PYNETDICOM-SCP")
    ae.add_supported_context(verification(pynetdicom))
    server = ae.start_server(
        (LOOPBACK, 0), block=False, ssl_context=pynetdicom_server_context(pki, "TLSv1.3"),
        evt_handlers=[(pynetdicom.evt.EVT_C_ECHO, seen.on_echo)],
    )
    tls = pki.client_tls()

    async def main() -> list[bool]:
        flags = []
        for _ in range(3):
            async with associate(LOOPBACK, server.server_address[1], calling_ae_title="DICOMNET",
                                 called_ae_title="PYNETDICOM-SCP", tls=tls) as assoc:
                assert int(await assoc.echo()) == 0
                assert assoc.security is not None
                flags.append(assoc.security.session_resumed)
        return flags

    try:
        resumed = run(main())
    finally:
        server.shutdown()
        ae.shutdown()
    assert resumed == [False, True, True]
    assert seen.peer_subjects == [
        "commonName=dicomnet test client,organizationName=dicomnet"] * 3
