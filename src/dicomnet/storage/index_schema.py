"""The index's schema version: made in a new index, checked in one opened, and
what to do about an index this version does not read (said where it is opened:
the server and reindex stop there)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from dicomnet.storage.files import StorageError
from dicomnet.storage.index_tables import SCHEMA

__all__ = ["SCHEMA_VERSION", "is_new_index", "make_schema"]

SCHEMA_VERSION = 1


def make_schema(db: sqlite3.Connection) -> None:
    """Make the tables, and the version row, in a new index."""
    db.execute("BEGIN IMMEDIATE")
    try:
        for statement in SCHEMA.split(";"):
            if statement.strip():
                db.execute(statement)
        db.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def is_new_index(db: sqlite3.Connection, path: Path) -> bool:
    """True for a database with no tables (:func:`make_schema` makes them), False
    for an index of this version; raises ``StorageError`` saying what to do about
    one this version does not read (sqlite3.Error as SQLite raises it). Reads
    only: such a database is left as it was."""
    tables = [name for (name,) in db.execute(
        "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' "
        "ORDER BY name")]
    if not tables:
        return True
    aside = (f"move it aside, then 'dicomnet reindex --create {path.parent}' builds a new "
             "one from the files")
    if "schema_version" not in tables:
        # Another program's database, or one whose version row went: adding our
        # tables to it, or failing on the first that exists, helps nobody.
        shown = ", ".join(tables[:5]) + (", ..." if len(tables) > 5 else "")
        raise StorageError(f"index {path} is not a dicomnet index (it has no schema "
                           f"version; its tables: {shown}): {aside}")
    row = db.execute("SELECT version FROM schema_version").fetchone()
    version = row[0] if row is not None else None
    if version == SCHEMA_VERSION:
        return False
    if isinstance(version, int) and version > SCHEMA_VERSION:
        raise StorageError(f"index {path} has schema version {version}, of a newer dicomnet "
                           f"(this one reads version {SCHEMA_VERSION}): use that one, or "
                           f"{aside}")
    said = "no schema version" if version is None else f"schema version {version!r}"
    raise StorageError(f"index {path} has {said}, not {SCHEMA_VERSION}, which this "
                       f"dicomnet reads: {aside}")
