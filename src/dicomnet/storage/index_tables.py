"""The index's tables (PS3.4 C.6.1: patient, study, series, instance) in SQL: their
schema, and how one stored instance's row and its parents are written into
them, and pruned when left empty; and the SQL of a query key's matching (PS3.4
C.2.2.2). :mod:`~dicomnet.storage.index` runs these inside its transactions."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from dicomnet.storage.files import StorageError
from dicomnet.storage.header import PLAIN_CHARSETS, HeaderAttributes
from dicomnet.storage.names import safe_relative_path
from dicomnet.storage.rows import ROW_KEYWORDS, NewInstance

__all__ = ["SCHEMA", "RowValues", "attribute_text", "insert_row", "match_condition", "prune_series",
           "row_values"]

SCHEMA = """
CREATE TABLE schema_version (version INTEGER NOT NULL);
CREATE TABLE patient (
    patient_id TEXT PRIMARY KEY,
    patient_name TEXT,
    patient_birth_date TEXT,
    patient_sex TEXT
);
CREATE TABLE study (
    study_uid TEXT PRIMARY KEY,
    patient_id TEXT NOT NULL REFERENCES patient(patient_id),
    study_date TEXT,
    study_time TEXT,
    accession_number TEXT,
    study_id TEXT,
    study_description TEXT,
    referring_physician_name TEXT
);
CREATE INDEX study_patient ON study(patient_id);
CREATE INDEX study_date ON study(study_date);
CREATE INDEX study_accession ON study(accession_number);
CREATE TABLE series (
    series_uid TEXT PRIMARY KEY,
    study_uid TEXT NOT NULL REFERENCES study(study_uid),
    modality TEXT,
    series_number TEXT,
    series_description TEXT
);
CREATE INDEX series_study ON series(study_uid);
CREATE TABLE instance (
    sop_instance_uid TEXT PRIMARY KEY,
    series_uid TEXT NOT NULL REFERENCES series(series_uid),
    sop_class_uid TEXT NOT NULL,
    instance_number TEXT,
    transfer_syntax_uid TEXT NOT NULL,
    relative_path TEXT NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    sha256 TEXT,
    received_at TEXT NOT NULL,
    calling_ae TEXT NOT NULL,
    peer_fingerprint TEXT
);
CREATE INDEX instance_series ON instance(series_uid);
"""


def attribute_text(ds: Dataset | HeaderAttributes, keyword: str) -> str | None:
    """Return an attribute as text (multiple values joined by ``\\``), or None.

    Raw (not yet decoded) values in a single-byte or UTF-8 character set are
    decoded straight from their bytes: for the few text attributes an index
    row needs this is the same text, at a fraction of the cost of pydicom's
    value conversion (about a millisecond per stored object).
    """
    if isinstance(ds, HeaderAttributes):
        return ds.text(keyword)
    element = ds.get_item(keyword)
    if element is None:
        return None
    raw = getattr(element, "value", None)
    if isinstance(raw, bytes) and getattr(element, "VR", None) not in (None, "SQ"):
        charsets = ds.get_item("SpecificCharacterSet")
        charset_raw = getattr(charsets, "value", b"") if charsets is not None else b""
        charset = (charset_raw.decode("ascii", "replace") if isinstance(charset_raw, bytes)
                   else str(charset_raw or "")).strip(" \0")
        encoding = PLAIN_CHARSETS.get(charset)
        if encoding is not None:
            text = raw.decode(encoding, "replace").strip(" \0")
            return text or None
    value = ds.get(keyword)
    if value is None:
        return None
    if isinstance(value, MultiValue | list | tuple):
        text = "\\".join(str(v) for v in value)
    else:
        text = str(value)
    return text or None


@dataclass(slots=True)
class RowValues:
    """Everything one instance's row writes: its own values and its parents'.
    Not frozen, though nothing changes one: a frozen one's ``__init__`` sets each
    field through ``object.__setattr__``, once per row on the index thread."""

    sop_uid: str
    study_uid: str
    series_uid: str
    patient: tuple[str, str | None, str | None, str | None]
    study: tuple[str, str, str | None, str | None, str | None, str | None, str | None,
                 str | None]
    series: tuple[str, str, str | None, str | None, str | None]
    instance: tuple[object, ...]


def row_values(row: NewInstance) -> RowValues:
    """Everything one instance writes, read and checked before any transaction."""
    safe_relative_path(row.relative_path)
    ds = row.ds
    values = (ds.texts(ROW_KEYWORDS) if isinstance(ds, HeaderAttributes)
              else [attribute_text(ds, keyword) for keyword in ROW_KEYWORDS])
    (sop_uid, study_uid, series_uid, sop_class_uid, instance_number, patient_id,
     patient_name, birth_date, sex, study_date, study_time, accession, study_id,
     study_description, referring, modality, series_number, series_description) = values
    if sop_uid is None or study_uid is None or series_uid is None:
        missing = [name for name, value in (("SOPInstanceUID", sop_uid),
                                            ("StudyInstanceUID", study_uid),
                                            ("SeriesInstanceUID", series_uid)) if value is None]
        raise StorageError(f"cannot index a data set without {', '.join(missing)}")
    patient_id = patient_id or ""
    # Now is UTC already: no astimezone (a built-in call per row) for it.
    when = datetime.now(UTC) if row.received_at is None else row.received_at.astimezone(UTC)
    return RowValues(
        sop_uid=sop_uid, study_uid=study_uid, series_uid=series_uid,
        patient=(patient_id, patient_name, birth_date, sex),
        study=(study_uid, patient_id, study_date, study_time, accession, study_id,
               study_description, referring),
        series=(series_uid, study_uid, modality, series_number, series_description),
        instance=(sop_uid, series_uid, sop_class_uid or "", instance_number,
                  row.transfer_syntax_uid, row.relative_path, row.size, row.sha256,
                  when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), row.calling_ae,
                  row.peer_fingerprint),
    )


def insert_row(db: sqlite3.Connection, values: RowValues,
            previous: RowValues | None = None) -> None:
    """Upsert one instance and its parents, inside the caller's transaction.

    ``previous``: the row inserted just before in the same transaction. When its
    patient, study and series values are the same (a series arriving), those
    parents are already exactly as this row would leave them, and only the
    instance is written: a third of the statements.
    """
    sop_uid, study_uid, series_uid = values.sop_uid, values.study_uid, values.series_uid
    patient_id = values.patient[0]
    # Where the rows hang now: an upsert may move them (a re-sent
    # instance with other parent UIDs), leaving old parents empty.
    old_series = db.execute(
        "SELECT series_uid FROM instance WHERE sop_instance_uid = ?", (sop_uid,)
    ).fetchone()
    if (previous is not None and previous.series == values.series
            and previous.study == values.study and previous.patient == values.patient):
        db.execute(_UPSERT_INSTANCE, values.instance)  # no function: a call per row
        if old_series is not None and old_series[0] != series_uid:
            prune_series(db, old_series[0])
        return
    old_study = db.execute(
        "SELECT study_uid FROM series WHERE series_uid = ?", (series_uid,)
    ).fetchone()
    old_patient = db.execute(
        "SELECT patient_id FROM study WHERE study_uid = ?", (study_uid,)
    ).fetchone()
    db.execute(
        "INSERT INTO patient VALUES (?, ?, ?, ?) ON CONFLICT(patient_id) DO UPDATE SET "
        "patient_name = excluded.patient_name, "
        "patient_birth_date = excluded.patient_birth_date, "
        "patient_sex = excluded.patient_sex",
        values.patient,
    )
    db.execute(
        "INSERT INTO study VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT(study_uid) DO UPDATE SET patient_id = excluded.patient_id, "
        "study_date = excluded.study_date, study_time = excluded.study_time, "
        "accession_number = excluded.accession_number, "
        "study_id = excluded.study_id, "
        "study_description = excluded.study_description, "
        "referring_physician_name = excluded.referring_physician_name",
        values.study,
    )
    db.execute(
        "INSERT INTO series VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT(series_uid) DO UPDATE SET study_uid = excluded.study_uid, "
        "modality = excluded.modality, series_number = excluded.series_number, "
        "series_description = excluded.series_description",
        values.series,
    )
    db.execute(_UPSERT_INSTANCE, values.instance)
    # Drop parents that became empty so counts and C-FIND stay truthful.
    if old_series is not None and old_series[0] != series_uid:
        prune_series(db, old_series[0])
    if old_study is not None and old_study[0] != study_uid:
        _prune_study(db, old_study[0])
    if old_patient is not None and old_patient[0] != patient_id:
        _prune_patient(db, old_patient[0])


#: An instance's row written, in :func:`insert_row`.
_UPSERT_INSTANCE = (
    "INSERT INTO instance VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT(sop_instance_uid) DO UPDATE SET series_uid = excluded.series_uid, "
    "sop_class_uid = excluded.sop_class_uid, "
    "instance_number = excluded.instance_number, "
    "transfer_syntax_uid = excluded.transfer_syntax_uid, "
    "relative_path = excluded.relative_path, size = excluded.size, "
    "sha256 = excluded.sha256, received_at = excluded.received_at, "
    "calling_ae = excluded.calling_ae, peer_fingerprint = excluded.peer_fingerprint"
)


def prune_series(db: sqlite3.Connection, series_uid: str) -> None:
    """Remove ``series_uid`` if it has no instances, then its parents if empty."""
    row = db.execute("SELECT study_uid FROM series WHERE series_uid = ?", (series_uid,)).fetchone()
    if row is None:
        return
    gone = db.execute(
        "DELETE FROM series WHERE series_uid = ? AND NOT EXISTS "
        "(SELECT 1 FROM instance WHERE series_uid = ?)",
        (series_uid, series_uid),
    ).rowcount
    if gone:
        _prune_study(db, row[0])


def _prune_study(db: sqlite3.Connection, study_uid: str) -> None:
    """Remove ``study_uid`` if it has no series, then its patient if empty."""
    row = db.execute("SELECT patient_id FROM study WHERE study_uid = ?", (study_uid,)).fetchone()
    if row is None:
        return
    gone = db.execute(
        "DELETE FROM study WHERE study_uid = ? AND NOT EXISTS "
        "(SELECT 1 FROM series WHERE study_uid = ?)",
        (study_uid, study_uid),
    ).rowcount
    if gone:
        _prune_patient(db, row[0])


def _prune_patient(db: sqlite3.Connection, patient_id: str) -> None:
    """Remove ``patient_id`` if it has no studies."""
    db.execute(
        "DELETE FROM patient WHERE patient_id = ? AND NOT EXISTS "
        "(SELECT 1 FROM study WHERE patient_id = ?)",
        (patient_id, patient_id),
    )


def _glob_escape(value: str) -> str:
    # GLOB's only special characters besides * and ? are [ and ]; DICOM has
    # no escape for * and ?, so those keep their wildcard meaning (C.2.2.2.4).
    return "".join("[[]" if ch == "[" else "[]]" if ch == "]" else ch for ch in value)


def match_condition(column: str, vr: str, value: str) -> tuple[str, list[str]]:
    """The SQL condition, and its parameters, of a C-FIND key's matching on
    ``column`` (PS3.4 C.2.2.2): list of UIDs, range, wild card or single value."""
    col = f"COALESCE({column}, '')"
    if vr == "UI" and "\\" in value:  # List of UID matching, C.2.2.2.5
        uids = value.split("\\")
        return f"{col} IN ({', '.join('?' * len(uids))})", uids
    if vr in ("DA", "TM") and "-" in value:  # Range matching, C.2.2.2.5
        low, _, high = value.partition("-")
        conds, params = [f"{col} != ''"], []
        if low:
            conds.append(f"{col} >= ?")
            params.append(low)
        if high:
            # A date/time that starts with the upper bound is inside it
            # ("-1200" includes "120000"), hence the open-ended prefix.
            conds.append(f"({col} <= ? OR {col} GLOB ?)")
            params += [high, _glob_escape(high) + "*"]
        return " AND ".join(conds), params
    if vr not in ("UI", "DA", "TM") and ("*" in value or "?" in value):
        return f"{col} GLOB ?", [_glob_escape(value)]  # Wild card matching
    return f"{col} = ?", [value]  # Single value matching
