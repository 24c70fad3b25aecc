"""What a C-STORE SCP answers (PS3.4 B.2.3, PS3.7 9.3.1.2): the object stored, as
its handlers see it, the user's ``on_c_store`` handler and what it may answer,
the C-STORE-RSP with its Error Comment, and the one log line of an object not
stored, with what ``on_refused`` is told of it. Used by
:mod:`dicomnet.services.storage`, which re-exports what is public here."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pydicom
from pydicom.dataset import Dataset

from ..aio.server_hooks import contained
from ..dimse.messages import CStoreRQ, CStoreRSP
from ..dimse.status import PROCESSING_FAILURE, SUCCESS, Status, category_of
from ..errors import DicomNetError
from ..security.info import SecurityInfo
from .store_jobs import move_originator
from .workers import call_handler

if TYPE_CHECKING:
    from ..aio.server_association import ServerAssociation

__all__ = ["HOOK_FAILED", "HookAnswer", "Refused", "RefusedInstance", "RefusedObserver",
           "StoreHook", "Stored", "StoredInstance", "StoredObserver", "refuse", "response",
           "run_hook"]

log = logging.getLogger("dicomnet.services")


@dataclass(frozen=True, slots=True)
class StoredInstance:
    """What ``on_c_store`` (and ``on_stored``) receives once an object is durable
    on disk: where it is, what it is, and who sent it on which association.

    ``path`` is the file (for a duplicate kept, the copy already stored);
    ``calling_ae_title`` and ``called_ae_title`` are those of the association's
    A-ASSOCIATE-RQ (PS3.8 9.3.2), the called one as the sender asked for it
    (whatever the server's own AE title, unless it requires its own), so that a
    node answering to several titles can route by it; ``peer`` is the sender's
    (host, port); ``security`` its TLS link (None on a plain connection);
    ``duplicate``: its SOP Instance UID was stored already and that copy kept
    (``duplicates="keep"``; ``path`` is that copy's; PS3.4 B.2.3); an object
    that replaced an earlier copy (``"overwrite"``) is stored, not a duplicate.
    ``replaced``: an earlier copy of the instance was there and this object
    took its place (``duplicates="overwrite"``, or a copy found damaged); False
    for a first copy, and for a duplicate kept.
    ``move_originator``: for an object sent as a sub-operation of a C-MOVE, the
    AE title and Message ID of the C-MOVE-RQ behind it (the C-STORE-RQ's Move
    Originator Application Entity Title and Message ID, PS3.7 9.3.1.1), so that
    a node can tell which retrieve it answers; None for any other C-STORE.
    ``called_ae_title``, ``peer`` and ``move_originator`` are keywords, empty
    ("", ("", 0) and None) in an instance built by hand (a handler's own tests).
    """

    path: Path
    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax_uid: str
    calling_ae_title: str
    security: SecurityInfo | None
    duplicate: bool
    called_ae_title: str = field(default="", kw_only=True)
    peer: tuple[str, int] = field(default=("", 0), kw_only=True)
    move_originator: tuple[str, int] | None = field(default=None, kw_only=True)
    replaced: bool = field(default=False, kw_only=True)

    def dataset(self, *, stop_before_pixels: bool = False) -> Dataset:
        """Read the stored file (lazily, only when asked) with pydicom. It blocks
        while it reads: an ``async`` handler awaits :meth:`dataset_async` instead,
        so that the server's other associations are not held up; a plain handler
        already runs in a thread of its own. Raises what ``pydicom.dcmread``
        raises (OSError, ``InvalidDicomError``)."""
        return pydicom.dcmread(self.path, stop_before_pixels=stop_before_pixels)

    async def dataset_async(self, *, stop_before_pixels: bool = False) -> Dataset:
        """:meth:`dataset`, read in the event loop's default executor: for an
        ``async`` handler, whose loop serves every association. Raises what
        :meth:`dataset` raises."""
        return await asyncio.get_running_loop().run_in_executor(
            None, functools.partial(self.dataset, stop_before_pixels=stop_before_pixels))


@dataclass(slots=True, eq=False)
class Stored:
    """An object the store thread (or a spilled commit) made durable, as it answers
    it (PS3.4 B.2.2): what its :class:`StoredInstance` is made of, made when
    something reads one (:meth:`instance`: an ``on_c_store`` handler,
    ``on_stored``), once. Most servers have neither: the instance and its
    ``Path`` were ~10 Python and ~10 built-in calls per object on the store
    thread, for nobody. ``folder`` is the file's folder, ``name`` its name there;
    for a duplicate kept (``folder`` None), ``name`` is the kept copy's path."""

    folder: Path | None
    name: str
    duplicate: bool
    replaced: bool
    transfer_syntax: str
    made: StoredInstance | None = None

    @property
    def path(self) -> Path:
        """The stored file: the new object's, or the copy kept for a duplicate."""
        return Path(self.name) if self.folder is None else self.folder / self.name

    def instance(self, message: CStoreRQ, assoc: ServerAssociation) -> StoredInstance:
        """The :class:`StoredInstance` of ``message``, received on ``assoc`` (made
        the first time, the same one after)."""
        if self.made is None:
            self.made = StoredInstance(
                path=self.path, sop_class_uid=message.affected_sop_class_uid,
                sop_instance_uid=message.affected_sop_instance_uid,
                transfer_syntax_uid=self.transfer_syntax,
                calling_ae_title=assoc.calling_ae_title, security=assoc.security,
                duplicate=self.duplicate, called_ae_title=assoc.called_ae_title,
                peer=assoc.peer, move_originator=move_originator(message),
                replaced=self.replaced)
        return self.made


#: What an ``on_c_store`` handler may answer: None (Success), a status (an int or a
#: ``Status``), or a status with its Error Comment (0000,0902), e.g.
#: ``(0xC001, "not a CT")``.
HookAnswer = int | Status | tuple[int | Status, str] | None
StoreHook = Callable[[StoredInstance], HookAnswer | Awaitable[HookAnswer]]
#: Told of each object stored (``StorageSCP(on_stored=...)``); what it returns is ignored.
StoredObserver = Callable[[StoredInstance], object]


@dataclass(frozen=True, slots=True)
class RefusedInstance:
    """What ``on_refused`` receives for a C-STORE answered with a failure, the
    object not stored (or, ``duplicates="reject"``, its earlier copy kept):
    what it is (from the C-STORE-RQ, PS3.7 9.3.1.1), who sent it, the status it
    was answered (PS3.4 B.2.3) and why, in the words of its log line (local
    paths included: for the operator, not the peer, whose Error Comment names
    none). ``path``: for a duplicate rejected (status 0111H), the copy already
    stored; else None. The other fields as in :class:`StoredInstance`."""

    sop_class_uid: str
    sop_instance_uid: str
    calling_ae_title: str
    called_ae_title: str
    peer: tuple[str, int]
    security: SecurityInfo | None
    status: int
    reason: str
    path: Path | None = None
    move_originator: tuple[str, int] | None = None


#: Told of each C-STORE refused (``StorageSCP(on_refused=...)``); what it returns is ignored.
RefusedObserver = Callable[[RefusedInstance], object]


#: The Error Comment of an object whose handler failed (its details go to the log).
HOOK_FAILED = "the server's C-STORE handler failed"


#: Statuses of PS3.7 Annex C that no C-STORE-RSP carries (PS3.4 B.2.3): those of
#: the operations with several responses (Pending) or a C-CANCEL (Cancel).
_NOT_A_STORE_STATUS = {0xFF00: "Pending", 0xFF01: "Pending", 0xFE00: "Cancel"}


async def run_hook(hook: StoreHook, instance: StoredInstance) -> tuple[int, str | None]:
    """The user's handler; its status, or Success when it returns None. A handler
    that raises, or returns what is not a status or a status no C-STORE-RSP
    carries (Pending, Cancel: PS3.4 B.2.3), costs this object a Processing
    Failure (0110H), not the association: the file stays, it is durable.

    A Success with a comment (``(0, "archived")``) is sent as a plain Success,
    the comment dropped and logged at DEBUG: an Error Comment belongs to a
    Warning or a Failure (PS3.7 C.4, C.5); Success has only its Status (PS3.7
    C.1.1; PS3.4 B.2.3: no related field). Refusing the answer instead would
    turn an object the handler accepted into a failure its sender may resend
    or report; a comment a peer may show as an error (DCMTK's storescu prints
    "Error Comment") with a Success would confuse its reader."""
    try:
        result = await call_handler(hook, instance)
    except Exception:
        log.exception("C-STORE %s: the on_c_store handler failed", instance.sop_instance_uid)
        return PROCESSING_FAILURE, HOOK_FAILED
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is None or task.cancelling():
            raise  # the operation's own: its association ended, nobody to answer
        # The handler's own (raised, or from a future someone else cancelled): taken
        # for the operation's, it left the request unanswered, the association on.
        log.exception("C-STORE %s: the on_c_store handler failed", instance.sop_instance_uid)
        return PROCESSING_FAILURE, HOOK_FAILED
    if result is None:
        return SUCCESS, None
    status, comment = result if isinstance(result, tuple) and len(result) == 2 else (
        result, None)
    if isinstance(status, Status):
        status = status.code
    # Its type first: an unhashable answer (a list) raised TypeError in the look
    # up, which aborted the association as an internal error.
    if (isinstance(status, int) and status in _NOT_A_STORE_STATUS
            and (comment is None or isinstance(comment, str))):
        # Sent, a Pending left the sender waiting for a final response that never
        # comes (its DIMSE timeout) or taken as final, and counted unanswered here.
        log.error("C-STORE %s: the on_c_store handler returned %s (0x%04X), which a "
                  "C-STORE-RSP cannot carry (PS3.4 B.2.3: one response, no C-CANCEL)",
                  instance.sop_instance_uid, _NOT_A_STORE_STATUS[status], status)
        return PROCESSING_FAILURE, HOOK_FAILED
    if (isinstance(status, int) and not isinstance(status, bool) and 0 <= status <= 0xFFFF
            and (comment is None or isinstance(comment, str))):
        if comment and not _may_comment(status):
            # Success is the handler's answer: kept; its comment has no place to go.
            log.debug("C-STORE %s: the on_c_store handler's comment %r not sent with its "
                      "Success (0000H): an Error Comment goes with a Warning or a Failure "
                      "only (PS3.7 C.1.1, C.4, C.5; PS3.4 B.2.3)",
                      instance.sop_instance_uid, comment[:64])
            return status, None
        # An Error Comment is LO (PS3.7 C.4): 64 characters at most.
        return status, None if comment is None else comment[:64]
    log.error("C-STORE %s: the on_c_store handler returned %r, not a status (0 to 0xFFFF), "
              "optionally with its comment", instance.sop_instance_uid,
              hex(result) if isinstance(result, int) and not isinstance(result, bool)
              else result)
    return PROCESSING_FAILURE, HOOK_FAILED


def response(message: CStoreRQ, status: int, comment: str | None) -> CStoreRSP:
    """The C-STORE-RSP to ``message`` (PS3.7 9.3.1.2), with ``comment`` as its
    Error Comment (0000,0902) when ``status`` is a Warning or a Failure: the
    status types that have one (PS3.7 C.4, C.5; PS3.4 B.2.3, whose Success row
    has no related field, as PS3.7 C.1.1 gives Success none). A comment with a
    Success is dropped, the Success sent: see :func:`run_hook`."""
    sop_class, sop_instance = message.affected_sop_class_uid, message.affected_sop_instance_uid
    return CStoreRSP(
        message_id_being_responded_to=message.message_id,
        status=status,
        # A UID is echoed (PS3.7 9.3.1.2: optional there) when it can be encoded:
        # ASCII, 64 characters at most; else None, and the peer still gets its
        # failure status instead of an A-ABORT. Tested inline (per image).
        affected_sop_class_uid=(
            sop_class if sop_class.isascii() and len(sop_class) <= 64 else None),
        affected_sop_instance_uid=(
            sop_instance if sop_instance.isascii() and len(sop_instance) <= 64 else None),
        # A Success has no Error Comment: no category looked up for it.
        error_comment=(None if status == SUCCESS or not comment or not _may_comment(status)
                       else _comment(comment)),
    )


def _may_comment(status: int) -> bool:
    """Whether a response of ``status`` may carry an Error Comment: a Warning or a
    Failure (PS3.7 C.4, C.5), not a Success (C.1.1), Pending or Cancel."""
    return category_of(status) in ("warning", "failure")


def _comment(comment: str | None) -> str | None:
    """Error Comment (LO, VM 1: PS3.7 C.4), at most 64 characters of the default
    repertoire, none a backslash (the value delimiter) or a control character
    (PS3.5 6.2): each such one a '?'. One cut there loses the punctuation left
    at its end (a reason whose first words end in ':' then reads whole)."""
    if not comment:
        return None
    text = comment.encode("ascii", "replace").decode("ascii").translate(_NOT_IN_LO)
    return text if len(text) <= 64 else text[:64].rstrip(" :;,(-")


#: What an LO value cannot hold in the default repertoire (PS3.5 6.2, 6.1.2.3).
_NOT_IN_LO = {code: "?" for code in (*range(0x20), 0x5C, 0x7F)}


def _log_refusal(level: int, assoc: ServerAssociation, message: CStoreRQ, status: int,
                 why: str) -> None:
    """The one line a C-STORE that was not stored leaves in the log: the object,
    who sent it, the status it was answered (PS3.4 B.2.3) and why, paths included
    (ERROR when the server could not store, WARNING when it refused the data,
    INFO for a duplicate its policy rejects)."""
    uid = message.affected_sop_instance_uid
    # The peer's bytes, not yet checked (a refused UID): quoted unless plain text,
    # so that a line break in them cannot forge a log line.
    log.log(level, "C-STORE %s from %s@%s:%s refused, status 0x%04X: %s",
            uid if uid.isascii() and uid.isprintable() else repr(uid),
            assoc.calling_ae_title, *assoc.peer[:2], status, why)


def refuse(observer: RefusedObserver | None, assoc: ServerAssociation, message: CStoreRQ,
           status: int, why: str, *, level: int, path: Path | None = None) -> None:
    """An object not stored: its log line (:func:`_log_refusal`), then ``observer``
    told, on the event loop; what the observer raises is logged, the answer
    unchanged."""
    _log_refusal(level, assoc, message, status, why)
    if observer is None:
        return
    refused = RefusedInstance(
        message.affected_sop_class_uid, message.affected_sop_instance_uid,
        assoc.calling_ae_title, assoc.called_ae_title, assoc.peer, assoc.security,
        status, why, path, move_originator(message))
    try:
        with contained("on_refused observer"):  # its SystemExit too
            observer(refused)
    except Exception:  # an observer's bug
        log.exception("C-STORE %s: the on_refused observer failed", refused.sop_instance_uid)


class Refused(DicomNetError):
    """An object refused for its data (a status of PS3.4 B.2.3 and why), not for
    the disk: answered with that status, logged at WARNING."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
