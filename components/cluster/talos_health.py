"""Waiting for Talos to report the cluster healthy: once per node set, never on a preview.

The provider's `talos.cluster.get_health` data source is an invoke, and invokes run on every
preview once the stack exists: the full checks, with a 10-minute timeout
(terraform-provider-talos@v0.11.0: pkg/talos/talos_cluster_health_data_source.go `Read`). An
unhealthy cluster then cannot be repaired through the stack, and a node removed from the config
fails the check forever. So the wait is a `pulumi_command.local.Command` instead: it runs when it
is created and again only when its inputs change (the node set, the bootstrap), never on a
preview or a refresh (a Command has no Read: pulumi/pulumi-command#432; its `create` docstring in
pulumi_command 1.2.1: "will not be executed if the resource has already been created and its
inputs are unchanged"), so the nightly drift check never runs it.

The command runs `talosctl health` on the workstation (prerequisite: talosctl of the cluster's
Talos minor). Its program (programs/talos_health.py):

- checks talosctl's client version (`talosctl version --client --short`) against the cluster's
  Talos minor and names the release to install when it differs;
- writes the talosconfig (a secret, handed over in the environment) to a 0600 temp file under
  umask 077, passes it with `--talosconfig` and deletes it afterwards; it never prints it and
  keeps it out of talosctl's environment;
- runs the check on a control-plane node (`--server`, the default: machined runs the checks
  itself, so only the Talos API needs to be reachable) for exactly the configured nodes, and
  runs it again with the time left when an attempt ends early, within one overall timeout.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import pulumi
import pulumi_command as command

from programs import talos_health, talosctl, unchanged
from programs.build import INTERPRETER, environment, program_text

TALOSCONFIG_ENV: Final = "HOMELAB_TALOSCONFIG"
# The data source's default read timeout (talos_cluster_health_data_source.go: 10*time.Minute);
# talosctl's own default is 20m (cmd/talosctl/cmd/talos/health.go `--wait-timeout`).
WAIT_TIMEOUT_SECONDS: Final = 600
# A failed attempt is followed by another, within the same overall wait, after this pause.
RETRY_DELAY_SECONDS: Final = 10
TALOSCTL_RELEASES: Final = "https://github.com/siderolabs/talos/releases"


@dataclass(frozen=True)
class HealthTarget:
    """What `talosctl health` checks: exactly these nodes, through these endpoints."""

    talos_version: str
    control_plane_nodes: tuple[str, ...]
    worker_nodes: tuple[str, ...]
    endpoints: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.control_plane_nodes:
            raise ValueError("a health check needs at least one control-plane node")

    @property
    def talos_minor(self) -> str:
        """'v1.13' of 'v1.13.9': talosctl and Talos are released together per minor."""
        major, minor, _ = self.talos_version.removeprefix("v").split(".")
        return f"v{major}.{minor}"

    @property
    def check_node(self) -> str:
        # The server-side check refuses non-control-plane nodes (siderolabs/talos@v1.13.9:
        # internal/app/machined/internal/server/v1alpha1/v1alpha1_cluster.go `HealthCheck`,
        # CheckControlplane) and more than one node (health.go `healthOnServer`,
        # FailIfMultiNodes).
        return self.control_plane_nodes[0]


def talosctl_health_argv(
    target: HealthTarget,
    talosconfig_path: str,
    wait_timeout_seconds: int = WAIT_TIMEOUT_SECONDS,
    endpoints: Sequence[str] | None = None,
) -> list[str]:
    """The talosctl command line (flags of siderolabs/talos@v1.13.9: cmd/talosctl/cmd/talos);
    `endpoints` instead of the target's (a step passes the ones it chooses when it runs)."""
    argv = [
        "talosctl",
        "--talosconfig",
        talosconfig_path,
        "--endpoints",
        ",".join(target.endpoints if endpoints is None else endpoints),
        "--nodes",
        target.check_node,
        "health",
        "--server=true",
        "--control-plane-nodes",
        ",".join(target.control_plane_nodes),
        "--wait-timeout",
        f"{wait_timeout_seconds}s",
    ]
    if target.worker_nodes:
        argv += ["--worker-nodes", ",".join(target.worker_nodes)]
    return argv


# Stands for the talosconfig temp file's path in the command lines a program is given.
TALOSCONFIG_PLACEHOLDER: Final = talosctl.TALOSCONFIG


def health_script(
    target: HealthTarget,
    *,
    wait_timeout_seconds: int = WAIT_TIMEOUT_SECONDS,
    retry_delay_seconds: int = RETRY_DELAY_SECONDS,
) -> str:
    """The text the Command runs: programs/talos_health.py with these parameters."""
    if wait_timeout_seconds < 1:
        raise ValueError("the wait needs at least one second")
    return program_text(
        talos_health,
        talos_health.Params(
            health_argv=talosctl_health_argv(target, TALOSCONFIG_PLACEHOLDER, wait_timeout_seconds),
            health_timeout_seconds=wait_timeout_seconds,
            program="talos-health",
            releases=TALOSCTL_RELEASES,
            retry_delay_seconds=retry_delay_seconds,
            talos_minor=target.talos_minor,
            talosconfig_env=TALOSCONFIG_ENV,
        ),
    )


def wait_for_health(
    name: str,
    target: HealthTarget,
    *,
    talosconfig: pulumi.Output[str],
    bootstrap: pulumi.Resource,
    parent: pulumi.Resource,
    depends_on: Sequence[pulumi.Resource],
) -> command.local.Command:
    """A Command that returns once Talos reports exactly `target`'s nodes healthy."""
    secret_talosconfig: pulumi.Output[str] = pulumi.Output.secret(talosconfig)
    return command.local.Command(
        name,
        create=health_script(target),
        # A renewed talosconfig or a new program text updates it, which runs nothing
        # (programs/unchanged.py); only its triggers run the wait again.
        update=program_text(unchanged, unchanged.Params(program=name)),
        interpreter=list(INTERPRETER),
        environment={**environment(talos_health), TALOSCONFIG_ENV: secret_talosconfig},
        # A new node set replaces the Command, which runs the check again; so does a rebuilt
        # cluster (`replace_with` the Bootstrap, whose id is a constant upstream:
        # terraform-provider-talos@v0.11.0 talos_machine_bootstrap_resource.go "machine_bootstrap").
        # Nothing else does: patch bumps of Talos leave its text alone (it names the minor).
        triggers=[list(target.control_plane_nodes), list(target.worker_nodes)],
        opts=pulumi.ResourceOptions(
            parent=parent, depends_on=[bootstrap, *depends_on], replace_with=[bootstrap]
        ),
    )
