"""What :class:`~dicomnet.services.storage.StorageSCP`'s store thread is given and
keeps between the two halves of a round: a data set received in memory
(:class:`Job`), how many of them a round takes (:func:`round_size`), a round
whose writes are started (:class:`Round`) and the wait for its direct writes
(:func:`finish_writes`); and the C-MOVE a C-STORE sub-operation names
(:func:`move_originator`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..dimse.messages import CStoreRQ
from ..storage.direct import AlignedBuffer, DirectBatch
from ..storage.files import AtomicWriter
from ..storage.header import HeaderAttributes
from ..storage.layout import PlacedFolder
from .workers import MAX_BATCH

if TYPE_CHECKING:
    from ..aio.server_association import Answer, ServerAssociation

__all__ = ["SMALL_ROUND", "Job", "Round", "finish_writes", "move_originator", "round_size"]


@dataclass(slots=True)
class Job:
    """A data set received in memory, for the store thread, and the association
    it came on: its calling AE title and TLS link go in the index row, its peer
    in a duplicate's log line. Read there, not copied here: two of them are
    properties, Python calls per object on the event loop. Not frozen, though
    nothing changes it: a frozen one's ``__init__`` sets each field through
    ``object.__setattr__``, once per object on the loop."""

    buffer: bytearray | AlignedBuffer
    message: CStoreRQ
    transfer_syntax: str
    assoc: ServerAssociation
    #: Where its C-STORE-RSP goes (``StorageSCP.start``); None: awaited instead.
    #: Carried here so the store thread's callback needs no partial per object.
    answer: Answer | None = None


#: Jobs per store round opened by a small data set (page cache, not O_DIRECT).
SMALL_ROUND = 16


def round_size(job: Job) -> int:
    """Half a window of small data sets per round, so that two rounds share the
    window: the thread starts one while the other's syncfs runs, and the sender
    has room to send. Rounds of larger ones stay whole: their direct writes go
    to the device together and one flush serves them all."""
    return SMALL_ROUND if isinstance(job.buffer, bytearray) else MAX_BATCH


@dataclass(frozen=True, slots=True)
class Round:
    """A store-thread round whose writes are started (``StoreDisk._start_round``)."""

    jobs: list[Job]
    #: Per job: its header, folder and file name (``Layout.place_in``) and unnamed
    #: file, or why it failed.
    written: list[tuple[HeaderAttributes, PlacedFolder, str, AtomicWriter] | BaseException]
    batch: DirectBatch
    together: bool  # one syncfs for the round, rather than an fsync per file


def finish_writes(jobs: list[Job], batch: DirectBatch) -> dict[int, OSError]:
    """Wait for a round's direct writes; their buffers then serve the next ones.
    Returns the failures by file descriptor."""
    try:
        return batch.finish()
    finally:
        for job in jobs:
            if isinstance(job.buffer, AlignedBuffer):
                job.buffer.release()


def move_originator(message: CStoreRQ) -> tuple[str, int] | None:
    """The C-MOVE behind a C-STORE sub-operation (PS3.7 9.3.1.1: both its fields
    are sent, or neither); None when the request names none."""
    title, message_id = message.move_originator_ae_title, message.move_originator_message_id
    if title is None or message_id is None:
        return None
    return title.strip(), message_id
