"""The world's state file, its lock and its call log.

The state is one JSON document that every fake CLI loads, changes and saves under an exclusive
`fcntl` lock, so the programs' parallel subprocesses (and the test) see one consistent world.
The call log is JSON lines: one entry per CLI call, with what the program handed over.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

STATE_ENV = "WORLD_STATE"
LOG_ENV = "WORLD_LOG"

State = dict[str, Any]


def state_path() -> Path:
    return Path(os.environ[STATE_ENV])


def log_path() -> Path:
    return Path(os.environ[LOG_ENV])


def load(path: Path) -> State:
    loaded: State = json.loads(path.read_text())
    return loaded


def save(path: Path, state: State) -> None:
    temp = path.with_suffix(".tmp")
    temp.write_text(json.dumps(state, indent=1, sort_keys=True))
    temp.replace(path)


@contextlib.contextmanager
def locked(path: Path) -> Iterator[State]:
    """The state, loaded under the lock and saved when the block ends without an exception."""
    with path.with_suffix(".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            state = load(path)
            yield state
            save(path, state)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def append_log(path: Path, entry: dict[str, Any]) -> None:
    with path.open("a") as log:
        log.write(json.dumps(entry, sort_keys=True) + "\n")


def read_log(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
