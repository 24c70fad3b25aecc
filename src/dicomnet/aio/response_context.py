"""Whether a response that came on another presentation context than its
request's answers that request (``aio.client``).

A response travels on its request's context (PS3.7 9.1; PS3.8 E.1: one context
per message), of that context's SOP Class, its data set in that context's
transfer syntax. Odil 0.12 answers every request on the last accepted context of
the request's SOP Class (review 29), and dicomnet's store proposes several per
SOP Class: a *twin* (same SOP Class and, for a response with a data set, same
transfer syntax; a command set is Implicit VR Little Endian on any context,
PS3.7 6.3.1) reads the same, so its response is taken, said once per
association. Any other answers nothing of ours: the caller aborts.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..dimse.messages import DimseMessage
    from .client import ClientAssociation

__all__ = ["ResponseContexts"]

log = logging.getLogger("dicomnet.aio")


class ResponseContexts:
    """The context check of ``assoc``'s responses, and whether a twin was said."""

    __slots__ = ("_assoc", "_said")

    def __init__(self, assoc: ClientAssociation) -> None:
        self._assoc = assoc
        self._said = False

    def fault(self, came_on: int, went_on: int, message: DimseMessage,
              responded: int) -> str | None:
        """Why ``message``, the response to message ``responded``, which came on
        context ``came_on`` while its request went on ``went_on`` (another),
        answers nothing of ours; None for a twin's (taken: the first said in a
        WARNING)."""
        contexts = self._assoc.contexts
        came, went = contexts.get(came_on), contexts.get(went_on)
        if came is None or went is None or came.abstract_syntax != went.abstract_syntax or (
                message.has_dataset and came.transfer_syntax != went.transfer_syntax):
            return (f"{type(message).__name__} to message {responded} came on presentation "
                    f"context {came_on}, its request went on {went_on} (PS3.7 9.1, PS3.8 E.1)")
        if not self._said:
            self._said = True
            log.warning("%s: %s to message %d came on presentation context %d, its request "
                        "went on %d, a twin (same SOP Class%s): taken, though PS3.7 9.1 has "
                        "a response on its request's context", self._assoc._name(),
                        type(message).__name__, responded, came_on, went_on,
                        ", same transfer syntax" if message.has_dataset else ", no data set")
        return None
