"""A sender whose long PDVs arrive a few hundred bytes at a time (small TLS
records, small TCP writes) is served, not aborted as "a flood of PDVs": DIMSE
counts the PDVs it was sent, not the reads that brought them
(tests/dimse/test_pdv_stretches.py). Found by the ``server_receive`` fuzz target
(tests/fuzz_harness/server.py): a C-STORE of 1 MB in PDVs of 64 KiB, written
over TLS in pieces of 1-256 bytes, was aborted after 1,025 records."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from dicomnet.dimse.messages import CStoreRSP
from dicomnet.storage.part10 import read_part10
from dicomnet.ul.pdu import encode_pdata
from tests.aio.helpers import Pki, PkiFactory
from tests.fuzz_harness.server import data_set
from tests.storage.rawscu import RawAssociation
from tests.storage.rawstore import raw_store


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return PkiFactory(tmp_path_factory.mktemp("small-reads-pki"))("ecdsa")


@pytest.mark.parametrize("secure", [True, False], ids=["tls", "plain"])
def test_long_pdvs_written_in_small_pieces_are_stored(tmp_path: Path, pki: Pki,
                                                       secure: bool) -> None:
    """A 400 KB data set in PDVs of 16,372 bytes (DCMTK's default PDU), every byte
    after the command written 100 at a time with the loop turning in between (a
    TLS record each): thousands of reads of PDV data, against 1,024 PDVs free of the
    flood rule. Answered Success and stored byte for byte."""
    sop, body = data_set(1, 0, 400_000)

    async def send(assoc: RawAssociation, context_id: int, data_set: bytes) -> None:
        size = 16372
        stream = b"".join(
            encode_pdata(context_id, False, start + size >= len(data_set),
                         data_set[start:start + size])
            for start in range(0, len(data_set), size))
        for start in range(0, len(stream), 100):
            assoc.writer.write(stream[start:start + 100])
            await asyncio.sleep(0)

    outcome = raw_store(tmp_path / "store", sop, body, send=send,
                        server_tls=pki.server_tls() if secure else None,
                        client_tls=pki.client_tls() if secure else None)
    assert isinstance(outcome, CStoreRSP) and outcome.status == 0, outcome
    stored = list((tmp_path / "store").rglob(f"{sop}.dcm"))
    assert len(stored) == 1
    assert stored[0].read_bytes()[read_part10(stored[0]).dataset_offset:] == body
