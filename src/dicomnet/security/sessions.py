"""What a TLS client keeps between associations: its context.

Every :class:`~dicomnet.security.config.TLSConfig` owns one :class:`ClientCache`.
The first association made with the configuration builds the client
``ssl.SSLContext`` (reading the certificate, key and CA files, asking
``on_private_key_password`` once); later ones reuse it. It is built again only
when one of those files changes (its inode, size or modification time: a
rotated certificate is picked up), when ``SSLKEYLOGFILE`` changes, or once our
own certificate has expired (so that the build refuses it, as it would have).
"""

from __future__ import annotations

import datetime as dt
import os
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncio

    from dicomnet.security.config import TLSConfig

__all__ = ["ClientCache", "files_fingerprint"]

FileState = tuple[int, int, int, int] | None


def _file_state(path: str | Path) -> FileState:
    try:
        st = os.stat(path)
    except OSError:
        return None  # missing: the build says so, as it did before caching
    return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)


def _directory_state(path: str | Path) -> tuple[object, ...]:
    """A capath: the directory and every entry in it (OpenSSL reads hashed
    certificates from it at verification time, and unhashed ones are loaded)."""
    try:
        with os.scandir(path) as entries:
            names = sorted(entry.name for entry in entries)
    except OSError:
        return (None,)
    return (_file_state(path), *((name, _file_state(Path(path, name))) for name in names))


def files_fingerprint(config: TLSConfig) -> tuple[object, ...]:
    """What a client context built from ``config`` was read from: the state of each
    of its files, and the key log destination. Equal fingerprints, same context."""
    files = (config.certfile, config.keyfile, config.cafile, *config.crlfiles)
    return (
        tuple(None if f is None else _file_state(f) for f in files),
        None if config.capath is None else _directory_state(config.capath),
        None if config.keylog_file is not None else os.environ.get("SSLKEYLOGFILE"),
    )


@dataclass(frozen=True, slots=True)
class _Built:
    context: ssl.SSLContext
    fingerprint: tuple[object, ...]
    #: When our certificate expires (then rebuilt, which refuses it); None: never.
    valid_until: dt.datetime | None


class ClientCache:
    """One TLSConfig's client context, shared by every association made with that
    configuration, in any thread or event loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._built: _Built | None = None
        #: A build in progress, per event loop: concurrent first associations wait
        #: for it instead of asking for the password again.
        self._building: dict[asyncio.AbstractEventLoop, asyncio.Future[None]] = {}

    async def context(self, config: TLSConfig) -> ssl.SSLContext:
        """The client context for ``config``: the one built before when its files
        have not changed, else a new one."""
        import asyncio  # here: importing dicomnet.security loads no asyncio

        loop = asyncio.get_running_loop()
        while True:
            fingerprint = files_fingerprint(config)
            current = self._current(fingerprint)
            if current is not None:
                return current
            with self._lock:
                waiting = self._building.get(loop)
                if waiting is None:
                    building: asyncio.Future[None] = loop.create_future()
                    self._building[loop] = building
                    break
            # Only our own cancellation raises here; the builder's outcome is read below.
            await asyncio.wait([waiting])
            error = None if waiting.cancelled() else waiting.exception()
            if error is not None:
                raise error  # the password or a file was wrong: asked once, said to all
            # Built, or the builder was cancelled: look again.
        try:
            context = await config.client_context()
            own = config.local_certificate_info()
        except BaseException as exc:
            if isinstance(exc, Exception):
                building.set_exception(exc)
                building.exception()  # retrieved: no "never retrieved" log without waiters
            else:
                building.cancel()
            raise
        finally:
            with self._lock:
                if self._building.get(loop) is building:
                    del self._building[loop]
        now = dt.datetime.now(dt.UTC)
        valid_until = own.not_after if own is not None and own.not_after > now else None
        with self._lock:
            self._built = _Built(context, fingerprint, valid_until)
        building.set_result(None)
        return context

    def _current(self, fingerprint: tuple[object, ...]) -> ssl.SSLContext | None:
        with self._lock:
            built = self._built
        if built is None or built.fingerprint != fingerprint:
            return None
        if built.valid_until is not None and dt.datetime.now(dt.UTC) >= built.valid_until:
            return None
        return built.context
