"""The receive path's Python calls per read, counted (not timed): each is paid
per read event of every connection on the server's event loop."""

from __future__ import annotations

import asyncio
import sys
import types
from collections.abc import Callable
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
