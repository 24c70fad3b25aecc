"""What a DIMSE connection makes of a received command set, for the tests that
compare the fast C-STORE decoders (dimse.store_codec) with the general path."""

from __future__ import annotations

from collections.abc import Callable

from dicomnet.dimse.messages import DimseMessage, decode_message
from dicomnet.errors import RemoteProtocolError

FastDecoder = Callable[[bytes | bytearray | memoryview], DimseMessage | None]


def decoded(data: bytes | bytearray | memoryview, first: FastDecoder | None = None) -> object:
    """The message decoded from ``data``, or the error's words: by ``first`` when it
    takes the layout (a fast path; None leaves the data to the general path), else
    by ``decode_message`` (what every connection did before the fast paths)."""
    try:
        return (first(data) if first is not None else None) or decode_message(data)
    except RemoteProtocolError as exc:
        return str(exc)
