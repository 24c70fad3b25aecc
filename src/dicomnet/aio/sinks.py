"""Where an incoming data set goes as its PDVs arrive (PS3.7 8.1): what a sink
offers (``DatasetSink``), and the one that keeps a small data set in memory
(``BufferSink``)."""

from __future__ import annotations

from typing import Protocol

from ..errors import RemoteProtocolError

__all__ = ["BufferSink", "DatasetSink"]


class DatasetSink(Protocol):
    """Where an incoming data set goes as its PDVs arrive (PS3.7 8.1).

    ``write`` may be given a view of the receive buffer, valid only during the
    call: a sink copies what it keeps (a view it kept fails once released). A
    sink may also offer ``reserve(most) -> memoryview | int | None``: memory into
    which the next bytes of the data set may be received in place (at most
    ``most`` bytes, all of one PDV's data); those bytes then reach ``write`` as
    a view of that very memory. A count instead asks for at most that many
    bytes through ``write`` first (the sink looks at them before it lends
    memory); None, for the transport's usual reads.
    """

    def write(self, data: bytes | memoryview) -> None: ...

    def abort(self) -> None: ...


class BufferSink:
    """Keeps a (small) data set in memory: identifiers, N-service attribute lists.

    PS3.7 bounds no data set: beyond ``limit`` bytes, ``write`` raises
    RemoteProtocolError (naming the data set as ``what`` says), which aborts the
    association, and what was kept is let go."""

    __slots__ = ("data", "limit", "what")

    def __init__(self, limit: int, what: str) -> None:
        self.data = bytearray()
        self.limit = limit
        self.what = what

    def write(self, data: bytes | memoryview) -> None:
        if len(self.data) + len(data) > self.limit:
            self.data = bytearray()
            raise RemoteProtocolError(
                f"{self.what} is larger than {self.limit} bytes, the most kept in memory "
                f"(Limits.max_dataset_in_memory)")
        self.data += data

    def abort(self) -> None:
        self.data.clear()
