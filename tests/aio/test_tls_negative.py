"""TLS failures between our own client and server, each one checked on both sides:

- the client gets a typed error whose reason names the check that failed;
- the server logs the refusal on "dicomnet.aio" (WARNING "connection refused: ...");
- no association was established: ``on_association_request`` never called,
  ``active_associations`` 0, and no "association ..." INFO line.

Both sides know why: OpenSSL owns the socket (aio/tls_socket.py) and sends the fatal
alert when a handshake fails, which asyncio's own TLS layer did not (CPython gh-98078),
so the side that did not fail names the reason too. With TLS 1.3 the client finishes
its handshake before the server checks the client certificate, so a refused client
certificate shows on the client's first read (still reported as a TLSError).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass
from typing import Any

import pytest

from dicomnet.aio.client import associate
from dicomnet.aio.server import AssociationInfo
from dicomnet.aio.transport import SecureLinkEvent
from dicomnet.errors import (
    AssociationAborted,
    ConfigurationError,
    DicomNetError,
    TLSError,
)
from dicomnet.security.config import TLSConfig
from dicomnet.security.profiles import SecurityWarning
from tests.aio.helpers import (
    LOOPBACK,
    HookRecorder,
    Pki,
    association_lines,
    log_lines,
    run,
    running_server,
    wait_until,
)

TLS12_ONLY = "bcp195-extended"  # PS3.15 B.11: TLS 1.2 only


@dataclass
class Attempt:
    """How one failed connection attempt went, seen from both ends."""

    error: DicomNetError
    server_events: list[SecureLinkEvent]
    requests: list[AssociationInfo]
    active: int
    refusals: list[str]


async def attempt(caplog: pytest.LogCaptureFixture, *, server_tls: TLSConfig | None,
                  client_tls: TLSConfig | None) -> Attempt:
    """Associate and echo, expecting a failure; wait for the server's refusal log line."""
    hook = HookRecorder()
    requests: list[AssociationInfo] = []

    def on_request(info: AssociationInfo) -> None:
        requests.append(info)

    async with running_server(tls=server_tls, on_secure_link_ready=hook,
                              on_association_request=on_request) as server:
        try:
            async with associate(LOOPBACK, server.port, tls=client_tls) as assoc:
                await assoc.echo()
        except DicomNetError as exc:
            error = exc
        else:
            raise AssertionError("the association succeeded")
        await wait_until(
            lambda: bool(log_lines(caplog, level=logging.WARNING, contains="connection refused")),
            "the server's 'connection refused' warning",
        )
        return Attempt(error, hook.events, requests, server.active_associations,
                       log_lines(caplog, level=logging.WARNING, contains="connection refused"))


def assert_refused(outcome: Attempt, caplog: pytest.LogCaptureFixture, server_says: str) -> None:
    """The server refused the connection before any association, and said why."""
    assert outcome.requests == []
    assert outcome.active == 0
    assert association_lines(caplog) == []
    assert len(outcome.refusals) == 1, outcome.refusals
    assert server_says in outcome.refusals[0]


def assert_server_hook_failed(outcome: Attempt, reason: str) -> None:
    assert len(outcome.server_events) == 1
    event = outcome.server_events[0]
    assert event.side == "server"
    assert event.info is None
    assert event.error is not None
    assert reason in event.error.reason


# What the server logs when our client refuses the server's certificate: OpenSSL, which
# owns the socket (aio/tls_socket.py), sends the alert, so the server knows why.
# (asyncio's own TLS layer closed without one, gh-98078: the server could only guess.)
CLIENT_DISTRUSTS_OUR_CA = "the client refused our certificate: it does not trust our CA"
CLIENT_SEES_EXPIRED = "the client refused our certificate: it has expired"
CLIENT_SAYS_BAD_CERTIFICATE = "the client refused our certificate (bad certificate)"


def server_with(pki: Pki, cert: tuple[Any, Any], **overrides: Any) -> TLSConfig:
    return pki.server_tls(certfile=cert[0], keyfile=cert[1], **overrides)


# -- the server's certificate is refused by the client ------------------------------------


def test_server_certificate_from_unknown_ca(pki: Pki, aio_log: pytest.LogCaptureFixture) -> None:
    server_tls = server_with(pki, pki.foreign("foreign server", client=False))
    outcome = run(attempt(aio_log, server_tls=server_tls, client_tls=pki.client_tls()))
    assert isinstance(outcome.error, TLSError)
    assert outcome.error.reason.startswith(
        "the certificate of the server is signed by an unknown CA")
    assert_refused(outcome, aio_log, CLIENT_DISTRUSTS_OUR_CA)
    assert_server_hook_failed(outcome, CLIENT_DISTRUSTS_OUR_CA)


def test_expired_server_certificate(pki: Pki, aio_log: pytest.LogCaptureFixture) -> None:
    expired = pki.issue("expired server", client=False, valid_from_days=-30, valid_to_days=-1)
    # Our server refuses to start with it (test_own_certificate): here it is made to.
    with pytest.warns(SecurityWarning, match="expired on .*check_own_certificate=False"):
        outcome = run(attempt(aio_log, client_tls=pki.client_tls(), server_tls=server_with(
            pki, expired, check_own_certificate=False)))
    assert isinstance(outcome.error, TLSError)
    assert outcome.error.reason == "the certificate of the server has expired"
    assert_refused(outcome, aio_log, CLIENT_SEES_EXPIRED)


def test_not_yet_valid_server_certificate(pki: Pki, aio_log: pytest.LogCaptureFixture) -> None:
    future = pki.issue("future server", client=False, valid_from_days=1, valid_to_days=30)
    with pytest.warns(SecurityWarning, match="is not valid before .*check_own_certificate"):
        outcome = run(attempt(aio_log, client_tls=pki.client_tls(), server_tls=server_with(
            pki, future, check_own_certificate=False)))
    assert isinstance(outcome.error, TLSError)
    assert outcome.error.reason.startswith("the certificate of the server is not yet valid")
    assert_refused(outcome, aio_log, CLIENT_SAYS_BAD_CERTIFICATE)


def test_wrong_host_name(pki: Pki, aio_log: pytest.LogCaptureFixture) -> None:
    """A server certificate for another host; the client connects to 127.0.0.1."""
    other_host = pki.issue("otherhost.example", sans=("otherhost.example",), client=False)
    outcome = run(attempt(aio_log, server_tls=server_with(pki, other_host),
                          client_tls=pki.client_tls()))
    assert isinstance(outcome.error, TLSError)
    assert outcome.error.reason.startswith(
        "host name mismatch: the certificate of the server is not valid for IP address")
    assert_refused(outcome, aio_log, CLIENT_SAYS_BAD_CERTIFICATE)


def test_wrong_host_name_reason_names_the_checked_name(
    pki: Pki, aio_log: pytest.LogCaptureFixture
) -> None:
    outcome = run(attempt(aio_log, server_tls=pki.server_tls(),
                          client_tls=pki.client_tls(server_hostname="wrong.example")))
    assert isinstance(outcome.error, TLSError)
    assert outcome.error.reason == (
        "host name mismatch: the certificate of the server is not valid for 'wrong.example': "
        "it names DNS:localhost, IP:127.0.0.1 (subjectAltName); connect by one of these "
        "names, or keep this host and check the certificate against one of them "
        "(server_hostname='localhost'), or reissue the certificate with DNS:wrong.example")


def test_self_signed_server_certificate(pki: Pki, aio_log: pytest.LogCaptureFixture) -> None:
    outcome = run(attempt(aio_log, server_tls=server_with(pki, pki.self_signed("self-signed")),
                          client_tls=pki.client_tls()))
    assert isinstance(outcome.error, TLSError)
    assert outcome.error.reason.startswith(
        "the certificate of the server is self-signed and not trusted")
    assert_refused(outcome, aio_log, CLIENT_DISTRUSTS_OUR_CA)


# -- the client's certificate is refused by the server --------------------------------------


def assert_client_saw_refusal(outcome: Attempt, profile: str, reason: str) -> None:
    """The client learns why the server refused its certificate: from the alert, inside
    the handshake (TLS 1.2) or on its first read after it (TLS 1.3)."""
    assert isinstance(outcome.error, TLSError)
    assert outcome.error.reason.startswith(reason), outcome.error.reason


@pytest.mark.parametrize("profile", ["bcp195-rfc9325", TLS12_ONLY], ids=["tls13", "tls12"])
def test_missing_client_certificate(pki: Pki, aio_log: pytest.LogCaptureFixture,
                                    profile: str) -> None:
    client_tls = TLSConfig(cafile=pki.ca_file)  # verifies the server, presents nothing
    outcome = run(attempt(aio_log, server_tls=pki.server_tls(profile=profile),
                          client_tls=client_tls))
    reason = "the client presented no certificate, but this server requires one"
    assert_refused(outcome, aio_log, reason)
    assert_server_hook_failed(outcome, reason)
    assert_client_saw_refusal(
        outcome, profile, "the server requires a client certificate" if profile != TLS12_ONLY
        else "peer offers no cipher suite allowed by")
    if profile == TLS12_ONLY:
        assert isinstance(outcome.error, TLSError)
        assert "the server requires a client certificate" in outcome.error.reason


@pytest.mark.parametrize("profile", ["bcp195-rfc9325", TLS12_ONLY], ids=["tls13", "tls12"])
def test_client_certificate_from_unknown_ca(pki: Pki, aio_log: pytest.LogCaptureFixture,
                                            profile: str) -> None:
    foreign = pki.foreign("foreign client", server=False)
    client_tls = pki.client_tls(certfile=foreign[0], keyfile=foreign[1])
    outcome = run(attempt(aio_log, server_tls=pki.server_tls(profile=profile),
                          client_tls=client_tls))
    reason = "the certificate of the client is signed by an unknown CA"
    assert_refused(outcome, aio_log, reason)
    assert_server_hook_failed(outcome, reason)
    assert_client_saw_refusal(outcome, profile,
                              "the server refused our certificate: it does not trust our CA")


# -- configuration errors: nothing reaches the network ------------------------------------


@pytest.mark.parametrize(
    ("password", "message"),
    [pytest.param("not the password", "wrong password for private key", id="wrong-password"),
     pytest.param(None, "is encrypted: set key_password or on_private_key_password",
                  id="no-password")],
)
def test_client_key_password_problem_fails_before_connecting(
    pki: Pki, password: str | None, message: str
) -> None:
    cert, key = pki.issue("encrypted client", server=False, password="s3cret")
    client_tls = pki.client_tls(certfile=cert, keyfile=key, key_password=password)
    with socket.socket() as listener:
        listener.bind((LOOPBACK, 0))
        listener.listen(1)
        listener.setblocking(False)
        port = listener.getsockname()[1]

        async def main() -> None:
            async with associate(LOOPBACK, port, tls=client_tls):
                raise AssertionError("associated with a listener that never answers")

        with pytest.raises(ConfigurationError, match=message) as caught:
            run(main(), timeout=10)
        assert str(key) in str(caught.value)
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody ever connected


# -- TLS and plain DICOM on the wrong port -------------------------------------------------


def test_plain_client_to_tls_server(pki: Pki, aio_log: pytest.LogCaptureFixture) -> None:
    outcome = run(attempt(aio_log, server_tls=pki.server_tls(), client_tls=None))
    assert isinstance(outcome.error, AssociationAborted)
    assert str(outcome.error).endswith("the peer may expect TLS (use TLS, port 2762)")
    reason = ("received a plain DICOM A-ASSOCIATE-RQ on a TLS port: the peer spoke plain DICOM "
              "to it (its TLS is off, or it has the wrong port)")
    assert_refused(outcome, aio_log, reason)
    assert_server_hook_failed(outcome, reason)


def test_tls_client_to_plain_server(pki: Pki, aio_log: pytest.LogCaptureFixture) -> None:
    outcome = run(attempt(aio_log, server_tls=None, client_tls=pki.client_tls()))
    assert isinstance(outcome.error, TLSError)
    assert "does not speak TLS here" in outcome.error.reason
    # One line, from the handshake: no "PDU too large: 369295616" style noise.
    assert str(outcome.error).startswith("TLS handshake with 127.0.0.1:")
    assert "\n" not in str(outcome.error)
    assert "PDU" not in str(outcome.error)
    assert_refused(outcome, aio_log,
                   "received a TLS ClientHello on a plain DICOM port: the peer spoke TLS to it")
    assert outcome.server_events == []  # a plain server has no secure link to report


def test_failures_leave_no_task_behind(pki: Pki, aio_log: pytest.LogCaptureFixture) -> None:
    """After several refused connections and a close, the loop holds only this test."""

    async def main() -> set[asyncio.Task[Any]]:
        await attempt(aio_log, server_tls=pki.server_tls(), client_tls=TLSConfig(
            cafile=pki.ca_file))
        await attempt(aio_log, server_tls=pki.server_tls(), client_tls=None)
        me = asyncio.current_task()
        return {t for t in asyncio.all_tasks() if t is not me}

    assert run(main()) == set()
