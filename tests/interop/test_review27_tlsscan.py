"""Review 27: `dicomnet serve` as a TLS scanner sees it, one profile at a time.

testssl.sh 3.0.8, sslscan 2.0.7 and nmap 7.93's ssl-enum-ciphers were run against
`dicomnet serve` for every profile; what they saw is in docs/security.md ("What a
TLS scanner sees"). These tests check the same facts with ``openssl s_client``
alone (always installed): the versions each profile accepts, its TLS 1.2 suites
in the server's order of preference, SHA-1 handshake signatures (taken only at
OpenSSL security level 0, by the profiles that reach TLS 1.0), and the
certificates a server sends when its certificate file holds its leaf alone.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from dicomnet.security.certificates import CertificateAuthority
from dicomnet.security.profiles import PROFILES, SUITES, openssl_supports
from tests.aio.helpers import LOOPBACK, PkiFactory
from tests.interop.conftest import dicomnet_serve_with

pytestmark = pytest.mark.interop

#: What docs/security.md says each profile accepts, with an RSA server certificate:
#: versions, and the TLS 1.2 suites (OpenSSL names) in the server's order.
DOCUMENTED: dict[str, tuple[set[str], list[str]]] = {
    "bcp195-rfc9325": ({"TLSv1.2", "TLSv1.3"},
                       ["ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-RSA-AES128-GCM-SHA256"]),
    "bcp195-rfc9325-modified": ({"TLSv1.2", "TLSv1.3"},
                                ["ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-RSA-CHACHA20-POLY1305",
                                 "ECDHE-RSA-AES128-GCM-SHA256"]),
    "bcp195": ({"TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"},
               ["ECDHE-RSA-AES256-GCM-SHA384", "DHE-RSA-AES256-GCM-SHA384",
                "ECDHE-RSA-AES128-GCM-SHA256", "DHE-RSA-AES128-GCM-SHA256", "AES128-SHA"]),
    "bcp195-non-downgrading": ({"TLSv1.2", "TLSv1.3"},
                               ["ECDHE-RSA-AES256-GCM-SHA384", "DHE-RSA-AES256-GCM-SHA384",
                                "ECDHE-RSA-AES128-GCM-SHA256", "DHE-RSA-AES128-GCM-SHA256"]),
    "bcp195-extended": ({"TLSv1.2"},
                        ["ECDHE-RSA-AES256-GCM-SHA384", "DHE-RSA-AES256-GCM-SHA384",
                         "ECDHE-RSA-AES128-GCM-SHA256", "DHE-RSA-AES128-GCM-SHA256"]),
    "aes": ({"TLSv1", "TLSv1.1", "TLSv1.2"}, ["AES128-SHA"]),
}

_VERSION_FLAGS = {"TLSv1": "-tls1", "TLSv1.1": "-tls1_1", "TLSv1.2": "-tls1_2",
                  "TLSv1.3": "-tls1_3"}
#: Every TLS 1.2 suite an RSA certificate can serve that this OpenSSL has.
_RSA_SUITES = [s.openssl for s in SUITES
               if not s.tls13 and s.authentication == "RSA" and openssl_supports(s.openssl)]


def _s_client(openssl: Path, port: int, *options: str) -> tuple[str | None, str]:
    """Connect once: (the negotiated OpenSSL suite name or None, s_client's output)."""
    done = subprocess.run(
        [str(openssl), "s_client", "-connect", f"{LOOPBACK}:{port}", *options],
        input="", capture_output=True, text=True, timeout=30, check=False)
    out = done.stdout + done.stderr
    # "New, <version>, Cipher is <suite>": the session block below it comes only
    # once a TLS 1.3 ticket has (s_client names a TLS 1.0 link's suite "SSLv3").
    found = re.search(r"^New, \S+, Cipher is (\S+)$", out, re.MULTILINE)
    cipher = found.group(1) if found else None
    return (None if cipher in (None, "(NONE)") else cipher), out


@pytest.fixture(scope="module", params=sorted(DOCUMENTED))
def served(request: pytest.FixtureRequest, pkis: PkiFactory,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """`dicomnet serve --profile NAME --peer-cert none` with an RSA certificate."""
    name: str = request.param
    pki = pkis("rsa")
    store = tmp_path_factory.mktemp(f"store-{name}")
    with dicomnet_serve_with(pki.server_cert, pki.server_key, pki.ca_file, store,
                             "--profile", name, "--peer-cert", "none") as (port, _):
        yield name, port


def test_versions_as_documented(served: tuple[str, int], openssl: Path) -> None:
    name, port = served
    accepted = {version for version, flag in _VERSION_FLAGS.items()
                if _s_client(openssl, port, flag, "-cipher", "ALL:@SECLEVEL=0")[0]}
    assert accepted == DOCUMENTED[name][0]


def test_tls12_suites_in_the_documented_order(served: tuple[str, int], openssl: Path) -> None:
    """As nmap's ssl-enum-ciphers finds a server's order: offer every suite, take
    away the one chosen, again until none is."""
    name, port = served
    offered, chosen = list(_RSA_SUITES), []
    while offered:
        cipher, _ = _s_client(openssl, port, "-tls1_2", "-cipher",
                              ":".join(offered) + ":@SECLEVEL=0")
        if cipher is None:
            break
        chosen.append(cipher)
        offered.remove(cipher)
    assert chosen == DOCUMENTED[name][1]


def test_sha1_signatures_only_at_security_level_0(served: tuple[str, int],
                                                  openssl: Path) -> None:
    """A TLS 1.2 client that allows only rsa_pkcs1_sha1 for the ServerKeyExchange:
    the profiles that reach TLS 1.0 run at OpenSSL security level 0 and sign with
    SHA-1 (RFC 9155 forbids it); the others refuse it."""
    name, port = served
    ecdhe = next((s for s in DOCUMENTED[name][1] if s.startswith("ECDHE-")), None)
    if ecdhe is None:
        # RSA key transport alone (aes: AES128-SHA): the server signs nothing,
        # so no SHA-1 signature, and the handshake goes through all the same.
        [suite] = DOCUMENTED[name][1]
        cipher, out = _s_client(openssl, port, "-tls1_2", "-sigalgs", "rsa_pkcs1_sha1",
                                "-cipher", f"{suite}:@SECLEVEL=0")
        assert cipher == suite, out
        assert "Peer signing digest" not in out, out
        return
    cipher, out = _s_client(openssl, port, "-tls1_2", "-sigalgs", "rsa_pkcs1_sha1",
                            "-cipher", f"{ecdhe}:@SECLEVEL=0")
    if PROFILES[name].security_level == 0:
        assert cipher == ecdhe, out
        assert re.search(r"^Peer signing digest: SHA1$", out, re.MULTILINE), out
    else:
        assert cipher is None, out


def _sent_subjects(out: str) -> list[str]:
    """The subject CNs of the certificates s_client -showcerts received, in order."""
    return [s.split(",")[0] for s in re.findall(r"^\s*\d+ s:(.*)$", out, re.MULTILINE)]


def test_a_leaf_alone_is_sent_with_the_chain_built_from_ca(
        openssl: Path, tmp_path: Path) -> None:
    """--cert holding the leaf alone: OpenSSL completes the chain from --ca (the CAs
    that sign client certificates), root included; --cert holding the leaf and its
    intermediate: that chain, as given, and no root."""
    root = CertificateAuthority.create("review27 root CA", key_type="ecdsa")
    issuing = root.intermediate("review27 issuing CA", key_type="ecdsa")
    leaf = issuing.issue("localhost", sans=("localhost", LOOPBACK), client=False,
                         key_type="ecdsa")
    with_chain, key = leaf.write(tmp_path, "server")
    alone = tmp_path / "leaf.pem"
    alone.write_bytes(with_chain.read_bytes().split(b"-----END CERTIFICATE-----")[0]
                      + b"-----END CERTIFICATE-----\n")
    both_cas = tmp_path / "cas.pem"
    both_cas.write_bytes(root.write_cert(tmp_path / "root.pem").read_bytes()
                         + issuing.write_cert(tmp_path / "issuing.pem").read_bytes())
    seen = {}
    for label, cert in (("alone", alone), ("with_chain", with_chain)):
        with dicomnet_serve_with(cert, key, both_cas, tmp_path / label,
                                 "--peer-cert", "none") as (port, _):
            cipher, out = _s_client(openssl, port, "-showcerts")
        assert cipher is not None, out
        seen[label] = _sent_subjects(out)
    assert seen["alone"] == ["CN = localhost", "CN = review27 issuing CA",
                             "CN = review27 root CA"]
    assert seen["with_chain"] == ["CN = localhost", "CN = review27 issuing CA"]
