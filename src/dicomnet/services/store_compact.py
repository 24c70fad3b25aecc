"""Fields of a slots dataclass kept in less memory than their type takes, behind
properties of the same name: ``store_paths`` holds one ``StoreResult`` per file
until its run ends, hundreds of thousands of them in an archive migration.

A path is kept as its ``str`` (which the listing's ``Path`` caches already: one
string for both, and none of the ``Path``'s parts once it is gone) and given back
as a ``Path``; an empty list of tags as None, made when first asked for and then
kept (appending to it works as on a plain field). ``==``, ``repr``,
``dataclasses.replace`` and pickling set and read the fields through the
properties, so they see what they saw before; ``__init__`` (one per file) puts
them in their slots itself, as the setters would."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["compact_fields", "keep_stored", "stored"]


def compact_fields(cls: type, *, paths: Iterable[str] = (), tag_lists: Iterable[str] = (),
                   docs: Mapping[str, str]) -> None:
    """Put properties over the slots named, which must be ``cls``'s own (a
    ``dataclass(slots=True)``), with ``docs`` as their docstrings: each slot stays
    where the value is kept."""
    paths, tag_lists = tuple(paths), tuple(tag_lists)
    slots = {name: cls.__dict__[name] for name in (*paths, *tag_lists)}
    for name in paths:
        setattr(cls, name, property(*_path_accessors(slots[name]), doc=docs[name]))
    for name in tag_lists:
        setattr(cls, name, property(*_list_accessors(slots[name]), doc=docs[name]))
    cls._compact_slots = slots  # type: ignore[attr-defined]
    cls.__init__ = _slot_init(cls, slots, paths)  # type: ignore[misc]


def _slot_init(cls: type, slots: Mapping[str, Any], paths: tuple[str, ...]) -> Callable[..., None]:
    """An ``__init__`` with the dataclass's own parameters and defaults that
    puts each compact field in its slot itself, as its property's setter would
    (a path's text, None for an empty list): not the setters' Python call each,
    three per object sent. Written out as ``dataclasses`` writes its own."""
    params, lines = [], []
    namespace: dict[str, Any] = {"_fspath": os.fspath, "_MISSING": dataclasses.MISSING}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        if f.default is not dataclasses.MISSING:
            namespace[f"_dflt_{f.name}"] = f.default
            params.append(f"{f.name}=_dflt_{f.name}")
        elif f.default_factory is not dataclasses.MISSING:
            namespace[f"_factory_{f.name}"] = f.default_factory
            params.append(f"{f.name}=_MISSING")
        else:
            params.append(f.name)
        value = (f"_factory_{f.name}() if {f.name} is _MISSING else {f.name}"
                 if f.default_factory is not dataclasses.MISSING else f.name)
        if f.name in paths:
            namespace[f"_slot_{f.name}"] = slots[f.name]
            lines.append(f"_slot_{f.name}.__set__(self, _fspath({value}))")
        elif f.name in slots:
            namespace[f"_slot_{f.name}"] = slots[f.name]
            if f.default_factory is list:  # no empty list made to be dropped
                value = f"None if {f.name} is _MISSING else {f.name}"
            lines.append(f"_slot_{f.name}.__set__(self, ({value}) or None)")
        else:
            lines.append(f"self.{f.name} = {value}")
    source = (f"def __init__(self, {', '.join(params)}):\n    "
              + "\n    ".join(lines or ["pass"]) + "\n")
    exec(source, namespace)  # our own fields' names, nothing read from outside
    init: Callable[..., None] = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__code__ = init.__code__.replace(co_qualname=init.__qualname__)  # profiles name it
    return init


def stored(obj: object, name: str) -> Any:
    """What the slot under property ``name`` holds as it is (a str for a path,
    None for an empty list), for a reader that needs no more (``to_dict``)."""
    return type(obj)._compact_slots[name].__get__(obj)  # type: ignore[attr-defined]


def keep_stored(obj: object, name: str, value: object) -> None:
    """Put ``value`` in the slot under property ``name`` as it is (a path's
    text: the caller's own str, not a copy of it), bypassing the property."""
    type(obj)._compact_slots[name].__set__(obj, value)  # type: ignore[attr-defined]


def _path_accessors(slot: Any) -> tuple[Callable[[Any], Path], Callable[[Any, Any], None]]:
    def get(self: object) -> Path:
        return Path(slot.__get__(self))

    def set_(self: object, path: os.PathLike[str] | str) -> None:
        slot.__set__(self, os.fspath(path))

    return get, set_


def _list_accessors(slot: Any) -> tuple[Callable[[Any], list[str]],
                                         Callable[[Any, Any], None]]:
    def get(self: object) -> list[str]:
        tags: list[str] | None = slot.__get__(self)
        if tags is None:
            tags = []
            slot.__set__(self, tags)
        return tags

    def set_(self: object, tags: list[str]) -> None:
        slot.__set__(self, tags or None)

    return get, set_
