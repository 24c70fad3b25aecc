"""Interop over TLS with DCMTK 3.6.7 (echoscu, storescp): mutual authentication, RSA and
ECDSA certificates, TLS 1.2 and TLS 1.3. Every peer is a real DCMTK process on 127.0.0.1.

How each side selects the TLS version
-------------------------------------
- DCMTK 3.6.7 has no ``--tls-1.2``/``--tls-1.3`` switch: the security profile decides.
  ``+py`` (Non-downgrading BCP 195, the default) and ``+px`` (BCP 195) allow TLS 1.2 and
  1.3, so they negotiate TLS 1.3 with dicomnet; ``+pz`` (Extended BCP 195) is TLS 1.2
  only. ``+cs SUITE`` adds a TLS 1.2 suite to the profile's list (not with ``+pz``).
- dicomnet: the default profile ``bcp195-rfc9325`` (PS3.15 B.12) allows 1.2 and 1.3;
  ``bcp195-extended`` (PS3.15 B.11) is TLS 1.2 only.

Interop matrix (each cell is a test below; "ok" = C-ECHO status 0 over mutual TLS)
------------------------------------------------------------------------------------
=====================================  =====================  ============================
DCMTK side                             RSA certificates       ECDSA certificates
=====================================  =====================  ============================
echoscu +py (default) -> dicomnet      ok, TLS 1.3            ok, TLS 1.3
echoscu +pz -> dicomnet                ok, TLS 1.2            ok, TLS 1.2
                                       ECDHE-RSA-AES256-GCM   ECDHE-ECDSA-AES256-GCM
echoscu +py or +px -> dicomnet         ok, TLS 1.2            FAILS: no shared cipher
limited to TLS 1.2 (bcp195-extended)   ECDHE-RSA-AES256-GCM   suite (see below)
echoscu +py +cs TLS_ECDHE_ECDSA_WITH_                         ok, TLS 1.2
AES_128_GCM_SHA256 -> dicomnet TLS 1.2                        ECDHE-ECDSA-AES128-GCM
dicomnet -> storescp +py (default)     ok, TLS 1.3            ok, TLS 1.3
dicomnet -> storescp +pz               ok, TLS 1.2            ok, TLS 1.2
dicomnet limited to TLS 1.2            ok, TLS 1.2            FAILS: no shared cipher
-> storescp +py                        DHE-RSA-AES256-GCM     suite (see below)
dicomnet TLS 1.2 -> storescp +py +cs                          ok, TLS 1.2
TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256                       ECDHE-ECDSA-AES128-GCM
echoscu +py -> dicomnet limited to     ok, TLS 1.2
DHE suites (bcp195-extended, ciphers)  DHE-RSA-AES128/256-GCM
=====================================  =====================  ============================

Why ECDSA + TLS 1.2 fails with DCMTK's default profiles: DCMTK 3.6.7's ``+py`` and
``+px`` TLS 1.2 suite lists hold only RSA-authenticated suites (ECDHE_RSA, DHE_RSA...),
so with an ECDSA certificate there is no TLS 1.2 suite in common; TLS 1.3 is unaffected
(its suites do not depend on the certificate type). The fix on the DCMTK side is either
``+pz`` (whose list has ECDHE_ECDSA AES-GCM suites) or adding an ECDSA suite with
``+cs TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256``. The failing cells are tests that assert
the failure and how each side reports it (not xfails: it is the peer's documented
behaviour, not a dicomnet bug).

Session resumption: storescp resumes the session of our previous association (TLS 1.3
tickets and TLS 1.2 alike, ``test_dicomnet_resumes_its_tls_session_with_storescp``).
echoscu and storescu never offer one (a new process per run, no session kept), so
each of their connections is a full handshake, as the tests above show.

Every DCMTK profile (``+pa`` AES and ``+pn`` NULL among them) against every dicomnet
profile, both ways: test_dcmtk_tls_profiles.py. DCMTK does not do ALPN, so
``SecurityInfo.alpn`` is None with it.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import pytest

from dicomnet.aio.client import associate
from dicomnet.dimse.status import Status
from dicomnet.errors import TLSError
from dicomnet.security.certificates import CertificateInfo
from dicomnet.security.info import SecurityInfo
from dicomnet.security.profiles import get_profile
from tests.aio.helpers import (
    LOOPBACK,
    HookRecorder,
    Pki,
    PkiFactory,
    association_lines,
    background_process,
    free_port,
    log_lines,
    run,
    run_process,
    running_server,
    wait_output,
    wait_until,
)
from tests.interop.conftest import Dcmtk

pytestmark = pytest.mark.interop

TLS13_SUITES = {"TLS_AES_256_GCM_SHA384", "TLS_AES_128_GCM_SHA256",
                "TLS_CHACHA20_POLY1305_SHA256"}
AUTH = {"rsa": "RSA", "ecdsa": "ECDSA"}
KEY_BITS = {"rsa": 2048, "ecdsa": 256}
ECDSA_AES128 = "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"
SCP_TITLE = "DICOMNET-SCP"


def echoscu_cmd(dcmtk: Dcmtk, pki: Pki, port: int, *flags: str | Path,
                cert: tuple[Path, Path] | None = None, ca: Path | None = None) -> list[str | Path]:
    """echoscu with mutual TLS: our client key/cert, trusting ``ca`` (the PKI's CA)."""
    cert_path, key_path = cert or (pki.client_cert, pki.client_key)
    return [dcmtk.echoscu, "-v", "-aet", "ECHOSCU", "-aec", SCP_TITLE,
            "+tls", key_path, cert_path, "+cf", ca or pki.ca_file, *flags, LOOPBACK, str(port)]


async def echoscu_against_server(
    dcmtk: Dcmtk, pki: Pki, flags: list[str], caplog: pytest.LogCaptureFixture, *,
    profile: str = "bcp195-rfc9325", cert: tuple[Path, Path] | None = None,
    ca: Path | None = None, ciphers: tuple[str, ...] | None = None,
) -> tuple[int, str, HookRecorder, int]:
    """Run echoscu against a dicomnet TLS server; wait until the server has reported the
    connection (association line or refusal). Returns (rc, output, hook, associations)."""
    hook = HookRecorder()
    tls = pki.server_tls(profile=profile, ciphers=ciphers)
    async with running_server(ae_title=SCP_TITLE, tls=tls, on_secure_link_ready=hook) as server:
        rc, out = await run_process(*echoscu_cmd(dcmtk, pki, server.port, *flags,
                                                 cert=cert, ca=ca))
        await wait_until(
            lambda: bool(association_lines(caplog) or log_lines(caplog, contains="refused")),
            "the server to log the connection's outcome",
        )
        active = server.active_associations
    return rc, out, hook, active


def assert_server_side(hook: HookRecorder, pki: Pki, key_type: str, protocol: str) -> SecurityInfo:
    assert len(hook.events) == 1, hook.events
    event = hook.events[0]
    assert event.side == "server"
    assert event.error is None
    info = event.info
    assert info is not None
    assert info.protocol == protocol
    peer = info.peer_certificate
    assert peer is not None, "mutual authentication: DCMTK must have sent its certificate"
    assert peer.subject == pki.client_subject
    assert info.authentication == AUTH[key_type]
    assert info.authentication_key_bits == KEY_BITS[key_type]
    return info


def assert_one_released_association(caplog: pytest.LogCaptureFixture, protocol: str,
                                    suite: str) -> None:
    lines = association_lines(caplog)
    assert len(lines) == 1, lines
    pattern = (rf"association ECHOSCU@127\.0\.0\.1:\d+ -> {SCP_TITLE}: released, "
               rf"1 message\(s\) \(1 success\), \d+\.\d\d s, {re.escape(protocol)} "
               rf"{re.escape(suite)}, "
               r"(client certificate .+ \(SHA-256 [0-9A-F:]{95}\)|no client certificate)")
    assert re.fullmatch(pattern, lines[0]), lines[0]


# -- echoscu -> dicomnet server ---------------------------------------------------------


@pytest.mark.parametrize("key_type", ["rsa", "ecdsa"])
@pytest.mark.parametrize(
    ("protocol", "flags"),
    [pytest.param("TLSv1.3", [], id="tls13-default-profile"),
     pytest.param("TLSv1.2", ["+pz"], id="tls12-extended-profile")],
)
def test_echoscu_to_dicomnet(*, dcmtk: Dcmtk, pkis: PkiFactory,
                             aio_log: pytest.LogCaptureFixture, key_type: str, protocol: str,
                             flags: list[str]) -> None:
    pki = pkis(key_type)  # type: ignore[arg-type]
    rc, out, hook, _ = run(echoscu_against_server(dcmtk, pki, flags, aio_log))
    assert rc == 0, out
    assert "Received Echo Response (Success)" in out
    info = assert_server_side(hook, pki, key_type, protocol)
    assert info.cipher_suite is not None
    if protocol == "TLSv1.3":
        assert info.cipher_suite in TLS13_SUITES
        assert info.key_exchange is None
    else:
        # Our server's preference wins among what +pz offers: the AES-256 one first.
        assert info.cipher_suite == f"TLS_ECDHE_{AUTH[key_type]}_WITH_AES_256_GCM_SHA384"
        assert info.key_exchange == "ECDHE"
    assert info.integrity == "AEAD (GCM)"
    assert_one_released_association(aio_log, protocol, info.cipher_suite)


@pytest.mark.parametrize(
    ("key_type", "flags", "suite"),
    [
        pytest.param("rsa", [], "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", id="rsa-default-profile"),
        pytest.param("rsa", ["+px"], "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", id="rsa-bcp195"),
        pytest.param("ecdsa", [], None, id="ecdsa-default-profile-no-shared-suite"),
        pytest.param("ecdsa", ["+px"], None, id="ecdsa-bcp195-no-shared-suite"),
        pytest.param("ecdsa", ["+cs", ECDSA_AES128], ECDSA_AES128, id="ecdsa-with-added-suite"),
    ],
)
def test_echoscu_to_dicomnet_limited_to_tls12(
    *, dcmtk: Dcmtk, pkis: PkiFactory, aio_log: pytest.LogCaptureFixture,
    key_type: str, flags: list[str], suite: str | None,
) -> None:
    """dicomnet's TLS 1.2-only profile (PS3.15 B.11) against DCMTK's 1.2+1.3 profiles."""
    pki = pkis(key_type)  # type: ignore[arg-type]
    rc, out, hook, active = run(
        echoscu_against_server(dcmtk, pki, flags, aio_log, profile="bcp195-extended")
    )
    if suite is not None:
        assert rc == 0, out
        info = assert_server_side(hook, pki, key_type, "TLSv1.2")
        assert info.cipher_suite == suite
        assert_one_released_association(aio_log, "TLSv1.2", suite)
        return
    # DCMTK's +py/+px TLS 1.2 lists are RSA-only: no suite in common with an ECDSA key.
    assert rc != 0
    assert "Association Request Failed" in out
    assert len(hook.events) == 1
    event = hook.events[0]
    assert event.info is None
    assert event.error is not None
    assert "peer offers no cipher suite" in event.error.reason
    refused = log_lines(aio_log, level=logging.WARNING, contains="connection refused")
    assert len(refused) == 1
    assert "peer offers no cipher suite" in refused[0]
    assert association_lines(aio_log) == []
    assert active == 0


@pytest.mark.parametrize("suite", ["TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",
                                   "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384"])
def test_echoscu_to_dicomnet_server_choosing_dhe(
    *, dcmtk: Dcmtk, pkis: PkiFactory, aio_log: pytest.LogCaptureFixture, suite: str,
) -> None:
    """A dicomnet server limited to a DHE suite of PS3.15 B.11 negotiates it with DCMTK's
    +py profile (which lists it): the server holds RFC 7919's ffdhe2048 group. Before,
    it had no DH parameters and answered "no shared cipher"."""
    pki = pkis("rsa")
    rc, out, hook, _ = run(echoscu_against_server(dcmtk, pki, [], aio_log,
                                                  profile="bcp195-extended", ciphers=(suite,)))
    assert rc == 0, out
    info = assert_server_side(hook, pki, "rsa", "TLSv1.2")
    assert info.cipher_suite == suite
    assert info.key_exchange == "DHE"
    assert_one_released_association(aio_log, "TLSv1.2", suite)


def test_echoscu_without_a_trusted_certificate_is_refused(
    dcmtk: Dcmtk, pkis: PkiFactory, aio_log: pytest.LogCaptureFixture
) -> None:
    """echoscu presenting a certificate from a CA our server does not trust."""
    pki = pkis("ecdsa")
    foreign = pki.foreign("dcmtk foreign client", server=False)
    rc, out, hook, active = run(echoscu_against_server(dcmtk, pki, [], aio_log, cert=foreign))
    assert rc != 0, out
    assert len(hook.events) == 1
    error = hook.events[0].error
    assert error is not None
    assert "the certificate of the client is signed by an unknown CA" in error.reason
    assert log_lines(aio_log, level=logging.WARNING, contains="signed by an unknown CA")
    assert association_lines(aio_log) == []
    assert active == 0


def test_echoscu_refusing_our_certificate_is_explained(
    dcmtk: Dcmtk, pkis: PkiFactory, aio_log: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    """echoscu trusts another CA, so it refuses our server certificate with a TLS alert,
    which the server log translates ("does not trust our CA")."""
    pki = pkis("ecdsa")
    other_ca = pkis("rsa").ca_file
    rc, out, hook, active = run(echoscu_against_server(dcmtk, pki, [], aio_log, ca=other_ca))
    assert rc != 0, out
    assert len(hook.events) == 1
    error = hook.events[0].error
    assert error is not None
    assert error.reason == "the client refused our certificate: it does not trust our CA"
    refused = log_lines(aio_log, level=logging.WARNING, contains="connection refused")
    assert len(refused) == 1
    assert "does not trust our CA" in refused[0]
    assert active == 0


def test_echoscu_sees_the_certificate_the_server_was_renewed_with(
    dcmtk: Dcmtk, tmp_path: Path, aio_log: pytest.LogCaptureFixture
) -> None:
    """Certificate rotation without restart: the certificate and key files replaced
    under a running server, the next echoscu gets the new certificate (its debug
    output prints the peer's subject and serial number)."""
    aio_log.set_level(logging.INFO, logger="dicomnet.security")
    pki = Pki.create(tmp_path / "pki")
    cert, key = tmp_path / "server.pem", tmp_path / "server.key"
    for source, target in zip(pki.issue("first server", client=False), (cert, key),
                              strict=True):
        os.replace(source, target)
    tls = pki.server_tls(certfile=cert, keyfile=key, files_check_interval=0)

    async def main() -> tuple[tuple[int, str], tuple[int, str], int]:
        async with running_server(ae_title=SCP_TITLE, tls=tls) as server:
            before = await run_process(*echoscu_cmd(dcmtk, pki, server.port, "-d"))
            renewed = pki.issue("renewed server", client=False)
            for source, target in zip(renewed, (cert, key), strict=True):
                os.replace(source, target)
            after = await run_process(*echoscu_cmd(dcmtk, pki, server.port, "-d"))
            serial = CertificateInfo.from_pem_file(cert).serial
        return before, after, serial

    (rc_before, before), (rc_after, after), serial = run(main())
    assert rc_before == 0 and rc_after == 0, before + after
    assert "Subject     : /CN=first server/O=dicomnet" in before
    assert "Subject     : /CN=renewed server/O=dicomnet" in after
    assert f"Serial no.  : {serial}\n" in after
    assert [": released, " in line for line in association_lines(aio_log)] == [True, True]
    [said] = log_lines(aio_log, logger="dicomnet.security", contains="TLS files changed")
    assert "new connections now get certificate O=dicomnet,CN=renewed server" in said


# -- dicomnet client -> storescp ---------------------------------------------------------


def echo_storescp(dcmtk: Dcmtk, pki: Pki, tmp_path: Path, flags: list[str],
                  profile: str) -> tuple[Status, SecurityInfo | None, str]:
    """C-ECHO from our client to a storescp with mutual TLS: (status, security, log)."""
    port = free_port()
    cmd: list[str | Path] = [
        dcmtk.storescp, "-v", "-aet", "STORESCP", "+tls", pki.server_key, pki.server_cert,
        "+cf", pki.ca_file, *flags, "-od", tmp_path, str(port),
    ]
    hook = HookRecorder()

    async def echo() -> tuple[Status, SecurityInfo | None]:
        async with associate(LOOPBACK, port, calling_ae_title="DICOMNET",
                             called_ae_title="STORESCP", tls=pki.client_tls(profile=profile),
                             on_secure_link_ready=hook) as assoc:
            return await assoc.echo(), assoc.security

    with background_process(*cmd, log_path=tmp_path / "storescp.log", port=port) as peer:
        status, security = run(echo())
        out = wait_output(peer, "Received Echo Request")
    assert len(hook.events) == 1
    assert hook.events[0].info == security
    return status, security, out


def assert_client_side(security: SecurityInfo | None, pki: Pki, key_type: str,
                       protocol: str) -> SecurityInfo:
    assert security is not None
    assert security.side == "client"
    assert security.protocol == protocol
    assert security.peer_certificate is not None
    assert security.peer_certificate.subject == pki.server_subject
    assert security.authentication == AUTH[key_type]
    assert security.authentication_key_bits == KEY_BITS[key_type]
    assert security.cipher_suite is not None
    assert get_profile("bcp195-rfc9325").allows_suite(security.cipher_suite)
    return security


@pytest.mark.parametrize("key_type", ["rsa", "ecdsa"])
@pytest.mark.parametrize(
    ("protocol", "flags"),
    [pytest.param("TLSv1.3", [], id="tls13-default-profile"),
     pytest.param("TLSv1.2", ["+pz"], id="tls12-extended-profile")],
)
def test_dicomnet_to_storescp(*, dcmtk: Dcmtk, pkis: PkiFactory, tmp_path: Path,
                              key_type: str, protocol: str, flags: list[str]) -> None:
    pki = pkis(key_type)  # type: ignore[arg-type]
    status, security, out = echo_storescp(dcmtk, pki, tmp_path, flags, "bcp195-rfc9325")
    assert int(status) == 0
    info = assert_client_side(security, pki, key_type, protocol)
    if protocol == "TLSv1.3":
        assert info.cipher_suite in TLS13_SUITES
    else:
        assert info.cipher_suite is not None
        assert info.cipher_suite.startswith(f"TLS_ECDHE_{AUTH[key_type]}_WITH_AES_")
        assert info.cipher_suite.endswith("_GCM_SHA256") or info.cipher_suite.endswith(
            "_GCM_SHA384")
    assert "Association Received" in out


@pytest.mark.parametrize(
    ("protocol", "flags"),
    [pytest.param("TLSv1.3", [], id="tls13-default-profile"),
     pytest.param("TLSv1.2", ["+pz"], id="tls12-extended-profile")],
)
def test_dicomnet_resumes_its_tls_session_with_storescp(
    *, dcmtk: Dcmtk, pkis: PkiFactory, tmp_path: Path, protocol: str, flags: list[str]
) -> None:
    """storescp's OpenSSL issues session tickets (TLS 1.3 and 1.2) and takes them back:
    the associations after the first, made with the same TLSConfig, resume the
    session (RFC 8446 2.2, RFC 5077) and still see storescp's certificate."""
    pki = pkis("rsa")
    port = free_port()
    tls = pki.client_tls()

    async def echoes() -> list[SecurityInfo]:
        infos = []
        for _ in range(3):
            async with associate(LOOPBACK, port, calling_ae_title="DICOMNET",
                                 called_ae_title="STORESCP", tls=tls) as assoc:
                assert int(await assoc.echo()) == 0
                assert assoc.security is not None
                infos.append(assoc.security)
        return infos

    with background_process(
        dcmtk.storescp, "-v", "-aet", "STORESCP", "+tls", pki.server_key, pki.server_cert,
        "+cf", pki.ca_file, *flags, "-od", tmp_path, str(port),
        log_path=tmp_path / "storescp.log", port=port,
    ) as peer:
        infos = run(echoes())
        out = wait_output(peer, "Received Echo Request")
    assert out.count("Association Received") == 3, out
    assert [i.session_resumed for i in infos] == [False, True, True]
    for info in infos:
        assert_client_side(info, pki, "rsa", protocol)


@pytest.mark.parametrize(
    ("key_type", "flags", "suite"),
    [
        pytest.param("rsa", [], "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384", id="rsa-default-profile"),
        pytest.param("ecdsa", [], None, id="ecdsa-default-profile-no-shared-suite"),
        pytest.param("ecdsa", ["+cs", ECDSA_AES128], ECDSA_AES128, id="ecdsa-with-added-suite"),
    ],
)
def test_dicomnet_limited_to_tls12_to_storescp(
    *, dcmtk: Dcmtk, pkis: PkiFactory, tmp_path: Path, key_type: str, flags: list[str],
    suite: str | None,
) -> None:
    """Our client on the TLS 1.2-only profile against storescp's default (+py) profile."""
    pki = pkis(key_type)  # type: ignore[arg-type]
    if suite is not None:
        status, security, _ = echo_storescp(dcmtk, pki, tmp_path, flags, "bcp195-extended")
        assert int(status) == 0
        assert security is not None
        assert security.protocol == "TLSv1.2"
        assert security.cipher_suite == suite  # storescp's (server) preference
        return
    with pytest.raises(TLSError) as caught:
        echo_storescp(dcmtk, pki, tmp_path, flags, "bcp195-extended")
    # storescp answers with a handshake_failure alert, which the client explains.
    assert caught.value.reason.startswith("peer offers no cipher suite allowed by")
