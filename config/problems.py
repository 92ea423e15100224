"""A config problem as one line, and the stand-in for a value that failed field validation.

Shared by the model's loader (config/loader.py) and every rule module (config/rules.py,
config/reserved.py), so none of them imports another for it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, overload

from pydantic import BaseModel

if TYPE_CHECKING:
    from config.model import HomelabConfig


@dataclass(frozen=True, order=True)
class Problem:
    """One config problem: the key path, the bad value, and what would be valid."""

    key: str
    value: str
    expected: str

    def line(self) -> str:
        return f"{self.key}: {self.value} — {self.expected}"


Rule = Callable[["HomelabConfig"], Iterable[Problem]]


class InputUnavailableError(Exception):
    """Raised when a rule reads a config value that failed field validation."""


class Unavailable:
    """Stands in for a value that failed field validation (a field, a list item, a nested object
    or a whole section: config/loader.py `partial_config`): any use of it raises
    `InputUnavailableError`, so `check_rules` skips exactly the rules that read it and runs the
    others."""

    def __init__(self, section: str) -> None:
        object.__setattr__(self, "_section", section)

    def _refuse(self, *_: object, **__: object) -> Any:
        raise InputUnavailableError(object.__getattribute__(self, "_section"))

    def __getattr__(self, name: str) -> Any:
        self._refuse()

    __str__ = _refuse
    __format__ = _refuse
    __eq__ = _refuse
    __ne__ = _refuse
    __lt__ = _refuse
    __le__ = _refuse
    __gt__ = _refuse
    __ge__ = _refuse
    __hash__ = _refuse
    __bool__ = _refuse
    __iter__ = _refuse
    __len__ = _refuse
    __contains__ = _refuse
    __getitem__ = _refuse
    __int__ = _refuse
    __index__ = _refuse

    # `{value!r}` in a message must not print a stand-in as if it were the user's value.
    __repr__ = _refuse


def has_unavailable(value: Any) -> bool:
    """Whether `value` is, or holds anywhere inside it, a value that failed validation."""
    if isinstance(value, Unavailable):
        return True
    if isinstance(value, list | tuple):
        return any(has_unavailable(v) for v in value)
    if isinstance(value, Mapping):
        return any(has_unavailable(v) for v in value.values())
    if isinstance(value, BaseModel):
        return any(has_unavailable(v) for v in dict(value).values())
    return False


Item = TypeVar("Item")
Read = TypeVar("Read")


@overload
def parsed(items: Iterable[Item]) -> Iterator[tuple[int, Item]]: ...
@overload
def parsed(items: Iterable[Item], read: Callable[[Item], Read]) -> Iterator[tuple[int, Read]]: ...
def parsed(
    items: Iterable[Any], read: Callable[[Any], Any] | None = None
) -> Iterator[tuple[int, Any]]:
    """(index, read(item)) for each item of a list whose `read` value validated; items that
    failed (or whose read value did) are left out, and all of a list that failed as a whole.

    For the rules that find problems among the items that are there (an overlap, a duplicate,
    a resolver inside a pool): one bad item then hides none of the others' problems. A rule that
    needs every item (an IP inside *some* pool, an odd count of control planes) reads the list
    itself, and is skipped while an item failed.
    """
    if isinstance(items, Unavailable):
        return
    for index, item in enumerate(items):
        try:
            value = item if read is None else read(item)
        except InputUnavailableError:
            continue
        if not has_unavailable(value):
            yield index, value


def present(items: Iterable[Item]) -> Iterator[tuple[int, Item]]:
    """(index, item) for each item of a list that is not itself a failed value; an object with
    a failed field is among them (reading that field raises), and nothing of a list that failed
    as a whole."""
    if isinstance(items, Unavailable):
        return
    for index, item in enumerate(items):
        if not isinstance(item, Unavailable):
            yield index, item


def per_item() -> contextlib.suppress:
    """Around one item's check inside a rule's loop: a value of that item that failed
    validation ends that item's check, not the rule's (the next item is still checked)."""
    return contextlib.suppress(InputUnavailableError)


NS = "homelab"


def key(path: str) -> str:
    """The full config key of a dotted path: 'cluster.vip' -> 'homelab:cluster.vip'."""
    return f"{NS}:{path}"


def quoted(value: object) -> str:
    return repr(str(value))
