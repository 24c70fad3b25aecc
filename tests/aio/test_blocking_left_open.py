"""The warning of a ``BlockingAssociation`` left unreleased says what happened:
"aborted" only when the finalizer sent the A-ABORT (PS3.8 7.3); one the peer
had ended meanwhile (its A-ABORT, its connection closed: read only now, as the
loop runs only during calls) is closed with nothing sent. It always said
"aborted", and sent an A-ABORT to a peer that had closed its side."""

from __future__ import annotations

import gc
import select
import socket
import struct
import threading
import warnings

import pytest

from dicomnet import blocking
from dicomnet.ul.negotiation import AcceptorPolicy, negotiate
from dicomnet.ul.pdu import AAbort, AssociateRQ, decode_pdu

from .helpers import LOOPBACK

VERIFICATION = "1.2.840.10008.1.1"
IMPLICIT_LE = "1.2.840.10008.1.2"


class _Peer:
    """An acceptor on a plain socket in a thread: accepts, then, once told, ends
    its side as ``ending`` says ("abort": A-ABORT then FIN; "close": FIN; "stay":
    nothing) and records every byte the client sends until it closes."""

    def __init__(self, ending: str) -> None:
        self.ending = ending
        self.listener = socket.create_server((LOOPBACK, 0))
        self.port: int = self.listener.getsockname()[1]
        self.go = threading.Event()
        self.received = bytearray()
        self.thread = threading.Thread(target=self._serve)
        self.thread.start()

    def _serve(self) -> None:
        self.listener.settimeout(20)
        conn, _ = self.listener.accept()
        with conn:
            conn.settimeout(20)
            head = conn.recv(6, socket.MSG_WAITALL)
            body = conn.recv(struct.unpack(">I", head[2:])[0], socket.MSG_WAITALL)
            rq = decode_pdu(head + body)
            assert isinstance(rq, AssociateRQ)
            conn.sendall(negotiate(rq, AcceptorPolicy(contexts={VERIFICATION: [IMPLICIT_LE]}))
                         .encode())
            assert self.go.wait(20)
            if self.ending == "abort":
                conn.sendall(AAbort(source=0, reason=0).encode())
            if self.ending != "stay":
                conn.shutdown(socket.SHUT_WR)
            try:
                while chunk := conn.recv(65536):
                    self.received += chunk
            except ConnectionResetError:
                pass

    def close(self) -> None:
        self.go.set()
        self.thread.join(30)
        self.listener.close()


@pytest.mark.parametrize(("ending", "words", "sent"), [
    ("abort", "closed, nothing sent (aborted by the peer, its A-ABORT: service-user)", b""),
    ("close", "closed, nothing sent (the transport connection closed)", b""),
    ("stay", "aborted", AAbort(source=0, reason=0).encode()),
])
def test_the_warning_of_an_association_left_open_says_what_happened(
        ending: str, words: str, sent: bytes) -> None:
    peer = _Peer(ending)
    try:
        assoc = blocking.associate(LOOPBACK, peer.port)
        sock = assoc._assoc.stream.writer.get_extra_info("socket")
        peer.go.set()
        if ending != "stay":  # its bytes, or its end, have reached us
            assert select.select([sock], [], [], 20)[0]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            del assoc
            gc.collect()
    finally:
        peer.close()
    messages = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert messages == [f"association with {LOOPBACK}:{peer.port} was not released: {words}"]
    assert bytes(peer.received) == sent
