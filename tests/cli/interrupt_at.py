"""``python -m tests.cli.interrupt_at SIGNAL WHERE ARGS...``: run ``dicomnet ARGS``
as ``python -m dicomnet.cli.main`` does, and send this process SIGNAL (a real one,
``signal.raise_signal``) when the main thread first calls WHERE.

WHERE is ``module:qualname`` (``__main__`` for the entry point's module), with
``@<string>`` for code that module compiled from a string, as dataclasses does for
the methods it makes; several, comma-separated, get one signal each. Python runs
the signal's handler at its next check, in or just after that call: the
interrupt lands at a chosen point, run after run, where a person's Ctrl-C lands
wherever the process happens to be. ``finalizer:WHERE`` sends it from an
object's finalizer run there (as a generator's or a weakref callback may run
anywhere), where the handler's KeyboardInterrupt cannot propagate.
"""

from __future__ import annotations

import runpy
import signal
import sys
from types import FrameType
from typing import Any

signum = signal.Signals[sys.argv[1]]
#: (qualified name, the file name it must have or "", from a finalizer), not yet met.
points = [(*where.removeprefix("finalizer:").partition("@")[::2], where.startswith("finalizer:"))
          for where in sys.argv[2].split(",")]


class _Finalized:
    def __del__(self) -> None:
        signal.raise_signal(signum)


def _hook(frame: FrameType, event: str, arg: Any) -> None:
    if event != "call":
        return
    code = frame.f_code
    name = f"{frame.f_globals.get('__name__')}:{code.co_qualname}"
    for point in points:
        target, filename, in_finalizer = point
        if name == target and (not filename or code.co_filename == filename):
            points.remove(point)
            if not points:
                sys.setprofile(None)
            if in_finalizer:
                _Finalized()  # gone at once: its __del__ runs here
            else:
                signal.raise_signal(signum)
            return


sys.argv = ["dicomnet", *sys.argv[3:]]
sys.setprofile(_hook)
runpy.run_module("dicomnet.cli.main", run_name="__main__", alter_sys=True)
