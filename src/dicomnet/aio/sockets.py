"""TCP options of DICOM connections, either side: Nagle off on all; on TLS
ones, a limit on unsent bytes and, where the round trip is short, a fixed
receive buffer.

* ``TCP_NODELAY``: DIMSE is request/response with small commands, and Nagle's
  algorithm delays them (DCMTK and pynetdicom leave it on, which costs them 3x
  to 30x on small objects).
* ``TCP_NOTSENT_LOWAT`` (Linux, macOS; TLS connections only, as the next,
  see :func:`tune_socket`): at most :data:`UNSENT_MOST` bytes wait
  in the kernel unsent; a sender with more to say is told to wait (the
  transport keeps it). Without it a sender piles megabytes into its socket
  whenever the receiver's window is shut, and each window update the receiver
  sends then transmits that pile *from the receiver's own system call*: on
  loopback, a receiving server spent a fifth of its CPU sending its client's
  data (``perf``: ``tcp_write_xmit`` under its ``recv``). Bytes in flight are
  not limited, only those not yet sent; the sender is woken to refill once
  fewer than half of them are left (on a fast long path it must do so within
  the time 32 KiB takes to leave: measured on loopback only). A
  closing transport lifts the limit (:func:`lift_unsent_limit`): what is left,
  and close_notify, go to the kernel at once, as before.
* A fixed receive buffer of :data:`RECEIVE_BUFFER` where the round trip is
  short (under :data:`SHORT_RTT_US`, measured by the kernel during the TCP
  handshake: the same host or a LAN). Linux sizes receive buffers from the
  bytes read per round trip, which on such a path stays a few hundred KB
  (420 KB on loopback here), too little to absorb the moments one side is
  not scheduled. On a longer path the kernel's own sizing is kept: it grows
  with the bandwidth-delay product, which a fixed size could cap (so could
  this one, beyond 10 Gbit/s at 1 ms). Skipped where ``net.core.rmem_max`` is
  lower (the kernel would cap the request and still switch its own sizing
  off, leaving less than it might have grown to): many systems ship 208 KiB,
  and must raise it (``sysctl -w net.core.rmem_max=4194304``) to have this;
  skipped too where the buffer is already as large as the one set would be.
  :func:`receive_buffer_for` decides, and says why it skips in the debug log.
  The window's ceiling (TCP_WINDOW_CLAMP) is raised with it, as kernels
  before 6.11 do not.

The last two, measured with 4 x 256 MB over TLS on loopback (``bench/pairs.py
large --stacks dicomnet,tree,dcmtk+B``, 6 interleaved rounds, see
docs/benchmarks.md, item 43): the receiving server's CPU from 0.79-0.83 to
0.67-0.71 s per run, the sender's from 0.77-0.81 to 0.68-0.72 s, and the rate
from 1,249 to 1,471 MB/s (faster in every round); 512 KB images (``pairs.py
images``) 507 to 550 MB/s. Only C-STORE from an SCU was measured; a server
sending (C-GET, large responses) gets the same options.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import socket
import struct
import sys

__all__ = ["RECEIVE_BUFFER", "SHORT_RTT_US", "UNSENT_MOST", "lift_unsent_limit",
           "receive_buffer_for", "round_trip_us", "tune_socket"]

log = logging.getLogger("dicomnet.aio")

#: Most bytes left unsent in the kernel per socket (TCP_NOTSENT_LOWAT). 32 KiB to
#: 128 KiB measured alike; 64 KiB is four TLS records.
UNSENT_MOST = 64 << 10
#: Receive buffer asked for on short round trips (the kernel doubles it for its
#: bookkeeping). 1 to 8 MiB measured alike on loopback.
RECEIVE_BUFFER = 2 << 20
#: Round trips shorter than this (microseconds) get the fixed receive buffer: at
#: 10 Gbit/s, 1 ms holds 1.25 MB in flight, well within it.
SHORT_RTT_US = 1000

#: struct tcp_info (linux/tcp.h): tcpi_rtt and tcpi_rttvar, in microseconds.
_TCP_INFO_RTT = struct.Struct("=II")
_TCP_INFO_RTT_OFFSET = 68
#: tcpi_rttvar before the first sample is a quarter of the initial RTO (250 ms);
#: after one it is about half the round trip.
_NO_SAMPLE_RTTVAR = 100_000
_RMEM_MAX = "/proc/sys/net/core/rmem_max"
#: TCP_NOTSENT_LOWAT where the platform has it.
_UNSENT_OPTION: int | None = getattr(socket, "TCP_NOTSENT_LOWAT", None)
_TCP_FAMILIES = (socket.AF_INET, socket.AF_INET6)


def tune_socket(sock: socket.socket | None, *, tls: bool) -> None:
    """Set the options above on a connected TCP socket; anything the platform
    refuses is left as it is (none of them changes what is sent).

    The last two only for TLS (``tls``), where they were measured to help: the
    receiver is the busy side there (it decrypts). Over plain TCP, asyncio's
    transport (Python 3.11) moves its whole backlog down after each partial
    send, so a small unsent limit raised the sender's CPU from 0.45 to 0.66 s
    per GB, and the kernel's own receive buffer sizing went faster than the
    fixed one (1,708 against 1,492 MB/s, 6 interleaved rounds)."""
    if sock is None or sock.family not in _TCP_FAMILIES:
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if not tls:
        return
    if _UNSENT_OPTION is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, _UNSENT_OPTION, UNSENT_MOST)
    with contextlib.suppress(OSError):
        size = receive_buffer_for(round_trip_us(sock), _rmem_max(),
                                  sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))
        if size is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
            # The window's ceiling was computed when the connection was set up
            # (~64 KiB from the default buffer); kernels before 6.11 never raise
            # it again once the buffer is set by hand, so the window would stay
            # that small. Raised here to the buffer asked for (6.11 and later
            # raise it themselves once data flows, to about twice that).
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_WINDOW_CLAMP, size)


def receive_buffer_for(rtt_us: int | None, rmem_max: int | None, current: int) -> int | None:
    """The receive buffer (SO_RCVBUF) to set on a TLS connection whose round trip
    is ``rtt_us``, where ``net.core.rmem_max`` is ``rmem_max`` (None: unknown)
    and the socket's buffer is ``current`` bytes (as ``getsockopt`` reports it);
    None to leave the kernel's own sizing, which a buffer set by hand switches
    off for good, so that it is never traded for a smaller one:

    * a round trip unknown or of :data:`SHORT_RTT_US` or more: the kernel grows
      the buffer with the bandwidth-delay product, past what is set here;
    * ``rmem_max`` below :data:`RECEIVE_BUFFER`, or unknown: the kernel would
      cap the request there (Linux ``sock_setsockopt``), a buffer smaller than
      the one wanted, with its sizing off all the same;
    * ``current`` already at least what the request gives (the kernel doubles
      it for its bookkeeping, and reports the doubled size).
    """
    if rtt_us is None or rtt_us >= SHORT_RTT_US:
        log.debug("receive buffer left to the kernel: round trip %s",
                  "unknown" if rtt_us is None else f"of {rtt_us} us")
        return None
    if rmem_max is None or rmem_max < RECEIVE_BUFFER:
        log.debug("receive buffer left to the kernel: net.core.rmem_max (%s) is below the "
                  "%d bytes wanted, and the kernel would cap the request there",
                  "unknown" if rmem_max is None else rmem_max, RECEIVE_BUFFER)
        return None
    if current >= 2 * RECEIVE_BUFFER:
        log.debug("receive buffer left as it is: %d bytes already", current)
        return None
    return RECEIVE_BUFFER


def lift_unsent_limit(sock: socket.socket) -> None:
    """Let the kernel take any amount unsent again (a closing connection: what
    is left, and TLS's close_notify behind it, should not wait for the peer
    to read first; an alert refused with EAGAIN would be lost)."""
    if _UNSENT_OPTION is not None and sock.family in _TCP_FAMILIES:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, _UNSENT_OPTION, 0)  # 0: the system's default


def round_trip_us(sock: socket.socket) -> int | None:
    """The kernel's smoothed round-trip time of ``sock`` in microseconds (Linux
    ``TCP_INFO``; 0 on a fast loopback); None where unknown (another system, or
    no sample yet)."""
    option = getattr(socket, "TCP_INFO", None)
    if option is None or not sys.platform.startswith("linux"):  # the layout below is Linux's
        return None
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, option, 104)
    except OSError:
        return None
    if len(info) < _TCP_INFO_RTT_OFFSET + _TCP_INFO_RTT.size:
        return None
    rtt, rttvar = _TCP_INFO_RTT.unpack_from(info, _TCP_INFO_RTT_OFFSET)
    if rtt == 0 and rttvar >= _NO_SAMPLE_RTTVAR:
        return None  # no sample yet (0 with a small variance: under a microsecond)
    return int(rtt)


@functools.cache
def _rmem_max() -> int | None:
    """``net.core.rmem_max`` (read once), or None where it cannot be read."""
    try:
        with open(_RMEM_MAX, encoding="ascii") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None
