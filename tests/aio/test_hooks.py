"""The brief's events on real connections: ``on_secure_link_ready`` (OnSecureLinkReady)
and ``on_private_key_password`` (OnPrivateKeyPassword).

- ``on_secure_link_ready`` runs exactly once per connection on each side, after the
  handshake and before any DICOM byte, with what was negotiated; on a failed handshake
  it runs once with ``error`` set and ``info`` None. Sync and async hooks both work.
- ``on_private_key_password`` runs once per context build, only for an encrypted key;
  a wrong password is a clear ConfigurationError before anything touches the network.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from dicomnet.aio.client import associate
from dicomnet.aio.server import AssociationInfo, Server, ServerAssociation
from dicomnet.aio.transport import SecureLinkEvent
from dicomnet.errors import AssociationRejected, ConfigurationError, TLSError
from dicomnet.security.config import TLSConfig
from dicomnet.services.verification import VerificationSCP
from tests.aio.helpers import (
    LOOPBACK,
    HookRecorder,
    Pki,
    log_lines,
    run,
    running_server,
    wait_until,
)

TLS12_ONLY = "bcp195-extended"


@dataclass
class ServerHook:
    """A server-side hook that also notes how far DICOM had got when it ran."""

    server: Server | None = None
    requests: list[AssociationInfo] = field(default_factory=list)
    events: list[SecureLinkEvent] = field(default_factory=list)
    associations_then: list[int] = field(default_factory=list)
    requests_then: list[int] = field(default_factory=list)

    def __call__(self, event: SecureLinkEvent) -> None:
        assert self.server is not None
        self.events.append(event)
        self.associations_then.append(self.server.active_associations)
        self.requests_then.append(len(self.requests))

    def on_request(self, info: AssociationInfo) -> None:
        self.requests.append(info)


@pytest.mark.parametrize(
    ("profile", "protocol"),
    [("bcp195-rfc9325", "TLSv1.3"), (TLS12_ONLY, "TLSv1.2")], ids=["tls13", "tls12"],
)
def test_secure_link_ready_once_per_connection_each_side(
    pki: Pki, aio_log: pytest.LogCaptureFixture, profile: str, protocol: str
) -> None:
    server_hook = ServerHook()
    client_hook = HookRecorder()
    client_tls = pki.client_tls(server_hostname="localhost")

    async def main() -> int:
        async with running_server(tls=pki.server_tls(profile=profile),
                                  on_secure_link_ready=server_hook,
                                  on_association_request=server_hook.on_request) as server:
            server_hook.server = server
            for _ in range(2):
                async with associate(LOOPBACK, server.port, tls=client_tls,
                                     on_secure_link_ready=client_hook) as assoc:
                    assert int(await assoc.echo()) == 0
                    assert client_hook.events[-1].info == assoc.security
            return server.port

    port = run(main())
    assert len(server_hook.events) == 2
    assert len(client_hook.events) == 2
    # One call per connection: distinct client ports, in connection order.
    client_ports = [e.peer[1] for e in server_hook.events]
    assert len(set(client_ports)) == 2
    # Server side: before any DICOM byte was processed.
    assert server_hook.associations_then == [0, 0]
    # ...and before this connection's A-ASSOCIATE-RQ reached on_association_request.
    assert server_hook.requests_then == [0, 1]
    assert len(server_hook.requests) == 2
    for index, (server_event, client_event) in enumerate(
            zip(server_hook.events, client_hook.events, strict=True)):
        assert server_event.side == "server"
        assert client_event.side == "client"
        assert server_event.error is None
        assert client_event.error is None
        assert client_event.peer == (LOOPBACK, port)
        assert server_event.peer[0] == LOOPBACK
        s, c = server_event.info, client_event.info
        assert s is not None
        assert c is not None
        assert s.side == "server"
        assert c.side == "client"
        assert s.protocol == c.protocol == protocol
        assert s.cipher_suite == c.cipher_suite
        assert s.cipher_suite is not None
        assert s.encryption == c.encryption
        assert s.encryption in ("AES-256-GCM", "AES-128-GCM", "CHACHA20-POLY1305")
        assert s.integrity == c.integrity
        assert s.integrity is not None
        assert s.integrity.startswith("AEAD")
        assert s.authentication == c.authentication == "ECDSA"
        assert s.authentication_key_bits == c.authentication_key_bits == 256
        if protocol == "TLSv1.2":
            assert s.key_exchange == c.key_exchange == "ECDHE"
        else:
            assert s.key_exchange is None  # Python cannot tell the TLS 1.3 group
        assert s.peer_certificate is not None
        assert s.peer_certificate.subject == pki.client_subject
        assert c.peer_certificate is not None
        assert c.peer_certificate.subject == pki.server_subject
        assert s.local_certificate is not None
        assert s.local_certificate.subject == pki.server_subject
        assert s.alpn == c.alpn == "dicom"
        assert s.sni == c.sni == "localhost"
        # The second association resumed the first's TLS session (one TLSConfig), and
        # both ends still see each other's certificate (checked above).
        assert s.session_resumed is c.session_resumed is (index == 1)


def test_client_security_info_names_our_own_certificate(pki: Pki) -> None:
    client_hook = HookRecorder()

    async def main() -> None:
        async with running_server(tls=pki.server_tls()) as server, associate(
            LOOPBACK, server.port, tls=pki.client_tls(), on_secure_link_ready=client_hook
        ):
            pass

    run(main())
    info = client_hook.events[0].info
    assert info is not None
    assert info.local_certificate is not None
    assert info.local_certificate.subject == pki.client_subject


@dataclass
class RawTLSPeer:
    """A TLS server speaking raw bytes: records what arrives, answers A-ASSOCIATE-RJ."""

    received: bytearray = field(default_factory=bytearray)
    connections: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            header = await reader.readexactly(6)
            self.received += header
            self.received += await reader.readexactly(int.from_bytes(header[2:6], "big"))
            # A-ASSOCIATE-RJ: rejected-permanent, service-user, no reason given.
            writer.write(bytes([0x03, 0, 0, 0, 0, 4, 0, 1, 1, 1]))
            await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()
            self.done.set()


def test_client_hook_runs_before_the_associate_rq_is_sent(pki: Pki) -> None:
    """The client's hook runs before the A-ASSOCIATE-RQ leaves: while it runs (and yields
    to the loop many times, so that anything already sent would arrive), the peer has
    received nothing; afterwards the RQ arrives."""
    peer = RawTLSPeer()
    seen_by_hook: list[bytes] = []

    async def hook(event: SecureLinkEvent) -> None:
        for _ in range(100):
            await asyncio.sleep(0)
        seen_by_hook.append(bytes(peer.received))

    async def main() -> AssociationRejected:
        context = await pki.server_tls().server_context()
        raw = await asyncio.start_server(peer.handle, LOOPBACK, 0, ssl=context)
        try:
            port = raw.sockets[0].getsockname()[1]
            with pytest.raises(AssociationRejected) as caught:
                async with associate(LOOPBACK, port, tls=pki.client_tls(),
                                     calling_ae_title="HOOK-TEST", on_secure_link_ready=hook):
                    pass
            await wait_until(peer.done.is_set, "the raw peer to finish its connection")
            return caught.value
        finally:
            raw.close()
            await raw.wait_closed()

    rejected = run(main())
    assert (rejected.result, rejected.source, rejected.reason) == (1, 1, 1)
    assert seen_by_hook == [b""]
    assert peer.connections == 1
    assert peer.received[0] == 0x01  # then the A-ASSOCIATE-RQ came
    assert b"HOOK-TEST" in peer.received


def test_a_client_hook_that_raises_vetoes_the_connection(
        pki: Pki, aio_log: pytest.LogCaptureFixture) -> None:
    """The client's hook may refuse the link it is shown (a certificate it does not
    like, say): what it raises reaches the caller as it is, no A-ASSOCIATE-RQ is
    sent, and the connection is closed (no ResourceWarning: warnings are errors
    here); the server sees a TLS connection closed before DICOM."""
    class Refused(Exception):
        pass

    def hook(event: SecureLinkEvent) -> None:
        raise Refused(f"not this server: {event.info.peer_certificate if event.info else None}")

    async def main() -> int:
        async with running_server(tls=pki.server_tls()) as server:
            with pytest.raises(Refused):
                async with associate(LOOPBACK, server.port, tls=pki.client_tls(),
                                     on_secure_link_ready=hook):
                    pass
            await wait_until(lambda: server.active_associations == 0 and not server._tasks,
                             "the server to see the connection end")
            return server.active_associations

    assert run(main()) == 0
    assert not log_lines(aio_log, contains="associated with")


def test_async_hooks_are_awaited(pki: Pki) -> None:
    calls: list[tuple[str, str | None]] = []

    async def record(event: SecureLinkEvent) -> None:
        await asyncio.sleep(0)
        calls.append((event.side, event.info.protocol if event.info else None))

    async def main() -> None:
        async with running_server(
            tls=pki.server_tls(), on_secure_link_ready=record
        ) as server, associate(
            LOOPBACK, server.port, tls=pki.client_tls(), on_secure_link_ready=record
        ) as assoc:
            assert int(await assoc.echo()) == 0

    run(main())
    assert sorted(calls) == [("client", "TLSv1.3"), ("server", "TLSv1.3")]


def test_a_server_hook_that_raises_costs_that_association_only(
    pki: Pki, aio_log: pytest.LogCaptureFixture,
) -> None:
    """The hook raises on its first call: that connection's association request is
    rejected (transient, no reason given: PS3.8 9.3.4), the error logged with its
    traceback, and the next connection served. (The transport was aborted, which
    the client read as "the server most likely refused our client certificate".)"""
    calls: list[SecureLinkEvent] = []

    def hook(event: SecureLinkEvent) -> None:
        calls.append(event)
        if len(calls) == 1:
            raise RuntimeError("the hook's own bug")

    async def main() -> tuple[AssociationRejected, int]:
        async with running_server(tls=pki.server_tls(), on_secure_link_ready=hook) as server:
            with pytest.raises(AssociationRejected) as caught:
                async with associate(LOOPBACK, server.port, tls=pki.client_tls()) as assoc:
                    await assoc.echo()
            async with associate(LOOPBACK, server.port, tls=pki.client_tls()) as assoc:
                return caught.value, int(await assoc.echo())

    rejected, status = run(main())
    assert (rejected.result, rejected.source, rejected.reason) == (2, 1, 1)
    assert status == 0
    [record] = [r for r in aio_log.records if "on_secure_link_ready hook raised" in r.getMessage()]
    assert record.exc_info is not None and "the hook's own bug" in str(record.exc_info[1])
    assert "will be rejected (transient)" in record.getMessage()
    assert not [r for r in aio_log.records if "failed before DICOM" in r.getMessage()]


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_an_association_request_hook_that_raises_rejects_that_association_only(
    aio_log: pytest.LogCaptureFixture, asynchronous: bool,
) -> None:
    """It aborted the association (A-ABORT, logged as the server's internal error);
    now the peer gets A-ASSOCIATE-RJ rejected-transient, service-user, no reason
    given, the traceback is logged, and other peers are served."""

    def decide(info: AssociationInfo) -> None:
        if info.calling_ae_title == "BUGGY":
            raise KeyError("no such row")

    async def decide_later(info: AssociationInfo) -> None:
        await asyncio.sleep(0)
        decide(info)

    async def main() -> tuple[AssociationRejected, int]:
        async with running_server(
                on_association_request=decide_later if asynchronous else decide) as server:
            with pytest.raises(AssociationRejected) as caught:
                async with associate(LOOPBACK, server.port, calling_ae_title="BUGGY"):
                    pass
            async with associate(LOOPBACK, server.port, calling_ae_title="FINE") as assoc:
                return caught.value, int(await assoc.echo())

    rejected, status = run(main())
    assert (rejected.result, rejected.source, rejected.reason) == (2, 1, 1)
    assert status == 0
    [record] = [r for r in aio_log.records
                if "on_association_request hook raised" in r.getMessage()]
    assert "BUGGY@127.0.0.1" in record.getMessage()
    assert record.exc_info is not None and isinstance(record.exc_info[1], KeyError)
    assert not [r for r in aio_log.records if "internal error" in r.getMessage()]


def test_an_association_request_hook_answers_a_rejection_by_name_or_as_a_tuple() -> None:
    """The hook answered a bare ``(1, 1, 3)``, the codes of PS3.8 Table 9-21 to be
    looked up; ``dicomnet.Rejection`` names them, and a tuple still works. The
    peer reads the result, source and reason it was answered."""
    from dicomnet import Rejection

    def decide(info: AssociationInfo) -> tuple[int, int, int] | None:
        if info.calling_ae_title == "STRANGER":
            return Rejection.CALLING_AE_TITLE_NOT_RECOGNIZED
        if info.called_ae_title != "DICOMNET-SCP":
            return Rejection.CALLED_AE_TITLE_NOT_RECOGNIZED
        if info.calling_ae_title == "BUSY":
            return Rejection(2, 3, 1)  # transient, presentation, temporary congestion
        if info.calling_ae_title == "OLD":
            return (2, 1, 1)
        return None

    async def main() -> tuple[list[tuple[int, int, int]], int]:
        answers = []
        async with running_server(on_association_request=decide) as server:
            for calling, called in (("STRANGER", "DICOMNET-SCP"), ("CT01", "ELSEWHERE"),
                                    ("BUSY", "DICOMNET-SCP"), ("OLD", "DICOMNET-SCP")):
                with pytest.raises(AssociationRejected) as caught:
                    async with associate(LOOPBACK, server.port, calling_ae_title=calling,
                                         called_ae_title=called):
                        pass
                answers.append((caught.value.result, caught.value.source, caught.value.reason))
            async with associate(LOOPBACK, server.port, calling_ae_title="CT01",
                                 called_ae_title="DICOMNET-SCP") as assoc:
                return answers, int(await assoc.echo())

    answers, status = run(main())
    assert answers == [(1, 1, 3), (1, 1, 7), (2, 3, 1), (2, 1, 1)]
    assert status == 0


def test_rejection_names_the_answers_of_table_9_21() -> None:
    from dicomnet import Rejection
    from dicomnet.ul import pdu

    assert Rejection.PERMANENT_NO_REASON == (1, 1, 1)
    assert Rejection.TRANSIENT_NO_REASON == (2, 1, 1)
    assert Rejection.CALLING_AE_TITLE_NOT_RECOGNIZED == (
        pdu.RJ_RESULT_PERMANENT, pdu.RJ_SOURCE_SERVICE_USER,
        pdu.RJ_REASON_CALLING_AE_NOT_RECOGNIZED) == (1, 1, 3)
    assert Rejection.CALLED_AE_TITLE_NOT_RECOGNIZED == (1, 1, 7)
    assert Rejection.TEMPORARY_CONGESTION == (2, 3, 1)
    assert Rejection.LOCAL_LIMIT_EXCEEDED == (2, 3, 2)
    rejection = Rejection(result=2, source=3, reason=2)
    assert (rejection.result, rejection.source, rejection.reason) == (2, 3, 2)
    assert repr(rejection) == "Rejection(result=2, source=3, reason=2)"
    assert str(AssociationRejected(*rejection)) == (
        "association rejected (rejected-transient) by service-provider (presentation): "
        "local limit exceeded")


def test_an_echo_hook_that_raises_answers_processing_failure(
    aio_log: pytest.LogCaptureFixture,
) -> None:
    """``on_c_echo`` raising aborted the association (the server's internal error);
    its C-ECHO is now answered 0110H, logged with the traceback, and the
    association goes on."""
    calls: list[int] = []

    def on_c_echo(assoc: ServerAssociation) -> int | None:
        calls.append(1)
        if len(calls) == 1:
            raise LookupError("the echo hook's own bug")
        return None

    async def main() -> list[int]:
        async with running_server(providers=[VerificationSCP(on_c_echo=on_c_echo)]) as server, \
                associate(LOOPBACK, server.port) as assoc:
            return [int(await assoc.echo()), int(await assoc.echo())]

    assert run(main()) == [0x0110, 0x0000]
    [record] = [r for r in aio_log.records if r.exc_info is not None]
    assert "on_c_echo handler failed" in record.getMessage()
    assert record.exc_info is not None and isinstance(record.exc_info[1], LookupError)


# -- failed handshakes --------------------------------------------------------------------


def test_hooks_report_a_client_certificate_refused_by_the_server(
    pki: Pki, aio_log: pytest.LogCaptureFixture
) -> None:
    """TLS 1.2, no client certificate: both sides' hooks run once, with the error."""
    server_hook = HookRecorder()
    client_hook = HookRecorder()

    async def main() -> TLSError:
        async with running_server(tls=pki.server_tls(profile=TLS12_ONLY),
                                  on_secure_link_ready=server_hook) as server:
            with pytest.raises(TLSError) as caught:
                async with associate(LOOPBACK, server.port, tls=TLSConfig(cafile=pki.ca_file),
                                     on_secure_link_ready=client_hook):
                    pass
            await wait_until(lambda: bool(server_hook.events), "the server's hook")
            return caught.value

    raised = run(main())
    assert len(server_hook.events) == 1
    server_event = server_hook.events[0]
    assert server_event.side == "server"
    assert server_event.info is None
    assert server_event.error is not None
    assert "the client presented no certificate" in server_event.error.reason
    assert len(client_hook.events) == 1
    client_event = client_hook.events[0]
    assert client_event.side == "client"
    assert client_event.info is None
    assert client_event.error is raised  # the hook sees the very error the caller gets


def test_client_hook_reports_an_untrusted_server(pki: Pki) -> None:
    client_hook = HookRecorder()
    cert, key = pki.self_signed("untrusted-server")

    async def main() -> TLSError:
        async with running_server(tls=pki.server_tls(certfile=cert, keyfile=key)) as server:
            with pytest.raises(TLSError) as caught:
                async with associate(LOOPBACK, server.port, tls=pki.client_tls(),
                                     on_secure_link_ready=client_hook):
                    pass
            return caught.value

    raised = run(main())
    assert [(e.side, e.info, e.error) for e in client_hook.events] == [("client", None, raised)]
    assert "self-signed" in raised.reason


def test_server_hook_reports_plain_dicom_on_the_tls_port(
    pki: Pki, aio_log: pytest.LogCaptureFixture
) -> None:
    server_hook = HookRecorder()

    async def main() -> None:
        async with running_server(tls=pki.server_tls(), on_secure_link_ready=server_hook) as srv:
            with pytest.raises(Exception, match="TLS"):
                async with associate(LOOPBACK, srv.port):
                    pass
            await wait_until(lambda: bool(server_hook.events), "the server's hook")

    run(main())
    assert len(server_hook.events) == 1
    event = server_hook.events[0]
    assert event.info is None
    assert event.error is not None
    assert "plain DICOM A-ASSOCIATE-RQ on a TLS port" in event.error.reason
    assert log_lines(aio_log, contains="plain DICOM A-ASSOCIATE-RQ on a TLS port")


# -- on_private_key_password ---------------------------------------------------------------

PASSWORD = "correct horse"


@dataclass
class PasswordSource:
    """Counts its calls; answers ``answer`` synchronously or asynchronously."""

    answer: str
    asynchronous: bool = False
    calls: int = 0

    def callback(self) -> Callable[[], str | Awaitable[str]]:
        def sync() -> str:
            self.calls += 1
            return self.answer

        async def asynchronous() -> str:
            self.calls += 1
            await asyncio.sleep(0)
            return self.answer

        return asynchronous if self.asynchronous else sync


@pytest.fixture
def encrypted(pki: Pki) -> tuple[tuple[str, str], tuple[str, str]]:
    """(server cert, key) and (client cert, key), keys encrypted with PASSWORD."""
    server = pki.issue("encrypted-server", client=False, password=PASSWORD)
    client = pki.issue("encrypted-client", server=False, password=PASSWORD)
    return (str(server[0]), str(server[1])), (str(client[0]), str(client[1]))


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_password_callback_unlocks_encrypted_keys(
    pki: Pki, encrypted: tuple[tuple[str, str], tuple[str, str]], asynchronous: bool
) -> None:
    (server_cert, server_key), (client_cert, client_key) = encrypted
    server_pw = PasswordSource(PASSWORD, asynchronous)
    client_pw = PasswordSource(PASSWORD, asynchronous)
    server_tls = pki.server_tls(certfile=server_cert, keyfile=server_key,
                                on_private_key_password=server_pw.callback())
    client_tls = pki.client_tls(certfile=client_cert, keyfile=client_key,
                                on_private_key_password=client_pw.callback())
    counts: list[tuple[int, int]] = []

    async def main() -> None:
        async with running_server(tls=server_tls) as server:
            counts.append((server_pw.calls, client_pw.calls))  # the server asked at start
            for _ in range(3):
                async with associate(LOOPBACK, server.port, tls=client_tls) as assoc:
                    assert int(await assoc.echo()) == 0
                    assert assoc.security is not None
                    assert assoc.security.peer_certificate is not None
                    assert assoc.security.peer_certificate.common_name == "encrypted-server"
                counts.append((server_pw.calls, client_pw.calls))

    run(main())
    # Once per context: the server's, built at start; the client's, built at its first
    # association and shared by the next ones made with the same TLSConfig.
    assert counts == [(1, 0), (1, 1), (1, 1), (1, 1)]


def test_password_callback_never_called_for_an_unencrypted_key(pki: Pki) -> None:
    server_pw = PasswordSource(PASSWORD)
    client_pw = PasswordSource(PASSWORD)

    async def main() -> None:
        async with running_server(
            tls=pki.server_tls(on_private_key_password=server_pw.callback())
        ) as server, associate(
            LOOPBACK, server.port,
            tls=pki.client_tls(on_private_key_password=client_pw.callback()),
        ) as assoc:
            assert int(await assoc.echo()) == 0

    run(main())
    assert (server_pw.calls, client_pw.calls) == (0, 0)


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_wrong_password_from_callback_is_a_clear_error(
    pki: Pki, encrypted: tuple[tuple[str, str], tuple[str, str]], asynchronous: bool
) -> None:
    (server_cert, server_key), (client_cert, client_key) = encrypted
    server_pw = PasswordSource("wrong", asynchronous)
    client_pw = PasswordSource("wrong", asynchronous)

    async def start_server() -> None:
        async with running_server(tls=pki.server_tls(
            certfile=server_cert, keyfile=server_key,
            on_private_key_password=server_pw.callback(),
        )):
            raise AssertionError("the server started with a wrong key password")

    with pytest.raises(ConfigurationError) as server_error:
        run(start_server())
    assert str(server_error.value) == f"wrong password for private key {server_key}"
    assert server_pw.calls == 1

    with socket.socket() as listener:  # the client must fail before connecting
        listener.bind((LOOPBACK, 0))
        listener.listen(1)
        listener.setblocking(False)

        async def connect() -> None:
            async with associate(LOOPBACK, listener.getsockname()[1], tls=pki.client_tls(
                certfile=client_cert, keyfile=client_key,
                on_private_key_password=client_pw.callback(),
            )):
                raise AssertionError("associated with a wrong key password")

        with pytest.raises(ConfigurationError) as client_error:
            run(connect())
        with pytest.raises(BlockingIOError):
            listener.accept()
    assert str(client_error.value) == f"wrong password for private key {client_key}"
    assert client_pw.calls == 1
