"""Entry point of the fake executables: `talosctl` and `kubectl` in the world's bin directory are
two-line shims that call `main` with their name. Each call loads the state under its lock, acts,
saves it, and appends what it was handed to the call log."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path
from typing import Any

from tests.world import clock, store

# The environment variables a call log records by name only (their values may be secrets).
LOGGED_ENV_PREFIXES = ("HOMELAB_", "PULUMI_", "TALOSCONFIG", "KUBECONFIG")


def _option(argv: list[str], *names: str) -> str | None:
    for index, arg in enumerate(argv):
        for name in names:
            if arg == name and index + 1 < len(argv):
                return argv[index + 1]
            if arg.startswith(name + "="):
                return arg.partition("=")[2]
    return None


def config_file(name: str, argv: list[str], env: dict[str, str]) -> Path | None:
    if name == "talosctl":
        from tests.world.talos_client import talosconfig_path

        return talosconfig_path(_option(argv, "--talosconfig"), env)
    from tests.world.kube.kubectl import kubeconfig_path

    return Path(kubeconfig_path(_option(argv, "--kubeconfig"), env))


def describe_file(path: Path | None) -> dict[str, Any]:
    if path is None or not path.is_file():
        return {"config_path": str(path) if path else None, "config_mode": None, "config": None}
    return {
        "config_path": str(path),
        "config_mode": stat.S_IMODE(path.stat().st_mode),
        "config": path.read_text(),
    }


def execute(name: str, argv: list[str], env: dict[str, str], stdin: str) -> tuple[int, str, str]:
    """Run one call against the state file named by $WORLD_STATE; log it; return its result."""
    entry: dict[str, Any] = {
        "cli": name,
        "argv": [name, *argv],
        "env": sorted(k for k in env if k.startswith(LOGGED_ENV_PREFIXES)),
        "stdin": stdin,
        **describe_file(config_file(name, argv, env)),
    }
    path = Path(env[store.STATE_ENV])
    with store.locked(path) as state:
        entry["time"] = clock.now(state)
        if name == "talosctl":
            from tests.world import talosctl

            code, out, err = talosctl.run(state, argv, env)
        else:
            from tests.world.kube import kubectl

            code, out, err = kubectl.run(state, argv, env, stdin)
        entry["end"] = clock.now(state)
    entry.update(returncode=code, stdout=out, stderr=err)
    store.append_log(Path(env[store.LOG_ENV]), entry)
    return code, out, err


def main(name: str) -> None:
    argv = sys.argv[1:]
    dash = any(
        a in ("-f", "--filename") and i + 1 < len(argv) and argv[i + 1] == "-"
        for i, a in enumerate(argv)
    )
    wants_stdin = name == "kubectl" and (dash or "--filename=-" in argv or "-f=-" in argv)
    stdin = sys.stdin.read() if wants_stdin else ""
    code, out, err = execute(name, argv, dict(os.environ), stdin)
    sys.stdout.write(out)
    sys.stderr.write(err)
    sys.exit(code)
