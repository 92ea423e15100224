"""The changes of the cluster one `up` may not make together, refused before anything changes.

One `pulumi_command.local.Command`, the *change guard*, runs first in the cluster's chain (the
upgrade roll depends on it, and through the roll every config apply): `create` records what the
cluster is configured to be (its Talos version, installer, Kubernetes version and nodes) and
touches nothing; `update` runs whenever that changes, with the previous record in
`PULUMI_COMMAND_STDOUT` (pulumi_command 1.2.1 local/command.py, `update`), so it knows what this
`up` changes, from the stack's own state, which config validation never sees. It refuses (one line
naming the setting; programs/change_guard.py):

- a version or installer (schematic) change together with a node added or removed: the roll's
  health checks expect exactly the configured nodes (docs/operations.md, Upgrades);
- renaming a node that holds local-path volumes, which are pinned to the old Node name
  (docs/operations.md, Rename a node). To find them it fetches an admin kubeconfig with
  `talosctl kubeconfig` (the stack's Kubeconfig resource comes after the applies) and lists the
  PersistentVolumes.

A refused update fails, and Pulumi keeps the previous record, so the next `up` checks against it
again; nothing after the guard ran.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final

import pulumi
import pulumi_command as command

from components.cluster.node_lifecycle import NODES_KEY, node_entries
from components.cluster.talos_health import (
    TALOSCONFIG_ENV,
    TALOSCONFIG_PLACEHOLDER,
    TALOSCTL_RELEASES,
    HealthTarget,
)
from components.cluster.upgrade import (
    CHOSEN,
    KUBECONFIG_PLACEHOLDER,
    talosctl_kubeconfig_argv,
    talosctl_probe_argv,
)
from config.model import Cluster
from programs import change_guard
from programs.build import INTERPRETER, environment, program_text
from programs.talosctl import CANDIDATE

PROGRAM: Final = "homelab-cluster-changes"
CLUSTER_KEY: Final = "homelab:cluster"


def record(cluster: Cluster, installer_image: str) -> dict[str, Any]:
    """What the guard records: a plain, sorted value."""
    return {
        "installer": installer_image,
        "kubernetes_version": cluster.kubernetes_version,
        "nodes": [e.as_data() for e in node_entries(cluster)],
        "talos_version": cluster.talos_version,
    }


def guard_script(cluster: Cluster, installer_image: str, *, mode: str) -> str:
    control_planes = [n.talos_address for n in cluster.control_planes]
    minor = HealthTarget(
        talos_version=cluster.talos_version,
        control_plane_nodes=tuple(control_planes),
        worker_nodes=(),
        endpoints=tuple(control_planes),
    ).talos_minor
    return program_text(
        change_guard,
        change_guard.Params(
            cluster_key=CLUSTER_KEY,
            control_planes=control_planes,
            kubeconfig_argv=talosctl_kubeconfig_argv(
                TALOSCONFIG_PLACEHOLDER, CANDIDATE, KUBECONFIG_PLACEHOLDER, CHOSEN
            ),
            mode="record" if mode == "record" else "check",
            node=control_planes[0],
            nodes_key=NODES_KEY,
            probe_argv=talosctl_probe_argv(TALOSCONFIG_PLACEHOLDER),
            program=PROGRAM,
            record=record(cluster, installer_image),
            releases=TALOSCTL_RELEASES,
            talos_minor=minor,
            talosconfig_env=TALOSCONFIG_ENV,
        ),
    )


def record_json(cluster: Cluster, installer_image: str) -> str:
    """What the Command prints."""
    return json.dumps(record(cluster, installer_image), sort_keys=True)


def change_guard_command(
    name: str,
    cluster: Cluster,
    *,
    installer_image: str,
    talosconfig: pulumi.Output[str],
    parent: pulumi.Resource,
    depends_on: Sequence[pulumi.Resource] = (),
) -> command.local.Command:
    """The Command every change of the cluster waits for."""
    secret_talosconfig: pulumi.Output[str] = pulumi.Output.secret(talosconfig)
    return command.local.Command(
        name,
        create=guard_script(cluster, installer_image, mode="record"),
        update=guard_script(cluster, installer_image, mode="check"),
        interpreter=list(INTERPRETER),
        environment={**environment(change_guard), TALOSCONFIG_ENV: secret_talosconfig},
        # Progress goes to stderr; stdout is only the record.
        logging=command.local.Logging.STDERR,
        opts=pulumi.ResourceOptions(parent=parent, depends_on=list(depends_on)),
    )
