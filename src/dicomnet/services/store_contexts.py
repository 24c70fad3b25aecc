"""The presentation contexts a C-STORE SCP accepts (PS3.4 B.5, PS3.8 7.1.1.13): every
Storage SOP Class pydicom knows, in the transfer syntaxes it was given, and, if
asked, SOP classes it does not know."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from ..storage.names import is_uid

__all__ = ["MEDIA_STORAGE_DIRECTORY", "StorageContexts", "storage_sop_classes"]


#: A DICOMDIR's SOP Class (PS3.10 8.6, PS3.3 F): the index of a medium, no object to
#: store (it has no study nor series), as storescp refuses it too.
MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"


def storage_sop_classes() -> list[str]:
    """Every Storage SOP Class pydicom knows (PS3.4 B.5), for the SCP's contexts."""
    from pydicom.uid import UID_dictionary  # type: ignore[attr-defined]

    return sorted(
        uid for uid, entry in UID_dictionary.items()
        if entry[1] == "SOP Class" and "Storage" in entry[0] and "Commitment" not in entry[0]
        and uid != MEDIA_STORAGE_DIRECTORY
    )


class StorageContexts(Mapping[str, "Sequence[str] | None"]):
    """The Storage SOP Classes the SCP accepts, and, when ``unknown`` is set, any
    other abstract syntax that is a well-formed UID pydicom does not know: a
    private or newer SOP class (a vendor's non-image object, say), which a store
    keeps as it keeps any other. Known SOP classes of other services (Query/
    Retrieve, Worklist) stay refused: this SCP cannot serve them. Iterating
    gives the known ones only."""

    def __init__(self, accepted: Sequence[str] | None, *, unknown: bool) -> None:
        self._known = dict.fromkeys(storage_sop_classes(), accepted)
        self._accepted = accepted
        self._unknown = unknown

    def _takes(self, uid: object) -> bool:
        if not self._unknown or not isinstance(uid, str):
            return False
        from pydicom.uid import UID_dictionary  # type: ignore[attr-defined]

        return uid not in UID_dictionary and is_uid(uid)

    def __contains__(self, uid: object) -> bool:
        return uid in self._known or self._takes(uid)

    def __getitem__(self, uid: str) -> Sequence[str] | None:
        if uid in self._known:
            return self._known[uid]
        if self._takes(uid):
            return self._accepted
        raise KeyError(uid)

    def __iter__(self) -> Iterator[str]:
        return iter(self._known)

    def __len__(self) -> int:
        return len(self._known)
