"""Review 28: Wireshark's DICOM dissector (tshark) as a third-party judge of the
bytes dicomnet sends and answers.

A relay on loopback records what a dicomnet client and a dicomnet server say to
each other; the recording is written as a pcap (Ethernet, IPv4, TCP: the
headers made up here, the payloads as they went) and read by tshark, which must
find no malformed PDU and no DICOM expert item other than those the scenario
asks for (an A-ASSOCIATE-RJ, an A-ABORT), and must read the fields we mean.
No live capture: no privileges, no timing. Under CI=true a missing tshark
fails (``apt-get install tshark``).

Known dissector quirk, not ours (DCMTK's storescp answers the same way): an
answer on a context whose transfer syntax is encapsulated (RLE, JPEG 2000) is
shown as "Command" with nonsense elements; the tests do not count on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import struct
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless

from dicomnet.aio.client import open_association
from dicomnet.errors import AssociationRejected
from dicomnet.services.storage import StorageSCP, store_paths
from dicomnet.services.verification import VerificationSCP
from dicomnet.ul.negotiation import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME
from dicomnet.ul.user_information import UserIdentityRQSubItem
from tests.aio.helpers import LOOPBACK, run, running_server
from tests.interop.conftest import _missing
from tests.storage.dicomfiles import CT_IMAGE_STORAGE, make_image, write_part10

pytestmark = pytest.mark.interop
SERVER_AE = "DICOMNET-SCP"
#: The server's port as the pcap says (tshark is told it is DICOM).
PCAP_PORT = 11112


@pytest.fixture(scope="module")
def tshark() -> str:
    path = shutil.which("tshark")
    if path is None:
        _missing("tshark (apt-get install tshark)")
    return str(path)


# -- recording -----------------------------------------------------------------------------

class Recorder:
    """A TCP relay on loopback to ``target`` keeping, per connection, every chunk
    in the order it arrived: (from the client?, bytes)."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.connections: list[list[tuple[bool, bytes]]] = []
        self.port = 0

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        chunks: list[tuple[bool, bytes]] = []
        self.connections.append(chunks)
        up_reader, up_writer = await asyncio.open_connection(LOOPBACK, self.target)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter,
                       from_client: bool) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await src.read(1 << 16):
                    chunks.append((from_client, data))
                    dst.write(data)
                    await dst.drain()
            if not dst.transport.is_closing():
                dst.close()

        await asyncio.gather(pump(reader, up_writer, True), pump(up_reader, writer, False))

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Recorder]:
        server = await asyncio.start_server(self._relay, LOOPBACK, 0)
        self.port = server.sockets[0].getsockname()[1]
        try:
            yield self
        finally:
            server.close()
            await server.wait_closed()


def _ip_checksum(header: bytes) -> int:
    total = sum(int.from_bytes(header[i:i + 2], "big") for i in range(0, len(header), 2))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def write_pcap(path: Path, connections: list[list[tuple[bool, bytes]]]) -> None:
    """The connections as a classic pcap (LINKTYPE_ETHERNET): each opened by a
    three-way handshake, its chunks as segments of at most 60000 bytes with
    consistent sequence and acknowledgement numbers, closed by FINs. The TCP
    checksums are left 0 (tshark does not check them by default)."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)]
    tick = 0

    def packet(from_client: bool, client_port: int, seq: int, ack: int, *, flags: int,
               payload: bytes = b"") -> None:
        nonlocal tick
        sport, dport = (client_port, PCAP_PORT) if from_client else (PCAP_PORT, client_port)
        tcp = struct.pack(">HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                          5 << 4, flags, 65535, 0, 0)
        src, dst = (b"\x7f\x00\x00\x01", b"\x7f\x00\x00\x02")[::1 if from_client else -1]
        ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp) + len(payload), 0, 0x4000,
                         64, 6, 0, src, dst)
        ip = ip[:10] + struct.pack(">H", _ip_checksum(ip)) + ip[12:]
        ether = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00"
        frame = ether + ip + tcp + payload
        tick += 1
        out.append(struct.pack("<IIII", tick // 1000, (tick % 1000) * 1000, len(frame),
                               len(frame)) + frame)

    syn, ack_flag, psh, fin = 0x02, 0x10, 0x08, 0x01
    for index, chunks in enumerate(connections):
        port = 40000 + index
        seq = {True: 1000, False: 5000}
        packet(True, port, seq[True], 0, flags=syn)
        packet(False, port, seq[False], seq[True] + 1, flags=syn | ack_flag)
        seq[True] += 1
        seq[False] += 1
        packet(True, port, seq[True], seq[False], flags=ack_flag)
        for from_client, data in chunks:
            for start in range(0, len(data), 60000):
                piece = data[start:start + 60000]
                packet(from_client, port, seq[from_client], seq[not from_client],
                       flags=psh | ack_flag, payload=piece)
                seq[from_client] += len(piece)
        packet(True, port, seq[True], seq[False], flags=fin | ack_flag)
        packet(False, port, seq[False], seq[True] + 1, flags=fin | ack_flag)
        packet(True, port, seq[True] + 1, seq[False] + 1, flags=ack_flag)
    path.write_bytes(b"".join(out))


# -- reading -------------------------------------------------------------------------------

def _tshark(tshark: str, pcap: Path, *args: str) -> str:
    done = subprocess.run([tshark, "-n", "-r", str(pcap), "-d", f"tcp.port=={PCAP_PORT},dicom",
                           *args], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def dicom_expert_items(tshark: str, pcap: Path) -> list[str]:
    """The expert items tshark raised on the DICOM layer, and any malformed packet,
    as "Group: Summary" (``-z expert``)."""
    found = []
    for line in _tshark(tshark, pcap, "-q", "-z", "expert").splitlines():
        row = re.match(r"\s+\d+\s+(\S+)\s+(\S+)\s+(.*)$", line)
        if row and (row[2] == "DICOM" or "alformed" in line):
            found.append(f"{row[1]}: {row[3].strip()}")
    return found


def fields(tshark: str, pcap: Path, *names: str, where: str = "dicom") -> list[list[str]]:
    """One row per packet matching ``where``: each field's values joined by commas."""
    args = ["-Y", where, "-T", "fields", "-E", "separator=\t", "-E", "occurrence=a"]
    for name in names:
        args += ["-e", name]
    return [line.split("\t") for line in _tshark(tshark, pcap, *args).splitlines()]


# -- scenarios -----------------------------------------------------------------------------

def test_a_store_with_a_window_several_contexts_and_a_data_set_over_pdus(
        tmp_path: Path, tshark: str) -> None:
    """Four objects in one association (Explicit, Implicit, RLE, and one of 2 MB,
    more than a 1 MiB PDU), with a window of 8 proposed: tshark finds nothing
    malformed and no DICOM expert item; it reads four C-STORE-RQs, our
    Implementation Class UID and Version Name on both sides, the window granted
    as the request's point of view has it (8 the requestor may invoke, 1 it may
    perform, PS3.7 D.3.3.3.2), every P-DATA-TF within the 1 MiB each side
    announced, and the 2 MB data set in fragments flagged "data, not last"
    before the last one (PS3.8 E.2)."""
    files = [write_part10(tmp_path / "in" / "explicit.dcm", make_image(1), ExplicitVRLittleEndian),
             write_part10(tmp_path / "in" / "implicit.dcm",
                          make_image(2, sop_class_uid=CT_IMAGE_STORAGE), ImplicitVRLittleEndian),
             write_part10(tmp_path / "in" / "rle.dcm", make_image(3), RLELossless),
             write_part10(tmp_path / "in" / "big.dcm", make_image(4, rows=1500, columns=1400),
                          ExplicitVRLittleEndian)]
    (tmp_path / "out").mkdir()

    async def scenario() -> list[bool]:
        scp = StorageSCP(tmp_path / "out")
        try:
            async with running_server(ae_title=SERVER_AE, providers=[VerificationSCP(), scp]
                                      ) as server, Recorder(server.port).running() as rec:
                results = await store_paths(LOOPBACK, rec.port, files, called_ae_title=SERVER_AE,
                                            max_async_operations=8)
                await asyncio.sleep(0.1)  # the relay's last chunks (the release) recorded
                write_pcap(tmp_path / "store.pcap", rec.connections)
                return [r.ok for r in results]
        finally:
            scp.close()

    assert run(scenario()) == [True] * 4
    pcap = tmp_path / "store.pcap"
    assert dicom_expert_items(tshark, pcap) == []
    info = " ".join(row[0] for row in fields(tshark, pcap, "_ws.col.Info"))
    assert len(re.findall(r"C-STORE-RQ ID=\d+", info)) == 4
    associate = fields(tshark, pcap, "dicom.pdu.type", "dicom.userinfo.uid",
                       "dicom.userinfo.version", "dicom.max_pdu_len",
                       "dicom.userinfo.asyncneg.maxnumopsinv",
                       "dicom.userinfo.asyncneg.maxnumopsper",
                       where="dicom.pdu.type == 1 || dicom.pdu.type == 2")
    assert [row[0] for row in associate] == ["0x01", "0x02"]
    for row in associate:
        assert row[1:4] == [IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME, "1048576"]
    assert associate[0][4:] == ["8", "1"]  # proposed: invoke 8, perform 1
    assert associate[1][4:] == ["8", "1"]  # granted from the requestor's side
    pdvs = fields(tshark, pcap, "dicom.pdu.len", "dicom.pdv.flags", where="dicom.pdu.type == 4")
    lengths = [int(n) for row in pdvs for n in row[0].split(",")]
    flags = [f for row in pdvs for f in row[1].split(",")]
    assert max(lengths) <= 1048576
    assert set(flags) <= {"0x00", "0x02", "0x03"}  # data, data last, command last
    assert "0x00" in flags  # the 2 MB data set went in more than one PDV


def test_rejection_abort_and_user_identity_as_tshark_reads_them(
        tmp_path: Path, tshark: str) -> None:
    """A wrong called AE title: A-ASSOCIATE-RJ read as rejected-permanent, by the
    service-user, "called AE title not recognized" (PS3.8 9.3.4: 1, 1, 7); a user
    identity (username and passcode, PS3.7 D.3.3.7) read whole; our A-ABORT read
    as the service-user's (PS3.8 9.3.8: source 0). The only DICOM expert items
    are the rejection and the abort."""
    async def scenario() -> None:
        async with running_server(ae_title=SERVER_AE, providers=[VerificationSCP()],
                                  require_called_ae_title=True
                                  ) as server, Recorder(server.port).running() as rec:
            with pytest.raises(AssociationRejected):
                await open_association(LOOPBACK, rec.port, called_ae_title="WRONG-AE")
            assoc = await open_association(
                LOOPBACK, rec.port, called_ae_title=SERVER_AE,
                user_identity=UserIdentityRQSubItem(2, False, b"alice", b"secret"))
            assert (await assoc.echo()).is_success
            await assoc.abort()
            await asyncio.sleep(0.1)
            write_pcap(tmp_path / "ends.pcap", rec.connections)

    run(scenario())
    pcap = tmp_path / "ends.pcap"
    assert sorted(dicom_expert_items(tshark, pcap)) == [
        "Response: Association aborted", "Response: Association rejected"]
    rejected = fields(tshark, pcap, "dicom.assoc.reject.result", "dicom.assoc.reject.source",
                      "dicom.assoc.reject.reason", where="dicom.pdu.type == 3")
    assert rejected == [["1", "1", "7"]]
    identity = fields(tshark, pcap, "dicom.userinfo.user_identify.type",
                      "dicom.userinfo.user_identify.primary_field",
                      "dicom.userinfo.user_identify.secondary_field",
                      where="dicom.userinfo.user_identify")
    assert identity == [["2", "alice", "secret"]]
    aborted = fields(tshark, pcap, "dicom.assoc.abort.source", where="dicom.pdu.type == 7")
    assert aborted == [["0"]]
