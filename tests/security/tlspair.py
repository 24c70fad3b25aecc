"""In-memory TLS handshakes: two ``ssl.SSLObject`` over ``MemoryBIO`` pairs, pumped by hand.

No sockets, no threads, no clocks: each round lets both ends run their
handshake step and moves the bytes each wrote to the other. Reusable by any
test that needs a client and a server context to meet::

    result = handshake(client_ctx, server_ctx, server_hostname="localhost")
    assert result.ok, result.errors
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field

__all__ = ["HandshakeResult", "handshake", "server_receives"]


@dataclass
class HandshakeResult:
    """Both ends after the exchange, and the exception each raised (if any)."""

    client: ssl.SSLObject
    server: ssl.SSLObject
    client_error: BaseException | None = None
    server_error: BaseException | None = None
    echoed: bytes = b""
    bytes_to_server: list[bytes] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Both handshakes finished and a message went both ways."""
        return self.client_error is None and self.server_error is None

    @property
    def errors(self) -> tuple[BaseException | None, BaseException | None]:
        """(client_error, server_error), for assertion messages."""
        return self.client_error, self.server_error


def _move(src: ssl.MemoryBIO, dst: ssl.MemoryBIO, log: list[bytes] | None = None) -> bool:
    data = src.read()
    if data:
        dst.write(data)
        if log is not None:
            log.append(data)
    return bool(data)


def _step(obj: ssl.SSLObject) -> tuple[bool, BaseException | None]:
    try:
        obj.do_handshake()
    except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
        return False, None
    except (ssl.SSLError, ValueError) as exc:
        return False, exc
    return True, None


def handshake(
    client_ctx: ssl.SSLContext,
    server_ctx: ssl.SSLContext,
    *,
    server_hostname: str | None = "localhost",
    max_rounds: int = 20,
    session: ssl.SSLSession | None = None,
) -> HandshakeResult:
    """Run a handshake between the two contexts, then send b"ping" and b"pong".

    The message exchange matters: with TLS 1.3 the client finishes its
    handshake before the server has checked the client's certificate, so a
    refusal by the server (an alert) only reaches the client on its first read.
    """
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(
        c_in, c_out, server_side=False, server_hostname=server_hostname, session=session
    )
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    result = HandshakeResult(client, server)
    c_done = s_done = False
    for _ in range(max_rounds):
        if not c_done and result.client_error is None:
            c_done, result.client_error = _step(client)
        moved = _move(c_out, s_in, result.bytes_to_server)
        if not s_done and result.server_error is None:
            s_done, result.server_error = _step(server)
        moved = _move(s_out, c_in) or moved
        settled_c = c_done or result.client_error is not None
        settled_s = s_done or result.server_error is not None
        if settled_c and settled_s and not moved:
            break
    else:  # pragma: no cover - a hang here is a bug in the test or the library
        raise AssertionError("handshake did not settle")

    if c_done and not s_done:
        # The server refused after the client finished (TLS 1.3): its alert
        # reaches the client on the client's first read.
        result.client_error = _read_error(client)
        return result
    if not (c_done and s_done):
        return result
    try:
        client.write(b"ping")
    except ssl.SSLError as exc:
        result.client_error = exc
        return result
    _move(c_out, s_in)
    try:
        server.write(server.read(1024) + b"/pong")
    except ssl.SSLError as exc:
        result.server_error = exc
    _move(s_out, c_in)
    try:
        result.echoed = client.read(1024)
    except ssl.SSLWantReadError:
        pass
    except ssl.SSLError as exc:
        result.client_error = exc
    return result


def _read_error(obj: ssl.SSLObject) -> BaseException | None:
    try:
        obj.read(1024)
    except ssl.SSLWantReadError:
        return None
    except ssl.SSLError as exc:
        return exc
    return None


def server_receives(server_ctx: ssl.SSLContext, data: bytes) -> BaseException | None:
    """Feed raw bytes (not from a TLS client) to a server; return what it raised, if anything."""
    s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    s_in.write(data)
    s_in.write_eof()
    try:
        server.do_handshake()
    except ssl.SSLError as exc:
        return exc
    return None
