"""Every PS3.15 Annex B profile of dicomnet against every TLS profile of DCMTK 3.6.7, both
ways, through the command-line tools as users run them: ``echoscu`` into ``dicomnet
serve --profile P``, and ``dicomnet echo --profile P --json`` into ``storescp``.

DCMTK 3.6.7's profiles: ``+py`` Non-downgrading BCP 195 (its default), ``+px`` BCP 195,
``+pz`` Extended BCP 195 (TLS 1.2 only), ``+pa`` AES (retired: TLS 1.2 at most,
TLS_RSA_WITH_AES_128_CBC_SHA), ``+pn`` NULL (authentication without encryption, once
IHE ATNA's). Debian's build has no ``--profile-basic`` (3DES), nor has its OpenSSL the
3DES suite that dicomnet's ``basic`` profile needs: that profile is refused at start
(tests/security/test_legacy.py). DCMTK's TLS 1.2 lists for +py and +px hold only RSA
suites, and +pa and +pn only RSA key transport.

Outcome of a C-ECHO for each pair (RSA certificates; "1.3" = TLS 1.3 with OpenSSL's
TLS_AES_256_GCM_SHA384; "-" = refused for want of a common suite)::

    dicomnet server       +py      +px      +pz              +pa          +pn
    bcp195-rfc9325        1.3      1.3      ECDHE_RSA_256    -            -
    bcp195-rfc9325-mod.   1.3      1.3      ECDHE_RSA_256    -            -
    bcp195                1.3      1.3      ECDHE_RSA_256    RSA_AES_128  -
    bcp195-non-downgr.    1.3      1.3      ECDHE_RSA_256    -            -
    bcp195-extended       ECDHE..  ECDHE..  ECDHE_RSA_256    -            -
    aes                   -        RSA_128  -                RSA_AES_128  -

    dicomnet client       storescp +py     +px      +pz       +pa          +pn
    bcp195-rfc9325        1.3      1.3      ECDHE_RSA_256     -            -
    bcp195-rfc9325-mod.   1.3      1.3      ECDHE_RSA_256     -            -
    bcp195                1.3      1.3      ECDHE_RSA_256     RSA_AES_128  -
    bcp195-non-downgr.    1.3      1.3      DHE_RSA_256       -            -
    bcp195-extended       DHE_256  DHE_256  DHE_RSA_256       -            -
    aes                   -        RSA_128  -                 RSA_AES_128  -

(storescp as the server picks by its own order, DHE before ECDHE where ours allows it:
not for our bcp195 client, which offers no DHE since its OpenSSL security level 0 checks no
group size; tests/security/test_dhe_client.py.)
With ECDSA certificates, every pair that needs a TLS 1.2 RSA suite fails instead, and a
dicomnet server on the ``aes`` profile refuses to start. Each refusal on our side is one
line naming the cause, exit code 3 for the client, one log line for the server, which
then serves the next peer.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dicomnet.security.profiles import get_profile
from tests.aio.helpers import LOOPBACK, Pki, PkiFactory, background_process, free_port
from tests.interop.conftest import Dcmtk, dicomnet_serve
from tests.interop.test_tls_hints25 import RETIRED

pytestmark = pytest.mark.interop

DCMTK_PROFILES = ("+pn", "+pa", "+py", "+px", "+pz")  # failures first: the next peer is served
TLS13 = ("TLSv1.3", "TLS_AES_256_GCM_SHA384")
ECDHE_RSA_256 = ("TLSv1.2", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384")
ECDHE_ECDSA_256 = ("TLSv1.2", "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384")
DHE_RSA_256 = ("TLSv1.2", "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384")
RSA_AES_128 = ("TLSv1.2", "TLS_RSA_WITH_AES_128_CBC_SHA")
LEGACY = ("bcp195", "aes")

Outcome = tuple[str, str] | None  # (protocol, IANA suite), or None: no suite in common

# dicomnet serve --profile P (rows) <- echoscu +p? (columns), in DCMTK_PROFILES order.
SERVER_RSA: dict[str, tuple[Outcome, ...]] = {
    "bcp195-rfc9325": (None, None, TLS13, TLS13, ECDHE_RSA_256),
    "bcp195-rfc9325-modified": (None, None, TLS13, TLS13, ECDHE_RSA_256),
    "bcp195": (None, RSA_AES_128, TLS13, TLS13, ECDHE_RSA_256),
    "bcp195-non-downgrading": (None, None, TLS13, TLS13, ECDHE_RSA_256),
    "bcp195-extended": (None, None, ECDHE_RSA_256, ECDHE_RSA_256, ECDHE_RSA_256),
    "aes": (None, RSA_AES_128, None, RSA_AES_128, None),
}
SERVER_ECDSA: dict[str, tuple[Outcome, ...]] = {
    "bcp195-rfc9325": (None, None, TLS13, TLS13, ECDHE_ECDSA_256),
    "bcp195-rfc9325-modified": (None, None, TLS13, TLS13, ECDHE_ECDSA_256),
    "bcp195": (None, None, TLS13, TLS13, None),
    "bcp195-non-downgrading": (None, None, TLS13, TLS13, None),
    "bcp195-extended": (None, None, None, None, ECDHE_ECDSA_256),
}
# dicomnet echo --profile P (columns, in the dicts' order) -> storescp +p? (rows).
CLIENT_RSA: dict[str, dict[str, Outcome]] = {
    "+pn": dict.fromkeys(SERVER_RSA),
    "+pa": {**dict.fromkeys(SERVER_RSA), "bcp195": RSA_AES_128, "aes": RSA_AES_128},
    "+py": {**dict.fromkeys(SERVER_RSA, TLS13), "bcp195-extended": DHE_RSA_256, "aes": None},
    "+px": {**dict.fromkeys(SERVER_RSA, TLS13), "bcp195-extended": DHE_RSA_256,
            "aes": RSA_AES_128},
    "+pz": {"bcp195-rfc9325": ECDHE_RSA_256, "bcp195-rfc9325-modified": ECDHE_RSA_256,
            "bcp195": ECDHE_RSA_256, "bcp195-non-downgrading": DHE_RSA_256,
            "bcp195-extended": DHE_RSA_256, "aes": None},
}
CLIENT_ECDSA: dict[str, dict[str, Outcome]] = {
    "+pn": dict.fromkeys(SERVER_RSA),
    "+pa": dict.fromkeys(SERVER_RSA),
    "+py": {**dict.fromkeys(SERVER_RSA, TLS13), "bcp195-extended": None, "aes": None},
    "+px": {**dict.fromkeys(SERVER_RSA, TLS13), "bcp195-extended": None, "aes": None},
    "+pz": {**dict.fromkeys(SERVER_RSA), "bcp195-rfc9325": ECDHE_ECDSA_256,
            "bcp195-rfc9325-modified": ECDHE_ECDSA_256, "bcp195-extended": ECDHE_ECDSA_256},
}


def echoscu(dcmtk: Dcmtk, pki: Pki, port: int, flag: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [dcmtk.echoscu, "-aet", "ECHOSCU", "-aec", "DICOMNET", "+tls", pki.client_key,
         pki.client_cert, "+cf", pki.ca_file, flag, LOOPBACK, str(port)],
        capture_output=True, text=True, timeout=30, check=False,
    )


def server_lines(stderr: str) -> list[str]:
    """The association and refusal lines of dicomnet serve's log, without the timestamp."""
    return [line.split("+0000 ", 1)[1] for line in stderr.splitlines()
            if " association " in line or "connection refused" in line]


@pytest.mark.parametrize("key_type", ["rsa", "ecdsa"])
@pytest.mark.parametrize("profile", list(SERVER_RSA))
def test_echoscu_profiles_into_dicomnet_serve(
    dcmtk: Dcmtk, pkis: PkiFactory, tmp_path: Path, profile: str, key_type: str,
) -> None:
    pki = pkis(key_type)  # type: ignore[arg-type]
    expected = (SERVER_RSA if key_type == "rsa" else SERVER_ECDSA).get(profile)
    if expected is None:
        # The AES profile's suites all need an RSA certificate: refused at start.
        result = subprocess.run(
            [sys.executable, "-m", "dicomnet.cli.main", "serve", "--port", "0", "--tls",
             "--cert", str(pki.server_cert), "--key", str(pki.server_key), "--ca",
             str(pki.ca_file), "--profile", profile, "--output", str(tmp_path)],
            capture_output=True, text=True, timeout=30, check=False,
        )
        assert result.returncode == 2
        assert result.stderr.splitlines()[-1].startswith(
            f"error: our certificate {pki.server_cert} has an EC key, and every TLS 1.2 "
            "cipher suite of profile 'aes'")
        return
    with dicomnet_serve(pki, tmp_path, "--profile", profile) as (port, stderr):
        results = [echoscu(dcmtk, pki, port, flag) for flag in DCMTK_PROFILES]
    assert "Traceback" not in stderr[0]
    # An EC key and a profile whose TLS 1.2 suites are all RSA ones: said at start.
    tls13_only = key_type == "ecdsa" and expected[-1] is None
    assert ("only TLS 1.3 clients can connect" in stderr[0]) == tls13_only
    lines = server_lines(stderr[0])
    assert len(lines) == len(DCMTK_PROFILES), lines
    allowed = get_profile(profile)
    for flag, result, outcome, line in zip(DCMTK_PROFILES, results, expected, lines,
                                           strict=True):
        if outcome is None:
            assert result.returncode != 0, (flag, result.stdout)
            assert re.fullmatch(
                r"WARNING: connection refused: TLS handshake with 127\.0\.0\.1:\d+ failed: "
                rf"peer offers no cipher suite allowed by profile '{profile}'", line), line
            continue
        assert result.returncode == 0, (flag, result.stdout + result.stderr)
        protocol, suite = outcome
        assert allowed.allows_suite(suite)
        assert re.fullmatch(
            r"association ECHOSCU@127\.0\.0\.1:\d+ -> DICOMNET: released, 1 message\(s\) "
            rf"\(1 success\), \d+\.\d\d s, {protocol} {suite}, client certificate "
            r"dicomnet test client \(SHA-256 [0-9A-F:]{95}\)", line), (flag, line)


def dicomnet_echo(pki: Pki, port: int, profile: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dicomnet.cli.main", "echo", LOOPBACK, str(port), "--json",
         "--called-aet", "STORESCP", "--tls", "--cert", str(pki.client_cert), "--key",
         str(pki.client_key), "--ca", str(pki.ca_file), "--profile", profile],
        capture_output=True, text=True, timeout=60, check=False,
    )


@pytest.mark.parametrize("key_type", ["rsa", "ecdsa"])
@pytest.mark.parametrize("flag", DCMTK_PROFILES)
def test_dicomnet_echo_profiles_into_storescp(
    dcmtk: Dcmtk, pkis: PkiFactory, tmp_path: Path, flag: str, key_type: str,
) -> None:
    pki = pkis(key_type)  # type: ignore[arg-type]
    expected = (CLIENT_RSA if key_type == "rsa" else CLIENT_ECDSA)[flag]
    port = free_port()
    with background_process(
        dcmtk.storescp, "-aet", "STORESCP", "+tls", pki.server_key, pki.server_cert,
        "+cf", pki.ca_file, flag, "-od", tmp_path, str(port),
        log_path=tmp_path / "storescp.log", port=port,
    ):
        results = {profile: dicomnet_echo(pki, port, profile) for profile in expected}
    for profile, outcome in expected.items():
        result = results[profile]
        report = json.loads(result.stdout)
        stderr = result.stderr.splitlines()
        if profile in LEGACY:  # the retired profiles say so, once, first
            assert re.match(rf"\d\d:\d\d:\d\d WARNING: TLS profile '{profile}' \(",
                            stderr[0]), stderr
            stderr = stderr[1:]
        if outcome is None:
            assert result.returncode == 3, (profile, result.stderr)
            assert report["tls"] is None
            # A current profile names the retired ones an older peer may speak.
            hint = "" if get_profile(profile).retired else RETIRED
            assert report["error"] == (
                f"TLS handshake with {LOOPBACK}:{port} failed: peer offers no cipher suite "
                f"allowed by profile '{profile}'{hint}")
            assert stderr == [f"error: {report['error']}"], (profile, stderr)
            continue
        assert result.returncode == 0, (profile, result.stderr)
        assert stderr == [], (profile, stderr)
        tls = report["tls"]
        assert (tls["protocol"], tls["cipher_suite"]) == outcome, profile
        assert get_profile(profile).allows_suite(tls["cipher_suite"])
        assert tls["authentication"] == ("RSA" if key_type == "rsa" else "ECDSA")
        if outcome[0] == "TLSv1.2":
            assert tls["key_exchange"] == outcome[1].split("_")[1]  # ECDHE, DHE or RSA
        else:
            assert tls["key_exchange"] is None
        assert tls["peer_certificates"][0]["subject"] == pki.server_subject
