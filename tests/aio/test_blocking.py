"""The blocking facade drives the asyncio engine for scripts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian

from dicomnet import blocking
from dicomnet.aio.server import Server, ServiceProvider, serve
from dicomnet.errors import LocalProtocolError, NoAcceptedContext
from dicomnet.security.certificates import make_dev_pki
from dicomnet.security.config import TLSConfig, dev_pki_configs
from dicomnet.services.storage import StorageSCP
from dicomnet.services.verification import VerificationSCP
from dicomnet.testing import VERIFICATION
from dicomnet.ul.negotiation import ContextRequest
from tests.storage.dicomfiles import make_image, uid, write_part10


@contextlib.contextmanager
def server_thread(tls: TLSConfig, providers: list[ServiceProvider] | None = None
                  ) -> Iterator[Server]:
    """A dicomnet server on 127.0.0.1 in a thread of its own (the blocking API
    runs its own loop in the test's thread)."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder: list[Server] = []

    async def run() -> None:
        server = await serve(port=0, tls=tls, providers=providers)
        holder.append(server)
        started.set()
        await server.wait_closed()

    thread = threading.Thread(target=loop.run_until_complete, args=(run(),))
    thread.start()
    try:
        assert started.wait(10)
        yield holder[0]
    finally:
        if holder:
            loop.call_soon_threadsafe(holder[0].close)
        thread.join(10)
        loop.close()


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[int, TLSConfig]]:
    server_cfg, client_cfg = dev_pki_configs(make_dev_pki(tmp_path / "pki"))
    with server_thread(server_cfg) as server:
        yield server.port, client_cfg


def test_blocking_echo_over_tls(tls_server: tuple[int, TLSConfig]) -> None:
    port, client_cfg = tls_server
    with blocking.associate("localhost", port, tls=client_cfg) as assoc:
        status = assoc.echo()
        assert status.is_success and int(status) == 0
        assert assoc.security is not None and assoc.security.protocol == "TLSv1.3"
        assert int(assoc.echo()) == 0  # the association stays usable between calls


def test_blocking_association_tells_what_the_peer_refused(
        tls_server: tuple[int, TLSConfig]) -> None:
    port, client_cfg = tls_server
    ct = "1.2.840.10008.5.1.4.1.1.2"  # the server runs Verification only
    contexts = [ContextRequest(VERIFICATION, (ExplicitVRLittleEndian,)),
                ContextRequest(ct, (ExplicitVRLittleEndian,))]
    with blocking.associate("localhost", port, tls=client_cfg, contexts=contexts) as assoc:
        assert assoc.refused == {ct: 3}  # abstract syntax not supported (PS3.8 9.3.3.2)
        assert [c.abstract_syntax for c in assoc.contexts.values()] == [VERIFICATION]
        with pytest.raises(NoAcceptedContext) as caught:
            assoc._assoc.context_for(ct, ExplicitVRLittleEndian)
        assert str(caught.value) == (
            "the peer accepted no presentation context for CT Image Storage "
            f"({ct}) in Explicit VR Little Endian ({ExplicitVRLittleEndian})")


def test_blocking_echo_helper(tls_server: tuple[int, TLSConfig]) -> None:
    port, client_cfg = tls_server
    assert blocking.echo("localhost", port, tls=client_cfg).is_success


def test_blocking_store_sends_files_and_folders(tmp_path: Path) -> None:
    server_cfg, client_cfg = dev_pki_configs(make_dev_pki(tmp_path / "pki"))
    sources = [write_part10(tmp_path / "in" / f"{i}.dcm", make_image(i),
                            "1.2.840.10008.1.2.1") for i in range(3)]
    scp = StorageSCP(tmp_path / "store")
    try:
        with server_thread(server_cfg, [VerificationSCP(), scp]) as server:
            results = blocking.store("localhost", server.port, [tmp_path / "in"],
                                     tls=client_cfg, called_ae_title="DICOMNET")
    finally:
        scp.close()
    assert [(r.path, r.ok, r.status) for r in results] == [(p, True, 0) for p in sources]
    for i, source in enumerate(sources):
        stored = tmp_path / "store" / uid(1, i) / uid(2, i) / f"{uid(9, i)}.dcm"
        assert stored.read_bytes()[-1000:] == source.read_bytes()[-1000:]


def test_leaving_the_block_on_an_exception_aborts(
        tls_server: tuple[int, TLSConfig], caplog: pytest.LogCaptureFixture) -> None:
    port, client_cfg = tls_server
    caplog.set_level(logging.INFO, logger="dicomnet.aio")
    with (pytest.raises(RuntimeError),
          blocking.associate("localhost", port, tls=client_cfg) as assoc):
        assert assoc.contexts  # what the server accepted
        raise RuntimeError("the script failed")
    # The server (its own thread) logs the A-ABORT it received.
    deadline = time.monotonic() + 10
    words = "aborted (by the peer, its A-ABORT: service-user)"
    while not any(words in r.getMessage() for r in caplog.records):
        assert time.monotonic() < deadline, "the server never saw the A-ABORT"
        time.sleep(0.01)
    with pytest.raises(LocalProtocolError, match="has ended"):
        assoc.echo()
    assoc.release()  # and ending it again is harmless
    assoc.abort()
