"""Python calls per sent image on the C-STORE SCU (``dicomnet store --json``),
counted rather than timed: the client's counterpart of ``call_count.py``.

A native ``dicomnet serve --no-fsync`` (TLS 1.3, mutual authentication, as in
``instructions.py``) receives; the CLI runs in this process, twice, under
``sys.setprofile`` and ``threading.setprofile``: over one 512 KiB image, then
over ``--images`` of them (``instructions.py``'s folders). Per image = (images -
one) / (images - 1): start-up, handshake, association and release cancel out.
A warm-up run (one image, not counted) comes first, so that lazy imports stay
out. ``py``: Python calls (a coroutine's resumption counts as one); ``c``:
built-in calls; ``--opcodes``: byte code instructions run, by function, instead
(``sys.settrace``; the interpreter's loop is most of its instructions).

    PYTHONPATH=src .venv/bin/python bench/client_calls.py --work /tmp/cg --top 30
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import io
import sys
import threading
import types
from pathlib import Path
from typing import Any

import instructions as ins
import store_bench as sb

from dicomnet.cli.main import main as cli_main


class Counter:
    def __init__(self, callers: bool, opcodes: bool = False) -> None:
        self.counts: collections.Counter[Any] = collections.Counter()
        self.callers = callers
        self.opcodes = opcodes

    def trace(self, frame: types.FrameType, event: str, arg: object) -> Any:
        """``sys.settrace``'s: byte code instructions run, by function."""
        if event == "call":
            frame.f_trace_opcodes = True
            frame.f_trace_lines = False
        elif event == "opcode":
            code = frame.f_code
            self.counts["op", f"{code.co_qualname} ({Path(code.co_filename).name}:"
                              f"{code.co_firstlineno})"] += 1
        return self.trace

    def profile(self, frame: types.FrameType, event: str, arg: object) -> None:
        if event == "call":
            code = frame.f_code
            name = f"{code.co_qualname} ({Path(code.co_filename).name}:{code.co_firstlineno})"
            if self.callers and frame.f_back is not None:
                name += f" from {frame.f_back.f_code.co_qualname}"
            self.counts["py", name] += 1
        elif event == "c_call":
            owner = getattr(arg, "__self__", None)
            where = (getattr(arg, "__module__", None) or "" if owner is None
                     or isinstance(owner, types.ModuleType) else type(owner).__name__)
            name = f"{where + '.' if where else ''}{getattr(arg, '__name__', '?')}"
            if self.callers:
                name += f" in {frame.f_code.co_qualname}"
            self.counts["c", name] += 1
        elif event == "c_exception":
            self.counts["exc", f"{getattr(arg, '__name__', '?')} in "
                               f"{frame.f_code.co_qualname}"] += 1


def store(port: int, pki: Path, folder: Path, counter: Counter | None) -> None:
    args = ins.client_command("dicomnet", pki, port, folder)[3:]
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    if counter is not None and counter.opcodes:
        threading.settrace(counter.trace)
        sys.settrace(counter.trace)
    elif counter is not None:
        threading.setprofile(counter.profile)
        sys.setprofile(counter.profile)
    try:
        with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
            cli_main(args, standalone_mode=False)
    finally:
        sys.setprofile(None)
        threading.setprofile(None)  # type: ignore[arg-type]
        sys.settrace(None)
        threading.settrace(None)  # type: ignore[arg-type]
    out.flush()
    text = out.buffer.getvalue()  # type: ignore[attr-defined]
    if b'"failed": 0' not in text and b'"ok": true' not in text:
        print(text.decode()[:2000], file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--images", type=int, default=21)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--callers", action="store_true")
    parser.add_argument("--opcodes", action="store_true",
                        help="count byte code instructions by function (sys.settrace) instead")
    args = parser.parse_args(argv)
    folders, pki = ins.prepare(args.work, args.images)
    recv = args.work / "recv" / "client-calls"
    recv.mkdir(parents=True, exist_ok=True)
    port = sb._free_port()
    proc, port = ins.start_server(ins.server_command("dicomnet-nosync", pki, recv, port),
                                  "dicomnet-nosync", args.work / "client-calls.log", port)
    try:
        store(port, pki, folders["one"], None)  # warm-up
        one, many = Counter(args.callers, args.opcodes), Counter(args.callers, args.opcodes)
        store(port, pki, folders["one"], one)
        store(port, pki, folders["images"], many)
    finally:
        ins.stop(proc)
    per = args.images - 1
    diff = {k: (many.counts[k] - one.counts.get(k, 0)) / per for k in many.counts}
    for kind in ("op",) if args.opcodes else ("py", "c", "exc"):
        total = sum(v for (k, _), v in diff.items() if k == kind)
        print(f"{kind}: {total:.1f} per image")
    print()
    for (kind, name), v in sorted(diff.items(), key=lambda kv: -abs(kv[1]))[:args.top]:
        print(f"  {v:8.2f}  {kind:3}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
