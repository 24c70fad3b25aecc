"""The server's hooks and observers that raise ``SystemExit`` (or another
``BaseException`` that is no ``Exception``) cost what raising an ``Exception``
costs them (``aio.server_hooks``): an ``on_association_request`` or
``on_secure_link_ready`` hook, that association (A-ASSOCIATE-RJ
rejected-transient, no reason); an ``on_connection_event`` observer, nothing.
asyncio re-raised the ``SystemExit`` out of the event loop: one hook's
``sys.exit()`` stopped the server and cut every association."""

from __future__ import annotations

import logging
import sys
from typing import Any

import pytest

from dicomnet.aio.client import associate
from dicomnet.aio.server_hooks import HookExited
from dicomnet.errors import AssociationRejected
from tests.aio.helpers import LOOPBACK, Pki, run, running_server

HOOK_FAILED = (2, 1, 1)  # rejected-transient, service-user, no reason given


def _exits(*args: object) -> None:
    sys.exit("out of licences")


async def _exits_async(*args: object) -> None:
    raise SystemExit(2)


@pytest.mark.parametrize("hook_name", ["on_association_request", "on_secure_link_ready"])
@pytest.mark.parametrize("hook", [_exits, _exits_async], ids=["plain", "async"])
def test_an_admission_hook_exiting_rejects_its_association_only(
        pki: Pki, aio_log: pytest.LogCaptureFixture, hook_name: str, hook: Any) -> None:
    async def main() -> list[tuple[int, int, int]]:
        rejections = []
        async with running_server(tls=pki.server_tls(), **{hook_name: hook}) as server:
            for _ in range(2):  # the server still answers the next one
                with pytest.raises(AssociationRejected) as rejected:
                    async with associate(LOOPBACK, server.port,
                                         tls=pki.client_tls(server_hostname="localhost")):
                        pass
                rejections.append((rejected.value.result, rejected.value.source,
                                   rejected.value.reason))
        return rejections

    assert run(main()) == [HOOK_FAILED] * 2
    raised = [r for r in aio_log.records if f"the {hook_name} hook raised" in r.getMessage()]
    assert len(raised) == 2
    assert all(r.exc_info is not None and isinstance(r.exc_info[1], HookExited)
               and isinstance(r.exc_info[1].__cause__, SystemExit) for r in raised)


def test_a_connection_observer_exiting_costs_nothing(aio_log: pytest.LogCaptureFixture) -> None:
    async def main() -> list[int]:
        async with running_server(on_connection_event=_exits) as server:
            statuses = []
            for _ in range(2):
                async with associate(LOOPBACK, server.port) as assoc:
                    statuses.append(int(await assoc.echo()))
            return statuses

    with aio_log.at_level(logging.ERROR):
        assert run(main()) == [0, 0]
    failed = [r for r in aio_log.records if "on_connection_event observer failed" in r.getMessage()]
    assert failed  # accepted and ended, each association
    assert all(r.exc_info is not None and isinstance(r.exc_info[1], HookExited) for r in failed)
