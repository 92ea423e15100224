"""What the Talos programs share: a talosctl of the cluster's minor, the talosconfig and the chosen
endpoints in its command lines, what a node runs (its Talos version and Image Factory schematic),
whether a staged config waits for a reboot, and `talosctl health` run until it passes or the time
is up."""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypedDict

from programs.runtime import credential_file, fail, run_cli, say

# Stand for the talosconfig's temp file, the endpoints chosen at run time, and one endpoint being
# tried, in the command lines a program is given.
TALOSCONFIG = "@TALOSCONFIG@"
ENDPOINTS = "@ENDPOINTS@"
CANDIDATE = "@CANDIDATE@"
# Stands for the admin kubeconfig a program fetches into its own temp folder.
KUBECONFIG = "@KUBECONFIG@"
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
# The virtual extension every Image Factory image carries, whose version is the schematic ID
# (siderolabs/image-factory@v1.5.0: internal/artifacts/schematic.go `schematicExtension`); the
# node lists it among its ExtensionStatuses (siderolabs/talos@v1.13.9:
# pkg/machinery/resources/runtime/extension_status.go, spec = extensions.Layer: `image`,
# `metadata.name`, `metadata.version`).
SCHEMATIC_EXTENSION = "schematic"
# The MachineConfig resources (siderolabs/talos@v1.13.9:
# pkg/machinery/resources/config/machine_config.go): `v1alpha1` is the config the node runs,
# `persistent` the one saved to its disk. A `staged` apply saves without activating, so while a
# staged config waits for a reboot `persistent` differs from `v1alpha1`; after a boot only
# `v1alpha1` exists (internal/app/machined/pkg/controllers/config/acquire.go: a config read
# from STATE alone is not persisted again). The spec is the config as a YAML string
# (`v1alpha1Spec.MarshalYAML`).
ACTIVE_CONFIG = "v1alpha1"
PERSISTENT_CONFIG = "persistent"


class StepParams(TypedDict):
    """What every step of an upgrade or a rolling reboot is given."""

    node_name: str
    program: str
    releases: str
    talos_minor: str
    talos_version: str
    talosconfig_env: str


class EndpointParams(TypedDict):
    """The control planes a step may use as endpoints: the others first, so the connection
    that waits for a node's reboot is not the one going down; `probe_argv` tries one."""

    control_planes: list[str]
    node: str
    probe_argv: list[str]


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


class Talos:
    """talosctl with the talosconfig's temp file and the endpoints this run uses."""

    def __init__(self, path: str, endpoints: Sequence[str] = ()) -> None:
        self.path = path
        self.endpoints = list(endpoints)

    def argv(self, template: Sequence[str]) -> list[str]:
        """`template` with the temp file for TALOSCONFIG and the endpoints for ENDPOINTS."""
        joined = ",".join(self.endpoints)
        return [
            self.path if a == TALOSCONFIG else joined if a == ENDPOINTS else a for a in template
        ]

    def run(self, template: Sequence[str], timeout: float = 120) -> Any:
        return run_cli(self.argv(template), timeout=timeout)


def with_talosconfig(argv: Sequence[str], path: str) -> list[str]:
    """`argv` with the talosconfig's temp file where the command line says TALOSCONFIG."""
    return Talos(path).argv(argv)


def answers(params: EndpointParams, path: str, candidate: str) -> bool:
    """Whether `candidate`'s apid takes the cluster's credentials (a control plane still in
    maintenance mode presents a self-signed certificate, which the talosconfig's CA refuses:
    TLS is checked per endpoint, siderolabs/talos@v1.13.9: pkg/machinery/client/connection.go
    `buildTLSConfig`)."""
    argv = [candidate if a == CANDIDATE else a for a in params["probe_argv"]]
    done = run_cli(with_talosconfig(argv, path), timeout=60)
    return done is not None and done.returncode == 0


def endpoints_for(params: EndpointParams, path: str) -> Talos:
    """The other configured control planes that answer with the cluster's credentials, else
    every configured control plane (a single one has no other, and talosctl sends each call
    through whichever endpoint connects: pkg/machinery/client/resolver/roundrobin.go)."""
    others = [c for c in params["control_planes"] if c != params["node"]]
    usable = [c for c in others if answers(params, path, c)]
    if others and not usable:
        say(f"no other control plane answers with the cluster's credentials ({', '.join(others)})")
    return Talos(path, usable or params["control_planes"])


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


def node_version(
    params: VersionParams, talos: Talos, node_name: str
) -> tuple[str | None, str | None]:
    """(tag, None) when the node answers with the cluster's credentials; (None, MAINTENANCE) when
    only the maintenance API answers (not installed yet); (None, error) otherwise."""
    shown = talos.run(params["version_argv"])
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


def resources(stdout: str) -> list[dict[str, Any]]:
    """The resources `talosctl get <type> -o json` prints: one indented JSON object each, one
    after the other (cmd/talosctl/cmd/talos/output/json.go `WriteResource`)."""
    decoder = json.JSONDecoder()
    found: list[dict[str, Any]] = []
    index = 0
    text = stdout.strip()
    while index < len(text):
        value, index = decoder.raw_decode(text, index)
        if isinstance(value, dict):
            found.append(value)
        while index < len(text) and text[index].isspace():
            index += 1
    return found


def schematic_of(extensions: list[dict[str, Any]]) -> str | None:
    """The schematic ID the node's image was built from; None for an image of no schematic (the
    plain installer)."""
    for extension in extensions:
        metadata = (extension.get("spec") or {}).get("metadata") or {}
        if metadata.get("name") == SCHEMATIC_EXTENSION:
            return str(metadata.get("version", ""))
    return None


def staged_pending(configs: list[dict[str, Any]]) -> bool:
    """Whether a saved config differs from the one the node runs: a staged apply that waits for
    a reboot."""
    by_id = {str((c.get("metadata") or {}).get("id", "")): c.get("spec") for c in configs}
    persistent = by_id.get(PERSISTENT_CONFIG)
    return persistent is not None and persistent != by_id.get(ACTIVE_CONFIG)


def read_resources(talos: Talos, argv: Sequence[str], what: str) -> list[dict[str, Any]]:
    shown = talos.run(argv)
    if shown is None or shown.returncode != 0:
        error = shown.stderr.strip() if shown is not None else "timed out"
        fail(f"cannot read {what}: {error}")
    try:
        return resources(shown.stdout)
    except ValueError:
        fail(f"cannot read {what}: `{' '.join(argv[-4:])}` did not print JSON")


@contextmanager
def fetched_kubeconfig(talos: Talos, argv: Sequence[str], nodes: Sequence[str]) -> Iterator[str]:
    """An admin kubeconfig fetched with `talosctl kubeconfig` (`argv`, KUBECONFIG its path and
    CANDIDATE the control plane asked) from the first of `nodes` that gives one, in a private
    temp folder removed afterwards."""
    with tempfile.TemporaryDirectory(
        prefix="homelab-kubeconfig-", ignore_cleanup_errors=True
    ) as folder:
        path = str(Path(folder) / "kubeconfig")
        errors: list[str] = []
        for node in nodes:
            wanted = [path if a == KUBECONFIG else node if a == CANDIDATE else a for a in argv]
            fetched = talos.run(wanted)
            if fetched is not None and fetched.returncode == 0:
                break
            errors.append(f"{node}: {fetched.stderr.strip() if fetched else 'timed out'}")
        else:
            fail(f"cannot fetch a kubeconfig from a control plane ({'; '.join(errors)})")
        yield path


def passes(argv: Sequence[str], talos: Talos, timeout_seconds: int) -> bool:
    """Whether a talosctl command (its output straight to the Command's) passes in time."""
    done = run_cli(talos.argv(argv), timeout=timeout_seconds, capture=False)
    return done is not None and done.returncode == 0


def with_wait_timeout(argv: Sequence[str], seconds: int) -> list[str]:
    flag = list(argv).index("--wait-timeout")
    return [*argv[: flag + 1], f"{seconds}s", *argv[flag + 2 :]]


def healthy(params: HealthParams, talos: Talos) -> bool:
    """`talosctl health` until it passes or the time is up. Each attempt polls by itself;
    another only follows one that ended early (the node's API restarting under the request, say),
    with the time that is left."""
    argv = talos.argv(params["health_argv"])
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
