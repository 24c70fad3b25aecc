"""Where a received instance goes below a store's root (:class:`Layout`: names
only from UIDs checked by :func:`~dicomnet.storage.names.safe_uid`), what to
do with a second copy of one (:class:`DuplicatePolicy`, PS3.4 B.4.1), and what
a commit did (:class:`CommitOutcome`, :class:`CommitResult`). The writing
itself is :mod:`dicomnet.storage.files`'."""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass
from pathlib import Path

from dicomnet.errors import StorageError
from dicomnet.storage.names import join_under, safe_uid

__all__ = ["CommitOutcome", "CommitResult", "DuplicatePolicy", "Layout", "PlacedFolder",
           "StoragePolicy"]


@dataclass(frozen=True, slots=True, eq=False)
class PlacedFolder:
    """A folder of a layout below a store's root, proven inside it
    (:meth:`Layout.place_in`): one object per folder, compared and hashed by
    identity (no Python call), with the texts a file's paths are made of, so
    that a store names thousands of files a minute without a ``Path`` each."""

    path: Path
    text: str
    """:attr:`path` as text (``os.fspath``)."""
    prefix: str
    """:attr:`text` and a separator: a file's path in it is ``prefix + name``."""
    relative: str
    """The folder below the root, ``/``-separated and ending in ``/`` ("" for the
    root itself): a file's path as the index keeps it is ``relative + name``."""


#: Folders below a root already proven inside it (Layout.place), by the root (as
#: text: a Path in a key is hashed by a Python call each lookup) and the study and
#: series UIDs they were made of (None and None: the root itself, for FLAT); at
#: most _VERIFIED_MAX.
_VERIFIED_FOLDERS: dict[tuple[str, str | None, str | None], PlacedFolder] = {}
_VERIFIED_MAX = 4096


def forget_verified(directory: Path | str) -> None:
    """``directory`` was removed: it is proven inside its root again when next used."""
    text = os.fspath(directory)
    # list() copies the items in one step: other threads add folders meanwhile.
    for key, folder in list(_VERIFIED_FOLDERS.items()):
        if folder.text == text:
            _VERIFIED_FOLDERS.pop(key, None)


def _folder_parts(study_instance_uid: str | None,
                  series_instance_uid: str | None) -> tuple[str, str]:
    """The folders of ``Layout.HIERARCHICAL``. Raises ``UnsafeNameError``."""
    if study_instance_uid is None or series_instance_uid is None:
        raise StorageError("the hierarchical layout needs the study and series UIDs")
    return safe_uid(study_instance_uid), safe_uid(series_instance_uid)


class DuplicatePolicy(enum.Enum):
    """What to do when an instance with the same SOP Instance UID is stored.

    PS3.4 B.4.1 leaves duplicates to the SCP. ``KEEP`` keeps the existing
    file and discards the new one (the SCP still answers success: the
    instance is stored), ``OVERWRITE`` replaces it atomically, ``REJECT``
    keeps the existing file and the SCP answers with a failure status.
    An existing file the committer finds damaged (``AtomicWriter.commit``'s
    ``damaged``; storage.damage) is replaced, as by ``OVERWRITE``, whatever
    the policy: it is not the instance any more.
    """

    KEEP = "keep"
    OVERWRITE = "overwrite"
    REJECT = "reject"


#: Short alias used in the brief and in configuration files.
StoragePolicy = DuplicatePolicy


class CommitOutcome(enum.Enum):
    """What :meth:`AtomicWriter.commit` did."""

    STORED = "stored"
    """No file had the name; the new object now does."""
    REPLACED = "replaced"
    """``OVERWRITE`` (or a damaged copy): a file had the name; the new object
    replaced it."""
    DUPLICATE_KEPT = "duplicate-kept"
    """``KEEP``: a file already had the name; it was kept, the new one discarded."""
    DUPLICATE_REJECTED = "duplicate-rejected"
    """``REJECT``: as ``DUPLICATE_KEPT``, and the SCP shall answer a failure."""


@dataclass(frozen=True, slots=True, init=False)
class CommitResult:
    """The outcome of a commit, the final path and the bytes written.

    Made with the path as a ``Path`` or as text; kept as text (``filename``),
    and :attr:`path` made from it when asked: a store names thousands of
    objects a minute, and a ``Path`` was a score of Python calls for each."""

    outcome: CommitOutcome
    filename: str
    """The final path, as text (``os.fspath`` of :attr:`path`)."""
    size: int

    def __init__(self, outcome: CommitOutcome, path: Path | str | None = None, size: int = 0,
                 *, filename: str | None = None) -> None:
        # ``filename=`` too: dataclasses.replace() passes the fields by their names.
        if (path is None) == (filename is None):
            raise TypeError("CommitResult takes path or filename, one of them")
        name = filename if path is None else path if type(path) is str else os.fspath(path)
        object.__setattr__(self, "outcome", outcome)
        object.__setattr__(self, "filename", name)
        object.__setattr__(self, "size", size)

    @property
    def path(self) -> Path:
        """The final path (a new ``Path`` each time: :attr:`filename` is kept)."""
        return Path(self.filename)

    @property
    def stored(self) -> bool:
        """True when the final name now holds the bytes just written."""
        return self.outcome in (CommitOutcome.STORED, CommitOutcome.REPLACED)

    @property
    def duplicate(self) -> bool:
        """True when an existing file was kept and the new object discarded."""
        return self.outcome in (CommitOutcome.DUPLICATE_KEPT, CommitOutcome.DUPLICATE_REJECTED)


class Layout(enum.Enum):
    """Where below the storage root a received instance goes.

    Every component is a UID checked by :func:`~dicomnet.storage.names.safe_uid`,
    so no value sent by a peer can choose the path.
    """

    HIERARCHICAL = "hierarchical"
    """``<root>/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm``"""
    FLAT = "flat"
    """``<root>/<SOPInstanceUID>.dcm``: needs only the C-STORE-RQ command."""

    def relative_parts(
        self,
        *,
        sop_instance_uid: str,
        study_instance_uid: str | None = None,
        series_instance_uid: str | None = None,
    ) -> tuple[str, ...]:
        """Return the path components below the root. Raises ``UnsafeNameError``."""
        name = safe_uid(sop_instance_uid) + ".dcm"
        if self is Layout.FLAT:
            return (name,)
        return (*_folder_parts(study_instance_uid, series_instance_uid), name)

    def destination(
        self,
        root: Path,
        *,
        sop_instance_uid: str,
        study_instance_uid: str | None = None,
        series_instance_uid: str | None = None,
    ) -> Path:
        """Return the final path of an instance below ``root`` (creates nothing):
        :meth:`place`'s second half."""
        return self.place(root, sop_instance_uid=sop_instance_uid,
                          study_instance_uid=study_instance_uid,
                          series_instance_uid=series_instance_uid)[1]

    def place(
        self,
        root: Path,
        *,
        sop_instance_uid: str,
        study_instance_uid: str | None = None,
        series_instance_uid: str | None = None,
    ) -> tuple[Path, Path]:
        """Return the folder of an instance below ``root`` and its final path in it
        (creates nothing).

        The folder part is proven inside ``root`` by :func:`join_under` (which
        resolves links) once per process and folder, then remembered: that proof
        was a fifth of a small object's cost. The folder is that one Path each
        time (``root`` itself for ``FLAT``), whose hash is computed once: a caller
        may gather the folders of many objects cheaply. The file name itself is a
        checked UID, and the writer never follows a link at the final name.
        """
        name = safe_uid(sop_instance_uid) + ".dcm"
        if self is Layout.FLAT:
            return root, join_under(root, name)
        folder = self._folder(os.fspath(root), study_instance_uid, series_instance_uid).path
        return folder, folder / name

    def place_in(
        self,
        root: str,
        *,
        sop_instance_uid: str,
        study_instance_uid: str | None = None,
        series_instance_uid: str | None = None,
    ) -> tuple[PlacedFolder, str]:
        """:meth:`place` for a caller that names thousands of objects (a C-STORE
        SCP's store thread), with ``root`` as text (``os.fspath`` of the Path):
        the folder, that one :class:`PlacedFolder` each time, and the file's name
        in it. The same checks as :meth:`place`. Raises ``UnsafeNameError`` or
        ``StorageError``."""
        name = safe_uid(sop_instance_uid) + ".dcm"
        if self is Layout.FLAT:
            join_under(Path(root), name)  # as place() checks it
            study_instance_uid = series_instance_uid = None  # the root's entry
        known = _VERIFIED_FOLDERS.get((root, study_instance_uid, series_instance_uid))
        if known is None:
            known = self._folder(root, study_instance_uid, series_instance_uid)
        return known, name

    def _folder(self, root: str, study_instance_uid: str | None,
                series_instance_uid: str | None) -> PlacedFolder:
        """The folder of a study and series below ``root`` (for ``FLAT``, the root
        itself): proven inside it by :func:`join_under` once per process and
        folder, then remembered (see ``_VERIFIED_FOLDERS``)."""
        # Keyed by the UIDs as given: a folder found here was built from UIDs that
        # passed safe_uid, so they are not checked again for each object.
        key = (root, study_instance_uid, series_instance_uid)
        known = _VERIFIED_FOLDERS.get(key)
        if known is None:
            if self is Layout.FLAT:
                parts: tuple[str, ...] = ()
                folder = Path(root)
            else:
                parts = _folder_parts(study_instance_uid, series_instance_uid)
                folder = join_under(Path(root), *parts)
            text = os.fspath(folder)
            known = PlacedFolder(folder, text, os.path.join(text, ""), "/".join((*parts, "")))
            if len(_VERIFIED_FOLDERS) >= _VERIFIED_MAX:
                _VERIFIED_FOLDERS.clear()
            _VERIFIED_FOLDERS[key] = known
        return known

    def relative_path(
        self,
        *,
        sop_instance_uid: str,
        study_instance_uid: str | None = None,
        series_instance_uid: str | None = None,
    ) -> str:
        """Return the ``/``-separated path below the root, as kept in the index."""
        return "/".join(
            self.relative_parts(
                sop_instance_uid=sop_instance_uid,
                study_instance_uid=study_instance_uid,
                series_instance_uid=series_instance_uid,
            )
        )
