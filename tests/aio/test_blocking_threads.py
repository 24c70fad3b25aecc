"""The blocking facade used from threads: one association shared by several
threads takes their calls in turn."""

from __future__ import annotations

import threading

import pytest

from dicomnet import blocking
from tests.cli.helpers import ServerThread

from .helpers import Pki, association_lines


def test_threads_sharing_one_association_take_turns(
        pki: Pki, aio_log: pytest.LogCaptureFixture) -> None:
    """Two threads drove the association's event loop at once: the second one's
    call failed with a bare RuntimeError ('Non-thread-safe operation invoked on an
    event loop other than the current one') and left a pending task behind; now
    each call waits for the one under way."""
    server = ServerThread({"tls": pki.server_tls()}).start()
    statuses: list[int] = []
    errors: list[BaseException] = []
    try:
        with blocking.associate("localhost", server.port, tls=pki.client_tls()) as assoc:

            def worker() -> None:
                for _ in range(25):
                    try:
                        statuses.append(int(assoc.echo()))
                    except BaseException as exc:
                        errors.append(exc)

            threads = [threading.Thread(target=worker) for _ in range(3)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
    finally:
        server.stop()
    assert errors == []
    assert statuses == [0] * 75
    ended = association_lines(aio_log)
    assert len(ended) == 1 and "released, 75 message(s) (75 success)" in ended[0], ended
