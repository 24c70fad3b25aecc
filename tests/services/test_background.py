"""Background: the fire-and-forget worker thread of the C-STORE SCP (index rows
after the answer), taking every item queued since its last round.

Rounds are made deterministic with a gate (``worker_helpers.Gated``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from dicomnet.services.workers import Background
from tests.services.worker_helpers import PATIENCE, Gated, threads_named, unique_name


def flush(background: Background[Any]) -> None:
    """``background.flush()``, failing the test instead of hanging if it never returns."""
    flusher = threading.Thread(target=background.flush, daemon=True)
    flusher.start()
    flusher.join(PATIENCE)
    assert not flusher.is_alive(), "flush() did not return"


@pytest.fixture
def backgrounds() -> Iterator[list[Background[Any]]]:
    made: list[Background[Any]] = []
    yield made
    for background in made:  # bounded: a broken worker must not hang the session
        closer = threading.Thread(target=background.close, daemon=True)
        closer.start()
        closer.join(PATIENCE)


def gated_handle() -> tuple[Gated, Callable[[list[int]], None]]:
    gate = Gated()

    def handle(items: list[int]) -> None:
        gate(items)

    return gate, handle


def test_items_queued_meanwhile_are_handled_together(
        backgrounds: list[Background[Any]]) -> None:
    gate, handle = gated_handle()
    background: Background[int] = Background(unique_name("bg"), handle)
    backgrounds.append(background)
    background.put(0)
    assert gate.started.wait(PATIENCE)
    for item in range(1, 8):
        background.put(item)
    gate.release.set()
    flush(background)
    assert gate.calls == [[0], list(range(1, 8))]


def test_flush_waits_for_the_round_in_progress(backgrounds: list[Background[Any]]) -> None:
    gate, handle = gated_handle()
    background: Background[int] = Background(unique_name("bg"), handle)
    backgrounds.append(background)
    flushed = threading.Event()

    def flush_then_tell() -> None:
        background.flush()
        flushed.set()

    background.put(1)
    assert gate.started.wait(PATIENCE)
    background.put(2)
    flusher = threading.Thread(target=flush_then_tell)
    flusher.start()
    assert not flushed.wait(0.05)  # item 1 is still being handled
    gate.release.set()
    assert flushed.wait(PATIENCE)
    flusher.join(PATIENCE)
    assert gate.calls == [[1], [2]]


def test_flush_and_close_without_items_return(backgrounds: list[Background[Any]]) -> None:
    name = unique_name("bg-idle")
    background: Background[int] = Background(name, lambda items: None)
    background.flush()
    background.close()
    assert threads_named(name) == []


@pytest.mark.parametrize("error", [ValueError("cannot write the rows"), SystemExit(3)])
def test_a_failing_handle_is_logged_and_the_thread_goes_on(
        backgrounds: list[Background[Any]], caplog: pytest.LogCaptureFixture,
        error: BaseException) -> None:
    """An exception, or even SystemExit (a BaseException), from one round is logged
    and the thread takes the next round."""
    caplog.set_level(logging.ERROR, logger="dicomnet.services")
    name = unique_name("bg-fail")
    handled: list[list[str]] = []

    def handle(items: list[str]) -> None:
        if "bad" in items:
            raise error
        handled.append(list(items))

    background: Background[str] = Background(name, handle)
    backgrounds.append(background)
    background.put("bad")
    flush(background)  # returns although the round failed
    background.put("good")
    flush(background)
    assert handled == [["good"]]
    assert len(threads_named(name)) == 1
    records = [r for r in caplog.records if r.name == "dicomnet.services"]
    assert len(records) == 1
    assert records[0].levelno == logging.ERROR
    assert name in records[0].getMessage()
    assert "background work failed" in records[0].getMessage()
    assert records[0].exc_info is not None and records[0].exc_info[0] is type(error)


def test_close_handles_what_is_queued_and_stops_the_thread() -> None:
    name = unique_name("bg-close")
    gate, handle = gated_handle()
    background: Background[int] = Background(name, handle)
    background.put(0)
    assert gate.started.wait(PATIENCE)
    background.put(1)
    background.put(2)
    gate.release.set()
    background.close()
    assert gate.calls == [[0], [1, 2]]
    assert threads_named(name) == []


def test_items_put_while_closing_are_all_handled() -> None:
    """Items put from another thread while close() runs: each is handled once, by
    the thread closing or, once closed, in the putter's thread (an item queued
    behind the stop mark was lost), and close() always returns (two threads on
    the queue once made one of them take the other's stop mark)."""
    handled: list[int] = []
    lock = threading.Lock()

    def handle(items: Sequence[int]) -> None:
        with lock:
            handled.extend(items)

    background: Background[int] = Background(unique_name("bg-race"), handle)
    started = threading.Event()

    def putter() -> None:
        for number in range(20000):
            background.put(number)
            if number == 100:
                started.set()

    def closer() -> None:
        for _ in range(50):
            background.close()  # each close races the putter

    thread = threading.Thread(target=putter)
    thread.start()
    assert started.wait(PATIENCE)
    closing = threading.Thread(target=closer, daemon=True)
    closing.start()
    closing.join(PATIENCE)  # a close that never returns fails here, not by hanging
    thread.join(PATIENCE)
    assert not closing.is_alive() and not thread.is_alive()
    background.close()
    assert sorted(handled) == list(range(20000))


def test_items_keep_their_order_across_rounds(backgrounds: list[Background[Any]]) -> None:
    rounds: list[Sequence[int]] = []
    background: Background[int] = Background(unique_name("bg"), rounds.append)
    backgrounds.append(background)
    for item in range(50):
        background.put(item)
    flush(background)
    assert [i for r in rounds for i in r] == list(range(50))


#: Far longer than any test may take: a round that waited for it would show as a hang.
LONG_LINGER = 6 * PATIENCE


def test_linger_gathers_items_put_one_after_another(backgrounds: list[Background[Any]]) -> None:
    rounds: list[list[int]] = []
    background: Background[int] = Background(unique_name("bg-linger"), rounds.append,
                                             linger=LONG_LINGER)
    backgrounds.append(background)
    for item in range(5):
        background.put(item)
    flush(background)  # does not wait out the linger
    assert rounds == [[0, 1, 2, 3, 4]]


class _RecordingQueue:
    """Stands in for a Background's queue and records what its thread waited for."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.woken_with: list[Any] = []  # what each waiting get() returned

    def put(self, item: Any) -> None:
        self._inner.put(item)

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        item = self._inner.get(block, timeout)
        self.woken_with.append(item)
        return item

    def get_nowait(self) -> Any:
        return self._inner.get_nowait()


def test_a_lingering_thread_is_not_woken_by_each_item(
        backgrounds: list[Background[Any]]) -> None:
    """Items put during a linger join the round without waking the thread: it
    sleeps once (each wake-up takes the GIL from the event loop's thread)."""
    rounds: list[list[int]] = []
    background: Background[int] = Background(unique_name("bg-sleep"), rounds.append,
                                             linger=LONG_LINGER)
    backgrounds.append(background)
    recording = _RecordingQueue(background._queue)
    background._queue = recording  # type: ignore[assignment]
    for item in range(5):
        background.put(item)
    flush(background)
    assert rounds == [[0, 1, 2, 3, 4]]
    assert recording.woken_with == [(0,)]


def test_max_items_caps_a_lingering_round(backgrounds: list[Background[Any]]) -> None:
    rounds: list[list[int]] = []
    background: Background[int] = Background(unique_name("bg-cap"), rounds.append,
                                             linger=LONG_LINGER, max_items=3)
    backgrounds.append(background)
    for item in range(7):
        background.put(item)
    flush(background)
    assert rounds == [[0, 1, 2], [3, 4, 5], [6]]


def test_close_does_not_wait_out_the_linger() -> None:
    name = unique_name("bg-linger-close")
    rounds: list[list[int]] = []
    background: Background[int] = Background(name, rounds.append, linger=LONG_LINGER)
    background.put(1)
    closer = threading.Thread(target=background.close, daemon=True)
    closer.start()
    closer.join(PATIENCE)
    assert not closer.is_alive(), "close() waited for the linger"
    assert rounds == [[1]]
    assert threads_named(name) == []
