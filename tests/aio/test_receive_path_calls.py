"""The receive path's Python calls per read, counted (not timed): each is paid
per read event of every connection on the server's event loop."""

from __future__ import annotations

import asyncio
import struct
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dicomnet.aio.transport import Receiver


def python_calls(run: Callable[[], Any]) -> list[str]:
    """The Python functions ``run()`` enters, in order (``run`` itself left out)."""
    seen: list[str] = []

    def profile(frame: types.FrameType, event: str, arg: object) -> None:
        if event == "call":
            seen.append(frame.f_code.co_qualname)

    sys.setprofile(profile)
    try:
        run()
    finally:
        sys.setprofile(None)
    return seen[1:]


def test_a_read_reaches_the_sink_in_one_python_call() -> None:
    """``buffer_updated`` hands the bytes to the sink and lets go of its views
    itself: no helper, no ``contextlib.suppress`` (three calls per view)."""
    async def main() -> None:
        receiver = Receiver()
        memory = bytearray(16)
        got: list[bytes] = []
        kept: list[memoryview] = []

        def sink(data: memoryview) -> None:
            got.append(bytes(data))

        receiver.attach(sink, lambda exc: None, lambda: memoryview(memory))
        view = receiver.get_buffer(-1)
        view[:3] = b"abc"
        assert python_calls(lambda: receiver.buffer_updated(3)) == [
            "Receiver.buffer_updated", "test_a_read_reaches_the_sink_in_one_python_call."
            "<locals>.main.<locals>.sink"]
        assert got == [b"abc"]

        # A sink that exported the view (kept a slice's buffer): its release is
        # left to the garbage collector, and the read goes on.
        receiver.attach(lambda data: kept.append(memoryview(data)[:1]),
                        lambda exc: None, None)
        receiver.get_buffer(-1)[:2] = b"xy"
        receiver.buffer_updated(2)
        assert bytes(kept[0]) == b"x"

    asyncio.run(main())


def test_a_piece_of_a_data_set_held_aligned_costs_three_python_calls(tmp_path: Path) -> None:
    """Bytes of a data set held in a page-aligned buffer (a 512 KB image, say) go
    to it through ``write``, the walker's ``feed`` and the buffer's ``append``:
    its size read as an attribute, no ``__len__``."""
    from dicomnet.services.store_sink import ALIGNED_FROM, StoreSink
    from dicomnet.storage.direct import AlignedBuffer

    pixels = 2 * ALIGNED_FROM
    head = struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, pixels)
    sink = StoreSink(b"H" * 132, (tmp_path, "x.dcm"), transfer_syntax="1.2.840.10008.1.2.1")
    sink.write(head + bytes(ALIGNED_FROM))
    assert isinstance(sink.buffer, AlignedBuffer)
    rest = memoryview(bytes(range(256)) * (ALIGNED_FROM // 256))
    assert python_calls(lambda: sink.write(rest)) == [
        "StoreSink.write", "DatasetWalker.feed", "AlignedBuffer.append"]
    assert sink.check_complete("1.2.3")
    assert bytes(sink.buffer.view()[-256:]) == bytes(range(256))
    sink.abort()
