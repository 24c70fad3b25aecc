"""--timeout T bounds every wait for the peer, in both roles: no wait on the
network may last a default's 120 s when the person asked for T.

A peer that sends half a PDU and stalls is the case in point: a server left
with it waited ``Timeouts.pdu`` (120 s) whatever --timeout said. Each test bounds
its own wait well above T and well below the defaults (no timing assertion
that a slow machine could fail), and checks the message the run ends with.
"""

from __future__ import annotations

import asyncio
import json
import re
import select
import signal
import socket
import struct
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from dicomnet.cli.common import NetworkOptions, _timeout_help
from dicomnet.config import Timeouts
from dicomnet.dimse.messages import CEchoRQ, CEchoRSP, CStoreRQ, encode_message
from dicomnet.ul.negotiation import ContextRequest, build_associate_rq
from dicomnet.ul.pdu import encode_pdata
from tests.aio.helpers import run, run_process
from tests.aio.rawscp import RawPeer, Request, raw_scp, response_pdu, store_response
from tests.storage.dicomfiles import SECONDARY_CAPTURE, make_image, write_part10

from .helpers import run_cli

VERIFICATION = "1.2.840.10008.1.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
#: Well above --timeout 1 on a loaded machine, well below the 120 s default.
BOUND = 30.0
#: A-ABORT (PS3.8 9.3.8): type 07, reserved, length 4, reserved x2, source 0
#: (service-user), reason 0 (not significant).
A_ABORT_BY_USER = bytes.fromhex("07 00 00000004 00 00 00 00")
DICOMNET = (sys.executable, "-m", "dicomnet.cli.main")
#: What a client says when the response is half sent: its DIMSE deadline and the
#: PDU's are both T, started a moment apart, so either may fire first.
GAVE_UP = re.compile(r"^error: (no response to message 1 within 1\.0s \(DIMSE timeout\)"
                     r"|association aborted by us \(A-ABORT sent: service-user\) - a PDU took "
                     r"longer than 1\.0s to arrive)", re.M)


def _options(role: Any, timeout: float | None) -> NetworkOptions:
    return NetworkOptions(
        role=role, aet="DICOMNET", called_aet="ANY-SCP", tls=False, cert=None, key=None,
        ca=None, crl=(), profile="bcp195-rfc9325", peer_cert="none", no_verify=False,
        server_name=None, ciphers=None, key_password_env=None, key_password_file=None,
        json=False, verbose=0, timeout=timeout)


@pytest.mark.parametrize("role", ["client", "server"])
def test_timeout_sets_every_wait_for_the_peer(role: str) -> None:
    """connect, handshake, ARTIM, ACSE, DIMSE and the rest of a PDU all get T; the
    idle and operation timeouts keep theirs (``serve`` has its own flags for them)."""
    assert _options(role, None).timeouts() is None
    assert _options(role, 2.5).timeouts() == Timeouts(
        connect=2.5, tls_handshake=2.5, artim=2.5, acse=2.5, dimse=2.5, pdu=2.5)


@pytest.mark.parametrize("role", ["client", "server"])
def test_timeout_help_names_each_default(role: str) -> None:
    """The help lists the default of every wait --timeout sets, the PDU's among them,
    and says which waits it leaves alone."""
    words = _timeout_help(role)  # type: ignore[arg-type]
    assert "120 s for the rest of a PDU once it has started" in words
    assert "(or the next one of a message in progress)" in words
    if role == "server":
        assert "30 s for the association request" in words
        assert "--idle-timeout" in words
        assert "--operation-timeout" in words
    else:
        assert "30 s to connect" in words
        assert "300 s" in words  # the idle timeout it leaves: the client's own pauses
    help_text = " ".join(run_cli("serve" if role == "server" else "echo", "--help")
                         .stdout.split())
    assert "120 s for the rest of a PDU" in help_text


def _recv_pdu(sock: socket.socket) -> bytes:
    head = b""
    while len(head) < 6:
        chunk = sock.recv(6 - len(head))
        assert chunk, "closed before a PDU"
        head += chunk
    (length,) = struct.unpack(">I", head[2:])
    body = b""
    while len(body) < length:
        chunk = sock.recv(length - len(body))
        assert chunk, "closed in a PDU"
        body += chunk
    return head + body


def _until_closed(sock: socket.socket) -> bytes:
    data = b""
    try:
        while chunk := sock.recv(4096):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def _drip(sock: socket.socket, wire: bytes) -> bytes:
    """Send ``wire`` one byte each 0.2 s until the server closes; what it sent.
    Fails after BOUND seconds of dripping."""
    end = time.monotonic() + BOUND
    for i in range(len(wire)):
        sock.sendall(wire[i:i + 1])
        readable, _, _ = select.select([sock], [], [], 0.2)
        if readable:
            return _until_closed(sock)
        assert time.monotonic() < end, f"still dripping after {BOUND} s"
    raise AssertionError("the server took the whole PDU")


@pytest.mark.parametrize("peer", ["stalls", "drips"])
def test_serve_gives_up_on_a_pdu_that_does_not_come(serve_process: Any, peer: str) -> None:
    """``serve --timeout 1``: a client that sends half a P-DATA-TF PDU and stalls,
    or one that drips a PDU a byte at a time (never idle: only the PDU deadline
    ends it), is aborted after about 1 s (A-ABORT, then the connection closed),
    not 120 s, and the association's end says why."""
    proc, started = serve_process("--timeout", "1")
    rq = build_associate_rq(calling_ae_title="DRIPPER", called_ae_title="DICOMNET",
                            contexts=[ContextRequest(VERIFICATION, (IMPLICIT_LE,))])
    pdu = encode_pdata(1, True, True, encode_message(
        CEchoRQ(message_id=1, affected_sop_class_uid=VERIFICATION)))
    with socket.create_connection(("127.0.0.1", started["port"]), timeout=BOUND) as sock:
        sock.sendall(rq.encode())
        assert _recv_pdu(sock)[0] == 0x02  # A-ASSOCIATE-AC
        began = time.monotonic()
        if peer == "stalls":
            sock.sendall(pdu[:len(pdu) // 2])
            # Before the fix: socket.timeout after BOUND s (the server waited 120 s).
            received = _until_closed(sock)
        else:
            # A command PDV announcing 4 KiB: at 5 bytes a second, 800 s to come whole.
            received = _drip(sock, encode_pdata(1, True, True, bytes(4090)))
        waited = time.monotonic() - began
    assert received == A_ABORT_BY_USER
    assert waited < BOUND
    ended, err = _aborted_by_the_server(proc)
    assert ended["reason"] == "a PDU took longer than 1.0s to arrive"
    assert "aborted (by us: a PDU took longer than 1.0s to arrive)" in err, err


def _aborted_by_the_server(proc: Any) -> tuple[dict[str, Any], str]:
    """``serve``, stopped by SIGTERM after its one association: that association's
    ``association_ended`` event, an A-ABORT of ours (not the peer's), and its stderr."""
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    ended = [e for e in map(json.loads, out.splitlines()) if e["event"] == "association_ended"]
    assert len(ended) == 1, out
    assert (ended[0]["how"], ended[0]["by"]) == ("aborted", "us")
    return ended[0], err


#: What ``serve --timeout 1`` says of a message that stopped between its PDUs.
STALLED = "a message in progress stopped between its PDUs: nothing more of it for 1.0s"


@pytest.mark.parametrize("where", ["command", "data set", "long data set"])
def test_serve_gives_up_on_a_message_that_stops_between_its_pdus(
        serve_process: Any, where: str) -> None:
    """``serve --timeout 1``: a client that sends whole PDUs of a message, a command
    PDV not marked last, or a C-STORE-RQ's command and the first PDU of its data
    set, then goes quiet, is aborted after about 1 s (the PDU deadline bounds the
    wait for a message's next PDU: once started it must keep coming), not at the
    idle timeout (300 s); the end says we aborted, and why. (A long data PDU is
    received in place, into the store's file: that path sees the PDU end.)"""
    proc, started = serve_process("--timeout", "1")
    rq = build_associate_rq(calling_ae_title="STALLER", called_ae_title="DICOMNET",
                            contexts=[ContextRequest(SECONDARY_CAPTURE, (EXPLICIT_LE,))])
    command = encode_message(CStoreRQ(message_id=1, affected_sop_class_uid=SECONDARY_CAPTURE,
                                      affected_sop_instance_uid="1.2.3.4"))
    if where == "command":
        wire = encode_pdata(1, True, False, command[:20])  # not marked last
    else:
        size = 1024 if where == "data set" else 200_000
        wire = (encode_pdata(1, True, True, command)
                + encode_pdata(1, False, False, bytes(size)))  # data set: not last
    with socket.create_connection(("127.0.0.1", started["port"]), timeout=BOUND) as sock:
        sock.sendall(rq.encode())
        assert _recv_pdu(sock)[0] == 0x02  # A-ASSOCIATE-AC
        began = time.monotonic()
        sock.sendall(wire)
        # Before the fix: socket.timeout after BOUND s (the server waited 300 s).
        received = _until_closed(sock)
        waited = time.monotonic() - began
    assert received == A_ABORT_BY_USER
    assert waited < BOUND
    ended, err = _aborted_by_the_server(proc)
    assert ended["reason"].startswith(STALLED), ended
    assert f"aborted (by us: {STALLED}" in err, err


async def _half_echo_response(peer: RawPeer, request: Request) -> None:
    assert isinstance(request.message, CEchoRQ)
    whole = response_pdu(request.context_id, CEchoRSP(
        message_id_being_responded_to=request.message.message_id, status=0,
        affected_sop_class_uid=VERIFICATION))
    await peer.send(whole[:len(whole) // 2])  # and nothing more


async def _half_store_response(peer: RawPeer, request: Request) -> None:
    whole = store_response(request, 0x0000)
    await peer.send(whole[:len(whole) // 2])


def test_echo_gives_up_on_a_response_half_sent() -> None:
    """``echo --timeout 1`` against a server that sends half its C-ECHO-RSP and
    stalls: exit 3 in about 1 s saying which deadline passed, the association
    aborted (the peer sees the A-ABORT). (The DIMSE deadline bounded this before
    --timeout set the PDU's; the two now race, hence either message.)"""
    async def main() -> tuple[int, str, float, str]:
        async with raw_scp(_half_echo_response) as (port, peers):
            began = time.monotonic()
            code, out = await run_process(*DICOMNET, "echo", "127.0.0.1", str(port),
                                          "--timeout", "1", timeout=BOUND)
            waited = time.monotonic() - began
            await asyncio.wait_for(peers[0].ended.wait(), 10)
            return code, out, waited, peers[0].ending

    code, out, waited, ending = run(main(), timeout=BOUND + 15)
    assert code == 3, out
    assert GAVE_UP.search(out), out
    assert waited < BOUND
    assert ending == "abort"


def test_store_gives_up_on_a_response_half_sent(tmp_path: Path) -> None:
    """``store --timeout 1``: a C-STORE-RSP half sent and stalled ends the run in
    about 1 s, the file reported not stored (exit 3: the association failed)."""
    path = write_part10(tmp_path / "one.dcm", make_image(1), EXPLICIT_LE)

    async def main() -> tuple[int, str, float]:
        async with raw_scp(_half_store_response,
                           contexts={SECONDARY_CAPTURE: [EXPLICIT_LE]}) as (port, _):
            began = time.monotonic()
            code, out = await run_process(*DICOMNET, "store", "127.0.0.1", str(port),
                                          str(path), "--timeout", "1", timeout=BOUND)
            return code, out, time.monotonic() - began

    code, out, waited = run(main(), timeout=BOUND + 15)
    assert code == 3, out
    assert GAVE_UP.search(out), out
    assert "1 file(s) sent and not answered" in out
    assert waited < BOUND
