"""TLS session resumption (RFC 8446 2.2, RFC 5077).

Associations made with one TLSConfig object resume the session of the last
association that ended with an A-RELEASE to the same host, port and server name. What the client
offers is read from its ClientHello by :class:`HelloRelay`, a TCP relay in front of
the dicomnet server that parses it (RFC 8446 4.1.2): a ``pre_shared_key`` extension
(TLS 1.3) or a non-empty ``session_ticket`` extension (TLS 1.2) is a session offered.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import pytest

from dicomnet import blocking
from dicomnet.aio.client import associate
from dicomnet.errors import TLSError
from dicomnet.security.certificates import CertificateInfo
from dicomnet.security.config import TLSConfig
from dicomnet.security.info import SecurityInfo
from dicomnet.security.profiles import SecurityWarning
from tests.aio.helpers import (
    LOOPBACK,
    HookRecorder,
    Pki,
    association_lines,
    log_lines,
    run,
    running_server,
)

TLS13 = "bcp195-rfc9325"  # PS3.15 B.12: TLS 1.3 negotiated between dicomnet ends
TLS12 = "bcp195-extended"  # PS3.15 B.11: TLS 1.2 only
profiles = pytest.mark.parametrize(
    ("profile", "protocol"), [(TLS13, "TLSv1.3"), (TLS12, "TLSv1.2")], ids=["tls13", "tls12"])

_PRE_SHARED_KEY = 41  # RFC 8446 4.2, extension type
_SESSION_TICKET = 35  # RFC 5077 3.2
_SERVER_NAME = 0  # RFC 6066 3


@dataclass
class Hello:
    """What one ClientHello offered."""

    session: bool
    sni: str | None


def parse_client_hello(record: bytes) -> Hello:
    """The offer in a TLS record holding a whole ClientHello (RFC 8446 4.1.2)."""
    assert record[0] == 22 and record[5] == 1, "not a ClientHello record"
    pos = 5 + 4 + 2 + 32  # record header, handshake header, legacy_version, random
    pos += 1 + record[pos]  # legacy_session_id
    pos += 2 + int.from_bytes(record[pos:pos + 2], "big")  # cipher_suites
    pos += 1 + record[pos]  # legacy_compression_methods
    end = pos + 2 + int.from_bytes(record[pos:pos + 2], "big")
    pos += 2
    session, sni = False, None
    while pos < end:
        kind = int.from_bytes(record[pos:pos + 2], "big")
        size = int.from_bytes(record[pos + 2:pos + 4], "big")
        data = record[pos + 4:pos + 4 + size]
        if kind == _PRE_SHARED_KEY or (kind == _SESSION_TICKET and size > 0):
            session = True
        elif kind == _SERVER_NAME:
            sni = data[5:].decode()  # list length (2), type (1), name length (2)
        pos += 4 + size
    return Hello(session, sni)


@dataclass
class HelloRelay:
    """A relay on loopback to ``target`` that records each ClientHello's offer; with
    ``refuse_resumption``, it resets every connection that offers a session (as a
    server failing on resumption would)."""

    target: int
    refuse_resumption: bool = False
    hellos: list[Hello] = field(default_factory=list)
    port: int = 0
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        header = await reader.readexactly(5)
        record = header + await reader.readexactly(int.from_bytes(header[3:], "big"))
        hello = parse_client_hello(record)
        self.hellos.append(hello)
        if hello.session and self.refuse_resumption:
            writer.transport.abort()
            return
        up_reader, up_writer = await asyncio.open_connection(LOOPBACK, self.target)
        up_writer.write(record)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await src.read(1 << 16):
                    dst.write(data)
                    await dst.drain()
            if not dst.transport.is_closing():
                dst.close()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[HelloRelay]:
        server = await asyncio.start_server(self._relay, LOOPBACK, 0)
        self.port = server.sockets[0].getsockname()[1]
        try:
            yield self
        finally:
            server.close()
            # Each relay ends when both of its ends closed; one that does not is a bug.
            if self._tasks:
                _, stuck = await asyncio.wait(self._tasks, timeout=5)
                assert not stuck, "a relayed connection did not end"
            await server.wait_closed()

    @property
    def offered(self) -> list[bool]:
        return [h.session for h in self.hellos]


async def echo_through(port: int, tls: TLSConfig, host: str = LOOPBACK) -> SecurityInfo:
    """One association (C-ECHO, A-RELEASE); what the client's TLS negotiated."""
    async with associate(host, port, tls=tls) as assoc:
        assert int(await assoc.echo()) == 0
        assert assoc.security is not None
        return assoc.security


def resumed(infos: Sequence[SecurityInfo | None]) -> list[bool]:
    flags: list[bool] = []
    for info in infos:
        assert info is not None
        flags.append(info.session_resumed)
    return flags


# -- resumption between dicomnet ends ---------------------------------------------------


@profiles
def test_the_second_association_resumes_the_first_session(
    pki: Pki, aio_log: pytest.LogCaptureFixture, profile: str, protocol: str
) -> None:
    server_hook = HookRecorder()
    client_tls = pki.client_tls(profile=profile)

    async def main() -> tuple[list[SecurityInfo], list[bool]]:
        async with running_server(tls=pki.server_tls(profile=profile),
                                  on_secure_link_ready=server_hook) as server, \
                HelloRelay(server.port).running() as relay:
            infos = [await echo_through(relay.port, client_tls) for _ in range(3)]
            return infos, relay.offered

    clients, offered = run(main())
    servers = [e.info for e in server_hook.events]
    assert offered == [False, True, True]
    assert resumed(servers) == resumed(list(clients)) == [False, True, True]
    for client, server in zip(clients, servers, strict=True):
        assert server is not None
        assert client.protocol == server.protocol == protocol
        # A resumed session still names each end's certificate (kept in the session).
        assert client.peer_certificate is not None
        assert client.peer_certificate.subject == pki.server_subject
        assert server.peer_certificate is not None
        assert server.peer_certificate.subject == pki.client_subject
    lines = association_lines(aio_log)
    assert ["TLS session resumed" in line for line in lines] == [False, True, True]
    assert "client certificate dicomnet test client" in lines[2]
    said = log_lines(aio_log, contains="associated with")
    assert [line.endswith(f"{protocol} {clients[0].cipher_suite}, TLS session resumed)")
            for line in said] == [False, True, True]


def test_a_session_is_offered_to_no_other_server_name(pki: Pki) -> None:
    """127.0.0.1 and localhost reach the same server, which would resume either's
    session: each name gets only its own."""
    tls = pki.client_tls()

    async def main() -> tuple[list[SecurityInfo], list[Hello]]:
        async with running_server(tls=pki.server_tls()) as server, \
                HelloRelay(server.port).running() as relay:
            infos = [await echo_through(relay.port, tls, host)
                     for host in (LOOPBACK, "localhost", "localhost", LOOPBACK)]
            return infos, relay.hellos

    infos, hellos = run(main())
    assert [(h.sni, h.session) for h in hellos] == [
        (None, False), ("localhost", False), ("localhost", True), (None, True)]
    assert resumed(list(infos)) == [False, False, True, True]


def test_only_a_released_association_leaves_a_session_for_its_own_config(pki: Pki) -> None:
    """An aborted association keeps no session (only an A-RELEASE does), and another
    TLSConfig object, here one expecting another name in the certificate, never
    gets this one's."""
    tls = pki.client_tls(server_hostname="localhost")

    async def main() -> list[bool]:
        async with running_server(tls=pki.server_tls()) as server, \
                HelloRelay(server.port).running() as relay:
            async with associate(LOOPBACK, relay.port, tls=tls) as assoc:
                await assoc.abort()
            await echo_through(relay.port, tls)
            await echo_through(relay.port, tls)
            await echo_through(relay.port, pki.client_tls(server_hostname=LOOPBACK))
            return relay.offered

    assert run(main()) == [False, False, True, False]


def two_associations(pki: Pki, tls: TLSConfig, server_tls: TLSConfig | None = None
                     ) -> tuple[list[SecurityInfo], list[bool]]:
    """Two associations made with ``tls`` through a HelloRelay: what each negotiated,
    and whether each ClientHello offered a session."""
    async def main() -> tuple[list[SecurityInfo], list[bool]]:
        async with running_server(tls=server_tls or pki.server_tls()) as server, \
                HelloRelay(server.port).running() as relay:
            infos = [await echo_through(relay.port, tls) for _ in range(2)]
            return infos, relay.offered

    return run(main())


def test_no_session_is_kept_from_an_unverified_server(pki: Pki) -> None:
    """verify_peer=False: resuming would carry on a link nobody verified."""
    with pytest.warns(SecurityWarning, match="verification is OFF"):
        infos, offered = two_associations(pki, pki.client_tls(verify_peer=False))
    assert offered == [False, False]
    assert resumed(infos) == [False, False]


def test_resumption_off_on_the_client(pki: Pki) -> None:
    infos, offered = two_associations(pki, pki.client_tls(session_resumption=False))
    assert offered == [False, False]
    assert resumed(infos) == [False, False]


def test_resumption_off_on_a_tls13_server(pki: Pki) -> None:
    """A server with session_resumption=False sends no ticket: a TLS 1.3 client has
    nothing to offer."""
    infos, offered = two_associations(pki, pki.client_tls(),
                                      pki.server_tls(session_resumption=False))
    assert offered == [False, False]
    assert resumed(infos) == [False, False]
    assert infos[1].protocol == "TLSv1.3"


def test_a_peer_failing_on_resumption_gets_full_handshakes(
    pki: Pki, aio_log: pytest.LogCaptureFixture
) -> None:
    """A server that fails the handshake offering a session: the association is made
    all the same (one more connection, full handshake), and no session is offered
    there again."""
    tls = pki.client_tls()
    hook = HookRecorder()

    async def main() -> tuple[list[SecurityInfo], list[bool]]:
        async with running_server(tls=pki.server_tls()) as server, \
                HelloRelay(server.port, refuse_resumption=True).running() as relay:
            infos = []
            for _ in range(3):
                async with associate(LOOPBACK, relay.port, tls=tls,
                                     on_secure_link_ready=hook) as assoc:
                    assert int(await assoc.echo()) == 0
                    assert assoc.security is not None
                    infos.append(assoc.security)
            return infos, relay.offered

    infos, offered = run(main())
    assert offered == [False, True, False, False]
    assert resumed(list(infos)) == [False, False, False]
    assert [e.error for e in hook.events] == [None, None, None]  # the failure is no event
    failed = log_lines(aio_log, contains="offering a session to resume failed")
    assert len(failed) == 1
    assert failed[0].startswith(f"TLS handshake with {LOOPBACK}:")


def test_a_session_refused_after_the_handshake_is_dropped(pki: Pki) -> None:
    """verify_callback refusing the server on a resumed link: that session is not
    offered again, the next association makes a new one."""
    calls: list[str] = []

    def verify(cert: CertificateInfo, depth: int) -> bool:
        calls.append(cert.subject)
        return len(calls) != 2

    tls = pki.client_tls(verify_callback=verify)

    async def main() -> tuple[list[bool], str]:
        async with running_server(tls=pki.server_tls()) as server, \
                HelloRelay(server.port).running() as relay:
            await echo_through(relay.port, tls)
            with pytest.raises(TLSError) as refused:
                await echo_through(relay.port, tls)
            await echo_through(relay.port, tls)
            await echo_through(relay.port, tls)
            return relay.offered, refused.value.reason

    offered, reason = run(main())
    assert offered == [False, True, False, True]
    assert reason.startswith("verify_callback refused the peer's certificate")
    # The callback saw the server's certificate on the resumed links too.
    assert calls == [pki.server_subject] * 4


# -- the blocking facade -------------------------------------------------------------------


def test_the_blocking_api_resumes_too(pki: Pki) -> None:
    """Each blocking association runs on an event loop of its own: the context and
    the session live in the TLSConfig, not in a loop."""
    tls = pki.client_tls()

    def client(port: int) -> list[bool]:
        flags = []
        for _ in range(3):
            with blocking.associate(LOOPBACK, port, tls=tls) as assoc:
                assert int(assoc.echo()) == 0
                assert assoc.security is not None
                flags.append(assoc.security.session_resumed)
        return flags

    async def main() -> list[bool]:
        async with running_server(tls=pki.server_tls()) as server:
            return await asyncio.to_thread(client, server.port)

    assert run(main()) == [False, True, True]
