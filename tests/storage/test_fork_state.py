"""Per-process state of the store (the /proc/self/fd descriptor that names unnamed
files, idle AIO contexts): forgotten in a forked child by a fork hook, not
checked with a ``getpid`` system call per object."""

from __future__ import annotations

import os
import sys
import types
from collections.abc import Callable

from dicomnet.storage import direct as direct_module
from dicomnet.storage import files as files_module


def built_in_calls(run: Callable[[], object]) -> list[str]:
    """The built-in functions ``run()`` calls, by name."""
    seen: list[str] = []

    def profile(frame: types.FrameType, event: str, arg: object) -> None:
        if event == "c_call" and arg is not sys.setprofile:
            seen.append(getattr(arg, "__name__", "?"))

    sys.setprofile(profile)
    try:
        run()
    finally:
        sys.setprofile(None)
    return seen


def in_child(run: Callable[[], str]) -> str:
    """``run()``'s text, computed in a forked child."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        try:
            os.close(read_end)
            os.write(write_end, run().encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        text = pipe.read().decode()
    os.waitpid(pid, 0)
    return text


def test_the_proc_fd_folder_is_found_without_a_system_call() -> None:
    files_module._proc_fd_dir()
    assert built_in_calls(files_module._proc_fd_dir) == []


def test_a_forked_child_names_its_own_files_not_its_parents() -> None:
    parent = files_module._proc_fd_dir()
    assert os.readlink(f"/proc/self/fd/{parent}") == f"/proc/{os.getpid()}/fd"

    def child() -> str:
        mine = files_module._proc_fd_dir()
        return f"{os.readlink(f'/proc/self/fd/{mine}')} {os.getpid()}"

    link, pid = in_child(child).split()
    assert link == f"/proc/{pid}/fd"


def test_idle_aio_contexts_are_taken_without_a_system_call_but_io_setup() -> None:
    if direct_module._kernel is None:
        return  # no AIO here: nothing is reused
    context = direct_module._open_context()
    assert context is not None
    direct_module._release_context(context, reusable=True)
    calls = built_in_calls(lambda: direct_module._release_context(
        direct_module._open_context() or 0, reusable=True))
    assert "getpid" not in calls, calls


def test_a_forked_child_does_not_reuse_its_parents_aio_contexts() -> None:
    if direct_module._kernel is None:
        return
    context = direct_module._open_context()
    assert context is not None
    direct_module._release_context(context, reusable=True)
    assert direct_module._contexts
    assert in_child(lambda: str(len(direct_module._contexts))) == "0"
