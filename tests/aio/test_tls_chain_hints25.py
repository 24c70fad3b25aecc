"""A server that sends its certificate without the intermediate CA that issued it,
to a client trusting the root: OpenSSL's X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY
(20). The client was told only "signed by an unknown CA (its issuer is not in our
cafile/capath)", with no hint that the server's chain is what is incomplete. The
client now says the certificate came alone and names its issuer; it says nothing
of the kind when the server did send a CA certificate (code 20 then comes from
higher up the chain: its root is the one not trusted).

A real dicomnet server on the loopback, a PKI of root -> issuing CA -> leaf made
at run time.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import pytest

from dicomnet.aio.client import associate
from dicomnet.cli.output import in_cli_words
from dicomnet.errors import TLSError
from dicomnet.security.certificates import CertificateAuthority
from dicomnet.security.config import TLSConfig
from tests.aio.helpers import LOOPBACK, run, running_server


@dataclass(frozen=True)
class Chain:
    root: Path
    other_root: Path
    leaf_alone: Path
    leaf_and_issuing: Path
    key: Path


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Chain:
    folder = tmp_path_factory.mktemp("chain")
    root = CertificateAuthority.create("chain root", key_type="ecdsa")
    issuing = root.intermediate("chain issuing CA", key_type="ecdsa")
    both, key = issuing.issue("localhost", sans=("localhost", LOOPBACK), key_type="ecdsa",
                              client=False).write(folder, "server")
    pem = both.read_text()
    end = "-----END CERTIFICATE-----"
    leaf_alone = folder / "leaf.pem"
    leaf_alone.write_text(pem[:pem.index(end) + len(end)] + "\n")
    assert leaf_alone.read_text().count("BEGIN CERTIFICATE") == 1
    assert both.read_text().count("BEGIN CERTIFICATE") == 2
    other = CertificateAuthority.create("some other root", key_type="ecdsa")
    return Chain(root.write_cert(folder / "root.pem"), other.write_cert(folder / "other.pem"),
                 leaf_alone, both, key)


def _refusal(certfile: Path, key: Path, cafile: Path) -> TLSError:
    server_tls = TLSConfig(certfile=certfile, keyfile=key, peer_certificate="none")

    async def main() -> TLSError:
        async with running_server(tls=server_tls) as server:
            with pytest.raises(TLSError) as caught:
                async with associate(LOOPBACK, server.port, tls=TLSConfig(cafile=cafile)):
                    raise AssertionError("associated with an unverifiable server")
            return caught.value

    error = run(main())
    assert isinstance(error.__cause__, ssl.SSLCertVerificationError)
    assert error.__cause__.verify_code == 20
    return error


UNKNOWN = ("the certificate of the server is signed by an unknown CA (its issuer is not in "
           "our cafile/capath)")


def test_a_leaf_sent_without_its_intermediate_is_said(chain: Chain) -> None:
    error = _refusal(chain.leaf_alone, chain.key, chain.root)
    assert error.reason == UNKNOWN + (
        "; the server sent this certificate alone, with no CA certificate after it: if its "
        "issuer (O=dicomnet,CN=chain issuing CA) is an intermediate CA, the server is not "
        "sending it (configure its certificate chain file: its certificate followed by the "
        "intermediates), or add that intermediate to our cafile/capath beside the root")
    assert in_cli_words(error.reason).endswith(
        "or add that intermediate to --ca beside the root")


def test_a_chain_sent_whole_to_the_wrong_root_says_no_more(chain: Chain) -> None:
    # The server sends its intermediate; our trust holds another root: code 20 as
    # well, from the intermediate's issuer. Nothing about a missing intermediate.
    error = _refusal(chain.leaf_and_issuing, chain.key, chain.other_root)
    assert error.reason == UNKNOWN


def test_the_whole_chain_to_its_root_is_taken(chain: Chain) -> None:
    server_tls = TLSConfig(certfile=chain.leaf_and_issuing, keyfile=chain.key,
                           peer_certificate="none")

    async def main() -> None:
        async with running_server(tls=server_tls) as server:
            client = associate(LOOPBACK, server.port, tls=TLSConfig(cafile=chain.root))
            async with client as assoc:
                assert (await assoc.echo()).code == 0

    run(main())
