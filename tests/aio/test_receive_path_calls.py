"""The receive path's Python calls per read, counted (not timed): each is paid
per read event of every connection on the server's event loop."""

from __future__ import annotations

import asyncio
import gc
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

    # No collection meanwhile: a weak set's callback it ran showed up as a call.
    enabled = gc.isenabled()
    gc.disable()
    sys.setprofile(profile)
    try:
        run()
    finally:
        sys.setprofile(None)
        if enabled:
            gc.enable()
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


def test_data_pdvs_go_to_the_sink_without_an_event_each() -> None:
    """A data PDV of the data set due, routed from the read callback: DIMSE takes it
    (``receive_data_pdv``: its checks, no DatasetFragment) and its data goes to
    the message's sink, no ``route`` call; the message completes as before. A
    data PDV that is not the data set's still ends the routing with DIMSE's
    error."""
    from types import SimpleNamespace

    from dicomnet.aio.association import Association
    from dicomnet.aio.indications import MessagesRouted
    from dicomnet.aio.sinks import BufferSink
    from dicomnet.config import Timeouts
    from dicomnet.dimse.messages import CStoreRQ, encode_message
    from dicomnet.errors import RemoteProtocolError
    from dicomnet.testing import associated_pair
    from dicomnet.ul.pdu import encode_pdata

    store = CStoreRQ(message_id=3, affected_sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
                     affected_sop_instance_uid="1.2.3.4.5.6")

    async def main() -> None:
        pair = associated_pair()
        ul = pair.acceptor
        ul.borrow_pdata = True
        association = Association(SimpleNamespace(), ul, Timeouts())  # type: ignore[arg-type]
        ul.receive_data(encode_pdata(1, True, True, encode_message(store))
                        + encode_pdata(1, False, False, b"abcd")
                        + encode_pdata(1, False, True, b"ef"), 0.0)
        events = ul.take_events()
        assert association._route_now(events[:1]) == []
        routed: list[list[Any]] = []
        calls = python_calls(lambda: routed.append(association._route_now(events[1:])))
        assert calls == ["Association._route_now",
                         "DimseConnection.receive_data_pdv", "BufferSink.write",
                         "DimseConnection.receive_data_pdv", "BufferSink.write",
                         "__create_fn__.<locals>.__init__"]  # the MessagesRouted
        [[done]] = routed
        assert isinstance(done, MessagesRouted) and done.error is None
        [(context_id, message, sink)] = done.messages
        assert (context_id, message) == (1, store)
        assert isinstance(sink, BufferSink) and sink.data == b"abcdef"
        assert association.dimse.idle and association._incoming is None

        ul.receive_data(encode_pdata(1, False, True, b"stray"), 0.0)
        [failed] = association._route_now(ul.take_events())
        assert isinstance(failed, MessagesRouted) and failed.messages == []
        assert isinstance(failed.error, RemoteProtocolError)
        assert str(failed.error) == "data PDV on context 1 but no data set is due"

    asyncio.run(main())


def test_a_read_and_a_command_take_no_call_through_a_layer_of_their_own() -> None:
    """After a read, the Upper Layer's events are taken in ``_take_events`` itself
    (no ``_drain_events`` call); a command of a server's association is routed
    by ``ServerAssociation.route`` alone (its Message ID claimed, the provider's
    sink opened), not through the base class's ``route``, ``_route_message`` or
    its own ``open_sink`` too. A duplicate Message ID still gets a
    DuplicateInvocation sink."""
    from types import SimpleNamespace

    from dicomnet.aio.operations import DuplicateInvocation
    from dicomnet.aio.server_association import ServerAssociation
    from dicomnet.config import Limits, Timeouts
    from dicomnet.dimse.connection import MessageReceived
    from dicomnet.dimse.messages import CStoreRQ, encode_message
    from dicomnet.testing import associated_pair
    from dicomnet.ul.pdu import encode_pdata

    store = CStoreRQ(message_id=3, affected_sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
                     affected_sop_instance_uid="1.2.3.4.5.6")

    async def main() -> None:
        pair = associated_pair()
        server = SimpleNamespace(timeouts=Timeouts(), limits=Limits(), _providers={})
        association = ServerAssociation(server, SimpleNamespace(), pair.acceptor)  # type: ignore[arg-type]
        association._route_pdata = True  # as start_receiving finds it on a server
        association.ul.receive_data(encode_pdata(1, True, True, encode_message(store)), 0.0)
        calls = python_calls(lambda: association._take_events())  # noqa: PLW0108 (its first call is dropped)
        assert calls[:3] == ["Association._take_events", "ULConnection.take_events",
                             "Association._route_now"]
        assert "Association._drain_events" not in calls
        for layer in ("Association.route", "Association._route_message",
                      "ServerAssociation._route_message", "ServerAssociation.open_sink"):
            assert layer not in calls
        assert calls[calls.index("ServerAssociation.route") + 1:][:1] == ["MessageIds.claim"]
        incoming = association._incoming
        assert incoming is not None and incoming[:2] == (1, store)
        association._incoming = None
        association.dimse.receive_data_pdv(1, True, 0)
        assert association.route(MessageReceived(1, store)) is None  # the same ID again
        assert association._incoming is not None
        assert type(association._incoming[2]) is DuplicateInvocation

    asyncio.run(main())


def _read_a_command(loop: asyncio.AbstractEventLoop) -> tuple[list[str], float]:
    """A server association's ``_on_bytes`` given a whole C-STORE-RQ command on
    ``loop``: the Python calls it made, and the time it took the read at."""
    from types import SimpleNamespace

    from dicomnet.aio.server_association import ServerAssociation
    from dicomnet.config import Limits, Timeouts
    from dicomnet.dimse.messages import CStoreRQ, encode_message
    from dicomnet.testing import associated_pair
    from dicomnet.ul.pdu import encode_pdata

    store = CStoreRQ(message_id=3, affected_sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
                     affected_sop_instance_uid="1.2.3.4.5.6")

    async def main() -> tuple[list[str], float]:
        pair = associated_pair()
        server = SimpleNamespace(timeouts=Timeouts(), limits=Limits(), _providers={})
        association = ServerAssociation(server, SimpleNamespace(), pair.acceptor)  # type: ignore[arg-type]
        association._route_pdata = True
        data = memoryview(encode_pdata(1, True, True, encode_message(store)))
        calls = python_calls(lambda: association._on_bytes(data))
        return calls, association._last_rx

    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


def test_a_read_takes_the_loop_clock_without_a_python_call() -> None:
    """asyncio's loop.time() is time.monotonic() in a Python call, once per read:
    a read takes time.monotonic() itself, the same clock; a loop whose time()
    is its own still has it asked."""
    import time

    before = time.monotonic()
    calls, at = _read_a_command(asyncio.new_event_loop())
    assert "BaseEventLoop.time" not in calls
    assert before <= at <= time.monotonic()

    class Shifted(asyncio.SelectorEventLoop):
        def time(self) -> float:
            return super().time() + 1000.0

    calls, at = _read_a_command(Shifted())
    assert any(call.endswith(".Shifted.time") for call in calls)
    assert at >= before + 1000.0
