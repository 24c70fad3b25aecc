"""Our own certificate is checked when a context is built: one that every peer would
refuse (out of its dates, or not meant for our role) is a ConfigurationError before
any connection; one about to expire is logged."""

from __future__ import annotations

import datetime as dt
import logging
import re
from pathlib import Path

import pytest

from dicomnet.errors import ConfigurationError
from dicomnet.security.certificates import CertificateAuthority
from dicomnet.security.config import Side, TLSConfig
from dicomnet.security.profiles import SecurityWarning
from tests.security.tlspair import handshake

NOW = dt.datetime.now(dt.UTC)
PAST = dt.datetime(2020, 1, 2, 3, 4, tzinfo=dt.UTC)
FUTURE = dt.datetime(2099, 5, 6, 7, 8, tzinfo=dt.UTC)
RENEW = "renew it (for a development PKI: 'dicomnet certs issue')"
CLOCK = "check this machine's clock, or use a certificate valid now"
UTC_TIME = r"\d{4}-\d\d-\d\d \d\d:\d\d UTC"


def _write(ca: CertificateAuthority, tmp_path: Path, name: str, *, server: bool = True,
           client: bool = True, not_before: dt.datetime | None = None,
           not_after: dt.datetime | None = None) -> tuple[Path, Path]:
    issued = ca.issue("localhost", sans=("localhost",), key_type="ecdsa", server=server,
                      client=client, not_before=not_before, not_after=not_after)
    return issued.write(tmp_path, name)


def _config(paths: tuple[Path, Path], ca_file: Path, *, check: bool = True) -> TLSConfig:
    return TLSConfig(certfile=paths[0], keyfile=paths[1], cafile=ca_file,
                     check_own_certificate=check)


def _build(config: TLSConfig, side: Side) -> None:
    if side == "server":
        config.server_context_sync()
    else:
        config.client_context_sync()


@pytest.mark.parametrize("side", ["server", "client"])
def test_expired_own_certificate_refused(
    ca: CertificateAuthority, ca_file: Path, tmp_path: Path, side: Side
) -> None:
    paths = _write(ca, tmp_path, "expired", not_before=PAST - dt.timedelta(days=30),
                   not_after=PAST)
    with pytest.raises(ConfigurationError) as caught:
        _build(_config(paths, ca_file), side)
    assert str(caught.value) == (
        f"our certificate {paths[0]} expired on 2020-01-02 03:04 UTC; {RENEW}")


@pytest.mark.parametrize("side", ["server", "client"])
def test_not_yet_valid_own_certificate_refused(
    ca: CertificateAuthority, ca_file: Path, tmp_path: Path, side: Side
) -> None:
    paths = _write(ca, tmp_path, "future", not_before=FUTURE,
                   not_after=FUTURE + dt.timedelta(days=30))
    with pytest.raises(ConfigurationError) as caught:
        _build(_config(paths, ca_file), side)
    assert re.fullmatch(
        re.escape(f"our certificate {paths[0]} is not valid before 2099-05-06 07:08 UTC "
                  "(it is now ") + UTC_TIME + re.escape(f"); {CLOCK}"),
        str(caught.value)), str(caught.value)


@pytest.mark.parametrize(("made_for", "used_as", "peers"), [
    ("client", "server", "clients refuse it"),
    ("server", "client", "servers that ask for a client certificate refuse it"),
])
def test_a_certificate_is_refused_in_the_other_role(
    ca: CertificateAuthority, ca_file: Path, tmp_path: Path, made_for: str, used_as: str,
    *, peers: str,
) -> None:
    """What `dicomnet serve --cert pki/client.pem --key pki/client.key` gave (and the
    reverse): every peer that checks the extended key usage refuses it."""
    paths = _write(ca, tmp_path, made_for, server=made_for == "server",
                   client=made_for == "client")
    build = {"server": TLSConfig.server_context_sync, "client": TLSConfig.client_context_sync}
    with pytest.raises(ConfigurationError) as caught:
        build[used_as](_config(paths, ca_file))
    purpose = {"server": "serverAuth", "client": "clientAuth"}
    assert str(caught.value) == (
        f"our certificate {paths[0]} is not meant for a {used_as}: its extended key usage is "
        f"{purpose[made_for]}, without {purpose[used_as]} (RFC 5280 4.2.1.12), so {peers}; "
        f"use a {used_as} certificate ({used_as}.pem of 'dicomnet certs init', or 'dicomnet "
        f"certs issue DIR NAME --role {used_as}')")
    build[made_for](_config(paths, ca_file))  # what it is meant for


def test_certificate_without_extended_key_usage_serves_both_roles(
    ca: CertificateAuthority, ca_file: Path, tmp_path: Path
) -> None:
    """No extension means any use (RFC 5280 4.2.1.12): both roles build, and handshake."""
    paths = _write(ca, tmp_path, "any", server=False, client=False)
    server = _config(paths, ca_file)
    client = _config(paths, ca_file)
    result = handshake(client.client_context_sync(), server.server_context_sync())
    assert result.ok, result.errors


def test_the_check_can_be_turned_off_and_warns(
    ca: CertificateAuthority, ca_file: Path, tmp_path: Path
) -> None:
    paths = _write(ca, tmp_path, "expired", not_before=PAST - dt.timedelta(days=30),
                   not_after=PAST)
    config = _config(paths, ca_file, check=False)
    with pytest.warns(SecurityWarning) as caught:
        config.server_context_sync()
    assert [str(w.message) for w in caught] == [
        f"our certificate {paths[0]} expired on 2020-01-02 03:04 UTC "
        "(check_own_certificate=False: used all the same)"]
    assert caught[0].filename == __file__  # points at the caller's line


def test_certificate_expiring_soon_is_logged(
    ca: CertificateAuthority, ca_file: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    not_after = (NOW + dt.timedelta(days=5, hours=12)).replace(second=0, microsecond=0)
    paths = _write(ca, tmp_path, "soon", not_after=not_after)
    with caplog.at_level(logging.WARNING, logger="dicomnet.security"):
        _config(paths, ca_file).server_context_sync()
    assert [(r.name, r.levelname, r.getMessage()) for r in caplog.records] == [
        ("dicomnet.security", "WARNING",
         f"our certificate {paths[0]} expires on {not_after:%Y-%m-%d %H:%M} UTC, in 5 days: "
         "renew it before then")]


def test_certificate_valid_for_long_is_not_logged(
    ca: CertificateAuthority, ca_file: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    paths = _write(ca, tmp_path, "long", not_after=NOW + dt.timedelta(days=15))
    with caplog.at_level(logging.DEBUG, logger="dicomnet.security"):
        _config(paths, ca_file).server_context_sync()
    assert caplog.records == []
