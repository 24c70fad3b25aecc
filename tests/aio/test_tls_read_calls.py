"""One TLS read (``_READ_CALLS`` records) can fill what the association lends
for a whole PDV of the largest PDU a server accepts by default, wherever in a
record the PDV's data starts: its last bytes are not left to a read of the
transport's own buffer, which would copy them and the next PDU's data."""

from __future__ import annotations

from dicomnet.aio import tls_socket
from dicomnet.config import Limits

#: Plaintext bytes per TLS record at most (RFC 8446 5.1, RFC 5246 6.2.1).
RECORD = 16384
#: PDV item length (4), presentation context ID (1), message control header (1)
#: before a PDV's data (PS3.8 9.3.5.1, E.2).
PDV_OVERHEAD = 6


def test_one_read_holds_a_whole_pdv_of_the_default_largest_pdu() -> None:
    data = Limits().max_pdu_length - PDV_OVERHEAD
    worst = -(-(RECORD - 1 + data) // RECORD)  # starting one byte before a record's end
    assert worst == 65
    assert worst <= tls_socket._READ_CALLS
