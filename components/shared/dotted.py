"""Reading generated application configs (plain nested mappings) by dotted path."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

# Returned for a path that is absent, so an explicit `null` in the config stays distinguishable.
MISSING: Final = object()


def lookup(cfg: Mapping[str, Any], path: str) -> Any:
    """The value at `path` (e.g. 'dns.base_domain'), or MISSING when any step is absent."""
    value: Any = cfg
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return MISSING
        value = value[part]
    return value
