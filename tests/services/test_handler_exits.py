"""A handler that raises ``SystemExit`` (a ``sys.exit()``, a library's ``exit()``)
or another ``BaseException`` that is no ``Exception`` is a failing handler, as
one raising ``ValueError`` is: its object is answered Processing Failure
(0110H), the traceback logged, and the association and the server go on
(``aio.server_hooks``). asyncio re-raises ``SystemExit`` out of the event loop:
one handler's ``sys.exit()`` stopped the server, every association cut; a plain
``BaseException`` left its association's task dead, the peer's connection
closed without an answer. A ``KeyboardInterrupt`` is contained in a plain
handler's thread (no Ctrl-C is delivered there); on the loop it may be the
user's Ctrl-C and still stops the server."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian

from dicomnet.aio.client import associate
from dicomnet.aio.server import ServerAssociation
from dicomnet.aio.server_hooks import HookExited, contained
from dicomnet.services.storage import StorageSCP, StoredInstance
from dicomnet.services.verification import VerificationSCP
from dicomnet.ul.negotiation import ContextRequest
from tests.aio.helpers import LOOPBACK, run, running_server
from tests.storage.dicomfiles import SECONDARY_CAPTURE, make_image

PROCESSING_FAILURE = 0x0110
CONTEXTS = [ContextRequest(SECONDARY_CAPTURE, (ExplicitVRLittleEndian,)),
            ContextRequest("1.2.840.10008.1.1", (ExplicitVRLittleEndian,))]


class _Odd(BaseException):
    """A BaseException of a library's own, no Exception."""


def _plain(exc: BaseException) -> object:
    def on_c_store(instance: StoredInstance) -> None:
        raise exc
    return on_c_store


def _async(exc: BaseException) -> object:
    async def on_c_store(instance: StoredInstance) -> None:
        raise exc
    return on_c_store


def _calls_sys_exit(instance: StoredInstance) -> None:
    sys.exit("queue full")


CASES = {
    "plain-sys-exit": (_calls_sys_exit, SystemExit),
    "async-system-exit": (_async(SystemExit(3)), SystemExit),
    "plain-base-exception": (_plain(_Odd("odd")), _Odd),
    "async-base-exception": (_async(_Odd("odd")), _Odd),
    "plain-generator-exit": (_plain(GeneratorExit()), GeneratorExit),
    "plain-keyboard-interrupt": (_plain(KeyboardInterrupt()), KeyboardInterrupt),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_store_handler_exiting_costs_its_object_only(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, case: str) -> None:
    hook, raised = CASES[case]
    root = tmp_path / "out"

    async def main() -> tuple[list[int], list[int], int]:
        scp = StorageSCP(root, on_c_store=hook)  # type: ignore[arg-type]
        try:
            async with running_server(providers=[VerificationSCP(), scp]) as server:
                async with associate(LOOPBACK, server.port, contexts=CONTEXTS) as first:
                    statuses = [int(await first.store(make_image(n))) for n in range(2)]
                # The server still serves: a new association, its store and echo.
                async with associate(LOOPBACK, server.port, contexts=CONTEXTS) as second:
                    again = [int(await second.store(make_image(2)))]
                    echo = int(await second.echo())
                return statuses, again, echo
        finally:
            scp.close()

    with caplog.at_level(logging.ERROR, logger="dicomnet.services"):
        statuses, again, echo = run(main())
    assert statuses == [PROCESSING_FAILURE] * 2
    assert again == [PROCESSING_FAILURE]
    assert echo == 0
    failed = [r for r in caplog.records if "on_c_store handler failed" in r.getMessage()]
    assert len(failed) == 3
    for record in failed:
        assert record.exc_info is not None
        exc = record.exc_info[1]
        assert isinstance(exc, HookExited)
        assert isinstance(exc.__cause__, raised)
        assert f"raised {raised.__name__}" in str(exc)
    # Stored all the same: the handler runs once the object is durable.
    assert len(list(root.rglob("*.dcm"))) == 3


def test_an_echo_handler_calling_sys_exit_is_answered_processing_failure(
        caplog: pytest.LogCaptureFixture) -> None:
    def on_c_echo(assoc: ServerAssociation) -> int:
        sys.exit(0)

    async def main() -> tuple[int, int]:
        async with running_server(providers=[VerificationSCP(on_c_echo=on_c_echo)]) as server:
            async with associate(LOOPBACK, server.port) as assoc:
                first = int(await assoc.echo())
            async with associate(LOOPBACK, server.port) as assoc:
                return first, int(await assoc.echo())

    with caplog.at_level(logging.ERROR, logger="dicomnet.services"):
        assert run(main()) == (PROCESSING_FAILURE, PROCESSING_FAILURE)
    failed = [r for r in caplog.records if "on_c_echo handler failed" in r.getMessage()]
    assert len(failed) == 2
    assert all(r.exc_info is not None and isinstance(r.exc_info[1], HookExited)
               for r in failed)


@pytest.mark.parametrize("exc", [KeyboardInterrupt(), GeneratorExit()],
                         ids=["keyboard-interrupt", "generator-exit"])
def test_on_the_loop_a_ctrl_c_or_a_coroutine_closing_is_not_taken_for_the_hook(
        exc: BaseException) -> None:
    """On the event loop's thread a KeyboardInterrupt may be the user's Ctrl-C (a
    loop without a SIGINT handler), a GeneratorExit the coroutine's closing: left
    as they are. In a worker thread neither can be: contained."""
    with pytest.raises(type(exc)), contained("handler 'h'"):
        raise exc
    with pytest.raises(HookExited) as raised, contained("handler 'h'", in_thread=True):
        raise exc
    assert raised.value.__cause__ is exc
    with pytest.raises(asyncio.CancelledError), contained("handler 'h'", in_thread=True):
        raise asyncio.CancelledError  # the caller tells whose it is


def test_an_on_stored_observer_exiting_leaves_the_answer_success(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    def on_stored(instance: StoredInstance) -> None:
        sys.exit(1)

    async def main() -> list[int]:
        scp = StorageSCP(tmp_path / "out", on_stored=on_stored)
        try:
            async with running_server(providers=[VerificationSCP(), scp]) as server:
                statuses = []
                for n in range(2):  # a new association each: the server goes on
                    async with associate(LOOPBACK, server.port, contexts=CONTEXTS) as assoc:
                        statuses.append(int(await assoc.store(make_image(n))))
                return statuses
        finally:
            scp.close()

    with caplog.at_level(logging.ERROR, logger="dicomnet.services"):
        assert run(main()) == [0, 0]
    failed = [r for r in caplog.records if "on_stored observer failed" in r.getMessage()]
    assert len(failed) == 2
    assert all(r.exc_info is not None and isinstance(r.exc_info[1], HookExited) for r in failed)
    assert len(list((tmp_path / "out").rglob("*.dcm"))) == 2
