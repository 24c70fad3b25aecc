"""One read (``transport.READ_SIZE``, 256 KiB) can bring thousands of tiny
messages: 3,276 C-ECHO-RQs of 80 bytes. Reading pauses once the inbox holds
``_INBOX_MESSAGES`` (64), but every message of the read that passes it used
to be decoded and queued first (each a Python object, its Message ID held):
routing now stops at the limit, and the rest of the read waits, undecoded (its
bytes copied), until the association's task has taken the inbox
(``Association._route_now``).

Also here: a window above 64 (PS3.7 D.3.3.3), which the inbox's pause must not
throttle into a deadlock for a peer that keeps to it, nor spare a peer that
goes past it."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from dicomnet.aio.server_association import ServerAssociation
from dicomnet.config import Limits
from dicomnet.dimse.messages import CEchoRSP, CStoreRSP, decode_message
from dicomnet.services.storage import StorageSCP
from dicomnet.services.verification import VerificationSCP
from dicomnet.ul.pdu import PDataTF, ReleaseRP, decode_pdu, encode_pdata
from tests.aio.helpers import association_lines, run, running_server, wait_until
from tests.aio.test_window_of_one import (
    STORE_CONTEXT,
    Held,
    associate,
    echo_pdu,
    outcome,
    read_pdu,
)
from tests.storage.dicomfiles import SECONDARY_CAPTURE, store_payloads
from tests.storage.rawscu import store_command

RELEASE_RQ = bytes.fromhex("05 00 00000004 0000 0000")


def queued(assoc: ServerAssociation) -> int:
    """Requests decoded and not answered yet (their Message IDs held)."""
    return len(assoc.message_ids._held)


def _reading(assoc: ServerAssociation) -> bool:
    transport = assoc.stream.writer.transport
    assert isinstance(transport, asyncio.ReadTransport)
    return transport.is_reading()


async def answers(reader: asyncio.StreamReader, count: int) -> list[tuple[int, int]]:
    """The next ``count`` responses: (Message ID answered, status) each."""
    out = []
    for _ in range(count):
        pdu = decode_pdu(await read_pdu(reader))
        assert isinstance(pdu, PDataTF), pdu
        rsp = decode_message(b"".join(bytes(pdv.data) for pdv in pdu.pdvs))
        assert isinstance(rsp, CEchoRSP | CStoreRSP)
        out.append((rsp.message_id_being_responded_to, rsp.status))
    return out


def test_a_read_of_tiny_requests_is_decoded_only_up_to_the_inbox_limit(
        caplog: pytest.LogCaptureFixture) -> None:
    """8,000 C-ECHO-RQs in one write, no window, the first one's handler held:
    once reading has stopped, at most 65 requests are decoded (the one being
    performed, and the 64 the inbox holds), not the 3,276 of a whole read
    (2,009 were, before). Let go, every one is answered, in order, and the
    release too."""
    caplog.set_level(logging.INFO, logger="dicomnet.aio")
    count = 8000
    held = Held()
    peak: list[int] = []
    seen: list[ServerAssociation] = []

    async def on_c_echo(assoc: ServerAssociation) -> int:
        seen.append(assoc)
        peak.append(queued(assoc))
        if held.calls == 0:
            await held.wait()
        return 0

    async def main() -> tuple[int, list[tuple[int, int]], bytes]:
        async with running_server(providers=[VerificationSCP(on_c_echo=on_c_echo)]) as server:
            reader, writer, _ = await associate(server.port, None)
            try:
                writer.write(b"".join(echo_pdu(n) for n in range(1, count + 1)))
                await wait_until(lambda: held.calls == 1, "the first C-ECHO's handler")
                assoc = seen[0]
                await wait_until(lambda: not _reading(assoc), "reading to stop")
                await asyncio.sleep(0.1)  # anything more it would decode, it has
                decoded = queued(assoc)
                held.gate.set()
                got = await answers(reader, count)
                writer.write(RELEASE_RQ)
                end = await read_pdu(reader)
                return decoded, got, end
            finally:
                held.gate.set()
                writer.close()

    decoded, got, end = run(main(), timeout=60)
    assert decoded <= 65, f"{decoded} requests decoded and queued"
    assert got == [(n, 0) for n in range(1, count + 1)]
    # Reading on, the inbox's 64 besides the 64 the task took and works through.
    assert max(peak) <= 2 * 64 + 1
    assert isinstance(decode_pdu(end), ReleaseRP)


def test_a_read_of_tiny_stores_is_all_stored_and_answered(tmp_path: Path) -> None:
    """300 small C-STORE-RQs (one read brings over a hundred) in one write, no
    window: each is started from the read callback as its turn comes (the store
    thread's ``start``), routing stops and resumes at the inbox limit, and
    every object is stored and answered Success, in order."""
    count = 300
    burst = b"".join(
        encode_pdata(STORE_CONTEXT, True, True, store_command(
            SECONDARY_CAPTURE.encode(), uid.encode(), n + 1))
        + encode_pdata(STORE_CONTEXT, False, True, data)
        for n, (uid, data) in enumerate(store_payloads(tmp_path / "in", count)))

    async def main() -> list[tuple[int, int]]:
        scp = StorageSCP(tmp_path / "out")
        try:
            async with running_server(providers=[scp]) as server:
                reader, writer, _ = await associate(server.port, None)
                try:
                    writer.write(burst)
                    return await answers(reader, count)
                finally:
                    writer.close()
        finally:
            scp.close()

    assert run(main(), timeout=60) == [(n, 0) for n in range(1, count + 1)]
    assert len(list((tmp_path / "out").rglob("*.dcm"))) == count


@pytest.mark.parametrize("sent", [100, 101])
def test_a_window_above_the_inbox_limit(sent: int, caplog: pytest.LogCaptureFixture) -> None:
    """A window of 100 (``max_async_operations=100``), every handler held: 100
    C-ECHO-RQs at once are all performed together (none waits behind the
    inbox's 64), and answered once let go; the 101st request is a peer past its
    window, aborted at once, its line naming the window."""
    caplog.set_level(logging.INFO, logger="dicomnet.aio")
    held = Held()

    async def on_c_echo(assoc: ServerAssociation) -> int:
        await held.wait()
        return 0

    async def main() -> tuple[int, list[str] | list[tuple[int, int]]]:
        async with running_server(providers=[VerificationSCP(on_c_echo=on_c_echo)],
                                  limits=Limits(max_async_operations=100)) as server:
            reader, writer, granted = await associate(server.port, 100)
            try:
                writer.write(b"".join(echo_pdu(n) for n in range(1, sent + 1)))
                if sent > granted:
                    said = await outcome(reader, 3)
                    await wait_until(lambda: server.active_associations == 0,
                                     "the association's end")
                    return granted, said
                await wait_until(lambda: held.calls == sent, f"{sent} handlers at once")
                held.gate.set()
                got = sorted(await answers(reader, sent))
                writer.write(RELEASE_RQ)
                assert isinstance(decode_pdu(await read_pdu(reader)), ReleaseRP)
                return granted, got
            finally:
                held.gate.set()
                writer.close()

    granted, said = run(main(), timeout=60)
    assert granted == 100
    if sent == 100:
        assert said == [(n, 0) for n in range(1, 101)]
    else:
        assert said in (["A-ABORT"], ["closed"]), said
        lines = [line for line in association_lines(caplog) if " -> " in line]
        assert len(lines) == 1 and ("101 requests outstanding, more than the asynchronous "
                                    "operations window of 100") in lines[0]


@pytest.mark.parametrize("sent", [100, 101])
def test_stores_within_and_past_a_window_above_the_inbox_limit(
        tmp_path: Path, sent: int, caplog: pytest.LogCaptureFixture) -> None:
    """The same with C-STORE-RQs, started from the read callback (the store
    thread's ``start``): 100 at once, window 100, are all stored and answered
    Success; a 101st aborts the association, its line naming the window."""
    caplog.set_level(logging.INFO, logger="dicomnet.aio")
    burst = b"".join(
        encode_pdata(STORE_CONTEXT, True, True, store_command(
            SECONDARY_CAPTURE.encode(), uid.encode(), n + 1))
        + encode_pdata(STORE_CONTEXT, False, True, data)
        for n, (uid, data) in enumerate(store_payloads(tmp_path / "in", sent)))

    async def main() -> list[str] | list[tuple[int, int]]:
        scp = StorageSCP(tmp_path / "out")
        try:
            async with running_server(providers=[scp],
                                      limits=Limits(max_async_operations=100)) as server:
                reader, writer, granted = await associate(server.port, 100)
                assert granted == 100
                try:
                    writer.write(burst)
                    if sent > granted:
                        said = await outcome(reader, 5)
                        await wait_until(lambda: server.active_associations == 0,
                                         "the association's end")
                        return [s for s in said if not s.startswith("CStoreRSP")]
                    return sorted(await answers(reader, sent))
                finally:
                    writer.close()
        finally:
            scp.close()

    said = run(main(), timeout=60)
    if sent == 100:
        assert said == [(n, 0) for n in range(1, 101)]
        assert len(list((tmp_path / "out").rglob("*.dcm"))) == 100
    else:
        assert said in (["A-ABORT"], ["closed"]), said
        lines = [line for line in association_lines(caplog) if " -> " in line]
        assert len(lines) == 1 and ("101 requests outstanding, more than the asynchronous "
                                    "operations window of 100") in lines[0]
