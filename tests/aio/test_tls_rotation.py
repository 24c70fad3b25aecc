"""Certificate, key, CA and CRL rotation on a running server (security/rotation.py).

Each test makes its own PKI and serves from files of its own, which it replaces
as a renewal does (``os.replace``) or breaks. ``files_check_interval=0`` makes the
server look at its files before every handshake, so that no test waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509

from dicomnet.aio.client import associate
from dicomnet.config import Timeouts
from dicomnet.errors import TLSError
from dicomnet.security.certificates import CertificateInfo
from dicomnet.security.config import TLSConfig
from dicomnet.security.info import SecurityInfo
from dicomnet.security.profiles import SecurityWarning
from tests.aio.helpers import (
    LOOPBACK,
    HookRecorder,
    Pki,
    association_lines,
    log_lines,
    run,
    running_server,
    wait_until,
)
from tests.aio.test_tls_resumption import HelloRelay, echo_through, profiles, resumed

PASSWORD = "rotate me"
SECURITY = "dicomnet.security"


def live_files(pki: Pki, directory: Path, name: str = "first server") -> tuple[Path, Path]:
    """The server's certificate and key (encrypted with PASSWORD) where it reads them."""
    directory.mkdir(exist_ok=True)
    live = directory / "server.pem", directory / "server.key"
    put(pki.issue(name, server=True, client=False, password=PASSWORD), live)
    return live


def put(new: tuple[Path, ...], live: tuple[Path, ...]) -> None:
    """Move new files over the live ones, each atomically (as renewal tools do)."""
    for source, target in zip(new, live, strict=True):
        os.replace(source, target)


def common_name(info: SecurityInfo | None, *, ours: bool = False) -> str | None:
    assert info is not None
    cert = info.local_certificate if ours else info.peer_certificate
    assert cert is not None
    return cert.common_name


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return log_lines(caplog, logger=SECURITY, level=logging.ERROR)


def reloads(caplog: pytest.LogCaptureFixture) -> list[str]:
    return log_lines(caplog, logger=SECURITY, level=logging.INFO, contains="new connections")


# -- a renewed certificate ----------------------------------------------------------------


def test_a_renewed_certificate_goes_to_new_clients_while_an_open_association_goes_on(
    tmp_path: Path, aio_log: pytest.LogCaptureFixture
) -> None:
    pki = Pki.create(tmp_path / "pki")
    live = live_files(pki, tmp_path / "live")
    first = CertificateInfo.from_pem_file(live[0])
    hook = HookRecorder()
    client = pki.client_tls()

    async def main() -> tuple[SecurityInfo | None, SecurityInfo]:
        server_tls = pki.server_tls(certfile=live[0], keyfile=live[1], key_password=PASSWORD,
                                    files_check_interval=0)
        async with running_server(tls=server_tls, on_secure_link_ready=hook) as server:
            async with associate(LOOPBACK, server.port, tls=client) as before:
                assert int(await before.echo()) == 0
                put(pki.issue("renewed server", client=False, password=PASSWORD), live)
                after = await echo_through(server.port, client)
                # The association opened before goes on with its own TLS session.
                assert int(await before.echo()) == 0
            return before.security, after

    before, after = run(main())
    assert before is not None and before.peer_certificate is not None
    assert before.peer_certificate.serial == first.serial
    assert common_name(after) == "renewed server"
    assert after.peer_certificate is not None
    assert after.peer_certificate.serial != first.serial
    # The server reports the certificate each link showed, not the one on disk.
    assert [common_name(e.info, ours=True) for e in hook.events] == [
        "first server", "renewed server"]
    lines = association_lines(aio_log)
    assert len(lines) == 2 and all(": released, " in line for line in lines), lines
    [said] = reloads(aio_log)
    assert said.startswith(f"TLS files changed (certificate {live[0]}, key {live[1]}): ")
    assert "new connections now get certificate O=dicomnet,CN=renewed server (serial " in said
    assert f"in place of O=dicomnet,CN=first server (serial {first.serial_hex}, " in said
    assert errors(aio_log) == []


def test_files_are_looked_at_once_per_interval_and_reload_tls_forces_it(
    tmp_path: Path, aio_log: pytest.LogCaptureFixture
) -> None:
    """files_check_interval bounds the stat calls; Server.reload_tls() (SIGHUP in
    dicomnet serve) loads the files at once, changed or not."""
    pki = Pki.create(tmp_path / "pki")
    live = live_files(pki, tmp_path / "live")
    client = pki.client_tls()

    async def main() -> list[str | None]:
        server_tls = pki.server_tls(certfile=live[0], keyfile=live[1], key_password=PASSWORD,
                                    files_check_interval=3600)
        seen = []
        async with running_server(tls=server_tls) as server:
            put(pki.issue("renewed server", client=False, password=PASSWORD), live)
            seen.append(common_name(await echo_through(server.port, client)))
            assert await server.reload_tls()
            seen.append(common_name(await echo_through(server.port, client)))
            assert await server.reload_tls()  # nothing changed: built again all the same
        return seen

    assert run(main()) == ["first server", "renewed server"]
    said = reloads(aio_log)
    assert len(said) == 2
    assert said[0].startswith(f"TLS reload asked (changed: certificate {live[0]}, key {live[1]})")
    assert said[1].startswith("TLS reload asked (no file changed): new connections now get "
                              "certificate O=dicomnet,CN=renewed server (serial ")


def test_a_plain_server_has_nothing_to_reload() -> None:
    async def main() -> bool:
        async with running_server() as server:
            return await server.reload_tls()

    assert run(main()) is False


def test_connections_arriving_during_a_build_wait_for_it_and_the_password_is_asked_once(
    tmp_path: Path,
) -> None:
    pki = Pki.create(tmp_path / "pki")
    live = live_files(pki, tmp_path / "live")
    asked: list[int] = []

    async def password() -> str:
        asked.append(1)
        await asyncio.sleep(0)  # the other connections reach the build meanwhile
        return PASSWORD

    client = pki.client_tls()

    async def main() -> list[SecurityInfo]:
        server_tls = pki.server_tls(certfile=live[0], keyfile=live[1], files_check_interval=0,
                                    on_private_key_password=password)
        async with running_server(tls=server_tls) as server:
            put(pki.issue("renewed server", client=False, password=PASSWORD), live)
            return list(await asyncio.gather(
                *(echo_through(server.port, client) for _ in range(4))))

    infos = run(main())
    assert [common_name(i) for i in infos] == ["renewed server"] * 4
    assert len(asked) == 2  # at start, and once for the renewed key


# -- a new CRL, and the sessions of the previous context ------------------------------------


@profiles
def test_a_new_crl_refuses_a_revoked_client_even_offering_its_session(
    tmp_path: Path, aio_log: pytest.LogCaptureFixture, profile: str, protocol: str
) -> None:
    """A rebuilt context has new session-ticket keys and an empty session-ID cache:
    the session the client offers does not resume, the full handshake checks its
    certificate against the new CRL, which revokes it."""
    pki = Pki.create(tmp_path / "pki")
    crl = tmp_path / "crl.pem"
    pki.ca.write_crl(crl)  # revokes nothing yet
    client = pki.client_tls(profile=profile)
    client_cert = x509.load_pem_x509_certificate(pki.client_cert.read_bytes())

    async def main() -> tuple[list[SecurityInfo], list[bool], TLSError]:
        server_tls = pki.server_tls(profile=profile, crlfiles=(crl,), files_check_interval=0)
        async with running_server(tls=server_tls) as server, \
                HelloRelay(server.port).running() as relay:
            infos = [await echo_through(relay.port, client) for _ in range(2)]
            pki.ca.write_crl(tmp_path / "crl.new", (client_cert,))
            os.replace(tmp_path / "crl.new", crl)
            with pytest.raises(TLSError) as refused:
                await echo_through(relay.port, client)
            return infos, relay.offered, refused.value

    infos, offered, error = run(main())
    assert resumed(list(infos)) == [False, True]  # sessions were being resumed
    assert infos[1].protocol == protocol
    assert offered[:3] == [False, True, True]  # the refused one offered its session
    assert "the server refused our certificate: it is revoked" in str(error), error
    refusals = log_lines(aio_log, contains="connection refused")
    assert refusals and all("revoked" in line for line in refusals), refusals
    [said] = reloads(aio_log)
    assert said.startswith(f"TLS files changed (CRL {crl}): ")
    assert association_lines(aio_log)[2:] == []  # the revoked client never associated


def test_a_session_of_the_previous_context_is_not_resumed(
    tmp_path: Path, aio_log: pytest.LogCaptureFixture
) -> None:
    """Any rebuild ends resumption of the sessions made before it (a new CA file
    here): one full handshake, then the new context's sessions resume."""
    pki = Pki.create(tmp_path / "pki")
    cafile = tmp_path / "ca.pem"
    cafile.write_bytes(pki.ca_file.read_bytes())
    client = pki.client_tls()

    async def main() -> tuple[list[SecurityInfo], list[bool]]:
        server_tls = pki.server_tls(cafile=cafile, files_check_interval=0)
        async with running_server(tls=server_tls) as server, \
                HelloRelay(server.port).running() as relay:
            infos = [await echo_through(relay.port, client) for _ in range(2)]
            (tmp_path / "ca.new").write_bytes(pki.ca_file.read_bytes())  # same CA, new file
            os.replace(tmp_path / "ca.new", cafile)
            infos += [await echo_through(relay.port, client) for _ in range(2)]
            return infos, relay.offered

    infos, offered = run(main())
    assert offered == [False, True, True, True]
    assert resumed(list(infos)) == [False, True, False, True]
    [said] = reloads(aio_log)
    assert said.startswith(f"TLS files changed (CA file {cafile}): ")


# -- files that cannot be used ------------------------------------------------------------


class Rotation:
    """A server whose password callback can be made to fail, and its live files."""

    def __init__(self, tmp_path: Path) -> None:
        self.pki = Pki.create(tmp_path / "pki")
        self.live = live_files(self.pki, tmp_path / "live")
        self.first = CertificateInfo.from_pem_file(self.live[0])
        self.asked = 0
        self.vault_down = False

    def password(self) -> str:
        self.asked += 1
        if self.vault_down:
            raise RuntimeError("the vault is unreachable")
        return PASSWORD

    def server_tls(self) -> TLSConfig:
        return self.pki.server_tls(certfile=self.live[0], keyfile=self.live[1],
                                   on_private_key_password=self.password,
                                   files_check_interval=0)


def _half_copied(r: Rotation) -> str:
    pem = r.pki.issue("half copied", client=False, password=PASSWORD)[0].read_bytes()
    r.live[0].write_bytes(pem[:len(pem) // 2])  # a copy in progress, in place
    return f"certificate file {r.live[0]} holds an incomplete or malformed PEM certificate"


def _half_copied_key(r: Rotation) -> str:
    cert, key = r.pki.issue("half copied key", client=False, password=PASSWORD)
    os.replace(cert, r.live[0])
    pem = key.read_bytes()
    r.live[1].write_bytes(pem[:len(pem) // 2])
    return f"key file {r.live[1]} holds an incomplete PEM private key"


def _other_key(r: Rotation) -> str:
    put(r.pki.issue("new certificate, old key", client=False)[:1], r.live[:1])
    return f"private key {r.live[1]} does not match certificate {r.live[0]}"


def _expired(r: Rotation) -> str:
    put(r.pki.issue("expired", client=False, valid_from_days=-30, valid_to_days=-1,
                    password=PASSWORD), r.live)
    return f"our certificate {r.live[0]} expired on "


def _other_password(r: Rotation) -> str:
    put(r.pki.issue("other password", client=False, password="not the same"), r.live)
    return f"wrong password for private key {r.live[1]}"


def _callback_fails(r: Rotation) -> str:
    r.vault_down = True
    put(r.pki.issue("callback fails", client=False, password=PASSWORD), r.live)
    return "RuntimeError: the vault is unreachable"


@pytest.mark.parametrize("breaks", [_half_copied, _half_copied_key, _other_key, _expired,
                                    _other_password, _callback_fails],
                         ids=["half-copied", "half-copied-key", "key-mismatch", "expired",
                              "wrong-password", "callback-raises"])
def test_files_that_cannot_be_used_leave_the_previous_certificate_in_use(
    tmp_path: Path, aio_log: pytest.LogCaptureFixture, breaks: Callable[[Rotation], str]
) -> None:
    """Logged once as an ERROR saying what is wrong and what stays in use; not tried
    again at each connection (the password is not asked again either); the files
    fixed are picked up at the next connection."""
    r = Rotation(tmp_path)
    client = r.pki.client_tls()
    hook = HookRecorder()

    async def main() -> tuple[list[str | None], str, int]:
        seen: list[str | None] = []
        async with running_server(tls=r.server_tls(), on_secure_link_ready=hook) as server:
            seen.append(common_name(await echo_through(server.port, client)))
            wrong = breaks(r)
            for _ in range(3):
                seen.append(common_name(await echo_through(server.port, client)))
            asked = r.asked
            r.vault_down = False
            put(r.pki.issue("fixed server", client=False, password=PASSWORD), r.live)
            seen.append(common_name(await echo_through(server.port, client)))
        return seen, wrong, asked

    seen, wrong, asked = run(main())
    assert seen == ["first server"] * 4 + ["fixed server"]
    assert [common_name(e.info, ours=True) for e in hook.events] == seen
    assert asked == 2  # at start, then once for the files that failed
    [error] = errors(aio_log)
    assert error.startswith("TLS files changed (certificate ")
    assert wrong in error
    assert error.endswith(f"still serving with the certificate loaded before, O=dicomnet,"
                          f"CN=first server (serial {r.first.serial_hex}, valid until "
                          f"{r.first.not_after:%Y-%m-%d %H:%M} UTC), until they change again")
    [said] = reloads(aio_log)
    assert "new connections now get certificate O=dicomnet,CN=fixed server" in said
    assert all(": released, " in line for line in association_lines(aio_log))


def test_a_reload_that_fails_says_so(tmp_path: Path, aio_log: pytest.LogCaptureFixture) -> None:
    r = Rotation(tmp_path)

    async def main() -> bool:
        async with running_server(tls=r.server_tls()) as server:
            _other_key(r)
            return await server.reload_tls()

    assert run(main()) is False
    [error] = errors(aio_log)
    assert error.startswith(f"TLS reload asked (changed: certificate {r.live[0]}): cannot use "
                            f"them: private key {r.live[1]} does not match certificate ")


def test_the_check_interval_is_validated() -> None:
    from dicomnet.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="files_check_interval must be 0 or more"):
        TLSConfig(files_check_interval=-1)


def test_our_certificate_expiring_while_serving_is_an_error_said_once(
        pki: Pki, aio_log: pytest.LogCaptureFixture) -> None:
    """A server started with a certificate that is past its end (allowed here with
    check_own_certificate=False, as it would be once the server ran long enough):
    an ERROR at the next connection, and only once."""
    live = pki.issue("short-lived", client=False, valid_from_days=-30, valid_to_days=-1)
    tls = pki.server_tls(certfile=live[0], keyfile=live[1], check_own_certificate=False,
                         files_check_interval=None)

    async def main() -> None:
        client = pki.client_tls(verify_peer=False)
        async with running_server(tls=tls) as server:
            for _ in range(2):
                with contextlib.suppress(Exception):
                    await echo_through(server.port, client)

    with pytest.warns(SecurityWarning):
        run(main())
    said = [line for line in errors(aio_log) if "has expired" in line]
    assert len(said) == 1, said
    assert "short-lived" in said[0] and str(live[0]) in said[0]


def test_a_build_that_does_not_end_holds_one_connection_for_the_handshake_timeout_only(
    tmp_path: Path, aio_log: pytest.LogCaptureFixture,
) -> None:
    """A password callback that does not answer at a rebuild: the first connection
    waits the handshake timeout and gets the certificate in use, the next ones do
    not wait; once the callback answers, new connections get the new certificate."""
    pki = Pki.create(tmp_path / "pki")
    live = live_files(pki, tmp_path / "live")
    calls: list[int] = []
    answer = asyncio.Event()

    async def password() -> str:
        calls.append(1)
        if len(calls) > 1:  # the rebuild's: held until the test lets it go
            await answer.wait()
        return PASSWORD

    client = pki.client_tls()

    async def main() -> list[str | None]:
        server_tls = pki.server_tls(certfile=live[0], keyfile=live[1], files_check_interval=0,
                                    on_private_key_password=password)
        async with running_server(tls=server_tls,
                                  timeouts=Timeouts(tls_handshake=0.3)) as server:
            put(pki.issue("renewed server", client=False, password=PASSWORD), live)
            names = [common_name(await echo_through(server.port, client)) for _ in range(3)]
            answer.set()
            await wait_until(lambda: len(reloads(aio_log)) == 1, "the rebuild to end")
            names.append(common_name(await echo_through(server.port, client)))
            return names

    assert run(main()) == ["first server"] * 3 + ["renewed server"]
    slow = [line for line in log_lines(aio_log, logger=SECURITY, level=logging.WARNING)
            if "still being built" in line]
    assert len(slow) == 1, slow
    assert len(calls) == 2
