"""A server closed while an association it aborted is ending (its operations
being cancelled and waited for: ``ServerAssociation.finish_operations``) still
ends that association whole: its connection closed, its line logged, its slot
given back. The close's cancellation used to land in that wait, in the
``finally`` of the association's task, and skip the rest of it (found with a
peer past a window of 100 whose 100 handlers were held)."""

from __future__ import annotations

import gc
import logging
import warnings

import pytest

from dicomnet.aio.server import Server
from dicomnet.aio.server_association import ServerAssociation
from dicomnet.config import Limits
from dicomnet.services.verification import VerificationSCP
from tests.aio.helpers import association_lines, run, running_server
from tests.aio.test_window_of_one import Held, associate, echo_pdu, outcome


def test_closing_while_an_aborted_association_ends(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="dicomnet.aio")
    held = Held()

    async def on_c_echo(assoc: ServerAssociation) -> int:
        await held.wait()
        return 0

    async def main() -> tuple[list[str], Server]:
        async with running_server(providers=[VerificationSCP(on_c_echo=on_c_echo)],
                                  limits=Limits(max_async_operations=100)) as server:
            reader, writer, granted = await associate(server.port, 100)
            assert granted == 100
            writer.write(b"".join(echo_pdu(n) for n in range(1, 102)))
            said = await outcome(reader, 5)
            writer.close()
        return said, server  # closed at once, the abort's end under way

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        said, server = run(main())
        gc.collect()
    assert said in (["A-ABORT"], ["closed"]), said
    assert server.active_associations == 0
    lines = [line for line in association_lines(caplog) if " -> " in line]
    assert len(lines) == 1 and "101 requests outstanding" in lines[0], lines
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)], \
        [str(w.message) for w in caught]
