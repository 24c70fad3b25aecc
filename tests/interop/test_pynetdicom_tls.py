"""Interop over TLS with pynetdicom (a real pynetdicom AE in this process, its own threads),
both ways, with mutual authentication, RSA and ECDSA certificates, TLS 1.2 and 1.3.

pynetdicom takes a plain ``ssl.SSLContext``: as a requestor through
``AE.associate(..., tls_args=(context, server_hostname))``, as an acceptor through
``AE.start_server(..., ssl_context=context, block=False)``. The TLS version is pinned on
pynetdicom's context (minimum = maximum), while dicomnet keeps its default profile
(TLS 1.2 and 1.3), so each case also shows that dicomnet follows the peer's choice.
All four combinations work both ways. Below them: pynetdicom into ``dicomnet serve
--peer-cert optional`` with and without a client certificate and with each
``server_hostname``, and pynetdicom capped at TLS 1.2 against each TLS 1.2 profile.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import logging
import re
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from dicomnet.aio.client import associate
from dicomnet.errors import TLSError
from dicomnet.security.info import SecurityInfo
from dicomnet.security.profiles import get_profile
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
from tests.interop.conftest import dicomnet_serve

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


def pynetdicom_echo(pynetdicom: ModuleType, port: int, context: ssl.SSLContext, *,
                    server_hostname: str = "localhost",
                    called_ae_title: str = SCP_TITLE) -> PynetdicomEcho:
    """Blocking: associate with our server over TLS and send a C-ECHO;
    ``server_hostname`` is what pynetdicom checks our certificate against (and
    sends as SNI unless it is an address)."""
    ae = pynetdicom.AE(ae_title="PYNETDICOM")
    ae.add_requested_context(verification(pynetdicom))
    try:
        assoc = ae.associate(LOOPBACK, port, ae_title=called_ae_title,
                             tls_args=(context, server_hostname))
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


@pytest.mark.parametrize(("certificate", "reason"), [
    ("none", "the server requires a client certificate (set certfile/keyfile)"),
    ("foreign", "the server refused our certificate: it does not trust our CA"),
])
def test_dicomnet_refused_by_pynetdicom_is_told_why(pynetdicom: ModuleType, pkis: PkiFactory,
                                                    certificate: str, reason: str) -> None:
    """pynetdicom (Python's ssl, CERT_REQUIRED, TLS 1.3) refuses our certificate after
    our handshake ended (RFC 8446 4.4.2): its alert and then a reset, which fails our
    A-ASSOCIATE-RQ. The alert is found behind it, three times in three: before, most
    attempts read "it most likely requires one" (a guess; 20 in 20 with pynetdicom in
    its own process, fewer here, where its thread shares our GIL)."""
    pki = pkis("rsa")
    if certificate == "none":
        tls = pki.client_tls(certfile=None, keyfile=None)
    else:
        cert, key = pki.foreign("foreign client", server=False)
        tls = pki.client_tls(certfile=cert, keyfile=key)
    ae = pynetdicom.AE(ae_title="PYNETDICOM-SCP")
    ae.add_supported_context(verification(pynetdicom))
    server = ae.start_server((LOOPBACK, 0), block=False,
                             ssl_context=pynetdicom_server_context(pki, "TLSv1.3"))

    async def main() -> list[TLSError]:
        errors = []
        for _ in range(3):
            with pytest.raises(TLSError) as caught:
                async with associate(LOOPBACK, server.server_address[1], tls=tls,
                                     called_ae_title="PYNETDICOM-SCP") as assoc:
                    await assoc.echo()
            errors.append(caught.value)
        return errors

    try:
        errors = run(main())
    finally:
        server.shutdown()
        ae.shutdown()
    assert [(e.reason, e.link_failed) for e in errors] == [(reason, False)] * 3


def test_dicomnet_tls_against_a_plain_pynetdicom_says_what_came_back(
        pynetdicom: ModuleType, pkis: PkiFactory) -> None:
    """A plain pynetdicom SCP reads our ClientHello as a PDU of unknown type and
    answers with an A-ABORT: bytes that are not a TLS record, said as such."""
    pki = pkis("rsa")
    ae = pynetdicom.AE(ae_title="PYNETDICOM-SCP")
    ae.add_supported_context(verification(pynetdicom))
    server = ae.start_server((LOOPBACK, 0), block=False)

    async def main() -> TLSError:
        with pytest.raises(TLSError) as caught:
            async with associate(LOOPBACK, server.server_address[1],
                                 tls=pki.client_tls(certfile=None, keyfile=None)):
                pass
        return caught.value

    try:
        error = run(main())
    finally:
        server.shutdown()
        ae.shutdown()
    assert (error.reason, error.link_failed) == (
        "the server answered our ClientHello with bytes that are not a TLS record: it does "
        "not speak TLS here (a plain DICOM port?)", False)


# -- pynetdicom into dicomnet serve (the CLI) ------------------------------------------------


def pynetdicom_echo_as(pynetdicom: ModuleType, port: int, context: ssl.SSLContext,
                       server_hostname: str) -> PynetdicomEcho:
    """pynetdicom_echo to ``dicomnet serve`` (AE title DICOMNET), expecting
    ``server_hostname`` in its certificate."""
    return pynetdicom_echo(pynetdicom, port, context, server_hostname=server_hostname,
                           called_ae_title="DICOMNET")


def serve_lines(stderr: str) -> list[str]:
    return [line.split("+0000 ", 1)[1] for line in stderr.splitlines()
            if " association " in line or "connection refused" in line]


# pynetdicom 3.0 leaks its SSLSocket when the handshake fails (see above).
@pytest.mark.filterwarnings("ignore:unclosed <ssl.SSLSocket:ResourceWarning")
@protocols
def test_pynetdicom_into_dicomnet_serve_with_optional_client_certificates(
    pynetdicom: ModuleType, pkis: PkiFactory, tmp_path: Path, protocol: str
) -> None:
    """dicomnet serve --peer-cert optional: pynetdicom with a certificate (verified and
    named in the log), without one (admitted, "no client certificate"), with one from a
    CA the server does not trust (refused: optional is not unverified), and expecting a
    host name our certificate does not hold (pynetdicom refuses us; we log why)."""
    pki = pkis("rsa")
    foreign_cert, foreign_key = pki.foreign("pynetdicom foreign", server=False)
    with_cert = pynetdicom_client_context(pki, protocol)
    without = pynetdicom_client_context(pki, protocol, with_cert=False)
    foreign = pynetdicom_client_context(pki, protocol, with_cert=False)
    foreign.load_cert_chain(foreign_cert, foreign_key)
    with dicomnet_serve(pki, tmp_path, "--peer-cert", "optional",
                        "--aet", "DICOMNET") as (port, stderr):
        results = [
            pynetdicom_echo_as(pynetdicom, port, with_cert, "localhost"),
            pynetdicom_echo_as(pynetdicom, port, with_cert, LOOPBACK),
            pynetdicom_echo_as(pynetdicom, port, without, "localhost"),
            pynetdicom_echo_as(pynetdicom, port, without, LOOPBACK),
            pynetdicom_echo_as(pynetdicom, port, foreign, "localhost"),
            pynetdicom_echo_as(pynetdicom, port, with_cert, "pacs.example.org"),
            pynetdicom_echo_as(pynetdicom, port, without, "localhost"),
        ]
    gc.collect()  # pynetdicom's leaked sockets go now, while their warning is ignored
    assert [(r.established, r.status) for r in results] == [
        (True, 0), (True, 0), (True, 0), (True, 0), (False, None), (False, None), (True, 0)]
    lines = serve_lines(stderr[0])
    assert "Traceback" not in stderr[0]
    assert len(lines) == 7, lines
    admitted = (r"association PYNETDICOM@127\.0\.0\.1:\d+ -> DICOMNET: released, 1 message\(s\) "
                rf"\(1 success\), \d+\.\d\d s, {protocol} \S+, ")
    client = pki.client_subject.split("CN=")[1]
    for line in lines[:2]:
        assert re.fullmatch(admitted + rf"client certificate {client} \(SHA-256 [0-9A-F:]{{95}}\)",
                            line), line
    for line in (*lines[2:4], lines[6]):
        assert re.fullmatch(admitted + "no client certificate", line), line
    refused = r"WARNING: connection refused: TLS handshake with 127\.0\.0\.1:\d+ failed: "
    assert re.fullmatch(refused + r"the certificate of the client is signed by an unknown CA "
                        r"\(its issuer is not in --ca\)", lines[4]), lines[4]
    assert re.fullmatch(refused + r"the client refused our certificate \(bad certificate\)",
                        lines[5]), lines[5]


@pytest.mark.filterwarnings("ignore:unclosed <ssl.SSLSocket:ResourceWarning")
@pytest.mark.parametrize("key_type", ["rsa", "ecdsa"])
@pytest.mark.parametrize("profile", ["bcp195-rfc9325", "bcp195-rfc9325-modified",
                                     "bcp195-non-downgrading", "bcp195-extended"])
def test_pynetdicom_limited_to_tls12_into_each_profile(
    pynetdicom: ModuleType, pkis: PkiFactory, aio_log: pytest.LogCaptureFixture,
    profile: str, key_type: str,
) -> None:
    """pynetdicom capped at TLS 1.2 (OpenSSL's default TLS 1.2 list) against our TLS 1.2
    profiles: the suite negotiated is one of the profile's (PS3.15 B.10 to B.13), our
    strongest that fits the certificate; B.10 lists only RSA suites, so an EC key meets
    none (the server said so at start)."""
    pki = pkis(key_type)  # type: ignore[arg-type]
    context = pynetdicom_client_context(pki, "TLSv1.2")
    hook = HookRecorder()

    async def main() -> PynetdicomEcho:
        async with running_server(ae_title=SCP_TITLE, tls=pki.server_tls(profile=profile),
                                  on_secure_link_ready=hook) as server:
            result = await asyncio.to_thread(pynetdicom_echo, pynetdicom, server.port, context)
            await wait_until(lambda: bool(hook.events), "the handshake's outcome")
            return result

    result = run(main())
    gc.collect()  # as above
    [event] = hook.events
    if key_type == "ecdsa" and profile == "bcp195-non-downgrading":
        assert not result.established
        assert event.error is not None
        assert event.error.reason == (
            "peer offers no cipher suite allowed by profile 'bcp195-non-downgrading'")
        return
    assert result.established and result.status == 0
    info = event.info
    assert info is not None
    assert info.protocol == "TLSv1.2"
    assert info.cipher_suite == f"TLS_ECDHE_{AUTH[key_type]}_WITH_AES_256_GCM_SHA384"
    assert get_profile(profile).allows_suite(info.cipher_suite)
