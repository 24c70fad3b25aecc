"""One C-STORE by a hand-driven SCU (tests/storage/rawscu.py) into a fresh
``StorageSCP`` on loopback, plain or TLS: for tests whose sender must do what
dicomnet's own SCU never does (damaged bytes, odd writes)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from dicomnet.dimse.messages import DimseMessage
from dicomnet.security.config import TLSConfig
from dicomnet.services.storage import StorageSCP
from dicomnet.ul.negotiation import ContextRequest
from dicomnet.ul.pdu import encode_pdata
from tests.aio.helpers import run, running_server
from tests.storage.dicomfiles import SECONDARY_CAPTURE
from tests.storage.rawscu import RawAssociation, store_command

#: Sends a C-STORE-RQ's data set on an association's context, as the test wants.
Sender = Callable[[RawAssociation, int, bytes], Awaitable[None]]


async def _whole(assoc: RawAssociation, context_id: int, data_set: bytes) -> None:
    await assoc.send(*assoc.data_pdus(context_id, data_set))


def raw_store(root: Path, sop_instance_uid: str, data_set: bytes, *,
              transfer_syntax: str = "1.2.840.10008.1.2.1",
              server_tls: TLSConfig | None = None, client_tls: TLSConfig | None = None,
              send: Sender = _whole) -> DimseMessage | str:
    """Store ``data_set`` (a Secondary Capture object) under ``root`` in one
    association: its command in one PDU, then ``send`` (default: the data set in
    PDUs of the largest size the server takes); the outcome (the C-STORE-RSP, or
    "aborted"/"closed"), after a release."""

    async def scenario() -> DimseMessage | str:
        scp = StorageSCP(root)
        try:
            async with running_server(providers=[scp], ae_title="DICOMNET",
                                      tls=server_tls) as srv:
                ssl_context = await client_tls.client_context() if client_tls else None
                assoc = await RawAssociation.open(
                    srv.port, [ContextRequest(SECONDARY_CAPTURE, (transfer_syntax,))],
                    ssl_context=ssl_context)
                context_id = assoc.context_id(SECONDARY_CAPTURE)
                await assoc.send(encode_pdata(context_id, True, True, store_command(
                    SECONDARY_CAPTURE.encode(), sop_instance_uid.encode())))
                await send(assoc, context_id, data_set)
                outcome = await assoc.outcome()
                if not isinstance(outcome, str):
                    await assoc.release()
                await assoc.close()
                return outcome
        finally:
            scp.close()

    return run(scenario())

