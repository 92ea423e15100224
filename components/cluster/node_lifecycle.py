"""Nodes that come and go: removal, rename and re-address as one reconciling Command.

A node's Talos resources are keyed by its IP (components/cluster/talos.py `node_resource_name`),
so a rename is an update of the same resources, not a replacement that would reset a lab node.
What Kubernetes and etcd must be told when the node set changes is done by one
`pulumi_command.local.Command`, the *node set*:

- `create` records the configured nodes (its stdout: a sorted JSON list of ip, hostname, role
  and the address Talos answers on). It touches nothing.
- `update` runs whenever that list (or a credential) changes, with the previous list in
  `PULUMI_COMMAND_STDOUT` (pulumi_command 1.2.1 local/command.py, `update`: "The environment
  variables PULUMI_COMMAND_STDOUT and PULUMI_COMMAND_STDERR are set to the stdout and stderr
  properties of the Command resource from previous create or update steps"). So it knows which
  nodes left the config and which were renamed, from the stack's own state, which config
  validation never sees. It then, before anything is deleted:
  1. for departing control planes, reads `talosctl etcd members` from a control plane that stays,
     asks each member's node whether its etcd runs, and refuses, with one line naming
     `homelab:cluster.nodes`, a removal while etcd has no quorum or one that would leave it
     without (below);
  2. for each departing node, workers first, then control planes whose member is down, then the
     others, one at a time: `kubectl drain --ignore-daemonsets --delete-emptydir-data
     --skip-wait-for-delete-timeout` (a dead node's pods never finish terminating); for a control
     plane `talosctl etcd leave` on the node itself, or `talosctl etcd remove-member <id>` from a
     staying control plane when the node does not answer; then, on the homelab, `talosctl
     shutdown` (disk intact) or, when `lifecycle.resetRemovedNodes` asks for it, `talosctl reset`
     of STATE and EPHEMERAL; in a lab the node's ConfigurationApply resets it when it is deleted;
     last `kubectl delete node`;
  3. for a renamed node, waits for the Node of the new name to be created and Ready
     (`kubectl wait --for=create --for=condition=Ready`) and deletes the old one. (A rename of a
     node that holds local-path volumes never gets here: components/cluster/change_guard.py
     refuses it before the apply renames the machine.)
  It prints the new list. A failed run prints the previous list again (and Pulumi keeps the old
  state of a failed update), so the next `up` does the same again; every step is idempotent.

Its program is programs/node_set.py.

Why not a `delete` script on a per-node Command, which would run when that node's resources are
deleted: Pulumi deletes removed resources after every create and update of the run, so the
health wait (components/cluster/talos_health.py), replaced because the node set changed, would
first check the new node list while the departing Node still exists, and `talosctl health`
fails on it (siderolabs/talos@v1.13.9: pkg/cluster/check/kubernetes.go via pkg/cluster/cluster.go
`NodesMatch`, "unexpected nodes"), so no removal could ever go through. Removed resources are
also deleted in parallel, while etcd members must leave one at a time. Here the removal runs
before the health wait (which `depends_on` this Command) and in order.

Quorum. `talosctl etcd leave` calls machined's EtcdLeaveCluster on the node, which removes its
own member (retrying for five minutes while etcd answers "unhealthy"), stops etcd and deletes its
data (siderolabs/talos@v1.13.9: internal/pkg/etcd/etcd.go `LeaveCluster`); it checks no quorum
itself. `remove-member` is upstream's fallback for a member "in broken state" whose node cannot
be reached (cmd/talosctl/cmd/talos/etcd.go). So the guard checks first, the way the upgrade check
counts health, but by the members that run, not by the ones with a name: a member that is down
keeps its name, so etcd counts it as started (etcd-io/etcd@v3.6.12:
server/etcdserver/api/membership/member.go `IsStarted`) while it cannot vote. Removing the departing
members one by one, after each removal the voting members that run must still be a majority of the
members that remain; a member that is down goes first, since etcd refuses to remove a running
member while a down one still counts among the voters it needs (server/etcdserver/server.go
`mayRemoveMember`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

import pulumi
import pulumi_command as command

from components.cluster.talos_health import TALOSCONFIG_ENV as TALOSCONFIG_ENV
from components.shared.kubectl import KUBECONFIG_ENV as KUBECONFIG_ENV
from config.model import Cluster, Lifecycle
from programs import node_set as node_set_program
from programs.build import INTERPRETER, environment, program_text

# The name its messages start with.
PROGRAM: Final = "homelab-node-set"
NODES_KEY: Final = "homelab:cluster.nodes"
DRAIN_TIMEOUT: Final = "600s"
# kubectl drain skips a pod still terminating this long after its deletion time (its grace
# period's end): on a dead node nothing ever confirms a pod stopped, so the drain would wait
# until its timeout and fail (kubernetes/kubectl@kubernetes-1.36.3: pkg/drain/filters.go
# `shouldSkipPod`, drain.go `waitForDelete`).
DRAIN_SKIP_WAIT_SECONDS: Final = 60
# What `resetRemovedNodes` wipes: STATE (its config) and EPHEMERAL (its data, etcd's included), as
# the provider's reset on destroy does (terraform-provider-talos@v0.11.0:
# talos_machine_configuration_apply_resource.go `Delete`), so the machine boots into maintenance
# mode from its installed image. Without labels talosctl wipes the whole system disk, boot
# partitions included (siderolabs/talos@v1.13.9: cmd/talosctl/cmd/talos/reset.go,
# internal/app/machined/internal/server/v1alpha1/v1alpha1_server.go `Reset`).
RESET_LABELS: Final = ("STATE", "EPHEMERAL")
RENAME_READY_TIMEOUT: Final = "600s"
COMMAND_TIMEOUT_SECONDS: Final = 900

RemovedNodeAction = Literal["shutdown", "reset", "reset-by-apply"]


@dataclass(frozen=True, order=True)
class NodeEntry:
    """One configured node as the node set records it."""

    ip: str
    hostname: str
    role: str
    # Where its Talos API answers during this `up` (`currentAddress` while it moves, else `ip`).
    address: str

    def as_data(self) -> dict[str, str]:
        return {
            "address": self.address,
            "hostname": self.hostname,
            "ip": self.ip,
            "role": self.role,
        }


def node_entries(cluster: Cluster) -> tuple[NodeEntry, ...]:
    return tuple(
        sorted(NodeEntry(str(n.ip), n.hostname, n.role, n.talos_address) for n in cluster.nodes)
    )


def removed_node_action(lifecycle: Lifecycle) -> RemovedNodeAction:
    """What happens to a machine once it has left Kubernetes and etcd."""
    if lifecycle.reset_on_destroy:
        # Its ConfigurationApply's on_destroy resets it right after (components/cluster/talos.py).
        return "reset-by-apply"
    return "reset" if lifecycle.reset_removed else "shutdown"


def record_json(entries: Sequence[NodeEntry]) -> str:
    """What the Command prints: the recorded node set, sorted, one line."""
    return json.dumps([e.as_data() for e in sorted(entries)], sort_keys=True)


def node_set_script(
    entries: Sequence[NodeEntry],
    *,
    mode: Literal["record", "reconcile"],
    removed_node_action: RemovedNodeAction,
    timeout_seconds: int = COMMAND_TIMEOUT_SECONDS,
) -> str:
    """The text the Command runs: programs/node_set.py with these parameters."""
    return program_text(
        node_set_program,
        node_set_program.Params(
            drain_skip_wait_seconds=DRAIN_SKIP_WAIT_SECONDS,
            drain_timeout=DRAIN_TIMEOUT,
            kubeconfig_env=KUBECONFIG_ENV,
            mode=mode,
            nodes=[e.as_data() for e in sorted(entries)],
            nodes_key=NODES_KEY,
            program=PROGRAM,
            removed_node_action=removed_node_action,
            rename_ready_timeout=RENAME_READY_TIMEOUT,
            reset_labels=list(RESET_LABELS),
            talosconfig_env=TALOSCONFIG_ENV,
            timeout=timeout_seconds,
        ),
    )


def node_set(
    name: str,
    cluster: Cluster,
    lifecycle: Lifecycle,
    *,
    kubeconfig: pulumi.Output[str],
    talosconfig: pulumi.Output[str],
    bootstrap: pulumi.Resource,
    parent: pulumi.Resource,
    depends_on: Sequence[pulumi.Resource],
) -> command.local.Command:
    """The Command that tells Kubernetes and etcd about nodes that left or were renamed."""
    entries = node_entries(cluster)
    action = removed_node_action(lifecycle)
    secret_kubeconfig: pulumi.Output[str] = pulumi.Output.secret(kubeconfig)
    secret_talosconfig: pulumi.Output[str] = pulumi.Output.secret(talosconfig)
    return command.local.Command(
        name,
        create=node_set_script(entries, mode="record", removed_node_action=action),
        update=node_set_script(entries, mode="reconcile", removed_node_action=action),
        interpreter=list(INTERPRETER),
        environment={
            **environment(node_set_program),
            KUBECONFIG_ENV: secret_kubeconfig,
            TALOSCONFIG_ENV: secret_talosconfig,
        },
        # Progress goes to stderr; stdout is only the recorded node set.
        logging=command.local.Logging.STDERR,
        opts=pulumi.ResourceOptions(
            parent=parent,
            depends_on=[bootstrap, *depends_on],
            # A rebuilt cluster starts a new record: nothing of the old cluster's set is left to
            # remove, and its create touches nothing.
            replace_with=[bootstrap],
        ),
    )
