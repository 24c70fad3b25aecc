"""Strings that every JSON parser takes: a file name's bytes that are not UTF-8.

Python decodes such bytes of a file name with ``surrogateescape`` (PEP 383): byte
0xFF becomes the lone surrogate U+DCFF. ``json.dumps`` writes it as ``"\\udcff"``,
which Python reads back but strict parsers (RFC 8259 8.2: a lone surrogate is not
a character; serde_json, Go's encoding/json, jq) reject or mangle, so one odd
file name would make the whole --json document unreadable.

The policy of --json: every string is valid Unicode, a byte that is not UTF-8
written as the four characters ``\\xff``. Where that text is a path the user
may want to open (``path`` of each object `dicomnet store` sent, ``path`` of
`dicomnet serve`'s "stored" line, ``folder`` of `dicomnet reindex`), a field named
after it with ``_bytes`` holds the name's exact bytes in base64 (RFC 4648 4),
present only then: without it the text is the name itself.
"""

from __future__ import annotations

import base64
import json
import json.encoder
import os
import re
from collections.abc import Callable, Iterable, Iterator
from json.encoder import encode_basestring_ascii
from pathlib import Path

__all__ = ["Streamed", "indented_document", "json_safe", "path_fields", "valid_unicode"]

#: json's C encoder (None without the accelerator): typeshed does not declare it.
_C_ENCODER: Callable[..., Callable[[object, int], list[str]]] | None = getattr(
    json.encoder, "c_make_encoder", None)

#: Lone surrogates: U+DC80-U+DCFF stand for undecodable bytes 0x80-0xFF
#: (surrogateescape); any other is written as its code point.
_SURROGATES = re.compile("[\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"


def valid_unicode(text: str) -> str:
    """``text`` with each lone surrogate written as an escape: ``\\xff`` for an
    undecodable byte of a file name, ``\\udxxx`` for any other."""
    return _SURROGATES.sub(_escape, text)


class Streamed(list):  # type: ignore[type-arg]
    """A JSON array whose items are made one at a time as the document is
    written (``print_json`` with its pieces), none kept: each ``--json`` result
    of a run of hundreds of thousands of files. ``items`` gives them, each made
    :func:`json_safe` as it comes. For an indented document only: the C encoder
    (one line, no indent) reads a list's own storage, which is empty."""

    def __init__(self, items: Callable[[], Iterable[object]], length: int) -> None:
        super().__init__()
        self._items = items
        self._length = length

    def __iter__(self) -> Iterator[object]:
        return (json_safe(item) for item in self._items())

    def __len__(self) -> int:
        return self._length

    def indented(self, level: int) -> Iterator[str]:
        """This array's pieces as ``json.JSONEncoder(indent=2, default=str)``
        writes it at nesting ``level``, its items made :func:`json_safe`. That
        encoder is pure Python (3.11's C encoder has no ``indent``): ~390 calls
        for one object of ``dicomnet store``'s results, more than half of the
        client's Python calls per sent image. A flat dict item (no container but
        empty ones) is one call of the C encoder instead, its separators carrying
        the indentation, when it holds no surrogate that ``json_safe`` would
        change (none is written as ``\\udxxx`` then); any other item is
        written by json's encoder, its lines indented to ``level``."""
        if not self._length:
            yield "[]"
            return
        inner = "\n" + "  " * (level + 1)  # an item's line
        member = inner + "  "  # a flat item's member's line
        close = "\n" + "  " * (level + 1) + "}"
        flat = None if _C_ENCODER is None else _C_ENCODER(
            None, str, encode_basestring_ascii, None, ": ", "," + member, False, False, True)
        yield "["
        separator = inner
        for item in self._items():
            if flat is not None and type(item) is dict and _LEAVES.issuperset(
                    map(type, filter(None, item.values()))):
                text = "".join(flat(item, 0))
                if "\\ud" not in text:
                    yield separator + (text if text == "{}" else
                                       "{" + member + text[1:-1] + close)
                    separator = "," + inner
                    continue
            yield separator
            separator = "," + inner
            for chunk in _INDENTED.iterencode(json_safe(item)):
                yield chunk.replace("\n", inner)
        yield "\n" + "  " * level + "]"


#: What a flat item's truthy values may be (falsy ones are any: an empty container
#: is written alike by both encoders); a subclass (an IntEnum) goes the long way.
_LEAVES = frozenset({str, int, float, bool})
_INDENTED = json.JSONEncoder(indent=2, default=str)


def indented_document(safe: object) -> Iterator[str]:
    """The pieces of ``json.dumps(safe, indent=2, default=str)`` (``safe`` from
    :func:`json_safe`), a :class:`Streamed` array that is a value of a
    top-level dict written by :meth:`Streamed.indented`."""
    if not (type(safe) is dict and any(isinstance(v, Streamed) for v in safe.values())
            and all(type(k) is str for k in safe)):
        yield from _INDENTED.iterencode(safe)
        return
    separator = "{\n  "
    for key, value in safe.items():
        yield separator + encode_basestring_ascii(key) + ": "
        separator = ",\n  "
        if isinstance(value, Streamed):
            yield from value.indented(1)
        else:
            for chunk in _INDENTED.iterencode(value):
                yield chunk.replace("\n", "\n  ")
    yield "\n}"


def json_safe(obj: object) -> object:
    """``obj`` (dicts, lists, tuples, strings, numbers) with :func:`valid_unicode`
    applied to every string, keys included; a :class:`Streamed` array as it is
    (its items are made safe as they come)."""
    if isinstance(obj, Streamed):
        return obj
    if isinstance(obj, str):
        return valid_unicode(obj)
    if isinstance(obj, dict):
        return {json_safe(k) if isinstance(k, str) else k: json_safe(v)
                for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    return obj


def path_fields(name: str, path: Path | str) -> dict[str, str]:
    """``{name: the path as valid text}``, plus ``{name}_bytes``: its exact bytes
    in base64 when some are not UTF-8 (the text alone then loses them)."""
    text = str(path)
    fields = {name: valid_unicode(text)}
    if _SURROGATES.search(text):
        try:
            raw = os.fsencode(text)
        except UnicodeEncodeError:  # a surrogate no file name's byte gives
            raw = text.encode("utf-8", "surrogatepass")
        fields[f"{name}_bytes"] = base64.b64encode(raw).decode("ascii")
    return fields
