"""How the Storage SCU plans its attempts (``store_paths``' ``retries``): the
order objects are sent again in (``retry_order``), the longest wait between
attempts, what a cancel or a failure leaves of each object unanswered
(``cancelled``, ``unanswered``), the caller's callbacks kept from breaking a
transfer (``Guarded``), and the warning for files sharing a SOP Instance UID.
Used by :mod:`dicomnet.services.store_scu`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Generic, TypeVar

from .store_batch import Plan
from .store_prepare import refused
from .store_result import PART_WAY, StoreResult

if TYPE_CHECKING:
    from ..aio.client import ClientAssociation

__all__ = ["MAX_RETRY_DELAY", "Guarded", "cancelled", "retry_order", "unanswered",
           "warn_of_repeated_uids"]

log = logging.getLogger("dicomnet.services")

T = TypeVar("T")


#: The longest wait between two attempts, however many retries were asked for.
MAX_RETRY_DELAY = 60.0


class Guarded(Generic[T]):
    """A caller's callback whose exceptions are logged, not raised: a bug in a
    progress display must not drop a transfer, nor the results of the objects
    sent so far. The first exception is logged with its traceback, the others
    counted (``summary``): one per object could be thousands."""

    def __init__(self, name: str, callback: Callable[[T], None] | None) -> None:
        self.name = name
        self.callback = callback
        self.failures = 0

    def __call__(self, arg: T) -> None:
        if self.callback is None:
            return
        try:
            self.callback(arg)
        except Exception:
            self.failures += 1
            if self.failures == 1:
                log.exception("store_paths: the %s callback raised; the transfer goes on "
                              "(later exceptions of it are counted, not logged)", self.name)

    def summary(self) -> None:
        if self.failures > 1:
            log.error("store_paths: the %s callback raised %d times in all (the first "
                      "logged above)", self.name, self.failures)


def warn_of_repeated_uids(plans: list[Plan]) -> None:
    """Say when files listed hold the SOP Instance UID of another (a copy, or an
    object edited without a new UID): each is sent and counted stored on its
    answer, but a peer holds one object per UID (PS3.3 C.12.1.1.1), so the run's
    count of objects stored is more than the peer's."""
    # The UIDs as a dict's keys (a set takes three times its memory), the paths
    # looked up again for the one named: this runs with every file's plan in
    # memory (the run's peak), before any is sent.
    seen: dict[str, None] = {}
    repeats = 0
    later: Plan | None = None
    for plan in plans:
        uid = plan.result.sop_instance_uid or ""  # plan.sop_instance_uid, without the call
        if uid in seen:
            repeats += 1
            if later is None:
                later = plan
        else:
            seen[uid] = None
    if later is not None:
        uid = later.sop_instance_uid
        earlier = next(p for p in plans if p.sop_instance_uid == uid)
        log.warning("%d file(s) have the SOP Instance UID of another listed (%s as %s: %s): "
                    "each is sent, and counted stored if the peer says so, but a peer "
                    "holds one object per SOP Instance UID", repeats, later.result.path,
                    earlier.result.path, uid)


def unanswered(plan: Plan, why: str) -> str:
    """Why ``plan``'s object got no answer on this attempt: one sent whole says
    ``why`` alone (the peer may hold it), one never sent or cut part-way says
    it was not ("the peer aborted" read as if it had been), and one an earlier
    attempt sent whole, unanswered, that the peer may hold it."""
    if plan.whole:
        return why
    how = f" ({PART_WAY})" if plan.started else ""
    if plan.result.sent:
        return f"not sent again{how}: {why}; an earlier attempt sent it, unanswered"
    return f"not sent{how}: {why}"


def cancelled(plans: list[Plan], max_attempts: int,
               live: tuple[ClientAssociation, list[Plan]] | None,
               report: Callable[[StoreResult], None]) -> None:
    """Say what a cancel left of the attempt's objects not answered for good.
    Those of the association ``live`` (the one standing, with its batch's plans)
    that it cannot take keep that reason, told to ``report`` as when they are
    reached (``store_prepare.refused``): the cancel did not decide their fate."""
    # Once, as a set: a batch may hold thousands.
    standing = {id(plan) for plan in live[1]} if live is not None else set()
    for plan in plans:
        result = plan.result
        if result.retryable and result.attempts < max_attempts:  # its retry will not come
            result.error = f"{result.error or 'failed'}; cancelled before it was sent again"
            result.retryable = False
        elif result.status is None and not result.error:
            refusal = (refused(live[0], plan)
                       if live is not None and not plan.started and id(plan) in standing
                       else None)
            if refusal is not None:
                result.error = refusal
                report(result)
            else:
                result.error = ("cancelled before an answer" if plan.whole
                                else unanswered(plan, "cancelled"))



def retry_order(plans: list[Plan], attempt: int) -> list[Plan]:
    """The plans to send again after ``attempt`` (``StoreResult.retryable``), in
    the order they go. Those whose message was out when the link failed go
    last: one that makes the peer abort (a data set it cannot take) must not
    take the others down at every attempt. Sent on any attempt, not this one
    alone (one suspected before and not reached now is no less suspect), the
    earliest last."""
    for plan in plans:
        if plan.started and not plan.first_sent:
            plan.first_sent = attempt
    return sorted((p for p in plans if p.result.retryable),
                  key=lambda p: (p.first_sent > 0, -p.first_sent))
