"""Turning values that came from the network into file-system names, safely.

Nothing a peer sends may choose a path. DCMTK (CVE-2022-2119, CVE-2022-2120)
and pynetdicom both built file names from a SOP Instance UID or an AE title
without checking it, so ``../../etc/cron.d/x`` in a UID wrote outside the
storage folder. Here every name component goes through one of two gates:

* :func:`safe_uid` accepts only the UID grammar of PS3.5 9.1 and refuses the
  rest: a valid UID can never be ``..``, hold a separator, or be empty.
* :func:`safe_label` maps free text (AE titles, Patient IDs) to a portable
  alphabet and marks any value it had to change with a hash suffix.

and :func:`join_under` checks the joined result once more (defence in depth).
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from dicomnet.errors import ConfigurationError

__all__ = [
    "UnsafeNameError",
    "is_uid",
    "join_relative",
    "join_under",
    "safe_label",
    "safe_relative_path",
    "safe_uid",
]

#: PS3.5 9.1: components of digits, no leading zero unless the component is
#: exactly "0", separated by single dots. ``[0-9]`` (not ``\d``) so that other
#: scripts' digits, such as U+0661, are refused.
_UID_RE = re.compile(r"(?:0|[1-9][0-9]*)(?:\.(?:0|[1-9][0-9]*))*", re.ASCII)
_UID_MAX_LENGTH = 64  # PS3.5 9.1 and the UI VR of PS3.5 Table 6.2-1

_LABEL_KEEP = re.compile(r"[A-Za-z0-9._-]", re.ASCII)
_LABEL_RUN = re.compile(r"[^A-Za-z0-9._-]+", re.ASCII)
_HASH_HEX = 12  # 48 bits: ample to keep two hostile values apart in one archive
_SUFFIX_LEN = 1 + _HASH_HEX
_SUFFIX_RE = re.compile(rf"-[0-9a-f]{{{_HASH_HEX}}}\Z", re.ASCII)
_MIN_LABEL_LENGTH = _SUFFIX_LEN + 3


class UnsafeNameError(ConfigurationError):
    """A value cannot be used as (part of) a path.

    Raised for anything that is not a valid UID where a UID is required, and
    for any joined path that would leave its root. The SCP answers such a
    C-STORE with a failure status rather than writing anything.
    """


def _show(value: str) -> str:
    """Render a hostile value for an error message: escaped and bounded."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def is_uid(value: str) -> bool:
    """Whether ``value`` is a UID as it stands (PS3.5 9.1; no padding removed)."""
    return len(value) <= _UID_MAX_LENGTH and _UID_RE.fullmatch(value) is not None


def safe_uid(value: str) -> str:
    """Return ``value`` as a UID that is safe as a file name, or raise.

    PS3.5 9.1: a UID is at most 64 characters of digits and dots, with no
    empty component and no leading zero in a component other than "0".
    Trailing NUL or space padding (PS3.5 6.2, the UI VR pads with NUL; some
    implementations pad with spaces) is removed first; any other deviation
    raises :class:`UnsafeNameError`. Nothing is "repaired": a UID that is not
    valid is not the identity of any instance we may name a file after.
    """
    if not isinstance(value, str):
        raise UnsafeNameError(f"UID must be a str, not {type(value).__name__}")
    uid = value.rstrip("\x00 ")
    if not uid:
        raise UnsafeNameError("empty UID")
    if len(uid) > _UID_MAX_LENGTH:
        raise UnsafeNameError(f"UID longer than {_UID_MAX_LENGTH} characters: {_show(uid)}")
    if _UID_RE.fullmatch(uid) is None:
        raise UnsafeNameError(f"not a valid UID (PS3.5 9.1): {_show(value)}")
    return uid


def _digest(value: str) -> str:
    # surrogatepass: a str decoded with surrogateescape must still hash, and
    # two different strings must still give different bytes.
    raw = value.encode("utf-8", "surrogatepass")
    return hashlib.sha256(raw).hexdigest()[:_HASH_HEX]


def safe_label(value: str, *, max_length: int = 64) -> str:
    """Map free text (an AE title, a Patient ID) to a safe folder name.

    Leading and trailing spaces and NULs are dropped first: they are not
    significant for the AE, LO and SH VRs (PS3.5 Table 6.2-1). Then every run
    of characters outside ``[A-Za-z0-9._-]`` becomes one ``_`` and a leading
    ``.`` becomes ``_``. If anything was replaced or the value was empty or
    too long, ``-`` and 12 hex digits of the SHA-256 of the original are
    appended (within ``max_length``), so two different values never share a
    result. A value that is already safe but happens to end like such a suffix
    gets one too, so a clean value can never impersonate a mapped one.

    The result is never empty, ``.`` or ``..`` and never starts with ``.``;
    the same input always gives the same output. Note: on case-insensitive
    file systems ``abc`` and ``ABC`` still meet in one folder.
    """
    if not isinstance(value, str):
        raise UnsafeNameError(f"label must be a str, not {type(value).__name__}")
    if max_length < _MIN_LABEL_LENGTH:
        raise ConfigurationError(f"max_length must be at least {_MIN_LABEL_LENGTH}")
    text = value.strip(" \x00")
    mapped = _LABEL_RUN.sub("_", text)
    if mapped.startswith("."):
        mapped = "_" + mapped[1:]
    changed = (
        mapped != text
        or not mapped
        or len(mapped) > max_length
        or _SUFFIX_RE.search(mapped) is not None
    )
    if not changed:
        return mapped
    stem = mapped[: max_length - _SUFFIX_LEN] or "_"
    return f"{stem}-{_digest(value)}"


#: What no path component holds: a separator (this system's too), NUL, or ':'
#: (a Windows drive or stream).
_NOT_IN_A_PART = frozenset({"/", "\\", "\x00", ":", os.sep, *(os.altsep or "")})
#: A ``/``-separated path whose every component passes :func:`_check_part` (not
#: empty, not starting with '.', none of _NOT_IN_A_PART): one match per index row
#: where a check per component was four Python calls.
_PART = "[^.{0}][^{0}]*".format(re.escape("".join(sorted(_NOT_IN_A_PART))))
_RELATIVE_PATH_RE = re.compile(f"{_PART}(?:/{_PART})*")


def _check_part(part: str) -> None:
    if not isinstance(part, str):
        raise UnsafeNameError(f"path component must be a str, not {type(part).__name__}")
    if part in ("", ".", ".."):
        raise UnsafeNameError(f"path component may not be {part!r}")
    if part.startswith("."):
        # Dot files are ours (temporary files); the network never names one.
        raise UnsafeNameError(f"path component may not start with '.': {_show(part)}")
    # One call (a generator over the separators was four): each index row checks its path.
    if not _NOT_IN_A_PART.isdisjoint(part):
        raise UnsafeNameError(f"path component holds a separator or NUL: {_show(part)}")
    # Nor can it be absolute now: an absolute path starts with a separator or
    # holds a drive's ':' (os.path.isabs, on every system).


def join_under(root: Path, *parts: str) -> Path:
    """Join already-sanitised ``parts`` below ``root`` and prove it stays there.

    Each part must be one plain name: not empty, ``.`` or ``..``, not starting
    with ``.``, and free of separators, ``:`` and NUL. The joined path is then
    resolved (following any symbolic links that exist) and must still be
    inside ``root`` resolved; a link pointing out of the root is refused too.
    Raises :class:`UnsafeNameError`; creates nothing.
    """
    if not parts:
        raise UnsafeNameError("join_under needs at least one component")
    for part in parts:
        _check_part(part)
    base = Path(root)
    candidate = base.joinpath(*parts)
    real_root = base.resolve()
    real = candidate.resolve()
    if real == real_root or not real.is_relative_to(real_root):
        raise UnsafeNameError(f"{_show(str(candidate))} is not inside {_show(str(real_root))}")
    return candidate


def safe_relative_path(relative_path: str) -> str:
    """Check a ``/``-separated path below a root without touching the disk.

    Every component gets the checks of :func:`join_under`; returns the value
    unchanged or raises :class:`UnsafeNameError`.
    """
    if not isinstance(relative_path, str):
        raise UnsafeNameError(f"path must be a str, not {type(relative_path).__name__}")
    if _RELATIVE_PATH_RE.fullmatch(relative_path) is None:
        for part in relative_path.split("/"):  # which component, and why
            _check_part(part)
    return relative_path


def join_relative(root: Path, relative_path: str) -> Path:
    """Resolve a ``/``-separated path relative to ``root`` (as kept in the index).

    Each component gets the checks of :func:`join_under`, so a tampered index
    row cannot point outside the root either.
    """
    return join_under(root, *relative_path.split("/"))
