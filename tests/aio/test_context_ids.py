"""Presentation context IDs that break PS3.8: each is an odd integer from 1 to 255
(9.3.2.2, 9.3.3.2), unused by the other contexts of the request (7.1.1.13), and
the A-ASSOCIATE-AC answers each proposed context once (7.1.1.14).

A request that breaks this cannot be answered in a valid A-ASSOCIATE-AC (one
with an ID twice cannot say which proposal an answer is for; an even ID is not
allowed in an AC either), and A-ASSOCIATE-RJ has no reason for a malformed
request (PS3.8 9.3.4): it is an invalid PDU (Evt19), answered in Sta2 with an
A-ABORT (AA-1) and logged in one line. An AC that breaks it is an invalid PDU
too, for the requestor (Sta5: AA-8, A-ABORT with reason 6, invalid PDU
parameter value)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

import pytest

from dicomnet.aio.client import associate
from dicomnet.errors import AssociationAborted
from dicomnet.services.verification import VerificationSCP
from dicomnet.ul.negotiation import AcceptorPolicy, ContextRequest, build_associate_rq, negotiate
from dicomnet.ul.pdu import AAbort, AssociateAC, AssociateRQ, decode_pdu
from tests.aio.helpers import LOOPBACK, log_lines, read_until_eof, run, running_server, wait_until

VERIFICATION = "1.2.840.10008.1.1"
CT = "1.2.840.10008.5.1.4.1.1.2"
IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
CONTEXTS = [ContextRequest(VERIFICATION, (IMPLICIT_LE,)),
            ContextRequest(CT, (EXPLICIT_LE,))]
RQ = build_associate_rq(calling_ae_title="ODD", called_ae_title="DICOMNET-SCP",
                        contexts=CONTEXTS).encode()


def with_context_id(pdu: bytes, old: int, new: int, item_type: int) -> bytes:
    """``pdu`` with presentation context item ``old`` (of ``item_type``: 0x20 in a
    request, 0x21 in an AC) renumbered ``new``."""
    at = 6 + 68  # header, then the A-ASSOCIATE fixed fields
    while at < len(pdu):
        length = int.from_bytes(pdu[at + 2:at + 4], "big")
        if pdu[at] == item_type and pdu[at + 4] == old:
            return pdu[:at + 4] + bytes([new]) + pdu[at + 5:]
        at += 4 + length
    raise AssertionError(f"no context {old}")


BAD_REQUESTS = {
    "the same ID twice": (with_context_id(RQ, 3, 1, 0x20),
                          "presentation context ID 1 is used twice"),
    "an even ID": (with_context_id(RQ, 3, 4, 0x20),
                   "presentation context ID 4 is not an odd number"),
    "ID 0": (with_context_id(RQ, 1, 0, 0x20), "presentation context ID 0 is not an odd number"),
}


@pytest.mark.parametrize("case", BAD_REQUESTS)
def test_a_request_with_invalid_context_ids_is_aborted_logged_and_the_server_serves_on(
        aio_log: pytest.LogCaptureFixture, case: str) -> None:
    data, reason = BAD_REQUESTS[case]

    async def main() -> tuple[bytes, int]:
        async with running_server(providers=[VerificationSCP()]) as server:
            reader, writer = await asyncio.open_connection(LOOPBACK, server.port)
            writer.write(data)
            try:
                received = await reader.readexactly(10)
            finally:
                writer.close()
            await read_until_eof(reader, 10.0)
            await wait_until(lambda: not server._tasks, "the server to end the connection")
            async with associate(LOOPBACK, server.port,
                                 called_ae_title="DICOMNET-SCP") as assoc:
                status = int(await assoc.echo())
            return received, status

    received, status = run(main())
    assert received == AAbort(source=0, reason=0).encode()  # PS3.8 AA-1
    [line] = log_lines(aio_log, level=logging.WARNING, contains="connection refused")
    assert reason in line and "A-ABORT sent" in line, line
    assert status == 0  # the next peer is served


def test_the_pdu_codec_refuses_invalid_context_ids() -> None:
    for data, reason in BAD_REQUESTS.values():
        with pytest.raises(Exception, match=reason) as info:
            decode_pdu(data)
        assert getattr(info.value, "abort_reason", None) == 6  # invalid PDU parameter value


# -- the requestor's side ---------------------------------------------------------


@contextlib.asynccontextmanager
async def acceptor(answer: Callable[[AssociateRQ], bytes]) -> AsyncIterator[
        tuple[int, list[bytes]]]:
    """A server on 127.0.0.1 (port 0) that answers an A-ASSOCIATE-RQ with the bytes
    ``answer`` makes of it, then records what the client sends until it closes."""
    received: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readexactly(6)
            body = await reader.readexactly(int.from_bytes(head[2:], "big"))
            rq = decode_pdu(head + body)
            assert isinstance(rq, AssociateRQ)
            writer.write(answer(rq))
            await writer.drain()
            received.append(await read_until_eof(reader, 10.0))
        finally:
            writer.close()

    server = await asyncio.start_server(serve, LOOPBACK, 0)
    try:
        yield server.sockets[0].getsockname()[1], received
    finally:
        server.close()
        await server.wait_closed()


def ac_for(rq: AssociateRQ) -> AssociateAC:
    return negotiate(rq, AcceptorPolicy(contexts={VERIFICATION: None, CT: None}))


BAD_ANSWERS: dict[str, tuple[Callable[[AssociateRQ], bytes], str]] = {
    "an ID never proposed": (
        lambda rq: AssociateAC(
            "DICOMNET-SCP", "ODD", ac_for(rq).application_context_name,
            (*ac_for(rq).presentation_contexts,
             type(ac_for(rq).presentation_contexts[0])(7, 0, IMPLICIT_LE)),
            ac_for(rq).user_information).encode(),
        "presentation context 7, which was not proposed"),
    "the same ID twice": (
        lambda rq: with_context_id(ac_for(rq).encode(), 3, 1, 0x21),
        "presentation context ID 1 is used twice"),
}


@pytest.mark.parametrize("case", BAD_ANSWERS)
def test_the_client_aborts_an_ac_with_invalid_context_ids(case: str) -> None:
    answer, reason = BAD_ANSWERS[case]

    async def main() -> tuple[AssociationAborted, list[bytes]]:
        async with acceptor(answer) as (port, received):
            with pytest.raises(AssociationAborted) as info:
                async with associate(LOOPBACK, port, contexts=CONTEXTS,
                                     calling_ae_title="ODD",
                                     called_ae_title="DICOMNET-SCP") as assoc:
                    await assoc.echo()
            await wait_until(lambda: bool(received), "the client to close")
        return info.value, received

    error, received = run(main())
    assert reason in str(error), error
    # PS3.8 AA-8: A-ABORT, service-provider source, invalid PDU parameter value.
    assert received == [AAbort(source=2, reason=6).encode()]


def test_the_client_warns_of_an_ac_that_leaves_a_context_unanswered(
        caplog: pytest.LogCaptureFixture) -> None:
    """PS3.8 7.1.1.14 wants one result per proposed context; an AC answering only the
    Verification context is taken all the same (peers do this), the CT context as
    not accepted, and said once, at WARNING, with its ID and abstract syntax.
    Before, only "1 of 2 contexts accepted" at INFO, and no refusal to explain it."""
    caplog.set_level(logging.INFO, logger="dicomnet.aio")

    def answer(rq: AssociateRQ) -> bytes:
        ac = ac_for(rq)
        return AssociateAC("DICOMNET-SCP", "ODD", ac.application_context_name,
                           ac.presentation_contexts[:1], ac.user_information).encode()

    async def main() -> tuple[list[int], dict[str, int], int]:
        async with acceptor(answer) as (port, _), associate(
                LOOPBACK, port, contexts=CONTEXTS, calling_ae_title="ODD",
                called_ae_title="DICOMNET-SCP") as assoc:
            await assoc.abort()  # this acceptor answers no A-RELEASE-RQ
            return sorted(assoc.contexts), assoc.refused, port

    contexts, refused, port = run(main())
    assert contexts == [1]
    assert refused == {}
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [(r.name, r.levelno, r.getMessage()) for r in warnings] == [(
        "dicomnet.aio", logging.WARNING,
        f"{LOOPBACK}:{port}: the A-ASSOCIATE-AC leaves presentation context 3 ({CT}) "
        "unanswered (PS3.8 7.1.1.14 wants a result for each proposed): taken as not "
        "accepted")]
