"""Settings shared by clients and servers, as frozen dataclasses."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import ConfigurationError

__all__ = ["DEFAULT_MIN_FREE", "DEFAULT_PLAIN_PORT", "DEFAULT_TLS_PORT", "FreeSpace", "Limits",
           "Timeouts", "check_ae_title", "size_words"]

#: The registered "dicom" port (PS3.8 9.1.1 / IANA); dicomnet's default for plain DICOM.
DEFAULT_PLAIN_PORT = 11112
#: The registered "dicom-tls" port (PS3.15 B.1), default for TLS servers.
DEFAULT_TLS_PORT = 2762
#: The free space ``dicomnet serve`` keeps on its store's disk unless told
#: (``--min-free``, :class:`FreeSpace`): room for the index and the system
#: when senders would fill the disk, and little of any disk.
DEFAULT_MIN_FREE = "1%"


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Network deadlines, in seconds. ``None`` disables one (never the handshake)."""

    connect: float = 30.0
    """Opening the TCP connection."""
    tls_handshake: float = 30.0
    """The whole TLS handshake, per connection, in the connection's own task."""
    artim: float = 30.0
    """ARTIM (PS3.8 9.1.5): awaiting the A-ASSOCIATE-RQ, and the close after a release or abort."""
    acse: float = 30.0
    """Awaiting the A-ASSOCIATE-AC/RJ or the A-RELEASE-RP."""
    dimse: float | None = 60.0
    """Awaiting a DIMSE response (each one, pending responses included), and,
    while a message is being sent, the peer taking none of it (its receive
    window shut: it stopped reading). A response that does not come in time
    aborts the association (A-ABORT, PS3.8 7.3), as DCMTK and pynetdicom do."""
    idle: float | None = 300.0
    """An established association with nothing received, and nothing of what it
    sends taken by the peer, for this long is aborted (a data set being sent to a
    peer that reads it is no idleness, however long it takes)."""
    pdu: float | None = 120.0
    """Deadline to receive the rest of a PDU once it has started: a peer that
    drips one byte a second cannot hold a connection slot forever. It bounds the
    whole PDU, not a pause in it: at 5 s (``--timeout 5`` sets it), a PDU of the
    1 MiB we announce (``Limits.max_pdu_length``) must come at 200 KiB/s.
    It also bounds the wait for the next PDU of a message in progress (a command
    PDV not marked last, a data set not ended, PS3.8 E.2): a message once
    started must keep coming (its PDVs are consecutive, PS3.8 9.3.5), so a peer
    cannot hold one half sent until the idle or DIMSE timeout. Both roles; the
    clock then runs from the last PDU's end to the next one's start."""
    operation: float | None = 300.0
    """Server: how long one request may be performed (its handler, such as
    ``on_c_store`` or ``on_c_echo``, and the store before it; with no handler,
    the store alone: its write, fsync and name) until its answer is ready.
    Past it the association is aborted (A-ABORT, PS3.8 7.3), an async handler
    cancelled and a plain one's late result dropped: a hung handler or disk
    cannot hold the association and its slot for ever, not even while the
    server has paused reading for it (the peer's idle and PDU deadlines wait
    then). While an answer is owed the idle deadline gives way to this one; with
    None, the idle deadline alone bounds a handler, and only while reading."""

    def __post_init__(self) -> None:
        for name in ("connect", "tls_handshake", "artim", "acse", "dimse", "idle", "pdu",
                     "operation"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigurationError(f"timeout {name} must be positive, got {value}")


@dataclass(frozen=True, slots=True)
class Limits:
    """Sizes and counts a server or client accepts."""

    max_pdu_length: int = 1 << 20
    """Maximum P-DATA-TF PDU length we announce and accept (PS3.8 D.1)."""
    max_associate_length: int = 1 << 20
    """Largest A-ASSOCIATE PDU accepted (real ones are well under 64 KiB)."""
    max_associations: int = 64
    """Server: associations at once; beyond it A-ASSOCIATE-RJ (transient, local limit)."""
    max_associations_per_host: int = 32
    """Server: associations at once from one peer address; beyond it A-ASSOCIATE-RJ
    (transient, local limit), so that one host (a misconfigured sender opening
    association after association, or a peer holding slots with a trickle of
    data) cannot take every one of ``max_associations``."""
    max_pending_connections: int = 128
    """Server: connections not yet associated (in the TLS handshake, or awaiting
    their A-ASSOCIATE-RQ) at once. One more closes the oldest of them: a real
    peer sends its request as soon as it connects, so the oldest is the likeliest
    to be a connection left idle on purpose. Without it, silent connections
    would each hold a descriptor until their timeout (ARTIM, the handshake's).
    A TLS handshake closed this way reports no ``on_secure_link_ready`` event:
    the server logs the episode once instead."""
    max_async_operations: int = 32
    """Server: the asynchronous operations window granted at most (PS3.7 D.3.3.3):
    requests a peer may have outstanding, performed at once; a peer asking for
    fewer gets what it asks, one asking for none (or 1) is served one at a time,
    and one that goes past what it was granted is aborted."""
    max_dataset_in_memory: int = 16 << 20
    """Largest data set kept in memory: one no service streams to disk (a C-FIND
    identifier, an N-ACTION's attribute list, the data set of a request no
    service here performs; a client's C-FIND-RSP match). A peer that sends a
    larger one is aborted. Received C-STOREs go to disk and are not limited."""

    def __post_init__(self) -> None:
        if not 0 <= self.max_pdu_length <= 0xFFFFFFFF:
            raise ConfigurationError("max_pdu_length must fit in 32 bits (0 = unlimited)")
        if 0 < self.max_pdu_length < 7:
            # PS3.8 9.3.5: a PDV's length, context ID and control header take 6
            # bytes; a peer refuses a Maximum Length with no room for data.
            raise ConfigurationError(
                f"max_pdu_length must be 0 (unlimited) or at least 7, got {self.max_pdu_length}")
        if not 1 <= self.max_async_operations <= 0xFFFF:
            raise ConfigurationError("max_async_operations must be 1 to 65535 (PS3.7 D.3.3.3)")
        if self.max_associations < 1:
            raise ConfigurationError("max_associations must be at least 1")
        if self.max_associations_per_host < 1:
            raise ConfigurationError("max_associations_per_host must be at least 1")
        if self.max_pending_connections < 1:
            raise ConfigurationError("max_pending_connections must be at least 1")
        if self.max_dataset_in_memory < 1:
            raise ConfigurationError("max_dataset_in_memory must be at least 1")


def check_ae_title(value: str, what: str = "AE title") -> str:
    """Validate an AE title (PS3.5 6.2, AE VR): 1-16 characters of the default
    character repertoire without backslash or control characters, not all spaces."""
    stripped = value.strip(" ")
    if not stripped or len(value) > 16:
        raise ConfigurationError(f"{what} must be 1 to 16 characters, got {value!r}")
    if any(ord(c) < 0x20 or ord(c) > 0x7E or c == "\\" for c in value):
        raise ConfigurationError(f"{what} {value!r} holds characters an AE title cannot have")
    return stripped


#: Size units :meth:`FreeSpace.parse` reads (lower case): SI and binary.
_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2,
          "g": 1000**3, "gb": 1000**3, "t": 1000**4, "tb": 1000**4,
          "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(%|[a-zA-Z]*)\s*")


def size_words(size: int) -> str:
    """``size`` bytes for a person: "812.4 MiB", "5.0 GiB", "0 bytes"."""
    if size < 1024:
        return f"{size} bytes"
    value = float(size)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            break
    return f"{value:.1f} {unit}"


@dataclass(frozen=True)
class FreeSpace:
    """A reserve of free space on a store's file system (``StorageSCP(min_free=)``,
    storage.space): ``size`` bytes, or ``percent`` of the file system's size
    (one of them; both 0: no reserve)."""

    size: int = 0
    percent: float = 0.0

    def __post_init__(self) -> None:
        if self.size < 0 or not 0 <= self.percent <= 100 or (self.size and self.percent):
            raise ConfigurationError(
                f"a free-space reserve is a size or a percentage from 0 to 100, not {self!r}")

    @classmethod
    def parse(cls, text: str) -> FreeSpace:
        """``"10%"``, ``"5GiB"``, ``"500MB"``, ``"2G"``, ``"1048576"`` (bytes) or
        ``"0"`` (none). Units: k, M, G, T (powers of 1000, with or without B), KiB,
        MiB, GiB, TiB (powers of 1024), case aside. Raises ``ConfigurationError``."""
        match = _SIZE.fullmatch(text)
        unit = match.group(2).lower() if match else None
        if match is None or (unit != "%" and unit not in _UNITS):
            raise ConfigurationError(
                f"{text!r} is not a size: give a number of bytes with an optional unit "
                "(500MB, 5GiB, 2G) or a percentage of the file system (10%)")
        number = float(match.group(1))
        if unit == "%":
            if number > 100:
                raise ConfigurationError(f"{text!r}: a percentage of the file system is "
                                         "at most 100%")
            return cls(percent=number)
        return cls(size=int(number * _UNITS[unit or ""]))

    def __bool__(self) -> bool:
        return bool(self.size or self.percent)

    def __str__(self) -> str:
        if self.percent:
            return f"{self.percent:g}%"
        return size_words(self.size)

    def bytes_of(self, total: int) -> int:
        """The reserve in bytes on a file system of ``total`` bytes."""
        return self.size if not self.percent else int(total * self.percent / 100)
