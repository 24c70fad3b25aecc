"""The Storage service's SCU (PS3.4 Annex B): C-STORE of Part 10 files from disk,
without decoding them.

Presentation contexts are proposed from the files' own SOP classes and
transfer syntaxes; a file whose syntax was accepted as is goes from disk to the
wire untouched; an uncompressed file is converted by pydicom when only another
uncompressed syntax was accepted (``store_convert``: a large one through a
temporary file); a compressed file nobody accepted is skipped
with its reason. ``dicomnet.services.storage`` re-exports what is public here.
How each file is made ready (its context, checks, conversion, and its PDUs
read from disk) is in :mod:`dicomnet.services.store_prepare`; the results and
their words in :mod:`~dicomnet.services.store_result`; the C-STOREs of one
association in :mod:`~dicomnet.services.store_batch`; the retries' order and
what a cancel leaves in :mod:`~dicomnet.services.store_retry`. This module
runs them: ``store_paths``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import Timeouts
from ..errors import ConfigurationError, DicomNetError
from ..security.config import TLSConfig
from ..storage.files import StorageError
from ..storage.part10 import NotRegularFileError, path_text, read_part10
from .store_batch import Plan, batches, contexts_for, send_batch
from .store_contexts import MEDIA_STORAGE_DIRECTORY
from .store_identity import own_identity
from .store_listing import collect_files, listed_texts, not_read
from .store_prepare import refused, tag_texts
from .store_result import (
    PART_WAY,
    PASSED_OVER_DICOMDIR,
    RetryEvent,
    StoreResult,
    offending_words,
    transient_failure,
)
from .store_retry import (
    MAX_RETRY_DELAY,
    Guarded,
    cancelled,
    retry_order,
    unanswered,
    warn_of_repeated_uids,
)

if TYPE_CHECKING:
    from ..aio.client import ClientAssociation
    from ..aio.transport import SecureLinkHook

__all__ = ["MAX_RETRY_DELAY", "PART_WAY", "RetryEvent", "StoreResult", "collect_files",
           "offending_words", "store_paths", "transient_failure"]


async def store_paths(
    host: str,
    port: int,
    paths: Sequence[Path | str] | Path | str,
    *,
    tls: TLSConfig | None = None,
    calling_ae_title: str = "DICOMNET",
    called_ae_title: str = "ANY-SCP",
    timeouts: Timeouts | None = None,
    on_progress: Callable[[StoreResult], None] | None = None,
    max_async_operations: int = 32,
    on_secure_link_ready: SecureLinkHook | None = None,
    retries: int = 0,
    retry_delay: float = 2.0,
    on_retry: Callable[[RetryEvent], None] | None = None,
    results: list[StoreResult] | None = None,
    listed: bool = False,
) -> list[StoreResult]:
    """C-STORE every file (folders recursively) to ``host:port``; one result per file.
    ``paths`` may be one path alone (``"study/"``: a str is one path, not its
    letters).

    An asynchronous operations window of ``max_async_operations`` is proposed
    (PS3.7 D.3.3.3): a peer that grants it gets several C-STOREs in flight, so
    the round trip and its disk flush no longer gate every object; a peer that
    does not (most) gets them one at a time. Objects go out in order either way.

    Files that are not DICOM Part 10 are reported, not sent; so are files that
    cannot be read ("not sent: cannot read ..."). With ``listed``, ``paths``
    are files ``collect_files`` listed already (the caller's own listing, made
    before it asked for a key's password, say): they are not listed again, and
    one gone since fails alone instead of refusing the run. Association-level
    failures (TLS, rejection, abort) mark the remaining files of that
    association failed and are re-raised only if nothing could be sent at all.

    With ``retries``, the objects whose failure may pass (``StoreResult.retryable``:
    the link broke before their answer, or the peer was out of resources) are
    sent again on a new association, up to ``retries`` more times, after
    ``retry_delay`` seconds, doubled at each retry (at most ``MAX_RETRY_DELAY``).
    ``on_retry`` hears of each retry before its wait; ``on_progress`` hears of
    each object once, when its last attempt ended. An object whose answer was
    lost with the link may reach a peer twice: a peer keeping the first copy
    answers Success, one rejecting duplicates answers a failure (0111H).

    When no object was stored and the association failed (a refused TLS
    handshake, a rejection, an abort...), that error is raised, and its
    ``results`` holds every file's result all the same: the files that are not
    DICOM, and the others "not sent" with why. A permanent failure (see
    ``transient_failure``) with nothing stored ends the run at once: the
    batches not yet tried are "not sent" with that error too.

    ``on_progress`` and ``on_retry`` are the caller's code: an exception they
    raise does not stop the transfer nor lose its results; it is logged on the
    ``dicomnet.services`` logger with its traceback (the first; later ones are
    counted). To stop a transfer, cancel the task running it.

    ``results``, an empty list of the caller's, is filled with the results (one
    per file, as soon as the files are listed, updated as they go) and returned:
    what survives a cancellation, which raises ``CancelledError`` as asyncio
    requires. Each says then what became of its file, as ``dicomnet store``
    does after a Ctrl-C: stored or failed; "cancelled before an answer" (its
    C-STORE was out whole: the peer may hold it; ``sent``); "not sent: cancelled"
    ("not sent again: cancelled; ..." when an earlier attempt sent it whole),
    "not sent (interrupted part-way: ...): cancelled" for the one whose data set
    was going out (``PART_WAY``: the peer cannot hold it);
    or, waiting for a retry, its last answer then "; cancelled before it was
    sent again"; one the association standing could not take (no context for
    its transfer syntax), not reached yet, says so, as when reached, and
    ``on_progress`` hears of it. ``on_progress`` does not hear of those the
    cancel ended.
    """
    from ..aio.client import associate

    if retries < 0:
        raise ConfigurationError("retries must be 0 or more")
    if not 0 <= retry_delay <= MAX_RETRY_DELAY:
        raise ConfigurationError(f"retry_delay must be within 0 and {MAX_RETRY_DELAY:g} seconds")
    if results is None:
        results = []
    elif results:
        raise ConfigurationError("results must be an empty list: store_paths fills it")
    max_attempts = retries + 1
    progress = Guarded("on_progress", on_progress)
    retry_heard = Guarded("on_retry", on_retry)

    def report(result: StoreResult) -> None:
        if not (result.retryable and result.attempts < max_attempts):
            progress(result)

    def failed(exc: DicomNetError) -> DicomNetError:
        """``exc``, to raise, with every file's result; the files never tried say why."""
        for plan in plans:
            if plan.result.status is None and not plan.result.error:
                plan.result.error = unanswered(plan, str(exc))
                plan.result.retryable = False
                plan.result.association_failed = True
                report(plan.result)
        exc.results = results
        return exc

    plans: list[Plan] = []
    if isinstance(paths, str | Path):  # one path, not a sequence of letters
        paths = [paths]
    for given in (paths if listed else listed_texts(paths)):
        # Its text as its Path spells it, the caller's own str where spelled so (a
        # listing kept by the caller, as dicomnet store keeps its own, is then held
        # once); no Path made: parsing one per file cost more than reading its header.
        path = path_text(given)
        result = StoreResult(path=path)  # type: ignore[arg-type]  # kept as text (store_compact)
        results.append(result)
        try:
            info = read_part10(path)
        except (StorageError, OSError) as exc:
            # A file gone since it was listed, or unreadable, is no proof of what it holds.
            unreadable = (isinstance(exc, (OSError, NotRegularFileError))
                          or exc.errno is not None)
            result.error = (f"not sent: {not_read(Path(path), exc)}" if unreadable
                            else f"not a DICOM Part 10 file: {exc}")
            result.not_dicom = not unreadable
            report(result)
            continue
        result.sop_instance_uid = info.sop_instance_uid
        if info.sop_class_uid == MEDIA_STORAGE_DIRECTORY:
            # PS3.10 8.6: a medium's index, as a folder's DICOMDIR (store_listing) is.
            result.dicomdir = True
            result.error = PASSED_OVER_DICOMDIR
            report(result)
            continue
        if info.meta_uids is not None:  # its data set's own UIDs, not its meta's
            try:
                info, result.note = own_identity(info)
            except StorageError as exc:
                result.error = f"not sent: {exc}"
                report(result)
                continue
            result.sop_instance_uid = info.sop_instance_uid
        result.size = info.size - info.dataset_offset  # its dataset_length, without the call
        result.transfer_syntax_uid = info.transfer_syntax_uid
        if info.stray_meta:  # (an empty list is the field's default already)
            result.dropped_meta = tag_texts(info.stray_meta)
        # Its header kept as its plan's few fields: a run holds every file's plan
        # at once, before its first association (its peak).
        plans.append(Plan.of(info, result))
    warn_of_repeated_uids(plans)
    attempt = 1
    # The association standing and its plans, for a cancel to tell which of them
    # it cannot take.
    live: tuple[ClientAssociation, list[Plan]] | None = None
    try:
        while True:
            failure: DicomNetError | None = None  # this attempt's last link failure
            for batch in batches(plans):
                negotiated: ClientAssociation | None = None
                try:
                    async with associate(
                        host, port, contexts=contexts_for(batch.keys), tls=tls,
                        calling_ae_title=calling_ae_title, called_ae_title=called_ae_title,
                        timeouts=timeouts, max_async_operations=max_async_operations,
                        on_secure_link_ready=on_secure_link_ready,
                    ) as assoc:
                        negotiated = assoc
                        live = (assoc, batch.plans)
                        await send_batch(assoc, batch.plans, report)
                    live = None
                except DicomNetError as exc:
                    live = None
                    failure = exc
                    transient = transient_failure(exc)
                    pending = [p for p in batch.plans
                               if p.result.status is None and not p.result.error]
                    for plan in pending:
                        refusal = None if negotiated is None else refused(negotiated, plan)
                        if refusal is not None:  # its own reason, told when negotiated
                            plan.result.error = refusal
                        else:
                            plan.result.error = unanswered(plan, str(exc))
                            plan.result.retryable = transient
                            plan.result.association_failed = True
                        report(plan.result)
                    if not transient and not any(r.ok for r in results):
                        failed(exc)
                        raise
            again = retry_order(plans, attempt)
            if not again or attempt >= max_attempts:
                break
            attempt += 1
            delay = min(retry_delay * 2 ** (attempt - 2), MAX_RETRY_DELAY)
            retry_heard(RetryEvent(attempt=attempt, max_attempts=max_attempts,
                                   count=len(again), delay=delay,
                                   reason=again[-1].result.error or "failed",
                                   results=tuple(replace(p.result) for p in again)))
            await asyncio.sleep(delay)
            for plan in again:
                plan.result._reset_for_retry()
                plan.started = plan.whole = False
                plan.sent_before = plan.result.sent
            plans = again
        if failure is not None and not any(r.ok for r in results):
            raise failed(failure)
        return results
    except asyncio.CancelledError:
        cancelled(plans, max_attempts, live, report)
        raise
    finally:
        progress.summary()
        retry_heard.summary()

