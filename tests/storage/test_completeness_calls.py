"""storage.completeness: the walk's cost per element, counted (not timed). The
SCP walks every received data set's elements on its event loop, so each call
per element is paid once per attribute of every object."""

from __future__ import annotations

import struct
import sys
import types
from collections import Counter

from dicomnet.storage.completeness import DatasetWalker


def _calls(run: types.FunctionType | object) -> Counter[str]:
    """Built-in calls made while ``run()`` runs, by name."""
    seen: Counter[str] = Counter()

    def profile(frame: types.FrameType, event: str, arg: object) -> None:
        if event == "c_call":
            seen[getattr(arg, "__name__", "?")] += 1

    sys.setprofile(profile)
    try:
        run()  # type: ignore[operator]
    finally:
        sys.setprofile(None)
    return seen


def _short_elements(count: int) -> bytes:
    """``count`` Explicit VR Little Endian elements with 2-byte lengths (LO, 4 bytes)."""
    return b"".join(struct.pack("<HH2sH", 0x0011, 0x1000 + i, b"LO", 4) + b"ABCD"
                    for i in range(count))


def test_explicit_vr_element_costs_one_unpack() -> None:
    """One ``unpack_from`` per short Explicit VR element (its tag, VR and length
    at once), and no other built-in call per element: two unpacks and a
    ``len`` each before."""
    data = _short_elements(50)
    walker = DatasetWalker(implicit=False)
    calls = _calls(lambda: walker.feed(data))
    assert walker.problem() is None
    assert calls["unpack_from"] == 50
    assert sum(calls.values()) < 50 + 10


def test_items_in_explicit_vr_still_read_their_4_byte_length() -> None:
    """An item's length is 4 bytes where an Explicit VR element has its VR: a
    sequence of undefined length with an item of defined length (2 elements)
    whose length is over 65535 in its high bytes is walked by that length."""
    inner = _short_elements(2)
    padding = struct.pack("<HH2sHI", 0x0011, 0x2000, b"OB", 0, 0x10000) + bytes(0x10000)
    item_value = inner + padding
    data = (struct.pack("<HH2sHI", 0x0011, 0x0010, b"SQ", 0, 0xFFFFFFFF)
            + struct.pack("<HHI", 0xFFFE, 0xE000, len(item_value)) + item_value
            + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
            + _short_elements(1))
    walker = DatasetWalker(implicit=False)
    walker.feed(data)
    assert walker.problem() is None
    cut = DatasetWalker(implicit=False)
    cut.feed(data[:-3])
    assert cut.problem() is not None


def test_implicit_vr_element_costs_one_unpack() -> None:
    """Implicit VR Little Endian too: one ``unpack_from`` per element and no other
    built-in call per element."""
    data = b"".join(struct.pack("<HHL", 0x0011, 0x1000 + i, 4) + b"ABCD" for i in range(50))
    walker = DatasetWalker(implicit=True)
    calls = _calls(lambda: walker.feed(data))
    assert walker.problem() is None
    assert calls["unpack_from"] <= 51
    assert sum(calls.values()) < 50 + 10
