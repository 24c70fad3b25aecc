"""UIDs in the words an operator reads: "Nuclear Medicine Image Storage
(1.2.840.10008.5.1.4.1.1.20)" rather than the bare number, for the UIDs the
registry names (PS3.6 Annex A, as pydicom's UID dictionary holds it).

For messages only: machine output (``--json``, ``StoreResult`` fields) keeps
the bare UID. Never raises, whatever a file or a peer put in the value:
characters no UID holds, or a value far over a UID's 64 (PS3.5 9.1). Looked up
in the dictionary directly, not through ``pydicom.uid.UID``, whose constructor
warns about such a value (an error where warnings are errors).
"""

from __future__ import annotations

__all__ = ["named_uid", "uid_name", "uid_type"]

#: PS3.5 9.1: a UID has at most 64 characters; a longer value is shown cut.
_UID_MAX_LENGTH = 64


def _entry(uid: object) -> tuple[str, ...] | None:
    """pydicom's dictionary entry for ``uid`` (name, type, ...), or None. The UI
    VR's NUL padding, or a trailing space, is not part of the UID (PS3.5 9.1)."""
    if not isinstance(uid, str):
        return None
    # Here, not at the top: a command that names no UID does not load pydicom.
    from pydicom.uid import UID_dictionary  # type: ignore[attr-defined]

    entry = UID_dictionary.get(uid.rstrip("\0 "))
    return tuple(entry) if entry else None


def uid_name(uid: object) -> str | None:
    """The registry's name for ``uid`` ("RLE Lossless"), or None when pydicom's
    dictionary does not know it (a private UID, junk)."""
    entry = _entry(uid)
    name = entry[0] if entry else None
    return name if name and name != uid else None


def uid_type(uid: object) -> str | None:
    """The registry's type of ``uid`` ("Transfer Syntax", "SOP Class"...), or None
    when pydicom's dictionary does not know it."""
    entry = _entry(uid)
    return entry[1] if entry and len(entry) > 1 else None


def named_uid(uid: object) -> str:
    """``uid`` for a message: "Name (uid)" when the registry names it, else the
    bare value, cut after 64 characters with "..." (a file's junk can run to
    kilobytes). Control characters are left to the printer (the CLI's
    ``printable``)."""
    text = uid if isinstance(uid, str) else repr(uid)
    name = uid_name(uid)
    if name is not None:
        return f"{name} ({text})"
    return text if len(text) <= _UID_MAX_LENGTH else text[:_UID_MAX_LENGTH] + "..."
