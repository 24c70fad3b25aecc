"""The private key's password as ``TLSConfig`` asks it: what its callback gives, as
bytes, and what it raises, as :class:`~dicomnet.errors.ConfigurationError`.

A callback's own exception (a vault's KeyError, a network error) is the user's code
failing, at a context build: it reaches the caller as a ConfigurationError naming
the key, the callback's exception as ``__cause__``, like every other key problem
(client and server, sync and async alike). Cancellation and ``BaseException`` pass.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path

from dicomnet.errors import ConfigurationError

__all__ = ["ask", "ask_async", "password_bytes"]


def password_bytes(password: object) -> bytes:
    """``password`` as OpenSSL takes it; ConfigurationError for anything but text."""
    if isinstance(password, str):
        return password.encode("utf-8")
    if isinstance(password, bytes | bytearray):
        return bytes(password)
    # None (a vault lookup that found nothing, say) would make OpenSSL ask on the
    # terminal itself, blocking the event loop until someone typed an answer.
    raise ConfigurationError(
        f"the private key's password must be a str or bytes, got {type(password).__name__}"
        + (" (on_private_key_password gave no password)" if password is None else ""))


def _raised(exc: Exception, key: Path | None) -> ConfigurationError:
    return ConfigurationError(
        f"asking the password of private key {key}: the on_private_key_password callback "
        f"raised {type(exc).__name__}: {exc}")


def ask(callback: Callable[[], object], key: Path | None) -> object:
    """What ``callback`` returns (an awaitable left to the caller to refuse)."""
    try:
        return callback()
    except ConfigurationError:
        raise  # already ours (the CLI's --key-password-file that cannot be read)
    except Exception as exc:
        raise _raised(exc, key) from exc


async def ask_async(callback: Callable[[], object], key: Path | None) -> object:
    """What ``callback`` returns, awaited when it is awaitable."""
    try:
        result = callback()
        if inspect.isawaitable(result):
            result = await result
        return result
    except ConfigurationError:
        raise
    except Exception as exc:
        raise _raised(exc, key) from exc
