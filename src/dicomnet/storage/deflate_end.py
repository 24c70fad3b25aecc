"""Where a deflated data set's deflate stream ends (PS3.5 A.5), and what follows.

A deflated data set is its raw deflate stream (RFC 1951), padded to an even
length with one NUL byte: the stream ends itself (its last block says so), and
bytes after it, but for that padding, are no part of the data set. pydicom and
DCMTK stop inflating at its end, so such bytes are never read; an SCP storing
them would keep in its archive what no reader sees.
"""

from __future__ import annotations

__all__ = ["StreamEnd"]


class StreamEnd:
    """Where a raw deflate stream ends among the bytes given to its inflater, and
    what follows it. A deflated data set (PS3.5 A.5) is that stream, padded to an
    even length with one NUL byte: bytes after it are no part of it (pydicom's
    and DCMTK's inflate stop at its end)."""

    __slots__ = ("_next", "end", "fed")

    def __init__(self) -> None:
        #: Bytes given to the inflater, or after its end.
        self.fed = 0
        #: The stream's length, once its end was met (None: not yet).
        self.end: int | None = None
        self._next = -1  # the first byte after it

    def ended(self, unused: bytes) -> None:
        """The stream's end was met; ``unused``: the bytes after it in the
        input just given (zlib's ``unused_data``), counted in :attr:`fed`."""
        self.end = self.fed - len(unused)
        if unused:
            self._next = unused[0]

    def after(self, data: bytes | bytearray | memoryview) -> None:
        """More bytes after the stream's end."""
        if self._next < 0 and len(data):
            self._next = data[0]
        self.fed += len(data)

    @property
    def unpadded(self) -> bool:
        """Whether the stream ended, of odd length, and nothing came after it:
        the NUL byte PS3.5 A.5 puts there is missing."""
        return self.end is not None and self.end % 2 == 1 and self.fed == self.end

    @property
    def extra(self) -> int:
        """Bytes after the stream other than its padding (one NUL byte after a
        stream of odd length); 0 before its end."""
        if self.end is None:
            return 0
        after = self.fed - self.end
        return 0 if after == 1 and self.end % 2 and self._next == 0 else after
