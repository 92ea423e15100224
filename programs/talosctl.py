"""What the Talos programs share: a talosctl of the cluster's minor, the talosconfig in its command
lines, a node's Talos version, and `talosctl health` run until it passes or the time is up."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TypedDict

from programs.runtime import credential_file, fail, run_cli

# Stands for the talosconfig's temp file in the command lines a program is given.
TALOSCONFIG = "@TALOSCONFIG@"
# `talosctl version --client --short` prints "Client:" and "Talos <tag>"
# (siderolabs/talos@v1.13.9: cmd/talosctl/cmd/talos/version.go, pkg/machinery/version `Short`).
CLIENT_VERSION = re.compile(r"\bv(\d+)\.(\d+)\.\d+")
# The server part of `talosctl version` (not --json, which is hidden and marked for removal):
# "Server:", then per node "\tNODE:        <node>" and the long version block whose first line is
# "\tTag:         <tag>" (siderolabs/talos@v1.13.9: cmd/talosctl/cmd/talos/version.go
# `cmdVersion`, pkg/machinery/version/version.go `versionTemplate`). The client's own block comes
# first, after "Client:", so only lines after "Server:" count.
SERVER_TAG = re.compile(r"^\s*Tag:\s+(\S+)\s*$")
MAINTENANCE = "maintenance"


class StepParams(TypedDict):
    """What every step of an upgrade or a rolling reboot is given."""

    node_name: str
    program: str
    releases: str
    talos_minor: str
    talos_version: str
    talosconfig_env: str


class HealthParams(TypedDict):
    """`talosctl health` (its command line with TALOSCONFIG) and how long to wait for it."""

    health_argv: list[str]
    health_timeout_seconds: int
    retry_delay_seconds: int


class VersionParams(TypedDict):
    """`talosctl version` of one node, with the cluster's credentials and without."""

    insecure_version_argv: list[str]
    version_argv: list[str]


def client_minor(shown: str) -> tuple[str, str] | None:
    """The version talosctl reports for itself and its minor ('v1.13.4', 'v1.13')."""
    found = CLIENT_VERSION.search(shown)
    if found is None:
        return None
    return found.group(0), f"v{found.group(1)}.{found.group(2)}"


def require_client(minor: str, releases: str, cluster: str) -> None:
    """Fail unless talosctl is installed at `minor` (talosctl and Talos are released together
    per minor); `cluster` says what the cluster runs or is moving to."""
    install = f"install talosctl {minor}.x from {releases}"
    if shutil.which("talosctl") is None:
        fail(f"talosctl is not on PATH (a prerequisite of `pulumi up`); {install}")
    shown = run_cli(["talosctl", "version", "--client", "--short"], timeout=60)
    version = client_minor(shown.stdout) if shown is not None and shown.returncode == 0 else None
    if version is None:
        error = shown.stderr.strip() if shown is not None else "timed out"
        fail(f"could not read talosctl's version: {error}")
    found, found_minor = version
    if found_minor != minor:
        fail(f"talosctl is {found}, {cluster}: {install} and run `pulumi up` again")


@contextmanager
def step_talosconfig(params: StepParams) -> Iterator[str]:
    """The talosconfig's temp file for a step, once talosctl is of the minor the roll goes to."""
    cluster = f"the roll goes to Talos {params['talos_version']}"
    require_client(params["talos_minor"], params["releases"], cluster)
    with credential_file(params["talosconfig_env"], "talosconfig") as path:
        yield path


def with_talosconfig(argv: Sequence[str], path: str) -> list[str]:
    """`argv` with the talosconfig's temp file where the command line says TALOSCONFIG."""
    return [path if arg == TALOSCONFIG else arg for arg in argv]


def server_tag(stdout: str) -> str | None:
    """The Talos version the node reports in `talosctl version`; None without a server part."""
    _, marker, server = stdout.partition("\nServer:")
    if not marker:
        return None
    for line in server.splitlines():
        found = SERVER_TAG.match(line)
        if found:
            return found.group(1)
    return None


def node_version(params: VersionParams, path: str, node_name: str) -> tuple[str | None, str | None]:
    """(tag, None) when the node answers with the cluster's credentials; (None, MAINTENANCE) when
    only the maintenance API answers (not installed yet); (None, error) otherwise."""
    shown = run_cli(with_talosconfig(params["version_argv"], path), timeout=120)
    if shown is not None and shown.returncode == 0:
        tag = server_tag(shown.stdout)
        if tag is None:
            fail(f"could not read {node_name}'s version from `talosctl version`")
        return tag, None
    error = (shown.stderr.strip() if shown is not None else "timed out") or "no answer"
    insecure = run_cli(params["insecure_version_argv"], timeout=60)
    if insecure is not None and insecure.returncode == 0 and server_tag(insecure.stdout):
        return None, MAINTENANCE
    return None, error


def passes(argv: Sequence[str], path: str, timeout_seconds: int) -> bool:
    """Whether a talosctl command (its output straight to the Command's) passes in time."""
    done = run_cli(with_talosconfig(argv, path), timeout=timeout_seconds, capture=False)
    return done is not None and done.returncode == 0


def with_wait_timeout(argv: Sequence[str], seconds: int) -> list[str]:
    flag = list(argv).index("--wait-timeout")
    return [*argv[: flag + 1], f"{seconds}s", *argv[flag + 2 :]]


def healthy(params: HealthParams, path: str) -> bool:
    """`talosctl health` until it passes or the time is up. Each attempt polls by itself;
    another only follows one that ended early (the node's API restarting under the request, say),
    with the time that is left."""
    argv = with_talosconfig(params["health_argv"], path)
    timeout_seconds, delay = params["health_timeout_seconds"], params["retry_delay_seconds"]
    deadline = time.monotonic() + timeout_seconds
    left = timeout_seconds
    while left >= 1:
        checked = run_cli(with_wait_timeout(argv, left), timeout=left + 60, capture=False)
        if checked is None:
            return False
        if checked.returncode == 0:
            return True
        if deadline - time.monotonic() <= delay:
            return False
        time.sleep(delay)
        left = int(deadline - time.monotonic())
    return False
