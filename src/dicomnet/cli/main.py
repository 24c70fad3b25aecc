"""The ``dicomnet`` program (``dicomnet.cli.main:main``, ``python -m dicomnet``).

It loads the commands (:mod:`dicomnet.cli.group`) only once it can tell how the
run ended, whatever interrupts it: a Ctrl-C or SIGTERM while Python loads
click, asyncio and cryptography (0.1 to 0.2 s of every run) printed a
traceback, or killed the process (exit -2, -15) with no word.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from dicomnet.cli import exits

__all__ = ["main"]


def main(args: Sequence[str] | None = None, **extra: Any) -> Any:
    """Run ``dicomnet ARGS`` (``sys.argv[1:]`` by default) and exit with its code.

    SIGTERM is handled as Ctrl-C is, with exit 143. ``standalone_mode=False``
    (click's option) returns what the command returned and raises what it
    raised, as click does, without this process-wide handling."""
    if extra.get("standalone_mode", True) is False:
        from dicomnet.cli.group import cli

        return cli.main(args, **extra)
    code: int | str | None = exits.EXIT_OK
    try:
        argv = list(sys.argv[1:] if args is None else args)
        exits.promise_json(argv)
        exits.handle_signals()
        from dicomnet.cli.group import cli

        cli.main(argv, **extra)  # click's standalone mode: always a SystemExit
    except SystemExit as exc:
        code = exc.code
    except KeyboardInterrupt as exc:  # while loading, before the group's own handling
        message, code = exits.interruption(exc)
        exits.write_error(message)
        with exits.json_promise() as promise:
            promise.keep(code, message)
    try:
        exits.leave(code)
    except KeyboardInterrupt:  # one that came as the run ended: the outcome stands
        exits.leave(code)


if __name__ == "__main__":
    main()
