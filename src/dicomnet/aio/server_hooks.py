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
from collections.abc import Callable
from types import TracebackType
from typing import Any

from ..errors import DicomNetError

__all__ = ["HookExited", "contained", "run_contained"]


class HookExited(DicomNetError):
    """A user's hook raised a ``BaseException`` that is no ``Exception``
    (``SystemExit``, say): its ``__cause__``."""


class contained:  # noqa: N801 (used as a function: ``with contained(...)``)
    """Turn what the block raises that is no ``Exception`` into
    :class:`HookExited`, naming ``what`` (a hook's name, or the handler itself);
    see the module docstring for those left as they are. A class, not a
    generator: entered once per object stored where ``on_stored`` is set, it
    costs next to nothing when nothing is raised."""

    __slots__ = ("in_thread", "what")

    def __init__(self, what: object, *, in_thread: bool = False) -> None:
        self.what = what
        self.in_thread = in_thread

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if exc is None or isinstance(exc, Exception | asyncio.CancelledError):
            return
        if isinstance(exc, KeyboardInterrupt | GeneratorExit) and not self.in_thread:
            return
        raise _exited(self.what, exc) from exc


def run_contained(hook: Callable[..., Any], *args: object) -> Any:
    """``hook(*args)`` in a worker thread, :class:`contained`."""
    with contained(hook, in_thread=True):
        return hook(*args)


def _exited(what: object, exc: BaseException) -> HookExited:
    if not isinstance(what, str):  # a handler: named only now, when it failed
        what = f"handler {getattr(what, '__qualname__', type(what).__qualname__)!r}"
    return HookExited(f"the {what} raised {type(exc).__name__}"
                      f"{f' ({exc})' if str(exc) else ''}, which ends its own work, "
                      "not the server")
