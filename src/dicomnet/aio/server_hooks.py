"""A user's hook that raises what is no ``Exception`` costs what its raising an
``Exception`` would: its object's operation (``on_c_store``, ``on_c_echo``:
Processing Failure) or its association (``on_association_request``: rejected),
never the server.

``SystemExit`` (a ``sys.exit()`` in a handler, a library calling ``exit()`` on
an error), ``GeneratorExit`` and the other ``BaseException`` subclasses went
through the ``except Exception`` that guards each hook: asyncio re-raises
``SystemExit`` and ``KeyboardInterrupt`` out of the event loop, so one
handler's ``sys.exit()`` stopped the server and cut every association, and any
other one left its association's task dead, the peer's connection closed
without an answer. Here they become :class:`HookExited` (an ``Exception``,
the original its ``__cause__``, so that the traceback logged shows it).

Left as they are: ``asyncio.CancelledError`` (the caller tells the
operation's own cancellation from the hook's) and, raised on the event loop's
thread, ``KeyboardInterrupt``, which may be the user's Ctrl-C (a loop without
a SIGINT handler gets it wherever the main thread is: taken for the hook's
failure, the server would no longer stop), and ``GeneratorExit``, which may be
the coroutine's own closing. In a worker thread neither can be (Python
delivers signals to the main thread): there they are the hook's own, and
contained as the others are.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from ..errors import DicomNetError

__all__ = ["HookExited", "contained", "run_contained"]


class HookExited(DicomNetError):
    """A user's hook raised a ``BaseException`` that is no ``Exception``
    (``SystemExit``, say): its ``__cause__``."""


@contextlib.contextmanager
def contained(what: str, *, in_thread: bool = False) -> Iterator[None]:
    """Turn what ``what`` (a hook's name, for the message) raises that is no
    ``Exception`` into :class:`HookExited`; see the module docstring for those
    left as they are."""
    try:
        yield
    except (Exception, asyncio.CancelledError):
        raise
    except (KeyboardInterrupt, GeneratorExit) as exc:
        if not in_thread:
            raise
        raise _exited(what, exc) from exc
    except BaseException as exc:
        raise _exited(what, exc) from exc


def run_contained(what: str, hook: Callable[..., Any], *args: object) -> Any:
    """``hook(*args)`` in a worker thread, :func:`contained`."""
    with contained(what, in_thread=True):
        return hook(*args)


def _exited(what: str, exc: BaseException) -> HookExited:
    return HookExited(f"the {what} raised {type(exc).__name__}"
                      f"{f' ({exc})' if str(exc) else ''}, which ends its own work, "
                      "not the server")
