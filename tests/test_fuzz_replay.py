"""The fuzz targets (tests/fuzz_harness, run under atheris by hand) replayed on fixed
inputs, deterministic and without atheris: each target's seeds, and the inputs
the fuzzer once found (a harness that stops judging them fails here)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.aio.test_refused_long_uids import LONG, find_rq
from tests.fuzz_harness import client, server
from tests.fuzz_harness.targets import TARGETS

#: Inputs atheris found, by target: each one failed once (the product, or the
#: harness's own judgement), and is kept to replay.
FOUND: dict[str, list[bytes]] = {
    # A C-STORE-RSP whose Error Comment holds byte B0: read with a replacement
    # character (by design), which our encoder rightly refuses to send again.
    "dimse_command": [bytes.fromhex(
        "00000000040000007600000000000200" "1a000000302e322e3834302e31303030"
        "382e352e312e342e312e312e32000000" "00010200000001800000200102000000"
        "07000000000802000000010100000009" "0200000000a700000109040000001000"
        "10000000020908000000" "6eb020726f306d20" "000000100800000031" "2e322e332e3400"),
        # A request naming a SOP Class UID of 120 characters: read as sent, refused
        # with a response that echoed it and did not encode (the server aborted).
        find_rq(LONG)],
    # A P-DATA-TF cut inside its PDV's data, byte by byte: streamed, its first bytes
    # are handed on (by design), held whole nothing is yet.
    "framer": [bytes.fromhex("01" "04 00 00008709" "00000007 01 03" "010203")],
    # Implicit VR (syntax byte FF), whose first tag is (FFFF,FFFF): scan_elements
    # stops before it (its end_tag), reading nothing; not an element cut short.
    "dataset": [bytes.fromhex(
        "ff" "ff" "ffffffff" "ff070000" "0031000008" "0016001a000000"
        "312e322e3834302e3130302e322e30382e35"),
        # Deflated (syntax 2), cut as mode 2 says: an unlisted VR "UH" of length 0,
        # then zeros. Taken as whole when cut, malformed whole (completeness fix).
        bytes.fromhex("0202" "e360106308f5606060606060606060a00100000001000000"),
        # Big Endian (syntax byte 2B), fed a byte at a time (mode 1): unlisted VRs "UU"
        # of 2-byte length 0, more readings than MAX_READINGS. Refused whole, taken
        # as whole cut: the bound counted readings alive, which depends on the cut.
        bytes.fromhex(
            "2b010801020055550000ffffffff41410000000000000001020055550000ffff"
            "ffff4141000000000000001e2088435310005c493b5331303101080102ffffff"
            "ffffffff000055550000ffffffff306e")],
    # Implicit VR on an Explicit VR context, its first tag (0200,0100): bytes 00 02,
    # which is group 0002 only in Big Endian.
    "store_sink": [bytes.fromhex("01" "08" "00020001") + bytes(86),
                   # JPEG Baseline (syntax 4): refused whole, stored when cut (the same
                   # completeness fix).
                   bytes.fromhex(
                       "0402" "0800160055510000ffffffff" "55512d00ffffffff" "feff0010"
                       "0055510000ffffffff" "feff00100008000001" "00104c081a0032ffffffffff"
                       "13000000ff01000000000000000000")],
    # TLS, C-STOREs of 70 KB, 1 MB and 70 KB in PDVs of 65,530 bytes, written 1-256
    # bytes at a time: aborted as "a flood of PDVs", each TLS record counted as one
    # (tests/dimse/test_pdv_stretches.py).
    "server_receive": [bytes.fromhex("920508050502050000000000")],
    # Two bytes changed by the SCP: one in its A-ASSOCIATE-AC, one in the length of
    # the P-DATA-TF holding the first response, now past the stream's end. The
    # client reads the whole PDV in it (streamed P-DATA, by design) and reports
    # its Success; the harness's own reading held PDUs whole and saw no response.
    "client_store": [bytes.fromhex("0100020002000003ff0100f8c8282c01004037010002")],
}


@pytest.fixture(scope="module", autouse=True)
def _server_closed() -> Iterator[None]:
    """The server ``server_receive`` starts at its first input, and the loop and
    files of ``client_store``, ended after the last."""
    yield
    server.close()
    client.close()


def _cases() -> list[tuple[str, bytes]]:
    cases = [(name, seed) for name, (_, seeds) in TARGETS.items() for seed in seeds()]
    return cases + [(name, data) for name, found in FOUND.items() for data in found]


@pytest.mark.parametrize(("name", "data"), _cases(),
                         ids=lambda value: value if isinstance(value, str) else "")
def test_fuzz_target_holds_on_a_fixed_input(name: str, data: bytes) -> None:
    # Each of these two counts the process's open files: the other's loop and
    # server are ended first (made again, if need be, at its next input).
    if name != "server_receive":
        server.close()
    if name != "client_store":
        client.close()
    target, _ = TARGETS[name]
    target(data)
