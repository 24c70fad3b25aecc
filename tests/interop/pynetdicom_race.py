"""A guard against pynetdicom 3.0.4's race that loses responses, for our tests.

pynetdicom's requestor has two threads reading one queue of DIMSE messages: the
thread calling ``send_c_store`` (and every ``send_c_*``/``send_n_*``) waits on it
with ``get_msg(block=True)``, and the association's reactor thread polls it with
``get_msg(block=False)`` (association.py:729) to serve requests from the peer.
``send_c_store`` pauses the reactor first (association.py:1958-1960: clear the
checkpoint Event, then wait for ``_is_paused``), but ``_is_paused`` is still True
when the reactor has been woken by the previous operation's ``set()``
(association.py:1967) and has not run yet (association.py:723-725). The reactor
then runs its ``get_msg(block=False)`` once, during the operation; if the answer
is queued by then it takes it and drops it (association.py:3508-3510, "Received
unexpected C-STORE service message") and the operation waits its DIMSE timeout.
Any peer answering quickly can be hit (storescp as well as dicomnet serve, TLS
or not); docs/security.md has the figures.

The guard makes the reactor's non-blocking read leave messages to the operation
while one is under way (the checkpoint cleared): what pynetdicom's pause is meant
to do. A reactor that had already taken the message when the operation began
hands it back at the head of the queue. Nothing else changes: requests the peer
sends between operations still reach the reactor, and an operation still sees
every message our server sends, so the tests keep checking our answers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest


class _Races:
    """How many times the guard kept a message from the reactor."""

    count = 0


RACES = _Races()


@contextlib.contextmanager
def guarded(pynetdicom: ModuleType) -> Iterator[None]:
    """pynetdicom with the guard installed, for the ``with`` block."""
    provider = pynetdicom.dimse.DIMSEServiceProvider
    original = provider.get_msg

    def get_msg(self: Any, block: bool = False) -> tuple[Any, Any]:
        if block:
            return tuple(original(self, block))  # the operation's own wait
        checkpoint = self.assoc._reactor_checkpoint
        if not checkpoint.is_set():  # an operation is under way: its messages
            RACES.count += 1
            return None, None
        item: tuple[Any, Any] = tuple(original(self, block))
        message = item[1]
        if message is not None and not message.is_valid_request and not checkpoint.is_set():
            # Taken between the check and now, and it is an answer: give it back first.
            with self.msg_queue.mutex:
                self.msg_queue.queue.appendleft(item)
                self.msg_queue.unfinished_tasks += 1
                self.msg_queue.not_empty.notify()
            RACES.count += 1
            return None, None
        return item

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(provider, "get_msg", get_msg)
        yield
