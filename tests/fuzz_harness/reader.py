"""A tiny deterministic reader of fuzz bytes: the choices a target makes (which
state, how to cut the stream) come from the input's first bytes, so a fuzzer
explores them and a saved input replays exactly."""

from __future__ import annotations


class Reader:
    """Consume ``data`` from the front; past its end every read gives zeros/empty."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        if self.pos >= len(self.data):
            return 0
        self.pos += 1
        return self.data[self.pos - 1]

    def take(self, count: int) -> bytes:
        piece = self.data[self.pos:self.pos + count]
        self.pos += len(piece)
        return piece

    def rest(self) -> bytes:
        piece = self.data[self.pos:]
        self.pos = len(self.data)
        return piece


def chunked(data: bytes, mode: int, sizes: Reader) -> list[bytes]:
    """``data`` cut as ``mode`` says: 0 whole, 1 byte by byte, otherwise at sizes
    read from ``sizes`` (1 to 256 bytes each; 1 once it runs dry)."""
    if mode % 3 == 0:
        return [data] if data else []
    if mode % 3 == 1:
        return [data[i:i + 1] for i in range(len(data))]
    cuts: list[bytes] = []
    pos = 0
    while pos < len(data):
        size = sizes.byte() + 1
        cuts.append(data[pos:pos + size])
        pos += size
    return cuts
