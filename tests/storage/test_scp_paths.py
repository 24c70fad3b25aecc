"""Path safety through the storage SCP: no value a peer sends chooses where a file goes.

Hostile Affected SOP Instance UIDs (in the C-STORE-RQ), hostile Study and Series
Instance UIDs (in the data set) and hostile calling AE titles are sent over a
raw association (every byte chosen here; dicomnet's own encoder refuses most of
them). Each must be answered with a failure status, create nothing outside the
storage root, and leave no partial file.
"""

from __future__ import annotations

import logging
import struct
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import ImplicitVRLittleEndian

from dicomnet.dimse.messages import CStoreRSP, DimseMessage
from dicomnet.services.storage import INDEX_NAME, StorageSCP
from dicomnet.services.verification import VerificationSCP
from dicomnet.storage.index import StorageIndex
from dicomnet.ul.negotiation import ContextRequest
from tests.aio.helpers import run, running_server, wait_until
from tests.storage.dicomfiles import SECONDARY_CAPTURE, uid
from tests.storage.rawscu import RawAssociation, implicit_element, store_command

GOOD_SOP = uid(9, 77)
GOOD_STUDY = uid(1, 77)
GOOD_SERIES = uid(2, 77)
CONTEXTS = [ContextRequest(SECONDARY_CAPTURE, (ImplicitVRLittleEndian,))]
INDEX_FILES = {INDEX_NAME, INDEX_NAME + "-wal", INDEX_NAME + "-shm"}


def hostile_uids(tmp_path: Path) -> dict[str, str]:
    """Name -> value. The absolute paths point into tmp_path (we may run as root: a bug
    must not be able to clobber a system file), plus /etc/passwd itself, which a
    vulnerable SCP would turn into /etc/passwd.dcm, never into /etc/passwd."""
    return {
        "dotdot-x": "../x",
        "dotdot": "..",
        "dot": ".",
        "deep-dotdot": "1.2.3/../../../escape",
        "etc-passwd": "/etc/passwd",
        "absolute-tmp": str(tmp_path / "absolute-target"),
        "slash": "a/b",
        "backslash": "..\\..\\x",
        "nul": "1.2\x00/../x",
        "overlong": "1." + "2" * 100,
        "empty": "",
        "hidden": ".dicomnet-part",
        "tilde": "~",
        "letters": "1.2.abc",
    }


HOSTILE_NAMES = list(hostile_uids(Path("/nonexistent")))


def dataset_bytes(*, sop: str, study: str, series: str) -> bytes:
    """A small Implicit VR Little Endian data set, any UID bytes allowed."""
    return b"".join([
        implicit_element(0x00080016, SECONDARY_CAPTURE.encode()),
        implicit_element(0x00080018, sop.encode("latin-1")),
        implicit_element(0x00080060, b"OT"),
        implicit_element(0x00100020, b"PATH-TEST"),
        implicit_element(0x0020000D, study.encode("latin-1")),
        implicit_element(0x0020000E, series.encode("latin-1")),
        implicit_element(0x00280010, struct.pack("<H", 2)),
        implicit_element(0x00280011, struct.pack("<H", 2)),
        implicit_element(0x7FE00010, b"\x01\x02\x03\x04"),
    ])


def snapshot(tmp_path: Path) -> set[str]:
    return {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")}


def assert_failure(outcome: DimseMessage | str, what: str) -> int:
    """A C-STORE-RSP with a failure status (PS3.4 B.2.3), never Success or a Warning."""
    assert isinstance(outcome, CStoreRSP), f"{what}: no C-STORE-RSP but {outcome!r}"
    status = outcome.status
    assert status != 0 and status & 0xF000 != 0xB000, f"{what}: status 0x{status:04X}"
    return status


def store(root: Path, sop_in_command: str, dataset: bytes,
          calling_ae_title: bytes = b"RAWSCU") -> DimseMessage | str:
    """One C-STORE over a raw association to a StorageSCP(root); the response (or
    "aborted"/"closed"), once the server has ended the association."""

    async def scenario() -> DimseMessage | str:
        scp = StorageSCP(root)
        try:
            async with running_server(providers=[VerificationSCP(), scp]) as server:
                assoc = await RawAssociation.open(server.port, CONTEXTS,
                                                  calling_ae_title=calling_ae_title)
                ctx = assoc.context_id(SECONDARY_CAPTURE)
                await assoc.send_store(
                    ctx, store_command(SECONDARY_CAPTURE.encode(),
                                       sop_in_command.encode("latin-1")), dataset)
                outcome = await assoc.outcome()
                if isinstance(outcome, str):
                    await assoc.close()
                else:
                    await assoc.release()
                await wait_until(lambda: server.active_associations == 0 and not server._tasks,
                                 "the association to end")
                return outcome
        finally:
            scp.close()

    return run(scenario())


def assert_nothing_stored(tmp_path: Path, root: Path, before: set[str]) -> None:
    after = snapshot(tmp_path)
    outside = {p for p in after - before if not p.startswith("root/")}
    assert outside == set(), f"created outside the root: {outside}"
    inside = {p.relative_to(root).as_posix() for p in root.rglob("*")} - INDEX_FILES
    assert inside == set(), f"left in the root: {inside}"
    assert not Path("/etc/passwd.dcm").exists()
    with StorageIndex(root / INDEX_NAME) as index:
        assert index.count()["instances"] == 0


# pydicom warns when it decodes an invalid UI value. The suite turns warnings into
# errors, which is what pydicom's reading_validation_mode=RAISE does too; in a
# default deployment the warning is only logged and dicomnet's own UID check must
# refuse the value. Both paths are tested.
PYDICOM_VALIDATION = [
    pytest.param("raise", id="pydicom-raises"),
    pytest.param("warn", id="pydicom-warns",
                 marks=pytest.mark.filterwarnings("ignore:.*Invalid value for VR UI")),
]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
@pytest.mark.parametrize("validation", PYDICOM_VALIDATION)
def test_hostile_sop_instance_uid_in_command(
    tmp_path: Path, root: Path, name: str, validation: str
) -> None:
    value = hostile_uids(tmp_path)[name]
    before = snapshot(tmp_path)
    outcome = store(root, value, dataset_bytes(sop=value, study=GOOD_STUDY, series=GOOD_SERIES))
    if name == "empty":
        # Affected SOP Instance UID is mandatory in a C-STORE-RQ (PS3.7 9.3.1.1): the
        # DIMSE layer refuses the command itself with an A-ABORT (invalid DIMSE data).
        assert outcome == "aborted"
    else:
        assert_failure(outcome, name)
    assert_nothing_stored(tmp_path, root, before)


@pytest.mark.parametrize("name", HOSTILE_NAMES)
@pytest.mark.parametrize("field", ["study", "series"])
@pytest.mark.parametrize("validation", PYDICOM_VALIDATION)
def test_hostile_study_or_series_uid_in_dataset(
    tmp_path: Path, root: Path, name: str, field: str, validation: str
) -> None:
    value = hostile_uids(tmp_path)[name]
    uids = {"study": GOOD_STUDY, "series": GOOD_SERIES, field: value}
    before = snapshot(tmp_path)
    outcome = store(root, GOOD_SOP, dataset_bytes(sop=GOOD_SOP, **uids))
    assert_failure(outcome, f"{field} {name}")
    assert_nothing_stored(tmp_path, root, before)


def test_sop_instance_uid_differing_from_the_command_is_refused(
    tmp_path: Path, root: Path
) -> None:
    before = snapshot(tmp_path)
    outcome = store(root, GOOD_SOP,
                    dataset_bytes(sop=uid(9, 78), study=GOOD_STUDY, series=GOOD_SERIES))
    assert assert_failure(outcome, "mismatch") == 0xA900
    assert_nothing_stored(tmp_path, root, before)


def test_control_values_are_stored_where_expected(tmp_path: Path, root: Path) -> None:
    """The same raw path with valid values succeeds: the refusals above are not blanket."""
    outcome = store(root, GOOD_SOP,
                    dataset_bytes(sop=GOOD_SOP, study=GOOD_STUDY, series=GOOD_SERIES))
    assert isinstance(outcome, CStoreRSP) and outcome.status == 0
    stored = root / GOOD_STUDY / GOOD_SERIES / f"{GOOD_SOP}.dcm"
    assert dcmread(stored).SOPInstanceUID == GOOD_SOP


# Calling AE titles are never path components, but they are written into the file
# meta (Source Application Entity Title): printable titles that look like paths
# are stored normally, inside the root; titles the AE VR cannot hold are refused.
PATHLIKE_AE_TITLES = [b"../../../escape", b"/etc/passwd", b"..", b"~root", b"%2e%2e%2fx"]
INVALID_AE_TITLES = [b"a\\b", b"\x01\x02evil", b"\xff\xfe", b" " * 16, b"ab\x7fcd"]


@pytest.mark.parametrize("title", PATHLIKE_AE_TITLES, ids=lambda t: t.decode())
def test_path_like_calling_ae_title_changes_no_path(
    tmp_path: Path, root: Path, title: bytes
) -> None:
    before = snapshot(tmp_path)
    outcome = store(root, GOOD_SOP,
                    dataset_bytes(sop=GOOD_SOP, study=GOOD_STUDY, series=GOOD_SERIES),
                    calling_ae_title=title)
    assert isinstance(outcome, CStoreRSP) and outcome.status == 0
    new = snapshot(tmp_path) - before
    expected = {f"root/{GOOD_STUDY}", f"root/{GOOD_STUDY}/{GOOD_SERIES}",
                f"root/{GOOD_STUDY}/{GOOD_SERIES}/{GOOD_SOP}.dcm"}
    assert new - {f"root/{n}" for n in INDEX_FILES} == expected
    stored = dcmread(root / GOOD_STUDY / GOOD_SERIES / f"{GOOD_SOP}.dcm")
    assert stored.file_meta.SourceApplicationEntityTitle == title.decode()
    with StorageIndex(root / INDEX_NAME) as index:
        row = index.get_instance(GOOD_SOP)
        assert row is not None and row.calling_ae == title.decode()


@pytest.mark.parametrize("title", INVALID_AE_TITLES, ids=repr)
def test_invalid_calling_ae_title_is_refused(tmp_path: Path, root: Path, title: bytes) -> None:
    """Rejected at association (A-ASSOCIATE-RJ or abort) or the C-STORE fails: either way
    nothing is stored."""
    before = snapshot(tmp_path)
    try:
        outcome = store(root, GOOD_SOP,
                        dataset_bytes(sop=GOOD_SOP, study=GOOD_STUDY, series=GOOD_SERIES),
                        calling_ae_title=title)
    except AssertionError as exc:
        assert "association not accepted" in str(exc) or "IncompleteRead" in repr(exc), exc
    else:
        assert_failure(outcome, repr(title))
    assert_nothing_stored(tmp_path, root, before)


def test_a_uid_with_a_line_break_writes_one_log_line(
        root: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The refusal's log line quotes an Affected SOP Instance UID that is not plain
    printable text (as the UID check's own message does), so that a peer cannot
    forge a second line. '1.2.3\\nERROR dicomnet.services ...' was written as is:
    two lines in the server's log, the second one the peer's."""
    forged = "1.2.3\nERROR dicomnet.services forged"
    with caplog.at_level(logging.WARNING, logger="dicomnet.services"):
        outcome = store(root, forged, dataset_bytes(sop=forged, study=GOOD_STUDY,
                                                     series=GOOD_SERIES))
    assert assert_failure(outcome, "line break") == 0xC000
    (line,) = [r.getMessage() for r in caplog.records if "refused, status" in r.getMessage()]
    assert "\n" not in line
    assert line.startswith("C-STORE '1.2.3\\nERROR dicomnet.services forged' from RAWSCU@")
