"""The runtime every command program shares (standard library only, like the programs).

A program stops with `fail(message)`; `run_program` then writes the message after the program's
name to stderr and exits 1. Otherwise `run_program` writes what the program's `main` returns to
stdout, which is the Command's output; progress goes to stderr through `say`. Credentials arrive
in the environment and reach a CLI only as a file that only the user can read, removed afterwards
(`credential_file`). `run_cli` runs a CLI without those credentials in its environment, stdin
closed, within an optional timeout; `attempts` bounds a retry loop.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn, TypeVar, overload

# What a CLI must not inherit: the credentials a Command hands over (HOMELAB_*), the ones a CLI
# would pick up by itself, and the Command's previous output (pulumi_command 1.2.1
# local/command.py `update`: PULUMI_COMMAND_STDOUT, PULUMI_COMMAND_STDERR).
SCRUBBED_PREFIX = "HOMELAB_"
SCRUBBED = ("KUBECONFIG", "TALOSCONFIG", "PULUMI_COMMAND_STDOUT", "PULUMI_COMMAND_STDERR")

ParamsT = TypeVar("ParamsT", bound=Mapping[str, object])

# The name messages start with; `run_program` sets it from the program's parameters.
_name = "program"


class ProgramFailedError(Exception):
    """Stops the program; its message is what went wrong and what to do about it."""


def fail(message: str) -> NoReturn:
    raise ProgramFailedError(message)


def say(message: str) -> None:
    sys.stderr.write(f"{_name}: {message}\n")


def run_program(main: Callable[[ParamsT], str], params: ParamsT) -> None:
    """Run `main` with the parameters the Command's text carries (`params["program"]` names it)."""
    global _name
    _name = str(params["program"])
    try:
        output = main(params)
    except ProgramFailedError as failure:
        say(str(failure))
        sys.exit(1)
    sys.stdout.write(output)


@contextmanager
def credential_file(env_name: str, what: str) -> Iterator[str]:
    """The path of a new temp file `homelab-<what>-*` holding the credential the Command hands over
    in `env_name`, readable by the user only (umask 077, kept for what the program writes later),
    removed when the block ends."""
    credential = os.environ.get(env_name, "")
    if not credential.strip():
        fail(f"{env_name} is empty")
    os.umask(0o077)
    handle, path = tempfile.mkstemp(prefix=f"homelab-{what}-")
    try:
        with os.fdopen(handle, "w") as file:
            file.write(credential)
        yield path
    finally:
        Path(path).unlink()


def attempts(count: int, delay_seconds: float) -> Iterator[int]:
    """1 to `count`, with a pause before each attempt after the first: the loop ends early on
    success and falls through once the last attempt has failed."""
    for attempt in range(1, count + 1):
        if attempt > 1:
            time.sleep(delay_seconds)
        yield attempt


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This environment without the credentials (SCRUBBED), plus `extra`."""
    kept = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(SCRUBBED_PREFIX) and k not in SCRUBBED
    }
    return {**kept, **(extra or {})}


@overload
def run_cli(
    argv: Sequence[str],
    *,
    timeout: None = None,
    capture: bool = True,
    stdin: str | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]: ...


@overload
def run_cli(
    argv: Sequence[str],
    *,
    timeout: float,
    capture: bool = True,
    stdin: str | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str] | None: ...


def run_cli(
    argv: Sequence[str],
    *,
    timeout: float | None = None,
    capture: bool = True,
    stdin: str | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str] | None:
    """Run a CLI with `child_env(env)`, `stdin` as its input (else none), its output captured or
    passed through; None when `timeout` seconds pass first."""
    try:
        return subprocess.run(
            list(argv),
            env=child_env(env),
            input=stdin,
            stdin=subprocess.DEVNULL if stdin is None else None,
            capture_output=capture,
            text=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError:
        fail(f"{argv[0]} is not on PATH (a prerequisite of `pulumi up`)")
    except subprocess.TimeoutExpired:
        return None
