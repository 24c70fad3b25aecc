"""C-ECHO through our own client and server, plain and TLS, and the server's defences:
ARTIM, the association limit and the whole-PDU deadline against a dripping peer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re

import pytest

from dicomnet.aio.client import associate
from dicomnet.config import Limits, Timeouts
from dicomnet.errors import AssociationRejected, ConfigurationError
from dicomnet.security.info import SecurityInfo
from dicomnet.ul.negotiation import ContextRequest, build_associate_rq
from dicomnet.ul.pdu import AssociateRJ, decode_pdu
from tests.aio.helpers import (
    LOOPBACK,
    Pki,
    PkiFactory,
    association_lines,
    log_lines,
    read_until_eof,
    run,
    running_server,
    wait_until,
)
from tests.storage.rawscu import read_pdu

VERIFICATION = "1.2.840.10008.1.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
A_ABORT = 0x07


def test_plain_echo(aio_log: pytest.LogCaptureFixture) -> None:
    async def main() -> tuple[int, SecurityInfo | None, int]:
        async with running_server(ae_title="ECHO-SCP") as server:
            async with associate(LOOPBACK, server.port, calling_ae_title="ECHO-SCU",
                                 called_ae_title="ECHO-SCP") as assoc:
                status = int(await assoc.echo())
                security = assoc.security
                during = server.active_associations
            await wait_until(lambda: bool(association_lines(aio_log)), "the association line")
            return status, security, during

    status, security, during = run(main())
    assert status == 0
    assert security is None
    assert during == 1
    lines = association_lines(aio_log)
    assert len(lines) == 1
    assert re.fullmatch(r"association ECHO-SCU@127\.0\.0\.1:\d+ -> ECHO-SCP: released, "
                        r"1 message\(s\) \(1 success\), \d+\.\d\d s", lines[0]), lines[0]


@pytest.mark.parametrize("key_type", ["rsa", "ecdsa"])
def test_tls_echo(pkis: PkiFactory, aio_log: pytest.LogCaptureFixture, key_type: str) -> None:
    pki = pkis(key_type)  # type: ignore[arg-type]

    async def main() -> tuple[list[int], SecurityInfo | None]:
        async with running_server(tls=pki.server_tls()) as server:
            async with associate(LOOPBACK, server.port, tls=pki.client_tls()) as assoc:
                statuses = [int(await assoc.echo()) for _ in range(3)]
                security = assoc.security
            await wait_until(lambda: bool(association_lines(aio_log)), "the association line")
            return statuses, security

    statuses, security = run(main())
    assert statuses == [0, 0, 0]
    assert security is not None
    assert security.protocol == "TLSv1.3"
    assert security.authentication == key_type.upper()
    lines = association_lines(aio_log)
    assert len(lines) == 1
    assert re.fullmatch(rf"association DICOMNET@127\.0\.0\.1:\d+ -> ANY-SCP: released, "
                        r"3 message\(s\) \(3 success\), \d+\.\d\d s, "
                        rf"TLSv1\.3 {security.cipher_suite}, client certificate "
                        r"dicomnet test client \(SHA-256 [0-9A-F:]{95}\)", lines[0]), lines[0]


# -- ARTIM ------------------------------------------------------------------------------


async def silent_client_is_dropped(timeouts: Timeouts, bound: float) -> bytes:
    """Connect to a plain server, send nothing, and return what arrives until EOF."""
    async with running_server(timeouts=timeouts) as server:
        reader, writer = await asyncio.open_connection(LOOPBACK, server.port)
        try:
            return await read_until_eof(reader, bound)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


def test_artim_drops_a_silent_client_once_the_first_byte_wait_is_short(
    aio_log: pytest.LogCaptureFixture,
) -> None:
    """ARTIM (PS3.8 9.1.5) closes a connection that sends no A-ASSOCIATE-RQ."""
    received = run(silent_client_is_dropped(Timeouts(artim=0.5, tls_handshake=0.5), 5.0))
    assert received == b""  # closed without a word: no association to abort
    assert log_lines(aio_log, contains="ARTIM expired in Sta2")
    assert association_lines(aio_log) == []


def test_artim_drops_a_silent_client_on_a_plain_server(aio_log: pytest.LogCaptureFixture) -> None:
    received = run(silent_client_is_dropped(Timeouts(artim=0.5), 3.0))
    assert received == b""
    assert log_lines(aio_log, contains="ARTIM expired")


# -- association limit ----------------------------------------------------------------------


def test_max_associations_rejects_the_second(aio_log: pytest.LogCaptureFixture) -> None:
    async def main() -> tuple[AssociationRejected, int, int]:
        async with running_server(limits=Limits(max_associations=1)) as server:
            async with associate(LOOPBACK, server.port, calling_ae_title="FIRST") as first:
                with pytest.raises(AssociationRejected) as caught:
                    async with associate(LOOPBACK, server.port, calling_ae_title="SECOND"):
                        pass
                status = int(await first.echo())  # the first one is unaffected
                during = server.active_associations
            return caught.value, status, during

    rejected, status, during = run(main())
    assert (rejected.result, rejected.source, rejected.reason) == (2, 3, 2)
    assert "rejected-transient" in str(rejected)
    assert "local limit exceeded" in str(rejected)
    assert status == 0
    assert during == 1
    assert log_lines(aio_log, level=logging.INFO, contains="SECOND@127.0.0.1")
    assert log_lines(aio_log, contains="rejected (rejected-transient) by service-provider "
                     "(presentation): local limit exceeded (2, 3, 2)")
    # One line for the rejected one: no "association SECOND@... -> ...: closed" after it.
    assert [line for line in association_lines(aio_log) if "SECOND@" in line] == [
        line for line in association_lines(aio_log) if "SECOND@" in line and "rejected" in line]


async def _answer_from(port: int, source: str) -> tuple[object, asyncio.StreamWriter]:
    """The server's answer to a Verification A-ASSOCIATE-RQ sent from ``source`` (a
    loopback address: Linux routes all of 127/8 to lo), and the connection, left
    open: an association held."""
    rq = build_associate_rq(calling_ae_title=source.replace(".", "-"),
                            called_ae_title="DICOMNET-SCP",
                            contexts=[ContextRequest(VERIFICATION, (IMPLICIT_LE,))],
                            max_pdu_length=16384)
    reader, writer = await asyncio.open_connection(LOOPBACK, port, local_addr=(source, 0))
    writer.write(rq.encode())
    await writer.drain()
    return decode_pdu(await read_pdu(reader)), writer


def test_max_associations_per_host(aio_log: pytest.LogCaptureFixture) -> None:
    """Limits.max_associations_per_host: a third association from 127.0.0.1 is
    rejected (transient, local limit), one from 127.0.0.2 is not, and a slot freed
    on 127.0.0.1 is counted back."""
    async def main() -> list[object]:
        answers, held = [], []
        async with running_server(limits=Limits(max_associations=8,
                                                max_associations_per_host=2)) as server:
            try:
                for source in ("127.0.0.1", "127.0.0.1", "127.0.0.1", "127.0.0.2"):
                    answer, writer = await _answer_from(server.port, source)
                    answers.append(answer)
                    held.append(writer)
                held[0].close()  # no release: the server sees the connection end
                await wait_until(lambda: server.active_associations == 2, "the slot freed")
                answer, writer = await _answer_from(server.port, "127.0.0.1")
                answers.append(answer)
                held.append(writer)
            finally:
                for writer in held:
                    writer.close()
        return answers

    answers = run(main())
    assert [type(a).__name__ for a in answers] == [
        "AssociateAC", "AssociateAC", "AssociateRJ", "AssociateAC", "AssociateAC"]
    rj = answers[2]
    assert isinstance(rj, AssociateRJ)
    assert (rj.result, rj.source, rj.reason) == (2, 3, 2)
    assert log_lines(aio_log, contains="local limit exceeded (2, 3, 2): 2 associations at "
                     "once from 127.0.0.1 (max_associations_per_host)")


def test_max_associations_per_host_is_checked() -> None:
    with pytest.raises(ConfigurationError, match="max_associations_per_host"):
        Limits(max_associations_per_host=0)


# -- a peer dripping its A-ASSOCIATE-RQ -----------------------------------------------------


def test_dripping_associate_rq_is_cut_by_the_pdu_deadline(
    aio_log: pytest.LogCaptureFixture,
) -> None:
    """One byte every 50 ms: the ~200-byte RQ would take ~10 s; Timeouts(pdu=0.5) must
    end it (ARTIM, 30 s here, must not be what does)."""
    rq = build_associate_rq(
        calling_ae_title="DRIPPER", called_ae_title="DICOMNET-SCP",
        contexts=[ContextRequest(VERIFICATION, (IMPLICIT_LE,))], max_pdu_length=16384,
    ).encode()

    async def main() -> tuple[bytes, int, int]:
        async with running_server(timeouts=Timeouts(pdu=0.5, artim=30.0)) as server:
            reader, writer = await asyncio.open_connection(LOOPBACK, server.port)
            sent = 0

            async def drip() -> None:
                nonlocal sent
                for byte in rq:
                    writer.write(bytes([byte]))
                    await writer.drain()
                    sent += 1
                    await asyncio.sleep(0.05)  # pacing the peer, not synchronisation

            dripper = asyncio.create_task(drip())
            try:
                received = await read_until_eof(reader, 5.0)
            finally:
                dripper.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                    await dripper
                writer.close()
                with contextlib.suppress(ConnectionError):
                    await writer.wait_closed()
            return received, sent, server.active_associations

    received, sent, active = run(main())
    assert 0 < sent < len(rq)  # cut before the RQ was complete
    assert received == b"" or received[0] == A_ABORT
    assert active == 0
    assert log_lines(aio_log, contains="a PDU took longer than 0.5s to arrive")
    assert not log_lines(aio_log, contains="ARTIM expired")
    assert association_lines(aio_log) == []


def test_tls_server_echo_with_stalled_plain_neighbour(pki: Pki) -> None:
    """A plain connection that sends nothing to a TLS server does not delay a real client
    (the short version of test_handshake_isolation)."""

    async def main() -> int:
        async with running_server(tls=pki.server_tls()) as server:
            _, idle_writer = await asyncio.open_connection(LOOPBACK, server.port)
            try:
                async with associate(LOOPBACK, server.port, tls=pki.client_tls()) as assoc:
                    return int(await assoc.echo())
            finally:
                idle_writer.close()
                with contextlib.suppress(ConnectionError):
                    await idle_writer.wait_closed()

    assert run(main()) == 0


@pytest.mark.parametrize("limits", [Limits(max_associations=2),
                                    Limits(max_associations_per_host=2)],
                         ids=["max_associations", "max_associations_per_host"])
def test_limits_hold_while_an_async_request_hook_waits(limits: Limits) -> None:
    """Four requests at once, each held by an async on_association_request (a
    database asked, say): the limit is checked once the hook has answered too,
    so the two beyond it are rejected (transient, local limit); it was checked
    before the hook only, and all four were accepted."""
    async def hook(info: object) -> None:
        await asyncio.sleep(0.2)  # all four reach the hook before any is accepted

    async def main() -> list[object]:
        async with running_server(limits=limits, on_association_request=hook) as server:
            tried = await asyncio.gather(*(_answer_from(server.port, "127.0.0.1")
                                           for _ in range(4)))
            for _, writer in tried:
                writer.close()
            return [answer for answer, _ in tried]

    answers = run(main())
    assert sorted(type(a).__name__ for a in answers) == [
        "AssociateAC", "AssociateAC", "AssociateRJ", "AssociateRJ"]
    assert {(a.result, a.source, a.reason) for a in answers
            if isinstance(a, AssociateRJ)} == {(2, 3, 2)}


@pytest.mark.parametrize(("max_length", "warned"), [(7, True), (1023, True), (1024, False),
                                                     (0, False)])
def test_a_tiny_maximum_length_is_honoured_with_one_warning(
        aio_log: pytest.LogCaptureFixture, max_length: int, warned: bool) -> None:
    """PS3.8 D.1 allows any Maximum Length (0: no limit): the peer's is honoured,
    however small, and one below 1 KiB is said once, with what it costs (a
    P-DATA-TF PDU per max_length - 6 bytes of data)."""
    async def main() -> int:
        async with (running_server(limits=Limits(max_pdu_length=max_length)) as server,
                    associate(LOOPBACK, server.port) as assoc):
            return int(await assoc.echo())

    assert run(main()) == 0
    lines = log_lines(aio_log, level=logging.WARNING, contains="Maximum Length")
    if not warned:
        assert not lines, lines
        return
    assert len(lines) == 1, aio_log.text
    data = max_length - 6
    assert (f"accepts P-DATA-TF PDUs of at most {max_length} bytes (its Maximum Length, "
            f"PS3.8 D.1): honoured, but each carries at most {data} byte(s) of data, "
            f"{-(-(1 << 20) // data):,} PDUs per MiB sent") in lines[0]
