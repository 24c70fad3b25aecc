"""A hand-driven storage SCU over a raw asyncio stream, for the SCP robustness tests.

Every byte is chosen by the test: the A-ASSOCIATE-RQ (calling AE title bytes
included), the C-STORE-RQ command set (hostile UIDs that dicomnet's own encoder
refuses), each P-DATA-TF PDU, and how the association ends (A-ABORT, a closed
socket, a reset, a PDU cut in half). Only the A-ASSOCIATE-AC and the C-STORE-RSP
are decoded, with dicomnet's PDU and DIMSE decoders.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from dicomnet.dimse.messages import DimseMessage, decode_message
from dicomnet.ul.items import MaximumLengthSubItem
from dicomnet.ul.negotiation import AcceptedContext, ContextRequest, build_associate_rq
from dicomnet.ul.pdu import AAbort, AssociateAC, PDataTF, ReleaseRQ, decode_pdu, encode_pdata
from dicomnet.ul.user_information import AsynchronousOperationsWindowSubItem

__all__ = ["RawAssociation", "implicit_element", "store_command"]

LOOPBACK = "127.0.0.1"
_CALLING_AE = slice(26, 42)  # PDU header 6, version 2, reserved 2, called AE 16


def implicit_element(tag: int, value: bytes) -> bytes:
    """One element in Implicit VR Little Endian (value padded to even length with NUL)."""
    if len(value) % 2:
        value += b"\x00"
    return struct.pack("<HHI", tag >> 16, tag & 0xFFFF, len(value)) + value


def store_command(
    sop_class_uid: bytes, sop_instance_uid: bytes, message_id: int = 1
) -> bytes:
    """A C-STORE-RQ command set (PS3.7 9.3.1.1) with any UID bytes, group length first."""
    body = b"".join([
        implicit_element(0x00000002, sop_class_uid),
        implicit_element(0x00000100, struct.pack("<H", 0x0001)),
        implicit_element(0x00000110, struct.pack("<H", message_id)),
        implicit_element(0x00000700, struct.pack("<H", 0)),
        implicit_element(0x00000800, struct.pack("<H", 0x0001)),
        implicit_element(0x00001000, sop_instance_uid),
    ])
    return implicit_element(0x00000000, struct.pack("<I", len(body))) + body


@dataclass
class RawAssociation:
    """An association whose every PDU the test writes; see the module docstring."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    contexts: dict[int, AcceptedContext]
    peer_max_pdu: int
    #: The asynchronous operations window the peer granted (1: none).
    window: int = 1

    @classmethod
    async def open(
        cls,
        port: int,
        contexts: Sequence[ContextRequest],
        *,
        calling_ae_title: bytes = b"RAWSCU",
        called_ae_title: str = "DICOMNET",
        window: int = 1,
        ssl_context: ssl.SSLContext | None = None,
    ) -> RawAssociation:
        """Connect, send the A-ASSOCIATE-RQ (calling AE given as raw bytes) and read the AC.

        Raises AssertionError naming the PDU when the peer does not accept.
        """
        rq = build_associate_rq(
            calling_ae_title="PLACEHOLDER", called_ae_title=called_ae_title,
            contexts=contexts, max_pdu_length=1 << 20,
            async_ops=AsynchronousOperationsWindowSubItem(window, window) if window > 1 else None)
        raw = bytearray(rq.encode())
        raw[_CALLING_AE] = calling_ae_title.ljust(16, b" ")[:16]
        reader, writer = await asyncio.open_connection(
            LOOPBACK, port, ssl=ssl_context,
            server_hostname="localhost" if ssl_context is not None else None)
        try:
            writer.write(bytes(raw))
            await writer.drain()
            pdu = decode_pdu(await read_pdu(reader))
            if not isinstance(pdu, AssociateAC):
                raise AssertionError(f"association not accepted: {pdu!r}")
        except BaseException:
            writer.close()
            await writer.wait_closed()
            raise
        from dicomnet.ul.negotiation import accepted_contexts, async_window

        peer_max = next((i.maximum_length for i in pdu.user_information.sub_items
                         if isinstance(i, MaximumLengthSubItem)), 0)
        return cls(reader, writer, accepted_contexts(rq, pdu), peer_max, async_window(rq, pdu))

    def context_id(self, abstract_syntax: str, transfer_syntax: str | None = None) -> int:
        for ctx in self.contexts.values():
            if ctx.abstract_syntax == abstract_syntax and transfer_syntax in (
                None, ctx.transfer_syntax
            ):
                return ctx.context_id
        raise AssertionError(f"no accepted context for {abstract_syntax} {transfer_syntax}")

    @property
    def fragment_size(self) -> int:
        return (self.peer_max_pdu or (1 << 20)) - 6

    def data_pdus(self, context_id: int, data: bytes) -> list[bytes]:
        """The data set as P-DATA-TF PDUs of the largest size the peer takes, last one marked."""
        size = self.fragment_size
        view = memoryview(data)
        return [encode_pdata(context_id, False, start + size >= len(data), view[start:start + size])
                for start in range(0, len(data), size)] or [encode_pdata(context_id, False, True,
                                                                         b"")]

    async def send(self, *pdus: bytes) -> None:
        for pdu in pdus:
            self.writer.write(pdu)
        await self.writer.drain()

    async def send_store(self, context_id: int, command: bytes, dataset: bytes) -> None:
        await self.send(encode_pdata(context_id, True, True, command),
                        *self.data_pdus(context_id, dataset))

    async def read_message(self, timeout: float = 20.0) -> DimseMessage:
        """The next DIMSE message (a command without data set) from the peer.

        AssertionError when the peer aborts or closes instead."""
        command = bytearray()
        async with asyncio.timeout(timeout):
            while True:
                pdu = decode_pdu(await read_pdu(self.reader))
                if not isinstance(pdu, PDataTF):
                    raise AssertionError(f"expected P-DATA-TF, got {pdu!r}")
                for pdv in pdu.pdvs:
                    assert pdv.is_command, "unexpected data set fragment"
                    command += pdv.data
                    if pdv.is_last:
                        return decode_message(bytes(command))

    async def outcome(self, timeout: float = 20.0) -> DimseMessage | str:
        """The response, or "aborted"/"closed" when the peer ends the association instead."""
        try:
            return await self.read_message(timeout)
        except (asyncio.IncompleteReadError, ConnectionError):
            return "closed"
        except AssertionError as exc:
            if "AAbort" in str(exc):
                return "aborted"
            raise

    async def release(self) -> None:
        await self.send(ReleaseRQ().encode())
        async with asyncio.timeout(20):
            await read_pdu(self.reader)
        await self.close()

    async def abort(self) -> None:
        """Send A-ABORT and close."""
        await self.send(AAbort(source=0, reason=0).encode())
        await self.close()

    async def reset(self) -> None:
        """Close with an RST (SO_LINGER 0), as a crashed peer's kernel would."""
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()
        await asyncio.sleep(0)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


async def read_pdu(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readexactly(6)
    (length,) = struct.unpack(">I", head[2:])
    return head + await reader.readexactly(length)
