"""Talosconfigs and kubeconfigs the fake CLIs read, parsed once per content.

Parsing YAML means importing PyYAML in every CLI process, which is most of a call's start-up
time. So parsed documents are kept in the state by the SHA-256 of their text: the world (and
the first CLI call that meets a text) parses it, later calls read the JSON.
"""

from __future__ import annotations

import hashlib
from typing import Any

State = dict[str, Any]


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def remember(state: State, text: str, document: Any) -> None:
    state.setdefault("parsed", {})[_digest(text)] = document


def load(state: State, text: str) -> Any:
    """The document `text` holds (YAML, JSON being YAML)."""
    cache = state.setdefault("parsed", {})
    digest = _digest(text)
    if digest not in cache:
        import yaml

        cache[digest] = yaml.safe_load(text)
    return cache[digest]


def load_all(text: str) -> list[Any]:
    """The documents of a manifest: JSON parsed directly, anything else as YAML."""
    import json

    try:
        return [json.loads(text)]
    except ValueError:
        import yaml

        return list(yaml.safe_load_all(text))
