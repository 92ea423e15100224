"""Virtual time: one clock in the state, read and advanced by the fake CLIs and the programs.

The programs wait between retries (`time.sleep`) and bound their loops by `time.monotonic()`;
their expiry checks read `time.time()`. Run against the world, they must neither wait for real
nor race the real clock, so the world installs a `sitecustomize` module (on PYTHONPATH, imported
by every interpreter the world starts; it acts only in one run as `python3 -c`, a Command's
program) that points those three functions at the world's clock
for code outside the standard library: a program's `time.sleep(10)` moves the clock ten seconds
and returns at once; the standard library (subprocess's own timeouts) keeps real time.

The fake CLIs move the clock by what their real counterparts would take: a `talosctl health`
that never passes takes its `--wait-timeout`, a reboot takes REBOOT_SECONDS, a drain that waits
for pods takes its `--timeout`. So a run is deterministic and fast, and "a node comes back after a
while" is a statement about the clock, never about how many calls were made.
"""

from __future__ import annotations

from typing import Any, Final

# 2026-01-01T00:00:00Z: any fixed start; tests compare with `World.now`.
EPOCH: Final = 1_767_225_600.0

State = dict[str, Any]


def now(state: State) -> float:
    return float(state.get("clock", EPOCH))


def advance(state: State, seconds: float) -> float:
    state["clock"] = now(state) + max(0.0, seconds)
    return float(state["clock"])


SITECUSTOMIZE: Final = r'''
"""Virtual time for programs run against the fake world (tests/world/clock.py)."""
import os

import sys

_STATE = os.environ.get("WORLD_STATE")
# Only a program run as `python3 -c <text>` (a Command's), not the fake CLIs themselves.
if _STATE and sys.argv[:1] == ["-c"]:
    import fcntl
    import json
    import selectors  # noqa: F401  (bind the real clock in the standard library first)
    import subprocess  # noqa: F401
    import sysconfig
    import threading  # noqa: F401
    import time

    _STDLIB = sysconfig.get_paths()["stdlib"]
    _REAL = {"sleep": time.sleep, "monotonic": time.monotonic, "time": time.time}
    _LOCK = os.path.splitext(_STATE)[0] + ".lock"

    def _virtual():
        caller = sys._getframe(2).f_code.co_filename
        return not caller.startswith(_STDLIB)

    def _clock(delta):
        with open(_LOCK, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                with open(_STATE) as file:
                    state = json.load(file)
                value = float(state.get("clock", 0.0)) + delta
                if delta:
                    state["clock"] = value
                    temp = _STATE + ".sleep"
                    with open(temp, "w") as file:
                        json.dump(state, file, indent=1, sort_keys=True)
                    os.replace(temp, _STATE)
                return value
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _sleep(seconds):
        if _virtual():
            _clock(max(0.0, float(seconds)))
            return None
        return _REAL["sleep"](seconds)

    def _monotonic():
        return _clock(0.0) if _virtual() else _REAL["monotonic"]()

    def _time():
        return _clock(0.0) if _virtual() else _REAL["time"]()

    time.sleep = _sleep
    time.monotonic = _monotonic
    time.time = _time
'''
