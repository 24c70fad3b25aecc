"""Where a C-STORE SCP puts received objects, and how they are found again.

* :mod:`~dicomnet.storage.names`: values from the network to safe path names.
* :mod:`~dicomnet.storage.files`: temp file, fsync, atomic rename (PS3.4 B.2.3
  statuses for failures).
* :mod:`~dicomnet.storage.part10`: the DICOM file framing of PS3.10 7.1.
* :mod:`~dicomnet.storage.index`: an SQLite index for Query/Retrieve (PS3.4 C.6).
* :mod:`~dicomnet.storage.rows`: what an index row holds, read back from a file.
* :mod:`~dicomnet.storage.header`: the attributes a received data set is placed
  and indexed by, read raw (:mod:`~dicomnet.storage.toplevel` walks the
  elements as DCMTK and pydicom read them).
* :mod:`~dicomnet.storage.syncfs`: many new files made durable with one syncfs.
"""

from __future__ import annotations

from dicomnet.storage.cleanup import cleanup_stale
from dicomnet.storage.files import (
    TEMP_SUFFIX,
    AtomicWriter,
    CommitOutcome,
    CommitResult,
    DuplicatePolicy,
    Layout,
    StorageError,
    StoragePolicy,
    sync_folder,
)
from dicomnet.storage.header import (
    HEADER_PREFIX,
    HeaderAttributes,
    read_file_header,
    read_header,
)
from dicomnet.storage.index import (
    INDEX_NAME,
    SCHEMA_VERSION,
    IndexedInstance,
    NewInstance,
    QueryLevel,
    ReindexProgress,
    ReindexResult,
    StorageIndex,
)
from dicomnet.storage.layout import PlacedFolder
from dicomnet.storage.names import (
    UnsafeNameError,
    is_uid,
    join_relative,
    join_under,
    safe_label,
    safe_relative_path,
    safe_uid,
)
from dicomnet.storage.part10 import (
    PREAMBLE_LENGTH,
    NotPart10Error,
    Part10Info,
    dataset_syntax,
    part10_header,
    read_part10,
    with_transfer_syntax,
)
from dicomnet.storage.syncfs import SYNCFS_DIRTY_LIMIT, can_sync_together, sync_together

__all__ = [
    "HEADER_PREFIX",
    "INDEX_NAME",
    "PREAMBLE_LENGTH",
    "SCHEMA_VERSION",
    "TEMP_SUFFIX",
    "AtomicWriter",
    "CommitOutcome",
    "CommitResult",
    "DuplicatePolicy",
    "HeaderAttributes",
    "IndexedInstance",
    "Layout",
    "NewInstance",
    "NotPart10Error",
    "Part10Info",
    "PlacedFolder",
    "QueryLevel",
    "ReindexProgress",
    "ReindexResult",
    "StorageError",
    "StorageIndex",
    "StoragePolicy",
    "SYNCFS_DIRTY_LIMIT",
    "UnsafeNameError",
    "can_sync_together",
    "cleanup_stale",
    "dataset_syntax",
    "join_relative",
    "join_under",
    "part10_header",
    "read_file_header",
    "read_header",
    "read_part10",
    "safe_label",
    "safe_relative_path",
    "is_uid",
    "safe_uid",
    "sync_folder",
    "sync_together",
    "with_transfer_syntax",
]
