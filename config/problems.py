"""A config problem as one line, and the stand-in for a value that failed field validation.

Shared by the model's loader (config/loader.py) and every rule module (config/rules.py,
config/reserved.py), so none of them imports another for it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

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

    def __repr__(self) -> str:
        return f"Unavailable({object.__getattribute__(self, '_section')!r})"


NS = "homelab"


def key(path: str) -> str:
    """The full config key of a dotted path: 'cluster.vip' -> 'homelab:cluster.vip'."""
    return f"{NS}:{path}"


def quoted(value: object) -> str:
    return repr(str(value))
