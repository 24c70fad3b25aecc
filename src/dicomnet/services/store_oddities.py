"""The C-STORE SCP's WARNING lines for data sets it stored other than as they came,
or as they came but not as the standard has them: one line each, naming the
object and its sender (AE@host:port), as the other C-STORE lines do."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..storage.part10 import IMPLICIT_LE

if TYPE_CHECKING:
    from ..aio.server_association import ServerAssociation
    from ..dimse.messages import CStoreRQ
    from .store_sink import StoreSink

__all__ = ["log_oddities"]

log = logging.getLogger("dicomnet.services")


def log_oddities(assoc: ServerAssociation, message: CStoreRQ, sink: StoreSink) -> None:
    """The one line each for a data set that started with File Meta Information
    elements, dropped by its sink (storage.stray_meta; PS3.5 7.1), for one
    in Implicit VR on an Explicit VR Little Endian context, or the reverse,
    relabelled (PS3.5 A.1, A.2; PS3.10 7.1), for a deflated one followed by bytes that are
    none of it, dropped (PS3.5 A.5), and for one of odd length, stored as it
    came but which cannot be sent on so (PS3.5 7.1.1)."""
    _odd_length(assoc, message, sink)
    if sink.relabelled == IMPLICIT_LE:
        log.warning("C-STORE %s from %s@%s:%s: its data set is in Explicit VR Little Endian, "
                    "not in the context's Implicit VR Little Endian (%s; PS3.5 A.1): the "
                    "sender mislabelled it; stored as Explicit VR Little Endian (%s), the "
                    "file's Transfer Syntax UID saying so",
                    message.affected_sop_instance_uid, assoc.calling_ae_title, *assoc.peer[:2],
                    sink.relabelled, sink.transfer_syntax)
    elif sink.relabelled is not None:
        log.warning("C-STORE %s from %s@%s:%s: its data set is in Implicit VR, not in the "
                    "context's Explicit VR Little Endian (%s; PS3.5 A.2): stored as Implicit "
                    "VR Little Endian (%s), the file's Transfer Syntax UID saying so",
                    message.affected_sop_instance_uid, assoc.calling_ae_title, *assoc.peer[:2],
                    sink.relabelled, sink.transfer_syntax)
    if sink.trailing:
        log.warning("C-STORE %s from %s@%s:%s: its data set had %d byte(s) after the end of "
                    "its deflated stream, which are no part of it (PS3.5 A.5): dropped",
                    message.affected_sop_instance_uid, assoc.calling_ae_title, *assoc.peer[:2],
                    sink.trailing)
    stray = sink.stray
    if stray is None:
        return
    log.warning("C-STORE %s from %s@%s:%s: its data set started with File Meta Information "
                "element(s) %s (%d bytes), which no data set holds (PS3.5 7.1, PS3.10 7.1): "
                "dropped, the file has one meta group, this server's",
                message.affected_sop_instance_uid, assoc.calling_ae_title, *assoc.peer[:2],
                stray.names, stray.dropped)


def _odd_length(assoc: ServerAssociation, message: CStoreRQ, sink: StoreSink) -> None:
    """Warn of a data set of odd length: every value's length is even (PS3.5
    7.1.1), so every data set's is, and one that is not (a peer's odd-length UN
    value) is stored as it came, answered Success, but refused by dicomnet's own
    SCU (services.store_prepare) and aborted on by DCMTK and Orthanc."""
    writer, buffer = sink.writer, sink.buffer
    size = writer.size if writer is not None else len(buffer) if buffer is not None else 0
    # The file's header is of even length (PS3.10 7.1: its values are even too),
    # so the parity of what the sink holds is the data set's.
    if size % 2:
        log.warning("C-STORE %s from %s@%s:%s: its data set has an odd length, which no "
                    "DICOM encoding gives (PS3.5 7.1.1: every value's length is even): "
                    "stored as it came, but it cannot be sent on as it is (dicomnet store "
                    "refuses the file; DCMTK and Orthanc abort the association on it)",
                    message.affected_sop_instance_uid, assoc.calling_ae_title,
                    *assoc.peer[:2])
